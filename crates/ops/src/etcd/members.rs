//! etcdctl on the members over SSH. Every failure is a [`StepError`] naming
//! the host and the step, so "which member, doing what" is never a guess.
//!
//! etcdctl runs on a member host with that host's certs, but its
//! `--endpoints` may name other members: a member whose etcd is down can
//! still host the etcdctl that talks to the healthy ones.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ez_engine::ExecOutput;
use ez_inventory::{Cluster, Group};
use ez_ssh::{HostSpec, Session, SshError};

use super::ctl::{self, Ctl, Health, Member, SnapshotStatus};
use super::snapshots;
use crate::remote::{host_spec, SshConnector};

/// Where snapshots are written on a member before download; root only.
pub const REMOTE_SNAPSHOT_DIR: &str = "/var/lib/ezctl/etcd-snapshots";

/// Short requests (list, health, add, remove).
const QUICK: Duration = Duration::from_secs(8);
/// A snapshot of a large database takes a while.
const SNAPSHOT: Duration = Duration::from_secs(600);

/// One host, one step, what went wrong.
#[derive(Debug, Clone)]
pub struct StepError {
    pub host: IpAddr,
    pub step: String,
    pub detail: String,
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}: {}", self.host, self.step, self.detail)
    }
}

impl std::error::Error for StepError {}

