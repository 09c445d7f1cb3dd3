//! The lab as a whole: bring N machines up, describe them, stop/start one.
//! Tearing it down is in `teardown`.
//!
//! On disk (`/var/lib/ezlab` by default):
//! ```text
//! .locks/global.lock          subnet allocation and the shared bridge
//! .locks/<lab>.lock           one up/down of a lab at a time
//! <lab>/state.json            see state.rs
//! <lab>/ssh/id_ed25519(.pub)  the lab's key, in every machine's authorized_keys
//! <lab>/known_hosts           the machines' pre-generated host keys
//! <lab>/logs/<host>.log       launcher + nspawn console output
//! <lab>/machines/<host>/      up/ wk/ root/ containerd/ launch.sh nspawn.pid
//! ```
//!
//! A lab of light hosts (`LabSpec::light`, `ezlab up N --light`) has the same
//! layout with its own network and processes: see `light`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cluster_files;
use crate::cmd;
use crate::doctor;
use crate::error::{LabError, Result};
use crate::fsutil::{self, FileLock};
use crate::layout::{self, Layout, Role};
use crate::light;
use crate::machine;
use crate::net;
use crate::rootfs;
use crate::ssh_client::{self, Probe};
use crate::state::{self, LabState, LightState, MachineState};
use crate::teardown::teardown;

pub const DEFAULT_STATE_ROOT: &str = "/var/lib/ezlab";
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/ezlab";
pub const DEFAULT_HOME: &str = "/etc/ezctl";
/// Grace given to a machine's systemd to shut down before SIGKILL.
pub(crate) const STOP_GRACE: Duration = Duration::from_secs(15);
/// Machines prepared at once (ssh-keygen, mount, netns): 2 cores.
pub(crate) const PREPARE_WORKERS: usize = 4;
/// Light hosts probed over ssh at once while they come up: each probe is an
/// `ssh` process and a key exchange on a 2-core controller.
const LIGHT_PROBE_WORKERS: usize = 16;
/// Up to this many light hosts, `up` logs into every one (see `wait_ready`).
const LIGHT_LOGIN_ALL: usize = 64;

/// What to bring up.
#[derive(Debug, Clone)]
pub struct LabSpec {
    /// `[a-z][a-z0-9-]*`, at most 24 characters; machines are `<name>-1`…
    pub name: String,
    pub machines: usize,
    /// `None`: the default layout (see `layout`).
    pub layout: Option<Layout>,
    /// ezctl's home: the cluster is written to `home/clusters/<name>/`.
    pub home: PathBuf,
    pub state_root: PathBuf,
    pub cache_dir: PathBuf,
    /// Debian mirror for the rootfs; `None`: the one apt uses here.
    pub mirror: Option<String>,
    /// How long all machines together may take to answer after launch.
    pub ready_timeout: Duration,
    /// Print progress lines on stderr.
    pub progress: bool,
    /// Light hosts (netns + private mounts + sshd, no systemd: see `light`)
    /// instead of full machines.
    pub light: bool,
    /// Light hosts per bridge (at most `light::MAX_HOSTS_PER_BRIDGE`); a
    /// small value puts even a small lab on several bridges.
    pub hosts_per_bridge: usize,
}

impl LabSpec {
    /// Defaults: home from `$EZCTL_HOME` or /etc/ezctl, state in
    /// /var/lib/ezlab, rootfs cache in /var/cache/ezlab, 60 s + 3 s per
    /// machine to boot.
    pub fn new(name: impl Into<String>, machines: usize) -> LabSpec {
        LabSpec {
            name: name.into(),
            machines,
            layout: None,
            home: default_home(),
            state_root: PathBuf::from(DEFAULT_STATE_ROOT),
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            mirror: None,
            ready_timeout: Duration::from_secs(60 + 3 * machines as u64),
            progress: false,
            light: false,
            hosts_per_bridge: light::DEFAULT_HOSTS_PER_BRIDGE,
        }
    }

    /// A lab of `hosts` light hosts: 60 s + 0.2 s per host to answer ssh.
    pub fn light(name: impl Into<String>, hosts: usize) -> LabSpec {
        LabSpec {
            light: true,
            ready_timeout: Duration::from_secs(60) + Duration::from_millis(200) * hosts as u32,
            ..LabSpec::new(name, hosts)
        }
    }

    fn max_machines(&self) -> usize {
        if self.light {
            light::MAX_HOSTS
        } else {
            net::MAX_MACHINES
        }
    }

