//! `kca-renew` and `kcfg-adm`: the procedures are in [`ez_ops::certs`];
//! this renders what `kcfg-adm` did.

use anyhow::Result;
use ez_ops::certs::{KcfgArgs, KcfgDone};
use ez_ops::home::Home;
use serde_json::json;

use crate::output::Output;

pub fn kcfg_adm(home: &Home, args: &KcfgArgs<'_>, out: &Output) -> Result<()> {
    match ez_ops::certs::kcfg_adm(home, args, out)? {
        KcfgDone::Added {
            user,
            role,
            until,
            kubeconfig,
        } => {
            if out.json {
                out.result(
                    "kcfg-adm",
                    json!({"action": "add", "user": user, "role": role.to_string(), "expires": until, "kubeconfig": kubeconfig}),
                );
            } else {
                eprintln!(
                    "user {user} ({role}, ClusterRole {}) valid until {until}",
                    role.cluster_role()
                );
                println!("{}", kubeconfig.display());
            }
        }
        KcfgDone::Deleted {
            user,
            kubeconfig_deleted,
            binding_deleted,
        } => out.result(
            "kcfg-adm",
            json!({"action": "delete", "user": user, "kubeconfig_deleted": kubeconfig_deleted, "binding_deleted": binding_deleted}),
        ),
        KcfgDone::Listed(users) => list(&users, out),
    }
    Ok(())
}

fn list(users: &[ez_pki::UserInfo], out: &Output) {
    if out.json {
        let users: Vec<_> = users
            .iter()
            .map(|u| json!({"user": u.name, "role": u.role.to_string(), "expires": u.not_after_utc(), "kubeconfig": u.path}))
            .collect();
        out.result("kcfg-adm", json!({"action": "list", "users": users}));
        return;
    }
    if users.is_empty() {
        eprintln!("no users (add one with kcfg-adm -A -u NAME)");
        return;
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
}
