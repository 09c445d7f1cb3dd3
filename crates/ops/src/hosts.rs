//! Inventory commits and pseudo-groups shared by the day-2 procedures:
//! write a staged `hosts.yml` edit once the work succeeded, and mark the
//! hosts a playbook should act on (`adding`, `removing`, ...).

use std::collections::BTreeSet;

use anyhow::{Context, Result};
use ez_engine::{TargetHost, Targets};
use ez_inventory::{CommitError, Transaction};
use serde_json::{Map, Value};

use crate::exit::{ExitCode, Failure};

/// Write a staged `hosts.yml` edit once the work succeeded (see
/// [`ez_inventory::transaction`]). If the file changed while the command
/// ran, nothing is overwritten; the text the command meant to write is
/// left next to it, as `hosts.yml.ezctl-new`, because the hosts already
/// match it and the operator has to merge the two by hand.
pub fn commit_hosts(tx: Transaction) -> Result<()> {
    match tx.commit() {
        Ok(()) => Ok(()),
        Err(CommitError::Changed { path, intended }) => {
            let aside = path.with_extension("yml.ezctl-new");
            std::fs::write(&aside, intended)
                .with_context(|| format!("writing {}", aside.display()))?;
            Err(Failure::new(
                ExitCode::Failed,
                format!(
                    "{} was edited while this command ran; it was not overwritten.\n  the inventory this command meant to write is in {}",
                    path.display(),
                    aside.display()
                ),
            )
            .into())
        }
        Err(CommitError::Io { path, source }) => {
            Err(anyhow::Error::new(source).context(format!("writing {}", path.display())))
        }
    }
}

/// Put `hosts` (IPs) in the pseudo-group `group` (`adding`, `removing`,
/// `upgrading`, ...) that the day-2 playbooks target.
pub fn mark(targets: &mut Targets, group: &str, hosts: &[String]) {
    for h in &mut targets.hosts {
        if hosts.contains(&h.name) {
            h.groups.insert(group.to_string());
        }
    }
}

/// Set variables on one host of the targets.
pub fn set_vars(targets: &mut Targets, host: &str, vars: &Map<String, Value>) {
    if let Some(t) = targets.hosts.iter_mut().find(|t| t.name == host) {
        t.vars.extend(vars.clone());
    }
}

/// Add a host that is not (any more) in the inventory the targets were
/// built from, with its old variables, so a playbook can still reach it.
pub fn add_host(targets: &mut Targets, name: &str, groups: &[&str], vars: Map<String, Value>) {
    if targets.hosts.iter().any(|t| t.name == name) {
        return;
    }
    let mut t = TargetHost::new(name);
    t.groups = groups
        .iter()
        .map(|g| g.to_string())
        .collect::<BTreeSet<_>>();
    t.vars = vars;
    targets.hosts.push(t);
}

#[cfg(test)]
mod tests {
    use super::*;
    use ez_inventory::render::HostLine;
    use ez_inventory::{Edit, Group, HOSTS_FILE};
    use serde_json::json;

    #[test]
    fn a_concurrent_edit_is_kept_and_the_intended_text_left_aside() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("c1");
        std::fs::create_dir_all(&dir).unwrap();
        let hosts = "etcd:\n  - 10.0.0.1\nkube_master:\n  - 10.0.0.1\nkube_node:\n  - 10.0.0.2\n";
        std::fs::write(dir.join(HOSTS_FILE), hosts).unwrap();
        let add = Edit::Add(
            Group::KubeNode,
            HostLine {
                ip: "10.0.0.3".into(),
                ..HostLine::default()
            },
        );
        let tx = Transaction::stage(&dir, &[add]).unwrap();
        let edited = format!("{hosts}# edited by hand\n");
        std::fs::write(dir.join(HOSTS_FILE), &edited).unwrap();
        let e = commit_hosts(tx).unwrap_err();
        let f = e.downcast_ref::<Failure>().unwrap();
        assert_eq!(f.code, ExitCode::Failed);
        assert!(f.message.contains("was edited while"), "{}", f.message);
        assert_eq!(
            std::fs::read_to_string(dir.join(HOSTS_FILE)).unwrap(),
            edited
        );
        let aside = std::fs::read_to_string(dir.join("hosts.yml.ezctl-new")).unwrap();
        assert!(aside.contains("10.0.0.3"));
    }

    #[test]
    fn pseudo_groups_and_extra_hosts() {
        let mut t = Targets {
            globals: Map::new(),
            hosts: vec![
                TargetHost::new("10.0.0.1").group("kube_node"),
                TargetHost::new("10.0.0.2"),
            ],
        };
        mark(&mut t, "adding", &["10.0.0.2".to_string()]);
        assert_eq!(t.select("adding").len(), 1);
        assert_eq!(t.select("adding")[0].name, "10.0.0.2");
        let mut vars = Map::new();
        vars.insert("clean_node".into(), json!(true));
        set_vars(&mut t, "10.0.0.1", &vars);
        assert_eq!(t.hosts[0].vars["clean_node"], json!(true));
        add_host(&mut t, "10.0.0.9", &["removing"], vars.clone());
        add_host(&mut t, "10.0.0.9", &["other"], Map::new());
        assert_eq!(t.select("removing").len(), 1);
        assert_eq!(t.hosts.len(), 3);
    }
}
