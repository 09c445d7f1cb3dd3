//! How every command talks: people get lines on stderr (stdout holds
//! results), `--json` gets one JSON object per line on stdout, from one
//! contract for all commands (docs/events.schema.json, docs/operations.md):
//!
//! * the engine's events of each plan (`run_start` ... `run_end`);
//! * `step` (progress of a command) and `warning`;
//! * `recap` after each plan;
//! * `host_result` per host of `exec`;
//! * exactly one `result` (what the command did) or `error` (why it
//!   failed, with the exit code) at the end.
//!
//! Nothing else is printed on stdout in JSON mode.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ez_engine::{EventConsumer, JsonLinesWriter};
use serde_json::{json, Map, Value};

use crate::progress::{Bars, Lines};
use crate::style::Style;

pub struct Output {
    pub json: bool,
    pub style: Style,
    /// Tests: JSON lines go here instead of stdout.
    capture: Option<Arc<Mutex<Vec<String>>>>,
    /// A `result` was sent: [`Output::finish`] sends none.
    result_sent: AtomicBool,
}

impl Output {
    pub fn new(json: bool, style: Style) -> Output {
        Output {
            json,
            style,
            capture: None,
            result_sent: AtomicBool::new(false),
        }
    }

    /// JSON lines are collected instead of printed (tests).
    #[cfg(test)]
    pub fn capturing(json: bool) -> (Output, Arc<Mutex<Vec<String>>>) {
        let lines = Arc::new(Mutex::new(Vec::new()));
        (
            Output {
                json,
                style: Style { color: false },
                capture: Some(lines.clone()),
                result_sent: AtomicBool::new(false),
            },
            lines,
        )
    }

    /// One JSON line on stdout (or into the capture).
    pub fn emit(&self, event: &Value) {
        let line = event.to_string();
        match &self.capture {
            Some(c) => c.lock().unwrap_or_else(|p| p.into_inner()).push(line),
            None => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
        }
    }

    /// Progress of a command: `==> message` on stderr, or a `step` event.
    pub fn step(&self, message: impl AsRef<str>) {
        let message = message.as_ref();
        if self.json {
            self.emit(&json!({"event": "step", "message": message}));
        } else {
            eprintln!("{} {message}", self.style.bold("==>"));
        }
    }

    /// Something that does not stop the command: on stderr, or a
    /// `warning` event (the same event the engine sends).
    pub fn warn(&self, message: impl AsRef<str>) {
        let message = message.as_ref();
        if self.json {
            self.emit(&json!({"event": "warning", "message": message}));
        } else {
            eprintln!("{} {message}", self.style.red("warning:"));
        }
    }

    /// What the command did, in JSON mode: `{"event":"result","command":
    /// ..., <fields>}`. People get their own text from the command.
    pub fn result(&self, command: &str, fields: Value) {
        if !self.json {
            return;
        }
        self.result_sent.store(true, Ordering::Relaxed);
        let mut m = Map::new();
        m.insert("event".into(), json!("result"));
        m.insert("command".into(), json!(command));
        if let Value::Object(f) = fields {
            for (k, v) in f {
                if k != "event" && k != "command" {
                    m.insert(k, v);
                }
            }
        }
        self.emit(&Value::Object(m));
    }
}

impl Output {
    /// After a command succeeded: its `result`, if it sent none itself.
    pub fn finish(&self, command: &str) {
        if self.json && !self.result_sent.load(Ordering::Relaxed) {
            self.result(command, json!({}));
        }
    }
}

/// The procedures of ez-ops report through this: the same lines and
/// events as the CLI's own, and the engine's events of each plan as bars
/// (a terminal), plain lines (stderr elsewhere) or JSON lines.
impl ez_ops::Report for Output {
    fn json(&self) -> bool {
        self.json
    }

    fn step(&self, message: &str) {
        Output::step(self, message);
    }

    fn warn(&self, message: &str) {
        Output::warn(self, message);
    }

    fn emit(&self, event: &Value) {
        Output::emit(self, event);
    }

    fn result(&self, command: &str, fields: Value) {
        Output::result(self, command, fields);
    }

    fn show_recap(&self, recap: &ez_engine::Recap) {
        eprint!("{}", crate::progress::recap(recap, self.style));
    }

    fn plan_screen(&self, hosts: &[String], dry_run: bool) -> Box<dyn EventConsumer + Send> {
        if self.json {
            Box::new(JsonLinesWriter::new(std::io::stdout()))
        } else if std::io::stderr().is_terminal() {
            Box::new(Bars::new(hosts, self.style, dry_run))
        } else {
            Box::new(Lines::new(std::io::stderr(), self.style, dry_run))
        }
    }

    fn run_log(&self, path: &std::path::Path) {
        if !self.json {
            eprintln!("run log: {}", path.display());
        }
    }
}

/// The `error` event main prints in JSON mode before exiting non-zero.
pub fn error_event(message: &str, exit_code: u8) -> Value {
    json!({"event": "error", "message": message, "exit_code": exit_code})
}

#[cfg(test)]
#[path = "../tests/schema/mod.rs"]
pub mod schema;

#[cfg(test)]
mod tests {
    use super::schema::{check_line, schema, validate};
    use super::*;

