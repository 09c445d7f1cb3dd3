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
        /// The lab's name (default: `lab`, or `light` with --light).
        #[arg(long)]
        name: Option<String>,
        /// Light hosts: a network namespace, private mounts and sshd each,
        /// no systemd (about 2.5 MB per host; up to 4000), for scale tests
        /// of the executor. They answer ssh like full machines.
        #[arg(long)]
        light: bool,
        /// With --light: hosts per bridge (at most 1000); the lab's bridges
        /// are chained into one network.
        #[arg(long, default_value_t = ez_lab::light::DEFAULT_HOSTS_PER_BRIDGE, requires = "light")]
        hosts_per_bridge: usize,
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
    /// Container images without Docker.
    Image {
        // Boxed: its flags would make every `Cmd` as large as this one.
        #[command(subcommand)]
        command: Box<ImageCmd>,
    },
}

#[derive(Subcommand)]
enum ImageCmd {
    /// Write a one-layer docker-archive tar (for `ctr images import`, `skopeo
    /// copy docker-archive:`) from a directory tree; the same tree and flags
    /// give the same bytes, and an identical file is left untouched.
    Build {
        /// Directory whose contents become the image's root filesystem.
        #[arg(long)]
        root: PathBuf,
        /// Name to import it as, e.g. registry.k8s.io/pause:3.10.2 (repeatable).
        #[arg(long = "tag", required = true)]
        tags: Vec<String>,
        /// The archive to write.
        #[arg(long, short)]
        output: PathBuf,
        /// ENTRYPOINT, one element per flag: --entrypoint /coredns.
        #[arg(long = "entrypoint", allow_hyphen_values = true)]
        entrypoint: Vec<String>,
        /// CMD, one element per flag: --cmd -conf --cmd /etc/coredns/Corefile.
        #[arg(long = "cmd", allow_hyphen_values = true)]
        cmd: Vec<String>,
        /// USER: uid[:gid] (numeric lets kubelet verify runAsNonRoot).
        #[arg(long)]
        user: Option<String>,
        /// ENV entry KEY=value (repeatable).
        #[arg(long = "env")]
        env: Vec<String>,
        /// WORKDIR.
        #[arg(long)]
        workdir: Option<String>,
        /// EXPOSE PORT[/tcp|udp|sctp] (repeatable).
        #[arg(long = "expose")]
        expose: Vec<String>,
        /// LABEL KEY=value (repeatable).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// File capabilities PATH=CAP[,CAP], permitted and effective, like
        /// `setcap CAP+ep`: --file-cap /coredns=cap_net_bind_service.
        #[arg(long = "file-cap")]
        file_caps: Vec<String>,
        /// Architecture in the config (Docker's names).
        #[arg(long, default_value = ez_lab::image::host_architecture())]
        arch: String,
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
            light,
            hosts_per_bridge,
            layout,
            mirror,
        } => {
            let name = name.unwrap_or_else(|| if light { "light" } else { "lab" }.to_string());
            if light && !(1..=ez_lab::light::MAX_HOSTS_PER_BRIDGE).contains(&hosts_per_bridge) {
                bail!(
                    "--hosts-per-bridge must be 1 to {}",
                    ez_lab::light::MAX_HOSTS_PER_BRIDGE
                );
            }
            let mut spec = if light {
                LabSpec::light(&name, machines)
            } else {
                LabSpec::new(&name, machines)
            };
            spec.hosts_per_bridge = hosts_per_bridge;
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
                "lab {name}: {} {} on {} in {:.1} s",
                lab.hosts().len(),
                if lab.is_light() {
                    "light hosts"
                } else {
                    "machines"
                },
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
                    "{}{}  {}  {}/{} running{}{}",
                    l.name,
                    if l.light { " (light)" } else { "" },
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
        Cmd::Image { command } => match *command {
            ImageCmd::Build {
                root,
                tags,
                output,
                entrypoint,
                cmd,
                user,
                env,
                workdir,
                expose,
                labels,
                file_caps,
                arch,
            } => {
                let mut config = ez_lab::image::ImageConfig::new(tags);
                config.architecture = arch;
                config.entrypoint = entrypoint;
                config.cmd = cmd;
                config.user = user;
                config.env = env;
                config.working_dir = workdir;
                config.exposed_ports = expose;
                for l in labels {
                    let (k, v) = l
                        .split_once('=')
                        .with_context(|| format!("--label {l:?}: expected KEY=value"))?;
                    config.labels.insert(k.to_string(), v.to_string());
                }
                for f in file_caps {
                    let (path, caps) = f
                        .split_once('=')
                        .with_context(|| format!("--file-cap {f:?}: expected PATH=CAP[,CAP]"))?;
                    config.file_caps.insert(
                        path.to_string(),
                        caps.split(',').map(str::to_string).collect(),
                    );
                }
                let built = ez_lab::image::build(&root, &config, &output)?;
                println!(
                    "{} {}: id {} layer {} ({} entries, {} bytes), archive {} bytes",
                    if built.written { "wrote" } else { "unchanged" },
                    output.display(),
                    built.image_id,
                    built.diff_id,
                    built.entries,
                    built.layer_bytes,
                    built.archive_bytes
                );
                Ok(ExitCode::SUCCESS)
            }
        },
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
