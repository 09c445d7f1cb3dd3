//! The command line: every kubeasz command, plus ours.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
All in one, on this machine (etcd, master and node on one host):
  ezctl start-aio

Typical first run:
  ezctl new mycluster                 # writes clusters/mycluster/{hosts.yml,config.yml}
  $EDITOR clusters/mycluster/hosts.yml
  ezctl check mycluster               # validate; nothing is touched on any host
  ezctl setup mycluster all --dry-run # what would change, per host
  ezctl setup mycluster all

Setup steps (number or name):
  01 prepare        CA, certs and kubeconfigs; OS settings on every host
  02 etcd           the etcd cluster
  03 containerd     container runtime
  04 kube-master    apiserver, controller-manager, scheduler
  05 kube-node      kubelet, kube-proxy, local kube-lb
  06 network        calico or flannel, each node's agent Ready
  07 cluster-addon  coredns and other add-ons
  90 all            01..07
  10 ex-lb          external load balancer with a VIP
  11 harbor         image registry
";

#[derive(Debug, Parser)]
#[command(
    name = "ezctl",
    version,
    about = "Provision and operate HA Kubernetes clusters from binaries over SSH",
    long_about = "ezctl turns bare Linux hosts described in a cluster inventory \
                  (clusters/<cluster>/hosts.yml and config.yml) into an HA Kubernetes cluster \
                  installed from binaries, then operates it: scale out and in, upgrades, \
                  etcd backup and restore, certificate renewal.",
    after_help = AFTER_HELP
)]
pub struct Cli {
    /// Base directory holding clusters/, roles/, playbooks/ and bin/
    #[arg(
        long,
        global = true,
        env = "EZCTL_HOME",
        default_value = "/etc/ezctl",
        value_name = "DIR"
    )]
    pub home: PathBuf,

    /// Print events as JSON lines on stdout (for CI)
    #[arg(long, global = true)]
    pub json: bool,

    /// When to use colours
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Ask for the SSH login password (for hosts without a key; or set
    /// EZCTL_SSH_PASSWORD for the run). Never stored, never printed
    #[arg(long, global = true)]
    pub ask_pass: bool,

    /// Ask for the sudo password of hosts with `ssh: { sudo: true }` (or set
    /// EZCTL_SUDO_PASSWORD for the run); without it sudo must need none
    #[arg(long, global = true)]
    pub ask_sudo_pass: bool,

    /// SSH connections opened at once (key exchanges in flight), and hosts
    /// `exec` works on at once. Every host still gets its connection; a
    /// large fleet just does not start all its handshakes together
    #[arg(
        long,
        global = true,
        env = "EZCTL_FORKS",
        default_value_t = ez_ssh::DEFAULT_FAN_OUT as u16,
        value_parser = clap::value_parser!(u16).range(1..=4096)
    )]
    pub forks: u16,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct ClusterArg {
    /// Cluster name (a folder under clusters/)
    pub cluster: String,
}

#[derive(Debug, Args)]
pub struct KcaRenewArgs {
    /// Cluster name (a folder under clusters/)
    pub cluster: String,
    /// The last, separate step: stop trusting the old CA and the old
    /// service-account key (certificates and tokens they signed stop working)
    #[arg(long)]
    pub finish: bool,
}

#[derive(Debug, Args)]
pub struct StartAioArgs {
    /// The host's IP address (default: this machine's own address)
    pub host: Option<std::net::IpAddr>,
    /// Name of the cluster to create (or to set up again)
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// SSH user on the host
    #[arg(long, default_value = "root")]
    pub user: String,
    /// SSH private key for the host (default: the SSH agent and ~/.ssh keys)
    #[arg(long, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// Settings over the defaults, in config.yml form (KEY: value per line)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub run: RunOpts,
}

