//! kubectl on the controller, with the admin kubeconfig, pointed at one
//! chosen apiserver (never one that is being removed or restarted), every
//! call bounded by a timeout.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use ez_inventory::Cluster;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::runtime::Handle;

use crate::home::Home;
use crate::version::KubeVersion;

/// Short calls (get, cordon, delete).
pub const CALL: Duration = Duration::from_secs(30);
/// A probe of one apiserver: it either answers quickly or counts as down.
const PROBE: Duration = Duration::from_secs(4);

pub struct Kube {
    bin: String,
    kubeconfig: PathBuf,
    port: u16,
    server: IpAddr,
    rt: Handle,
}

#[derive(Debug, Clone)]
pub struct KubeOut {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl KubeOut {
    pub fn ok(&self) -> bool {
        self.code == 0
    }
}

/// Why a drain did not finish, and which pods are in the way.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{}", self.render())]
pub struct DrainBlocked {
    pub node: String,
    pub timeout: Duration,
    /// `namespace/name: reason`.
    pub pods: Vec<String>,
    pub detail: String,
}

impl DrainBlocked {
    fn render(&self) -> String {
        let mut s = format!(
            "draining node {} did not finish within {}s",
            self.node,
            self.timeout.as_secs()
        );
        if self.pods.is_empty() {
            s.push_str(&format!(": {}", self.detail.trim()));
        } else {
            s.push_str("; these pods block it:");
            for p in &self.pods {
                s.push_str(&format!("\n    {p}"));
            }
            s.push_str("\n  (move or delete them, relax their PodDisruptionBudget, or give more time with --drain-timeout)");
        }
        s
    }
}

impl Kube {
    /// kubectl from the bundle (`bin/kubectl`) when there is one, else PATH.
    pub fn new(home: &Home, cluster: &Cluster, server: IpAddr, rt: Handle) -> Kube {
        let bundled = home.dir.join("bin").join("kubectl");
        let bin = if bundled.is_file() {
            bundled.display().to_string()
        } else {
            "kubectl".to_string()
        };
        Kube {
            bin,
            kubeconfig: cluster
                .dir
                .join("ssl")
                .join(ez_pki::names::KUBECTL_KUBECONFIG),
            port: cluster.settings.int("SECURE_PORT") as u16,
            server,
            rt,
        }
    }

    /// Talk to the first master not in `avoid` that answers /readyz (or
    /// the first not avoided when none answers: the calls will say why).
    pub fn pick(home: &Home, cluster: &Cluster, avoid: &[IpAddr], rt: Handle) -> Result<Kube> {
        let candidates: Vec<IpAddr> = cluster
            .masters()
            .into_iter()
            .filter(|m| !avoid.contains(m))
            .collect();
        let Some(first) = candidates.first() else {
            bail!("no master left to talk to");
        };
        let mut kube = Kube::new(home, cluster, *first, rt);
        for m in &candidates {
            if kube.readyz(*m) {
                kube.server = *m;
                break;
            }
        }
        Ok(kube)
    }

    fn url(&self, ip: IpAddr) -> String {
        format!("https://{}", ez_inventory::cluster::socket(ip, self.port))
    }

    /// Run kubectl against `server`; an error only when it cannot run or
    /// times out (a non-zero exit is in the result).
    pub fn run_at(
        &self,
        server: IpAddr,
        args: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<KubeOut> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.arg(format!("--kubeconfig={}", self.kubeconfig.display()))
            .arg(format!("--server={}", self.url(server)))
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let what = format!("kubectl {}", args.join(" "));
        self.rt.block_on(async {
            let mut child = cmd
                .spawn()
                .with_context(|| format!("starting {}", self.bin))?;
            if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
                pipe.write_all(input.as_bytes()).await?;
                drop(pipe);
            }
            match tokio::time::timeout(timeout, child.wait_with_output()).await {
                Ok(out) => {
                    let out = out.with_context(|| format!("running {what}"))?;
                    Ok(KubeOut {
                        code: out.status.code().unwrap_or(-1),
                        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
                    })
                }
                Err(_) => Err(anyhow!("{what}: no answer within {}s", timeout.as_secs())),
            }
        })
    }

