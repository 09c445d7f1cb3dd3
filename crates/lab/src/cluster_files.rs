//! The ready-to-use cluster folder `HOME/clusters/<lab>/` that `up` writes
//! for ezctl: hosts.yml, config.yml, ssh/id_ed25519(.pub), known_hosts.
//! A marker file `.ezlab` makes it ours: `up` never overwrites a folder
//! without it and `down` only deletes a folder with it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{LabError, Result};
use crate::fsutil;
use crate::layout::Role;
use crate::net;
use crate::state::LabState;

pub const MARKER: &str = ".ezlab";

pub fn cluster_dir(home: &Path, lab: &str) -> PathBuf {
    home.join("clusters").join(lab)
}

/// True when `dir` was written by ezlab for `lab`.
pub fn is_ours(dir: &Path, lab: &str) -> bool {
    std::fs::read_to_string(dir.join(MARKER)).is_ok_and(|t| t.trim() == lab)
}

/// Writes the cluster folder. `key`/`key_pub` are the lab's ssh key files.
pub fn write(
    dir: &Path,
    state: &LabState,
    key: &Path,
    key_pub: &Path,
    known_hosts: &str,
) -> Result<()> {
    if dir.exists() && !is_ours(dir, &state.name) {
        return Err(LabError::ForeignClusterDir {
            dir: dir.to_path_buf(),
        });
    }
    fsutil::mkdir_mode(dir, 0o755)?;
    fsutil::write_file(
        &dir.join(MARKER),
        format!("{}\n", state.name).as_bytes(),
        0o644,
    )?;
    fsutil::mkdir_mode(&dir.join("ssh"), 0o700)?;
    let private = std::fs::read(key).map_err(|e| LabError::io(key, e))?;
    fsutil::write_file(&dir.join("ssh/id_ed25519"), &private, 0o600)?;
    let public = std::fs::read(key_pub).map_err(|e| LabError::io(key_pub, e))?;
    fsutil::write_file(&dir.join("ssh/id_ed25519.pub"), &public, 0o644)?;
    fsutil::write_file(&dir.join("known_hosts"), known_hosts.as_bytes(), 0o644)?;
    fsutil::write_file(&dir.join("hosts.yml"), hosts_yml(state).as_bytes(), 0o644)?;
    fsutil::write_file(&dir.join("config.yml"), config_yml(state).as_bytes(), 0o644)
}

/// hosts.yml in the format of docs/architecture.md.
pub fn hosts_yml(state: &LabState) -> String {
    let mut y = format!(
        "# Written by `ezlab up` for lab {} ({}); rewritten by every `up`, deleted by `ezlab down`.\n",
        state.name,
        state.cidr()
    );
    y.push_str("ssh:\n  user: root\n  port: 22\n  key: ssh/id_ed25519\n");
    let with = |role: Role| -> Vec<&crate::state::MachineState> {
        state
            .machines
            .iter()
            .filter(|m| m.roles.contains(&role))
            .collect()
    };
    for (group, role) in [
        ("etcd", Role::Etcd),
        ("kube_master", Role::KubeMaster),
        ("kube_node", Role::KubeNode),
    ] {
        let ms = with(role);
        if ms.is_empty() {
            let _ = writeln!(y, "{group}: []");
            continue;
        }
        let _ = writeln!(y, "{group}:");
        for m in ms {
            let _ = writeln!(y, "  - {}    # {}", m.ip, m.hostname);
        }
    }
    let lbs: Vec<(String, &str)> = state
        .machines
        .iter()
        .filter_map(|m| {
            if m.roles.contains(&Role::ExLbMaster) {
                Some((m.ip.to_string(), "master"))
            } else if m.roles.contains(&Role::ExLbBackup) {
                Some((m.ip.to_string(), "backup"))
            } else {
                None
            }
        })
        .collect();
    if lbs.is_empty() {
        y.push_str("ex_lb: []\n");
    } else {
        y.push_str("ex_lb:\n");
        for (ip, role) in lbs {
            let _ = writeln!(y, "  - {{ ip: {ip}, lb_role: {role} }}");
        }
    }
    let harbor = with(Role::Harbor);
    if harbor.is_empty() {
        y.push_str("harbor: []\n");
    } else {
        y.push_str("harbor:\n");
        for m in harbor {
            let _ = writeln!(y, "  - {{ ip: {} }}", m.ip);
        }
    }
    y.push_str("chrony: []\n");
    y
}

