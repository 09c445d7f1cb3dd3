//! Running a tool and measuring it: wall time, the controller's CPU time
//! (from `wait4`'s rusage, which covers the child and every descendant it
//! waited for), its peak RSS (`VmHWM` of the child, sampled), and CPU used
//! inside the lab's machines (their cgroup's `cpu.stat`), and the peak of
//! the resident memory of all its processes together (Ansible's forks are
//! separate processes; ezctl is one).
//!
//! Why not `ru_maxrss`: the kernel folds the high-water mark of the memory
//! the child had before `exec` into it, and std spawns with vfork semantics,
//! so that is the *bench's* own peak (128 MiB after an in-process upload
//! run), not the tool's. `VmHWM` of the exec'd process starts from zero; it
//! only ever grows, so the last sample before exit is the peak (to within
//! the sampling period).
//!
//! The child runs in its own process group so a timeout (or Ctrl-C seen by
//! the bench) kills everything it started, and nothing else.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Set by the bench's SIGINT handler; a running child is then killed.
pub static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// How often the child's `VmHWM` is read.
pub const RSS_SAMPLE: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("cannot start {program}: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("waiting for {program}: {source}")]
    Wait {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// What one measured run produced.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    /// Exit code; `None` when killed by a signal.
    pub code: Option<i32>,
    /// True when the bench killed it (timeout or interrupt).
    pub killed: bool,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// Peak resident set of the child process itself (KiB; `VmHWM`, sampled
    /// every [`RSS_SAMPLE`]); 0 when it exited before the first sample.
    pub max_rss_kib: u64,
    /// Peak over the samples of the summed `VmRSS` of every process in the
    /// child's process group (KiB), at least `max_rss_kib`.
    pub max_group_rss_kib: u64,
    /// User + system CPU of the child and its waited-for descendants.
    pub cpu: Duration,
}

impl Measured {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.killed
    }

    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// Last `n` lines of stdout and stderr, for error messages.
    pub fn tail(&self, n: usize) -> String {
        let all = format!("{}{}", self.stdout_str(), self.stderr_str());
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

/// Runs `cmd` to completion (stdin closed, output captured), killing its
/// process group after `timeout`.
pub fn run(cmd: &mut Command, timeout: Duration) -> Result<Measured, MeasureError> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| MeasureError::Spawn {
        program: program.clone(),
        source,
    })?;
    let pid = child.id() as libc::pid_t;
    let out_rx = child.stdout.take().map(reader);
    let err_rx = child.stderr.take().map(reader);

    // The watchdog may only signal the group while the child is unreaped
    // (its pid cannot be reused then): `done` is set under the lock before
    // the child is reaped.
    let state = Arc::new((Mutex::new(WatchState::default()), Condvar::new()));
    let dog = {
        let state = state.clone();
        thread::spawn(move || watchdog(pid, timeout, &state))
    };
    let waited = wait_exited(pid);
    {
        let (lock, cv) = &*state;
        let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
        s.done = true;
        cv.notify_all();
    }
    let (killed, peak_rss, peak_group) = dog.join().unwrap_or((false, 0, 0));
    if let Err(source) = waited {
        return Err(MeasureError::Wait { program, source });
    }
    let (status, usage) = reap(pid).map_err(|source| MeasureError::Wait {
        program: program.clone(),
        source,
    })?;
    let wall = started.elapsed();
    // A daemonised grandchild could keep a pipe open; never wait for it long.
    let collect = |rx: Option<mpsc::Receiver<Vec<u8>>>| {
        rx.and_then(|rx| rx.recv_timeout(Duration::from_secs(10)).ok())
            .unwrap_or_default()
    };
    let code = if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else {
        None
    };
    Ok(Measured {
        wall,
        code,
        killed,
        stdout: collect(out_rx),
        stderr: collect(err_rx),
        max_rss_kib: peak_rss,
        max_group_rss_kib: peak_group.max(peak_rss),
        cpu: timeval(usage.ru_utime) + timeval(usage.ru_stime),
    })
}

#[derive(Default)]
struct WatchState {
    done: bool,
}

