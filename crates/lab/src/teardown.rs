//! Tearing a lab down, whether it is healthy, half built by a crashed `up`,
//! or already partly gone: machines stopped, then the lab's cgroups, network
//! namespaces and links, overlay mounts, bridge addresses, cluster folder and
//! directory removed, in that order (each step frees what the next one
//! needs: a mount is busy while a machine runs in it). Whatever cannot be
//! removed is reported, never ignored: a leftover netns or mount breaks the
//! next `up` of that name.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use crate::cgroup;
use crate::cluster_files;
use crate::error::{LabError, Result};
use crate::fsutil::{self, FileLock};
use crate::lab::{par_for_each, validate_name, Paths, PREPARE_WORKERS, STOP_GRACE};
use crate::light;
use crate::machine;
use crate::net;
use crate::process;
use crate::state::{self, LabState, LightState, MachineState};

/// Tears a lab down by name, whether it is healthy, half built by a crashed
/// `up`, or already partly gone.
pub fn down_by_name(name: &str, state_root: &Path) -> Result<()> {
    validate_name(name)?;
    let paths = Paths::new(state_root, name);
    let _lock = FileLock::acquire(&paths.lab_lock(name), Duration::from_secs(600))?;
    let st = state::load(&paths.state_file()).unwrap_or(None);
    if st.is_none()
        && !paths.lab_dir.exists()
        && net::netns_with_prefix(&net::netns_prefix(name)).is_empty()
        && light::links_of(name).is_empty()
    {
        return Err(LabError::NotFound(name.to_string()));
    }
    teardown(name, &paths, st)
}

/// The teardown itself: processes (by pid, then whatever is left in the
/// lab's cgroups), cgroups depth-first, netns, overlay mounts, the lab's
/// bridge address (and the bridge when no lab is left), the cluster folder,
/// the lab directory. Then checks that nothing is left. The caller holds
/// the lab's lock.
pub(crate) fn teardown(name: &str, paths: &Paths, st: Option<LabState>) -> Result<()> {
    let machines = known_machines(paths, st.as_ref());
    let light_net = st.as_ref().and_then(|s| s.light.clone());
    // A light lab whose state is gone still has its init script.
    let is_light = light_net.is_some() || light::init_path(&paths.lab_dir).exists();
    let mut left: Vec<String> = Vec::new();
    left.extend(stop_machines(name, paths, &machines, is_light));
    left.extend(kill_and_remove_cgroups(name, paths));
    left.extend(remove_machine_nets(name, &machines, is_light));
    left.extend(fsutil::unmount_all_under(&paths.lab_dir));
    left.extend(release_bridges(
        name,
        paths,
        st.as_ref(),
        light_net.as_ref(),
    )?);
    if let Some(dir) = st.as_ref().and_then(|s| s.cluster_dir.clone()) {
        if let Err(e) = cluster_files::remove(&dir, name) {
            left.push(e.to_string());
        }
    }
    if left.is_empty() {
        left.extend(remove_lab_dirs(name, paths));
    }
    left.extend(leftovers(name, &paths.lab_dir));
    left.sort();
    left.dedup();
    if left.is_empty() {
        Ok(())
    } else {
        Err(LabError::Leftovers {
            name: name.to_string(),
            leftovers: left,
        })
    }
}

/// The machines in the state file, plus any a crashed `up` created but
/// never recorded (a directory under `machines/` and nothing else known).
fn known_machines(paths: &Paths, st: Option<&LabState>) -> Vec<MachineState> {
    let mut machines: Vec<MachineState> = st.map(|s| s.machines.clone()).unwrap_or_default();
    let Ok(entries) = std::fs::read_dir(paths.lab_dir.join("machines")) else {
        return machines;
    };
    for e in entries.flatten() {
        let host = e.file_name().to_string_lossy().into_owned();
        if !machines.iter().any(|m| m.hostname == host) {
            machines.push(MachineState {
                index: machines.len(),
                hostname: host.clone(),
                ip: Ipv4Addr::UNSPECIFIED,
                netns: String::new(),
                veth: String::new(),
                dir: e.path(),
                log: PathBuf::new(),
                roles: Vec::new(),
                launcher_pid: None,
            });
        }
    }
    machines
}

