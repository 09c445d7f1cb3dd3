//! The base directory: clusters/, roles/, playbooks/, bin/.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ez_inventory::{Cluster, LoadError};

use crate::exit::{ExitCode, Failure};

pub struct Home {
    pub dir: PathBuf,
}

impl Home {
    /// Made absolute: paths handed to roles and hosts must not depend on
    /// the directory ezctl was started from.
    pub fn new(dir: &Path) -> Home {
        Home {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
        }
    }

    pub fn clusters(&self) -> PathBuf {
        self.dir.join("clusters")
    }

    /// Folder of a cluster; the name is checked so it cannot escape clusters/.
    pub fn cluster_dir(&self, name: &str) -> Result<PathBuf> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !name.starts_with('.');
        if !ok {
            bail!(Failure::usage(format!(
                "`{name}` is not a valid cluster name (letters, digits, '-', '_' and '.', not starting with '.')"
            )));
        }
        Ok(self.clusters().join(name))
    }

    /// Load and validate a cluster; invalid input exits with code 3 and every message.
    pub fn load(&self, name: &str) -> Result<Cluster> {
        let dir = self.cluster_dir(name)?;
        for path in [
            dir.clone(),
            dir.join(ez_inventory::HOSTS_FILE),
            dir.join(ez_inventory::CONFIG_FILE),
        ] {
            if let Some(e) = unfollowable(&path) {
                bail!(Failure::new(
                    ExitCode::Input,
                    format!(
                        "cannot read {}: {e} (a symbolic link that leads nowhere)\nnothing was done on any host",
                        path.display()
                    )
                ));
            }
        }
        if !dir.join(ez_inventory::HOSTS_FILE).exists() {
            let known = self.cluster_names().unwrap_or_default();
            let hint = if known.is_empty() {
                format!(
                    "create it with `ezctl new {name}` or `ezctl import {name} <kubeasz hosts>`"
                )
            } else {
                format!("known clusters: {}", known.join(", "))
            };
            bail!(Failure::new(
                ExitCode::Input,
                format!(
                    "no cluster `{name}`: {} does not exist\n  {hint}",
                    dir.join(ez_inventory::HOSTS_FILE).display()
                )
            ));
        }
        match Cluster::load(&dir) {
            Ok(c) => Ok(c),
            Err(LoadError::Invalid(d)) => {
                let n = d.len();
                bail!(Failure::new(
                    ExitCode::Input,
                    format!("{d}\n\n{n} problem{} in the inventory of `{name}`; nothing was done on any host", if n == 1 { "" } else { "s" })
                ))
            }
            Err(LoadError::Io { path, source }) => bail!(Failure::new(
                ExitCode::Input,
                format!(
                    "cannot read {}: {source}\nnothing was done on any host",
                    path.display()
                )
            )),
        }
    }

    pub fn cluster_names(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let dir = self.clusters();
        if !dir.exists() {
            return Ok(names);
        }
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "example" && entry.path().join(ez_inventory::HOSTS_FILE).is_file() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Why a path that is there by name cannot be followed (a symbolic link
/// loop, a dangling link), or `None`. `exists()` is false for such a path,
/// which made a looping cluster folder "no such cluster" and a looping
/// config.yml silently mean "all defaults".
fn unfollowable(path: &Path) -> Option<std::io::Error> {
    match (std::fs::symlink_metadata(path), std::fs::metadata(path)) {
        (Ok(_), Err(e)) => Some(e),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn home_with(name: &str) -> (tempfile::TempDir, Home) {
        let t = tempfile::tempdir().expect("tempdir");
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clusters/example");
        let dir = t.path().join("clusters").join(name);
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::copy(example.join("hosts.yml"), dir.join("hosts.yml")).expect("hosts");
        let home = Home::new(t.path());
        (t, home)
    }

    fn input_error(home: &Home, name: &str) -> String {
        let err = match home.load(name) {
            Ok(_) => panic!("`{name}` must not load"),
            Err(e) => e,
        };
        let f = err.downcast_ref::<Failure>().expect("a Failure");
        assert_eq!(f.code, ExitCode::Input, "{err}");
        err.to_string()
    }

    #[test]
    fn a_looping_config_yml_is_an_input_error_not_the_defaults() {
        let (_t, home) = home_with("c1");
        assert!(home.load("c1").is_ok(), "the example hosts.yml loads alone");
        let config = home.clusters().join("c1/config.yml");
        std::os::unix::fs::symlink("config.yml", &config).expect("symlink");
        let text = input_error(&home, "c1");
        assert!(text.contains("c1/config.yml"), "{text}");
        assert!(text.contains("symbolic link"), "{text}");
        assert!(text.contains("nothing was done on any host"), "{text}");
    }

    #[test]
    fn a_dangling_config_yml_is_an_input_error() {
        let (_t, home) = home_with("c1");
        let config = home.clusters().join("c1/config.yml");
        std::os::unix::fs::symlink("/nonexistent/ezctl/config.yml", &config).expect("symlink");
        let text = input_error(&home, "c1");
        assert!(text.contains("c1/config.yml"), "{text}");
    }

    #[test]
    fn a_looping_cluster_folder_is_named_as_such() {
        let t = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(t.path().join("clusters")).expect("mkdir");
        std::os::unix::fs::symlink("loopy", t.path().join("clusters/loopy")).expect("symlink");
        let home = Home::new(t.path());
        let text = input_error(&home, "loopy");
        assert!(text.contains("cannot read"), "{text}");
        assert!(text.contains("clusters/loopy:"), "{text}");
        assert!(!text.contains("does not exist"), "{text}");
    }
}
