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

/// Every regular file in /opt/kube/bin on every host is a whole copy of
/// the bundle's file of the same name: nothing truncated was renamed in.
fn binaries_whole_everywhere(env: &Env) {
    for ip in all_hosts(env) {
        let (_, listing) = env.on(
            &ip,
            "cd /opt/kube/bin 2>/dev/null && for f in *; do [ -f \"$f\" ] && sha256sum \"$f\"; done; true",
        );
        for line in listing.lines() {
            let Some((sha, name)) = line.split_once("  ") else {
                continue;
            };
            let bundle = env.home.join("bin").join(name);
            assert_eq!(
                sha,
                sha256_file(&bundle),
                "{ip}: /opt/kube/bin/{name} is not the bundle's {}",
                bundle.display()
            );
        }
    }
}

#[test]
fn a_controller_killed_mid_upload_leaves_no_half_written_file_and_the_rerun_takes_over() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    let etcd = env.group(ez_lab::Role::Etcd);
    let watched = env.lab.find(&etcd[0]).expect("lab host");
    // Uploads to come even on a set-up cluster (the other test may have run).
    for ip in &etcd {
        env.on(ip, "rm -f /opt/kube/bin/etcd /opt/kube/bin/etcdctl");
    }
    let inventory = inventory_bytes(env);

    // A watcher on the first etcd host returns as soon as an upload's temp
    // file exists there: the kill then lands mid-upload.
    let mut watcher = env
        .lab
        .ssh_command(watched.index)
        .expect("ssh command")
        .arg(
            "for i in $(seq 6000); do \
               ls /opt/kube/bin/.ezctl-upload.* >/dev/null 2>&1 && exit 0; sleep 0.01; \
             done; exit 1",
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watcher");
    let mut run = Running::start(env, &["--json", "setup", &env.cluster, "all"]);
    let killed_pid = run.pid();
    let deadline = Instant::now() + Duration::from_secs(120);
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
    run.sigkill();
    assert!(seen, "no upload seen on {} before the deadline", etcd[0]);

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

    // The re-run takes the stale lock over, says so, and converges.
    let rerun = ezctl_json(env, "setup", &["all"]);
    let said = text(&rerun);
    assert!(rerun.status.success(), "{said}");
    assert!(
        said.contains(&format!(
            "warning: took over a stale lock of pid {killed_pid}"
        )),
        "{said}"
    );
    assert!(!lock_path(env).exists(), "the lock is released at the end");
    assert_converged(env, "setup", &["all"]);
    binaries_whole_everywhere(env);
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
