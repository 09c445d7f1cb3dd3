//! Which machine plays which role in the cluster written for the lab.
//!
//! Default layout for N machines (machine numbers are 1-based here):
//! - N = 1: machine 1 is etcd + master + node (all-in-one).
//! - N = 2: machine 1 is etcd + master, machine 2 is a node.
//! - N = 3: etcd on 1–3, master on 1, nodes 2–3.
//! - N = 4..6: etcd on 1–3, masters 1–2, nodes 3..N.
//! - N ≥ 7: etcd 1–3, masters 4–5, nodes 6..N; ex-lb on nodes 6 (master)
//!   and 7 (backup); harbor on machine N.
//!
//! An explicit layout (`etcd=3,master=2,node=2[,ex_lb=2][,harbor=1]`) gives
//! etcd, master and node disjoint machines in that order (their counts must
//! add up to N); ex-lb goes on the first nodes, harbor on the last one.

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Etcd,
    KubeMaster,
    KubeNode,
    /// ex-lb with `lb_role: master`.
    ExLbMaster,
    /// ex-lb with `lb_role: backup`.
    ExLbBackup,
    Harbor,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Etcd => "etcd",
            Role::KubeMaster => "kube_master",
            Role::KubeNode => "kube_node",
            Role::ExLbMaster => "ex_lb(master)",
            Role::ExLbBackup => "ex_lb(backup)",
            Role::Harbor => "harbor",
        }
    }
}

/// Counts asked for with `--layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    pub etcd: usize,
    pub master: usize,
    pub node: usize,
    pub ex_lb: usize,
    pub harbor: usize,
}

impl Layout {
    /// Parses `etcd=3,master=2,node=2[,ex_lb=2][,harbor=1]`.
    pub fn parse(spec: &str) -> Result<Layout> {
        let bad = |reason: String| LabError::InvalidLayout {
            spec: spec.to_string(),
            reason,
        };
        let mut l = Layout::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| bad(format!("{part:?} is not key=count")))?;
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| bad(format!("{v:?} is not a count")))?;
            match k.trim() {
                "etcd" => l.etcd = n,
                "master" | "kube_master" => l.master = n,
                "node" | "kube_node" => l.node = n,
                "ex_lb" | "ex-lb" => l.ex_lb = n,
                "harbor" => l.harbor = n,
                other => {
                    return Err(bad(format!(
                        "unknown role {other:?} (etcd, master, node, ex_lb, harbor)"
                    )))
                }
            }
        }
        if l.etcd == 0 || l.master == 0 || l.node == 0 {
            return Err(bad(
                "etcd, master and node each need at least one machine".into()
            ));
        }
        if l.ex_lb > 2 || l.harbor > 1 {
            return Err(bad("at most 2 ex_lb and 1 harbor".into()));
        }
        if l.ex_lb > l.node || l.harbor > l.node {
            return Err(bad(
                "ex_lb and harbor live on node machines: not enough nodes".into(),
            ));
        }
        Ok(l)
    }

    pub fn total(&self) -> usize {
        self.etcd + self.master + self.node
    }

    /// Roles per machine for this explicit layout on `n` machines.
    pub fn assign(&self, n: usize) -> Result<Vec<Vec<Role>>> {
        if self.total() != n {
            return Err(LabError::InvalidLayout {
                spec: format!(
                    "etcd={},master={},node={}",
                    self.etcd, self.master, self.node
                ),
                reason: format!("it places {} machines but the lab has {n}", self.total()),
            });
        }
        let mut roles = vec![Vec::new(); n];
        let nodes_from = self.etcd + self.master;
        for (i, r) in roles.iter_mut().enumerate() {
            r.push(if i < self.etcd {
                Role::Etcd
            } else if i < nodes_from {
                Role::KubeMaster
            } else {
                Role::KubeNode
            });
        }
        place_extras(&mut roles, nodes_from, self.ex_lb, self.harbor);
        Ok(roles)
    }
}

