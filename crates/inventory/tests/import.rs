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

/// Every line of a kubeasz `hosts` file either reaches the new files or is
/// named (by its line number) under "not carried over": no host line is
/// dropped, merged or renamed silently. Hosts are read back from the
/// written `hosts.yml` with the YAML parser.
#[test]
fn every_source_line_reaches_the_files_or_is_reported() {
    let source = "\
[etcd]
10.0.0.1
10.0.0.2 k8s_nodename='e2'
10.0.0.3
10.0.0.1

[kube_master]
10.0.0.1 k8s_nodename='m1'
10.0.0.1 k8s_nodename='other'

[kube_node]
10.0.0.4 k8s_nodename='w1' ansible_port=2222
10.0.0.5

[ex_lb]
10.0.0.6 LB_ROLE=backup EX_APISERVER_VIP=10.0.0.250 EX_APISERVER_PORT=8443
10.0.0.7 LB_ROLE=master EX_APISERVER_VIP=10.0.0.251 EX_APISERVER_PORT=8443

[harbor]
10.0.0.8 NEW_INSTALL=true

[chrony]
10.0.0.9

[calico_rr]
10.0.0.10

[kube_cluster:children]
kube_master
kube_node

[kube_node:vars]
foo=bar

[all:vars]
SECURE_PORT=\"6443\"
base_dir=\"/etc/kubeasz\"
UNKNOWN_THING=1
";
    let imported = import(source, None).expect("import");
    let hosts_yml = render_hosts(&imported.hosts);
    let written = ez_inventory::yaml::parse(&hosts_yml)
        .expect("hosts.yml parses")
        .expect("a document");
    // (group, ip, name) of every written entry.
    let mut entries = Vec::new();
    let ez_inventory::yaml::Kind::Map(groups) = &written.kind else {
        panic!("{hosts_yml}")
    };
    for (g, list) in groups {
        let ez_inventory::yaml::Kind::Seq(items) = &list.kind else {
            continue;
        };
        for item in items {
            let field = |k: &str| match &item.kind {
                ez_inventory::yaml::Kind::Map(pairs) => pairs
                    .iter()
                    .find(|(key, _)| key.as_str() == Some(k))
                    .and_then(|(_, v)| v.as_str().map(str::to_string)),
                _ if k == "ip" => item.as_str().map(str::to_string),
                _ => None,
            };
            entries.push((
                g.as_str().unwrap_or_default().to_string(),
                field("ip").expect("ip"),
                field("name"),
            ));
        }
    }
    let notes = imported.notes.join("\n");
    let noted = |n: usize| {
        imported
            .notes
            .iter()
            .any(|x| x.starts_with(&format!("hosts line {n}:")))
    };
    let mut section = String::new();
    let mut checked = 0;
    for (i, raw) in source.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[') {
            section = s.trim_end_matches(']').to_string();
            continue;
        }
        checked += 1;
        let reached = if section.ends_with(":vars") {
            let key = line.split('=').next().unwrap_or_default();
            section == "all:vars" && imported.config.iter().any(|(k, _)| *k == key)
        } else if section.contains(':') {
            false
        } else {
            let ip = line.split_whitespace().next().unwrap_or_default();
            let name = line
                .split_whitespace()
                .find_map(|t| t.strip_prefix("k8s_nodename="))
                .map(|v| v.trim_matches('\'').to_string());
            entries
                .iter()
                .any(|(g, i, nm)| *g == section && i == ip && (name.is_none() || *nm == name))
        };
        assert!(
            reached || noted(n),
            "hosts line {n} `{line}` neither reached the files nor was reported:\n{notes}\n---\n{hosts_yml}"
        );
    }
    assert!(checked >= 19, "{checked} lines checked");
    // The ones that must be reported: the two duplicates (one with another
    // name), the unknown group, the children, the group variables, the
    // second VIP, a dropped host variable.
    for n in [5, 9, 12, 17, 26, 29, 30, 33, 37, 38] {
        assert!(noted(n), "line {n} not reported:\n{notes}");
    }
    assert!(notes.contains("hosts line 9: 10.0.0.1 is already listed in [kube_master] on line 8; this line was dropped with its different settings"), "{notes}");
    // Nothing written twice.
    let mut seen = std::collections::BTreeSet::new();
    for (g, ip, _) in &entries {
        assert!(
            seen.insert((g.clone(), ip.clone())),
            "{g} {ip} written twice"
        );
    }
}
