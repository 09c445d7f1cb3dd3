//! The cluster lock: one ezctl at a time per cluster directory.
//!
//! `.ezctl.lock` holds who took it (pid, host, user, since, command) for the
//! error message; the lock itself is an exclusive `flock` on that file, which
//! the kernel drops when the holder dies. Getting the flock proves the holder
//! is gone, so a leftover file from this host is taken over (the caller warns
//! with [`Lock::taken_over`]), whatever its pid: after a reboot that pid may
//! belong to another process, and the lock was refused forever.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::FlockOperation;
use serde::{Deserialize, Serialize};

pub const LOCK_FILE: &str = ".ezctl.lock";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    pub pid: u32,
    pub host: String,
    pub user: String,
    /// RFC 3339, UTC.
    pub since: String,
    pub command: String,
}

impl std::fmt::Display for LockInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{} (pid {}) since {}, running `{}`",
            self.user, self.host, self.pid, self.since, self.command
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("cluster is locked by {info}; lock file {}", path.display())]
    Held { path: PathBuf, info: Box<LockInfo> },
    #[error("cluster is locked by another ezctl (lock file {} is locked but unreadable)", path.display())]
    HeldUnknown { path: PathBuf },
    #[error("cluster lock {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Held until dropped; dropping removes the file.
#[derive(Debug)]
pub struct Lock {
    path: PathBuf,
    file: Option<File>,
    taken_over: Option<LockInfo>,
}

impl Lock {
    /// Take the lock of `cluster_dir` for `command` (shown to whoever is refused).
    pub fn acquire(cluster_dir: &Path, command: &str) -> Result<Lock, LockError> {
        let path = cluster_dir.join(LOCK_FILE);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // A holder may remove the file between our open and our flock; then we
        // locked an orphan inode and must try again with the new file.
        for _ in 0..10 {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(&path)
                .map_err(io)?;
            if let Err(e) = rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive) {
                if e == rustix::io::Errno::WOULDBLOCK {
                    return Err(match read_info(&mut file) {
                        Some(info) => LockError::Held {
                            path,
                            info: Box::new(info),
                        },
                        None => LockError::HeldUnknown { path },
                    });
                }
                return Err(io(e.into()));
            }
            let same = match (file.metadata(), std::fs::metadata(&path)) {
                (Ok(a), Ok(b)) => a.ino() == b.ino() && a.dev() == b.dev(),
                _ => false,
            };
            if !same {
                continue;
            }
            let me = LockInfo {
                pid: std::process::id(),
                host: hostname(),
                user: user(),
                since: now(),
                command: command.to_string(),
            };
            let previous = read_info(&mut file);
            let taken_over = match previous {
                None => None,
                Some(p) if p.host != me.host => {
                    // Another machine on a shared directory: its pid means
                    // nothing here and flock may not reach across; refuse.
                    return Err(LockError::Held {
                        path,
                        info: Box::new(p),
                    });
                }
                // We hold the flock on the current file: its writer is gone.
                Some(p) => Some(p),
            };
            let text = serde_json::to_string_pretty(&me).map_err(|e| io(e.into()))?;
            file.set_len(0).map_err(io)?;
            file.rewind().map_err(io)?;
            file.write_all(text.as_bytes()).map_err(io)?;
            file.write_all(b"\n").map_err(io)?;
            file.sync_all().map_err(io)?;
            return Ok(Lock {
                path,
                file: Some(file),
                taken_over,
            });
        }
        Err(io(std::io::Error::other(
            "lock file keeps changing; try again",
        )))
    }

    /// The stale holder replaced by this acquire, for a warning.
    pub fn taken_over(&self) -> Option<&LockInfo> {
        self.taken_over.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // Remove while still holding the flock, so nobody locks the old inode
        // believing it is current (they re-check the inode after locking).
        let _ = std::fs::remove_file(&self.path);
        self.file.take();
    }
}

fn read_info(file: &mut File) -> Option<LockInfo> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    serde_json::from_str(&s).ok()
}

