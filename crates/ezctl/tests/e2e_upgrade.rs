//! `ezctl upgrade` on 7 real machines, from real Kubernetes one minor back
//! (`[build] kubernetes-previous`, 1.36) to the pinned release (1.37), both
//! built from their Go modules: /readyz of every master is sampled every
//! 0.5 s and never more than one is down; a node whose kubelet cannot start
//! stops the upgrade midway with its progress saved; once fixed, the same
//! command finishes it, skipping the hosts already done; every node ends at
//! the new release. Downgrades are refused, and so is an upgrade while an
//! etcd member is down and the quorum has no failure to spare (minor-version
//! skips are refused too; that rule is unit-tested in commands/upgrade.rs,
//! as no release two minors ahead can be built here). Through both runs a
//! workload of 3 replicas (one per node, a PodDisruptionBudget) is polled
//! every 0.2 s through its NodePort: the longest gap stays under 2 s and at
//! most 1 % of requests fail. Needs root, the lab and the build cache; under
//! CI their absence is a failure.

mod common;
mod day2;

use std::time::Duration;

use day2::{attempt, nodes, timed, Options, Sampler};
use serde_json::Value;

const FAIL_DROPIN: &str = "/etc/systemd/system/kubelet.service.d/10-ezctl-test-fail.conf";

fn apiserver_started(env: &common::Env, ip: &str) -> String {
    env.on(
        ip,
        "systemctl show -p ExecMainStartTimestampMonotonic --value kube-apiserver",
    )
    .1
}

