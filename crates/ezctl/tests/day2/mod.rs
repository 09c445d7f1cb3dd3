//! Shared by the day-2 end-to-end tests (scale, upgrade, lifecycle): one
//! set-up cluster per test binary, tests of a binary taking turns (they
//! share the cluster and its lock), a /readyz sampler, and small readers of
//! what kubectl and the hosts say.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, text, Env};

static TURN: Mutex<()> = Mutex::new(());
static SETUP: OnceLock<Option<Setup>> = OnceLock::new();

/// What the binary's cluster looks like once set up.
pub struct Setup {
    pub env: &'static Env,
    /// Left out of hosts.yml before setup, free for add-*.
    pub spare: Option<String>,
    /// hosts.yml right after setup.
    pub hosts_yml: String,
}

pub struct Options {
    pub machines: usize,
    /// Leave the last machine out of the inventory.
    pub spare: bool,
    /// Also run step 10 (ex-lb).
    pub ex_lb: bool,
    /// Set up with this Kubernetes release instead of the pinned one (the
    /// upgrade test starts one minor back).
    pub kube_version: Option<String>,
}

/// The binary's cluster, set up once, and this test's turn on it. `None`
/// (after saying why) where the lab cannot run.
pub fn cluster(opts: Options) -> Option<(&'static Setup, MutexGuard<'static, ()>)> {
    let setup = SETUP
        .get_or_init(|| {
            let env = common::env(opts.machines)?;
            let hosts = env.cluster_dir().join("hosts.yml");
            let mut spare = None;
            if opts.spare {
                let last = env.lab.hosts().last().expect("machines").ip.to_string();
                let mut t = std::fs::read_to_string(&hosts).expect("hosts.yml");
                for g in ez_inventory::Group::ALL {
                    if let Ok(next) = ez_inventory::edit::remove_host(&t, g, &last) {
                        t = next;
                    }
                }
                std::fs::write(&hosts, t).expect("write hosts.yml");
                spare = Some(last);
            }
            if let Some(v) = &opts.kube_version {
                common::build_bundle(&env.home.join("bin"), v);
            }
            timed(env, "setup", &["all"]);
            if opts.ex_lb {
                timed(env, "setup", &["10"]);
            }
            Some(Setup {
                env,
                spare,
                hosts_yml: std::fs::read_to_string(&hosts).expect("hosts.yml"),
            })
        })
        .as_ref()?;
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    Some((setup, turn))
}

/// `ezctl <cmd> <cluster> <rest>` that must succeed; prints how long it took.
pub fn timed(env: &Env, cmd: &str, rest: &[&str]) -> Output {
    let t = Instant::now();
    let out = env.ezctl_ok(cmd, rest);
    eprintln!(
        "TIMING ezctl {cmd} {} {}: {:.1}s",
        env.cluster,
        rest.join(" "),
        t.elapsed().as_secs_f64()
    );
    out
}

/// `ezctl <cmd> <cluster> <rest>` that may fail, timed.
pub fn attempt(env: &Env, cmd: &str, rest: &[&str]) -> Output {
    let t = Instant::now();
    let mut args = vec![cmd, env.cluster.as_str()];
    args.extend_from_slice(rest);
    let out = env.ezctl(&args);
    eprintln!(
        "TIMING ezctl {} (exit {:?}): {:.1}s",
        args.join(" "),
        out.status.code(),
        t.elapsed().as_secs_f64()
    );
    out
}

pub fn hosts_path(env: &Env) -> PathBuf {
    env.cluster_dir().join("hosts.yml")
}

/// Parsed `kubectl ... -o json`.
pub fn kube_json(env: &Env, master: &str, args: &[&str]) -> Value {
    let mut a = args.to_vec();
    a.extend_from_slice(&["-o", "json"]);
    let out = env.kubectl(master, &a);
    assert!(
        out.status.success(),
        "kubectl {}: {}",
        a.join(" "),
        text(&out)
    );
    serde_json::from_slice(&out.stdout).expect("kubectl JSON")
}

/// Node name -> (Ready, kubelet version, unschedulable).
pub fn nodes(env: &Env, master: &str) -> Vec<(String, bool, String, bool)> {
    let v = kube_json(env, master, &["get", "nodes"]);
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| {
            let ready = n["status"]["conditions"].as_array().is_some_and(|c| {
                c.iter()
                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
            });
            (
                n["metadata"]["name"].as_str().unwrap_or("").to_string(),
                ready,
                n["status"]["nodeInfo"]["kubeletVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                n["spec"]["unschedulable"].as_bool().unwrap_or(false),
            )
        })
        .collect()
}

/// The default node name of an IP (`k8s-10-0-0-1`).
pub fn node_name(ip: &str) -> String {
    format!("k8s-{}", ip.replace('.', "-"))
}

/// Subject alternative names of the certificate `ip:6443` serves.
pub fn served_sans(ip: &str) -> String {
    let sh = format!(
        "echo | timeout 10 openssl s_client -connect {ip}:6443 -showcerts 2>/dev/null | openssl x509 -noout -ext subjectAltName"
    );
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&sh)
        .output()
        .expect("openssl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Does this master answer /readyz right now?
pub fn ready(env: &Env, master: &str) -> bool {
    probe(env, master).is_ok()
}

/// /readyz of one master: `Err(why)` when it is not ready. A slow answer
/// (a loaded test machine, etcd taking its time) is not "down": the
/// timeout is generous, while a restarting apiserver refuses at once.
pub fn probe(env: &Env, master: &str) -> Result<(), String> {
    let out = env.kubectl(master, &["get", "--raw", "/readyz", "--request-timeout=5s"]);
    if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "ok" {
        Ok(())
    } else {
        Err(text(&out).lines().last().unwrap_or("").to_string())
    }
}

/// (seconds since the sampler started, masters not ready with why) per sample.
pub type Samples = Vec<(f64, Vec<String>)>;

/// Samples which masters answer /readyz, every `every`, until stopped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Samples>>,
}

impl Sampler {
    pub fn start(env: &'static Env, masters: Vec<String>, every: Duration) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let t0 = Instant::now();
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                let tick = Instant::now();
                let probes: Vec<_> = masters
                    .iter()
                    .cloned()
                    .map(|m| std::thread::spawn(move || (probe(env, &m), m)))
                    .collect();
                let down: Vec<String> = probes
                    .into_iter()
                    .filter_map(|p| p.join().ok())
                    .filter_map(|(r, m)| r.err().map(|why| format!("{m} ({why})")))
                    .collect();
                samples.push((t0.elapsed().as_secs_f64(), down));
                if let Some(rest) = every.checked_sub(tick.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            samples
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    /// (seconds since start, masters down) per sample.
    pub fn finish(mut self) -> Samples {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

/// Assert no sample saw more than one master down; report what was seen.
pub fn assert_at_most_one_down(samples: &[(f64, Vec<String>)], what: &str) {
    assert!(samples.len() >= 5, "{what}: only {} samples", samples.len());
    let worst = samples
        .iter()
        .filter(|(_, d)| d.len() > 1)
        .collect::<Vec<_>>();
    assert!(
        worst.is_empty(),
        "{what}: more than one master down at {worst:?}"
    );
    let one = samples.iter().filter(|(_, d)| d.len() == 1).count();
    eprintln!(
        "{what}: {} /readyz samples, {one} with one master down, none with more",
        samples.len()
    );
}

/// A file on a lab host (empty when missing).
pub fn cat(env: &Env, ip: &str, path: &str) -> String {
    env.on(ip, &format!("cat {path} 2>/dev/null")).1
}
