//! Processes of the lab, addressed by pid only (never by name), and checked
//! against their command line before a signal is sent, so a recycled pid is
//! never hit.

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

/// True when `pid` exists and is not a zombie. Reaps it first when it is our
/// own child, so exited launchers do not pile up as zombies in a long test.
pub fn alive(pid: i32) -> bool {
    if pid <= 0 {
        return false;
    }
    // SAFETY: waitpid with WNOHANG on a single pid; a pid that is not our
    // child just returns ECHILD.
    unsafe {
        let mut status = 0;
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
    exists(pid)
}

/// True when `pid` exists and is not a zombie, without reaping anything
/// (safe to call on pids another thread may be waiting for).
fn exists(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the ")" that closes the command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The NUL-separated command line joined with spaces ("" when gone).
pub fn cmdline(pid: i32) -> String {
    fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|c| *c == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Sends `sig` to `pid` only when its command line contains `must_contain`.
pub fn signal_if(pid: i32, must_contain: &str, sig: i32) -> bool {
    if !alive(pid) || !cmdline(pid).contains(must_contain) {
        return false;
    }
    // SAFETY: kill(2) on a single positive pid.
    unsafe { libc::kill(pid, sig) == 0 }
}

pub fn kill(pid: i32, sig: i32) {
    if pid > 0 {
        // SAFETY: kill(2) on a single positive pid.
        unsafe {
            libc::kill(pid, sig);
        }
    }
}

/// Polls until `done` holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Pids (other than ours) whose command line mentions `needle`: the lab's
/// last sweep for anything that escaped its cgroups.
pub fn pids_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
                .filter(|p| *p != me && exists(*p) && cmdline(*p).contains(needle))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn alive_follows_a_child_to_its_end() {
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id() as i32;
        assert!(alive(pid));
        // Right after fork the child may not have exec'd sleep yet.
        assert!(wait_until(Duration::from_secs(5), || cmdline(pid).contains("sleep 30")));
        // Wrong command line: no signal is sent.
        assert!(!signal_if(pid, "systemd-nspawn", libc::SIGKILL));
        assert!(alive(pid));
        assert!(signal_if(pid, "sleep", libc::SIGKILL));
        assert!(wait_until(Duration::from_secs(5), || !alive(pid)));
        let _ = child.wait();
    }
}
