//! `setup` and `play`: certificates on the controller, then the plan of
//! some playbooks on the hosts, under the cluster lock (a dry run takes no
//! lock and writes nothing on the controller). The CLI renders the recap.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ez_engine::{Plan, PlanFilter, Recap, RunOptions};
use ez_inventory::Cluster;

use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::remote::{closing, SshConnector};
use crate::report::Report;
use crate::{steps, view};

/// How a run goes: the command line's run options.
#[derive(Debug, Clone, Copy)]
pub struct RunFlags<'a> {
    /// Show what would change on each host, with diffs; change nothing.
    pub dry_run: bool,
    /// Only these hosts (IP or node name).
    pub limit: &'a [String],
    /// Only tasks with these tags.
    pub tags: &'a [String],
    /// Pin unknown SSH host keys on first contact.
    pub accept_new: bool,
}

/// `ezctl setup <cluster> <step>`: the step's playbooks, then (after a real
/// run of the ex-lb role) the kubeconfigs follow the VIP.
pub fn step(
    home: &Home,
    name: &str,
    step: &str,
    opts: &RunFlags<'_>,
    out: &dyn Report,
) -> Result<Recap> {
    let cluster = home.load(name)?;
    let playbooks = steps::playbooks(&home.dir.join("playbooks"), step)?;
    let command = format!("setup {name} {step}");
    let roles = home.dir.join("roles");
    let recap = execute(home, &cluster, &roles, &playbooks, opts, out, &command)?;
    if !opts.dry_run && runs_role(&playbooks, "ex-lb") {
        ex_lb_endpoint(&cluster, recap.ok(), out)?;
    }
    Ok(recap)
}

/// `ezctl play <cluster> <playbook> [--roles DIR]`: any playbook, same engine.
pub fn play(
    home: &Home,
    name: &str,
    playbook: &std::path::Path,
    roles: Option<&std::path::Path>,
    opts: &RunFlags<'_>,
    out: &dyn Report,
) -> Result<Recap> {
    let cluster = home.load(name)?;
    let pb = ez_engine::Playbook::load(playbook)
        .map_err(|e| Failure::new(ExitCode::Input, e.to_string()))?;
    let roles_dir = roles
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| home.dir.join("roles"));
    let command = format!("play {name} {}", playbook.display());
    execute(home, &cluster, &roles_dir, &[pb], opts, out, &command)
}

fn runs_role(playbooks: &[ez_engine::Playbook], role: &str) -> bool {
    playbooks
        .iter()
        .any(|pb| pb.plays.iter().any(|p| p.role == role))
}

/// After a real run of the ex-lb role: its last task checks that the VIP
/// answers, so the kubeconfigs we hand out move to the VIP when it passed
/// and back to a master when it did not (see `endpoint`). A checked-out
/// copy (`~/.kube/config` identical to the old admin kubeconfig) follows.
fn ex_lb_endpoint(cluster: &Cluster, ok: bool, out: &dyn Report) -> Result<()> {
    let admin = view::ssl_dir(&cluster.dir).join(ez_pki::names::KUBECTL_KUBECONFIG);
    let old = std::fs::read(&admin).ok();
    if !crate::endpoint::record_ex_lb_run(cluster, ok)? {
        return Ok(());
    }
    ez_pki::ensure(&view::pki_spec(cluster), &view::ssl_dir(&cluster.dir))
        .context("certificates")?;
    let e = crate::endpoint::admin_endpoint(cluster);
    out.step(&format!("kubeconfigs now point at {} ({})", e.url, e.why));
    let checked_out = crate::files::kube_config()
        .ok()
        .filter(|p| old.is_some() && std::fs::read(p).ok() == old);
    if let Some(dest) = checked_out {
        let new = std::fs::read(&admin).with_context(|| format!("reading {}", admin.display()))?;
        crate::files::write_private(&dest, &new)?;
        out.step(&format!("{} (checked out) updated too", dest.display()));
    }
    Ok(())
}