    /// Roles written to hosts.yml. Light hosts run no services, so they get
    /// the etcd, master and node groups only (no ex-lb VIP, no registry).
    fn roles(&self) -> Result<Vec<Vec<Role>>> {
        let mut roles = match &self.layout {
            Some(l) => {
                if self.light && (l.ex_lb > 0 || l.harbor > 0) {
                    return Err(LabError::InvalidLayout {
                        spec: format!("ex_lb={},harbor={}", l.ex_lb, l.harbor),
                        reason: "light hosts run no services: no ex_lb or harbor".into(),
                    });
                }
                l.assign(self.machines)?
            }
            None => layout::default_roles(self.machines),
        };
        if self.light {
            for r in &mut roles {
                r.retain(|r| matches!(r, Role::Etcd | Role::KubeMaster | Role::KubeNode));
            }
        }
        Ok(roles)
    }
}

pub fn default_home() -> PathBuf {
    std::env::var_os("EZCTL_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_HOME))
}

/// One machine as tests and the CLI see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Host {
    pub index: usize,
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub roles: Vec<Role>,
}

/// A lab that is up (or was, until `down`). Methods take `&self` so one lab
/// can be shared by every test of a test binary.
#[derive(Debug)]
pub struct Lab {
    paths: Paths,
    state: Mutex<LabState>,
    progress: bool,
    ready_timeout: Duration,
}

/// Where a lab's files and locks are (see the layout above).
#[derive(Debug, Clone)]
pub(crate) struct Paths {
    pub(crate) state_root: PathBuf,
    pub(crate) lab_dir: PathBuf,
}

impl Paths {
    pub(crate) fn new(state_root: &Path, name: &str) -> Paths {
        Paths {
            state_root: state_root.to_path_buf(),
            lab_dir: state_root.join(name),
        }
    }
    pub(crate) fn state_file(&self) -> PathBuf {
        self.lab_dir.join("state.json")
    }
    fn key(&self) -> PathBuf {
        self.lab_dir.join("ssh/id_ed25519")
    }
    fn key_pub(&self) -> PathBuf {
        self.lab_dir.join("ssh/id_ed25519.pub")
    }
    fn known_hosts(&self) -> PathBuf {
        self.lab_dir.join("known_hosts")
    }
    pub(crate) fn lab_lock(&self, name: &str) -> PathBuf {
        self.state_root.join(".locks").join(format!("{name}.lock"))
    }
    pub(crate) fn global_lock(&self) -> PathBuf {
        self.state_root.join(".locks/global.lock")
    }
}

pub fn validate_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(LabError::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 24 {
        return bad("must be 1 to 24 characters");
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("must start with a lowercase letter");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return bad("only a-z, 0-9 and '-' are allowed");
    }
    if name.ends_with('-') {
        return bad("must not end with '-'");
    }
    Ok(())
}

fn say(progress: bool, msg: &str) {
    if progress {
        eprintln!("ezlab: {msg}");
    }
}

/// Where a new lab's addresses and bridges come from: the one thing a lab
/// of full machines and a lab of light hosts allocate differently.
enum Addressing {
    /// 10.231.`subnet`.0/24 on the bridge all full labs share (see `net`).
    Full { subnet: u8 },
    /// A block of 10.232.0.0/16 on the lab's own bridges (see `light`).
    Light(LightState),
}

impl Addressing {
    /// The first range free both among this host's addresses and in every
    /// lab's recorded state. Called with the global lock held.
    fn pick(spec: &LabSpec, paths: &Paths) -> Result<Addressing> {
        if spec.light {
            let mut used = light::subnets_in_use()?;
            for s in list_states(&paths.state_root) {
                if let Some(l) = s.light {
                    used.extend((0..l.subnets).map(|k| l.base.wrapping_add(k as u8)));
                }
            }
            let count = light::subnets_for(spec.machines);
            let base = light::pick_block(count, &used).ok_or(LabError::NoSubnet)?;
            let plan = light::plan(base, spec.machines, spec.hosts_per_bridge);
            return Ok(Addressing::Light(plan));
        }
        let mut used = net::subnets_in_use()?;
        used.extend(
            list_states(&paths.state_root)
                .into_iter()
                .filter(|s| s.light.is_none())
                .map(|s| s.subnet),
        );
        let subnet = (1..=254u8)
            .find(|x| !used.contains(x))
            .ok_or(LabError::NoSubnet)?;
        Ok(Addressing::Full { subnet })
    }

    /// `LabState::subnet`: X of 10.231.X.0/24, or a light block's base.
    fn subnet(&self) -> u8 {
        match self {
            Addressing::Full { subnet } => *subnet,
            Addressing::Light(l) => l.base,
        }
    }

