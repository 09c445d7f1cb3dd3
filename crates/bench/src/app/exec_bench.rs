//! Issue 3's benchmark: 10 commands + 4 uploads per host on N machines,
//! ez-ssh against a loop of OpenSSH processes (one ControlMaster per host).
//!
//! Each repetition, for each tool in alternating order: clear the files
//! (not timed), a cold run of that tool (new connections, every file sent),
//! then a warm run of the other tool (everything there, nothing sent). So
//! the tools alternate and each checks that the other left the same files.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ez_bench::exec_work::{self, ExecWork, Outcome, Upload};
use ez_bench::measure;
use ez_bench::report::{Phase, Row};

use super::{check_interrupt, say, Bench};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Ours,
    OpenSsh,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Ours => "ez-ssh",
            Tool::OpenSsh => "openssh",
        }
    }
    fn other(self) -> Tool {
        match self {
            Tool::Ours => Tool::OpenSsh,
            Tool::OpenSsh => Tool::Ours,
        }
    }
}

struct Sample {
    wall: Duration,
    controller_cpu: Duration,
    lab_cpu: Option<Duration>,
    outcome: Outcome,
}

pub const LABEL: &str = "exec 10 cmd+4 up";

pub fn run(bench: &mut Bench, n: usize) -> Result<()> {
    let uploads = Upload::for_payload(&bench.home.payload);
    run_with(bench, n, LABEL, uploads, true)
}

/// The exec workload with `uploads`, recorded as `label`; without the
/// peer, ez-ssh's cold run is followed by its own warm run.
pub fn run_with(
    bench: &mut Bench,
    n: usize,
    label: &str,
    uploads: Vec<Upload>,
    with_peer: bool,
) -> Result<()> {
    let lab = bench.lab_of(n)?;
    let hosts: Vec<String> = lab.hosts().iter().map(|h| h.ip.to_string()).collect();
    let work = Arc::new(ExecWork {
        commands: exec_work::commands(),
        uploads,
        user: "root".into(),
        key: lab.ssh_key_path(),
        known_hosts: lab.known_hosts_path(),
    });
    let peer = if with_peer { "openssh" } else { "-" };
    let mut cold = Row::new(label, n, Phase::Cold, peer);
    let mut warm = Row::new(label, n, Phase::Warm, peer);
    let files = work.uploads.len() * n;
    for rep in 0..bench.cli.reps {
        let order: &[Tool] = match (with_peer, rep.is_multiple_of(2)) {
            (false, _) => &[Tool::Ours],
            (true, true) => &[Tool::Ours, Tool::OpenSsh],
            (true, false) => &[Tool::OpenSsh, Tool::Ours],
        };
        for &tool in order {
            let warm_tool = if with_peer { tool.other() } else { tool };
            check_interrupt()?;
            bench
                .runtime
                .block_on(exec_work::reset(work.clone(), &hosts))?;
            let c = one(bench, tool, &work, &hosts)?;
            if c.outcome.uploaded != files {
                bail!(
                    "{} cold run sent {} files, expected {files}",
                    tool.name(),
                    c.outcome.uploaded
                );
            }
            let w = one(bench, warm_tool, &work, &hosts)?;
            if w.outcome.uploaded != 0 || w.outcome.unchanged != files {
                bail!(
                    "{} warm run after {} sent {} files, expected none: not the same files",
                    warm_tool.name(),
                    tool.name(),
                    w.outcome.uploaded
                );
            }
            say(format!(
                "{label} N={n} rep {}/{}: {} cold {:.2} s, {} warm {:.2} s",
                rep + 1,
                bench.cli.reps,
                tool.name(),
                c.wall.as_secs_f64(),
                warm_tool.name(),
                w.wall.as_secs_f64()
            ));
            for (s, t, row) in [(&c, tool, &mut cold), (&w, warm_tool, &mut warm)] {
                let side = if t == Tool::Ours {
                    &mut row.ours
                } else {
                    &mut row.theirs
                };
                side.wall.push(s.wall);
                side.controller_cpu.push(s.controller_cpu);
                if let Some(l) = s.lab_cpu {
                    side.lab_cpu.push(l);
                }
            }
        }
    }
    bench.runtime.block_on(exec_work::reset(work, &hosts))?;
    bench.rows.push(cold);
    bench.rows.push(warm);
    Ok(())
}

fn one(bench: &Bench, tool: Tool, work: &Arc<ExecWork>, hosts: &[String]) -> Result<Sample> {
    let lab_before = measure::lab_cpu(&bench.cli.lab_name);
    let (outcome, wall, controller_cpu) = match tool {
        Tool::Ours => {
            let cpu = measure::self_cpu();
            let t = Instant::now();
            let o = bench
                .runtime
                .block_on(exec_work::run_ours(work.clone(), hosts))?;
            (o, t.elapsed(), measure::self_cpu().saturating_sub(cpu))
        }
        Tool::OpenSsh => {
            let t = Instant::now();
            let o = exec_work::run_openssh(
                work,
                hosts,
                &bench.home.work.join("cp-ssh"),
                Duration::from_secs(600),
            )?;
            (o, t.elapsed(), o.child_cpu)
        }
    };
    let lab_cpu = lab_before
        .zip(measure::lab_cpu(&bench.cli.lab_name))
        .map(|(b, a)| a.saturating_sub(b));
    Ok(Sample {
        wall,
        controller_cpu,
        lab_cpu,
        outcome,
    })
}
