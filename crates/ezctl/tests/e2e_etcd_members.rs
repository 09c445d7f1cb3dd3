//! `ezctl add-etcd` and `ezctl del-etcd` on 9 real machines: 3 etcd members,
//! 2 masters, 2 nodes set up by `ezctl setup all`, and 2 spare machines
//! taken out of hosts.yml before the setup (the ones that get added).
//! etcd health is sampled from a background thread during every change.
//! Needs root and the lab; says why and passes without checking anything
//! where those are missing.
//!
//! The tests share one cluster and change its inventory, so they take
//! turns (`TURN`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{text, Env};
use ez_inventory::edit::remove_host;
use ez_inventory::Group;
use ez_lab::Role;
use serde_json::Value;

static TURN: Mutex<()> = Mutex::new(());
static READY: OnceLock<Vec<String>> = OnceLock::new();

/// The lab with the cluster set up (spares out of it), the spare IPs, and
/// this test's turn; `None` where the lab cannot run.
fn ready() -> Option<(&'static Env, Vec<String>, MutexGuard<'static, ()>)> {
    let env = common::env(9)?;
    let turn = TURN.lock().unwrap_or_else(|e| e.into_inner());
    let spares = READY.get_or_init(|| {
        let hosts: Vec<String> = env.lab.hosts().iter().map(|h| h.ip.to_string()).collect();
        let spares = hosts[7..9].to_vec();
        let path = hosts_yml(env);
        let mut text = std::fs::read_to_string(&path).expect("hosts.yml");
        for ip in &spares {
            text = remove_host(&text, Group::KubeNode, ip).expect("spare in kube_node");
        }
        if text.contains(&format!("ip: {}", spares[1])) {
            text = remove_host(&text, Group::Harbor, &spares[1]).expect("harbor");
        }
        std::fs::write(&path, text).expect("write hosts.yml");
        let t = Instant::now();
        env.ezctl_ok("setup", &["all"]);
        eprintln!("setup all: {:.1}s", t.elapsed().as_secs_f64());
        spares
    });
    Some((env, spares.clone(), turn))
}

fn hosts_yml(env: &Env) -> PathBuf {
    env.cluster_dir().join("hosts.yml")
}

fn endpoint(ip: &str) -> String {
    format!("https://{ip}:2379")
}

fn endpoints(ips: &[String]) -> String {
    ips.iter()
        .map(|ip| endpoint(ip))
        .collect::<Vec<_>>()
        .join(",")
}

/// The etcd group of hosts.yml, as ezctl reads it.
fn inventory_members(env: &Env) -> Vec<String> {
    let c = ez_inventory::Cluster::load(&env.cluster_dir()).expect("hosts.yml loads");
    c.group(Group::Etcd).map(|h| h.ip.to_string()).collect()
}

