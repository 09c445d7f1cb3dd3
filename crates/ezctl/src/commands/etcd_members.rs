//! `ezctl add-etcd <cluster> <ip>` and `ezctl del-etcd <cluster> <ip>`.
//!
//! Both work from the inventory as it will be (the edited `hosts.yml`,
//! loaded and validated first) and write `hosts.yml` only once the hosts
//! are done, so a failure leaves it byte-identical and a re-run continues:
//! the member list says what an earlier run already did.
//!
//! add: reach the host -> member list and health -> quorum rule -> etcd
//! cert with the new IP -> `member add` -> prepare + etcd on the new host
//! (`etcd_cluster_state: existing`; on failure the member is removed again)
//! -> playbook 22-etcd-roll (members, then apiservers, one at a time).
//!
//! del: member list and health -> quorum rules -> `member remove` through
//! the other members -> playbook 23-etcd-clean on the host (a dead host is
//! a warning) -> etcd cert without the IP -> 22-etcd-roll.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ez_inventory::edit::{self, add_host, remove_host};
use ez_inventory::render::HostLine;
use ez_inventory::{Cluster, Group, HOSTS_FILE};
use serde_json::json;

use crate::commands::setup::Output;
use crate::etcd::inventory::{load_with_hosts, EditedError};
use crate::etcd::members::{list_errors, EtcdHosts, StepError, View};
use crate::etcd::{self, plans, quorum};
use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::remote::SshConnector;
use crate::view;

pub struct AddArgs<'a> {
    pub cluster: &'a str,
    pub ips: &'a [String],
    pub name: Option<&'a str>,
    pub accept_new: bool,
}

pub struct DelArgs<'a> {
    pub cluster: &'a str,
    pub ip: &'a str,
    pub force: bool,
}

fn parse_ip(text: &str) -> Result<IpAddr> {
    text.trim()
        .parse()
        .map_err(|_| Failure::usage(format!("`{text}` is not an IP address")).into())
}

fn failed(message: String) -> anyhow::Error {
    Failure::new(ExitCode::Failed, message).into()
}

fn etcd_ips(cluster: &Cluster) -> Vec<IpAddr> {
    cluster.group(Group::Etcd).map(|h| h.ip).collect()
}

