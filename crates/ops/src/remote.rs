//! The bridge between the engine and the SSH executor: the engine asks a
//! [`Connector`] for each host's [`Transport`]; here that is one reused russh
//! session per host from an [`ez_ssh::Pool`].

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use ez_engine::transport::{Connector, ExecOpts, ExecOutput, PutSource, Transport, TransportError};
use ez_engine::TargetHost;
use ez_inventory::{Cluster, Host};
use ez_ssh::{HostSpec, Pool, Secret, Session, SshError, SshOptions, Sudo};

/// SSH options for a cluster: its own known_hosts first (where
/// `--accept-new` pins keys), then the user's.
pub fn ssh_options(cluster: &Cluster, accept_new: bool) -> SshOptions {
    let mut known_hosts = vec![cluster.dir.join("known_hosts")];
    if let Some(home) = std::env::var_os("HOME") {
        known_hosts.push(PathBuf::from(home).join(".ssh/known_hosts"));
    }
    SshOptions {
        known_hosts,
        accept_new,
        ..SshOptions::default()
    }
}

/// Passwords for the run, from `--ask-pass` / `--ask-sudo-pass` or
/// EZCTL_SSH_PASSWORD / EZCTL_SUDO_PASSWORD. Never written anywhere.
#[derive(Default)]
pub struct Credentials {
    /// SSH login password (also for a jump host).
    pub ssh_password: Option<Secret>,
    /// sudo password for hosts with `sudo: true`.
    pub sudo_password: Option<Secret>,
}

static CREDENTIALS: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();

/// Set once, by main, before any host is reached.
pub fn set_credentials(c: Credentials) {
    let _ = CREDENTIALS.set(c);
}

static FORKS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();

/// Set once, by main (`--forks`), before any host is reached.
pub fn set_forks(n: usize) {
    let _ = FORKS.set(n.max(1));
}

/// SSH connections opened at once, and hosts `exec` works on at once.
pub fn forks() -> usize {
    FORKS.get().copied().unwrap_or(ez_ssh::DEFAULT_FAN_OUT)
}

/// The run's SSH pool for `cluster`: its options, `--forks` handshakes at
/// most in flight.
pub fn new_pool(cluster: &Cluster, accept_new: bool) -> Pool {
    Pool::with_connect_limit(ssh_options(cluster, accept_new), forks())
}

fn credentials() -> &'static Credentials {
    static NONE: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();
    CREDENTIALS
        .get()
        .unwrap_or_else(|| NONE.get_or_init(Credentials::default))
}

/// The run's passwords: each from its variable (removed from the
/// environment, so kubectl and ssh children never see it) or, when its flag
/// is given, asked for on the terminal.
pub fn resolve_credentials(
    ask_pass: bool,
    ask_sudo_pass: bool,
    var: impl Fn(&str) -> Option<String>,
    ask: impl Fn(&str) -> std::io::Result<String>,
) -> std::io::Result<Credentials> {
    let one = |flag: bool, name: &str, prompt: &str| -> std::io::Result<Option<Secret>> {
        match var(name) {
            Some(v) if !v.is_empty() => Ok(Some(Secret::new(v))),
            _ if flag => Ok(Some(Secret::new(ask(prompt)?))),
            _ => Ok(None),
        }
    };
    Ok(Credentials {
        ssh_password: one(ask_pass, "EZCTL_SSH_PASSWORD", "SSH password: ")?,
        sudo_password: one(ask_sudo_pass, "EZCTL_SUDO_PASSWORD", "sudo password: ")?,
    })
}

/// How to reach an inventory host of `cluster`.
///
/// The jump host logs in with the inventory's key too (the key of the
/// inventory host at that address, if it is one, with that host's user and
/// port unless the jump names them). A host that is itself the jump host
/// (a cluster-wide `jump:` naming one of the hosts) is reached directly:
/// through itself it could never be reached.
pub fn host_spec(cluster: &Cluster, host: &Host) -> HostSpec {
    host_spec_with(cluster, host, credentials())
}

