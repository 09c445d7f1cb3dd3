//! `ezctl restore <cluster> [--snapshot FILE] [--force]`: every etcd member
//! from one snapshot (default `backup/snapshot.db`).
//!
//! 1. a safety snapshot of the current data is saved as
//!    `backup/before-restore_<stamp>.db` (refused without one unless
//!    `--force`); it never replaces `snapshot.db`, so restoring the default
//!    file restores what the operator chose;
//! 2. playbook 21-etcd-restore: the snapshot is checked on every member (a
//!    trial restore) before anything stops, then the Kubernetes services
//!    stop, every member restores into a new directory and swaps it in
//!    (the old data stays as `<data>.before-restore-<stamp>`), all start,
//!    each is waited for, and the services start again;
//! 3. the member list is checked against the inventory.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ez_inventory::Group;
use serde_json::json;

use crate::backup::{human_size, save_snapshot};
use crate::context::runtime;
use crate::etcd::members::{list_errors, EtcdHosts};
use crate::etcd::{self, snapshots};
use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::plans;
use crate::remote::{closing, SshConnector};
use crate::report::Report;
use crate::stamp;

/// Where members keep the staged snapshot during a restore (root only;
/// removed once etcd is back).
pub const REMOTE_RESTORE_DIR: &str = "/var/lib/ezctl/etcd-restore";

pub struct RestoreArgs<'a> {
    pub cluster: &'a str,
    pub snapshot: Option<&'a Path>,
    pub force: bool,
}

/// What a restore did, for the caller to render.
pub struct Restored {
    pub snapshot: PathBuf,
    pub sha256: String,
    /// The members' etcd names, as the inventory has them.
    pub members: Vec<String>,
    /// The member list with health (`View::describe`).
    pub described: String,
    pub safety: Option<PathBuf>,
    /// Where each member keeps its previous data.
    pub old_data: String,
    pub took: Duration,
}

