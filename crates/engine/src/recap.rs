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
    /// When each host's last unit ended (ms since the run started): on a
    /// run over many hosts, the slow ones are the news.
    pub finished_ms: BTreeMap<String, u64>,
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

    /// The `k` hosts that finished last, latest first, with when (ms).
    pub fn slowest(&self, k: usize) -> Vec<(&str, u64)> {
        let mut v: Vec<(&str, u64)> = self
            .finished_ms
            .iter()
            .map(|(h, t)| (h.as_str(), *t))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        v.truncate(k);
        v
    }

    /// The median of when hosts finished (ms), if any did.
    pub fn median_finished_ms(&self) -> Option<u64> {
        let mut v: Vec<u64> = self.finished_ms.values().copied().collect();
        v.sort_unstable();
        v.get(v.len() / 2).copied()
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
                t_ms,
                host,
                failure,
                unreachable,
                ..
            } => {
                let end = self.finished_ms.entry(host.clone()).or_default();
                *end = (*end).max(*t_ms);
                if let Some(cause) = failure {
                    // No task ran: the connection itself failed.
                    if *unreachable && cause.task.is_none() {
                        self.entry(host).unreachable += 1;
                    }
                    self.failures.push(cause.clone());
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn unit_end(host: &str, t_ms: u64) -> Event {
        Event::UnitEnd {
            t_ms,
            host: host.into(),
            role: "r".into(),
            status: Status::Ok,
            duration_ms: 1,
            failure: None,
            unreachable: false,
        }
    }

    #[test]
    fn a_host_finishes_with_its_last_unit_and_the_slowest_come_first() {
        let mut r = Recap::default();
        for (h, t) in [("a", 100), ("b", 900), ("a", 300), ("c", 200), ("d", 250)] {
            r.on_event(&unit_end(h, t)).expect("event");
        }
        assert_eq!(r.finished_ms["a"], 300, "the last unit of a host counts");
        assert_eq!(r.slowest(2), vec![("b", 900), ("a", 300)]);
        assert_eq!(r.median_finished_ms(), Some(300));
        assert!(r.failures.is_empty(), "no failure was reported");
        assert_eq!(Recap::default().median_finished_ms(), None);
    }
}
