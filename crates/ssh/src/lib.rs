//! ez-ssh: the parallel SSH executor under every ezctl playbook.
//!
//! One russh connection per host, reused for the whole run; many channels
//! on it at once (bounded by OpenSSH's MaxSessions). Host keys are checked
//! strictly against known_hosts files; jump hosts and sudo are handled
//! here so callers only say *what* to run, never *how* to reach a host.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ez_ssh::SshError> {
//! use ez_ssh::{connect, ExecOpts, HostSpec, SshOptions};
//! let mut host = HostSpec::new("10.0.0.11");
//! host.user = Some("root".into());
//! let session = connect(&host, &SshOptions::default()).await?;
//! let out = session.exec_ok("uname -r", ExecOpts::default()).await?;
//! let done = session.upload(b"data".as_slice(), "/etc/demo.conf", 0o644, None).await?;
//! # Ok(()) }
//! ```
//!
//! Errors are [`SshError`]; each names the host and the operation.

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
pub use connect::connect;
pub use error::SshError;
pub use fanout::{fan_out, HostResult, Pool, DEFAULT_FAN_OUT};
pub use host::{HostSpec, SshOptions, Sudo};
pub use secret::Secret;
pub use session::{ExecOpts, ExecOutput, Session};
pub use ssh_config::{HostConfig, SshConfig};
pub use transfer::{FileKind, RemoteStat, Source, UploadOutcome};
