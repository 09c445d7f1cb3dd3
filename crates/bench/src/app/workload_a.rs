//! Workload A, the executor: per host 3 directories, 4 uploads (1 KB, 1 MB,
//! 2 x 20 MB), 2 templates, a systemd unit written and started, 10
//! commands. ezctl runs fixtures/workload-a/playbook.yml (role ezbench-a),
//! Ansible runs fixtures/workload-a/ansible.yml (same files, templates and
//! variables).
//!
//! Ansible runs as configured by default and as an expert tunes it
//! (`--ansible`, [`Tuning`]), each against ezctl in rows of its own. Each
//! repetition, for each tool in alternating order: fresh machines (the lab
//! torn down and booted again, not timed), a cold run of that tool, then a
//! warm run of the other tool, which must report no change — so the warm
//! runs alternate too, and every repetition checks in both directions that
//! the two tools leave the same state.

use anyhow::Result;
use ez_bench::ansible::{Ansible, Tuning};
use ez_bench::report::{Phase, Row};

use super::tools::{self, ToolRun};
use super::{say, Bench};

pub const LABEL: &str = "A executor";
/// Workload A on light hosts: no unit, the 1 KB and 1 MB files only
/// (fixtures/workload-a/light-vars.yml).
pub const LIGHT_LABEL: &str = "A light (no unit, 1K+1M)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ezctl,
    Ansible(Tuning),
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Ezctl => "ezctl",
            Tool::Ansible(t) => t.label(),
        }
    }
    /// ezctl and the peer set up as `tuning`: ours first on even
    /// repetitions, the peer first on odd ones.
    pub fn order(rep: usize, tuning: Tuning) -> [Tool; 2] {
        if rep.is_multiple_of(2) {
            [Tool::Ezctl, Tool::Ansible(tuning)]
        } else {
            [Tool::Ansible(tuning), Tool::Ezctl]
        }
    }
}

pub fn run(bench: &mut Bench, a: &Ansible, n: usize) -> Result<()> {
    paired_runs(
        bench,
        LABEL,
        "A",
        n,
        tools::ezctl_pki_only,
        |bench, cluster, files, t| match t {
            Tool::Ezctl => {
                let dir = bench.home.bench_a();
                tools::ezctl(
                    bench,
                    &[
                        "play",
                        cluster,
                        &dir.join("playbook.yml").display().to_string(),
                        "--roles",
                        &dir.join("roles").display().to_string(),
                    ],
                )
            }
            Tool::Ansible(_) => {
                tools::ansible_playbook(bench, a, files, &bench.home.bench_a().join("ansible.yml"))
            }
        },
    )
}

/// Workload A without its unit on the current (light) lab kind: against
/// Ansible when `a` is given, else ezctl's cold run then its own warm run
/// on fresh hosts, each repetition.
pub fn run_light(bench: &mut Bench, a: Option<&Ansible>, n: usize) -> Result<()> {
    let one = |bench: &Bench, cluster: &str, files: Option<&tools::AnsibleFiles>, t: Tool| {
        let dir = bench.home.bench_a();
        match (t, a, files) {
            (Tool::Ansible(_), Some(a), Some(files)) => tools::ansible_playbook_with(
                bench,
                a,
                files,
                &dir.join("ansible.yml"),
                Some(&dir.join("light-vars.yml")),
            ),
            (Tool::Ansible(_), _, _) => anyhow::bail!("no Ansible for workload A light"),
            (Tool::Ezctl, _, _) => tools::ezctl(
                bench,
                &[
                    "play",
                    cluster,
                    &dir.join("playbook-light.yml").display().to_string(),
                    "--roles",
                    &dir.join("roles").display().to_string(),
                ],
            ),
        }
    };
    if a.is_some() {
        return paired_runs(
            bench,
            LIGHT_LABEL,
            "A light",
            n,
            tools::ezctl_pki_only,
            |bench, cluster, files, t| one(bench, cluster, Some(files), t),
        );
    }
    let mut cold = Row::new(LIGHT_LABEL, n, Phase::Cold, "-");
    let mut warm = Row::new(LIGHT_LABEL, n, Phase::Warm, "-");
    for rep in 0..bench.cli.reps {
        let cluster = bench.fresh_lab(n)?.name();
        tools::ezctl_pki_only(bench, &cluster)?;
        let runs = cold_then_warm(
            |t| one(bench, &cluster, None, t),
            [Tool::Ezctl, Tool::Ezctl],
            &format!("A light N={n} rep {}/{}", rep + 1, bench.cli.reps),
        )?;
        record(bench, LIGHT_LABEL, n, runs, &mut cold, &mut warm);
    }
    bench.rows.push(cold);
    bench.rows.push(warm);
    Ok(())
}

