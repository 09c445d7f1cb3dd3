//! etcdctl as it runs ON an etcd member: the member's own binary and certs
//! (so the controller needs neither etcdctl nor network access to port 2379),
//! and the JSON it prints (`-w json`), parsed into small types.

use std::net::IpAddr;
use std::time::Duration;

use ez_inventory::cluster::socket;
use ez_inventory::Cluster;
use ez_ssh::shell_quote;
use serde::Deserialize;

/// Client URL of a member, as the etcd unit advertises it.
pub fn client_url(ip: IpAddr) -> String {
    format!("https://{}", socket(ip, 2379))
}

/// Peer URL of a member, as the etcd unit advertises it.
pub fn peer_url(ip: IpAddr) -> String {
    format!("https://{}", socket(ip, 2380))
}

/// How to call etcdctl on a member: paths from the cluster settings
/// (`bin_dir`, `ca_dir`), the etcd cert pair the etcd role installs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctl {
    bin: String,
    /// etcdutl: the offline tool (snapshot status and restore moved there
    /// from etcdctl in etcd 3.6).
    util: String,
    ca: String,
    cert: String,
    key: String,
}

impl Ctl {
    pub fn for_cluster(cluster: &Cluster) -> Ctl {
        let bin_dir = cluster.settings.text("bin_dir");
        let ca_dir = cluster.settings.text("ca_dir");
        Ctl {
            bin: format!("{bin_dir}/etcdctl"),
            util: format!("{bin_dir}/etcdutl"),
            ca: format!("{ca_dir}/ca.pem"),
            cert: format!("{ca_dir}/etcd.pem"),
            key: format!("{ca_dir}/etcd-key.pem"),
        }
    }

    /// The member's client TLS flags: the one place that says which files
    /// etcdctl authenticates with.
    fn tls_flags(&self) -> String {
        format!(
            "--cacert={} --cert={} --key={}",
            shell_quote(&self.ca),
            shell_quote(&self.cert),
            shell_quote(&self.key)
        )
    }

    /// `etcdctl` with its TLS flags, as a command prefix: the roles' global
    /// `etcdctl` (`{{ etcdctl }} --endpoints=... endpoint health`), so the
    /// roles' health probes and ezctl's own etcdctl calls cannot drift apart.
    pub fn prefix(&self) -> String {
        format!(
            "ETCDCTL_API=3 {} {}",
            shell_quote(&self.bin),
            self.tls_flags()
        )
    }

    /// A shell line running `etcdctl <args>` against `endpoints`; each
    /// request gives up after `timeout`. `args` are quoted here.
    pub fn online(&self, endpoints: &[String], timeout: Duration, args: &[&str]) -> String {
        let mut line = format!(
            "ETCDCTL_API=3 {} --endpoints={} {} --dial-timeout=3s --command-timeout={}s",
            shell_quote(&self.bin),
            shell_quote(&endpoints.join(",")),
            self.tls_flags(),
            timeout.as_secs().max(1)
        );
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        line
    }

    /// A shell line running an etcdutl command, which needs no server
    /// (`snapshot status`, `snapshot restore`).
    pub fn offline(&self, args: &[&str]) -> String {
        let mut line = shell_quote(&self.util);
        for a in args {
            line.push(' ');
            line.push_str(&shell_quote(a));
        }
        line
    }
}

/// etcdctl printed something that is not the JSON we asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub what: &'static str,
    pub detail: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unexpected `{}` output: {}", self.what, self.detail)
    }
}

impl std::error::Error for ParseError {}

fn parse<T: for<'de> Deserialize<'de>>(what: &'static str, text: &str) -> Result<T, ParseError> {
    if let Ok(v) = serde_json::from_str(text.trim()) {
        return Ok(v);
    }
    // Anything printed around the document (a warning line): the document
    // is the line that starts with `{` or `[`.
    let doc = text
        .lines()
        .find(|l| l.starts_with('{') || l.starts_with('['))
        .unwrap_or(text);
    serde_json::from_str(doc).map_err(|e| ParseError {
        what,
        detail: format!("{e} in {:?}", doc.chars().take(200).collect::<String>()),
    })
}

/// One entry of `member list`. A member added but not started yet has no
/// name and no client URLs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Member {
    /// 64-bit, beyond what a JSON double holds: read as an integer.
    #[serde(rename = "ID")]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "clientURLs", default)]
    pub client_urls: Vec<String>,
}

impl Member {
    /// `member remove` wants the ID in hex.
    pub fn hex_id(&self) -> String {
        format!("{:x}", self.id)
    }