    /// `LabState::bridge`: the shared bridge, or a light lab's first.
    fn bridge(&self) -> String {
        match self {
            Addressing::Full { .. } => net::BRIDGE.to_string(),
            Addressing::Light(l) => l.bridges[0].clone(),
        }
    }

    fn controller_ip(&self) -> Ipv4Addr {
        match self {
            Addressing::Full { subnet } => net::controller_ip(*subnet),
            Addressing::Light(l) => light::controller_ip(l.base),
        }
    }

    fn host_ip(&self, index: usize) -> Ipv4Addr {
        match self {
            Addressing::Full { subnet } => net::machine_ip(*subnet, index),
            Addressing::Light(l) => light::host_ip(l.base, index),
        }
    }

    fn veth(&self, index: usize) -> String {
        match self {
            Addressing::Full { subnet } => net::veth_name(*subnet, index),
            Addressing::Light(l) => light::veth_name(l.base, index),
        }
    }

    fn light(&self) -> Option<LightState> {
        match self {
            Addressing::Full { .. } => None,
            Addressing::Light(l) => Some(l.clone()),
        }
    }

    /// The bridge(s) the lab's machines attach to, with the controller's
    /// address. Idempotent.
    fn create_bridges(&self, lab: &str) -> Result<()> {
        match self {
            Addressing::Full { subnet } => net::ensure_bridge(*subnet),
            Addressing::Light(l) => light::ensure_bridges(lab, l),
        }
    }
}

impl Lab {
    /// Brings the lab up and returns once every machine answers ssh and its
    /// systemd is running (or degraded). A lab of that name already up with
    /// the same size is reused (stopped machines are started); a different
    /// size is an error; a broken one (crashed `up`) is torn down and rebuilt.
    pub fn up(mut spec: LabSpec) -> Result<Lab> {
        validate_name(&spec.name)?;
        // Recorded in state.json and used by a later `down` from anywhere.
        spec.home = std::path::absolute(&spec.home).map_err(|e| LabError::io(&spec.home, e))?;
        if spec.machines == 0 || spec.machines > spec.max_machines() {
            return Err(LabError::InvalidSize {
                asked: spec.machines,
                max: spec.max_machines(),
            });
        }
        let roles = spec.roles()?;
        if let Some(e) = doctor::check().into_error() {
            return Err(e);
        }
        for c in doctor::apply_host_sysctls()? {
            say(
                spec.progress,
                &format!("set {c} (the VM's, for the machines)"),
            );
        }
        if spec.light {
            for c in doctor::apply_light_sysctls()? {
                say(
                    spec.progress,
                    &format!("set {c} (the VM's, for a thousand neighbours)"),
                );
            }
        }
        let paths = Paths::new(&spec.state_root, &spec.name);
        let _lock = FileLock::acquire(&paths.lab_lock(&spec.name), Duration::from_secs(1800))?;

        if let Some(existing) = Self::reuse(&spec, &paths)? {
            return Ok(existing);
        }

        let rootfs = rootfs::ensure(&spec.cache_dir, spec.mirror.as_deref(), &|m| {
            say(spec.progress, m)
        })?;
        let lab = Lab {
            state: Mutex::new(Self::allocate(&spec, &paths, &rootfs, roles)?),
            paths,
            progress: spec.progress,
            ready_timeout: spec.ready_timeout,
        };
        lab.build(&spec.home)?;
        Ok(lab)
    }

    /// An existing lab of that name: reused when it has the asked size,
    /// refused when it is up with another size, removed when broken.
    fn reuse(spec: &LabSpec, paths: &Paths) -> Result<Option<Lab>> {
        let existing = match state::load(&paths.state_file()) {
            Ok(s) => s,
            // Unreadable state: treat as a crashed lab and clean up by name.
            Err(LabError::State { .. }) => None,
            Err(e) => return Err(e),
        };
        match existing {
            Some(st)
                if st.complete
                    && st.machines.len() == spec.machines
                    && st.light.is_some() == spec.light =>
            {
                say(
                    spec.progress,
                    &format!("lab {} is already up; reusing it", st.name),
                );
                let lab = Lab {
                    paths: paths.clone(),
                    state: Mutex::new(st),
                    progress: spec.progress,
                    ready_timeout: spec.ready_timeout,
                };
                let stopped: Vec<usize> =
                    (0..spec.machines).filter(|i| !lab.is_running(*i)).collect();
                for i in stopped {
                    lab.start_machine(i)?;
                }
                lab.write_cluster(&spec.home)?;
                Ok(Some(lab))
            }
            Some(st) if st.complete && st.machines.iter().any(|m| running(&st, paths, m)) => {
                Err(LabError::SizeMismatch {
                    name: st.name,
                    running: st.machines.len(),
                    wanted: spec.machines,
                })
            }
            other => {
                if other.is_some() || paths.lab_dir.exists() {
                    say(
                        spec.progress,
                        &format!("removing the remains of lab {}", spec.name),
                    );
                    teardown(&spec.name, paths, other)?;
                }
                Ok(None)
            }
        }
    }

