//! The printed table: for each (workload, N, cold/warm), min and median
//! wall seconds for ours and the peer, and peer/ours; then where the CPU
//! went (controller and lab machines, medians).

use std::fmt::Write as _;

use serde::Serialize;

use crate::stats::{ratio, Samples};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Cold,
    Warm,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Cold => "cold",
            Phase::Warm => "warm",
        }
    }
}

/// Wall, controller CPU and lab CPU samples of one tool (seconds).
#[derive(Debug, Clone, Default)]
pub struct ToolSamples {
    pub wall: Samples,
    pub controller_cpu: Samples,
    pub lab_cpu: Samples,
    /// SSH operations (round trips) per host: ezctl's channels, the
    /// peer's ssh/sftp/scp processes.
    pub round_trips: Samples,
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    pub workload: String,
    pub n: usize,
    pub phase: Phase,
    pub peer: String,
    pub ours: ToolSamples,
    pub theirs: ToolSamples,
}

impl Row {
    pub fn new(workload: &str, n: usize, phase: Phase, peer: &str) -> Row {
        Row {
            workload: workload.into(),
            n,
            phase,
            peer: peer.into(),
            ours: ToolSamples::default(),
            theirs: ToolSamples::default(),
        }
    }

    /// Peer median over ours median.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.theirs.wall.median(), self.ours.wall.median())
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |s| format!("{s:.2}"))
}

/// The main table.
pub fn table(rows: &[Row]) -> String {
    let w = rows
        .iter()
        .map(|r| r.workload.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<w$} {:>4} {:<4} {:>3} | {:>9} {:>9} | {:<9} {:>9} {:>9} | {:>9}",
        "workload",
        "N",
        "run",
        "reps",
        "ours min",
        "ours med",
        "peer",
        "peer min",
        "peer med",
        "peer/ours"
    );
    let _ = writeln!(s, "{}", "-".repeat(w + 89));
    for r in rows {
        let _ = writeln!(
            s,
            "{:<w$} {:>4} {:<4} {:>3} | {:>9} {:>9} | {:<9} {:>9} {:>9} | {:>9}",
            r.workload,
            r.n,
            r.phase.as_str(),
            r.ours.wall.len().min(r.theirs.wall.len()),
            secs(r.ours.wall.min()),
            secs(r.ours.wall.median()),
            r.peer,
            secs(r.theirs.wall.min()),
            secs(r.theirs.wall.median()),
            r.ratio().map_or_else(|| "-".into(), |x| format!("{x:.1}x")),
        );
    }
    s
}

/// CPU seconds (medians): controller (the tool's processes) and lab
/// machines (their cgroup), and SSH round trips per host, ours vs the peer.
/// These do not depend on how fast the box is.
pub fn cpu_table(rows: &[Row]) -> String {
    let w = rows
        .iter()
        .map(|r| r.workload.len())
        .max()
        .unwrap_or(8)
        .max(8);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<w$} {:>4} {:<4} | {:>12} {:>12} {:>9} | {:<9} {:>12} {:>12} {:>9}",
        "workload",
        "N",
        "run",
        "ours ctl cpu",
        "ours lab cpu",
        "ours rt/h",
        "peer",
        "peer ctl cpu",
        "peer lab cpu",
        "peer rt/h"
    );
    let _ = writeln!(s, "{}", "-".repeat(w + 99));
    let trips = |v: Option<f64>| v.map_or_else(|| "-".into(), |t| format!("{t:.1}"));
    for r in rows {
        let _ = writeln!(
            s,
            "{:<w$} {:>4} {:<4} | {:>12} {:>12} {:>9} | {:<9} {:>12} {:>12} {:>9}",
            r.workload,
            r.n,
            r.phase.as_str(),
            secs(r.ours.controller_cpu.median()),
            secs(r.ours.lab_cpu.median()),
            trips(r.ours.round_trips.median()),
            r.peer,
            secs(r.theirs.controller_cpu.median()),
            secs(r.theirs.lab_cpu.median()),
            trips(r.theirs.round_trips.median()),
        );
    }
    s
}

/// Every sample, for a results file.
pub fn to_json(rows: &[Row]) -> serde_json::Value {
    let tool = |t: &ToolSamples| {
        serde_json::json!({
            "wall_s": t.wall.values(),
            "controller_cpu_s": t.controller_cpu.values(),
            "lab_cpu_s": t.lab_cpu.values(),
            "round_trips_per_host": t.round_trips.values(),
            "min_s": t.wall.min(),
            "median_s": t.wall.median(),
        })
    };
    serde_json::Value::Array(
        rows.iter()
            .map(|r| {
                serde_json::json!({
                    "workload": r.workload,
                    "n": r.n,
                    "phase": r.phase,
                    "peer": r.peer,
                    "ours": tool(&r.ours),
                    "theirs": tool(&r.theirs),
                    "ratio_of_medians": r.ratio(),
                })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> Row {
        let mut r = Row::new("A executor", 40, Phase::Warm, "ansible");
        r.ours.wall = [1.0, 2.0, 3.0].into_iter().collect();
        r.theirs.wall = [150.0, 170.0, 160.0].into_iter().collect();
        r.ours.controller_cpu = [0.5].into_iter().collect();
        r.ours.round_trips = [12.0].into_iter().collect();
        r.theirs.round_trips = [41.5].into_iter().collect();
        r
    }

    #[test]
    fn table_shows_min_median_and_ratio_of_medians() {
        let t = table(&[row()]);
        let line = t.lines().nth(2).expect("a data line");
        assert!(line.starts_with("A executor"), "{line}");
        assert!(line.contains("  40 warm   3 |"), "{line}");
        assert!(line.contains("1.00      2.00"), "{line}");
        assert!(line.contains("150.00    160.00"), "{line}");
        assert!(line.trim_end().ends_with("80.0x"), "{line}");
    }

    #[test]
    fn missing_samples_print_a_dash() {
        let r = Row::new("B", 7, Phase::Cold, "ansible");
        let t = table(&[r]);
        assert!(t.lines().nth(2).expect("line").trim_end().ends_with('-'));
        let c = cpu_table(&[row()]);
        let line = c.lines().nth(2).expect("line");
        assert!(line.contains("0.50"), "{line}");
        assert!(line.contains("12.0 | ansible"), "{line}");
        assert!(line.trim_end().ends_with("41.5"), "{line}");
    }

    #[test]
    fn json_keeps_every_sample() {
        let j = to_json(&[row()]);
        assert_eq!(j[0]["theirs"]["wall_s"].as_array().map(Vec::len), Some(3));
        assert_eq!(j[0]["phase"], "warm");
        assert_eq!(j[0]["ratio_of_medians"], 80.0);
    }
}
