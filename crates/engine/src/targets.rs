//! The plain view of the cluster the engine works on. The binary fills it from
//! the inventory; the engine never reads inventory files itself.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// One target host.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct TargetHost {
    /// Identity, e.g. the IP. Appears in events and as `inventory_hostname`.
    pub name: String,
    pub groups: BTreeSet<String>,
    pub vars: Map<String, Value>,
}

impl TargetHost {
    pub fn new(name: impl Into<String>) -> Self {
        TargetHost {
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn group(mut self, g: impl Into<String>) -> Self {
        self.groups.insert(g.into());
        self
    }

    pub fn var(mut self, k: impl Into<String>, v: impl Into<Value>) -> Self {
        self.vars.insert(k.into(), v.into());
        self
    }
}

/// Every host plus the cluster-wide variables (settings and derived values).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Targets {
    pub globals: Map<String, Value>,
    pub hosts: Vec<TargetHost>,
}

impl Targets {
    pub fn host(&self, name: &str) -> Option<&TargetHost> {
        self.hosts.iter().find(|h| h.name == name)
    }

    /// Hosts matching a pattern, in inventory order.
    ///
    /// A pattern is `:`-separated terms: a group name, a host name or `all`
    /// add hosts; `&term` keeps only hosts also in `term`; `!term` removes.
    /// So `kube_master:kube_node:!etcd` is "masters and nodes that are not etcd".
    pub fn select(&self, pattern: &str) -> Vec<&TargetHost> {
        let mut chosen: BTreeSet<&str> = BTreeSet::new();
        let terms: Vec<&str> = pattern
            .split(':')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        // Unions first, so the order of `&` / `!` terms does not matter.
        for t in terms.iter().filter(|t| !t.starts_with(['&', '!'])) {
            chosen.extend(
                self.hosts
                    .iter()
                    .filter(|h| matches(h, t))
                    .map(|h| h.name.as_str()),
            );
        }
        for t in &terms {
            if let Some(t) = t.strip_prefix('&') {
                chosen.retain(|n| self.host(n).is_some_and(|h| matches(h, t)));
            }
        }
        for t in &terms {
            if let Some(t) = t.strip_prefix('!') {
                chosen.retain(|n| self.host(n).is_some_and(|h| !matches(h, t)));
            }
        }
        self.hosts
            .iter()
            .filter(|h| chosen.contains(h.name.as_str()))
            .collect()
    }
}

fn matches(h: &TargetHost, term: &str) -> bool {
    term == "all" || h.name == term || h.groups.contains(term)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets() -> Targets {
        Targets {
            globals: Map::new(),
            hosts: vec![
                TargetHost::new("a").group("etcd").group("kube_master"),
                TargetHost::new("b").group("kube_master"),
                TargetHost::new("c").group("kube_node"),
            ],
        }
    }

    fn names(v: Vec<&TargetHost>) -> Vec<&str> {
        v.into_iter().map(|h| h.name.as_str()).collect()
    }

    #[test]
    fn union_intersection_exclusion() {
        let t = targets();
        assert_eq!(names(t.select("kube_node:kube_master")), ["a", "b", "c"]);
        assert_eq!(names(t.select("kube_master:&etcd")), ["a"]);
        assert_eq!(names(t.select("all:!etcd")), ["b", "c"]);
        assert_eq!(names(t.select("c")), ["c"]);
        assert!(t.select("nosuch").is_empty());
    }
}
