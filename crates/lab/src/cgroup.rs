//! cgroups for the machines. The VM's PID 1 is not systemd, so nobody gives
//! each nspawn launcher its own cgroup: without one, every machine's systemd
//! would see and manage the same tree. The launcher moves itself into
//! `<hierarchy>/ezlab/<lab>/<machine>` before starting nspawn.

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{LabError, Result};

const ROOT: &str = "/sys/fs/cgroup";

/// Hierarchies a launcher joins: on a v1/hybrid host the named `systemd`
/// one, the v2 `unified` one and the memory controller; on a pure v2 host
/// the single tree.
pub fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    ["systemd", "unified", "memory"]
        .iter()
        .map(|h| root.join(h))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

pub fn lab_dirs(lab: &str) -> Vec<PathBuf> {
    hierarchies()
        .into_iter()
        .map(|h| h.join("ezlab").join(lab))
        .collect()
}

pub fn machine_dirs(lab: &str, machine: &str) -> Vec<PathBuf> {
    lab_dirs(lab).into_iter().map(|d| d.join(machine)).collect()
}

pub fn create(dirs: &[PathBuf]) -> Result<()> {
    for d in dirs {
        fs::create_dir_all(d).map_err(|e| LabError::io(d, e))?;
    }
    Ok(())
}

/// Every pid in `dir` and its descendants.
pub fn pids_in_tree(dir: &Path) -> Vec<i32> {
    let mut pids = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(text) = fs::read_to_string(d.join("cgroup.procs")) {
            pids.extend(text.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
        }
        if let Ok(entries) = fs::read_dir(&d) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path()),
            );
        }
    }
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Removes `dir` and every sub-cgroup, deepest first (a cgroup with children
/// cannot be removed). Returns the ones that would not go.
pub fn remove_tree(dir: &Path) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    let mut all = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = fs::read_dir(&d) {
            stack.extend(
                entries
                    .flatten()
                    .filter(|e| e.path().is_dir())
                    .map(|e| e.path()),
            );
        }
        all.push(d);
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    all.into_iter()
        .filter(|d| fs::remove_dir(d).is_err() && d.exists())
        .collect()
}

/// Removes `<hierarchy>/ezlab` when no lab is left in it; failure (another
/// lab appeared) is fine.
pub fn remove_parent_if_empty() {
    for h in hierarchies() {
        let _ = fs::remove_dir(h.join("ezlab"));
    }
}
