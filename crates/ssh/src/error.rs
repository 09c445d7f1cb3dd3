//! The one error type of this crate. Every variant names the host (the
//! inventory name) so a fan-out over 100 machines stays readable, and none
//! ever carries a password, passphrase or key material.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while talking to one host.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// TCP connect failed: no route, connection refused, name not resolved.
    #[error("{host}: unreachable at {addr}: {source}")]
    Unreachable {
        host: String,
        addr: String,
        #[source]
        source: std::io::Error,
    },

    /// A connect attempt or a remote command took longer than allowed.
    #[error("{host}: {op} timed out after {}", fmt_duration(*after))]
    Timeout {
        host: String,
        op: String,
        after: Duration,
    },

    /// The server refused every authentication method we had.
    #[error(
        "{host}: authentication failed for user {user} (tried: {})",
        tried_list(tried)
    )]
    AuthFailed {
        host: String,
        user: String,
        /// Methods and key files tried, e.g. `publickey /root/.ssh/id_ed25519`.
        tried: Vec<String>,
    },

    /// A private key is encrypted and neither the ssh-agent held it nor did
    /// any other method succeed.
    #[error(
        "{host}: key {} is encrypted and a passphrase is needed: add it to ssh-agent (ssh-add {}) or use an unencrypted key",
        path.display(), path.display()
    )]
    KeyPassphraseNeeded { host: String, path: PathBuf },

    /// A key file exists but could not be parsed.
    #[error("{host}: cannot load key {}: {reason}", path.display())]
    KeyLoad {
        host: String,
        path: PathBuf,
        reason: String,
    },

    /// The server presented a different key than the one recorded: possible
    /// man-in-the-middle, or the machine was reinstalled. Never accepted.
    #[error(
        "{host}: HOST KEY CHANGED (possible man-in-the-middle, or the machine was reinstalled): \
         recorded {old_fp} in {}:{line}, server now presents {new_fp}; \
         if the change is expected remove the old entry with `ssh-keygen -R '{lookup}' -f {}` and connect again with --accept-new",
        file.display(), file.display()
    )]
    HostKeyChanged {
        host: String,
        /// The name looked up in known_hosts (`addr` or `[addr]:port`).
        lookup: Box<str>,
        /// `SHA256:...` of the recorded key.
        old_fp: Box<str>,
        /// `SHA256:...` of the key the server presented.
        new_fp: Box<str>,
        file: PathBuf,
        line: usize,
    },

    /// The server's key is in none of the known_hosts files.
    #[error("{host}: unknown host key {fp} for {lookup}; {hint}")]
    HostKeyUnknown {
        host: String,
        lookup: String,
        fp: String,
        hint: String,
    },

    /// The key is marked `@revoked` in a known_hosts file.
    #[error("{host}: host key {fp} is marked @revoked in {}:{line}", file.display())]
    HostKeyRevoked {
        host: String,
        fp: String,
        file: PathBuf,
        line: usize,
    },

    /// A channel ended without an exit status while the connection is still up.
    #[error("{host}: channel closed during {op}")]
    ChannelClosed { host: String, op: String },

    /// The connection went away (sshd died, network dropped, keepalive expired).
    #[error("{host}: disconnected during {op}")]
    Disconnected { host: String, op: String },

    /// A remote command exited non-zero where success was required.
    #[error("{host}: {op} failed with exit code {code}: {stderr_tail}")]
    RemoteCommand {
        host: String,
        op: String,
        code: i32,
        /// The last few lines of stderr.
        stderr_tail: String,
    },

    /// sudo refused to run: wrong password, or a password is required but
    /// the host is configured as passwordless.
    #[error("{host}: sudo failed for user {user}: {reason}")]
    SudoFailed {
        host: String,
        user: String,
        reason: String,
    },

    /// Local or remote file problem.
    #[error("{host}: {op} {}: {source}", path.display())]
    Io {
        host: String,
        op: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The caller passed something we refuse to turn into a shell command.
    #[error("{host}: invalid input: {message}")]
    InvalidInput { host: String, message: String },

    /// The SSH protocol itself failed (negotiation, bad packet).
    #[error("{host}: ssh protocol error during {op}: {message}")]
    Protocol {
        host: String,
        op: String,
        message: String,
    },

    /// An ssh_config file could not be parsed.
    #[error("{}:{line}: {message}", path.display())]
    Config {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl SshError {
    /// The inventory name of the host this error is about (empty for config errors).
    pub fn host(&self) -> &str {
        match self {
            SshError::Unreachable { host, .. }
            | SshError::Timeout { host, .. }
            | SshError::AuthFailed { host, .. }
            | SshError::KeyPassphraseNeeded { host, .. }
            | SshError::KeyLoad { host, .. }
            | SshError::HostKeyChanged { host, .. }
            | SshError::HostKeyUnknown { host, .. }
            | SshError::HostKeyRevoked { host, .. }
            | SshError::ChannelClosed { host, .. }
            | SshError::Disconnected { host, .. }
            | SshError::RemoteCommand { host, .. }
            | SshError::SudoFailed { host, .. }
            | SshError::Io { host, .. }
            | SshError::InvalidInput { host, .. }
            | SshError::Protocol { host, .. } => host,
            SshError::Config { .. } => "",
        }
    }

    /// True for failures where trying to connect again may help. Auth and
    /// host-key failures are never retried: they will not fix themselves and
    /// retrying auth can trip fail2ban-like protections.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            SshError::Unreachable { .. } | SshError::Timeout { .. } | SshError::Disconnected { .. }
        )
    }
}