    /// Picks the lab's addresses, creates its directory and records the
    /// plan in state.json before anything else exists, then its bridge(s).
    fn allocate(
        spec: &LabSpec,
        paths: &Paths,
        rootfs: &Path,
        roles: Vec<Vec<Role>>,
    ) -> Result<LabState> {
        let _global = FileLock::acquire(&paths.global_lock(), Duration::from_secs(120))?;
        let addressing = Addressing::pick(spec, paths)?;
        let machines_dir = paths.lab_dir.join("machines");
        let logs = paths.lab_dir.join("logs");
        fsutil::mkdir_mode(&machines_dir, 0o755)?;
        fsutil::mkdir_mode(&logs, 0o755)?;
        let name = &spec.name;
        let st = LabState {
            name: name.clone(),
            subnet: addressing.subnet(),
            bridge: addressing.bridge(),
            controller_ip: addressing.controller_ip(),
            rootfs: rootfs.to_path_buf(),
            cluster_dir: None,
            complete: false,
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            machines: roles
                .into_iter()
                .enumerate()
                .map(|(i, roles)| {
                    let hostname = format!("{name}-{}", i + 1);
                    MachineState {
                        index: i,
                        ip: addressing.host_ip(i),
                        netns: net::netns_name(name, i),
                        veth: addressing.veth(i),
                        dir: machines_dir.join(&hostname),
                        log: logs.join(format!("{hostname}.log")),
                        hostname,
                        roles,
                        launcher_pid: None,
                    }
                })
                .collect(),
            light: addressing.light(),
        };
        state::save(&paths.state_file(), &st)?;
        addressing.create_bridges(name)?;
        Ok(st)
    }

