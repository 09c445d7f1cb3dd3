//! Critical path of a run: the longest chain of dependent units (plan
//! edges), weighted by how long each unit really took. Set against the wall
//! time it says how much of a run is the work's own ordering and how much is
//! waiting (for a host's previous unit, for CPU, for the scheduler).

use std::collections::{BTreeMap, HashMap};

use crate::events::UnitSpan;

/// `role@host`, the id of a unit.
pub type UnitId = (String, String);

/// An edge `from -> to`: `to` starts only after `from` is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    pub from: UnitId,
    pub to: UnitId,
}

/// One link of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub role: String,
    pub host: String,
    pub start_ms: u64,
    pub duration_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CriticalPath {
    /// Sum of the chain's unit durations.
    pub length_ms: u64,
    /// First unit first.
    pub chain: Vec<Link>,
    /// Units that ran, and the sum of their durations (work).
    pub units: usize,
    pub work_ms: u64,
    /// First unit start to last unit end.
    pub span_ms: u64,
}

/// Longest path through the DAG of `edges` over the units that ran (edges
/// touching a unit that did not run are ignored).
pub fn critical_path(units: &[UnitSpan], edges: &[Edge]) -> CriticalPath {
    let index: HashMap<UnitId, usize> = units
        .iter()
        .enumerate()
        .map(|(i, u)| ((u.role.clone(), u.host.clone()), i))
        .collect();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
    for e in edges {
        if let (Some(&a), Some(&b)) = (index.get(&e.from), index.get(&e.to)) {
            if a != b {
                preds[b].push(a);
            }
        }
    }
    // best[i] = longest chain ending in i (inclusive), with its predecessor.
    let mut best: Vec<Option<(u64, Option<usize>)>> = vec![None; units.len()];
    for i in 0..units.len() {
        longest_into(i, units, &preds, &mut best, &mut vec![false; units.len()]);
    }
    let end = (0..units.len()).max_by_key(|&i| (best[i].map_or(0, |b| b.0), units[i].end_ms));
    let mut chain = Vec::new();
    let mut cur = end;
    while let Some(i) = cur {
        let u = &units[i];
        chain.push(Link {
            role: u.role.clone(),
            host: u.host.clone(),
            start_ms: u.start_ms,
            duration_ms: u.duration_ms(),
        });
        cur = best[i].and_then(|b| b.1);
        if chain.len() > units.len() {
            break; // cannot happen without a cycle; never loop forever
        }
    }
    chain.reverse();
    let start = units.iter().map(|u| u.start_ms).min().unwrap_or(0);
    let finish = units.iter().map(|u| u.end_ms).max().unwrap_or(0);
    CriticalPath {
        length_ms: end.and_then(|i| best[i]).map_or(0, |b| b.0),
        chain,
        units: units.len(),
        work_ms: units.iter().map(UnitSpan::duration_ms).sum(),
        span_ms: finish.saturating_sub(start),
    }
}

/// Memoised DFS; `on_stack` breaks a (malformed) cycle instead of looping.
fn longest_into(
    i: usize,
    units: &[UnitSpan],
    preds: &[Vec<usize>],
    best: &mut [Option<(u64, Option<usize>)>],
    on_stack: &mut [bool],
) -> u64 {
    if let Some((len, _)) = best[i] {
        return len;
    }
    if on_stack[i] {
        return 0;
    }
    on_stack[i] = true;
    let mut top: (u64, Option<usize>) = (0, None);
    for &p in &preds[i] {
        // A predecessor still on the stack closes a cycle: not a chain.
        if on_stack[p] && best[p].is_none() {
            continue;
        }
        let len = longest_into(p, units, preds, best, on_stack);
        if len > top.0 || top.1.is_none() {
            top = (len, Some(p));
        }
    }
    on_stack[i] = false;
    let len = top.0 + units[i].duration_ms();
    best[i] = Some((len, top.1));
    len
}

/// Why a link of the observed chain waited for the one before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Because {
    /// A plan edge (`after`, `needs`, `serial`).
    Dependency,
    /// The same host: the engine runs one unit per host at a time.
    SameHost,
}

