//! Running one unit (a role on a host): gather the stats of its file targets
//! in one round trip, run its tasks in order, then the handlers they notified.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use serde_json::{json, Map, Value};
use tokio::sync::OnceCell;

use crate::error::TaskError;
use crate::events::{Cause, Event, EventSink, Status};
use crate::modules::files::{HashCache, StatCache};
use crate::modules::{Args, CommandArgs, Cx, DryRun, HostState, Module, ModuleKind};
use crate::role::{LoopSpec, Role, Task};
use crate::scheduler::RunOptions;
use crate::targets::TargetHost;
use crate::transport::{Connector, DryRunTransport, Transport, TransportError};
use crate::vars::{eval_condition, eval_expr, render_value, unit_context};

pub(crate) type ConnCell = OnceCell<Result<Arc<dyn Transport>, TransportError>>;

/// Everything a unit needs, owned, so it can run on its own tokio task.
pub(crate) struct UnitJob {
    pub role: Arc<Role>,
    pub host: TargetHost,
    pub tasks: Vec<usize>,
    pub run_once_here: bool,
    pub vars: Map<String, Value>,
    pub conn: Arc<ConnCell>,
    pub connector: Arc<dyn Connector>,
    pub controller: Arc<dyn Transport>,
    pub host_state: Arc<HostState>,
    pub hashes: Arc<HashCache>,
    pub events: EventSink,
    pub options: RunOptions,
    /// Dry-run: an earlier task of this unit would have changed something,
    /// so later tasks may see a host that a real run would not leave.
    pub dry_pending: AtomicBool,
}

pub(crate) enum UnitOutcome {
    Done,
    Failed { cause: Cause, unreachable: bool },
}

/// How one task went.
struct TaskReport {
    status: Status,
    error: Option<TaskError>,
}

impl UnitJob {
    fn cause(&self, task: Option<&str>, error: String) -> Cause {
        Cause {
            role: self.role.name.clone(),
            host: self.host.name.clone(),
            task: task.map(str::to_string),
            error,
        }
    }

    pub(crate) async fn run(mut self) -> UnitOutcome {
        let started = Instant::now();
        let vars = std::mem::take(&mut self.vars);
        self.events.send(Event::UnitStart {
            t_ms: self.events.t_ms(),
            host: self.host.name.clone(),
            role: self.role.name.clone(),
            tasks: self.tasks.len(),
        });
        let (status, failure) = match self.run_inner(vars).await {
            Ok(changed) => (if changed { Status::Changed } else { Status::Ok }, None),
            Err((cause, unreachable)) => (Status::Failed, Some((cause, unreachable))),
        };
        self.events.send(Event::UnitEnd {
            t_ms: self.events.t_ms(),
            host: self.host.name.clone(),
            role: self.role.name.clone(),
            status,
            duration_ms: started.elapsed().as_millis() as u64,
            failure: failure.as_ref().map(|(c, _)| c.clone()),
            unreachable: failure.as_ref().is_some_and(|(_, u)| *u),
        });
        match failure {
            None => UnitOutcome::Done,
            Some((cause, unreachable)) => UnitOutcome::Failed { cause, unreachable },
        }
    }

