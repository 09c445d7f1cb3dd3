//! Real OpenSSH servers for the tests: each [`Sshd`] is `/usr/sbin/sshd -D`
//! on 127.0.0.1 at a free port with its own config, host key, authorized
//! keys and pid file in a temp dir, killed (with every session process it
//! forked) on drop. Also throwaway local users for password and sudo tests.

#![allow(dead_code)]

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ez_ssh::{HostSpec, SshOptions};

pub const SSHD: &str = "/usr/sbin/sshd";

/// Why this machine cannot run the real-sshd tests, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !Path::new(SSHD).exists() {
        return Some(format!(
            "{SSHD} is not installed (apt-get install openssh-server)"
        ));
    }
    if which("ssh-keygen").is_none() {
        return Some("ssh-keygen is not installed (apt-get install openssh-client)".into());
    }
    // sshd must run as root to switch to the session user.
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        return Some("needs root to run sshd".into());
    }
    None
}

/// `let Some(_) = support::ready("name") else { return };` at the top of a test.
pub fn ready(test: &str) -> Option<()> {
    match skip_reason() {
        Some(why) => {
            ez_lab::testing::skip(&format!("{test}: {why}"));
            None
        }
        None => {
            ez_lab::testing::record_run();
            Some(())
        }
    }
}

pub fn which(tool: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(tool))
            .find(|p| p.is_file())
    })
}