/// Samples the child's `VmHWM` and its group's summed RSS, and kills its
/// process group at the deadline or on interrupt; returns (killed, peak RSS
/// of the child, peak RSS of the group, in KiB).
fn watchdog(
    pid: libc::pid_t,
    timeout: Duration,
    state: &(Mutex<WatchState>, Condvar),
) -> (bool, u64, u64) {
    let deadline = Instant::now() + timeout;
    let (lock, cv) = state;
    let mut peak = 0;
    let mut group = 0;
    let mut s = lock.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        if s.done {
            return (false, peak, group);
        }
        // Not reaped yet (done is set first), so the pid is still our child.
        if let Some(kib) = vm_hwm_kib(pid) {
            peak = peak.max(kib);
        }
        group = group.max(group_rss_kib(pid));
        let now = Instant::now();
        if now >= deadline || INTERRUPTED.load(Ordering::Relaxed) {
            // SAFETY: plain syscall; the group leader is not reaped yet.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
            return (true, peak, group);
        }
        let step = (deadline - now).min(RSS_SAMPLE);
        s = cv
            .wait_timeout(s, step)
            .map(|(g, _)| g)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

/// Summed `VmRSS` (KiB) of the live processes whose process group is `pgid`.
fn group_rss_kib(pgid: libc::pid_t) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat"))
                .ok()
                .and_then(|st| stat_pgrp(&st))
                == Some(pgid)
        })
        .filter_map(|p| {
            let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum()
}

/// The process group (5th field) of a `/proc/<pid>/stat` line; the command
/// name before it may hold spaces and parentheses, so count from the last `)`.
fn stat_pgrp(stat: &str) -> Option<libc::pid_t> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

/// `VmHWM` of a live process (KiB); `None` once it has exited.
fn vm_hwm_kib(pid: libc::pid_t) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_hwm(&text)
}

