//! kube-scheduler stand-in: binds pending pods (no spec.nodeName) to a
//! Ready, schedulable node whose taints they tolerate, fewest pods first;
//! holds the leader Lease; serves HTTPS healthz on :10259.

use crate::component::{optional_files, readable, relative_to, StartupError};
use crate::flags::{FlagSet, Flags};
use crate::kubeconfig::KubeClient;
use anyhow::Context;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// kube-scheduler flags.
pub const FLAGS: FlagSet = FlagSet {
    component: "kube-scheduler",
    values: &[
        "config",
        "kubeconfig",
        "authentication-kubeconfig",
        "authorization-kubeconfig",
        "bind-address",
        "secure-port",
        "master",
        "tls-cert-file",
        "tls-private-key-file",
        "client-ca-file",
        "requestheader-client-ca-file",
        "kube-api-qps",
        "kube-api-burst",
        "leader-elect-lease-duration",
        "leader-elect-renew-deadline",
        "leader-elect-retry-period",
        "leader-elect-resource-lock",
        "leader-elect-resource-name",
        "leader-elect-resource-namespace",
        "write-config-to",
        "authorization-always-allow-paths",
    ],
    bools: &["leader-elect", "profiling", "contention-profiling"],
};

fn tolerates(pod: &Value, taint: &Value) -> bool {
    let effect = taint["effect"].as_str().unwrap_or("");
    if effect == "PreferNoSchedule" {
        return true;
    }
    pod.pointer("/spec/tolerations")
        .and_then(Value::as_array)
        .is_some_and(|ts| {
            ts.iter().any(|t| {
                let key_ok = match t["key"].as_str() {
                    None | Some("") => t["operator"] == "Exists",
                    Some(k) => k == taint["key"].as_str().unwrap_or(""),
                };
                let value_ok = t["operator"] == "Exists"
                    || t["value"] == taint["value"]
                    || (t["value"].is_null() && taint["value"].is_null());
                let effect_ok = t["effect"]
                    .as_str()
                    .is_none_or(|e| e.is_empty() || e == effect);
                key_ok && value_ok && effect_ok
            })
        })
}

fn ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

/// Picks a node for `pod`, or None.
pub fn choose<'a>(
    pod: &Value,
    nodes: &'a [Value],
    load: &HashMap<String, usize>,
) -> Option<&'a str> {
    let selector = pod.pointer("/spec/nodeSelector").and_then(Value::as_object);
    nodes
        .iter()
        .filter(|n| ready(n))
        .filter(|n| n.pointer("/spec/unschedulable").and_then(Value::as_bool) != Some(true))
        .filter(|n| {
            n.pointer("/spec/taints")
                .and_then(Value::as_array)
                .is_none_or(|ts| ts.iter().all(|t| tolerates(pod, t)))
        })
        .filter(|n| {
            selector.is_none_or(|sel| {
                sel.iter()
                    .all(|(k, v)| n.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
            })
        })
        .filter_map(|n| n.pointer("/metadata/name").and_then(Value::as_str))
        .min_by_key(|name| (load.get(*name).copied().unwrap_or(0), *name))
}

async fn schedule_once(client: &KubeClient) -> Result<(), crate::kubeconfig::KubeError> {
    let Some(pods) = client.get("/api/v1/pods").await? else {
        return Ok(());
    };
    let Some(nodes) = client.get("/api/v1/nodes").await? else {
        return Ok(());
    };
    let pods = pods["items"].as_array().cloned().unwrap_or_default();
    let nodes = nodes["items"].as_array().cloned().unwrap_or_default();
    let mut load: HashMap<String, usize> = HashMap::new();
    for p in &pods {
        if let Some(n) = p.pointer("/spec/nodeName").and_then(Value::as_str) {
            *load.entry(n.to_string()).or_default() += 1;
        }
    }
    for p in pods.iter().filter(|p| {
        p.pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    }) {
        let sched = p
            .pointer("/spec/schedulerName")
            .and_then(Value::as_str)
            .unwrap_or("default-scheduler");
        if sched != "default-scheduler" {
            continue;
        }
        let (Some(ns), Some(name)) = (
            p.pointer("/metadata/namespace").and_then(Value::as_str),
            p.pointer("/metadata/name").and_then(Value::as_str),
        ) else {
            continue;
        };
        let Some(node) = choose(p, &nodes, &load).map(str::to_string) else {
            crate::vlog!(2, "Unable to schedule pod {ns}/{name}: no nodes available");
            continue;
        };
        let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": ns},
                             "target": {"apiVersion": "v1", "kind": "Node", "name": node}});
        match client
            .create(
                &format!("/api/v1/namespaces/{ns}/pods/{name}/binding"),
                &binding,
            )
            .await
        {
            Ok(_) => {
                crate::info!("Successfully bound pod to node pod=\"{ns}/{name}\" node=\"{node}\"");
                *load.entry(node).or_default() += 1;
            }
            Err(e) => crate::warn!("binding {ns}/{name}: {e}"),
        }
    }
    Ok(())
}

