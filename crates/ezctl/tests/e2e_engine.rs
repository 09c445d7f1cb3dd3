//! The role engine on real machines, with small test roles
//! (tests/fixtures/engine) run through `ezctl play`: idempotency, handlers,
//! failure isolation, dry-run, re-runs, the cluster lock and per-host
//! pipelining. Needs root and the lab; says why and passes where missing.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::{text, Env};
use serde_json::Value;

/// Tests share one lab and one cluster lock: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/engine")
}

fn play(env: &Env, playbook: &str, extra: &[&str]) -> Output {
    let pb = fixtures().join("playbooks").join(playbook);
    let roles = fixtures().join("roles");
    let mut args = vec![
        "--json",
        "play",
        env.cluster.as_str(),
        pb.to_str().unwrap_or(""),
        "--roles",
        roles.to_str().unwrap_or(""),
    ];
    args.extend_from_slice(extra);
    env.ezctl(&args)
}

fn events(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn recap(out: &Output) -> Value {
    events(out)
        .into_iter()
        .rev()
        .find(|e| e["event"] == "recap")
        .map(|e| e["recap"].clone())
        .unwrap_or(Value::Null)
}

fn hosts(env: &Env) -> Vec<String> {
    env.lab.hosts().iter().map(|h| h.ip.to_string()).collect()
}

fn sha(env: &Env, ip: &str, path: &str) -> String {
    env.on(ip, &format!("sha256sum {path} 2>/dev/null || echo absent"))
        .1
}

fn reset(env: &Env) {
    for ip in hosts(env) {
        env.on(&ip, "rm -rf /srv/ezt");
    }
}

#[test]
fn second_run_changes_nothing_and_handlers_fire_only_on_change() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    reset(env);
    let first = play(env, "site.yml", &[]);
    assert!(first.status.success(), "{}", text(&first));
    let r = recap(&first);
    for ip in hosts(env) {
        assert!(
            r["hosts"][&ip]["changed"].as_u64().unwrap_or(0) >= 3,
            "{ip}: {r}"
        );
        assert_eq!(
            env.on(&ip, "cat /srv/ezt/restarts.log").1,
            "restarted\n",
            "handler ran once on {ip}"
        );
    }
    let second = play(env, "site.yml", &[]);
    assert!(second.status.success(), "{}", text(&second));
    let r = recap(&second);
    for ip in hosts(env) {
        assert_eq!(r["hosts"][&ip]["changed"], 0, "{ip}: {r}");
        assert_eq!(
            env.on(&ip, "cat /srv/ezt/restarts.log").1,
            "restarted\n",
            "handler must not run without a change on {ip}"
        );
    }
    // Drift on one host: only that host changes, and only its handler runs.
    let drifted = &hosts(env)[1];
    env.on(drifted, "echo tampered >> /srv/ezt/app.conf");
    let third = play(env, "site.yml", &[]);
    let r = recap(&third);
    for ip in hosts(env) {
        let want = if ip == *drifted { 1 } else { 0 };
        assert_eq!(
            r["hosts"][&ip]["changed"],
            want + if ip == *drifted { 1 } else { 0 },
            "{ip}: {r}"
        );
        let log = env.on(&ip, "wc -l < /srv/ezt/restarts.log").1;
        assert_eq!(log.trim(), if ip == *drifted { "2" } else { "1" }, "{ip}");
    }
}

