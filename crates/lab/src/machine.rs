//! One lab machine: its overlay root, the files that make it unique, and the
//! launcher process that runs systemd-nspawn.

use std::fs::{self, OpenOptions};
use std::io::Read;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cgroup;
use crate::cmd;
use crate::error::{LabError, Result};
use crate::fsutil;
use crate::process;
use crate::state::MachineState;

/// A fresh systemd machine id: 128 random bits, formatted as a v4 UUID
/// without dashes (what `systemd-id128 new` prints).
pub fn new_machine_id() -> Result<String> {
    let mut b = [0u8; 16];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| LabError::io("/dev/urandom", e))?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    Ok(hex::encode(b))
}

/// Writes what makes this machine itself into its overlay upper dir:
/// hostname, machine-id, /etc/hosts, its ssh host key and root's
/// authorized_keys. Existing host keys are kept (a restarted machine keeps
/// its identity).
pub fn prepare_upper(m: &MachineState, authorized_key: &str, hosts_file: &str) -> Result<()> {
    let up = m.dir.join("up");
    for (d, mode) in [
        (m.dir.clone(), 0o755),
        (up.clone(), 0o755),
        (m.dir.join("wk"), 0o755),
        (m.root(), 0o755),
        (m.dir.join("containerd"), 0o711),
        (up.join("etc"), 0o755),
        (up.join("etc/ssh"), 0o755),
        (up.join("root"), 0o700),
        (up.join("root/.ssh"), 0o700),
    ] {
        fsutil::mkdir_mode(&d, mode)?;
    }
    fsutil::write_file(
        &up.join("etc/hostname"),
        format!("{}\n", m.hostname).as_bytes(),
        0o644,
    )?;
    let id_path = up.join("etc/machine-id");
    if fs::metadata(&id_path)
        .map(|md| md.len() < 32)
        .unwrap_or(true)
    {
        fsutil::write_file(
            &id_path,
            format!("{}\n", new_machine_id()?).as_bytes(),
            0o444,
        )?;
    }
    fsutil::write_file(&up.join("etc/hosts"), hosts_file.as_bytes(), 0o644)?;
    fsutil::write_file(
        &up.join("root/.ssh/authorized_keys"),
        format!("{}\n", authorized_key.trim()).as_bytes(),
        0o600,
    )?;
    host_setup_unit(&up)?;
    let key = up.join("etc/ssh/ssh_host_ed25519_key");
    if !key.exists() || !m.host_key_pub().exists() {
        fsutil::remove_file_if_exists(&key)?;
        fsutil::remove_file_if_exists(&m.host_key_pub())?;
        cmd::run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(format!("root@{}", m.hostname))
                .arg("-f")
                .arg(&key),
            Duration::from_secs(30),
        )?;
    }
    Ok(())
}

