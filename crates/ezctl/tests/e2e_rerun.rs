//! Re-runs on a converged cluster of real machines, one lab, one setup:
//!
//! - `--dry-run` is dry and exact: `setup all --dry-run` reports 0 changes
//!   (and 0 "outcome unknown") and leaves every file on the controller and
//!   the hosts byte-identical; a dry run that would re-issue a certificate
//!   re-issues nothing on the controller and shows the change on the hosts.
//! - a re-run that restarts a tier rolls it: `setup 02` with a changed etcd
//!   binary restarts the members one at a time and the cluster keeps a
//!   quorum (health sampled every 0.5 s); `setup 04` after a certificate
//!   re-issue restarts the apiservers one at a time and one always answers
//!   /readyz.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{text, Env};
use serde_json::Value;

fn recap(out: &std::process::Output) -> Value {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|e| e["event"] == "recap")
        .map(|e| e["recap"].clone())
        .unwrap_or(Value::Null)
}

/// The task events of a run that changed or would run (what a converged
/// dry run must not have), for the failure message.
fn changes(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains("\"status\":\"unknown\"") || l.contains("\"status\":\"changed\""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn sum(recap: &Value, field: &str) -> u64 {
    recap["hosts"]
        .as_object()
        .map(|h| h.values().map(|v| v[field].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

/// Every file under `dir` (path relative to it) with its sha256 and mode.
fn controller_files(dir: &Path) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).expect("stat");
            if meta.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let hash = hex::encode(Sha256::digest(std::fs::read(&p).unwrap_or_default()));
            out.insert(rel, format!("{hash} {:o}", meta.permissions().mode()));
        }
    }
    out
}

/// sha256, mode and owner of every file ezctl manages on a host.
fn host_files(env: &Env, ip: &str) -> String {
    let (code, out) = env.on(
        ip,
        "find /etc /opt/kube /opt/cni /var/lib/kube-proxy /var/lib/kubelet/config.yaml -xdev -type f 2>/dev/null \
         | sort | while read -r f; do echo \"$(sha256sum < \"$f\" | cut -c1-64) $(stat -c '%a %U:%G' \"$f\") $f\"; done",
    );
    assert_eq!(code, 0, "{ip}: {out}");
    assert!(out.lines().count() > 50, "{ip}: too few files:\n{out}");
    out
}

fn snapshot(env: &Env) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let hosts = env
        .lab
        .hosts()
        .iter()
        .map(|h| (h.ip.to_string(), host_files(env, &h.ip.to_string())))
        .collect();
    (controller_files(&env.cluster_dir()), hosts)
}

fn assert_same(
    what: &str,
    before: &(BTreeMap<String, String>, BTreeMap<String, String>),
    after: &(BTreeMap<String, String>, BTreeMap<String, String>),
) {
    for (k, v) in &before.0 {
        assert_eq!(
            after.0.get(k),
            Some(v),
            "{what}: controller file {k} changed"
        );
    }
    for k in after.0.keys() {
        assert!(before.0.contains_key(k), "{what}: new controller file {k}");
    }
    for (ip, files) in &before.1 {
        let now = &after.1[ip];
        if files != now {
            let old: Vec<&str> = files.lines().collect();
            let diff: Vec<&str> = now.lines().filter(|l| !old.contains(l)).collect();
            panic!("{what}: files on {ip} changed:\n{}", diff.join("\n"));
        }
    }
}

