//! The end-of-run summary, built from events like any other consumer.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::events::{Cause, Event, EventConsumer, Status};

/// Task counts for one host (like Ansible's recap line), plus units skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostRecap {
    pub ok: usize,
    pub changed: usize,
    pub failed: usize,
    pub skipped: usize,
    pub unreachable: usize,
    pub ignored: usize,
    pub units_skipped: usize,
    /// Dry run: tasks that would run with an outcome that cannot be known
    /// beforehand ("would run: outcome unknown"); `changed` counts only
    /// what would certainly change.
    pub unknown: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedUnit {
    pub role: String,
    pub host: String,
    pub cause: Cause,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Recap {
    pub hosts: BTreeMap<String, HostRecap>,
    /// Every unit that failed, with its cause.
    pub failures: Vec<Cause>,
    /// Every unit that did not run, and which failure it waited on.
    pub skipped_units: Vec<SkippedUnit>,
    pub duration_ms: u64,
    pub dry_run: bool,
}

impl Recap {
    /// Nothing failed and nothing was skipped for a failure.
    pub fn ok(&self) -> bool {
        self.failures.is_empty() && self.skipped_units.is_empty()
    }

    pub fn host(&self, name: &str) -> HostRecap {
        self.hosts.get(name).cloned().unwrap_or_default()
    }

    pub fn total_changed(&self) -> usize {
        self.hosts.values().map(|h| h.changed).sum()
    }

    /// Dry run: tasks whose outcome only a real run would tell.
    pub fn total_unknown(&self) -> usize {
        self.hosts.values().map(|h| h.unknown).sum()
    }

    fn entry(&mut self, host: &str) -> &mut HostRecap {
        self.hosts.entry(host.to_string()).or_default()
    }
}

impl EventConsumer for Recap {
    fn on_event(&mut self, e: &Event) -> std::io::Result<()> {
        match e {
            Event::RunStart { hosts, dry_run, .. } => {
                self.dry_run = *dry_run;
                for h in hosts {
                    self.entry(h);
                }
            }
            Event::TaskEnd {
                host,
                status,
                ignored,
                unreachable,
                ..
            } => {
                let h = self.entry(host);
                match (status, ignored, unreachable) {
                    (Status::Failed, _, true) => h.unreachable += 1,
                    (Status::Failed, true, _) => h.ignored += 1,
                    (Status::Failed, false, _) => h.failed += 1,
                    (Status::Ok, ..) => h.ok += 1,
                    (Status::Changed, ..) => h.changed += 1,
                    (Status::Skipped, ..) => h.skipped += 1,
                    (Status::Unknown, ..) => h.unknown += 1,
                }
            }
            Event::UnitEnd {
                host,
                failure: Some(cause),
                unreachable,
                ..
            } => {
                // No task ran: the connection itself failed.
                if *unreachable && cause.task.is_none() {
                    self.entry(host).unreachable += 1;
                }
                self.failures.push(cause.clone());
            }
            Event::UnitSkipped {
                host, role, cause, ..
            } => {
                self.entry(host).units_skipped += 1;
                self.skipped_units.push(SkippedUnit {
                    role: role.clone(),
                    host: host.clone(),
                    cause: cause.clone(),
                });
            }
            Event::RunEnd { duration_ms, .. } => self.duration_ms = *duration_ms,
            _ => {}
        }
        Ok(())
    }
}

impl fmt::Display for Recap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.hosts.keys().map(String::len).max().unwrap_or(4).max(4);
        for (name, h) in &self.hosts {
            if self.dry_run {
                writeln!(
                    f,
                    "{name:<width$}  ok={:<4} would_change={:<4} would_run_unknown={:<4} failed={:<4} skipped={:<4} unreachable={:<3} ignored={:<3} units_skipped={}",
                    h.ok, h.changed, h.unknown, h.failed, h.skipped, h.unreachable, h.ignored, h.units_skipped
                )?;
                continue;
            }
            writeln!(
                f,
                "{name:<width$}  ok={:<4} changed={:<4} failed={:<4} skipped={:<4} unreachable={:<3} ignored={:<3} units_skipped={}",
                h.ok, h.changed, h.failed, h.skipped, h.unreachable, h.ignored, h.units_skipped
            )?;
        }
        for c in &self.failures {
            writeln!(f, "FAILED  {c}")?;
        }
        for s in &self.skipped_units {
            writeln!(f, "SKIPPED {}@{}: because {}", s.role, s.host, s.cause)?;
        }
        write!(
            f,
            "{}total time {:.1}s",
            if self.dry_run {
                "dry run: nothing was changed; would change = certain, would run (outcome unknown) = a command only a real run can judge; "
            } else {
                ""
            },
            self.duration_ms as f64 / 1000.0
        )
    }
}
