//! Users, certificate renewal, stop/start and destroy on 7 real machines,
//! in that order (each step needs the cluster the previous one left):
//! kcfg-adm kubeconfigs that real kubectl uses, kca-renew in phases (a
//! workload polled every 0.2 s sees no failed request, no node goes
//! NotReady, service-account tokens and certificates of the old CA keep
//! working until `--finish`, which then refuses them), stop and start in
//! order, destroy (refused off a terminal without
//! --yes; leaves nothing behind on the hosts, keeps the cluster folder).
//! Needs root and the lab; says why and passes without checking where
//! those are missing.

mod common;
mod day2;

use std::time::{Duration, Instant};

use common::{text, Env};
use day2::{attempt, kube_json, nodes, timed, Options};

/// kubectl with a given kubeconfig, straight to a master.
fn kubectl_as(kubeconfig: &str, master: &str, args: &[&str]) -> std::process::Output {
    std::process::Command::new("kubectl")
        .arg(format!("--kubeconfig={kubeconfig}"))
        .arg(format!("--server=https://{master}:6443"))
        .arg("--request-timeout=5s")
        .args(args)
        .output()
        .expect("run kubectl")
}

/// kubectl with a kubeconfig's user, trusting `ca` for the server (its own
/// CA data may predate a rotation).
fn kubectl_as_trusting(
    kubeconfig: &str,
    ca: &str,
    master: &str,
    args: &[&str],
) -> std::process::Output {
    let mut all = vec![format!("--certificate-authority={ca}")];
    all.extend(args.iter().map(|a| a.to_string()));
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    kubectl_as(kubeconfig, master, &all)
}

/// Who the apiserver says a bearer token is (`kubectl auth whoami`), or why
/// it refused.
fn whoami(env: &Env, master: &str, token: &str) -> Result<String, String> {
    let out = std::process::Command::new(env.home.join("bin/kubectl"))
        .arg("--kubeconfig=/dev/null")
        .arg(format!("--server=https://{master}:6443"))
        .arg(format!("--certificate-authority={}", env.ssl("ca.pem")))
        .arg(format!("--token={token}"))
        .args([
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .output()
        .expect("run kubectl");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        Err(text(&out))
    }
}

/// Samples every node's Ready condition every 2 s through the masters (a
/// master being restarted is skipped for that sample) until finished; a
/// node seen NotReady fails the test. Each sample also reads the last log
/// lines of the system pods that talk to the apiserver (calico's
/// controllers, coredns): a TLS refusal there (`x509: ...`, a pod that
/// does not trust the certificate the apiserver serves) fails the test too.
struct NodeWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<Watched>,
}

#[derive(Default)]
struct Watched {
    samples: usize,
    not_ready: Vec<String>,
    /// Samples in which the system pods' logs were read (not empty).
    log_samples: usize,
    tls_errors: std::collections::BTreeSet<String>,
}

impl NodeWatch {
    fn start(env: &'static Env, masters: Vec<String>) -> NodeWatch {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut w = Watched::default();
            let mut i = 0;
            while !flag.load(std::sync::atomic::Ordering::SeqCst) {
                let master = &masters[i % masters.len()];
                i += 1;
                let out = env.kubectl(
                    master,
                    &[
                        "get",
                        "nodes",
                        "--request-timeout=3s",
                        "-o",
                        "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
                    ],
                );
                if out.status.success() {
                    w.samples += 1;
                    for line in String::from_utf8_lossy(&out.stdout).lines() {
                        if !line.ends_with("=True") {
                            w.not_ready.push(line.to_string());
                        }
                    }
                }
                let logs = env.kubectl(
                    master,
                    &[
                        "logs",
                        "-n",
                        "kube-system",
                        "-l",
                        "k8s-app in (calico-kube-controllers,kube-dns)",
                        "--all-containers",
                        "--prefix",
                        "--since=20s",
                        "--request-timeout=5s",
                    ],
                );
                if logs.status.success() {
                    w.log_samples += 1;
                    for line in String::from_utf8_lossy(&logs.stdout).lines() {
                        if line.contains("x509:") {
                            w.tls_errors.insert(line.chars().take(300).collect());
                        }
                    }
                }
                std::thread::sleep(Duration::from_secs(2));
            }
            w
        });
        NodeWatch { stop, handle }
    }

    fn finish(self, during: &str) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let w = self.handle.join().expect("node watch thread");
        eprintln!(
            "node watch during {during}: {} samples, {} NotReady; system pod logs read {} times, {} TLS refusals",
            w.samples,
            w.not_ready.len(),
            w.log_samples,
            w.tls_errors.len()
        );
        assert!(w.samples > 0, "no node sample during {during}");
        assert!(
            w.not_ready.is_empty(),
            "nodes NotReady during {during}: {:?}",
            w.not_ready
        );
        // The log check could see a refusal: it read the logs.
        assert!(w.log_samples > 0, "no system pod log read during {during}");
        assert!(
            w.tls_errors.is_empty(),
            "system pods refused the apiserver's certificate during {during}: {:#?}",
            w.tls_errors
        );
    }
}

