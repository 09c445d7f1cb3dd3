//! `config.yml`: the schema of every cluster setting, and its typed values.
//!
//! One table lists each key once, with its type, default and the role that
//! reads it. Parsing, validation, `did you mean`, the JSON model and the
//! example file check (see tests) all come from this table.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

use crate::cluster::valid_dns_subdomain;
use crate::diag::{did_you_mean, Reporter};
use crate::syntax;
use crate::yaml::{Kind as NodeKind, Node, Pos};

/// What a setting accepts. There is no free-text kind: every value reaches
/// a command or a file on the hosts, so each kind has a syntax that fits
/// where it goes (see `syntax.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A plain name such as `cluster1` ([`crate::syntax::name`]).
    Name,
    /// A version, which is also an image tag, such as `v3.26.4`.
    Version,
    /// A container image reference such as `registry.k8s.io/pause:3.9`.
    Image,
    /// Where images are pulled from: `host[:port][/path]`.
    ImageRegistry,
    /// Calico's IP autodetection method, e.g. `interface=eth.*`.
    Autodetect,
    /// true/false (also yes/no, as kubeasz writes them).
    Bool,
    Int {
        min: i64,
        max: i64,
    },
    Port,
    Ip,
    /// An IP address or empty.
    OptIp,
    Cidr,
    OneOf(&'static [&'static str]),
    /// A duration like `876000h`, `30d`, `90m`.
    Expiry,
    /// `low-high` port range.
    PortRange,
    /// A list of IP addresses or DNS names (may be empty).
    HostList,
    /// A list of registry mirror URLs (may be empty).
    MirrorList,
    /// A lowercase DNS name (RFC 1123 subdomain) such as `cluster.local`.
    Domain,
    /// A list of IP addresses or DNS names (a leading `*.` allowed): extra
    /// names a certificate is issued for.
    CertHosts,
    /// A list of registries, `host[:port]` with an optional `http://` or
    /// `https://`; each becomes a directory under containerd's `certs.d`.
    Registries,
    /// A directory on the hosts ([`crate::syntax::path_problem`]).
    AbsPath,
    /// A directory on the hosts, or empty.
    OptAbsPath,
    /// Kubelet eviction thresholds in its flag syntax,
    /// `signal<quantity[,signal<quantity]...`.
    Eviction,
}

impl Kind {
    /// Kinds whose value is a YAML list.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            Kind::HostList | Kind::MirrorList | Kind::CertHosts | Kind::Registries
        )
    }

    /// Human description of what is allowed, for messages.
    pub fn allowed(&self) -> String {
        match self {
            Kind::Name => syntax::NAME_ALLOWED.into(),
            Kind::Version => syntax::VERSION_ALLOWED.into(),
            Kind::Image => syntax::IMAGE_ALLOWED.into(),
            Kind::ImageRegistry => syntax::IMAGE_REGISTRY_ALLOWED.into(),
            Kind::Autodetect => syntax::AUTODETECT_ALLOWED.into(),
            Kind::Bool => "true or false".into(),
            Kind::Int { min, max } => format!("a whole number from {min} to {max}"),
            Kind::Port => "a port number from 1 to 65535".into(),
            Kind::Ip => "an IP address such as 10.0.0.10".into(),
            Kind::OptIp => "an IP address such as 10.0.0.10, or \"\"".into(),
            Kind::Cidr => "a network in CIDR form such as 10.68.0.0/16".into(),
            Kind::OneOf(values) => format!("one of: {}", values.join(", ")),
            Kind::Expiry => "a duration such as 876000h, 365d or 90m".into(),
            Kind::PortRange => "a port range such as 30000-32767".into(),
            Kind::HostList => {
                "a list of IP addresses or DNS names, e.g. [\"10.0.0.1\", \"ntp.example.com\"]".into()
            }
            Kind::MirrorList => syntax::MIRROR_ALLOWED.into(),
            Kind::Domain => "a lowercase DNS name such as cluster.local (not one a YAML reader takes for a boolean or number, like `true`)".into(),
            Kind::CertHosts => {
                "a list of IP addresses or DNS names, e.g. [\"10.1.1.1\", \"k8s.example.com\"]".into()
            }
            Kind::Registries => {
                "a list of registries as host[:port], optionally with http:// or https://, e.g. [\"http://reg.local:5000\"]".into()
            }
            Kind::AbsPath => format!("{}, e.g. /opt/kube/bin", syntax::PATH_ALLOWED),
            Kind::OptAbsPath => format!("{}, or \"\"", syntax::PATH_ALLOWED),
            Kind::Eviction => format!(
                "thresholds such as memory.available<300Mi,nodefs.available<10% (signals: {})",
                EVICTION_SIGNALS.join(", ")
            ),
        }
    }
}

