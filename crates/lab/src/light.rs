//! Light hosts (`ezlab up N --light`): many small hosts for executor scale
//! benchmarks, where a full machine (systemd-nspawn with systemd, 13-25 MB
//! each) would not fit a thousand times on one box.
//!
//! A light host is its own network namespace plus new mount, UTS, IPC and
//! PID namespaces (`unshare --kill-child`), over an overlay of the lab's
//! Debian rootfs, with the rootfs's own sshd as PID 1: no systemd, so no
//! units. It answers SSH like a full machine (root, the lab's key, port 22,
//! a pre-generated ed25519 host key in the lab's known_hosts), and whatever
//! it writes (`/etc`, `/var`, `/tmp`, `/root`, …) lands in its own upper
//! dir, unseen by the other hosts. Every mount is made inside the host's
//! mount namespace, so nothing is mounted on the controller and nothing is
//! left there when the host's processes die.
//!
//! Addressing: a light lab takes an aligned block of 1, 2, 4, … /24s of
//! 10.232.0.0/16 (full labs use 10.231.0.0/16, so the two kinds never
//! meet), 250 hosts per /24 (`.2` to `.251`), the controller at `.1` of the
//! first /24. The whole block is one prefix (a /22 for 1 000 hosts) on one
//! layer-2 segment. A Linux bridge takes at most 1 023 ports, so the
//! segment is several bridges (`ezl<X>b<k>`, `hosts_per_bridge` hosts each)
//! chained by veth links (`ezl<X>p<k>` on bridge k-1, `ezl<X>q<k>` on
//! bridge k): every host reaches every other host and the controller
//! without routing, and nothing routes the block anywhere else (hosts have
//! no default route, and the controller does not forward).
//!
//! On disk, under the lab's directory:
//! ```text
//! light/init.sh        PID 1 of every host until it execs sshd
//! light/layer/         lower layer shared by every host: /dev nodes,
//!                      /etc/hosts, root's authorized_keys, the sshd drop-in
//! machines/<host>/     up/ wk/ root/ fstab (the host's own mounts)
//! ```

