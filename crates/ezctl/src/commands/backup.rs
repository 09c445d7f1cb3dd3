//! `ezctl backup <cluster> [--keep N]`: an etcd snapshot taken ON a healthy
//! member (its etcdctl and certs), checked there with `snapshot status`,
//! downloaded and compared by sha256, saved as
//! `backup/snapshot_<UTC stamp>.db` plus `backup/snapshot.db` (the latest),
//! then the oldest regular snapshots beyond N are removed.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ez_inventory::{Cluster, Group};
use serde_json::json;

use crate::commands::setup::Output;
use ez_ops::etcd::members::{list_errors, EtcdHosts, Snapshot, StepError};
use ez_ops::etcd::{self, snapshots};
use ez_ops::exit::{ExitCode, Failure};
use ez_ops::home::Home;
use ez_ops::remote::SshConnector;
use ez_ops::stamp;

/// A snapshot saved in `backup/`, and the members skipped on the way.
pub struct Saved {
    pub path: PathBuf,
    pub snapshot: Snapshot,
    pub skipped: Vec<StepError>,
}

/// Take a snapshot from the first member (inventory order) that can give
/// one and save it as `backup/<file_name>` (the folder must exist, see
/// [`snapshots::ensure_dir`]). A member that fails is skipped with a note;
/// `Err` lists every member's reason.
pub async fn save_snapshot(
    cluster: &Cluster,
    hosts: &EtcdHosts,
    file_name: &str,
    stamp: &str,
    out: &Output,
) -> Result<Saved, Vec<StepError>> {
    let dir = snapshots::backup_dir(&cluster.dir);
    let members: Vec<IpAddr> = cluster.group(Group::Etcd).map(|h| h.ip).collect();
    let mut skipped = Vec::new();
    let incoming = dir.join(format!(".incoming-{stamp}.db"));
    for ip in members {
        etcd::say(out, format!("snapshot from etcd member {ip}"));
        match hosts.snapshot(ip, stamp, &incoming).await {
            Ok(snapshot) => {
                let path = dir.join(file_name);
                if let Err(e) = std::fs::rename(&incoming, &path) {
                    let _ = std::fs::remove_file(&incoming);
                    skipped.push(StepError {
                        host: ip,
                        step: "save on the controller".into(),
                        detail: format!("{}: {e}", path.display()),
                    });
                    return Err(skipped);
                }
                return Ok(Saved {
                    path,
                    snapshot,
                    skipped,
                });
            }
            Err(e) => {
                etcd::warn(out, format!("skipping member {e}"));
                skipped.push(e);
            }
        }
    }
    Err(skipped)
}

/// A stamp no regular snapshot uses yet: two backups in one second wait
/// for the next second instead of overwriting each other.
fn free_stamp(dir: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let s = stamp::now();
        if !dir.join(snapshots::regular_name(&s)).exists() || Instant::now() > deadline {
            return s;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn run(home: &Home, name: &str, keep: Option<usize>, out: &Output) -> Result<()> {
    let cluster = home.load(name)?;
    let keep = match keep {
        Some(0) => bail!(Failure::usage(
            "--keep 0 would delete the snapshot just taken; keep at least 1"
        )),
        Some(n) => n,
        None => usize::try_from(cluster.settings.int("BACKUP_KEEP"))
            .unwrap_or(1)
            .max(1),
    };
    let started = Instant::now();
    let _lock = etcd::lock(&cluster, &format!("backup {name}"), out)?;
    let dir = snapshots::backup_dir(&cluster.dir);
    snapshots::ensure_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let stamp = free_stamp(&dir);
    let file_name = snapshots::regular_name(&stamp);
    let saved = etcd::runtime()?.block_on(async {
        let connector = Arc::new(SshConnector::new(&cluster, false));
        let hosts = EtcdHosts::new(&cluster, connector.clone());
        let r = save_snapshot(&cluster, &hosts, &file_name, &stamp, out).await;
        connector.pool().close_all().await;
        r
    });
    let saved = match saved {
        Ok(s) => s,
        Err(errors) => bail!(Failure::new(
            ExitCode::Failed,
            format!(
                "no etcd member could give a snapshot; nothing was saved:\n{}",
                list_errors(&errors)
            )
        )),
    };
    let latest = dir.join(snapshots::LATEST);
    snapshots::copy_atomic(&saved.path, &latest)
        .with_context(|| format!("copying to {}", latest.display()))?;
    if let Ok(later) = snapshots::from_the_future(&dir, &saved.path) {
        if !later.is_empty() {
            etcd::warn(
                out,
                format!(
                    "{} older snapshot(s) carry a later time stamp than the one just taken ({}): the controller's clock went back; the one just taken is kept",
                    later.len(),
                    saved.path.display()
                ),
            );
        }
    }
    let removed = snapshots::prune(&dir, keep, &saved.path).context("removing old snapshots")?;
    report(&saved, &latest, keep, &removed, started.elapsed(), out);
    Ok(())
}

fn report(
    saved: &Saved,
    latest: &Path,
    keep: usize,
    removed: &[PathBuf],
    took: Duration,
    out: &Output,
) {
    let s = &saved.snapshot;
    let removed_names: Vec<String> = removed
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if out.json {
        out.result(
            "backup",
            json!({
                "path": saved.path,
                "latest": latest,
                "member": s.member.to_string(),
                "size": s.size,
                "revision": s.status.revision,
                "total_keys": s.status.total_keys,
                "hash": s.status.hash,
                "sha256": s.sha256,
                "kept": keep,
                "removed": removed_names,
                "skipped": saved.skipped.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "duration_ms": took.as_millis() as u64,
            }),
        );
        return;
    }
    println!("saved {}", saved.path.display());
    println!(
        "  from etcd member {}: {}, revision {}, {} keys, hash {:#010x}, sha256 {}",
        s.member,
        human_size(s.size),
        s.status.revision,
        s.status.total_keys,
        s.status.hash,
        s.sha256
    );
    println!("  latest copy {}", latest.display());
    if removed_names.is_empty() {
        println!("  retention: newest {keep} kept, nothing removed");
    } else {
        println!(
            "  retention: newest {keep} kept, removed {}",
            removed_names.join(", ")
        );
    }
    println!("  took {:.1}s", took.as_secs_f64());
}

pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {} ({bytes} bytes)", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(2048), "2.0 KiB (2048 bytes)");
        assert_eq!(human_size(5 * 1024 * 1024 + 1), "5.0 MiB (5242881 bytes)");
    }

    #[test]
    fn a_taken_stamp_is_not_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let first = free_stamp(tmp.path());
        std::fs::write(tmp.path().join(snapshots::regular_name(&first)), b"x").unwrap();
        let second = free_stamp(tmp.path());
        assert!(second > first, "{second} after {first}");
    }
}