/// Runs kube-scheduler until killed.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    optional_files(
        &flags,
        &[
            "authentication-kubeconfig",
            "authorization-kubeconfig",
            "tls-cert-file",
            "tls-private-key-file",
            "client-ca-file",
            "requestheader-client-ca-file",
        ],
    )?;
    let mut kubeconfig: Option<PathBuf> = None;
    let mut elect = !flags.is_set("leader-elect") || flags.bool("leader-elect");
    if let Some(cfg) = flags.get("config") {
        let path = readable("config", cfg)?;
        let doc = crate::yaml::read_file(&path)?;
        let kind = doc["kind"].as_str().unwrap_or("");
        let api = doc["apiVersion"].as_str().unwrap_or("");
        if kind != "KubeSchedulerConfiguration" || !api.starts_with("kubescheduler.config.k8s.io/")
        {
            anyhow::bail!(
                "--config {}: no kind \"{kind}\" is registered for version \"{api}\"",
                path.display()
            );
        }
        if let Some(k) = doc
            .pointer("/clientConnection/kubeconfig")
            .and_then(Value::as_str)
        {
            let p = relative_to(&path, k);
            readable(
                "config clientConnection.kubeconfig",
                &p.display().to_string(),
            )?;
            kubeconfig = Some(p);
        }
        if let Some(le) = doc
            .pointer("/leaderElection/leaderElect")
            .and_then(Value::as_bool)
        {
            elect = le;
        }
    }
    if kubeconfig.is_none() {
        if let Some(k) = flags.get("kubeconfig") {
            kubeconfig = Some(readable("kubeconfig", k)?);
        }
    }
    let kubeconfig = kubeconfig.ok_or(StartupError::MissingFlag("kubeconfig"))?;
    let client = KubeClient::from_kubeconfig(&kubeconfig).context("kubeconfig")?;
    crate::serving::start_health(&flags, 10259).await?;
    let me = crate::leader::identity();
    let mut leading = false;
    loop {
        let now_leading =
            !elect || crate::leader::try_acquire(&client, "kube-scheduler", &me).await;
        if now_leading && !leading && elect {
            crate::info!("successfully acquired lease kube-system/kube-scheduler");
        }
        leading = now_leading;
        if leading {
            if let Err(e) = schedule_once(&client).await {
                crate::error!("scheduling: {e}");
            }
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, ready: bool, extra: Value) -> Value {
        let mut n = json!({"metadata": {"name": name, "labels": {"kubernetes.io/os": "linux"}},
                           "spec": {}, "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}});
        if let Some(t) = extra.get("taints") {
            n["spec"]["taints"] = t.clone();
        }
        if extra.get("unschedulable").is_some() {
            n["spec"]["unschedulable"] = json!(true);
        }
        n
    }

    #[test]
    fn picks_ready_schedulable_tolerated_least_loaded() {
        let nodes = vec![
            node("a", false, json!({})),
            node("b", true, json!({"unschedulable": true})),
            node(
                "c",
                true,
                json!({"taints": [{"key": "node-role.kubernetes.io/master", "effect": "NoSchedule"}]}),
            ),
            node("d", true, json!({})),
            node("e", true, json!({})),
        ];
        let pod = json!({"spec": {}});
        let mut load = HashMap::new();
        load.insert("d".to_string(), 3);
        assert_eq!(choose(&pod, &nodes, &load), Some("e"));
        let tolerant = json!({"spec": {"tolerations": [{"operator": "Exists"}]}});
        load.insert("e".to_string(), 3);
        assert_eq!(choose(&tolerant, &nodes, &load), Some("c"));
        let picky = json!({"spec": {"nodeSelector": {"kubernetes.io/os": "windows"}}});
        assert_eq!(choose(&picky, &nodes, &load), None);
    }
}
