//! `ezbench`: ezctl against its peers on lab machines it brings up itself.
//! See docs/benchmarks.md; `scripts/bench.sh` builds and runs it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

mod app;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Part {
    /// Issue 3: 10 commands + 4 uploads per host, ez-ssh vs an OpenSSH loop
    Exec,
    /// Workload A (executor): ezctl play vs ansible-playbook
    A,
    /// Workload B (product): ezctl setup 02 + 03 vs an Ansible playbook
    B,
    /// `ezctl setup <c> all --json`: critical path vs wall time
    Critical,
    /// Growth on light hosts (no systemd): the exec workload and workload A
    /// without its unit, at each of --growth-sizes; peers up to
    /// --growth-peer-max. Not in the default run (it boots up to 1 000 hosts)
    Growth,
}

#[derive(Debug, Parser)]
#[command(
    name = "ezbench",
    about = "Benchmark ezctl against an OpenSSH loop and Ansible on lab machines",
    long_about = "Brings up lab machines (ez-lab), runs the same work with ezctl and with the \
                  peer, alternating, and prints min/median seconds and peer/ours for each \
                  (workload, N, cold/warm). Needs root (the lab) and network access to PyPI \
                  the first time (ansible-core is installed into a cached virtualenv)."
)]
pub struct Cli {
    /// N = 2, one repetition, workload B on 2 machines, no `setup all`: a
    /// quick check that every path works (not a measurement)
    #[arg(long)]
    pub smoke: bool,
    /// Lab sizes for the executor benchmark and workload A
    #[arg(long, value_delimiter = ',', default_value = "10,40")]
    pub sizes: Vec<usize>,
    /// Light-host lab sizes for `--only growth`
    #[arg(long, value_delimiter = ',', default_value = "10,40,100,250,500,1000")]
    pub growth_sizes: Vec<usize>,
    /// Largest N at which the growth part also runs the peers (the OpenSSH
    /// loop and Ansible); above it, ezctl alone
    #[arg(long, default_value_t = 100)]
    pub growth_peer_max: usize,
    /// Measured runs per tool, phase and size
    #[arg(long, default_value_t = 3)]
    pub reps: usize,
    /// What to run
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "exec,a,b,critical"
    )]
    pub only: Vec<Part>,
    /// Machines for workload B and the critical path (default layout: 3 etcd, 2 masters, 2 nodes)
    #[arg(long, default_value_t = 7)]
    pub b_machines: usize,
    /// The ezctl binary (default: next to ezbench; build it with --release)
    #[arg(long)]
    pub ezctl: Option<PathBuf>,
    /// Repository root: roles/, playbooks/, scripts/test-bundle.sh
    #[arg(long, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))]
    pub repo: PathBuf,
    /// How Ansible is set up: as it ships (`default`), as an expert tunes it
    /// (`tuned`: no -C, strategy free, ez-ssh's cipher); each gets its rows
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "default,tuned"
    )]
    pub ansible: Vec<ez_bench::ansible::Tuning>,
    /// ansible-core version installed from PyPI
    #[arg(long, default_value = ez_bench::ansible::DEFAULT_VERSION)]
    pub ansible_version: String,
    /// Python that makes the virtualenv
    #[arg(long, default_value = "/usr/bin/python3")]
    pub python: PathBuf,
    /// Cache for the virtualenv (kept between runs)
    #[arg(long, default_value = "/var/cache/ezbench")]
    pub cache: PathBuf,
    /// Where the temporary ezctl home and payload go (removed at the end)
    #[arg(long, default_value = "/var/tmp")]
    pub work_root: PathBuf,
    /// Name of the bench's lab (brought up and down many times)
    #[arg(long, default_value = "ezbench")]
    pub lab_name: String,
    /// On failure, leave the lab up and the temporary home in place for a look
    #[arg(long)]
    pub keep_on_error: bool,
    /// Also write every sample as JSON to this file
    #[arg(long)]
    pub json_out: Option<PathBuf>,
}

impl Cli {
    /// The smoke settings, where `--smoke` was given.
    fn effective(mut self) -> Cli {
        if self.smoke {
            self.sizes = vec![2];
            self.growth_sizes = vec![2, 3];
            self.growth_peer_max = 2;
            self.reps = 1;
            self.b_machines = 2;
            self.only.retain(|p| *p != Part::Critical);
        }
        self.sizes.retain(|n| *n > 0);
        self.growth_sizes.retain(|n| *n > 0);
        self.growth_sizes.sort_unstable();
        self.growth_sizes.dedup();
        self.reps = self.reps.max(1);
        self
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse().effective();
    app::install_interrupt_handler();
    match app::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ezbench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
