//! User authentication, in OpenSSH's order: identity files (through the
//! agent when the file is encrypted), the agent's other keys, then password
//! and keyboard-interactive. The error lists what was tried, never secrets.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{AuthResult, Handle, KeyboardInteractiveAuthResponse};
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::ssh_key::{PrivateKey, PublicKey};
use russh::keys::{HashAlg, PrivateKeyWithHashAlg};
use russh::{MethodKind, MethodSet};

use crate::connect::ClientHandler;
use crate::error::SshError;
use crate::host::{home_dir, HostSpec, SshOptions};
use crate::known_hosts::fingerprint;

type Agent = AgentClient<tokio::net::UnixStream>;

/// What an identity file turned out to be.
enum KeyFile {
    Usable(Box<PrivateKey>),
    /// Encrypted; the public half (from the file or `<file>.pub`) lets us
    /// ask the agent for it.
    Encrypted(Option<PublicKey>),
    Missing,
    Invalid(String),
}

struct Attempt<'a> {
    handle: &'a mut Handle<ClientHandler>,
    host: &'a str,
    user: &'a str,
    tried: Vec<String>,
    /// Methods the server still accepts, once it has told us.
    allowed: Option<MethodSet>,
}

impl Attempt<'_> {
    fn allows(&self, kind: MethodKind) -> bool {
        self.allowed.as_ref().is_none_or(|set| set.contains(&kind))
    }

    /// Record the result; `Ok(true)` on success.
    fn record(&mut self, result: AuthResult) -> bool {
        match result {
            AuthResult::Success => true,
            AuthResult::Failure {
                remaining_methods, ..
            } => {
                self.allowed = Some(remaining_methods);
                false
            }
        }
    }

    fn lost(&self, e: russh::Error) -> SshError {
        protocol_or_disconnect(self.host, "authentication", e, self.handle.is_closed())
    }

    /// RSA keys sign with rsa-sha2-512/256, never SHA-1. OpenSSH always
    /// announces server-sig-algs; without it we assume sha2-256.
    async fn rsa_hash(&self, key_is_rsa: bool) -> Option<HashAlg> {
        if !key_is_rsa {
            return None;
        }
        match self.handle.best_supported_rsa_hash().await {
            Ok(Some(Some(hash))) => Some(hash),
            _ => Some(HashAlg::Sha256),
        }
    }

    async fn with_key(&mut self, path: &Path, key: Box<PrivateKey>) -> Result<bool, SshError> {
        let hash = self.rsa_hash(key.algorithm().is_rsa()).await;
        self.tried.push(format!("publickey {}", path.display()));
        let result = self
            .handle
            .authenticate_publickey(self.user, PrivateKeyWithHashAlg::new(Arc::from(key), hash))
            .await
            .map_err(|e| self.lost(e))?;
        Ok(self.record(result))
    }

    async fn with_agent(
        &mut self,
        agent: &mut Agent,
        key: &PublicKey,
        label: String,
    ) -> Result<bool, SshError> {
        let hash = self.rsa_hash(key.algorithm().is_rsa()).await;
        self.tried.push(label);
        match self
            .handle
            .authenticate_publickey_with(self.user, key.clone(), hash, agent)
            .await
        {
            Ok(result) => Ok(self.record(result)),
            // The agent declined or failed to sign: the handle stays usable.
            Err(_) if !self.handle.is_closed() => Ok(false),
            Err(_) => Err(SshError::Disconnected {
                host: self.host.to_string(),
                op: "authentication".into(),
            }),
        }
    }

    async fn with_password(&mut self, password: &str) -> Result<bool, SshError> {
        if self.allows(MethodKind::Password) {
            self.tried.push("password".into());
            let result = self
                .handle
                .authenticate_password(self.user, password)
                .await
                .map_err(|e| self.lost(e))?;
            if self.record(result) {
                return Ok(true);
            }
        }
        if !self.allows(MethodKind::KeyboardInteractive) {
            return Ok(false);
        }
        // Servers with PAM often offer only keyboard-interactive; answer
        // every hidden prompt with the password, a bounded number of rounds.
        self.tried.push("keyboard-interactive".into());
        let mut reply = self
            .handle
            .authenticate_keyboard_interactive_start(self.user, None)
            .await
            .map_err(|e| self.lost(e))?;
        for _round in 0..4 {
            match reply {
                KeyboardInteractiveAuthResponse::Success => return Ok(true),
                KeyboardInteractiveAuthResponse::Failure {
                    remaining_methods, ..
                } => {
                    self.allowed = Some(remaining_methods);
                    return Ok(false);
                }
                KeyboardInteractiveAuthResponse::InfoRequest { prompts, .. } => {
                    let answers = prompts
                        .iter()
                        .map(|p| {
                            if p.echo {
                                String::new()
                            } else {
                                password.to_string()
                            }
                        })
                        .collect();
                    reply = self
                        .handle
                        .authenticate_keyboard_interactive_respond(answers)
                        .await
                        .map_err(|e| self.lost(e))?;
                }
            }
        }
        Ok(false)
    }
}