#[test]
fn a_dry_run_of_a_converged_cluster_changes_nothing_and_reports_nothing() {
    let Some(env) = common::env(4) else { return };
    let first = env.ezctl(&["--json", "setup", &env.cluster, "all"]);
    assert!(first.status.success(), "{}", text(&first));
    let second = env.ezctl(&["--json", "setup", &env.cluster, "all"]);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(
        sum(&recap(&second), "changed"),
        0,
        "not converged: {}\n{}",
        recap(&second),
        changes(&second)
    );

    let before = snapshot(env);
    let dry = env.ezctl(&["--json", "setup", &env.cluster, "all", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let r = recap(&dry);
    assert_eq!(r["dry_run"], true, "{r}");
    eprintln!(
        "setup all --dry-run on a converged cluster: ok={} would_change={} unknown={} skipped={}",
        sum(&r, "ok"),
        sum(&r, "changed"),
        sum(&r, "unknown"),
        sum(&r, "skipped")
    );
    assert!(sum(&r, "ok") > 50, "the dry run checked too little: {r}");
    assert_eq!(
        sum(&r, "changed"),
        0,
        "would change on a converged cluster: {r}\n{}",
        changes(&dry)
    );
    assert_eq!(
        sum(&r, "unknown"),
        0,
        "outcome unknown on a converged cluster: {r}\n{}",
        changes(&dry)
    );
    assert_same("setup all --dry-run", &before, &snapshot(env));

    // A new name for the API: the dry run re-issues nothing here, and says
    // the apiserver certificate would change on every master.
    let config = env.cluster_dir().join("config.yml");
    let original = std::fs::read_to_string(&config).expect("config.yml");
    // The lab's config.yml sets a few keys, or is `{}`.
    assert!(!original.contains("MASTER_CERT_HOSTS"), "{original}");
    let edited = format!(
        "{}MASTER_CERT_HOSTS: [dry-run.example.com]\n",
        original.replace("{}\n", "")
    );
    std::fs::write(&config, &edited).expect("write config.yml");
    let before = snapshot(env);
    let dry = env.ezctl(&["--json", "setup", &env.cluster, "04", "--dry-run"]);
    std::fs::write(&config, &original).expect("restore config.yml");
    assert!(dry.status.success(), "{}", text(&dry));
    let r = recap(&dry);
    let masters = env.group(ez_lab::Role::KubeMaster);
    for m in &masters {
        assert!(
            r["hosts"][m]["changed"].as_u64().unwrap_or(0) > 0,
            "{m}: the new certificate is not reported: {r}"
        );
    }
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(out.contains("kubernetes.pem"), "{out}");
    let mut after = snapshot(env);
    // config.yml was edited by this test, not by ezctl.
    after.0.insert(
        "config.yml".into(),
        before.0.get("config.yml").cloned().unwrap_or_default(),
    );
    assert_same(
        "setup 04 --dry-run after a MASTER_CERT_HOSTS edit",
        &before,
        &after,
    );

    etcd_binary_change_rolls_with_a_quorum(env);
    cert_reissue_rolls_the_apiservers(env);
}

/// `systemctl show` properties of `unit` on `ip`, as numbers.
fn unit_numbers(env: &Env, ip: &str, unit: &str) -> (u64, u64, u64) {
    let (code, out) = env.on(
        ip,
        &format!(
            "systemctl show -p MainPID -p ExecMainStartTimestampMonotonic -p ActiveEnterTimestampMonotonic {unit}"
        ),
    );
    assert_eq!(code, 0, "{ip}: {out}");
    let get = |k: &str| -> u64 {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{ip}: no {k} in {out}"))
    };
    (
        get("MainPID"),
        get("ExecMainStartTimestampMonotonic"),
        get("ActiveEnterTimestampMonotonic"),
    )
}

/// Run `probe` every 0.5 s on a thread until `stop`; its samples.
fn sample_every_half_second<T: Send + 'static>(
    stop: Arc<AtomicBool>,
    probe: impl Fn() -> T + Send + 'static,
) -> std::thread::JoinHandle<Vec<(Duration, T)>> {
    std::thread::spawn(move || {
        let started = Instant::now();
        let mut samples = Vec::new();
        let mut next = started;
        // Bounded: no run of setup takes half an hour.
        while !stop.load(Ordering::Relaxed) && started.elapsed() < Duration::from_secs(1800) {
            samples.push((started.elapsed(), probe()));
            next += Duration::from_millis(500);
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        samples
    })
}

/// One look at the etcd members during a rolling restart.
struct EtcdSample {
    /// Members that answered `etcdctl endpoint health` (a linearizable read).
    healthy: Vec<String>,
    /// Members whose client port refused a TCP connection: the process is
    /// not running. Unlike a slow answer, this does not depend on how busy
    /// the machine is.
    refusing: Vec<String>,
}

/// Healthy members among `endpoints`, from one `etcdctl endpoint health`
/// (it checks the endpoints at once).
fn healthy_members(etcdctl: &Path, ssl: &Path, endpoints: &str) -> Vec<String> {
    let out = std::process::Command::new(etcdctl)
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoints}"))
        .arg(format!("--cacert={}", ssl.join("ca.pem").display()))
        .arg(format!(
            "--cert={}",
            ssl.join("apiserver-etcd-client.pem").display()
        ))
        .arg(format!(
            "--key={}",
            ssl.join("apiserver-etcd-client-key.pem").display()
        ))
        // 5 s, a client's patience rather than a stopwatch (as the day-2
        // tests' /readyz probe, `day2::probe`): with 400 ms a
        // loaded box (another lab upgrading Kubernetes beside this one) made
        // healthy members miss the deadline in 48 of 51 samples; with 1 s,
        // CI saw 25 of 41 samples with a member "down" and one with all
        // three, while the three restarts together lasted 2 s and never
        // overlapped. The apiserver waits far longer than 5 s for etcd. A
        // member that is down refuses the connection at once, whatever the
        // timeout, and `refusing_members` checks that on its own.
        .args([
            "--dial-timeout=5s",
            "--command-timeout=5s",
            "endpoint",
            "health",
            "-w",
            "json",
        ])
        .output()
        .expect("run etcdctl");
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
        .iter()
        .filter(|e| e["health"] == true)
        .filter_map(|e| e["endpoint"].as_str().map(String::from))
        .collect()
}

/// Members whose etcd client port refuses a connection (no process listens).
/// A connection that is merely slow is not counted: only a refusal is.
fn refusing_members(members: &[String]) -> Vec<String> {
    members
        .iter()
        .filter(|m| {
            let addr = std::net::SocketAddr::new(m.parse().expect("member address is an IP"), 2379);
            matches!(
                std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
            )
        })
        .cloned()
        .collect()
}

/// A changed etcd binary on a running cluster: every member restarts, one
/// at a time (each restart starts after the previous member is up again),
/// and at every 0.5 s sample a quorum of members is healthy. A second run
/// restarts nothing.
fn etcd_binary_change_rolls_with_a_quorum(env: &Env) {
    let members = env.group(ez_lab::Role::Etcd);
    assert!(
        members.len() >= 3,
        "a quorum test needs 3 members: {members:?}"
    );
    let quorum = members.len() / 2 + 1;
    let endpoints = members
        .iter()
        .map(|m| format!("https://{m}:2379"))
        .collect::<Vec<_>>()
        .join(",");
    let etcdctl = env.home.join("bin/etcdctl");
    let ssl = env.cluster_dir().join("ssl");
    // The sampler sees a healthy cluster (and would see a member down).
    assert_eq!(
        healthy_members(&etcdctl, &ssl, &endpoints).len(),
        members.len(),
        "not every member is healthy before the test"
    );
    let before: Vec<_> = members
        .iter()
        .map(|m| unit_numbers(env, m, "etcd"))
        .collect();

    // A different etcd: the same program with bytes after its end.
    let bin = env.home.join("bin/etcd");
    let original = std::fs::read(&bin).expect("bundle etcd");
    let mut changed = original.clone();
    changed.extend_from_slice(b"\0ezctl-rolling-test\0");
    let changed_sum = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(&changed))
    };
    replace_binary(&bin, &changed);

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (etcdctl, ssl, endpoints) = (etcdctl.clone(), ssl.clone(), endpoints.clone());
        let members = members.clone();
        sample_every_half_second(stop.clone(), move || EtcdSample {
            refusing: refusing_members(&members),
            healthy: healthy_members(&etcdctl, &ssl, &endpoints),
        })
    };
    let run = env.ezctl(&["--json", "setup", &env.cluster, "02"]);
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    replace_binary(&bin, &original);
    assert!(run.status.success(), "{}", text(&run));

    let after: Vec<_> = members
        .iter()
        .map(|m| unit_numbers(env, m, "etcd"))
        .collect();
    let mut restarts: Vec<(u64, u64, &String)> = Vec::new();
    for ((m, b), a) in members.iter().zip(&before).zip(&after) {
        assert_ne!(a.0, b.0, "{m}: etcd was not restarted for its new binary");
        let (code, sum) = env.on(m, "sha256sum < /opt/kube/bin/etcd");
        assert!(
            code == 0 && sum.starts_with(&changed_sum),
            "{m}: the new etcd binary is not in place: {sum}"
        );
        restarts.push((a.1, a.2, m));
    }
    restarts.sort();
    let worst = samples
        .iter()
        .map(|(_, s)| s.healthy.len())
        .min()
        .unwrap_or(0);
    let down: usize = samples
        .iter()
        .filter(|(_, s)| s.healthy.len() < members.len())
        .count();
    let refused: usize = samples
        .iter()
        .filter(|(_, s)| !s.refusing.is_empty())
        .count();
    eprintln!(
        "setup 02 with a changed etcd binary: {} samples over {:.1}s, fewest healthy members {worst} of {} (quorum {quorum}), {down} samples with a member not answering, {refused} with a member refusing connections; restarts (monotonic s, start -> active): {}",
        samples.len(),
        samples.last().map(|s| s.0.as_secs_f64()).unwrap_or(0.0),
        members.len(),
        restarts
            .iter()
            .map(|(s, a, m)| format!("{m} {:.2}->{:.2}", *s as f64 / 1e6, *a as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(samples.len() >= 4, "too few samples: {}", samples.len());
    for (t, sample) in &samples {
        assert!(
            sample.refusing.len() <= members.len() - quorum,
            "at {t:?} {:?} refused connections at once: quorum lost",
            sample.refusing
        );
        assert!(
            sample.healthy.len() >= quorum,
            "at {t:?} only {:?} answered a health check within 5 s: quorum lost",
            sample.healthy
        );
    }
    // One at a time: a member restarts only once the previous one is up.
    for w in restarts.windows(2) {
        assert!(
            w[1].0 >= w[0].1,
            "{} restarted at {} before {} was up again at {}",
            w[1].2,
            w[1].0,
            w[0].2,
            w[0].1
        );
    }

    // Converged: the same run again restarts nothing (the bundle's binary is
    // back to the original, so the first run's binary is replaced: set it
    // again to what the hosts have).
    replace_binary(&bin, &changed);
    let again = env.ezctl(&["--json", "setup", &env.cluster, "02"]);
    replace_binary(&bin, &original);
    assert!(again.status.success(), "{}", text(&again));
    for (m, a) in members.iter().zip(&after) {
        assert_eq!(
            unit_numbers(env, m, "etcd").0,
            a.0,
            "{m}: etcd restarted on a converged re-run"
        );
    }
}

/// Replace a bundle binary by a new file (never writing through a link
/// into a shared build cache), executable.
fn replace_binary(path: &Path, data: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("rolling-test");
    std::fs::write(&tmp, data).expect("write binary");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::rename(&tmp, path).expect("rename binary");
}

/// Whether the apiserver on `ip` answers /readyz, asked as the admin (an
/// apiserver without anonymous auth answers an anonymous probe 401), within
/// 5 s, as the day-2 tests' probe (`day2::probe`) allows: a slow answer is
/// not "down". With 1 s, a 2-core box running two labs saw the one
/// apiserver not restarting miss the deadline while the other started up
/// (its start-up loads etcd and the CPUs for about a minute); a restarting
/// apiserver refuses at once, whatever the timeout.
fn ready(admin: &[String; 3], ip: &str) -> bool {
    std::process::Command::new("curl")
        .args(["-sf", "--max-time", "5", "-o", "/dev/null"])
        .args(["--cacert", &admin[0]])
        .args(["--cert", &admin[1]])
        .args(["--key", &admin[2]])
        .arg(format!("https://{ip}:6443/readyz"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// A re-issued apiserver certificate (a new MASTER_CERT_HOSTS name): every
/// apiserver restarts, one at a time, and at every 0.5 s sample one of them
/// answers /readyz.
fn cert_reissue_rolls_the_apiservers(env: &Env) {
    let masters = env.group(ez_lab::Role::KubeMaster);
    assert!(
        masters.len() >= 2,
        "a rolling test needs 2 masters: {masters:?}"
    );
    let admin = [
        env.ssl("ca.pem"),
        env.ssl("admin.pem"),
        env.ssl("admin-key.pem"),
    ];
    // The etcd roll just before may leave an apiserver catching up: give
    // each up to a minute to be ready before the test starts.
    for m in &masters {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !ready(&admin, m) {
            assert!(
                std::time::Instant::now() < deadline,
                "{m}: /readyz does not answer before the test"
            );
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
    let before: Vec<_> = masters
        .iter()
        .map(|m| unit_numbers(env, m, "kube-apiserver"))
        .collect();
    let config = env.cluster_dir().join("config.yml");
    let original = std::fs::read_to_string(&config).expect("config.yml");
    let edited = format!(
        "{}MASTER_CERT_HOSTS: [rolling.example.com]\n",
        original.replace("{}\n", "")
    );
    std::fs::write(&config, &edited).expect("write config.yml");

    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let masters = masters.clone();
        let admin = admin.clone();
        sample_every_half_second(stop.clone(), move || {
            std::thread::scope(|s| {
                let probes: Vec<_> = masters
                    .iter()
                    .map(|m| s.spawn(|| (m.clone(), ready(&admin, m))))
                    .collect();
                probes
                    .into_iter()
                    .filter_map(|p| p.join().ok())
                    .filter(|(_, up)| *up)
                    .map(|(m, _)| m)
                    .collect::<Vec<_>>()
            })
        })
    };
    let run = env.ezctl(&["--json", "setup", &env.cluster, "04"]);
    stop.store(true, Ordering::Relaxed);
    let samples = sampler.join().expect("sampler");
    assert!(run.status.success(), "{}", text(&run));

    let mut starts = Vec::new();
    for (m, b) in masters.iter().zip(&before) {
        let a = unit_numbers(env, m, "kube-apiserver");
        assert_ne!(
            a.0, b.0,
            "{m}: kube-apiserver was not restarted for its new certificate"
        );
        let (code, sans) = env.on(
            m,
            "openssl x509 -noout -ext subjectAltName -in /etc/kubernetes/ssl/kubernetes.pem",
        );
        assert!(
            code == 0 && sans.contains("rolling.example.com"),
            "{m}: {sans}"
        );
        starts.push((a.1, m));
    }
    starts.sort();
    let worst = samples.iter().map(|(_, r)| r.len()).min().unwrap_or(0);
    eprintln!(
        "setup 04 after a certificate re-issue: {} samples over {:.1}s, fewest ready apiservers {worst} of {}; {} samples with one not ready; restarts (monotonic s): {}",
        samples.len(),
        samples.last().map(|s| s.0.as_secs_f64()).unwrap_or(0.0),
        masters.len(),
        samples.iter().filter(|(_, r)| r.len() < masters.len()).count(),
        starts
            .iter()
            .map(|(s, m)| format!("{m} {:.2}", *s as f64 / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    );
    assert!(samples.len() >= 4, "too few samples: {samples:?}");
    for (t, up) in &samples {
        assert!(!up.is_empty(), "at {t:?} no apiserver answered /readyz");
    }
}
