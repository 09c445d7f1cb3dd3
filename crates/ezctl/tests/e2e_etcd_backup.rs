//! `ezctl backup` and `ezctl restore` on 7 real machines (3 etcd members,
//! 2 masters, 2 nodes) set up by `ezctl setup all`, checked with the real
//! etcdctl against every member. The restore drill also brings back real
//! objects: a namespace with a Deployment, a ConfigMap and a Secret, deleted
//! after the backup, is there again after the restore with its pods
//! running, without a manual step. Needs root and the lab; says why and
//! passes without checking anything where those are missing.
//!
//! The tests share one cluster and change its data, so they take turns
//! (`TURN`).

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use common::{text, Env};
use ez_lab::Role;
use serde_json::Value;
use sha2::{Digest, Sha256};

const PREFIX: &str = "/ezctl-e2e/";
const KEYS: usize = 10_000;

static TURN: Mutex<()> = Mutex::new(());
static READY: OnceLock<bool> = OnceLock::new();

/// The lab with the cluster set up, and this test's turn; `None` where the
/// lab cannot run.
fn ready() -> Option<(&'static Env, MutexGuard<'static, ()>)> {
    let env = common::env(7)?;
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    READY.get_or_init(|| {
        let t = Instant::now();
        env.ezctl_ok("setup", &["all"]);
        eprintln!("setup all: {:.1}s", t.elapsed().as_secs_f64());
        true
    });
    Some((env, turn))
}

fn members(env: &Env) -> Vec<String> {
    env.group(Role::Etcd)
}

fn endpoint(ip: &str) -> String {
    format!("https://{ip}:2379")
}