/// Full machines get a systemd shutdown (all at once, each with its grace
/// period); light hosts have no systemd to ask.
fn stop_machines(
    name: &str,
    paths: &Paths,
    machines: &[MachineState],
    is_light: bool,
) -> Vec<String> {
    if is_light {
        // SIGKILL to each launcher ends its host's PID namespace; whatever
        // else runs is in the lab's cgroup and goes with it next.
        let init = light::init_path(&paths.lab_dir);
        for m in machines {
            light::kill(m, &init);
        }
        return Vec::new();
    }
    let stopped: Vec<Vec<String>> = thread::scope(|s| {
        let hs: Vec<_> = machines
            .iter()
            .map(|m| s.spawn(move || machine::stop(m, name, STOP_GRACE)))
            .collect();
        hs.into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    stopped.into_iter().flatten().collect()
}

/// Kills whatever is left in the lab's cgroups (and nspawn or launcher
/// processes that escaped them), then removes the cgroups depth-first.
fn kill_and_remove_cgroups(name: &str, paths: &Paths) -> Vec<String> {
    let lab_cgroups = cgroup::lab_dirs(name);
    let mut left = machine::kill_cgroups(&lab_cgroups);
    // Anything that escaped the cgroups but still runs from the lab's files.
    let lab_dir_text = paths.lab_dir.display().to_string();
    for pid in process::pids_mentioning(&lab_dir_text) {
        if process::cmdline(pid).contains("systemd-nspawn")
            || process::cmdline(pid).contains("launch.sh")
        {
            process::kill(pid, libc::SIGKILL);
        }
    }
    for d in &lab_cgroups {
        // The kernel releases a cgroup a moment after its last task is
        // reaped (EBUSY until then), so a just-killed machine's cgroup
        // may need a few tries.
        let mut stuck = Vec::new();
        process::wait_until(Duration::from_secs(5), || {
            stuck = cgroup::remove_tree(d);
            stuck.is_empty()
        });
        left.extend(stuck.into_iter().map(|p| format!("cgroup {}", p.display())));
    }
    cgroup::remove_parent_if_empty();
    left
}

/// Every machine's netns (with its veth), then any netns of the lab's name
/// that no machine recorded.
fn remove_machine_nets(name: &str, machines: &[MachineState], is_light: bool) -> Vec<String> {
    // Light labs have a thousand netns: deleted a few at a time, without
    // waiting for each veth (the kernel destroys them in batches, after
    // the netns): all of them are waited for once, below.
    let net_left = Mutex::new(Vec::new());
    let _ = par_for_each(machines, if is_light { PREPARE_WORKERS } else { 1 }, |m| {
        if !m.netns.is_empty() {
            let veth = (!is_light).then_some(m.veth.as_str());
            if let Err(e) = net::delete_machine_net(&m.netns, veth) {
                net_left
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(e.to_string());
            }
        }
        Ok(())
    });
    let mut left = net_left.into_inner().unwrap_or_else(|e| e.into_inner());
    if is_light {
        let veths: Vec<&str> = machines
            .iter()
            .map(|m| m.veth.as_str())
            .filter(|v| !v.is_empty())
            .collect();
        left.extend(light::remove_veths(&veths, Duration::from_secs(30)));
    }
    for ns in net::netns_with_prefix(&net::netns_prefix(name)) {
        if let Err(e) = net::delete_machine_net(&ns, None) {
            left.push(e.to_string());
        }
    }
    left
}

/// A full lab's address on the shared bridge (and the bridge when no lab is
/// left), or a light lab's own bridges. Under the global lock: another
/// lab's `up` may be picking a subnet or making the shared bridge.
fn release_bridges(
    name: &str,
    paths: &Paths,
    st: Option<&LabState>,
    light_net: Option<&LightState>,
) -> Result<Vec<String>> {
    let _global = FileLock::acquire(&paths.global_lock(), Duration::from_secs(120))?;
    let mut left = Vec::new();
    if let Some(s) = st.filter(|s| s.light.is_none()) {
        if let Err(e) = net::release_bridge(s.subnet) {
            left.push(e.to_string());
        }
    }
    // A light lab's bridges, found by their alias too (a crashed `up`).
    left.extend(light::remove_bridges(name, light_net));
    Ok(left)
}

/// The lab directory and the test home beside it; called only when
/// everything else is gone.
fn remove_lab_dirs(name: &str, paths: &Paths) -> Vec<String> {
    let mut left = Vec::new();
    if let Err(e) = fsutil::remove_tree_unmounted(&paths.lab_dir) {
        left.push(e.to_string());
    }
    // The private ezctl home a test binary keeps beside its lab
    // (`testing::shared_lab`): a bundle of a gigabyte that a killed
    // test would otherwise leave behind for every `ezlab down` to miss.
    let home = paths.state_root.join(format!(".home-{name}"));
    if home.is_dir() {
        if let Err(e) = std::fs::remove_dir_all(&home) {
            left.push(format!("{}: {e}", home.display()));
        }
    }
    left
}

/// What of lab `name` still exists on this host: netns, mounts, cgroups,
/// nspawn processes. Empty after a clean `down`.
pub fn leftovers(name: &str, lab_dir: &Path) -> Vec<String> {
    let mut left: Vec<String> = net::netns_with_prefix(&net::netns_prefix(name))
        .into_iter()
        .map(|n| format!("netns {n}"))
        .collect();
    left.extend(
        fsutil::mounts_under(lab_dir)
            .into_iter()
            .map(|m| format!("mount {}", m.display())),
    );
    left.extend(
        cgroup::lab_dirs(name)
            .into_iter()
            .filter(|d| d.exists())
            .map(|d| format!("cgroup {}", d.display())),
    );
    left.extend(
        process::pids_mentioning(&lab_dir.display().to_string())
            .into_iter()
            .filter(|p| {
                process::cmdline(*p).contains("systemd-nspawn")
                    || process::cmdline(*p).contains("launch.sh")
            })
            .map(|p| format!("process {p}: {}", process::cmdline(p))),
    );
    left.extend(light::launchers_left(lab_dir));
    left.extend(
        light::links_of(name)
            .into_iter()
            .map(|l| format!("link {l}")),
    );
    left
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn down_of_an_unknown_lab_is_not_found() {
        let d = tempfile::tempdir().unwrap();
        assert!(matches!(
            down_by_name("nosuchlab", d.path()),
            Err(LabError::NotFound(_))
        ));
    }
}
