//! kubelet stand-in: registers its Node through the kubeconfig's server,
//! keeps it Ready while the container runtime socket accepts connections,
//! serves healthz (HTTP) and its API port (HTTPS).

use crate::component::{self, optional_files, readable, relative_to, required_file, StartupError};
use crate::flags::{FlagSet, Flags};
use crate::http::server::{respond, serve, Body, Handler, Peer};
use crate::kubeconfig::{KubeClient, KubeError};
use crate::tls::{self, ClientAuth};
use anyhow::Context;
use hyper::{Request, Response};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// kubelet flags.
pub const FLAGS: FlagSet = FlagSet {
    component: "kubelet",
    values: &[
        "config",
        "kubeconfig",
        "bootstrap-kubeconfig",
        "hostname-override",
        "node-ip",
        "root-dir",
        "container-runtime-endpoint",
        "image-service-endpoint",
        "cert-dir",
        "pod-infra-container-image",
        "node-labels",
        "register-with-taints",
        "runtime-request-timeout",
        "cgroup-driver",
        "max-pods",
        "cluster-dns",
        "cluster-domain",
        "provider-id",
        "cloud-provider",
        "lock-file",
        "volume-plugin-dir",
        "tls-cert-file",
        "tls-private-key-file",
        "client-ca-file",
        "authorization-mode",
        "address",
        "port",
        "healthz-port",
        "healthz-bind-address",
        "read-only-port",
        "kube-reserved",
        "system-reserved",
        "eviction-hard",
        "enforce-node-allocatable",
        "resolv-conf",
        "container-log-max-size",
        "container-log-max-files",
        "runtime-cgroups",
        "kubelet-cgroups",
        "node-status-update-frequency",
        "seccomp-default",
        "image-gc-high-threshold",
        "image-gc-low-threshold",
    ],
    bools: &[
        "register-node",
        "fail-swap-on",
        "rotate-certificates",
        "anonymous-auth",
        "authentication-token-webhook",
        "serialize-image-pulls",
        "protect-kernel-defaults",
        "exit-on-lock-contention",
        "make-iptables-util-chains",
    ],
};

/// The KubeletConfiguration fields the stand-in uses.
#[derive(Debug, Clone, PartialEq)]
pub struct KubeletConfig {
    pub address: String,
    pub port: u16,
    pub healthz_bind_address: String,
    pub healthz_port: u16,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub cluster_dns: Vec<String>,
    pub cluster_domain: String,
    pub max_pods: u32,
    pub cgroup_driver: String,
    pub status_every: Duration,
    pub runtime_endpoint: Option<String>,
}

impl Default for KubeletConfig {
    fn default() -> Self {
        Self {
            address: "0.0.0.0".into(),
            port: 10250,
            healthz_bind_address: "127.0.0.1".into(),
            healthz_port: 10248,
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
            cluster_dns: vec![],
            cluster_domain: String::new(),
            max_pods: 110,
            cgroup_driver: "cgroupfs".into(),
            status_every: Duration::from_secs(10),
            runtime_endpoint: None,
        }
    }
}

/// Errors in the kubelet config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to load kubelet config file, path: {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
}

/// Parses a Go duration like `10s`, `1m30s`, `500ms`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    if s.is_empty() {
        return None;
    }
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        let v: f64 = num.parse().ok()?;
        num.clear();
        let secs = match unit.as_str() {
            "h" => v * 3600.0,
            "m" => v * 60.0,
            "s" => v,
            "ms" => v / 1000.0,
            "us" | "µs" => v / 1e6,
            "ns" => v / 1e9,
            _ => return None,
        };
        total += Duration::from_secs_f64(secs);
    }
    if !num.is_empty() {
        return None;
    }
    Some(total)
}

