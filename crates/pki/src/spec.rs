//! The input: plain data, converted by ezctl from its inventory `Cluster`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Everything the PKI needs to know about a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PkiSpec {
    /// kubeconfig cluster name (`CLUSTER_NAME`).
    pub cluster_name: String,
    /// kubeconfig context name (`CONTEXT_NAME`).
    pub context_name: String,
    /// Validity of a new CA (`CA_EXPIRY`, kubeasz default 876000h).
    pub ca_expiry: Duration,
    /// Validity of every other new cert (`CERT_EXPIRY`, kubeasz default 438000h),
    /// clamped to the CA's end.
    pub cert_expiry: Duration,
    /// kube-apiserver port (`SECURE_PORT`, 6443); also the local kube-lb port.
    pub secure_port: u16,
    /// Every etcd member.
    pub etcd_ips: Vec<IpAddr>,
    /// Every master, in inventory order (the first one is the admin kubeconfig's
    /// server when there is no ex-lb).
    pub master_ips: Vec<IpAddr>,
    /// First IP of `SERVICE_CIDR`.
    pub api_service_ip: IpAddr,
    /// External load balancer VIP and port (`EX_APISERVER_VIP`, `EX_APISERVER_PORT`).
    pub ex_lb: Option<ExLb>,
    /// `MASTER_CERT_HOSTS`: extra apiserver SANs, each an IP or a DNS name
    /// (a leading `*.` wildcard is allowed).
    pub master_cert_hosts: Vec<String>,
    /// `CLUSTER_DNS_DOMAIN`, e.g. `cluster.local`.
    pub dns_domain: String,
    /// Every host running a kubelet (masters included when they run one).
    pub nodes: Vec<NodeCert>,
    /// Private registry (harbor) to issue a serving cert for.
    pub registry: Option<RegistryCert>,
}

/// External load balancer in front of the apiservers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExLb {
    /// Virtual IP.
    pub vip: IpAddr,
    /// Port it listens on.
    pub port: u16,
    /// The VIP was seen answering the API (ex-lb installed and verified).
    /// Until then the admin kubeconfig points at a master: a kubeconfig at
    /// a VIP nobody holds yet fails with "no route to host".
    pub serving: bool,
}

/// One kubelet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCert {
    /// Kubernetes node name (`k8s_nodename`).
    pub name: String,
    /// Node IP.
    pub ip: IpAddr,
}

/// A registry serving cert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryCert {
    /// `HARBOR_DOMAIN`.
    pub domain: String,
    /// Registry host IP.
    pub ip: IpAddr,
}

/// A subject alternative name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum San {
    Ip(IpAddr),
    Dns(String),
}

impl San {
    /// An IP if it parses as one, otherwise a DNS name (lower-cased).
    pub(crate) fn parse(host: &str) -> San {
        let h = host.trim();
        let unbracketed = h
            .strip_prefix('[')
            .and_then(|x| x.strip_suffix(']'))
            .unwrap_or(h);
        match unbracketed.parse::<IpAddr>() {
            Ok(ip) => San::Ip(ip),
            Err(_) => San::Dns(h.to_ascii_lowercase()),
        }
    }
}

impl std::fmt::Display for San {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            San::Ip(ip) => write!(f, "IP:{ip}"),
            San::Dns(d) => write!(f, "DNS:{d}"),
        }
    }
}