/// One link of the chain that actually set the run's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedLink {
    pub role: String,
    pub host: String,
    pub start_ms: u64,
    pub duration_ms: u64,
    /// From the previous link's end to this start (scheduling, CPU).
    pub waited_ms: u64,
    /// `None` for the first link.
    pub because: Option<Because>,
}

/// Walks back from the unit that finished last: each step goes to whatever
/// it had to wait for that finished latest — a plan dependency or the
/// previous unit on its host. Unlike [`critical_path`], this chain includes
/// the waiting, so it adds up to the run's span.
pub fn observed_chain(units: &[UnitSpan], edges: &[Edge]) -> Vec<ObservedLink> {
    let index: HashMap<UnitId, usize> = units
        .iter()
        .enumerate()
        .map(|(i, u)| ((u.role.clone(), u.host.clone()), i))
        .collect();
    let mut preds: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
    for e in edges {
        if let (Some(&a), Some(&b)) = (index.get(&e.from), index.get(&e.to)) {
            preds[b].push(a);
        }
    }
    let Some(mut cur) = (0..units.len()).max_by_key(|&i| units[i].end_ms) else {
        return Vec::new();
    };
    let mut seen = vec![false; units.len()];
    let mut chain: Vec<ObservedLink> = Vec::new();
    loop {
        seen[cur] = true;
        let u = &units[cur];
        let dep = preds[cur]
            .iter()
            .copied()
            .filter(|&p| !seen[p] && units[p].end_ms <= u.start_ms)
            .max_by_key(|&p| units[p].end_ms);
        let host = (0..units.len())
            .filter(|&p| !seen[p] && units[p].host == u.host && units[p].end_ms <= u.start_ms)
            .max_by_key(|&p| units[p].end_ms);
        let prev = match (dep, host) {
            (Some(d), Some(h)) if units[h].end_ms > units[d].end_ms => Some((h, Because::SameHost)),
            (Some(d), _) => Some((d, Because::Dependency)),
            (None, Some(h)) => Some((h, Because::SameHost)),
            (None, None) => None,
        };
        chain.push(ObservedLink {
            role: u.role.clone(),
            host: u.host.clone(),
            start_ms: u.start_ms,
            duration_ms: u.duration_ms(),
            waited_ms: prev.map_or(u.start_ms, |(p, _)| u.start_ms - units[p].end_ms),
            because: prev.map(|(_, why)| why),
        });
        match prev {
            Some((p, _)) => cur = p,
            None => break,
        }
    }
    chain.reverse();
    chain
}

