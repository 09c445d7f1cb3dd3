//! What to connect to ([`HostSpec`]) and how ([`SshOptions`]).

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;

/// How a non-root user becomes root on the remote host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Sudo {
    /// Never use sudo: the login user is root, or root is not needed.
    #[default]
    None,
    /// `sudo -n`: the sudoers policy has NOPASSWD for this user.
    Passwordless,
    /// `sudo -S`: the password is written to sudo's stdin, never on a command line.
    Password(Secret),
}

/// One machine to reach. Unset `port`/`user` fall back to ~/.ssh/config
/// (see [`crate::SshConfig::apply`]) and then to 22 / `root`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostSpec {
    /// Inventory id shown in every message, e.g. the IP from hosts.yml.
    pub name: String,
    /// Address or DNS name to connect to (seen from the jump host, if any).
    pub addr: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    /// Private keys to try, in order. Empty: ~/.ssh/id_ed25519, id_ecdsa, id_rsa.
    pub identity_files: Vec<PathBuf>,
    /// Password for first contact, like sshpass.
    pub password: Option<Secret>,
    /// Bastion to tunnel through (direct-tcpip channel).
    pub jump: Option<Box<HostSpec>>,
    pub sudo: Sudo,
}

impl HostSpec {
    /// A host whose name and address are both `addr`, everything else unset.
    pub fn new(addr: impl Into<String>) -> Self {
        let addr = addr.into();
        HostSpec {
            name: addr.clone(),
            addr,
            port: None,
            user: None,
            identity_files: Vec::new(),
            password: None,
            jump: None,
            sudo: Sudo::None,
        }
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(22)
    }

    pub fn user(&self) -> &str {
        self.user.as_deref().unwrap_or("root")
    }

    /// True when root commands must go through sudo.
    pub fn uses_sudo(&self) -> bool {
        self.user() != "root" && self.sudo != Sudo::None
    }
}

/// Connection policy shared by every host of a run.
#[derive(Clone, Debug)]
pub struct SshOptions {
    /// known_hosts files, all read; the FIRST one is where `accept_new` pins
    /// keys (the cluster's own `clusters/<c>/known_hosts`), then typically
    /// `~/.ssh/known_hosts`.
    pub known_hosts: Vec<PathBuf>,
    /// Trust-on-first-use: record unknown host keys instead of refusing them.
    /// A changed key is refused regardless.
    pub accept_new: bool,
    /// Per attempt: TCP connect + handshake + authentication.
    pub connect_timeout: Duration,
    /// Send a keepalive after this much silence; 3 unanswered ones drop the
    /// connection so a dead host surfaces as `Disconnected` instead of a hang.
    pub keepalive_interval: Option<Duration>,
    /// Extra connect attempts after a transient failure, with exponential backoff.
    pub connect_retries: u32,
    /// First backoff delay; doubled per attempt, capped at 5 s.
    pub retry_backoff: Duration,
    /// Use the ssh-agent at `SSH_AUTH_SOCK` for public-key auth.
    pub use_agent: bool,
    /// Channels in flight per connection. OpenSSH's MaxSessions defaults to 10.
    pub max_channels: usize,
}

impl Default for SshOptions {
    fn default() -> Self {
        SshOptions {
            known_hosts: home_dir()
                .map(|h| vec![h.join(".ssh/known_hosts")])
                .unwrap_or_default(),
            accept_new: false,
            connect_timeout: Duration::from_secs(10),
            keepalive_interval: Some(Duration::from_secs(15)),
            connect_retries: 2,
            retry_backoff: Duration::from_millis(250),
            use_agent: true,
            max_channels: 10,
        }
    }
}

pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_sudo_need() {
        let mut h = HostSpec::new("10.0.0.5");
        assert_eq!(
            (h.name.as_str(), h.port(), h.user()),
            ("10.0.0.5", 22, "root")
        );
        h.sudo = Sudo::Passwordless;
        assert!(!h.uses_sudo(), "root never needs sudo");
        h.user = Some("ops".into());
        assert!(h.uses_sudo());
        h.sudo = Sudo::None;
        assert!(!h.uses_sudo());
    }
}