fn etcdctl_ok(env: &Env, endpoints: &str, args: &[&str]) -> String {
    let out = env.etcdctl(endpoints, args);
    assert!(
        out.status.success(),
        "etcdctl {args:?} at {endpoints}: {}",
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of key `i`: different lengths, nothing a shell or etcdctl's
/// argument splitting would change.
fn value(i: usize) -> String {
    hex::encode(Sha256::digest(format!("value {i}").as_bytes())).repeat(1 + i % 4)
}

/// Write the keys with one `etcdctl txn` per 128 puts (etcd's default
/// limit of operations per transaction): about 80 processes, not 10 000.
fn write_keys(env: &Env, endpoint: &str) {
    for start in (0..KEYS).step_by(128) {
        let mut body = String::from("\n");
        for i in start..(start + 128).min(KEYS) {
            body.push_str(&format!("put {PREFIX}k{i:05} {}\n", value(i)));
        }
        body.push_str("\n\n");
        let mut child = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .arg(format!("--cacert={}", env.ssl("ca.pem")))
            .arg(format!("--cert={}", env.ssl("apiserver-etcd-client.pem")))
            .arg(format!(
                "--key={}",
                env.ssl("apiserver-etcd-client-key.pem")
            ))
            .arg("txn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("etcdctl txn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(body.as_bytes())
            .expect("write txn");
        let out = child.wait_with_output().expect("etcdctl txn");
        assert!(out.status.success(), "txn from key {start}: {}", text(&out));
    }
}

/// sha256 of `get --prefix` (keys and values, in key order) as ONE member
/// has it (`--consistency=s`: answered from its own copy), and the count.
fn member_data(env: &Env, ip: &str) -> (String, usize) {
    let out = etcdctl_ok(
        env,
        &endpoint(ip),
        &["get", "--prefix", PREFIX, "--consistency=s"],
    );
    let keys = out.lines().filter(|l| l.starts_with(PREFIX)).count();
    (hex::encode(Sha256::digest(out.as_bytes())), keys)
}

fn json_result(out: &std::process::Output, event: &str) -> Value {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["event"] == "result" && v["command"] == event)
        .unwrap_or_else(|| panic!("no {event} line in:\n{}", text(out)))
}

fn backup_dir(env: &Env) -> PathBuf {
    env.cluster_dir().join("backup")
}

fn regular_snapshots(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("snapshot_") && n.ends_with(".db"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn apiserver_ready(env: &Env, master: &str) -> bool {
    env.kubectl(master, &["get", "--raw", "/readyz"])
        .status
        .success()
}

/// The drill's objects: what an application team would lose.
const DRILL: &str = r#"
apiVersion: v1
kind: Namespace
metadata: { name: drill }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings, namespace: drill }
data: { greeting: "restored from etcd" }
---
apiVersion: v1
kind: Secret
metadata: { name: password, namespace: drill }
stringData: { password: "s3cret-for-the-drill" }
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: drill }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
      - name: web
        image: docker.io/library/busybox:1.35.0
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www"]
        readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 }
"#;

fn kubectl_ok(env: &Env, master: &str, args: &[&str]) -> String {
    let out = env.kubectl(master, args);
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        args.join(" "),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The drill namespace's objects as the API serves them: the ConfigMap's
/// and the Secret's data.
fn drill_state(env: &Env, master: &str) -> (String, String) {
    let cm = kubectl_ok(
        env,
        master,
        &[
            "get",
            "configmap",
            "settings",
            "-n",
            "drill",
            "-o",
            "jsonpath={.data.greeting}",
        ],
    );
    let secret = kubectl_ok(
        env,
        master,
        &[
            "get",
            "secret",
            "password",
            "-n",
            "drill",
            "-o",
            "jsonpath={.data.password}",
        ],
    );
    (cm, secret)
}

#[test]
fn restore_brings_back_10000_keys_on_every_member() {
    let Some((env, _turn)) = ready() else { return };
    let ips = members(env);
    let master = env.group(Role::KubeMaster)[0].clone();
    let manifest = env.home.join("drill.yml");
    std::fs::write(&manifest, DRILL).expect("write drill manifest");
    kubectl_ok(env, &master, &["apply", "-f", &manifest.to_string_lossy()]);
    kubectl_ok(
        env,
        &master,
        &[
            "rollout",
            "status",
            "-n",
            "drill",
            "deployment/web",
            "--timeout=180s",
        ],
    );
    let drill_before = drill_state(env, &master);
    assert_eq!(drill_before.0, "restored from etcd");
    let all = ips
        .iter()
        .map(|ip| endpoint(ip))
        .collect::<Vec<_>>()
        .join(",");
    etcdctl_ok(env, &all, &["del", "--prefix", PREFIX]);

    let t = Instant::now();
    write_keys(env, &endpoint(&ips[0]));
    eprintln!("{KEYS} keys written in {:.1}s", t.elapsed().as_secs_f64());
    let (want, count) = member_data(env, &ips[0]);
    assert_eq!(count, KEYS);
    for ip in &ips {
        assert_eq!(
            member_data(env, ip),
            (want.clone(), KEYS),
            "{ip} before the backup"
        );
    }

    let t = Instant::now();
    let out = env.ezctl(&["--json", "backup", &env.cluster]);
    let backup_secs = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "backup: {}", text(&out));
    let saved = json_result(&out, "backup");
    let path = PathBuf::from(saved["path"].as_str().expect("path"));
    let latest = backup_dir(env).join("snapshot.db");
    assert!(path.starts_with(backup_dir(env)), "{path:?}");
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.len() == "snapshot_YYYYMMDDHHMMSS.db".len() && name.starts_with("snapshot_"),
        "{name}"
    );
    let bytes = std::fs::read(&path).expect("snapshot file");
    assert_eq!(
        bytes,
        std::fs::read(&latest).expect("snapshot.db"),
        "snapshot.db is a copy"
    );
    assert_eq!(saved["size"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(
        saved["sha256"].as_str(),
        Some(hex::encode(Sha256::digest(&bytes)).as_str())
    );
    assert!(
        saved["total_keys"].as_u64().unwrap_or(0) >= KEYS as u64,
        "{saved}"
    );
    assert!(saved["revision"].as_i64().unwrap_or(0) > 0, "{saved}");
    for f in [&path, &latest] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f:?} holds every Secret of the cluster");
    }
    // The snapshot is etcd's own: a local etcdctl reads the same status.
    let status: Value = serde_json::from_slice(
        &Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .args(["snapshot", "status", "-w", "json"])
            .arg(&path)
            .output()
            .expect("etcdctl snapshot status")
            .stdout,
    )
    .expect("status json");
    assert_eq!(status["hash"], saved["hash"]);
    assert_eq!(status["revision"], saved["revision"]);

    etcdctl_ok(env, &all, &["del", "--prefix", PREFIX]);
    for ip in &ips {
        assert_eq!(member_data(env, ip).1, 0, "{ip} after the delete");
    }
    // The application is gone too (the delete waits for its pods to end).
    kubectl_ok(
        env,
        &master,
        &[
            "delete",
            "namespace",
            "drill",
            "--wait=true",
            "--timeout=180s",
        ],
    );
    let gone = env.kubectl(&master, &["get", "namespace", "drill"]);
    assert!(
        !gone.status.success() && text(&gone).contains("NotFound"),
        "{}",
        text(&gone)
    );

    let t = Instant::now();
    let out = env.ezctl(&["--json", "restore", &env.cluster]);
    let restore_secs = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "restore: {}", text(&out));
    let restored = json_result(&out, "restore");
    let safety = PathBuf::from(
        restored["safety_snapshot"]
            .as_str()
            .expect("a safety snapshot"),
    );
    assert!(safety.is_file(), "{safety:?}");
    assert_eq!(
        std::fs::read(&latest).expect("snapshot.db"),
        bytes,
        "the safety snapshot does not replace snapshot.db"
    );

    for ip in &ips {
        assert_eq!(
            member_data(env, ip),
            (want.clone(), KEYS),
            "{ip}: every key back, byte for byte"
        );
        // The data that was replaced is kept, not deleted.
        let stamp = restored["old_data"].as_str().expect("old_data");
        let (code, out) = env.on(ip, &format!("test -d {stamp}/member && echo kept"));
        assert!(code == 0 && out.contains("kept"), "{ip}: {stamp}: {out}");
    }
    let health = env.etcdctl(&all, &["endpoint", "health"]);
    assert!(health.status.success(), "{}", text(&health));
    for master in env.group(Role::KubeMaster) {
        assert!(
            apiserver_ready(env, &master),
            "apiserver {master} after the restore"
        );
    }
    let nodes = env.kubectl(
        &env.group(Role::KubeMaster)[0],
        &["get", "nodes", "-o", "name"],
    );
    assert!(nodes.status.success(), "{}", text(&nodes));
    assert_eq!(
        String::from_utf8_lossy(&nodes.stdout).lines().count(),
        4,
        "{}",
        text(&nodes)
    );
    // The application is back: the same data, and its pods run again with
    // no manual step (the kubelets reconcile the restored objects).
    assert_eq!(drill_state(env, &master), drill_before);
    let t = Instant::now();
    kubectl_ok(
        env,
        &master,
        &[
            "rollout",
            "status",
            "-n",
            "drill",
            "deployment/web",
            "--timeout=180s",
        ],
    );
    let running = kubectl_ok(
        env,
        &master,
        &[
            "get",
            "pods",
            "-n",
            "drill",
            "--field-selector=status.phase=Running",
            "-o",
            "name",
        ],
    );
    assert!(
        running.lines().count() >= 2,
        "drill pods after the restore: {running}"
    );
    eprintln!(
        "restore drill: namespace, ConfigMap, Secret back; Deployment available {:.1}s after the restore",
        t.elapsed().as_secs_f64()
    );
    kubectl_ok(
        env,
        &master,
        &["delete", "namespace", "drill", "--wait=false"],
    );
    eprintln!(
        "FIGURES backup {backup_secs:.1}s, restore {restore_secs:.1}s ({KEYS} keys, {} bytes)",
        bytes.len()
    );
}

