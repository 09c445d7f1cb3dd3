//! Fault: a host is down before the run (powered off, or its SSH port
//! silently dropped by a firewall). `ezctl setup` names that host as
//! unreachable in one line (host, role, cause), every other host finishes,
//! the exit code is 1, nothing is half-written, and once the host is back a
//! re-run converges. A node that died for good is removed with
//! `del-node --force` (without it, the command stops and hosts.yml stays).
//! Own test binary: it stops a lab machine.
//! Needs root and the lab; says why and passes where missing.

mod common;
mod fault_support;

use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use common::text;
use fault_support::*;

/// Both tests take machines away: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The lab machine that goes down: the last node (no etcd, no master), so
/// the rest of the cluster can be built without it.
fn victim(env: &common::Env) -> (usize, String) {
    let host = env
        .lab
        .hosts()
        .into_iter()
        .rfind(|h| h.roles == [ez_lab::Role::KubeNode])
        .expect("a node that is only a node");
    (host.index, host.ip.to_string())
}

#[test]
fn a_stopped_host_is_named_unreachable_the_others_finish_and_a_rerun_converges() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    let (index, down) = victim(env);
    // The host was in the cluster before it went down: its Node and its
    // calico-node pod exist, so a wait that counts every node (a DaemonSet
    // rollout) would wait for it and hold the others back. Set up first, so
    // this is the case whatever order this binary's tests run in.
    let before = ezctl_json(env, "setup", &["all"]);
    assert!(before.status.success(), "{}", text(&before));
    let inventory = inventory_bytes(env);
    env.lab.stop_machine(index).expect("stop machine");

    let out = ezctl_json(env, "setup", &["all"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = recap(&out);
    // The down host: one failure, unreachable, its other units skipped
    // because of it.
    let failures = r["failures"].as_array().cloned().unwrap_or_default();
    assert_eq!(failures.len(), 1, "only the down host fails: {r}");
    assert_eq!(failures[0]["host"], down.as_str(), "{r}");
    assert_eq!(failures[0]["role"], "prepare", "its first role: {r}");
    let error = failures[0]["error"].as_str().unwrap_or("");
    assert!(
        error.contains(&format!("unreachable: no SSH connection to {down}:22")),
        "{error}"
    );
    assert_eq!(r["hosts"][&down]["unreachable"], 1, "{r}");
    // Skipped: the down host's own units, and the cluster-wide steps that
    // wait for every node to be Ready (a real kubelet on the down host never
    // will be), all because of the down host. An empty list would mean they
    // were never planned (or never reported), not that they were skipped:
    // the down node's own kube-node unit must be among them.
    let skipped = r["skipped_units"].as_array().cloned().unwrap_or_default();
    assert!(
        skipped
            .iter()
            .any(|s| s["role"] == "kube-node" && s["host"] == down.as_str()),
        "the down node's later units (kube-node at least) are reported skipped: {r}"
    );
    for s in &skipped {
        assert_eq!(s["cause"]["host"], down.as_str(), "{s}");
        let role = s["role"].as_str().unwrap_or("");
        assert!(
            s["host"] == down.as_str() || ["nodes-ready", "coredns"].contains(&role),
            "only the down host's units and the steps waiting for every node skip: {s}"
        );
    }
    // Every other host finished everything: kubectl sees them Ready.
    for ip in all_hosts(env).iter().filter(|ip| **ip != down) {
        assert_eq!(r["hosts"][ip]["failed"], 0, "{ip}: {r}");
        assert_eq!(r["hosts"][ip]["unreachable"], 0, "{ip}: {r}");
    }
    let masters = env.group(ez_lab::Role::KubeMaster);
    let nodes = env.kubectl(
        &masters[0],
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status}\n{end}",
        ],
    );
    let listed = text(&nodes);
    let mut kube_hosts = masters.clone();
    kube_hosts.extend(env.group(ez_lab::Role::KubeNode));
    kube_hosts.sort();
    kube_hosts.dedup();
    // (The down host's node is listed, NotReady by now or soon: it is not
    // what this run is judged on.)
    for ip in kube_hosts.iter().filter(|ip| **ip != down) {
        let node = format!("k8s-{}", ip.replace('.', "-"));
        assert!(
            listed.lines().any(|l| l == format!("{node} True")),
            "{node} is not Ready: {listed}"
        );
    }
    // The human output says it in one line: host, role, cause.
    let human = env.ezctl(&["setup", &env.cluster, "01"]);
    assert_eq!(human.status.code(), Some(1));
    let said = text(&human);
    let line = said
        .lines()
        .find(|l| l.starts_with("failed:"))
        .unwrap_or_else(|| panic!("no failed: line in\n{said}"));
    assert!(
        line.starts_with(&format!(
            "failed: prepare on {down}: unreachable: no SSH connection to {down}:22: "
        )),
        "{line}"
    );
    assert_eq!(inventory, inventory_bytes(env), "the inventory was edited");

    // Back up: the same command converges, and a further run changes nothing.
    env.lab.start_machine(index).expect("start machine");
    let rerun = ezctl_json(env, "setup", &["all"]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    // Every unit of the returning host ran.
    let back = &recap(&rerun)["hosts"][&down];
    assert!(
        back["ok"].as_u64().unwrap_or(0) > 0
            && back["failed"] == 0
            && back["unreachable"] == 0
            && back["units_skipped"] == 0,
        "the returning host is set up: {}",
        recap(&rerun)
    );
    assert_converged(env, "setup", &["all"]);
    assert_no_upload_leftovers(env, Duration::from_secs(5));
}

