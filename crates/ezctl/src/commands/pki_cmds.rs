//! `kca-renew` (new CA and every certificate, pushed and restarted) and
//! `kcfg-adm` (user kubeconfigs and their RBAC bindings).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use ez_inventory::Group;
use serde_json::json;

use crate::commands::setup::Output;
use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::ops::context::Ops;
use crate::ops::kube::Kube;
use crate::ops::mark;
use crate::view;

/// Written after the renewal, removed after the push: a re-run after a
/// failed push pushes the same new set instead of making yet another CA.
const RENEW_PENDING: &str = "kca-renew.pending";

pub fn kca_renew(home: &Home, name: &str, accept_new: bool, out: &Output) -> Result<()> {
    let started = Instant::now();
    let cluster = home.load(name)?;
    let ops = Ops::new(home, out, accept_new)?;
    let _lock = ops.lock(&cluster, &format!("kca-renew {name}"))?;
    let ssl = view::ssl_dir(&cluster.dir);
    let marker = cluster.dir.join(RENEW_PENDING);
    if marker.exists() {
        let backup = std::fs::read_to_string(&marker).unwrap_or_default();
        ops.say(format!(
            "an earlier kca-renew made the certificates in {} but did not finish pushing them (previous set: {}); pushing them again",
            ssl.display(),
            backup.trim()
        ));
    } else {
        let renewal =
            ez_pki::renew_all(&view::pki_spec(&cluster), &ssl).context("renewing the PKI")?;
        let backup = renewal
            .backup
            .as_ref()
            .map(|b| b.display().to_string())
            .unwrap_or_else(|| "none".into());
        std::fs::write(&marker, format!("{backup}\n"))
            .with_context(|| format!("writing {}", marker.display()))?;
        ops.say(format!(
            "new CA and {} certificates/kubeconfigs in {}; the previous set is kept in {backup}",
            renewal.report.created.len(),
            ssl.display()
        ));
    }
    let mut targets = ops.targets(&cluster);
    let harbor: Vec<String> = cluster
        .group(Group::Harbor)
        .map(|h| h.ip.to_string())
        .collect();
    let registries = ops.hosts_with(&cluster, &harbor, "/etc/registry/config.yml");
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
    ops.run_playbook(&cluster, targets, "41-kca-renew", &format!("kca-renew {name}"))
        .map_err(|e| e.context(format!("the new certificates are not on every host yet; fix the cause and run `ezctl kca-renew {name}` again (it pushes the same set)")))?;
    std::fs::remove_file(&marker).with_context(|| format!("removing {}", marker.display()))?;
    ops.say(format!(
        "kca-renew {name} done in {:.1}s. User kubeconfigs and any copy of the old admin kubeconfig (e.g. after `ezctl checkout`) are signed by the old CA: issue them again (kcfg-adm -A, checkout). Pods holding service-account tokens of the old key need a restart.",
        started.elapsed().as_secs_f64()
    ));
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

pub fn kcfg_adm(home: &Home, args: &KcfgArgs<'_>, out: &Output) -> Result<()> {
    let cluster = home.load(args.cluster)?;
    let ssl = view::ssl_dir(&cluster.dir);
    if args.list {
        return list(&ssl, out);
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
        if out.json {
            out.result(
                "kcfg-adm",
                json!({"action": "add", "user": user, "role": role.to_string(), "expires": until, "kubeconfig": path}),
            );
        } else {
            eprintln!(
                "user {user} ({role}, ClusterRole {}) valid until {until}",
                role.cluster_role()
            );
            println!("{}", path.display());
        }
        return Ok(());
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
        out.step(format!(
            "user {user}: kubeconfig {} deleted",
            path.display()
        ));
        deleted = Some(path);
    }
    out.step(format!(
        "user {user}: ClusterRoleBinding {} {}; a copy of the kubeconfig still authenticates until its certificate expires, with no rights",
        binding_name(user),
        if had_binding { "deleted" } else { "was already gone" }
    ));
    out.result(
        "kcfg-adm",
        json!({"action": "delete", "user": user, "kubeconfig_deleted": deleted, "binding_deleted": had_binding}),
    );
    Ok(())
}

fn list(ssl: &std::path::Path, out: &Output) -> Result<()> {
    let users = ez_pki::user_list(ssl)?;
    if out.json {
        let users: Vec<_> = users
            .iter()
            .map(|u| json!({"user": u.name, "role": u.role.to_string(), "expires": u.not_after_utc(), "kubeconfig": u.path}))
            .collect();
        out.result("kcfg-adm", json!({"action": "list", "users": users}));
        return Ok(());
    }
    if users.is_empty() {
        eprintln!("no users (add one with kcfg-adm -A -u NAME)");
        return Ok(());
    }
    let now = std::time::SystemTime::now();
    println!(
        "{:<24} {:<6} {:<21} KUBECONFIG",
        "USER", "ROLE", "EXPIRES (UTC)"
    );
    for u in users {
        let expired = if u.not_after <= now { " (expired)" } else { "" };
        println!(
            "{:<24} {:<6} {:<21} {}{expired}",
            u.name,
            u.role.to_string(),
            u.not_after_utc(),
            u.path.display()
        );
    }
    Ok(())
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