/// One known key of `config.yml`.
#[derive(Debug, Clone, Copy)]
pub struct Setting {
    pub key: &'static str,
    pub kind: Kind,
    /// Default, as YAML text.
    pub default: &'static str,
    /// The role (or area) that reads it; groups the example file.
    pub role: &'static str,
}

macro_rules! settings {
    ($( $role:literal { $( $key:literal : $kind:expr => $default:literal ),* $(,)? } )*) => {
        &[ $( $( Setting { key: $key, kind: $kind, default: $default, role: $role }, )* )* ]
    };
}

use Kind::*;

pub const NETWORK_PLUGINS: &[&str] = &["calico", "flannel", "none"];
pub const RUNTIMES: &[&str] = &["containerd"];

/// Every setting `config.yml` may hold. Defaults follow kubeasz where sensible.
pub const SETTINGS: &[Setting] = settings! {
    "deploy" {
        "CLUSTER_NAME": Name => "cluster1",
        "CONTEXT_NAME": Name => "context-cluster1",
        "CA_EXPIRY": Expiry => "876000h",
        "CERT_EXPIRY": Expiry => "438000h",
        "K8S_VER": Version => "1.37.2",
        "ETCD_VER": Version => "3.6.17",
        "CONTAINERD_VER": Version => "2.4.2",
        "BACKUP_KEEP": Int { min: 1, max: 10000 } => "10",
    }
    "cluster" {
        "SECURE_PORT": Port => "6443",
        "CONTAINER_RUNTIME": OneOf(RUNTIMES) => "containerd",
        "CLUSTER_NETWORK": OneOf(NETWORK_PLUGINS) => "calico",
        "PROXY_MODE": OneOf(&["ipvs", "iptables", "nftables"]) => "iptables",
        "SERVICE_CIDR": Cidr => "10.68.0.0/16",
        "CLUSTER_CIDR": Cidr => "172.20.0.0/16",
        "NODE_PORT_RANGE": PortRange => "30000-32767",
        "CLUSTER_DNS_DOMAIN": Domain => "cluster.local",
        "bin_dir": AbsPath => "/opt/kube/bin",
        "ca_dir": AbsPath => "/etc/kubernetes/ssl",
        "NTP_SERVERS": HostList => "[]",
    }
    "etcd" {
        "ETCD_DATA_DIR": AbsPath => "/var/lib/etcd",
        "ETCD_WAL_DIR": OptAbsPath => "\"\"",
    }
    "runtime" {
        "ENABLE_MIRROR_REGISTRY": Bool => "false",
        "MIRROR_REGISTRIES": MirrorList => "[]",
        "INSECURE_REG": Registries => "[]",
        "SANDBOX_IMAGE": Image => "registry.k8s.io/pause:3.10.2",
        "CONTAINERD_STORAGE_DIR": AbsPath => "/var/lib/containerd",
        "CONTAINERD_RESTRICT_OOM_SCORE_ADJ": Bool => "false",
    }
    "kube-master" {
        "MASTER_CERT_HOSTS": CertHosts => "[]",
        "NODE_CIDR_LEN": Int { min: 8, max: 30 } => "24",
    }
    "kube-node" {
        "KUBELET_ROOT_DIR": AbsPath => "/var/lib/kubelet",
        "MAX_PODS": Int { min: 1, max: 1000 } => "110",
        "KUBELET_ALLOW_CGROUP_V1": Bool => "false",
        "KUBELET_EVICTION_HARD": Eviction => "\"memory.available<300Mi,nodefs.available<10%,nodefs.inodesFree<5%,imagefs.available<15%\"",
        "KUBELET_IMAGE_GC_HIGH_PERCENT": Int { min: 1, max: 100 } => "85",
        "KUBE_PROXY_CONNTRACK_MAX_PER_CORE": Int { min: 0, max: 1048576 } => "32768",
    }
    "calico" {
        "CALICO_IPV4POOL_IPIP": OneOf(&["Always", "CrossSubnet", "Never"]) => "Always",
        "IP_AUTODETECTION_METHOD": Autodetect => "\"\"",
        "CALICO_NETWORKING_BACKEND": OneOf(&["bird", "vxlan", "none"]) => "vxlan",
        "CALICO_RR_ENABLED": Bool => "false",
        "CALICO_RR_NODES": HostList => "[]",
        "CALICO_IMAGE_REGISTRY": ImageRegistry => "docker.io",
        "calico_ver": Version => "v3.28.5",
    }
    "flannel" {
        "FLANNEL_BACKEND": OneOf(&["vxlan", "host-gw"]) => "vxlan",
        "DIRECT_ROUTING": Bool => "false",
        "FLANNEL_IMAGE_REGISTRY": ImageRegistry => "docker.io",
        "flannel_ver": Version => "v0.28.10",
        "flannel_cni_plugin_ver": Version => "v0.9.1",
    }
    "cluster-addon" {
        "dns_install": Bool => "true",
        "corednsVer": Version => "1.15.0",
        "ENABLE_LOCAL_DNS_CACHE": Bool => "false",
        "dnsNodeCacheVer": Version => "1.22.28",
        "LOCAL_DNS_CACHE": Ip => "169.254.20.10",
        "metricsserver_install": Bool => "false",
        "metricsVer": Version => "v0.7.1",
    }
    "ex-lb" {
        "EX_APISERVER_VIP": OptIp => "\"\"",
        "EX_APISERVER_PORT": Port => "8443",
    }
    "harbor" {
        "HARBOR_VER": Version => "v2.10.2",
        "HARBOR_DOMAIN": Domain => "harbor.easzlab.io.local",
        "HARBOR_PATH": AbsPath => "/var/data",
        "HARBOR_TLS_PORT": Port => "8443",
        "HARBOR_SELF_SIGNED_CERT": Bool => "true",
    }
};

