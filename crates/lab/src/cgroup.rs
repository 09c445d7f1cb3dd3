//! cgroups for the machines. The VM's PID 1 is not systemd, so nobody gives
//! each nspawn launcher its own cgroup: without one, every machine's systemd
//! would see and manage the same tree. The launcher moves itself into
//! `<hierarchy>/ezlab/<lab>/<machine>` before starting nspawn.
//!
//! On a v1/hybrid host that is done in *every* mounted hierarchy, not only
//! the `systemd` one: nspawn then gives the machine a cgroup namespace
//! rooted at its own cgroup in each controller, so a kubelet and runc inside
//! it can create child cgroups with cpu, memory and pids limits (the
//! machine's early `ezlab-host` unit makes those mounts writable).

use std::fs;
use std::path::{Path, PathBuf};

use crate::error::{LabError, Result};

const ROOT: &str = "/sys/fs/cgroup";

/// Hierarchies a launcher joins: on a v1/hybrid host every mounted one
/// (each controller, the named `systemd` one and the v2 `unified` one;
/// symlinks such as `cpu,cpuacct` aliases are skipped); on a pure v2 host
/// the single tree.
pub fn hierarchies() -> Vec<PathBuf> {
    let root = Path::new(ROOT);
    if root.join("cgroup.controllers").exists() {
        return vec![root.to_path_buf()];
    }
    let mut found: Vec<PathBuf> = fs::read_dir(root)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                .map(|e| e.path())
                .filter(|p| p.join("cgroup.procs").exists())
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Whether this host runs cgroup v1 (or hybrid) rather than pure v2.
pub fn host_is_v1() -> bool {
    !Path::new(ROOT).join("cgroup.controllers").exists()
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

/// Creates each cgroup and its missing parents. In the v1 cpuset
/// hierarchy a new cgroup starts with no CPUs and no memory nodes, and
/// moving a process into it fails with ENOSPC: each new level copies them
/// from its parent.
pub fn create(dirs: &[PathBuf]) -> Result<()> {
    for d in dirs {
        let mut missing = Vec::new();
        let mut at = d.as_path();
        while !at.exists() {
            missing.push(at.to_path_buf());
            match at.parent() {
                Some(p) => at = p,
                None => break,
            }
        }
        for dir in missing.iter().rev() {
            match fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(LabError::io(dir, e)),
            }
            inherit_cpuset(dir)?;
        }
        inherit_cpuset(d)?;
    }
    Ok(())
}

/// Copies `cpuset.cpus` and `cpuset.mems` from the parent when `dir` is a
/// v1 cpuset cgroup whose own are empty.
fn inherit_cpuset(dir: &Path) -> Result<()> {
    let Some(parent) = dir.parent() else {
        return Ok(());
    };
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let own = dir.join(file);
        let Ok(value) = fs::read_to_string(&own) else {
            continue; // not a cpuset hierarchy
        };
        if !value.trim().is_empty() {
            continue;
        }
        let from = fs::read_to_string(parent.join(file))
            .map_err(|e| LabError::io(parent.join(file), e))?;
        fs::write(&own, from.trim()).map_err(|e| LabError::io(&own, e))?;
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
