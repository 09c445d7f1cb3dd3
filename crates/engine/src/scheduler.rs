//! The scheduler: a unit starts as soon as the units it depends on are done.
//! No global barriers: a fast host moves on to its next role while a slow one
//! is still busy. At most `concurrency` units run at once, and one unit per
//! host (roles on one host share files like /etc/hosts and systemd state).
//! A failed unit skips everything that depends on it, with the cause;
//! independent work goes on.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use petgraph::graph::NodeIndex;
use petgraph::visit::Bfs;
use petgraph::Direction;
use tokio::task::JoinSet;

use crate::events::{Cause, Event, EventConsumer, EventSink};
use crate::modules::files::HashCache;
use crate::modules::HostState;
use crate::plan::Plan;
use crate::recap::Recap;
use crate::transport::{Connector, DryRunTransport, LocalTransport, Transport};
use crate::unit::{ConnCell, UnitJob, UnitOutcome};
use crate::vars::HostContexts;

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Units running at once, over all hosts.
    pub concurrency: usize,
    /// Check only: report what would change (with diffs), change nothing.
    pub dry_run: bool,
    /// Diffs of changed files in events also outside dry-run.
    pub diff: bool,
    /// Where the controller keeps the hashes of the files it sends, across
    /// runs (`None`: only for this run). See `disk_hashes.rs`.
    pub hash_cache: Option<PathBuf>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            concurrency: 64,
            dry_run: false,
            diff: false,
            hash_cache: None,
        }
    }
}

/// Runs plans. Holds how to reach hosts and the controller.
pub struct Runner {
    connector: Arc<dyn Connector>,
    controller: Arc<dyn Transport>,
    options: RunOptions,
}

#[derive(Debug, Clone, PartialEq)]
enum State {
    Waiting,
    Running,
    Done,
    Failed,
    Skipped,
}

/// Forwards every event to the caller's sink and to the recap.
struct Tee {
    sink: EventSink,
    recap: std::sync::Mutex<Recap>,
}

impl Runner {
    pub fn new(connector: Arc<dyn Connector>) -> Self {
        Runner {
            connector,
            controller: Arc::new(LocalTransport::new("controller")),
            options: RunOptions::default(),
        }
    }

    pub fn with_options(mut self, options: RunOptions) -> Self {
        self.options = options;
        self
    }

    /// The transport of `delegate: controller`, `local` and `fetch` targets.
    pub fn with_controller(mut self, controller: Arc<dyn Transport>) -> Self {
        self.controller = controller;
        self
    }

