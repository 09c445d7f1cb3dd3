//! Plans run inside a day-2 command that already holds the cluster lock and
//! runs several plans in a row (add-etcd: the new member, then the roll).
//! Same rendering as `setup` (bars, lines or JSON, plus a run log per plan).

use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Result;
use ez_engine::transport::Connector;
use ez_engine::{Plan, PlanFilter, Playbook, Recap, RunOptions, Targets};
use ez_inventory::Cluster;
use serde_json::Value;

use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::report::Report;
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

/// Run `plan` through `connector` (any engine connector: SSH in a command,
/// `LocalTransport` or a fake in a test), rendering events and writing
/// `logs/<stamp>-<label>.log`. Returns the recap; the caller decides what a
/// failure means at its stage.
pub async fn run(
    cluster: &Cluster,
    connector: Arc<dyn Connector>,
    plan: &Plan,
    out: &dyn Report,
    label: &str,
) -> Result<Recap> {
    let recap =
        crate::run::run_plan(cluster, connector, plan, RunOptions::default(), out, label).await?;
    if out.json() {
        out.emit(&serde_json::json!({ "event": "recap", "label": label, "recap": recap }));
    } else if !recap.ok() {
        out.show_recap(&recap);
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
