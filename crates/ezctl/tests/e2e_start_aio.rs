//! `ezctl start-aio` on one real lab machine: the cluster `aio` is created
//! with that one host as etcd member, master and node, `setup all` runs, and
//! the cluster it prints how to reach answers: the node is Ready, takes a
//! pod (the master is schedulable), and cluster DNS resolves. A second run
//! changes nothing. Own test binary (own lab). Needs root and the lab.

mod common;

use common::{text, Env};
use serde_json::Value;

const CLUSTER: &str = "aio";

fn aio_kubectl(env: &Env, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env.home.join("bin/kubectl"))
        .arg(format!(
            "--kubeconfig={}",
            env.home
                .join("clusters")
                .join(CLUSTER)
                .join("ssl/kubectl.kubeconfig")
                .display()
        ))
        .args(args)
        .output()
        .expect("run kubectl")
}

fn ok(out: &std::process::Output, what: &str) -> String {
    assert!(out.status.success(), "{what}: {}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn start_aio_makes_a_one_host_cluster_that_runs_pods() {
    let Some(env) = common::env(1) else {
        return;
    };
    let host = env.lab.hosts()[0].ip.to_string();
    let lab_dir = env.cluster_dir();
    let key = lab_dir.join("ssh/id_ed25519");
    // The lab's own settings (cgroup v1, eviction thresholds, the network
    // its bundle has) are the site settings a user passes with --config.
    let site = lab_dir.join("config.yml");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "start-aio",
            host.as_str(),
            "--cluster",
            CLUSTER,
            "--ssh-key",
            key.to_str().expect("utf-8 path"),
            "--config",
            site.to_str().expect("utf-8 path"),
            "--accept-new",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let first = env.ezctl(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    let said = text(&first);
    eprintln!("$ ezctl start-aio {host} ...\n{said}");
    assert!(first.status.success(), "start-aio failed:\n{said}");
    assert!(
        said.contains("get nodes") && said.contains("checkout"),
        "start-aio says how to reach the cluster:\n{said}"
    );

    let cluster = ez_inventory::Cluster::load(&env.home.join("clusters").join(CLUSTER))
        .expect("the aio cluster loads");
    assert_eq!(cluster.hosts.len(), 1);
    for g in [
        ez_inventory::Group::Etcd,
        ez_inventory::Group::KubeMaster,
        ez_inventory::Group::KubeNode,
    ] {
        assert!(cluster.hosts[0].is(g), "the one host is in {g:?}");
    }

    // The node is Ready and not cordoned: a master that is also a node
    // takes workloads.
    let nodes: Value = serde_json::from_str(&ok(
        &aio_kubectl(env, &["get", "nodes", "-o", "json"]),
        "get nodes",
    ))
    .expect("node list");
    let items = nodes["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{nodes}");
    let ready = items[0]["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .map(|c| c["status"] == "True");
    assert_eq!(ready, Some(true), "{nodes}");
    assert_ne!(items[0]["spec"]["unschedulable"], true, "{nodes}");

    // A pod runs on it and resolves the API's service name through
    // cluster DNS (coredns, the pod network and kube-proxy all work).
    ok(
        &aio_kubectl(
            env,
            &[
                "run",
                "aio-probe",
                "--image=docker.io/library/busybox:1.35.0",
                "--image-pull-policy=Never",
                "--restart=Never",
                "--command",
                "--",
                "sh",
                "-c",
                // kube-proxy may learn coredns's endpoints a moment after
                // the pod starts: ask for up to a minute, say how long.
                "for i in $(seq 30); do nslookup kubernetes.default.svc.cluster.local && echo \"answered on try $i\" && break; sleep 2; done; sleep 3600",
            ],
        ),
        "run a pod",
    );
    ok(
        &aio_kubectl(
            env,
            &[
                "wait",
                "--for=condition=Ready",
                "pod/aio-probe",
                "--timeout=180s",
            ],
        ),
        "the pod turns Ready",
    );
    let mut logs = String::new();
    for _ in 0..40 {
        logs = ok(&aio_kubectl(env, &["logs", "aio-probe"]), "pod logs");
        if logs.contains("answered on try") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    eprintln!("inside the pod:\n{logs}");
    assert!(
        logs.contains("answered on try") && logs.contains("kubernetes.default.svc.cluster.local"),
        "cluster DNS answered inside the pod:\n{logs}"
    );
    ok(
        &aio_kubectl(env, &["delete", "pod", "aio-probe", "--wait=false"]),
        "delete the pod",
    );

    // Again: the same cluster, set up again with nothing to change.
    let mut again_args = args(&[]);
    again_args.insert(0, "--json".into());
    let again = env.ezctl(&again_args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(again.status.success(), "second start-aio: {}", text(&again));
    let recap = String::from_utf8_lossy(&again.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|e| e["event"] == "recap")
        .expect("a recap event");
    for (h, r) in recap["recap"]["hosts"].as_object().expect("hosts") {
        assert_eq!(r["changed"], 0, "{h} changed on a second start-aio: {r}");
        assert_eq!(r["failed"], 0, "{h}: {r}");
    }

    // Another host under the same name is refused, touching nothing.
    let mut other = args(&[]);
    other[1] = "10.255.255.1".into();
    let refused = env.ezctl(&other.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(refused.status.code(), Some(3), "{}", text(&refused));
    assert!(
        text(&refused).contains("already exists"),
        "{}",
        text(&refused)
    );
}
