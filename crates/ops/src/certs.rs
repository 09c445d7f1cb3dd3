//! `kca-renew` (new CA and every certificate, pushed and restarted) and
//! `kcfg-adm` (user kubeconfigs and their RBAC bindings). The CLI renders
//! what `kcfg_adm` returns ([`KcfgDone`]).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use ez_inventory::Group;
use serde_json::json;

use crate::context::Ops;
use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::kube::Kube;
use crate::mark;
use crate::report::Report;
use crate::view;

/// Where a rotation is (one word): written before each phase's controller
/// step, so the same command after a failure resumes where it stopped, and
/// removed by `--finish`.
const RENEW_PENDING: &str = "kca-renew.pending";

/// The phases of `kca-renew`, in order (see [`ez_pki::rotation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// Both CAs and both service-account keys trusted: roll everything.
    Trust,
    /// The new CA signs: roll everything onto its certificates.
    Switched,
    /// Restart the system pods that hold the old CA and tokens.
    Pods,
    /// Waits for `--finish`.
    Finish,
    /// `--finish` started: drop the old CA and key, roll everything.
    Finishing,
}

impl Stage {
    fn word(self) -> &'static str {
        match self {
            Stage::Trust => "trust",
            Stage::Switched => "switched",
            Stage::Pods => "pods",
            Stage::Finish => "finish",
            Stage::Finishing => "finishing",
        }
    }

    fn parse(word: &str) -> Option<Stage> {
        [
            Stage::Trust,
            Stage::Switched,
            Stage::Pods,
            Stage::Finish,
            Stage::Finishing,
        ]
        .into_iter()
        .find(|s| s.word() == word.trim())
    }
}

pub fn kca_renew(
    home: &Home,
    name: &str,
    finish: bool,
    accept_new: bool,
    out: &dyn Report,
) -> Result<()> {
    let started = Instant::now();
    let cluster = home.load(name)?;
    let ops = Ops::new(home, out, accept_new)?;
    let _lock = ops.lock(&cluster, &format!("kca-renew {name}"))?;
    let ssl = view::ssl_dir(&cluster.dir);
    let spec = view::pki_spec(&cluster);
    let marker = cluster.dir.join(RENEW_PENDING);
    let stage = match std::fs::read_to_string(&marker) {
        Ok(word) => Some(Stage::parse(&word).ok_or_else(|| {
            Failure::new(
                ExitCode::Input,
                format!(
                    "{} says {:?}, not a kca-renew phase; if no rotation is under way, remove it",
                    marker.display(),
                    word.trim()
                ),
            )
        })?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading {}", marker.display())),
    };
    let set = |s: Stage| -> Result<()> {
        std::fs::write(&marker, format!("{}\n", s.word()))
            .with_context(|| format!("writing {}", marker.display()))
    };
    let push = |label: &str| -> Result<()> {
        ops.ensure_pki(&cluster)?;
        ops.run_playbook(&cluster, renew_targets(&ops, &cluster), "41-kca-renew", label)
            .map_err(|e| {
                e.context(format!(
                    "the rotation stopped in its `{label}` phase; fix the cause and run `ezctl kca-renew {name}{}` again: it continues from there",
                    if finish { " --finish" } else { "" }
                ))
            })?;
        Ok(())
    };

    if finish {
        match stage {
            Some(Stage::Finish | Stage::Finishing) => {}
            _ => bail!(Failure::new(
                ExitCode::Input,
                format!(
                    "no rotation of {name} waits for --finish{}; `ezctl kca-renew {name}` starts one",
                    stage.map_or(String::new(), |s| format!(" (it is in its `{}` phase)", s.word()))
                )
            )),
        }
        set(Stage::Finishing)?;
        ez_pki::rotation::finish(&ssl).context("dropping the old CA")?;
        push("kca-renew finish")?;
        std::fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))?;
        ops.say(format!(
            "kca-renew {name} finished in {:.1}s: only the new CA and service-account key are trusted now",
            started.elapsed().as_secs_f64()
        ));
        return Ok(());
    }

    let stage = match stage {
        None => {
            let backup = backup_ssl(&ssl)?;
            ez_pki::rotation::begin(&spec, &ssl).context("making the new CA")?;
            set(Stage::Trust)?;
            ops.say(format!(
                "a new CA and service-account key are made beside the current ones (the current set is copied to {}); phase 1: every component trusts both",
                backup.display()
            ));
            Stage::Trust
        }
        Some(Stage::Finish) => bail!(Failure::new(
            ExitCode::Input,
            format!(
                "the rotation of {name} is done but for its last step: run `ezctl kca-renew {name} --finish` once every client has its new kubeconfig"
            )
        )),
        Some(Stage::Finishing) => bail!(Failure::new(
            ExitCode::Input,
            format!("`ezctl kca-renew {name} --finish` did not complete: run it again")
        )),
        Some(s) => {
            ops.say(format!(
                "an earlier kca-renew stopped in its `{}` phase; continuing from there",
                s.word()
            ));
            s
        }
    };
    if stage <= Stage::Trust {
        push("kca-renew trust")?;
        // Pods read the cluster's CA once, at start. Restarted now, while
        // every certificate served is still the old CA's, they load the
        // bundle, and keep talking to the apiserver after the switch.
        // (Restarted only after it, calico-kube-controllers failed TLS with
        // "certificate signed by unknown authority" until phase 3.)
        wait_for_root_ca(home, &cluster, &ops, &ssl)?;
        ops.say("phase 1: the system pods restart to load both CAs");
        restart_system_pods(home, &cluster, &ops)?;
        ez_pki::rotation::switch(&ssl).context("switching to the new CA")?;
        set(Stage::Switched)?;
        ops.say("phase 2: the new CA signs; every component rolls onto its certificates");
    }
    if stage <= Stage::Switched {
        push("kca-renew certificates")?;
        set(Stage::Pods)?;
    }
    if stage <= Stage::Pods {
        ops.say("phase 3: the system pods restart with the new CA and tokens");
        restart_system_pods(home, &cluster, &ops)?;
        set(Stage::Finish)?;
    }
    ops.say(format!(
        "kca-renew {name}: every component runs on the new CA in {:.1}s; the old CA and service-account key are still trusted, so old user kubeconfigs and tokens keep working. Issue user kubeconfigs again (kcfg-adm -A, checkout), then drop the old CA with `ezctl kca-renew {name} --finish`.",
        started.elapsed().as_secs_f64()
    ));
    Ok(())
}