#[derive(Debug, Args)]
pub struct RunOpts {
    /// Show what would change on each host, with diffs; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Run only on these hosts (IP or node name; repeat or comma-separate)
    #[arg(long, value_delimiter = ',')]
    pub limit: Vec<String>,
    /// Run only tasks with these tags
    #[arg(short = 't', long = "tags", value_delimiter = ',')]
    pub tags: Vec<String>,
    /// Pin unknown SSH host keys on first contact (trust on first use)
    #[arg(long)]
    pub accept_new: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create clusters/<cluster>/ from the example, with versions from bin/versions.toml
    New(ClusterArg),
    /// All in one: a one-host cluster (etcd, master and a node that takes
    /// workloads) created and set up in one go, like kubeasz's start-aio
    StartAio(StartAioArgs),
    /// List clusters; the current one (whose kubeconfig is ~/.kube/config) is marked
    List,
    /// Make a cluster's admin kubeconfig ~/.kube/config (the old one is backed up)
    Checkout(ClusterArg),
    /// Validate a cluster's inventory and print the resolved cluster
    Check(ClusterArg),
    /// Import a kubeasz inventory (hosts INI file and optional config.yml)
    Import {
        /// Name of the new cluster
        cluster: String,
        /// kubeasz `hosts` file
        hosts: PathBuf,
        /// kubeasz `config.yml`
        config: Option<PathBuf>,
    },
    /// Run a shell command on hosts, like `ansible -m shell`
    Exec {
        cluster: String,
        /// Only hosts of this group (etcd, kube_master, kube_node, ex_lb, harbor, chrony)
        #[arg(short = 'g', long)]
        group: Option<String>,
        /// Only this host (IP or node name)
        #[arg(short = 'H', long)]
        host: Option<String>,
        #[arg(long)]
        accept_new: bool,
        /// The command, after `--`. One argument is a shell command line run
        /// by the remote shell (`-- 'ls /tmp | wc -l'`); several are a
        /// command and its arguments, each passed as it is
        /// (`-- sh -c 'echo $HOSTNAME'`)
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run a setup step: 01..07, all (90), 10 (ex-lb), 11 (harbor), by number or name
    Setup {
        cluster: String,
        /// Step number or name, e.g. 02 or etcd
        step: String,
        #[command(flatten)]
        run: RunOpts,
    },
    /// Run any playbook file against a cluster (roles from --roles, default the home's roles/)
    Play {
        cluster: String,
        /// Playbook file (a list of plays, like playbooks/*.yml)
        playbook: PathBuf,
        /// Roles directory (default: HOME/roles)
        #[arg(long)]
        roles: Option<PathBuf>,
        #[command(flatten)]
        run: RunOpts,
    },
    /// Start and enable every cluster service
    Start(ClusterArg),
    /// Stop and disable every cluster service
    Stop(ClusterArg),
    /// Rolling upgrade to the binaries in bin/ (masters one by one, nodes in batches)
    Upgrade {
        cluster: String,
        /// Nodes upgraded at once
        #[arg(long, default_value_t = 1)]
        max_unavailable: usize,
        /// How long draining one node may take (e.g. 90s, 5m)
        #[arg(long, default_value = "5m", value_parser = parse_timeout)]
        drain_timeout: std::time::Duration,
        #[arg(long)]
        accept_new: bool,
    },
    /// Remove the cluster from every host (asks for confirmation)
    Destroy {
        cluster: String,
        /// Do not ask
        #[arg(long)]
        yes: bool,
    },
    /// Save an etcd snapshot into clusters/<cluster>/backup/
    Backup {
        cluster: String,
        /// Snapshots to keep (default: BACKUP_KEEP)
        #[arg(long)]
        keep: Option<usize>,
    },
    /// Restore etcd from a snapshot (default: backup/snapshot.db); a safety snapshot is taken first
    Restore {
        cluster: String,
        #[arg(long)]
        snapshot: Option<PathBuf>,
        /// Go on when no safety snapshot of the current data can be taken (etcd down)
        #[arg(long)]
        force: bool,
    },
    /// Add etcd members (two at a time: etcd stays at an odd size)
    AddEtcd(HostsArgs),
    /// Add master(s)
    AddMaster(HostsArgs),
    /// Add worker node(s)
    AddNode(HostsArgs),
    /// Remove etcd members (two at a time: etcd stays at an odd size)
    DelEtcd(DelEtcdArgs),
    /// Remove a master (drained, cleaned, taken out of every kube-lb and ex-lb)
    DelMaster(DelHostArgs),
    /// Remove a worker node (drained, cleaned, deleted from the cluster)
    DelNode(DelHostArgs),
    /// Rotate the CA and the service-account key without an outage: trust
    /// both, roll every component onto certificates of the new CA, restart
    /// the system pods; `--finish` then drops the old CA and key
    KcaRenew(KcaRenewArgs),
    /// Issue (-A), revoke (-D) or list (-L) user kubeconfigs
    KcfgAdm {
        cluster: String,
        #[arg(short = 'A', conflicts_with_all = ["delete", "list"])]
        add: bool,
        #[arg(short = 'D', conflicts_with_all = ["add", "list"])]
        delete: bool,
        #[arg(short = 'L', conflicts_with_all = ["add", "delete"])]
        list: bool,
        /// User name
        #[arg(short = 'u')]
        user: Option<String>,
        /// Role: admin or view
        #[arg(short = 't', default_value = "admin")]
        role: String,
        /// Validity, e.g. 240h
        #[arg(short = 'e', default_value = "240h")]
        expiry: String,
    },
    /// Fetch and verify the binaries listed in bin/versions.toml into bin/
    Download,
    /// Print shell completions
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff)
    Man,
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    pub cluster: String,
    /// IP address(es) of the new host(s)
    #[arg(required = true, value_parser = parse_ip)]
    pub ips: Vec<IpAddr>,
    /// Node name for a single new host
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long)]
    pub accept_new: bool,
}

#[derive(Debug, Args)]
pub struct DelHostArgs {
    pub cluster: String,
    /// IP address of the host to remove
    #[arg(value_parser = parse_ip)]
    pub ip: IpAddr,
    /// How long the drain may take before giving up (e.g. 90s, 5m)
    #[arg(long, default_value = "5m", value_parser = parse_timeout)]
    pub drain_timeout: std::time::Duration,
    #[arg(long)]
    pub accept_new: bool,
    /// The host is dead: when it does not answer over SSH, skip draining
    /// and cleaning it and remove it from the cluster and hosts.yml anyway
    #[arg(long)]
    pub force: bool,
}

/// Hosts are given by IP on the command line; surrounding blanks (from a
/// pasted list) are forgiven.
fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("`{text}` is not an IP address (hosts are given by IP)"))
}

fn parse_timeout(text: &str) -> Result<std::time::Duration, String> {
    ez_ops::scale::parse_timeout(text)
}

#[derive(Debug, Args)]
pub struct DelEtcdArgs {
    pub cluster: String,
    /// IP address(es) of the member(s) to remove (two at a time: etcd stays at an odd size)
    #[arg(required = true, value_parser = parse_ip)]
    pub ips: Vec<IpAddr>,
}
