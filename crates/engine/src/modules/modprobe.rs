//! `modprobe`: load a kernel module now and at boot (/etc/modules-load.d).

use async_trait::async_trait;
use serde::Deserialize;

use super::files::{apply_write, check_file, Content};
use super::{run_checked, Applied, Change, Cx, Module, Pending};
use crate::error::TaskError;
use crate::transport::{shell_quote, ExecOpts};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ModprobeArgs {
    pub name: String,
    /// Options for this load (e.g. `nf_conntrack hashsize=...`).
    pub params: Option<String>,
    #[serde(default = "default_conf_dir")]
    pub conf_dir: String,
}

fn default_conf_dir() -> String {
    "/etc/modules-load.d".into()
}

impl ModprobeArgs {
    fn conf_path(&self) -> String {
        format!("{}/{}.conf", self.conf_dir.trim_end_matches('/'), self.name)
    }

    /// Loaded or built in: both show up in /sys/module (with `_` for `-`).
    fn loaded_test(&self) -> String {
        format!(
            "[ -d {} ]",
            shell_quote(&format!("/sys/module/{}", self.name.replace('-', "_")))
        )
    }

    async fn loaded(&self, cx: &Cx<'_>) -> Result<bool, TaskError> {
        Ok(cx
            .transport
            .exec(&self.loaded_test(), ExecOpts::default())
            .await?
            .success())
    }
}

#[async_trait]
impl Module for ModprobeArgs {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        let conf = Content::bytes(format!("{}\n", self.name).into_bytes());
        let file = check_file(cx, &self.conf_path(), Some(conf), Some(0o644), None).await?;
        let loaded = self.loaded(cx).await?;
        if loaded && file.is_none() {
            return Ok(None);
        }
        let mut summary = Vec::new();
        if !loaded {
            summary.push(format!("load {}", self.name));
        }
        let pending = match file {
            Some(f) => {
                summary.push(f.summary);
                f.pending
            }
            None => Pending::Nothing,
        };
        Ok(Some(Change {
            summary: summary.join("; "),
            diff: None,
            pending,
        }))
    }

    async fn apply(&self, cx: &Cx<'_>, change: Change) -> Result<Applied, TaskError> {
        let mut cmd = format!(
            "{} || modprobe -- {}",
            self.loaded_test(),
            shell_quote(&self.name)
        );
        if let Some(p) = &self.params {
            cmd.push(' ');
            cmd.push_str(p);
        }
        run_checked(cx, &cmd, &format!("modprobe {}", self.name)).await?;
        if let Pending::File(w) = change.pending {
            apply_write(cx, &w).await?;
        }
        Ok(Applied::changed())
    }
}
