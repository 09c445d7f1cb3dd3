//! `hosts.yml`: which machines are what, and how to reach them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::diag::{did_you_mean, Reporter};
use crate::syntax;
use crate::yaml::{Kind, Node, Pos};

/// Host groups, as kubeasz names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    Etcd,
    KubeMaster,
    KubeNode,
    ExLb,
    Harbor,
    Chrony,
}

impl Group {
    pub const ALL: [Group; 6] = [
        Group::Etcd,
        Group::KubeMaster,
        Group::KubeNode,
        Group::ExLb,
        Group::Harbor,
        Group::Chrony,
    ];

    /// The group's name in `hosts.yml` and in playbooks.
    pub fn key(self) -> &'static str {
        match self {
            Group::Etcd => "etcd",
            Group::KubeMaster => "kube_master",
            Group::KubeNode => "kube_node",
            Group::ExLb => "ex_lb",
            Group::Harbor => "harbor",
            Group::Chrony => "chrony",
        }
    }

    pub fn from_key(key: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.key() == key)
    }
}

/// SSH settings as written (cluster-wide under `ssh:`, or per host).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SshSettings {
    pub user: Option<String>,
    pub port: Option<u16>,
    pub key: Option<String>,
    pub jump: Option<String>,
    pub sudo: Option<bool>,
}

const SSH_KEYS: &[&str] = &["user", "port", "key", "jump", "sudo"];

impl SshSettings {
    /// Per-host settings win over cluster-wide ones.
    pub fn or(&self, fallback: &SshSettings) -> SshSettings {
        SshSettings {
            user: self.user.clone().or_else(|| fallback.user.clone()),
            port: self.port.or(fallback.port),
            key: self.key.clone().or_else(|| fallback.key.clone()),
            jump: self.jump.clone().or_else(|| fallback.jump.clone()),
            sudo: self.sudo.or(fallback.sudo),
        }
    }
}

/// One host as listed in one group.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub group: Group,
    pub field: String,
    pub pos: Pos,
    pub ip: Option<IpAddr>,
    pub name: Option<(String, Pos)>,
    pub labels: BTreeMap<String, String>,
    pub ssh: SshSettings,
    pub lb_role: Option<(String, Pos)>,
    pub new_install: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct HostsDoc {
    pub ssh: SshSettings,
    pub entries: Vec<Entry>,
    /// Where each group was declared (for "needs at least one" messages).
    pub group_pos: BTreeMap<Group, Pos>,
}

const TOP_KEYS: &[&str] = &[
    "ssh",
    "etcd",
    "kube_master",
    "kube_node",
    "ex_lb",
    "harbor",
    "chrony",
];

pub(crate) fn read(root: Option<&Node>, rep: &mut Reporter<'_>) -> HostsDoc {
    let mut doc = HostsDoc::default();
    let Some(root) = root else {
        rep.error_help(
            crate::yaml::Pos { line: 1, col: 1 },
            "",
            "the file is empty",
            "list at least the etcd and kube_master groups, see clusters/example/hosts.yml",
        );
        return doc;
    };
    let Kind::Map(entries) = &root.kind else {
        rep.error_help(
            root.pos,
            "",
            format!("expected a mapping of groups, found {}", root.type_name()),
            "see clusters/example/hosts.yml",
        );
        return doc;
    };
    for (key_node, value) in entries {
        let key = key_node.as_str().unwrap_or("");
        if key == "ssh" {
            doc.ssh = read_ssh(value, "ssh", rep);
            continue;
        }
        let Some(group) = Group::from_key(key) else {
            let hint = match did_you_mean(key, TOP_KEYS.iter().copied()) {
                Some(s) => format!("did you mean `{s}`?"),
                None => format!("allowed: {}", TOP_KEYS.join(", ")),
            };
            rep.error_help(key_node.pos, key, "unknown group", hint);
            continue;
        };
        if doc.group_pos.insert(group, key_node.pos).is_some() {
            rep.error(key_node.pos, key, "group listed twice");
            continue;
        }
        match &value.kind {
            Kind::Null => {}
            Kind::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    let field = format!("{key}[{i}]");
                    if let Some(e) = read_entry(group, field, item, rep) {
                        doc.entries.push(e);
                    }
                }
            }
            _ => rep.error_help(
                value.pos,
                key,
                format!("expected a list of hosts, found {}", value.type_name()),
                "write each host as `- 10.0.0.1` or `- { ip: 10.0.0.1, name: node-1 }`",
            ),
        }
    }
    doc
}

