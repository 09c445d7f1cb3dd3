//! End-to-end: real etcd (TLS, client-cert auth), the kube-apiserver
//! stand-in, real kubectl.

mod common;
use common::*;

#[test]
fn kubectl_version_readyz_and_etcd_layout() {
    let Some(c) = Cluster::start() else { return };
    let v = c.ok(&["version", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&v).unwrap();
    assert_eq!(v["serverVersion"]["gitVersion"], "v1.30.1");
    assert_eq!(c.ok(&["get", "--raw", "/readyz"]).trim(), "ok");
    let keys = c.etcdctl(&["get", "--prefix", "/registry", "--keys-only"]);
    let keys = String::from_utf8_lossy(&keys.stdout).into_owned();
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
