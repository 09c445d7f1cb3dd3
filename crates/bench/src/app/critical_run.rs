//! `ezctl setup <c> all --json` on fresh machines: the critical path (the
//! longest chain of dependent units of ezctl's plan, with the durations the
//! events report) against the wall time, and where the work went. Then a
//! warm re-run, which must change nothing.

use std::fmt::Write as _;

use anyhow::Result;
use ez_bench::critical::{critical_path, observed_chain, work_by_role, Because};
use ez_bench::plan_edges::plan_edges;
use ez_bench::report::Phase;

use super::tools;
use super::{say, Bench};

pub fn run(bench: &mut Bench, n: usize) -> Result<()> {
    bench.home.restore_images()?;
    let lab = bench.fresh_lab(n)?;
    let cluster = lab.name();
    let cluster_dir = bench.cluster_dir()?;
    let cold = tools::ezctl(bench, &["setup", &cluster, "all"])?;
    cold.expect("ezctl setup all", Phase::Cold)?;
    let warm = tools::ezctl(bench, &["setup", &cluster, "all"])?;
    warm.expect("ezctl setup all", Phase::Warm)?;
    say(format!(
        "setup all on {n} machines: cold {:.1} s, warm {:.1} s",
        cold.wall.as_secs_f64(),
        warm.wall.as_secs_f64()
    ));
    bench.note_rss(
        "setup all",
        n,
        "ezctl",
        (
            cold.rss_kib.max(warm.rss_kib),
            cold.group_rss_kib.max(warm.group_rss_kib),
        ),
    );

    let edges = plan_edges(
        &bench.home.dir,
        &cluster_dir,
        &[&bench.home.dir.join("playbooks/90-all.yml")],
    )?;
    let events = cold.events.clone().unwrap_or_default();
    let cp = critical_path(&events.units, &edges);
    let run_s = events.duration_ms as f64 / 1000.0;
    let s = |ms: u64| ms as f64 / 1000.0;
    let mut note = String::new();
    let _ = writeln!(
        note,
        "`ezctl setup {cluster} all --json` on {n} fresh machines (default lab layout):"
    );
    let _ = writeln!(
        note,
        "  wall {:.1} s (process; engine run {run_s:.1} s, the rest is loading, certificates, connecting); warm re-run {:.1} s, 0 changes",
        cold.wall.as_secs_f64(),
        warm.wall.as_secs_f64()
    );
    let _ = writeln!(
        note,
        "  critical path {:.1} s = {:.0} % of the engine run: the longest chain of dependent units ({} edges in the plan)",
        s(cp.length_ms),
        if events.duration_ms > 0 {
            100.0 * cp.length_ms as f64 / events.duration_ms as f64
        } else {
            0.0
        },
        edges.len()
    );
    for l in &cp.chain {
        let _ = writeln!(
            note,
            "    {:<16} {:<15} start {:>6.1} s  took {:>5.1} s",
            l.role,
            l.host,
            s(l.start_ms),
            s(l.duration_ms)
        );
    }
    let _ = writeln!(
        note,
        "  what the run waited on (back from the last unit to finish: each waited for the one above it)"
    );
    for l in observed_chain(&events.units, &edges) {
        let why = match l.because {
            None => "first".to_string(),
            Some(Because::Dependency) => format!("dependency, +{:.1} s", s(l.waited_ms)),
            Some(Because::SameHost) => format!("same host, +{:.1} s", s(l.waited_ms)),
        };
        let _ = writeln!(
            note,
            "    {:<16} {:<15} start {:>6.1} s  took {:>5.1} s  ({why})",
            l.role,
            l.host,
            s(l.start_ms),
            s(l.duration_ms)
        );
    }
    let _ = writeln!(
        note,
        "  {} units, {:.1} s of unit time in total: {:.1} units in flight on average over the {:.1} s they span",
        cp.units,
        s(cp.work_ms),
        if cp.span_ms > 0 {
            cp.work_ms as f64 / cp.span_ms as f64
        } else {
            0.0
        },
        s(cp.span_ms)
    );
    let by_role: Vec<String> = work_by_role(&events.units)
        .into_iter()
        .map(|(r, ms)| format!("{r} {:.1}", s(ms)))
        .collect();
    let _ = writeln!(note, "  unit time by role (s): {}", by_role.join(", "));
    let _ = writeln!(
        note,
        "  controller: ezctl CPU {:.2} s, peak RSS {:.1} MiB; lab machines CPU {}",
        cold.controller_cpu.as_secs_f64(),
        cold.rss_kib as f64 / 1024.0,
        cold.lab_cpu
            .map_or_else(|| "?".into(), |d| format!("{:.1} s", d.as_secs_f64()))
    );
    bench.notes.push(note);
    Ok(())
}
