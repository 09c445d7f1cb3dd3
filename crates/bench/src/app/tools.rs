//! Running each tool once, measured: ezctl (a child process, `--json`) and
//! ansible-playbook (a child process; its ControlPersist masters closed and
//! counted after). Each run says what it changed so the caller can insist
//! that a warm run changed nothing.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ez_bench::ansible::{self, Ansible, Tuning};
use ez_bench::events::RunReport;
use ez_bench::measure::{self, Measured};
use ez_bench::report::{Phase, ToolSamples};
use ez_inventory::Cluster;
use serde_json::{Map, Value};

use super::Bench;

/// Longest a single tool run may take (Ansible at N = 40 takes minutes).
const RUN_TIMEOUT: Duration = Duration::from_secs(45 * 60);

/// One measured run of a tool.
#[derive(Debug, Clone)]
pub struct ToolRun {
    pub wall: Duration,
    pub controller_cpu: Duration,
    pub lab_cpu: Option<Duration>,
    /// Peak RSS of the tool's main process (KiB).
    pub rss_kib: u64,
    /// Peak RSS of all its processes together (KiB): Ansible's forks too.
    pub group_rss_kib: u64,
    /// Tasks (ezctl) or task results (Ansible) reported changed.
    pub changed: u64,
    /// What changed, for messages.
    pub changes: Vec<String>,
    /// ezctl's events, when the tool was ezctl.
    pub events: Option<RunReport>,
    /// SSH operations per host (ezctl: channels; Ansible: ssh, sftp and scp
    /// processes), each a round trip to the host.
    pub round_trips: Option<f64>,
}

impl ToolRun {
    pub fn record(&self, into: &mut ToolSamples) {
        into.wall.push(self.wall);
        into.controller_cpu.push(self.controller_cpu);
        if let Some(l) = self.lab_cpu {
            into.lab_cpu.push(l);
        }
        if let Some(t) = self.round_trips {
            into.round_trips.push_value(t);
        }
    }

    /// Adds a second run (ezctl setup 02 then 03): times and CPU add up.
    pub fn then(mut self, next: ToolRun) -> ToolRun {
        self.wall += next.wall;
        self.controller_cpu += next.controller_cpu;
        self.lab_cpu = match (self.lab_cpu, next.lab_cpu) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self.rss_kib = self.rss_kib.max(next.rss_kib);
        self.group_rss_kib = self.group_rss_kib.max(next.group_rss_kib);
        self.changed += next.changed;
        self.changes.extend(next.changes);
        self.events = next.events.or(self.events);
        self.round_trips = match (self.round_trips, next.round_trips) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        self
    }

    /// Cold runs must do work and warm runs none: otherwise the tools did
    /// not do the same thing, and the figures would mean nothing.
    pub fn expect(&self, tool: &str, phase: Phase) -> Result<()> {
        match phase {
            Phase::Cold if self.changed == 0 => {
                bail!("{tool} cold run changed nothing: the machines were not fresh")
            }
            Phase::Warm if self.changed > 0 => bail!(
                "{tool} warm run changed {} things, expected none (the tools do not leave the same state): {}",
                self.changed,
                self.changes.iter().take(10).cloned().collect::<Vec<_>>().join("; ")
            ),
            _ => Ok(()),
        }
    }
}

fn lab_cpu_during(
    lab: &str,
    f: impl FnOnce() -> Result<Measured>,
) -> Result<(Measured, Option<Duration>)> {
    let before = measure::lab_cpu(lab);
    let m = f()?;
    let after = measure::lab_cpu(lab);
    Ok((m, before.zip(after).map(|(b, a)| a.saturating_sub(b))))
}

