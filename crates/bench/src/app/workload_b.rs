//! Workload B, the product: the etcd + containerd part of setup on the
//! default lab layout (3 etcd, and containerd on the 2 masters + 2 nodes).
//! Ours: `ezctl setup <c> 02` then `03` (two processes, times added).
//! Ansible: fixtures/workload-b/ansible.yml, which renders ezctl's own
//! templates. Both start after `ezctl setup <c> 01` (prepare, not timed) on
//! fresh machines; the order and the cross-checking warm runs are as in
//! workload A.

use anyhow::Result;
use ez_bench::ansible::Ansible;

use super::tools;
use super::workload_a::{paired_runs, Tool};
use super::{say, Bench};

pub const LABEL: &str = "B etcd+containerd";

pub fn run(bench: &mut Bench, a: &Ansible, n: usize) -> Result<()> {
    paired_runs(
        bench,
        LABEL,
        "B",
        n,
        |bench, cluster| {
            let prep = tools::ezctl(bench, &["setup", cluster, "01"])?;
            say(format!(
                "B: setup 01 (prepare, not timed) took {:.1} s",
                prep.wall.as_secs_f64()
            ));
            Ok(())
        },
        |bench, cluster, files, t| match t {
            Tool::Ezctl => Ok(tools::ezctl(bench, &["setup", cluster, "02"])?
                .then(tools::ezctl(bench, &["setup", cluster, "03"])?)),
            Tool::Ansible(_) => {
                tools::ansible_playbook(bench, a, files, &bench.home.bench_b().join("ansible.yml"))
            }
        },
    )
}
