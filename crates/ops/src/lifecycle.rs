//! `start`, `stop` and `destroy`.
//!
//! start/stop go stage by stage across the cluster (etcd first on start and
//! last on stop; within a stage every host at once), each start stage gated
//! on health before the next. destroy removes everything setup installed,
//! with the same `clean` role del-node uses, and keeps the controller's
//! cluster folder. The CLI asks for destroy's confirmation.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use ez_engine::shell_word;
use ez_inventory::{Cluster, Group, Host};

use crate::clean::CleanScope;
use crate::context::Ops;
use crate::exit::{ExitCode, Failure};
use crate::fleet::Fleet;
use crate::home::Home;
use crate::report::Report;
use crate::{mark, set_vars};

/// One stage: the services of hosts in some groups, in order.
struct Stage {
    name: &'static str,
    groups: &'static [Group],
    services: &'static [&'static str],
    /// Shell that succeeds once the stage is healthy on a host (start only).
    health: Option<fn(&Cluster, &Host) -> String>,
    /// Installed by an optional step (10 ex-lb, 11 harbor): skipped where
    /// it was never set up, instead of failing.
    optional: bool,
}

const MASTERS: &[Group] = &[Group::KubeMaster];
const K8S: &[Group] = &[Group::KubeMaster, Group::KubeNode];

/// Start order. etcd members are started together (each waits for a
/// quorum of peers to report ready), masters' kube-lb before the
/// controller-manager and scheduler that reach the API through it.
const START: &[Stage] = &[
    Stage {
        name: "etcd",
        groups: &[Group::Etcd],
        services: &["etcd"],
        optional: false,
        health: Some(etcd_health),
    },
    Stage {
        name: "control plane",
        groups: MASTERS,
        services: &[
            "kube-lb",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
        ],
        optional: false,
        health: Some(apiserver_ready),
    },
    Stage {
        name: "node services",
        groups: K8S,
        services: &["containerd", "kube-lb", "kubelet", "kube-proxy"],
        optional: false,
        health: Some(kubelet_healthy),
    },
    Stage {
        name: "ex-lb",
        groups: &[Group::ExLb],
        services: &["ex-lb", "keepalived"],
        optional: true,
        health: None,
    },
    Stage {
        name: "registry",
        groups: &[Group::Harbor],
        services: &["registry"],
        optional: true,
        health: None,
    },
];

/// Stop order: the reverse, workloads before the control plane, etcd last.
const STOP: &[Stage] = &[
    Stage {
        name: "registry",
        groups: &[Group::Harbor],
        services: &["registry"],
        optional: true,
        health: None,
    },
    Stage {
        name: "ex-lb",
        groups: &[Group::ExLb],
        services: &["keepalived", "ex-lb"],
        optional: true,
        health: None,
    },
    Stage {
        name: "node services",
        groups: K8S,
        services: &["kube-proxy", "kubelet"],
        optional: false,
        health: None,
    },
    Stage {
        name: "control plane",
        groups: MASTERS,
        services: &[
            "kube-scheduler",
            "kube-controller-manager",
            "kube-apiserver",
        ],
        optional: false,
        health: None,
    },
    Stage {
        name: "kube-lb and container runtime",
        groups: K8S,
        services: &["kube-lb", "containerd"],
        optional: false,
        health: None,
    },
    Stage {
        name: "etcd",
        groups: &[Group::Etcd],
        services: &["etcd"],
        optional: false,
        health: None,
    },
];

fn etcd_health(c: &Cluster, h: &Host) -> String {
    crate::etcd::ctl::Ctl::for_cluster(c).online(
        &[crate::etcd::ctl::client_url(h.ip)],
        Duration::from_secs(3),
        &["endpoint", "health"],
    )
}