pub fn find(key: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.key == key)
}

/// A checked setting value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Text(String),
    List(Vec<String>),
}

impl Value {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// Every setting of a cluster, defaults filled in, with where each came from.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    values: BTreeMap<&'static str, Value>,
    #[serde(skip)]
    positions: BTreeMap<&'static str, Pos>,
}

impl Settings {
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// Text value of a key of a text-like kind; "" for others.
    pub fn text(&self, key: &str) -> &str {
        self.get(key).and_then(Value::as_text).unwrap_or("")
    }

    pub fn int(&self, key: &str) -> i64 {
        match self.get(key) {
            Some(Value::Int(i)) => *i,
            _ => 0,
        }
    }

    pub fn bool(&self, key: &str) -> bool {
        matches!(self.get(key), Some(Value::Bool(true)))
    }

    pub fn list(&self, key: &str) -> &[String] {
        match self.get(key) {
            Some(Value::List(l)) => l,
            _ => &[],
        }
    }

    /// Where a key was set in `config.yml`, if it was (defaults have none).
    pub fn pos(&self, key: &str) -> Option<Pos> {
        self.positions.get(key).copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.values.iter().map(|(k, v)| (*k, v))
    }
}

/// Read `config.yml` (already parsed) into settings, reporting every problem.
pub(crate) fn read(root: Option<&Node>, rep: &mut Reporter<'_>) -> Settings {
    let mut settings = defaults();
    let Some(root) = root else {
        return settings;
    };
    let NodeKind::Map(entries) = &root.kind else {
        rep.error_help(
            root.pos,
            "",
            format!("expected a mapping of settings, found {}", root.type_name()),
            "write one `KEY: value` per line, see clusters/example/config.yml",
        );
        return settings;
    };
    let mut seen: BTreeMap<&str, Pos> = BTreeMap::new();
    for (key_node, value) in entries {
        let Some(key) = key_node.as_str() else {
            rep.error(key_node.pos, "", "setting names must be plain text");
            continue;
        };
        let Some(setting) = find(key) else {
            let hint = match did_you_mean(key, SETTINGS.iter().map(|s| s.key)) {
                Some(s) => format!("did you mean `{s}`?"),
                None => "see clusters/example/config.yml for every known setting".into(),
            };
            rep.error_help(key_node.pos, key, "unknown setting", hint);
            continue;
        };
        if let Some(first) = seen.insert(setting.key, key_node.pos) {
            rep.error(
                key_node.pos,
                key,
                format!("set twice (first on line {})", first.line),
            );
            continue;
        }
        if let Some(v) = check_value(setting, value, rep) {
            settings.values.insert(setting.key, v);
            settings.positions.insert(setting.key, value.pos);
        }
    }
    settings
}