/// For each Ansible tuning, each repetition and both orders of the tools:
/// fresh machines, `prepare` (not timed), then [`cold_then_warm`] with
/// `one` running a tool on the lab's cluster; recorded in that tuning's
/// cold and warm rows of `label` (`short` names it in progress lines).
pub fn paired_runs(
    bench: &mut Bench,
    label: &str,
    short: &str,
    n: usize,
    prepare: impl Fn(&Bench, &str) -> Result<()>,
    one: impl Fn(&Bench, &str, &tools::AnsibleFiles, Tool) -> Result<ToolRun>,
) -> Result<()> {
    for tuning in bench.cli.ansible.clone() {
        let mut cold = Row::new(label, n, Phase::Cold, tuning.label());
        let mut warm = Row::new(label, n, Phase::Warm, tuning.label());
        for rep in 0..bench.cli.reps {
            let order = Tool::order(rep, tuning);
            for first in 0..2 {
                let pair = [order[first], order[1 - first]];
                let cluster = bench.fresh_lab(n)?.name();
                let cluster_dir = bench.cluster_dir()?;
                prepare(bench, &cluster)?;
                let files = tools::ansible_setup(bench, &cluster_dir, n, tuning)?;
                let runs = cold_then_warm(
                    |t| one(bench, &cluster, &files, t),
                    pair,
                    &format!("{short} N={n} rep {}/{}", rep + 1, bench.cli.reps),
                )?;
                record(bench, label, n, runs, &mut cold, &mut warm);
            }
        }
        bench.rows.push(cold);
        bench.rows.push(warm);
    }
    Ok(())
}

/// A cold run of `cold` on fresh machines, then a warm run of `warm` on the
/// same machines, each checked (the cold one changed something, the warm
/// one nothing) and said.
pub fn cold_then_warm(
    one: impl Fn(Tool) -> Result<ToolRun>,
    [cold, warm]: [Tool; 2],
    what: &str,
) -> Result<[(Tool, ToolRun); 2]> {
    let c = one(cold)?;
    c.expect(cold.name(), Phase::Cold)?;
    let w = one(warm)?;
    w.expect(warm.name(), Phase::Warm)?;
    say(format!(
        "{what}: {} cold {:.2} s ({} changes), {} warm {:.2} s",
        cold.name(),
        c.wall.as_secs_f64(),
        c.changed,
        warm.name(),
        w.wall.as_secs_f64()
    ));
    Ok([(cold, c), (warm, w)])
}

/// Adds a [`cold_then_warm`] pair to the rows and the peak RSS table.
pub fn record(
    bench: &mut Bench,
    label: &str,
    n: usize,
    [(ct, c), (wt, w)]: [(Tool, ToolRun); 2],
    cold: &mut Row,
    warm: &mut Row,
) {
    for (r, t, row) in [(&c, ct, cold), (&w, wt, warm)] {
        bench.note_rss(label, n, t.name(), (r.rss_kib, r.group_rss_kib));
        r.record(if t == Tool::Ezctl {
            &mut row.ours
        } else {
            &mut row.theirs
        });
    }
}
