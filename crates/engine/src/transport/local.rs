//! [`LocalTransport`]: runs on the controller with `tokio::process`. Used for
//! `delegate: controller` / `local` tasks, and by tests where each "host" is a
//! directory on this machine.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{Connector, ExecOpts, ExecOutput, PutSource, Transport, TransportError};
use crate::targets::TargetHost;

pub struct LocalTransport {
    name: String,
    env: Vec<(String, String)>,
}

impl LocalTransport {
    /// `name` is what errors and events call this host.
    pub fn new(name: impl Into<String>) -> Self {
        LocalTransport {
            name: name.into(),
            env: Vec::new(),
        }
    }

    /// An environment variable set for every command (e.g. `PATH`).
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    fn err(&self, message: String) -> TransportError {
        TransportError::Other {
            host: self.name.clone(),
            message,
        }
    }
}

/// Kills the command's whole process group if the command is abandoned
/// (timeout, or the run future dropped), so `sleep` children do not linger.
/// Disarmed when the command exits by itself: daemons it started stay.
struct GroupKiller(Option<rustix::process::Pid>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(pid) = self.0.take() {
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

#[async_trait]
impl Transport for LocalTransport {
    fn host(&self) -> &str {
        &self.name
    }

    async fn exec(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, TransportError> {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(cmd)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(opts.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(if opts.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .map_err(|e| self.err(format!("cannot start /bin/sh: {e}")))?;
        let mut killer = GroupKiller(
            child
                .id()
                .and_then(|id| rustix::process::Pid::from_raw(id as i32)),
        );
        if let (Some(input), Some(mut pipe)) = (opts.stdin, child.stdin.take()) {
            // Written concurrently with reading the output, so a command that
            // prints before it reads cannot deadlock us.
            tokio::spawn(async move {
                let _ = pipe.write_all(&input).await;
            });
        }
        let wait = child.wait_with_output();
        let output = match opts.timeout {
            Some(t) => match tokio::time::timeout(t, wait).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(TransportError::Timeout {
                        host: self.name.clone(),
                        what: format!("command `{}`", first_line(cmd)),
                        after: t,
                    })
                }
            },
            None => wait.await,
        }
        .map_err(|e| self.err(format!("waiting for command: {e}")))?;
        killer.0 = None;
        Ok(ExecOutput {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        })
    }

    async fn put(
        &self,
        src: PutSource,
        dest: &str,
        mode: Option<u32>,
        owner: Option<&str>,
    ) -> Result<(), TransportError> {
        let dest_path = Path::new(dest);
        let (Some(parent), Some(file_name)) = (dest_path.parent(), dest_path.file_name()) else {
            return Err(self.err(format!("put: {dest} is not a file path")));
        };
        tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| self.err(format!("put {dest}: creating {}: {e}", parent.display())))?;
        // A random name, created exclusively and 0600: a symlink planted at
        // a guessable name was followed, and the content was readable under
        // the umask until the chmod.
        let prefix = format!(".{}.ezctl-", file_name.to_string_lossy());
        let dir = parent.to_path_buf();
        let created = tokio::task::spawn_blocking(move || {
            tempfile::Builder::new()
                .prefix(&prefix)
                .tempfile_in(&dir)
                .map(tempfile::NamedTempFile::into_temp_path)
        })
        .await
        .map_err(|e| self.err(format!("put {dest}: {e}")))?
        .map_err(|e| self.err(format!("put {dest}: temp file: {e}")))?;
        let tmp = created.to_path_buf();
        self.write_tmp(&src, &tmp, dest_path, mode, owner).await?;
        let dest_owned = dest_path.to_path_buf();
        tokio::task::spawn_blocking(move || {
            created.persist(&dest_owned).map_err(|e| e.error)?;
            if let Some(d) = dest_owned.parent() {
                std::fs::File::open(d)?.sync_all()?;
            }
            Ok::<(), std::io::Error>(())
        })
        .await
        .map_err(|e| self.err(format!("put {dest}: {e}")))?
        .map_err(|e| self.err(format!("put {dest}: rename: {e}")))
    }

    async fn sha256_many(
        &self,
        paths: &[String],
    ) -> Result<BTreeMap<String, Option<String>>, TransportError> {
        let paths = paths.to_vec();
        tokio::task::spawn_blocking(move || {
            paths
                .into_iter()
                .map(|p| {
                    let h = sha256_file(Path::new(&p)).ok();
                    (p, h)
                })
                .collect()
        })
        .await
        .map_err(|e| self.err(format!("hashing: {e}")))
    }

    async fn fetch(&self, remote: &str) -> Result<Vec<u8>, TransportError> {
        tokio::fs::read(remote)
            .await
            .map_err(|e| self.err(format!("fetch {remote}: {e}")))
    }
}

impl LocalTransport {
    async fn write_tmp(
        &self,
        src: &PutSource,
        tmp: &Path,
        dest: &Path,
        mode: Option<u32>,
        owner: Option<&str>,
    ) -> Result<(), TransportError> {
        use std::os::unix::fs::PermissionsExt;
        let d = dest.display();
        // Into the file created above: opened without O_CREAT, never a new
        // file at that name (tokio::fs::copy would also copy the source's
        // mode, world-readable for a moment).
        let write = async {
            use tokio::io::AsyncWriteExt;
            let mut f = tokio::fs::OpenOptions::new()
                .write(true)
                .truncate(true)
                .open(tmp)
                .await?;
            match src {
                PutSource::Bytes(b) => f.write_all(b.as_slice()).await?,
                PutSource::Path(p) => {
                    let mut input = tokio::fs::File::open(p).await?;
                    tokio::io::copy(&mut input, &mut f).await?;
                }
            }
            f.flush().await?;
            f.sync_all().await
        };
        write
            .await
            .map_err(|e| self.err(format!("put {d}: writing: {e}")))?;
        let mode = match mode {
            Some(m) => m,
            None => match tokio::fs::metadata(dest).await {
                Ok(m) => m.permissions().mode() & 0o7777,
                Err(_) => 0o644,
            },
        };
        tokio::fs::set_permissions(tmp, std::fs::Permissions::from_mode(mode))
            .await
            .map_err(|e| self.err(format!("put {d}: chmod: {e}")))?;
        if let Some(owner) = owner {
            let status = Command::new("chown")
                .arg("--")
                .arg(owner)
                .arg(tmp)
                .stdin(Stdio::null())
                .output()
                .await
                .map_err(|e| self.err(format!("put {d}: chown: {e}")))?;
            if !status.status.success() {
                return Err(self.err(format!(
                    "put {d}: chown {owner}: {}",
                    String::from_utf8_lossy(&status.stderr).trim()
                )));
            }
        }
        Ok(())
    }
}

/// Hex sha256 of a file, streamed.
pub(crate) fn sha256_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    if !f.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

fn first_line(cmd: &str) -> String {
    let line = cmd.lines().next().unwrap_or("");
    if line.len() > 80 {
        let mut end = 80;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &line[..end])
    } else {
        line.to_string()
    }
}

/// Every host is the controller: a [`LocalTransport`] named after the host.
/// Tests give each host its own directory through a host variable.
#[derive(Default)]
pub struct LocalConnector {
    env: Vec<(String, String)>,
}

impl LocalConnector {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }
}

