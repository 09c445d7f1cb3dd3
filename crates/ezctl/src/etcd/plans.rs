//! Engine runs inside a command that already holds the cluster lock and
//! runs several plans in a row (add-etcd: the new member, then the roll).
//! Same rendering as `setup` (bars, lines or JSON, plus a run log per plan).

use std::io::IsTerminal;
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use ez_engine::transport::LocalTransport;
use ez_engine::{
    EventConsumer, EventSink, JsonLinesWriter, Plan, PlanFilter, Playbook, Recap, RunLogWriter,
    RunOptions, Runner, Targets,
};
use ez_inventory::Cluster;
use serde_json::Value;

use crate::commands::setup::Output;
use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::progress::{self, Bars, Lines};
use crate::remote::SshConnector;
use crate::view;

/// The engine's view of `cluster`, plus variables for this run: `globals`
/// for every host, `host_vars` for one host each (they win over role
/// defaults, e.g. `etcd_cluster_state: existing` for a joining member).
pub fn targets(
    home: &Home,
    cluster: &Cluster,
    globals: &[(&str, Value)],
    host_vars: &[(IpAddr, &str, Value)],
) -> Targets {
    let mut t = view::targets(home, cluster);
    for (k, v) in globals {
        t.globals.insert((*k).to_string(), v.clone());
    }
    for (ip, k, v) in host_vars {
        if let Some(h) = t.hosts.iter_mut().find(|h| h.name == ip.to_string()) {
            h.vars.insert((*k).to_string(), v.clone());
        }
    }
    t
}

/// `playbooks/<name>.yml` of the home.
pub fn playbook(home: &Home, name: &str) -> Result<Playbook> {
    let path = home.dir.join("playbooks").join(format!("{name}.yml"));
    Playbook::load(&path).map_err(|e| Failure::new(ExitCode::Input, e.to_string()).into())
}

/// A plan over `targets`, optionally limited to some hosts; problems are
/// input errors found before any host is touched.
pub fn build(
    home: &Home,
    playbooks: &[Playbook],
    targets: Targets,
    limit: &[IpAddr],
) -> Result<Plan> {
    let filter = PlanFilter {
        limit: (!limit.is_empty()).then(|| {
            limit
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(":")
        }),
        ..PlanFilter::default()
    };
    Plan::build(&home.dir.join("roles"), playbooks, targets, &filter).map_err(|e| {
        Failure::new(
            ExitCode::Input,
            format!("{e}\nnothing was done on any host"),
        )
        .into()
    })
}

/// Run `plan` through `connector`, rendering events and writing
/// `logs/<stamp>-<label>.log`. Returns the recap; the caller decides what a
/// failure means at its stage.
pub async fn run(
    cluster: &Cluster,
    connector: Arc<SshConnector>,
    plan: &Plan,
    out: &Output,
    label: &str,
) -> Result<Recap> {
    let logs = cluster.dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    std::fs::create_dir_all(cluster.dir.join("manifests"))?;
    let log_path = logs.join(format!("{}-{label}.log", super::stamp::now()));
    let log_file = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let runner = Runner::new(connector)
        .with_options(RunOptions::default())
        .with_controller(Arc::new(LocalTransport::new("controller")));
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let hosts: Vec<String> = plan
        .targets()
        .hosts
        .iter()
        .map(|h| h.name.clone())
        .collect();
    let (json, style) = (out.json, out.style);
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
    if !out.json {
        if !recap.ok() {
            eprint!("{}", progress::recap(&recap, out.style));
        }
        eprintln!("run log: {}", log_path.display());
    }
    Ok(recap)
}

/// Every failure of a recap, one per line, for an error message.
pub fn failures(recap: &Recap) -> String {
    let mut lines: Vec<String> = recap.failures.iter().map(|c| format!("  - {c}")).collect();
    if lines.is_empty() {
        lines = recap
            .skipped_units
            .iter()
            .map(|s| format!("  - {}@{} skipped: {}", s.role, s.host, s.cause))
            .collect();
    }
    lines.join("\n")
}
