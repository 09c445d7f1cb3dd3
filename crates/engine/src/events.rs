//! Typed events: the only output of a run. The CLI draws progress bars from
//! them; [`JsonLinesWriter`] and [`RunLogWriter`] record them; [`crate::Recap`]
//! sums them up. Modules never print.

use std::io::Write;
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Skipped,
    /// Dry run only: the task would run a command whose outcome cannot be
    /// known without running it (no `dry_run` counterpart, or an earlier
    /// task would change what it sees). Not counted as a change.
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Changed => "changed",
            Status::Failed => "failed",
            Status::Skipped => "skipped",
            Status::Unknown => "unknown",
        }
    }
}

/// The failure that made a unit skip.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cause {
    pub role: String,
    pub host: String,
    /// `None` when the host could not be reached at all.
    pub task: Option<String>,
    pub error: String,
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.task {
            Some(t) => write!(
                f,
                "{}@{} task `{t}` failed: {}",
                self.role, self.host, self.error
            ),
            None => write!(f, "{}@{} failed: {}", self.role, self.host, self.error),
        }
    }
}

/// `t_ms` is milliseconds since the run started.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RunStart {
        t_ms: u64,
        /// RFC 3339, UTC.
        at: String,
        units: usize,
        hosts: Vec<String>,
        dry_run: bool,
    },
    UnitStart {
        t_ms: u64,
        host: String,
        role: String,
        tasks: usize,
    },
    TaskStart {
        t_ms: u64,
        host: String,
        role: String,
        task: String,
    },
    TaskEnd {
        t_ms: u64,
        host: String,
        role: String,
        task: String,
        status: Status,
        duration_ms: u64,
        /// What changed (or would, in dry-run), one line per item.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        changes: Vec<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        diff: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// Why it was skipped (`when`, `run_once`, ...).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Failed, but `ignore_errors` let the unit go on.
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        ignored: bool,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        unreachable: bool,
        /// A handler (run because something notified it).
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        handler: bool,
    },
    UnitEnd {
        t_ms: u64,
        host: String,
        role: String,
        status: Status,
        duration_ms: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        failure: Option<Cause>,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        unreachable: bool,
    },
    UnitSkipped {
        t_ms: u64,
        host: String,
        role: String,
        cause: Cause,
    },
    Warning {
        t_ms: u64,
        message: String,
    },
    RunEnd {
        t_ms: u64,
        duration_ms: u64,
        ok: bool,
    },
}

/// The sending side, shared by the scheduler and the units. A consumer that
/// went away does not stop the run.
#[derive(Clone)]
pub struct EventSink {
    tx: Option<UnboundedSender<Event>>,
    start: Instant,
}

impl EventSink {
    pub fn new(tx: UnboundedSender<Event>) -> Self {
        EventSink {
            tx: Some(tx),
            start: Instant::now(),
        }
    }

    /// Events go nowhere (the returned [`crate::Recap`] is still complete).
    pub fn discard() -> Self {
        EventSink {
            tx: None,
            start: Instant::now(),
        }
    }

    pub(crate) fn t_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    pub(crate) fn send(&self, e: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(e);
        }
    }
}

/// Something that records events.
pub trait EventConsumer: Send {
    fn on_event(&mut self, e: &Event) -> std::io::Result<()>;
}

/// Feed every event to every consumer until the run drops its sender.
pub async fn drain(
    mut rx: UnboundedReceiver<Event>,
    consumers: &mut [&mut dyn EventConsumer],
) -> std::io::Result<()> {
    while let Some(e) = rx.recv().await {
        for c in consumers.iter_mut() {
            c.on_event(&e)?;
        }
    }
    Ok(())
}

