//! Where the kubeconfigs we hand out (admin, `kcfg-adm` users) point.
//!
//! The inventory names the cluster's designed endpoint: the ex-lb VIP when
//! `ex_lb` hosts are listed. But the VIP exists only once step 10 has
//! installed keepalived, and `setup all` runs 01..07: a kubeconfig at the
//! VIP before then answers `no route to host`. So the endpoint is the VIP
//! only after a run of the ex-lb role saw it answer the API (its last task);
//! that run leaves a marker in the cluster folder naming the VIP it saw.
//! Until then, after a failed ex-lb run, or once `ex_lb` is emptied, it is
//! the first master (as in kubeasz).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use ez_inventory::{Cluster, Group};

/// The marker a verified ex-lb run leaves, beside `hosts.yml`.
const VERIFIED: &str = "ex-lb.verified";

/// The endpoint in use, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
    /// The ex-lb VIP is listed and was seen answering.
    pub vip_serving: bool,
    pub why: String,
}

fn marker(cluster: &Cluster) -> PathBuf {
    cluster.dir.join(VERIFIED)
}

/// `https://VIP:PORT` when the inventory lists ex-lb hosts (the endpoint
/// the inventory derives for the cluster then).
fn vip_url(cluster: &Cluster) -> Option<String> {
    cluster
        .derived
        .ex_lb_vip
        .map(|_| cluster.derived.api_endpoint.clone())
}

fn first_master_url(cluster: &Cluster) -> String {
    let port = cluster.settings.int("SECURE_PORT") as u16;
    cluster
        .group(Group::KubeMaster)
        .next()
        .map(|h| ez_pki::https_url(h.ip, port))
        .unwrap_or_default()
}

/// Is the VIP recorded as verified? Only a marker naming the current VIP
/// counts: a VIP or port changed in `hosts.yml` since is not verified.
fn verified(dir: &Path, vip: &str) -> bool {
    std::fs::read_to_string(dir.join(VERIFIED)).is_ok_and(|s| s.trim() == vip)
}

pub fn admin_endpoint(cluster: &Cluster) -> Endpoint {
    let master = first_master_url(cluster);
    match vip_url(cluster) {
        None => Endpoint {
            url: master,
            vip_serving: false,
            why: "first master: no ex_lb hosts".into(),
        },
        Some(vip) if verified(&cluster.dir, &vip) => Endpoint {
            url: vip,
            vip_serving: true,
            why: "ex-lb VIP: step 10 saw it answer".into(),
        },
        Some(vip) => Endpoint {
            url: master,
            vip_serving: false,
            why: format!(
                "first master until step 10 has seen the ex-lb VIP {vip} answer (`ezctl setup {} 10`)",
                cluster.name
            ),
        },
    }
}

/// Record what a real run of the ex-lb role showed: `ok` means its last
/// task saw the VIP answer. Returns whether the endpoint changed.
pub fn record_ex_lb_run(cluster: &Cluster, ok: bool) -> Result<bool> {
    let before = admin_endpoint(cluster);
    let path = marker(cluster);
    match (ok, vip_url(cluster)) {
        (true, Some(vip)) => {
            if !verified(&cluster.dir, &vip) {
                crate::files::write_private(&path, format!("{vip}\n").as_bytes())
                    .with_context(|| format!("recording the verified VIP in {}", path.display()))?;
            }
        }
        _ => {
            if path.exists() {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
        }
    }
    Ok(admin_endpoint(cluster) != before)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(dir: &Path, ex_lb: bool) -> Cluster {
        let hosts = format!(
            "etcd: [10.0.0.1]\nkube_master: [10.0.0.1]\nkube_node: [10.0.0.2]\nex_lb:{}\n",
            if ex_lb {
                "\n  - { ip: 10.0.0.2, lb_role: master }"
            } else {
                " []"
            }
        );
        std::fs::write(dir.join("hosts.yml"), hosts).unwrap();
        std::fs::write(
            dir.join("config.yml"),
            "EX_APISERVER_VIP: 10.0.0.250\nEX_APISERVER_PORT: 8443\n",
        )
        .unwrap();
        Cluster::load(dir).unwrap()
    }

    #[test]
    fn the_vip_is_used_only_after_a_verified_run_and_until_a_failed_one() {
        let d = tempfile::tempdir().unwrap();
        let c = cluster(d.path(), true);
        let e = admin_endpoint(&c);
        assert_eq!(e.url, "https://10.0.0.1:6443", "{e:?}");
        assert!(e.why.contains("setup"), "{e:?}");

        assert!(record_ex_lb_run(&c, true).unwrap());
        let e = admin_endpoint(&c);
        assert!(
            e.vip_serving && e.url.starts_with("https://10.0.0.250:"),
            "{e:?}"
        );
        assert!(
            !record_ex_lb_run(&c, true).unwrap(),
            "a second run changes nothing"
        );

        assert!(record_ex_lb_run(&c, false).unwrap());
        assert_eq!(admin_endpoint(&c).url, "https://10.0.0.1:6443");
    }

    #[test]
    fn a_marker_for_another_vip_or_without_ex_lb_hosts_does_not_count() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(VERIFIED), "https://10.0.0.99:8443\n").unwrap();
        let c = cluster(d.path(), true);
        assert!(!admin_endpoint(&c).vip_serving);
        let c = cluster(d.path(), false);
        let e = admin_endpoint(&c);
        assert_eq!(e.url, "https://10.0.0.1:6443");
        assert!(e.why.contains("no ex_lb"), "{e:?}");
    }
}