use std::fs::{self, File, OpenOptions};
use std::net::Ipv4Addr;
use std::os::unix::fs::{symlink, DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::cgroup;
use crate::cmd;
use crate::error::{LabError, Result};
use crate::fsutil;
use crate::machine;
use crate::process;
use crate::state::{LightState, MachineState};

const PREFIX: [u8; 2] = [10, 232];
/// Hosts per /24: `.2` to `.251` (`.1` of the first /24 is the controller).
pub const HOSTS_PER_SUBNET: usize = 250;
const FIRST_HOST: usize = 2;
pub const DEFAULT_HOSTS_PER_BRIDGE: usize = 250;
/// A bridge takes at most 1 023 ports; two of them may be the links to the
/// neighbouring bridges.
pub const MAX_HOSTS_PER_BRIDGE: usize = 1000;
/// 16 /24s. Measured up to 1 000; `kernel.pid_max` (32 768 here) allows two
/// processes per host with plenty of room for sessions.
pub const MAX_HOSTS: usize = 4000;
/// Name of the cgroup (under the lab's) that holds every host's processes:
/// one cgroup for all, since a thousand per hierarchy would cost more than
/// the hosts. `ezbench` reads the lab's CPU time from its parent.
const CGROUP: &str = "hosts";
const T: Duration = Duration::from_secs(30);

/// Number of /24s for `n` hosts: a power of two, so the block is one prefix.
pub fn subnets_for(n: usize) -> usize {
    n.div_ceil(HOSTS_PER_SUBNET).max(1).next_power_of_two()
}

/// Prefix length of a block of `subnets` /24s.
pub fn prefix_len(subnets: usize) -> u8 {
    24 - subnets.max(1).trailing_zeros() as u8
}

pub fn cidr(base: u8, subnets: usize) -> String {
    format!(
        "{}.{}.{base}.0/{}",
        PREFIX[0],
        PREFIX[1],
        prefix_len(subnets)
    )
}

pub fn controller_ip(base: u8) -> Ipv4Addr {
    Ipv4Addr::new(PREFIX[0], PREFIX[1], base, 1)
}

/// Host `index` (0-based): 250 per /24 from `.2`.
pub fn host_ip(base: u8, index: usize) -> Ipv4Addr {
    Ipv4Addr::new(
        PREFIX[0],
        PREFIX[1],
        base + (index / HOSTS_PER_SUBNET) as u8,
        (FIRST_HOST + index % HOSTS_PER_SUBNET) as u8,
    )
}

/// Interface names carry the block's first octet, which no other lab holds,
/// and an `l` that full labs' names (`ez<X>h<i>`) never have after `ez`.
/// All fit the kernel's 15 characters (`ezl255b3999`).
pub fn bridge_name(base: u8, k: usize) -> String {
    format!("ezl{base}b{k}")
}

pub fn veth_name(base: u8, index: usize) -> String {
    format!("ezl{base}h{index}")
}

/// The veth pair joining bridge `k - 1` (first name) to bridge `k`.
fn patch_names(base: u8, k: usize) -> (String, String) {
    (format!("ezl{base}p{k}"), format!("ezl{base}q{k}"))
}

/// The alias (`ip link set … alias`) on every bridge and link a light lab
/// creates, so `down` finds them even when `up` crashed before recording.
fn alias(lab: &str) -> String {
    format!("ezlab:{lab}")
}

/// What `up` records for `n` hosts in the block at `base`.
pub fn plan(base: u8, n: usize, hosts_per_bridge: usize) -> LightState {
    let per = hosts_per_bridge.clamp(1, MAX_HOSTS_PER_BRIDGE);
    LightState {
        base,
        subnets: subnets_for(n),
        hosts_per_bridge: per,
        bridges: (0..n.div_ceil(per).max(1))
            .map(|k| bridge_name(base, k))
            .collect(),
    }
}

/// The first aligned block of `count` /24s none of whose third octets is in
/// `used` (10.232.0.0/24 is left alone).
pub fn pick_block(count: usize, used: &[u8]) -> Option<u8> {
    let count = count.max(1);
    (1..)
        .map(|k| k * count)
        .take_while(|b| b + count <= 256)
        .find(|b| (*b..b + count).all(|x| !used.contains(&(x as u8))))
        .map(|b| b as u8)
}

/// Third octets of 10.232.X.0/24 that an address on this host covers (its
/// whole prefix): a new light lab must not take one of those.
pub fn subnets_in_use() -> Result<Vec<u8>> {
    let out = ip(&["-4", "-o", "addr", "show"])?;
    Ok(covered_subnets(&out.stdout))
}

fn covered_subnets(ip_addr_show: &str) -> Vec<u8> {
    let mut used = Vec::new();
    for word in ip_addr_show.split_whitespace() {
        let Some((addr, len)) = word.split_once('/') else {
            continue;
        };
        let (Ok(a), Ok(len)) = (addr.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
            continue;
        };
        let o = a.octets();
        if o[0] != PREFIX[0] || o[1] != PREFIX[1] {
            continue;
        }
        // A /22 covers four third octets, a /24 or longer one.
        let span = 1u32 << 24u32.saturating_sub(len.clamp(16, 24));
        let first = u32::from(o[2]) & !(span - 1);
        used.extend((first..first + span).map(|x| x as u8));
    }
    used
}

fn ip(args: &[&str]) -> Result<cmd::Output> {
    cmd::run_ok(Command::new("ip").args(args), T)
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// No IPv6 on the lab's links: a thousand link-local addresses would only
/// add duplicate-address and multicast chatter to the bridges. Best effort
/// (a kernel without IPv6 has nothing to turn off).
fn no_ipv6(link: &str) {
    let _ = fs::write(format!("/proc/sys/net/ipv6/conf/{link}/disable_ipv6"), b"1");
}

/// The bridges, the links chaining them, and the controller's address on
/// the first. Idempotent.
pub fn ensure_bridges(lab: &str, l: &LightState) -> Result<()> {
    let tag = alias(lab);
    for (k, br) in l.bridges.iter().enumerate() {
        if !link_exists(br) {
            ip(&["link", "add", br, "type", "bridge"])?;
        }
        ip(&["link", "set", "dev", br, "alias", &tag, "up"])?;
        no_ipv6(br);
        if k > 0 {
            let (p, q) = patch_names(l.base, k);
            if !link_exists(&p) {
                ip(&[
                    "link",
                    "add",
                    &p,
                    "master",
                    &l.bridges[k - 1],
                    "type",
                    "veth",
                    "peer",
                    "name",
                    &q,
                ])?;
            }
            ip(&["link", "set", "dev", &p, "alias", &tag, "up"])?;
            ip(&["link", "set", "dev", &q, "master", br, "alias", &tag, "up"])?;
            no_ipv6(&p);
            no_ipv6(&q);
        }
    }
    let addr = format!("{}/{}", controller_ip(l.base), prefix_len(l.subnets));
    ip(&["addr", "replace", &addr, "dev", &l.bridges[0]])?;
    Ok(())
}

/// Every link on this host tagged as lab `lab`'s (bridges and their links).
pub fn links_of(lab: &str) -> Vec<String> {
    let tag = alias(lab);
    fs::read_dir("/sys/class/net")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    fs::read_to_string(e.path().join("ifalias")).is_ok_and(|a| a.trim() == tag)
                })
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Deletes the lab's bridges and links (the controller's address goes with
/// its bridge). Returns what would not go.
pub fn remove_bridges(lab: &str, recorded: Option<&LightState>) -> Vec<String> {
    let mut names = links_of(lab);
    if let Some(l) = recorded {
        names.extend(l.bridges.iter().cloned());
    }
    // Links first (deleting one end of a veth removes both), then bridges.
    names.sort_by_key(|n| (!is_patch(n), n.clone()));
    names.dedup();
    let mut left = Vec::new();
    for n in names {
        if link_exists(&n) {
            if let Err(e) = ip(&["link", "del", &n]) {
                if link_exists(&n) {
                    left.push(e.to_string());
                }
            }
        }
    }
    left
}

/// Waits up to `wait` for the host ends of deleted hosts' veths to go with
/// their netns, then deletes what is left by hand. Returns what would not go.
pub fn remove_veths(veths: &[&str], wait: Duration) -> Vec<String> {
    process::wait_until(wait, || veths.iter().all(|v| !link_exists(v)));
    let mut left = Vec::new();
    for v in veths.iter().filter(|v| link_exists(v)) {
        if let Err(e) = ip(&["link", "del", v]) {
            if link_exists(v) {
                left.push(e.to_string());
            }
        }
    }
    left
}

fn is_patch(name: &str) -> bool {
    name.strip_prefix("ezl")
        .is_some_and(|r| r.contains('p') || r.contains('q'))
}

/// The host's bridge.
pub fn bridge_of(l: &LightState, index: usize) -> &str {
    let k = (index / l.hosts_per_bridge).min(l.bridges.len().saturating_sub(1));
    &l.bridges[k]
}

/// The host's netns and its veth into its bridge (`eth0` inside; addressed
/// by the host's init). Idempotent.
pub fn create_host_net(m: &MachineState, bridge: &str) -> Result<()> {
    if !Path::new("/run/netns").join(&m.netns).exists() {
        ip(&["netns", "add", &m.netns])?;
    }
    if !link_exists(&m.veth) {
        ip(&[
            "link", "add", &m.veth, "up", "master", bridge, "type", "veth", "peer", "name", "eth0",
            "netns", &m.netns,
        ])?;
        no_ipv6(&m.veth);
    }
    Ok(())
}

/// Paths shared by the lab's hosts.
#[derive(Debug, Clone)]
pub struct Shared {
    pub init: PathBuf,
    pub layer: PathBuf,
    pub rootfs: PathBuf,
}

/// The lab's light init script: its path in a launcher's command line marks
/// the launcher as this lab's.
pub fn init_path(lab_dir: &Path) -> PathBuf {
    lab_dir.join("light/init.sh")
}

impl Shared {
    pub fn new(lab_dir: &Path, rootfs: &Path) -> Shared {
        Shared {
            init: init_path(lab_dir),
            layer: lab_dir.join("light/layer"),
            rootfs: rootfs.to_path_buf(),
        }
    }
}

/// PID 1 of a light host. `unshare` starts it in the host's netns (joined
/// by the launcher) and in new mount, UTS, IPC and PID namespaces with
/// private mount propagation; everything it mounts is the host's alone.
/// Few programs on purpose: it runs a thousand times in a row.
const INIT: &str = r#"#!/bin/sh
# Written by ezlab: PID 1 of a light host until it execs the host's sshd.
# Arguments: the host's directory, its hostname, its address/prefix.
set -eu
dir=$1 host=$2 addr=$3
echo "ezlab: starting $host ($addr)"
# Before eth0 comes up, so the host never gets an IPv6 address.
for f in all default eth0; do
  { echo 1 > "/proc/sys/net/ipv6/conf/$f/disable_ipv6"; } 2>/dev/null || :
done
ip -batch - <<EOF
addr replace $addr dev eth0
link set lo up
link set eth0 up
EOF
echo "$host" > /proc/sys/kernel/hostname
# The overlay root, /proc of the host's PID namespace, /sys of its netns,
# /run and /dev/pts.
mount -a -T "$dir/fstab"
mkdir -m 0755 "$dir/root/run/sshd"
# Into the overlay, and drop the controller's mounts (a copy of each, with
# every other host's /run/netns entry, is in this namespace until now).
cd "$dir/root"
pivot_root . .ezlab-oldroot
umount -l /.ezlab-oldroot
cd /
exec /usr/sbin/sshd -D -e
"#;

/// What every light host shares under its own upper dir: device nodes and
/// links of `/dev`, `/etc/hosts`, root's `authorized_keys`, the sshd
/// drop-in, and the directory `pivot_root` parks the old root on.
pub fn write_shared(sh: &Shared, authorized_key: &str, hosts_file: &str) -> Result<()> {
    for p in [&sh.layer, &sh.rootfs, &sh.init] {
        // The fstab and overlay options separate fields with blanks, `,`
        // and `:`; a path with one of those would be cut apart.
        let text = p.display().to_string();
        if text.contains(|c: char| c.is_whitespace() || c == ',' || c == ':') {
            return Err(LabError::io(
                p,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "light hosts need paths without blanks, ',' or ':'",
                ),
            ));
        }
    }
    let l = &sh.layer;
    for (d, mode) in [
        (l.clone(), 0o755),
        (l.join(".ezlab-oldroot"), 0o700),
        (l.join("dev"), 0o755),
        (l.join("dev/pts"), 0o755),
        (l.join("dev/shm"), 0o1777),
        (l.join("etc/ssh/sshd_config.d"), 0o755),
        (l.join("root/.ssh"), 0o700),
    ] {
        fsutil::mkdir_mode(&d, mode)?;
    }
    fsutil::mkdir_mode(&l.join("root"), 0o700)?;
    for (name, major, minor, mode) in [
        ("null", 1, 3, 0o666),
        ("zero", 1, 5, 0o666),
        ("full", 1, 7, 0o666),
        ("random", 1, 8, 0o666),
        ("urandom", 1, 9, 0o666),
        ("tty", 5, 0, 0o666),
    ] {
        mknod_char(&l.join("dev").join(name), major, minor, mode)?;
    }
    for (name, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        let p = l.join("dev").join(name);
        fsutil::remove_file_if_exists(&p)?;
        symlink(target, &p).map_err(|e| LabError::io(&p, e))?;
    }
    fsutil::write_file(&l.join("etc/hosts"), hosts_file.as_bytes(), 0o644)?;
    fsutil::write_file(
        &l.join("root/.ssh/authorized_keys"),
        format!("{}\n", authorized_key.trim()).as_bytes(),
        0o600,
    )?;
    fsutil::write_file(
        &l.join("etc/ssh/sshd_config.d/ezlab-light.conf"),
        SSHD_LIGHT.as_bytes(),
        0o644,
    )?;
    fsutil::write_file(&sh.init, INIT.as_bytes(), 0o755)
}

