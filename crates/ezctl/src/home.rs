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