    /// Everything after allocation: key, machines, launch, wait, cluster.
    fn build(&self, home: &Path) -> Result<()> {
        let started = Instant::now();
        let (name, rootfs, machines, light_net) = {
            let st = self.lock();
            (
                st.name.clone(),
                st.rootfs.clone(),
                st.machines.clone(),
                st.light.clone(),
            )
        };
        self.ensure_lab_key()?;
        let authorized = fsutil::read_to_string(&self.paths.key_pub())?;
        let hosts_file = hosts_file(&machines);
        if let Some(l) = light_net {
            return self.build_light(home, &l, &authorized, &hosts_file, started);
        }
        say(
            self.progress,
            &format!("preparing {} machines", machines.len()),
        );
        par_for_each(&machines, PREPARE_WORKERS, |m| {
            machine::prepare_upper(m, &authorized, &hosts_file)?;
            machine::mount_root(m, &rootfs)?;
            net::create_machine_net(&m.netns, &m.veth, m.ip)
        })?;
        self.write_known_hosts()?;
        say(self.progress, "booting");
        for m in &machines {
            let pid = machine::launch(m, &name)?;
            self.lock().machines[m.index].launcher_pid = Some(pid);
            self.save()?;
        }
        self.wait_ready(&(0..machines.len()).collect::<Vec<_>>())?;
        self.write_cluster(home)?;
        self.lock().complete = true;
        self.save()?;
        say(
            self.progress,
            &format!(
                "lab {name}: {} machines up in {:.1} s",
                machines.len(),
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }

    /// `build` for light hosts: the shared layer, each host's files and
    /// network, then every host launched (state saved once: the lab's
    /// cgroup finds whatever a crash left unrecorded) and probed over ssh.
    fn build_light(
        &self,
        home: &Path,
        l: &LightState,
        authorized: &str,
        hosts_file: &str,
        started: Instant,
    ) -> Result<()> {
        let (name, machines, sh) = {
            let st = self.lock();
            (
                st.name.clone(),
                st.machines.clone(),
                light::Shared::new(&self.paths.lab_dir, &st.rootfs),
            )
        };
        say(
            self.progress,
            &format!(
                "preparing {} light hosts on {} bridge(s), {}",
                machines.len(),
                l.bridges.len(),
                light::cidr(l.base, l.subnets)
            ),
        );
        light::write_shared(&sh, authorized, hosts_file)?;
        par_for_each(&machines, PREPARE_WORKERS, |m| {
            light::prepare_host(m, &sh)?;
            light::create_host_net(m, light::bridge_of(l, m.index))
        })?;
        self.write_known_hosts()?;
        say(
            self.progress,
            &format!(
                "starting {} hosts ({:.1} s so far)",
                machines.len(),
                started.elapsed().as_secs_f64()
            ),
        );
        let cg = light::Cgroups::open(&name)?;
        let prefix = light::prefix_len(l.subnets);
        let launched: Result<()> = machines.iter().try_for_each(|m| {
            let pid = light::launch(m, &sh, prefix, &cg)?;
            self.lock().machines[m.index].launcher_pid = Some(pid);
            Ok(())
        });
        self.save()?;
        launched?;
        say(
            self.progress,
            &format!(
                "waiting for ssh ({:.1} s so far)",
                started.elapsed().as_secs_f64()
            ),
        );
        self.wait_ready(&(0..machines.len()).collect::<Vec<_>>())?;
        self.write_cluster(home)?;
        self.lock().complete = true;
        self.save()?;
        say(
            self.progress,
            &format!(
                "lab {name}: {} light hosts up in {:.1} s",
                machines.len(),
                started.elapsed().as_secs_f64()
            ),
        );
        Ok(())
    }

    fn ensure_lab_key(&self) -> Result<()> {
        let key = self.paths.key();
        if key.exists() && self.paths.key_pub().exists() {
            return Ok(());
        }
        fsutil::mkdir_mode(&self.paths.lab_dir.join("ssh"), 0o700)?;
        fsutil::remove_file_if_exists(&key)?;
        fsutil::remove_file_if_exists(&self.paths.key_pub())?;
        let name = self.lock().name.clone();
        cmd::run_ok(
            Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C"])
                .arg(format!("ezlab@{name}"))
                .arg("-f")
                .arg(&key),
            Duration::from_secs(30),
        )?;
        Ok(())
    }

    fn known_hosts_text(&self) -> Result<String> {
        let machines = self.lock().machines.clone();
        let mut text = String::new();
        for m in &machines {
            let host_pub = fsutil::read_to_string(&m.host_key_pub())?;
            if let Some(line) = ssh_client::known_hosts_line(&m.hostname, m.ip, &host_pub) {
                text.push_str(&line);
                text.push('\n');
            }
        }
        Ok(text)
    }

    fn write_known_hosts(&self) -> Result<()> {
        let text = self.known_hosts_text()?;
        fsutil::write_file(&self.paths.known_hosts(), text.as_bytes(), 0o644)
    }

    fn write_cluster(&self, home: &Path) -> Result<()> {
        let dir = cluster_files::cluster_dir(home, &self.lock().name);
        {
            // Recorded before writing so `down` removes it even after a crash.
            let mut st = self.lock();
            if let Some(old) = st.cluster_dir.clone().filter(|old| *old != dir) {
                cluster_files::remove(&old, &st.name)?;
            }
            st.cluster_dir = Some(dir.clone());
        }
        self.save()?;
        let known_hosts = self.known_hosts_text()?;
        let st = self.lock().clone();
        cluster_files::write(
            &dir,
            &st,
            &self.paths.key(),
            &self.paths.key_pub(),
            &known_hosts,
        )
    }

    /// Waits (in parallel) for the given machines to answer ssh with a
    /// booted systemd, all within the lab's ready timeout.
    fn wait_ready(&self, indices: &[usize]) -> Result<()> {
        let machines: Vec<MachineState> = {
            let st = self.lock();
            indices
                .iter()
                .filter_map(|i| st.machines.get(*i).cloned())
                .collect()
        };
        let timeout = self.ready_timeout;
        let key = self.paths.key();
        let kh = self.paths.known_hosts();
        let deadline = Instant::now() + timeout;
        let light_net = self.lock().light.clone();
        if let Some(l) = light_net {
            // Light hosts are up in a moment each: a bounded pool of probes
            // rather than a thread per host. Every host must show sshd's
            // banner (its init execs sshd last, after every mount); a root
            // login, which costs about 0.1 s of CPU on each side, is made on
            // every host of a small set, else on the first host of each
            // bridge and the last host: the others are made the same way,
            // and a thousand logins would add a minute or two to `up`.
            let init = light::init_path(&self.paths.lab_dir);
            par_for_each(&machines, LIGHT_PROBE_WORKERS, |m| {
                let probe = LightProbe {
                    init: &init,
                    login: false,
                };
                wait_one(m, &key, &kh, deadline, timeout, Some(probe))
            })?;
            let last = machines.iter().map(|m| m.index).max().unwrap_or(0);
            let login: Vec<&MachineState> = machines
                .iter()
                .filter(|m| {
                    machines.len() <= LIGHT_LOGIN_ALL
                        || m.index % l.hosts_per_bridge == 0
                        || m.index == last
                })
                .collect();
            return par_for_each(&login, LIGHT_PROBE_WORKERS, |m| {
                let probe = LightProbe {
                    init: &init,
                    login: true,
                };
                wait_one(m, &key, &kh, deadline, timeout, Some(probe))
            });
        }
        let results: Vec<Result<()>> = thread::scope(|s| {
            let handles: Vec<_> = machines
                .iter()
                .map(|m| {
                    let (key, kh) = (&key, &kh);
                    s.spawn(move || wait_one(m, key, kh, deadline, timeout, None))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(not_ready_panic())))
                .collect()
        });
        results.into_iter().collect()
    }

    fn lock(&self) -> MutexGuard<'_, LabState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self) -> Result<()> {
        let st = self.lock().clone();
        state::save(&self.paths.state_file(), &st)
    }

    /// Opens a lab that is already up (for `status`, `ssh`, `down`).
    pub fn open(name: &str, state_root: &Path) -> Result<Lab> {
        validate_name(name)?;
        let paths = Paths::new(state_root, name);
        let st = state::load(&paths.state_file())?
            .ok_or_else(|| LabError::NotFound(name.to_string()))?;
        Ok(Lab {
            paths,
            ready_timeout: LabSpec::new(name, st.machines.len()).ready_timeout,
            state: Mutex::new(st),
            progress: false,
        })
    }

    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    pub fn hosts(&self) -> Vec<Host> {
        self.lock()
            .machines
            .iter()
            .map(|m| Host {
                index: m.index,
                hostname: m.hostname.clone(),
                ip: m.ip,
                roles: m.roles.clone(),
            })
            .collect()
    }

    /// The lab's private key (root on every machine accepts it).
    pub fn ssh_key_path(&self) -> PathBuf {
        self.paths.key()
    }

    /// known_hosts with every machine's real host key.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.paths.known_hosts()
    }