    pub fn started(&self) -> bool {
        !self.name.is_empty()
    }

    /// True when this is the member of `ip` (by its peer URL, which exists
    /// from `member add` on, unlike the name).
    pub fn is_at(&self, ip: IpAddr) -> bool {
        self.peer_urls.iter().any(|u| *u == peer_url(ip))
    }

    /// What to call it in messages.
    pub fn label(&self) -> String {
        if self.started() {
            self.name.clone()
        } else {
            format!(
                "{} (not started)",
                self.peer_urls.first().map_or("?", String::as_str)
            )
        }
    }
}

#[derive(Deserialize)]
struct MemberListDoc {
    #[serde(default)]
    members: Vec<Member>,
}

/// `member list -w json` (and `member add -w json`, which lists too).
pub fn parse_member_list(text: &str) -> Result<Vec<Member>, ParseError> {
    let doc: MemberListDoc = parse("member list", text)?;
    Ok(doc.members)
}

/// One entry of `endpoint health -w json`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Health {
    pub endpoint: String,
    pub health: bool,
    #[serde(default)]
    pub error: Option<String>,
}

/// `endpoint health -w json`: printed for every endpoint even when some
/// are unhealthy (etcdctl then exits 1), so callers parse regardless of
/// the exit code.
pub fn parse_health(text: &str) -> Result<Vec<Health>, ParseError> {
    parse("endpoint health", text)
}

/// `snapshot status -w json`: what the snapshot file itself says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct SnapshotStatus {
    /// crc32 of the bolt database, checked by etcd on restore.
    pub hash: u32,
    pub revision: i64,
    #[serde(rename = "totalKey")]
    pub total_keys: u64,
    #[serde(rename = "totalSize")]
    pub total_size: u64,
}