/// Would `config.yml` accept `text` (written as a quoted string; for a
/// list setting, as its one item) for `key`? For tests and tools that
/// check a value without a whole inventory.
pub fn accepts(key: &str, text: &str) -> bool {
    let Some(setting) = find(key) else {
        return false;
    };
    let pos = Pos { line: 1, col: 1 };
    let scalar = Node {
        kind: NodeKind::Scalar {
            text: text.to_string(),
            quoted: true,
        },
        pos,
    };
    let node = if setting.kind.is_list() {
        Node {
            kind: NodeKind::Seq(vec![scalar]),
            pos,
        }
    } else {
        scalar
    };
    let mut sink = Vec::new();
    let mut rep = Reporter {
        file: std::path::Path::new("<value>"),
        out: &mut sink,
    };
    check_value(setting, &node, &mut rep).is_some() && sink.is_empty()
}

/// The defaults of every setting.
pub fn defaults() -> Settings {
    let mut values = BTreeMap::new();
    for s in SETTINGS {
        // Defaults are constants checked by a unit test; a broken one would
        // be skipped here rather than crash a user's run.
        if let Ok(Some(node)) = crate::yaml::parse(s.default) {
            let mut sink = Vec::new();
            let mut rep = Reporter {
                file: std::path::Path::new("<defaults>"),
                out: &mut sink,
            };
            if let Some(v) = check_value(s, &node, &mut rep) {
                values.insert(s.key, v);
            }
        }
    }
    Settings {
        values,
        positions: BTreeMap::new(),
    }
}

fn bad(rep: &mut Reporter<'_>, s: &Setting, node: &Node, found: &str) -> Option<Value> {
    rep.error_help(
        node.pos,
        s.key,
        format!("`{found}` is not valid here"),
        format!("allowed: {}", s.kind.allowed()),
    );
    None
}

