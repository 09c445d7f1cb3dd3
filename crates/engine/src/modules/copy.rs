//! `copy`: a controller file (role `files/` or an absolute path, e.g. a binary
//! from `bin/`) or inline `content` to a host. Skipped when the host's sha256
//! already matches, so an unchanged binary is never sent again.

use std::path::PathBuf;

use async_trait::async_trait;
use serde::Deserialize;

use super::args::{Deferred, Mode};
use super::files::{apply_write, check_file, Content};
use super::{Applied, Change, Cx, Module, Pending};
use crate::error::TaskError;
use crate::transport::PutSource;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CopyArgs {
    pub src: Option<String>,
    pub content: Option<String>,
    pub dest: String,
    pub mode: Option<Deferred<Mode>>,
    pub owner: Option<String>,
}

impl CopyArgs {
    pub(crate) fn validate(&self) -> Result<(), String> {
        match (&self.src, &self.content) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err("give exactly one of `src` and `content`".into()),
        }
    }

    async fn content(&self, cx: &Cx<'_>) -> Result<Content, TaskError> {
        if let Some(c) = &self.content {
            return Ok(Content::bytes(c.clone().into_bytes()));
        }
        let src = self.src.as_deref().unwrap_or_default();
        let path = if src.starts_with('/') {
            PathBuf::from(src)
        } else {
            cx.role.dir.join("files").join(src)
        };
        let (sha256, size) = cx.hashes.sha256(&path).await.map_err(|e| match e {
            TaskError::Failed(m) => TaskError::Failed(format!("copy source: {m}")),
            other => other,
        })?;
        // Small text files go through memory so dry-run can show a diff.
        let source = if size <= 64 * 1024 {
            match tokio::fs::read(&path).await {
                Ok(b) if std::str::from_utf8(&b).is_ok() => PutSource::Bytes(b.into()),
                _ => PutSource::Path(path),
            }
        } else {
            PutSource::Path(path)
        };
        Ok(Content {
            source,
            sha256,
            size,
        })
    }
}

#[async_trait]
impl Module for CopyArgs {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        let mode = self
            .mode
            .as_ref()
            .map(|m| m.get("mode").map(|m| m.0))
            .transpose()
            .map_err(TaskError::Args)?;
        let content = self.content(cx).await?;
        check_file(cx, &self.dest, Some(content), mode, self.owner.as_deref()).await
    }

    async fn apply(&self, cx: &Cx<'_>, change: Change) -> Result<Applied, TaskError> {
        if let Pending::File(w) = change.pending {
            apply_write(cx, &w).await?;
        }
        Ok(Applied::changed())
    }
}