fn hostname() -> String {
    rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned()
}

fn user() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()))
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_holder_is_refused_with_who_and_since() {
        let d = tempfile::tempdir().unwrap();
        let first = Lock::acquire(d.path(), "ezctl setup c1 all").unwrap();
        assert!(first.taken_over().is_none());
        match Lock::acquire(d.path(), "ezctl upgrade c1") {
            Err(LockError::Held { info, .. }) => {
                assert_eq!(info.pid, std::process::id());
                assert_eq!(info.command, "ezctl setup c1 all");
                assert!(!info.since.is_empty());
                let msg = LockError::Held {
                    path: d.path().join(LOCK_FILE),
                    info,
                }
                .to_string();
                assert!(
                    msg.contains("since") && msg.contains("ezctl setup c1 all"),
                    "{msg}"
                );
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        assert!(
            !d.path().join(LOCK_FILE).exists(),
            "drop releases the lock file"
        );
        let again = Lock::acquire(d.path(), "ezctl upgrade c1").unwrap();
        assert!(again.taken_over().is_none());
    }

    #[test]
    fn stale_lock_of_a_dead_pid_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        // A pid that surely exited: our own finished child.
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = LockInfo {
            pid: dead,
            host: hostname(),
            user: "old".into(),
            since: "2020-01-01T00:00:00Z".into(),
            command: "ezctl setup crashed".into(),
        };
        std::fs::write(
            d.path().join(LOCK_FILE),
            serde_json::to_string(&stale).unwrap(),
        )
        .unwrap();
        let lock = Lock::acquire(d.path(), "ezctl setup c1").unwrap();
        assert_eq!(lock.taken_over(), Some(&stale));
        let now: LockInfo =
            serde_json::from_str(&std::fs::read_to_string(d.path().join(LOCK_FILE)).unwrap())
                .unwrap();
        assert_eq!(now.pid, std::process::id());
    }

    /// After a reboot the pid in a leftover lock file may be a live,
    /// unrelated process: the flock (which it does not hold) decides, and
    /// the lock is taken over. It was refused forever.
    #[test]
    fn a_leftover_naming_a_live_pid_without_the_flock_is_taken_over() {
        let d = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let reused = LockInfo {
            pid: child.id(),
            host: hostname(),
            user: "other".into(),
            since: "2020-01-01T00:00:00Z".into(),
            command: "ezctl setup before the reboot".into(),
        };
        std::fs::write(
            d.path().join(LOCK_FILE),
            serde_json::to_string(&reused).unwrap(),
        )
        .unwrap();
        let r = Lock::acquire(d.path(), "ezctl setup");
        let _ = child.kill();
        let _ = child.wait();
        let lock = r.expect("taken over");
        assert_eq!(lock.taken_over(), Some(&reused));
    }

    /// A holder in another process (it has the flock) is still refused.
    #[test]
    fn a_holder_in_another_process_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join(LOCK_FILE);
        let info = LockInfo {
            pid: 1,
            host: hostname(),
            user: "other".into(),
            since: "2020-01-01T00:00:00Z".into(),
            command: "ezctl other".into(),
        };
        std::fs::write(&path, serde_json::to_string(&info).unwrap()).unwrap();
        // flock(1) holds the lock for as long as `sleep` runs.
        let mut holder = std::process::Command::new("flock")
            .arg("-x")
            .arg(&path)
            .args(["sleep", "5"])
            .spawn()
            .unwrap();
        // Wait until flock(1) holds it (`flock -n` then fails), bounded.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
        while std::process::Command::new("flock")
            .args(["-n", "-x"])
            .arg(&path)
            .arg("true")
            .status()
            .unwrap()
            .success()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "flock(1) never locked"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let r = Lock::acquire(d.path(), "ezctl setup");
        let _ = holder.kill();
        let _ = holder.wait();
        match r {
            Err(LockError::Held { info: i, .. }) => assert_eq!(i.command, "ezctl other"),
            other => panic!("expected Held, got {other:?}"),
        }
    }
}