pub fn run(home: &Home, args: &RestoreArgs<'_>, out: &dyn Report) -> Result<Restored> {
    let name = args.cluster;
    let cluster = home.load(name)?;
    let file = resolve_snapshot(&cluster.dir, args.snapshot)?;
    let sha256 = snapshots::sha256_file(&file)
        .map_err(|e| Failure::new(ExitCode::Input, format!("reading {}: {e}", file.display())))?;
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    let started = Instant::now();
    let _lock = crate::context::lock(&cluster, &format!("restore {name}"), out)?;
    let stamp = stamp::now();
    let data_dir = cluster.settings.text("ETCD_DATA_DIR").to_string();
    etcd::say(
        out,
        format!(
            "restoring {} ({}, sha256 {sha256}) on every etcd member",
            file.display(),
            human_size(size)
        ),
    );
    let members: Vec<IpAddr> = cluster.group(Group::Etcd).map(|h| h.ip).collect();
    let backup = snapshots::backup_dir(&cluster.dir);
    snapshots::ensure_dir(&backup).with_context(|| format!("creating {}", backup.display()))?;

    runtime()?.block_on(async {
        let connector = Arc::new(SshConnector::new(&cluster, false));
        let hosts = EtcdHosts::new(&cluster, connector.clone());
        // Closed on every way out, the early ones included.
        let work = async {
            // 1. Safety snapshot.
            let safety_name = snapshots::safety_name(&stamp);
            let safety = match save_snapshot(&cluster, &hosts, &safety_name, &stamp, out).await {
                Ok(saved) => {
                    etcd::say(
                        out,
                        format!(
                            "safety snapshot of the current data: {} (revision {}, {} keys)",
                            saved.path.display(),
                            saved.snapshot.status.revision,
                            saved.snapshot.status.total_keys
                        ),
                    );
                    Some(saved.path)
                }
                Err(errors) if args.force => {
                    etcd::warn(
                        out,
                        format!(
                            "no safety snapshot could be taken; going on because of --force:\n{}",
                            list_errors(&errors)
                        ),
                    );
                    None
                }
                Err(errors) => {
                    bail!(Failure::new(
                        ExitCode::Failed,
                        format!(
                            "no safety snapshot of the current data could be taken, so nothing was stopped or changed:\n{}\n\
                             If etcd is down and the current data is not worth keeping, re-run with --force \
                             (each member's data directory is still moved aside, not deleted).",
                            list_errors(&errors)
                        )
                    ));
                }
            };

            // 2. The restore plan.
            let targets = plans::targets(
                home,
                &cluster,
                &[
                    ("restore_snapshot", json!(file.display().to_string())),
                    ("restore_stamp", json!(stamp)),
                    ("restore_dir", json!(REMOTE_RESTORE_DIR)),
                ],
                &[],
            );
            let plan = plans::build(home, &[plans::playbook(home, "21-etcd-restore")?], targets, &[])?;
            let recap = plans::run(&cluster, connector.clone(), &plan, out, "restore").await?;
            if !recap.ok() {
                let safety_hint = safety
                    .as_ref()
                    .map(|p| format!("the data as it was before is in {}; ", p.display()))
                    .unwrap_or_default();
                bail!(Failure::new(
                    ExitCode::Failed,
                    format!(
                        "restore failed:\n{}\n\
                         Members that got as far as the swap keep their previous data in {data_dir}.before-restore-{stamp}; \
                         {safety_hint}Kubernetes services stay stopped until a restore completes.\n\
                         Fix the cause and run `ezctl restore {name} --snapshot {}` again (add --force if etcd is down, \
                         since no safety snapshot can be taken then).",
                        plans::failures(&recap),
                        file.display()
                    )
                ));
            }

            // 3. The restored cluster is the inventory's.
            let view = hosts.observe(&members).await;
            let view = view.map_err(|errors| {
                Failure::new(
                    ExitCode::Failed,
                    format!(
                        "restored, but no member answers `member list` now:\n{}",
                        list_errors(&errors)
                    ),
                )
            })?;
            let expected: Vec<String> = cluster
                .group(Group::Etcd)
                .map(|h| h.etcd_name())
                .collect();
            let mut names: Vec<String> = view.members.iter().map(|m| m.name.clone()).collect();
            names.sort();
            let mut want = expected.clone();
            want.sort();
            if names != want || view.healthy_count() != expected.len() {
                bail!(Failure::new(
                    ExitCode::Failed,
                    format!(
                        "restored, but the cluster is not what the inventory says: {} (expected {} healthy)",
                        view.describe(),
                        expected.join(", ")
                    )
                ));
            }
            Ok(Restored {
                snapshot: file,
                sha256,
                members: expected,
                described: view.describe(),
                safety,
                old_data: format!("{data_dir}.before-restore-{stamp}"),
                took: started.elapsed(),
            })
        };
        closing(connector.pool(), work).await
    })
}

/// `--snapshot FILE` (relative to the working directory) or the cluster's
/// `backup/snapshot.db`; it must be a readable file.
fn resolve_snapshot(cluster_dir: &Path, given: Option<&Path>) -> Result<PathBuf> {
    let file = match given {
        Some(p) => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
        None => snapshots::backup_dir(cluster_dir).join(snapshots::LATEST),
    };
    if !file.is_file() {
        let hint = if given.is_some() {
            "check the path".to_string()
        } else {
            format!(
                "take one with `ezctl backup {}` or pass --snapshot FILE",
                cluster_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            )
        };
        bail!(Failure::new(
            ExitCode::Input,
            format!(
                "snapshot {} is not a file ({hint}); nothing was done",
                file.display()
            )
        ));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_snapshot_is_the_latest_backup() {
        let tmp = tempfile::tempdir().unwrap();
        let cdir = tmp.path().join("c1");
        let err = resolve_snapshot(&cdir, None).unwrap_err();
        let f = err.downcast_ref::<Failure>().unwrap();
        assert_eq!(f.code, ExitCode::Input);
        assert!(f.message.contains("ezctl backup c1"), "{}", f.message);
        std::fs::create_dir_all(cdir.join("backup")).unwrap();
        std::fs::write(cdir.join("backup/snapshot.db"), b"x").unwrap();
        assert_eq!(
            resolve_snapshot(&cdir, None).unwrap(),
            cdir.join("backup/snapshot.db")
        );
        let other = tmp.path().join("other.db");
        let err = resolve_snapshot(&cdir, Some(&other)).unwrap_err();
        assert!(err.to_string().contains("check the path"), "{err}");
        std::fs::write(&other, b"y").unwrap();
        assert_eq!(resolve_snapshot(&cdir, Some(&other)).unwrap(), other);
    }
}
