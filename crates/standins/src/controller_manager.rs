//! kube-controller-manager stand-in: with --allocate-node-cidrs, gives each
//! Node a spec.podCIDR from --cluster-cidr; holds the leader Lease; serves
//! HTTPS healthz on :10257. No other controllers run.

use crate::component::{optional_files, required_file, StartupError};
use crate::flags::{FlagSet, Flags};
use crate::kubeconfig::KubeClient;
use anyhow::Context;
use ipnet::IpNet;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::time::Duration;

/// kube-controller-manager flags.
pub const FLAGS: FlagSet = FlagSet {
    component: "kube-controller-manager",
    values: &[
        "kubeconfig",
        "authentication-kubeconfig",
        "authorization-kubeconfig",
        "bind-address",
        "secure-port",
        "cluster-cidr",
        "node-cidr-mask-size",
        "node-cidr-mask-size-ipv4",
        "node-cidr-mask-size-ipv6",
        "cluster-signing-cert-file",
        "cluster-signing-key-file",
        "cluster-signing-duration",
        "root-ca-file",
        "service-account-private-key-file",
        "service-cluster-ip-range",
        "cluster-name",
        "controllers",
        "master",
        "tls-cert-file",
        "tls-private-key-file",
        "client-ca-file",
        "requestheader-client-ca-file",
        "kube-api-qps",
        "kube-api-burst",
        "node-monitor-grace-period",
        "node-monitor-period",
        "terminated-pod-gc-threshold",
        "horizontal-pod-autoscaler-sync-period",
        "leader-elect-lease-duration",
        "leader-elect-renew-deadline",
        "leader-elect-retry-period",
        "leader-elect-resource-lock",
        "concurrent-deployment-syncs",
        "concurrent-service-syncs",
        "pod-eviction-timeout",
        "authorization-always-allow-paths",
        "cloud-provider",
    ],
    bools: &[
        "allocate-node-cidrs",
        "leader-elect",
        "use-service-account-credentials",
        "configure-cloud-routes",
        "profiling",
    ],
};

const FILE_FLAGS: &[&str] = &[
    "authentication-kubeconfig",
    "authorization-kubeconfig",
    "cluster-signing-cert-file",
    "cluster-signing-key-file",
    "root-ca-file",
    "service-account-private-key-file",
    "tls-cert-file",
    "tls-private-key-file",
    "client-ca-file",
    "requestheader-client-ca-file",
];

/// Per-node pod CIDRs carved from the cluster CIDR.
#[derive(Debug, Clone)]
pub struct CidrAllocator {
    pub cluster: IpNet,
    pub mask: u8,
}

impl CidrAllocator {
    /// Checks the mask fits the cluster CIDR.
    pub fn new(cluster: &str, mask: u8) -> Result<Self, StartupError> {
        let bad = |reason: String| StartupError::BadValue {
            flag: "cluster-cidr".into(),
            value: cluster.into(),
            reason,
        };
        let net: IpNet = cluster.parse().map_err(|_| bad("not a CIDR".into()))?;
        if mask < net.prefix_len() || mask > net.max_prefix_len() {
            return Err(bad(format!("mask size of cluster CIDR must be less than or equal to --node-cidr-mask-size ({mask})")));
        }
        Ok(Self {
            cluster: net.trunc(),
            mask,
        })
    }

    /// The first subnet not in `used`.
    pub fn next(&self, used: &HashSet<String>) -> Option<IpNet> {
        self.cluster
            .subnets(self.mask)
            .ok()?
            .find(|s| !used.contains(&s.to_string()))
    }
}

async fn allocate_once(
    client: &KubeClient,
    alloc: &CidrAllocator,
) -> Result<(), crate::kubeconfig::KubeError> {
    let Some(list) = client.get("/api/v1/nodes").await? else {
        return Ok(());
    };
    let nodes = list["items"].as_array().cloned().unwrap_or_default();
    let mut used: HashSet<String> = nodes
        .iter()
        .filter_map(|n| {
            n.pointer("/spec/podCIDR")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .collect();
    for n in &nodes {
        if n.pointer("/spec/podCIDR")
            .and_then(Value::as_str)
            .is_some_and(|c| !c.is_empty())
        {
            continue;
        }
        let name = n
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(cidr) = alloc.next(&used) else {
            crate::error!("CIDR allocation failed for node {name}: the cluster CIDR is full");
            continue;
        };
        let patch = json!({"metadata": {"resourceVersion": n["metadata"]["resourceVersion"]},
                           "spec": {"podCIDR": cidr.to_string(), "podCIDRs": [cidr.to_string()]}});
        match client
            .merge_patch(&format!("/api/v1/nodes/{name}"), &patch)
            .await
        {
            Ok(_) => {
                crate::info!("Set node {name} PodCIDR to [{cidr}]");
                used.insert(cidr.to_string());
            }
            Err(e) => crate::warn!("Failed to update node {name} PodCIDR: {e}"),
        }
    }
    Ok(())
}

/// Runs kube-controller-manager until killed.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    let kubeconfig = required_file(&flags, "kubeconfig")?;
    optional_files(&flags, FILE_FLAGS)?;
    let alloc = if flags.bool("allocate-node-cidrs") {
        let cidr = crate::component::required(&flags, "cluster-cidr")?;
        let mask_flag = if flags.is_set("node-cidr-mask-size-ipv4") {
            "node-cidr-mask-size-ipv4"
        } else {
            "node-cidr-mask-size"
        };
        let mask = crate::component::number(&flags, mask_flag, 24u8)?;
        Some(CidrAllocator::new(cidr, mask)?)
    } else {
        None
    };
    let client = KubeClient::from_kubeconfig(&kubeconfig).context("--kubeconfig")?;
    crate::serving::start_health(&flags, 10257).await?;
    // --leader-elect defaults to true, as in the real binary.
    let elect = !flags.is_set("leader-elect") || flags.bool("leader-elect");
    let me = crate::leader::identity();
    let mut leading = false;
    loop {
        if elect {
            let now_leading =
                crate::leader::try_acquire(&client, "kube-controller-manager", &me).await;
            if now_leading && !leading {
                crate::info!("successfully acquired lease kube-system/kube-controller-manager");
            }
            leading = now_leading;
        } else {
            leading = true;
        }
        if leading {
            if let Some(a) = &alloc {
                if let Err(e) = allocate_once(&client, a).await {
                    crate::error!("node ipam: {e}");
                }
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocates_lowest_free_subnet() {
        let a = CidrAllocator::new("172.20.0.0/16", 24).unwrap();
        let mut used = HashSet::new();
        assert_eq!(a.next(&used).unwrap().to_string(), "172.20.0.0/24");
        used.insert("172.20.0.0/24".to_string());
        assert_eq!(a.next(&used).unwrap().to_string(), "172.20.1.0/24");
        assert!(CidrAllocator::new("172.20.0.0/16", 8).is_err());
        assert!(CidrAllocator::new("nope", 24).is_err());
        let tiny = CidrAllocator::new("10.0.0.0/24", 24).unwrap();
        used.insert("10.0.0.0/24".to_string());
        assert!(tiny.next(&used).is_none());
    }
}
