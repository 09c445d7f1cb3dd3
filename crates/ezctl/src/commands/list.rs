//! `ezctl list` and `ezctl checkout`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::output::Output;

/// `~/.kube/config`, where `checkout` installs a cluster's admin kubeconfig.
pub fn kube_config() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".kube/config"))
}

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
    write_private(&dest, &data)?;
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

/// Write a file readable only by its owner (kubeconfigs hold keys). The
/// temp file has a random name and is created exclusively (0600): a
/// symlink planted next to `path` is never followed.
pub fn write_private(path: &std::path::Path, data: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.ezctl-")
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("writing {}", path.display()))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod write_tests {
    /// The temp file was `<path>.ezctl-tmp`, opened with O_CREAT and no
    /// O_EXCL: a symlink planted there received the admin kubeconfig.
    #[test]
    fn write_private_follows_no_planted_symlink() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("config");
        let victim = d.path().join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("config.ezctl-tmp")).unwrap();
        super::write_private(&dest, b"KUBECONFIG").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(std::fs::read(&dest).unwrap(), b"KUBECONFIG");
        let mode = std::fs::metadata(&dest).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
}