fn apiserver_ready(c: &Cluster, h: &Host) -> String {
    let ca = shell_word(c.settings.text("ca_dir"));
    format!(
        "curl -sf --max-time 3 --cacert {ca}/ca.pem --cert {ca}/apiserver-kubelet-client.pem --key {ca}/apiserver-kubelet-client-key.pem https://{}/readyz",
        ez_inventory::cluster::socket(h.ip, c.settings.int("SECURE_PORT") as u16)
    )
}

fn kubelet_healthy(_: &Cluster, _: &Host) -> String {
    "curl -sf --max-time 3 http://127.0.0.1:10248/healthz".to_string()
}

/// How long a stage may take to turn healthy.
const HEALTH_WAIT: u32 = 90;

pub fn start(home: &Home, name: &str, accept_new: bool, out: &dyn Report) -> Result<()> {
    switch(home, name, accept_new, out, true)
}

pub fn stop(home: &Home, name: &str, accept_new: bool, out: &dyn Report) -> Result<()> {
    switch(home, name, accept_new, out, false)
}

fn switch(home: &Home, name: &str, accept_new: bool, out: &dyn Report, on: bool) -> Result<()> {
    let started = Instant::now();
    let cluster = home.load(name)?;
    let ops = Ops::new(home, out, accept_new)?;
    let verb = if on { "start" } else { "stop" };
    let _lock = ops.lock(&cluster, &format!("{verb} {name}"))?;
    let fleet = Fleet::new(&cluster, accept_new);
    let stages = if on { START } else { STOP };
    let mut failures = Vec::new();
    for stage in stages {
        let hosts: Vec<&Host> = cluster
            .hosts
            .iter()
            .filter(|h| stage.groups.iter().any(|g| h.is(*g)))
            .collect();
        if hosts.is_empty() {
            continue;
        }
        let t = Instant::now();
        let ips: Vec<String> = hosts.iter().map(|h| h.ip.to_string()).collect();
        let by_ip: std::collections::BTreeMap<String, &Host> =
            hosts.iter().map(|h| (h.ip.to_string(), *h)).collect();
        let outs = ops.block_on(fleet.run(&ips, Duration::from_secs(180), |ip| {
            let health = stage.health.zip(by_ip.get(ip)).map(|(f, h)| f(&cluster, h));
            if on {
                start_script(stage.services, health.as_deref(), stage.optional)
            } else {
                stop_script(stage.services)
            }
        }));
        let bad: Vec<String> = outs
            .iter()
            .filter(|o| !o.ok())
            .map(|o| format!("  {} {}: {}", stage.name, o.host, o.problem()))
            .collect();
        let absent = outs
            .iter()
            .filter(|o| o.ok() && o.stdout().contains(NOT_INSTALLED))
            .count();
        if absent == outs.len() {
            continue;
        }
        ops.say(format!(
            "{}: {} on {} host(s){} ({:.1}s)",
            stage.name,
            if on { "started" } else { "stopped" },
            outs.len() - bad.len() - absent,
            if bad.is_empty() {
                String::new()
            } else {
                format!(", failed on {}", bad.len())
            },
            t.elapsed().as_secs_f64()
        ));
        if !bad.is_empty() {
            failures.extend(bad);
            if on {
                // Later stages depend on this one; stopping goes on so as
                // much as possible is down.
                break;
            }
        }
    }
    ops.block_on(fleet.close());
    if !failures.is_empty() {
        bail!(Failure::new(
            ExitCode::Failed,
            format!(
                "{verb} {name} failed:\n{}\nfix the cause and run `ezctl {verb} {name}` again",
                failures.join("\n")
            )
        ));
    }
    ops.say(format!(
        "{verb} {name} done in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// Printed by a host where an optional stage was never set up.
const NOT_INSTALLED: &str = "not installed: skipped";

/// Enable and start the services (all must be installed, or for an
/// optional stage none), then wait for `health` to pass. `--no-block`: an
/// etcd member only reports started once its peers are up, so members must
/// not wait for each other.
fn start_script(services: &[&str], health: Option<&str>, optional: bool) -> String {
    let list = services.join(" ");
    let missing = if optional {
        format!("echo {NOT_INSTALLED}; exit 0")
    } else {
        "echo \"$s is not installed here (run ezctl setup first)\" >&2; exit 3".to_string()
    };
    let mut s = format!(
        "for s in {list}; do test -e /etc/systemd/system/$s.service || {{ {missing}; }}; done\n\
         systemctl enable -q {list} && systemctl start --no-block {list} || exit 1\n"
    );
    if let Some(h) = health {
        s.push_str(&format!(
            "i=0; until {h} >/dev/null 2>&1; do i=$((i+1)); if [ $i -ge {HEALTH_WAIT} ]; then echo 'not healthy after {HEALTH_WAIT}s' >&2; for s in {list}; do systemctl is-active -q $s || journalctl -u $s -n 5 --no-pager >&2; done; exit 1; fi; sleep 1; done\n"
        ));
    }
    s
}

/// Disable and stop the installed ones among the services.
fn stop_script(services: &[&str]) -> String {
    format!(
        "rc=0; n=0; for s in {}; do if test -e /etc/systemd/system/$s.service; then n=$((n+1)); systemctl disable -q --now $s || rc=1; fi; done; [ $n -gt 0 ] || echo {NOT_INSTALLED}; exit $rc",
        services.join(" ")
    )
}

/// Remove `cluster` from every host; the caller has asked the operator to
/// confirm (the library never reads a terminal).
pub fn destroy(home: &Home, cluster: &Cluster, accept_new: bool, out: &dyn Report) -> Result<()> {
    let started = Instant::now();
    let name = cluster.name.as_str();
    let ops = Ops::new(home, out, accept_new)?;
    let _lock = ops.lock(cluster, &format!("destroy {name}"))?;
    let ips: Vec<String> = cluster.hosts.iter().map(|h| h.ip.to_string()).collect();
    let mut targets = ops.targets(cluster);
    mark(&mut targets, "removing", &ips);
    for ip in &ips {
        set_vars(&mut targets, ip, &CleanScope::all().vars());
    }
    ops.run_playbook(cluster, targets, "42-destroy", &format!("destroy {name}"))
        .map_err(|e| e.context(format!("destroy {name} did not finish; run it again to finish (finished hosts change nothing)")))?;
    ops.say(format!(
        "cluster {name} removed from {} host(s) in {:.1}s; {} is kept (`ezctl setup {name} all` builds the cluster again)",
        ips.len(),
        started.elapsed().as_secs_f64(),
        cluster.dir.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etcd_starts_first_and_stops_last() {
        assert_eq!(START[0].services, ["etcd"]);
        assert_eq!(STOP.last().map(|s| s.services), Some(&["etcd"][..]));
        // Every service started is also stopped.
        let started: std::collections::BTreeSet<&str> = START
            .iter()
            .flat_map(|s| s.services.iter().copied())
            .collect();
        let stopped: std::collections::BTreeSet<&str> = STOP
            .iter()
            .flat_map(|s| s.services.iter().copied())
            .collect();
        assert_eq!(started, stopped);
    }

    #[test]
    fn scripts_run_in_a_shell() {
        for script in [
            start_script(&["etcd"], Some("true"), false),
            start_script(&["a", "b"], None, true),
            stop_script(&["a", "b"]),
        ] {
            let out = std::process::Command::new("sh")
                .arg("-n")
                .arg("-c")
                .arg(&script)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{script}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        // A service that is not installed is named, not started.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(start_script(&["ezctl-test-no-such-unit"], None, false))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        assert!(String::from_utf8_lossy(&out.stderr)
            .contains("ezctl-test-no-such-unit is not installed"));
        // An optional component that was never set up is skipped.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(start_script(&["ezctl-test-no-such-unit"], None, true))
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains(NOT_INSTALLED));
        // Stopping something absent is fine.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(stop_script(&["ezctl-test-no-such-unit"]))
            .output()
            .unwrap();
        assert!(out.status.success());
    }
}
