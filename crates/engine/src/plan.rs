//! The plan: a DAG of units, one unit = one role on one host.
//!
//! Edges come from the plays: `after` (same host), `needs` (every unit of a
//! role on a group) and `serial` (a rolling window of N hosts, in order). A
//! dependency on a role that is not in the plan (another step, filtered out by
//! tags or `--limit`) counts as satisfied; a dependency on a role that does
//! not exist at all is an error, as is a cycle. All found before running.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use crate::error::PlanError;
use crate::playbook::Playbook;
use crate::role::Role;
use crate::targets::Targets;

/// Tag and host filters (`-t`, `--skip-tags`, `--limit`).
#[derive(Debug, Clone, Default)]
pub struct PlanFilter {
    /// Run only tasks with one of these tags (or tagged `always`). Empty: all.
    pub tags: BTreeSet<String>,
    pub skip_tags: BTreeSet<String>,
    /// Host pattern; units on other hosts are left out.
    pub limit: Option<String>,
}

impl PlanFilter {
    fn selects(&self, tags: &BTreeSet<String>) -> bool {
        if tags.iter().any(|t| self.skip_tags.contains(t)) {
            return false;
        }
        self.tags.is_empty()
            || tags.contains("always")
            || tags.iter().any(|t| self.tags.contains(t))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    After,
    Needs,
    Serial,
}

/// One role on one host.
#[derive(Debug)]
pub struct Unit {
    pub role: Arc<Role>,
    pub host: String,
    pub playbook: String,
    /// The play's `vars:`, over the host's variables.
    pub vars: serde_json::Map<String, serde_json::Value>,
    /// Indexes into `role.tasks` that pass the tag filter, in order.
    pub tasks: Vec<usize>,
    /// First host of its play: `run_once` tasks run here.
    pub run_once_here: bool,
}

impl Unit {
    pub fn label(&self) -> String {
        format!("{}@{}", self.role.name, self.host)
    }
}

pub struct Plan {
    pub(crate) graph: DiGraph<Unit, EdgeKind>,
    pub(crate) targets: Arc<Targets>,
}

impl Plan {
    /// Load the roles the playbooks use and wire the units together.
    pub fn build(
        roles_dir: &Path,
        playbooks: &[Playbook],
        targets: Targets,
        filter: &PlanFilter,
    ) -> Result<Plan, PlanError> {
        let limit: Option<BTreeSet<String>> = filter.limit.as_deref().map(|p| {
            targets
                .select(p)
                .into_iter()
                .map(|h| h.name.clone())
                .collect()
        });
        let mut roles: HashMap<String, Arc<Role>> = HashMap::new();
        let mut graph: DiGraph<Unit, EdgeKind> = DiGraph::new();
        let mut index: HashMap<(String, String), NodeIndex> = HashMap::new();
        let mut plays = Vec::new();

        for pb in playbooks {
            for (pi, play) in pb.plays.iter().enumerate() {
                let unit_role = play.unit_role();
                let context = format!("play #{} ({unit_role})", pi + 1);
                let known = |role: &str| -> Result<(), PlanError> {
                    if Role::exists(roles_dir, role) {
                        Ok(())
                    } else {
                        Err(PlanError::UnknownRole {
                            playbook: pb.name.clone(),
                            context: context.clone(),
                            role: role.to_string(),
                            tasks_file: crate::role::tasks_file(roles_dir, role)
                                .map(|p| p.display().to_string())
                                .unwrap_or_else(|| "such tasks file".into()),
                        })
                    }
                };
                known(&unit_role)?;
                if let Some(cond) = &play.when {
                    let holds = tera::Context::from_value(serde_json::Value::Object(
                        targets.globals.clone(),
                    ))
                    .map_err(|e| e.to_string())
                    .and_then(|ctx| {
                        crate::vars::eval_condition(cond, &ctx).map_err(|e| e.to_string())
                    })
                    .map_err(|detail| PlanError::When {
                        playbook: pb.name.clone(),
                        context: context.clone(),
                        detail,
                    })?;
                    if !holds {
                        continue;
                    }
                }
                for r in play.after.iter().chain(play.needs.iter().map(|n| &n.role)) {
                    known(r)?;
                }
                let role = match roles.get(&unit_role) {
                    Some(r) => r.clone(),
                    None => {
                        let r = Arc::new(Role::load(roles_dir, &unit_role)?);
                        roles.insert(unit_role.clone(), r.clone());
                        r
                    }
                };
                let play_tags: BTreeSet<String> = play.tags.iter().cloned().collect();
                let tasks: Vec<usize> = role
                    .tasks
                    .iter()
                    .enumerate()
                    .filter(|(_, t)| filter.selects(&t.tags.union(&play_tags).cloned().collect()))
                    .map(|(i, _)| i)
                    .collect();
                let mut nodes = Vec::new();
                for h in targets.select(&play.hosts) {
                    if limit.as_ref().is_some_and(|l| !l.contains(&h.name)) {
                        continue;
                    }
                    if tasks.is_empty() {
                        continue;
                    }
                    let key = (unit_role.clone(), h.name.clone());
                    // Listed again (e.g. kube-lb in step 04 for masters and in
                    // 05 for nodes, both imported by 90-all): one unit, with
                    // the dependencies of every play that lists it.
                    if let Some(&n) = index.get(&key) {
                        let unit = &mut graph[n];
                        if unit.vars != play.vars {
                            return Err(PlanError::VarsDiffer {
                                playbook: pb.name.clone(),
                                context: context.clone(),
                                role: unit_role.clone(),
                                host: h.name.clone(),
                            });
                        }
                        let merged: BTreeSet<usize> =
                            unit.tasks.iter().chain(&tasks).copied().collect();
                        unit.tasks = merged.into_iter().collect();
                        unit.run_once_here |= nodes.is_empty();
                        nodes.push(n);
                        continue;
                    }
                    let n = graph.add_node(Unit {
                        role: role.clone(),
                        host: h.name.clone(),
                        playbook: pb.name.clone(),
                        vars: play.vars.clone(),
                        tasks: tasks.clone(),
                        run_once_here: nodes.is_empty(),
                    });
                    index.insert(key, n);
                    nodes.push(n);
                }
                plays.push((play, nodes));
            }
        }

        for (play, nodes) in &plays {
            // The units a play needs are the same for each of its hosts.
            let needed: Vec<NodeIndex> =
                play.needs
                    .iter()
                    .flat_map(|need| {
                        targets.select(&need.on).into_iter().filter_map(|h| {
                            index.get(&(need.role.clone(), h.name.clone())).copied()
                        })
                    })
                    .collect();
            for &n in nodes {
                let host = graph[n].host.clone();
                for a in &play.after {
                    if let Some(&d) = index.get(&(a.clone(), host.clone())) {
                        graph.update_edge(d, n, EdgeKind::After);
                    }
                }
                for &d in &needed {
                    graph.update_edge(d, n, EdgeKind::Needs);
                }
            }
            if let Some(s) = play.serial {
                // Host i waits for hosts i-2s+1 ..= i-s. Since host i-s itself
                // waited for everything before it the same way, host i starts
                // only when every host up to i-s is done: at most `s` run at
                // once, started in order, and a failure stops the rollout.
                for i in s..nodes.len() {
                    for j in (i + 1).saturating_sub(2 * s)..=(i - s) {
                        graph.update_edge(nodes[j], nodes[i], EdgeKind::Serial);
                    }
                }
            }
        }

        if let Some(path) = find_cycle(&graph) {
            return Err(PlanError::Cycle { path });
        }
        Ok(Plan {
            graph,
            targets: Arc::new(targets),
        })
    }

    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    pub fn targets(&self) -> &Targets {
        &self.targets
    }

