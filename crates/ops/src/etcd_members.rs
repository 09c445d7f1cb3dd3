//! `ezctl add-etcd <cluster> IP...` and `ezctl del-etcd <cluster> IP...`:
//! the procedures; the CLI renders the [`Changed`] they return.
//!
//! Both work from the inventory as it will be (the edited `hosts.yml`,
//! loaded and validated first) and write `hosts.yml` only once the hosts
//! are done, so a failure leaves it byte-identical and a re-run continues:
//! the member list says what an earlier run already did. The inventory
//! keeps an odd member count, so members come and go in pairs (see
//! [`quorum`]); on the hosts they still change one at a time.
//!
//! add: reach the new hosts -> etcd cert with the new IPs -> for each new
//! host: member list and health, quorum rule, `member add`, prepare + etcd
//! on it (`etcd_cluster_state: existing`, the initial cluster as etcd knows
//! it at that moment; on failure the member is removed again) -> playbook
//! 22-etcd-roll (every member, then every apiserver, one at a time).
//!
//! del: member list and health -> quorum rules for the end state -> for each
//! leaving member (unhealthy ones first): quorum rule, `member remove`
//! through the other members -> playbook 23-etcd-clean on the leaving hosts
//! (a dead host is a warning) -> etcd cert without the IPs -> 22-etcd-roll.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ez_inventory::render::HostLine;
use ez_inventory::{Cluster, Edit, Group, StageError, Transaction};
use serde_json::json;

use crate::context::runtime;
use crate::etcd::ctl::Member;
use crate::etcd::members::{list_errors, EtcdHosts, StepError, View};
use crate::etcd::{self, quorum};
use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::remote::{closing, SshConnector};
use crate::report::Report;
use crate::view;
use crate::{commit_hosts, plans};

pub struct AddArgs<'a> {
    pub cluster: &'a str,
    pub ips: &'a [IpAddr],
    pub name: Option<&'a str>,
    pub accept_new: bool,
}

pub struct DelArgs<'a> {
    pub cluster: &'a str,
    pub ips: &'a [IpAddr],
}

/// What add-etcd or del-etcd did, for the caller to render.
pub struct Changed {
    pub ips: Vec<IpAddr>,
    /// The member list at the end (`View::describe`).
    pub members: String,
    /// Leaving hosts that could not be cleaned (del-etcd).
    pub warnings: Vec<String>,
    pub took: Duration,
}

/// The IPs of the command line (clap parsed them), each once.
fn distinct_ips(given: &[IpAddr]) -> Result<Vec<IpAddr>> {
    let mut ips = Vec::new();
    for &ip in given {
        if ips.contains(&ip) {
            bail!(Failure::usage(format!("{ip} is given twice")));
        }
        ips.push(ip);
    }
    Ok(ips)
}

fn failed(message: String) -> anyhow::Error {
    Failure::new(ExitCode::Failed, message).into()
}

fn etcd_ips(cluster: &Cluster) -> Vec<IpAddr> {
    cluster.group(Group::Etcd).map(|h| h.ip).collect()
}

/// Stage `edits` to the cluster's `hosts.yml` (see
/// [`ez_inventory::transaction`]); `what` names the change in messages
/// (`10.0.0.4 10.0.0.5 in etcd`). An even member count is refused here, by
/// the inventory's own rules.
fn stage(cluster: &Cluster, edits: &[Edit], what: &str) -> Result<Transaction> {
    Transaction::stage(&cluster.dir, edits).map_err(|e| match e {
        StageError::Edit(e) => Failure::new(ExitCode::Input, format!("hosts.yml: {e}")).into(),
        StageError::Invalid(d) => Failure::new(
            ExitCode::Input,
            format!(
                "{d}\n\nhosts.yml with {what} would not be valid; it was left as it is and nothing was done on any host"
            ),
        )
        .into(),
        StageError::Read { path, source } => {
            anyhow::Error::new(source).context(format!("reading {}", path.display()))
        }
        other => anyhow::Error::new(other).context("checking the edited inventory"),
    })
}

