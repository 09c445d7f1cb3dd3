//! `ezctl setup <c> all`, 10 and 11 on 7 real machines (3 etcd, 2 masters,
//! 2 nodes; ex-lb and the registry on the nodes) running real Kubernetes
//! built from its Go modules, then checked with real tools and real pods:
//! etcdctl, kubectl, curl, skopeo, busybox in pods. Needs root, the lab and
//! the build cache (scripts/build-components.sh); under CI their absence is
//! a failure.

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

/// `kubectl ARGS` with the admin kubeconfig against `master`, asserting
/// success; its stdout.
fn kubeconfig_server(env: &Env) -> String {
    let out = env.admin_kubectl(&[
        "config",
        "view",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]);
    assert!(out.status.success(), "kubectl config view: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `kubectl get nodes` with the admin kubeconfig as written lists every node.
fn admin_kubectl_sees_nodes(env: &Env) {
    let out = env.admin_kubectl(&["get", "nodes", "-o", "name", "--request-timeout=10s"]);
    assert!(
        out.status.success(),
        "kubectl get nodes with the admin kubeconfig ({}): {}",
        kubeconfig_server(env),
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("node/"),
        "{}",
        text(&out)
    );
}

fn k(env: &Env, master: &str, args: &[&str]) -> String {
    let out = env.kubectl(master, args);
    assert!(
        out.status.success(),
        "kubectl {} failed:\n{}",
        args.join(" "),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl apply` of a manifest given as text.
fn apply(env: &Env, master: &str, manifest: &str) {
    let f = tempfile::NamedTempFile::new().expect("temp manifest");
    std::fs::write(f.path(), manifest).expect("write manifest");
    k(
        env,
        master,
        &["apply", "-f", &f.path().display().to_string()],
    );
}

/// Every pod of every namespace is Running with all its containers ready,
/// or (after `within`) the assertion lists the ones that are not.
fn assert_all_pods_running(env: &Env, master: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let pods: Value =
            serde_json::from_str(&k(env, master, &["get", "pods", "-A", "-o", "json"]))
                .expect("pod list");
        let items = pods["items"].as_array().expect("items").clone();
        let not_running: Vec<String> = items
            .iter()
            .filter(|p| {
                p["status"]["phase"] != "Running"
                    || !p["status"]["containerStatuses"]
                        .as_array()
                        .is_some_and(|c| c.iter().all(|c| c["ready"] == true))
            })
            .map(|p| {
                format!(
                    "{}/{} {} on {}",
                    p["metadata"]["namespace"].as_str().unwrap_or(""),
                    p["metadata"]["name"].as_str().unwrap_or(""),
                    p["status"]["phase"],
                    p["spec"]["nodeName"]
                )
            })
            .collect();
        if !items.is_empty() && not_running.is_empty() {
            return pods;
        }
        assert!(
            Instant::now() < deadline,
            "pods not running after {within:?}: {not_running:?}\n{}",
            k(env, master, &["get", "pods", "-A", "-o", "wide"])
        );
        std::thread::sleep(Duration::from_secs(2));
    }
}

/// A web Deployment of 2 replicas that must land on 2 different nodes
/// (each answers with its pod name), a ClusterIP and a NodePort Service in
/// front of it, and a client pod to run probes from.
const WORKLOAD: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: default }
spec:
  replicas: 2
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - labelSelector: { matchLabels: { app: web } }
            topologyKey: kubernetes.io/hostname
      containers:
      - name: web
        image: docker.io/library/busybox:1.35.0
        imagePullPolicy: Never
        command: ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && echo serving && exec httpd -f -p 8080 -h /www"]
        ports: [{ containerPort: 8080 }]
        readinessProbe: { tcpSocket: { port: 8080 }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: web, namespace: default }
spec:
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Service
metadata: { name: web-nodeport, namespace: default }
spec:
  type: NodePort
  selector: { app: web }
  ports: [{ port: 80, targetPort: 8080 }]
---
apiVersion: v1
kind: Pod
metadata: { name: client, namespace: default }
spec:
  containers:
  - name: client
    image: docker.io/library/busybox:1.35.0
    imagePullPolicy: Never
    command: ["sleep", "100000"]
"#;

/// `kubectl exec client -- sh -c CMD`: (success, output).
fn in_client(env: &Env, master: &str, cmd: &str) -> (bool, String) {
    let out = env.kubectl(master, &["exec", "client", "--", "sh", "-c", cmd]);
    (out.status.success(), text(&out))
}

/// Requests to `url` from the controller every 0.2 s until stopped: how many
/// failed, and the longest time without an answer.
struct Prober {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<(usize, usize, Duration)>,
}

impl Prober {
    fn start(url: String) -> Prober {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, 0);
            let mut last_ok = Instant::now();
            let mut longest = Duration::ZERO;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let answered = Command::new("curl")
                    .args(["-sf", "--max-time", "1", &url])
                    .output()
                    .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
                if answered {
                    ok += 1;
                    longest = longest.max(last_ok.elapsed());
                    last_ok = Instant::now();
                } else {
                    failed += 1;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            longest = longest.max(last_ok.elapsed());
            (ok, failed, longest)
        });
        Prober { stop, handle }
    }

    fn finish(self) -> (usize, usize, Duration) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.handle.join().expect("prober thread")
    }
}

#[test]
fn setup_all_runs_real_pods_then_ex_lb_and_registry_on_seven_machines() {
    let Some(env) = common::env(7) else { return };
    let etcd = env.group(Role::Etcd);
    let masters = env.group(Role::KubeMaster);
    let nodes = env.group(Role::KubeNode);
    assert_eq!((etcd.len(), masters.len(), nodes.len()), (3, 2, 2));
    let m = masters[0].as_str();
    let kube_version = format!("v{}", common::kube_version());

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

    // 3. Every node Ready, with the kubelet and containerd we built; masters
    //    cordoned.
    let listed = ready_nodes(env, m);
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(
        listed.iter().all(|(_, ready, _)| ready == "True"),
        "{listed:?}"
    );
    let wide = k(env, m, &["get", "nodes", "-o", "wide"]);
    eprintln!("{wide}");
    assert_eq!(wide.matches("SchedulingDisabled").count(), 2, "{wide}");
    let info = k(
        env,
        m,
        &[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion}{\"\\n\"}{end}",
        ],
    );
    assert_eq!(
        info.lines()
            .filter(|l| *l == format!("{kube_version} containerd://2.4.2"))
            .count(),
        4,
        "kubelet and runtime versions: {info}"
    );

    // 4. Every system pod Running: the network on each of the 4 nodes,
    //    coredns; the API server's own version is the one we built.
    let pods = assert_all_pods_running(env, m, Duration::from_secs(180));
    let network_pods = pods["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or("");
            name.starts_with("calico-node-") || name.starts_with("kube-flannel-ds-")
        })
        .count();
    assert_eq!(network_pods, 4, "one network pod per node");
    eprintln!("{}", k(env, m, &["get", "pods", "-A", "-o", "wide"]));
    let version = k(env, m, &["version", "-o", "json"]);
    let v: Value = serde_json::from_str(&version).expect("version json");
    assert_eq!(
        v["serverVersion"]["gitVersion"],
        kube_version.as_str(),
        "{version}"
    );
    assert_eq!(
        k(
            env,
            m,
            &[
                "-n",
                "kube-system",
                "get",
                "service",
                "kube-dns",
                "-o",
                "jsonpath={.spec.clusterIP}"
            ]
        ),
        "10.68.0.2"
    );

    // 5. A workload: 2 replicas on 2 nodes, reached pod to pod across nodes,
    //    through the ClusterIP and through a NodePort from the controller.
    apply(env, m, WORKLOAD);
    k(
        env,
        m,
        &["rollout", "status", "deployment/web", "--timeout=180s"],
    );
    k(
        env,
        m,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/client",
            "--timeout=180s",
        ],
    );
    let web: Value =
        serde_json::from_str(&k(env, m, &["get", "pods", "-l", "app=web", "-o", "json"]))
            .expect("web pods");
    let web: Vec<(String, String, String)> = web["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap_or("").to_string(),
                p["spec"]["nodeName"].as_str().unwrap_or("").to_string(),
                p["status"]["podIP"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(web.len(), 2, "{web:?}");
    assert_ne!(web[0].1, web[1].1, "the 2 replicas share a node: {web:?}");
    let client_node = k(
        env,
        m,
        &["get", "pod", "client", "-o", "jsonpath={.spec.nodeName}"],
    );
    let remote = web
        .iter()
        .find(|(_, node, _)| *node != client_node)
        .expect("a web pod on another node than the client");
    let (ok, out) = in_client(env, m, &format!("wget -qO- http://{}:8080/", remote.2));
    assert!(
        ok && out.contains(&remote.0),
        "pod {} on {} from {client_node}: {out}",
        remote.0,
        remote.1
    );
    let (ok, out) = in_client(env, m, "wget -qO- http://web.default.svc.cluster.local/");
    assert!(
        ok && web.iter().any(|(name, _, _)| out.contains(name)),
        "ClusterIP by name: {out}"
    );
    let node_port = k(
        env,
        m,
        &[
            "get",
            "service",
            "web-nodeport",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ],
    );
    for ip in &nodes {
        let out = Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "5",
                &format!("http://{ip}:{node_port}/"),
            ])
            .output()
            .expect("curl");
        assert!(
            out.status.success() && web.iter().any(|(name, _, _)| text(&out).contains(name)),
            "NodePort {ip}:{node_port} from the controller: {}",
            text(&out)
        );
    }

    // 6. Cluster DNS from a pod: the API service's name answers its IP; a
    //    name outside the cluster fails, and fast (no forwarding loop: the
    //    lab has no upstream DNS).
    let (ok, out) = in_client(env, m, "nslookup kubernetes.default.svc.cluster.local");
    assert!(ok && out.contains("10.68.0.1"), "{out}");
    let started = Instant::now();
    let (ok, out) = in_client(env, m, "nslookup www.example.com");
    let took = started.elapsed();
    assert!(
        !ok,
        "an outside name resolved in a lab with no upstream DNS: {out}"
    );
    assert!(
        took < Duration::from_secs(15),
        "outside name took {took:?}: {out}"
    );
    let dns_logs = k(
        env,
        m,
        &[
            "-n",
            "kube-system",
            "logs",
            "-l",
            "k8s-app=kube-dns",
            "--tail=-1",
        ],
    );
    assert!(
        !dns_logs.contains("Loop ("),
        "coredns detected a forwarding loop: {dns_logs}"
    );

    // 7. kubectl logs and exec go through the apiserver to the kubelets.
    let logs = k(env, m, &["logs", &web[0].0]);
    assert!(logs.contains("serving"), "kubectl logs: {logs}");
    let (ok, out) = in_client(env, m, "cat /etc/hostname");
    assert!(ok && out.trim() == "client", "kubectl exec: {out}");

    // 8. RBAC is real: a view-only user from kcfg-adm reads pods and is
    //    refused a delete, which the admin may do (the positive control).
    let out = env.ezctl_ok("kcfg-adm", &["-A", "-u", "viewer", "-t", "view"]);
    let kubeconfig = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let as_viewer = |args: &[&str]| {
        let out = Command::new(env.home.join("bin/kubectl"))
            .arg(format!("--kubeconfig={kubeconfig}"))
            .arg(format!("--server=https://{m}:6443"))
            .args(args)
            .output()
            .expect("kubectl as viewer");
        (out.status.success(), text(&out))
    };
    let (ok, out) = as_viewer(&["get", "pods"]);
    assert!(ok && out.contains("client"), "viewer get pods: {out}");
    let (ok, out) = as_viewer(&["delete", "pod", "client", "--wait=false"]);
    assert!(!ok && out.contains("Forbidden"), "viewer delete: {out}");
    assert_eq!(
        k(env, m, &["auth", "can-i", "delete", "pods"]).trim(),
        "yes"
    );

    // 9. A second run changes nothing anywhere, and the workload keeps
    //    answering through it, without a restart.
    let before = k(env, m, &["get", "pods", "-A", "-o", "jsonpath={range .items[*]}{.metadata.uid} {.status.containerStatuses[*].restartCount}{\"\\n\"}{end}"]);
    let prober = Prober::start(format!("http://{}:{node_port}/", nodes[0]));
    let again = setup(env, "all");
    let (answered, failed, gap) = prober.finish();
    eprintln!("workload probe during the second `setup all`: {answered} answered, {failed} failed, longest gap {gap:?}");
    assert_nothing_changed(&again, "setup all");
    assert!(
        answered > 0 && failed == 0,
        "{answered} answered, {failed} failed"
    );
    let after = k(env, m, &["get", "pods", "-A", "-o", "jsonpath={range .items[*]}{.metadata.uid} {.status.containerStatuses[*].restartCount}{\"\\n\"}{end}"]);
    assert_eq!(
        before, after,
        "pods were replaced or restarted by a second setup all"
    );

    // The admin kubeconfig as handed out works now, before step 10: it
    // names a master, not the VIP nobody holds yet.
    let cluster = ez_inventory::Cluster::load(&env.cluster_dir()).expect("cluster");
    let vip = format!(
        "https://{}:{}",
        cluster.settings.text("EX_APISERVER_VIP"),
        cluster.settings.int("EX_APISERVER_PORT")
    );
    assert!(
        !cluster
            .group(ez_inventory::Group::ExLb)
            .collect::<Vec<_>>()
            .is_empty(),
        "this lab lists ex_lb hosts, or the check below proves nothing"
    );
    let before_10 = kubeconfig_server(env);
    assert_eq!(before_10, format!("https://{}:6443", masters[0]));
    admin_kubectl_sees_nodes(env);

    // 10. ex-lb: the VIP answers the API with the admin cert.
    setup(env, "10");
    assert_eq!(
        kubeconfig_server(env),
        vip,
        "after step 10 the admin kubeconfig points at the verified VIP"
    );
    admin_kubectl_sees_nodes(env);
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
        text(&out).contains(&kube_version),
        "VIP {vip}: {}",
        text(&out)
    );
    assert_nothing_changed(&setup(env, "10"), "setup 10");

    // 11. Registry: push an image from the controller, pull it on every node
    //     through the trust ezctl configured (cluster CA in containerd's
    //     certs.d), and run a pod from it.
    setup(env, "11");
    registry_round_trip(env, &masters, &nodes);
    assert_nothing_changed(&setup(env, "11"), "setup 11");

    // 12. One master's apiserver stops: every kubelet keeps reporting through
    //     kube-lb: each node's Lease (its heartbeat, every 10 s) is renewed
    //     after the stop, seen through the other master, and stays Ready.
    // A real apiserver closes its port at once on SIGTERM, then waits up to
    // its --request-timeout (60 s) for clients' open watches: the test goes
    // on once the port is closed.
    let listening = "ss -Hltnp 'sport = :6443' | grep -q '\"kube-apiserver\"'";
    let (code, out) = env.on(&masters[0], listening);
    assert_eq!(
        code, 0,
        "the probe must see the apiserver listen first: {out}"
    );
    let (code, out) = env.on(&masters[0], "systemctl --no-block stop kube-apiserver");
    assert_eq!(code, 0, "{out}");
    let (code, out) = env.on(
        &masters[0],
        "for i in $(seq 100); do ss -Hltnp 'sport = :6443' | grep -q '\"kube-apiserver\"' || exit 0; sleep 0.2; done; exit 1",
    );
    assert_eq!(
        code, 0,
        "the apiserver still listens 20 s after the stop: {out}"
    );
    let stopped_at = chrono_now(env, &masters[1]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let leases = k(
            env,
            &masters[1],
            &[
                "-n",
                "kube-node-lease",
                "get",
                "lease",
                "-o",
                "jsonpath={range .items[*]}{.metadata.name} {.spec.renewTime}{\"\\n\"}{end}",
            ],
        );
        // renewTime has microseconds; compare whole seconds, strictly after.
        let renewed = leases
            .lines()
            .filter(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|t| t.get(..19).unwrap_or("") > stopped_at.get(..19).unwrap_or(""))
            })
            .count();
        let ready = ready_nodes(env, &masters[1]);
        if renewed == 4 && ready.iter().all(|(_, r, _)| r == "True") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every node renewed its lease since the apiserver stopped at {stopped_at}:\n{leases}\n{ready:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    // The renewals went through the other master: this one still does not
    // listen (the same probe saw it listening before the stop).
    let (code, out) = env.on(&masters[0], listening);
    assert_ne!(
        code, 0,
        "the stopped apiserver listens again, the renewals may have gone through it: {out}"
    );
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
    // A runnable image through the registry: the bundle's busybox, pushed,
    // then pulled by the kubelet for a pod (imagePullPolicy: Always).
    let image = format!("harbor.easzlab.io.local:{port}/ezctl/busybox:1");
    let out = Command::new("skopeo")
        .args(["copy", "--dest-cert-dir"])
        .arg(&certs)
        .arg(format!(
            "docker-archive:{}",
            env.home.join("bin/images/busybox.tar").display()
        ))
        .arg(format!("docker://{registry_ip}:{port}/ezctl/busybox:1"))
        .output()
        .expect("skopeo");
    assert!(out.status.success(), "push busybox: {}", text(&out));
    let m = masters[0].as_str();
    apply(
        env,
        m,
        &format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{ name: from-registry }}\nspec:\n  containers:\n  - {{ name: c, image: \"{image}\", imagePullPolicy: Always, command: [sleep, \"100000\"] }}\n"
        ),
    );
    k(
        env,
        m,
        &[
            "wait",
            "--for=condition=Ready",
            "pod/from-registry",
            "--timeout=120s",
        ],
    );
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
