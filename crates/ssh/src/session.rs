//! One authenticated connection to one host, shared by every task of a run.
//! Cloning is cheap (an `Arc`); channels are opened per operation and at
//! most `max_channels` are in flight, the rest wait their turn.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use russh::client::{Handle, Msg};
use russh::{Channel, ChannelMsg, ChannelOpenFailure, ChannelWriteHalf, Sig};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::Semaphore;

use crate::auth::protocol_or_disconnect;
use crate::command::{random_marker, shell_quote, valid_env_name, with_env, wrap_sudo};
use crate::connect::ClientHandler;
use crate::error::{tail, SshError};
use crate::host::{HostSpec, Sudo};

/// Options of one [`Session::exec`].
#[derive(Debug, Clone, Default)]
pub struct ExecOpts {
    /// Bytes written to the command's stdin, then EOF.
    pub stdin: Option<Vec<u8>>,
    /// Exported in the remote shell before the command (names must be
    /// shell identifiers). Values never appear in error messages.
    pub env: Vec<(String, String)>,
    /// Kill the command after this long: coreutils `timeout` on the host
    /// (TERM to its process group, KILL 2 s later), then [`SshError::Timeout`].
    pub timeout: Option<Duration>,
    /// Run as root through sudo when the host is configured for it
    /// ([`HostSpec::uses_sudo`]); no effect for root or `Sudo::None`.
    pub sudo: bool,
}

/// What a remote command produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit status; -1 when the command was killed by a signal.
    pub code: i32,
    /// Signal name (`KILL`, `TERM`, ...) when killed by a signal.
    pub signal: Option<String>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.code == 0
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// Keep at most this much stderr: enough for any diagnosis, bounded memory.
const STDERR_CAP: usize = 1 << 20;
/// How much longer than the remote `timeout` our own timer waits.
const TIMEOUT_BACKSTOP: Duration = Duration::from_secs(5);
/// Channel opens refused by the server before giving up (about 2 s in all).
const OPEN_ATTEMPTS: u32 = 10;
/// Chunk read from local sources; russh splits it into packets.
const CHUNK: usize = 256 * 1024;

/// A shared connection. See the module docs.
#[derive(Clone)]
pub struct Session {
    inner: Arc<Inner>,
}

struct Inner {
    spec: HostSpec,
    handle: Handle<ClientHandler>,
    slots: Semaphore,
    /// Payload bytes written to channels (stdin of commands, uploads).
    bytes_sent: AtomicU64,
    /// Session channels opened (one per exec/upload/stat/... call).
    channels_opened: AtomicU64,
    /// Keeps the bastion connection alive as long as we tunnel through it.
    _jump: Option<Session>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("host", &self.inner.spec.name)
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Where a command's stdout goes.
pub(crate) enum Sink<'a> {
    Buffer(Vec<u8>),
    /// Streamed to a local file (named for error messages).
    Writer(&'a mut (dyn AsyncWrite + Send + Unpin), &'a Path),
}

impl Sink<'_> {
    fn path(&self) -> &Path {
        match self {
            Sink::Buffer(_) => Path::new("(memory)"),
            Sink::Writer(_, path) => path,
        }
    }
}

/// A command's stdin, with the local file it comes from (for errors).
pub(crate) struct Input<'a> {
    pub reader: &'a mut (dyn AsyncRead + Send + Unpin),
    pub path: Option<&'a Path>,
}

/// Why feeding stdin stopped early.
enum FeedError {
    /// Reading the local source failed: our problem, reported as such.
    Local(std::io::Error),
    /// The channel no longer takes data: the exit status tells the rest.
    Remote,
}

/// What a raw run returns; stdout is empty when streamed to a writer.
pub(crate) type RawOutput = ExecOutput;

impl Session {
    pub(crate) fn new(
        spec: HostSpec,
        handle: Handle<ClientHandler>,
        max_channels: usize,
        jump: Option<Session>,
    ) -> Self {
        Session {
            inner: Arc::new(Inner {
                spec,
                handle,
                slots: Semaphore::new(max_channels.max(1)),
                bytes_sent: AtomicU64::new(0),
                channels_opened: AtomicU64::new(0),
                _jump: jump,
            }),
        }
    }

    /// The inventory name, as used in every error.
    pub fn host(&self) -> &str {
        &self.inner.spec.name
    }

    pub fn spec(&self) -> &HostSpec {
        &self.inner.spec
    }

    /// True once the connection is gone (sshd died, keepalive expired, closed).
    pub fn is_closed(&self) -> bool {
        self.inner.handle.is_closed()
    }

    /// Payload bytes this session has sent (command stdin and uploads):
    /// lets callers and tests see that an unchanged upload sent nothing.
    pub fn bytes_sent(&self) -> u64 {
        self.inner.bytes_sent.load(Ordering::Relaxed)
    }

