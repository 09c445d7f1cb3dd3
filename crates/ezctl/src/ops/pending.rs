//! Transactional inventory edits for add-* and del-*.
//!
//! The new `hosts.yml` text is computed first and loaded as a [`Cluster`]
//! from a private copy, so a bad IP, a clashing name or a port conflict is
//! reported before any host is touched. The command works against that
//! cluster and calls [`Staged::commit`] only when the work succeeded: a
//! failed add leaves the file byte-identical, and running the same command
//! again continues from where the hosts are.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ez_inventory::edit::{self, EditError};
use ez_inventory::render::HostLine;
use ez_inventory::{Cluster, Group, LoadError, CONFIG_FILE, HOSTS_FILE};

use crate::exit::{ExitCode, Failure};

/// One change to `hosts.yml`.
#[derive(Debug, Clone)]
pub enum Edit {
    Add(Group, HostLine),
    Remove(Group, String),
}

impl Edit {
    fn apply(&self, text: &str) -> Result<String, EditError> {
        match self {
            Edit::Add(g, line) => edit::add_host(text, *g, line),
            Edit::Remove(g, ip) => edit::remove_host(text, *g, ip),
        }
    }
}

/// The inventory as it will be once the work succeeds.
pub struct Staged {
    pub hosts_path: PathBuf,
    before: String,
    after: String,
    /// Loaded from the new text; `dir` and key paths point at the real
    /// cluster folder.
    pub cluster: Cluster,
}

impl Staged {
    /// Apply `edits` to the cluster's `hosts.yml` in memory and validate
    /// the result. `what` names the change in messages (`adding 10.0.0.9`).
    pub fn new(cluster_dir: &Path, edits: &[Edit], what: &str) -> Result<Staged> {
        let hosts_path = cluster_dir.join(HOSTS_FILE);
        let before = std::fs::read_to_string(&hosts_path)
            .with_context(|| format!("reading {}", hosts_path.display()))?;
        let mut after = before.clone();
        for e in edits {
            after = e.apply(&after).map_err(|e| {
                Failure::new(
                    ExitCode::Input,
                    format!("{what}: {e}\nhosts.yml is unchanged; nothing was done on any host"),
                )
            })?;
        }
        let cluster = load_copy(cluster_dir, &after, what)?;
        Ok(Staged {
            hosts_path,
            before,
            after,
            cluster,
        })
    }

    pub fn changes_anything(&self) -> bool {
        self.before != self.after
    }

    /// Write the new text (atomically), unless someone changed the file
    /// since it was read: then nothing is overwritten and the intended text
    /// is left next to it.
    pub fn commit(&self) -> Result<()> {
        if !self.changes_anything() {
            return Ok(());
        }
        let now = std::fs::read_to_string(&self.hosts_path)
            .with_context(|| format!("reading {}", self.hosts_path.display()))?;
        if now != self.before {
            let aside = self.hosts_path.with_extension("yml.ezctl-new");
            std::fs::write(&aside, &self.after)
                .with_context(|| format!("writing {}", aside.display()))?;
            bail!(Failure::new(
                ExitCode::Failed,
                format!(
                    "{} was edited while this command ran; it was not overwritten.\n  the inventory this command meant to write is in {}",
                    self.hosts_path.display(),
                    aside.display()
                )
            ));
        }
        edit::commit(&self.hosts_path, &self.after)
            .with_context(|| format!("writing {}", self.hosts_path.display()))
    }
}

/// Load `hosts_text` (with the cluster's config.yml) as a cluster, from a
/// private temporary copy named like the cluster.
fn load_copy(cluster_dir: &Path, hosts_text: &str, what: &str) -> Result<Cluster> {
    let name = cluster_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "cluster".into());
    let scratch = Scratch::new()?;
    let copy = scratch.0.join(&name);
    std::fs::create_dir_all(&copy).with_context(|| format!("creating {}", copy.display()))?;
    std::fs::write(copy.join(HOSTS_FILE), hosts_text)?;
    let config = cluster_dir.join(CONFIG_FILE);
    if config.exists() {
        std::fs::copy(&config, copy.join(CONFIG_FILE))
            .with_context(|| format!("copying {}", config.display()))?;
    }
    match Cluster::load(&copy) {
        Ok(mut c) => {
            c.dir = cluster_dir.to_path_buf();
            for h in &mut c.hosts {
                if let Some(k) = &h.ssh.key {
                    if let Ok(rel) = k.strip_prefix(&copy) {
                        h.ssh.key = Some(cluster_dir.join(rel));
                    }
                }
            }
            Ok(c)
        }
        Err(LoadError::Invalid(mut d)) => {
            for diag in &mut d.0 {
                if let Ok(rel) = diag.file.strip_prefix(&copy) {
                    diag.file = PathBuf::from(format!(
                        "{} (as it would be)",
                        cluster_dir.join(rel).display()
                    ));
                }
            }
            bail!(Failure::new(
                ExitCode::Input,
                format!("{what} would make the inventory invalid:\n{d}\nhosts.yml is unchanged; nothing was done on any host")
            ))
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("{what}: loading the new inventory"))),
    }
}

