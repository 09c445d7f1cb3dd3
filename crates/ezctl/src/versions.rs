//! `bin/versions.toml`: the component versions of the binary bundle.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
pub struct Versions {
    #[serde(default)]
    pub components: BTreeMap<String, Component>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // url and sha256 are read by `ezctl download`
pub struct Component {
    pub version: String,
    /// The config.yml key this version fills (e.g. K8S_VER).
    #[serde(default)]
    pub setting: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub sha256: Option<String>,
}

impl Versions {
    /// A missing manifest means no versions to fill in.
    pub fn load(path: &Path) -> Result<Versions> {
        if !path.exists() {
            return Ok(Versions::default());
        }
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("{} is not a valid versions manifest", path.display()))
    }

    /// (config key, version) for components that fill a setting.
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        self.components
            .values()
            .filter_map(|c| {
                let key = c.setting.as_deref()?;
                let s = ez_inventory::settings::find(key)?;
                Some((s.key, c.version.clone()))
            })
            .collect()
    }
}
