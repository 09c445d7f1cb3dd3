//! The node and controller stand-ins against a real etcd + the
//! kube-apiserver stand-in, checked with real kubectl.

mod common;
use common::*;
use std::process::Command;

#[test]
fn kubelet_registers_ready_and_tracks_the_runtime() {
    let Some(c) = Cluster::start() else { return };
    let mut k = c.start_kubelet("node-a", &c.server());
    let ready = wait_until(30, || c.node_status("node-a") == "Ready");
    assert!(
        ready,
        "node not Ready: {:?}\n{}",
        c.node_status("node-a"),
        tail(&k.proc.log_text(), 30)
    );

    let table = c.ok(&["get", "nodes"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("node-a"))
        .unwrap_or_default()
        .to_string();
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[1], "Ready", "{table}");
    assert_eq!(cols[2], "<none>", "{table}");
    assert_eq!(cols[4], "v1.30.1", "{table}");
    assert!(
        table.starts_with("NAME") && table.contains("ROLES") && table.contains("VERSION"),
        "{table}"
    );

    let node: serde_json::Value =
        serde_json::from_str(&c.ok(&["get", "node", "node-a", "-o", "json"])).unwrap();
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "node-a"
    );
    assert_eq!(node["metadata"]["labels"]["kubernetes.io/os"], "linux");
    assert_eq!(node["status"]["capacity"]["pods"], "42");
    assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.30.1");
    assert_eq!(node["status"]["addresses"][0]["address"], "127.0.0.1");
    let yaml = c.ok(&["get", "node", "node-a", "-o", "yaml"]);
    assert!(yaml.contains("kubeletVersion: v1.30.1"), "{yaml}");

    // Health endpoints: HTTP healthz and the HTTPS API port.
    assert_eq!(http_get(&k.healthz, "/healthz").map(|x| x.0), Some(200));
    assert_eq!(
        https_status(&format!("https://127.0.0.1:{}/healthz", k.port)),
        Some(401)
    );

    // The runtime goes away: NotReady with a reason; back: Ready again.
    k.runtime.stop();
    assert!(
        wait_until(20, || c.node_status("node-a") == "NotReady"),
        "{}",
        c.node_status("node-a")
    );
    let msg = c.ok(&[
        "get",
        "node",
        "node-a",
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
    ]);
    assert!(msg.contains("container runtime is down"), "{msg}");
    k.runtime = Runtime::start(k.runtime.path.clone());
    assert!(wait_until(20, || c.node_status("node-a") == "Ready"));

    // label, cordon, uncordon
    c.ok(&["label", "node", "node-a", "node-role.kubernetes.io/worker="]);
    c.ok(&["cordon", "node-a"]);
    let row = c.ok(&["get", "node", "node-a", "--no-headers"]);
    assert!(
        row.contains("Ready,SchedulingDisabled") && row.contains("worker"),
        "{row}"
    );
    c.ok(&["uncordon", "node-a"]);
    assert_eq!(c.node_status("node-a"), "Ready");

    // drain: a plain pod is evicted, a DaemonSet pod stays.
    let manifest = c.path().join("pods.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent, namespace: kube-system}\n\
         spec:\n  selector: {matchLabels: {app: agent}}\n  template:\n    metadata: {labels: {app: agent}}\n    spec: {containers: [{name: a, image: busybox}]}\n\
         ---\napiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: default}\n\
         spec:\n  nodeName: node-a\n  containers: [{name: w, image: nginx}]\n  volumes: [{name: scratch, emptyDir: {}}]\n",
    )
    .unwrap();
    c.ok(&["apply", "-f", manifest.to_str().unwrap()]);
    let ds_uid = c.ok(&[
        "-n",
        "kube-system",
        "get",
        "ds",
        "agent",
        "-o",
        "jsonpath={.metadata.uid}",
    ]);
    let ds_pod = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"Pod\",\"metadata\":{{\"name\":\"agent-x\",\"namespace\":\"kube-system\",\
         \"ownerReferences\":[{{\"apiVersion\":\"apps/v1\",\"kind\":\"DaemonSet\",\"name\":\"agent\",\"uid\":\"{ds_uid}\",\"controller\":true}}]}},\
         \"spec\":{{\"nodeName\":\"node-a\",\"containers\":[{{\"name\":\"a\",\"image\":\"busybox\"}}]}}}}"
    );
    let ds_pod_file = c.path().join("ds-pod.json");
    std::fs::write(&ds_pod_file, ds_pod).unwrap();
    c.ok(&["create", "-f", ds_pod_file.to_str().unwrap()]);
    let pods = c.ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        "spec.nodeName=node-a",
        "-o",
        "name",
    ]);
    assert_eq!(pods.lines().count(), 2, "{pods}");

    let drain = c.ok(&[
        "drain",
        "node-a",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--force",
        "--timeout=60s",
    ]);
    assert!(
        drain.contains("evicting pod default/web") || drain.contains("pod/web evicted"),
        "{drain}"
    );
    assert!(drain.contains("node/node-a drained"), "{drain}");
    assert!(
        !c.kubectl(&["get", "pod", "web"]).status.success(),
        "web still there"
    );
    assert!(c
        .kubectl(&["-n", "kube-system", "get", "pod", "agent-x"])
        .status
        .success());
    assert!(c
        .ok(&["get", "node", "node-a", "--no-headers"])
        .contains("SchedulingDisabled"));

    // delete node: gone from the API (the kubelet does not re-register
    // until restarted, like the real one).
    c.ok(&["delete", "node", "node-a"]);
    assert!(!c.kubectl(&["get", "node", "node-a"]).status.success());
    std::thread::sleep(std::time::Duration::from_secs(3));
    assert!(!c.kubectl(&["get", "node", "node-a"]).status.success());
    assert!(
        k.proc.log_text().contains("not found"),
        "{}",
        tail(&k.proc.log_text(), 10)
    );
}

