//! Files on the controller that hold secrets.

use std::path::PathBuf;

use anyhow::{Context, Result};

/// `~/.kube/config`, where `checkout` installs a cluster's admin kubeconfig.
pub fn kube_config() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    Ok(PathBuf::from(home).join(".kube/config"))
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
