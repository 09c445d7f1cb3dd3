//! How a procedure tells its caller what is happening. The library never
//! prints: the CLI implements [`Report`] (lines on stderr for people, JSON
//! events on stdout with `--json`), tests can implement it to collect.

use std::path::Path;

use ez_engine::{EventConsumer, Recap};
use serde_json::Value;

pub trait Report: Sync {
    /// Machines are listening (`--json`): events rather than lines.
    fn json(&self) -> bool;

    /// Progress of a command (`==> message`, or a `step` event).
    fn step(&self, message: &str);

    /// Something that does not stop the command (or a `warning` event).
    fn warn(&self, message: &str);

    /// One JSON event (recap, ssh_traffic...). Callers send it only in
    /// JSON mode.
    fn emit(&self, event: &Value);

    /// What the command did, in JSON mode (`result` event).
    fn result(&self, command: &str, fields: Value);

    /// A plan's recap for people (callers send JSON recaps with `emit`).
    fn show_recap(&self, recap: &Recap);

    /// Where the engine's events of one plan go on the screen: bars, plain
    /// lines or JSON lines. `hosts` are the hosts with work in the plan.
    fn plan_screen(&self, hosts: &[String], dry_run: bool) -> Box<dyn EventConsumer + Send>;

    /// A plan's run log was written at `path`.
    fn run_log(&self, path: &Path);
}

/// A [`Report`] for tests: steps and warnings are collected, JSON mode is
/// on so nothing is printed, plan events are dropped.
#[cfg(test)]
pub mod collect {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    pub struct Collected {
        pub steps: Mutex<Vec<String>>,
        pub warnings: Mutex<Vec<String>>,
        pub events: Mutex<Vec<Value>>,
    }

    struct Nowhere;

    impl EventConsumer for Nowhere {
        fn on_event(&mut self, _: &ez_engine::Event) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Report for Collected {
        fn json(&self) -> bool {
            true
        }
        fn step(&self, message: &str) {
            self.steps.lock().unwrap().push(message.to_string());
        }
        fn warn(&self, message: &str) {
            self.warnings.lock().unwrap().push(message.to_string());
        }
        fn emit(&self, event: &Value) {
            self.events.lock().unwrap().push(event.clone());
        }
        fn result(&self, command: &str, fields: Value) {
            self.emit(
                &serde_json::json!({"event": "result", "command": command, "fields": fields}),
            );
        }
        fn show_recap(&self, _: &Recap) {}
        fn plan_screen(&self, _: &[String], _: bool) -> Box<dyn EventConsumer + Send> {
            Box::new(Nowhere)
        }
        fn run_log(&self, _: &Path) {}
    }
}
