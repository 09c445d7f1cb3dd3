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
#[serde(deny_unknown_fields)]
pub struct Component {
    pub version: String,
    /// The config.yml key this version fills (e.g. K8S_VER).
    #[serde(default)]
    pub setting: Option<String>,
    /// Where `ezctl download` fetches it (`{version}` is replaced).
    #[serde(default)]
    pub url: Option<String>,
    /// Expected sha256 of what `url` serves; downloads without one are refused.
    #[serde(default)]
    pub sha256: Option<String>,
    /// For archives (.tar.gz): archive member -> file name in bin/.
    #[serde(default)]
    pub extract: BTreeMap<String, String>,
    /// For a single binary: its file name in bin/.
    #[serde(default)]
    pub file: Option<String>,
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
