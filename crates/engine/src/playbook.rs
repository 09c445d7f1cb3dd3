//! Playbooks: `playbooks/NN-name.yml`, a list of plays saying which role runs
//! on which hosts and what it waits for.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::LoadError;
use crate::yaml;

/// `needs: [{ role: etcd, on: etcd }]`: every unit of `role` on the hosts of
/// the pattern `on` must be done first.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Need {
    pub role: String,
    pub on: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Play {
    pub role: String,
    /// Host pattern, see [`crate::Targets::select`].
    pub hosts: String,
    /// Roles that must be done on the same host first.
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub needs: Vec<Need>,
    /// Rolling: at most N hosts of this play at once, in inventory order.
    pub serial: Option<usize>,
    /// Tags added to every task of this play's role.
    #[serde(default)]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Playbook {
    /// File name without `.yml`, e.g. `02-etcd`.
    pub name: String,
    pub path: PathBuf,
    pub plays: Vec<Play>,
}

impl Playbook {
    pub fn load(path: &Path) -> Result<Playbook, LoadError> {
        let v = yaml::load_file(path)?;
        let plays: Vec<Play> = serde_json::from_value(v).map_err(|e| LoadError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "expected a list of plays {{ role, hosts, after, needs, serial, tags }}: {e}"
            ),
        })?;
        for (i, p) in plays.iter().enumerate() {
            if p.serial == Some(0) {
                return Err(LoadError::Invalid {
                    path: path.to_path_buf(),
                    message: format!("play #{} ({}): serial must be at least 1", i + 1, p.role),
                });
            }
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Playbook {
            name,
            path: path.to_path_buf(),
            plays,
        })
    }

    /// Build one in code (the CLI's ad-hoc `ezctl run ROLE`, tests).
    pub fn from_plays(name: impl Into<String>, plays: Vec<Play>) -> Playbook {
        Playbook {
            name: name.into(),
            path: PathBuf::new(),
            plays,
        }
    }
}

impl Play {
    pub fn new(role: impl Into<String>, hosts: impl Into<String>) -> Play {
        Play {
            role: role.into(),
            hosts: hosts.into(),
            after: Vec::new(),
            needs: Vec::new(),
            serial: None,
            tags: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_plays_and_rejects_unknown_keys() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("04-kube-master.yml");
        std::fs::write(
            &p,
            "- role: kube-master\n  hosts: kube_master\n  after: [prepare]\n  needs: [{ role: etcd, on: etcd }]\n  serial: 1\n",
        )
        .unwrap();
        let pb = Playbook::load(&p).unwrap();
        assert_eq!(pb.name, "04-kube-master");
        assert_eq!(
            pb.plays[0].needs[0],
            Need {
                role: "etcd".into(),
                on: "etcd".into()
            }
        );
        std::fs::write(&p, "- role: x\n  hosts: all\n  befor: [y]\n").unwrap();
        let e = Playbook::load(&p).unwrap_err().to_string();
        assert!(e.contains("befor"), "{e}");
    }
}
