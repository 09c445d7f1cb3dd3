//! End-to-end: real etcd (TLS, client-cert auth), the kube-apiserver
//! stand-in, real kubectl.

mod common;
use common::*;
use std::process::Command;

#[test]
fn kubectl_version_readyz_and_etcd_layout() {
    let Some(c) = Cluster::start() else { return };
    let v = c.ok(&["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.30.1");
    assert_eq!(c.ok(&["get", "--raw", "/readyz"]).trim(), "ok");
    // As with a real apiserver, /readyz can answer before the bootstrap
    // controller has written the `kubernetes` Service: give it a moment.
    let mut keys = String::new();
    wait_until(10, || {
        let out = c.etcdctl(&["get", "--prefix", "/registry", "--keys-only"]);
        keys = String::from_utf8_lossy(&out.stdout).into_owned();
        keys.contains("/registry/services/specs/default/kubernetes")
    });
    assert!(keys.contains("/registry/namespaces/kube-system"), "{keys}");
    assert!(
        keys.contains("/registry/services/specs/default/kubernetes"),
        "{keys}"
    );
    let svc = c.ok(&[
        "get",
        "svc",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    assert_eq!(svc, "10.68.0.1");
}

#[test]
fn apply_addons_twice_and_get_them() {
    let Some(c) = Cluster::start() else { return };
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/addons.yaml");
    // Like against a real apiserver, kubectl maps every object before it
    // creates the CRD, so the first run may only miss the custom object.
    let first = c.kubectl(&["apply", "-f", manifest]);
    let first_out = out(&first);
    if !first.status.success() {
        let errors: Vec<&str> = first_out
            .lines()
            .filter(|l| l.starts_with("error"))
            .collect();
        assert_eq!(errors.len(), 1, "{first_out}");
        assert!(
            errors[0].contains("no matches for kind \"IPPool\""),
            "{first_out}"
        );
    }
    for line in [
        "namespace/ez-test created",
        "customresourcedefinition.apiextensions.k8s.io/ippools.crd.projectcalico.org created",
        "deployment.apps/coredns created",
        "daemonset.apps/calico-node created",
        "clusterrolebinding.rbac.authorization.k8s.io/system:coredns created",
        "rolebinding.rbac.authorization.k8s.io/reader created",
        "poddisruptionbudget.policy/coredns created",
        "service/kube-dns created",
    ] {
        assert!(
            first_out.contains(line),
            "missing {line:?} in:\n{first_out}"
        );
    }
    let second = c.ok(&["apply", "-f", manifest]);
    for line in [
        "namespace/ez-test unchanged",
        "customresourcedefinition.apiextensions.k8s.io/ippools.crd.projectcalico.org unchanged",
        "serviceaccount/coredns unchanged",
        "clusterrole.rbac.authorization.k8s.io/system:coredns unchanged",
        "configmap/coredns unchanged",
        "service/kube-dns unchanged",
        "deployment.apps/coredns unchanged",
        "daemonset.apps/calico-node unchanged",
    ] {
        assert!(second.contains(line), "missing {line:?} in:\n{second}");
    }
    assert!(
        second.contains("ippool.crd.projectcalico.org/default-ipv4-ippool"),
        "{second}"
    );
    let again = c.ok(&["apply", "-f", manifest]);
    assert!(
        again.contains("ippool.crd.projectcalico.org/default-ipv4-ippool unchanged"),
        "{again}"
    );
    // A changed manifest is "configured" and the change lands.
    let changed = std::fs::read_to_string(manifest)
        .unwrap()
        .replace("replicas: 2", "replicas: 3");
    let changed_path = c.path().join("changed.yaml");
    std::fs::write(&changed_path, changed).unwrap();
    let third = c.ok(&["apply", "-f", changed_path.to_str().unwrap()]);
    assert!(
        third.contains("deployment.apps/coredns configured"),
        "{third}"
    );
    assert_eq!(
        c.ok(&[
            "-n",
            "kube-system",
            "get",
            "deploy",
            "coredns",
            "-o",
            "jsonpath={.spec.replicas}"
        ]),
        "3"
    );
    // The container list survived the strategic merge.
    assert_eq!(
        c.ok(&[
            "-n",
            "kube-system",
            "get",
            "deploy",
            "coredns",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}"
        ]),
        "coredns/coredns:1.11.1"
    );

    let table = c.ok(&["get", "ds,deploy", "-n", "kube-system"]);
    assert!(table.contains("daemonset.apps/calico-node"), "{table}");
    assert!(table.contains("deployment.apps/coredns"), "{table}");
    let crds = c.ok(&["get", "crd"]);
    assert!(crds.contains("ippools.crd.projectcalico.org"), "{crds}");
    assert!(c.ok(&["get", "ippools"]).contains("default-ipv4-ippool"));
    assert_eq!(
        c.ok(&[
            "-n",
            "kube-system",
            "get",
            "svc",
            "kube-dns",
            "-o",
            "jsonpath={.spec.clusterIP}"
        ]),
        "10.68.0.2"
    );
    assert_eq!(
        c.ok(&[
            "-n",
            "ez-test",
            "get",
            "secret",
            "token",
            "-o",
            "jsonpath={.data.password}"
        ]),
        "bm90LWEtcmVhbC1vbmU="
    );
    let all = c.ok(&[
        "get",
        "clusterrolebinding,rolebinding,role,clusterrole,sa,cm,pdb",
        "-A",
    ]);
    for name in ["system:coredns", "reader", "coredns"] {
        assert!(all.contains(name), "{all}");
    }

    let keys = c.etcdctl(&["get", "--prefix", "/registry", "--keys-only"]);
    assert!(keys.status.success(), "{}", out(&keys));
    let keys = String::from_utf8_lossy(&keys.stdout).into_owned();
    for k in [
        "/registry/crd.projectcalico.org/ippools/default-ipv4-ippool",
        "/registry/apiextensions.k8s.io/customresourcedefinitions/ippools.crd.projectcalico.org",
        "/registry/deployments/kube-system/coredns",
        "/registry/daemonsets/kube-system/calico-node",
        "/registry/services/specs/kube-system/kube-dns",
        "/registry/clusterrolebindings/system:coredns",
    ] {
        assert!(keys.lines().any(|l| l == k), "missing {k} in etcd:\n{keys}");
    }
    let val = c.etcdctl(&[
        "get",
        "/registry/deployments/kube-system/coredns",
        "--print-value-only",
    ]);
    let stored: serde_json::Value = serde_json::from_slice(&val.stdout).unwrap();
    assert_eq!(stored["kind"], "Deployment");

    // Deleting the CRD takes its objects along.
    c.ok(&["delete", "crd", "ippools.crd.projectcalico.org"]);
    let keys = c.etcdctl(&[
        "get",
        "--prefix",
        "/registry/crd.projectcalico.org",
        "--keys-only",
    ]);
    assert!(String::from_utf8_lossy(&keys.stdout).trim().is_empty());
}

#[test]
fn create_clusterrolebinding_and_foreign_ca_refused() {
    let Some(c) = Cluster::start() else { return };
    let o = c.ok(&[
        "create",
        "clusterrolebinding",
        "kubelet-api-admin",
        "--clusterrole=system:kubelet-api-admin",
        "--user=kubernetes",
    ]);
    assert!(
        o.contains("clusterrolebinding.rbac.authorization.k8s.io/kubelet-api-admin created"),
        "{o}"
    );
    let again = c.kubectl(&[
        "create",
        "clusterrolebinding",
        "kubelet-api-admin",
        "--clusterrole=system:kubelet-api-admin",
        "--user=kubernetes",
    ]);
    assert!(!again.status.success());
    assert!(out(&again).contains("already exists"), "{}", out(&again));
    let role = c.ok(&[
        "get",
        "clusterrolebinding",
        "kubelet-api-admin",
        "-o",
        "jsonpath={.roleRef.name}/{.subjects[0].name}",
    ]);
    assert_eq!(role, "system:kubelet-api-admin/kubernetes");

    // Any user with a cert from the cluster CA gets in (no RBAC evaluation).
    let jane = c.user_kubeconfig("jane", "jane", &["devs"]);
    assert!(c.kubectl_as(&jane, &["get", "ns"]).status.success());

    // A client certificate from another CA is refused at the handshake.
    let other = Ca::new("evil-ca");
    let mallory = other.issue(
        c.path(),
        "mallory",
        "admin",
        &["system:masters"],
        &[],
        Eku::Client,
    );
    let kc = c.path().join("mallory.kubeconfig");
    kubeconfig(&kc, &c.server(), &c.ca.pem, &mallory);
    let o = c.kubectl_as(&kc, &["get", "ns"]);
    assert!(
        !o.status.success(),
        "foreign client cert accepted: {}",
        out(&o)
    );
    let text = out(&o);
    assert!(
        text.contains("certificate") || text.contains("tls") || text.contains("Unauthorized"),
        "{text}"
    );

    // And kubectl refuses a server whose cert is not from the CA it trusts.
    let wrong_ca = c.path().join("wrong-ca.kubeconfig");
    let admin = c.ca.issue(
        c.path(),
        "admin2",
        "admin",
        &["system:masters"],
        &[],
        Eku::Client,
    );
    kubeconfig(&wrong_ca, &c.server(), &other.pem, &admin);
    let o = c.kubectl_as(&wrong_ca, &["get", "ns"]);
    assert!(!o.status.success());
    assert!(
        out(&o).contains("certificate signed by unknown authority"),
        "{}",
        out(&o)
    );
}

#[test]
fn readyz_fails_when_etcd_stops() {
    let Some(mut c) = Cluster::start() else {
        return;
    };
    assert_eq!(c.ok(&["get", "--raw", "/readyz"]).trim(), "ok");
    if let Some(e) = c.etcd.as_mut() {
        e.stop();
    }
    let failed = wait_until(30, || {
        !c.kubectl(&["get", "--raw", "/readyz"]).status.success()
    });
    assert!(failed, "readyz still ok with etcd down");
    let o = c.kubectl(&["get", "--raw", "/readyz?verbose"]);
    assert!(out(&o).contains("[-]etcd failed"), "{}", out(&o));
    // liveness does not depend on etcd
    assert!(c.kubectl(&["get", "--raw", "/livez"]).status.success());
}

#[test]
fn etcd_failover_and_wrong_etcd_client_cert() {
    let Some(c) = Cluster::start() else { return };
    // A dead endpoint listed first: the apiserver fails over to the live one.
    let dead = free_port();
    let servers = format!("https://127.0.0.1:{dead},https://127.0.0.1:{}", c.etcd_port);
    let (api2, port2) = c.extra_apiserver("apiserver-failover", &servers, &c.etcd_client);
    let admin2 = c.admin_for(port2);
    let ok = wait_until(30, || {
        c.kubectl_as(&admin2, &["get", "--raw", "/readyz"])
            .status
            .success()
    });
    assert!(ok, "{}", api2.log_text());
    // Both apiservers see the same store.
    c.ok(&["create", "namespace", "shared"]);
    let o = c.kubectl_as(&admin2, &["get", "ns", "shared", "-o", "name"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "namespace/shared"
    );
    // Both joined the kubernetes Endpoints.
    let eps = c.ok(&[
        "get",
        "endpoints",
        "kubernetes",
        "-o",
        "jsonpath={.subsets[0].ports[0].port}",
    ]);
    assert!(!eps.is_empty());

    // An etcd client certificate from another CA: etcd refuses it, so the
    // apiserver never becomes ready.
    let rogue_ca = Ca::new("rogue-etcd-ca");
    let rogue = rogue_ca.issue(
        c.path(),
        "rogue-etcd-client",
        "kubernetes",
        &[],
        &[],
        Eku::Client,
    );
    let (api3, port3) = c.extra_apiserver(
        "apiserver-badetcd",
        &format!("https://127.0.0.1:{}", c.etcd_port),
        &rogue,
    );
    let admin3 = c.admin_for(port3);
    assert!(
        wait_until(15, || c
            .kubectl_as(&admin3, &["get", "--raw", "/livez"])
            .status
            .success()),
        "{}",
        api3.log_text()
    );
    let o = c.kubectl_as(&admin3, &["get", "--raw", "/readyz?verbose"]);
    assert!(!o.status.success());
    assert!(out(&o).contains("[-]etcd failed"), "{}", out(&o));
}

#[test]
fn watch_streams_changes() {
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};
    let Some(c) = Cluster::start() else { return };
    let mut w = Command::new(kubectl_bin())
        .arg(format!("--kubeconfig={}", c.admin_kubeconfig.display()))
        .arg(format!(
            "--cache-dir={}",
            c.path().join("kubectl-cache").display()
        ))
        .args(["get", "namespaces", "--watch", "--output-watch-events"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let stdout = w.stdout.take().unwrap();
    let sink = seen.clone();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            sink.lock().unwrap().push_str(&(line + "\n"));
        }
    });
    let has = |kind: &str, name: &str| {
        seen.lock()
            .unwrap()
            .lines()
            .any(|l| l.starts_with(kind) && l.split_whitespace().nth(1) == Some(name))
    };
    assert!(
        wait_until(20, || has("ADDED", "kube-system")),
        "{}",
        seen.lock().unwrap()
    );
    c.ok(&["create", "namespace", "watched"]);
    let added = wait_until(20, || has("ADDED", "watched"));
    c.ok(&["delete", "namespace", "watched"]);
    let deleted = wait_until(20, || has("DELETED", "watched"));
    let _ = w.kill();
    let _ = w.wait();
    let _ = reader.join();
    let text = seen.lock().unwrap().clone();
    assert!(added && deleted, "{text}");
}

/// Keeps a cluster up for poking at by hand:
/// `cargo test -p ez-standins --test e2e manual_cluster -- --ignored --nocapture`
#[test]
#[ignore]
fn manual_cluster() {
    let Some(c) = Cluster::start() else { return };
    eprintln!("KUBECONFIG={}", c.admin_kubeconfig.display());
    eprintln!("DIR={}", c.path().display());
    let secs: u64 = std::env::var("HOLD_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    std::thread::sleep(std::time::Duration::from_secs(secs));
}
