//! Shared helpers: a cluster of "hosts" that are directories on this machine,
//! reached with the real LocalTransport.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use ez_engine::*;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn roles_dir() -> PathBuf {
    fixtures().join("roles")
}

pub fn playbook(name: &str) -> Playbook {
    Playbook::load(&fixtures().join("playbooks").join(name)).expect("fixture playbook loads")
}

/// `n` hosts h1..hn, each rooted in its own directory under `dir`; h1 is
/// also in group `leader`.
pub fn cluster(dir: &Path, n: usize) -> Targets {
    let hosts = (1..=n)
        .map(|i| {
            let mut h = TargetHost::new(format!("h{i}"))
                .group("all_nodes")
                .var(
                    "root",
                    dir.join(format!("h{i}")).to_string_lossy().into_owned(),
                )
                .var("ip", format!("10.0.0.{i}"));
            if i == 1 {
                h = h.group("leader");
            }
            h
        })
        .collect();
    Targets {
        globals: Default::default(),
        hosts,
    }
}

pub fn root(dir: &Path, host: &str) -> PathBuf {
    dir.join(host)
}

/// Run a plan with real local transports; returns the recap and every event.
pub async fn run_plan(plan: &Plan, runner: &Runner) -> (Recap, Vec<Event>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let recap = runner.run(plan, EventSink::new(tx)).await;
    let mut events = Vec::new();
    while let Ok(e) = rx.try_recv() {
        events.push(e);
    }
    (recap, events)
}

pub async fn run(pb: &str, targets: Targets, options: RunOptions) -> (Recap, Vec<Event>) {
    let plan = Plan::build(
        &roles_dir(),
        &[playbook(pb)],
        targets,
        &PlanFilter::default(),
    )
    .expect("plan builds");
    let runner = Runner::new(Arc::new(LocalConnector::new())).with_options(options);
    run_plan(&plan, &runner).await
}

pub fn dry() -> RunOptions {
    RunOptions {
        dry_run: true,
        ..Default::default()
    }
}

/// Counts what the engine asks of each host, delegating to LocalTransport.
#[derive(Default)]
pub struct Counters {
    pub put: AtomicUsize,
    pub exec: AtomicUsize,
    pub stat_many: AtomicUsize,
    pub fetch: AtomicUsize,
}

pub struct CountingTransport {
    inner: LocalTransport,
    pub counters: Arc<Counters>,
}

#[async_trait]
impl Transport for CountingTransport {
    fn host(&self) -> &str {
        self.inner.host()
    }
    async fn exec(&self, cmd: &str, opts: ExecOpts) -> Result<ExecOutput, TransportError> {
        self.counters.exec.fetch_add(1, Ordering::SeqCst);
        self.inner.exec(cmd, opts).await
    }
    async fn put(
        &self,
        src: PutSource,
        dest: &str,
        mode: Option<u32>,
        owner: Option<&str>,
    ) -> Result<(), TransportError> {
        self.counters.put.fetch_add(1, Ordering::SeqCst);
        self.inner.put(src, dest, mode, owner).await
    }
    async fn stat_many(
        &self,
        paths: &[String],
    ) -> Result<std::collections::BTreeMap<String, Option<FileStat>>, TransportError> {
        self.counters.stat_many.fetch_add(1, Ordering::SeqCst);
        // The default implementation: one exec of the stat script.
        self.inner.stat_many(paths).await
    }
    async fn fetch(&self, remote: &str) -> Result<Vec<u8>, TransportError> {
        self.counters.fetch.fetch_add(1, Ordering::SeqCst);
        self.inner.fetch(remote).await
    }
}

/// Every host gets a CountingTransport sharing one set of counters.
pub struct CountingConnector {
    pub counters: Arc<Counters>,
}

#[async_trait]
impl Connector for CountingConnector {
    async fn connect(&self, host: &TargetHost) -> Result<Arc<dyn Transport>, TransportError> {
        Ok(Arc::new(CountingTransport {
            inner: LocalTransport::new(host.name.clone()),
            counters: self.counters.clone(),
        }))
    }
}

/// Index of the first event matching `f`.
pub fn position(events: &[Event], f: impl Fn(&Event) -> bool) -> Option<usize> {
    events.iter().position(f)
}

pub fn is_unit_start(e: &Event, role: &str, host: &str) -> bool {
    matches!(e, Event::UnitStart { role: r, host: h, .. } if r == role && h == host)
}

pub fn is_unit_end(e: &Event, role: &str, host: &str) -> bool {
    matches!(e, Event::UnitEnd { role: r, host: h, .. } if r == role && h == host)
}

/// Every file under `dir`, relative, sorted (to assert "nothing changed").
pub fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        if let Ok(rd) = std::fs::read_dir(d) {
            for e in rd.flatten() {
                let p = e.path();
                out.push(p.strip_prefix(base).unwrap().to_string_lossy().into_owned());
                if p.is_dir() {
                    walk(base, &p, out);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
