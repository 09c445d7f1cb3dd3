//! `ezlab`: bring the local lab of real machines up and down.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ez_lab::{doctor, Lab, LabSpec, Layout};

#[derive(Parser)]
#[command(
    name = "ezlab",
    version,
    about = "Local lab of real machines (systemd-nspawn) for ezctl tests"
)]
struct Cli {
    /// ezctl home: `up` writes the cluster to HOME/clusters/NAME/.
    #[arg(long, global = true, env = "EZCTL_HOME", default_value = ez_lab::DEFAULT_HOME)]
    home: PathBuf,
    /// Where labs keep their state.
    #[arg(long, global = true, default_value = ez_lab::DEFAULT_STATE_ROOT, hide = true)]
    state_root: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check prerequisites (root, tools, overlayfs); --install fixes what apt can.
    Doctor {
        #[arg(long)]
        install: bool,
    },
    /// Bring N machines up (idempotent) and write a ready cluster for ezctl.
    Up {
        /// Number of machines.
        machines: usize,
        #[arg(long, default_value = "lab")]
        name: String,
        /// Explicit roles, e.g. etcd=3,master=2,node=2[,ex_lb=2][,harbor=1].
        #[arg(long)]
        layout: Option<String>,
        /// Debian mirror for the rootfs (default: the one apt uses here).
        #[arg(long, env = "EZLAB_MIRROR")]
        mirror: Option<String>,
    },
    /// Stop and remove everything of a lab.
    Down {
        #[arg(long, default_value = "lab")]
        name: String,
    },
    /// List labs and their machines.
    Status,
    /// Open a shell on a machine (hostname, IP or number) or run CMD there.
    /// The machine is looked for in every lab that is up.
    Ssh {
        host: String,
        /// Only look in this lab (needed when a number fits several labs).
        #[arg(long)]
        name: Option<String>,
        #[arg(last = true)]
        cmd: Vec<String>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ezlab: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Doctor { install } => doctor_cmd(install),
        Cmd::Up {
            machines,
            name,
            layout,
            mirror,
        } => {
            let mut spec = LabSpec::new(&name, machines);
            spec.home = cli.home;
            spec.state_root = cli.state_root;
            spec.mirror = mirror;
            spec.progress = true;
            spec.layout = layout.as_deref().map(Layout::parse).transpose()?;
            let started = Instant::now();
            let lab = Lab::up(spec).with_context(|| {
                format!("bringing lab {name} up (clean up with `ezlab down --name {name}`)")
            })?;
            println!(
                "lab {name}: {} machines on {} in {:.1} s",
                lab.hosts().len(),
                lab.subnet(),
                started.elapsed().as_secs_f64()
            );
            if let Some(dir) = lab.cluster_dir() {
                println!("cluster: {}", dir.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down { name } => {
            let started = Instant::now();
            ez_lab::down_by_name(&name, &cli.state_root)?;
            println!(
                "lab {name} is down ({:.1} s)",
                started.elapsed().as_secs_f64()
            );
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Status => {
            let labs = ez_lab::status(&cli.state_root);
            if labs.is_empty() {
                println!("no labs");
            }
            for l in labs {
                let up = l.machines.iter().filter(|(_, r)| *r).count();
                println!(
                    "{}  {}  {}/{} running{}{}",
                    l.name,
                    l.subnet,
                    up,
                    l.machines.len(),
                    if l.complete {
                        ""
                    } else {
                        "  (incomplete: run `ezlab down`)"
                    },
                    l.cluster_dir
                        .map(|d| format!("  cluster: {}", d.display()))
                        .unwrap_or_default()
                );
                for (h, running) in l.machines {
                    let roles: Vec<&str> = h.roles.iter().map(|r| r.as_str()).collect();
                    println!(
                        "  {:<16} {:<15} {:<8} {}",
                        h.hostname,
                        h.ip,
                        if running { "running" } else { "stopped" },
                        roles.join(",")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Ssh { host, name, cmd } => {
            let (lab, h) = ez_lab::find_machine(&cli.state_root, &host, name.as_deref())?;
            let mut ssh = lab.ssh_command(h.index)?;
            if cmd.is_empty() {
                ssh.arg("-t");
            } else {
                ssh.arg("--").args(&cmd);
            }
            // Replace ourselves: the user's terminal and exit code go to ssh.
            let err = ssh.exec();
            bail!("cannot run ssh: {err}")
        }
    }
}

fn doctor_cmd(install: bool) -> Result<ExitCode> {
    let mut report = doctor::check();
    if !report.ok() && install && !report.packages().is_empty() {
        println!("installing: {}", report.packages().join(" "));
        doctor::install(&report)?;
        report = doctor::check();
    }
    if doctor::is_root() {
        for c in doctor::apply_host_sysctls()? {
            println!("set {c}");
        }
    }
    if report.ok() {
        println!("ok: root, systemd-nspawn, debootstrap, ip, ssh, ssh-keygen, overlayfs, cgroups");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("missing:\n{}", report.describe());
        Ok(ExitCode::FAILURE)
    }
}