/// Only what must differ from the defaults on lab machines.
pub fn config_yml(state: &LabState) -> String {
    let has_lb = state
        .machines
        .iter()
        .any(|m| m.roles.contains(&Role::ExLbMaster));
    let mut y = String::from(
        "# Written by `ezlab up`: only settings that must differ from the defaults on lab machines.\n",
    );
    let has_registry = state
        .machines
        .iter()
        .any(|m| m.roles.contains(&Role::Harbor));
    if has_lb {
        let _ = writeln!(
            y,
            "# The ex-lb virtual IP must be inside the lab's own range ({}).\nEX_APISERVER_VIP: \"{}\"",
            net::cidr(state.subnet),
            net::vip(state.subnet)
        );
    }
    if has_lb && has_registry {
        // The registry shares a machine with an ex-lb; both default to 8443.
        y.push_str("HARBOR_TLS_PORT: 5443\n");
    }
    if crate::cgroup::host_is_v1() {
        y.push_str(
            "# The machines share this VM's cgroup v1 controllers (its v2 tree has no cpu or\n\
             # memory controller): the kubelet must be allowed to run on cgroup v1.\n\
             KUBELET_ALLOW_CGROUP_V1: true\n",
        );
    }
    // Every machine's disk is the VM's, shared with the others and with the
    // controller: a kubelet judging it full would evict and taint the node.
    y.push_str(
        "# The disk is the VM's, shared by every machine: kubelets neither evict for it\n\
         # nor remove images (kind's settings for nodes in containers).\n\
         KUBELET_EVICTION_HARD: \"memory.available<100Mi,nodefs.available<0%,nodefs.inodesFree<0%,imagefs.available<0%\"\n\
         KUBELET_IMAGE_GC_HIGH_PERCENT: 100\n",
    );
    // The conntrack table is the VM's: a kube-proxy in a machine cannot size it.
    y.push_str(
        "# The conntrack table is the VM's, not the machine's: kube-proxy leaves it alone.\n\
         KUBE_PROXY_CONNTRACK_MAX_PER_CORE: 0\n",
    );
    if !crate::doctor::can_lower_oom_score() {
        y.push_str(
            "# No process on this VM may lower its OOM score (CAP_SYS_RESOURCE is not in\n\
             # its bounding set): pods must not ask for a negative one.\n\
             CONTAINERD_RESTRICT_OOM_SCORE_ADJ: true\n",
        );
    }
    if y.lines().all(|l| l.starts_with('#')) {
        y.push_str("{}\n");
    }
    y
}

