//! The recovery procedures of docs/operations.md ("Recovery procedures"),
//! run as written on real machines:
//! * etcd lost its quorum (two of three members lost their data): backup is
//!   refused, `restore` refuses without `--force`, `restore --force` from the
//!   last backup brings the cluster back with the data of that backup;
//! * a master died for good: `del-master --force` takes it out of the
//!   cluster, the other hosts and hosts.yml without reaching it, then
//!   `add-master` adds a replacement.
//!
//! Own test binary: 7 machines, the last one kept out of the inventory as
//! the replacement. Needs root and the lab; says why and passes where
//! missing.

mod common;
mod fault_support;

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{text, Env};
use ez_lab::Role;
use fault_support::*;

static SERIAL: Mutex<()> = Mutex::new(());
static SPARE: OnceLock<String> = OnceLock::new();

/// The cluster set up once without its last machine, which is returned.
fn cluster() -> Option<(&'static Env, String)> {
    let env = common::env(7)?;
    let spare = SPARE
        .get_or_init(|| {
            let last = env
                .lab
                .hosts()
                .last()
                .expect("a lab machine")
                .ip
                .to_string();
            let hosts = env.cluster_dir().join("hosts.yml");
            let mut t = std::fs::read_to_string(&hosts).expect("read hosts.yml");
            for g in ez_inventory::Group::ALL {
                if let Ok(next) = ez_inventory::edit::remove_host(&t, g, &last) {
                    t = next;
                }
            }
            std::fs::write(&hosts, t).expect("write hosts.yml");
            let out = ezctl_json(env, "setup", &["all"]);
            assert!(out.status.success(), "setup all: {}", text(&out));
            last
        })
        .clone();
    Some((env, spare))
}

fn masters_in_inventory(env: &Env) -> Vec<String> {
    let c = ez_inventory::Cluster::load(&env.cluster_dir()).expect("inventory");
    c.masters().iter().map(|ip| ip.to_string()).collect()
}

fn configmap(env: &Env, master: &str, name: &str) -> std::process::Output {
    env.kubectl(
        master,
        &[
            "-n",
            "default",
            "get",
            "configmap",
            name,
            "-o",
            "jsonpath={.data.k}",
        ],
    )
}