    /// `HOME/clusters/<name>/` written by `up`.
    pub fn cluster_dir(&self) -> Option<PathBuf> {
        self.lock().cluster_dir.clone()
    }

    /// `/var/lib/ezlab/<name>`.
    pub fn dir(&self) -> PathBuf {
        self.paths.lab_dir.clone()
    }

    pub fn subnet(&self) -> String {
        self.lock().cidr()
    }

    /// Whether this is a lab of light hosts.
    pub fn is_light(&self) -> bool {
        self.lock().light.is_some()
    }

    pub fn controller_ip(&self) -> Ipv4Addr {
        self.lock().controller_ip
    }

    pub fn log_path(&self, index: usize) -> Option<PathBuf> {
        self.lock().machines.get(index).map(|m| m.log.clone())
    }

    /// Finds a machine by hostname, IP, or 1-based number.
    pub fn find(&self, host: &str) -> Result<Host> {
        let hosts = self.hosts();
        hosts
            .iter()
            .find(|h| h.hostname == host || h.ip.to_string() == host)
            .or_else(|| {
                host.parse::<usize>()
                    .ok()
                    .and_then(|n| hosts.get(n.wrapping_sub(1)))
            })
            .cloned()
            .ok_or_else(|| LabError::NoSuchMachine {
                lab: self.name(),
                host: host.to_string(),
            })
    }

    /// An `ssh` command to machine `index` (strict host key checking, the
    /// lab's key); append the remote command with `.arg(..)`.
    pub fn ssh_command(&self, index: usize) -> Result<Command> {
        let ip = self.machine(index)?.ip;
        Ok(ssh_client::command(
            &self.paths.key(),
            &self.paths.known_hosts(),
            ip,
        ))
    }

    /// Runs `remote` on machine `index` over ssh, bounded by `timeout`.
    pub fn ssh_run(&self, index: usize, remote: &str, timeout: Duration) -> Result<cmd::Output> {
        cmd::run(self.ssh_command(index)?.arg(remote), timeout)
    }

    fn machine(&self, index: usize) -> Result<MachineState> {
        let st = self.lock();
        st.machines
            .get(index)
            .cloned()
            .ok_or_else(|| LabError::NoSuchMachine {
                lab: st.name.clone(),
                host: index.to_string(),
            })
    }