fn check_value(s: &Setting, node: &Node, rep: &mut Reporter<'_>) -> Option<Value> {
    if s.kind.is_list() {
        return check_list(s, node, rep);
    }
    let text = match &node.kind {
        NodeKind::Scalar { text, .. } => text.as_str(),
        NodeKind::Null if matches!(s.kind, Kind::OptIp | Kind::OptAbsPath) => "",
        _ => {
            rep.error_help(
                node.pos,
                s.key,
                format!("expected a single value, found {}", node.type_name()),
                format!("allowed: {}", s.kind.allowed()),
            );
            return None;
        }
    };
    match s.kind {
        Kind::Name | Kind::Version | Kind::Image | Kind::ImageRegistry | Kind::Autodetect => {
            let ok = match s.kind {
                Kind::Name => syntax::name(text),
                Kind::Version => syntax::version(text),
                Kind::Image => syntax::image_reference(text),
                Kind::ImageRegistry => syntax::image_registry(text),
                _ => syntax::autodetection_method(text),
            };
            if ok {
                Some(Value::Text(text.to_string()))
            } else {
                bad(rep, s, node, text)
            }
        }
        Kind::Bool => match text.to_ascii_lowercase().as_str() {
            "true" | "yes" | "on" => Some(Value::Bool(true)),
            "false" | "no" | "off" => Some(Value::Bool(false)),
            _ => bad(rep, s, node, text),
        },
        Kind::Int { min, max } => match text.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Some(Value::Int(n)),
            Ok(_) => {
                rep.error_help(
                    node.pos,
                    s.key,
                    format!("{text} is out of range"),
                    format!("allowed: {}", s.kind.allowed()),
                );
                None
            }
            Err(_) => bad(rep, s, node, text),
        },
        Kind::Port => match text.parse::<u16>() {
            Ok(n) if n > 0 => Some(Value::Int(i64::from(n))),
            _ => bad(rep, s, node, text),
        },
        Kind::Ip => match text.parse::<IpAddr>() {
            Ok(_) => Some(Value::Text(text.to_string())),
            Err(_) => bad(rep, s, node, text),
        },
        Kind::OptIp => match text.is_empty() || text.parse::<IpAddr>().is_ok() {
            true => Some(Value::Text(text.to_string())),
            false => bad(rep, s, node, text),
        },
        Kind::Cidr => match text.parse::<IpNet>() {
            Ok(net) if net.trunc() == net => Some(Value::Text(text.to_string())),
            Ok(net) => {
                rep.error_help(
                    node.pos,
                    s.key,
                    format!("`{text}` has host bits set"),
                    format!("did you mean `{}`?", net.trunc()),
                );
                None
            }
            Err(_) => bad(rep, s, node, text),
        },
        Kind::OneOf(values) => {
            if values.contains(&text) {
                Some(Value::Text(text.to_string()))
            } else {
                let mut help = format!("allowed: {}", values.join(", "));
                if let Some(m) = did_you_mean(text, values.iter().copied()) {
                    help = format!("did you mean `{m}`? {help}");
                }
                rep.error_help(node.pos, s.key, format!("`{text}` is not supported"), help);
                None
            }
        }
        Kind::Expiry => match parse_duration_hours(text) {
            Some(_) => Some(Value::Text(text.to_string())),
            None => bad(rep, s, node, text),
        },
        Kind::PortRange => match parse_port_range(text) {
            Some(_) => Some(Value::Text(text.to_string())),
            None => bad(rep, s, node, text),
        },
        Kind::OptAbsPath if text.is_empty() => Some(Value::Text(String::new())),
        Kind::AbsPath | Kind::OptAbsPath => match syntax::path_problem(text) {
            None => Some(Value::Text(
                text.strip_suffix('/').unwrap_or(text).to_string(),
            )),
            Some(problem) => {
                rep.error_help(
                    node.pos,
                    s.key,
                    format!("`{text}` {problem}"),
                    format!("allowed: {}", s.kind.allowed()),
                );
                None
            }
        },
        Kind::Domain => {
            if valid_dns_subdomain(text) && syntax::yaml_plain_is_string(text) {
                Some(Value::Text(text.to_string()))
            } else {
                bad(rep, s, node, text)
            }
        }
        Kind::Eviction => match eviction_thresholds(text) {
            Some(_) => Some(Value::Text(text.to_string())),
            None => bad(rep, s, node, text),
        },
        Kind::HostList | Kind::MirrorList | Kind::CertHosts | Kind::Registries => None,
    }
}

