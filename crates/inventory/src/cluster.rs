//! The resolved cluster: both files loaded, validated and merged, with every
//! derived value computed once, here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Serialize;
use serde_json::{json, Map, Value as Json};

use crate::diag::{Diagnostic, Diagnostics, Reporter};
use crate::hosts::{self, Entry, Group, HostsDoc, SshSettings};
use crate::settings::{self, parse_duration_hours, parse_port_range, Settings};
use crate::yaml::{self, Pos};

pub const HOSTS_FILE: &str = "hosts.yml";
pub const CONFIG_FILE: &str = "config.yml";

/// Largest inventory file read. Real ones are a few KiB; this keeps a
/// mistaken path (a log, an image) from being parsed.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// How to reach a host, with cluster-wide defaults applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshTarget {
    pub user: String,
    pub port: u16,
    /// Private key, resolved against the cluster folder; None = agent/defaults.
    pub key: Option<PathBuf>,
    pub jump: Option<String>,
    pub sudo: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub ip: IpAddr,
    /// Kubernetes node name (`name:`), default `k8s-10-0-0-1`.
    pub name: String,
    pub groups: BTreeSet<Group>,
    pub labels: BTreeMap<String, String>,
    pub ssh: SshTarget,
    /// keepalived role on ex_lb hosts.
    pub lb_role: Option<String>,
    /// On harbor hosts: install a new registry (true) or use an existing one.
    pub harbor_new_install: bool,
}

impl Host {
    pub fn is(&self, group: Group) -> bool {
        self.groups.contains(&group)
    }

    /// etcd member name of this host.
    pub fn etcd_name(&self) -> String {
        etcd_member_name(self.ip)
    }
}

/// Values computed from the settings and hosts.
#[derive(Debug, Clone, Serialize)]
pub struct Derived {
    /// First address of SERVICE_CIDR: the `kubernetes` service.
    pub api_service_ip: IpAddr,
    /// Second address of SERVICE_CIDR: cluster DNS.
    pub dns_service_ip: IpAddr,
    /// `etcd-10.0.0.1=https://10.0.0.1:2380,...`
    pub etcd_initial_cluster: String,
    /// `https://10.0.0.1:2379,...`
    pub etcd_endpoints: String,
    pub node_port_range: (u16, u16),
    pub ca_expiry_hours: u64,
    pub cert_expiry_hours: u64,
    /// VIP of the external load balancer, when ex_lb hosts exist.
    pub ex_lb_vip: Option<IpAddr>,
    /// Where admins reach the API: the ex-lb VIP if any, else the first master.
    pub api_endpoint: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Cluster {
    pub name: String,
    #[serde(skip)]
    pub dir: PathBuf,
    /// Every host once, in the order first listed.
    pub hosts: Vec<Host>,
    pub settings: Settings,
    pub derived: Derived,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Diagnostics),
}

pub fn etcd_member_name(ip: IpAddr) -> String {
    format!("etcd-{ip}")
}

/// Default node name for a host without `name:`.
pub fn default_node_name(ip: IpAddr) -> String {
    format!("k8s-{}", ip.to_string().replace(['.', ':'], "-"))
}

/// DNS-1123 subdomain, as Kubernetes requires of node names and the
/// cluster domain (also used for host names in settings).
pub fn valid_dns_subdomain(name: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    !name.is_empty() && name.len() <= 253 && name.split('.').all(label_ok)
}

/// A node name: DNS-1123, and text (not `true` or `123`) in the YAML
/// files it is written into.
pub fn valid_node_name(name: &str) -> bool {
    valid_dns_subdomain(name) && crate::syntax::yaml_plain_is_string(name)
}