#[test]
fn kubelet_refuses_apiserver_cert_without_its_ip() {
    let Some(c) = Cluster::start() else { return };
    // A second apiserver on the same etcd whose serving cert lacks 127.0.0.1.
    let d = c.path();
    let bad = c.ca.issue(
        d,
        "apiserver-nosan",
        "kubernetes",
        &[],
        &["kubernetes", "10.0.0.1"],
        Eku::Server,
    );
    let sa = c.ca.issue(d, "sa2", "sa", &[], &[], Eku::None);
    let port = free_port();
    let _api2 = Proc::spawn(
        "kube-apiserver-2",
        Command::new(bin("kube-apiserver")).args([
            "--bind-address=127.0.0.1",
            &format!("--secure-port={port}"),
            &format!("--etcd-servers=https://127.0.0.1:{}", c.etcd_port),
            &format!("--etcd-cafile={}", c.etcd_ca_file.display()),
            &format!("--etcd-certfile={}", c.etcd_client.cert.display()),
            &format!("--etcd-keyfile={}", c.etcd_client.key.display()),
            &format!("--tls-cert-file={}", bad.cert.display()),
            &format!("--tls-private-key-file={}", bad.key.display()),
            &format!("--client-ca-file={}", c.ca_file.display()),
            "--service-account-issuer=https://kubernetes.default.svc",
            &format!("--service-account-signing-key-file={}", sa.key.display()),
        ]),
        d.join("apiserver2.log"),
    );
    let k = c.start_kubelet("node-b", &format!("https://127.0.0.1:{port}"));
    let refused = wait_until(20, || {
        let log = k.proc.log_text();
        log.contains("Unable to register node") && log.contains("127.0.0.1")
    });
    let log = k.proc.log_text();
    assert!(refused, "{log}");
    assert!(
        log.contains("certificate") || log.contains("NotValidForName"),
        "{log}"
    );
    assert!(!c.kubectl(&["get", "node", "node-b"]).status.success());
}