/// `member list` names, sorted.
fn member_names(env: &Env, ips: &[String]) -> Vec<String> {
    let out = env.etcdctl(&endpoints(ips), &["member", "list", "-w", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("member list json");
    let mut names: Vec<String> = v["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| m["name"].as_str().unwrap_or("").to_string())
        .collect();
    names.sort();
    names
}

/// Healthy endpoints among `ips`, each asked on its own.
fn healthy(ips: &[String]) -> Vec<String> {
    ips.iter().filter(|ip| health_of(ip)).cloned().collect()
}

fn health_of(ip: &str) -> bool {
    let env = common::env(9).expect("env");
    env.etcdctl(
        &endpoint(ip),
        &[
            "--dial-timeout=1s",
            "--command-timeout=1s",
            "endpoint",
            "health",
        ],
    )
    .status
    .success()
}

/// One sample: when, and which endpoints answered a linearizable read.
struct Sample {
    at: Duration,
    healthy: usize,
}

/// `endpoint health` of every endpoint every ~0.5 s from a background
/// thread while a command runs. An endpoint is healthy when it served a
/// linearizable read, which only a member connected to a leader with a
/// majority can: one healthy endpoint proves the cluster had a quorum.
struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Sample>>,
}

impl Sampler {
    fn start(env: &'static Env, ips: Vec<String>) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut samples = Vec::new();
            // Bounded: a run longer than 15 minutes is a failure anyway.
            while !flag.load(Ordering::SeqCst) && t0.elapsed() < Duration::from_secs(900) {
                let started = Instant::now();
                let out = env.etcdctl(
                    &endpoints(&ips),
                    &[
                        "--dial-timeout=1s",
                        "--command-timeout=1s",
                        "endpoint",
                        "health",
                        "-w",
                        "json",
                    ],
                );
                let healthy = serde_json::from_slice::<Value>(&out.stdout)
                    .ok()
                    .and_then(|v| v.as_array().cloned())
                    .map(|a| a.iter().filter(|e| e["health"] == true).count())
                    .unwrap_or(0);
                samples.push(Sample {
                    at: t0.elapsed(),
                    healthy,
                });
                if let Some(rest) = Duration::from_millis(500).checked_sub(started.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            samples
        });
        Sampler { stop, handle }
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().expect("sampler thread")
    }
}

/// The longest stretch without a healthy sample, and how many samples had
/// fewer than `expected_min` healthy endpoints.
fn check_quorum(samples: &[Sample], what: &str) {
    assert!(
        samples.len() >= 10,
        "{what}: only {} samples",
        samples.len()
    );
    let mut last_ok = Duration::ZERO;
    let mut longest = Duration::ZERO;
    for s in samples {
        if s.healthy > 0 {
            longest = longest.max(s.at.saturating_sub(last_ok));
            last_ok = s.at;
        }
    }
    let end = samples.last().map_or(Duration::ZERO, |s| s.at);
    longest = longest.max(end.saturating_sub(last_ok));
    let no_quorum = samples.iter().filter(|s| s.healthy == 0).count();
    let min = samples.iter().map(|s| s.healthy).min().unwrap_or(0);
    eprintln!(
        "{what}: {} samples over {:.1}s, min healthy {min}, {no_quorum} without a healthy endpoint, longest gap {:.1}s",
        samples.len(),
        end.as_secs_f64(),
        longest.as_secs_f64()
    );
    // A leader election after a removal or restart takes about a second
    // (election timeout 1 s): a few seconds without a quorum would mean it
    // was lost.
    assert!(
        longest <= Duration::from_secs(5),
        "{what}: no healthy endpoint for {:.1}s",
        longest.as_secs_f64()
    );
}

fn apiserver_uses(env: &Env, master: &str, members: &[String]) -> bool {
    let (code, out) = env.on(
        master,
        "tr '\\0' ' ' < /proc/$(systemctl show -p MainPID --value kube-apiserver)/cmdline",
    );
    code == 0 && out.contains(&format!("--etcd-servers={} ", endpoints(members)))
}

#[test]
fn add_two_members_then_remove_two_keeping_quorum() {
    let Some((env, spares, _turn)) = ready() else {
        return;
    };
    let before = inventory_members(env);
    assert_eq!(before.len(), 3);
    let masters = env.group(Role::KubeMaster);
    assert_eq!(healthy(&before), before, "green before");

    // add-etcd: 3 -> 5, the first attempt failing on the second new host
    // (its data dir path is taken by a file): the first new member stays,
    // the second is taken out again, hosts.yml is untouched; the same
    // command then continues.
    let hosts_before = std::fs::read(hosts_yml(env)).unwrap();
    let (code, out) = env.on(&spares[1], "rm -rf /var/lib/etcd && touch /var/lib/etcd");
    assert_eq!(code, 0, "{out}");
    let mut watch = before.clone();
    watch.extend(spares.iter().cloned());
    // A workload polled every 0.2 s through the nodes' NodePorts: the pods
    // and Services must not notice etcd changing under the apiservers.
    let workers: Vec<String> = env
        .group(Role::KubeNode)
        .into_iter()
        .filter(|ip| !spares.contains(ip))
        .collect();
    let workload = common::workload::Workload::deploy(env, &masters[0], "probe", 2);
    let probe = workload.probe(&workers);
    let sampler = Sampler::start(env, watch.clone());
    let out = env.ezctl(&["add-etcd", &env.cluster, &spares[0], &spares[1]]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&format!("etcd on {} did not come up", spares[1])),
        "{said}"
    );
    assert!(said.contains("hosts.yml unchanged"), "{said}");
    assert_eq!(
        std::fs::read(hosts_yml(env)).unwrap(),
        hosts_before,
        "hosts.yml byte-identical"
    );
    let mut partial: Vec<String> = before
        .iter()
        .chain([&spares[0]])
        .map(|ip| format!("etcd-{ip}"))
        .collect();
    partial.sort();
    assert_eq!(
        member_names(env, &before),
        partial,
        "first new member kept, second undone"
    );
    let mut four = before.clone();
    four.push(spares[0].clone());
    assert_eq!(healthy(&four), four);
    env.on(&spares[1], "rm -f /var/lib/etcd");

    let t = Instant::now();
    let out = env.ezctl(&["add-etcd", &env.cluster, &spares[0], &spares[1]]);
    let add_secs = t.elapsed().as_secs_f64();
    let samples = sampler.finish();
    probe
        .finish("add-etcd (failed attempt, then the re-run)")
        .assert_no_failures("add-etcd");
    assert!(out.status.success(), "add-etcd again: {}", text(&out));
    assert!(
        text(&out).contains("already in the member list"),
        "{}",
        text(&out)
    );
    check_quorum(&samples, "add-etcd (failed attempt, then the re-run)");
    let grown = inventory_members(env);
    assert_eq!(grown.len(), 5);
    assert!(spares.iter().all(|ip| grown.contains(ip)), "{grown:?}");
    assert_eq!(healthy(&grown), grown, "green after add-etcd");
    let mut want: Vec<String> = grown.iter().map(|ip| format!("etcd-{ip}")).collect();
    want.sort();
    assert_eq!(member_names(env, &grown), want);
    for m in &masters {
        assert!(
            apiserver_uses(env, m, &grown),
            "apiserver {m} has the 5 members"
        );
    }
    // The etcd cert carries the new IPs (the members serve it over TLS).
    let cert = std::fs::read_to_string(env.cluster_dir().join("ssl/etcd.pem")).unwrap();
    let sans = Command::new("openssl")
        .args(["x509", "-noout", "-ext", "subjectAltName"])
        .stdin(std::process::Stdio::piped())
        .output_with_stdin(cert.as_bytes());
    for ip in &spares {
        assert!(sans.contains(ip), "etcd.pem SANs: {sans}");
    }
    let local = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(cert.as_bytes()));
    for ip in &grown {
        let (code, out) = env.on(ip, "sha256sum /etc/kubernetes/ssl/etcd.pem");
        assert!(
            code == 0 && out.starts_with(&local),
            "{ip} has the new etcd.pem: {out}"
        );
    }

    // del-etcd: two of the original members, 5 -> 3: the apiservers must
    // follow or they would be left with one reachable member of three.
    let leaving = before[..2].to_vec();
    let staying: Vec<String> = grown
        .iter()
        .filter(|ip| !leaving.contains(ip))
        .cloned()
        .collect();
    let sampler = Sampler::start(env, grown.clone());
    let probe = workload.probe(&workers);
    let t = Instant::now();
    let out = env.ezctl(&["del-etcd", &env.cluster, &leaving[0], &leaving[1]]);
    let del_secs = t.elapsed().as_secs_f64();
    let samples = sampler.finish();
    probe.finish("del-etcd").assert_no_failures("del-etcd");
    assert!(out.status.success(), "del-etcd: {}", text(&out));
    check_quorum(&samples, "del-etcd");
    assert_eq!(inventory_members(env), staying);
    assert_eq!(healthy(&staying), staying, "green after del-etcd");
    let mut want: Vec<String> = staying.iter().map(|ip| format!("etcd-{ip}")).collect();
    want.sort();
    assert_eq!(member_names(env, &staying), want);
    for m in &masters {
        assert!(
            apiserver_uses(env, m, &staying),
            "apiserver {m} has the 3 members left"
        );
        let ok = env.kubectl(m, &["get", "--raw", "/readyz"]);
        assert!(ok.status.success(), "apiserver {m}: {}", text(&ok));
    }
    for ip in &leaving {
        let (code, out) = env.on(
            ip,
            "systemctl is-active etcd; test -e /etc/systemd/system/etcd.service && echo unit; test -e /var/lib/etcd && echo data; test -e /etc/kubernetes/ssl/etcd-key.pem && echo key; true",
        );
        assert_eq!(code, 0, "{out}");
        for left in ["unit", "data", "key"] {
            assert!(
                !out.lines().any(|l| l == left),
                "{ip}: {left} left behind: {out}"
            );
        }
        assert!(
            !out.lines().any(|l| l == "active"),
            "{ip}: etcd still runs: {out}"
        );
    }
    eprintln!("FIGURES add-etcd (3 -> 5, re-run after a failure) {add_secs:.1}s, del-etcd (5 -> 3) {del_secs:.1}s");
}

