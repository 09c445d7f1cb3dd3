//! Building blocks of the day-2 commands (add/del hosts, upgrade,
//! start/stop/destroy, certificate renewal): one lock and one runtime per
//! command, transactional inventory edits, playbook runs, controller-side
//! kubectl, one-off commands over SSH, and the pure rules they follow.

pub mod clean;
pub mod context;
pub mod fleet;
pub mod kube;
pub mod pending;
pub mod plans;
pub mod upgrade_state;
pub mod version;

use std::collections::BTreeSet;

use ez_engine::{TargetHost, Targets};
use serde_json::{Map, Value};

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
    use serde_json::json;

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