    /// Channels this session has opened: each operation is one, so callers
    /// can verify that a batched call really was a single round trip.
    pub fn channels_opened(&self) -> u64 {
        self.inner.channels_opened.load(Ordering::Relaxed)
    }

    /// Politely end the connection. Other clones see `is_closed()`.
    pub async fn close(&self) {
        let _ = self
            .inner
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }

    /// Run `cmd` through the login shell (or `sh` under sudo) and collect
    /// its output. A non-zero exit is not an error here; see [`Self::exec_ok`].
    pub async fn exec(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, SshError> {
        for (name, _) in &opts.env {
            if !valid_env_name(name) {
                return Err(self.invalid(format!("environment variable name `{name}`")));
            }
        }
        let mut script = with_env(cmd, &opts.env);
        let op = describe(cmd);
        // sshd ignores "signal" requests on root logins (no privilege
        // separation there), so a client-side timeout alone would leave the
        // command running. coreutils `timeout` kills its whole process
        // group on the host (TERM, then KILL 2 s later) even if we vanish;
        // our own timer, a little later, is the backstop.
        let backstop = opts.timeout.map(|t| {
            script = format!(
                "timeout -k 2 {:.3} sh -c {}",
                t.as_secs_f64(),
                shell_quote(&script)
            );
            t + TIMEOUT_BACKSTOP
        });
        let stdin = opts.stdin.unwrap_or_default();
        let mut sink = Sink::Buffer(Vec::new());
        let started = std::time::Instant::now();
        let out = self
            .run(
                &op,
                &script,
                opts.sudo,
                Input {
                    reader: &mut stdin.as_slice(),
                    path: None,
                },
                &mut sink,
                backstop,
            )
            .await;
        match (out, opts.timeout) {
            // 124 is `timeout`'s "it timed out"; the clock rules out a
            // command that merely exits 124 by itself.
            (Ok(o), Some(t)) if o.code == 124 && started.elapsed() >= t => Err(SshError::Timeout {
                host: self.host().to_string(),
                op,
                after: t,
            }),
            (Err(SshError::Timeout { host, op, .. }), Some(t)) => {
                Err(SshError::Timeout { host, op, after: t })
            }
            (other, _) => other,
        }
    }

    /// [`Self::exec`], but a non-zero exit becomes [`SshError::RemoteCommand`]
    /// naming the command (so keep secrets out of it: pass them via stdin or env).
    pub async fn exec_ok(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, SshError> {
        let out = self.exec(cmd, opts).await?;
        self.require_success(&describe(cmd), out)
    }

    pub(crate) fn require_success(
        &self,
        op: &str,
        out: ExecOutput,
    ) -> Result<ExecOutput, SshError> {
        if out.success() {
            return Ok(out);
        }
        Err(SshError::RemoteCommand {
            host: self.host().to_string(),
            op: op.to_string(),
            code: out.code,
            stderr_tail: tail(&out.stderr, 5),
        })
    }

    pub(crate) fn invalid(&self, message: String) -> SshError {
        SshError::InvalidInput {
            host: self.host().to_string(),
            message,
        }
    }

    /// The sudo mode to use for a root operation on this host.
    fn sudo_mode(&self, want_root: bool) -> &Sudo {
        if want_root && self.inner.spec.uses_sudo() {
            &self.inner.spec.sudo
        } else {
            &Sudo::None
        }
    }

    /// Open a session channel, waiting for a free slot first.
    ///
    /// sshd frees a session slot only after its next main-loop pass over
    /// our CLOSE, so an open sent right after a close can still hit
    /// MaxSessions ("no more sessions"). Such refusals are retried briefly.
    async fn open_channel(
        &self,
        op: &str,
    ) -> Result<(Channel<Msg>, tokio::sync::SemaphorePermit<'_>), SshError> {
        let permit = self
            .inner
            .slots
            .acquire()
            .await
            .map_err(|_| self.disconnected(op))?;
        self.inner.channels_opened.fetch_add(1, Ordering::Relaxed);
        let mut delay = Duration::from_millis(5);
        let mut attempts = 0;
        loop {
            match self.inner.handle.channel_open_session().await {
                Ok(ch) => return Ok((ch, permit)),
                Err(russh::Error::ChannelOpenFailure(reason)) => {
                    attempts += 1;
                    if attempts >= OPEN_ATTEMPTS {
                        return Err(SshError::Protocol {
                            host: self.host().to_string(),
                            op: op.to_string(),
                            message: format!(
                                "server refused a channel {attempts} times ({reason:?}); \
                                 is sshd's MaxSessions below max_channels?"
                            ),
                        });
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_millis(500));
                }
                Err(e) => return Err(protocol_or_disconnect(self.host(), op, e, self.is_closed())),
            }
        }
    }

    /// A session channel running the sftp subsystem (benchmark only).
    #[cfg(feature = "bench-sftp")]
    pub(crate) async fn open_sftp_channel(&self, op: &str) -> Result<Channel<Msg>, SshError> {
        let (channel, _permit) = self.open_channel(op).await?;
        channel
            .request_subsystem(true, "sftp")
            .await
            .map_err(|e| protocol_or_disconnect(self.host(), op, e, self.is_closed()))?;
        Ok(channel)
    }

    /// A TCP tunnel through this host to `addr:port` (for jump hosts).
    pub(crate) async fn open_direct_tcpip(
        &self,
        target_name: &str,
        addr: &str,
        port: u16,
    ) -> Result<Channel<Msg>, SshError> {
        match self
            .inner
            .handle
            .channel_open_direct_tcpip(addr, u32::from(port), "127.0.0.1", 0)
            .await
        {
            Ok(ch) => Ok(ch),
            Err(russh::Error::ChannelOpenFailure(reason)) => Err(SshError::Unreachable {
                host: target_name.to_string(),
                addr: format!("{addr}:{port} via {}", self.host()),
                source: std::io::Error::new(
                    match reason {
                        ChannelOpenFailure::ConnectFailed => std::io::ErrorKind::ConnectionRefused,
                        _ => std::io::ErrorKind::PermissionDenied,
                    },
                    format!("jump host refused the tunnel: {reason:?}"),
                ),
            }),
            Err(e) => Err(protocol_or_disconnect(
                self.host(),
                "opening a tunnel",
                e,
                self.is_closed(),
            )),
        }
    }

    fn disconnected(&self, op: &str) -> SshError {
        SshError::Disconnected {
            host: self.host().to_string(),
            op: op.to_string(),
        }
    }

    /// The engine under exec/upload/download: one channel, the script
    /// (sudo-wrapped when `root`), stdin streamed from `input` while stdout
    /// goes to `sink` and stderr is collected, all under an optional timeout.
    pub(crate) async fn run(
        &self,
        op: &str,
        script: &str,
        root: bool,
        input: Input<'_>,
        sink: &mut Sink<'_>,
        timeout: Option<Duration>,
    ) -> Result<RawOutput, SshError> {
        let Input {
            reader: input,
            path: input_path,
        } = input;
        let sudo = self.sudo_mode(root);
        let wrapped = wrap_sudo(script, sudo, &random_marker());
        let (channel, _permit) = self.open_channel(op).await?;
        let (mut reader, writer) = channel.split();
        if let Err(e) = writer.exec(true, wrapped.command.as_bytes()).await {
            return Err(protocol_or_disconnect(self.host(), op, e, self.is_closed()));
        }
        let mut local_read_error: Option<std::io::Error> = None;
        let drive = async {
            let mut collected = Collected::default();
            let read_result = {
                let feed = self.feed(&writer, &wrapped.stdin_prefix, input);
                tokio::pin!(feed);
                let mut fed = false;
                let read = collected.read_all(&mut reader, sink);
                tokio::pin!(read);
                // Read until the channel closes, feeding stdin meanwhile. A
                // remote failure to take stdin shows up in the exit status;
                // a local read failure sends EOF so the remote command ends
                // (an upload script then sees a short file and cleans up).
                loop {
                    tokio::select! {
                        r = &mut feed, if !fed => {
                            fed = true;
                            if let Err(FeedError::Local(e)) = r {
                                local_read_error = Some(e);
                                let _ = writer.eof().await;
                            }
                        }
                        r = &mut read => break r,
                    }
                }
            };
            read_result.map(|()| collected)
        };
        let finished = match timeout {
            Some(t) => tokio::time::timeout(t, drive).await.ok(),
            None => Some(drive.await),
        };
        let Some(result) = finished else {
            // Best effort: OpenSSH delivers the signal to the command; the
            // close frees the channel slot either way.
            let _ = writer.signal(Sig::KILL).await;
            let _ = writer.close().await;
            return Err(SshError::Timeout {
                host: self.host().to_string(),
                op: op.to_string(),
                after: timeout.unwrap_or_default(),
            });
        };
        let _ = writer.close().await;
        if let Some(source) = local_read_error {
            return Err(SshError::Io {
                host: self.host().to_string(),
                op: format!("{op}: read"),
                path: input_path.map(Path::to_path_buf).unwrap_or_default(),
                source,
            });
        }
        let collected = result.map_err(|source| SshError::Io {
            host: self.host().to_string(),
            op: format!("{op}: write"),
            path: sink.path().to_path_buf(),
            source,
        })?;
        let out = collected.into_output(sink).ok_or_else(|| {
            if self.is_closed() {
                self.disconnected(op)
            } else {
                SshError::ChannelClosed {
                    host: self.host().to_string(),
                    op: op.to_string(),
                }
            }
        })?;
        self.check_sudo(sudo, out)
    }

    async fn feed(
        &self,
        writer: &ChannelWriteHalf<Msg>,
        prefix: &[u8],
        input: &mut (dyn AsyncRead + Send + Unpin),
    ) -> Result<(), FeedError> {
        if !prefix.is_empty() {
            writer
                .data_bytes(prefix.to_vec())
                .await
                .map_err(|_| FeedError::Remote)?;
        }
        loop {
            let mut buf = vec![0u8; CHUNK];
            let n = read_full(input, &mut buf).await.map_err(FeedError::Local)?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            writer
                .data_bytes(buf)
                .await
                .map_err(|_| FeedError::Remote)?;
            self.inner.bytes_sent.fetch_add(n as u64, Ordering::Relaxed);
        }
        writer.eof().await.map_err(|_| FeedError::Remote)
    }

    /// sudo's own failures become a typed error instead of exit code 1.
    fn check_sudo(&self, sudo: &Sudo, out: ExecOutput) -> Result<ExecOutput, SshError> {
        if matches!(sudo, Sudo::None) || out.code != 1 {
            return Ok(out);
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        let reason = if stderr.contains("incorrect password attempt") {
            "the sudo password was rejected"
        } else if stderr.contains("a password is required") {
            "sudo requires a password but the host is configured for passwordless sudo"
        } else if stderr.contains("is not in the sudoers file")
            || stderr.contains("is not allowed to execute")
        {
            "the user may not run commands as root with sudo"
        } else {
            return Ok(out);
        };
        Err(SshError::SudoFailed {
            host: self.host().to_string(),
            user: self.inner.spec.user().to_string(),
            reason: reason.to_string(),
        })
    }
}

/// Fill `buf` as far as the source allows (one short read is not EOF).
async fn read_full(
    input: &mut (dyn AsyncRead + Send + Unpin),
    buf: &mut [u8],
) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        let n = input.read(&mut buf[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

#[derive(Default)]
struct Collected {
    code: Option<i32>,
    signal: Option<String>,
    stderr: Vec<u8>,
}

impl Collected {
    async fn read_all(
        &mut self,
        reader: &mut russh::ChannelReadHalf,
        sink: &mut Sink<'_>,
    ) -> std::io::Result<()> {
        while let Some(msg) = reader.wait().await {
            match msg {
                ChannelMsg::Data { data } => match sink {
                    Sink::Buffer(buf) => buf.extend_from_slice(&data),
                    Sink::Writer(w, _) => w.write_all(&data).await?,
                },
                ChannelMsg::ExtendedData { data, ext: 1 } => {
                    let room = STDERR_CAP.saturating_sub(self.stderr.len());
                    self.stderr.extend_from_slice(&data[..data.len().min(room)]);
                }
                ChannelMsg::ExitStatus { exit_status } => {
                    self.code = Some(i32::try_from(exit_status).unwrap_or(i32::MAX))
                }
                ChannelMsg::ExitSignal { signal_name, .. } => {
                    self.signal = Some(signal_label(&signal_name));
                    self.code = Some(-1);
                }
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        if let Sink::Writer(w, _) = sink {
            w.flush().await?;
        }
        Ok(())
    }

    /// `None` when the channel ended without an exit status.
    fn into_output(self, sink: &mut Sink<'_>) -> Option<ExecOutput> {
        let code = self.code?;
        let stdout = match sink {
            Sink::Buffer(buf) => std::mem::take(buf),
            Sink::Writer(..) => Vec::new(),
        };
        Some(ExecOutput {
            code,
            signal: self.signal,
            stdout,
            stderr: self.stderr,
        })
    }
}

fn signal_label(sig: &Sig) -> String {
    match sig {
        Sig::Custom(name) => name.clone(),
        other => format!("{other:?}"),
    }
}

/// How a command is named in errors: its first line, shortened.
pub(crate) fn describe(cmd: &str) -> String {
    let first = cmd.trim().lines().next().unwrap_or("");
    let mut short: String = first.chars().take(80).collect();
    if short.len() < first.len() || cmd.trim().lines().nth(1).is_some() {
        short.push_str("...");
    }
    format!("command `{short}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_described_briefly() {
        assert_eq!(
            describe("systemctl restart etcd"),
            "command `systemctl restart etcd`"
        );
        assert_eq!(describe("a\nb"), "command `a...`");
        let long = "x".repeat(200);
        assert_eq!(describe(&long), format!("command `{}...`", "x".repeat(80)));
    }
}
