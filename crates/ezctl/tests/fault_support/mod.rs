//! Shared by the fault tests (`e2e_fault_*.rs`, `e2e_secrets.rs`): running
//! ezctl in the background while watching its JSON events, reaching a lab
//! machine without SSH (its sshd may be the fault), and the checks every
//! fault ends with: no half-written file on any host, the inventory
//! byte-identical, a re-run that converges.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{text, Env};

pub fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The recap object of a `--json` run (Null when there is none).
pub fn recap(out: &Output) -> Value {
    json_lines(out)
        .into_iter()
        .rev()
        .find(|e| e["event"] == "recap")
        .map(|e| e["recap"].clone())
        .unwrap_or(Value::Null)
}

/// `ezctl --json <cmd> <cluster> <rest>`.
pub fn ezctl_json(env: &Env, cmd: &str, rest: &[&str]) -> Output {
    let mut args = vec!["--json", cmd, env.cluster.as_str()];
    args.extend_from_slice(rest);
    env.ezctl(&args)
}

/// Runs `ezctl --json <cmd> <cluster> <rest>` and asserts it succeeded
/// and changed nothing on any host: the cluster has converged.
pub fn assert_converged(env: &Env, cmd: &str, rest: &[&str]) {
    let out = ezctl_json(env, cmd, rest);
    assert!(
        out.status.success(),
        "{cmd} {rest:?} did not succeed:\n{}",
        text(&out)
    );
    let r = recap(&out);
    let hosts = r["hosts"].as_object().cloned().unwrap_or_default();
    assert!(!hosts.is_empty(), "no recap: {}", text(&out));
    for (host, h) in hosts {
        assert_eq!(
            h["changed"], 0,
            "{host} still changes on a further run: {r}"
        );
        assert_eq!(h["failed"], 0, "{host}: {r}");
        assert_eq!(h["unreachable"], 0, "{host}: {r}");
    }
}

/// An ezctl started in the background, its `--json` events read line by
/// line as they come. Killed (by pid) when dropped, if still running.
pub struct Running {
    pub child: Child,
    lines: Receiver<String>,
    pub seen: Vec<String>,
}

impl Running {
    pub fn start(env: &Env, args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ezctl"))
            .arg("--home")
            .arg(&env.home)
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start ezctl");
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx2.send(format!("stderr: {line}")).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits (at most `within`) for an event matching `want`; returns it.
    pub fn wait_for(&mut self, within: Duration, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let event = serde_json::from_str::<Value>(&line).ok();
                    self.seen.push(line);
                    if let Some(e) = event {
                        if want(&e) {
                            return e;
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no such event within {within:?}; saw:\n{}",
                        self.seen.join("\n")
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("ezctl ended first; saw:\n{}", self.seen.join("\n"))
                }
            }
        }
    }

    /// Waits (bounded) for the process to end; returns its exit code and
    /// everything it printed.
    pub fn finish(mut self, within: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + within;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(s)) => break Some(s),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100))
                }
                _ => break None,
            }
        };
        // The reader threads end with the pipes; collect what is left.
        let settle = Instant::now() + Duration::from_secs(5);
        while let Ok(line) = self
            .lines
            .recv_timeout(settle.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        let code = status.and_then(|s| s.code());
        (code, self.seen.join("\n"))
    }

    /// SIGKILL, like a controller that loses power or is OOM-killed.
    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The pid (in our namespace) of a lab machine's init, found through the
/// machine's network namespace: lets a test act inside the machine when its
/// sshd is down.
pub fn machine_init_pid(env: &Env, ip: &str) -> i32 {
    let host = env.lab.find(ip).expect("lab host");
    let netns = ez_lab::net::netns_name(&env.cluster, host.index);
    let out = Command::new("ip")
        .args(["netns", "pids", &netns])
        .output()
        .expect("ip netns pids");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "systemd")
        })
        .unwrap_or_else(|| panic!("no init in {netns}: {}", text(&out)))
}

