//! The executor benchmark of issue 3: per host 10 commands then 4 uploads,
//! hosts in parallel, done twice — by a loop of OpenSSH `ssh`/`scp`
//! processes over one ControlMaster connection per host, and by ez-ssh
//! (`Pool` + `fan_out`, one russh connection per host).
//!
//! Uploads are idempotent on both sides, as ezctl's are: the remote sha256
//! is read first (one round trip) and the file sent only when it differs.
//! So "cold" (files absent) sends 41 MiB per host and "warm" sends nothing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use ez_ssh::{fan_out, ExecOpts, HostSpec, Pool, SshOptions};

use crate::measure;
use crate::payload::PayloadFile;

/// Remote directory the executor benchmark works in.
pub const REMOTE_DIR: &str = "/var/tmp/ezbench-exec";

/// The 10 commands, read-only except the first (which makes the upload
/// directory, as a real run would).
pub fn commands() -> Vec<String> {
    [
        format!("mkdir -p {REMOTE_DIR}"),
        "uname -r".into(),
        "hostname".into(),
        "id -u".into(),
        "cat /etc/os-release".into(),
        format!("ls -la {REMOTE_DIR}"),
        "df -h /".into(),
        "free -m".into(),
        "date +%s".into(),
        format!("test -d {REMOTE_DIR}"),
    ]
    .into()
}

/// The loop's remote hash of `path` (nothing when it is missing): the same
/// tool ez-ssh uses (`openssl dgst`, SHA extensions, else `sha256sum`), so
/// both sides pay the same for a check.
pub fn remote_sum(path: &str) -> String {
    format!(
        "f={}; if [ -f \"$f\" ]; then if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r < \"$f\"; else sha256sum < \"$f\"; fi; fi",
        ez_ssh::shell_quote(path)
    )
}

/// One file to put on every host.
#[derive(Debug, Clone)]
pub struct Upload {
    pub local: PathBuf,
    pub remote: String,
    pub sha256: String,
}

impl Upload {
    pub fn for_payload(files: &[PayloadFile]) -> Vec<Upload> {
        files
            .iter()
            .map(|f| Upload {
                local: f.path.clone(),
                remote: format!("{REMOTE_DIR}/{}", f.name),
                sha256: f.sha256.clone(),
            })
            .collect()
    }
}

/// What to run and how to log in.
#[derive(Debug, Clone)]
pub struct ExecWork {
    pub commands: Vec<String>,
    pub uploads: Vec<Upload>,
    pub user: String,
    pub key: PathBuf,
    pub known_hosts: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("{host}: {what}: {detail}")]
    Host {
        host: String,
        what: String,
        detail: String,
    },
}

/// Files sent and skipped, over all hosts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcome {
    pub uploaded: usize,
    pub unchanged: usize,
    /// CPU of the controller-side processes (`ssh`, `scp`, the masters);
    /// zero for ours, measured in-process by the caller.
    pub child_cpu: Duration,
}

impl Outcome {
    fn add(&mut self, o: Outcome) {
        self.uploaded += o.uploaded;
        self.unchanged += o.unchanged;
    }
}

// ---------------------------------------------------------------- OpenSSH

/// Options every `ssh`/`scp` of the loop gets: no user config, the lab key,
/// strict host keys, no prompts, no compression (the default).
fn common_args(work: &ExecWork) -> Vec<String> {
    vec![
        "-F".into(),
        "/dev/null".into(),
        "-i".into(),
        work.key.display().to_string(),
        "-o".into(),
        format!("UserKnownHostsFile={}", work.known_hosts.display()),
        "-o".into(),
        "GlobalKnownHostsFile=/dev/null".into(),
        "-o".into(),
        "StrictHostKeyChecking=yes".into(),
        "-o".into(),
        "IdentitiesOnly=yes".into(),
        "-o".into(),
        "BatchMode=yes".into(),
        "-o".into(),
        "LogLevel=ERROR".into(),
        "-o".into(),
        "ConnectTimeout=10".into(),
        // The cipher ez-ssh uses, so the loop is not judged on another one.
        "-o".into(),
        format!("Ciphers={}", ez_ssh::PREFERRED_CIPHER),
    ]
}

