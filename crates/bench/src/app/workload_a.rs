//! Workload A, the executor: per host 3 directories, 4 uploads (1 KB, 1 MB,
//! 2 x 20 MB), 2 templates, a systemd unit written and started, 10
//! commands. ezctl runs fixtures/workload-a/playbook.yml (role ezbench-a),
//! Ansible runs fixtures/workload-a/ansible.yml (same files, templates and
//! variables).
//!
//! Each repetition, for each tool in alternating order: fresh machines (the
//! lab torn down and booted again, not timed), a cold run of that tool, then
//! a warm run of the other tool, which must report no change — so the warm
//! runs alternate too, and every repetition checks in both directions that
//! the two tools leave the same state.

use anyhow::Result;
use ez_bench::ansible::Ansible;
use ez_bench::report::{Phase, Row};

use super::tools::{self, ToolRun};
use super::{say, Bench};

pub const LABEL: &str = "A executor";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Ezctl,
    Ansible,
}

impl Tool {
    pub fn name(self) -> &'static str {
        match self {
            Tool::Ezctl => "ezctl",
            Tool::Ansible => "ansible",
        }
    }
    pub fn other(self) -> Tool {
        match self {
            Tool::Ezctl => Tool::Ansible,
            Tool::Ansible => Tool::Ezctl,
        }
    }
    /// Ours first on even repetitions, the peer first on odd ones.
    pub fn order(rep: usize) -> [Tool; 2] {
        if rep.is_multiple_of(2) {
            [Tool::Ezctl, Tool::Ansible]
        } else {
            [Tool::Ansible, Tool::Ezctl]
        }
    }
}

pub fn run(bench: &mut Bench, a: &Ansible, n: usize) -> Result<()> {
    let mut cold = Row::new(LABEL, n, Phase::Cold, "ansible");
    let mut warm = Row::new(LABEL, n, Phase::Warm, "ansible");
    for rep in 0..bench.cli.reps {
        for tool in Tool::order(rep) {
            let lab = bench.fresh_lab(n)?;
            let cluster = lab.name();
            let cluster_dir = bench.cluster_dir()?;
            tools::ezctl_pki_only(bench, &cluster)?;
            let files = tools::ansible_setup(bench, &cluster_dir, n)?;
            let one = |t: Tool| -> Result<ToolRun> {
                match t {
                    Tool::Ezctl => {
                        let dir = bench.home.bench_a();
                        tools::ezctl(
                            bench,
                            &[
                                "play",
                                &cluster,
                                &dir.join("playbook.yml").display().to_string(),
                                "--roles",
                                &dir.join("roles").display().to_string(),
                            ],
                        )
                    }
                    Tool::Ansible => tools::ansible_playbook(
                        bench,
                        a,
                        &files,
                        &bench.home.bench_a().join("ansible.yml"),
                    ),
                }
            };
            let runs = cold_then_warm(
                one,
                tool,
                &format!("A N={n} rep {}/{}", rep + 1, bench.cli.reps),
            )?;
            record(bench, LABEL, n, runs, &mut cold, &mut warm);
        }
    }
    bench.rows.push(cold);
    bench.rows.push(warm);
    Ok(())
}

/// A cold run of `tool` on fresh machines, then a warm run of the other tool
/// on the same machines, each checked (the cold one changed something, the
/// warm one nothing) and said.
pub fn cold_then_warm(
    one: impl Fn(Tool) -> Result<ToolRun>,
    tool: Tool,
    what: &str,
) -> Result<[(Tool, ToolRun); 2]> {
    let c = one(tool)?;
    c.expect(tool.name(), Phase::Cold)?;
    let w = one(tool.other())?;
    w.expect(tool.other().name(), Phase::Warm)?;
    say(format!(
        "{what}: {} cold {:.2} s ({} changes), {} warm {:.2} s",
        tool.name(),
        c.wall.as_secs_f64(),
        c.changed,
        tool.other().name(),
        w.wall.as_secs_f64()
    ));
    Ok([(tool, c), (tool.other(), w)])
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
