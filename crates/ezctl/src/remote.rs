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
use ez_ssh::{HostSpec, Pool, Session, SshError, SshOptions, Sudo};

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

/// How to reach an inventory host.
pub fn host_spec(host: &Host) -> HostSpec {
    let mut spec = HostSpec::new(host.ip.to_string());
    spec.user = Some(host.ssh.user.clone());
    spec.port = Some(host.ssh.port);
    spec.identity_files = host.ssh.key.iter().cloned().collect();
    if let Some(jump) = &host.ssh.jump {
        spec.jump = Some(Box::new(parse_jump(jump)));
    }
    if host.ssh.sudo {
        spec.sudo = Sudo::Passwordless;
    }
    spec
}

/// `user@host:port` (user and port optional).
fn parse_jump(text: &str) -> HostSpec {
    let (user, rest) = match text.split_once('@') {
        Some((u, r)) => (Some(u.to_string()), r),
        None => (None, text),
    };
    let (addr, port) = match rest.rsplit_once(':') {
        Some((a, p)) if p.parse::<u16>().is_ok() => (a, p.parse().ok()),
        _ => (rest, None),
    };
    let mut spec = HostSpec::new(addr);
    spec.user = user;
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
            .map(|h| (h.ip.to_string(), host_spec(h)))
            .collect();
        SshConnector {
            pool: Pool::new(ssh_options(cluster, accept_new)),
            specs,
        }
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }
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
            .write_file(source, dest, mode.unwrap_or(0o644), owner_ref)
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
