//! `ezctl setup <cluster> <step>`: certificates on the controller, then the
//! step's plan on the hosts.

use std::io::IsTerminal;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ez_engine::transport::LocalTransport;
use ez_engine::{
    EventConsumer, EventSink, JsonLinesWriter, Lock, Plan, PlanFilter, Recap, RunLogWriter,
    RunOptions, Runner,
};
use ez_inventory::Cluster;

use crate::cli::RunOpts;
use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::progress::{self, Bars, Lines};
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
    std::fs::create_dir_all(cluster.dir.join("manifests"))?;
    let logs = cluster.dir.join("logs");
    std::fs::create_dir_all(&logs)?;
    let stamp = time_stamp();
    let log_path = logs.join(format!("{stamp}.log"));
    let log_file = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let recap = runtime.block_on(async {
        let connector = Arc::new(SshConnector::new(cluster, opts.accept_new));
        let runner = Runner::new(connector.clone())
            .with_options(RunOptions {
                dry_run: opts.dry_run,
                diff: opts.dry_run,
                ..RunOptions::default()
            })
            .with_controller(Arc::new(LocalTransport::new("controller")));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let hosts: Vec<String> = plan
            .targets()
            .hosts
            .iter()
            .map(|h| h.name.clone())
            .collect();
        let json = out.json;
        let style = out.style;
        let dry_run = opts.dry_run;
        let consumer = tokio::task::spawn_blocking(move || {
            let mut log = RunLogWriter::new(log_file);
            let mut screen: Box<dyn EventConsumer> = if json {
                Box::new(JsonLinesWriter::new(std::io::stdout()))
            } else if std::io::stderr().is_terminal() {
                Box::new(Bars::new(&hosts, style, dry_run))
            } else {
                Box::new(Lines::new(std::io::stderr(), style, dry_run))
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
    if !out.json {
        eprintln!("run log: {}", log_path.display());
    }
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

fn time_stamp() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    // UTC, sortable, no external time crate needed for a file name.
    let (days, secs) = (now / 86400, now % 86400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn civil_dates() {
        assert_eq!(super::civil_from_days(0), (1970, 1, 1));
        assert_eq!(super::civil_from_days(20_415), (2025, 11, 23));
    }
}
