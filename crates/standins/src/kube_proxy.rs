//! kube-proxy stand-in: reads its KubeProxyConfiguration, lists Services
//! and Endpoints through its kubeconfig, answers healthz on 10256 only
//! after a successful sync. It programs no iptables/ipvs rules.

use crate::component::{readable, relative_to, required_file, StartupError};
use crate::flags::{FlagSet, Flags};
use crate::http::server::{respond, serve, Handler};
use crate::kubeconfig::KubeClient;
use anyhow::Context;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// kube-proxy flags.
pub const FLAGS: FlagSet = FlagSet {
    component: "kube-proxy",
    values: &[
        "config",
        "hostname-override",
        "kubeconfig",
        "master",
        "bind-address",
        "cluster-cidr",
        "proxy-mode",
        "healthz-bind-address",
        "metrics-bind-address",
        "write-config-to",
        "ipvs-scheduler",
        "ipvs-sync-period",
        "ipvs-min-sync-period",
        "iptables-sync-period",
        "iptables-min-sync-period",
        "nodeport-addresses",
        "conntrack-max-per-core",
        "conntrack-min",
        "oom-score-adj",
        "detect-local-mode",
        "show-hidden-metrics-for-version",
    ],
    bools: &[
        "masquerade-all",
        "cleanup",
        "profiling",
        "ipvs-strict-arp",
        "bind-address-hard-fail",
    ],
};

/// The KubeProxyConfiguration fields the stand-in uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxyConfig {
    pub kubeconfig: Option<PathBuf>,
    pub cluster_cidr: String,
    pub mode: String,
    pub healthz: String,
    pub metrics: String,
    pub hostname_override: Option<String>,
}

/// Errors in the config file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to load kube-proxy config file {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
}

/// Reads a KubeProxyConfiguration.
pub fn load_config(path: &Path) -> Result<ProxyConfig, ConfigError> {
    let doc = crate::yaml::read_file(path)?;
    let bad = |reason: String| ConfigError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if kind != "KubeProxyConfiguration" || api != "kubeproxy.config.k8s.io/v1alpha1" {
        return Err(bad(format!(
            "no kind \"{kind}\" is registered for version \"{api}\""
        )));
    }
    let s = |p: &str| {
        doc.pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
    };
    let mode = s("/mode").unwrap_or_else(|| "iptables".into());
    if !matches!(
        mode.as_str(),
        "iptables" | "ipvs" | "nftables" | "kernelspace"
    ) {
        return Err(bad(format!("mode: Unsupported value: {mode:?}")));
    }
    let cluster_cidr = s("/clusterCIDR").unwrap_or_default();
    for c in cluster_cidr.split(',').filter(|c| !c.is_empty()) {
        c.parse::<ipnet::IpNet>()
            .map_err(|_| bad(format!("clusterCIDR: Invalid value: {c:?}")))?;
    }
    let kubeconfig = s("/clientConnection/kubeconfig").map(|k| relative_to(path, &k));
    if let Some(k) = &kubeconfig {
        std::fs::File::open(k).map_err(|e| {
            bad(format!(
                "clientConnection.kubeconfig: cannot read {}: {e}",
                k.display()
            ))
        })?;
    }
    Ok(ProxyConfig {
        kubeconfig,
        cluster_cidr,
        mode,
        healthz: s("/healthzBindAddress").unwrap_or_else(|| "0.0.0.0:10256".into()),
        metrics: s("/metricsBindAddress").unwrap_or_else(|| "127.0.0.1:10249".into()),
        hostname_override: s("/hostnameOverride"),
    })
}

/// An address that may lack a port (`0.0.0.0` means port `default`).
fn with_port(addr: &str, default: u16) -> String {
    if addr.parse::<std::net::SocketAddr>().is_ok() {
        addr.to_string()
    } else {
        crate::component::join_host_port(addr, default)
    }
}

async fn sync(client: &KubeClient) -> Result<(usize, usize), crate::kubeconfig::KubeError> {
    let count = |v: Option<Value>| {
        v.and_then(|l| l["items"].as_array().map(Vec::len))
            .unwrap_or(0)
    };
    let svcs = client.get("/api/v1/services").await?;
    let eps = client.get("/api/v1/endpoints").await?;
    Ok((count(svcs), count(eps)))
}

