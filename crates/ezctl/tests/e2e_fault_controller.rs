//! Faults of the controller itself: ezctl SIGKILLed in the middle of
//! `setup all` (while it uploads binaries), and two ezctl runs on one
//! cluster at once. The killed run leaves no half-written file on any host
//! and a stale lock that the next run takes over with a warning, then
//! converges; the second of two concurrent runs is refused (exit 4) naming
//! the holder's pid, host and since when. Own test binary (own lab).
//! Needs root and the lab; says why and passes where missing.

mod common;
mod fault_support;

use std::process::Stdio;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{text, Env};
use fault_support::*;

/// Both tests hold the cluster lock: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn lock_path(env: &Env) -> std::path::PathBuf {
    env.cluster_dir().join(ez_engine::LOCK_FILE)
}

fn controller_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Files in `dir` on `ip` that are not a whole copy of the bundle's file
/// of the same name, and how many regular files there were. The probe
/// must reach its end marker: a failed one is a failure, not "no file".
fn not_whole(env: &Env, ip: &str, dir: &str) -> (Vec<String>, usize) {
    let (code, listing) = env.on(
        ip,
        &format!(
            "if cd {dir} 2>/dev/null; then for f in *; do [ -f \"$f\" ] && sha256sum \"$f\"; done; fi; echo END"
        ),
    );
    assert_eq!(code, 0, "{ip}: {listing}");
    let mut lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.pop(), Some("END"), "{ip}: probe cut short: {listing}");
    let mut bad = Vec::new();
    for line in &lines {
        let (sha, name) = line
            .split_once("  ")
            .unwrap_or_else(|| panic!("{ip}: not a sha256sum line: {line}"));
        let bundle = env.home.join("bin").join(name);
        if sha != sha256_file(&bundle) {
            bad.push(format!(
                "{ip}: {dir}/{name} is not the bundle's {}",
                bundle.display()
            ));
        }
    }
    (bad, lines.len())
}

/// Every regular file in /opt/kube/bin on every host is a whole copy of
/// the bundle's file of the same name: nothing truncated was renamed in.
/// Returns how many files were compared per host.
fn binaries_whole_everywhere(env: &Env) -> Vec<(String, usize)> {
    let mut counts = Vec::new();
    for ip in all_hosts(env) {
        let (bad, n) = not_whole(env, &ip, "/opt/kube/bin");
        assert!(bad.is_empty(), "{}", bad.join("\n"));
        counts.push((ip, n));
    }
    counts
}

/// The probe of [`binaries_whole_everywhere`] sees a file that is not
/// whole: a short `etcd` planted in a scratch directory.
fn whole_check_sees_a_cut_file(env: &Env, ip: &str) {
    let dir = "/root/ezf-whole-probe";
    let (code, out) = env.on(
        ip,
        &format!("rm -rf {dir} && mkdir {dir} && printf 'cut short' > {dir}/etcd"),
    );
    assert_eq!(code, 0, "{out}");
    let (bad, n) = not_whole(env, ip, dir);
    let _ = env.on(ip, &format!("rm -rf {dir}"));
    assert_eq!(n, 1, "the probe did not list the planted file on {ip}");
    assert!(
        bad.len() == 1 && bad[0].contains("/etcd is not the bundle's"),
        "the probe did not see a cut file: {bad:?}"
    );
}

/// The upload caught on the watched host: its receiving process, stopped
/// (SIGSTOP) so the upload cannot finish before the controller is
/// killed. Let go (SIGCONT) when dropped, whatever the test's outcome.
struct Frozen<'a> {
    env: &'a Env,
    ip: String,
    pid: String,
    /// The upload's temp file.
    temp: String,
    /// Where the upload was going, and how many bytes it was to carry
    /// (both read from the upload script's command line).
    dest: String,
    len: u64,
}