/// Reads a KubeletConfiguration file; file paths in it are relative to it.
pub fn load_config(path: &Path) -> Result<KubeletConfig, ConfigError> {
    let doc = crate::yaml::read_file(path)?;
    let bad = |reason: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind != "KubeletConfiguration" || api != "kubelet.config.k8s.io/v1beta1" {
        return Err(bad(format!(
            "no kind \"{kind}\" is registered for version \"{api}\" (want KubeletConfiguration, kubelet.config.k8s.io/v1beta1)"
        )));
    }
    let mut c = KubeletConfig::default();
    let s = |p: &str| doc.pointer(p).and_then(Value::as_str).map(str::to_string);
    let port = |p: &str, d: u16| -> Result<u16, ConfigError> {
        match doc.pointer(p) {
            None => Ok(d),
            Some(v) => v
                .as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| bad(format!("{}: invalid port {v}", &p[1..]))),
        }
    };
    if let Some(a) = s("/address") {
        c.address = a;
    }
    c.port = port("/port", 10250)?;
    if let Some(a) = s("/healthzBindAddress") {
        c.healthz_bind_address = a;
    }
    c.healthz_port = port("/healthzPort", 10248)?;
    let file = |field: &str, p: &str| -> Result<Option<PathBuf>, ConfigError> {
        match s(p) {
            None => Ok(None),
            Some(f) => {
                let full = relative_to(path, &f);
                std::fs::File::open(&full)
                    .map_err(|e| bad(format!("{field}: cannot read {}: {e}", full.display())))?;
                Ok(Some(full))
            }
        }
    };
    c.tls_cert_file = file("tlsCertFile", "/tlsCertFile")?;
    c.tls_private_key_file = file("tlsPrivateKeyFile", "/tlsPrivateKeyFile")?;
    c.client_ca_file = file(
        "authentication.x509.clientCAFile",
        "/authentication/x509/clientCAFile",
    )?;
    c.cluster_dns = doc
        .get("clusterDNS")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for ip in &c.cluster_dns {
        if ip.parse::<std::net::IpAddr>().is_err() {
            return Err(bad(format!("clusterDNS: invalid IP {ip:?}")));
        }
    }
    c.cluster_domain = s("/clusterDomain").unwrap_or_default();
    if let Some(m) = doc.get("maxPods") {
        c.max_pods = m
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(format!("maxPods: invalid value {m}")))?;
    }
    if let Some(d) = s("/cgroupDriver") {
        if d != "systemd" && d != "cgroupfs" {
            return Err(bad(format!(
                "cgroupDriver: invalid value {d:?}: must be systemd or cgroupfs"
            )));
        }
        c.cgroup_driver = d;
    }
    if let Some(f) = s("/nodeStatusUpdateFrequency") {
        c.status_every = parse_duration(&f)
            .ok_or_else(|| bad(format!("nodeStatusUpdateFrequency: invalid duration {f:?}")))?;
    }
    c.runtime_endpoint = s("/containerRuntimeEndpoint");
    Ok(c)
}

/// The socket path of a `unix://` endpoint.
pub fn runtime_socket(endpoint: &str) -> Result<PathBuf, StartupError> {
    endpoint
        .strip_prefix("unix://")
        .filter(|p| p.starts_with('/'))
        .map(PathBuf::from)
        .ok_or_else(|| StartupError::BadValue {
            flag: "container-runtime-endpoint".into(),
            value: endpoint.into(),
            reason: "must be unix:///absolute/path".into(),
        })
}

/// Probes the container runtime socket; Err carries why it is down.
pub async fn runtime_up(sock: &Path) -> Result<(), String> {
    match tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::UnixStream::connect(sock),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(format!("dial unix {}: {e}", sock.display())),
        Err(_) => Err(format!("dial unix {}: timeout", sock.display())),
    }
}