/// Runs `cmd` inside lab machine `ip` with nsenter (no SSH involved).
pub fn inside(env: &Env, ip: &str, cmd: &str) -> (i32, String) {
    let pid = machine_init_pid(env, ip);
    let out = ez_lab::cmd::run(
        Command::new("nsenter").args(["-t", &pid.to_string(), "-a", "sh", "-c", cmd]),
        Duration::from_secs(60),
    );
    match out {
        Ok(o) => (
            o.status.code().unwrap_or(-1),
            format!("{}{}", o.stdout, o.stderr),
        ),
        Err(e) => (-1, e.to_string()),
    }
}

/// Temp files our uploads write before their rename, anywhere on the host's
/// root filesystem. A cut upload must not leave one.
pub fn upload_leftovers(env: &Env, ip: &str) -> String {
    inside(
        env,
        ip,
        "find / -xdev \\( -name '.ezctl-upload.*' -o -name '*.ezctl-tmp*' \\) -print 2>/dev/null",
    )
    .1
    .trim()
    .to_string()
}

/// Polls (bounded) until no host has an upload temp file left: a cut
/// upload's script removes its own when its input ends.
pub fn assert_no_upload_leftovers(env: &Env, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let left: Vec<String> = all_hosts(env)
            .iter()
            .map(|ip| (ip, upload_leftovers(env, ip)))
            .filter(|(_, l)| !l.is_empty())
            .map(|(ip, l)| format!("{ip}: {l}"))
            .collect();
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "half-written upload files left on hosts:\n{}",
            left.join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn all_hosts(env: &Env) -> Vec<String> {
    env.lab.hosts().iter().map(|h| h.ip.to_string()).collect()
}

/// hosts.yml and config.yml of the cluster, to prove a run left them alone.
pub fn inventory_bytes(env: &Env) -> Vec<(PathBuf, Vec<u8>)> {
    ["hosts.yml", "config.yml"]
        .iter()
        .map(|f| env.cluster_dir().join(f))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_default();
            (p, bytes)
        })
        .collect()
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(path).unwrap_or_default();
    hex::encode(Sha256::digest(bytes))
}

/// sha256 of a file on a host, "absent" when there is none.
pub fn remote_sha(env: &Env, ip: &str, path: &str) -> String {
    let (_, out) = env.on(
        ip,
        &format!("if [ -f {path} ]; then sha256sum < {path} | cut -d' ' -f1; else echo absent; fi"),
    );
    out.trim().to_string()
}

/// A lab machine's sshd stopped, and every SSH connection to it cut
/// (like sshd crashing): the listener is stopped through systemd, then the
/// per-connection sshd processes are killed by pid.
pub fn kill_sshd(env: &Env, ip: &str) {
    let (code, out) = inside(env, ip, "systemctl stop ssh.socket ssh.service 2>&1; true");
    assert_eq!(code, 0, "{out}");
    let host = env.lab.find(ip).expect("lab host");
    let netns = ez_lab::net::netns_name(&env.cluster, host.index);
    let pids = Command::new("ip")
        .args(["netns", "pids", &netns])
        .output()
        .expect("ip netns pids");
    let sshd: Vec<String> = String::from_utf8_lossy(&pids.stdout)
        .split_whitespace()
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "sshd")
        })
        .map(str::to_string)
        .collect();
    if !sshd.is_empty() {
        let out = Command::new("kill")
            .arg("-KILL")
            .args(&sshd)
            .output()
            .expect("kill");
        assert!(out.status.success(), "kill {sshd:?}: {}", text(&out));
    }
}

/// Starts a machine's sshd again (through nsenter) and waits until it answers.
pub fn start_sshd(env: &Env, ip: &str) {
    let (code, out) = inside(env, ip, "systemctl start ssh.service");
    assert_eq!(code, 0, "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while env.on(ip, "true").0 != 0 {
        assert!(Instant::now() < deadline, "sshd on {ip} did not come back");
        std::thread::sleep(Duration::from_millis(300));
    }
}

pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/faults")
}