impl Frozen<'_> {
    fn release(&self) {
        let (code, out) = self.env.on(&self.ip, &format!("kill -CONT {}", self.pid));
        assert_eq!(code, 0, "SIGCONT to {} on {}: {out}", self.pid, self.ip);
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = self.env.on(&self.ip, &format!("kill -CONT {}", self.pid));
    }
}

/// Watches (bounded) for a process writing an upload's temp file in
/// /opt/kube/bin on machine `index`, stops it, and prints its pid, the
/// temp file and its parent's (the upload script's) command line.
const FREEZE_UPLOAD: &str = "end=$(($(date +%s) + 120)); \
    while [ \"$(date +%s)\" -lt \"$end\" ]; do \
      for fd in $(find /proc/[0-9]*/fd/1 -maxdepth 0 -lname '/opt/kube/bin/.ezctl-upload.*' 2>/dev/null); do \
        p=${fd#/proc/}; p=${p%%/*}; t=$(readlink \"$fd\") || continue; \
        kill -STOP \"$p\" || continue; \
        pp=$(awk '/^PPid:/{print $2}' /proc/$p/status); \
        echo \"$p\"; echo \"$t\"; tr '\\0' ' ' < /proc/$pp/cmdline; echo; exit 0; \
      done; sleep 0.01; \
    done; exit 1";

fn freeze<'a>(env: &'a Env, ip: &str, out: &str) -> Frozen<'a> {
    let mut lines = out.lines();
    let (Some(pid), Some(temp), Some(script)) = (lines.next(), lines.next(), lines.next()) else {
        panic!("the watcher on {ip} printed {out:?}");
    };
    // The upload script: `...; f='/opt/kube/bin/etcd'; ... -ne 12345 ...`.
    let dest = script
        .split_once("f='")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(d, _)| d.to_string());
    let len = script
        .split_once("\" -ne ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    let frozen = Frozen {
        env,
        ip: ip.to_string(),
        pid: pid.trim().to_string(),
        temp: temp.trim().to_string(),
        dest: dest.clone().unwrap_or_default(),
        len: len.unwrap_or(0),
    };
    // (Built first: a script we cannot read still gets its process let go.)
    assert!(
        dest.is_some() && len.is_some(),
        "not an upload script on {ip}: {script}"
    );
    frozen
}