fn read_entry(group: Group, field: String, node: &Node, rep: &mut Reporter<'_>) -> Option<Entry> {
    let mut entry = Entry {
        group,
        field: field.clone(),
        pos: node.pos,
        ip: None,
        name: None,
        labels: BTreeMap::new(),
        ssh: SshSettings::default(),
        lb_role: None,
        new_install: None,
    };
    match &node.kind {
        Kind::Scalar { text, .. } => {
            entry.ip = read_ip(text, node.pos, &field, rep);
        }
        Kind::Map(pairs) => {
            report_repeated_keys(pairs, &field, rep);
            let mut allowed = vec!["ip", "name", "labels", "ssh"];
            match group {
                Group::ExLb => allowed.push("lb_role"),
                Group::Harbor => allowed.push("new_install"),
                _ => {}
            }
            for (k, v) in pairs {
                let key = k.as_str().unwrap_or("");
                let sub = format!("{field}.{key}");
                match key {
                    "ip" => match v.as_str() {
                        Some(text) => entry.ip = read_ip(text, v.pos, &sub, rep),
                        None => rep.error(
                            v.pos,
                            &sub,
                            format!("expected an IP address, found {}", v.type_name()),
                        ),
                    },
                    "name" => match v.as_str() {
                        Some(text) => entry.name = Some((text.to_string(), v.pos)),
                        None => rep.error(
                            v.pos,
                            &sub,
                            format!("expected a node name, found {}", v.type_name()),
                        ),
                    },
                    "labels" => entry.labels = read_labels(v, &sub, rep),
                    "ssh" => entry.ssh = read_ssh(v, &sub, rep),
                    "lb_role" if group == Group::ExLb => match v.as_str() {
                        Some(r @ ("master" | "backup")) => {
                            entry.lb_role = Some((r.to_string(), v.pos))
                        }
                        _ => rep.error_help(
                            v.pos,
                            &sub,
                            format!(
                                "`{}` is not a load-balancer role",
                                v.as_str().unwrap_or("?")
                            ),
                            "allowed: master, backup",
                        ),
                    },
                    "new_install" if group == Group::Harbor => {
                        entry.new_install = read_bool(v, &sub, rep)
                    }
                    _ => {
                        let hint = if key == "k8s_nodename" {
                            "kubeasz's `k8s_nodename` is `name` here".to_string()
                        } else {
                            match did_you_mean(key, allowed.iter().copied()) {
                                Some(s) => format!("did you mean `{s}`?"),
                                None => format!("allowed: {}", allowed.join(", ")),
                            }
                        };
                        rep.error_help(k.pos, &sub, "unknown host setting", hint);
                    }
                }
            }
            if entry.ip.is_none() && !pairs.iter().any(|(k, _)| k.as_str() == Some("ip")) {
                rep.error_help(node.pos, &field, "host has no `ip`", "add `ip: <address>`");
            }
        }
        _ => {
            rep.error_help(
                node.pos,
                &field,
                format!("expected a host, found {}", node.type_name()),
                "write a host as `- 10.0.0.1` or `- { ip: 10.0.0.1, name: node-1 }`",
            );
            return None;
        }
    }
    Some(entry)
}

/// A key given twice in one mapping (a host, its ssh settings, its
/// labels): YAML keeps only one of the values, silently.
fn report_repeated_keys(pairs: &[(Node, Node)], field: &str, rep: &mut Reporter<'_>) {
    let mut seen: BTreeMap<&str, Pos> = BTreeMap::new();
    for (k, _) in pairs {
        let Some(key) = k.as_str() else { continue };
        match seen.get(key) {
            Some(first) => rep.error(
                k.pos,
                &format!("{field}.{key}"),
                format!("given twice (first on line {})", first.line),
            ),
            None => {
                seen.insert(key, k.pos);
            }
        }
    }
}

fn read_ip(text: &str, pos: Pos, field: &str, rep: &mut Reporter<'_>) -> Option<IpAddr> {
    match text.trim().parse::<IpAddr>() {
        // Loopback and broadcast name no machine of the cluster: every peer
        // would reach itself (or everyone) at that address.
        Ok(ip)
            if ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_loopback()
                || matches!(ip, IpAddr::V4(v4) if v4.is_broadcast()) =>
        {
            rep.error_help(
                pos,
                field,
                format!("`{text}` cannot be a host address"),
                "use the host's own unicast address",
            );
            None
        }
        Ok(ip) => Some(ip),
        Err(_) => {
            rep.error_help(
                pos,
                field,
                format!("`{text}` is not an IP address"),
                "hosts are listed by IP address, e.g. 10.0.0.21 (names go in `name:`)",
            );
            None
        }
    }
}

