//! `ezctl import` of the kubeasz inventory from the operators' walkthrough:
//! etcd 10.0.0.206-208, masters 10.0.0.201-202, nodes 10.0.0.211-212.

use std::path::Path;

use ez_inventory::kubeasz::import;
use ez_inventory::render::{render_hosts, set_config_values};
use ez_inventory::{Cluster, Group, Value};

fn fixture(name: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kubeasz")
        .join(name);
    std::fs::read_to_string(p).expect("fixture")
}

fn example_config() -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clusters/example/config.yml");
    std::fs::read_to_string(p).expect("example config")
}

#[test]
fn seed_inventory_imports_and_validates() {
    let imported = import(&fixture("hosts"), Some(&fixture("config.yml"))).expect("import");
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster_dir = dir.path().join("k8s-cluster1");
    std::fs::create_dir(&cluster_dir).expect("mkdir");
    std::fs::write(cluster_dir.join("hosts.yml"), render_hosts(&imported.hosts)).expect("write");
    std::fs::write(
        cluster_dir.join("config.yml"),
        set_config_values(&example_config(), &imported.config),
    )
    .expect("write");

    let c = Cluster::load(&cluster_dir)
        .unwrap_or_else(|e| panic!("imported inventory must validate:\n{e}"));
    assert_eq!(c.hosts.len(), 7);
    let ips = |g| c.group(g).map(|h| h.ip.to_string()).collect::<Vec<_>>();
    assert_eq!(ips(Group::Etcd), ["10.0.0.206", "10.0.0.207", "10.0.0.208"]);
    assert_eq!(ips(Group::KubeMaster), ["10.0.0.201", "10.0.0.202"]);
    assert_eq!(ips(Group::KubeNode), ["10.0.0.211", "10.0.0.212"]);
    assert_eq!(
        c.host("10.0.0.201").map(|h| h.name.as_str()),
        Some("master-01")
    );
    assert_eq!(
        c.host("10.0.0.212").map(|h| h.name.as_str()),
        Some("worker-02")
    );
    // Hosts without a name get the kubeasz default.
    assert_eq!(
        c.host("10.0.0.206").map(|h| h.name.as_str()),
        Some("k8s-10-0-0-206")
    );
    // Derived values follow the imported networks.
    assert_eq!(c.derived.api_service_ip.to_string(), "10.100.0.1");
    assert_eq!(c.derived.dns_service_ip.to_string(), "10.100.0.2");
    assert_eq!(c.settings.text("bin_dir"), "/usr/local/bin");
    assert_eq!(
        c.settings.list("MASTER_CERT_HOSTS"),
        ["10.0.0.88", "api.mystical.org"]
    );
    assert_eq!(c.settings.get("dns_install"), Some(&Value::Bool(false)));
    assert_eq!(
        c.derived.etcd_initial_cluster,
        "etcd-10.0.0.206=https://10.0.0.206:2380,etcd-10.0.0.207=https://10.0.0.207:2380,etcd-10.0.0.208=https://10.0.0.208:2380"
    );
    assert_eq!(c.derived.api_endpoint, "https://10.0.0.201:6443");

    // What could not be carried over is reported, each with its line.
    let notes = imported.notes.join("\n");
    for dropped in [
        "base_dir",
        "cluster_dir",
        "ansible_python_interpreter",
        "INSTALL_SOURCE",
        "DOCKER_STORAGE_DIR",
        "CONTEXT_NAME",
        "dashboard_install",
    ] {
        assert!(notes.contains(dropped), "no note about {dropped}:\n{notes}");
    }
    assert!(notes.contains("config.yml line 14"), "{notes}");
}

#[test]
fn example_cluster_is_valid_and_documents_every_setting() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clusters/example");
    let c = Cluster::load(&example).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.hosts.len(), 4);
    let text = example_config();
    for s in ez_inventory::SETTINGS {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{}:", s.key))),
            "clusters/example/config.yml does not document {}",
            s.key
        );
    }
    // And its values are the defaults, so a fresh `ezctl new` behaves like no config at all.
    let defaults = ez_inventory::settings::defaults();
    for (k, v) in c.settings.iter() {
        assert_eq!(
            Some(v),
            defaults.get(k),
            "example value of {k} differs from the default"
        );
    }
}