/// `ezctl --home H --json <args>`, which must succeed.
pub fn ezctl(bench: &Bench, args: &[&str]) -> Result<ToolRun> {
    super::check_interrupt()?;
    let mut cmd = Command::new(&bench.ezctl);
    cmd.arg("--home")
        .arg(&bench.home.dir)
        .args(["--json", "--color", "never"])
        .args(args)
        .env("NO_COLOR", "1");
    let (m, lab_cpu) = lab_cpu_during(&bench.cli.lab_name, || {
        Ok(measure::run(&mut cmd, RUN_TIMEOUT)?)
    })?;
    let what = format!("ezctl {}", args.join(" "));
    let report = RunReport::parse(&m.stdout_str())
        .with_context(|| format!("{what}: reading its events\n{}", m.tail(20)))?;
    if !m.success() || !report.ok {
        bail!(
            "{what} failed (exit {:?}): {}\n{}",
            m.code,
            report.failures.join("; "),
            m.stderr_str()
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(ToolRun {
        wall: m.wall,
        controller_cpu: m.cpu,
        lab_cpu,
        rss_kib: m.max_rss_kib,
        group_rss_kib: m.max_group_rss_kib,
        changed: report.tasks_changed as u64,
        changes: report.changes.clone(),
        round_trips: report.round_trips_per_host(),
        events: Some(report),
    })
}

/// Certificates for the lab's cluster made before a timed run (ezctl makes
/// them on its first run of a cluster; that is setup work, not workload A).
/// A tag no task has leaves no unit: nothing is done on any host.
pub fn ezctl_pki_only(bench: &Bench, cluster: &str) -> Result<()> {
    let playbook = bench.home.bench_a().join("playbook.yml");
    let roles = bench.home.bench_a().join("roles");
    ezctl(
        bench,
        &[
            "play",
            cluster,
            &playbook.display().to_string(),
            "--roles",
            &roles.display().to_string(),
            "-t",
            "ezbench-no-such-tag",
        ],
    )
    .map(|_| ())
    .context("making the cluster's certificates")
}

/// Ansible's config and inventory for the lab's cluster, in `work/ansible`.
pub fn ansible_setup(
    bench: &Bench,
    cluster_dir: &Path,
    forks: usize,
    tuning: Tuning,
) -> Result<AnsibleFiles> {
    let work = bench.home.work.join("ansible");
    for d in ["tmp", "cp", "home"] {
        std::fs::create_dir_all(work.join(d))?;
    }
    let cluster = Cluster::load(cluster_dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut extra = Map::new();
    extra.insert(
        "bundle_dir".into(),
        Value::from(bench.home.dir.join("bin").display().to_string()),
    );
    extra.insert(
        "ssl_dir".into(),
        Value::from(cluster_dir.join("ssl").display().to_string()),
    );
    extra.insert(
        "roles_dir".into(),
        Value::from(bench.home.dir.join("roles").display().to_string()),
    );
    let files = AnsibleFiles {
        config: work.join("ansible.cfg"),
        inventory: work.join("inventory.yml"),
        control_dir: ansible::control_dir(&work),
        home: work.join("home"),
        ssh_count: work.join("ssh-count"),
        hosts: cluster.hosts.len(),
    };
    ansible::write_ssh_wrappers(&work)?;
    std::fs::write(&files.config, ansible::config(forks, &work, tuning))?;
    std::fs::write(
        &files.inventory,
        ansible::inventory_yaml(&cluster, &cluster_dir.join("known_hosts"), &extra),
    )?;
    Ok(files)
}

pub struct AnsibleFiles {
    pub config: std::path::PathBuf,
    pub inventory: std::path::PathBuf,
    pub control_dir: std::path::PathBuf,
    pub home: std::path::PathBuf,
    /// One line per ssh/sftp/scp process Ansible started (its wrappers).
    pub ssh_count: std::path::PathBuf,
    pub hosts: usize,
}

/// `ansible-playbook -i inventory playbook`, which must succeed; its
/// connection masters are closed after (and their CPU counted).
pub fn ansible_playbook(
    bench: &Bench,
    a: &Ansible,
    files: &AnsibleFiles,
    playbook: &Path,
) -> Result<ToolRun> {
    ansible_playbook_with(bench, a, files, playbook, None)
}

/// [`ansible_playbook`] with `-e @extra_vars` when given.
pub fn ansible_playbook_with(
    bench: &Bench,
    a: &Ansible,
    files: &AnsibleFiles,
    playbook: &Path,
    extra_vars: Option<&Path>,
) -> Result<ToolRun> {
    super::check_interrupt()?;
    std::fs::write(&files.ssh_count, "")?;
    let mut cmd = Command::new(a.playbook_bin());
    cmd.env(ansible::SSH_COUNT_ENV, &files.ssh_count)
        .arg("-i")
        .arg(&files.inventory);
    if let Some(vars) = extra_vars {
        cmd.arg("-e").arg(format!("@{}", vars.display()));
    }
    cmd.arg(playbook)
        .env("ANSIBLE_CONFIG", &files.config)
        .env("ANSIBLE_HOME", &files.home)
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_FORCE_COLOR", "0")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let (m, lab_cpu) = lab_cpu_during(&bench.cli.lab_name, || {
        Ok(measure::run(&mut cmd, RUN_TIMEOUT)?)
    })?;
    let masters_cpu = ansible::close_control_masters(&files.control_dir);
    let out = m.stdout_str();
    let recap = ansible::parse_recap(&out)
        .with_context(|| format!("ansible-playbook {}:\n{}", playbook.display(), m.tail(30)))?;
    if !m.success() || !recap.success() {
        bail!(
            "ansible-playbook {} failed (exit {:?}, failed={}, unreachable={}):\n{}",
            playbook.display(),
            m.code,
            recap.failed,
            recap.unreachable,
            m.tail(40)
        );
    }
    Ok(ToolRun {
        wall: m.wall,
        controller_cpu: m.cpu + masters_cpu,
        lab_cpu,
        rss_kib: m.max_rss_kib,
        group_rss_kib: m.max_group_rss_kib,
        changed: recap.changed,
        changes: ansible::changed_tasks(&out),
        events: None,
        round_trips: ansible::ssh_processes(&files.ssh_count)
            .map(|n| n as f64 / files.hosts.max(1) as f64),
    })
}

/// Versions of everything measured, for the header.
pub fn versions(bench: &Bench) -> String {
    let first_line = |c: &mut Command| {
        c.output()
            .ok()
            .map(|o| {
                let text = if o.stdout.is_empty() {
                    o.stderr
                } else {
                    o.stdout
                };
                String::from_utf8_lossy(&text)
                    .lines()
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_string()
            })
            .unwrap_or_else(|| "?".into())
    };
    let git = first_line(
        Command::new("git")
            .arg("-C")
            .arg(&bench.cli.repo)
            .args(["describe", "--always", "--dirty"]),
    );
    let mut lines = vec![
        format!(
            "ezctl: {} ({}, tree {git}); ez-ssh cipher {}, no compression",
            first_line(Command::new(&bench.ezctl).arg("--version")),
            bench.ezctl.display(),
            ez_ssh::PREFERRED_CIPHER,
        ),
        format!(
            "openssh loop: {}, one ControlMaster per host, -o Ciphers={} (ez-ssh's), no compression",
            first_line(Command::new("ssh").arg("-V")),
            ez_ssh::PREFERRED_CIPHER,
        ),
    ];
    for t in &bench.cli.ansible {
        lines.push(format!(
            "{}: ansible-core {}, {}",
            t.label(),
            bench.cli.ansible_version,
            t.describe()
        ));
    }
    lines.join("\n")
}