#[test]
fn a_failed_add_leaves_hosts_yml_byte_identical() {
    let Some((env, _spares, _turn)) = ready() else {
        return;
    };
    let path = hosts_yml(env);
    let before = std::fs::read(&path).expect("hosts.yml");
    let subnet = env.lab.subnet();
    let base = subnet.trim_end_matches("0/24");
    let (a, b) = (format!("{base}240"), format!("{base}241"));

    // Unreachable hosts inside the lab's range.
    let t = Instant::now();
    let out = env.ezctl(&["add-etcd", &env.cluster, &a, &b]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let said = text(&out);
    assert!(
        said.contains(&a) && said.contains("hosts.yml unchanged"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "hosts.yml byte-identical"
    );
    eprintln!("failed add-etcd: {:.1}s", t.elapsed().as_secs_f64());

    // One member alone would make the count even: refused before anything.
    let out = env.ezctl(&["add-etcd", &env.cluster, &a]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("two at a time"), "{}", text(&out));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "hosts.yml byte-identical"
    );

    // Removing every member, or one of three: refused, nothing touched.
    let members = inventory_members(env);
    let mut all = vec!["del-etcd", env.cluster.as_str()];
    all.extend(members.iter().map(String::as_str));
    let out = env.ezctl(&all);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let out = env.ezctl(&["del-etcd", &env.cluster, &members[0]]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert_eq!(
        std::fs::read(&path).unwrap(),
        before,
        "hosts.yml byte-identical"
    );
    assert_eq!(healthy(&members), members);
}

trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &[u8]) -> String;
}

impl OutputWithStdin for Command {
    fn output_with_stdin(&mut self, input: &[u8]) -> String {
        use std::io::Write;
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