fn read_hosts(cluster: &Cluster) -> Result<String> {
    let path = cluster.dir.join(HOSTS_FILE);
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

fn edited(cluster: &Cluster, text: &str, what: &str) -> Result<Cluster> {
    load_with_hosts(cluster, text).map_err(|e| match e {
        EditedError::Invalid(d) => Failure::new(
            ExitCode::Input,
            format!("{d}\n\nhosts.yml with {what} would not be valid; it was left as it is and nothing was done on any host"),
        )
        .into(),
        EditedError::Io(e) => anyhow::Error::new(e).context("checking the edited inventory"),
    })
}

/// Write the edit, re-applied to the file as it is now (an operator may
/// have changed another line meanwhile: that change stays).
fn commit(
    cluster: &Cluster,
    apply: impl Fn(&str) -> Result<String, edit::EditError>,
) -> Result<()> {
    let path = cluster.dir.join(HOSTS_FILE);
    let current = read_hosts(cluster)?;
    let text = apply(&current).with_context(|| format!("editing {}", path.display()))?;
    edit::commit(&path, &text).with_context(|| format!("writing {}", path.display()))
}

fn observe_or_fail(result: Result<View, Vec<StepError>>, when: &str) -> Result<View> {
    result.map_err(|errors| {
        failed(format!(
            "no etcd member answered `member list` {when}:\n{}\nhosts.yml unchanged",
            list_errors(&errors)
        ))
    })
}

pub fn add(home: &Home, args: &AddArgs<'_>, out: &Output) -> Result<()> {
    if args.ips.len() > 1 && args.name.is_some() {
        bail!(Failure::usage("--name is for a single new host"));
    }
    // One member at a time: each add is a full transaction with its own
    // quorum check, and the next one starts from the committed inventory.
    for ip in args.ips {
        add_one(home, args, parse_ip(ip)?, out)?;
    }
    Ok(())
}

fn add_one(home: &Home, args: &AddArgs<'_>, ip: IpAddr, out: &Output) -> Result<()> {
    let name = args.cluster;
    let started = Instant::now();
    let cluster = home.load(name)?;
    if cluster.group(Group::Etcd).any(|h| h.ip == ip) {
        bail!(Failure::new(
            ExitCode::Input,
            format!("{ip} is already in the etcd group of hosts.yml; nothing to do")
        ));
    }
    let line = HostLine {
        ip: ip.to_string(),
        name: args.name.map(str::to_string),
        ..HostLine::default()
    };
    let grown_text = add_host(&read_hosts(&cluster)?, Group::Etcd, &line)
        .map_err(|e| Failure::new(ExitCode::Input, format!("hosts.yml: {e}")))?;
    let grown = edited(&cluster, &grown_text, &format!("{ip} in etcd"))?;
    let _lock = etcd::lock(&cluster, &format!("add-etcd {name} {ip}"))?;
    let old_members = etcd_ips(&cluster);

    let summary = etcd::runtime()?.block_on(async {
        let connector = Arc::new(SshConnector::new(&grown, args.accept_new));
        let hosts = EtcdHosts::new(&grown, connector.clone());
        let result = add_steps(
            home,
            &grown,
            &hosts,
            connector.clone(),
            &old_members,
            ip,
            out,
        )
        .await;
        connector.pool().close_all().await;
        result
    })?;
    commit(&cluster, |text| add_host(text, Group::Etcd, &line))?;
    let took = started.elapsed();
    if out.json {
        println!(
            "{}",
            json!({"event": "add-etcd", "ip": ip.to_string(), "members": summary, "duration_ms": took.as_millis() as u64})
        );
    } else {
        println!(
            "etcd member {ip} added to {name} in {:.1}s: {summary}",
            took.as_secs_f64()
        );
        println!("  hosts.yml updated");
    }
    Ok(())
}

async fn add_steps(
    home: &Home,
    grown: &Cluster,
    hosts: &EtcdHosts,
    connector: Arc<SshConnector>,
    old_members: &[IpAddr],
    ip: IpAddr,
    out: &Output,
) -> Result<String> {
    etcd::say(out, format!("checking that {ip} is reachable"));
    hosts.reach(ip).await.map_err(|e| {
        failed(format!(
            "{e}\nhosts.yml unchanged; nothing was done on any host"
        ))
    })?;
    let view = observe_or_fail(hosts.observe(old_members).await, "before the change")?;
    for e in &view.skipped {
        etcd::warn(out, format!("asked another member: {e}"));
    }
    etcd::say(out, format!("members: {}", view.describe()));
    let joined_before = view.member_at(ip).cloned();
    match &joined_before {
        Some(m) => etcd::say(
            out,
            format!(
                "{ip} is already in the member list ({}): an earlier run added it; continuing",
                m.label()
            ),
        ),
        None => {
            quorum::check_add(view.members.len(), view.healthy_count())
                .map_err(|r| failed(format!("refusing to add {ip}: {r}\nhosts.yml unchanged")))?;
            if let Some(w) = quorum::add_warning(view.members.len()) {
                etcd::warn(out, w);
            }
        }
    }

    // The etcd certificate (one for every member) gets the new IP.
    let ssl = view::ssl_dir(&grown.dir);
    ez_pki::ensure(&view::pki_spec(grown), &ssl).context("certificates")?;

    if joined_before.is_none() {
        etcd::say(out, format!("member add etcd-{ip}"));
        hosts
            .member_add(view.via, &view.healthy_endpoints(None), ip)
            .await
            .map_err(|e| failed(format!("{e}\nhosts.yml unchanged")))?;
    }

    // The new member, joining the existing cluster.
    etcd::say(out, format!("starting etcd on {ip} (prepare, etcd)"));
    let joining = [(ip, "etcd_cluster_state", json!("existing"))];
    let targets = plans::targets(home, grown, &[], &joining);
    let playbooks = [
        plans::playbook(home, "01-prepare")?,
        plans::playbook(home, "02-etcd")?,
    ];
    let plan = plans::build(home, &playbooks, targets, &[ip])?;
    let recap = plans::run(grown, connector.clone(), &plan, out, "add-etcd-member").await?;
    if !recap.ok() {
        let undo = undo_join(hosts, grown, old_members, ip).await;
        bail!(failed(format!(
            "etcd on {ip} did not come up:\n{}\n{undo}\nhosts.yml unchanged; fix the cause and run the same command again",
            plans::failures(&recap)
        )));
    }

    // Everyone else learns the new member list, one host at a time.
    etcd::say(
        out,
        "rolling the member list to every member and apiserver, one at a time",
    );
    let targets = plans::targets(home, grown, &[], &joining);
    let plan = plans::build(
        home,
        &[plans::playbook(home, "22-etcd-roll")?],
        targets,
        &[],
    )?;
    let recap = plans::run(grown, connector, &plan, out, "add-etcd-roll").await?;
    if !recap.ok() {
        bail!(failed(format!(
            "etcd member {ip} is running, but rolling the new member list out failed:\n{}\n\
             hosts.yml unchanged (it does not list {ip} yet); run the same command again to continue \
             (the member is found in the member list and the roll resumes)",
            plans::failures(&recap)
        )));
    }

    let members = etcd_ips(grown);
    let after = observe_or_fail(hosts.observe(&members).await, "after the change")?;
    let healthy = after.member_at(ip).is_some_and(|m| after.is_healthy(m));
    if !healthy || after.healthy_count() != members.len() {
        bail!(failed(format!(
            "after adding {ip} not every member is healthy: {}\nhosts.yml unchanged; run the same command again once they are",
            after.describe()
        )));
    }
    Ok(after.describe())
}

/// The new member did not start: take it out of the member list again
/// (a member that never starts costs the cluster a failure it could
/// otherwise tolerate) and stop whatever runs on the host.
async fn undo_join(
    hosts: &EtcdHosts,
    grown: &Cluster,
    old_members: &[IpAddr],
    ip: IpAddr,
) -> String {
    let mut notes = Vec::new();
    match hosts.observe(old_members).await {
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
            std::time::Duration::from_secs(60),
        )
        .await
    {
        Ok(_) => notes.push(format!("etcd stopped on {ip} and its data dir removed")),
        Err(e) => notes.push(format!("could not clean {ip}: {e}")),
    }
    notes.join("\n")
}

pub fn del(home: &Home, args: &DelArgs<'_>, out: &Output) -> Result<()> {
    let name = args.cluster;
    let ip = parse_ip(args.ip)?;
    let started = Instant::now();
    let cluster = home.load(name)?;
    let members = etcd_ips(&cluster);
    if !members.contains(&ip) {
        bail!(Failure::new(
            ExitCode::Input,
            format!(
                "{ip} is not in the etcd group of hosts.yml (members: {})",
                members
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        ));
    }
    if members.len() == 1 {
        bail!(failed(format!(
            "refusing to remove {ip}: {}",
            quorum::Refusal::LastMember
        )));
    }
    let shrunk_text = remove_host(&read_hosts(&cluster)?, Group::Etcd, &ip.to_string())
        .map_err(|e| Failure::new(ExitCode::Input, format!("hosts.yml: {e}")))?;
    let shrunk = edited(&cluster, &shrunk_text, &format!("{ip} out of etcd"))?;
    let _lock = etcd::lock(&cluster, &format!("del-etcd {name} {ip}"))?;

    let (summary, warnings) = etcd::runtime()?.block_on(async {
        // The old inventory knows how to reach the leaving host.
        let connector = Arc::new(SshConnector::new(&cluster, false));
        let hosts = EtcdHosts::new(&cluster, connector.clone());
        let result = del_steps(
            home,
            &cluster,
            &shrunk,
            &hosts,
            connector.clone(),
            ip,
            args.force,
            out,
        )
        .await;
        connector.pool().close_all().await;
        result
    })?;
    commit(&cluster, |text| {
        remove_host(text, Group::Etcd, &ip.to_string())
    })?;
    let took = started.elapsed();
    if out.json {
        println!(
            "{}",
            json!({"event": "del-etcd", "ip": ip.to_string(), "members": summary, "warnings": warnings, "duration_ms": took.as_millis() as u64})
        );
    } else {
        println!(
            "etcd member {ip} removed from {name} in {:.1}s: {summary}",
            took.as_secs_f64()
        );
        for w in &warnings {
            println!("  warning: {w}");
        }
        println!("  hosts.yml updated");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn del_steps(
    home: &Home,
    cluster: &Cluster,
    shrunk: &Cluster,
    hosts: &EtcdHosts,
    connector: Arc<SshConnector>,
    ip: IpAddr,
    force: bool,
    out: &Output,
) -> Result<(String, Vec<String>)> {
    let mut warnings = Vec::new();
    // Ask the members that stay first; the leaving one only as a last resort.
    let mut candidates: Vec<IpAddr> = etcd_ips(shrunk);
    candidates.push(ip);
    let view = observe_or_fail(hosts.observe(&candidates).await, "before the change")?;
    for e in &view.skipped {
        etcd::warn(out, format!("asked another member: {e}"));
    }
    etcd::say(out, format!("members: {}", view.describe()));
    match view.member_at(ip).cloned() {
        Some(m) => {
            let healthy_remaining = view
                .members
                .iter()
                .filter(|x| !x.is_at(ip) && view.is_healthy(x))
                .count();
            quorum::check_remove(view.members.len(), healthy_remaining, force).map_err(|r| {
                failed(format!(
                    "refusing to remove {ip}: {r}\nhosts.yml unchanged; nothing was done"
                ))
            })?;
            etcd::say(out, format!("member remove {}", m.label()));
            hosts
                .member_remove(view.via, &view.healthy_endpoints(Some(ip)), &m)
                .await
                .map_err(|e| failed(format!("{e}\nhosts.yml unchanged")))?;
        }
        None => etcd::say(
            out,
            format!("{ip} is not in the member list: an earlier run removed it; continuing"),
        ),
    }

    // The host: etcd stopped, unit, data and cert gone. A dead host cannot
    // be cleaned, and that must not keep a dead member in the cluster.
    etcd::say(out, format!("cleaning {ip}"));
    let targets = plans::targets(home, cluster, &[], &[]);
    let plan = plans::build(
        home,
        &[plans::playbook(home, "23-etcd-clean")?],
        targets,
        &[ip],
    )?;
    let recap = plans::run(cluster, connector.clone(), &plan, out, "del-etcd-clean").await?;
    if !recap.ok() {
        let w = format!(
            "{ip} could not be cleaned (etcd unit, data and certificate are left there):\n{}",
            plans::failures(&recap)
        );
        etcd::warn(out, &w);
        warnings.push(w);
    }

    let ssl = view::ssl_dir(&shrunk.dir);
    ez_pki::ensure(&view::pki_spec(shrunk), &ssl).context("certificates")?;

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
            "member {ip} is removed, but rolling the new member list out failed:\n{}\n\
             hosts.yml unchanged (it still lists {ip}); run the same command again to continue",
            plans::failures(&recap)
        )));
    }

    let members = etcd_ips(shrunk);
    let after = observe_or_fail(hosts.observe(&members).await, "after the change")?;
    if after.member_at(ip).is_some() || after.healthy_count() != members.len() {
        bail!(failed(format!(
            "after removing {ip} the cluster is not as expected: {}\nhosts.yml unchanged; run the same command again",
            after.describe()
        )));
    }
    Ok((after.describe(), warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_are_checked_before_anything() {
        let e = parse_ip("10.0.0.300").unwrap_err();
        let f = e.downcast_ref::<Failure>().unwrap();
        assert_eq!(f.code, ExitCode::Usage);
        assert_eq!(parse_ip(" 10.0.0.3 ").unwrap(), IpAddr::from([10, 0, 0, 3]));
    }
}
