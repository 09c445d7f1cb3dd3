//! `template`: render a role template with the host's variables to a file.

use async_trait::async_trait;
use serde::Deserialize;

use super::args::{Deferred, Mode};
use super::files::{apply_write, check_file, Content};
use super::{Applied, Change, Cx, Module, Pending};
use crate::error::TaskError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TemplateArgs {
    /// Path under the role's `templates/`.
    pub src: String,
    pub dest: String,
    pub mode: Option<Deferred<Mode>>,
    pub owner: Option<String>,
}

#[async_trait]
impl Module for TemplateArgs {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        let mode = self
            .mode
            .as_ref()
            .map(|m| m.get("mode").map(|m| m.0))
            .transpose()
            .map_err(TaskError::Args)?;
        let text = cx.role.render_template(&self.src, cx.vars)?;
        let content = Content::bytes(text.into_bytes());
        check_file(cx, &self.dest, Some(content), mode, self.owner.as_deref()).await
    }

    async fn apply(&self, cx: &Cx<'_>, change: Change) -> Result<Applied, TaskError> {
        if let Pending::File(w) = change.pending {
            apply_write(cx, &w).await?;
        }
        Ok(Applied::changed())
    }
}
