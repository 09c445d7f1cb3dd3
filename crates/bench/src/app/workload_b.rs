//! Workload B, the product: the etcd + containerd part of setup on the
//! default lab layout (3 etcd, and containerd on the 2 masters + 2 nodes).
//! Ours: `ezctl setup <c> 02` then `03` (two processes, times added).
//! Ansible: fixtures/workload-b/ansible.yml, which renders ezctl's own
//! templates. Both start after `ezctl setup <c> 01` (prepare, not timed) on
//! fresh machines; the order and the cross-checking warm runs are as in
//! workload A.

use anyhow::Result;
use ez_bench::ansible::Ansible;
use ez_bench::report::{Phase, Row};

use super::tools::{self, ToolRun};
use super::workload_a::{cold_then_warm, record, Tool};
use super::{say, Bench};

pub const LABEL: &str = "B etcd+containerd";

pub fn run(bench: &mut Bench, a: &Ansible, n: usize) -> Result<()> {
    for &tuning in &bench.cli.ansible {
        let mut cold = Row::new(LABEL, n, Phase::Cold, tuning.label());
        let mut warm = Row::new(LABEL, n, Phase::Warm, tuning.label());
        for rep in 0..bench.cli.reps {
            let order = Tool::order(rep, tuning);
            for first in 0..2 {
                let pair = [order[first], order[1 - first]];
                let lab = bench.fresh_lab(n)?;
                let cluster = lab.name();
                let cluster_dir = bench.cluster_dir()?;
                let prep = tools::ezctl(bench, &["setup", &cluster, "01"])?;
                say(format!(
                    "B: setup 01 (prepare, not timed) took {:.1} s",
                    prep.wall.as_secs_f64()
                ));
                let files = tools::ansible_setup(bench, &cluster_dir, n, tuning)?;
                let one = |t: Tool| -> Result<ToolRun> {
                    match t {
                        Tool::Ezctl => Ok(tools::ezctl(bench, &["setup", &cluster, "02"])?
                            .then(tools::ezctl(bench, &["setup", &cluster, "03"])?)),
                        Tool::Ansible(_) => tools::ansible_playbook(
                            bench,
                            a,
                            &files,
                            &bench.home.bench_b().join("ansible.yml"),
                        ),
                    }
                };
                let runs = cold_then_warm(
                    one,
                    pair,
                    &format!("B N={n} rep {}/{}", rep + 1, bench.cli.reps),
                )?;
                record(bench, LABEL, n, runs, &mut cold, &mut warm);
            }
        }
        bench.rows.push(cold);
        bench.rows.push(warm);
    }
    Ok(())
}