/// Read before the rootfs's `ezlab.conf` (which sets the host key and
/// key-only root login): the first value of a setting wins.
const SSHD_LIGHT: &str = "\
# ezlab light host: sshd is PID 1, started without systemd or PAM; it
# listens on every address of the host's own network namespace.
UsePAM no
PidFile none
";

fn mknod_char(path: &Path, major: u32, minor: u32, mode: u32) -> Result<()> {
    fsutil::remove_file_if_exists(path)?;
    let c = fsutil::cstring(path).map_err(|e| LabError::io(path, e))?;
    // SAFETY: c is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe {
        libc::mknod(
            c.as_ptr(),
            libc::S_IFCHR | mode,
            libc::makedev(major, minor),
        )
    };
    if rc != 0 {
        return Err(LabError::io(path, std::io::Error::last_os_error()));
    }
    // mknod's mode is filtered by the umask.
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| LabError::io(path, e))
}

/// Writes a small per-host file without the fsync of `fsutil::write_file`:
/// a light lab is rebuilt rather than recovered after a crash, and a
/// thousand hosts would otherwise cost thousands of disk flushes.
fn write_plain(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .map_err(|e| LabError::io(path, e))?;
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(path, e))?;
    std::io::Write::write_all(&mut f, data).map_err(|e| LabError::io(path, e))
}