pub(crate) async fn authenticate(
    handle: &mut Handle<ClientHandler>,
    spec: &HostSpec,
    opts: &SshOptions,
) -> Result<(), SshError> {
    let mut at = Attempt {
        handle,
        host: &spec.name,
        user: spec.user(),
        tried: Vec::new(),
        allowed: None,
    };
    let mut agent = if opts.use_agent {
        connect_agent().await
    } else {
        None
    };
    let agent_keys = match agent.as_mut() {
        Some(a) => agent_public_keys(a).await,
        None => Vec::new(),
    };
    let mut agent_used: Vec<PublicKey> = Vec::new();
    let mut needs_passphrase: Option<PathBuf> = None;

    for (path, explicit) in identity_candidates(spec) {
        if !at.allows(MethodKind::PublicKey) {
            break;
        }
        match load_key_file(&path) {
            KeyFile::Usable(key) => {
                if at.with_key(&path, key).await? {
                    return Ok(());
                }
            }
            KeyFile::Encrypted(public) => {
                let in_agent = public.filter(|p| agent_keys.iter().any(|k| same_key(k, p)));
                match (in_agent, agent.as_mut()) {
                    (Some(public), Some(a)) => {
                        let label = format!("agent key for {}", path.display());
                        agent_used.push(public.clone());
                        if at.with_agent(a, &public, label).await? {
                            return Ok(());
                        }
                    }
                    _ => {
                        at.tried.push(format!(
                            "publickey {} (encrypted, not in agent)",
                            path.display()
                        ));
                        needs_passphrase.get_or_insert(path);
                    }
                }
            }
            // Default key names that do not exist are simply not candidates.
            KeyFile::Missing if explicit => {
                at.tried
                    .push(format!("publickey {} (missing)", path.display()));
            }
            KeyFile::Missing => {}
            KeyFile::Invalid(reason) => {
                at.tried.push(format!(
                    "publickey {} (unreadable: {reason})",
                    path.display()
                ));
            }
        }
    }

    if let Some(a) = agent.as_mut() {
        for key in agent_keys
            .iter()
            .filter(|k| !agent_used.iter().any(|u| same_key(u, k)))
        {
            if !at.allows(MethodKind::PublicKey) {
                break;
            }
            let label = format!("agent key {}", fingerprint(key));
            if at.with_agent(a, key, label).await? {
                return Ok(());
            }
        }
    }

    if let Some(password) = &spec.password {
        if at.with_password(password.expose()).await? {
            return Ok(());
        }
    }

    match needs_passphrase {
        Some(path) => Err(SshError::KeyPassphraseNeeded {
            host: spec.name.clone(),
            path,
        }),
        None => Err(SshError::AuthFailed {
            host: spec.name.clone(),
            user: spec.user().to_string(),
            tried: at.tried,
        }),
    }
}

/// Keys to try and whether each was asked for explicitly.
fn identity_candidates(spec: &HostSpec) -> Vec<(PathBuf, bool)> {
    if !spec.identity_files.is_empty() {
        return spec
            .identity_files
            .iter()
            .map(|p| (p.clone(), true))
            .collect();
    }
    match home_dir() {
        Some(home) => ["id_ed25519", "id_ecdsa", "id_rsa"]
            .iter()
            .map(|n| (home.join(".ssh").join(n), false))
            .collect(),
        None => Vec::new(),
    }
}

