//! `clusters/<c>/upgrade-state.json`: which hosts a rolling upgrade has
//! finished, towards which version, and which nodes it cordoned itself (so
//! a re-run after a failure uncordons them, and never a node an operator
//! cordoned on purpose). Written atomically after every host; removed when
//! the upgrade is complete.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const FILE: &str = "upgrade-state.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpgradeState {
    /// The version being rolled out, e.g. `v1.30.11`.
    pub target: String,
    /// Hosts (IPs) finished, in the order they finished.
    pub done: Vec<String>,
    /// Nodes this upgrade cordoned and has not uncordoned yet.
    #[serde(default)]
    pub cordoned: BTreeSet<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid upgrade state ({source}); delete it to start the upgrade over", path.display())]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

pub fn path(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join(FILE)
}

impl UpgradeState {
    pub fn new(target: &str) -> UpgradeState {
        UpgradeState {
            target: target.to_string(),
            ..UpgradeState::default()
        }
    }

    /// The saved state, `None` when no upgrade is under way.
    pub fn load(cluster_dir: &Path) -> Result<Option<UpgradeState>, StateError> {
        let p = path(cluster_dir);
        match std::fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|source| StateError::Parse { path: p, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(StateError::Read { path: p, source }),
        }
    }

    /// Temp file + rename: a crash never leaves half a state file.
    pub fn save(&self, cluster_dir: &Path) -> Result<(), StateError> {
        let p = path(cluster_dir);
        let tmp = p.with_extension("json.tmp");
        let write = || -> std::io::Result<()> {
            let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
            std::fs::write(&tmp, text)?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &p)
        };
        write().map_err(|source| StateError::Write { path: p, source })
    }

    pub fn remove(cluster_dir: &Path) -> Result<(), StateError> {
        let p = path(cluster_dir);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StateError::Write { path: p, source }),
        }
    }

    pub fn is_done(&self, host: &str) -> bool {
        self.done.iter().any(|h| h == host)
    }

    pub fn mark_done(&mut self, host: &str) {
        if !self.is_done(host) {
            self.done.push(host.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_removal() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(UpgradeState::load(dir.path()).unwrap(), None);
        let mut s = UpgradeState::new("v1.30.11");
        s.mark_done("10.0.0.1");
        s.mark_done("10.0.0.1");
        s.cordoned.insert("10.0.0.5".into());
        s.save(dir.path()).unwrap();
        let back = UpgradeState::load(dir.path()).unwrap().unwrap();
        assert_eq!(back, s);
        assert_eq!(back.done, vec!["10.0.0.1".to_string()]);
        assert!(back.is_done("10.0.0.1") && !back.is_done("10.0.0.2"));
        UpgradeState::remove(dir.path()).unwrap();
        assert!(!path(dir.path()).exists());
        UpgradeState::remove(dir.path()).unwrap();
    }

    #[test]
    fn a_damaged_file_is_reported_not_ignored() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(path(dir.path()), "{not json").unwrap();
        let e = UpgradeState::load(dir.path()).unwrap_err();
        assert!(
            e.to_string()
                .contains("delete it to start the upgrade over"),
            "{e}"
        );
    }
}