/// Several hosts tried, each failing: every reason, one per line.
pub fn list_errors(errors: &[StepError]) -> String {
    errors
        .iter()
        .map(|e| format!("  - {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The members' hosts, reached through the same pool as the engine runs.
pub struct EtcdHosts {
    connector: Arc<SshConnector>,
    specs: BTreeMap<IpAddr, HostSpec>,
    ctl: Ctl,
    /// Client URLs of the inventory's members, in inventory order.
    inventory_endpoints: Vec<String>,
}

/// The member list and health as seen at one moment.
#[derive(Debug, Clone)]
pub struct View {
    /// The host whose etcdctl answered.
    pub via: IpAddr,
    pub members: Vec<Member>,
    pub health: Vec<Health>,
    /// Hosts tried first that did not answer, and why.
    pub skipped: Vec<StepError>,
}

impl View {
    pub fn member_at(&self, ip: IpAddr) -> Option<&Member> {
        self.members.iter().find(|m| m.is_at(ip))
    }

    pub fn is_healthy(&self, m: &Member) -> bool {
        m.client_urls
            .iter()
            .any(|u| self.health.iter().any(|h| &h.endpoint == u && h.health))
    }

    pub fn healthy_count(&self) -> usize {
        self.members.iter().filter(|m| self.is_healthy(m)).count()
    }

    /// Client URLs of the healthy members, leaving out `except`.
    pub fn healthy_endpoints(&self, except: Option<IpAddr>) -> Vec<String> {
        self.members
            .iter()
            .filter(|m| self.is_healthy(m) && except.is_none_or(|ip| !m.is_at(ip)))
            .flat_map(|m| m.client_urls.iter().cloned())
            .collect()
    }

    /// One line per member for messages: `etcd-10.0.0.1 healthy`.
    pub fn describe(&self) -> String {
        self.members
            .iter()
            .map(|m| {
                let state = if !m.started() {
                    "not started"
                } else if self.is_healthy(m) {
                    "healthy"
                } else {
                    "UNHEALTHY"
                };
                format!("{} {state}", m.label())
            })
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A snapshot downloaded to the controller and checked.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub member: IpAddr,
    pub status: SnapshotStatus,
    pub sha256: String,
    pub size: u64,
}

fn ssh_step(ip: IpAddr, step: &str, e: SshError) -> StepError {
    let text = e.to_string();
    let detail = text
        .strip_prefix(&format!("{ip}: "))
        .unwrap_or(&text)
        .to_string();
    StepError {
        host: ip,
        step: step.to_string(),
        detail,
    }
}

/// etcd's "not now" answers to a membership change.
fn is_not_ready(detail: &str) -> bool {
    detail.contains("unhealthy cluster") || detail.contains("not enough started members")
}

/// The useful end of what a command printed: etcdctl's `Error:` lines when
/// there are any (its JSON log lines carry stack traces), else the last
/// `n` lines, each cut at 300 characters.
fn last_lines(text: &str, n: usize) -> String {
    let errors: Vec<&str> = text.lines().filter(|l| l.starts_with("Error:")).collect();
    let lines: Vec<&str> = if errors.is_empty() {
        text.trim().lines().collect()
    } else {
        errors
    };
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.chars().take(300).collect::<String>())
        .collect::<Vec<_>>()
        .join(" | ")
}

impl EtcdHosts {
    /// Hosts of `cluster` (any group: a new member is found here too).
    pub fn new(cluster: &Cluster, connector: Arc<SshConnector>) -> EtcdHosts {
        EtcdHosts {
            connector,
            specs: cluster
                .hosts
                .iter()
                .map(|h| (h.ip, host_spec(cluster, h)))
                .collect(),
            ctl: Ctl::for_cluster(cluster),
            inventory_endpoints: cluster
                .group(Group::Etcd)
                .map(|h| ctl::client_url(h.ip))
                .collect(),
        }
    }

    async fn session(&self, ip: IpAddr, step: &str) -> Result<Session, StepError> {
        let spec = self
            .specs
            .get(&ip)
            .cloned()
            .unwrap_or_else(|| HostSpec::new(ip.to_string()));
        self.connector
            .pool()
            .session(&spec)
            .await
            .map_err(|e| ssh_step(ip, step, e))
    }

    /// Run `cmd` as root on `ip`; a non-zero exit is not an error here.
    pub async fn run(
        &self,
        ip: IpAddr,
        step: &str,
        cmd: &str,
        timeout: Duration,
    ) -> Result<ExecOutput, StepError> {
        let session = self.session(ip, step).await?;
        let out = session
            .exec(
                cmd,
                ez_ssh::ExecOpts {
                    timeout: Some(timeout),
                    sudo: true,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| ssh_step(ip, step, e))?;
        Ok(ExecOutput {
            code: out.code,
            stdout: out.stdout_str(),
            stderr: out.stderr_str(),
        })
    }

    /// [`Self::run`], a non-zero exit failing the step with the last lines
    /// etcdctl (or the shell) printed.
    pub async fn run_ok(
        &self,
        ip: IpAddr,
        step: &str,
        cmd: &str,
        timeout: Duration,
    ) -> Result<String, StepError> {
        let out = self.run(ip, step, cmd, timeout).await?;
        if out.code == 0 {
            return Ok(out.stdout);
        }
        let said = if out.stderr.trim().is_empty() {
            &out.stdout
        } else {
            &out.stderr
        };
        Err(StepError {
            host: ip,
            step: step.to_string(),
            detail: format!("exit {}: {}", out.code, last_lines(said, 3)),
        })
    }

    /// Can we log in and run a command there?
    pub async fn reach(&self, ip: IpAddr) -> Result<(), StepError> {
        self.run_ok(ip, "reach over SSH", "true", QUICK)
            .await
            .map(|_| ())
    }

    /// `member list`, asked through `via`'s etcdctl of any member in `endpoints`.
    pub async fn member_list(
        &self,
        via: IpAddr,
        endpoints: &[String],
    ) -> Result<Vec<Member>, StepError> {
        let cmd = self
            .ctl
            .online(endpoints, QUICK, &["member", "list", "-w", "json"]);
        let out = self.run_ok(via, "member list", &cmd, QUICK * 3).await?;
        ctl::parse_member_list(&out).map_err(|e| StepError {
            host: via,
            step: "member list".into(),
            detail: e.to_string(),
        })
    }

    /// `endpoint health` of each of `endpoints`, from `via`.
    pub async fn health(
        &self,
        via: IpAddr,
        endpoints: &[String],
    ) -> Result<Vec<Health>, StepError> {
        // A dead endpoint costs the whole timeout: keep it short.
        let cmd = self.ctl.online(
            endpoints,
            Duration::from_secs(4),
            &["endpoint", "health", "-w", "json"],
        );
        // Exit 1 when any endpoint is unhealthy: the JSON still says which.
        let out = self.run(via, "endpoint health", &cmd, QUICK * 3).await?;
        ctl::parse_health(&out.stdout).map_err(|e| StepError {
            host: via,
            step: "endpoint health".into(),
            detail: format!("{e}; stderr: {}", last_lines(&out.stderr, 3)),
        })
    }

    /// Member list and health through the first of `candidates` that
    /// answers; every failed candidate is kept in [`View::skipped`].
    pub async fn observe(&self, candidates: &[IpAddr]) -> Result<View, Vec<StepError>> {
        let mut skipped = Vec::new();
        for &via in candidates {
            let members = match self.member_list(via, &self.inventory_endpoints).await {
                Ok(m) => m,
                Err(e) => {
                    skipped.push(e);
                    continue;
                }
            };
            let mut endpoints = self.inventory_endpoints.clone();
            for m in &members {
                for u in &m.client_urls {
                    if !endpoints.contains(u) {
                        endpoints.push(u.clone());
                    }
                }
            }
            match self.health(via, &endpoints).await {
                Ok(health) => {
                    return Ok(View {
                        via,
                        members,
                        health,
                        skipped,
                    })
                }
                Err(e) => skipped.push(e),
            }
        }
        Err(skipped)
    }

    /// `member add etcd-<ip>` through the healthy `endpoints`.
    pub async fn member_add(
        &self,
        via: IpAddr,
        endpoints: &[String],
        ip: IpAddr,
    ) -> Result<Vec<Member>, StepError> {
        let name = ez_inventory::cluster::etcd_member_name(ip);
        let peer = format!("--peer-urls={}", ctl::peer_url(ip));
        let cmd = self.ctl.online(
            endpoints,
            QUICK,
            &["member", "add", &name, &peer, "-w", "json"],
        );
        let out = self.reconfigure(via, "member add", &cmd).await?;
        ctl::parse_member_list(&out).map_err(|e| StepError {
            host: via,
            step: "member add".into(),
            detail: e.to_string(),
        })
    }

    /// `member remove <id>` through the healthy `endpoints`.
    pub async fn member_remove(
        &self,
        via: IpAddr,
        endpoints: &[String],
        member: &Member,
    ) -> Result<(), StepError> {
        let cmd = self
            .ctl
            .online(endpoints, QUICK, &["member", "remove", &member.hex_id()]);
        self.reconfigure(via, "member remove", &cmd)
            .await
            .map(|_| ())
    }

    /// A membership change. etcd refuses one ("unhealthy cluster") until
    /// every member it counts has been connected for a few seconds (its
    /// health interval, 5 s), e.g. right after the previous change: that
    /// refusal is retried for up to 30 s, anything else fails at once.
    async fn reconfigure(&self, via: IpAddr, step: &str, cmd: &str) -> Result<String, StepError> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            match self.run_ok(via, step, cmd, QUICK * 3).await {
                Err(e) if is_not_ready(&e.detail) && tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
                other => return other,
            }
        }
    }

    /// `snapshot save` on member `ip` from its own endpoint, checked with
    /// `snapshot status`, downloaded to `dest` and compared by sha256 with
    /// the file on the member. The member's copy is removed either way.
    pub async fn snapshot(
        &self,
        ip: IpAddr,
        stamp: &str,
        dest: &Path,
    ) -> Result<Snapshot, StepError> {
        let remote = format!("{REMOTE_SNAPSHOT_DIR}/snapshot-{stamp}.db");
        let result = self.snapshot_inner(ip, &remote, dest).await;
        let rm = format!(
            "rm -f {} {}.part",
            ez_ssh::shell_quote(&remote),
            ez_ssh::shell_quote(&remote)
        );
        let _ = self.run(ip, "remove the member's copy", &rm, QUICK).await;
        if result.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        result
    }

    async fn snapshot_inner(
        &self,
        ip: IpAddr,
        remote: &str,
        dest: &Path,
    ) -> Result<Snapshot, StepError> {
        // `snapshot save` waits for a dead endpoint as long as its command
        // timeout, which must be long for big databases: ask first.
        let own = [ctl::client_url(ip)];
        let health = self.health(ip, &own).await?;
        if let Some(h) = health.iter().find(|h| !h.health) {
            return Err(StepError {
                host: ip,
                step: "endpoint health".into(),
                detail: format!(
                    "etcd is not healthy: {}",
                    h.error.as_deref().unwrap_or("no answer")
                ),
            });
        }
        let save = format!(
            "umask 077 && mkdir -p {dir} && {cmd}",
            dir = ez_ssh::shell_quote(REMOTE_SNAPSHOT_DIR),
            cmd = self.ctl.online(
                &[ctl::client_url(ip)],
                SNAPSHOT,
                &["snapshot", "save", remote]
            )
        );
        self.run_ok(ip, "snapshot save", &save, SNAPSHOT + QUICK)
            .await?;
        let status_cmd = self
            .ctl
            .offline(&["snapshot", "status", remote, "-w", "json"]);
        let out = self
            .run_ok(ip, "snapshot status", &status_cmd, SNAPSHOT)
            .await?;
        let status = ctl::parse_snapshot_status(&out).map_err(|e| StepError {
            host: ip,
            step: "snapshot status".into(),
            detail: e.to_string(),
        })?;
        let session = self.session(ip, "download").await?;
        let sums = session
            .remote_sha256(&[remote])
            .await
            .map_err(|e| ssh_step(ip, "sha256 on the member", e))?;
        let Some(Some(remote_sum)) = sums.get(remote).cloned() else {
            return Err(StepError {
                host: ip,
                step: "sha256 on the member".into(),
                detail: format!("{remote} is missing after `snapshot save`"),
            });
        };
        let size = session
            .download(remote, dest)
            .await
            .map_err(|e| ssh_step(ip, "download", e))?;
        let local_sum = snapshots::sha256_file(dest).map_err(|e| StepError {
            host: ip,
            step: "verify the download".into(),
            detail: format!("reading {}: {e}", dest.display()),
        })?;
        if local_sum != remote_sum {
            return Err(StepError {
                host: ip,
                step: "verify the download".into(),
                detail: format!(
                    "sha256 differs: {local_sum} on the controller, {remote_sum} on the member"
                ),
            });
        }
        Ok(Snapshot {
            member: ip,
            status,
            sha256: local_sum,
            size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcdctl_errors_are_kept_and_logs_dropped() {
        let stderr = "{\"level\":\"error\",\"stacktrace\":\"go.etcd.io/...\"}\nError: context deadline exceeded\n";
        assert_eq!(last_lines(stderr, 3), "Error: context deadline exceeded");
        let long = format!("a\nb\nc\n{}", "x".repeat(1000));
        let tail = last_lines(&long, 2);
        assert!(tail.starts_with("c | xxx") && tail.len() < 320, "{tail}");
    }

    #[test]
    fn only_not_ready_refusals_are_retried() {
        assert!(is_not_ready("exit 1: Error: etcdserver: unhealthy cluster"));
        assert!(is_not_ready(
            "exit 1: Error: etcdserver: re-configuration failed due to not enough started members"
        ));
        assert!(!is_not_ready("exit 1: Error: etcdserver: member not found"));
        assert!(!is_not_ready(
            "exit 1: Error: etcdserver: Peer URLs already exists"
        ));
    }

    #[test]
    fn views_count_health_by_client_url() {
        let members = ctl::parse_member_list(r#"{"members":[
            {"ID":1,"name":"etcd-10.0.0.1","peerURLs":["https://10.0.0.1:2380"],"clientURLs":["https://10.0.0.1:2379"]},
            {"ID":2,"name":"etcd-10.0.0.2","peerURLs":["https://10.0.0.2:2380"],"clientURLs":["https://10.0.0.2:2379"]},
            {"ID":3,"peerURLs":["https://10.0.0.3:2380"]}]}"#).unwrap();
        let health = ctl::parse_health(r#"[{"endpoint":"https://10.0.0.1:2379","health":true},{"endpoint":"https://10.0.0.2:2379","health":false,"error":"x"}]"#).unwrap();
        let view = View {
            via: "10.0.0.1".parse().unwrap(),
            members,
            health,
            skipped: vec![],
        };
        assert_eq!(view.healthy_count(), 1);
        assert_eq!(view.healthy_endpoints(None), ["https://10.0.0.1:2379"]);
        assert!(view
            .healthy_endpoints(Some("10.0.0.1".parse().unwrap()))
            .is_empty());
        assert_eq!(
            view.describe(),
            "etcd-10.0.0.1 healthy, etcd-10.0.0.2 UNHEALTHY, https://10.0.0.3:2380 (not started) not started"
        );
    }
}