#[test]
fn a_corrupt_snapshot_stops_nothing() {
    let Some((env, _turn)) = ready() else { return };
    let ips = members(env);
    let all = ips
        .iter()
        .map(|ip| endpoint(ip))
        .collect::<Vec<_>>()
        .join(",");
    etcdctl_ok(
        env,
        &all,
        &["put", "/ezctl-e2e-corrupt/marker", "still-here"],
    );
    // A real snapshot with one byte flipped: etcd's sha256 trailer no longer matches.
    let out = env.ezctl_ok("backup", &[]);
    let good = backup_dir(env).join("snapshot.db");
    assert!(good.is_file(), "{}", text(&out));
    let mut bytes = std::fs::read(&good).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    let bad = std::env::temp_dir().join(format!("ezctl-e2e-corrupt-{}.db", std::process::id()));
    std::fs::write(&bad, &bytes).unwrap();

    let out = env.ezctl(&["restore", &env.cluster, "--snapshot", bad.to_str().unwrap()]);
    let _ = std::fs::remove_file(&bad);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains("etcd-restore:stage"),
        "the trial restore refused it: {said}"
    );
    // Nothing was stopped or replaced.
    for master in env.group(Role::KubeMaster) {
        assert!(
            apiserver_ready(env, &master),
            "apiserver {master} kept running"
        );
    }
    for ip in &ips {
        let got = etcdctl_ok(
            env,
            &endpoint(ip),
            &[
                "get",
                "/ezctl-e2e-corrupt/marker",
                "--print-value-only",
                "--consistency=s",
            ],
        );
        assert_eq!(got.trim(), "still-here", "{ip}");
    }
    etcdctl_ok(env, &all, &["del", "--prefix", "/ezctl-e2e-corrupt/"]);

    // A missing file is an input error before anything runs.
    let out = env.ezctl(&[
        "restore",
        &env.cluster,
        "--snapshot",
        "/nonexistent/snap.db",
    ]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
}

