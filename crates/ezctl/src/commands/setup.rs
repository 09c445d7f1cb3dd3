//! `ezctl setup <cluster> <step>`: certificates on the controller, then the
//! step's plan on the hosts.

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ez_engine::{Lock, Plan, PlanFilter, Recap, RunOptions};
use ez_inventory::Cluster;

use crate::cli::RunOpts;
use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::progress;
use crate::remote::SshConnector;
use crate::style::Style;
use crate::{steps, view};

pub struct Output {
    pub json: bool,
    pub style: Style,
}

pub fn run(home: &Home, name: &str, step: &str, opts: &RunOpts, out: &Output) -> Result<()> {
    let cluster = home.load(name)?;
    let playbooks = steps::playbooks(&home.dir.join("playbooks"), step)?;
    let plan = build_plan(home, &cluster, &home.dir.join("roles"), &playbooks, opts)?;
    let command = format!("setup {name} {step}");
    let recap = execute(&cluster, &plan, opts, out, &command)?;
    finish(&recap, out)
}

/// `ezctl play <cluster> <playbook> [--roles DIR]`: any playbook, same engine.
pub fn play(
    home: &Home,
    name: &str,
    playbook: &std::path::Path,
    roles: Option<&std::path::Path>,
    opts: &RunOpts,
    out: &Output,
) -> Result<()> {
    let cluster = home.load(name)?;
    let pb = ez_engine::Playbook::load(playbook)
        .map_err(|e| Failure::new(ExitCode::Input, e.to_string()))?;
    let roles_dir = roles
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| home.dir.join("roles"));
    let plan = build_plan(home, &cluster, &roles_dir, &[pb], opts)?;
    let command = format!("play {name} {}", playbook.display());
    let recap = execute(&cluster, &plan, opts, out, &command)?;
    finish(&recap, out)
}

/// Validate everything that can be checked before touching a host.
pub fn build_plan(
    home: &Home,
    cluster: &Cluster,
    roles_dir: &std::path::Path,
    playbooks: &[ez_engine::Playbook],
    opts: &RunOpts,
) -> Result<Plan> {
    let targets = view::targets(home, cluster);
    let limit = if opts.limit.is_empty() {
        None
    } else {
        let mut ips = Vec::new();
        for l in &opts.limit {
            match cluster.host(l) {
                Some(h) => ips.push(h.ip.to_string()),
                None => bail!(Failure::new(
                    ExitCode::Input,
                    format!("--limit {l}: no such host in cluster `{}`", cluster.name)
                )),
            }
        }
        Some(ips.join(":"))
    };
    let filter = PlanFilter {
        tags: opts.tags.iter().cloned().collect(),
        limit,
        ..PlanFilter::default()
    };
    Plan::build(roles_dir, playbooks, targets, &filter).map_err(|e| {
        Failure::new(
            ExitCode::Input,
            format!("{e}\nnothing was done on any host"),
        )
        .into()
    })
}

/// Run a plan: lock the cluster, make sure the certificates exist, run,
/// render events. Returns the recap.
pub fn execute(
    cluster: &Cluster,
    plan: &Plan,
    opts: &RunOpts,
    out: &Output,
    command: &str,
) -> Result<Recap> {
    let lock = Lock::acquire(&cluster.dir, command)
        .map_err(|e| Failure::new(ExitCode::Locked, e.to_string()))?;
    if let Some(prev) = lock.taken_over() {
        eprintln!(
            "warning: took over a stale lock of pid {} ({} since {})",
            prev.pid, prev.command, prev.since
        );
    }
    let ssl = view::ssl_dir(&cluster.dir);
    let report = ez_pki::ensure(&view::pki_spec(cluster), &ssl).context("certificates")?;
    if !out.json && report.changed() {
        eprintln!(
            "certificates in {}: {} created, {} re-issued",
            ssl.display(),
            report.created.len(),
            report.reissued.len()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let recap = runtime.block_on(async {
        let connector = Arc::new(SshConnector::new(cluster, opts.accept_new));
        let options = RunOptions {
            dry_run: opts.dry_run,
            diff: opts.dry_run,
            ..RunOptions::default()
        };
        let recap =
            crate::run::run_plan(cluster, connector.clone(), plan, options, out, "setup").await;
        connector.pool().close_all().await;
        recap
    })?;
    drop(lock);
    Ok(recap)
}

/// Print the recap and turn failures into the exit code.
pub fn finish(recap: &Recap, out: &Output) -> Result<()> {
    if out.json {
        println!(
            "{}",
            serde_json::json!({ "event": "recap", "recap": recap })
        );
    } else {
        eprint!("{}", progress::recap(recap, out.style));
    }
    if recap.ok() {
        Ok(())
    } else {
        bail!(Failure::new(
            ExitCode::Failed,
            format!(
                "{} failure(s); fix the cause and run the same command again",
                recap.failures.len()
            )
        ))
    }
}