/// Runs the work on every host with OpenSSH: per host one master (`ssh -M
/// -N`, our child, so its CPU is counted) then one `ssh`/`scp` process per
/// operation through it, hosts in parallel threads.
pub fn run_openssh(
    work: &ExecWork,
    hosts: &[String],
    control_dir: &Path,
    timeout: Duration,
) -> Result<Outcome, ExecError> {
    std::fs::create_dir_all(control_dir).map_err(|e| ExecError::Host {
        host: "controller".into(),
        what: format!("mkdir {}", control_dir.display()),
        detail: e.to_string(),
    })?;
    let cpu_before = measure::children_cpu();
    let results: Vec<Result<Outcome, ExecError>> = thread::scope(|s| {
        let handles: Vec<_> = hosts
            .iter()
            .map(|h| s.spawn(move || openssh_host(work, h, control_dir, timeout)))
            .collect();
        handles
            .into_iter()
            .zip(hosts)
            .map(|(j, h)| {
                j.join().unwrap_or_else(|_| {
                    Err(ExecError::Host {
                        host: h.clone(),
                        what: "worker".into(),
                        detail: "panicked".into(),
                    })
                })
            })
            .collect()
    });
    let mut total = Outcome::default();
    for r in results {
        total.add(r?);
    }
    total.child_cpu = measure::children_cpu().saturating_sub(cpu_before);
    Ok(total)
}

fn openssh_host(
    work: &ExecWork,
    ip: &str,
    control_dir: &Path,
    timeout: Duration,
) -> Result<Outcome, ExecError> {
    let deadline = Instant::now() + timeout;
    let err = |what: &str, detail: String| ExecError::Host {
        host: ip.to_string(),
        what: what.to_string(),
        detail,
    };
    let sock = control_dir.join(ip);
    let _ = std::fs::remove_file(&sock);
    let target = format!("{}@{ip}", work.user);
    let common = common_args(work);
    let master = Command::new("ssh")
        .args(&common)
        .args(["-M", "-N", "-o", "ControlPersist=no", "-S"])
        .arg(&sock)
        .arg(&target)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err("start ssh master", e.to_string()))?;
    let mut master = MasterGuard {
        child: master,
        reaped: false,
    };
    // The master creates its socket once it is logged in.
    while !sock.exists() {
        if let Ok(Some(status)) = master.child.try_wait() {
            master.reaped = true;
            let mut why = String::new();
            if let Some(mut e) = master.child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut why);
            }
            return Err(err(
                "ssh master",
                format!("exited ({status}): {}", why.trim()),
            ));
        }
        if Instant::now() > deadline {
            return Err(err(
                "ssh master",
                "no control socket before the deadline".into(),
            ));
        }
        thread::sleep(Duration::from_millis(2));
    }
    let via = |c: &mut Command| {
        c.args(&common)
            .args(["-o", "ControlMaster=no", "-o"])
            .arg(format!("ControlPath={}", sock.display()));
    };
    let left = || deadline.saturating_duration_since(Instant::now());
    let run = |c: &mut Command, what: &str| -> Result<String, ExecError> {
        let m = measure::run(c, left()).map_err(|e| err(what, e.to_string()))?;
        if m.success() {
            Ok(m.stdout_str())
        } else {
            Err(err(what, m.tail(5)))
        }
    };
    for cmd in &work.commands {
        let mut c = Command::new("ssh");
        via(&mut c);
        c.arg(&target).arg(cmd);
        run(&mut c, cmd)?;
    }
    let mut out = Outcome::default();
    for up in &work.uploads {
        let mut c = Command::new("ssh");
        via(&mut c);
        c.arg(&target).arg(remote_sum(&up.remote));
        let remote = run(&mut c, "remote sha256")?;
        if remote.split_whitespace().next() == Some(up.sha256.as_str()) {
            out.unchanged += 1;
            continue;
        }
        let mut c = Command::new("scp");
        c.arg("-q");
        via(&mut c);
        c.arg(&up.local).arg(format!("{target}:{}", up.remote));
        run(&mut c, &format!("scp {}", up.remote))?;
        out.uploaded += 1;
    }
    let mut c = Command::new("ssh");
    c.args(&common)
        .arg("-S")
        .arg(&sock)
        .args(["-O", "exit"])
        .arg(&target);
    run(&mut c, "ssh -O exit")?;
    master.wait(left());
    Ok(out)
}

/// Our ssh master: waited for when done, killed (by its pid) if still
/// there, so no connection outlives the run.
struct MasterGuard {
    child: Child,
    reaped: bool,
}