/// Every node's Ready heartbeat is newer than `since` (RFC 3339, UTC).
fn heartbeats_after(env: &Env, master: &str, since: &str, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let v = kube_json(env, master, &["get", "nodes"]);
        let stale: Vec<String> = v["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|n| {
                let c = n["status"]["conditions"]
                    .as_array()?
                    .iter()
                    .find(|c| c["type"] == "Ready")?;
                let ok =
                    c["status"] == "True" && c["lastHeartbeatTime"].as_str().unwrap_or("") > since;
                (!ok).then(|| format!("{} {}", n["metadata"]["name"], c))
            })
            .collect();
        if stale.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "nodes not heard from since {since}: {stale:?}"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn utc_now() -> String {
    let out = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn recap_changes(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(" ok=") && !l.contains("changed=0 "))
        .map(str::to_string)
        .collect()
}

#[test]
fn users_renewal_stop_start_destroy() {
    let Some((setup, _turn)) = day2::cluster(Options {
        machines: 7,
        spare: false,
        ex_lb: false,
        previous_release: false,
    }) else {
        return;
    };
    let env = setup.env;
    let masters = env.group(ez_lab::Role::KubeMaster);
    let etcd = env.group(ez_lab::Role::Etcd);
    let workers = env.group(ez_lab::Role::KubeNode);
    let m = &masters[0];

    // --- kcfg-adm: an admin and a viewer, used by real kubectl.
    let out = timed(
        env,
        "kcfg-adm",
        &["-A", "-u", "alice", "-t", "admin", "-e", "240h"],
    );
    let alice = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(alice.ends_with("/ssl/users/alice.kubeconfig"), "{alice}");
    let out = kubectl_as(&alice, m, &["get", "nodes", "-o", "name"]);
    assert!(out.status.success(), "admin user: {}", text(&out));
    assert_eq!(
        text(&out).lines().count(),
        masters.len() + workers.len(),
        "{}",
        text(&out)
    );
    let out = timed(env, "kcfg-adm", &["-A", "-u", "viewer", "-t", "view"]);
    let viewer = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let out = kubectl_as(&viewer, m, &["get", "pods", "-A"]);
    assert!(out.status.success(), "view user cannot get: {}", text(&out));
    let b = kube_json(env, m, &["get", "clusterrolebinding", "ezctl:user:viewer"]);
    assert_eq!(b["roleRef"]["name"], "view");
    assert_eq!(b["subjects"][0]["kind"], "User");
    assert_eq!(b["subjects"][0]["name"], "viewer");
    let b = kube_json(env, m, &["get", "clusterrolebinding", "ezctl:user:alice"]);
    assert_eq!(b["roleRef"]["name"], "cluster-admin");
    // -L: both, with an expiry about 240 h away.
    let out = timed(env, "kcfg-adm", &["-L"]);
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        list.lines()
            .any(|l| l.starts_with("alice ") && l.contains(" admin ")),
        "{list}"
    );
    assert!(
        list.lines()
            .any(|l| l.starts_with("viewer ") && l.contains(" view ")),
        "{list}"
    );
    let expiry = std::process::Command::new("date")
        .args(["-u", "-d", "+240 hours", "+%Y-%m-%dT%H"])
        .output()
        .expect("date");
    let expiry = String::from_utf8_lossy(&expiry.stdout).trim().to_string();
    assert!(list.contains(&expiry), "expiry {expiry}* not in\n{list}");
    // Can the viewer delete? Only an apiserver that evaluates RBAC can say no.
    let out = env.kubectl(m, &["create", "configmap", "keep-me", "-n", "default"]);
    assert!(out.status.success(), "{}", text(&out));
    let viewer_copy = env.cluster_dir().join("viewer-copy.kubeconfig");
    std::fs::copy(&viewer, &viewer_copy).expect("keep a copy");
    let delete = kubectl_as(
        &viewer,
        m,
        &["delete", "configmap", "keep-me", "-n", "default"],
    );
    let deleted = delete.status.success();
    // -D: binding and kubeconfig gone.
    timed(env, "kcfg-adm", &["-D", "-u", "viewer"]);
    assert!(!std::path::Path::new(&viewer).exists());
    let out = env.kubectl(m, &["get", "clusterrolebinding", "ezctl:user:viewer"]);
    assert!(!out.status.success(), "binding left: {}", text(&out));
    let out = attempt(env, "kcfg-adm", &["-D", "-u", "viewer"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let revoked_reads = kubectl_as(
        &viewer_copy.display().to_string(),
        m,
        &["get", "configmaps", "-n", "default"],
    )
    .status
    .success();
    // Whether the configmap is still there, asked as the admin: the
    // outcome of the viewer's delete, seen from the apiserver's side.
    let kept = env.kubectl(m, &["get", "configmap", "keep-me", "-n", "default"]);
    if revoked_reads {
        // The apiserver lets an unbound user read: it does not evaluate
        // RBAC (the test stand-in), so "view cannot delete" is not
        // observable here; the binding's roleRef above is what we can check.
        // What this apiserver did is still asserted: it let the viewer
        // delete, like any authenticated client.
        eprintln!(
            "NOTE: this apiserver does not evaluate RBAC; view-user delete refusal not observable"
        );
        assert!(
            deleted,
            "an apiserver that lets a user with no binding read refused the viewer's delete: {}",
            text(&delete)
        );
        assert!(
            !kept.status.success() && text(&kept).contains("NotFound"),
            "the viewer's delete succeeded but the configmap is still there: {}",
            text(&kept)
        );
    } else {
        assert!(
            !deleted && text(&delete).contains("Forbidden"),
            "a view user deleted a configmap on an apiserver that evaluates RBAC: {}",
            text(&delete)
        );
        assert!(
            kept.status.success(),
            "the refused delete removed the configmap: {}",
            text(&kept)
        );
    }

    // --- kca-renew: the CA and the service-account key rotate without an
    //     outage. A workload is polled through it; nodes are sampled for
    //     NotReady; a service-account token minted before it keeps working
    //     until --finish; the old admin kubeconfig and alice (old CA) keep
    //     working until --finish and are refused after it.
    let old_admin = env.cluster_dir().join("old-admin.kubeconfig");
    std::fs::copy(env.ssl("kubectl.kubeconfig"), &old_admin).expect("copy");
    let old_admin = old_admin.display().to_string();
    let old_ca = std::fs::read(env.ssl("ca.pem")).expect("ca");
    let out = env.kubectl(
        m,
        &[
            "create",
            "token",
            "default",
            "-n",
            "default",
            "--duration=2h",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let old_token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        whoami(env, m, &old_token),
        Ok("system:serviceaccount:default:default".to_string())
    );
    let workload = common::workload::Workload::deploy(env, m, "probe", 2);
    let renewed_at = utc_now();
    std::thread::sleep(Duration::from_secs(1));
    let watch = NodeWatch::start(env, masters.clone());
    let probe = workload.probe(&workers);
    timed(env, "kca-renew", &[]);
    probe.finish("kca-renew").assert_no_failures("kca-renew");
    watch.finish("kca-renew");
    let bundle = std::fs::read_to_string(env.ssl("ca.pem")).expect("ca");
    assert_eq!(bundle.matches("BEGIN CERTIFICATE").count(), 2, "{bundle}");
    assert!(
        bundle.contains(String::from_utf8_lossy(&old_ca).trim_end()),
        "the old CA is still trusted"
    );
    assert!(
        !bundle.starts_with(String::from_utf8_lossy(&old_ca).trim_end()),
        "the new CA signs"
    );
    let backups: Vec<_> = std::fs::read_dir(env.cluster_dir())
        .expect("cluster dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("ssl-backup-"))
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(
        std::fs::read(backups[0].path().join("ca.pem")).expect("backup ca"),
        old_ca
    );
    let ca_file = env.ssl("ca.pem");
    for master in &masters {
        // Served by a certificate of the new CA, which the old admin
        // kubeconfig's CA data does not know: the client is given the
        // bundle, the server still accepts the old client certificate.
        let out = kubectl_as_trusting(&old_admin, &ca_file, master, &["get", "nodes"]);
        assert!(
            out.status.success(),
            "{master} refuses the old admin before --finish: {}",
            text(&out)
        );
        let out = kubectl_as_trusting(&alice, &ca_file, master, &["get", "nodes"]);
        assert!(
            out.status.success(),
            "{master} refuses alice before --finish: {}",
            text(&out)
        );
        assert!(
            day2::ready(env, master),
            "{master} not ready with the new certs"
        );
        // The master serves the re-issued certificate (the controller's,
        // not the backup's).
        let (code, served) = env.on(master, "sha256sum /etc/kubernetes/ssl/kubernetes.pem");
        assert_eq!(code, 0, "{served}");
        let sum = |p: &std::path::Path| {
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                std::fs::read(p).expect("read cert"),
            ))
        };
        let now = sum(std::path::Path::new(&env.ssl("kubernetes.pem")));
        let before = sum(&backups[0].path().join("kubernetes.pem"));
        assert_ne!(now, before, "kubernetes.pem was not re-issued");
        assert!(
            served.starts_with(&now),
            "{master} serves {served}, not {now}"
        );
    }
    assert_eq!(
        whoami(env, m, &old_token),
        Ok("system:serviceaccount:default:default".to_string()),
        "a token of the old key stops working before --finish"
    );
    let endpoints: Vec<String> = etcd.iter().map(|ip| format!("https://{ip}:2379")).collect();
    let out = env.etcdctl(&endpoints.join(","), &["endpoint", "health"]);
    assert!(
        out.status.success() && text(&out).matches("is healthy").count() == 3,
        "{}",
        text(&out)
    );
    // kubelets report through the apiservers with their new certs.
    heartbeats_after(env, m, &renewed_at, Duration::from_secs(60));
    assert_eq!(
        std::fs::read_to_string(env.cluster_dir().join("kca-renew.pending"))
            .expect("the rotation waits for --finish")
            .trim(),
        "finish"
    );
    // A second kca-renew does not start another rotation over this one.
    let out = attempt(env, "kca-renew", &[]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(text(&out).contains("--finish"), "{}", text(&out));

    // --finish: only the new CA and key; the old ones are refused.
    let watch = NodeWatch::start(env, masters.clone());
    let probe = workload.probe(&workers);
    timed(env, "kca-renew", &["--finish"]);
    probe
        .finish("kca-renew --finish")
        .assert_no_failures("kca-renew --finish");
    watch.finish("kca-renew --finish");
    let ca = std::fs::read_to_string(env.ssl("ca.pem")).expect("ca");
    assert_eq!(ca.matches("BEGIN CERTIFICATE").count(), 1, "{ca}");
    assert!(!ca.contains(String::from_utf8_lossy(&old_ca).trim_end()));
    for master in &masters {
        let out = kubectl_as_trusting(&old_admin, &ca_file, master, &["get", "nodes"]);
        assert!(
            !out.status.success(),
            "{master} accepts the old admin kubeconfig after --finish"
        );
        let out = kubectl_as_trusting(&alice, &ca_file, master, &["get", "nodes"]);
        assert!(
            !out.status.success(),
            "{master} accepts a user of the old CA after --finish"
        );
        assert!(
            day2::ready(env, master),
            "{master} not ready after --finish"
        );
    }
    let refused = whoami(env, m, &old_token);
    assert!(
        refused.as_ref().is_err_and(|e| e.contains("Unauthorized")),
        "a token of the old key after --finish: {refused:?}"
    );
    let out = env.kubectl(m, &["create", "token", "default", "-n", "default"]);
    assert!(out.status.success(), "{}", text(&out));
    let new_token = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert_eq!(
        whoami(env, m, &new_token),
        Ok("system:serviceaccount:default:default".to_string())
    );
    assert!(!env.cluster_dir().join("kca-renew.pending").exists());
    let out = env.kubectl(m, &["delete", "deployment,service,pdb", "probe"]);
    assert!(out.status.success(), "{}", text(&out));

    // --- stop: everything down, etcd last; start: back in order.
    timed(env, "stop", &[]);
    for (ips, unit) in [
        (&etcd, "etcd"),
        (&masters, "kube-apiserver"),
        (&workers, "kubelet"),
        (&workers, "containerd"),
    ] {
        for ip in ips.iter() {
            let (code, out) = env.on(
                ip,
                &format!("systemctl is-active {unit}; systemctl is-enabled {unit}"),
            );
            assert_ne!(code, 0, "{unit} on {ip}: {out}");
            assert!(
                out.contains("inactive") && out.contains("disabled"),
                "{unit} on {ip}: {out}"
            );
        }
    }
    assert!(!day2::ready(env, m), "apiserver answers after stop");
    let started_at = utc_now();
    std::thread::sleep(Duration::from_secs(1));
    timed(env, "start", &[]);
    for master in &masters {
        assert!(day2::ready(env, master), "{master} not ready after start");
    }
    heartbeats_after(env, m, &started_at, Duration::from_secs(60));
    assert!(
        nodes(env, m).iter().all(|n| n.1),
        "not all Ready after start"
    );
    for ip in &workers {
        let (code, out) = env.on(
            ip,
            "systemctl is-enabled kubelet containerd kube-proxy kube-lb",
        );
        assert_eq!(code, 0, "{ip}: {out}");
    }

    // --- destroy: refused off a terminal without --yes, nothing touched.
    // The probe that must find nothing after destroy first finds, here,
    // what setup put on each host.
    for h in env.lab.hosts() {
        let ip = h.ip.to_string();
        let found = cluster_things_on(env, &ip);
        let want = expected_before_destroy(&h.roles);
        let missing: Vec<&String> = want.iter().filter(|w| !found.contains(w)).collect();
        assert!(
            missing.is_empty(),
            "the probe does not see {missing:?} on {ip} before destroy; it saw {found:?}"
        );
    }
    let out = env.ezctl(&["destroy", &env.cluster]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("confirm with --yes"), "{}", text(&out));
    assert!(day2::ready(env, m), "a refused destroy touched the cluster");
    let t = Instant::now();
    let out = env.ezctl(&["destroy", &env.cluster, "--yes"]);
    eprintln!(
        "TIMING ezctl destroy --yes: {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert!(out.status.success(), "{}", text(&out));
    for h in env.lab.hosts() {
        let ip = h.ip.to_string();
        assert_eq!(
            cluster_things_on(env, &ip),
            Vec::<String>::new(),
            "left on {ip} after destroy"
        );
    }
    for kept in ["hosts.yml", "ssl/ca.pem", "ssl/kubectl.kubeconfig"] {
        assert!(
            env.cluster_dir().join(kept).exists(),
            "{kept} was removed from the controller"
        );
    }
    // Again: nothing left to do.
    let out = env.ezctl(&["destroy", &env.cluster, "--yes"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        recap_changes(&text(&out)),
        Vec::<String>::new(),
        "a second destroy changed something"
    );
}

const UNITS: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kubelet",
    "kube-proxy",
    "kube-lb",
    "containerd",
    "ex-lb",
    "keepalived",
    "registry",
];
const PATHS: &[&str] = &[
    "/var/lib/etcd",
    "/var/lib/kubelet",
    "/etc/kubernetes",
    "/opt/kube/bin",
    "/etc/cni/net.d",
    "/etc/kube-lb",
    "/etc/sysctl.d/95-k8s-net.conf",
];
const PROCESSES: &[&str] = &[
    "etcd",
    "kube-apiserver",
    "kubelet",
    "kube-proxy",
    "containerd",
    "nginx",
];

/// What of a cluster is on a host: `unit X`, `path P`, `process X`,
/// `/etc/hosts block`. One script that must reach its end marker, so a
/// probe that failed (SSH, a typo) is a failure, never an empty list that
/// would pass for "nothing left".
fn cluster_things_on(env: &Env, ip: &str) -> Vec<String> {
    let script = format!(
        "for u in {units}; do [ -e /etc/systemd/system/$u.service ] && echo \"unit $u\"; done; \
         for p in {paths}; do [ -e $p ] && echo \"path $p\"; done; \
         for x in {procs}; do pgrep -x $x >/dev/null && echo \"process $x\"; done; \
         grep -q EZCTL /etc/hosts && echo '/etc/hosts block'; \
         echo END",
        units = UNITS.join(" "),
        paths = PATHS.join(" "),
        procs = PROCESSES.join(" "),
    );
    let (code, out) = env.on(ip, &script);
    assert_eq!(code, 0, "probe on {ip}: {out}");
    let mut lines: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(
        lines.pop().as_deref(),
        Some("END"),
        "the probe on {ip} did not finish: {out}"
    );
    lines
}

/// What [`cluster_things_on`] must see on a set-up, started host of these
/// roles (this test sets up neither ex-lb nor the registry: their units
/// are looked for by the same `-e` test as the others).
fn expected_before_destroy(roles: &[ez_lab::Role]) -> Vec<String> {
    use ez_lab::Role;
    let mut want: Vec<String> = vec![
        "path /opt/kube/bin".into(),
        "path /etc/sysctl.d/95-k8s-net.conf".into(),
        "/etc/hosts block".into(),
    ];
    if roles.contains(&Role::Etcd) {
        want.extend(["unit etcd", "path /var/lib/etcd", "process etcd"].map(String::from));
    }
    if roles.contains(&Role::KubeMaster) {
        want.extend(
            [
                "unit kube-apiserver",
                "path /etc/kubernetes",
                "process kube-apiserver",
            ]
            .map(String::from),
        );
    }
    if roles.contains(&Role::KubeMaster) || roles.contains(&Role::KubeNode) {
        want.extend(
            [
                "unit kubelet",
                "unit kube-proxy",
                "unit kube-lb",
                "unit containerd",
                "path /var/lib/kubelet",
                "path /etc/cni/net.d",
                "path /etc/kube-lb",
                "process kubelet",
                "process kube-proxy",
                "process containerd",
                "process nginx",
            ]
            .map(String::from),
        );
    }
    want
}

#[test]
fn destroy_refuses_without_yes_off_a_terminal_and_touches_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let c = dir.path().join("clusters/c1");
    std::fs::create_dir_all(&c).expect("mkdir");
    // Unroutable hosts: any connection attempt would hang, not refuse.
    std::fs::write(
        c.join("hosts.yml"),
        "etcd: [192.0.2.1]\nkube_master: [192.0.2.1]\nkube_node: [192.0.2.2]\n",
    )
    .expect("write");
    let t = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ezctl"))
        .arg("--home")
        .arg(dir.path())
        .args(["destroy", "c1"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ezctl");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stdin is not a terminal, so confirm with --yes"),
        "{err}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(!c.join(".ezctl.lock").exists());
}