fn load_key_file(path: &Path) -> KeyFile {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return KeyFile::Missing,
        Err(e) => return KeyFile::Invalid(e.to_string()),
    };
    match russh::keys::decode_secret_key(&text, None) {
        Ok(key) => KeyFile::Usable(Box::new(key)),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            KeyFile::Encrypted(encrypted_public(path, &text))
        }
        // Legacy PEM keys with "Proc-Type: 4,ENCRYPTED" fail to decode
        // without a password in other ways; recognise them by their header.
        Err(_) if text.contains("ENCRYPTED") => KeyFile::Encrypted(encrypted_public(path, &text)),
        Err(e) => KeyFile::Invalid(e.to_string()),
    }
}

/// The public half of an encrypted key: OpenSSH's format keeps it in clear;
/// otherwise look for `<key>.pub`.
fn encrypted_public(path: &Path, text: &str) -> Option<PublicKey> {
    if let Ok(key) = PrivateKey::from_openssh(text) {
        return Some(key.public_key().clone());
    }
    let mut pub_path = path.as_os_str().to_owned();
    pub_path.push(".pub");
    russh::keys::load_public_key(PathBuf::from(pub_path)).ok()
}

async fn connect_agent() -> Option<Agent> {
    std::env::var_os("SSH_AUTH_SOCK")?;
    AgentClient::connect_env().await.ok()
}

async fn agent_public_keys(agent: &mut Agent) -> Vec<PublicKey> {
    match agent.request_identities().await {
        Ok(ids) => ids
            .into_iter()
            .filter_map(|id| match id {
                AgentIdentity::PublicKey { key, .. } => Some(key),
                AgentIdentity::Certificate { .. } => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn same_key(a: &PublicKey, b: &PublicKey) -> bool {
    a.key_data() == b.key_data()
}

/// A russh error during a step: if the connection is gone it is a
/// disconnect, otherwise a protocol problem.
pub(crate) fn protocol_or_disconnect(
    host: &str,
    op: &str,
    e: russh::Error,
    closed: bool,
) -> SshError {
    let disconnected = closed
        || matches!(
            e,
            russh::Error::Disconnect
                | russh::Error::HUP
                | russh::Error::SendError
                | russh::Error::RecvError
                | russh::Error::KeepaliveTimeout
                | russh::Error::IO(_)
        );
    if disconnected {
        SshError::Disconnected {
            host: host.to_string(),
            op: op.to_string(),
        }
    } else {
        SshError::Protocol {
            host: host.to_string(),
            op: op.to_string(),
            message: e.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keygen(dir: &Path, name: &str, kind: &str, passphrase: &str) -> Option<PathBuf> {
        let path = dir.join(name);
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", kind, "-N", passphrase, "-C", "", "-f"])
            .arg(&path)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        ok.then_some(path)
    }

    #[test]
    fn key_files_are_classified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let Some(plain) = keygen(dir.path(), "plain", "ed25519", "") else {
            ez_lab::testing::skip("ssh-keygen not available (apt-get install openssh-client)");
            return;
        };
        assert!(matches!(load_key_file(&plain), KeyFile::Usable(_)));
        let enc = keygen(dir.path(), "enc", "ecdsa", "pass phrase").expect("ssh-keygen");
        let expected = russh::keys::load_public_key(dir.path().join("enc.pub")).expect("pub");
        match load_key_file(&enc) {
            KeyFile::Encrypted(Some(public)) => assert!(same_key(&public, &expected)),
            _ => panic!("encrypted key not recognised with its public half"),
        }
        assert!(matches!(
            load_key_file(&dir.path().join("nope")),
            KeyFile::Missing
        ));
        std::fs::write(dir.path().join("junk"), "not a key").expect("write");
        assert!(matches!(
            load_key_file(&dir.path().join("junk")),
            KeyFile::Invalid(_)
        ));
        let rsa = keygen(dir.path(), "rsa", "rsa", "").expect("ssh-keygen");
        match load_key_file(&rsa) {
            KeyFile::Usable(k) => assert!(k.algorithm().is_rsa()),
            _ => panic!("rsa key not loaded"),
        }
    }

    #[test]
    fn explicit_keys_replace_defaults() {
        let mut spec = HostSpec::new("h");
        spec.identity_files = vec![PathBuf::from("/a"), PathBuf::from("/b")];
        let c = identity_candidates(&spec);
        assert_eq!(
            c,
            vec![(PathBuf::from("/a"), true), (PathBuf::from("/b"), true)]
        );
    }
}