/// The kubelet's eviction signals (`evictionHard` keys).
pub const EVICTION_SIGNALS: &[&str] = &[
    "memory.available",
    "nodefs.available",
    "nodefs.inodesFree",
    "imagefs.available",
    "imagefs.inodesFree",
    "containerfs.available",
    "containerfs.inodesFree",
    "pid.available",
];

/// `signal<quantity,...` as (signal, quantity) pairs; each signal known and
/// given once, each quantity a percentage (0-100%) or a number with an
/// optional binary or decimal suffix (300Mi, 1G, 1000). `None` when any part
/// is not: the value is written into the kubelet's YAML config, so nothing
/// else may pass.
pub fn eviction_thresholds(text: &str) -> Option<Vec<(&str, &str)>> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for part in text.split(',') {
        let (signal, quantity) = part.trim().split_once('<')?;
        if !EVICTION_SIGNALS.contains(&signal) || out.iter().any(|(s, _)| *s == signal) {
            return None;
        }
        let ok = match quantity.strip_suffix('%') {
            Some(p) => p.parse::<f64>().is_ok_and(|v| (0.0..=100.0).contains(&v)),
            None => {
                let digits = quantity.trim_end_matches(|c: char| c.is_ascii_alphabetic());
                let suffix = &quantity[digits.len()..];
                !digits.is_empty()
                    && digits.chars().all(|c| c.is_ascii_digit())
                    && ["", "Ki", "Mi", "Gi", "Ti", "k", "M", "G", "T"].contains(&suffix)
            }
        };
        if !ok {
            return None;
        }
        out.push((signal, quantity));
    }
    Some(out)
}

/// An entry of a list setting is checked against what that list holds.
fn item_ok(kind: Kind, text: &str) -> bool {
    match kind {
        Kind::CertHosts => {
            text.parse::<IpAddr>().is_ok()
                || valid_dns_subdomain(text.strip_prefix("*.").unwrap_or(text))
        }
        Kind::Registries => valid_registry(text),
        Kind::HostList => syntax::host(text),
        Kind::MirrorList => syntax::mirror(text),
        _ => false,
    }
}