fn read_trim(p: &str) -> String {
    std::fs::read_to_string(p)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn os_image() -> String {
    read_trim("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

fn memory_ki() -> u64 {
    read_trim("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Everything the node object is built from.
pub struct NodeFacts {
    pub name: String,
    pub ip: String,
    pub max_pods: u32,
    pub port: u16,
    pub labels: Vec<(String, String)>,
    pub taints: Vec<Value>,
}

/// Node conditions for a runtime state.
pub fn conditions(runtime: &Result<(), String>, now: &str, previous: Option<&Value>) -> Value {
    let prev_transition = |t: &str, status: &str| -> String {
        previous
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == t))
            .filter(|c| c["status"] == status)
            .and_then(|c| c["lastTransitionTime"].as_str())
            .unwrap_or(now)
            .to_string()
    };
    let cond = |t: &str, status: &str, reason: &str, msg: &str| {
        json!({"type": t, "status": status, "lastHeartbeatTime": now,
               "lastTransitionTime": prev_transition(t, status), "reason": reason, "message": msg})
    };
    let ready = match runtime {
        Ok(()) => cond(
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
        ),
        Err(e) => cond(
            "Ready",
            "False",
            "KubeletNotReady",
            &format!("container runtime is down: {e}"),
        ),
    };
    json!([
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        ready,
    ])
}

/// The Node object this kubelet registers.
pub fn node_object(f: &NodeFacts, runtime: &Result<(), String>, now: &str) -> Value {
    let mut labels = serde_json::Map::new();
    for (k, v) in [
        ("beta.kubernetes.io/arch", "amd64"),
        ("beta.kubernetes.io/os", "linux"),
        ("kubernetes.io/arch", "amd64"),
        ("kubernetes.io/hostname", f.name.as_str()),
        ("kubernetes.io/os", "linux"),
    ] {
        labels.insert(k.into(), json!(v));
    }
    for (k, v) in &f.labels {
        labels.insert(k.clone(), json!(v));
    }
    let version = crate::version::current();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let capacity = json!({"cpu": cpus.to_string(), "memory": format!("{}Ki", memory_ki()),
                          "pods": f.max_pods.to_string(), "ephemeral-storage": "10Gi"});
    let mut spec = json!({});
    if !f.taints.is_empty() {
        spec["taints"] = json!(f.taints);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": f.name, "labels": labels,
                     "annotations": {"volumes.kubernetes.io/controller-managed-attach-detach": "true",
                                     "node.alpha.kubernetes.io/ttl": "0"}},
        "spec": spec,
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [{"type": "InternalIP", "address": f.ip}, {"type": "Hostname", "address": f.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": f.port}},
            "nodeInfo": {
                "kubeletVersion": version, "kubeProxyVersion": version,
                "containerRuntimeVersion": "containerd://unknown",
                "operatingSystem": "linux", "architecture": "amd64",
                "osImage": os_image(), "kernelVersion": read_trim("/proc/sys/kernel/osrelease"),
                "machineID": read_trim("/etc/machine-id"), "systemUUID": "", "bootID": read_trim("/proc/sys/kernel/random/boot_id"),
            },
            "conditions": conditions(runtime, now, None),
        }
    })
}

/// Parses `--node-labels=a=b,c=d`.
pub fn parse_labels(s: &str) -> Result<Vec<(String, String)>, StartupError> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .ok_or_else(|| StartupError::BadValue {
                    flag: "node-labels".into(),
                    value: s.into(),
                    reason: "want key=value".into(),
                })
        })
        .collect()
}

/// Parses `--register-with-taints=key=value:Effect,...`.
pub fn parse_taints(s: &str) -> Result<Vec<Value>, StartupError> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (kv, effect) = p.rsplit_once(':').ok_or_else(|| StartupError::BadValue {
                flag: "register-with-taints".into(),
                value: s.into(),
                reason: "want key[=value]:Effect".into(),
            })?;
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let mut t = json!({"key": k, "effect": effect});
            if !v.is_empty() {
                t["value"] = json!(v);
            }
            Ok(t)
        })
        .collect()
}

fn hostname() -> String {
    read_trim("/proc/sys/kernel/hostname").to_lowercase()
}