/// `VmHWM:   123456 kB` -> 123456.
pub fn parse_vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Waits until the child has exited without reaping it.
fn wait_exited(pid: libc::pid_t) -> std::io::Result<()> {
    loop {
        // SAFETY: zeroed siginfo_t is a valid out-parameter for waitid.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain syscall on our own child.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if r == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Reaps the exited child with its resource usage.
fn reap(pid: libc::pid_t) -> std::io::Result<(libc::c_int, libc::rusage)> {
    let mut status: libc::c_int = 0;
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: plain syscall on our own exited child.
        let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            return Ok((status, usage));
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

fn reader<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn timeval(t: libc::timeval) -> Duration {
    Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
        + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
}

/// CPU time (user + system) of this process so far, all threads.
pub fn self_cpu() -> Duration {
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// CPU time of this process's reaped children so far (e.g. `ssh`, `scp`).
pub fn children_cpu() -> Duration {
    // SAFETY: zeroed rusage is a valid out-parameter.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: plain syscall.
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) } != 0 {
        return Duration::ZERO;
    }
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

/// CPU used by every machine of a lab so far, from its cgroup (cgroup v2
/// `cpu.stat`, hybrid or unified mount). `None` when not readable here.
pub fn lab_cpu(lab: &str) -> Option<Duration> {
    let candidates = [
        PathBuf::from(format!("/sys/fs/cgroup/unified/ezlab/{lab}/cpu.stat")),
        PathBuf::from(format!("/sys/fs/cgroup/ezlab/{lab}/cpu.stat")),
    ];
    candidates
        .iter()
        .find_map(|p| std::fs::read_to_string(p).ok())
        .and_then(|text| parse_usage_usec(&text))
}

/// `usage_usec` from a cgroup v2 `cpu.stat`.
pub fn parse_usage_usec(text: &str) -> Option<Duration> {
    text.lines()
        .find_map(|l| l.strip_prefix("usage_usec "))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_micros)
}

/// CPU time (user + system) of a live process from `/proc/<pid>/stat`.
pub fn proc_cpu(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_proc_stat_cpu(&text, clock_ticks())
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line; the
/// command name may contain spaces and parentheses, so fields are counted
/// after its last `)`.
pub fn parse_proc_stat_cpu(text: &str, ticks_per_sec: u64) -> Option<Duration> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): utime is field 14 -> index 11.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    if ticks_per_sec == 0 {
        return None;
    }
    Some(Duration::from_secs_f64(
        (utime + stime) as f64 / ticks_per_sec as f64,
    ))
}

fn clock_ticks() -> u64 {
    // SAFETY: plain libc call.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(t).unwrap_or(100)
}

/// The 1-minute load average, to show how busy the box was.
pub fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_output_exit_code_and_rss_of_the_child() {
        // python3 holds ~64 MiB resident. The peak is sampled every
        // RSS_SAMPLE, so the memory is held for many periods: a process that
        // exits right after touching it can be missed on a loaded machine
        // (CI saw 55 MiB of the 64 when it exited at once).
        let m = run(
            Command::new("python3").args([
                "-c",
                "import sys, time; b = bytearray(64 << 20); b[::4096] = b'x' * len(b[::4096]); time.sleep(0.5); print('hi'); sys.stderr.write('err'); sys.exit(3)",
            ]),
            Duration::from_secs(60),
        )
        .expect("python3 runs");
        assert_eq!(m.code, Some(3));
        assert!(!m.success());
        assert_eq!(m.stdout_str().trim(), "hi");
        assert_eq!(m.stderr_str(), "err");
        assert!(m.max_rss_kib > 60 * 1024, "rss {} KiB", m.max_rss_kib);
        assert!(m.max_group_rss_kib >= m.max_rss_kib);
        assert!(!m.killed);
    }

    #[test]
    fn the_group_total_counts_every_process_of_the_tool() {
        // Four python3 children of one shell, each holding ~32 MiB at once.
        let m = run(
            Command::new("sh").args([
                "-c",
                "for i in 1 2 3 4; do python3 -c 'import time; b = bytearray(32 << 20); b[::4096] = b\"x\" * len(b[::4096]); time.sleep(1.5)' & done; wait",
            ]),
            Duration::from_secs(60),
        )
        .expect("sh runs");
        assert!(m.success());
        assert!(
            m.max_rss_kib < 16 * 1024,
            "the shell alone: {} KiB",
            m.max_rss_kib
        );
        assert!(
            m.max_group_rss_kib > 4 * 30 * 1024,
            "the four children together: {} KiB",
            m.max_group_rss_kib
        );
        assert_eq!(stat_pgrp("12 (a) b) c) S 1 77 77 0"), Some(77));
    }

    #[test]
    fn the_bench_s_own_memory_is_not_the_child_s() {
        // 256 MiB touched here; a sleeping shell holds a few MiB.
        let ballast = vec![1u8; 256 << 20];
        let m = run(
            Command::new("sh").args(["-c", "sleep 0.3"]),
            Duration::from_secs(30),
        )
        .expect("sh runs");
        assert!(ballast.iter().step_by(4096).all(|b| *b == 1));
        assert!(m.max_rss_kib > 0, "sampled at least once");
        assert!(m.max_rss_kib < 64 * 1024, "rss {} KiB", m.max_rss_kib);
        assert_eq!(
            parse_vm_hwm("Name:\tsh\nVmPeak:\t 9 kB\nVmHWM:\t    1234 kB\n"),
            Some(1234)
        );
    }

    #[test]
    fn cpu_time_of_descendants_is_counted() {
        // A grandchild burns CPU; the shell waits for it.
        let m = run(
            Command::new("sh").args(["-c", "i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done"]),
            Duration::from_secs(60),
        )
        .expect("sh runs");
        assert!(m.success());
        assert!(m.cpu > Duration::from_millis(50), "cpu {:?}", m.cpu);
        assert!(m.wall >= m.cpu / 2);
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        // The background sleep holds stdout open: if it survived the kill,
        // collecting the output would wait its full 10 s.
        let t = Instant::now();
        let m = run(
            Command::new("sh").args(["-c", "sleep 30 & sleep 30"]),
            Duration::from_millis(300),
        )
        .expect("sh runs");
        assert!(m.killed);
        assert!(!m.success());
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "took {:?}",
            t.elapsed()
        );
    }

    #[test]
    fn parses_cgroup_and_proc_cpu() {
        assert_eq!(
            parse_usage_usec("usage_usec 2500000\nuser_usec 1\n"),
            Some(Duration::from_millis(2500))
        );
        assert_eq!(parse_usage_usec("nothing"), None);
        let stat = "123 (ssh: /tmp/a b) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        assert_eq!(parse_proc_stat_cpu(stat, 100), Some(Duration::from_secs(3)));
        assert_eq!(parse_proc_stat_cpu("garbage", 100), None);
    }

    #[test]
    fn own_cpu_and_load_are_readable() {
        let before = self_cpu();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(self_cpu() >= before);
        assert!(load_average().is_some());
        assert!(proc_cpu(std::process::id()).is_some());
    }
}