#[test]
fn lost_etcd_quorum_is_restored_from_the_last_backup() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some((env, _)) = cluster() else { return };
    let master = masters_in_inventory(env)[0].clone();
    let etcd = env.group(Role::Etcd);
    let ok = |args: &[&str]| {
        let o = env.kubectl(&master, args);
        assert!(o.status.success(), "kubectl {args:?}: {}", text(&o));
    };
    ok(&[
        "-n",
        "default",
        "create",
        "configmap",
        "ezf-before",
        "--from-literal=k=saved",
    ]);
    let backup = ezctl_json(env, "backup", &[]);
    assert!(backup.status.success(), "{}", text(&backup));
    ok(&[
        "-n",
        "default",
        "create",
        "configmap",
        "ezf-after",
        "--from-literal=k=lost",
    ]);

    // Two of three members lose their disks: no quorum.
    for ip in &etcd[1..] {
        let (code, out) = env.on(ip, "systemctl stop etcd && rm -rf /var/lib/etcd");
        assert_eq!(code, 0, "{out}");
    }
    // What the operator sees: no backup can be taken, and a restore
    // without --force stops before changing anything.
    let refused = env.ezctl(&["backup", &env.cluster]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    for ip in &etcd {
        assert!(
            text(&refused).contains(ip.as_str()),
            "names {ip}: {}",
            text(&refused)
        );
    }
    let refused = env.ezctl(&["restore", &env.cluster]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
    assert!(text(&refused).contains("--force"), "{}", text(&refused));
    assert!(
        text(&refused).contains("nothing was stopped or changed"),
        "{}",
        text(&refused)
    );

    // The procedure: restore the last backup with --force.
    let restored = env.ezctl(&["restore", &env.cluster, "--force"]);
    assert!(restored.status.success(), "{}", text(&restored));
    let health = env.etcdctl(
        &etcd
            .iter()
            .map(|ip| format!("https://{ip}:2379"))
            .collect::<Vec<_>>()
            .join(","),
        &["endpoint", "health"],
    );
    assert!(health.status.success(), "{}", text(&health));
    assert_eq!(text(&configmap(env, &master, "ezf-before")), "saved");
    let after = configmap(env, &master, "ezf-after");
    assert!(
        !after.status.success() && text(&after).contains("NotFound"),
        "written after the backup, so not in it: {}",
        text(&after)
    );
    // Every node reports again and setup has nothing left to do.
    wait_all_nodes_ready(env, &master, Duration::from_secs(90));
    assert_converged(env, "setup", &["all"]);
}

#[test]
fn a_dead_master_is_replaced() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some((env, spare)) = cluster() else {
        return;
    };
    let masters = masters_in_inventory(env);
    let dead = masters[0].clone();
    let alive = masters[1].clone();
    let dead_index = env.lab.find(&dead).expect("lab host").index;
    let dead_node = format!("k8s-{}", dead.replace('.', "-"));
    let upstream = |ip: &str| format!("server {ip}:6443");
    // The probes that must find the dead master gone below first find it
    // here, where it is still configured everywhere.
    let names = node_names(env, &alive);
    assert!(
        names.contains(&format!("node/{dead_node}")),
        "the probe does not see {dead_node} while it is there: {names}"
    );
    for ip in kube_lb_hosts(env).iter().filter(|ip| **ip != dead) {
        let conf = kube_lb_conf(env, ip);
        assert!(
            conf.contains(&upstream(&dead)),
            "{ip}: the probe does not see {dead} while it is an upstream: {conf}"
        );
    }
    env.lab.stop_machine(dead_index).expect("stop master");

    // What the operator sees: that master is unreachable.
    let out = ezctl_json(env, "setup", &["all"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let failures = recap(&out)["failures"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        failures.iter().any(|f| f["host"] == dead.as_str()
            && f["error"].as_str().unwrap_or("").contains("unreachable")),
        "{failures:?}"
    );

    // 1. Out of the cluster, the other hosts and hosts.yml, without
    //    reaching it: the apiserver certificate is re-issued without its IP
    //    and rolled out, every kube-lb forgets it, its node object goes.
    let del = env.ezctl(&["del-master", &env.cluster, &dead, "--force"]);
    assert!(del.status.success(), "{}", text(&del));
    assert!(
        text(&del).contains(&format!("{dead} does not answer")),
        "{}",
        text(&del)
    );
    assert_eq!(masters_in_inventory(env), vec![alive.clone()]);
    // 2. The replacement.
    let add = env.ezctl(&["add-master", &env.cluster, &spare]);
    assert!(add.status.success(), "{}", text(&add));

    assert_eq!(
        masters_in_inventory(env),
        vec![alive.clone(), spare.clone()]
    );
    let spare_node = format!("k8s-{}", spare.replace('.', "-"));
    wait_all_nodes_ready(env, &alive, Duration::from_secs(90));
    let names = node_names(env, &alive);
    assert!(names.contains(&spare_node), "{names}");
    assert!(!names.contains(&dead_node), "{names}");
    // The new master serves the API, and no kube-lb points at the dead one
    // (every kube-lb lists the two masters instead).
    let ready = env.kubectl(&spare, &["get", "--raw", "/readyz"]);
    assert!(text(&ready).contains("ok"), "{}", text(&ready));
    let kube_lb = kube_lb_hosts(env);
    assert!(kube_lb.contains(&spare), "{kube_lb:?}");
    for ip in &kube_lb {
        let conf = kube_lb_conf(env, ip);
        assert!(
            !conf.contains(&upstream(&dead)),
            "{ip} still proxies to {dead}: {conf}"
        );
        assert!(
            conf.contains(&upstream(&alive)) && conf.contains(&upstream(&spare)),
            "{ip} does not proxy to both masters: {conf}"
        );
    }
    assert_converged(env, "setup", &["all"]);
    // The dead machine stays off: booted again, its kubelet would register
    // its node anew (a real replacement is a wiped or retired machine).
}

fn wait_all_nodes_ready(env: &Env, master: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let o = env.kubectl(
            master,
            &[
                "get",
                "nodes",
                "-o",
                "jsonpath={range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status} {end}",
            ],
        );
        let states = text(&o);
        if o.status.success()
            && !states.trim().is_empty()
            && states.split_whitespace().all(|s| s == "True")
        {
            return;
        }
        assert!(Instant::now() < deadline, "nodes not Ready: {states}");
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// `kubectl get nodes -o name`; a failed kubectl is a failure, not an
/// empty list.
fn node_names(env: &Env, master: &str) -> String {
    let out = env.kubectl(master, &["get", "nodes", "-o", "name"]);
    assert!(out.status.success(), "kubectl get nodes: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The hosts that run kube-lb, from the inventory: masters and nodes.
fn kube_lb_hosts(env: &Env) -> Vec<String> {
    let c = ez_inventory::Cluster::load(&env.cluster_dir()).expect("inventory");
    let mut ips: Vec<String> = c
        .group(ez_inventory::Group::KubeMaster)
        .chain(c.group(ez_inventory::Group::KubeNode))
        .map(|h| h.ip.to_string())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// A host's kube-lb configuration; a missing file or a failed read is a
/// failure (not an empty text that contains no upstream).
fn kube_lb_conf(env: &Env, ip: &str) -> String {
    let (code, conf) = env.on(ip, "cat /etc/kube-lb/conf/kube-lb.conf");
    assert_eq!(code, 0, "{ip}: {conf}");
    assert!(conf.contains("upstream kube_apiservers"), "{ip}: {conf}");
    conf
}