/// What a VM gives a kubelet and nspawn does not: nspawn mounts the
/// machine's cgroup controllers read-only (kubelet and runc create cgroups
/// there) and leaves `/` with private propagation (kubelet's volume mounts
/// must reach containers). Lab plumbing, not a role: on a real host these
/// hold already, and ezctl must not change them.
const HOST_SETUP: &str = "\
#!/bin/sh
# Written by ezlab: make this machine look like a VM to a kubelet.
set -u
mount -o remount,rw /sys/fs/cgroup
for c in /sys/fs/cgroup/*; do
  [ -L \"$c\" ] && continue
  mountpoint -q \"$c\" || continue
  mount -o remount,bind,rw \"$c\" || echo \"ezlab-host: $c stays read-only\" >&2
done
mount --make-rshared /
# The BPF filesystem, which nspawn leaves out of /sys (calico mounts
# /sys/fs/bpf, and eBPF users pin maps there).
if [ ! -d /sys/fs/bpf ]; then
  mount -o remount,rw /sys && mkdir -p /sys/fs/bpf; mount -o remount,ro /sys
fi
mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf || echo \"ezlab-host: no bpffs\" >&2
";

const HOST_SETUP_UNIT: &str = "\
[Unit]
Description=ezlab: writable cgroups and shared mount propagation for a kubelet
DefaultDependencies=no
Before=sysinit.target
ConditionVirtualization=container

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/lib/ezlab/host-setup

[Install]
WantedBy=sysinit.target
";

/// Writes the `ezlab-host` unit into a machine's upper dir (`root`): per
/// machine rather than in the shared rootfs, so changing it needs no new rootfs.
fn host_setup_unit(root: &Path) -> Result<()> {
    fsutil::mkdir_mode(&root.join("usr/lib/ezlab"), 0o755)?;
    fsutil::write_file(
        &root.join("usr/lib/ezlab/host-setup"),
        HOST_SETUP.as_bytes(),
        0o755,
    )?;
    let units = root.join("etc/systemd/system");
    fsutil::mkdir_mode(&units, 0o755)?;
    fsutil::write_file(
        &units.join("ezlab-host.service"),
        HOST_SETUP_UNIT.as_bytes(),
        0o644,
    )?;
    let wants = units.join("sysinit.target.wants");
    fsutil::mkdir_mode(&wants, 0o755)?;
    let link = wants.join("ezlab-host.service");
    fsutil::remove_file_if_exists(&link)?;
    symlink("/etc/systemd/system/ezlab-host.service", &link).map_err(|e| LabError::io(&link, e))
}

/// Mounts the overlay root unless it is already mounted.
pub fn mount_root(m: &MachineState, rootfs: &Path) -> Result<()> {
    let root = m.root();
    if fsutil::mounts_under(&root).contains(&root) {
        return Ok(());
    }
    let opts = format!(
        "lowerdir={},upperdir={},workdir={}",
        rootfs.display(),
        m.dir.join("up").display(),
        m.dir.join("wk").display()
    );
    let target = fsutil::cstring(&root).map_err(|e| LabError::io(&root, e))?;
    let data = std::ffi::CString::new(opts).map_err(|_| {
        LabError::io(
            &root,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"),
        )
    })?;
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            c"overlay".as_ptr(),
            target.as_ptr(),
            c"overlay".as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        return Err(LabError::io(&root, std::io::Error::last_os_error()));
    }
    Ok(())
}

/// The launcher: joins the machine's cgroups, then runs nspawn in a loop
/// that restarts it when the machine asked for a reboot (exit code 133).
fn launcher_script(m: &MachineState, lab: &str) -> String {
    let cgroups: Vec<String> = cgroup::machine_dirs(lab, &m.hostname)
        .iter()
        .map(|d| format!("'{}/cgroup.procs'", d.display()))
        .collect();
    format!(
        r#"#!/bin/sh
# Written by ezlab for machine {host}. Started with setsid; its pid is in state.json.
for f in {cgroups}; do echo $$ > "$f" || exit 90; done
# Containers (containerd/runc) inside the machine need seccomp off. The
# cgroup layout stays the host's (v1 controllers + unified): the v2 tree here
# has no cpu or memory controller, so a kubelet could not set limits in it.
export SYSTEMD_SECCOMP=0
# The machine owns its network namespace, so its net sysctls are its own to
# set, as on a VM (the rest of /proc/sys stays read-only: it is the host's).
export SYSTEMD_NSPAWN_API_VFS_WRITABLE=network
while :; do
  echo "ezlab: starting {host} at $(date -Is)"
  systemd-nspawn -q -D '{root}' -M '{host}' --boot --register=no --keep-unit \
    --network-namespace-path='/run/netns/{netns}' --console=passive \
    --capability=all --link-journal=no --resolv-conf=off --timezone=off \
    --bind=/dev/kmsg --bind='{containerd}:/var/lib/containerd' &
  echo $! > '{pidfile}'
  wait $!
  rc=$?
  echo "ezlab: systemd-nspawn for {host} exited with $rc"
  [ "$rc" -eq 133 ] || exit "$rc"
done
"#,
        host = m.hostname,
        cgroups = cgroups.join(" "),
        root = m.root().display(),
        netns = m.netns,
        containerd = m.dir.join("containerd").display(),
        pidfile = m.nspawn_pid_file().display(),
    )
}

/// Starts the launcher in its own session, output appended to the machine's
/// log. Returns its pid.
pub fn launch(m: &MachineState, lab: &str) -> Result<i32> {
    cgroup::create(&cgroup::machine_dirs(lab, &m.hostname))?;
    let script = m.launcher_script();
    fsutil::write_file(&script, launcher_script(m, lab).as_bytes(), 0o755)?;
    fsutil::remove_file_if_exists(&m.nspawn_pid_file())?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&m.log)
        .map_err(|e| LabError::io(&m.log, e))?;
    let log2 = log.try_clone().map_err(|e| LabError::io(&m.log, e))?;
    let mut command = Command::new("/bin/sh");
    command
        .arg(&script)
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: setsid and close_range are async-signal-safe system calls.
    // setsid detaches the launcher from our terminal and process group so it
    // outlives `ezlab up`; closing every descriptor past stderr keeps the
    // machine from holding what our caller had open (a `flock` around a
    // test run, a pipe a CI runner waits on) for as long as it runs.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| LabError::Spawn {
        program: script.display().to_string(),
        source,
    })?;
    // Not waited for here: `process::alive` reaps it once it exits.
    Ok(child.id() as i32)
}

/// The running systemd-nspawn of this machine, if any.
pub fn nspawn_pid(m: &MachineState) -> Option<i32> {
    let pid: i32 = fs::read_to_string(m.nspawn_pid_file())
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let root = m.root().display().to_string();
    (process::alive(pid) && process::cmdline(pid).contains(&root)).then_some(pid)
}

pub fn launcher_alive(m: &MachineState) -> bool {
    let script = m.launcher_script().display().to_string();
    m.launcher_pid
        .is_some_and(|p| process::alive(p) && process::cmdline(p).contains(&script))
}

/// Running: the launcher and its nspawn are both alive.
pub fn is_running(m: &MachineState) -> bool {
    launcher_alive(m) && nspawn_pid(m).is_some()
}

/// Stops a machine like pulling its power cord gently: the launcher goes
/// first (so nothing restarts it), nspawn gets SIGTERM (systemd inside
/// shuts down), and after `grace` everything left in its cgroups gets
/// SIGKILL. Returns what could not be stopped.
pub fn stop(m: &MachineState, lab: &str, grace: Duration) -> Vec<String> {
    if let Some(p) = m.launcher_pid {
        process::signal_if(p, &m.launcher_script().display().to_string(), libc::SIGKILL);
    }
    if let Some(pid) = nspawn_pid(m) {
        // nspawn passes SIGTERM on as a shutdown request to the machine's
        // systemd, which drops it while it is still starting (PID 1 of a
        // namespace ignores signals it has no handler for yet): repeat it.
        let mut last_sent: Option<std::time::Instant> = None;
        process::wait_until(grace, || {
            if last_sent.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                process::kill(pid, libc::SIGTERM);
                last_sent = Some(std::time::Instant::now());
            }
            !process::alive(pid)
        });
    }
    let dirs = cgroup::machine_dirs(lab, &m.hostname);
    kill_cgroups(&dirs)
}

/// SIGKILLs every process in `dirs` (and below) until they are empty.
pub fn kill_cgroups(dirs: &[std::path::PathBuf]) -> Vec<String> {
    let empty = || {
        dirs.iter()
            .all(|d| cgroup::pids_in_tree(d).iter().all(|p| !process::alive(*p)))
    };
    let done = process::wait_until(Duration::from_secs(10), || {
        for d in dirs {
            for pid in cgroup::pids_in_tree(d) {
                process::kill(pid, libc::SIGKILL);
            }
        }
        empty()
    });
    if done {
        Vec::new()
    } else {
        dirs.iter()
            .flat_map(|d| {
                cgroup::pids_in_tree(d)
                    .into_iter()
                    .filter(|p| process::alive(*p))
                    .map(|p| format!("pid {p} ({}) in {}", process::cmdline(p), d.display()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn machine(dir: &Path) -> MachineState {
        MachineState {
            index: 0,
            hostname: "t-1".into(),
            ip: Ipv4Addr::new(10, 231, 9, 11),
            netns: "ezlab-t.0".into(),
            veth: "ez9h0".into(),
            dir: dir.to_path_buf(),
            log: dir.join("log"),
            roles: vec![],
            launcher_pid: None,
        }
    }

    #[test]
    fn machine_ids_are_fresh_v4_ids() {
        let a = new_machine_id().unwrap();
        let b = new_machine_id().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert_eq!(&a[12..13], "4");
    }

    #[test]
    fn upper_dir_gets_identity_with_safe_modes() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let m = machine(d.path());
        prepare_upper(&m, "ssh-ed25519 AAAA lab", "127.0.0.1 localhost\n").unwrap();
        let up = d.path().join("up");
        assert_eq!(
            fs::read_to_string(up.join("etc/hostname")).unwrap(),
            "t-1\n"
        );
        assert_eq!(
            fs::read_to_string(up.join("etc/machine-id"))
                .unwrap()
                .trim()
                .len(),
            32
        );
        let key_mode = fs::metadata(up.join("etc/ssh/ssh_host_ed25519_key"))
            .unwrap()
            .mode();
        assert_eq!(key_mode & 0o077, 0, "host key readable by others");
        assert_eq!(fs::metadata(up.join("root")).unwrap().mode() & 0o777, 0o700);
        assert_eq!(
            fs::metadata(up.join("root/.ssh/authorized_keys"))
                .unwrap()
                .mode()
                & 0o777,
            0o600
        );
        // A second prepare (restart) keeps the identity.
        let pub1 = fs::read_to_string(m.host_key_pub()).unwrap();
        let id1 = fs::read_to_string(up.join("etc/machine-id")).unwrap();
        prepare_upper(&m, "ssh-ed25519 AAAA lab", "").unwrap();
        assert_eq!(fs::read_to_string(m.host_key_pub()).unwrap(), pub1);
        assert_eq!(fs::read_to_string(up.join("etc/machine-id")).unwrap(), id1);
    }

    #[test]
    fn launcher_restarts_only_on_reboot_code() {
        let d = tempfile::tempdir().unwrap();
        let s = launcher_script(&machine(d.path()), "t");
        assert!(s.contains("[ \"$rc\" -eq 133 ] || exit \"$rc\""));
        assert!(s.contains("SYSTEMD_SECCOMP=0"));
        assert!(s.contains("--network-namespace-path='/run/netns/ezlab-t.0'"));
        assert!(s.contains(":/var/lib/containerd'"));
        // Hybrid cgroups and the kernel log: what a kubelet inside needs.
        assert!(!s.contains("UNIFIED_HIERARCHY"));
        assert!(s.contains("--bind=/dev/kmsg"));
    }
}