/// Wall time of each role summed over hosts, largest first: where a run's
/// work goes.
pub fn work_by_role(units: &[UnitSpan]) -> Vec<(String, u64)> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for u in units {
        *m.entry(u.role.clone()).or_default() += u.duration_ms();
    }
    let mut v: Vec<(String, u64)> = m.into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(role: &str, host: &str, start: u64, end: u64) -> UnitSpan {
        UnitSpan {
            role: role.into(),
            host: host.into(),
            start_ms: start,
            end_ms: end,
            status: "ok".into(),
        }
    }

    fn edge(a: (&str, &str), b: (&str, &str)) -> Edge {
        Edge {
            from: (a.0.into(), a.1.into()),
            to: (b.0.into(), b.1.into()),
        }
    }

    #[test]
    fn longest_weighted_chain_not_the_longest_in_units() {
        // prepare@h1 (10) -> etcd@h1 (50) -> master@h2 (5)
        // prepare@h2 (30) -> master@h2
        // prepare@h3 (5) -> a@h3 (5) -> b@h3 (5) -> c@h3 (5): more links, shorter.
        let units = vec![
            span("prepare", "h1", 0, 10),
            span("etcd", "h1", 10, 60),
            span("prepare", "h2", 0, 30),
            span("master", "h2", 60, 65),
            span("prepare", "h3", 0, 5),
            span("a", "h3", 5, 10),
            span("b", "h3", 10, 15),
            span("c", "h3", 15, 20),
        ];
        let edges = vec![
            edge(("prepare", "h1"), ("etcd", "h1")),
            edge(("etcd", "h1"), ("master", "h2")),
            edge(("prepare", "h2"), ("master", "h2")),
            edge(("prepare", "h3"), ("a", "h3")),
            edge(("a", "h3"), ("b", "h3")),
            edge(("b", "h3"), ("c", "h3")),
            // An edge to a unit that did not run is ignored.
            edge(("c", "h3"), ("missing", "h9")),
        ];
        let cp = critical_path(&units, &edges);
        assert_eq!(cp.length_ms, 65);
        let names: Vec<String> = cp
            .chain
            .iter()
            .map(|l| format!("{}@{}", l.role, l.host))
            .collect();
        assert_eq!(names, ["prepare@h1", "etcd@h1", "master@h2"]);
        assert_eq!(cp.units, 8);
        assert_eq!(cp.work_ms, 10 + 50 + 30 + 5 + 5 + 5 + 5 + 5);
        assert_eq!(cp.span_ms, 65);
    }

    #[test]
    fn no_edges_means_the_longest_unit_and_cycles_terminate() {
        let units = vec![span("a", "h1", 0, 7), span("b", "h1", 0, 9)];
        let cp = critical_path(&units, &[]);
        assert_eq!(cp.length_ms, 9);
        assert_eq!(cp.chain.len(), 1);
        let cyc = vec![
            edge(("a", "h1"), ("b", "h1")),
            edge(("b", "h1"), ("a", "h1")),
        ];
        let cp = critical_path(&units, &cyc);
        assert!(cp.length_ms >= 9);
        assert!(critical_path(&[], &[]).chain.is_empty());
    }

    #[test]
    fn observed_chain_follows_the_latest_wait_including_the_host() {
        // etcd@h1 needs prepare@h1; kube-master@h2 needs etcd@h1 but ran
        // after containerd@h2 (same host), which finished later.
        let units = vec![
            span("prepare", "h1", 0, 10),
            span("etcd", "h1", 10, 40),
            span("prepare", "h2", 0, 5),
            span("containerd", "h2", 5, 50),
            span("kube-master", "h2", 52, 60),
        ];
        let edges = vec![
            edge(("prepare", "h1"), ("etcd", "h1")),
            edge(("etcd", "h1"), ("kube-master", "h2")),
            edge(("prepare", "h2"), ("kube-master", "h2")),
        ];
        let chain = observed_chain(&units, &edges);
        let names: Vec<String> = chain
            .iter()
            .map(|l| format!("{}@{}", l.role, l.host))
            .collect();
        assert_eq!(names, ["prepare@h2", "containerd@h2", "kube-master@h2"]);
        assert_eq!(chain[2].because, Some(Because::SameHost));
        assert_eq!(chain[2].waited_ms, 2);
        assert_eq!(chain[1].because, Some(Because::SameHost));
        assert_eq!(chain[0].because, None);
        // The DAG-only critical path differs: it ignores the host's queue.
        let cp = critical_path(&units, &edges);
        assert_eq!(
            cp.chain.last().map(|l| l.role.as_str()),
            Some("kube-master")
        );
        assert_eq!(cp.length_ms, 10 + 30 + 8);
        assert!(observed_chain(&[], &[]).is_empty());
    }

    #[test]
    fn observed_chain_prefers_a_dependency_that_ended_later() {
        let units = vec![
            span("a", "h1", 0, 10),
            span("b", "h2", 0, 30),
            span("c", "h1", 31, 40),
        ];
        let edges = vec![edge(("b", "h2"), ("c", "h1"))];
        let chain = observed_chain(&units, &edges);
        assert_eq!(chain.len(), 2);
        assert_eq!((chain[0].role.as_str(), chain[1].role.as_str()), ("b", "c"));
        assert_eq!(chain[1].because, Some(Because::Dependency));
        assert_eq!(chain[1].waited_ms, 1);
    }

    #[test]
    fn work_by_role_sums_over_hosts() {
        let units = vec![
            span("etcd", "h1", 0, 10),
            span("etcd", "h2", 0, 20),
            span("prepare", "h1", 0, 5),
        ];
        assert_eq!(
            work_by_role(&units),
            vec![("etcd".to_string(), 30), ("prepare".to_string(), 5)]
        );
    }
}