/// One JSON object per line (`{"event":"task_end","host":...}`).
pub struct JsonLinesWriter<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> JsonLinesWriter<W> {
    pub fn new(out: W) -> Self {
        JsonLinesWriter { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> EventConsumer for JsonLinesWriter<W> {
    fn on_event(&mut self, e: &Event) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, e)?;
        self.out.write_all(b"\n")?;
        self.out.flush()
    }
}

/// A plain-text log, one line per event (diffs indented below their task).
pub struct RunLogWriter<W: Write + Send> {
    out: W,
}

impl<W: Write + Send> RunLogWriter<W> {
    pub fn new(out: W) -> Self {
        RunLogWriter { out }
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

fn secs(ms: u64) -> String {
    format!("{:>8.3}", ms as f64 / 1000.0)
}

impl<W: Write + Send> EventConsumer for RunLogWriter<W> {
    fn on_event(&mut self, e: &Event) -> std::io::Result<()> {
        let o = &mut self.out;
        match e {
            Event::RunStart {
                t_ms,
                at,
                units,
                hosts,
                dry_run,
            } => writeln!(
                o,
                "{} run start {at}: {units} units on {} hosts{}",
                secs(*t_ms),
                hosts.len(),
                if *dry_run { " (dry run)" } else { "" }
            )?,
            Event::UnitStart {
                t_ms,
                host,
                role,
                tasks,
            } => writeln!(o, "{} {host} {role}: start ({tasks} tasks)", secs(*t_ms))?,
            Event::TaskStart { .. } => {}
            Event::TaskEnd {
                t_ms,
                host,
                role,
                task,
                status,
                duration_ms,
                changes,
                diff,
                error,
                reason,
                ignored,
                ..
            } => {
                let mut line = format!(
                    "{} {host} {role} | {task}: {}{} ({duration_ms} ms)",
                    secs(*t_ms),
                    status.as_str(),
                    if *ignored { " (ignored)" } else { "" }
                );
                if let Some(r) = reason {
                    line.push_str(&format!(" [{r}]"));
                }
                writeln!(o, "{line}")?;
                for c in changes {
                    writeln!(o, "           ~ {c}")?;
                }
                if let Some(err) = error {
                    for l in err.lines() {
                        writeln!(o, "           ! {l}")?;
                    }
                }
                if let Some(d) = diff {
                    for l in d.lines() {
                        writeln!(o, "           | {l}")?;
                    }
                }
            }
            Event::UnitEnd {
                t_ms,
                host,
                role,
                status,
                duration_ms,
                ..
            } => writeln!(
                o,
                "{} {host} {role}: {} ({duration_ms} ms)",
                secs(*t_ms),
                status.as_str()
            )?,
            Event::UnitSkipped {
                t_ms,
                host,
                role,
                cause,
            } => writeln!(o, "{} {host} {role}: skipped because {cause}", secs(*t_ms))?,
            Event::Warning { t_ms, message } => writeln!(o, "{} warning: {message}", secs(*t_ms))?,
            Event::RunEnd {
                t_ms,
                duration_ms,
                ok,
            } => writeln!(
                o,
                "{} run end: {} in {:.1}s",
                secs(*t_ms),
                if *ok { "ok" } else { "FAILED" },
                *duration_ms as f64 / 1000.0
            )?,
        }
        o.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task_end() -> Event {
        Event::TaskEnd {
            t_ms: 5,
            host: "10.0.0.1".into(),
            role: "etcd".into(),
            task: "unit".into(),
            status: Status::Changed,
            duration_ms: 12,
            changes: vec!["/etc/x: content".into()],
            diff: None,
            error: None,
            reason: None,
            ignored: false,
            unreachable: false,
            handler: false,
        }
    }

    #[test]
    fn json_lines_one_object_per_line() {
        let mut w = JsonLinesWriter::new(Vec::new());
        w.on_event(&task_end()).unwrap();
        w.on_event(&Event::RunEnd {
            t_ms: 9,
            duration_ms: 9,
            ok: true,
        })
        .unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["event"], "task_end");
        assert_eq!(lines[0]["status"], "changed");
        assert_eq!(lines[0]["duration_ms"], 12);
        assert!(lines[0].get("diff").is_none());
        assert_eq!(lines[1]["event"], "run_end");
    }

    #[test]
    fn run_log_is_readable_text() {
        let mut w = RunLogWriter::new(Vec::new());
        w.on_event(&task_end()).unwrap();
        let text = String::from_utf8(w.into_inner()).unwrap();
        assert!(
            text.contains("10.0.0.1 etcd | unit: changed (12 ms)"),
            "{text}"
        );
        assert!(text.contains("~ /etc/x: content"), "{text}");
    }
}