#[test]
fn backup_skips_a_member_that_is_down_and_keeps_n() {
    let Some((env, _turn)) = ready() else { return };
    let ips = members(env);
    let dir = backup_dir(env);
    // Member 1 down: the snapshot comes from the next one, with a note.
    let (code, out) = env.on(&ips[0], "systemctl stop etcd");
    assert_eq!(code, 0, "{out}");
    let out = env.ezctl(&["--json", "backup", &env.cluster, "--keep", "2"]);
    let (code, started) = env.on(&ips[0], "systemctl start etcd");
    assert_eq!(code, 0, "{started}");
    assert!(out.status.success(), "{}", text(&out));
    let saved = json_result(&out, "backup");
    assert_eq!(saved["member"].as_str(), Some(ips[1].as_str()), "{saved}");
    let skipped = saved["skipped"].to_string();
    assert!(
        skipped.contains(&ips[0]) && skipped.contains("endpoint health"),
        "{skipped}"
    );

    for _ in 0..2 {
        env.ezctl_ok("backup", &["--keep", "2"]);
    }
    let kept = regular_snapshots(&dir);
    assert_eq!(kept.len(), 2, "{kept:?}");
    let newest = std::fs::read(dir.join(kept.last().unwrap())).unwrap();
    assert_eq!(
        newest,
        std::fs::read(dir.join("snapshot.db")).unwrap(),
        "snapshot.db is the newest"
    );

    let out = env.ezctl(&["backup", &env.cluster, "--keep", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        regular_snapshots(&dir),
        kept,
        "a refused backup removes nothing"
    );
    let wait = env.etcdctl(
        &ips.iter()
            .map(|ip| endpoint(ip))
            .collect::<Vec<_>>()
            .join(","),
        &["endpoint", "health"],
    );
    assert!(wait.status.success(), "{}", text(&wait));
}