/// A copy of the PKI directory beside it, before a rotation changes it.
fn backup_ssl(ssl: &std::path::Path) -> Result<std::path::PathBuf> {
    let parent = ssl.parent().unwrap_or(std::path::Path::new("."));
    let stamp = crate::stamp::now();
    let mut target = parent.join(format!("ssl-backup-{stamp}"));
    let mut n = 1;
    while target.exists() {
        target = parent.join(format!("ssl-backup-{stamp}-{n}"));
        n += 1;
    }
    std::fs::create_dir(&target).with_context(|| format!("creating {}", target.display()))?;
    std::fs::set_permissions(&target, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| format!("chmod {}", target.display()))?;
    for entry in std::fs::read_dir(ssl).with_context(|| format!("listing {}", ssl.display()))? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            let dest = target.join(entry.file_name());
            std::fs::copy(entry.path(), &dest)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(target)
}

/// The targets of the push: every host, plus the registry and its clients
/// where a registry is installed.
fn renew_targets(ops: &Ops, cluster: &ez_inventory::Cluster) -> ez_engine::Targets {
    let mut targets = ops.targets(cluster);
    let harbor: Vec<String> = cluster
        .group(Group::Harbor)
        .map(|h| h.ip.to_string())
        .collect();
    let registries = ops.hosts_with(cluster, &harbor, "/etc/registry/config.yml");
    if !registries.is_empty() {
        mark(&mut targets, "harbor_installed", &registries);
        let clients: Vec<String> = cluster
            .hosts
            .iter()
            .filter(|h| h.is(Group::KubeMaster) || h.is(Group::KubeNode))
            .map(|h| h.ip.to_string())
            .collect();
        mark(&mut targets, "registry_client", &clients);
    }
    targets
}