/// Runs kube-proxy until killed.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    let mut cfg = match flags.get("config") {
        Some(p) => load_config(&readable("config", p)?)?,
        None => ProxyConfig {
            kubeconfig: None,
            cluster_cidr: flags.get_or("cluster-cidr", "").into(),
            mode: flags.get_or("proxy-mode", "iptables").into(),
            healthz: flags.get_or("healthz-bind-address", "0.0.0.0:10256").into(),
            metrics: flags
                .get_or("metrics-bind-address", "127.0.0.1:10249")
                .into(),
            hostname_override: None,
        },
    };
    if flags.is_set("kubeconfig") {
        cfg.kubeconfig = Some(required_file(&flags, "kubeconfig")?);
    }
    let kubeconfig = cfg
        .kubeconfig
        .clone()
        .ok_or(StartupError::MissingFlag("kubeconfig"))?;
    let client = KubeClient::from_kubeconfig(&kubeconfig).context("kubeconfig")?;
    let node = flags
        .get("hostname-override")
        .map(str::to_string)
        .or(cfg.hostname_override.clone())
        .unwrap_or_default();
    crate::info!(
        "Using {} Proxier, node {node:?}, cluster CIDR {:?}",
        cfg.mode,
        cfg.cluster_cidr
    );

    // Unix seconds of the last good sync; 0 = never.
    let last_sync = Arc::new(AtomicI64::new(0));
    let healthz = with_port(&cfg.healthz, 10256);
    let l = tokio::net::TcpListener::bind(&healthz)
        .await
        .with_context(|| format!("healthz: failed to listen on {healthz}"))?;
    let ls = last_sync.clone();
    let h: Handler = Arc::new(move |req, _| {
        let ls = ls.clone();
        Box::pin(async move {
            if req.uri().path() != "/healthz" && req.uri().path() != "/livez" {
                return respond(404, "text/plain", "404 page not found");
            }
            let last = ls.load(Ordering::Relaxed);
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let body = format!(
                r#"{{"lastUpdated": "{last}","currentTime": "{now}","nodeEligible": true}}"#
            );
            // Healthy only after a sync, and while syncs keep succeeding.
            let healthy = last > 0 && now - last < 60;
            respond(if healthy { 200 } else { 503 }, "application/json", body)
        })
    });
    tokio::spawn(serve(l, None, h));
    let metrics = with_port(&cfg.metrics, 10249);
    if let Ok(l) = tokio::net::TcpListener::bind(&metrics).await {
        let ls = last_sync.clone();
        let h: Handler = Arc::new(move |_, _| {
            let ls = ls.clone();
            Box::pin(async move {
                respond(
                    200,
                    "text/plain",
                    format!(
                        "kubeproxy_sync_proxy_rules_last_timestamp_seconds {}\n",
                        ls.load(Ordering::Relaxed)
                    ),
                )
            })
        });
        tokio::spawn(serve(l, None, h));
    }
    loop {
        match sync(&client).await {
            Ok((s, e)) => {
                last_sync.store(
                    time::OffsetDateTime::now_utc().unix_timestamp(),
                    Ordering::Relaxed,
                );
                crate::vlog!(2, "synced {s} services, {e} endpoints");
            }
            Err(e) => crate::error!("Failed to list *v1.Service: {e}"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_file() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("kc"), "x").unwrap();
        let p = d.path().join("kube-proxy-config.yaml");
        std::fs::write(
            &p,
            "kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\n\
             clientConnection:\n  kubeconfig: kc\nclusterCIDR: 172.20.0.0/16\nmode: ipvs\n\
             healthzBindAddress: 127.0.0.1:20256\n",
        )
        .unwrap();
        let c = load_config(&p).unwrap();
        assert_eq!(c.mode, "ipvs");
        assert_eq!(c.kubeconfig, Some(d.path().join("kc")));
        assert_eq!(c.healthz, "127.0.0.1:20256");
        std::fs::write(&p, "kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nmode: userspace\n").unwrap();
        assert!(load_config(&p).unwrap_err().to_string().contains("mode"));
        std::fs::write(&p, "kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nclientConnection: {kubeconfig: /no/kc}\n").unwrap();
        assert!(load_config(&p).unwrap_err().to_string().contains("/no/kc"));
        assert_eq!(with_port("0.0.0.0", 10256), "0.0.0.0:10256");
    }
}
