//! Faults of services on a host: a unit that cannot start (another process
//! holds kube-scheduler's port on one master), and a node that never turns
//! Ready (containerd stopped on it). Each run ends with a message naming the
//! host, the step and the cause with the unit's last journal lines; the
//! other hosts finish; after the fix the same command converges.
//! Own test binary (own lab). Needs root and the lab; says why and passes
//! where missing.

mod common;
mod fault_support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::{text, Env};
use ez_lab::Role;
use fault_support::*;

/// Both tests run setup steps on the same cluster: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The cluster set up (a no-op for the second test of the binary).
fn cluster_up(env: &Env) {
    let out = ezctl_json(env, "setup", &["all"]);
    assert!(out.status.success(), "setup all: {}", text(&out));
}

fn failure(out: &std::process::Output) -> serde_json::Value {
    let r = recap(out);
    let failures = r["failures"].as_array().cloned().unwrap_or_default();
    assert_eq!(failures.len(), 1, "exactly one failure: {r}");
    failures[0].clone()
}

#[test]
fn a_unit_that_cannot_start_shows_its_journal_and_a_rerun_converges() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    cluster_up(env);
    let masters = env.group(Role::KubeMaster);
    let bad = masters[1].clone();
    // Something else took the scheduler's port: the unit starts, exits 1,
    // and systemd keeps restarting it.
    let (code, out) = env.on(
        &bad,
        "systemctl stop kube-scheduler && \
         systemd-run --unit=ezf-squatter socat TCP-LISTEN:10259,fork,reuseaddr SYSTEM:'echo busy'",
    );
    assert_eq!(code, 0, "{out}");
    let inventory = inventory_bytes(env);

    let out = ezctl_json(env, "setup", &["04"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let f = failure(&out);
    assert_eq!(f["host"], bad.as_str(), "{f}");
    assert_eq!(f["role"], "kube-master", "{f}");
    assert_eq!(f["task"], "scheduler healthy", "{f}");
    let error = f["error"].as_str().unwrap_or("");
    assert!(
        error.contains(&format!("last journal lines of kube-scheduler on {bad}:")),
        "{error}"
    );
    assert!(
        // The real scheduler's words (Go's net error, lower case).
        error.contains("kube-scheduler") && error.contains("bind: address already in use"),
        "the unit's own words: {error}"
    );
    // The other master finished its step.
    let r = recap(&out);
    assert_eq!(r["hosts"][&masters[0]]["failed"], 0, "{r}");
    assert_eq!(inventory, inventory_bytes(env));
    assert_no_upload_leftovers(env, Duration::from_secs(5));

    let (code, out) = env.on(&bad, "systemctl stop ezf-squatter");
    assert_eq!(code, 0, "{out}");
    let rerun = ezctl_json(env, "setup", &["04"]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_converged(env, "setup", &["04"]);
    let (code, out) = env.on(&bad, "curl -ksf https://127.0.0.1:10259/healthz");
    assert_eq!(code, 0, "the scheduler serves again: {out}");
}

#[test]
fn a_node_that_never_turns_ready_is_named_with_its_kubelet_log_and_a_rerun_converges() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    cluster_up(env);
    let masters = env.group(Role::KubeMaster);
    let node_host = env
        .lab
        .hosts()
        .into_iter()
        .rfind(|h| h.roles == [Role::KubeNode])
        .expect("a node that is only a node");
    let node = node_host.ip.to_string();
    let node_name = format!("k8s-{}", node.replace('.', "-"));
    let (code, out) = env.on(&node, "systemctl stop containerd");
    assert_eq!(code, 0, "{out}");
    // The kubelet reports the runtime down on its next heartbeat.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let o = env.kubectl(
            &masters[0],
            &[
                "get",
                "node",
                &node_name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ],
        );
        if text(&o).trim() == "False" {
            break;
        }
        assert!(Instant::now() < deadline, "node still Ready: {}", text(&o));
        std::thread::sleep(Duration::from_secs(1));
    }

    let out = ezctl_json(env, "setup", &["05"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let f = failure(&out);
    assert_eq!(f["host"], node.as_str(), "{f}");
    assert_eq!(f["role"], "kube-node", "{f}");
    assert_eq!(f["task"], "node registered and running", "{f}");
    let error = f["error"].as_str().unwrap_or("");
    assert!(
        error.contains(&format!(
            "node {node_name} Ready=False KubeletNotReady: container runtime is down"
        )),
        "the timeout names the node and why: {error}"
    );
    assert!(
        error.contains(&format!("last journal lines of kubelet on {node}:")),
        "{error}"
    );
    assert!(
        error.contains("kubelet[") && error.contains("NotReady"),
        "the kubelet's own log lines, from the node: {error}"
    );
    let r = recap(&out);
    for ip in all_hosts(env).iter().filter(|ip| **ip != node) {
        assert_eq!(r["hosts"][ip]["failed"], 0, "{ip}: {r}");
    }

    let (code, out) = env.on(&node, "systemctl start containerd");
    assert_eq!(code, 0, "{out}");
    let rerun = ezctl_json(env, "setup", &["05"]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_converged(env, "setup", &["05"]);
}