/// `host[:port]`, optionally behind `http://` or `https://`; host a DNS
/// name or an IP (IPv6 in brackets). Nothing else: the entry becomes a
/// directory name on every node, so `/`, `..` and spaces must not pass.
pub fn valid_registry(text: &str) -> bool {
    let rest = text
        .strip_prefix("http://")
        .or_else(|| text.strip_prefix("https://"))
        .unwrap_or(text);
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        match v6.split_once(']') {
            Some((ip, tail)) if ip.parse::<std::net::Ipv6Addr>().is_ok() => {
                match tail.strip_prefix(':') {
                    Some(p) => ("v6", Some(p)),
                    None if tail.is_empty() => ("v6", None),
                    None => return false,
                }
            }
            _ => return false,
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let host_ok = host == "v6"
        || host.parse::<std::net::Ipv4Addr>().is_ok()
        || valid_dns_subdomain(&host.to_ascii_lowercase());
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

fn check_list(s: &Setting, node: &Node, rep: &mut Reporter<'_>) -> Option<Value> {
    match &node.kind {
        NodeKind::Null => Some(Value::List(Vec::new())),
        NodeKind::Seq(items) => {
            let mut out = Vec::new();
            let mut ok = true;
            for (i, item) in items.iter().enumerate() {
                match &item.kind {
                    NodeKind::Scalar { text, .. } if item_ok(s.kind, text) => {
                        out.push(text.clone())
                    }
                    NodeKind::Scalar { text, .. } => {
                        ok = false;
                        rep.error_help(
                            item.pos,
                            &format!("{}[{i}]", s.key),
                            format!("`{text}` is not valid here"),
                            format!("allowed: {}", s.kind.allowed()),
                        );
                    }
                    _ => {
                        ok = false;
                        rep.error(
                            item.pos,
                            &format!("{}[{i}]", s.key),
                            format!("expected a string, found {}", item.type_name()),
                        );
                    }
                }
            }
            ok.then_some(Value::List(out))
        }
        _ => {
            rep.error_help(
                node.pos,
                s.key,
                format!("expected a list, found {}", node.type_name()),
                "write it as a YAML list, e.g.\n      - \"a\"\n      - \"b\"",
            );
            None
        }
    }
}

/// Parse a kubeasz-style duration (`876000h`, `365d`, `90m`) into hours.
/// Minutes round up to whole hours so a short expiry never becomes zero.
pub fn parse_duration_hours(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num.parse().ok()?;
    let hours = match unit {
        "h" => n,
        "d" => n.checked_mul(24)?,
        "y" => n.checked_mul(24 * 365)?,
        "m" => n.div_ceil(60),
        _ => return None,
    };
    // More than ~1000 years cannot be encoded in an X.509 validity.
    (hours > 0 && hours <= 24 * 365 * 1000).then_some(hours)
}

/// Parse `low-high` into a port range with low < high.
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once('-')?;
    let a: u16 = a.trim().parse().ok()?;
    let b: u16 = b.trim().parse().ok()?;
    (a > 0 && a < b).then_some((a, b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn eviction_thresholds_are_parsed_and_anything_else_refused() {
        assert_eq!(
            super::eviction_thresholds("memory.available<300Mi,nodefs.available<10%"),
            Some(vec![
                ("memory.available", "300Mi"),
                ("nodefs.available", "10%")
            ])
        );
        assert!(super::eviction_thresholds("imagefs.available<0%").is_some());
        for bad in [
            "",
            "memory.available>300Mi",
            "memory<300Mi",
            "nodefs.available<101%",
            "memory.available<300Mb",
            "memory.available<3 00Mi",
            "memory.available<1Mi,memory.available<2Mi",
            "memory.available<1Mi\"\nx: y",
        ] {
            assert!(
                super::eviction_thresholds(bad).is_none(),
                "{bad:?} accepted"
            );
        }
    }

    use super::*;

    #[test]
    fn every_default_is_valid() {
        let d = defaults();
        for s in SETTINGS {
            assert!(
                d.get(s.key).is_some(),
                "default of {} does not parse",
                s.key
            );
        }
    }

    #[test]
    fn keys_are_unique() {
        let mut keys: Vec<_> = SETTINGS.iter().map(|s| s.key).collect();
        keys.sort();
        let n = keys.len();
        keys.dedup();
        assert_eq!(n, keys.len());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_hours("876000h"), Some(876000));
        assert_eq!(parse_duration_hours("10d"), Some(240));
        assert_eq!(parse_duration_hours("90m"), Some(2));
        assert_eq!(parse_duration_hours("1y"), Some(8760));
        assert_eq!(parse_duration_hours("h"), None);
        assert_eq!(parse_duration_hours("12"), None);
        assert_eq!(parse_duration_hours("0h"), None);
        assert_eq!(parse_duration_hours("99999999999999999999h"), None);
        assert_eq!(parse_duration_hours("12x"), None);
    }

    #[test]
    fn registries() {
        for ok in [
            "reg.local",
            "reg.local:5000",
            "http://easzlab.io.local:5000",
            "https://10.0.0.5:8443",
            "[fd00::5]:5000",
            "Registry.Example.com",
        ] {
            assert!(valid_registry(ok), "{ok}");
        }
        for bad in [
            "",
            "ftp://reg.local",
            "reg.local/path",
            "../../etc",
            "reg local",
            "reg.local:0",
            "reg.local:99999",
            "http://",
            "[fd00::5",
        ] {
            assert!(!valid_registry(bad), "{bad}");
        }
    }

    #[test]
    fn port_ranges() {
        assert_eq!(parse_port_range("30000-32767"), Some((30000, 32767)));
        assert_eq!(parse_port_range("32767-30000"), None);
        assert_eq!(parse_port_range("0-100"), None);
        assert_eq!(parse_port_range("1-70000"), None);
        assert_eq!(parse_port_range("abc"), None);
    }
}