/// Roles per machine for the default layout described in the module doc.
pub fn default_roles(n: usize) -> Vec<Vec<Role>> {
    use Role::*;
    let mut roles = vec![Vec::new(); n];
    match n {
        0 => {}
        1 => roles[0] = vec![Etcd, KubeMaster, KubeNode],
        2 => {
            roles[0] = vec![Etcd, KubeMaster];
            roles[1] = vec![KubeNode];
        }
        3..=6 => {
            let masters = if n == 3 { 1 } else { 2 };
            for (i, r) in roles.iter_mut().enumerate() {
                if i < 3 {
                    r.push(Etcd);
                }
                r.push(if i < masters { KubeMaster } else { KubeNode });
            }
        }
        _ => {
            for (i, r) in roles.iter_mut().enumerate() {
                r.push(match i {
                    0..=2 => Etcd,
                    3 | 4 => KubeMaster,
                    _ => KubeNode,
                });
            }
            place_extras(&mut roles, 5, 2, 1);
        }
    }
    roles
}

fn place_extras(roles: &mut [Vec<Role>], first_node: usize, ex_lb: usize, harbor: usize) {
    for k in 0..ex_lb {
        if let Some(r) = roles.get_mut(first_node + k) {
            r.push(if k == 0 {
                Role::ExLbMaster
            } else {
                Role::ExLbBackup
            });
        }
    }
    if harbor > 0 {
        if let Some(r) = roles.last_mut() {
            r.push(Role::Harbor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Role::*;

    fn count(roles: &[Vec<Role>], role: Role) -> usize {
        roles.iter().filter(|r| r.contains(&role)).count()
    }

    #[test]
    fn every_default_layout_has_etcd_master_and_node() {
        for n in 1..=30 {
            let roles = default_roles(n);
            assert_eq!(roles.len(), n);
            assert!(count(&roles, Etcd) % 2 == 1, "odd etcd for n={n}");
            assert!(count(&roles, KubeMaster) >= 1, "n={n}");
            assert!(count(&roles, KubeNode) >= 1, "n={n}");
            assert!(
                roles.iter().all(|r| !r.is_empty()),
                "idle machine for n={n}"
            );
        }
    }

    #[test]
    fn default_layouts_match_the_documentation() {
        assert_eq!(default_roles(1), vec![vec![Etcd, KubeMaster, KubeNode]]);
        let three = default_roles(3);
        assert_eq!(three[0], vec![Etcd, KubeMaster]);
        assert_eq!(three[2], vec![Etcd, KubeNode]);
        let seven = default_roles(7);
        assert_eq!(count(&seven, Etcd), 3);
        assert_eq!(count(&seven, KubeMaster), 2);
        assert_eq!(seven[5], vec![KubeNode, ExLbMaster]);
        assert_eq!(seven[6], vec![KubeNode, ExLbBackup, Harbor]);
        // ex-lb and harbor only ever sit on node machines
        for r in default_roles(12) {
            if r.contains(&ExLbMaster) || r.contains(&ExLbBackup) || r.contains(&Harbor) {
                assert!(r.contains(&KubeNode));
            }
        }
    }

    #[test]
    fn explicit_layout_is_disjoint_and_checked() {
        let l = Layout::parse("etcd=3,master=2,node=2,ex_lb=2,harbor=1").unwrap();
        let roles = l.assign(7).unwrap();
        assert_eq!(roles[0], vec![Etcd]);
        assert_eq!(roles[3], vec![KubeMaster]);
        assert_eq!(roles[5], vec![KubeNode, ExLbMaster]);
        assert_eq!(roles[6], vec![KubeNode, ExLbBackup, Harbor]);
        assert!(matches!(l.assign(8), Err(LabError::InvalidLayout { .. })));
    }

    #[test]
    fn bad_layouts_are_rejected() {
        for spec in [
            "etcd=3,master=2",
            "etcd=x,master=1,node=1",
            "etcd=1,master=1,node=1,db=1",
            "etcd",
        ] {
            assert!(Layout::parse(spec).is_err(), "{spec}");
        }
    }
}
