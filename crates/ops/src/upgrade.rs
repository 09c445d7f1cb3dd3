//! `ezctl upgrade <cluster> [--max-unavailable N]`: a rolling upgrade to
//! the Kubernetes, etcd and containerd binaries in `bin/`.
//!
//! 1. The target is what `bin/kube-apiserver --version` prints (and
//!    `bin/etcd`'s and `bin/containerd`'s, where the bundle has them); what
//!    runs is read from every host (`--version` of its binaries) and from
//!    the API (each apiserver's /version, each node's kubelet and runtime
//!    version) and etcd (each member's status). Downgrades and minor-version
//!    skips are refused before anything changes.
//! 2. etcd members one at a time, each only while the quorum has a failure
//!    to spare: binaries, restart, healthy at the new version.
//! 3. Masters one at a time: the others must be ready first; binaries,
//!    restart, /readyz and the new version gate the next one.
//! 4. Nodes in batches of N: cordon, drain, binaries (containerd's too:
//!    it is upgraded with its node, drained first), restart, Ready with the
//!    new versions, uncordon.
//!
//! Before anything changes, and again before each master, etcd must be able
//! to lose one more member (see [`crate::etcd::quorum::check_margin`]).
//!
//! Progress is saved in `clusters/<c>/upgrade-state.json` after every host,
//! so the same command after a failure skips finished hosts; the file is
//! removed when every host runs the target.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ez_inventory::{Cluster, Group, Host};
use serde_json::json;

use crate::context::Ops;
use crate::etcd::members::{list_errors, EtcdHosts};
use crate::etcd::quorum;
use crate::exit::{ExitCode, Failure};
use crate::fleet::Fleet;
use crate::home::Home;
use crate::kube::{self, Kube};
use crate::remote::{closing, SshConnector};
use crate::report::Report;
use crate::upgrade_state::UpgradeState;
use crate::version::{self, KubeVersion, Step};
use crate::{mark, set_vars};

pub struct UpgradeArgs<'a> {
    pub cluster: &'a str,
    pub max_unavailable: usize,
    pub drain_timeout: Duration,
    pub accept_new: bool,
}

/// How long a restarted master or node may take to report the new version.
const SETTLE: Duration = Duration::from_secs(120);

/// What a version belongs to: each is compared with its own target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Component {
    Kubernetes,
    Containerd,
    Etcd,
}

/// The versions the bundle in `bin/` brings. `kube` names the upgrade (the
/// state file, the messages); etcd and containerd are upgraded when the
/// bundle has their binaries.
#[derive(Debug, Clone)]
struct Target {
    kube: KubeVersion,
    etcd: Option<KubeVersion>,
    containerd: Option<KubeVersion>,
}

impl Target {
    fn of(&self, c: Component) -> Option<&KubeVersion> {
        match c {
            Component::Kubernetes => Some(&self.kube),
            Component::Containerd => self.containerd.as_ref(),
            Component::Etcd => self.etcd.as_ref(),
        }
    }
}

/// One host and the versions found on it.
#[derive(Debug, Clone)]
struct Found {
    host: Host,
    /// (what, version, whose): `kube-apiserver binary`, `kubelet running`,
    /// `containerd running`, ...
    versions: Vec<(String, Option<KubeVersion>, Component)>,
}

impl Found {
    /// Every version of a component the bundle brings is the bundle's.
    fn at_target(&self, target: &Target) -> bool {
        self.versions
            .iter()
            .all(|(_, v, c)| target.of(*c).is_none_or(|t| v.as_ref() == Some(t)))
    }