    pub fn run(&self, args: &[&str], stdin: Option<&str>, timeout: Duration) -> Result<KubeOut> {
        self.run_at(self.server, args, stdin, timeout)
    }

    /// Run and require success; the error carries kubectl's message.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args, None, CALL)?;
        if !out.ok() {
            bail!("kubectl {}: {}", args.join(" "), out.stderr.trim());
        }
        Ok(out.stdout)
    }

    pub fn apply(&self, manifest: &str) -> Result<String> {
        let out = self.run(&["apply", "-f", "-"], Some(manifest), CALL)?;
        if !out.ok() {
            bail!("kubectl apply: {}", out.stderr.trim());
        }
        Ok(out.stdout)
    }

    /// The Node object, `None` when it does not exist.
    pub fn node(&self, name: &str) -> Result<Option<Value>> {
        let out = self.run(&["get", "node", name, "-o", "json"], None, CALL)?;
        if out.ok() {
            return serde_json::from_str(&out.stdout)
                .map(Some)
                .with_context(|| format!("node {name}: kubectl printed no JSON"));
        }
        if out.stderr.contains("NotFound") || out.stderr.contains("not found") {
            return Ok(None);
        }
        bail!("kubectl get node {name}: {}", out.stderr.trim())
    }

    pub fn cordon(&self, node: &str) -> Result<()> {
        self.ok(&["cordon", node]).map(|_| ())
    }

    pub fn uncordon(&self, node: &str) -> Result<()> {
        self.ok(&["uncordon", node]).map(|_| ())
    }

    /// `kubectl drain` (daemonset pods stay, emptyDir data goes, bare pods
    /// are deleted); on failure, which pods are still there and why.
    pub fn drain(&self, node: &str, timeout: Duration) -> Result<()> {
        let t = format!("--timeout={}s", timeout.as_secs().max(1));
        let args = [
            "drain",
            node,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--force",
            t.as_str(),
        ];
        let out = self.run(&args, None, timeout.saturating_add(Duration::from_secs(30)))?;
        if out.ok() {
            return Ok(());
        }
        let pods = self
            .pods_on(node)
            .unwrap_or_default()
            .into_iter()
            .map(|p| {
                let reason = eviction_error(&out.stderr, &p)
                    .unwrap_or_else(|| "still on the node".to_string());
                format!("{p}: {reason}")
            })
            .collect();
        Err(DrainBlocked {
            node: node.to_string(),
            timeout,
            pods,
            detail: out.stderr,
        }
        .into())
    }

    /// Pods on a node that a drain has to move (not DaemonSet or mirror
    /// pods, not finished ones), as `namespace/name`.
    pub fn pods_on(&self, node: &str) -> Result<Vec<String>> {
        let sel = format!("spec.nodeName={node}");
        let out = self.ok(&["get", "pods", "-A", "--field-selector", &sel, "-o", "json"])?;
        let v: Value = serde_json::from_str(&out).context("pod list is not JSON")?;
        Ok(drainable_pods(&v, node))
    }

    pub fn delete_node(&self, node: &str) -> Result<()> {
        self.ok(&["delete", "node", node, "--ignore-not-found"])
            .map(|_| ())
    }

    /// Does this apiserver answer /readyz with ok right now?
    pub fn readyz(&self, master: IpAddr) -> bool {
        let args = ["get", "--raw", "/readyz", "--request-timeout=3s"];
        matches!(self.run_at(master, &args, None, PROBE), Ok(o) if o.ok() && o.stdout.trim() == "ok")
    }

    /// The version this apiserver runs (its /version), `None` when it does
    /// not answer.
    pub fn server_version(&self, master: IpAddr) -> Option<KubeVersion> {
        let args = ["get", "--raw", "/version", "--request-timeout=3s"];
        let out = self.run_at(master, &args, None, PROBE).ok()?;
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        KubeVersion::parse(v["gitVersion"].as_str()?)
    }
}

/// Node readiness and kubelet version from a Node object.
pub fn node_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

pub fn kubelet_version(node: &Value) -> Option<KubeVersion> {
    KubeVersion::parse(node.pointer("/status/nodeInfo/kubeletVersion")?.as_str()?)
}