fn mkdirs(dirs: &[(PathBuf, u32)]) -> Result<()> {
    for (d, mode) in dirs {
        match fs::DirBuilder::new().mode(*mode).create(d) {
            Ok(()) => {
                fs::set_permissions(d, fs::Permissions::from_mode(*mode))
                    .map_err(|e| LabError::io(d, e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(LabError::io(d, e)),
        }
    }
    Ok(())
}

/// The host's own files: hostname, machine-id, host key (kept when present:
/// a restarted host keeps its identity) and its mount table.
pub fn prepare_host(m: &MachineState, sh: &Shared) -> Result<()> {
    let up = m.dir.join("up");
    mkdirs(&[
        (m.dir.clone(), 0o755),
        (up.clone(), 0o755),
        (m.dir.join("wk"), 0o755),
        (m.root(), 0o755),
        (up.join("etc"), 0o755),
        (up.join("etc/ssh"), 0o755),
    ])?;
    write_plain(
        &up.join("etc/hostname"),
        format!("{}\n", m.hostname).as_bytes(),
        0o644,
    )?;
    let id_path = up.join("etc/machine-id");
    if fs::metadata(&id_path)
        .map(|md| md.len() < 32)
        .unwrap_or(true)
    {
        write_plain(
            &id_path,
            format!("{}\n", machine::new_machine_id()?).as_bytes(),
            0o444,
        )?;
    }
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
            T,
        )?;
    }
    write_plain(&m.dir.join("fstab"), fstab(m, sh).as_bytes(), 0o644)
}

/// The host's mounts, made by its init inside its own mount namespace.
fn fstab(m: &MachineState, sh: &Shared) -> String {
    let root = m.root();
    let r = root.display();
    format!(
        "# Written by ezlab: the mounts of light host {host}, made in its own mount namespace.\n\
         overlay {r} overlay lowerdir={layer}:{rootfs},upperdir={up},workdir={wk} 0 0\n\
         proc {r}/proc proc nosuid,nodev,noexec 0 0\n\
         sysfs {r}/sys sysfs ro,nosuid,nodev,noexec 0 0\n\
         tmpfs {r}/run tmpfs mode=0755,nosuid,nodev,size=16m 0 0\n\
         devpts {r}/dev/pts devpts newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec 0 0\n",
        host = m.hostname,
        layer = sh.layer.display(),
        rootfs = sh.rootfs.display(),
        up = m.dir.join("up").display(),
        wk = m.dir.join("wk").display(),
    )
}

/// Puts launched hosts into the lab's cgroup (in every hierarchy, like a
/// full machine's launcher, so the lab's CPU and memory can be read there):
/// the files stay open while hosts are launched, and each launcher writes
/// itself into them before it execs.
pub struct Cgroups {
    procs: Vec<File>,
}

impl Cgroups {
    pub fn open(lab: &str) -> Result<Cgroups> {
        let dirs = cgroup::machine_dirs(lab, CGROUP);
        cgroup::create(&dirs)?;
        let procs = dirs
            .iter()
            .map(|d| {
                let p = d.join("cgroup.procs");
                OpenOptions::new()
                    .write(true)
                    .open(&p)
                    .map_err(|e| LabError::io(&p, e))
            })
            .collect::<Result<Vec<File>>>()?;
        Ok(Cgroups { procs })
    }
}

/// What identifies a host's launcher in its command line (checked before
/// any signal, so a recycled pid is never hit).
fn launcher_marker(m: &MachineState, sh_init: &Path) -> String {
    format!("{} {} {} ", sh_init.display(), m.dir.display(), m.hostname)
}

pub fn launcher_alive(m: &MachineState, init: &Path) -> bool {
    m.launcher_pid.is_some_and(|p| {
        process::alive(p) && format!("{} ", process::cmdline(p)).contains(&launcher_marker(m, init))
    })
}

/// Starts the host: `unshare` in the host's netns and the lab's cgroup, in
/// its own session, output appended to the host's log. Returns its pid
/// (SIGKILL to it stops the whole host: `--kill-child`).
pub fn launch(m: &MachineState, sh: &Shared, prefix: u8, cg: &Cgroups) -> Result<i32> {
    let ns_path = Path::new("/run/netns").join(&m.netns);
    let netns = File::open(&ns_path).map_err(|e| LabError::io(&ns_path, e))?;
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&m.log)
        .map_err(|e| LabError::io(&m.log, e))?;
    let log2 = log.try_clone().map_err(|e| LabError::io(&m.log, e))?;
    let ns_fd = netns.as_raw_fd();
    let cg_fds: Vec<i32> = cg.procs.iter().map(|f| f.as_raw_fd()).collect();
    let mut command = Command::new("unshare");
    command
        .args([
            "--mount",
            "--uts",
            "--ipc",
            "--pid",
            "--fork",
            "--kill-child",
            "--propagation",
            "private",
            "/bin/sh",
        ])
        .arg(&sh.init)
        .arg(&m.dir)
        .arg(&m.hostname)
        .arg(format!("{}/{prefix}", m.ip))
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("LANG", "C.UTF-8")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log2);
    // SAFETY: only async-signal-safe system calls on descriptors opened
    // before the fork (and kept open by `netns` and `cg` until spawn
    // returns). setsid detaches the host from our terminal so it outlives
    // `ezlab up`; writing "0" to cgroup.procs moves the writer itself;
    // setns enters the host's network namespace; closing every descriptor
    // past stderr keeps the host from holding what our caller had open.
    unsafe {
        command.pre_exec(move || {
            libc::setsid();
            for fd in &cg_fds {
                if libc::write(*fd, c"0".as_ptr().cast(), 1) != 1 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if libc::setns(ns_fd, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            Ok(())
        });
    }
    let child = command.spawn().map_err(|source| LabError::Spawn {
        program: format!(
            "unshare … {} (light host {})",
            sh.init.display(),
            m.hostname
        ),
        source,
    })?;
    drop(netns);
    // Not waited for here: `process::alive` reaps it once it exits.
    Ok(child.id() as i32)
}

/// SIGKILL to a host's launcher, which takes its PID namespace (sshd and
/// every session) with it. Returns the pid when it was signalled.
pub fn kill(m: &MachineState, init: &Path) -> Option<i32> {
    let pid = m.launcher_pid?;
    process::signal_if(pid, &launcher_marker(m, init), libc::SIGKILL).then_some(pid)
}

/// Stops a host ([`kill`]) and waits up to `grace` for its launcher to go.
/// Returns what is still alive then.
pub fn stop(m: &MachineState, init: &Path, grace: Duration) -> Vec<String> {
    let Some(pid) = kill(m, init) else {
        return Vec::new();
    };
    if process::wait_until(grace, || !process::alive(pid)) {
        Vec::new()
    } else {
        vec![format!(
            "pid {pid} ({}) of light host {}",
            process::cmdline(pid),
            m.hostname
        )]
    }
}

/// Launchers of lab `lab_dir` still running (for the leftover check).
pub fn launchers_left(lab_dir: &Path) -> Vec<String> {
    let init = init_path(lab_dir).display().to_string();
    process::pids_mentioning(&init)
        .into_iter()
        .map(|p| format!("process {p}: {}", process::cmdline(p)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn blocks_are_powers_of_two_of_250_hosts() {
        assert_eq!(subnets_for(1), 1);
        assert_eq!(subnets_for(250), 1);
        assert_eq!(subnets_for(251), 2);
        assert_eq!(subnets_for(1000), 4);
        assert_eq!(subnets_for(1001), 8);
        assert_eq!(prefix_len(1), 24);
        assert_eq!(prefix_len(4), 22);
        assert_eq!(cidr(8, 4), "10.232.8.0/22");
        assert_eq!(subnets_for(MAX_HOSTS), 16);
    }

    #[test]
    fn host_addresses_fill_each_slash_24_from_dot_2() {
        assert_eq!(controller_ip(4).to_string(), "10.232.4.1");
        assert_eq!(host_ip(4, 0).to_string(), "10.232.4.2");
        assert_eq!(host_ip(4, 249).to_string(), "10.232.4.251");
        assert_eq!(host_ip(4, 250).to_string(), "10.232.5.2");
        assert_eq!(host_ip(4, 999).to_string(), "10.232.7.251");
        // Every address of a full block is distinct and inside it.
        let all: std::collections::HashSet<_> = (0..1000).map(|i| host_ip(4, i)).collect();
        assert_eq!(all.len(), 1000);
        assert!(all.iter().all(|a| (4..8).contains(&a.octets()[2])));
    }

    #[test]
    fn names_fit_and_stay_apart_from_full_labs() {
        assert!(bridge_name(255, MAX_HOSTS - 1).len() <= 15);
        assert!(veth_name(255, MAX_HOSTS - 1).len() <= 15);
        assert!(patch_names(255, MAX_HOSTS - 1).1.len() <= 15);
        // Full labs' veths are ez<digits>h<i>: never ezl…
        assert!(veth_name(1, 0).starts_with("ezl"));
        assert!(!crate::net::veth_name(1, 0).starts_with("ezl"));
        assert!(is_patch("ezl8p1") && is_patch("ezl8q1"));
        assert!(!is_patch("ezl8b1") && !is_patch("ezl8h3"));
    }

    #[test]
    fn plan_splits_hosts_over_bridges() {
        let l = plan(8, 5, 3);
        assert_eq!(l.bridges, vec!["ezl8b0", "ezl8b1"]);
        assert_eq!(bridge_of(&l, 2), "ezl8b0");
        assert_eq!(bridge_of(&l, 3), "ezl8b1");
        let big = plan(4, 1000, DEFAULT_HOSTS_PER_BRIDGE);
        assert_eq!(big.bridges.len(), 4);
        assert_eq!(big.subnets, 4);
        assert_eq!(bridge_of(&big, 999), "ezl4b3");
        assert_eq!(plan(4, 10, 0).hosts_per_bridge, 1);
    }

    #[test]
    fn blocks_are_aligned_and_avoid_used_subnets() {
        assert_eq!(pick_block(1, &[]), Some(1));
        assert_eq!(pick_block(1, &[1, 2]), Some(3));
        assert_eq!(pick_block(4, &[]), Some(4));
        assert_eq!(pick_block(4, &[5]), Some(8));
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(pick_block(1, &all), None);
        assert_eq!(pick_block(16, &[]), Some(16));
        assert_eq!(pick_block(128, &[200]), None);
    }

    #[test]
    fn used_subnets_cover_whole_prefixes() {
        let out = "3: ezl4b0    inet 10.232.4.1/22 scope global ezl4b0\n\
                   4: ezlab0    inet 10.231.9.1/24 scope global ezlab0\n\
                   5: x    inet 10.232.12.7/24 scope global x\n";
        assert_eq!(covered_subnets(out), vec![4, 5, 6, 7, 12]);
    }

    #[test]
    fn shared_layer_and_host_files() {
        let d = tempfile::tempdir().unwrap();
        let sh = Shared::new(
            &d.path().join("lab"),
            Path::new("/var/cache/ezlab/rootfs-x"),
        );
        // mknod needs root; the rest of the layer is checked either way.
        let written = write_shared(&sh, "ssh-ed25519 AAAA lab", "127.0.0.1\tlocalhost\n");
        if let Err(e) = &written {
            assert!(
                crate::doctor::is_root() || e.to_string().contains("null"),
                "{e}"
            );
            return;
        }
        let l = &sh.layer;
        assert_eq!(fs::metadata(l.join("root")).unwrap().mode() & 0o777, 0o700);
        assert_eq!(
            fs::metadata(l.join("root/.ssh/authorized_keys"))
                .unwrap()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            fs::metadata(l.join("dev/shm")).unwrap().mode() & 0o7777,
            0o1777
        );
        assert_eq!(
            fs::read_link(l.join("dev/ptmx")).unwrap(),
            Path::new("pts/ptmx")
        );
        assert!(fs::read_to_string(&sh.init)
            .unwrap()
            .contains("exec /usr/sbin/sshd -D -e"));

        let m = MachineState {
            index: 0,
            hostname: "lt-1".into(),
            ip: host_ip(8, 0),
            netns: "ezlab-lt.0".into(),
            veth: veth_name(8, 0),
            dir: d.path().join("lab/machines/lt-1"),
            log: d.path().join("lt-1.log"),
            roles: vec![],
            launcher_pid: None,
        };
        fs::create_dir_all(d.path().join("lab/machines")).unwrap();
        prepare_host(&m, &sh).unwrap();
        let tab = fs::read_to_string(m.dir.join("fstab")).unwrap();
        assert!(tab.contains(&format!(
            "lowerdir={}:/var/cache/ezlab/rootfs-x,upperdir={}/up",
            sh.layer.display(),
            m.dir.display()
        )));
        assert!(tab.contains("/root/proc proc "));
        let pub1 = fs::read_to_string(m.host_key_pub()).unwrap();
        prepare_host(&m, &sh).unwrap();
        assert_eq!(fs::read_to_string(m.host_key_pub()).unwrap(), pub1);
        assert_eq!(
            fs::read_to_string(m.dir.join("up/etc/hostname")).unwrap(),
            "lt-1\n"
        );
    }

    #[test]
    fn paths_that_would_break_the_fstab_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let sh = Shared::new(&d.path().join("a b"), Path::new("/r"));
        assert!(write_shared(&sh, "k", "").is_err());
        let sh = Shared::new(&d.path().join("lab"), Path::new("/r:x"));
        assert!(write_shared(&sh, "k", "").is_err());
    }
}