#[async_trait]
impl Connector for LocalConnector {
    async fn connect(&self, host: &TargetHost) -> Result<Arc<dyn Transport>, TransportError> {
        let mut t = LocalTransport::new(host.name.clone());
        for (k, v) in &self.env {
            t = t.with_env(k.clone(), v.clone());
        }
        Ok(Arc::new(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::FileKind;
    use std::time::{Duration, Instant};

    #[tokio::test]
    async fn exec_passes_stdin_env_and_exit_code() {
        let t = LocalTransport::new("h");
        let out = t
            .exec(
                "cat; echo \"$X\" >&2; exit 3",
                ExecOpts {
                    stdin: Some(b"in".to_vec()),
                    env: vec![("X".into(), "envval".into())],
                    timeout: None,
                },
            )
            .await
            .unwrap();
        assert_eq!(out.code, 3);
        assert_eq!(out.stdout, "in");
        assert_eq!(out.stderr.trim(), "envval");
    }

    #[tokio::test]
    async fn exec_timeout_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("late");
        let t = LocalTransport::new("h");
        let started = Instant::now();
        let err = t
            .exec(
                &format!("(sleep 1; touch {}) & wait", marker.display()),
                ExecOpts {
                    timeout: Some(Duration::from_millis(200)),
                    ..Default::default()
                },
            )
            .await
            .unwrap_err();
        assert!(matches!(err, TransportError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(1300)).await;
        assert!(!marker.exists(), "background child survived the timeout");
    }

    #[tokio::test]
    async fn put_is_atomic_creates_parents_and_sets_mode() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b/c.txt");
        let t = LocalTransport::new("h");
        t.put(
            PutSource::Bytes(Arc::new(b"hello".to_vec())),
            dest.to_str().unwrap(),
            Some(0o600),
            None,
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Mode None keeps the existing mode.
        t.put(
            PutSource::Bytes(Arc::new(b"again".to_vec())),
            dest.to_str().unwrap(),
            None,
            None,
        )
        .await
        .unwrap();
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains("ezctl-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    /// The temp file's name was `.<name>.ezctl-<pid>-<counter>`, opened
    /// with O_CREAT and no O_EXCL: a symlink planted at that name sent the
    /// content (a key) wherever it pointed.
    #[tokio::test]
    async fn put_never_follows_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"untouched").unwrap();
        let dest = dir.path().join("key.pem");
        for n in 0..2000 {
            let guess = dir
                .path()
                .join(format!(".key.pem.ezctl-{}-{n}", std::process::id()));
            std::os::unix::fs::symlink(&victim, guess).unwrap();
        }
        let t = LocalTransport::new("h");
        t.put(
            PutSource::Bytes(Arc::new(b"SECRET".to_vec())),
            dest.to_str().unwrap(),
            Some(0o600),
            None,
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"untouched");
        assert_eq!(std::fs::read(&dest).unwrap(), b"SECRET");
        let meta = std::fs::symlink_metadata(&dest).unwrap();
        assert!(meta.file_type().is_file());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[tokio::test]
    async fn stat_script_and_native_hash_agree() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("it's a file");
        std::fs::write(&f, b"content").unwrap();
        let paths = vec![
            f.to_str().unwrap().to_string(),
            dir.path().to_str().unwrap().to_string(),
            dir.path().join("missing").to_str().unwrap().to_string(),
        ];
        let t = LocalTransport::new("h");
        let stats = t.stat_many(&paths).await.unwrap();
        let hashes = t.sha256_many(&paths).await.unwrap();
        let fs = stats[&paths[0]].as_ref().unwrap();
        assert_eq!(fs.kind, FileKind::File);
        assert_eq!(fs.size, 7);
        assert_eq!(fs.sha256, hashes[&paths[0]]);
        assert_eq!(stats[&paths[1]].as_ref().unwrap().kind, FileKind::Directory);
        assert_eq!(stats[&paths[2]], None);
        assert_eq!(hashes[&paths[2]], None);
    }
}