    fn summary(&self) -> String {
        self.versions
            .iter()
            .map(|(w, v, _)| {
                format!(
                    "{w} {}",
                    v.as_ref().map_or("?".to_string(), |v| v.text.clone())
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

pub fn run(home: &Home, args: &UpgradeArgs<'_>, out: &dyn Report) -> Result<()> {
    let started = Instant::now();
    if args.max_unavailable == 0 {
        bail!(Failure::usage("--max-unavailable must be at least 1"));
    }
    let cluster = home.load(args.cluster)?;
    let ops = Ops::new(home, out, args.accept_new)?;
    let _lock = ops.lock(&cluster, &format!("upgrade {}", cluster.name))?;
    let bin = home.dir.join("bin");
    let bundle = Target {
        kube: bundle_version(&bin)?,
        etcd: runtime_version(&bin.join("etcd"))?,
        containerd: runtime_version(&bin.join("containerd"))?,
    };
    let target = bundle.kube.clone();

    let mut state = starting_state(&cluster.dir, &target, out)?;

    let kube = Kube::pick(home, &cluster, &[], ops.handle())?;
    let members = survey_etcd(&ops, &cluster)?;
    let found = survey(&ops, &cluster, &kube, &state)?;
    check_rules(&found, &bundle, &state)?;
    check_rules(&members, &bundle, &UpgradeState::new(&target.text))?;
    let etcd_todo: Vec<&Found> = members.iter().filter(|f| !f.at_target(&bundle)).collect();
    // A node this upgrade cordoned is stepped again even when it reached
    // the target on its own since the last run (its kubelet came back, with
    // the new binary already in place): the step ends with it Ready and
    // uncordoned, where skipping it would leave it cordoned for good.
    let todo: Vec<&Found> = found
        .iter()
        .filter(|f| {
            let ip = f.host.ip.to_string();
            !state.is_done(&ip) && (!f.at_target(&bundle) || state.cordoned.contains(&ip))
        })
        .collect();
    for f in &members {
        ops.say(format!(
            "{:<15} {:<11} {}  [{}]",
            f.host.ip.to_string(),
            "etcd",
            f.summary(),
            if f.at_target(&bundle) {
                "already at target"
            } else {
                "to upgrade"
            }
        ));
    }
    for f in &found {
        let ip = f.host.ip.to_string();
        let verdict = if state.is_done(&ip) {
            "done earlier"
        } else if state.cordoned.contains(&ip) {
            "cordoned by the last run: to finish"
        } else if f.at_target(&bundle) {
            "already at target"
        } else {
            "to upgrade"
        };
        ops.say(format!(
            "{:<15} {:<11} {}  [{verdict}]",
            ip,
            role_of(&f.host),
            f.summary()
        ));
    }
    if todo.is_empty() && etcd_todo.is_empty() {
        UpgradeState::remove(&cluster.dir)?;
        ops.say(format!("every host runs {target}: nothing to upgrade"));
        return Ok(());
    }
    etcd_guard(&ops, &cluster, args.accept_new)?;
    state.save(&cluster.dir)?;

    // etcd first (an apiserver may rely on what a newer etcd serves, never
    // the other way round), one member at a time, each behind the guard.
    for f in &etcd_todo {
        let t = Instant::now();
        etcd_guard(&ops, &cluster, args.accept_new)?;
        let etcd_target = bundle.etcd.as_ref().unwrap_or(&target);
        upgrade_member(&ops, &cluster, &f.host, etcd_target)?;
        ops.say(format!(
            "etcd member {} runs {etcd_target} and is healthy ({:.1}s)",
            f.host.ip,
            t.elapsed().as_secs_f64()
        ));
    }

    let masters: Vec<&Host> = todo
        .iter()
        .filter(|f| f.host.is(Group::KubeMaster))
        .map(|f| &f.host)
        .collect();
    let nodes: Vec<&Host> = todo
        .iter()
        .filter(|f| !f.host.is(Group::KubeMaster))
        .map(|f| &f.host)
        .collect();
    let all_masters = cluster.masters();
    for m in &masters {
        let t = Instant::now();
        let others: Vec<IpAddr> = all_masters.iter().copied().filter(|o| *o != m.ip).collect();
        let down: Vec<String> = others
            .iter()
            .filter(|o| !kube.readyz(**o))
            .map(IpAddr::to_string)
            .collect();
        if !down.is_empty() {
            bail!(Failure::new(
                ExitCode::Failed,
                format!(
                    "master(s) {} not ready: restarting {} now could leave no apiserver serving; fix them and run `ezctl upgrade {}` again",
                    down.join(", "),
                    m.ip,
                    cluster.name
                )
            ));
        }
        etcd_guard(&ops, &cluster, args.accept_new)?;
        let kube_m = Kube::pick(home, &cluster, &[m.ip], ops.handle())?;
        let hosts = [*m];
        step(&ops, &cluster, &kube_m, &hosts, &bundle, &mut state, args)?;
        ops.say(format!(
            "master {} runs {target} and is ready ({:.1}s)",
            m.ip,
            t.elapsed().as_secs_f64()
        ));
    }
    for batch in nodes.chunks(args.max_unavailable) {
        let t = Instant::now();
        step(&ops, &cluster, &kube, batch, &bundle, &mut state, args)?;
        let ips: Vec<String> = batch.iter().map(|h| h.ip.to_string()).collect();
        ops.say(format!(
            "node(s) {} run {target} ({:.1}s)",
            ips.join(", "),
            t.elapsed().as_secs_f64()
        ));
    }
    UpgradeState::remove(&cluster.dir)?;
    ops.say(format!(
        "upgrade to {target} done in {:.1}s: {} etcd member(s), {} master(s), {} node(s)",
        started.elapsed().as_secs_f64(),
        etcd_todo.len(),
        masters.len(),
        nodes.len()
    ));
    Ok(())
}

/// Where this run starts: the saved state when it goes to the same
/// version (the hosts it finished are not stepped again), else a new one
/// that keeps the nodes the earlier run cordoned, so this run uncordons
/// them (and never a node an operator cordoned).
fn starting_state(
    cluster_dir: &std::path::Path,
    target: &KubeVersion,
    out: &dyn Report,
) -> Result<UpgradeState> {
    Ok(match UpgradeState::load(cluster_dir)? {
        Some(s) if s.target == target.text => {
            if !s.done.is_empty() {
                out.step(&format!(
                    "resuming the upgrade to {target}: already done: {}",
                    s.done.join(", ")
                ));
            }
            s
        }
        Some(s) => {
            out.warn(&format!(
                "an unfinished upgrade to {} is replaced by the upgrade to {target}",
                s.target
            ));
            UpgradeState {
                cordoned: s.cordoned,
                ..UpgradeState::new(&target.text)
            }
        }
        None => UpgradeState::new(&target.text),
    })
}

/// Each master's restart reconnects its apiserver to etcd and the nodes'
/// re-registration loads it: with members down and no failure to spare,
/// one more hiccup meanwhile would stop the cluster. Checked before
/// anything changes and again before each master (a member may fail
/// midway); a member down with a failure still to spare is only a warning.
fn etcd_guard(ops: &Ops, cluster: &Cluster, accept_new: bool) -> Result<()> {
    let members: Vec<IpAddr> = cluster.group(Group::Etcd).map(|h| h.ip).collect();
    let view = ops.block_on(async {
        let connector = Arc::new(SshConnector::new(cluster, accept_new));
        let hosts = EtcdHosts::new(cluster, connector.clone());
        closing(connector.pool(), hosts.observe(&members)).await
    });
    let view = view.map_err(|errors| {
        Failure::new(
            ExitCode::Failed,
            format!(
                "no etcd member answered, so the upgrade cannot tell whether etcd would survive it; nothing was changed:\n{}",
                list_errors(&errors)
            ),
        )
    })?;
    let healthy = view.healthy_count();
    let total = view.members.len();
    match quorum::check_margin(total, healthy) {
        Ok(()) if healthy < total => {
            ops.warn(format!(
                "etcd: {}; the cluster still survives one more failure, going on",
                view.describe()
            ));
            Ok(())
        }
        Ok(()) => Ok(()),
        Err(refusal) => bail!(Failure::new(
            ExitCode::Failed,
            format!(
                "etcd: {}\n{refusal}.\nNothing more was changed; run `ezctl upgrade {}` again once every member is healthy",
                view.describe(),
                cluster.name
            )
        )),
    }
}

fn role_of(h: &Host) -> &'static str {
    if h.is(Group::KubeMaster) {
        "master"
    } else {
        "node"
    }
}

/// Upgrade `hosts` together (one master, or one batch of nodes).
fn step(
    ops: &Ops<'_>,
    cluster: &Cluster,
    kube: &Kube,
    hosts: &[&Host],
    target: &Target,
    state: &mut UpgradeState,
    args: &UpgradeArgs<'_>,
) -> Result<()> {
    let ips: Vec<String> = hosts.iter().map(|h| h.ip.to_string()).collect();
    // Cordon and drain what takes workloads (a master that is not a node
    // takes none, and stays cordoned as setup left it).
    for h in hosts.iter().filter(|h| h.is(Group::KubeNode)) {
        let ip = h.ip.to_string();
        let Some(node) = kube.node(&h.name)? else {
            continue;
        };
        if !kube::unschedulable(&node) {
            kube.cordon(&h.name)?;
            state.cordoned.insert(ip.clone());
            state.save(&cluster.dir)?;
        }
        ops.say(format!("draining {} ({})", h.name, ip));
        if let Err(e) = kube.drain(&h.name, args.drain_timeout) {
            let mut msg = format!("{e}\n{ip} was not touched");
            if state.cordoned.remove(&ip) {
                state.save(&cluster.dir)?;
                if kube.uncordon(&h.name).is_ok() {
                    msg.push_str(&format!("; {} uncordoned again", h.name));
                }
            }
            bail!(Failure::new(ExitCode::Failed, msg));
        }
    }
    let mut targets = ops.targets(cluster);
    mark(&mut targets, "upgrading", &ips);
    let mut force = serde_json::Map::new();
    force.insert("force_restart".into(), json!(true));
    // containerd restarts only where it does not run the bundle's version
    // yet (its binary is copied with the rest; an interrupted run may have
    // copied it without the restart).
    for h in hosts {
        let mut vars = force.clone();
        let runtime_behind = target.containerd.as_ref().is_some_and(|want| {
            kube.node(&h.name)
                .ok()
                .flatten()
                .and_then(|n| kube::containerd_version(&n))
                .as_ref()
                != Some(want)
        });
        vars.insert("restart_containerd".into(), json!(runtime_behind));
        set_vars(&mut targets, &h.ip.to_string(), &vars);
    }
    ops.run_playbook(cluster, targets, "40-upgrade", &format!("upgrade {}", ips.join(" ")))
        .with_context(|| {
            format!(
                "upgrading {} failed; progress is saved in {}: fix the cause and run `ezctl upgrade {}` again to continue",
                ips.join(", "),
                crate::upgrade_state::path(&cluster.dir).display(),
                cluster.name
            )
        })?;
    settle(ops, kube, hosts, target)?;
    for h in hosts {
        let ip = h.ip.to_string();
        if state.cordoned.remove(&ip) {
            kube.uncordon(&h.name)?;
        }
        state.mark_done(&ip);
    }
    state.save(&cluster.dir)?;
    Ok(())
}

/// Wait until each host serves the target: masters answer /readyz with the
/// new /version, nodes are Ready with the new kubelet and runtime versions.
fn settle(ops: &Ops<'_>, kube: &Kube, hosts: &[&Host], bundle: &Target) -> Result<()> {
    let target = &bundle.kube;
    let deadline = Instant::now() + SETTLE;
    let mut pending: Vec<&Host> = hosts.to_vec();
    let mut last = BTreeMap::new();
    while !pending.is_empty() {
        pending.retain(|h| {
            let mut why = Vec::new();
            if h.is(Group::KubeMaster) {
                match kube.server_version(h.ip) {
                    Some(v) if &v == target => {}
                    Some(v) => why.push(format!("apiserver still reports {v}")),
                    None => why.push("apiserver does not answer".to_string()),
                }
                if why.is_empty() && !kube.readyz(h.ip) {
                    why.push("apiserver not ready".to_string());
                }
            }
            match kube.node(&h.name) {
                Ok(Some(n)) => {
                    if kube::kubelet_version(&n).as_ref() != Some(target) {
                        why.push(format!(
                            "kubelet reports {}",
                            kube::kubelet_version(&n).map_or("nothing".into(), |v| v.text)
                        ));
                    } else if !kube::node_ready(&n) {
                        why.push("node not Ready".to_string());
                    }
                    if let Some(want) = &bundle.containerd {
                        let runs = kube::containerd_version(&n);
                        if runs.as_ref() != Some(want) {
                            why.push(format!(
                                "runtime reports {}",
                                runs.map_or("nothing".into(), |v| v.text)
                            ));
                        }
                    }
                }
                Ok(None) => why.push("node not registered".to_string()),
                Err(e) => why.push(e.to_string()),
            }
            let waiting = !why.is_empty();
            last.insert(h.ip, why.join("; "));
            waiting
        });
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            let list: Vec<String> = pending
                .iter()
                .map(|h| {
                    format!(
                        "  {}: {}",
                        h.ip,
                        last.get(&h.ip).cloned().unwrap_or_default()
                    )
                })
                .collect();
            bail!(Failure::new(
                ExitCode::Failed,
                format!(
                    "after {}s these hosts do not serve {target} yet:\n{}\nfix the cause and run the upgrade again to continue",
                    SETTLE.as_secs(),
                    list.join("\n")
                )
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let _ = ops;
    Ok(())
}

/// `bin/kube-apiserver --version` (and kubelet's, which must agree).
fn bundle_version(bin: &Path) -> Result<KubeVersion> {
    let mut found: Vec<(String, KubeVersion)> = Vec::new();
    for b in ["kube-apiserver", "kubelet"] {
        let path = bin.join(b);
        if !path.is_file() {
            bail!(Failure::new(
                ExitCode::Input,
                format!(
                    "{} is missing: put the Kubernetes binaries to upgrade to in {}",
                    path.display(),
                    bin.display()
                )
            ));
        }
        let out = std::process::Command::new(&path)
            .arg("--version")
            .output()
            .with_context(|| format!("running {} --version", path.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let v = KubeVersion::parse(&text).ok_or_else(|| {
            Failure::new(
                ExitCode::Input,
                format!(
                    "{} --version printed no version: {}",
                    path.display(),
                    text.trim()
                ),
            )
        })?;
        found.push((b.to_string(), v));
    }
    if found[0].1 != found[1].1 {
        bail!(Failure::new(
            ExitCode::Input,
            format!(
                "the bundle is mixed: kube-apiserver is {} but kubelet is {}",
                found[0].1, found[1].1
            )
        ));
    }
    Ok(found.swap_remove(0).1)
}

/// Versions on disk and running, for every master and node.
fn survey(
    ops: &Ops<'_>,
    cluster: &Cluster,
    kube: &Kube,
    state: &UpgradeState,
) -> Result<Vec<Found>> {
    let bin_dir = ez_engine::shell_word(cluster.settings.text("bin_dir"));
    let hosts: Vec<Host> = cluster
        .hosts
        .iter()
        .filter(|h| h.is(Group::KubeMaster) || h.is(Group::KubeNode))
        .cloned()
        .collect();
    let ips: Vec<String> = hosts.iter().map(|h| h.ip.to_string()).collect();
    let masters: Vec<String> = cluster.masters().iter().map(IpAddr::to_string).collect();
    let fleet = Fleet::new(cluster, ops.accept_new);
    let outs = ops.block_on(async {
        let o = fleet
            .run(&ips, Duration::from_secs(30), |ip| {
                let mut cmd = format!(
                    "echo kubelet $({bin_dir}/kubelet --version 2>&1); echo containerd $({bin_dir}/containerd --version 2>&1)"
                );
                if masters.iter().any(|m| m == ip) {
                    cmd.push_str(&format!(
                        "; echo kube-apiserver $({bin_dir}/kube-apiserver --version 2>&1)"
                    ));
                }
                cmd
            })
            .await;
        fleet.close().await;
        o
    });
    let mut found = Vec::new();
    let mut unreachable = Vec::new();
    for (h, o) in hosts.iter().zip(outs) {
        let ip = h.ip.to_string();
        if o.result.is_err() && !state.is_done(&ip) {
            unreachable.push(format!("  {ip}: {}", o.problem()));
        }
        let mut versions = Vec::new();
        for line in o.stdout().lines() {
            if let Some((what, rest)) = line.split_once(' ') {
                let whose = if what == "containerd" {
                    Component::Containerd
                } else {
                    Component::Kubernetes
                };
                versions.push((format!("{what} binary"), KubeVersion::parse(rest), whose));
            }
        }
        if h.is(Group::KubeMaster) {
            versions.push((
                "apiserver running".into(),
                kube.server_version(h.ip),
                Component::Kubernetes,
            ));
        }
        let node = kube.node(&h.name).ok().flatten();
        versions.push((
            "kubelet running".into(),
            node.as_ref().and_then(kube::kubelet_version),
            Component::Kubernetes,
        ));
        versions.push((
            "containerd running".into(),
            node.as_ref().and_then(kube::containerd_version),
            Component::Containerd,
        ));
        found.push(Found {
            host: h.clone(),
            versions,
        });
    }
    if !unreachable.is_empty() {
        bail!(Failure::new(
            ExitCode::Failed,
            format!(
                "cannot read the versions on:\n{}\nnothing was changed",
                unreachable.join("\n")
            )
        ));
    }
    Ok(found)
}

/// Refuse downgrades and minor-version skips, naming every offending host.
/// containerd has no skew rule of its own (its majors migrate their config
/// on start, and ours is rendered for the release we ship): only its
/// downgrades are refused.
fn check_rules(found: &[Found], bundle: &Target, state: &UpgradeState) -> Result<()> {
    let mut problems = Vec::new();
    for f in found {
        if state.is_done(&f.host.ip.to_string()) {
            continue;
        }
        for (what, v, whose) in &f.versions {
            let (Some(v), Some(target)) = (v, bundle.of(*whose)) else {
                continue;
            };
            match version::step(v, target) {
                Step::Downgrade => problems.push(format!(
                    "  {}: {what} is {v}, newer than the bundle's {target} (downgrades are refused)",
                    f.host.ip
                )),
                Step::Skip if *whose != Component::Containerd => problems.push(format!(
                    "  {}: {what} is {v}; {target} skips a minor version (upgrade one minor version at a time)",
                    f.host.ip
                )),
                Step::Skip | Step::Current | Step::Upgrade => {}
            }
        }
    }
    if !problems.is_empty() {
        bail!(Failure::new(
            ExitCode::Input,
            format!(
                "refusing to upgrade to {}:\n{}\nnothing was changed",
                bundle.kube,
                problems.join("\n")
            )
        ));
    }
    Ok(())
}

/// `--version` of a runtime binary in the bundle (etcd, containerd), or
/// `None` when the bundle does not bring it (a bundle of Kubernetes alone
/// upgrades Kubernetes alone).
fn runtime_version(path: &Path) -> Result<Option<KubeVersion>> {
    if !path.is_file() {
        return Ok(None);
    }
    let out = std::process::Command::new(path)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", path.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    KubeVersion::parse(&text).map(Some).ok_or_else(|| {
        Failure::new(
            ExitCode::Input,
            format!(
                "{} --version printed no version: {}",
                path.display(),
                text.trim()
            ),
        )
        .into()
    })
}

/// Each etcd member's binary and the version it runs (from its own status).
fn survey_etcd(ops: &Ops<'_>, cluster: &Cluster) -> Result<Vec<Found>> {
    let bin_dir = ez_engine::shell_word(cluster.settings.text("bin_dir"));
    let ca_dir = ez_engine::shell_word(cluster.settings.text("ca_dir"));
    let hosts: Vec<Host> = cluster.group(Group::Etcd).cloned().collect();
    let ips: Vec<String> = hosts.iter().map(|h| h.ip.to_string()).collect();
    let fleet = Fleet::new(cluster, ops.accept_new);
    let outs = ops.block_on(async {
        let o = fleet
            .run(&ips, Duration::from_secs(30), |ip| {
                format!(
                    "echo binary $({bin_dir}/etcd --version 2>&1 | head -n 1); \
                     echo running $({bin_dir}/etcdctl --endpoints=https://{ip}:2379 --cacert={ca_dir}/ca.pem \
                     --cert={ca_dir}/etcd.pem --key={ca_dir}/etcd-key.pem --command-timeout=5s \
                     endpoint status -w fields 2>/dev/null | sed -n 's/^\"Version\" : //p')"
                )
            })
            .await;
        fleet.close().await;
        o
    });
    let mut found = Vec::new();
    let mut unreachable = Vec::new();
    for (h, o) in hosts.iter().zip(outs) {
        if o.result.is_err() {
            unreachable.push(format!("  {}: {}", h.ip, o.problem()));
        }
        let mut versions = Vec::new();
        for line in o.stdout().lines() {
            if let Some((what, rest)) = line.split_once(' ') {
                let rest = rest.trim().trim_matches('"');
                versions.push((
                    format!("etcd {what}"),
                    KubeVersion::parse(rest),
                    Component::Etcd,
                ));
            }
        }
        found.push(Found {
            host: h.clone(),
            versions,
        });
    }
    if !unreachable.is_empty() {
        bail!(Failure::new(
            ExitCode::Failed,
            format!(
                "cannot read the etcd versions on:\n{}\nnothing was changed",
                unreachable.join("\n")
            )
        ));
    }
    Ok(found)
}

/// One etcd member onto the bundle's binaries: the etcd role on that host
/// alone (its restart forced, as a run cut short may have copied the binary
/// without restarting), then healthy at the new version.
fn upgrade_member(
    ops: &Ops<'_>,
    cluster: &Cluster,
    member: &Host,
    want: &KubeVersion,
) -> Result<()> {
    let ip = member.ip.to_string();
    let mut targets = ops.targets(cluster);
    mark(&mut targets, "upgrading_etcd", std::slice::from_ref(&ip));
    let mut vars = serde_json::Map::new();
    vars.insert("restart_etcd".into(), json!(true));
    set_vars(&mut targets, &ip, &vars);
    ops.run_playbook(cluster, targets, "40-upgrade", &format!("upgrade etcd {ip}"))
        .with_context(|| {
            format!(
                "upgrading etcd on {ip} failed; run `ezctl upgrade {}` again once the member is healthy (members already upgraded are skipped)",
                cluster.name
            )
        })?;
    let deadline = Instant::now() + SETTLE;
    loop {
        let now = survey_etcd(ops, cluster)?;
        let this = now.iter().find(|f| f.host.ip == member.ip);
        let running = this.and_then(|f| {
            f.versions
                .iter()
                .find(|(w, _, _)| w == "etcd running")
                .and_then(|(_, v, _)| v.clone())
        });
        if running.as_ref() == Some(want) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(Failure::new(
                ExitCode::Failed,
                format!(
                    "etcd on {ip} reports {} after {}s, not {want}; run `ezctl upgrade {}` again once it is healthy",
                    running.map_or("nothing".into(), |v| v.text),
                    SETTLE.as_secs(),
                    cluster.name
                )
            ));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The resume path without a lab: a state file left by a failed run
    /// towards the same version is picked up (its finished hosts are not
    /// stepped again); one towards another version is replaced, keeping
    /// the nodes it cordoned so this run uncordons them.
    #[test]
    fn an_upgrade_resumes_from_its_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let v = |t: &str| KubeVersion::parse(t).unwrap();
        let report = crate::report::collect::Collected::default();
        let fresh = starting_state(dir.path(), &v("v1.30.11"), &report).unwrap();
        assert_eq!(fresh, UpgradeState::new("v1.30.11"));

        let mut left = UpgradeState::new("v1.30.11");
        left.mark_done("10.0.0.1");
        left.cordoned.insert("10.0.0.2".into());
        left.save(dir.path()).unwrap();
        let resumed = starting_state(dir.path(), &v("v1.30.11"), &report).unwrap();
        assert_eq!(resumed, left);
        assert!(resumed.is_done("10.0.0.1") && !resumed.is_done("10.0.0.2"));
        assert_eq!(
            report.steps.lock().unwrap().as_slice(),
            ["resuming the upgrade to v1.30.11: already done: 10.0.0.1"]
        );

        let replaced = starting_state(dir.path(), &v("v1.31.2"), &report).unwrap();
        assert_eq!(replaced.target, "v1.31.2");
        assert!(replaced.done.is_empty());
        assert!(replaced.cordoned.contains("10.0.0.2"));
        assert_eq!(
            report.warnings.lock().unwrap().as_slice(),
            ["an unfinished upgrade to v1.30.11 is replaced by the upgrade to v1.31.2"]
        );
    }

    fn found(ip: &str, versions: &[&str]) -> Found {
        let dir = tempfile::tempdir().unwrap();
        let c = dir.path().join("c");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(
            c.join("hosts.yml"),
            format!("etcd: [{ip}]\nkube_master: [{ip}]\n"),
        )
        .unwrap();
        let cluster = Cluster::load(&c).unwrap();
        Found {
            host: cluster.hosts[0].clone(),
            versions: versions
                .iter()
                .map(|v| {
                    (
                        "kubelet binary".to_string(),
                        KubeVersion::parse(v),
                        Component::Kubernetes,
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn rules_name_the_host_and_spare_finished_ones() {
        let target = Target {
            kube: KubeVersion::parse("v1.32.0").unwrap(),
            etcd: None,
            containerd: None,
        };
        let fs = vec![
            found("10.0.0.1", &["v1.30.1"]),
            found("10.0.0.2", &["v1.33.0"]),
        ];
        let e = check_rules(&fs, &target, &UpgradeState::new("v1.32.0")).unwrap_err();
        let m = e.to_string();
        assert!(
            m.contains("10.0.0.1: kubelet binary is v1.30.1; v1.32.0 skips a minor version"),
            "{m}"
        );
        assert!(
            m.contains("10.0.0.2: kubelet binary is v1.33.0, newer"),
            "{m}"
        );
        let mut st = UpgradeState::new("v1.32.0");
        st.mark_done("10.0.0.1");
        st.mark_done("10.0.0.2");
        assert!(check_rules(&fs, &target, &st).is_ok());
        let ok = vec![found("10.0.0.1", &["v1.31.4", "v1.32.0"])];
        assert!(check_rules(&ok, &target, &UpgradeState::new("v1.32.0")).is_ok());
        assert!(!ok[0].at_target(&target));
        assert!(found("10.0.0.3", &["v1.32.0"]).at_target(&target));
        assert!(!found("10.0.0.3", &[]).versions.iter().any(|_| true));
    }

    #[test]
    fn the_bundle_version_comes_from_its_binaries() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let script = |name: &str, v: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, format!("#!/bin/sh\necho Kubernetes {v}\n")).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let e = bundle_version(dir.path()).unwrap_err();
        assert!(e.to_string().contains("kube-apiserver is missing"), "{e}");
        script("kube-apiserver", "v1.30.11");
        script("kubelet", "v1.30.11");
        assert_eq!(bundle_version(dir.path()).unwrap().text, "v1.30.11");
        script("kubelet", "v1.30.1");
        let e = bundle_version(dir.path()).unwrap_err();
        assert!(e.to_string().contains("mixed"), "{e}");
    }
}