/// Read a file as UTF-8 text, turning size and encoding problems into
/// diagnostics that name the file and line.
fn read_text(path: &Path, out: &mut Vec<Diagnostic>) -> Result<Option<String>, LoadError> {
    let meta = std::fs::metadata(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rep = Reporter { file: path, out };
    if !meta.is_file() {
        rep.error(Pos { line: 1, col: 1 }, "", "is not a regular file");
        return Ok(None);
    }
    if too_big(meta.len(), &mut rep) {
        return Ok(None);
    }
    let bytes = std::fs::read(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(check_text(bytes, &mut rep))
}

fn too_big(len: u64, rep: &mut Reporter<'_>) -> bool {
    if len <= MAX_FILE_BYTES {
        return false;
    }
    rep.error_help(
        Pos { line: 1, col: 1 },
        "",
        format!(
            "file is {len} bytes, larger than the {MAX_FILE_BYTES} bytes an inventory file may be"
        ),
        "is this the right file?",
    );
    true
}

/// The text of an inventory file's bytes, or a diagnostic saying why they
/// are not an inventory. The same checks apply to a file read from disk and
/// to text about to be written (a staged edit), so both load alike.
fn check_text(bytes: Vec<u8>, rep: &mut Reporter<'_>) -> Option<String> {
    match String::from_utf8(bytes) {
        Ok(text) => {
            // A byte order mark is allowed before a YAML stream (editors on
            // Windows write one); left in, it became part of the first key.
            let text = match text.strip_prefix('\u{feff}') {
                Some(rest) => rest.to_string(),
                None => text,
            };
            // The YAML reader stops at a NUL as if the file ended there:
            // every host after it would silently vanish.
            if let Some(at) = text.find('\0') {
                let before = &text[..at];
                let line = before.matches('\n').count() + 1;
                let col = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
                rep.error_help(
                    Pos { line, col },
                    "",
                    "file contains a NUL byte",
                    "an inventory is plain text; was a binary file or a broken copy saved here?",
                );
                return None;
            }
            Some(text)
        }
        Err(e) => {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
            let col = valid.iter().rev().take_while(|b| **b != b'\n').count() + 1;
            rep.error_help(
                Pos { line, col },
                "",
                "file is not valid UTF-8 text",
                "save it as UTF-8",
            );
            None
        }
    }
}

/// Where a file's text comes from: the file itself, or text given in
/// memory under the file's name (a staged `hosts.yml`, see
/// [`crate::transaction`]).
#[derive(Clone, Copy)]
enum Source<'a> {
    Disk,
    Text(&'a str),
}

fn parse_file(
    path: &Path,
    source: Source<'_>,
    out: &mut Vec<Diagnostic>,
) -> Result<Option<yaml::Node>, LoadError> {
    let text = match source {
        Source::Disk => read_text(path, out)?,
        Source::Text(text) => {
            let mut rep = Reporter { file: path, out };
            if too_big(text.len() as u64, &mut rep) {
                None
            } else {
                check_text(text.as_bytes().to_vec(), &mut rep)
            }
        }
    };
    let Some(text) = text else {
        return Ok(None);
    };
    match yaml::parse(&text) {
        Ok(root) => Ok(root),
        Err(e) => {
            let help = match e.kind {
                yaml::ErrorKind::Syntax => "check indentation here; an unclosed bracket or quote on an earlier line also shows up like this",
                yaml::ErrorKind::Tab => "indent with spaces",
                yaml::ErrorKind::Unsupported => "write the values out in full",
            };
            Reporter { file: path, out }.error_help(e.pos, "", e.message, help);
            Ok(None)
        }
    }
}

impl Cluster {
    /// Load `hosts.yml` and `config.yml` from a cluster folder. A missing
    /// `config.yml` means all defaults. Every problem is reported at once.
    pub fn load(dir: &Path) -> Result<Cluster, LoadError> {
        Cluster::load_from(dir, Source::Disk)
    }

    /// Load the cluster in `dir` as it would be with `hosts_text` as its
    /// `hosts.yml` (`config.yml` is read from `dir`). Nothing is written:
    /// messages, key paths and the name are those of the real folder, so
    /// a problem of an edit not yet made points at the real file and line.
    pub fn load_with_hosts(dir: &Path, hosts_text: &str) -> Result<Cluster, LoadError> {
        Cluster::load_from(dir, Source::Text(hosts_text))
    }

    fn load_from(dir: &Path, hosts_source: Source<'_>) -> Result<Cluster, LoadError> {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "cluster".into());
        let hosts_path = dir.join(HOSTS_FILE);
        let config_path = dir.join(CONFIG_FILE);
        let mut diags = Vec::new();

        let hosts_root = parse_file(&hosts_path, hosts_source, &mut diags)?;
        let syntax_ok_hosts = !diags.iter().any(|d| d.file == hosts_path);
        // config.yml is optional, but one that is there and unreadable (a
        // dangling or looping symlink) is an error, never "all defaults".
        let config_root = if config_path.symlink_metadata().is_ok() {
            parse_file(&config_path, Source::Disk, &mut diags)?
        } else {
            None
        };
        let syntax_ok_config = !diags.iter().any(|d| d.file == config_path);

        let settings = settings::read(
            config_root.as_ref(),
            &mut Reporter {
                file: &config_path,
                out: &mut diags,
            },
        );
        let doc = if syntax_ok_hosts {
            hosts::read(
                hosts_root.as_ref(),
                &mut Reporter {
                    file: &hosts_path,
                    out: &mut diags,
                },
            )
        } else {
            HostsDoc::default()
        };
        let cluster = if syntax_ok_hosts && syntax_ok_config {
            resolve(
                name,
                dir,
                &hosts_path,
                &config_path,
                doc,
                settings,
                &mut diags,
            )
        } else {
            None
        };
        let mut diags = Diagnostics(diags);
        diags.sort();
        match cluster {
            Some(c) if diags.is_empty() => Ok(c),
            _ => Err(LoadError::Invalid(diags)),
        }
    }

    pub fn group(&self, group: Group) -> impl Iterator<Item = &Host> {
        self.hosts.iter().filter(move |h| h.is(group))
    }

    /// A host by IP or node name.
    pub fn host(&self, id: &str) -> Option<&Host> {
        self.hosts
            .iter()
            .find(|h| h.ip.to_string() == id || h.name == id)
    }

    pub fn masters(&self) -> Vec<IpAddr> {
        self.group(Group::KubeMaster).map(|h| h.ip).collect()
    }

    /// Cluster-wide template variables: every setting under its own name,
    /// plus the derived values and group membership.
    pub fn globals(&self) -> Map<String, Json> {
        let mut m = Map::new();
        for (k, v) in self.settings.iter() {
            m.insert(k.to_string(), serde_json::to_value(v).unwrap_or(Json::Null));
        }
        let d = &self.derived;
        m.insert("cluster_name".into(), json!(self.name));
        m.insert("api_service_ip".into(), json!(d.api_service_ip.to_string()));
        m.insert("dns_service_ip".into(), json!(d.dns_service_ip.to_string()));
        m.insert("etcd_initial_cluster".into(), json!(d.etcd_initial_cluster));
        m.insert("etcd_endpoints".into(), json!(d.etcd_endpoints));
        m.insert(
            "node_port_range".into(),
            json!(format!("{}-{}", d.node_port_range.0, d.node_port_range.1)),
        );
        m.insert(
            "ex_lb_vip".into(),
            json!(d.ex_lb_vip.map(|v| v.to_string()).unwrap_or_default()),
        );
        m.insert("api_endpoint".into(), json!(d.api_endpoint));
        // KUBELET_EVICTION_HARD (validated flag syntax) as the kubelet
        // config's mapping: signal -> quantity.
        let eviction: Map<String, Json> =
            crate::settings::eviction_thresholds(self.settings.text("KUBELET_EVICTION_HARD"))
                .unwrap_or_default()
                .into_iter()
                .map(|(signal, quantity)| (signal.to_string(), json!(quantity)))
                .collect();
        m.insert("kubelet_eviction_hard".into(), Json::Object(eviction));
        let mut groups = Map::new();
        for g in Group::ALL {
            groups.insert(
                g.key().into(),
                json!(self.group(g).map(|h| h.ip.to_string()).collect::<Vec<_>>()),
            );
        }
        m.insert("groups".into(), Json::Object(groups));
        let nodes: Vec<Json> = self
            .hosts
            .iter()
            .map(|h| json!({"ip": h.ip.to_string(), "name": h.name}))
            .collect();
        m.insert("all_hosts".into(), Json::Array(nodes));
        m
    }

    /// Variables of one host (its own settings; globals come separately).
    pub fn host_vars(&self, host: &Host) -> Map<String, Json> {
        let mut m = Map::new();
        m.insert("inventory_hostname".into(), json!(host.ip.to_string()));
        m.insert("host_ip".into(), json!(host.ip.to_string()));
        m.insert("node_name".into(), json!(host.name));
        m.insert("etcd_name".into(), json!(host.etcd_name()));
        m.insert("labels".into(), json!(host.labels));
        m.insert(
            "lb_role".into(),
            json!(host.lb_role.clone().unwrap_or_default()),
        );
        m.insert("harbor_new_install".into(), json!(host.harbor_new_install));
        m
    }
}

/// Merge entries into hosts, check cross-field rules, derive values.
fn resolve(
    name: String,
    dir: &Path,
    hosts_path: &Path,
    config_path: &Path,
    doc: HostsDoc,
    settings: Settings,
    diags: &mut Vec<Diagnostic>,
) -> Option<Cluster> {
    let before = diags.len();
    let mut hrep = Reporter {
        file: hosts_path,
        out: diags,
    };

    // Duplicates within a group; merge across groups.
    let mut by_ip: Vec<(IpAddr, Vec<&Entry>)> = Vec::new();
    let mut seen_in_group: BTreeMap<(Group, IpAddr), Pos> = BTreeMap::new();
    for e in &doc.entries {
        let Some(ip) = e.ip else { continue };
        if let Some(first) = seen_in_group.insert((e.group, ip), e.pos) {
            hrep.error(
                e.pos,
                &e.field,
                format!(
                    "{ip} is listed twice in {} (first on line {})",
                    e.group.key(),
                    first.line
                ),
            );
            continue;
        }
        match by_ip.iter_mut().find(|(i, _)| *i == ip) {
            Some((_, list)) => list.push(e),
            None => by_ip.push((ip, vec![e])),
        }
    }

    let mut hosts = Vec::new();
    for (ip, entries) in &by_ip {
        let mut name: Option<(String, &Entry, Pos)> = None;
        let mut ssh = SshSettings::default();
        let mut ssh_from: Option<&Entry> = None;
        let mut labels = BTreeMap::new();
        let mut lb_role = None;
        let mut new_install = false;
        for e in entries {
            if let Some((n, pos)) = &e.name {
                match &name {
                    Some((prev, prev_e, _)) if prev != n => hrep.error_help(
                        *pos,
                        &format!("{}.name", e.field),
                        format!(
                            "{ip} is named `{n}` here but `{prev}` in {} (line {})",
                            prev_e.group.key(),
                            prev_e.pos.line
                        ),
                        "give a host the same name in every group, or name it once",
                    ),
                    Some(_) => {}
                    None => name = Some((n.clone(), e, *pos)),
                }
            }
            if e.ssh != SshSettings::default() {
                match ssh_from {
                    Some(prev) if prev.ssh != e.ssh => hrep.error_help(
                        e.pos,
                        &format!("{}.ssh", e.field),
                        format!(
                            "{ip} has different ssh settings here than in {} (line {})",
                            prev.group.key(),
                            prev.pos.line
                        ),
                        "set a host's ssh settings once",
                    ),
                    _ => {
                        ssh = e.ssh.clone();
                        ssh_from = Some(e);
                    }
                }
            }
            labels.extend(e.labels.clone());
            if let Some((r, _)) = &e.lb_role {
                lb_role = Some(r.clone());
            }
            if let Some(n) = e.new_install {
                new_install = n;
            }
        }
        let (node_name, name_pos, name_field) = match name {
            Some((n, e, pos)) => (n, pos, format!("{}.name", e.field)),
            None => (
                default_node_name(*ip),
                entries[0].pos,
                entries[0].field.clone(),
            ),
        };
        if !valid_dns_subdomain(&node_name) {
            hrep.error_help(
                name_pos,
                &name_field,
                format!("`{node_name}` is not a valid node name"),
                "allowed: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (DNS-1123), at most 253 characters",
            );
        } else if !crate::syntax::yaml_plain_is_string(&node_name) {
            // Node names are written into YAML files on the nodes.
            hrep.error_help(
                name_pos,
                &name_field,
                format!("`{node_name}` would be read as a boolean, number or date in YAML files"),
                format!("allowed: {}", crate::syntax::YAML_STRING_ALLOWED),
            );
        }
        let merged = ssh.or(&doc.ssh);
        // A host's own jump host may not be itself (a cluster-wide one may:
        // that host is then reached directly).
        if let Some((_, addr, port)) = ssh.jump.as_deref().and_then(crate::syntax::jump_host) {
            let port = port.unwrap_or(22);
            if addr == ip.to_string() && port == merged.port.unwrap_or(22) {
                let e = ssh_from.unwrap_or(entries[0]);
                hrep.error_help(
                    e.pos,
                    &format!("{}.ssh.jump", e.field),
                    format!("{ip} would be reached through itself"),
                    "remove `jump` from this host, or name another host",
                );
            }
        }
        let key = merged.key.as_deref().map(|k| resolve_path(dir, k));
        hosts.push((
            Host {
                ip: *ip,
                name: node_name,
                groups: entries.iter().map(|e| e.group).collect(),
                labels,
                ssh: SshTarget {
                    user: merged.user.unwrap_or_else(|| "root".into()),
                    port: merged.port.unwrap_or(22),
                    key,
                    jump: merged.jump,
                    sudo: merged.sudo.unwrap_or(false),
                },
                lb_role,
                harbor_new_install: new_install,
            },
            name_pos,
            name_field,
        ));
    }

    // Unique node names.
    let mut names: BTreeMap<&str, (IpAddr, Pos)> = BTreeMap::new();
    for (h, pos, field) in &hosts {
        if let Some((other, other_pos)) = names.insert(&h.name, (h.ip, *pos)) {
            hrep.error_help(
                *pos,
                field,
                format!(
                    "node name `{}` is already used by {other} (line {})",
                    h.name, other_pos.line
                ),
                "every node name must be unique",
            );
        }
    }

    // Group sizes.
    let count = |g: Group| hosts.iter().filter(|(h, _, _)| h.is(g)).count();
    let group_pos = |g: Group| {
        doc.group_pos
            .get(&g)
            .copied()
            .unwrap_or(Pos { line: 1, col: 1 })
    };
    // A group with an unreadable entry is not counted: its size would be a
    // consequence of that error, not a second problem.
    let unreadable = |g: Group| doc.entries.iter().any(|e| e.group == g && e.ip.is_none());
    let etcd = count(Group::Etcd);
    if unreadable(Group::Etcd) {
    } else if etcd == 0 {
        hrep.error_help(
            group_pos(Group::Etcd),
            "etcd",
            "no etcd hosts",
            "list 1, 3 or 5 hosts under `etcd:`",
        );
    } else if etcd % 2 == 0 {
        hrep.error_help(
            group_pos(Group::Etcd),
            "etcd",
            format!("{etcd} etcd hosts: an even count tolerates no more failures than one fewer"),
            "use an odd number of etcd hosts (1, 3, 5, 7)",
        );
    }
    if count(Group::KubeMaster) == 0 && !unreadable(Group::KubeMaster) {
        hrep.error_help(
            group_pos(Group::KubeMaster),
            "kube_master",
            "no master hosts",
            "list at least one host under `kube_master:`",
        );
    }
    if count(Group::Harbor) > 1 {
        hrep.error_help(
            group_pos(Group::Harbor),
            "harbor",
            "more than one harbor host",
            "list one registry host",
        );
    }
    let lb_masters = hosts
        .iter()
        .filter(|(h, _, _)| h.is(Group::ExLb) && h.lb_role.as_deref() == Some("master"))
        .count();
    if lb_masters > 1 {
        hrep.error_help(
            group_pos(Group::ExLb),
            "ex_lb",
            format!("{lb_masters} hosts have lb_role: master"),
            "one ex_lb host is master, the others backup",
        );
    }

    // Networks.
    let mut crep = Reporter {
        file: config_path,
        out: hrep.out,
    };
    let cfg_pos = |k: &str| settings.pos(k).unwrap_or(Pos { line: 1, col: 1 });
    let service: Option<IpNet> = settings.text("SERVICE_CIDR").parse().ok();
    let pods: Option<IpNet> = settings.text("CLUSTER_CIDR").parse().ok();
    if let (Some(s), Some(p)) = (service, pods) {
        if s.contains(&p.network()) || p.contains(&s.network()) {
            crep.error_help(
                cfg_pos("CLUSTER_CIDR"),
                "CLUSTER_CIDR",
                format!("{p} overlaps SERVICE_CIDR {s}"),
                "pod and service networks must not overlap each other or the hosts' network",
            );
        }
        let node_len = settings.int("NODE_CIDR_LEN");
        if node_len <= i64::from(p.prefix_len()) {
            crep.error_help(
                cfg_pos("NODE_CIDR_LEN"),
                "NODE_CIDR_LEN",
                format!(
                    "{node_len} is not longer than CLUSTER_CIDR's /{}",
                    p.prefix_len()
                ),
                format!("allowed: {} to 30", p.prefix_len() + 1),
            );
        }
    }
    if let Some(s) = service {
        let max_prefix = if s.network().is_ipv4() { 30 } else { 126 };
        if s.prefix_len() > max_prefix || s.hosts().take(2).count() < 2 {
            crep.error_help(
                cfg_pos("SERVICE_CIDR"),
                "SERVICE_CIDR",
                format!("{s} is too small"),
                "it needs room for the API (.1) and DNS (.2) service IPs; use /24 or larger",
            );
        }
    }
    let mut hrep = Reporter {
        file: hosts_path,
        out: crep.out,
    };
    for (h, _, _) in &hosts {
        let entry_pos = doc
            .entries
            .iter()
            .find(|e| e.ip == Some(h.ip))
            .map(|e| (e.pos, e.field.clone()));
        let (pos, field) = entry_pos.unwrap_or((Pos { line: 1, col: 1 }, String::new()));
        for (key, net) in [("SERVICE_CIDR", service), ("CLUSTER_CIDR", pods)] {
            if let Some(net) = net {
                if net.contains(&h.ip) {
                    hrep.error_help(
                        pos,
                        &field,
                        format!("host {} lies inside {key} {net}", h.ip),
                        format!(
                            "change {key} in config.yml so it does not overlap the hosts' network"
                        ),
                    );
                }
            }
        }
    }

    // Expiry.
    let mut crep = Reporter {
        file: config_path,
        out: hrep.out,
    };
    // Settings whose role is not there yet: accepting them would break a
    // cluster silently (kubelets pointing every pod at a DNS cache nobody
    // runs; calico-node images without BIRD told to speak BGP).
    if settings.bool("ENABLE_LOCAL_DNS_CACHE") {
        crep.error_help(
            cfg_pos("ENABLE_LOCAL_DNS_CACHE"),
            "ENABLE_LOCAL_DNS_CACHE",
            "node-local-dns is not installed by ezctl yet",
            "allowed: false (pods would be given a DNS server at LOCAL_DNS_CACHE that nothing serves)",
        );
    }
    let ca_h = parse_duration_hours(settings.text("CA_EXPIRY")).unwrap_or(0);
    let cert_h = parse_duration_hours(settings.text("CERT_EXPIRY")).unwrap_or(0);
    if ca_h > 0 && cert_h > ca_h {
        crep.error_help(
            cfg_pos("CERT_EXPIRY"),
            "CERT_EXPIRY",
            format!("certificates ({cert_h}h) would outlive the CA ({ca_h}h)"),
            "make CERT_EXPIRY shorter than CA_EXPIRY",
        );
    }

    // Directories that destroy, del-node and del-etcd delete as a whole must
    // not hold another directory ezctl uses: deleting one would take the
    // other (CONTAINERD_STORAGE_DIR: /var/lib/etcd on an etcd member).
    for (whole, other, pos_key) in nested_dirs(&settings) {
        crep.error_help(
            cfg_pos(pos_key),
            pos_key,
            format!(
                "`{}` ({other}) is inside `{}` ({whole}), which ezctl deletes as a whole when a host leaves",
                settings_or_fixed(&settings, other),
                settings.text(whole),
            ),
            format!("give {whole} and {other} directories that do not contain each other"),
        );
    }

    // ex-lb needs a VIP.
    let has_ex_lb = hosts.iter().any(|(h, _, _)| h.is(Group::ExLb));
    let vip: Option<IpAddr> = settings.text("EX_APISERVER_VIP").parse().ok();
    if has_ex_lb && vip.is_none() {
        crep.error_help(
            cfg_pos("EX_APISERVER_VIP"),
            "EX_APISERVER_VIP",
            "ex_lb hosts are listed but no VIP is set",
            "set EX_APISERVER_VIP to a free address on the hosts' network",
        );
    }
    if let Some(v) = vip {
        if hosts.iter().any(|(h, _, _)| h.ip == v) {
            crep.error_help(
                cfg_pos("EX_APISERVER_VIP"),
                "EX_APISERVER_VIP",
                format!("{v} is already a host's address"),
                "a VIP must be a free address",
            );
        }
    }

    // Two services on one host may not listen on the same port.
    for (h, _, _) in &hosts {
        let mut used: Vec<(i64, &str)> = Vec::new();
        let mut listen = |port: i64, key: &'static str, crep: &mut Reporter<'_>| {
            if let Some((_, other)) = used.iter().find(|(p, _)| *p == port) {
                crep.error_help(
                    cfg_pos(key),
                    key,
                    format!("port {port} on {} is already taken by {other}", h.ip),
                    format!("give {key} and {other} different ports"),
                );
            } else {
                used.push((port, key));
            }
        };
        if h.is(Group::KubeMaster) {
            listen(settings.int("SECURE_PORT"), "SECURE_PORT", &mut crep);
        }
        if h.is(Group::ExLb) {
            listen(
                settings.int("EX_APISERVER_PORT"),
                "EX_APISERVER_PORT",
                &mut crep,
            );
        }
        if h.is(Group::Harbor) {
            listen(
                settings.int("HARBOR_TLS_PORT"),
                "HARBOR_TLS_PORT",
                &mut crep,
            );
        }
    }

    if diags.len() > before {
        return None;
    }

    let hosts: Vec<Host> = hosts.into_iter().map(|(h, _, _)| h).collect();
    let service = service?;
    let mut svc_hosts = service.hosts();
    let api_service_ip = svc_hosts.next()?;
    let dns_service_ip = svc_hosts.next()?;
    let etcd_hosts: Vec<&Host> = hosts.iter().filter(|h| h.is(Group::Etcd)).collect();
    let etcd_initial_cluster = etcd_hosts
        .iter()
        .map(|h| format!("{}=https://{}", h.etcd_name(), socket(h.ip, 2380)))
        .collect::<Vec<_>>()
        .join(",");
    let etcd_endpoints = etcd_hosts
        .iter()
        .map(|h| format!("https://{}", socket(h.ip, 2379)))
        .collect::<Vec<_>>()
        .join(",");
    let port = settings.int("SECURE_PORT");
    let ex_lb_vip = if has_ex_lb { vip } else { None };
    let api_endpoint = match ex_lb_vip {
        Some(v) => format!(
            "https://{}",
            socket(v, settings.int("EX_APISERVER_PORT") as u16)
        ),
        None => {
            let first = hosts.iter().find(|h| h.is(Group::KubeMaster))?;
            format!("https://{}", socket(first.ip, port as u16))
        }
    };
    Some(Cluster {
        name,
        dir: dir.to_path_buf(),
        derived: Derived {
            api_service_ip,
            dns_service_ip,
            etcd_initial_cluster,
            etcd_endpoints,
            node_port_range: parse_port_range(settings.text("NODE_PORT_RANGE"))?,
            ca_expiry_hours: ca_h,
            cert_expiry_hours: cert_h,
            ex_lb_vip,
            api_endpoint,
        },
        hosts,
        settings,
    })
}

/// Settings naming a directory that a role deletes with everything in it.
const DELETED_DIRS: &[&str] = &[
    "ETCD_DATA_DIR",
    "ETCD_WAL_DIR",
    "CONTAINERD_STORAGE_DIR",
    "KUBELET_ROOT_DIR",
];

/// Every directory ezctl puts something in: the settings, then fixed ones
/// the roles use (named by their path).
const USED_DIRS: &[&str] = &[
    "ETCD_DATA_DIR",
    "ETCD_WAL_DIR",
    "CONTAINERD_STORAGE_DIR",
    "KUBELET_ROOT_DIR",
    "bin_dir",
    "ca_dir",
    "HARBOR_PATH",
    "/etc/kubernetes",
    "/etc/containerd",
    "/etc/cni/net.d",
    "/opt/cni/bin",
    "/var/lib/kube-proxy",
];

fn settings_or_fixed<'a>(settings: &'a Settings, key: &'a str) -> &'a str {
    if key.starts_with('/') {
        key
    } else {
        settings.text(key)
    }
}

/// `(deleted dir setting, other, key to report at)` for every directory
/// inside one that is deleted as a whole. Each pair is reported once.
fn nested_dirs(settings: &Settings) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = Vec::new();
    for whole in DELETED_DIRS {
        let outer = settings.text(whole);
        if outer.is_empty() {
            continue;
        }
        for other in USED_DIRS {
            let inner = settings_or_fixed(settings, other);
            if other == whole || inner.is_empty() {
                continue;
            }
            // Two deleted directories inside each other (equal): report once.
            if DELETED_DIRS.contains(other)
                && crate::syntax::path_within(outer, inner)
                && DELETED_DIRS.iter().position(|k| k == other)
                    < DELETED_DIRS.iter().position(|k| k == whole)
            {
                continue;
            }
            if crate::syntax::path_within(inner, outer) {
                let at = if other.starts_with('/') || settings.pos(other).is_none() {
                    whole
                } else {
                    other
                };
                out.push((*whole, *other, *at));
            }
        }
    }
    out
}

/// `ip:port`, bracketing IPv6.
pub fn socket(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    }
}

