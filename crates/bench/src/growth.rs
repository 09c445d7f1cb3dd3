//! The growth table: how ezctl's cost grows with the number of hosts, from
//! the rows of one workload at several N. Each line is one N, with the
//! medians of our samples (over every row of that N and phase: the rows of
//! each peer tuning carry our runs too) and the marginal cost per host
//! against the previous N: (cost(N) - cost(N_prev)) / (N - N_prev). Linear
//! growth shows as a flat marginal column; a rising one is worse than
//! linear.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::report::{Phase, Row};
use crate::stats::Samples;

/// One N of one workload: medians in seconds, RSS in KiB.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub n: usize,
    pub cold_wall: Option<f64>,
    pub warm_wall: Option<f64>,
    pub cold_ctl_cpu: Option<f64>,
    pub warm_ctl_cpu: Option<f64>,
    pub cold_lab_cpu: Option<f64>,
    /// Largest peak RSS of our main process over the runs at this N.
    pub rss_kib: Option<u64>,
}

/// Our medians at each N of `workload`, in increasing N. `rss` gives the
/// peak RSS (KiB) of our tool at an N, where measured.
pub fn points(rows: &[Row], workload: &str, rss: impl Fn(usize) -> Option<u64>) -> Vec<Point> {
    let mut by_n: BTreeMap<usize, [(Samples, Samples, Samples); 2]> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.workload == workload) {
        let slot = &mut by_n.entry(r.n).or_default()[match r.phase {
            Phase::Cold => 0,
            Phase::Warm => 1,
        }];
        for v in r.ours.wall.values() {
            slot.0.push_value(*v);
        }
        for v in r.ours.controller_cpu.values() {
            slot.1.push_value(*v);
        }
        for v in r.ours.lab_cpu.values() {
            slot.2.push_value(*v);
        }
    }
    by_n.into_iter()
        .map(|(n, [cold, warm])| Point {
            n,
            cold_wall: cold.0.median(),
            warm_wall: warm.0.median(),
            cold_ctl_cpu: cold.1.median(),
            warm_ctl_cpu: warm.1.median(),
            cold_lab_cpu: cold.2.median(),
            rss_kib: rss(n),
        })
        .collect()
}

/// Milliseconds per added host between two points of one measure.
pub fn marginal_ms(prev: (usize, Option<f64>), this: (usize, Option<f64>)) -> Option<f64> {
    match (prev, this) {
        ((pn, Some(pv)), (n, Some(v))) if n > pn => Some((v - pv) * 1000.0 / (n - pn) as f64),
        _ => None,
    }
}

/// The printed table for `workload`.
pub fn table(workload: &str, points: &[Point]) -> String {
    let s_or_dash = |v: Option<f64>| v.map_or_else(|| "-".into(), |s| format!("{s:.2}"));
    let ms_or_dash = |v: Option<f64>| v.map_or_else(|| "-".into(), |s| format!("{s:.1}"));
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{workload}: ezctl medians in seconds; marginal = ms per added host since the previous N"
    );
    let _ = writeln!(
        s,
        "{:>5} | {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} | {:>11} {:>11} {:>11}",
        "N",
        "cold wall",
        "warm wall",
        "cold ctl",
        "warm ctl",
        "cold lab",
        "RSS MiB",
        "marg. wall",
        "marg. ctl",
        "marg. warm"
    );
    let _ = writeln!(s, "{}", "-".repeat(112));
    let mut prev: Option<&Point> = None;
    for p in points {
        let m =
            |f: fn(&Point) -> Option<f64>| prev.and_then(|q| marginal_ms((q.n, f(q)), (p.n, f(p))));
        let _ = writeln!(
            s,
            "{:>5} | {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} | {:>11} {:>11} {:>11}",
            p.n,
            s_or_dash(p.cold_wall),
            s_or_dash(p.warm_wall),
            s_or_dash(p.cold_ctl_cpu),
            s_or_dash(p.warm_ctl_cpu),
            s_or_dash(p.cold_lab_cpu),
            p.rss_kib
                .map_or_else(|| "-".into(), |k| format!("{:.0}", k as f64 / 1024.0)),
            ms_or_dash(m(|p| p.cold_wall)),
            ms_or_dash(m(|p| p.cold_ctl_cpu)),
            ms_or_dash(m(|p| p.warm_wall)),
        );
        prev = Some(p);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: usize, phase: Phase, peer: &str, wall: &[f64], cpu: &[f64]) -> Row {
        let mut r = Row::new("A light", n, phase, peer);
        r.ours.wall = wall.iter().copied().collect();
        r.ours.controller_cpu = cpu.iter().copied().collect();
        r
    }

    #[test]
    fn points_merge_our_samples_of_every_peer_row_and_sort_by_n() {
        let rows = vec![
            row(100, Phase::Cold, "-", &[10.0], &[2.0]),
            row(10, Phase::Cold, "ansible", &[1.0], &[0.2]),
            row(10, Phase::Cold, "tuned", &[3.0], &[0.4]),
            row(10, Phase::Warm, "ansible", &[0.5], &[0.1]),
            Row::new("other", 10, Phase::Cold, "-"),
        ];
        let p = points(&rows, "A light", |n| (n == 100).then_some(2048));
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].n, 10);
        assert_eq!(p[0].cold_wall, Some(2.0), "median of 1 and 3");
        assert_eq!(p[0].warm_wall, Some(0.5));
        assert_eq!(p[0].rss_kib, None);
        assert_eq!(p[1].cold_wall, Some(10.0));
        assert_eq!(p[1].warm_wall, None);
        assert_eq!(p[1].rss_kib, Some(2048));
    }

    #[test]
    fn marginal_cost_is_per_added_host_in_ms() {
        assert_eq!(marginal_ms((10, Some(1.0)), (100, Some(10.0))), Some(100.0));
        assert_eq!(marginal_ms((10, None), (100, Some(10.0))), None);
        assert_eq!(marginal_ms((100, Some(1.0)), (100, Some(2.0))), None);
    }

    #[test]
    fn table_has_a_line_per_n_with_marginals_from_the_second() {
        let rows = vec![
            row(10, Phase::Cold, "-", &[1.0], &[0.5]),
            row(110, Phase::Cold, "-", &[11.0], &[1.5]),
        ];
        let t = table("A light", &points(&rows, "A light", |_| Some(51200)));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 5, "{t}");
        assert!(lines[3].trim_start().starts_with("10 |"), "{t}");
        assert!(
            lines[3].trim_end().ends_with("-           -           -"),
            "{t}"
        );
        assert!(lines[4].contains("      50 |"), "RSS in MiB: {t}");
        assert!(lines[4].contains("100.0        10.0"), "marginals: {t}");
    }
}