    /// `Ok(changed)`, or the failure and whether the host is gone.
    async fn run_inner(&self, vars: Map<String, Value>) -> Result<bool, (Cause, bool)> {
        let transport = self
            .conn
            .get_or_init(|| self.connector.connect(&self.host))
            .await
            .clone()
            .map_err(|e| (self.cause(None, e.to_string()), e.is_unreachable()))?;
        let transport: Arc<dyn Transport> = if self.options.dry_run {
            Arc::new(DryRunTransport(transport))
        } else {
            transport
        };
        let mut vars = unit_context(vars, &self.role.defaults)
            .map_err(|e| (self.cause(None, format!("role defaults: {e}")), false))?;
        let stats = StatCache::default();
        self.prefetch(&*transport, &mut vars, &stats)
            .await
            .map_err(|e| (self.cause(None, e.to_string()), e.is_unreachable()))?;

        // Tasks left out by tags still register a skipped result, so a later
        // `when: x.changed` in the same role works in a tag-filtered run.
        for (i, task) in self.role.tasks.iter().enumerate() {
            if let (false, Some(name)) = (self.tasks.contains(&i), &task.register) {
                vars.insert(name.as_str(), &json!({ "skipped": true, "changed": false }));
            }
        }
        let mut changed = false;
        let mut notified: BTreeSet<String> = BTreeSet::new();
        let mut failure = None;
        for &i in &self.tasks {
            let task = &self.role.tasks[i];
            let r = self
                .run_task(task, false, &*transport, &mut vars, &stats)
                .await;
            changed |= r.status == Status::Changed;
            if r.status == Status::Changed {
                notified.extend(task.notify.iter().cloned());
            }
            if let Some(e) = r.error {
                if !task.ignore_errors {
                    failure = Some((
                        self.cause(Some(&task.name), self.error_text(task, &e)),
                        e.is_unreachable(),
                    ));
                    break;
                }
            }
        }
        // Handlers notified before a failure still run: the changed config they
        // react to is on the host now, and a later run would not notify again.
        let host_gone = failure.as_ref().is_some_and(|(_, u)| *u);
        if !host_gone {
            for h in self
                .role
                .handlers
                .iter()
                .filter(|h| notified.contains(&h.name))
            {
                let r = self.run_task(h, true, &*transport, &mut vars, &stats).await;
                changed |= r.status == Status::Changed;
                if let Some(e) = r.error {
                    if failure.is_none() && !h.ignore_errors {
                        failure = Some((
                            self.cause(Some(&h.name), self.error_text(h, &e)),
                            e.is_unreachable(),
                        ));
                    }
                }
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(changed),
        }
    }

    fn error_text(&self, task: &Task, e: &TaskError) -> String {
        if task.no_log && matches!(e, TaskError::Failed(_)) {
            "failed (output hidden: no_log)".into()
        } else {
            e.to_string()
        }
    }

    /// One stat round trip for every file target known before running.
    async fn prefetch(
        &self,
        transport: &dyn Transport,
        vars: &mut tera::Context,
        stats: &StatCache,
    ) -> Result<(), TransportError> {
        let mut paths = BTreeSet::new();
        for &i in &self.tasks {
            let task = &self.role.tasks[i];
            let wants = task.module.is_file_module() || task.args.get("creates").is_some();
            if !wants || task.delegate_controller {
                continue;
            }
            // A task whose target needs registered results is checked later.
            let items = match loop_items(task, vars) {
                Ok(items) => items,
                Err(_) => continue,
            };
            for item in items {
                if let Some(it) = &item {
                    vars.insert("item", it);
                }
                if let Ok(args) = render_args(task, vars) {
                    if let Some(p) = args.file_target() {
                        paths.insert(p.to_string());
                    }
                }
            }
            vars.remove("item");
        }
        if paths.is_empty() {
            return Ok(());
        }
        let paths: Vec<String> = paths.into_iter().collect();
        match transport.stat_many(&paths).await {
            Ok(m) => stats.fill(m),
            Err(e) if e.is_unreachable() => return Err(e),
            // Not fatal: each task stats its own target instead.
            Err(e) => self.events.send(Event::Warning {
                t_ms: self.events.t_ms(),
                message: format!(
                    "{} {}: batched stat failed, checking files one by one: {e}",
                    self.host.name, self.role.name
                ),
            }),
        }
        Ok(())
    }

    async fn run_task(
        &self,
        task: &Task,
        handler: bool,
        transport: &dyn Transport,
        vars: &mut tera::Context,
        stats: &StatCache,
    ) -> TaskReport {
        let started = Instant::now();
        let (host, role) = (self.host.name.clone(), self.role.name.clone());
        self.events.send(Event::TaskStart {
            t_ms: self.events.t_ms(),
            host: host.clone(),
            role: role.clone(),
            task: task.name.clone(),
        });
        let mut out = TaskRun::default();
        if task.run_once && !self.run_once_here {
            out.reason = Some("run_once: runs on the play's first host".into());
        } else {
            self.task_items(task, transport, vars, stats, &mut out)
                .await;
        }
        vars.remove("item");

        let status = if out.error.is_some() {
            Status::Failed
        } else if out.changed {
            Status::Changed
        } else if out.unknown {
            Status::Unknown
        } else if out.ran == 0 {
            Status::Skipped
        } else {
            Status::Ok
        };
        if let Some(name) = &task.register {
            let result = if task.loop_over.is_some() {
                json!({ "changed": out.changed, "failed": out.error.is_some(), "results": out.results })
            } else {
                out.results
                    .pop()
                    .unwrap_or_else(|| json!({ "skipped": true, "changed": false }))
            };
            vars.insert(name.as_str(), &result);
        }
        let hide = task.no_log;
        self.events.send(Event::TaskEnd {
            t_ms: self.events.t_ms(),
            host,
            role,
            task: task.name.clone(),
            status,
            duration_ms: started.elapsed().as_millis() as u64,
            changes: if hide && !out.changes.is_empty() {
                vec!["(hidden: no_log)".into()]
            } else {
                out.changes
            },
            diff: if hide || out.diffs.is_empty() {
                None
            } else {
                Some(out.diffs.join(""))
            },
            error: out.error.as_ref().map(|e| self.error_text(task, e)),
            reason: out.reason,
            ignored: out.error.is_some() && task.ignore_errors,
            unreachable: out.error.as_ref().is_some_and(TaskError::is_unreachable),
            handler,
        });
        TaskReport {
            status,
            error: out.error,
        }
    }

    async fn task_items(
        &self,
        task: &Task,
        transport: &dyn Transport,
        vars: &mut tera::Context,
        stats: &StatCache,
        out: &mut TaskRun,
    ) {
        let items = match loop_items(task, vars) {
            Ok(items) => items,
            Err(e) => {
                out.error = Some(e);
                return;
            }
        };
        if self
            .run_batched(task, transport, vars, stats, &items, out)
            .await
        {
            return;
        }
        for item in items {
            if let Some(it) = &item {
                vars.insert("item", it);
            }
            match self.run_item(task, transport, vars, stats).await {
                // In dry-run, a task that needs the output of a task that did
                // not run cannot be judged: skip it, and say why.
                Err(e @ TaskError::Render { .. })
                    if self.options.dry_run && self.dry_pending.load(Ordering::Relaxed) =>
                {
                    out.reason.get_or_insert(format!(
                        "dry run: needs a result that only a real run produces ({e})"
                    ));
                    out.results.push(item_result(
                        &item,
                        json!({"skipped": true, "changed": false}),
                    ));
                }
                r => {
                    if !out.record(&item, r) {
                        return;
                    }
                }
            }
        }
    }

    /// A loop of plain remote commands runs in one round trip
    /// ([`Transport::exec_batch`]) instead of one per item: on a converged
    /// host the per-command session cost is most of a run. Returns false,
    /// having changed nothing, when the loop does not qualify (a `creates`
    /// or `unless` guard, input, a timeout, the controller, dry-run, fewer
    /// than two commands to run, an item that does not render); the caller
    /// then runs it item by item, which gives the same results.
    async fn run_batched(
        &self,
        task: &Task,
        transport: &dyn Transport,
        vars: &mut tera::Context,
        stats: &StatCache,
        items: &[Option<Value>],
        out: &mut TaskRun,
    ) -> bool {
        let commands = matches!(task.module, ModuleKind::Command | ModuleKind::Shell);
        if !commands || task.delegate_controller || self.options.dry_run || items.len() < 2 {
            return false;
        }
        enum Slot {
            Skipped(String),
            Unchanged(Map<String, Value>),
            Run(Box<CommandArgs>, String),
        }
        let mut slots = Vec::with_capacity(items.len());
        let mut batch = Vec::new();
        for item in items {
            if let Some(it) = item {
                vars.insert("item", it);
            }
            let mut skipped = None;
            for cond in &task.when {
                match eval_condition(cond, vars) {
                    Ok(true) => {}
                    Ok(false) => {
                        skipped = Some(format!("when: {cond}"));
                        break;
                    }
                    Err(_) => return false,
                }
            }
            if let Some(reason) = skipped {
                slots.push(Slot::Skipped(reason));
                continue;
            }
            let Ok(Args::Command(c)) = render_args(task, vars) else {
                return false;
            };
            let Some(command) = c.batch_command() else {
                return false;
            };
            let cx = self.cx(transport, vars, stats, task);
            match c.check(&cx).await {
                Ok(None) => slots.push(Slot::Unchanged(c.unchanged_data())),
                Ok(Some(change)) => {
                    batch.push(command);
                    slots.push(Slot::Run(Box::new(c), change.summary));
                }
                Err(_) => return false,
            }
        }
        if batch.len() < 2 {
            return false;
        }
        let (mut outputs, mut error) = match transport.exec_batch(&batch).await {
            Ok(outputs) => (outputs.into_iter(), None),
            Err(e) => (Vec::new().into_iter(), Some(e)),
        };
        let mut any_changed = false;
        for (item, slot) in items.iter().zip(slots) {
            if let Some(it) = item {
                vars.insert("item", it);
            }
            let r = match slot {
                Slot::Skipped(reason) => Ok(ItemResult::Skipped(reason)),
                Slot::Unchanged(data) => Ok(ItemResult::Done {
                    changed: false,
                    change: None,
                    diff: None,
                    data,
                    failed: None,
                }),
                Slot::Run(c, summary) => match (outputs.next(), error.take()) {
                    (Some(output), _) => c.judge(output, vars).map(|applied| {
                        any_changed |= applied.changed;
                        ItemResult::Done {
                            changed: applied.changed,
                            change: applied.changed.then_some(summary),
                            diff: None,
                            data: applied.data,
                            failed: applied.failed,
                        }
                    }),
                    (None, Some(e)) => Err(e.into()),
                    // An earlier command failed and stopped the batch; its
                    // result already ended the loop.
                    (None, None) => break,
                },
            };
            if !out.record(item, r) {
                break;
            }
        }
        // A command may have touched any file; forget what was gathered.
        if any_changed {
            stats.clear();
        }
        true
    }

    fn cx<'a>(
        &'a self,
        transport: &'a dyn Transport,
        vars: &'a tera::Context,
        stats: &'a StatCache,
        task: &Task,
    ) -> Cx<'a> {
        Cx {
            transport,
            target: transport,
            controller: &*self.controller,
            role: &self.role,
            vars,
            stats,
            hashes: &self.hashes,
            host: &self.host_state,
            want_diff: (self.options.dry_run || self.options.diff) && !task.no_log,
        }
    }

    async fn run_item(
        &self,
        task: &Task,
        transport: &dyn Transport,
        vars: &tera::Context,
        stats: &StatCache,
    ) -> Result<ItemResult, TaskError> {
        for cond in &task.when {
            if !eval_condition(cond, vars)? {
                return Ok(ItemResult::Skipped(format!("when: {cond}")));
            }
        }
        let args = render_args(task, vars)?;
        let module = args.module();
        // A delegated task sees the controller's files: it must not share the
        // host's stat cache, where the same path means another machine.
        let controller_stats = StatCache::default();
        let target = transport;
        let (transport, stats) = if task.delegate_controller {
            (&*self.controller, &controller_stats)
        } else {
            (transport, stats)
        };
        let cx = Cx {
            target,
            ..self.cx(transport, vars, stats, task)
        };
        let Some(change) = module.check(&cx).await? else {
            return Ok(ItemResult::Done {
                changed: false,
                change: None,
                diff: None,
                data: module.unchanged_data(),
                failed: None,
            });
        };
        if self.options.dry_run && !module.read_only() {
            let mut data = Map::new();
            data.insert("dry_run".into(), true.into());
            // What a later task sees of this one: changed, to be safe.
            let unknown = |reason: String| {
                self.dry_pending.store(true, Ordering::Relaxed);
                let mut data = data.clone();
                data.insert("changed".into(), true.into());
                Ok(ItemResult::Unknown {
                    change: change.summary.clone(),
                    reason,
                    data,
                })
            };
            // After a change this run would make, a prediction reads a
            // host the real run would not see: it says nothing.
            let pending = self.dry_pending.load(Ordering::Relaxed);
            return match module.dry_run(&cx).await? {
                DryRun::Skip => Ok(ItemResult::Skipped("dry run".into())),
                DryRun::Certain => {
                    self.dry_pending.store(true, Ordering::Relaxed);
                    Ok(ItemResult::Done {
                        changed: true,
                        change: Some(change.summary),
                        diff: change.diff,
                        data,
                        failed: None,
                    })
                }
                DryRun::Unknown => {
                    unknown("dry run: a command without a dry-run counterpart".into())
                }
                DryRun::Predicted(_) if pending => unknown(
                    "dry run: an earlier task would change what this one's dry run reads".into(),
                ),
                DryRun::Predicted(p) => {
                    if p.changed {
                        self.dry_pending.store(true, Ordering::Relaxed);
                    }
                    Ok(ItemResult::Done {
                        changed: p.changed,
                        change: p.changed.then_some(change.summary),
                        diff: None,
                        data: p.data,
                        failed: p.failed,
                    })
                }
            };
        }
        let summary = change.summary.clone();
        let diff = change.diff.clone();
        let applied = module.apply(&cx, change).await?;
        if self.options.dry_run && self.dry_pending.load(Ordering::Relaxed) {
            if let Some(f) = &applied.failed {
                return Ok(ItemResult::Skipped(format!(
                    "dry run: read-only check failed, likely because earlier changes were not applied: {f}"
                )));
            }
        }
        // A command may have touched any file; forget what was gathered.
        if applied.changed && !task.module.is_file_module() {
            stats.clear();
        }
        Ok(ItemResult::Done {
            changed: applied.changed,
            change: applied.changed.then_some(summary),
            diff: if applied.changed { diff } else { None },
            data: applied.data,
            failed: applied.failed,
        })
    }
}