#[test]
fn proxy_controller_manager_and_scheduler() {
    let Some(c) = Cluster::start() else { return };
    let d = c.path().to_path_buf();
    let kubelet = c.start_kubelet("node-c", &c.server());
    assert!(
        wait_until(30, || c.node_status("node-c") == "Ready"),
        "{}",
        kubelet.proc.log_text()
    );

    // kube-proxy: healthz 200 only after it synced services.
    let proxy_kc = c.component_kubeconfig("kube-proxy", "system:kube-proxy", &[], &c.server());
    let hz = format!("127.0.0.1:{}", free_port());
    let cfg = d.join("kube-proxy-config.yaml");
    std::fs::write(
        &cfg,
        format!(
            "kind: KubeProxyConfiguration\napiVersion: kubeproxy.config.k8s.io/v1alpha1\nclientConnection:\n  kubeconfig: {}\n\
             clusterCIDR: 172.20.0.0/16\nmode: ipvs\nhealthzBindAddress: {hz}\nmetricsBindAddress: 127.0.0.1:{}\n",
            proxy_kc.display(),
            free_port()
        ),
    )
    .unwrap();
    let proxy = Proc::spawn(
        "kube-proxy",
        Command::new(bin("kube-proxy")).args([
            &format!("--config={}", cfg.display()),
            "--hostname-override=node-c",
            "--v=2",
        ]),
        d.join("kube-proxy.log"),
    );
    assert!(
        wait_until(20, || http_get(&hz, "/healthz").map(|x| x.0) == Some(200)),
        "{}",
        proxy.log_text()
    );

    // kube-controller-manager: podCIDR allocation and HTTPS healthz.
    let cm_kc = c.component_kubeconfig(
        "kcm",
        "system:kube-controller-manager",
        &["system:kube-controller-manager"],
        &c.server(),
    );
    let cm_port = free_port();
    let sa = c.ca.issue(&d, "sa-cm", "sa", &[], &[], Eku::None);
    let cakey = d.join("ca-key-stub.pem");
    write_secret(&cakey, &sa.key_pem);
    let cm = Proc::spawn(
        "kube-controller-manager",
        Command::new(bin("kube-controller-manager")).args([
            &format!("--kubeconfig={}", cm_kc.display()),
            &format!("--authentication-kubeconfig={}", cm_kc.display()),
            &format!("--authorization-kubeconfig={}", cm_kc.display()),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={cm_port}"),
            "--allocate-node-cidrs=true",
            "--cluster-cidr=172.20.0.0/16",
            "--node-cidr-mask-size=24",
            &format!("--cluster-signing-cert-file={}", c.ca_file.display()),
            &format!("--cluster-signing-key-file={}", cakey.display()),
            &format!("--root-ca-file={}", c.ca_file.display()),
            &format!("--service-account-private-key-file={}", sa.key.display()),
            "--service-cluster-ip-range=10.68.0.0/16",
            "--use-service-account-credentials=true",
            "--cluster-name=kubernetes",
            "--leader-elect=true",
            "--controllers=*,bootstrapsigner,tokencleaner",
            "--v=2",
        ]),
        d.join("kcm.log"),
    );
    let cidr = || c.ok(&["get", "node", "node-c", "-o", "jsonpath={.spec.podCIDR}"]);
    assert!(
        wait_until(20, || cidr() == "172.20.0.0/24"),
        "{:?}\n{}",
        cidr(),
        cm.log_text()
    );
    assert_eq!(
        https_status(&format!("https://127.0.0.1:{cm_port}/healthz")),
        Some(200)
    );
    let holder = c.ok(&[
        "-n",
        "kube-system",
        "get",
        "lease",
        "kube-controller-manager",
        "-o",
        "jsonpath={.spec.holderIdentity}",
    ]);
    assert!(!holder.is_empty());

    // kube-scheduler: binds a pending pod to the Ready node.
    let sched_kc = c.component_kubeconfig(
        "sched",
        "system:kube-scheduler",
        &["system:kube-scheduler"],
        &c.server(),
    );
    let sched_port = free_port();
    let sched_cfg = d.join("scheduler.yaml");
    std::fs::write(
        &sched_cfg,
        format!(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nclientConnection:\n  kubeconfig: {}\nleaderElection:\n  leaderElect: true\n",
            sched_kc.display()
        ),
    )
    .unwrap();
    let sched = Proc::spawn(
        "kube-scheduler",
        Command::new(bin("kube-scheduler")).args([
            &format!("--config={}", sched_cfg.display()),
            &format!("--authentication-kubeconfig={}", sched_kc.display()),
            &format!("--authorization-kubeconfig={}", sched_kc.display()),
            "--bind-address=127.0.0.1",
            &format!("--secure-port={sched_port}"),
            "--v=2",
        ]),
        d.join("sched.log"),
    );
    let pod = d.join("pending.yaml");
    std::fs::write(&pod, "apiVersion: v1\nkind: Pod\nmetadata: {name: pending}\nspec: {containers: [{name: c, image: pause}]}\n").unwrap();
    c.ok(&["apply", "-f", pod.to_str().unwrap()]);
    let node_of = || c.ok(&["get", "pod", "pending", "-o", "jsonpath={.spec.nodeName}"]);
    assert!(
        wait_until(20, || node_of() == "node-c"),
        "{:?}\n{}",
        node_of(),
        sched.log_text()
    );
    assert_eq!(
        https_status(&format!("https://127.0.0.1:{sched_port}/healthz")),
        Some(200)
    );
}
