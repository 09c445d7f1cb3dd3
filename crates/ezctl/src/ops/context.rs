//! What every day-2 command carries: the home, how to print, a tokio
//! runtime, the cluster lock, and running a playbook through the engine.
//!
//! Unlike `setup`, these commands run several plans (and kubectl calls)
//! under ONE cluster lock, so plans are run here without taking the lock
//! again and without re-running the certificate step each time.

use std::future::Future;
use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ez_engine::transport::LocalTransport;
use ez_engine::{
    EventConsumer, EventSink, JsonLinesWriter, Lock, Plan, PlanFilter, Playbook, Recap,
    RunLogWriter, RunOptions, Runner, Targets,
};
use ez_inventory::Cluster;
use serde_json::json;

use crate::commands::setup::Output;
use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::progress::{self, Bars, Lines};
use crate::remote::SshConnector;
use crate::view;

pub struct Ops<'a> {
    pub home: &'a Home,
    pub out: &'a Output,
    pub accept_new: bool,
    rt: tokio::runtime::Runtime,
}

impl<'a> Ops<'a> {
    pub fn new(home: &'a Home, out: &'a Output, accept_new: bool) -> Result<Ops<'a>> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
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
        let fleet = crate::ops::fleet::Fleet::new(cluster, self.accept_new);
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

    /// A progress line for people (stderr), or a JSON line for CI (stdout).
    pub fn say(&self, message: impl AsRef<str>) {
        let message = message.as_ref();
        if self.out.json {
            println!("{}", json!({"event": "step", "message": message}));
        } else {
            eprintln!("{} {message}", self.out.style.bold("==>"));
        }
    }

    /// A warning that does not stop the command.
    pub fn warn(&self, message: impl AsRef<str>) {
        let message = message.as_ref();
        if self.out.json {
            println!("{}", json!({"event": "warning", "message": message}));
        } else {
            eprintln!("{} {message}", self.out.style.red("warning:"));
        }
    }

    /// The cluster lock for the whole command.
    pub fn lock(&self, cluster: &Cluster, command: &str) -> Result<Lock> {
        let lock = Lock::acquire(&cluster.dir, command)
            .map_err(|e| Failure::new(ExitCode::Locked, e.to_string()))?;
        if let Some(prev) = lock.taken_over() {
            self.warn(format!(
                "took over a stale lock of pid {} ({} since {})",
                prev.pid, prev.command, prev.since
            ));
        }
        Ok(lock)
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

    /// The engine's view of a cluster, plus `group_names` on every host
    /// (its inventory groups, like Ansible's variable of that name).
    pub fn targets(&self, cluster: &Cluster) -> Targets {
        let mut t = view::targets(self.home, cluster);
        for h in &mut t.hosts {
            let groups: Vec<String> = h.groups.iter().cloned().collect();
            h.vars.insert("group_names".into(), json!(groups));
        }
        t
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
        let path = self.home.dir.join("playbooks").join(format!("{name}.yml"));
        let pb = Playbook::load(&path).map_err(|e| Failure::new(ExitCode::Input, e.to_string()))?;
        let plan = Plan::build(
            &self.home.dir.join("roles"),
            &[pb],
            targets,
            &PlanFilter::default(),
        )
        .map_err(|e| {
            Failure::new(
                ExitCode::Input,
                format!("{e}\nnothing was done on any host"),
            )
        })?;
        if plan.is_empty() {
            return Ok(Recap::default());
        }
        let recap = self.execute(conn, &plan, label)?;
        if self.out.json {
            println!(
                "{}",
                json!({ "event": "recap", "label": label, "recap": recap })
            );
        } else {
            eprint!("{}", progress::recap(&recap, self.out.style));
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
        let logs = conn.dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        std::fs::create_dir_all(conn.dir.join("manifests"))?;
        let log_path = log_file_path(&logs, label);
        let log_file = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let (json, style) = (self.out.json, self.out.style);
        let recap = self.rt.block_on(async {
            let connector = Arc::new(SshConnector::new(conn, self.accept_new));
            let runner = Runner::new(connector.clone())
                .with_options(RunOptions::default())
                .with_controller(Arc::new(LocalTransport::new("controller")));
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let hosts: Vec<String> = plan
                .units()
                .map(|u| u.host.clone())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let consumer = tokio::task::spawn_blocking(move || {
                let mut log = RunLogWriter::new(log_file);
                let mut screen: Box<dyn EventConsumer> = if json {
                    Box::new(JsonLinesWriter::new(std::io::stdout()))
                } else if std::io::stderr().is_terminal() {
                    Box::new(Bars::new(&hosts, style, false))
                } else {
                    Box::new(Lines::new(std::io::stderr(), style, false))
                };
                let mut rx = rx;
                while let Some(e) = rx.blocking_recv() {
                    let _ = log.on_event(&e);
                    let _ = screen.on_event(&e);
                }
            });
            let recap = runner.run(plan, EventSink::new(tx)).await;
            let _ = consumer.await;
            connector.pool().close_all().await;
            recap
        });
        if !json {
            eprintln!("run log: {}", log_path.display());
        }
        Ok(recap)
    }
}

/// `logs/<UTC stamp>-<label>.log`, never overwriting an earlier log.
fn log_file_path(logs: &std::path::Path, label: &str) -> std::path::PathBuf {
    let slug: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = format!("{}-{slug}", utc_stamp());
    let mut path = logs.join(format!("{base}.log"));
    let mut n = 1;
    while path.exists() {
        path = logs.join(format!("{base}-{n}.log"));
        n += 1;
    }
    path
}

/// `YYYYmmdd-HHMMSS`, UTC.
pub fn utc_stamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let a = log_file_path(dir.path(), "add-node c1 10.0.0.9");
        std::fs::write(&a, "").unwrap();
        let b = log_file_path(dir.path(), "add-node c1 10.0.0.9");
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with("-add-node-c1-10.0.0.9.log"), "{name}");
    }

    #[test]
    fn stamp_shape() {
        let s = utc_stamp();
        assert_eq!(s.len(), 15, "{s}");
        assert_eq!(&s[8..9], "-");
        assert!(s.starts_with("20"), "{s}");
    }
}