#[derive(Default)]
struct TaskRun {
    ran: usize,
    changed: bool,
    /// Dry run: some item would run with an unknown outcome.
    unknown: bool,
    changes: Vec<String>,
    diffs: Vec<String>,
    results: Vec<Value>,
    error: Option<TaskError>,
    reason: Option<String>,
}

impl TaskRun {
    /// Adds one item's outcome; false when the loop must stop (it failed).
    fn record(&mut self, item: &Option<Value>, r: Result<ItemResult, TaskError>) -> bool {
        match r {
            Ok(ItemResult::Skipped(reason)) => {
                self.reason.get_or_insert(reason);
                self.results.push(item_result(
                    item,
                    json!({"skipped": true, "changed": false}),
                ));
                true
            }
            Ok(ItemResult::Unknown {
                change,
                reason,
                data,
            }) => {
                self.ran += 1;
                self.unknown = true;
                self.reason.get_or_insert(reason);
                self.changes
                    .push(format!("would run, outcome unknown: {change}"));
                let mut r = Value::Object(data);
                r["failed"] = false.into();
                self.results.push(item_result(item, r));
                true
            }
            Ok(ItemResult::Done {
                changed,
                change,
                diff,
                data,
                failed,
            }) => {
                self.ran += 1;
                self.changed |= changed;
                self.changes.extend(change);
                self.diffs.extend(diff);
                let mut r = Value::Object(data);
                r["changed"] = changed.into();
                r["failed"] = failed.is_some().into();
                self.results.push(item_result(item, r));
                match failed {
                    Some(f) => {
                        self.error = Some(TaskError::Failed(f));
                        false
                    }
                    None => true,
                }
            }
            Err(e) => {
                self.ran += 1;
                self.results.push(item_result(
                    item,
                    json!({"failed": true, "changed": false, "msg": e.to_string()}),
                ));
                self.error = Some(e);
                false
            }
        }
    }
}