fn read_bool(v: &Node, field: &str, rep: &mut Reporter<'_>) -> Option<bool> {
    match v.as_str().map(str::to_ascii_lowercase).as_deref() {
        Some("true" | "yes") => Some(true),
        Some("false" | "no") => Some(false),
        _ => {
            rep.error_help(
                v.pos,
                field,
                "expected true or false",
                "allowed: true, false",
            );
            None
        }
    }
}

fn read_labels(v: &Node, field: &str, rep: &mut Reporter<'_>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match &v.kind {
        Kind::Null => {}
        Kind::Map(pairs) => {
            report_repeated_keys(pairs, field, rep);
            for (k, val) in pairs {
                let key = k.as_str().unwrap_or("");
                let sub = format!("{field}.{key}");
                // Labels reach `kubectl label` on the controller: only
                // Kubernetes label syntax passes, for keys and values.
                if !syntax::label_key(key) {
                    rep.error_help(
                        k.pos,
                        &sub,
                        format!("`{key}` is not a valid label key"),
                        format!("allowed: {}", syntax::LABEL_KEY_ALLOWED),
                    );
                    continue;
                }
                match &val.kind {
                    Kind::Scalar { text, .. } if !syntax::label_value(text) => rep.error_help(
                        val.pos,
                        &sub,
                        format!("`{text}` is not a valid label value"),
                        format!("allowed: {}", syntax::LABEL_VALUE_ALLOWED),
                    ),
                    Kind::Scalar { text, .. } => {
                        out.insert(key.to_string(), text.clone());
                    }
                    Kind::Null => {
                        out.insert(key.to_string(), String::new());
                    }
                    _ => rep.error(
                        val.pos,
                        &sub,
                        format!("expected a label value, found {}", val.type_name()),
                    ),
                }
            }
        }
        _ => rep.error_help(
            v.pos,
            field,
            format!("expected a mapping of labels, found {}", v.type_name()),
            "e.g. labels: { zone: a }",
        ),
    }
    out
}

fn read_ssh(v: &Node, field: &str, rep: &mut Reporter<'_>) -> SshSettings {
    let mut out = SshSettings::default();
    let Kind::Map(pairs) = &v.kind else {
        if v.kind != Kind::Null {
            rep.error_help(
                v.pos,
                field,
                format!("expected a mapping, found {}", v.type_name()),
                format!("allowed keys: {}", SSH_KEYS.join(", ")),
            );
        }
        return out;
    };
    report_repeated_keys(pairs, field, rep);
    for (k, val) in pairs {
        let key = k.as_str().unwrap_or("");
        let sub = format!("{field}.{key}");
        let text = val.as_str();
        match key {
            "user" => match text {
                Some(t) if !t.is_empty() && !t.contains(char::is_whitespace) => {
                    out.user = Some(t.to_string())
                }
                _ => rep.error_help(val.pos, &sub, "not a valid user name", "e.g. root or ops"),
            },
            "port" => match text.and_then(|t| t.parse::<u16>().ok()) {
                Some(p) if p > 0 => out.port = Some(p),
                _ => rep.error_help(
                    val.pos,
                    &sub,
                    format!("`{}` is not a valid port", text.unwrap_or("?")),
                    "allowed: a port number from 1 to 65535",
                ),
            },
            "key" => match text {
                Some(t) if !t.is_empty() => out.key = Some(t.to_string()),
                _ => rep.error_help(
                    val.pos,
                    &sub,
                    "expected a path to a private key",
                    "e.g. ssh/id_ed25519 (relative to the cluster folder) or ~/.ssh/id_ed25519",
                ),
            },
            "jump" => match text {
                Some(t) if syntax::jump_host(t).is_some() => out.jump = Some(t.to_string()),
                _ => rep.error_help(
                    val.pos,
                    &sub,
                    "expected a jump host",
                    "[user@]host[:port], e.g. ops@bastion.example.com:22",
                ),
            },
            "sudo" => out.sudo = read_bool(val, &sub, rep),
            "password" => rep.error_help(
                k.pos,
                &sub,
                "passwords are not stored in the inventory",
                "pass `--ask-pass` to ezctl, or set EZCTL_SSH_PASSWORD for the run",
            ),
            _ => {
                let hint = match did_you_mean(key, SSH_KEYS.iter().copied()) {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => format!("allowed: {}", SSH_KEYS.join(", ")),
                };
                rep.error_help(k.pos, &sub, "unknown ssh setting", hint);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys() {
        assert!(syntax::label_key("zone"));
        assert!(syntax::label_key("topology.kubernetes.io/zone"));
        assert!(!syntax::label_key("-bad"));
        assert!(!syntax::label_key("a/b/c"));
        assert!(!syntax::label_key(""));
        // The prefix was not checked at all.
        assert!(!syntax::label_key("x;id/zone"));
    }
}