/// The add-ons' pods (the pod network, CoreDNS) hold the old CA bundle and
/// tokens of the old key: restart their DaemonSets and Deployments, one
/// pod at a time as their rollout strategies say, and wait for them.
/// Waits until kube-controller-manager published this rotation's `ca.pem`
/// (its `--root-ca-file`, both CAs now) as the kube-root-ca.crt ConfigMap
/// that pods mount, so the pods restarted next load both CAs.
fn wait_for_root_ca(
    home: &Home,
    cluster: &ez_inventory::Cluster,
    ops: &Ops,
    ssl: &std::path::Path,
) -> Result<()> {
    let path = ssl.join(ez_pki::names::CA_CERT);
    let want =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let kube = Kube::pick(home, cluster, &[], ops.handle())?;
    let deadline = Instant::now() + std::time::Duration::from_secs(180);
    loop {
        let got = kube.run(
            &[
                "get",
                "configmap",
                "kube-root-ca.crt",
                "-n",
                "kube-system",
                "-o",
                "jsonpath={.data.ca\\.crt}",
            ],
            None,
            std::time::Duration::from_secs(30),
        )?;
        if got.ok() && got.stdout.trim() == want.trim() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(Failure::new(
                ExitCode::Failed,
                format!(
                    "kube-system/kube-root-ca.crt does not hold both CAs after 180 s (kube-controller-manager publishes its --root-ca-file there): {}\nrun the same command again to continue",
                    if got.ok() { "it holds another certificate set".to_string() } else { got.stderr.trim().to_string() }
                )
            ));
        }
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
}

fn restart_system_pods(home: &Home, cluster: &ez_inventory::Cluster, ops: &Ops) -> Result<()> {
    let kube = Kube::pick(home, cluster, &[], ops.handle())?;
    for ns in ["kube-system", "kube-flannel"] {
        let listed = kube.run(
            &["get", "daemonset,deployment", "-n", ns, "-o", "name"],
            None,
            std::time::Duration::from_secs(30),
        )?;
        if !listed.ok() {
            continue;
        }
        let workloads: Vec<&str> = listed.stdout.lines().filter(|l| !l.is_empty()).collect();
        for w in &workloads {
            kube.ok(&["rollout", "restart", "-n", ns, w])?;
        }
        for w in &workloads {
            // Pods are replaced one at a time (a DaemonSet's maxUnavailable
            // is 1): calico-node on 4 lab nodes took more than the 300 s
            // once allowed for the whole DaemonSet. Allow 150 s per pod.
            let pods = kube
                .run(
                    &[
                        "get",
                        "-n",
                        ns,
                        w,
                        "-o",
                        "jsonpath={.status.desiredNumberScheduled}{.spec.replicas}",
                    ],
                    None,
                    std::time::Duration::from_secs(30),
                )
                .ok()
                .and_then(|o| o.stdout.trim().parse::<u64>().ok())
                .unwrap_or(1);
            let secs = (150 * pods).max(300);
            let status = kube.run(
                &[
                    "rollout",
                    "status",
                    "-n",
                    ns,
                    w,
                    &format!("--timeout={secs}s"),
                ],
                None,
                std::time::Duration::from_secs(secs + 20),
            )?;
            if !status.ok() {
                let pods_now = kube
                    .run(
                        &["get", "pods", "-n", ns, "-o", "wide"],
                        None,
                        std::time::Duration::from_secs(30),
                    )
                    .map(|o| o.stdout)
                    .unwrap_or_default();
                bail!(Failure::new(
                    ExitCode::Failed,
                    format!(
                        "{ns}/{w} did not roll out with the new CA within {secs} s ({pods} pods): {}\n{pods_now}run the same command again to continue",
                        status.stderr.trim()
                    )
                ));
            }
            ops.say(format!("{ns}/{w} restarted"));
        }
    }
    Ok(())
}

pub struct KcfgArgs<'a> {
    pub cluster: &'a str,
    pub add: bool,
    pub delete: bool,
    pub list: bool,
    pub user: Option<&'a str>,
    pub role: &'a str,
    pub expiry: &'a str,
}

/// The ClusterRoleBinding of one user: the user (certificate CN) is the
/// subject, so deleting it takes that user's rights away at once while the
/// certificate (which cannot be revoked) stays valid until it expires.
pub fn binding_name(user: &str) -> String {
    format!("ezctl:user:{user}")
}

pub fn binding_manifest(user: &str, role: ez_pki::Role) -> String {
    let v = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {
            "name": binding_name(user),
            "labels": {"app.kubernetes.io/managed-by": "ezctl"},
            "annotations": {"ezctl.io/role": role.to_string()}
        },
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role.cluster_role()},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    });
    v.to_string()
}

fn pki_input(e: ez_pki::Error) -> anyhow::Error {
    match e {
        ez_pki::Error::InvalidUserName { .. }
        | ez_pki::Error::UserExists { .. }
        | ez_pki::Error::NoSuchUser { .. }
        | ez_pki::Error::Expiry(_) => Failure::new(ExitCode::Input, e.to_string()).into(),
        other => anyhow::Error::new(other),
    }
}