/// The node IP when --node-ip is not given, found like the real kubelet:
/// the node name's address (e.g. from /etc/hosts), else the address of the
/// interface holding the default route.
fn default_ip(name: &str) -> String {
    use std::net::ToSocketAddrs;
    if let Ok(addrs) = (name, 0u16).to_socket_addrs() {
        if let Some(a) = addrs
            .map(|a| a.ip())
            .find(|ip| !ip.is_loopback() && ip.is_ipv4())
        {
            return a.to_string();
        }
    }
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|_| "127.0.0.1".into())
}

async fn register(client: &KubeClient, facts: &NodeFacts, sock: &Path) -> Result<(), KubeError> {
    let now = crate::apiserver::rest::now();
    let runtime = runtime_up(sock).await;
    let node = node_object(facts, &runtime, &now);
    match client.create("/api/v1/nodes", &node).await {
        Ok(_) => {
            crate::info!("Successfully registered node {}", facts.name);
            Ok(())
        }
        Err(e) if e.status() == Some(409) => {
            // Already there (kubelet restart): reconcile labels like the real one.
            let patch = json!({"metadata": {"labels": node["metadata"]["labels"]}});
            client
                .merge_patch(&format!("/api/v1/nodes/{}", facts.name), &patch)
                .await?;
            crate::info!("Node {} was previously registered", facts.name);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

async fn update_status(
    client: &KubeClient,
    facts: &NodeFacts,
    sock: &Path,
) -> Result<bool, KubeError> {
    let path = format!("/api/v1/nodes/{}", facts.name);
    let runtime = runtime_up(sock).await;
    for _ in 0..5 {
        let Some(mut node) = client.get(&path).await? else {
            return Ok(false);
        };
        let now = crate::apiserver::rest::now();
        let fresh = node_object(facts, &runtime, &now);
        let conds = conditions(&runtime, &now, node.pointer("/status/conditions"));
        node["status"] = fresh["status"].clone();
        node["status"]["conditions"] = conds;
        match client.update(&format!("{path}/status"), &node).await {
            Ok(_) => {
                if let Err(e) = &runtime {
                    crate::warn!(
                        "Node {} NotReady: container runtime is down: {e}",
                        facts.name
                    );
                }
                return Ok(true);
            }
            Err(e) if e.status() == Some(409) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

async fn api_port(req: Request<hyper::body::Incoming>, peer: Arc<Peer>) -> Response<Body> {
    if peer.identity.is_none() {
        return respond(401, "text/plain", "Unauthorized");
    }
    match req.uri().path() {
        "/healthz" => respond(200, "text/plain", "ok"),
        "/pods" | "/pods/" => respond(
            200,
            "application/json",
            r#"{"kind":"PodList","apiVersion":"v1","metadata":{},"items":[]}"#,
        ),
        _ => respond(404, "text/plain", "404 page not found"),
    }
}

/// Runs the kubelet until killed.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    let kubeconfig = required_file(&flags, "kubeconfig")?;
    optional_files(
        &flags,
        &[
            "bootstrap-kubeconfig",
            "tls-cert-file",
            "tls-private-key-file",
            "client-ca-file",
        ],
    )?;
    let mut cfg = match flags.get("config") {
        Some(p) => load_config(&readable("config", p)?)?,
        None => KubeletConfig::default(),
    };
    // Flags override the file, as in the real kubelet.
    if let Some(v) = flags.get("max-pods") {
        cfg.max_pods = component::number(&flags, "max-pods", cfg.max_pods)
            .with_context(|| format!("--max-pods={v}"))?;
    }
    if let Some(p) = flags.get("port") {
        cfg.port = p.parse().map_err(|_| StartupError::BadValue {
            flag: "port".into(),
            value: p.into(),
            reason: "not a port".into(),
        })?;
    }
    if let Some(p) = flags.get("healthz-port") {
        cfg.healthz_port = p.parse().map_err(|_| StartupError::BadValue {
            flag: "healthz-port".into(),
            value: p.into(),
            reason: "not a port".into(),
        })?;
    }
    if let Some(f) = flags.get("tls-cert-file") {
        cfg.tls_cert_file = Some(f.into());
    }
    if let Some(f) = flags.get("tls-private-key-file") {
        cfg.tls_private_key_file = Some(f.into());
    }
    let endpoint = flags
        .get("container-runtime-endpoint")
        .map(str::to_string)
        .or(cfg.runtime_endpoint.clone())
        .unwrap_or_else(|| "unix:///run/containerd/containerd.sock".into());
    let sock = runtime_socket(&endpoint)?;
    let root_dir = PathBuf::from(flags.get_or("root-dir", "/var/lib/kubelet"));
    std::fs::create_dir_all(&root_dir)
        .with_context(|| format!("--root-dir: creating {}", root_dir.display()))?;
    let name = flags
        .get("hostname-override")
        .map(str::to_lowercase)
        .unwrap_or_else(hostname);
    let facts = NodeFacts {
        ip: flags
            .get("node-ip")
            .map(str::to_string)
            .unwrap_or_else(|| default_ip(&name)),
        name,
        max_pods: cfg.max_pods,
        port: cfg.port,
        labels: parse_labels(flags.get_or("node-labels", ""))?,
        taints: parse_taints(flags.get_or("register-with-taints", ""))?,
    };
    let client = KubeClient::from_kubeconfig(&kubeconfig).context("--kubeconfig")?;
    crate::info!(
        "kubelet {} starting: node {} ({}), runtime {endpoint}, api {}",
        crate::version::current(),
        facts.name,
        facts.ip,
        client.server
    );

    // API port (HTTPS), with the configured or a self-signed certificate.
    let (chain, key) = match (&cfg.tls_cert_file, &cfg.tls_private_key_file) {
        (Some(c), Some(k)) => (
            tls::load_certs(c).context("tlsCertFile")?,
            tls::load_key(k).context("tlsPrivateKeyFile")?,
        ),
        _ => tls::self_signed(&[facts.name.clone(), facts.ip.clone()])
            .context("self-signed kubelet certificate")?,
    };
    let auth = match &cfg.client_ca_file {
        Some(ca) => {
            let pem =
                std::fs::read(ca).with_context(|| format!("clientCAFile {}", ca.display()))?;
            ClientAuth::Optional(tls::roots_from_pem(&pem, &ca.display().to_string())?)
        }
        None => ClientAuth::None,
    };
    let server_tls = Arc::new(tls::server_config(chain, key, auth)?);
    let api_addr = component::join_host_port(&cfg.address, cfg.port);
    let api_listener = tokio::net::TcpListener::bind(&api_addr)
        .await
        .with_context(|| format!("failed to listen on {api_addr}"))?;
    let handler: Handler = Arc::new(|req, peer| Box::pin(api_port(req, peer)));
    tokio::spawn(serve(api_listener, Some(server_tls), handler));

    if cfg.healthz_port != 0 {
        let addr = component::join_host_port(&cfg.healthz_bind_address, cfg.healthz_port);
        let l = tokio::net::TcpListener::bind(&addr)
            .await
            .with_context(|| format!("failed to listen on healthz {addr}"))?;
        let h: Handler = Arc::new(|req, _| {
            Box::pin(async move {
                match req.uri().path() {
                    "/healthz" => respond(200, "text/plain", "ok"),
                    _ => respond(404, "text/plain", "404 page not found"),
                }
            })
        });
        tokio::spawn(serve(l, None, h));
    }

    // Register, retrying like the real kubelet until the apiserver takes it.
    loop {
        match register(&client, &facts, &sock).await {
            Ok(()) => break,
            Err(e) => {
                crate::error!(
                    "Unable to register node with API server: {e}, node={}",
                    facts.name
                );
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
    loop {
        tokio::time::sleep(cfg.status_every).await;
        match update_status(&client, &facts, &sock).await {
            Ok(true) => crate::vlog!(4, "node status updated"),
            Ok(false) => crate::error!(
                "Error updating node status, will retry: nodes \"{}\" not found",
                facts.name
            ),
            Err(e) => crate::error!("Error updating node status, will retry: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("5x"), None);
    }

    #[test]
    fn config_file_fields_and_errors() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ca.pem"), "x").unwrap();
        let p = d.path().join("config.yaml");
        std::fs::write(
            &p,
            "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\n\
             authentication:\n  x509:\n    clientCAFile: ca.pem\nclusterDNS: [169.254.20.10]\n\
             clusterDomain: cluster.local\nmaxPods: 42\ncgroupDriver: systemd\nhealthzPort: 20248\n\
             nodeStatusUpdateFrequency: 2s\n",
        )
        .unwrap();
        let c = load_config(&p).unwrap();
        assert_eq!(c.max_pods, 42);
        assert_eq!(c.healthz_port, 20248);
        assert_eq!(c.cluster_dns, vec!["169.254.20.10".to_string()]);
        assert_eq!(c.client_ca_file, Some(d.path().join("ca.pem")));
        assert_eq!(c.status_every, Duration::from_secs(2));

        std::fs::write(&p, "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\ntlsCertFile: /nope/kubelet.pem\n").unwrap();
        let e = load_config(&p).unwrap_err().to_string();
        assert!(
            e.contains("tlsCertFile") && e.contains("/nope/kubelet.pem"),
            "{e}"
        );
        std::fs::write(
            &p,
            "kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n",
        )
        .unwrap();
        assert!(load_config(&p).is_err());
        std::fs::write(&p, "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\ncgroupDriver: nope\n").unwrap();
        assert!(load_config(&p)
            .unwrap_err()
            .to_string()
            .contains("cgroupDriver"));
    }

    #[test]
    fn node_object_shape() {
        let f = NodeFacts {
            name: "n1".into(),
            ip: "10.0.0.1".into(),
            max_pods: 42,
            port: 10250,
            labels: parse_labels("zone=a").unwrap(),
            taints: parse_taints("node-role.kubernetes.io/master:NoSchedule").unwrap(),
        };
        let n = node_object(&f, &Ok(()), "2026-01-01T00:00:00Z");
        assert_eq!(n["metadata"]["labels"]["kubernetes.io/hostname"], "n1");
        assert_eq!(n["metadata"]["labels"]["zone"], "a");
        assert_eq!(n["status"]["capacity"]["pods"], "42");
        assert_eq!(
            n["status"]["nodeInfo"]["kubeletVersion"],
            crate::version::current()
        );
        assert_eq!(n["status"]["addresses"][0]["address"], "10.0.0.1");
        assert_eq!(n["spec"]["taints"][0]["effect"], "NoSchedule");
        assert_eq!(n["status"]["conditions"][3]["status"], "True");
        let down = conditions(
            &Err("dial unix /x: refused".into()),
            "t2",
            n.pointer("/status/conditions"),
        );
        assert_eq!(down[3]["status"], "False");
        assert_eq!(down[3]["lastTransitionTime"], "t2");
        assert!(down[3]["message"]
            .as_str()
            .unwrap()
            .contains("container runtime is down"));
        // unchanged conditions keep their transition time
        assert_eq!(down[0]["lastTransitionTime"], "2026-01-01T00:00:00Z");
    }

    #[tokio::test]
    async fn runtime_probe() {
        let d = tempfile::tempdir().unwrap();
        let sock = d.path().join("c.sock");
        assert!(runtime_up(&sock).await.is_err());
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        assert!(runtime_up(&sock).await.is_ok());
        assert!(runtime_socket("unix:///run/containerd/containerd.sock").is_ok());
        assert!(runtime_socket("tcp://x").is_err());
    }
}