impl MasterGuard {
    fn wait(&mut self, max: Duration) {
        let until = Instant::now() + max.min(Duration::from_secs(10));
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                self.reaped = true;
                return;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for MasterGuard {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------- ez-ssh

fn host_specs(work: &ExecWork, hosts: &[String]) -> Vec<HostSpec> {
    hosts
        .iter()
        .map(|ip| {
            let mut h = HostSpec::new(ip.clone());
            h.user = Some(work.user.clone());
            h.identity_files = vec![work.key.clone()];
            h
        })
        .collect()
}

fn ssh_options(work: &ExecWork) -> SshOptions {
    SshOptions {
        known_hosts: vec![work.known_hosts.clone()],
        use_agent: false,
        ..SshOptions::default()
    }
}

/// Runs the work on every host with ez-ssh: one pool, `fan_out` over the
/// hosts, each host's operations in order on its one connection. The
/// connections are closed at the end (part of the run, as for OpenSSH).
pub async fn run_ours(work: Arc<ExecWork>, hosts: &[String]) -> Result<Outcome, ExecError> {
    let pool = Pool::new(ssh_options(&work));
    let specs = host_specs(&work, hosts);
    let w = work.clone();
    let mut rx = fan_out(&pool, specs, ez_ssh::DEFAULT_FAN_OUT, move |s| {
        let w = w.clone();
        async move {
            for cmd in &w.commands {
                s.exec_ok(cmd, ExecOpts::default()).await?;
            }
            let mut out = Outcome::default();
            for up in &w.uploads {
                if s.upload(up.local.as_path(), &up.remote, 0o644, None)
                    .await?
                    .changed()
                {
                    out.uploaded += 1;
                } else {
                    out.unchanged += 1;
                }
            }
            Ok(out)
        }
    });
    let mut total = Outcome::default();
    let mut first_error = None;
    while let Some(r) = rx.recv().await {
        match r.result {
            Ok(o) => total.add(o),
            Err(e) => {
                first_error.get_or_insert(ExecError::Host {
                    host: r.host,
                    what: "ez-ssh".into(),
                    detail: e.to_string(),
                });
            }
        }
    }
    pool.close_all().await;
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// Removes the benchmark's remote directory on every host (between runs,
/// not timed), so the next run is cold.
pub async fn reset(work: Arc<ExecWork>, hosts: &[String]) -> Result<(), ExecError> {
    let pool = Pool::new(ssh_options(&work));
    let mut rx = fan_out(&pool, host_specs(&work, hosts), 64, |s| async move {
        s.exec_ok(&format!("rm -rf {REMOTE_DIR}"), ExecOpts::default())
            .await
            .map(|_| ())
    });
    let mut first_error = None;
    while let Some(r) = rx.recv().await {
        if let Err(e) = r.result {
            first_error.get_or_insert(ExecError::Host {
                host: r.host,
                what: "reset".into(),
                detail: e.to_string(),
            });
        }
    }
    pool.close_all().await;
    first_error.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_commands_the_first_makes_the_upload_directory() {
        let c = commands();
        assert_eq!(c.len(), 10);
        assert_eq!(c[0], format!("mkdir -p {REMOTE_DIR}"));
    }

    #[test]
    fn uploads_land_in_the_remote_directory_with_their_hash() {
        let files = vec![PayloadFile {
            name: "f1k.bin".into(),
            path: PathBuf::from("/tmp/x/f1k.bin"),
            size: 1024,
            sha256: "ab".repeat(32),
        }];
        let ups = Upload::for_payload(&files);
        assert_eq!(ups[0].remote, format!("{REMOTE_DIR}/f1k.bin"));
        assert_eq!(ups[0].sha256, "ab".repeat(32));
    }

    #[test]
    fn remote_sum_prints_the_hash_first_or_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("it's here");
        std::fs::write(&f, b"abc").expect("write");
        let run = |p: &std::path::Path| {
            let out = Command::new("sh")
                .arg("-c")
                .arg(remote_sum(&p.display().to_string()))
                .output()
                .expect("sh");
            assert!(out.status.success());
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        assert_eq!(
            run(&f).split_whitespace().next(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(run(&dir.path().join("missing")), "");
    }

    #[test]
    fn openssh_options_are_strict_and_config_free() {
        let w = ExecWork {
            commands: vec![],
            uploads: vec![],
            user: "root".into(),
            key: PathBuf::from("/k"),
            known_hosts: PathBuf::from("/kh"),
        };
        let a = common_args(&w).join(" ");
        assert!(a.starts_with("-F /dev/null -i /k"));
        assert!(a.contains("StrictHostKeyChecking=yes"));
        assert!(a.contains("UserKnownHostsFile=/kh"));
        assert!(!a.contains("Compression=yes"));
    }
}
