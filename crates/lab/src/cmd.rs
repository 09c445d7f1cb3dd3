//! Running external tools (ip, ssh-keygen, debootstrap, ssh) with a deadline,
//! so no lab operation can hang forever.

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// Output of a finished command.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Short printable form of a command for error messages (program + args).
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd`, capturing its output, and kills it when `timeout` passes.
/// Does not judge the exit status: see [`run_ok`].
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| LabError::Spawn { program, source })?;
    // Pipes are drained on their own threads: a chatty child would otherwise
    // block on a full pipe while we wait for it to exit.
    let out = child.stdout.take().map(drain);
    let err = child.stderr.take().map(drain);
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::CommandTimeout {
                    command: describe(cmd),
                    secs: timeout.as_secs(),
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(source) => {
                return Err(LabError::Spawn {
                    program: describe(cmd),
                    source,
                })
            }
        }
    };
    let join =
        |h: Option<thread::JoinHandle<String>>| h.and_then(|h| h.join().ok()).unwrap_or_default();
    Ok(Output {
        status,
        stdout: join(out),
        stderr: join(err),
    })
}

/// Runs `cmd` and fails unless it exits 0.
pub fn run_ok(cmd: &mut Command, timeout: Duration) -> Result<Output> {
    let out = run(cmd, timeout)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(LabError::Command {
            command: describe(cmd),
            status: out.status.to_string(),
            stderr: tail(&out.stderr, 2000),
        })
    }
}

/// Runs `cmd` with stdout and stderr appended to `log` (for long, chatty
/// tools whose progress should be readable while they run), killing it when
/// `timeout` passes.
pub fn run_logged(
    cmd: &mut Command,
    log: &std::path::Path,
    timeout: Duration,
) -> Result<ExitStatus> {
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| LabError::Io {
                path: log.to_path_buf(),
                source: e,
            })
    };
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(open()?)
        .stderr(open()?)
        .spawn()
        .map_err(|source| LabError::Spawn { program, source })?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LabError::CommandTimeout {
                    command: describe(cmd),
                    secs: timeout.as_secs(),
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(100)),
            Err(source) => {
                return Err(LabError::Spawn {
                    program: describe(cmd),
                    source,
                })
            }
        }
    }
}

fn drain(mut r: impl Read + Send + 'static) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The last `max` bytes of `s` (on a char boundary), trimmed.
pub fn tail(s: &str, max: usize) -> String {
    let s = s.trim();
    if s.len() <= max {
        return s.to_string();
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &s[start..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_captures_output_and_status() {
        let out = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        )
        .unwrap();
        assert_eq!(out.stdout.trim(), "out");
        assert_eq!(out.stderr.trim(), "err");
        assert_eq!(out.status.code(), Some(3));
    }

    #[test]
    fn run_ok_reports_failure_with_stderr() {
        let err = run_ok(
            Command::new("sh").args(["-c", "echo boom >&2; exit 1"]),
            Duration::from_secs(10),
        )
        .unwrap_err();
        assert!(err.to_string().contains("boom"), "{err}");
    }

    #[test]
    fn run_kills_on_timeout() {
        let started = Instant::now();
        let err = run(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, LabError::CommandTimeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn run_logged_appends_output_to_the_log() {
        let d = tempfile::tempdir().unwrap();
        let log = d.path().join("log");
        std::fs::write(&log, "before\n").unwrap();
        let status = run_logged(
            Command::new("sh").args(["-c", "echo out; echo err >&2"]),
            &log,
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(status.success());
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(
            text.starts_with("before\n") && text.contains("out") && text.contains("err"),
            "{text}"
        );
    }

    #[test]
    fn tail_keeps_the_end() {
        assert_eq!(tail("abcdef", 3), "…def");
        assert_eq!(tail(" ab ", 3), "ab");
    }
}