    /// Units in plan order (playbook, play, inventory order).
    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.graph.node_indices().map(|n| &self.graph[n])
    }

    pub fn unit(&self, role: &str, host: &str) -> Option<&Unit> {
        self.find(role, host).map(|n| &self.graph[n])
    }

    fn find(&self, role: &str, host: &str) -> Option<NodeIndex> {
        self.graph
            .node_indices()
            .find(|&n| self.graph[n].role.name == role && self.graph[n].host == host)
    }

    /// What `role@host` waits for: `(role, host, kind)`.
    pub fn deps(&self, role: &str, host: &str) -> Vec<(String, String, EdgeKind)> {
        let Some(n) = self.find(role, host) else {
            return Vec::new();
        };
        let mut v: Vec<_> = self
            .graph
            .edges_directed(n, Direction::Incoming)
            .map(|e| {
                let u = &self.graph[e.source()];
                (u.role.name.clone(), u.host.clone(), *e.weight())
            })
            .collect();
        v.sort();
        v
    }

    /// A readable listing for `--list` style output.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for n in self.graph.node_indices() {
            let u = &self.graph[n];
            let _ = write!(out, "{} ({} tasks)", u.label(), u.tasks.len());
            let deps = self.deps(&u.role.name, &u.host);
            if !deps.is_empty() {
                let d: Vec<String> = deps
                    .iter()
                    .map(|(r, h, k)| format!("{r}@{h} [{}]", format!("{k:?}").to_lowercase()))
                    .collect();
                let _ = write!(out, " <- {}", d.join(", "));
            }
            out.push('\n');
        }
        out
    }
}

/// A cycle as `role@host` labels, first repeated at the end.
fn find_cycle(g: &DiGraph<Unit, EdgeKind>) -> Option<Vec<String>> {
    for scc in petgraph::algo::tarjan_scc(g) {
        let start = scc[0];
        let self_loop = g.contains_edge(start, start);
        if scc.len() == 1 && !self_loop {
            continue;
        }
        if self_loop {
            let l = g[start].label();
            return Some(vec![l.clone(), l]);
        }
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        // Shortest way round from `start` back to itself inside the SCC.
        let mut prev: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        'bfs: while let Some(n) = queue.pop_front() {
            for m in g.neighbors(n) {
                if !members.contains(&m) {
                    continue;
                }
                if m == start {
                    prev.insert(start, n);
                    break 'bfs;
                }
                if let std::collections::hash_map::Entry::Vacant(e) = prev.entry(m) {
                    e.insert(n);
                    queue.push_back(m);
                }
            }
        }
        let mut path = vec![g[start].label()];
        let mut cur = prev.get(&start).copied();
        while let Some(c) = cur {
            if c == start {
                break;
            }
            path.push(g[c].label());
            cur = prev.get(&c).copied();
        }
        path.push(g[start].label());
        path.reverse();
        return Some(path);
    }
    None
}