/// [`host_spec`] with these passwords.
pub fn host_spec_with(cluster: &Cluster, host: &Host, creds: &Credentials) -> HostSpec {
    let mut spec = HostSpec::new(host.ip.to_string());
    spec.password = creds.ssh_password.clone();
    spec.user = Some(host.ssh.user.clone());
    spec.port = Some(host.ssh.port);
    spec.identity_files = host.ssh.key.iter().cloned().collect();
    if let Some(text) = &host.ssh.jump {
        let mut jump = parse_jump(text);
        let via = cluster.hosts.iter().find(|h| h.ip.to_string() == jump.addr);
        if let Some(via) = via {
            jump.user = jump.user.or_else(|| Some(via.ssh.user.clone()));
            jump.port = jump.port.or(Some(via.ssh.port));
        }
        let key = via.and_then(|v| v.ssh.key.clone()).or(host.ssh.key.clone());
        jump.identity_files = key.into_iter().collect();
        jump.password = creds.ssh_password.clone();
        let itself = jump.addr == spec.addr && jump.port() == spec.port();
        if !itself {
            spec.jump = Some(Box::new(jump));
        }
    }
    if host.ssh.sudo {
        spec.sudo = match &creds.sudo_password {
            Some(p) => Sudo::Password(p.clone()),
            None => Sudo::Passwordless,
        };
    }
    spec
}

/// `user@host:port` (user and port optional; the inventory checked it).
fn parse_jump(text: &str) -> HostSpec {
    let (user, addr, port) = ez_inventory::syntax::jump_host(text).unwrap_or((None, text, None));
    let mut spec = HostSpec::new(addr);
    spec.user = user.map(str::to_string);
    spec.port = port;
    spec
}

/// Connects engine hosts (named by IP) through a shared session pool.
pub struct SshConnector {
    pool: Pool,
    specs: BTreeMap<String, HostSpec>,
}

impl SshConnector {
    pub fn new(cluster: &Cluster, accept_new: bool) -> SshConnector {
        let specs = cluster
            .hosts
            .iter()
            .map(|h| (h.ip.to_string(), host_spec(cluster, h)))
            .collect();
        SshConnector {
            pool: new_pool(cluster, accept_new),
            specs,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }
}

/// Run `work`, then close `pool`, whichever way `work` ends (an early
/// `return` or `?` inside it included): a pool left open would keep its
/// sessions until the runtime is dropped, and sessions closed properly
/// end on the host at once.
pub async fn closing<T>(pool: &Pool, work: impl std::future::Future<Output = T>) -> T {
    let out = work.await;
    pool.close_all().await;
    out
}

/// The `ssh_traffic` event of a run (`--json`): per host, the SSH channels
/// it opened (each one command or transfer, asked and answered: a round
/// trip) and the payload bytes it sent. The bench reads it; people can see
/// what a warm run still costs.
pub fn ssh_traffic(pool: &Pool) -> serde_json::Value {
    let mut hosts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for s in pool.sessions() {
        let e = hosts.entry(s.host().to_string()).or_default();
        e.0 += s.channels_opened();
        e.1 += s.bytes_sent();
    }
    let hosts: serde_json::Map<String, serde_json::Value> = hosts
        .into_iter()
        .map(|(h, (channels, bytes))| {
            (
                h,
                serde_json::json!({ "channels": channels, "bytes_sent": bytes }),
            )
        })
        .collect();
    serde_json::json!({ "event": "ssh_traffic", "hosts": hosts })
}

fn transport_error(host: &str, e: SshError) -> TransportError {
    // The engine's error names the host itself.
    let text = e.to_string();
    let reason = text
        .strip_prefix(&format!("{host}: "))
        .unwrap_or(&text)
        .to_string();
    match e {
        // "unreachable: unreachable at ..." said the same thing twice.
        SshError::Unreachable { addr, source, .. } => TransportError::Unreachable {
            host: host.into(),
            reason: format!("no SSH connection to {addr}: {source}"),
        },
        // A host that is powered off or cut from the network answers nothing:
        // it is gone for the run like one that refuses the connection, so its
        // other units are skipped instead of each failing on their own.
        SshError::Timeout { op, after, .. } if op == "connect" => TransportError::Unreachable {
            host: host.into(),
            reason: format!("no answer to an SSH connection within {after:?}"),
        },
        SshError::Timeout { op, after, .. } => TransportError::Timeout {
            host: host.into(),
            what: op,
            after,
        },
        SshError::Disconnected { .. } | SshError::ChannelClosed { .. } => {
            TransportError::Disconnected {
                host: host.into(),
                reason,
            }
        }
        // Host-key and authentication problems end the host's run too, with
        // their own precise message.
        SshError::HostKeyChanged { .. }
        | SshError::HostKeyUnknown { .. }
        | SshError::AuthFailed { .. }
        | SshError::KeyPassphraseNeeded { .. }
        | SshError::KeyLoad { .. } => TransportError::Unreachable {
            host: host.into(),
            reason,
        },
        _ => TransportError::Other {
            host: host.into(),
            message: reason,
        },
    }
}

#[async_trait]
impl Connector for SshConnector {
    async fn connect(&self, host: &TargetHost) -> Result<Arc<dyn Transport>, TransportError> {
        let spec = self
            .specs
            .get(&host.name)
            .cloned()
            .unwrap_or_else(|| HostSpec::new(host.name.clone()));
        let session = self
            .pool
            .session(&spec)
            .await
            .map_err(|e| transport_error(&host.name, e))?;
        Ok(Arc::new(SshTransport {
            name: host.name.clone(),
            session,
        }))
    }
}

/// One host's session, as the engine sees it. Every command runs as root
/// (through sudo when the inventory says so).
pub struct SshTransport {
    name: String,
    session: Session,
}

#[async_trait]
impl Transport for SshTransport {
    fn host(&self) -> &str {
        &self.name
    }

