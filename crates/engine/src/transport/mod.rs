//! How the engine reaches a host. The engine only talks to `dyn Transport`;
//! [`LocalTransport`] runs on the controller, an SSH adapter is plugged in by
//! the binary through a [`Connector`].

mod batch;
mod local;
mod stat;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use batch::BatchCommand;
pub(crate) use local::sha256_file;
pub use local::{LocalConnector, LocalTransport};
pub use stat::{FileKind, FileStat};

use crate::targets::TargetHost;

/// Options of one command run.
#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    /// Written to the command's standard input, then closed.
    pub stdin: Option<Vec<u8>>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
    /// Kill the command (and its process group) after this long.
    pub timeout: Option<Duration>,
}

/// What a command returned. `code` is -1 when it was killed by a signal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == 0
    }
}

/// The content of a [`Transport::put`]: bytes in memory, or a controller file
/// that the transport streams (large binaries are never read whole).
#[derive(Debug, Clone)]
pub enum PutSource {
    Bytes(Arc<Vec<u8>>),
    Path(PathBuf),
}

/// A transport failure. Every variant names the host. `Unreachable` and
/// `Disconnected` mean the host is gone for the rest of the run.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    #[error("{host}: unreachable: {reason}")]
    Unreachable { host: String, reason: String },
    #[error("{host}: connection lost: {reason}")]
    Disconnected { host: String, reason: String },
    #[error("{host}: {what} timed out after {:.1}s", after.as_secs_f64())]
    Timeout {
        host: String,
        what: String,
        after: Duration,
    },
    #[error("{host}: {message}")]
    Other { host: String, message: String },
}

impl TransportError {
    pub fn host(&self) -> &str {
        match self {
            TransportError::Unreachable { host, .. }
            | TransportError::Disconnected { host, .. }
            | TransportError::Timeout { host, .. }
            | TransportError::Other { host, .. } => host,
        }
    }

    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            TransportError::Unreachable { .. } | TransportError::Disconnected { .. }
        )
    }
}

/// One host's command channel. Object safe, `Send + Sync`; one value is shared
/// by every task of a host, so implementations multiplex (e.g. SSH channels).
///
/// Commands are shell command lines (run by `sh -c` or the login shell).
#[async_trait]
pub trait Transport: Send + Sync {
    /// The host this transport reaches (used in errors).
    fn host(&self) -> &str;

    async fn exec(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, TransportError>;

    /// Write `dest` atomically (temporary file in the same directory, then
    /// rename), creating missing parent directories. `mode` `None` keeps the
    /// mode of an existing file, or 0644. `owner` is `user` or `user:group`.
    async fn put(
        &self,
        src: PutSource,
        dest: &str,
        mode: Option<u32>,
        owner: Option<&str>,
    ) -> Result<(), TransportError>;

    /// The sha256 (hex) of every path that is a regular file, `None` for the
    /// others, in one round trip.
    async fn sha256_many(
        &self,
        paths: &[String],
    ) -> Result<BTreeMap<String, Option<String>>, TransportError> {
        let stats = self.stat_many(paths).await?;
        Ok(stats
            .into_iter()
            .map(|(p, s)| (p, s.and_then(|s| s.sha256)))
            .collect())
    }

    /// Kind, mode, owner, size and (for regular files) sha256 of every path,
    /// `None` when absent, in one round trip. The default runs one shell script
    /// through [`Transport::exec`], so an adapter gets it for free.
    async fn stat_many(
        &self,
        paths: &[String],
    ) -> Result<BTreeMap<String, Option<FileStat>>, TransportError> {
        stat_via_script(self, paths, true).await
    }

    /// Run `cmds` one after another in one round trip, stopping after the
    /// first that fails; one output per command that ran. The default runs
    /// one framed script through [`Transport::exec`] (see `batch.rs`).
    async fn exec_batch(&self, cmds: &[BatchCommand]) -> Result<Vec<ExecOutput>, TransportError> {
        if cmds.is_empty() {
            return Ok(Vec::new());
        }
        let marker = batch::marker();
        let out = self
            .exec(&batch::script(&marker, cmds), ExecOpts::default())
            .await?;
        let err = |message: String| TransportError::Other {
            host: self.host().to_string(),
            message,
        };
        let outs = batch::parse(&marker, cmds.len(), &out.stdout, &out.stderr)
            .map_err(|e| err(format!("batch of {} commands: {e}", cmds.len())))?;
        let stopped_by_failure = outs.last().is_some_and(|o| !o.success());
        if outs.len() < cmds.len() && !stopped_by_failure {
            let next = &cmds[outs.len()].cmd;
            return Err(err(format!(
                "batch of {} commands cut off (exit {}) while running `{}`: {}",
                cmds.len(),
                out.code,
                next.lines().next().unwrap_or_default(),
                batch::tail(&marker, &out.stderr)
            )));
        }
        Ok(outs)
    }

    /// The whole content of a remote file.
    async fn fetch(&self, remote: &str) -> Result<Vec<u8>, TransportError>;
}

/// The stat script through `t.exec`; `store_cache` false leaves the host's
/// hash cache as it is (it is still read).
async fn stat_via_script<T: Transport + ?Sized>(
    t: &T,
    paths: &[String],
    store_cache: bool,
) -> Result<BTreeMap<String, Option<FileStat>>, TransportError> {
    if paths.is_empty() {
        return Ok(BTreeMap::new());
    }
    let out = t
        .exec(&stat::script_with(paths, store_cache), ExecOpts::default())
        .await?;
    if !out.success() {
        return Err(TransportError::Other {
            host: t.host().to_string(),
            message: format!(
                "stat of {} paths failed: {}",
                paths.len(),
                out.stderr.trim()
            ),
        });
    }
    stat::parse(paths, &out.stdout).map_err(|message| TransportError::Other {
        host: t.host().to_string(),
        message,
    })
}

/// The transport of a dry run: everything goes to the host's own transport,
/// except that file checks only read the host's hash cache. A dry run
/// writes nothing anywhere, not even ezctl's own cache.
pub struct DryRunTransport(pub Arc<dyn Transport>);

#[async_trait]
impl Transport for DryRunTransport {
    fn host(&self) -> &str {
        self.0.host()
    }

    async fn exec(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, TransportError> {
        self.0.exec(cmd, opts).await
    }

    async fn put(
        &self,
        src: PutSource,
        dest: &str,
        mode: Option<u32>,
        owner: Option<&str>,
    ) -> Result<(), TransportError> {
        self.0.put(src, dest, mode, owner).await
    }

    async fn stat_many(
        &self,
        paths: &[String],
    ) -> Result<BTreeMap<String, Option<FileStat>>, TransportError> {
        stat_via_script(self, paths, false).await
    }

    async fn exec_batch(&self, cmds: &[BatchCommand]) -> Result<Vec<ExecOutput>, TransportError> {
        self.0.exec_batch(cmds).await
    }

    async fn fetch(&self, remote: &str) -> Result<Vec<u8>, TransportError> {
        self.0.fetch(remote).await
    }
}

/// Opens the transport of a host, once per run and host. An error from here
/// (typically `Unreachable`) fails the host's first unit and skips the rest.
#[async_trait]
pub trait Connector: Send + Sync {
    async fn connect(&self, host: &TargetHost) -> Result<Arc<dyn Transport>, TransportError>;
}

/// Single-quote for POSIX sh.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quote_survives_quotes() {
        assert_eq!(shell_quote("a'b"), r"'a'\''b'");
        assert_eq!(shell_quote(""), "''");
    }
}
