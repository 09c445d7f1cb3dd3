//! `add-node`, `add-master`, `del-node`, `del-master`.
//!
//! Each one: compute and validate the new inventory (nothing touched yet),
//! take the cluster lock, do the work on the hosts with the new inventory,
//! and only then write `hosts.yml`. A failure leaves the file as it was; the
//! same command run again continues (every step is idempotent).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ez_inventory::render::HostLine;
use ez_inventory::{Cluster, Edit, Group, Host, StageError, Transaction};

use crate::clean::CleanScope;
use crate::context::Ops;
use crate::exit::{ExitCode, Failure};
use crate::fleet::Fleet;
use crate::home::Home;
use crate::kube::{self, Kube};
use crate::report::Report;
use crate::{add_host, commit_hosts, mark, set_vars};

pub struct AddArgs<'a> {
    pub cluster: &'a str,
    pub ips: &'a [IpAddr],
    pub name: Option<&'a str>,
    pub accept_new: bool,
}

pub struct DelArgs<'a> {
    pub cluster: &'a str,
    pub ip: IpAddr,
    pub drain_timeout: Duration,
    pub accept_new: bool,
    /// Go on when the host does not answer (it is dead): no drain, no clean.
    pub force: bool,
}

pub fn add_node(home: &Home, args: &AddArgs<'_>, out: &dyn Report) -> Result<()> {
    add(home, args, out, Group::KubeNode)
}

pub fn add_master(home: &Home, args: &AddArgs<'_>, out: &dyn Report) -> Result<()> {
    add(home, args, out, Group::KubeMaster)
}

pub fn del_node(home: &Home, args: &DelArgs<'_>, out: &dyn Report) -> Result<()> {
    del(home, args, out, Group::KubeNode)
}

pub fn del_master(home: &Home, args: &DelArgs<'_>, out: &dyn Report) -> Result<()> {
    del(home, args, out, Group::KubeMaster)
}

fn verb(group: Group, adding: bool) -> &'static str {
    match (group, adding) {
        (Group::KubeMaster, true) => "add-master",
        (Group::KubeMaster, false) => "del-master",
        (_, true) => "add-node",
        (_, false) => "del-node",
    }
}