fn observe_or_fail(result: Result<View, Vec<StepError>>, when: &str) -> Result<View> {
    result.map_err(|errors| {
        failed(format!(
            "no etcd member answered `member list` {when}:\n{}\nhosts.yml unchanged",
            list_errors(&errors)
        ))
    })
}

fn show(view: &View, out: &dyn Report) {
    for e in &view.skipped {
        etcd::warn(out, format!("asked another member: {e}"));
    }
    etcd::say(out, format!("members: {}", view.describe()));
}

/// The IPs as the messages list them (`10.0.0.8 10.0.0.9`).
pub fn ip_list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `--initial-cluster` for a member joining now: exactly the members etcd
/// knows (a joiner's list must match the member list), the joiner named as
/// the etcd unit names it.
pub fn initial_cluster(members: &[Member], joiner: IpAddr) -> String {
    members
        .iter()
        .filter_map(|m| {
            let peer = m.peer_urls.first()?;
            let name = if m.is_at(joiner) {
                ez_inventory::cluster::etcd_member_name(joiner)
            } else if m.name.is_empty() {
                // Added but never started: named as the etcd unit would name it.
                format!("etcd-{}", peer_host(peer))
            } else {
                m.name.clone()
            };
            Some(format!("{name}={peer}"))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `10.0.0.5` of `https://10.0.0.5:2380` (`fd00::1` of `https://[fd00::1]:2380`).
/// `https://HOST:2379,...` for every member of the list (by its peer
/// address: a member added but never started has no client URL yet).
fn member_endpoints(members: &[Member]) -> String {
    members
        .iter()
        .filter_map(|m| m.peer_urls.first())
        .map(|p| match peer_host(p).parse::<IpAddr>() {
            Ok(IpAddr::V6(v6)) => format!("https://[{v6}]:2379"),
            _ => format!("https://{}:2379", peer_host(p)),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn peer_host(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.rsplit_once(':').map_or(rest, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

pub fn add(home: &Home, args: &AddArgs<'_>, out: &dyn Report) -> Result<Changed> {
    let name = args.cluster;
    let ips = distinct_ips(args.ips)?;
    if ips.len() > 1 && args.name.is_some() {
        bail!(Failure::usage("--name is for a single new host"));
    }
    let started = Instant::now();
    let cluster = home.load(name)?;
    let old_members = etcd_ips(&cluster);
    if let Some(ip) = ips.iter().find(|ip| old_members.contains(ip)) {
        bail!(Failure::new(
            ExitCode::Input,
            format!("{ip} is already in the etcd group of hosts.yml; nothing was done")
        ));
    }
    quorum::check_parity(old_members.len(), old_members.len() + ips.len()).map_err(|r| {
        Failure::new(
            ExitCode::Input,
            format!("refusing to add {}: {r}; nothing was done", ip_list(&ips)),
        )
    })?;
    let edits: Vec<Edit> = ips
        .iter()
        .map(|ip| {
            let line = HostLine {
                ip: ip.to_string(),
                name: args.name.map(str::to_string),
                ..HostLine::default()
            };
            Edit::Add(Group::Etcd, line)
        })
        .collect();
    let staged = stage(&cluster, &edits, &format!("{} in etcd", ip_list(&ips)))?;
    let grown = staged.cluster();
    let _lock = crate::context::lock(&cluster, &format!("add-etcd {name} {}", ip_list(&ips)), out)?;

    let summary = runtime()?.block_on(async {
        let connector = Arc::new(SshConnector::new(grown, args.accept_new));
        let hosts = EtcdHosts::new(grown, connector.clone());
        let steps = add_steps(
            home,
            grown,
            &hosts,
            connector.clone(),
            &old_members,
            &ips,
            out,
        );
        closing(connector.pool(), steps).await
    })?;
    commit_hosts(staged)?;
    Ok(Changed {
        ips,
        members: summary,
        warnings: Vec::new(),
        took: started.elapsed(),
    })
}

async fn add_steps(
    home: &Home,
    grown: &Cluster,
    hosts: &EtcdHosts,
    connector: Arc<SshConnector>,
    old_members: &[IpAddr],
    ips: &[IpAddr],
    out: &dyn Report,
) -> Result<String> {
    let mut unreachable = Vec::new();
    for &ip in ips {
        etcd::say(out, format!("checking that {ip} is reachable"));
        if let Err(e) = hosts.reach(ip).await {
            unreachable.push(e);
        }
    }
    if !unreachable.is_empty() {
        bail!(failed(format!(
            "new host(s) not reachable:\n{}\nhosts.yml unchanged; nothing was done on any host",
            list_errors(&unreachable)
        )));
    }
    // Nothing joins a cluster that cannot take it: checked for the first
    // new member before any change (certificates included).
    let view = observe_or_fail(hosts.observe(old_members).await, "before the change")?;
    show(&view, out);
    if view.member_at(ips[0]).is_none() {
        quorum::check_add(view.members.len(), view.healthy_count()).map_err(|r| {
            failed(format!(
                "refusing to add {}: {r}\nhosts.yml unchanged; nothing was done",
                ips[0]
            ))
        })?;
    }

    // The etcd certificate (one for every member) gets the new IPs.
    ez_pki::ensure(&view::pki_spec(grown), &view::ssl_dir(&grown.dir)).context("certificates")?;

    // A new member keeps `existing` in its unit from now on.
    let existing: Vec<(IpAddr, &str, serde_json::Value)> = ips
        .iter()
        .map(|ip| (*ip, "etcd_cluster_state", json!("existing")))
        .collect();
    let mut members_now: Vec<IpAddr> = old_members.to_vec();
    for (i, &ip) in ips.iter().enumerate() {
        join(home, grown, hosts, connector.clone(), &members_now, ip, &existing, out)
            .await
            .map_err(|e| {
                let joined = &ips[..i];
                if joined.is_empty() {
                    e
                } else {
                    failed(format!(
                        "{e}\n{} joined before and stay(s) running; the same command continues from here",
                        ip_list(joined)
                    ))
                }
            })?;
        members_now.push(ip);
    }

    // Everyone else learns the new member list, one host at a time.
    etcd::say(
        out,
        "rolling the member list to every member and apiserver, one at a time",
    );
    let targets = plans::targets(home, grown, &[], &existing);
    let plan = plans::build(
        home,
        &[plans::playbook(home, "22-etcd-roll")?],
        targets,
        &[],
    )?;
    let recap = plans::run(grown, connector, &plan, out, "add-etcd-roll").await?;
    if !recap.ok() {
        bail!(failed(format!(
            "the new member(s) run, but rolling the new member list out failed:\n{}\n\
             hosts.yml unchanged (it does not list {} yet); run the same command again to continue \
             (members already added are found in the member list and the roll resumes)",
            plans::failures(&recap),
            ip_list(ips)
        )));
    }

    let members = etcd_ips(grown);
    let after = observe_or_fail(hosts.observe(&members).await, "after the change")?;
    let all_new_healthy = ips
        .iter()
        .all(|ip| after.member_at(*ip).is_some_and(|m| after.is_healthy(m)));
    if !all_new_healthy || after.healthy_count() != members.len() {
        bail!(failed(format!(
            "after the change not every member is healthy: {}\nhosts.yml unchanged; run the same command again once they are",
            after.describe()
        )));
    }
    Ok(after.describe())
}

/// One new member: `member add` (unless an earlier run did), then prepare
/// and etcd on its host with the initial cluster etcd expects right now.
#[allow(clippy::too_many_arguments)]
async fn join(
    home: &Home,
    grown: &Cluster,
    hosts: &EtcdHosts,
    connector: Arc<SshConnector>,
    members_now: &[IpAddr],
    ip: IpAddr,
    existing: &[(IpAddr, &str, serde_json::Value)],
    out: &dyn Report,
) -> Result<()> {
    let view = observe_or_fail(hosts.observe(members_now).await, "before adding a member")?;
    let members = match view.member_at(ip) {
        Some(m) => {
            etcd::say(
                out,
                format!(
                    "{ip} is already in the member list ({}): an earlier run added it; continuing",
                    m.label()
                ),
            );
            view.members.clone()
        }
        None => {
            quorum::check_add(view.members.len(), view.healthy_count())
                .map_err(|r| failed(format!("refusing to add {ip}: {r}\nhosts.yml unchanged")))?;
            etcd::say(out, format!("member add etcd-{ip}"));
            hosts
                .member_add(view.via, &view.healthy_endpoints(None), ip)
                .await
                .map_err(|e| failed(format!("{e}\nhosts.yml unchanged")))?
        }
    };
    etcd::say(out, format!("starting etcd on {ip} (prepare, etcd)"));
    let mut vars = existing.to_vec();
    vars.push((
        ip,
        "etcd_initial_cluster",
        json!(initial_cluster(&members, ip)),
    ));
    // The cluster health the etcd role waits for (through etcd-roll) is
    // the cluster's as it stands: the members listed now, this one last.
    // The grown inventory also names the members still to come, which are
    // not started yet and would fail that check.
    vars.push((ip, "etcd_endpoints", json!(member_endpoints(&members))));
    let targets = plans::targets(home, grown, &[], &vars);
    let playbooks = [
        plans::playbook(home, "01-prepare")?,
        plans::playbook(home, "02-etcd")?,
    ];
    let plan = plans::build(home, &playbooks, targets, &[ip])?;
    let recap = plans::run(grown, connector, &plan, out, &format!("add-etcd-{ip}")).await?;
    if !recap.ok() {
        let undo = undo_join(hosts, grown, members_now, ip).await;
        bail!(failed(format!(
            "etcd on {ip} did not come up:\n{}\n{undo}\nhosts.yml unchanged; fix the cause and run the same command again",
            plans::failures(&recap)
        )));
    }
    Ok(())
}

/// The new member did not start: take it out of the member list again
/// (a member that never starts costs the cluster a failure it could
/// otherwise tolerate) and stop whatever runs on the host.
async fn undo_join(
    hosts: &EtcdHosts,
    grown: &Cluster,
    members_now: &[IpAddr],
    ip: IpAddr,
) -> String {
    let mut notes = Vec::new();
    match hosts.observe(members_now).await {
        Ok(view) => match view.member_at(ip) {
            Some(m) => match hosts
                .member_remove(view.via, &view.healthy_endpoints(Some(ip)), m)
                .await
            {
                Ok(()) => notes.push(format!("undone: member {} removed again", m.label())),
                Err(e) => notes.push(format!(
                    "could not remove the new member again ({e}); remove it with `etcdctl member remove {}`",
                    m.hex_id()
                )),
            },
            None => notes.push("the new member is not in the member list".to_string()),
        },
        Err(errors) => notes.push(format!(
            "could not check the member list to undo:\n{}",
            list_errors(&errors)
        )),
    }
    // Its data only holds what it copied while joining; keeping it would make
    // the next attempt start with a stale member identity.
    let data = grown.settings.text("ETCD_DATA_DIR");
    let wal = grown.settings.text("ETCD_WAL_DIR");
    let cmd = format!(
        "systemctl disable --now etcd 2>/dev/null; rm -rf -- {}{}",
        ez_ssh::shell_quote(data),
        if wal.is_empty() {
            String::new()
        } else {
            format!(" {}", ez_ssh::shell_quote(wal))
        }
    );
    match hosts
        .run_ok(
            ip,
            "stop the half-joined etcd",
            &cmd,
            Duration::from_secs(60),
        )
        .await
    {
        Ok(_) => notes.push(format!("etcd stopped on {ip} and its data dir removed")),
        Err(e) => notes.push(format!("could not clean {ip}: {e}")),
    }
    notes.join("\n")
}

pub fn del(home: &Home, args: &DelArgs<'_>, out: &dyn Report) -> Result<Changed> {
    let name = args.cluster;
    let ips = distinct_ips(args.ips)?;
    let started = Instant::now();
    let cluster = home.load(name)?;
    let members = etcd_ips(&cluster);
    if let Some(ip) = ips.iter().find(|ip| !members.contains(ip)) {
        bail!(Failure::new(
            ExitCode::Input,
            format!(
                "{ip} is not in the etcd group of hosts.yml (members: {}); nothing was done",
                ip_list(&members)
            )
        ));
    }
    quorum::check_parity(members.len(), members.len() - ips.len()).map_err(|r| {
        Failure::new(
            ExitCode::Input,
            format!(
                "refusing to remove {}: {r}; nothing was done",
                ip_list(&ips)
            ),
        )
    })?;
    let edits: Vec<Edit> = ips
        .iter()
        .map(|ip| Edit::Remove(Group::Etcd, ip.to_string()))
        .collect();
    let staged = stage(&cluster, &edits, &format!("{} out of etcd", ip_list(&ips)))?;
    let shrunk = staged.cluster();
    let _lock = crate::context::lock(&cluster, &format!("del-etcd {name} {}", ip_list(&ips)), out)?;

    let (summary, warnings) = runtime()?.block_on(async {
        // The old inventory knows how to reach the leaving hosts.
        let connector = Arc::new(SshConnector::new(&cluster, false));
        let hosts = EtcdHosts::new(&cluster, connector.clone());
        let steps = del_steps(home, &cluster, shrunk, &hosts, connector.clone(), &ips, out);
        closing(connector.pool(), steps).await
    })?;
    commit_hosts(staged)?;
    Ok(Changed {
        ips,
        members: summary,
        warnings,
        took: started.elapsed(),
    })
}

async fn del_steps(
    home: &Home,
    cluster: &Cluster,
    shrunk: &Cluster,
    hosts: &EtcdHosts,
    connector: Arc<SshConnector>,
    ips: &[IpAddr],
    out: &dyn Report,
) -> Result<(String, Vec<String>)> {
    let mut warnings = Vec::new();
    // Ask the members that stay first; the leaving ones only as a last resort.
    let mut candidates: Vec<IpAddr> = etcd_ips(shrunk);
    candidates.extend_from_slice(ips);
    let view = observe_or_fail(hosts.observe(&candidates).await, "before the change")?;
    show(&view, out);
    // The end state must have a quorum before anything is removed.
    let leaving = |m: &Member| ips.iter().any(|ip| m.is_at(*ip));
    let staying = view.members.iter().filter(|m| !leaving(m)).count();
    let staying_healthy = view
        .members
        .iter()
        .filter(|m| !leaving(m) && view.is_healthy(m))
        .count();
    if staying == 0 {
        bail!(failed(format!(
            "refusing to remove {}: {}\nhosts.yml unchanged; nothing was done",
            ip_list(ips),
            quorum::Refusal::LastMember
        )));
    }
    if staying_healthy < quorum::quorum(staying) {
        bail!(failed(format!(
            "refusing to remove {}: {}\nhosts.yml unchanged; nothing was done",
            ip_list(ips),
            quorum::Refusal::RemoveWithoutQuorum {
                remaining: staying,
                healthy_remaining: staying_healthy
            }
        )));
    }
    // Unhealthy members first: removing them never lowers the healthy count.
    let mut order: Vec<IpAddr> = ips.to_vec();
    order.sort_by_key(|ip| view.member_at(*ip).is_some_and(|m| view.is_healthy(m)));
    for ip in order {
        let view = observe_or_fail(hosts.observe(&candidates).await, "before removing a member")?;
        let Some(m) = view.member_at(ip).cloned() else {
            etcd::say(
                out,
                format!("{ip} is not in the member list: an earlier run removed it; continuing"),
            );
            continue;
        };
        let healthy_remaining = view
            .members
            .iter()
            .filter(|x| !x.is_at(ip) && view.is_healthy(x))
            .count();
        quorum::check_remove(view.members.len(), healthy_remaining)
            .map_err(|r| failed(format!("refusing to remove {ip}: {r}\nhosts.yml unchanged")))?;
        etcd::say(out, format!("member remove {}", m.label()));
        hosts
            .member_remove(view.via, &view.healthy_endpoints(Some(ip)), &m)
            .await
            .map_err(|e| failed(format!("{e}\nhosts.yml unchanged")))?;
    }

    // The hosts: etcd stopped, unit, data and cert gone. A dead host cannot
    // be cleaned, and that must not keep a dead member in the cluster.
    etcd::say(out, format!("cleaning {}", ip_list(ips)));
    let targets = plans::targets(home, cluster, &[], &[]);
    let plan = plans::build(
        home,
        &[plans::playbook(home, "23-etcd-clean")?],
        targets,
        ips,
    )?;
    let recap = plans::run(cluster, connector.clone(), &plan, out, "del-etcd-clean").await?;
    if !recap.ok() {
        let w = format!(
            "not every removed host could be cleaned (etcd unit, data or certificate may be left there):\n{}",
            plans::failures(&recap)
        );
        etcd::warn(out, &w);
        warnings.push(w);
    }

    ez_pki::ensure(&view::pki_spec(shrunk), &view::ssl_dir(&shrunk.dir)).context("certificates")?;

    etcd::say(
        out,
        "rolling the member list to every member and apiserver, one at a time",
    );
    let targets = plans::targets(home, shrunk, &[], &[]);
    let plan = plans::build(
        home,
        &[plans::playbook(home, "22-etcd-roll")?],
        targets,
        &[],
    )?;
    let recap = plans::run(shrunk, connector, &plan, out, "del-etcd-roll").await?;
    if !recap.ok() {
        bail!(failed(format!(
            "the member(s) are removed, but rolling the new member list out failed:\n{}\n\
             hosts.yml unchanged (it still lists {}); run the same command again to continue",
            plans::failures(&recap),
            ip_list(ips)
        )));
    }

    let members = etcd_ips(shrunk);
    let after = observe_or_fail(hosts.observe(&members).await, "after the change")?;
    let gone = ips.iter().all(|ip| after.member_at(*ip).is_none());
    if !gone || after.healthy_count() != members.len() {
        bail!(failed(format!(
            "after the change the cluster is not as expected: {}\nhosts.yml unchanged; run the same command again",
            after.describe()
        )));
    }
    Ok((after.describe(), warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::etcd::ctl;

    const HOSTS: &str = "# lab\nssh:\n  user: root\n  key: ssh/id_ed25519\netcd:\n  - 10.9.0.11\n  - 10.9.0.12\n  - 10.9.0.13\nkube_master:\n  - 10.9.0.14\nkube_node:\n  - 10.9.0.15\n";

    fn cluster() -> (tempfile::TempDir, Cluster) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("prod-1");
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("hosts.yml"), HOSTS).unwrap();
        std::fs::write(dir.join("config.yml"), "ETCD_DATA_DIR: /data/etcd\n").unwrap();
        let c = Cluster::load(&dir).unwrap();
        (tmp, c)
    }

    fn add(ip: &str) -> Edit {
        Edit::Add(
            Group::Etcd,
            HostLine {
                ip: ip.into(),
                ..HostLine::default()
            },
        )
    }

    #[test]
    fn added_members_stage_with_the_real_paths() {
        let (_tmp, c) = cluster();
        let staged = stage(&c, &[add("10.9.0.16"), add("10.9.0.17")], "two in etcd").unwrap();
        let grown = staged.cluster();
        assert_eq!((grown.name.as_str(), &grown.dir), ("prod-1", &c.dir));
        assert!(grown.derived.etcd_initial_cluster.ends_with(
            ",etcd-10.9.0.16=https://10.9.0.16:2380,etcd-10.9.0.17=https://10.9.0.17:2380"
        ));
        assert_eq!(grown.settings.text("ETCD_DATA_DIR"), "/data/etcd");
        let key = grown.host("10.9.0.16").unwrap().ssh.key.clone().unwrap();
        assert_eq!(key, c.dir.join("ssh/id_ed25519"));
        drop(staged);
        assert_eq!(
            std::fs::read_to_string(c.dir.join("hosts.yml")).unwrap(),
            HOSTS
        );
    }

    #[test]
    fn an_even_member_count_is_an_input_error_naming_the_real_file() {
        let (_tmp, c) = cluster();
        let out = Edit::Remove(Group::Etcd, "10.9.0.11".into());
        let e = stage(&c, &[out], "10.9.0.11 out of etcd").unwrap_err();
        let f = e.downcast_ref::<Failure>().unwrap();
        assert_eq!(f.code, ExitCode::Input);
        assert!(f.message.contains("even"), "{}", f.message);
        let file = c.dir.join("hosts.yml").display().to_string();
        assert!(f.message.starts_with(&format!("{file}:")), "{}", f.message);
        assert!(
            f.message.ends_with("\n\nhosts.yml with 10.9.0.11 out of etcd would not be valid; it was left as it is and nothing was done on any host"),
            "{}",
            f.message
        );
        let e = stage(&c, &[add("10.9.0.11")], "10.9.0.11 in etcd").unwrap_err();
        let f = e.downcast_ref::<Failure>().unwrap();
        assert_eq!(f.message, "hosts.yml: 10.9.0.11 is already listed in etcd");
    }

    #[test]
    fn an_ip_given_twice_is_a_usage_error() {
        let ip = IpAddr::from([10, 0, 0, 3]);
        let e = distinct_ips(&[ip, ip]).unwrap_err();
        assert_eq!(e.downcast_ref::<Failure>().unwrap().code, ExitCode::Usage);
        assert!(e.to_string().contains("10.0.0.3 is given twice"), "{e}");
        assert_eq!(distinct_ips(&[ip]).unwrap(), [ip]);
    }

    #[test]
    fn a_joiner_gets_the_member_list_as_etcd_has_it() {
        // `member add` output: the joiner has no name yet; a member added by
        // an earlier step of the same command is listed, the second new IP
        // (not added yet) is not.
        let text = r#"{"members":[{"ID":1,"name":"etcd-10.0.0.1","peerURLs":["https://10.0.0.1:2380"],"clientURLs":["https://10.0.0.1:2379"]},{"ID":2,"name":"etcd-10.0.0.4","peerURLs":["https://10.0.0.4:2380"],"clientURLs":["https://10.0.0.4:2379"]},{"ID":3,"peerURLs":["https://10.0.0.5:2380"]}]}"#;
        let members = ctl::parse_member_list(text).unwrap();
        assert_eq!(peer_host("https://[fd00::1]:2380"), "fd00::1");
        assert_eq!(
            initial_cluster(&members[..2], "10.0.0.5".parse().unwrap()),
            "etcd-10.0.0.1=https://10.0.0.1:2380,etcd-10.0.0.4=https://10.0.0.4:2380",
            "a member only ever lists members etcd knows"
        );
        assert_eq!(
            initial_cluster(&members, "10.0.0.4".parse().unwrap()),
            "etcd-10.0.0.1=https://10.0.0.1:2380,etcd-10.0.0.4=https://10.0.0.4:2380,etcd-10.0.0.5=https://10.0.0.5:2380",
            "an unstarted member is named like the unit names it"
        );
        assert_eq!(
            initial_cluster(&members, "10.0.0.5".parse().unwrap()),
            "etcd-10.0.0.1=https://10.0.0.1:2380,etcd-10.0.0.4=https://10.0.0.4:2380,etcd-10.0.0.5=https://10.0.0.5:2380"
        );
        // The health a joiner waits for covers the members etcd lists, not
        // the inventory's later ones (add-etcd of two: the first joiner
        // waited for the second, not yet started, and was undone).
        assert_eq!(
            member_endpoints(&members[..2]),
            "https://10.0.0.1:2379,https://10.0.0.4:2379"
        );
        assert_eq!(
            member_endpoints(&members),
            "https://10.0.0.1:2379,https://10.0.0.4:2379,https://10.0.0.5:2379"
        );
    }
}