/// RFC 1123 subdomain as Kubernetes checks node names:
/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*`, at most 253 bytes.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    if s.is_empty() || s.len() > 253 {
        return false;
    }
    s.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    })
}

fn is_dns_san(s: &str) -> bool {
    let s = s.to_ascii_lowercase();
    match s.strip_prefix("*.") {
        Some(rest) => is_dns_subdomain(rest),
        None => is_dns_subdomain(&s),
    }
}

fn check_name(what: &str, s: &str) -> Result<()> {
    if s.trim().is_empty() {
        return Err(Error::InvalidSpec(format!("{what} is empty")));
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(Error::InvalidSpec(format!(
            "{what} {s:?} contains control characters"
        )));
    }
    Ok(())
}

impl PkiSpec {
    /// Checks the spec; called by every entry point before touching any file.
    pub fn validate(&self) -> Result<()> {
        check_name("cluster_name", &self.cluster_name)?;
        check_name("context_name", &self.context_name)?;
        if self.ca_expiry.is_zero() {
            return Err(Error::InvalidSpec("ca_expiry is zero".into()));
        }
        if self.cert_expiry.is_zero() {
            return Err(Error::InvalidSpec("cert_expiry is zero".into()));
        }
        if self.secure_port == 0 {
            return Err(Error::InvalidSpec("secure_port is 0".into()));
        }
        if self.etcd_ips.is_empty() {
            return Err(Error::InvalidSpec("no etcd member".into()));
        }
        if self.master_ips.is_empty() {
            return Err(Error::InvalidSpec("no master".into()));
        }
        if let Some(lb) = &self.ex_lb {
            if lb.port == 0 {
                return Err(Error::InvalidSpec("ex-lb port is 0".into()));
            }
        }
        for h in &self.master_cert_hosts {
            if let San::Dns(d) = San::parse(h) {
                if !is_dns_san(&d) {
                    return Err(Error::InvalidSpec(format!(
                        "MASTER_CERT_HOSTS entry {h:?} is neither an IP address nor a DNS name"
                    )));
                }
            }
        }
        if !is_dns_subdomain(&self.dns_domain) {
            return Err(Error::InvalidSpec(format!(
                "dns_domain {:?} is not a DNS name",
                self.dns_domain
            )));
        }
        let mut seen = BTreeSet::new();
        for n in &self.nodes {
            if !is_dns_subdomain(&n.name) {
                return Err(Error::InvalidSpec(format!(
                    "node name {:?} is not a lower-case RFC 1123 subdomain",
                    n.name
                )));
            }
            if !seen.insert(n.name.as_str()) {
                return Err(Error::InvalidSpec(format!(
                    "node name {:?} appears twice",
                    n.name
                )));
            }
        }
        if let Some(r) = &self.registry {
            if !is_dns_san(&r.domain) {
                return Err(Error::InvalidSpec(format!(
                    "registry domain {:?} is not a DNS name",
                    r.domain
                )));
            }
        }
        Ok(())
    }

    /// `https://HOST:PORT` for the kubeconfigs handed out (admin, users):
    /// the ex-lb VIP once it serves, else the first master. The VIP is in
    /// the apiserver certificate either way.
    pub fn external_server(&self) -> String {
        match &self.ex_lb {
            Some(lb) if lb.serving => https_url(lb.vip, lb.port),
            _ => https_url(self.master_ips[0], self.secure_port),
        }
    }

    /// `https://127.0.0.1:SECURE_PORT`: the local kube-lb on every master and node.
    pub fn local_server(&self) -> String {
        https_url(IpAddr::from([127, 0, 0, 1]), self.secure_port)
    }
}

/// `https://IP:PORT`, with brackets around an IPv6 address.
pub fn https_url(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(v4) => format!("https://{v4}:{port}"),
        IpAddr::V6(v6) => format!("https://[{v6}]:{port}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        assert!(is_dns_subdomain("k8s-10-0-0-1"));
        assert!(is_dns_subdomain("worker-01.example.com"));
        assert!(!is_dns_subdomain("Worker"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain("a/b"));
        assert!(!is_dns_subdomain(""));
        assert!(is_dns_san("*.example.com"));
        assert!(is_dns_san("API.Example.org"));
        assert!(!is_dns_san("*"));
        assert!(!is_dns_san("a b"));
    }

    #[test]
    fn san_parse() {
        assert_eq!(
            San::parse("10.0.0.88"),
            San::Ip("10.0.0.88".parse().unwrap())
        );
        assert_eq!(San::parse("[fd00::1]"), San::Ip("fd00::1".parse().unwrap()));
        assert_eq!(
            San::parse("Api.Mystical.org"),
            San::Dns("api.mystical.org".into())
        );
    }

    #[test]
    fn external_server_is_the_vip_only_once_it_serves() {
        let mut s = crate::certs::tests::spec();
        let lb = s.ex_lb.expect("the test spec has an ex-lb");
        assert_eq!(s.external_server(), "https://10.0.0.6:8443");
        s.ex_lb = Some(ExLb {
            serving: false,
            ..lb
        });
        assert_eq!(
            s.external_server(),
            format!("https://{}:{}", s.master_ips[0], s.secure_port)
        );
        s.ex_lb = None;
        assert_eq!(
            s.external_server(),
            format!("https://{}:{}", s.master_ips[0], s.secure_port)
        );
    }

    #[test]
    fn urls() {
        assert_eq!(
            https_url("10.0.0.1".parse().unwrap(), 6443),
            "https://10.0.0.1:6443"
        );
        assert_eq!(
            https_url("fd00::1".parse().unwrap(), 8443),
            "https://[fd00::1]:8443"
        );
    }
}