enum ItemResult {
    Skipped(String),
    /// Dry run: would run, with an outcome only a real run can tell.
    Unknown {
        change: String,
        reason: String,
        data: Map<String, Value>,
    },
    Done {
        changed: bool,
        change: Option<String>,
        diff: Option<String>,
        data: Map<String, Value>,
        failed: Option<String>,
    },
}

fn item_result(item: &Option<Value>, mut r: Value) -> Value {
    if let (Some(i), Value::Object(m)) = (item, &mut r) {
        m.insert("item".into(), i.clone());
    }
    r
}

/// `[None]` without a loop, else one entry per item.
pub(crate) fn loop_items(
    task: &Task,
    vars: &tera::Context,
) -> Result<Vec<Option<Value>>, TaskError> {
    let items = match &task.loop_over {
        None => return Ok(vec![None]),
        Some(LoopSpec::Items(items)) => items
            .iter()
            .map(|i| render_value(i, vars))
            .collect::<Result<Vec<_>, _>>()?,
        Some(LoopSpec::Expr(e)) => {
            let expr = e.trim();
            let expr = expr
                .strip_prefix("{{")
                .and_then(|x| x.strip_suffix("}}"))
                .unwrap_or(expr);
            match eval_expr(expr, vars)? {
                Value::Array(a) => a,
                other => {
                    return Err(TaskError::Render {
                        what: format!("loop `{e}`"),
                        detail: format!("expected a list, got {other}"),
                    })
                }
            }
        }
    };
    Ok(items.into_iter().map(Some).collect())
}

/// Render a task's arguments for this host (and item) and type them.
pub(crate) fn render_args(task: &Task, vars: &tera::Context) -> Result<Args, TaskError> {
    let raw_keys = task.module.raw_keys();
    let Value::Object(m) = &task.args else {
        return Err(TaskError::Args("arguments must be a mapping".into()));
    };
    let mut out = Map::new();
    for (k, v) in m {
        let v = if raw_keys.contains(&k.as_str()) {
            v.clone()
        } else {
            render_value(v, vars).map_err(|e| match e {
                TaskError::Render { what, detail } => TaskError::Render {
                    what: format!("argument `{k}` ({what})"),
                    detail,
                },
                other => other,
            })?
        };
        out.insert(k.clone(), v);
    }
    Args::parse(task.module, &Value::Object(out)).map_err(TaskError::Args)
}