/// What `kcfg-adm` did, for the caller to render.
pub enum KcfgDone {
    Added {
        user: String,
        role: ez_pki::Role,
        /// The certificate's end of validity (UTC), empty if unknown.
        until: String,
        kubeconfig: std::path::PathBuf,
    },
    Deleted {
        user: String,
        kubeconfig_deleted: Option<std::path::PathBuf>,
        binding_deleted: bool,
    },
    Listed(Vec<ez_pki::UserInfo>),
}

pub fn kcfg_adm(home: &Home, args: &KcfgArgs<'_>, out: &dyn Report) -> Result<KcfgDone> {
    let cluster = home.load(args.cluster)?;
    let ssl = view::ssl_dir(&cluster.dir);
    if args.list {
        return Ok(KcfgDone::Listed(ez_pki::user_list(&ssl)?));
    }
    if !args.add && !args.delete {
        bail!(Failure::usage(
            "say what to do: -A (add a user), -D (delete one) or -L (list them)"
        ));
    }
    let Some(user) = args.user else {
        bail!(Failure::usage("-A and -D need a user name: -u NAME"));
    };
    let ops = Ops::new(home, out, false)?;
    let _lock = ops.lock(&cluster, &format!("kcfg-adm {}", args.cluster))?;
    let kube = Kube::pick(home, &cluster, &[], ops.handle())?;
    if args.add {
        let role: ez_pki::Role = args
            .role
            .parse()
            .map_err(|e: String| Failure::new(ExitCode::Input, format!("-t: {e}")))?;
        let expiry = ez_pki::parse_expiry(args.expiry)
            .map_err(|e| Failure::new(ExitCode::Input, format!("-e: {e}")))?;
        let path = ez_pki::user_add(&view::pki_spec(&cluster), &ssl, user, role, expiry)
            .map_err(pki_input)?;
        if let Err(e) = kube.apply(&binding_manifest(user, role)) {
            // No half-made user: without its binding the kubeconfig is useless.
            let _ = ez_pki::user_delete(&ssl, user);
            return Err(e.context(format!(
                "binding user {user} to {}; the user was not created",
                role.cluster_role()
            )));
        }
        let info = ez_pki::user_list(&ssl)?
            .into_iter()
            .find(|u| u.name == user);
        let until = info.map(|u| u.not_after_utc()).unwrap_or_default();
        return Ok(KcfgDone::Added {
            user: user.to_string(),
            role,
            until,
            kubeconfig: path,
        });
    }
    // Delete: the binding first, so the user's rights are gone even if the
    // kubeconfig file cannot be removed.
    let listed = ez_pki::user_list(&ssl)?.into_iter().any(|u| u.name == user);
    let out_del = kube.ok(&[
        "delete",
        "clusterrolebinding",
        &binding_name(user),
        "--ignore-not-found",
    ])?;
    let had_binding = out_del.contains("deleted");
    if !listed && !had_binding {
        bail!(Failure::new(
            ExitCode::Input,
            format!("no user {user} in cluster `{}`", args.cluster)
        ));
    }
    let mut deleted = None;
    if listed {
        let path = ez_pki::user_delete(&ssl, user).map_err(pki_input)?;
        ops.say(format!(
            "user {user}: kubeconfig {} deleted",
            path.display()
        ));
        deleted = Some(path);
    }
    ops.say(format!(
        "user {user}: ClusterRoleBinding {} {}; a copy of the kubeconfig still authenticates until its certificate expires, with no rights",
        binding_name(user),
        if had_binding { "deleted" } else { "was already gone" }
    ));
    Ok(KcfgDone::Deleted {
        user: user.to_string(),
        kubeconfig_deleted: deleted,
        binding_deleted: had_binding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_is_per_user_and_names_the_role() {
        let m: serde_json::Value =
            serde_json::from_str(&binding_manifest("ops_1", ez_pki::Role::View)).unwrap();
        assert_eq!(m["metadata"]["name"], "ezctl:user:ops_1");
        assert_eq!(m["roleRef"]["name"], "view");
        assert_eq!(m["subjects"][0]["kind"], "User");
        assert_eq!(m["subjects"][0]["name"], "ops_1");
        let a: serde_json::Value =
            serde_json::from_str(&binding_manifest("bob", ez_pki::Role::Admin)).unwrap();
        assert_eq!(a["roleRef"]["name"], "cluster-admin");
    }

    #[test]
    fn user_errors_are_input_errors() {
        let e = pki_input(ez_pki::Error::NoSuchUser { name: "x".into() });
        assert_eq!(
            e.downcast_ref::<Failure>().map(|f| f.code),
            Some(ExitCode::Input)
        );
    }
}
