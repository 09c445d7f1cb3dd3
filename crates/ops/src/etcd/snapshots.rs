//! Snapshot files in `clusters/<c>/backup/`:
//!
//! * `snapshot_YYYYMMDDHHMMSS.db`: one per `ezctl backup` (UTC), the only
//!   files retention counts and removes;
//! * `snapshot.db`: a copy of the newest, what `restore` uses by default;
//! * `before-restore_YYYYMMDDHHMMSS.db`: the safety snapshot `restore`
//!   takes; never pruned (it is not a regular backup and must not push one
//!   out, nor replace `snapshot.db`).
//!
//! Snapshots hold every Secret of the cluster: files are 0600, the folder 0700.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const LATEST: &str = "snapshot.db";
const PREFIX: &str = "snapshot_";
const SAFETY_PREFIX: &str = "before-restore_";

pub fn backup_dir(cluster_dir: &Path) -> PathBuf {
    cluster_dir.join("backup")
}

/// `snapshot_<stamp>.db`.
pub fn regular_name(stamp: &str) -> String {
    format!("{PREFIX}{stamp}.db")
}

/// `before-restore_<stamp>.db`.
pub fn safety_name(stamp: &str) -> String {
    format!("{SAFETY_PREFIX}{stamp}.db")
}

/// True for `snapshot_` + 14 digits + `.db`: only these are pruned, so a
/// file an operator put next to them is never removed.
pub fn is_regular(name: &str) -> bool {
    name.strip_prefix(PREFIX)
        .and_then(|r| r.strip_suffix(".db"))
        .is_some_and(|s| s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// The backup folder, made 0700 if missing.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
}

/// Regular snapshots in `dir`, oldest first (the stamps sort as text).
pub fn regular(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if entry.file_type()?.is_file() && is_regular(&name.to_string_lossy()) {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// Remove all but `keep` regular snapshots: the one just saved, whatever
/// its stamp says, and the newest of the others; returns what went.
///
/// Stamps come from the controller's clock. After the clock went back (a
/// bad RTC, an NTP step), the snapshot just taken had the oldest stamp and
/// was the first one deleted, leaving only snapshots older than it.
pub fn prune(dir: &Path, keep: usize, just_saved: &Path) -> std::io::Result<Vec<PathBuf>> {
    let others: Vec<PathBuf> = regular(dir)?
        .into_iter()
        .filter(|p| p.file_name() != just_saved.file_name())
        .collect();
    let excess = others.len().saturating_sub(keep.max(1) - 1);
    let mut removed = Vec::new();
    for path in others.into_iter().take(excess) {
        std::fs::remove_file(&path)?;
        removed.push(path);
    }
    Ok(removed)
}

/// Regular snapshots stamped later than `just_saved`: the clock went back.
pub fn from_the_future(dir: &Path, just_saved: &Path) -> std::io::Result<Vec<PathBuf>> {
    let name = just_saved.file_name().map(|n| n.to_os_string());
    Ok(regular(dir)?
        .into_iter()
        .filter(|p| {
            name.as_deref()
                .is_some_and(|n| p.file_name().is_some_and(|f| f > n))
        })
        .collect())
}

/// Copy `src` to `dest` through a 0600 temporary sibling and a rename, so
/// `snapshot.db` is always a whole snapshot.
pub fn copy_atomic(src: &Path, dest: &Path) -> std::io::Result<()> {
    let tmp = dest.with_extension("db.ezctl-tmp");
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut input = std::fs::File::open(src)?;
        std::io::copy(&mut input, &mut out)?;
        out.flush()?;
        out.sync_all()?;
        std::fs::rename(&tmp, dest)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// sha256 (hex) of a local file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let mut f = std::fs::File::open(path)?;
    std::io::copy(&mut f, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(dir: &Path, name: &str) {
        std::fs::write(dir.join(name), name).unwrap();
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn only_stamped_snapshots_count() {
        assert!(is_regular("snapshot_20250101120000.db"));
        assert!(!is_regular(LATEST));
        assert!(!is_regular("snapshot_2025.db"));
        assert!(!is_regular("snapshot_2025010112000x.db"));
        assert!(!is_regular(&safety_name("20250101120000")));
        assert_eq!(regular_name("20250101120000"), "snapshot_20250101120000.db");
    }

    #[test]
    fn prune_keeps_the_newest_and_leaves_other_files() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for s in [
            "20250103000000",
            "20250101000000",
            "20250102000000",
            "20241231235959",
        ] {
            touch(d, &regular_name(s));
        }
        touch(d, LATEST);
        touch(d, &safety_name("20240101000000"));
        touch(d, "notes.txt");
        let newest = d.join(regular_name("20250103000000"));
        let removed = prune(d, 2, &newest).unwrap();
        assert_eq!(
            names(&removed),
            ["snapshot_20241231235959.db", "snapshot_20250101000000.db"]
        );
        assert_eq!(
            names(&regular(d).unwrap()),
            ["snapshot_20250102000000.db", "snapshot_20250103000000.db"]
        );
        for other in [LATEST, "before-restore_20240101000000.db", "notes.txt"] {
            assert!(d.join(other).exists(), "{other} must stay");
        }
        assert!(prune(d, 5, &newest).unwrap().is_empty());
        // keep 0 is treated as 1: a backup never deletes the one it just made.
        assert_eq!(prune(d, 0, &newest).unwrap().len(), 1);
        assert_eq!(names(&regular(d).unwrap()), ["snapshot_20250103000000.db"]);
    }

    /// The clock went back: the snapshot just taken has the oldest stamp.
    /// It stays, with the newest of the others; it was deleted first.
    #[test]
    fn prune_keeps_the_snapshot_just_taken_when_the_clock_went_back() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        for s in ["20990101000000", "20990102000000", "20990103000000"] {
            touch(d, &regular_name(s));
        }
        let now = d.join(regular_name("20240601000000"));
        touch(d, &regular_name("20240601000000"));
        let removed = prune(d, 2, &now).unwrap();
        assert_eq!(
            names(&removed),
            ["snapshot_20990101000000.db", "snapshot_20990102000000.db"]
        );
        assert!(now.exists(), "the snapshot just taken was pruned");
        assert_eq!(
            names(&from_the_future(d, &now).unwrap()),
            ["snapshot_20990103000000.db"]
        );
    }

    #[test]
    fn atomic_copy_is_private_and_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("a.db");
        std::fs::write(&src, vec![7u8; 100_000]).unwrap();
        let dest = tmp.path().join(LATEST);
        std::fs::write(&dest, b"old").unwrap();
        copy_atomic(&src, &dest).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), vec![7u8; 100_000]);
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(sha256_file(&dest).unwrap(), sha256_file(&src).unwrap());
        assert!(!tmp.path().join("snapshot.db.ezctl-tmp").exists());
        ensure_dir(&tmp.path().join("backup")).unwrap();
        let dmode = std::fs::metadata(tmp.path().join("backup"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dmode, 0o700);
    }
}
