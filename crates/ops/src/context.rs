//! What every day-2 command carries: the home, how to print, a tokio
//! runtime, the cluster lock, and running a playbook through the engine.
//!
//! Unlike `setup`, these commands run several plans (and kubectl calls)
//! under ONE cluster lock, so plans are run here without taking the lock
//! again and without re-running the certificate step each time.

use std::future::Future;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ez_engine::{Lock, Plan, Recap, RunOptions, Targets};
use ez_inventory::Cluster;
use serde_json::json;

use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::remote::{closing, SshConnector};
use crate::report::Report;
use crate::view;

/// The one tokio runtime of a command (every procedure builds it here).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The cluster lock for a whole command (its several plans and other steps
/// must not interleave with another ezctl run): refused with exit code 4
/// when held, with a warning when a stale one was taken over.
pub fn lock(cluster: &Cluster, command: &str, out: &dyn Report) -> Result<Lock> {
    let lock = Lock::acquire(&cluster.dir, command)
        .map_err(|e| Failure::new(ExitCode::Locked, e.to_string()))?;
    if let Some(prev) = lock.taken_over() {
        out.warn(&format!(
            "took over a stale lock of pid {} ({} since {})",
            prev.pid, prev.command, prev.since
        ));
    }
    Ok(lock)
}

pub struct Ops<'a> {
    pub home: &'a Home,
    pub out: &'a dyn Report,
    pub accept_new: bool,
    rt: tokio::runtime::Runtime,
}

impl<'a> Ops<'a> {
    pub fn new(home: &'a Home, out: &'a dyn Report, accept_new: bool) -> Result<Ops<'a>> {
        let rt = runtime()?;
        Ok(Ops {
            home,
            out,
            accept_new,
            rt,
        })
    }

    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }

    /// Of `hosts`, those where `path` exists (a component that was
    /// installed there, e.g. the ex-lb). An unreachable host counts as
    /// having it: the playbook that follows then reports it properly
    /// instead of silently leaving it out.
    pub fn hosts_with(&self, cluster: &Cluster, hosts: &[String], path: &str) -> Vec<String> {
        if hosts.is_empty() {
            return Vec::new();
        }
        let fleet = crate::fleet::Fleet::new(cluster, self.accept_new);
        let quoted = ez_ssh::shell_quote(path);
        let outs = self.block_on(async {
            let o = fleet
                .run(hosts, std::time::Duration::from_secs(30), |_| {
                    format!("test -e {quoted}")
                })
                .await;
            fleet.close().await;
            o
        });
        outs.into_iter()
            .filter(|o| o.ok() || o.result.is_err())
            .map(|o| o.host)
            .collect()
    }

    /// A progress line for people (stderr), or a `step` event.
    pub fn say(&self, message: impl AsRef<str>) {
        self.out.step(message.as_ref());
    }

    /// A warning that does not stop the command.
    pub fn warn(&self, message: impl AsRef<str>) {
        self.out.warn(message.as_ref());
    }

    /// The cluster lock for the whole command.
    pub fn lock(&self, cluster: &Cluster, command: &str) -> Result<Lock> {
        lock(cluster, command, self.out)
    }

    /// Certificates for this (possibly not yet committed) inventory.
    pub fn ensure_pki(&self, cluster: &Cluster) -> Result<ez_pki::Report> {
        let ssl = view::ssl_dir(&cluster.dir);
        let report = ez_pki::ensure(&view::pki_spec(cluster), &ssl).context("certificates")?;
        for item in &report.created {
            self.say(format!("certificate {item}: created"));
        }
        for item in &report.reissued {
            let why = report.reasons.get(item).map(String::as_str).unwrap_or("");
            self.say(format!("certificate {item}: re-issued ({why})"));
        }
        Ok(report)
    }

    /// The engine's view of a cluster (the same for every command).
    pub fn targets(&self, cluster: &Cluster) -> Targets {
        view::targets(self.home, cluster)
    }

    /// Run `playbooks/<name>.yml` on `targets`, reaching hosts as `conn`
    /// describes them (a superset of the targets: a host being removed is
    /// no longer in the new inventory but must still be reached).
    pub fn run_playbook(
        &self,
        conn: &Cluster,
        targets: Targets,
        name: &str,
        label: &str,
    ) -> Result<Recap> {
        let pb = crate::plans::playbook(self.home, name)?;
        let plan = crate::plans::build(self.home, &[pb], targets, &[])?;
        if plan.is_empty() {
            return Ok(Recap::default());
        }
        let recap = self.execute(conn, &plan, label)?;
        if self.out.json() {
            self.out
                .emit(&json!({ "event": "recap", "label": label, "recap": recap }));
        } else {
            self.out.show_recap(&recap);
        }
        if !recap.ok() {
            bail!(Failure::new(
                ExitCode::Failed,
                format!("{label}: {} failure(s)", recap.failures.len())
            ));
        }
        Ok(recap)
    }

    fn execute(&self, conn: &Cluster, plan: &Plan, label: &str) -> Result<Recap> {
        self.rt.block_on(async {
            let connector = Arc::new(SshConnector::new(conn, self.accept_new));
            let run = crate::run::run_plan(
                conn,
                connector.clone(),
                plan,
                RunOptions::default(),
                self.out,
                label,
            );
            closing(connector.pool(), run).await
        })
    }
}