/// A private temporary directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Result<Scratch> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("ezctl-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "# lab\nssh:\n  user: root\n  key: ssh/id_ed25519\netcd:\n  - 10.0.0.1\nkube_master:\n  - 10.0.0.1\nkube_node:\n  - 10.0.0.2   # worker\n";

    fn cluster_dir() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("c1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(HOSTS_FILE), HOSTS).unwrap();
        (t, dir)
    }

    fn node(ip: &str, name: Option<&str>) -> Edit {
        Edit::Add(
            Group::KubeNode,
            HostLine {
                ip: ip.into(),
                name: name.map(Into::into),
                ..HostLine::default()
            },
        )
    }

    #[test]
    fn staged_cluster_points_at_the_real_folder() {
        let (_t, dir) = cluster_dir();
        let s = Staged::new(&dir, &[node("10.0.0.3", Some("w3"))], "adding 10.0.0.3").unwrap();
        assert_eq!(s.cluster.dir, dir);
        assert_eq!(s.cluster.name, "c1");
        assert!(s.cluster.host("w3").is_some());
        for h in &s.cluster.hosts {
            assert_eq!(
                h.ssh.key.as_deref(),
                Some(dir.join("ssh/id_ed25519").as_path())
            );
        }
        // Not written until commit.
        assert_eq!(
            std::fs::read_to_string(dir.join(HOSTS_FILE)).unwrap(),
            HOSTS
        );
        s.commit().unwrap();
        let now = std::fs::read_to_string(dir.join(HOSTS_FILE)).unwrap();
        assert!(
            now.contains("10.0.0.2   # worker\n  - { ip: 10.0.0.3, name: w3 }\n"),
            "{now}"
        );
    }

    #[test]
    fn an_invalid_result_is_refused_and_the_file_kept() {
        let (_t, dir) = cluster_dir();
        // Node name clash: reported against the would-be file, exit 3.
        let e = Staged::new(
            &dir,
            &[node("10.0.0.3", Some("k8s-10-0-0-2"))],
            "adding 10.0.0.3",
        )
        .err()
        .unwrap();
        let f = e.downcast_ref::<Failure>().unwrap();
        assert_eq!(f.code, ExitCode::Input);
        assert!(
            f.message.contains("already used by 10.0.0.2"),
            "{}",
            f.message
        );
        assert!(f.message.contains("(as it would be)"), "{}", f.message);
        assert!(
            f.message.contains("hosts.yml is unchanged"),
            "{}",
            f.message
        );
        assert!(
            !f.message.contains("ezctl-"),
            "temp path leaked: {}",
            f.message
        );
        assert_eq!(
            std::fs::read_to_string(dir.join(HOSTS_FILE)).unwrap(),
            HOSTS
        );
        let e = Staged::new(
            &dir,
            &[Edit::Remove(Group::KubeNode, "10.0.0.9".into())],
            "removing",
        )
        .err()
        .unwrap();
        assert!(e.to_string().contains("not listed in kube_node"), "{e}");
    }

    #[test]
    fn commit_refuses_to_clobber_a_concurrent_edit() {
        let (_t, dir) = cluster_dir();
        let s = Staged::new(&dir, &[node("10.0.0.3", None)], "adding").unwrap();
        let edited = format!("{HOSTS}# edited by hand\n");
        std::fs::write(dir.join(HOSTS_FILE), &edited).unwrap();
        let e = s.commit().unwrap_err();
        assert!(e.to_string().contains("was edited while"), "{e}");
        assert_eq!(
            std::fs::read_to_string(dir.join(HOSTS_FILE)).unwrap(),
            edited
        );
        let aside = std::fs::read_to_string(dir.join("hosts.yml.ezctl-new")).unwrap();
        assert!(aside.contains("10.0.0.3"));
    }
}
