//! Opening a connection: TCP (or a direct-tcpip channel through a jump
//! host), handshake with our host-key policy, authentication, with a
//! per-attempt timeout and retries with backoff for transient failures.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{Config, Handle, Handler};
use russh::keys::{Algorithm, PublicKeyOrCertificate};
use russh::{cipher, Preferred};

use crate::auth::{authenticate, protocol_or_disconnect};
use crate::error::SshError;
use crate::host::{HostSpec, SshOptions};
use crate::known_hosts::{fingerprint, lookup_name, pin, KnownHosts, Verdict};
use crate::session::Session;

/// Errors raised inside the russh handshake: either russh's own, or our
/// host-key verdict, which must reach the caller unchanged.
#[derive(Debug)]
pub(crate) enum HandlerError {
    Ssh(russh::Error),
    Refused(SshError),
}

impl From<russh::Error> for HandlerError {
    fn from(e: russh::Error) -> Self {
        HandlerError::Ssh(e)
    }
}

/// Our side of the russh session: it only has to judge the host key.
pub(crate) struct ClientHandler {
    host: String,
    lookup: String,
    known: KnownHosts,
    files: Vec<PathBuf>,
    accept_new: bool,
}

impl Handler for ClientHandler {
    type Error = HandlerError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key,
            // We never advertise certificate host-key algorithms.
            PublicKeyOrCertificate::Certificate(_) => {
                return Err(HandlerError::Refused(SshError::Protocol {
                    host: self.host.clone(),
                    op: "host key check".into(),
                    message: "server sent a host certificate, which is not supported".into(),
                }))
            }
        };
        let refuse = |e| Err(HandlerError::Refused(e));
        match self.known.verdict(key) {
            Verdict::Trusted => Ok(true),
            Verdict::Revoked(entry) => refuse(SshError::HostKeyRevoked {
                host: self.host.clone(),
                fp: fingerprint(key),
                file: entry.file,
                line: entry.line,
            }),
            Verdict::Changed(entry) => refuse(SshError::HostKeyChanged {
                host: self.host.clone(),
                lookup: self.lookup.as_str().into(),
                old_fp: fingerprint(&entry.key).into(),
                new_fp: fingerprint(key).into(),
                file: entry.file,
                line: entry.line,
            }),
            Verdict::Unknown => {
                let Some(file) = self.files.first().filter(|_| self.accept_new) else {
                    let hint = match self.files.first() {
                        Some(f) => format!(
                            "verify it, then connect with --accept-new to record it in {}",
                            f.display()
                        ),
                        None => "no known_hosts file is configured to record it in".into(),
                    };
                    return refuse(SshError::HostKeyUnknown {
                        host: self.host.clone(),
                        lookup: self.lookup.clone(),
                        fp: fingerprint(key),
                        hint,
                    });
                };
                match pin(file, &self.lookup, key) {
                    Ok(()) => Ok(true),
                    Err(source) => refuse(SshError::Io {
                        host: self.host.clone(),
                        op: "record host key in".into(),
                        path: file.clone(),
                        source,
                    }),
                }
            }
        }
    }
}

/// Connect and authenticate, retrying transient failures. A jump host is
/// connected first (with its own retries) and kept alive by the session.
pub async fn connect(spec: &HostSpec, opts: &SshOptions) -> Result<Session, SshError> {
    let jump = match spec.jump.as_deref() {
        Some(j) => Some(Box::pin(connect(j, opts)).await?),
        None => None,
    };
    connect_through(spec, opts, jump).await
}