#[test]
fn a_failing_host_stops_only_its_dependents_and_a_rerun_converges() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    reset(env);
    let all = hosts(env);
    let bad = &all[2];
    env.on(bad, "mkdir -p /srv/ezt && touch /srv/ezt/FAIL");
    let out = play(env, "failure.yml", &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = recap(&out);
    assert_eq!(r["failures"][0]["host"], bad.as_str(), "{r}");
    assert_eq!(r["failures"][0]["role"], "gate", "{r}");
    let skipped = r["skipped_units"].as_array().cloned().unwrap_or_default();
    assert_eq!(
        skipped.len(),
        1,
        "only after-gate on the bad host is skipped: {r}"
    );
    assert_eq!(skipped[0]["role"], "after-gate");
    assert_eq!(skipped[0]["cause"]["host"], bad.as_str());
    for ip in &all {
        assert!(
            env.on(ip, "cat /srv/ezt/other").1.contains("done"),
            "independent work finished on {ip}"
        );
        let after = env
            .on(ip, "cat /srv/ezt/after-gate 2>/dev/null || echo missing")
            .1;
        if ip == bad {
            assert!(after.contains("missing"), "{ip}: {after}");
        } else {
            assert!(after.contains("passed"), "{ip}: {after}");
        }
    }
    // The human output names the failure and what it caused to be skipped.
    let human = env.ezctl(&[
        "play",
        &env.cluster,
        fixtures()
            .join("playbooks/failure.yml")
            .to_str()
            .unwrap_or(""),
        "--roles",
        fixtures().join("roles").to_str().unwrap_or(""),
    ]);
    let said = text(&human);
    assert!(
        said.contains(&format!(
            "skipped: after-gate on {bad} because gate on {bad} failed"
        )),
        "{said}"
    );

    env.on(bad, "rm /srv/ezt/FAIL");
    let rerun = play(env, "failure.yml", &[]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert!(env.on(bad, "cat /srv/ezt/after-gate").1.contains("passed"));
}

#[test]
fn dry_run_changes_nothing_and_shows_a_diff() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    reset(env);
    assert!(play(env, "site.yml", &[]).status.success());
    let all = hosts(env);
    env.on(&all[0], "sed -i 's/^peers/# peers/' /srv/ezt/app.conf");
    env.on(&all[3], "rm -rf /srv/ezt");
    let before: Vec<String> = all
        .iter()
        .map(|ip| sha(env, ip, "/srv/ezt/app.conf") + &sha(env, ip, "/srv/ezt/restarts.log"))
        .collect();
    let out = env.ezctl(&[
        "play",
        &env.cluster,
        fixtures().join("playbooks/site.yml").to_str().unwrap_or(""),
        "--roles",
        fixtures().join("roles").to_str().unwrap_or(""),
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("-# peers") || said.contains("+peers"),
        "a unified diff of the drifted file: {said}"
    );
    assert!(said.contains("would change"), "{said}");
    let after: Vec<String> = all
        .iter()
        .map(|ip| sha(env, ip, "/srv/ezt/app.conf") + &sha(env, ip, "/srv/ezt/restarts.log"))
        .collect();
    assert_eq!(before, after, "dry-run touched a host");
    assert!(env
        .on(&all[3], "test -e /srv/ezt && echo present || echo absent")
        .1
        .contains("absent"));
}

#[test]
fn the_lock_refuses_a_second_run() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    let pb = fixtures().join("playbooks/pipeline.yml");
    let mut first = Command::new(env!("CARGO_BIN_EXE_ezctl"))
        .arg("--home")
        .arg(&env.home)
        .args([
            "play",
            &env.cluster,
            pb.to_str().unwrap_or(""),
            "--roles",
            fixtures().join("roles").to_str().unwrap_or(""),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("first run");
    let lock = env.cluster_dir().join(ez_engine::LOCK_FILE);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !lock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let held = lock.exists();
    let still_running = matches!(first.try_wait(), Ok(None));
    let second = play(env, "site.yml", &[]);
    let first_status = first.wait().expect("wait for the first run");
    assert!(held, "the first run never took the lock");
    assert!(
        still_running,
        "the first run ended before the second started: nothing to refuse"
    );
    assert_eq!(second.status.code(), Some(4), "{}", text(&second));
    let said = text(&second);
    assert!(
        said.contains(&format!("(pid {})", first.id())),
        "the refusal names the holder's pid: {said}"
    );
    // The refused run did not disturb the holder: it finishes its work
    // and releases the lock.
    assert!(
        first_status.success(),
        "the first run failed: {first_status}"
    );
    assert!(!lock.exists(), "the first run left its lock behind");
}

#[test]
fn independent_hosts_move_on_while_a_slow_host_is_busy() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    let out = play(env, "pipeline.yml", &[]);
    assert!(out.status.success(), "{}", text(&out));
    let ev = events(&out);
    let all = hosts(env);
    let slow = &all[0];
    let t = |kind: &str, host: &str, role: &str| {
        ev.iter()
            .find(|e| e["event"] == kind && e["host"] == host && e["role"] == role)
            .and_then(|e| e["t_ms"].as_u64())
            .unwrap_or_else(|| panic!("no {kind} for {role} on {host}"))
    };
    let slow_done = t("unit_end", slow, "slow");
    for ip in all.iter().filter(|ip| *ip != slow) {
        let second_started = t("unit_start", ip, "second");
        assert!(
            second_started < slow_done,
            "{ip} started `second` at {second_started} ms, after the slow host finished `slow` at {slow_done} ms: lock-step, not a DAG"
        );
    }
}