/// The container runtime's version the kubelet reports
/// (`containerd://2.4.2` gives `v2.4.2`); `None` for another runtime.
pub fn containerd_version(node: &Value) -> Option<KubeVersion> {
    let reported = node
        .pointer("/status/nodeInfo/containerRuntimeVersion")?
        .as_str()?;
    KubeVersion::parse(reported.strip_prefix("containerd://")?)
}

pub fn unschedulable(node: &Value) -> bool {
    node.pointer("/spec/unschedulable")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn drainable_pods(list: &Value, node: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in list["items"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
        if p.pointer("/spec/nodeName").and_then(Value::as_str) != Some(node) {
            continue;
        }
        let daemonset = p["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|o| o.iter().any(|r| r["kind"] == "DaemonSet"));
        let mirror = p
            .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
            .is_some();
        let finished = matches!(
            p.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        if daemonset || mirror || finished {
            continue;
        }
        let ns = p["metadata"]["namespace"].as_str().unwrap_or("default");
        let name = p["metadata"]["name"].as_str().unwrap_or("?");
        out.push(format!("{ns}/{name}"));
    }
    out
}

/// kubectl drain's last real complaint about one pod, e.g. `Cannot evict
/// pod as it would violate the pod's disruption budget.` (its final "global
/// timeout reached" says nothing about why).
fn eviction_error(stderr: &str, pod: &str) -> Option<String> {
    let (ns, name) = pod.split_once('/')?;
    let needle = format!("pods/\"{name}\" -n \"{ns}\"");
    stderr
        .lines()
        .filter_map(|l| l.split_once(needle.as_str()).map(|(_, rest)| rest))
        .filter_map(|rest| rest.split_once(": ").map(|(_, why)| why.trim()))
        .rfind(|why| !why.is_empty() && !why.starts_with("global timeout reached"))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_pods_a_drain_must_move_are_named() {
        let list = json!({"items": [
            {"metadata": {"namespace": "default", "name": "web-0"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}},
            {"metadata": {"namespace": "kube-system", "name": "calico-node-x", "ownerReferences": [{"kind": "DaemonSet", "name": "calico-node"}]}, "spec": {"nodeName": "n1"}},
            {"metadata": {"namespace": "kube-system", "name": "static", "annotations": {"kubernetes.io/config.mirror": "abc"}}, "spec": {"nodeName": "n1"}},
            {"metadata": {"namespace": "default", "name": "job-done"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Succeeded"}},
            {"metadata": {"namespace": "default", "name": "elsewhere"}, "spec": {"nodeName": "n2"}}
        ]});
        assert_eq!(
            drainable_pods(&list, "n1"),
            vec!["default/web-0".to_string()]
        );
    }

    #[test]
    fn the_eviction_error_of_a_pod_is_found() {
        let stderr = "evicting pod default/web-0\nerror when evicting pods/\"web-0\" -n \"default\" (will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.\nThere are pending pods in node \"n1\" when an error occurred: error when evicting pods/\"web-0\" -n \"default\": global timeout reached: 7s\n";
        assert_eq!(
            eviction_error(stderr, "default/web-0").as_deref(),
            Some("Cannot evict pod as it would violate the pod's disruption budget.")
        );
        assert_eq!(eviction_error(stderr, "default/other"), None);
    }

    #[test]
    fn drain_message_lists_the_pods() {
        let e = DrainBlocked {
            node: "n1".into(),
            timeout: Duration::from_secs(20),
            pods: vec!["default/web-0: Cannot evict pod".into()],
            detail: String::new(),
        };
        let s = e.to_string();
        assert!(
            s.contains("within 20s") && s.contains("\n    default/web-0: Cannot evict pod"),
            "{s}"
        );
    }

    #[test]
    fn node_facts() {
        let n = json!({"spec": {"unschedulable": true}, "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.30.11"}}});
        assert!(node_ready(&n) && unschedulable(&n));
        assert_eq!(kubelet_version(&n).unwrap().text, "v1.30.11");
        assert!(!node_ready(&json!({})) && !unschedulable(&json!({})));
    }
}
