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

use crate::context::runtime;
use crate::etcd::members::{list_errors, EtcdHosts, Snapshot, StepError};
use crate::etcd::{self, snapshots};
use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::remote::{closing, SshConnector};
use crate::report::Report;
use crate::stamp;

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
    out: &dyn Report,
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

/// What a backup did, for the caller to render.
pub struct BackedUp {
    pub saved: Saved,
    /// `backup/snapshot.db`, the copy of the newest.
    pub latest: PathBuf,
    pub keep: usize,
    /// Regular snapshots removed by retention.
    pub removed: Vec<PathBuf>,
    pub took: Duration,
}

pub fn run(home: &Home, name: &str, keep: Option<usize>, out: &dyn Report) -> Result<BackedUp> {
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
    let _lock = crate::context::lock(&cluster, &format!("backup {name}"), out)?;
    let dir = snapshots::backup_dir(&cluster.dir);
    snapshots::ensure_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let stamp = free_stamp(&dir);
    let file_name = snapshots::regular_name(&stamp);
    let saved = runtime()?.block_on(async {
        let connector = Arc::new(SshConnector::new(&cluster, false));
        let hosts = EtcdHosts::new(&cluster, connector.clone());
        let save = save_snapshot(&cluster, &hosts, &file_name, &stamp, out);
        closing(connector.pool(), save).await
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
    Ok(BackedUp {
        saved,
        latest,
        keep,
        removed,
        took: started.elapsed(),
    })
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