    async fn exec(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, TransportError> {
        let out = self
            .session
            .exec(
                cmd,
                ez_ssh::ExecOpts {
                    stdin: opts.stdin,
                    env: opts.env,
                    timeout: opts.timeout,
                    sudo: true,
                },
            )
            .await
            .map_err(|e| transport_error(&self.name, e))?;
        Ok(ExecOutput {
            code: out.code,
            stdout: out.stdout_str(),
            stderr: out.stderr_str(),
        })
    }

    async fn put(
        &self,
        src: PutSource,
        dest: &str,
        mode: Option<u32>,
        owner: Option<&str>,
    ) -> Result<(), TransportError> {
        let owner_pair = owner.map(|o| match o.split_once(':') {
            Some((u, g)) => (u.to_string(), g.to_string()),
            None => (o.to_string(), o.to_string()),
        });
        let owner_ref = owner_pair.as_ref().map(|(u, g)| (u.as_str(), g.as_str()));
        let source: ez_ssh::Source = match src {
            PutSource::Bytes(b) => ez_ssh::Source::Bytes(b.as_ref().clone()),
            PutSource::Path(p) => ez_ssh::Source::File(p),
        };
        // The engine only writes after its own comparison (one batched stat
        // per unit), so the session's compare-then-send would be a second
        // probe round trip per file.
        self.session
            .write_file(source, dest, mode, owner_ref)
            .await
            .map(|_| ())
            .map_err(|e| transport_error(&self.name, e))
    }

    async fn sha256_many(
        &self,
        paths: &[String],
    ) -> Result<BTreeMap<String, Option<String>>, TransportError> {
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let map = self
            .session
            .remote_sha256(&refs)
            .await
            .map_err(|e| transport_error(&self.name, e))?;
        Ok(map.into_iter().collect())
    }

    async fn fetch(&self, remote: &str) -> Result<Vec<u8>, TransportError> {
        let out = self
            .session
            .exec(
                &format!("cat {}", ez_ssh::shell_quote(remote)),
                ez_ssh::ExecOpts {
                    sudo: true,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| transport_error(&self.name, e))?;
        if out.code != 0 {
            return Err(TransportError::Other {
                host: self.name.clone(),
                message: format!("cannot read {remote}: {}", out.stderr_str().trim()),
            });
        }
        Ok(out.stdout)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_that_cannot_be_reached_is_unreachable_with_one_clear_reason() {
        let refused = transport_error(
            "10.0.0.1",
            SshError::Unreachable {
                host: "10.0.0.1".into(),
                addr: "10.0.0.1:22".into(),
                source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
            },
        );
        assert!(refused.is_unreachable());
        let text = refused.to_string();
        assert!(
            text.starts_with("10.0.0.1: unreachable: no SSH connection to 10.0.0.1:22: "),
            "{text}"
        );
        assert_eq!(text.matches("unreachable").count(), 1, "{text}");

        let silent = transport_error(
            "10.0.0.2",
            SshError::Timeout {
                host: "10.0.0.2".into(),
                op: "connect".into(),
                after: std::time::Duration::from_secs(10),
            },
        );
        assert!(silent.is_unreachable(), "{silent}");
        assert!(silent.to_string().contains("within 10s"), "{silent}");

        // A slow command is not a dead host.
        let slow = transport_error(
            "10.0.0.3",
            SshError::Timeout {
                host: "10.0.0.3".into(),
                op: "command `sleep 100`".into(),
                after: std::time::Duration::from_secs(1),
            },
        );
        assert!(!slow.is_unreachable(), "{slow}");
    }

    /// A cluster-wide jump host that is also an inventory host: that host is
    /// reached directly (through itself the run hung forever), the others
    /// through it with the inventory's key, and two users of one bastion
    /// are two pooled connections.
    #[test]
    fn a_jump_host_that_is_an_inventory_host() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("hosts.yml"),
            "ssh:\n  user: root\n  key: ssh/id_ed25519\n  jump: 10.0.0.1\netcd: [10.0.0.1]\nkube_master: [10.0.0.1]\nkube_node: [10.0.0.2, { ip: 10.0.0.3, ssh: { user: ops, jump: \"admin@10.0.0.1\" } }]\n",
        )
        .unwrap();
        let c = Cluster::load(d.path()).unwrap_or_else(|e| panic!("{e}"));
        let spec = |ip: &str| host_spec(&c, c.host(ip).unwrap());
        assert!(
            spec("10.0.0.1").jump.is_none(),
            "the jump host jumps through itself"
        );
        let s2 = spec("10.0.0.2");
        let j2 = s2.jump.as_deref().expect("through the jump host");
        assert_eq!(
            (j2.addr.as_str(), j2.user(), j2.port()),
            ("10.0.0.1", "root", 22)
        );
        assert_eq!(j2.identity_files, [d.path().join("ssh/id_ed25519")]);
        let s3 = spec("10.0.0.3");
        let j3 = s3.jump.as_deref().expect("own jump");
        assert_eq!(j3.user(), "admin");
        assert_eq!(j3.identity_files, [d.path().join("ssh/id_ed25519")]);
        assert_ne!(ez_ssh::pool_key(j2), ez_ssh::pool_key(j3));
    }

    /// The help and the inventory named --ask-pass and EZCTL_SSH_PASSWORD,
    /// which did not exist: no password ever reached a HostSpec.
    #[test]
    fn passwords_reach_the_host_spec() {
        let vars = |k: &str| match k {
            "EZCTL_SSH_PASSWORD" => Some("ssh-pw".to_string()),
            _ => None,
        };
        let asked = std::cell::RefCell::new(Vec::new());
        let ask = |p: &str| {
            asked.borrow_mut().push(p.to_string());
            Ok("sudo-pw".to_string())
        };
        let creds = resolve_credentials(false, true, vars, ask).unwrap();
        assert_eq!(asked.borrow().as_slice(), ["sudo password: "]);
        let none = resolve_credentials(false, false, |_| None, |_| panic!("asked")).unwrap();
        assert!(none.ssh_password.is_none() && none.sudo_password.is_none());

        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("hosts.yml"),
            "ssh: { user: ops, sudo: true, jump: 10.0.0.9 }\netcd: [10.0.0.1]\nkube_master: [10.0.0.1]\n",
        )
        .unwrap();
        let c = Cluster::load(d.path()).unwrap_or_else(|e| panic!("{e}"));
        let spec = host_spec_with(&c, &c.hosts[0], &creds);
        assert_eq!(spec.password.as_ref().map(Secret::expose), Some("ssh-pw"));
        assert_eq!(spec.sudo, Sudo::Password(Secret::new("sudo-pw")));
        let jump = spec.jump.as_deref().expect("jump");
        assert_eq!(jump.password.as_ref().map(Secret::expose), Some("ssh-pw"));
        // Without passwords: passwordless sudo, no password.
        let spec = host_spec_with(&c, &c.hosts[0], &Credentials::default());
        assert_eq!((spec.password, spec.sudo), (None, Sudo::Passwordless));
    }

    #[test]
    fn jump_hosts() {
        let j = parse_jump("ops@bastion:2222");
        assert_eq!(j.user.as_deref(), Some("ops"));
        assert_eq!(j.addr, "bastion");
        assert_eq!(j.port, Some(2222));
        let j = parse_jump("10.0.0.1");
        assert_eq!(j.user, None);
        assert_eq!(j.port, None);
    }
}
