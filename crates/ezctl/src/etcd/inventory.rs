//! `hosts.yml` with an edit applied, loaded and validated like the real
//! one but without writing it: add-etcd and del-etcd work from this
//! cluster and commit the text only after the hosts are done, so a failure
//! leaves the file byte-identical.

use std::path::{Path, PathBuf};

use ez_inventory::{Cluster, LoadError, CONFIG_FILE, HOSTS_FILE};

/// Why the edited inventory cannot be used.
#[derive(Debug)]
pub enum EditedError {
    /// Scratch files could not be written or read.
    Io(std::io::Error),
    /// The edited inventory does not validate; messages name the real files.
    Invalid(ez_inventory::Diagnostics),
}

impl std::fmt::Display for EditedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EditedError::Io(e) => write!(f, "checking the edited inventory: {e}"),
            EditedError::Invalid(d) => write!(f, "{d}"),
        }
    }
}

impl std::error::Error for EditedError {}

/// A scratch folder removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Load `cluster` as it would be with `hosts_text` as its `hosts.yml`.
///
/// The text is written with a copy of `config.yml` into a scratch folder
/// named like the cluster (the name is part of the cluster), loaded there,
/// and every path that came out relative to that folder (SSH keys, file
/// names in messages) is pointed back at the real folder.
pub fn load_with_hosts(cluster: &Cluster, hosts_text: &str) -> Result<Cluster, EditedError> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let root = std::env::temp_dir().join(format!("ezctl-inventory-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&root).map_err(EditedError::Io)?;
    let scratch = Scratch(root);
    let dir = scratch.0.join(&cluster.name);
    std::fs::create_dir(&dir).map_err(EditedError::Io)?;
    std::fs::write(dir.join(HOSTS_FILE), hosts_text).map_err(EditedError::Io)?;
    let config = cluster.dir.join(CONFIG_FILE);
    if config.exists() {
        std::fs::copy(&config, dir.join(CONFIG_FILE)).map_err(EditedError::Io)?;
    }
    let rebase = |p: &Path| -> PathBuf {
        match p.strip_prefix(&dir) {
            Ok(rest) => cluster.dir.join(rest),
            Err(_) => p.to_path_buf(),
        }
    };
    match Cluster::load(&dir) {
        Ok(mut edited) => {
            for h in &mut edited.hosts {
                if let Some(k) = &h.ssh.key {
                    h.ssh.key = Some(rebase(k));
                }
            }
            edited.dir = cluster.dir.clone();
            edited.name = cluster.name.clone();
            Ok(edited)
        }
        Err(LoadError::Invalid(mut d)) => {
            for diag in &mut d.0 {
                diag.file = rebase(&diag.file);
            }
            Err(EditedError::Invalid(d))
        }
        Err(LoadError::Io { source, .. }) => Err(EditedError::Io(source)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ez_inventory::edit::{add_host, remove_host};
    use ez_inventory::render::HostLine;
    use ez_inventory::Group;

    const HOSTS: &str = "# lab\nssh:\n  user: root\n  key: ssh/id_ed25519\netcd:\n  - 10.9.0.11\n  - 10.9.0.12\n  - 10.9.0.13\nkube_master:\n  - 10.9.0.14\nkube_node:\n  - 10.9.0.15\n";

    fn cluster() -> (tempfile::TempDir, Cluster) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("prod-1");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join(HOSTS_FILE), HOSTS).unwrap();
        std::fs::write(dir.join(CONFIG_FILE), "ETCD_DATA_DIR: /data/etcd\n").unwrap();
        let c = Cluster::load(&dir).unwrap();
        (tmp, c)
    }

    #[test]
    fn an_added_member_loads_with_the_real_paths() {
        let (_tmp, c) = cluster();
        let mut text = HOSTS.to_string();
        for ip in ["10.9.0.16", "10.9.0.17"] {
            let line = HostLine {
                ip: ip.into(),
                ..HostLine::default()
            };
            text = add_host(&text, Group::Etcd, &line).unwrap();
        }
        let edited = load_with_hosts(&c, &text).unwrap();
        assert_eq!(edited.name, "prod-1");
        assert_eq!(edited.dir, c.dir);
        assert_eq!(edited.group(Group::Etcd).count(), 5);
        assert!(edited.derived.etcd_initial_cluster.ends_with(
            ",etcd-10.9.0.16=https://10.9.0.16:2380,etcd-10.9.0.17=https://10.9.0.17:2380"
        ));
        assert_eq!(
            edited.settings.text("ETCD_DATA_DIR"),
            "/data/etcd",
            "config.yml came along"
        );
        let key = edited.host("10.9.0.16").unwrap().ssh.key.clone().unwrap();
        assert_eq!(key, c.dir.join("ssh/id_ed25519"));
        // The real file was not touched.
        assert_eq!(
            std::fs::read_to_string(c.dir.join(HOSTS_FILE)).unwrap(),
            HOSTS
        );
    }

    #[test]
    fn a_removed_member_leaves_the_others() {
        let (_tmp, c) = cluster();
        let text = remove_host(HOSTS, Group::Etcd, "10.9.0.11").unwrap();
        let text = remove_host(&text, Group::Etcd, "10.9.0.12").unwrap();
        let edited = load_with_hosts(&c, &text).unwrap();
        assert_eq!(edited.derived.etcd_endpoints, "https://10.9.0.13:2379");
        assert!(
            edited.host("10.9.0.11").is_none(),
            "an etcd-only host leaves the inventory"
        );
    }

    #[test]
    fn an_even_member_count_is_refused_by_the_inventory() {
        let (_tmp, c) = cluster();
        let text = remove_host(HOSTS, Group::Etcd, "10.9.0.11").unwrap();
        match load_with_hosts(&c, &text) {
            Err(EditedError::Invalid(d)) => assert!(d.to_string().contains("even"), "{d}"),
            other => panic!("expected diagnostics, got {other:?}"),
        }
    }

    #[test]
    fn problems_name_the_real_file() {
        let (_tmp, c) = cluster();
        let bad = format!("{HOSTS}  - not-an-ip\n");
        match load_with_hosts(&c, &bad) {
            Err(EditedError::Invalid(d)) => {
                let text = d.to_string();
                assert!(
                    text.contains(&c.dir.join(HOSTS_FILE).display().to_string()),
                    "{text}"
                );
                assert!(!text.contains("ezctl-inventory-"), "{text}");
            }
            other => panic!("expected diagnostics, got {other:?}"),
        }
    }
}