/// Validate everything that can be checked before touching a host. `ssl`
/// is where the roles read certificates from (a scratch copy in a dry run
/// that would make new ones).
pub fn build_plan(
    home: &Home,
    cluster: &Cluster,
    roles_dir: &std::path::Path,
    playbooks: &[ez_engine::Playbook],
    opts: &RunFlags<'_>,
    ssl: &std::path::Path,
) -> Result<Plan> {
    let targets = view::targets_with_ssl(home, cluster, ssl);
    let limit = if opts.limit.is_empty() {
        None
    } else {
        let mut ips = Vec::new();
        for l in opts.limit {
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

/// The certificates a run reads. A real run makes or re-issues them in
/// the cluster's ssl/ (under the lock). A dry run writes nothing there: it
/// says what would change, and when something would, the roles read a
/// scratch copy (0700, removed at the end) where the new ones are made, so
/// their diffs are exact.
pub enum Certificates {
    Real(PathBuf),
    Scratch(tempfile::TempDir),
}

impl Certificates {
    pub fn path(&self) -> PathBuf {
        match self {
            Certificates::Real(p) => p.clone(),
            Certificates::Scratch(t) => t.path().join("ssl"),
        }
    }
}

fn certificates(cluster: &Cluster, dry_run: bool, out: &dyn Report) -> Result<Certificates> {
    let ssl = view::ssl_dir(&cluster.dir);
    let spec = view::pki_spec(cluster);
    if !dry_run {
        let report = ez_pki::ensure(&spec, &ssl).context("certificates")?;
        if report.changed() {
            out.step(&format!(
                "certificates in {}: {} created, {} re-issued",
                ssl.display(),
                report.created.len(),
                report.reissued.len()
            ));
        }
        return Ok(Certificates::Real(ssl));
    }
    let report = ez_pki::plan(&spec, &ssl).context("certificates")?;
    for w in &report.warnings {
        out.warn(&format!("certificates: {w}"));
    }
    if !report.changed() {
        return Ok(Certificates::Real(ssl));
    }
    out.step(&format!(
        "certificates in {}: {} would be created, {} re-issued (the dry run uses new ones made in a scratch copy)",
        ssl.display(),
        report.created.len(),
        report.reissued.len()
    ));
    let scratch = tempfile::Builder::new()
        .prefix("ezctl-dry-run-")
        .tempdir()
        .context("scratch folder for the dry run's certificates")?;
    let copy = scratch.path().join("ssl");
    if ssl.is_dir() {
        copy_dir(&ssl, &copy)?;
    }
    ez_pki::ensure(&spec, &copy).context("certificates (scratch copy)")?;
    Ok(Certificates::Scratch(scratch))
}

/// Regular files of `from` into a new `to` (0700), modes kept.
fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(to)
        .with_context(|| format!("creating {}", to.display()))?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let meta = e.metadata()?;
        if meta.is_file() {
            let dest = to.join(e.file_name());
            std::fs::copy(e.path(), &dest)
                .with_context(|| format!("copying {}", e.path().display()))?;
            std::fs::set_permissions(
                &dest,
                std::fs::Permissions::from_mode(meta.permissions().mode()),
            )?;
        }
    }
    Ok(())
}

/// Run playbooks: lock the cluster, make sure the certificates exist, run,
/// render events. Returns the recap. A dry run takes no lock and writes
/// nothing on the controller (no certificates, no run log).
pub fn execute(
    home: &Home,
    cluster: &Cluster,
    roles_dir: &std::path::Path,
    playbooks: &[ez_engine::Playbook],
    opts: &RunFlags<'_>,
    out: &dyn Report,
    command: &str,
) -> Result<Recap> {
    if opts.dry_run && opts.accept_new {
        bail!(Failure::usage(
            "--dry-run records nothing, not even host keys: pin them with a run without --dry-run (or add them to the cluster's known_hosts)"
        ));
    }
    // Input errors come before anything else, with the real paths.
    build_plan(
        home,
        cluster,
        roles_dir,
        playbooks,
        opts,
        &view::ssl_dir(&cluster.dir),
    )?;
    let lock = if opts.dry_run {
        None
    } else {
        Some(crate::context::lock(cluster, command, out)?)
    };
    let certs = certificates(cluster, opts.dry_run, out)?;
    let plan = build_plan(home, cluster, roles_dir, playbooks, opts, &certs.path())?;
    let runtime = crate::context::runtime()?;
    let recap = runtime.block_on(async {
        let connector = Arc::new(SshConnector::new(cluster, opts.accept_new));
        let options = RunOptions {
            dry_run: opts.dry_run,
            diff: opts.dry_run,
            ..RunOptions::default()
        };
        let run = async {
            let recap =
                crate::run::run_plan(cluster, connector.clone(), &plan, options, out, "setup")
                    .await;
            if out.json() {
                out.emit(&crate::remote::ssh_traffic(connector.pool()));
            }
            recap
        };
        closing(connector.pool(), run).await
    })?;
    drop(certs);
    drop(lock);
    Ok(recap)
}
