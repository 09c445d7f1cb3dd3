//! What an `ezctl --json` run reported: its JSON event lines (see the
//! engine README) reduced to what the bench needs — did it succeed, how many
//! tasks changed something, and when each unit ran.

use serde_json::Value;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EventsError {
    #[error("line {line}: not a JSON event: {text}")]
    NotJson { line: usize, text: String },
    #[error("no run_end event: the run did not finish")]
    NoRunEnd,
}

/// One unit (role on host) as it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpan {
    pub role: String,
    pub host: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// `ok`, `changed`, `failed`, ...
    pub status: String,
}

impl UnitSpan {
    pub fn duration_ms(&self) -> u64 {
        self.end_ms.saturating_sub(self.start_ms)
    }
}

/// A finished run, from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunReport {
    pub ok: bool,
    /// `duration_ms` of `run_end`: from the engine's start to its end.
    pub duration_ms: u64,
    pub tasks_changed: usize,
    pub tasks_failed: usize,
    /// `role@host task` of each task that changed something.
    pub changes: Vec<String>,
    pub units: Vec<UnitSpan>,
    /// `role@host task: error` of each failed task, for messages.
    pub failures: Vec<String>,
    /// SSH channels opened per host (`ssh_traffic`): one per command or
    /// transfer, each a round trip.
    pub channels: std::collections::BTreeMap<String, u64>,
}

impl RunReport {
    /// Mean SSH channels (round trips) per host, when the run said.
    pub fn round_trips_per_host(&self) -> Option<f64> {
        (!self.channels.is_empty())
            .then(|| self.channels.values().sum::<u64>() as f64 / self.channels.len() as f64)
    }
}

impl RunReport {
    /// Parses the JSON lines printed by `ezctl --json`. Empty lines are
    /// skipped; anything else that is not JSON is an error (the output
    /// would be mixed with something unexpected).
    pub fn parse(text: &str) -> Result<RunReport, EventsError> {
        let mut r = RunReport::default();
        let mut starts: Vec<(String, String, u64)> = Vec::new();
        let mut ended = false;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(line).map_err(|_| EventsError::NotJson {
                line: i + 1,
                text: line.chars().take(120).collect(),
            })?;
            let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
            match v.get("event").and_then(Value::as_str) {
                Some("unit_start") => starts.push((s("role"), s("host"), n("t_ms"))),
                Some("unit_end") => {
                    let (role, host) = (s("role"), s("host"));
                    let start_ms = starts
                        .iter()
                        .rev()
                        .find(|(r0, h0, _)| *r0 == role && *h0 == host)
                        .map(|(_, _, t)| *t)
                        .unwrap_or_else(|| n("t_ms").saturating_sub(n("duration_ms")));
                    r.units.push(UnitSpan {
                        role,
                        host,
                        start_ms,
                        end_ms: n("t_ms"),
                        status: s("status"),
                    });
                }
                Some("task_end") => match s("status").as_str() {
                    "changed" => {
                        r.tasks_changed += 1;
                        r.changes
                            .push(format!("{}@{} {}", s("role"), s("host"), s("task")));
                    }
                    "failed" if v.get("ignored").and_then(Value::as_bool) != Some(true) => {
                        r.tasks_failed += 1;
                        r.failures.push(format!(
                            "{}@{} {}: {}",
                            s("role"),
                            s("host"),
                            s("task"),
                            s("error")
                        ));
                    }
                    _ => {}
                },
                Some("ssh_traffic") => {
                    if let Some(hosts) = v.get("hosts").and_then(Value::as_object) {
                        for (host, t) in hosts {
                            let c = t.get("channels").and_then(Value::as_u64).unwrap_or(0);
                            *r.channels.entry(host.clone()).or_default() += c;
                        }
                    }
                }
                Some("run_end") => {
                    ended = true;
                    r.ok = v.get("ok").and_then(Value::as_bool).unwrap_or(false);
                    r.duration_ms = n("duration_ms");
                }
                _ => {}
            }
        }
        if !ended {
            return Err(EventsError::NoRunEnd);
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = r#"{"event":"run_start","t_ms":0,"at":"x","units":2,"hosts":["h1"],"dry_run":false}
{"event":"unit_start","t_ms":1,"host":"h1","role":"a","tasks":2}
{"event":"task_end","t_ms":5,"host":"h1","role":"a","task":"t1","status":"changed","duration_ms":4}
{"event":"task_end","t_ms":6,"host":"h1","role":"a","task":"t2","status":"ok","duration_ms":1}
{"event":"unit_end","t_ms":7,"host":"h1","role":"a","status":"changed","duration_ms":6}
{"event":"unit_start","t_ms":8,"host":"h1","role":"b","tasks":1}
{"event":"task_end","t_ms":9,"host":"h1","role":"b","task":"may fail","status":"failed","duration_ms":1,"error":"exit 1","ignored":true}
{"event":"task_end","t_ms":9,"host":"h1","role":"b","task":"boom","status":"failed","duration_ms":1,"error":"exit 2"}
{"event":"unit_end","t_ms":10,"host":"h1","role":"b","status":"failed","duration_ms":2}
{"event":"run_end","t_ms":11,"duration_ms":11,"ok":false}
{"event":"ssh_traffic","hosts":{"h1":{"channels":7,"bytes_sent":10},"h2":{"channels":4,"bytes_sent":0}}}

{"event":"recap","recap":{}}
"#;

    #[test]
    fn counts_changes_failures_and_unit_spans() {
        let r = RunReport::parse(RUN).expect("parses");
        assert!(!r.ok);
        assert_eq!(r.duration_ms, 11);
        assert_eq!(r.tasks_changed, 1);
        assert_eq!(r.changes, vec!["a@h1 t1".to_string()]);
        assert_eq!(r.tasks_failed, 1, "ignored failures do not count");
        assert_eq!(r.failures, vec!["b@h1 boom: exit 2".to_string()]);
        assert_eq!(r.units.len(), 2);
        assert_eq!((r.units[0].start_ms, r.units[0].end_ms), (1, 7));
        assert_eq!(r.units[1].duration_ms(), 2);
        assert_eq!(r.units[1].status, "failed");
        assert_eq!(r.round_trips_per_host(), Some(5.5));
        assert_eq!(RunReport::default().round_trips_per_host(), None);
    }

    #[test]
    fn unfinished_or_mixed_output_is_an_error() {
        assert_eq!(
            RunReport::parse("{\"event\":\"run_start\",\"t_ms\":0}\n"),
            Err(EventsError::NoRunEnd)
        );
        assert!(matches!(
            RunReport::parse("warning: something\n"),
            Err(EventsError::NotJson { line: 1, .. })
        ));
    }
}