/// A firewall that drops SSH packets: no refusal, no answer. The connect
/// timeout makes the host unreachable (not a failure of each of its units).
#[test]
fn a_host_that_answers_nothing_is_unreachable_after_the_connect_timeout() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    let (index, down) = victim(env);
    let netns = ez_lab::net::netns_name(&env.cluster, index);
    let rule = ["INPUT", "-p", "tcp", "--dport", "22", "-j", "DROP"];
    let iptables = |op: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", &netns, "iptables", op])
            .args(rule)
            .output()
            .expect("iptables");
        assert!(out.status.success(), "iptables {op}: {}", text(&out));
    };
    iptables("-I");
    let started = std::time::Instant::now();
    let out = ezctl_json(env, "setup", &["01"]);
    let took = started.elapsed();
    iptables("-D");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = recap(&out);
    let failures = r["failures"].as_array().cloned().unwrap_or_default();
    assert_eq!(failures.len(), 1, "{r}");
    assert_eq!(failures[0]["host"], down.as_str(), "{r}");
    assert!(
        failures[0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("unreachable: no answer to an SSH connection within 10s"),
        "{r}"
    );
    assert_eq!(r["hosts"][&down]["unreachable"], 1, "{r}");
    assert!(
        took < Duration::from_secs(120),
        "bounded by the connect timeout and its retries: {took:?}"
    );
    for ip in all_hosts(env).iter().filter(|ip| **ip != down) {
        assert_eq!(r["hosts"][ip]["failed"], 0, "{ip}: {r}");
    }
    let rerun = ezctl_json(env, "setup", &["01"]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    assert_converged(env, "setup", &["01"]);
}

/// A node that died for good: `del-node` stops (it cannot clean the host)
/// and leaves hosts.yml as it was; `del-node --force` removes it from the
/// cluster, the other hosts and hosts.yml. Then the machine comes back and
/// is set up again, for the other tests of this binary.
#[test]
fn a_dead_node_is_removed_with_force() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(env) = common::env(4) else { return };
    let (index, down) = victim(env);
    let node = format!("k8s-{}", down.replace('.', "-"));
    let masters = env.group(ez_lab::Role::KubeMaster);
    let setup = ezctl_json(env, "setup", &["all"]);
    assert!(setup.status.success(), "{}", text(&setup));
    let inventory = inventory_bytes(env);
    // The probes that must find the node gone below first find it here,
    // on the set-up cluster: a probe that cannot see it proves nothing.
    let listed = node_names(env, &masters[0]);
    assert!(
        listed.contains(&format!("node/{node}")),
        "the probe does not see the node while it is there: {listed}"
    );
    let others: Vec<String> = all_hosts(env)
        .into_iter()
        .filter(|ip| *ip != down)
        .collect();
    for ip in &others {
        let hosts = etc_hosts(env, ip);
        assert!(
            hosts.contains(&node),
            "{ip} does not resolve {node} before it is removed:\n{hosts}"
        );
    }
    env.lab.stop_machine(index).expect("stop machine");

    let refused = env.ezctl(&["del-node", &env.cluster, &down, "--drain-timeout", "30s"]);
    let said = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(
        said.contains(&down)
            && said.contains("hosts.yml is unchanged")
            && said.contains("add --force"),
        "{said}"
    );
    assert_eq!(inventory, inventory_bytes(env), "hosts.yml was edited");

    let forced = env.ezctl(&["del-node", &env.cluster, &down, "--force"]);
    let said = text(&forced);
    assert!(forced.status.success(), "{said}");
    assert!(
        said.contains(&format!("{down} does not answer"))
            && said.contains("neither drained nor cleaned"),
        "{said}"
    );
    let hosts_yml =
        std::fs::read_to_string(env.cluster_dir().join("hosts.yml")).expect("hosts.yml");
    assert!(!hosts_yml.contains(&down), "{hosts_yml}");
    let nodes = node_names(env, &masters[0]);
    assert!(!nodes.contains(&node), "{nodes}");
    for ip in &others {
        let hosts = etc_hosts(env, ip);
        assert!(
            !hosts.contains(&node),
            "{ip} still resolves {node}:\n{hosts}"
        );
    }
    // Nothing left to do for the rest of the cluster.
    assert_converged(env, "setup", &["all"]);

    // The machine returns: back into hosts.yml and the cluster.
    for (path, bytes) in &inventory {
        std::fs::write(path, bytes).expect("restore inventory");
    }
    env.lab.start_machine(index).expect("start machine");
    let rerun = ezctl_json(env, "setup", &["all"]);
    assert!(rerun.status.success(), "{}", text(&rerun));
}

/// `kubectl get nodes -o name`; a failed kubectl is a failure, not an
/// empty list.
fn node_names(env: &common::Env, master: &str) -> String {
    let out = env.kubectl(master, &["get", "nodes", "-o", "name"]);
    assert!(out.status.success(), "kubectl get nodes: {}", text(&out));
    let names = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        names.lines().any(|l| l.starts_with("node/")),
        "no node listed at all: {names}"
    );
    names
}

/// A host's /etc/hosts; a failed read is a failure, not an empty file.
fn etc_hosts(env: &common::Env, ip: &str) -> String {
    let (code, out) = env.on(ip, "cat /etc/hosts");
    assert_eq!(code, 0, "reading /etc/hosts on {ip}: {out}");
    assert!(out.contains("localhost"), "{ip}: not an /etc/hosts: {out}");
    out
}