fn tried_list(tried: &[String]) -> String {
    if tried.is_empty() {
        "no usable method: no key, agent or password".to_string()
    } else {
        tried.join(", ")
    }
}

fn fmt_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// Last `max_lines` lines of `bytes`, lossy UTF-8, capped in length so an
/// error message stays one screen.
pub(crate) fn tail(bytes: &[u8], max_lines: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.trim_end().lines().collect();
    let start = lines.len().saturating_sub(max_lines);
    let mut out = lines[start..].join("\n");
    const MAX: usize = 2000;
    if out.len() > MAX {
        let mut cut = out.len() - MAX;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = format!("...{}", &out[cut..]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_changed_message_names_everything_needed_to_fix_it() {
        let e = SshError::HostKeyChanged {
            host: "10.0.0.1".into(),
            lookup: "[10.0.0.1]:2222".into(),
            old_fp: "SHA256:old".into(),
            new_fp: "SHA256:new".into(),
            file: PathBuf::from("/etc/ezctl/clusters/c/known_hosts"),
            line: 3,
        };
        let s = e.to_string();
        assert!(s.starts_with("10.0.0.1: HOST KEY CHANGED"), "{s}");
        assert!(s.contains("SHA256:old") && s.contains("SHA256:new"), "{s}");
        assert!(
            s.contains("ssh-keygen -R '[10.0.0.1]:2222' -f /etc/ezctl/clusters/c/known_hosts"),
            "{s}"
        );
        assert!(s.contains("known_hosts:3"), "{s}");
    }

    #[test]
    fn auth_failed_lists_methods() {
        let e = SshError::AuthFailed {
            host: "h1".into(),
            user: "ops".into(),
            tried: vec!["publickey /k".into(), "password".into()],
        };
        assert_eq!(
            e.to_string(),
            "h1: authentication failed for user ops (tried: publickey /k, password)"
        );
        assert_eq!(e.host(), "h1");
        assert!(!e.is_transient());
    }

    #[test]
    fn tail_keeps_last_lines() {
        assert_eq!(tail(b"a\nb\nc\nd\n", 2), "c\nd");
        assert_eq!(tail(b"", 2), "");
        let long = "x".repeat(5000);
        assert!(tail(long.as_bytes(), 1).len() <= 2003);
    }

    #[test]
    fn timeout_message_has_duration() {
        let e = SshError::Timeout {
            host: "h".into(),
            op: "command `sleep`".into(),
            after: Duration::from_millis(1500),
        };
        assert_eq!(e.to_string(), "h: command `sleep` timed out after 1.5s");
        assert!(e.is_transient());
    }
}
