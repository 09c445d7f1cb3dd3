//! One-off shell commands on many inventory hosts at once over the shared
//! SSH pool (start/stop, version checks), results per host.

use std::collections::BTreeMap;
use std::time::Duration;

use ez_inventory::Cluster;
use ez_ssh::{fan_out, ExecOpts, HostSpec, Pool};

use crate::remote::host_spec;

pub struct Fleet {
    pool: Pool,
    specs: BTreeMap<String, HostSpec>,
}

/// A command's outcome on one host.
#[derive(Debug, Clone)]
pub struct HostOut {
    pub host: String,
    /// `Err` when the host could not be reached or the command timed out.
    pub result: Result<(i32, String, String), String>,
}

impl HostOut {
    pub fn ok(&self) -> bool {
        matches!(self.result, Ok((0, _, _)))
    }

    pub fn stdout(&self) -> &str {
        match &self.result {
            Ok((_, out, _)) => out,
            Err(_) => "",
        }
    }

    /// The reason it failed, for messages.
    pub fn problem(&self) -> String {
        match &self.result {
            Ok((0, _, _)) => String::new(),
            Ok((code, out, err)) => {
                let text = if err.trim().is_empty() { out } else { err };
                format!("exit {code}: {}", last_lines(text, 6))
            }
            Err(e) => e.clone(),
        }
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.trim().lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n    ")
}

impl Fleet {
    pub fn new(cluster: &Cluster, accept_new: bool) -> Fleet {
        Fleet {
            pool: crate::remote::new_pool(cluster, accept_new),
            specs: cluster
                .hosts
                .iter()
                .map(|h| (h.ip.to_string(), host_spec(cluster, h)))
                .collect(),
        }
    }

    /// Run `cmd(host)` on every host in `hosts` (IPs), in parallel; results
    /// in the order of `hosts`.
    pub async fn run<F>(&self, hosts: &[String], timeout: Duration, cmd: F) -> Vec<HostOut>
    where
        F: Fn(&str) -> String,
    {
        let mut commands = BTreeMap::new();
        let mut specs = Vec::new();
        for h in hosts {
            let spec = self
                .specs
                .get(h)
                .cloned()
                .unwrap_or_else(|| HostSpec::new(h.clone()));
            commands.insert(spec.name.clone(), cmd(h));
            specs.push(spec);
        }
        let commands = std::sync::Arc::new(commands);
        let mut rx = fan_out(&self.pool, specs, crate::remote::forks(), move |session| {
            let commands = commands.clone();
            async move {
                let cmd = commands
                    .get(session.spec().name.as_str())
                    .cloned()
                    .unwrap_or_default();
                session
                    .exec(
                        &cmd,
                        ExecOpts {
                            timeout: Some(timeout),
                            sudo: true,
                            ..ExecOpts::default()
                        },
                    )
                    .await
            }
        });
        let mut by_host = BTreeMap::new();
        while let Some(r) = rx.recv().await {
            let host = r.host.clone();
            let result = r
                .result
                .map(|o| (o.code, o.stdout_str(), o.stderr_str()))
                .map_err(|e| {
                    // The message is shown next to the host already.
                    let text = e.to_string();
                    text.strip_prefix(&format!("{host}: "))
                        .map(str::to_string)
                        .unwrap_or(text)
                });
            by_host.insert(r.host, result);
        }
        hosts
            .iter()
            .map(|h| HostOut {
                host: h.clone(),
                result: by_host
                    .remove(h)
                    .unwrap_or_else(|| Err("no result".to_string())),
            })
            .collect()
    }

    pub async fn close(&self) {
        self.pool.close_all().await;
    }
}