/// Deletes the folder when it is ours; a folder someone else wrote stays.
pub fn remove(dir: &Path, lab: &str) -> Result<()> {
    if dir.exists() && is_ours(dir, lab) {
        std::fs::remove_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout;
    use crate::state::MachineState;

    fn lab(n: usize) -> LabState {
        LabState {
            name: "demo".into(),
            subnet: 4,
            bridge: net::BRIDGE.into(),
            controller_ip: net::controller_ip(4),
            rootfs: "/r".into(),
            cluster_dir: None,
            complete: true,
            created: 0,
            machines: layout::default_roles(n)
                .into_iter()
                .enumerate()
                .map(|(i, roles)| MachineState {
                    index: i,
                    hostname: format!("demo-{}", i + 1),
                    ip: net::machine_ip(4, i),
                    netns: net::netns_name("demo", i),
                    veth: net::veth_name(4, i),
                    dir: "/m".into(),
                    log: "/l".into(),
                    roles,
                    launcher_pid: None,
                })
                .collect(),
            light: None,
        }
    }

    #[test]
    fn hosts_yml_for_seven_has_every_group() {
        let y = hosts_yml(&lab(7));
        assert!(
            y.contains(
                "etcd:\n  - 10.231.4.11    # demo-1\n  - 10.231.4.12    # demo-2\n  - 10.231.4.13"
            ),
            "{y}"
        );
        assert!(
            y.contains("kube_master:\n  - 10.231.4.14    # demo-4\n  - 10.231.4.15    # demo-5\n"),
            "{y}"
        );
        assert!(y.contains("  - { ip: 10.231.4.16, lb_role: master }\n  - { ip: 10.231.4.17, lb_role: backup }\n"), "{y}");
        assert!(y.contains("harbor:\n  - { ip: 10.231.4.17 }\n"), "{y}");
        assert!(y.contains("key: ssh/id_ed25519"));
        assert!(config_yml(&lab(7)).contains("EX_APISERVER_VIP: \"10.231.4.250\""));
    }

    #[test]
    fn all_in_one_has_empty_extras_and_empty_config() {
        let y = hosts_yml(&lab(1));
        assert!(y.contains("kube_node:\n  - 10.231.4.11"), "{y}");
        assert!(y.contains("ex_lb: []\nharbor: []\nchrony: []\n"), "{y}");
        let one = config_yml(&lab(1));
        if crate::cgroup::host_is_v1() {
            assert!(one.contains("\nKUBELET_ALLOW_CGROUP_V1: true\n"), "{one}");
        } else {
            assert!(one.ends_with("{}\n"), "{one}");
        }
    }

    #[test]
    fn write_refuses_foreign_folder_and_sets_key_mode() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("k");
        let key_pub = d.path().join("k.pub");
        std::fs::write(&key, "PRIVATE").unwrap();
        std::fs::write(&key_pub, "ssh-ed25519 AAAA").unwrap();
        let dir = cluster_dir(d.path(), "demo");
        write(&dir, &lab(2), &key, &key_pub, "kh\n").unwrap();
        assert_eq!(
            std::fs::metadata(dir.join("ssh/id_ed25519"))
                .unwrap()
                .mode()
                & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("known_hosts")).unwrap(),
            "kh\n"
        );
        // ours: rewriting works, removing works
        write(&dir, &lab(2), &key, &key_pub, "kh2\n").unwrap();
        remove(&dir, "demo").unwrap();
        assert!(!dir.exists());
        // someone else's folder is left alone
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hosts.yml"), "mine").unwrap();
        assert!(matches!(
            write(&dir, &lab(2), &key, &key_pub, ""),
            Err(LabError::ForeignClusterDir { .. })
        ));
        remove(&dir, "demo").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("hosts.yml")).unwrap(),
            "mine"
        );
    }

    #[test]
    fn written_cluster_loads_in_ez_inventory_for_every_size() {
        use ez_inventory::{Cluster, Group};
        let d = tempfile::tempdir().unwrap();
        let key = d.path().join("k");
        let key_pub = d.path().join("k.pub");
        std::fs::write(&key, "PRIVATE").unwrap();
        std::fs::write(&key_pub, "ssh-ed25519 AAAA").unwrap();
        for n in 1..=12 {
            let dir = cluster_dir(d.path(), "demo");
            write(&dir, &lab(n), &key, &key_pub, "").unwrap();
            let c = Cluster::load(&dir).unwrap_or_else(|e| panic!("n={n}: {e}"));
            let expect = layout::default_roles(n);
            let count = |r: Role| expect.iter().filter(|m| m.contains(&r)).count();
            assert_eq!(c.group(Group::Etcd).count(), count(Role::Etcd), "n={n}");
            assert_eq!(
                c.group(Group::KubeMaster).count(),
                count(Role::KubeMaster),
                "n={n}"
            );
            assert_eq!(
                c.group(Group::KubeNode).count(),
                count(Role::KubeNode),
                "n={n}"
            );
            assert_eq!(
                c.group(Group::ExLb).count(),
                if n >= 7 { 2 } else { 0 },
                "n={n}"
            );
        }
    }
}