pub fn run(cmd: &mut Command) {
    let out = cmd.output().expect("spawn helper command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ssh-keygen` a key pair; returns the private key path.
pub fn keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> PathBuf {
    let path = dir.join(name);
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", name, "-f"])
        .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    run(&mut cmd);
    path
}

pub use ez_lab::testing::free_port;

/// Extra lines for sshd_config.
#[derive(Clone, Default)]
pub struct SshdConfig {
    pub extra: Vec<String>,
    /// Authorise this existing key instead of generating one.
    pub client_key: Option<PathBuf>,
    /// Name for the uid-0 alias, when the test needs to know it in advance.
    pub root_alias: Option<String>,
}

pub struct Sshd {
    pub port: u16,
    pub dir: tempfile::TempDir,
    /// The key every test user may log in with.
    pub client_key: PathBuf,
    /// A uid-0 alias with `/bin/sh` as login shell, used for "root" logins:
    /// root's own dotfiles on a developer machine (a `.bashrc` that runs
    /// pyenv, say) would otherwise run before every test command.
    pub root_alias: String,
    extra: Vec<String>,
    child: Option<Child>,
}

impl Sshd {
    pub fn start() -> Sshd {
        Self::start_with(SshdConfig::default())
    }

    pub fn start_with(cfg: SshdConfig) -> Sshd {
        Self::start_on(free_port(), cfg)
    }

    pub fn start_on(port: u16, cfg: SshdConfig) -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("ez-ssh-sshd")
            .tempdir()
            .expect("tempdir");
        // Non-root test users must be able to read authorized_keys in here.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod tempdir");
        let client_key = match cfg.client_key {
            Some(k) => k,
            None => keygen(dir.path(), "client_ed25519", "ed25519", ""),
        };
        let auth = dir.path().join("authorized_keys");
        std::fs::copy(client_key.with_extension("pub"), &auth).expect("authorized_keys");
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644))
            .expect("chmod authorized_keys");
        let root_alias = cfg
            .root_alias
            .unwrap_or_else(|| format!("ezr{}", &ez_ssh_random_suffix()[..8]));
        run(Command::new("useradd")
            .args([
                "-o", "-u", "0", "-g", "0", "-M", "-p", "*", "-s", "/bin/sh", "-d",
            ])
            .arg(dir.path())
            .arg(&root_alias));
        let mut sshd = Sshd {
            port,
            dir,
            client_key,
            root_alias,
            extra: cfg.extra,
            child: None,
        };
        sshd.new_host_key();
        sshd.spawn();
        sshd
    }

    fn host_key(&self) -> PathBuf {
        self.dir.path().join("host_ed25519")
    }

    fn new_host_key(&self) {
        let key = self.host_key();
        let _ = std::fs::remove_file(&key);
        let _ = std::fs::remove_file(key.with_extension("pub"));
        keygen(self.dir.path(), "host_ed25519", "ed25519", "");
    }

    /// `SHA256:...` of the current host key, as ssh-keygen prints it.
    pub fn host_fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(self.host_key().with_extension("pub"))
            .output()
            .expect("ssh-keygen -l");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_string()
    }

    fn spawn(&mut self) {
        // sshd refuses to start without its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let d = self.dir.path();
        // sshd keeps the first value of a keyword: test overrides go first.
        let mut config = String::new();
        for line in &self.extra {
            config.push_str(line);
            config.push('\n');
        }
        config.push_str(&format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nPidFile {d}/sshd.pid\n\
             AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n\
             PermitRootLogin yes\nPubkeyAuthentication yes\nPasswordAuthentication yes\n\
             KbdInteractiveAuthentication no\nAllowTcpForwarding yes\nMaxSessions 10\n\
             MaxStartups 100\nLogLevel VERBOSE\nSubsystem sftp internal-sftp\n",
            port = self.port,
            hk = self.host_key().display(),
            d = d.display()
        ));
        let config_path = d.join("sshd_config");
        std::fs::write(&config_path, config).expect("write sshd_config");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("sshd.log"))
            .expect("sshd log");
        let child = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sshd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("sshd exited with {status}: {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kill the listener and every process it forked (session sshd's and
    /// the commands they run): the host "dies".
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let mut pids = descendants(child.id());
            pids.push(child.id());
            for pid in pids {
                kill_pid(pid);
            }
            let _ = child.wait();
        }
    }

    /// Kill only the sshd processes (listener and per-connection ones), not
    /// the shells they started: like sshd crashing mid-transfer, the remote
    /// command sees EOF on stdin.
    pub fn kill_sshd_only(&mut self) {
        if let Some(mut child) = self.child.take() {
            let mut pids: Vec<u32> = descendants(child.id())
                .into_iter()
                .filter(|p| is_sshd(*p))
                .collect();
            pids.push(child.id());
            for pid in pids {
                kill_pid(pid);
            }
            let _ = child.wait();
        }
    }

    /// Freeze (`STOP`) or thaw (`CONT`) the per-connection sshd processes:
    /// a host that hangs without closing its TCP connection.
    pub fn signal_sessions(&self, signal: &str) {
        if let Some(child) = self.child.as_ref() {
            for pid in descendants(child.id()).into_iter().filter(|p| is_sshd(*p)) {
                let _ = Command::new("kill")
                    .args([&format!("-{signal}"), &pid.to_string()])
                    .status();
            }
        }
    }

    /// Stop, replace the host key, start again on the same port.
    pub fn restart_with_new_host_key(&mut self) {
        self.kill();
        self.new_host_key();
        self.spawn();
    }

    /// A host entry for `user` with the client key; `root` means the
    /// uid-0 alias (see [`Sshd::root_alias`]).
    pub fn host(&self, user: &str) -> HostSpec {
        let mut h = HostSpec::new("127.0.0.1");
        h.name = format!("sshd-{}", self.port);
        h.port = Some(self.port);
        let user = if user == "root" {
            self.root_alias.as_str()
        } else {
            user
        };
        h.user = Some(user.to_string());
        h.identity_files = vec![self.client_key.clone()];
        h
    }

    /// `[127.0.0.1]:port <host key>`, the line a pinned known_hosts has.
    pub fn known_hosts_line(&self) -> String {
        let public = std::fs::read_to_string(self.host_key().with_extension("pub"))
            .expect("host public key");
        let mut fields = public.split_whitespace();
        format!(
            "[127.0.0.1]:{} {} {}\n",
            self.port,
            fields.next().unwrap_or_default(),
            fields.next().unwrap_or_default()
        )
    }

    /// Options that trust exactly this server (known_hosts written in `dir`),
    /// never touch the agent or ~/.ssh, and fail fast.
    pub fn options(&self, dir: &Path) -> SshOptions {
        let kh = dir.join("known_hosts");
        let mut text = std::fs::read_to_string(&kh).unwrap_or_default();
        text.push_str(&self.known_hosts_line());
        std::fs::write(&kh, text).expect("write known_hosts");
        test_options(kh)
    }
}