    /// Whether machine `index`'s launcher and nspawn (or a light host's
    /// launcher) are alive.
    pub fn is_running(&self, index: usize) -> bool {
        let st = self.lock().clone();
        st.machines
            .get(index)
            .is_some_and(|m| running(&st, &self.paths, m))
    }

    /// Powers machine `index` off (systemd shutdown, then SIGKILL after a
    /// grace period). Its disk (overlay upper dir) and network stay.
    pub fn stop_machine(&self, index: usize) -> Result<()> {
        let m = self.machine(index)?;
        let name = self.name();
        let left = if self.is_light() {
            light::stop(&m, &self.light_shared().init, STOP_GRACE)
        } else {
            machine::stop(&m, &name, STOP_GRACE)
        };
        self.lock().machines[index].launcher_pid = None;
        self.save()?;
        if left.is_empty() {
            Ok(())
        } else {
            Err(LabError::Leftovers {
                name,
                leftovers: left,
            })
        }
    }

    /// Boots machine `index` again and waits until it answers.
    pub fn start_machine(&self, index: usize) -> Result<()> {
        let m = self.machine(index)?;
        if self.is_running(index) {
            return Ok(());
        }
        // Not `if let Some(l) = self.lock()…`: the guard would live through
        // the block, and `light_shared` locks again.
        let light_net = self.lock().light.clone();
        if let Some(l) = light_net {
            let sh = self.light_shared();
            light::stop(&m, &sh.init, Duration::from_secs(5));
            light::create_host_net(&m, light::bridge_of(&l, index))?;
            let cg = light::Cgroups::open(&self.name())?;
            let pid = light::launch(&m, &sh, light::prefix_len(l.subnets), &cg)?;
            self.lock().machines[index].launcher_pid = Some(pid);
            self.save()?;
            return self.wait_ready(&[index]);
        }
        let name = self.name();
        // A launcher or container that half-died must not linger beside the
        // new one.
        machine::stop(&m, &name, Duration::from_secs(5));
        let rootfs = self.lock().rootfs.clone();
        machine::mount_root(&m, &rootfs)?;
        net::create_machine_net(&m.netns, &m.veth, m.ip)?;
        let pid = machine::launch(&m, &name)?;
        self.lock().machines[index].launcher_pid = Some(pid);
        self.save()?;
        self.wait_ready(&[index])
    }

    fn light_shared(&self) -> light::Shared {
        let rootfs = self.lock().rootfs.clone();
        light::Shared::new(&self.paths.lab_dir, &rootfs)
    }

    /// Tears everything down (see [`crate::down_by_name`]).
    pub fn down(&self) -> Result<()> {
        let st = self.lock().clone();
        let _lock = FileLock::acquire(&self.paths.lab_lock(&st.name), Duration::from_secs(600))?;
        teardown(&st.name, &self.paths, Some(st.clone()))
    }
}

fn not_ready_panic() -> LabError {
    LabError::Leftovers {
        name: "wait".into(),
        leftovers: vec!["a readiness thread panicked".into()],
    }
}

/// How a light host is probed: its launcher is known by the lab's init
/// script; `login`: a root login that must print the host's name, else
/// sshd's banner.
#[derive(Clone, Copy)]
struct LightProbe<'a> {
    init: &'a Path,
    login: bool,
}

/// Waits for one machine: a full one until its systemd has booted, a light
/// one as `light` says.
fn wait_one(
    m: &MachineState,
    key: &Path,
    kh: &Path,
    deadline: Instant,
    timeout: Duration,
    light: Option<LightProbe<'_>>,
) -> Result<()> {
    let light_init = light.map(|p| p.init);
    let mut last = String::from("not probed yet");
    let launched = Instant::now();
    while Instant::now() < deadline {
        let alive = match light_init {
            Some(init) => light::launcher_alive(m, init),
            None => machine::launcher_alive(m),
        };
        // Give the launcher a moment to exec (until then its command line
        // is ours) and start nspawn before judging it.
        if launched.elapsed() > Duration::from_secs(2) && !alive {
            last = match light_init {
                Some(_) => "its launcher exited (its init or sshd failed)".into(),
                None => "its launcher exited (systemd-nspawn failed)".into(),
            };
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let probe = match light {
            Some(p) if p.login => ssh_client::probe_hostname(key, kh, m.ip, &m.hostname, left),
            Some(_) => ssh_client::probe_banner(m.ip),
            None => ssh_client::probe(key, kh, m.ip, left),
        };
        match probe {
            Probe::Ready(_) => return Ok(()),
            Probe::NotYet(why) => last = why,
        }
        thread::sleep(Duration::from_millis(if light_init.is_some() {
            100
        } else {
            300
        }));
    }
    let log_text = std::fs::read_to_string(&m.log).unwrap_or_default();
    let tail: Vec<&str> = log_text.lines().rev().take(20).collect();
    Err(LabError::NotReady {
        machine: m.hostname.clone(),
        secs: timeout.as_secs(),
        last,
        log: m.log.clone(),
        tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
    })
}

/// /etc/hosts of every machine: itself and its peers by name.
fn hosts_file(machines: &[MachineState]) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    for m in machines {
        s.push_str(&format!("{}\t{}\n", m.ip, m.hostname));
    }
    s
}