    /// Run the plan to the end and sum it up. Dropping the future cancels
    /// the run (local commands are killed).
    pub async fn run(&self, plan: &Plan, events: EventSink) -> Recap {
        let started = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let inner = EventSink::new(tx);
        // Units send to `inner`; a forwarding task feeds the recap and the caller.
        let tee = Arc::new(Tee {
            sink: events,
            recap: std::sync::Mutex::new(Recap::default()),
        });
        let forward = {
            let tee = tee.clone();
            tokio::spawn(async move {
                while let Some(e) = rx.recv().await {
                    if let Ok(mut r) = tee.recap.lock() {
                        let _ = r.on_event(&e);
                    }
                    tee.sink.send(e);
                }
            })
        };

        let g = &plan.graph;
        inner.send(Event::RunStart {
            t_ms: inner.t_ms(),
            at: now_rfc3339(),
            units: g.node_count(),
            // Hosts with work in this plan (a --limit leaves the others out).
            hosts: plan
                .targets
                .hosts
                .iter()
                .filter(|h| g.node_weights().any(|u| u.host == h.name))
                .map(|h| h.name.clone())
                .collect(),
            dry_run: self.options.dry_run,
        });

        let contexts = HostContexts::build(&plan.targets);
        let hashes = Arc::new(match &self.options.hash_cache {
            Some(file) => HashCache::with_disk(file.clone()),
            None => HashCache::default(),
        });
        let mut conns: HashMap<String, Arc<ConnCell>> = HashMap::new();
        let mut host_states: HashMap<String, Arc<HostState>> = HashMap::new();
        let mut state = vec![State::Waiting; g.node_count()];
        let mut waiting_on: Vec<usize> = g
            .node_indices()
            .map(|n| g.neighbors_directed(n, Direction::Incoming).count())
            .collect();
        let mut ready: BTreeSet<NodeIndex> = g
            .node_indices()
            .filter(|n| waiting_on[n.index()] == 0)
            .collect();
        let mut busy: HashSet<String> = HashSet::new();
        let mut gone: HashMap<String, Cause> = HashMap::new();
        let mut running: JoinSet<(NodeIndex, UnitOutcome)> = JoinSet::new();
        let mut running_ids: HashMap<tokio::task::Id, NodeIndex> = HashMap::new();
        let limit = self.options.concurrency.max(1);

        loop {
            // Start what can start, in plan order.
            let candidates: Vec<NodeIndex> = ready.iter().copied().collect();
            for n in candidates {
                if running.len() >= limit {
                    break;
                }
                let unit = &g[n];
                if let Some(cause) = gone.get(&unit.host).cloned() {
                    ready.remove(&n);
                    skip_from(plan, n, &cause, &mut state, &inner, true);
                    continue;
                }
                if busy.contains(&unit.host) {
                    continue;
                }
                ready.remove(&n);
                busy.insert(unit.host.clone());
                state[n.index()] = State::Running;
                let Some(host) = plan.targets.host(&unit.host).cloned() else {
                    continue;
                };
                let job = UnitJob {
                    role: unit.role.clone(),
                    vars: {
                        // Play vars over the host's, as in Ansible.
                        let mut v = contexts.get(&host.name).unwrap_or_default();
                        v.extend(unit.vars.clone());
                        v
                    },
                    conn: conns.entry(host.name.clone()).or_default().clone(),
                    host_state: host_states.entry(host.name.clone()).or_default().clone(),
                    host,
                    tasks: unit.tasks.clone(),
                    run_once_here: unit.run_once_here,
                    connector: self.connector.clone(),
                    controller: if self.options.dry_run {
                        Arc::new(DryRunTransport(self.controller.clone()))
                    } else {
                        self.controller.clone()
                    },
                    hashes: hashes.clone(),
                    events: inner.clone(),
                    options: self.options.clone(),
                    dry_pending: Default::default(),
                };
                let h = running.spawn(async move { (n, job.run().await) });
                running_ids.insert(h.id(), n);
            }

            let Some(joined) = running.join_next_with_id().await else {
                break;
            };
            let (n, outcome) = match joined {
                Ok((id, (n, outcome))) => {
                    running_ids.remove(&id);
                    (n, outcome)
                }
                Err(e) => {
                    let Some(n) = running_ids.remove(&e.id()) else {
                        continue;
                    };
                    let unit = &g[n];
                    let cause = Cause {
                        role: unit.role.name.clone(),
                        host: unit.host.clone(),
                        task: None,
                        error: format!("internal error: unit task ended abnormally: {e}"),
                    };
                    (
                        n,
                        UnitOutcome::Failed {
                            cause,
                            unreachable: false,
                        },
                    )
                }
            };
            let host = g[n].host.clone();
            busy.remove(&host);
            match outcome {
                UnitOutcome::Done => {
                    state[n.index()] = State::Done;
                    for m in g.neighbors_directed(n, Direction::Outgoing) {
                        waiting_on[m.index()] -= 1;
                        if waiting_on[m.index()] == 0 && state[m.index()] == State::Waiting {
                            ready.insert(m);
                        }
                    }
                }
                UnitOutcome::Failed { cause, unreachable } => {
                    state[n.index()] = State::Failed;
                    skip_from(plan, n, &cause, &mut state, &inner, false);
                    if unreachable {
                        gone.insert(host, cause);
                    }
                }
            }
            // Units that were ready but are now skipped must leave the queue.
            ready.retain(|m| state[m.index()] == State::Waiting);
        }

        let ok = state.iter().all(|s| *s == State::Done);
        inner.send(Event::RunEnd {
            t_ms: inner.t_ms(),
            duration_ms: started.elapsed().as_millis() as u64,
            ok,
        });
        drop(inner);
        let _ = forward.await;
        let recap = match Arc::try_unwrap(tee) {
            Ok(t) => t.recap.into_inner().unwrap_or_default(),
            Err(t) => t.recap.lock().map(|r| r.clone()).unwrap_or_default(),
        };
        recap
    }
}

/// Mark everything downstream of `n` (and `n` itself when `include_self`)
/// skipped because of `cause`.
fn skip_from(
    plan: &Plan,
    n: NodeIndex,
    cause: &Cause,
    state: &mut [State],
    events: &EventSink,
    include_self: bool,
) {
    let g = &plan.graph;
    let mut bfs = Bfs::new(g, n);
    while let Some(m) = bfs.next(g) {
        if m == n && !include_self {
            continue;
        }
        if state[m.index()] != State::Waiting {
            continue;
        }
        state[m.index()] = State::Skipped;
        events.send(Event::UnitSkipped {
            t_ms: events.t_ms(),
            host: g[m].host.clone(),
            role: g[m].role.name.clone(),
            cause: cause.clone(),
        });
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