#[test]
fn a_controller_killed_mid_upload_leaves_no_half_written_file_and_the_rerun_takes_over() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    let etcd = env.group(ez_lab::Role::Etcd);
    let watched = env.lab.find(&etcd[0]).expect("lab host");
    // The whole-file check can see a file that is not whole.
    whole_check_sees_a_cut_file(env, &etcd[0]);
    // Uploads to come even on a set-up cluster (the other test may have run).
    for ip in &etcd {
        let (code, out) = env.on(ip, "rm -f /opt/kube/bin/etcd /opt/kube/bin/etcdctl");
        assert_eq!(code, 0, "{ip}: {out}");
    }
    let inventory = inventory_bytes(env);

    // A watcher on the first etcd host stops the first upload into
    // /opt/kube/bin it sees (its receiving process): the kill then lands
    // mid-upload for certain, not merely soon after one started.
    let mut watcher = env
        .lab
        .ssh_command(watched.index)
        .expect("ssh command")
        .arg(FREEZE_UPLOAD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("watcher");
    let mut run = Running::start(env, &["--json", "setup", &env.cluster, "all"]);
    let killed_pid = run.pid();
    let deadline = Instant::now() + Duration::from_secs(180);
    let seen = loop {
        match watcher.try_wait() {
            Ok(Some(status)) => break status.success(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = watcher.kill();
                let _ = watcher.wait();
                break false;
            }
        }
    };
    let mut said = String::new();
    if let Some(mut out) = watcher.stdout.take() {
        use std::io::Read;
        let _ = out.read_to_string(&mut said);
    }
    let frozen = seen.then(|| freeze(env, &etcd[0], &said));
    run.sigkill();
    assert!(seen, "no upload seen on {} before the deadline", etcd[0]);
    let frozen = frozen.expect("an upload caught");

    // The proof that the kill cut an upload mid-way: its temp file is there
    // with fewer bytes than the upload was to carry, and its destination
    // does not hold the file yet.
    let (code, out) = env.on(
        &etcd[0],
        &format!(
            "stat -c %s {}; sha256sum {} 2>/dev/null || echo absent",
            frozen.temp, frozen.dest
        ),
    );
    assert_eq!(code, 0, "the caught upload's temp file is gone: {out}");
    let mut lines = out.lines();
    let received: u64 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        received < frozen.len,
        "the upload to {} had all its {} bytes when ezctl was killed: not cut mid-way",
        frozen.dest,
        frozen.len
    );
    let dest_name = frozen.dest.rsplit('/').next().unwrap_or("");
    let bundle_sha = sha256_file(&env.home.join("bin").join(dest_name));
    assert!(
        !lines.next().unwrap_or("").starts_with(&bundle_sha),
        "{} was already in place when ezctl was killed",
        frozen.dest
    );
    eprintln!(
        "ezctl killed with {received} of {} bytes of {} received",
        frozen.len, frozen.dest
    );
    // Let the receiving end go: its input has ended, so the upload script
    // must see a short file and remove it.
    frozen.release();

    // The lock file names the dead process; nothing on the hosts is half
    // written (a cut upload removes its temp file when its input ends).
    let lock = std::fs::read_to_string(lock_path(env)).expect("a stale lock is left");
    let holder: serde_json::Value = serde_json::from_str(&lock).expect("lock file is JSON");
    assert_eq!(holder["pid"], killed_pid, "{lock}");
    assert_no_upload_leftovers(env, Duration::from_secs(15));
    binaries_whole_everywhere(env);
    assert_eq!(
        inventory,
        inventory_bytes(env),
        "setup never edits the inventory"
    );
    drop(frozen);

    // The re-run takes the stale lock over, says so, and converges.
    let rerun = ezctl_json(env, "setup", &["all"]);
    let said = text(&rerun);
    assert!(rerun.status.success(), "{said}");
    // With --json the warning is an event of its own (one output contract
    // for every command), not a line on stderr.
    let took_over = format!("took over a stale lock of pid {killed_pid} ");
    assert!(
        String::from_utf8_lossy(&rerun.stdout).lines().any(|l| {
            serde_json::from_str::<serde_json::Value>(l).is_ok_and(|e| {
                e["event"] == "warning"
                    && e["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with(&took_over))
            })
        }),
        "no warning event saying it {took_over}:\n{said}"
    );
    assert!(!lock_path(env).exists(), "the lock is released at the end");
    assert_converged(env, "setup", &["all"]);
    // Every host has binaries now, and they are whole.
    for (ip, n) in binaries_whole_everywhere(env) {
        assert!(n > 0, "no file in /opt/kube/bin on {ip} after setup");
    }
}

#[test]
fn a_second_setup_on_the_same_cluster_is_refused_naming_the_holder() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    let mut first = Running::start(env, &["--json", "setup", &env.cluster, "all"]);
    first.wait_for(Duration::from_secs(60), |e| e["event"] == "run_start");

    let second = env.ezctl(&["setup", &env.cluster, "all"]);
    let said = text(&second);
    assert_eq!(second.status.code(), Some(4), "{said}");
    let holder = first.pid();
    assert!(
        said.contains(&format!("(pid {holder})")),
        "the holder's pid: {said}"
    );
    assert!(
        said.contains(&format!("@{} (pid", controller_hostname())),
        "the holder's host: {said}"
    );
    assert!(said.contains(" since 20"), "since when: {said}");
    assert!(
        said.contains(&format!("running `setup {} all`", env.cluster)),
        "what it runs: {said}"
    );
    // The refused run touched nothing: the first one finishes normally.
    let (code, out) = first.finish(Duration::from_secs(600));
    assert_eq!(code, Some(0), "{out}");
    assert!(!lock_path(env).exists());
}