pub fn parse_snapshot_status(text: &str) -> Result<SnapshotStatus, ParseError> {
    parse("snapshot status", text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_everything() {
        let ctl = Ctl {
            bin: "/opt/kube/bin/etcdctl".into(),
            util: "/opt/kube/bin/etcdutl".into(),
            ca: "/etc/kubernetes/ssl/ca.pem".into(),
            cert: "/etc/kubernetes/ssl/etcd.pem".into(),
            key: "/etc/kubernetes/ssl/etcd-key.pem".into(),
        };
        let line = ctl.online(
            &[
                "https://10.0.0.1:2379".into(),
                "https://10.0.0.2:2379".into(),
            ],
            Duration::from_secs(7),
            &[
                "member",
                "add",
                "etcd-10.0.0.9",
                "--peer-urls=https://10.0.0.9:2380",
            ],
        );
        assert!(line.starts_with("ETCDCTL_API=3 '/opt/kube/bin/etcdctl' --endpoints='https://10.0.0.1:2379,https://10.0.0.2:2379' "), "{line}");
        assert!(
            line.contains(
                "--cert='/etc/kubernetes/ssl/etcd.pem' --key='/etc/kubernetes/ssl/etcd-key.pem'"
            ),
            "{line}"
        );
        assert!(line.ends_with("--command-timeout=7s 'member' 'add' 'etcd-10.0.0.9' '--peer-urls=https://10.0.0.9:2380'"), "{line}");
        assert_eq!(
            ctl.offline(&["snapshot", "status", "/tmp/a b.db"]),
            "'/opt/kube/bin/etcdutl' 'snapshot' 'status' '/tmp/a b.db'"
        );
    }

    #[test]
    fn urls_bracket_ipv6() {
        assert_eq!(
            client_url("10.0.0.1".parse().unwrap()),
            "https://10.0.0.1:2379"
        );
        assert_eq!(
            peer_url("fd00::1".parse().unwrap()),
            "https://[fd00::1]:2380"
        );
    }

    #[test]
    fn members_keep_their_64_bit_ids() {
        // As etcd 3.4 prints it after `member add` of a member not yet started.
        let text = r#"{"header":{"cluster_id":324952591200643719,"member_id":3319814642761637952,"raft_term":2},"members":[{"ID":2764227101692753617,"peerURLs":["https://10.0.0.9:2380"]},{"ID":18446744073709551615,"name":"etcd-10.0.0.1","peerURLs":["https://10.0.0.1:2380"],"clientURLs":["https://10.0.0.1:2379"]}]}"#;
        let members = parse_member_list(text).unwrap();
        assert_eq!(members.len(), 2);
        assert!(!members[0].started());
        assert!(members[0].is_at("10.0.0.9".parse().unwrap()));
        assert_eq!(members[0].label(), "https://10.0.0.9:2380 (not started)");
        assert_eq!(members[1].hex_id(), "ffffffffffffffff");
        assert_eq!(members[1].label(), "etcd-10.0.0.1");
    }

    #[test]
    fn health_and_status_parse_and_garbage_is_named() {
        let h = parse_health(r#"[{"endpoint":"https://10.0.0.1:2379","health":true,"took":"1.9ms"},{"endpoint":"https://10.0.0.2:2379","health":false,"took":"2s","error":"context deadline exceeded"}]"#).unwrap();
        assert!(h[0].health && !h[1].health);
        assert_eq!(h[1].error.as_deref(), Some("context deadline exceeded"));
        let s = parse_snapshot_status(
            r#"{"hash":742368141,"revision":2,"totalKey":5,"totalSize":20480}"#,
        )
        .unwrap();
        assert_eq!(
            (s.hash, s.revision, s.total_keys, s.total_size),
            (742368141, 2, 5, 20480)
        );
        let e = parse_snapshot_status("Error: snapshot file has wrong hash").unwrap_err();
        assert_eq!(e.what, "snapshot status");
        assert!(e.to_string().contains("wrong hash"), "{e}");
    }

    /// The parsers against what the installed etcdctl really prints, with
    /// a real single-member etcd on loopback (no TLS: the JSON is the same).
    #[test]
    fn real_etcdctl_output_parses() {
        use std::process::{Command, Stdio};
        if Command::new("etcd").arg("--version").output().is_err()
            || Command::new("etcdctl").arg("version").output().is_err()
        {
            eprintln!(
                "skipping: etcd or etcdctl not installed (apt-get install etcd-server etcd-client)"
            );
            return;
        }
        let free_port = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (client, peer) = (free_port(), free_port());
        let tmp = tempfile::tempdir().unwrap();
        let client_url = format!("http://127.0.0.1:{client}");
        let peer_url = format!("http://127.0.0.1:{peer}");
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let _etcd = Kill(
            Command::new("etcd")
                .args([
                    "--name=m1",
                    &format!("--data-dir={}", tmp.path().join("data").display()),
                    &format!("--listen-client-urls={client_url}"),
                    &format!("--advertise-client-urls={client_url}"),
                    &format!("--listen-peer-urls={peer_url}"),
                    &format!("--initial-advertise-peer-urls={peer_url}"),
                    &format!("--initial-cluster=m1={peer_url}"),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        let ctl = |args: &[&str]| {
            let out = Command::new("etcdctl")
                .env("ETCDCTL_API", "3")
                .arg(format!("--endpoints={client_url}"))
                .args(args)
                .output()
                .unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !ctl(&["endpoint", "health"]).0 {
            assert!(std::time::Instant::now() < deadline, "etcd did not start");
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(ctl(&["put", "k", "v"]).0);

        let (ok, text) = ctl(&["member", "list", "-w", "json"]);
        assert!(ok);
        let members = parse_member_list(&text).unwrap();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].name, "m1");
        assert_eq!(members[0].client_urls, std::slice::from_ref(&client_url));

        // The simple format prints IDs in hex, as `member remove` takes them.
        let (ok, simple) = ctl(&["member", "list"]);
        assert!(ok);
        assert!(
            simple.starts_with(&format!("{}, started, m1,", members[0].hex_id())),
            "{simple} vs {:x}",
            members[0].id
        );

        // A dead endpoint next to the live one: exit 1, JSON for both.
        let dead = format!("http://127.0.0.1:{}", free_port());
        let out = Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={client_url},{dead}"))
            .args(["--command-timeout=2s", "endpoint", "health", "-w", "json"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let health = parse_health(&String::from_utf8_lossy(&out.stdout)).unwrap();
        assert_eq!(health.len(), 2);
        assert!(health.iter().any(|h| h.endpoint == client_url && h.health));
        assert!(health
            .iter()
            .any(|h| h.endpoint == dead && !h.health && h.error.is_some()));

        let file = tmp.path().join("s.db");
        let file = file.to_str().unwrap();
        assert!(ctl(&["snapshot", "save", file]).0);
        let (ok, text) = ctl(&["snapshot", "status", file, "-w", "json"]);
        assert!(ok);
        let status = parse_snapshot_status(&text).unwrap();
        assert!(status.revision >= 2, "{status:?}");
        assert!(
            status.total_keys >= 1 && status.total_size > 0,
            "{status:?}"
        );
    }
}
