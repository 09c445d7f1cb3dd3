//! `ezctl setup <c> all`, 10 and 11 on 7 real machines (3 etcd, 2 masters,
//! 2 nodes; ex-lb and the registry on the nodes), then checked with real
//! tools: etcdctl, ctr, kubectl, skopeo, curl. Needs root and the lab; says
//! why and passes without checking anything where those are missing.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{text, Env};
use ez_lab::Role;
use serde_json::Value;

fn json_lines(out: &std::process::Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn recap(events: &[Value]) -> &Value {
    events
        .iter()
        .rev()
        .find(|e| e["event"] == "recap")
        .map(|e| &e["recap"])
        .expect("a recap line")
}

/// Per host and role: start and end (seconds since the run started).
fn timeline(events: &[Value]) -> String {
    let mut spans: BTreeMap<(String, String), (f64, f64)> = BTreeMap::new();
    for e in events {
        let (Some(host), Some(role), Some(t)) =
            (e["host"].as_str(), e["role"].as_str(), e["t_ms"].as_f64())
        else {
            continue;
        };
        let entry = spans
            .entry((host.to_string(), role.to_string()))
            .or_insert((f64::MAX, 0.0));
        match e["event"].as_str() {
            Some("unit_start") => entry.0 = t / 1000.0,
            Some("unit_end") => entry.1 = t / 1000.0,
            _ => {}
        }
    }
    let mut rows: Vec<_> = spans.into_iter().collect();
    rows.sort_by(|a, b| {
        (&a.0 .0, a.1 .0)
            .partial_cmp(&(&b.0 .0, b.1 .0))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out = String::from("host         role            start    end\n");
    for ((host, role), (s, e)) in rows {
        out.push_str(&format!("{host:<12} {role:<14} {s:>6.1}s {e:>6.1}s\n"));
    }
    out
}

fn setup(env: &Env, step: &str) -> Vec<Value> {
    let started = Instant::now();
    let out = env.ezctl(&["--json", "setup", &env.cluster, step]);
    assert!(out.status.success(), "setup {step} failed:\n{}", text(&out));
    eprintln!("setup {step}: {:.1}s", started.elapsed().as_secs_f64());
    json_lines(&out)
}

fn assert_nothing_changed(events: &[Value], what: &str) {
    let changed: Vec<String> = events
        .iter()
        .filter(|e| e["event"] == "task_end" && e["status"] == "changed")
        .map(|e| {
            format!(
                "{} {} / {}: {}",
                e["host"], e["role"], e["task"], e["changes"]
            )
        })
        .collect();
    assert!(
        changed.is_empty(),
        "{what}: a second run changed:\n{}",
        changed.join("\n")
    );
    let recap = recap(events);
    for (host, r) in recap["hosts"].as_object().expect("hosts") {
        assert_eq!(
            r["changed"], 0,
            "{what}: {host} changed on a second run: {r}"
        );
        assert_eq!(r["failed"], 0, "{what}: {host} failed: {r}");
    }
}

fn ready_nodes(env: &Env, master: &str) -> Vec<(String, String, String)> {
    let out = env.kubectl(master, &["get", "nodes", "-o", "json"]);
    assert!(out.status.success(), "kubectl get nodes: {}", text(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("node list");
    v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|n| {
            let ready = n["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .map(|c| c["status"].as_str().unwrap_or("").to_string())
                .unwrap_or_default();
            let heartbeat = n["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .map(|c| c["lastHeartbeatTime"].as_str().unwrap_or("").to_string())
                .unwrap_or_default();
            (
                n["metadata"]["name"].as_str().unwrap_or("").to_string(),
                ready,
                heartbeat,
            )
        })
        .collect()
}

#[test]
fn setup_all_then_ex_lb_and_registry_on_seven_machines() {
    let Some(env) = common::env(7) else { return };
    let etcd = env.group(Role::Etcd);
    let masters = env.group(Role::KubeMaster);
    let nodes = env.group(Role::KubeNode);
    assert_eq!((etcd.len(), masters.len(), nodes.len()), (3, 2, 2));

    // 1. The whole cluster, in one plan.
    let events = setup(env, "all");
    eprintln!("timeline of `setup all`:\n{}", timeline(&events));

    // 2. etcd: every member healthy with our certs.
    let endpoints: Vec<String> = etcd.iter().map(|ip| format!("https://{ip}:2379")).collect();
    let out = env.etcdctl(&endpoints.join(","), &["endpoint", "health"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches("is healthy").count(),
        3,
        "{}",
        text(&out)
    );

    // 3. containerd answers on every host that runs pods.
    for ip in masters.iter().chain(&nodes) {
        let (code, out) = env.on(
            ip,
            "/opt/kube/bin/ctr --address /run/containerd/containerd.sock version",
        );
        assert_eq!(code, 0, "ctr version on {ip}: {out}");
        assert!(out.contains("Server:"), "{ip}: {out}");
    }

    // 4. Real kubectl: 4 nodes Ready, masters cordoned, the applied objects.
    let listed = ready_nodes(env, &masters[0]);
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(
        listed.iter().all(|(_, ready, _)| ready == "True"),
        "{listed:?}"
    );
    let out = env.kubectl(&masters[0], &["get", "nodes"]);
    assert_eq!(
        text(&out).matches("SchedulingDisabled").count(),
        2,
        "{}",
        text(&out)
    );
    let out = env.kubectl(
        &masters[0],
        &[
            "-n",
            "kube-system",
            "get",
            "daemonset/calico-node",
            "deployment/calico-kube-controllers",
            "deployment/coredns",
            "service/kube-dns",
            "-o",
            "name",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = env.kubectl(
        &masters[0],
        &[
            "-n",
            "kube-system",
            "get",
            "service",
            "kube-dns",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ],
    );
    assert_eq!(text(&out), "10.68.0.2");
    let out = env.kubectl(
        &masters[0],
        &[
            "get",
            "ippools.crd.projectcalico.org",
            "default-ipv4-ippool",
            "-o",
            "jsonpath={.spec.cidr}",
        ],
    );
    assert_eq!(text(&out), "172.20.0.0/16");

    // 5. A second run changes nothing anywhere.
    let again = setup(env, "all");
    assert_nothing_changed(&again, "setup all");

    // 6. ex-lb: the VIP answers the API with the admin cert.
    setup(env, "10");
    let cluster = ez_inventory::Cluster::load(&env.cluster_dir()).expect("cluster");
    let vip = format!(
        "https://{}:{}",
        cluster.settings.text("EX_APISERVER_VIP"),
        cluster.settings.int("EX_APISERVER_PORT")
    );
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "5",
            "--cacert",
            &env.ssl("ca.pem"),
            "--cert",
            &env.ssl("admin.pem"),
            "--key",
            &env.ssl("admin-key.pem"),
        ])
        .arg(format!("{vip}/version"))
        .output()
        .expect("curl");
    assert!(
        text(&out).contains("\"gitVersion\""),
        "VIP {vip}: {}",
        text(&out)
    );
    assert_nothing_changed(&setup(env, "10"), "setup 10");

    // 7. Registry: push an image from the controller, pull it on every node
    //    through the trust ezctl configured (cluster CA in containerd's certs.d).
    setup(env, "11");
    registry_round_trip(env, &masters, &nodes);
    assert_nothing_changed(&setup(env, "11"), "setup 11");

    // 8. One master's apiserver stops: kubelets keep reporting through
    //    kube-lb. The event waited for: every node posts a heartbeat newer
    //    than the stop, while that apiserver is still down (so it went
    //    through the other one). The time is read once the stop returned
    //    (the apiserver is gone), and heartbeats of that same second do
    //    not count (the times have one-second resolution).
    let (code, out) = env.on(&masters[0], "systemctl stop kube-apiserver");
    assert_eq!(code, 0, "{out}");
    let stopped_at = chrono_now(env, &masters[1]);
    let waited = Instant::now();
    let deadline = waited + Duration::from_secs(90);
    let after = loop {
        let listed = ready_nodes(env, &masters[1]);
        let stale: Vec<&(String, String, String)> = listed
            .iter()
            .filter(|(_, ready, heartbeat)| ready != "True" || *heartbeat <= stopped_at)
            .collect();
        if stale.is_empty() {
            break listed;
        }
        assert!(
            Instant::now() < deadline,
            "with one apiserver down since {stopped_at}, these nodes did not report Ready again: {stale:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!(
        "every node reported through the other apiserver {:.1}s after the stop",
        waited.elapsed().as_secs_f64()
    );
    assert_eq!(after.len(), 4, "{after:?}");
    let (code, out) = env.on(&masters[0], "systemctl is-active kube-apiserver");
    assert_ne!(code, 0, "the stopped apiserver came back: {out}");
    assert_eq!(out.trim(), "inactive", "{out}");
    for ip in masters.iter().chain(&nodes) {
        let (code, out) = env.on(ip, "curl -sf http://127.0.0.1:10248/healthz");
        assert_eq!(
            code, 0,
            "kubelet on {ip} unhealthy with one apiserver down: {out}"
        );
    }
    let (code, out) = env.on(&masters[0], "systemctl start kube-apiserver");
    assert_eq!(code, 0, "{out}");
}

/// RFC 3339 UTC time on a lab machine (the clock the kubelets stamp with).
fn chrono_now(env: &Env, ip: &str) -> String {
    let (code, out) = env.on(ip, "date -u +%Y-%m-%dT%H:%M:%SZ");
    assert_eq!(code, 0, "{ip}: {out}");
    let now = out.trim().to_string();
    assert!(now.len() == 20 && now.ends_with('Z'), "{ip}: {now}");
    now
}

fn registry_round_trip(env: &Env, masters: &[String], nodes: &[String]) {
    let cluster = ez_inventory::Cluster::load(&env.cluster_dir()).expect("cluster");
    let port = cluster.settings.int("HARBOR_TLS_PORT");
    let registry_ip = env
        .group(Role::Harbor)
        .first()
        .cloned()
        .expect("a harbor host");
    let work = tempfile::tempdir().expect("tempdir");
    let layout = work.path().join("image");
    oci::write_image(&layout, b"hello from the ezctl lab\n");
    let certs = work.path().join("certs");
    std::fs::create_dir_all(&certs).expect("mkdir");
    std::fs::copy(env.ssl("ca.pem"), certs.join("ca.crt")).expect("ca");
    let out = Command::new("skopeo")
        .args(["copy", "--dest-cert-dir"])
        .arg(&certs)
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{registry_ip}:{port}/ezctl/hello:1"))
        .output()
        .expect("skopeo");
    assert!(out.status.success(), "push to the registry: {}", text(&out));
    for ip in masters.iter().chain(nodes) {
        let (code, out) = env.on(
            ip,
            &format!("/opt/kube/bin/ctr -n k8s.io images pull --hosts-dir /etc/containerd/certs.d harbor.easzlab.io.local:{port}/ezctl/hello:1"),
        );
        assert_eq!(code, 0, "pull on {ip}: {out}");
    }
}

/// A minimal, valid OCI image layout (one layer holding one file).
mod oci {
    use std::io::Write;
    use std::path::Path;

    use sha2::{Digest, Sha256};

    fn blob(dir: &Path, data: &[u8]) -> (String, usize) {
        let hex = hex::encode(Sha256::digest(data));
        std::fs::write(dir.join("blobs/sha256").join(&hex), data).expect("blob");
        (format!("sha256:{hex}"), data.len())
    }

    pub fn write_image(dir: &Path, content: &[u8]) {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir");
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, "hello.txt", content)
            .expect("tar");
        let layer = tar.into_inner().expect("tar");
        let diff_id = format!("sha256:{}", hex::encode(Sha256::digest(&layer)));
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&layer).expect("gzip");
        let (layer_digest, layer_size) = blob(dir, &gz.finish().expect("gzip"));
        let config = serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [diff_id] }, "config": {}
        });
        let (config_digest, config_size) = blob(dir, config.to_string().as_bytes());
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer_digest, "size": layer_size }]
        });
        let (manifest_digest, manifest_size) = blob(dir, manifest.to_string().as_bytes());
        let index = serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest, "size": manifest_size,
                "annotations": { "org.opencontainers.image.ref.name": "latest" }
            }]
        });
        std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("layout");
    }
}