    #[test]
    fn the_validator_sees_what_it_should() {
        let s = schema();
        let ok = json!({"event": "step", "message": "x"});
        assert_eq!(validate(&s, &s, &ok, "$"), Ok(()));
        for bad in [
            json!({"event": "step"}),
            json!({"event": "step", "message": 3}),
            json!({"event": "nonsense", "message": "x"}),
            json!({"event": "step", "message": "x", "extra": 1}),
            json!({"message": "x"}),
            json!("step"),
            json!({"event": "result", "command": 7}),
            json!({"event": "error", "message": "x", "exit_code": "3"}),
        ] {
            assert!(validate(&s, &s, &bad, "$").is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn every_kind_of_line_matches_the_schema() {
        let (out, lines) = Output::capturing(true);
        out.step("checking 10.0.0.9");
        out.warn("asked another member");
        out.result("backup", json!({"path": "/x", "size": 3}));
        out.emit(&error_event("no such cluster", 3));
        out.emit(&json!({"event": "recap", "recap": ez_engine::Recap::default()}));
        out.emit(&json!({"event": "recap", "label": "add-node 10.0.0.9", "recap": ez_engine::Recap::default()}));
        out.emit(&json!({"event": "host_result", "host": "10.0.0.1", "rc": 0, "stdout": "", "stderr": ""}));
        out.emit(&json!({"event": "host_result", "host": "10.0.0.1", "error": "unreachable"}));
        out.emit(&ez_ops::remote::ssh_traffic(&ez_ssh::Pool::new(
            Default::default(),
        )));
        out.emit(&json!({"event": "ssh_traffic", "hosts": {"10.0.0.1": {"channels": 12, "bytes_sent": 4096}}}));
        let lines = lines.lock().unwrap().clone();
        assert_eq!(lines.len(), 10);
        for l in &lines {
            check_line(l).unwrap_or_else(|e| panic!("{e}"));
        }
        // In plain mode nothing goes to the JSON stream.
        let (plain, none) = Output::capturing(false);
        plain.step("x");
        plain.warn("y");
        plain.result("backup", json!({}));
        assert!(none.lock().unwrap().is_empty());
    }

    /// Every engine event, as the engine serializes it.
    #[test]
    fn the_engines_events_match_the_schema() {
        use ez_engine::{Cause, Event, Status};
        let cause = Cause {
            role: "etcd".into(),
            host: "10.0.0.1".into(),
            task: Some("t".into()),
            error: "boom".into(),
        };
        let events = vec![
            Event::RunStart {
                t_ms: 0,
                at: "2024-01-01T00:00:00Z".into(),
                units: 2,
                hosts: vec!["10.0.0.1".into()],
                dry_run: true,
            },
            Event::UnitStart {
                t_ms: 1,
                host: "h".into(),
                role: "r".into(),
                tasks: 3,
            },
            Event::TaskStart {
                t_ms: 1,
                host: "h".into(),
                role: "r".into(),
                task: "t".into(),
            },
            Event::TaskEnd {
                t_ms: 2,
                host: "h".into(),
                role: "r".into(),
                task: "t".into(),
                status: Status::Unknown,
                duration_ms: 1,
                changes: vec!["x".into()],
                diff: Some("d".into()),
                error: Some("e".into()),
                reason: Some("why".into()),
                ignored: true,
                unreachable: true,
                handler: true,
            },
            Event::TaskEnd {
                t_ms: 2,
                host: "h".into(),
                role: "r".into(),
                task: "t".into(),
                status: Status::Ok,
                duration_ms: 1,
                changes: vec![],
                diff: None,
                error: None,
                reason: None,
                ignored: false,
                unreachable: false,
                handler: false,
            },
            Event::UnitEnd {
                t_ms: 3,
                host: "h".into(),
                role: "r".into(),
                status: Status::Failed,
                duration_ms: 2,
                failure: Some(cause.clone()),
                unreachable: true,
            },
            Event::UnitSkipped {
                t_ms: 3,
                host: "h".into(),
                role: "r".into(),
                cause: Cause {
                    task: None,
                    ..cause
                },
            },
            Event::Warning {
                t_ms: 4,
                message: "w".into(),
            },
            Event::RunEnd {
                t_ms: 5,
                duration_ms: 5,
                ok: false,
            },
        ];
        for e in events {
            let line = serde_json::to_string(&e).unwrap();
            check_line(&line).unwrap_or_else(|err| panic!("{err}"));
        }
    }

    /// add-etcd, del-etcd, backup and restore speak through these: in JSON
    /// mode their steps were silent and their warnings plain text on
    /// stderr, while add-node sent events.
    #[test]
    fn steps_and_warnings_are_events_in_json_mode() {
        let (out, lines) = Output::capturing(true);
        ez_ops::etcd::say(&out, "member add etcd-10.0.0.9");
        ez_ops::etcd::warn(&out, "asked another member");
        let lines = lines.lock().unwrap().clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        for l in &lines {
            check_line(l).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(lines[0].contains("\"event\":\"step\""), "{}", lines[0]);
        assert!(lines[1].contains("\"event\":\"warning\""), "{}", lines[1]);
    }
}
