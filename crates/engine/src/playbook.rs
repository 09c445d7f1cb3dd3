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
    /// The role, as `NAME` (its `tasks.yml`) or `NAME:ENTRY` (its
    /// `tasks/ENTRY.yml`, like Ansible's `tasks_from`). A play may say the
    /// entry with `tasks:` instead; [`Play::unit_role`] is the one spelling.
    pub role: String,
    /// The role's entry point: `tasks: stage` runs `roles/ROLE/tasks/stage.yml`.
    pub tasks: Option<String>,
    /// Play variables, over the hosts' variables and the role's defaults
    /// (as in Ansible). Literal values: the plan compares them to merge
    /// plays that list the same role on the same host.
    #[serde(default)]
    pub vars: serde_json::Map<String, serde_json::Value>,
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
    /// A condition on the cluster's globals (a tera expression, as a task's
    /// `when`), evaluated when the plan is built: a play whose condition is
    /// false adds no units (`when: CLUSTER_NETWORK == "calico"`).
    pub when: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Playbook {
    /// File name without `.yml`, e.g. `02-etcd`.
    pub name: String,
    pub path: PathBuf,
    pub plays: Vec<Play>,
}

/// Plays of a file, with `- import: NAME` entries replaced by the plays of
/// the sibling playbook `NAME.yml` (so `90-all.yml` lists the steps instead
/// of copying them).
fn load_plays(path: &Path, stack: &mut Vec<PathBuf>) -> Result<Vec<Play>, LoadError> {
    if stack.iter().any(|p| p == path) || stack.len() > 16 {
        let chain: Vec<String> = stack.iter().map(|p| p.display().to_string()).collect();
        return Err(LoadError::Invalid {
            path: path.to_path_buf(),
            message: format!("imports form a cycle: {}", chain.join(" -> ")),
        });
    }
    let items = match yaml::load_file(path)? {
        serde_json::Value::Array(items) => items,
        serde_json::Value::Null => Vec::new(),
        _ => {
            return Err(LoadError::Invalid {
                path: path.to_path_buf(),
                message: "expected a list of plays { role, tasks, vars, hosts, after, needs, serial, tags, when } or `- import: NAME`".into(),
            })
        }
    };
    stack.push(path.to_path_buf());
    let mut plays = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        if let Some(name) = item.get("import").and_then(|n| n.as_str()) {
            let sibling = path.with_file_name(format!("{name}.yml"));
            if !sibling.is_file() {
                return Err(LoadError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "entry #{}: imports `{name}`, but {} does not exist",
                        i + 1,
                        sibling.display()
                    ),
                });
            }
            plays.extend(load_plays(&sibling, stack)?);
            continue;
        }
        let play: Play = serde_json::from_value(item).map_err(|e| LoadError::Invalid {
            path: path.to_path_buf(),
            message: format!(
                "entry #{}: expected a play {{ role, tasks, vars, hosts, after, needs, serial, tags, when }} or `import: NAME`: {e}",
                i + 1
            ),
        })?;
        plays.push(play);
    }
    stack.pop();
    Ok(plays)
}

impl Playbook {
    pub fn load(path: &Path) -> Result<Playbook, LoadError> {
        let plays = load_plays(path, &mut Vec::new())?;
        for (i, p) in plays.iter().enumerate() {
            if p.tasks.is_some() && p.role.contains(':') {
                return Err(LoadError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "play #{} ({}): names its entry twice (`role: NAME:ENTRY` and `tasks:`); use one",
                        i + 1,
                        p.role
                    ),
                });
            }
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
            tasks: None,
            vars: serde_json::Map::new(),
            hosts: hosts.into(),
            after: Vec::new(),
            needs: Vec::new(),
            serial: None,
            tags: Vec::new(),
            when: None,
        }
    }
}

impl Play {
    /// The role and entry this play runs, as units and `after`/`needs` name
    /// it: `etcd-restore` or `etcd-restore:stage`.
    pub fn unit_role(&self) -> String {
        match &self.tasks {
            Some(entry) => format!("{}:{entry}", self.role),
            None => self.role.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_expand_in_order_and_cycles_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("01-a.yml"), "- role: a\n  hosts: all\n").unwrap();
        std::fs::write(
            dir.path().join("02-b.yml"),
            "- role: b\n  hosts: all\n  after: [a]\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("90-all.yml"),
            "- import: 01-a\n- import: 02-b\n",
        )
        .unwrap();
        let pb = Playbook::load(&dir.path().join("90-all.yml")).unwrap();
        let roles: Vec<&str> = pb.plays.iter().map(|p| p.role.as_str()).collect();
        assert_eq!(roles, ["a", "b"]);

        std::fs::write(dir.path().join("x.yml"), "- import: y\n").unwrap();
        std::fs::write(dir.path().join("y.yml"), "- import: x\n").unwrap();
        let err = Playbook::load(&dir.path().join("x.yml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cycle"), "{err}");
        std::fs::write(dir.path().join("z.yml"), "- import: nope\n").unwrap();
        let err = Playbook::load(&dir.path().join("z.yml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("does not exist"), "{err}");
    }

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

    #[test]
    fn an_entry_is_named_by_tasks_or_after_a_colon_but_not_both() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("21-x.yml");
        std::fs::write(
            &p,
            "- role: r\n  tasks: stage\n  hosts: all\n  vars: { a: 1, b: [x] }\n- role: r:start\n  hosts: all\n",
        )
        .unwrap();
        let pb = Playbook::load(&p).unwrap();
        assert_eq!(pb.plays[0].unit_role(), "r:stage");
        assert_eq!(pb.plays[0].vars["a"], 1);
        assert_eq!(pb.plays[1].unit_role(), "r:start");
        std::fs::write(&p, "- role: r:start\n  tasks: stage\n  hosts: all\n").unwrap();
        let e = Playbook::load(&p).unwrap_err().to_string();
        assert!(e.contains("names its entry twice"), "{e}");
    }
}