#[test]
fn rolling_upgrade_survives_a_failed_node_and_resumes() {
    let Some((setup, _turn)) = day2::cluster(Options {
        // 3 etcd, 2 masters, 3 nodes.
        machines: 8,
        spare: false,
        ex_lb: false,
        kube_version: Some(common::kube_previous_version()),
    }) else {
        return;
    };
    let env = setup.env;
    let masters = env.group(ez_lab::Role::KubeMaster);
    let workers = env.group(ez_lab::Role::KubeNode);
    let broken = workers.last().expect("a node").clone();
    let state_file = env.cluster_dir().join("upgrade-state.json");
    let from = format!("v{}", common::kube_previous_version());
    let to = format!("v{}", common::kube_version());
    assert!(nodes(env, &masters[0]).iter().all(|n| n.2 == from));
    assert!(workers.len() >= 3, "the layout has 3 nodes: {workers:?}");
    // The client asks the masters' kube-proxies: they stay in the cluster
    // (and Ready) through the run, while every node is drained in turn.
    let workload = common::workload::Workload::deploy(env, &masters[0], "probe", 3);

    common::build_bundle(&env.home.join("bin"), &common::kube_version());

    // An etcd member down: 2 of 3 left, no failure to spare. The upgrade
    // refuses before it changes anything, naming the member.
    let etcd = env.group(ez_lab::Role::Etcd);
    assert_eq!(etcd.len(), 3, "the layout has 3 etcd members");
    let stopped = etcd.last().expect("a member").clone();
    let (code, out) = env.on(&stopped, "systemctl stop etcd");
    assert_eq!(code, 0, "{out}");
    let before: Vec<String> = masters.iter().map(|m| apiserver_started(env, m)).collect();
    let out = attempt(env, "upgrade", &[]);
    let log = common::text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&format!("etcd-{stopped} UNHEALTHY"))
            && log.contains("only 2 of 3 etcd members are healthy, exactly the 2 a quorum needs"),
        "{log}"
    );
    assert!(!state_file.exists(), "a refused upgrade saved progress");
    let after: Vec<String> = masters.iter().map(|m| apiserver_started(env, m)).collect();
    assert_eq!(before, after, "a refused upgrade restarted an apiserver");
    assert!(nodes(env, &masters[0]).iter().all(|n| n.2 == from));
    let (code, out) = env.on(&stopped, "systemctl start etcd");
    assert_eq!(code, 0, "{out}");
    let endpoints = etcd
        .iter()
        .map(|ip| format!("https://{ip}:2379"))
        .collect::<Vec<_>>()
        .join(",");
    let healthy = (0..60).any(|_| {
        let ok = env
            .etcdctl(&endpoints, &["endpoint", "health"])
            .status
            .success();
        if !ok {
            std::thread::sleep(Duration::from_secs(1));
        }
        ok
    });
    assert!(healthy, "etcd on {stopped} did not come back");

    // The last node's kubelet will not start again once stopped.
    let (code, out) = env.on(
        &broken,
        &format!("mkdir -p $(dirname {FAIL_DROPIN}) && printf '[Service]\\nExecStartPre=/bin/false\\n' > {FAIL_DROPIN} && systemctl daemon-reload"),
    );
    assert_eq!(code, 0, "{out}");

    let sampler = Sampler::start(env, masters.clone(), Duration::from_millis(500));
    let probe = workload.probe(&masters);
    let out = attempt(env, "upgrade", &[]);
    probe.finish("the first upgrade run").assert_within(
        "the first upgrade run",
        Duration::from_secs(2),
        0.01,
    );
    day2::assert_at_most_one_down(&sampler.finish(), "first upgrade run");
    let log = common::text(&out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the upgrade should stop at {broken}:\n{log}"
    );
    assert!(
        log.contains("progress is saved in") && log.contains("upgrade-state.json"),
        "{log}"
    );
    let state: Value =
        serde_json::from_slice(&std::fs::read(&state_file).expect("state file kept"))
            .expect("state JSON");
    assert_eq!(state["target"], to.as_str());
    let done: Vec<String> = state["done"]
        .as_array()
        .expect("done")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect();
    let mut expected_done = masters.clone();
    expected_done.extend(workers.iter().filter(|w| **w != broken).cloned());
    assert_eq!(
        done, expected_done,
        "masters first, then nodes in order, stopping at {broken}"
    );
    assert_eq!(
        state["cordoned"],
        serde_json::json!([broken]),
        "the failed node stays cordoned, recorded"
    );
    // The lab machines share the host's monotonic clock: the apiservers'
    // start times show the masters restarted one after the other, the
    // second only once the first was back (readiness gate + version check).
    let starts: Vec<u64> = masters
        .iter()
        .map(|m| {
            apiserver_started(env, m)
                .trim()
                .parse()
                .expect("a start time")
        })
        .collect();
    let gap = starts
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .min()
        .unwrap_or(u64::MAX);
    eprintln!("apiserver restarts {:.1}s apart", gap as f64 / 1e6);
    assert!(gap > 3_000_000, "masters restarted together: {starts:?}");

    // Fix the node; the same command finishes the job, skipping done hosts.
    let (code, out) = env.on(
        &broken,
        &format!("rm -f {FAIL_DROPIN} && systemctl daemon-reload"),
    );
    assert_eq!(code, 0, "{out}");
    let before: Vec<String> = masters.iter().map(|m| apiserver_started(env, m)).collect();
    let sampler = Sampler::start(env, masters.clone(), Duration::from_millis(500));
    let probe = workload.probe(&masters);
    let out = timed(env, "upgrade", &[]);
    probe.finish("the resumed upgrade").assert_within(
        "the resumed upgrade",
        Duration::from_secs(2),
        0.01,
    );
    day2::assert_at_most_one_down(&sampler.finish(), "resumed upgrade");
    let log = common::text(&out);
    assert!(
        log.contains(&format!(
            "resuming the upgrade to {to}: already done: {}",
            expected_done.join(", ")
        )),
        "{log}"
    );
    for h in &expected_done {
        assert!(
            log.lines()
                .any(|l| l.contains(h.as_str()) && l.contains("[done earlier]")),
            "{h} not skipped:\n{log}"
        );
    }
    let after: Vec<String> = masters.iter().map(|m| apiserver_started(env, m)).collect();
    assert_eq!(before, after, "a finished master was restarted again");
    assert!(
        !state_file.exists(),
        "state file left after a complete upgrade"
    );

    // Every node (masters included) runs the new release and is Ready; the nodes
    // are schedulable again, the masters stay cordoned as setup left them.
    let listed = nodes(env, &masters[0]);
    assert_eq!(listed.len(), masters.len() + workers.len(), "{listed:?}");
    for (name, ready, version, unschedulable) in &listed {
        assert!(*ready, "{name} not Ready");
        assert_eq!(version, &to, "{name}");
        let is_master = masters.iter().any(|m| day2::node_name(m) == *name);
        assert_eq!(*unschedulable, is_master, "{name} schedulability");
    }
    for ip in masters.iter().chain(&workers) {
        let (_, v) = env.on(ip, "/opt/kube/bin/kubelet --version");
        assert!(v.contains(&to), "{ip}: {v}");
    }
    for m in &masters {
        let (_, v) = env.on(m, "/opt/kube/bin/kube-apiserver --version");
        assert!(v.contains(&to), "{m}: {v}");
    }

    // Once done, again: nothing to do.
    let out = timed(env, "upgrade", &[]);
    assert!(
        common::text(&out).contains(&format!("every host runs {to}: nothing to upgrade")),
        "{}",
        common::text(&out)
    );

    // A downgrade is refused before anything changes.
    common::build_bundle(&env.home.join("bin"), &common::kube_previous_version());
    let out = attempt(env, "upgrade", &[]);
    let log = common::text(&out);
    assert_eq!(out.status.code(), Some(3), "{log}");
    assert!(
        log.contains(&format!(
            "newer than the bundle's {from} (downgrades are refused)"
        )),
        "{log}"
    );
    assert!(
        nodes(env, &masters[0]).iter().all(|n| n.2 == to),
        "a refused upgrade changed something"
    );
    common::build_bundle(&env.home.join("bin"), &common::kube_version());
}