/// Connect `spec` through an already connected jump session (or directly).
/// The [`crate::Pool`] uses this to share one bastion connection.
pub(crate) async fn connect_through(
    spec: &HostSpec,
    opts: &SshOptions,
    jump: Option<Session>,
) -> Result<Session, SshError> {
    let mut attempt: u32 = 0;
    loop {
        let once = connect_once(spec, opts, jump.as_ref());
        let result = match tokio::time::timeout(opts.connect_timeout, once).await {
            Ok(r) => r,
            Err(_) => Err(SshError::Timeout {
                host: spec.name.clone(),
                op: "connect".into(),
                after: opts.connect_timeout,
            }),
        };
        match result {
            Err(e) if e.is_transient() && attempt < opts.connect_retries => {
                tokio::time::sleep(backoff(opts.retry_backoff, attempt)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn backoff(first: Duration, attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX);
    first.saturating_mul(factor).min(Duration::from_secs(5))
}

async fn connect_once(
    spec: &HostSpec,
    opts: &SshOptions,
    jump: Option<&Session>,
) -> Result<Session, SshError> {
    let port = spec.port();
    let lookup = lookup_name(&spec.addr, port);
    let known = KnownHosts::load(&opts.known_hosts, &lookup).map_err(|source| SshError::Io {
        host: spec.name.clone(),
        op: "read known_hosts".into(),
        path: opts.known_hosts.first().cloned().unwrap_or_default(),
        source,
    })?;
    let config = client_config(opts, &known.algorithms());
    let handler = ClientHandler {
        host: spec.name.clone(),
        lookup,
        known,
        files: opts.known_hosts.clone(),
        accept_new: opts.accept_new,
    };
    let handshake = match jump {
        Some(j) => {
            let stream = j.open_direct_tcpip(&spec.name, &spec.addr, port).await?;
            russh::client::connect_stream(config, stream.into_stream(), handler).await
        }
        None => {
            let tcp = tokio::net::TcpStream::connect((spec.addr.as_str(), port))
                .await
                .map_err(|source| SshError::Unreachable {
                    host: spec.name.clone(),
                    addr: format!("{}:{port}", spec.addr),
                    source,
                })?;
            // Small exec round trips matter more than packet coalescing.
            let _ = tcp.set_nodelay(true);
            russh::client::connect_stream(config, tcp, handler).await
        }
    };
    let mut handle: Handle<ClientHandler> = handshake.map_err(|e| match e {
        HandlerError::Refused(err) => err,
        HandlerError::Ssh(e) => protocol_or_disconnect(&spec.name, "handshake", e, false),
    })?;
    authenticate(&mut handle, spec, opts).await?;
    Ok(Session::new(
        spec.clone(),
        handle,
        opts.max_channels,
        jump.cloned(),
    ))
}

/// The cipher ez-ssh offers first (and gets from any OpenSSH server), by
/// its SSH name: what a fair peer is configured with (`ezbench`).
pub const PREFERRED_CIPHER: &str = "aes256-gcm@openssh.com";
const PREFERRED_CIPHER_ALGORITHM: cipher::Name = cipher::AES_256_GCM;

/// Host-key algorithms already recorded for the host go first, as OpenSSH
/// orders them, so a host with several key types presents the one we know.
/// AES-GCM first: with AES-NI (ring) it outruns chacha20-poly1305 on bulk
/// uploads. No compression (it only costs CPU on a LAN).
fn client_config(opts: &SshOptions, known: &[Algorithm]) -> Arc<Config> {
    let mut preferred = Preferred::default();
    if !known.is_empty() {
        let defaults = preferred.key.to_vec();
        let is_known = |a: &Algorithm| {
            known.iter().any(|k| {
                k == a || (matches!(k, Algorithm::Rsa { .. }) && matches!(a, Algorithm::Rsa { .. }))
            })
        };
        let mut keys: Vec<Algorithm> = defaults.iter().filter(|a| is_known(a)).cloned().collect();
        keys.extend(defaults.iter().filter(|a| !is_known(a)).cloned());
        preferred.key = Cow::Owned(keys);
    }
    preferred.cipher = Cow::Borrowed(&[
        PREFERRED_CIPHER_ALGORITHM,
        cipher::CHACHA20_POLY1305,
        cipher::AES_256_CTR,
        cipher::AES_192_CTR,
        cipher::AES_128_CTR,
    ]);
    Arc::new(Config {
        keepalive_interval: opts.keepalive_interval,
        keepalive_max: 3,
        inactivity_timeout: None,
        nodelay: true,
        preferred,
        ..Config::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let b = Duration::from_millis(250);
        assert_eq!(backoff(b, 0), Duration::from_millis(250));
        assert_eq!(backoff(b, 2), Duration::from_millis(1000));
        assert_eq!(backoff(b, 10), Duration::from_secs(5));
        assert_eq!(backoff(b, 100), Duration::from_secs(5));
    }

    #[test]
    fn the_named_preferred_cipher_is_the_one_offered_first() {
        let cfg = client_config(&SshOptions::default(), &[]);
        assert_eq!(cfg.preferred.cipher[0].as_ref(), PREFERRED_CIPHER);
    }

    #[test]
    fn known_key_types_are_asked_for_first() {
        let opts = SshOptions::default();
        let cfg = client_config(&opts, &[Algorithm::Rsa { hash: None }]);
        assert!(
            matches!(cfg.preferred.key[0], Algorithm::Rsa { .. }),
            "{:?}",
            cfg.preferred.key
        );
        assert!(matches!(cfg.preferred.key[1], Algorithm::Rsa { .. }));
        assert!(cfg.preferred.key.contains(&Algorithm::Ed25519));
        let cfg = client_config(&opts, &[]);
        assert_eq!(cfg.preferred.key[0], Algorithm::Ed25519);
        assert!(cfg
            .preferred
            .compression
            .iter()
            .all(|c| c.as_ref() == "none"));
    }
}
