//! ez-ssh: the parallel SSH executor under every ezctl playbook.
//!
//! One russh connection per host, reused for the whole run, with many
//! channels on it at once (bounded by OpenSSH's MaxSessions). Callers say
//! *what* to run; how a host is reached (jump host, keys, agent, password,
//! sudo) is decided here from a [`HostSpec`] and the run's [`SshOptions`].
//!
//! * [`connect`] → [`Session`]: `exec`/`exec_ok`, `upload` (atomic, skipped
//!   when the sha256 matches), `remote_sha256` and `stat` of many paths in
//!   one round trip, `download`. Cloning a session is cheap.
//! * [`Pool`] + [`fan_out`]: one session per host for the run, work on many
//!   hosts at once, results streamed as they finish.
//! * [`SshConfig`]: fill a host's unset fields from `~/.ssh/config`.
//! * Host keys: strict by default against every known_hosts file in
//!   [`SshOptions::known_hosts`] (plain, `[host]:port`, hashed, `@revoked`);
//!   `accept_new` pins unknown keys into the first file; a changed key is
//!   always refused with both fingerprints ([`SshError::HostKeyChanged`]).
//! * Root: `ExecOpts { sudo: true, .. }` and every file operation run as
//!   root through `sudo` when [`HostSpec::uses_sudo`]; the sudo password is
//!   written to sudo's stdin, never put on a command line.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ez_ssh::SshError> {
//! use ez_ssh::{connect, ExecOpts, HostSpec, SshOptions};
//! let mut host = HostSpec::new("10.0.0.11");
//! host.user = Some("root".into());
//! let session = connect(&host, &SshOptions::default()).await?;
//! let kernel = session.exec_ok("uname -r", ExecOpts::default()).await?.stdout_str();
//! let outcome = session.upload(b"data".as_slice(), "/etc/demo.conf", 0o644, None).await?;
//! # Ok(()) }
//! ```
//!
//! Errors are [`SshError`]; each names the host (its inventory name) and,
//! where relevant, the operation. No error or log line carries a secret.

mod auth;
mod command;
mod connect;
mod error;
mod fanout;
mod host;
mod known_hosts;
mod pattern;
mod secret;
mod session;
mod ssh_config;
mod transfer;

pub use command::shell_quote;
pub use connect::{connect, PREFERRED_CIPHER};
pub use error::SshError;
pub use fanout::{fan_out, pool_key, HostResult, Pool, DEFAULT_FAN_OUT};
pub use host::{HostSpec, SshOptions, Sudo};
pub use secret::Secret;
pub use session::{ExecOpts, ExecOutput, Session};
pub use ssh_config::{HostConfig, SshConfig};
pub use transfer::{FileKind, RemoteStat, Source, UploadOutcome};