fn add(home: &Home, args: &AddArgs<'_>, out: &dyn Report, group: Group) -> Result<()> {
    let started = Instant::now();
    let verb = verb(group, true);
    let old = home.load(args.cluster)?;
    if args.name.is_some() && args.ips.len() > 1 {
        bail!(Failure::usage("--name names one host; give one IP with it"));
    }
    let mut ips = Vec::new();
    for &ip in args.ips {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let mut edits = Vec::new();
    let mut listed = Vec::new();
    for ip in &ips {
        if old.group(group).any(|h| h.ip == *ip) {
            listed.push(ip.to_string());
        } else {
            edits.push(Edit::Add(
                group,
                HostLine {
                    ip: ip.to_string(),
                    name: args.name.map(str::to_string),
                    ..HostLine::default()
                },
            ));
        }
    }
    let names: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    let what = format!("adding {} to {}", names.join(", "), group.key());
    let staged = stage(&old.dir, &edits, &what)?;
    let changes_hosts = staged.changes_anything();
    let cluster = staged.cluster();
    let ops = Ops::new(home, out, args.accept_new)?;
    let _lock = ops.lock(
        cluster,
        &format!("{verb} {} {}", cluster.name, names.join(" ")),
    )?;
    if !listed.is_empty() {
        ops.say(format!(
            "{} already in {}: running the work again (finished steps change nothing)",
            listed.join(", "),
            group.key()
        ));
    }
    let unchanged = || {
        if changes_hosts {
            format!("{verb} did not finish: hosts.yml is unchanged ({} not added); fix the cause and run the same command again", names.join(", "))
        } else {
            format!("{verb} did not finish; fix the cause and run the same command again")
        }
    };
    reachable(&ops, cluster, &names).map_err(|e| e.context(unchanged()))?;
    ops.ensure_pki(cluster)?;
    let mut targets = ops.targets(cluster);
    mark(&mut targets, "adding", &names);
    if cluster.group(Group::Harbor).next().is_some() {
        mark(&mut targets, "registry_client", &names);
    }
    if group == Group::KubeMaster {
        let ex_lb: Vec<String> = cluster
            .group(Group::ExLb)
            .map(|h| h.ip.to_string())
            .collect();
        let installed = ops.hosts_with(cluster, &ex_lb, "/etc/ex-lb/conf/ex-lb.conf");
        mark(&mut targets, "ex_lb_installed", &installed);
    }
    let playbook = if group == Group::KubeMaster {
        "31-add-master"
    } else {
        "30-add-node"
    };
    ops.run_playbook(
        cluster,
        targets,
        playbook,
        &format!("{verb} {}", names.join(" ")),
    )
    .map_err(|e| e.context(unchanged()))?;
    commit_hosts(staged)?;
    if changes_hosts {
        ops.say(format!(
            "hosts.yml: {} added to {}",
            names.join(", "),
            group.key()
        ));
    }
    ops.say(format!(
        "{verb} {} done in {:.1}s",
        names.join(" "),
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Every new host answers over SSH before anything is done anywhere.
fn reachable(ops: &Ops<'_>, cluster: &Cluster, hosts: &[String]) -> Result<()> {
    let bad: Vec<String> = silent_hosts(ops, cluster, hosts)
        .into_iter()
        .map(|(host, why)| format!("  {host}: {why}"))
        .collect();
    if !bad.is_empty() {
        bail!(Failure::new(
            ExitCode::Failed,
            format!(
                "cannot reach the new host(s); nothing was done on any host:\n{}",
                bad.join("\n")
            )
        ));
    }
    Ok(())
}

/// Of `hosts`, those that do not answer over SSH, each with why.
fn silent_hosts(ops: &Ops<'_>, cluster: &Cluster, hosts: &[String]) -> Vec<(String, String)> {
    let fleet = Fleet::new(cluster, ops.accept_new);
    let outs = ops.block_on(async {
        let o = fleet
            .run(hosts, Duration::from_secs(30), |_| "true".to_string())
            .await;
        fleet.close().await;
        o
    });
    outs.iter()
        .filter(|o| !o.ok())
        .map(|o| (o.host.to_string(), o.problem()))
        .collect()
}

fn del(home: &Home, args: &DelArgs<'_>, out: &dyn Report, group: Group) -> Result<()> {
    let started = Instant::now();
    let verb = verb(group, false);
    let old = home.load(args.cluster)?;
    let ip = args.ip;
    let host = removable(&old, ip, group)?.clone();
    let mut edits = vec![];
    // A master leaves the node group too: it stops being a Kubernetes node.
    for g in [Group::KubeMaster, Group::KubeNode] {
        if host.is(g) && (g == group || group == Group::KubeMaster) {
            edits.push(Edit::Remove(g, ip.to_string()));
        }
    }
    let staged = stage(
        &old.dir,
        &edits,
        &format!("removing {ip} from {}", group.key()),
    )?;
    let new = staged.cluster();
    let ops = Ops::new(home, out, args.accept_new)?;
    let _lock = ops.lock(&old, &format!("{verb} {} {ip}", old.name))?;
    let unchanged = format!("{verb} did not finish: hosts.yml is unchanged ({ip} still listed); fix the cause and run the same command again (if {ip} is dead for good, add --force)");

    let kube = Kube::pick(home, &old, &[ip], ops.handle())?;
    let ip_s = ip.to_string();
    // A dead host cannot be drained (its pods never finish terminating) or
    // cleaned; with --force the rest of the cluster forgets it anyway, and
    // deleting its Node lets Kubernetes delete its pods.
    let gone = match args.force {
        true => silent_hosts(&ops, &old, std::slice::from_ref(&ip_s))
            .pop()
            .map(|(_, why)| why),
        false => None,
    };
    match &gone {
        Some(why) => ops.warn(format!(
            "{ip} does not answer ({why}); --force: it is neither drained nor cleaned, only removed from the cluster and hosts.yml"
        )),
        None => drain(&ops, &kube, &host.name, args.drain_timeout)
            .map_err(|e| e.context(unchanged.clone()))?,
    }

    let after: BTreeSet<Group> = new
        .host(&ip.to_string())
        .map(|h| h.groups.clone())
        .unwrap_or_default();
    let scope = CleanScope::between(&host.groups, &after);
    let mut targets = ops.targets(new);
    let mut vars = old.host_vars(&host);
    vars.extend(scope.vars());
    let group_names: Vec<String> = after.iter().map(|g| g.key().to_string()).collect();
    vars.insert("group_names".into(), serde_json::json!(group_names));
    if gone.is_none() {
        add_host(&mut targets, &ip_s, &["removing"], vars.clone());
        mark(&mut targets, "removing", std::slice::from_ref(&ip_s));
        set_vars(&mut targets, &ip_s, &scope.vars());
    }
    let playbook = if group == Group::KubeMaster {
        let ex_lb: Vec<String> = new.group(Group::ExLb).map(|h| h.ip.to_string()).collect();
        let installed = ops.hosts_with(new, &ex_lb, "/etc/ex-lb/conf/ex-lb.conf");
        mark(&mut targets, "ex_lb_installed", &installed);
        "34-del-master"
    } else {
        "33-del-node"
    };
    if group == Group::KubeMaster {
        // The apiserver certificate drops the removed IP (the playbook
        // pushes it to the remaining masters, one at a time); the admin
        // kubeconfig may have pointed at the removed master.
        ops.ensure_pki(new)?;
    }
    if gone.is_none() {
        ops.say(format!("cleaning {ip}: {}", describe(&scope)));
    }
    ops.run_playbook(&old, targets, playbook, &format!("{verb} {ip}"))
        .map_err(|e| e.context(unchanged.clone()))?;
    kube.delete_node(&host.name)
        .map_err(|e| e.context(unchanged.clone()))?;
    ops.say(format!("node {} deleted from the cluster", host.name));
    commit_hosts(staged)?;
    ops.say(format!(
        "hosts.yml: {ip} removed from {}",
        edits_groups(&edits)
    ));
    ops.say(format!(
        "{verb} {ip} done in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Stage `edits` to the cluster's `hosts.yml` (see
/// [`ez_inventory::transaction`]): a bad IP, a clashing name or a port
/// conflict is an input error here, before any host is touched. `what`
/// names the change in messages (`adding 10.0.0.9 to kube_node`).
fn stage(cluster_dir: &std::path::Path, edits: &[Edit], what: &str) -> Result<Transaction> {
    let unchanged = "hosts.yml is unchanged; nothing was done on any host";
    Transaction::stage(cluster_dir, edits).map_err(|e| match e {
        StageError::Edit(e) => {
            Failure::new(ExitCode::Input, format!("{what}: {e}\n{unchanged}")).into()
        }
        StageError::Invalid(mut d) => {
            // The lines are those of the text not yet written.
            for diag in &mut d.0 {
                diag.file = format!("{} (as it would be)", diag.file.display()).into();
            }
            Failure::new(
                ExitCode::Input,
                format!("{what} would make the inventory invalid:\n{d}\n{unchanged}"),
            )
            .into()
        }
        StageError::Read { path, source } => {
            anyhow::Error::new(source).context(format!("reading {}", path.display()))
        }
        other => anyhow::Error::new(other).context(format!("{what}: loading the new inventory")),
    })
}

fn edits_groups(edits: &[Edit]) -> String {
    edits
        .iter()
        .filter_map(|e| match e {
            Edit::Remove(g, _) => Some(g.key()),
            Edit::Add(..) => None,
        })
        .collect::<Vec<_>>()
        .join(" and ")
}

fn describe(s: &CleanScope) -> String {
    let mut parts = Vec::new();
    for (on, what) in [
        (s.node, "node services, container runtime, CNI"),
        (s.master, "control plane"),
        (s.etcd, "etcd"),
        (s.ex_lb, "ex-lb"),
        (s.harbor, "registry"),
        (s.host, "cluster OS settings and binaries"),
    ] {
        if on {
            parts.push(what);
        }
    }
    if parts.is_empty() {
        "nothing".into()
    } else {
        parts.join(", ")
    }
}

/// The host, if removing it from `group` is allowed.
fn removable(cluster: &Cluster, ip: IpAddr, group: Group) -> Result<&Host> {
    let input = |m: String| -> anyhow::Error { Failure::new(ExitCode::Input, m).into() };
    let Some(host) = cluster.hosts.iter().find(|h| h.ip == ip) else {
        return Err(input(format!("{ip} is not in cluster `{}`", cluster.name)));
    };
    if !host.is(group) {
        return Err(input(format!("{ip} is not listed in {}", group.key())));
    }
    match group {
        Group::KubeNode if host.is(Group::KubeMaster) => Err(input(format!(
            "{ip} is a master; remove it with `ezctl del-master {} {ip}`",
            cluster.name
        ))),
        Group::KubeMaster if cluster.masters().len() <= 1 => Err(input(format!(
            "{ip} is the last master of `{}`; refusing to remove it (the cluster would have no control plane)",
            cluster.name
        ))),
        _ => Ok(host),
    }
}

/// Cordon and drain a node before its host is cleaned. A drain that does
/// not finish uncordons it again (unless it was cordoned before) and says
/// which pods are in the way.
fn drain(ops: &Ops<'_>, kube: &Kube, node: &str, timeout: Duration) -> Result<()> {
    let Some(obj) = kube.node(node)? else {
        ops.say(format!("node {node} is not registered: nothing to drain"));
        return Ok(());
    };
    let was_cordoned = kube::unschedulable(&obj);
    if !was_cordoned {
        kube.cordon(node)?;
    }
    ops.say(format!(
        "draining node {node} (at most {}s)",
        timeout.as_secs()
    ));
    let t = Instant::now();
    if let Err(e) = kube.drain(node, timeout) {
        let undo = if was_cordoned {
            String::new()
        } else {
            match kube.uncordon(node) {
                Ok(()) => format!("; node {node} uncordoned again"),
                Err(u) => format!("; uncordoning {node} failed too: {u}"),
            }
        };
        return Err(
            Failure::new(ExitCode::Failed, format!("{e}\nnothing was removed{undo}")).into(),
        );
    }
    ops.say(format!(
        "node {node} drained in {:.1}s",
        t.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// `30s`, `5m`, `1h`, or plain seconds.
/// A week: longer than any drain should take, far from any overflow.
const MAX_TIMEOUT_SECS: u64 = 7 * 24 * 3600;

pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (e.g. 90s, 5m, 1h)"))?;
    let per = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(format!("`{text}`: unknown unit `{unit}` (s, m or h)")),
    };
    // `n * 3600` overflowed (a panic, or a wrapped tiny timeout), and a
    // deadline that far away overflowed the clock arithmetic after it.
    let secs = n
        .checked_mul(per)
        .filter(|s| *s <= MAX_TIMEOUT_SECS)
        .ok_or_else(|| {
            format!(
                "`{text}` is longer than the {}h a timeout may be",
                MAX_TIMEOUT_SECS / 3600
            )
        })?;
    if secs == 0 {
        return Err("a timeout of zero cannot succeed".into());
    }
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "ssh: { user: root }\netcd:\n  - 10.0.0.1\nkube_master:\n  - 10.0.0.1\nkube_node:\n  - 10.0.0.2\n  - 10.0.0.1\n";

    fn cluster(hosts: &str) -> (tempfile::TempDir, Cluster) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("c1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("hosts.yml"), hosts).unwrap();
        let c = Cluster::load(&dir).unwrap();
        (t, c)
    }

    fn code(e: anyhow::Error) -> (ExitCode, String) {
        let f = e.downcast_ref::<Failure>().expect("a Failure");
        (f.code, f.message.clone())
    }

    /// The staged inventory's problems are input errors that name the
    /// would-be file, never a temporary one, and say nothing was done.
    #[test]
    fn an_invalid_result_is_an_input_error_and_the_file_kept() {
        let (_t, c) = cluster(HOSTS);
        let add = Edit::Add(
            Group::KubeNode,
            HostLine {
                ip: "10.0.0.3".into(),
                name: Some("k8s-10-0-0-2".into()),
                ..HostLine::default()
            },
        );
        let (k, m) = code(stage(&c.dir, &[add], "adding 10.0.0.3").unwrap_err());
        assert_eq!(k, ExitCode::Input);
        assert!(
            m.starts_with("adding 10.0.0.3 would make the inventory invalid:\n"),
            "{m}"
        );
        assert!(m.contains("already used by 10.0.0.2"), "{m}");
        let file = c.dir.join("hosts.yml").display().to_string();
        assert!(m.contains(&format!("{file} (as it would be):")), "{m}");
        assert!(
            m.ends_with("hosts.yml is unchanged; nothing was done on any host"),
            "{m}"
        );
        let (k, m) = code(
            stage(
                &c.dir,
                &[Edit::Remove(Group::KubeNode, "10.0.0.9".into())],
                "removing",
            )
            .unwrap_err(),
        );
        assert_eq!(k, ExitCode::Input);
        assert!(
            m.starts_with("removing: 10.0.0.9 is not listed in kube_node\n"),
            "{m}"
        );
        assert_eq!(
            std::fs::read_to_string(c.dir.join("hosts.yml")).unwrap(),
            HOSTS
        );
    }

    #[test]
    fn removal_guards() {
        let (_t, c) = cluster(HOSTS);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(removable(&c, ip("10.0.0.2"), Group::KubeNode).is_ok());
        let (k, m) = code(removable(&c, ip("10.0.0.1"), Group::KubeMaster).unwrap_err());
        assert_eq!(k, ExitCode::Input);
        assert!(m.contains("last master"), "{m}");
        let (_, m) = code(removable(&c, ip("10.0.0.1"), Group::KubeNode).unwrap_err());
        assert!(
            m.contains("is a master; remove it with `ezctl del-master c1 10.0.0.1`"),
            "{m}"
        );
        let (_, m) = code(removable(&c, ip("10.0.0.9"), Group::KubeNode).unwrap_err());
        assert!(m.contains("not in cluster"), "{m}");
        let (_, m) = code(removable(&c, ip("10.0.0.2"), Group::KubeMaster).unwrap_err());
        assert!(m.contains("not listed in kube_master"), "{m}");
        let (_t, two) =
            cluster("etcd: [10.0.0.1]\nkube_master: [10.0.0.1, 10.0.0.3]\nkube_node: [10.0.0.2]\n");
        assert!(removable(&two, ip("10.0.0.3"), Group::KubeMaster).is_ok());
    }

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_timeout("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_timeout("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_timeout("5d").is_err());
        assert!(parse_timeout("0s").is_err());
        assert!(parse_timeout("soon").is_err());
        assert_eq!(parse_timeout("168h"), Ok(Duration::from_secs(604800)));
        // Overflowed u64 (a panic, or a wrapped short timeout).
        for huge in [
            "5124095576030432h",
            "307445734561825861m",
            "18446744073709551615s",
            "169h",
        ] {
            let e = parse_timeout(huge).expect_err(huge);
            assert!(e.contains("longer than"), "{huge}: {e}");
        }
        assert!(parse_timeout("99999999999999999999999s").is_err());
    }

    #[test]
    fn clean_descriptions() {
        assert_eq!(describe(&CleanScope::default()), "nothing");
        let s = CleanScope {
            node: true,
            host: true,
            ..CleanScope::default()
        };
        assert_eq!(
            describe(&s),
            "node services, container runtime, CNI, cluster OS settings and binaries"
        );
    }

    /// The undo path of add-node without a lab: the joining host does not
    /// answer (it is reached through a jump host on a closed loopback
    /// port, so the connection is refused at once), so the command fails before any
    /// work, `hosts.yml` stays byte-identical and the lock is released.
    #[test]
    fn add_node_failing_on_the_joining_host_leaves_hosts_yml_byte_identical() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        // Dropped: nothing listens there now, a connection is refused.
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("clusters").join("c1");
        std::fs::create_dir_all(&dir).unwrap();
        let hosts = format!(
            "# hand-written, comments kept\nssh: {{ user: root, jump: \"root@127.0.0.1:{port}\" }}\netcd:\n  - 10.0.0.1\nkube_master:\n  - 10.0.0.1\nkube_node:\n  - 10.0.0.1\n"
        );
        std::fs::write(dir.join("hosts.yml"), &hosts).unwrap();
        let home = Home::new(t.path());
        let report = crate::report::collect::Collected::default();
        let ips = [IpAddr::from([10, 0, 0, 9])];
        let args = AddArgs {
            cluster: "c1",
            ips: &ips,
            name: None,
            accept_new: false,
        };
        let err = add_node(&home, &args, &report).unwrap_err();
        let f = err
            .chain()
            .find_map(|e| e.downcast_ref::<Failure>())
            .expect("a Failure");
        assert_eq!(f.code, ExitCode::Failed, "{err:#}");
        assert!(f.message.contains("cannot reach the new host(s)"), "{f}");
        let text = format!("{err:#}");
        assert!(
            text.contains("hosts.yml is unchanged (10.0.0.9 not added)"),
            "{text}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("hosts.yml")).unwrap(),
            hosts
        );
        assert!(!dir.join("hosts.yml.ezctl-new").exists());
        // The lock went with the command: the next one may start.
        ez_engine::Lock::acquire(&dir, "next").unwrap();
    }
}