pub fn test_options(known_hosts: PathBuf) -> SshOptions {
    SshOptions {
        known_hosts: vec![known_hosts],
        accept_new: false,
        connect_timeout: Duration::from_secs(10),
        keepalive_interval: Some(Duration::from_secs(2)),
        connect_retries: 0,
        retry_backoff: Duration::from_millis(100),
        use_agent: false,
        max_channels: 10,
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.kill();
        // No -r: the "home" is our temp dir, removed by TempDir.
        let _ = Command::new("userdel")
            .args(["-f", &self.root_alias])
            .stderr(Stdio::null())
            .status();
    }
}

/// Run a test body with an upper bound, so a hang fails instead of blocking CI.
pub async fn bounded<F: std::future::Future<Output = ()>>(body: F) {
    if tokio::time::timeout(Duration::from_secs(240), body)
        .await
        .is_err()
    {
        panic!("test did not finish within 240 s");
    }
}

fn kill_pid(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

fn is_sshd(pid: u32) -> bool {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .map(|exe| exe == Path::new(SSHD))
        .unwrap_or(false)
}

/// Every process below `root`, from /proc parent links.
pub fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of: Vec<(u32, u32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.filter_map(Result::ok) {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The command name is in parentheses and may contain spaces.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (child, _) in parent_of.iter().filter(|(_, pp)| *pp == p) {
            out.push(*child);
            frontier.push(*child);
        }
    }
    out
}

/// A local user created for one test and removed (with its home) on drop,
/// with an optional sudoers drop-in.
pub struct TestUser {
    pub name: String,
    pub password: String,
    sudoers: Option<PathBuf>,
}

impl TestUser {
    /// `None` (with the reason printed) when useradd is missing.
    pub fn create(test: &str, password: &str) -> Option<TestUser> {
        if which("useradd").is_none() || which("chpasswd").is_none() {
            ez_lab::testing::skip(&format!(
                "{test}: useradd/chpasswd not installed (apt-get install passwd)"
            ));
            return None;
        }
        let suffix = &ez_ssh_random_suffix()[..8];
        let name = format!("ezs{suffix}");
        run(Command::new("useradd")
            .args(["-m", "-s", "/bin/sh"])
            .arg(&name));
        let user = TestUser {
            name,
            password: password.to_string(),
            sudoers: None,
        };
        let mut child = Command::new("chpasswd")
            .stdin(Stdio::piped())
            .spawn()
            .expect("chpasswd");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("chpasswd stdin");
            writeln!(stdin, "{}:{}", user.name, password).expect("write chpasswd");
        }
        assert!(child.wait().expect("chpasswd").success(), "chpasswd failed");
        Some(user)
    }

    /// Allow sudo; `nopasswd` selects the NOPASSWD policy.
    pub fn allow_sudo(&mut self, test: &str, nopasswd: bool) -> Option<()> {
        if which("sudo").is_none() {
            ez_lab::testing::skip(&format!(
                "{test}: sudo not installed (apt-get install sudo)"
            ));
            return None;
        }
        let path = PathBuf::from(format!("/etc/sudoers.d/{}", self.name));
        let tag = if nopasswd { "NOPASSWD: " } else { "" };
        std::fs::write(&path, format!("{} ALL=(ALL:ALL) {tag}ALL\n", self.name))
            .expect("write sudoers drop-in");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o440))
            .expect("chmod sudoers drop-in");
        self.sudoers = Some(path);
        Some(())
    }
}

impl Drop for TestUser {
    fn drop(&mut self) {
        if let Some(p) = self.sudoers.take() {
            let _ = std::fs::remove_file(p);
        }
        // -f: remove even if a session process of the user is still exiting.
        let _ = Command::new("userdel")
            .args(["-r", "-f", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

pub fn ez_ssh_random_suffix() -> String {
    let mut bytes = [0u8; 8];
    let f = std::fs::File::open("/dev/urandom").and_then(|mut f| {
        use std::io::Read;
        f.read_exact(&mut bytes)
    });
    assert!(f.is_ok(), "read /dev/urandom");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a local file, through the system tool (independent of our code).
pub fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Deterministic incompressible-looking bytes.
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