fn resolve_path(dir: &Path, p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Editors on Windows start files with a byte order mark; it made the
    /// first key `\u{feff}ssh`, "unknown group, did you mean `ssh`?".
    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_key() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clusters/example");
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [HOSTS_FILE, CONFIG_FILE] {
            let mut bytes = "\u{feff}".as_bytes().to_vec();
            bytes.extend(std::fs::read(example.join(f)).expect("example file"));
            std::fs::write(dir.path().join(f), bytes).expect("write");
        }
        let loaded = Cluster::load(dir.path());
        assert!(loaded.is_ok(), "{:?}", loaded.err().map(|e| e.to_string()));
    }

    #[test]
    fn a_config_that_is_a_broken_symlink_is_an_error_not_the_defaults() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clusters/example");
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(example.join(HOSTS_FILE), dir.path().join(HOSTS_FILE)).expect("copy");
        let config = dir.path().join(CONFIG_FILE);
        for target in [CONFIG_FILE, "missing.yml"] {
            let _ = std::fs::remove_file(&config);
            std::os::unix::fs::symlink(target, &config).expect("symlink");
            match Cluster::load(dir.path()) {
                Err(e) => assert!(e.to_string().contains(CONFIG_FILE), "{e}"),
                Ok(_) => panic!("config.yml -> {target} loaded as defaults"),
            }
        }
    }

    #[test]
    fn node_names() {
        assert!(valid_dns_subdomain("master-01"));
        assert!(valid_dns_subdomain("k8s-10-0-0-1"));
        assert!(valid_dns_subdomain("node.a.example"));
        assert!(!valid_dns_subdomain("Master"));
        assert!(!valid_dns_subdomain("-a"));
        assert!(!valid_dns_subdomain("a_b"));
        assert!(!valid_dns_subdomain(""));
        assert!(!valid_dns_subdomain("a..b"));
        assert_eq!(
            default_node_name("10.0.0.1".parse().unwrap()),
            "k8s-10-0-0-1"
        );
    }
}
