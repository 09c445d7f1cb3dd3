//! Growth on light hosts (`--only growth`): the exec workload and workload
//! A without its unit at each of `--growth-sizes`, ezctl alone above
//! `--growth-peer-max` and against the OpenSSH loop and Ansible up to it.
//! Light hosts (`ezlab up N --light`: a network namespace with its own sshd,
//! no systemd) are what lets one 2-core box hold 1 000 of them; their
//! files are what a full machine's would be, their CPU is counted in the
//! lab's cgroup like a full machine's. The table (`ez_bench::growth`) is
//! printed with the others.

use anyhow::Result;
use ez_bench::ansible::Ansible;
use ez_bench::exec_work::Upload;

use super::{exec_bench, say, workload_a, Bench};

/// Label of the exec workload on light hosts: the 1 KB and 1 MB files.
pub const EXEC_LABEL: &str = "exec light 10 cmd+2 up";

/// The workloads the growth table is printed for.
pub const WORKLOADS: [&str; 2] = [EXEC_LABEL, workload_a::LIGHT_LABEL];

pub fn run(bench: &mut Bench, ansible: Option<&Ansible>) -> Result<()> {
    bench.lab_down()?;
    bench.light = true;
    let result = sizes(bench, ansible);
    let down = bench.lab_down();
    bench.light = false;
    result?;
    down
}

fn sizes(bench: &mut Bench, ansible: Option<&Ansible>) -> Result<()> {
    // 1 KB and 1 MB: the 2 x 20 MB files on 1 000 hosts would be 41 GB of
    // disk; the same files as workload A light.
    let uploads: Vec<Upload> = Upload::for_payload(&bench.home.payload)
        .into_iter()
        .filter(|u| u.remote.ends_with("/f1k.bin") || u.remote.ends_with("/f1m.bin"))
        .collect();
    anyhow::ensure!(
        uploads.len() == 2,
        "the payload has no f1k.bin and f1m.bin to send"
    );
    for n in bench.cli.growth_sizes.clone() {
        let with_peer = n <= bench.cli.growth_peer_max;
        say(format!(
            "growth N={n}: light hosts, {}",
            if with_peer {
                "ezctl and the peers"
            } else {
                "ezctl alone"
            }
        ));
        exec_bench::run_with(bench, n, EXEC_LABEL, uploads.clone(), with_peer)?;
        workload_a::run_light(bench, ansible.filter(|_| with_peer), n)?;
    }
    Ok(())
}
