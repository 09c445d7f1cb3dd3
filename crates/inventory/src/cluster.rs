//! The resolved cluster: both files loaded, validated and merged, with every
//! derived value computed once, here.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Map, Value as Json};

use crate::diag::{Diagnostic, Diagnostics, Reporter};
use crate::hosts::{self, Group, HostsDoc};
use crate::resolve::Files;
use crate::settings::{self, Settings};
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
            crate::resolve::resolve(
                name,
                dir,
                Files {
                    hosts: &hosts_path,
                    config: &config_path,
                },
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

/// `ip:port`, bracketing IPv6.
pub fn socket(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
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
