//! `ezctl list` and `ezctl checkout`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::output::Output;
use ez_ops::exit::{ExitCode, Failure};
use ez_ops::home::Home;

pub use ez_ops::files::kube_config;

/// The admin kubeconfig ezctl writes for a cluster.
pub fn admin_kubeconfig(home: &Home, name: &str) -> Result<PathBuf> {
    Ok(home.cluster_dir(name)?.join("ssl/kubectl.kubeconfig"))
}

fn current(home: &Home) -> Option<String> {
    let active = std::fs::read(kube_config().ok()?).ok()?;
    home.cluster_names().ok()?.into_iter().find(|n| {
        admin_kubeconfig(home, n)
            .ok()
            .and_then(|p| std::fs::read(p).ok())
            .as_ref()
            == Some(&active)
    })
}

pub fn list(home: &Home, out: &Output) -> Result<()> {
    let style = out.style;
    let names = home.cluster_names()?;
    if out.json {
        let cur = current(home);
        out.result(
            "list",
            serde_json::json!({ "clusters": names, "current": cur }),
        );
        return Ok(());
    }
    if names.is_empty() {
        println!(
            "no clusters in {}; create one with `ezctl new <name>`",
            home.clusters().display()
        );
        return Ok(());
    }
    let cur = current(home);
    for n in names {
        if Some(&n) == cur.as_ref() {
            println!("* {} {}", style.bold(&n), style.dim("(current)"));
        } else {
            println!("  {n}");
        }
    }
    Ok(())
}

pub fn checkout(home: &Home, name: &str, out: &Output) -> Result<()> {
    let src = admin_kubeconfig(home, name)?;
    if !src.exists() {
        bail!(Failure::new(
            ExitCode::Input,
            format!("cluster `{name}` has no admin kubeconfig yet ({}); run `ezctl setup {name} 01` first", src.display())
        ));
    }
    let dest = kube_config()?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if dest.exists() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let backup = dest.with_file_name(format!("config.bak.{stamp}"));
        std::fs::copy(&dest, &backup).with_context(|| format!("backing up {}", dest.display()))?;
        out.step(format!(
            "previous {} saved as {}",
            dest.display(),
            backup.display()
        ));
    }
    let data = std::fs::read(&src)?;
    ez_ops::files::write_private(&dest, &data)?;
    if out.json {
        out.result(
            "checkout",
            serde_json::json!({ "cluster": name, "kubeconfig": dest }),
        );
    } else {
        println!("kubectl now talks to `{name}`");
    }
    Ok(())
}