/// Runs `f` on every item with at most `workers` threads; first error wins.
pub(crate) fn par_for_each<T: Sync>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> Result<()> + Sync,
) -> Result<()> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<()>> = thread::scope(|s| {
        let handles: Vec<_> = (0..workers.max(1))
            .map(|_| {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else {
                        return Ok(());
                    };
                    f(item)?;
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err(not_ready_panic())))
            .collect()
    });
    results.into_iter().collect()
}

/// Whether a machine of lab `st` runs: a full machine's launcher and nspawn,
/// or a light host's launcher.
fn running(st: &LabState, paths: &Paths, m: &MachineState) -> bool {
    if st.light.is_some() {
        light::launcher_alive(m, &light::init_path(&paths.lab_dir))
    } else {
        machine::is_running(m)
    }
}

/// Every lab with a readable state file under `state_root`.
pub fn list_states(state_root: &Path) -> Vec<LabState> {
    let mut labs: Vec<LabState> = std::fs::read_dir(state_root)
        .map(|d| {
            d.flatten()
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .filter_map(|e| state::load(&e.path().join("state.json")).ok().flatten())
                .collect()
        })
        .unwrap_or_default();
    labs.sort_by(|a, b| a.name.cmp(&b.name));
    labs
}

/// A lab's machines with whether each is running, for `ezlab status`.
#[derive(Debug, Clone)]
pub struct LabStatus {
    pub name: String,
    pub subnet: String,
    /// A lab of light hosts (`ezlab up --light`).
    pub light: bool,
    pub complete: bool,
    pub cluster_dir: Option<PathBuf>,
    pub machines: Vec<(Host, bool)>,
}

pub fn status(state_root: &Path) -> Vec<LabStatus> {
    list_states(state_root)
        .into_iter()
        .map(|st| {
            let paths = Paths::new(state_root, &st.name);
            LabStatus {
                name: st.name.clone(),
                subnet: st.cidr(),
                light: st.light.is_some(),
                complete: st.complete,
                cluster_dir: st.cluster_dir.clone(),
                machines: st
                    .machines
                    .iter()
                    .map(|m| {
                        (
                            Host {
                                index: m.index,
                                hostname: m.hostname.clone(),
                                ip: m.ip,
                                roles: m.roles.clone(),
                            },
                            running(&st, &paths, m),
                        )
                    })
                    .collect(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lab_names_are_checked() {
        for ok in ["demo", "t1a2b3c4", "a-b"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "",
            "Demo",
            "1lab",
            "a_b",
            "a.b",
            "lab-",
            "a-very-long-lab-name-that-is-too-long",
        ] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn par_for_each_visits_all_and_reports_errors() {
        let seen = Mutex::new(Vec::new());
        par_for_each(&[1, 2, 3, 4, 5], 2, |i| {
            seen.lock().unwrap().push(*i);
            Ok(())
        })
        .unwrap();
        let mut v = seen.into_inner().unwrap();
        v.sort();
        assert_eq!(v, vec![1, 2, 3, 4, 5]);
        let r = par_for_each(&[1, 2], 2, |i| {
            if *i == 2 {
                Err(LabError::NoSubnet)
            } else {
                Ok(())
            }
        });
        assert!(matches!(r, Err(LabError::NoSubnet)));
    }

    #[test]
    fn hosts_file_names_every_machine() {
        let m = MachineState {
            index: 0,
            hostname: "demo-1".into(),
            ip: Ipv4Addr::new(10, 231, 2, 11),
            netns: String::new(),
            veth: String::new(),
            dir: PathBuf::new(),
            log: PathBuf::new(),
            roles: vec![],
            launcher_pid: None,
        };
        assert!(hosts_file(&[m]).contains("10.231.2.11\tdemo-1\n"));
    }
}
