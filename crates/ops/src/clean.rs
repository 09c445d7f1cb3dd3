//! What to remove from a host that leaves some or all of its groups
//! (del-node, del-master, destroy). The `clean` role does the removing; this
//! decides which parts, as host variables, from the groups the host has
//! before and after, so a host that stays an etcd member keeps etcd.

use std::collections::BTreeSet;

use ez_inventory::Group;
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CleanScope {
    /// kubelet, kube-proxy, kube-lb, containerd, CNI (masters run them too).
    pub node: bool,
    /// kube-apiserver, kube-controller-manager, kube-scheduler.
    pub master: bool,
    pub etcd: bool,
    pub ex_lb: bool,
    pub harbor: bool,
    /// The host leaves the cluster: OS settings, /etc/hosts blocks, binaries.
    pub host: bool,
}

impl CleanScope {
    pub fn between(before: &BTreeSet<Group>, after: &BTreeSet<Group>) -> CleanScope {
        let left = |g: Group| before.contains(&g) && !after.contains(&g);
        let k8s =
            |s: &BTreeSet<Group>| s.contains(&Group::KubeMaster) || s.contains(&Group::KubeNode);
        let runs = |s: &BTreeSet<Group>| s.iter().any(|g| *g != Group::Chrony);
        CleanScope {
            node: k8s(before) && !k8s(after),
            master: left(Group::KubeMaster),
            etcd: left(Group::Etcd),
            ex_lb: left(Group::ExLb),
            harbor: left(Group::Harbor),
            host: runs(before) && !runs(after),
        }
    }

    /// Everything (destroy).
    pub fn all() -> CleanScope {
        CleanScope {
            node: true,
            master: true,
            etcd: true,
            ex_lb: true,
            harbor: true,
            host: true,
        }
    }

    /// The `clean` role's variables.
    pub fn vars(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("clean_node".into(), json!(self.node));
        m.insert("clean_master".into(), json!(self.master));
        m.insert("clean_etcd".into(), json!(self.etcd));
        m.insert("clean_ex_lb".into(), json!(self.ex_lb));
        m.insert("clean_harbor".into(), json!(self.harbor));
        m.insert("clean_host".into(), json!(self.host));
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(gs: &[Group]) -> BTreeSet<Group> {
        gs.iter().copied().collect()
    }

    #[test]
    fn a_plain_node_leaving_is_cleaned_completely() {
        let s = CleanScope::between(&set(&[Group::KubeNode]), &set(&[]));
        assert!(s.node && s.host);
        assert!(!s.master && !s.etcd && !s.ex_lb && !s.harbor);
    }

    #[test]
    fn a_node_that_stays_etcd_and_ex_lb_keeps_them() {
        let s = CleanScope::between(
            &set(&[Group::KubeNode, Group::Etcd, Group::ExLb]),
            &set(&[Group::Etcd, Group::ExLb]),
        );
        assert_eq!(
            s,
            CleanScope {
                node: true,
                ..CleanScope::default()
            }
        );
    }

    #[test]
    fn a_master_that_stays_a_node_keeps_the_node_services() {
        let s = CleanScope::between(
            &set(&[Group::KubeMaster, Group::KubeNode]),
            &set(&[Group::KubeNode]),
        );
        assert!(s.master && !s.node && !s.host);
        let s = CleanScope::between(&set(&[Group::KubeMaster]), &set(&[]));
        assert!(s.master && s.node && s.host);
    }

    #[test]
    fn nothing_left_nothing_cleaned() {
        let g = set(&[Group::Etcd, Group::KubeMaster]);
        assert_eq!(CleanScope::between(&g, &g), CleanScope::default());
        assert_eq!(CleanScope::all().vars().len(), 6);
        assert_eq!(CleanScope::all().vars()["clean_etcd"], json!(true));
    }
}
