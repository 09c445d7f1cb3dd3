//! `fetch`: copy a remote file to the controller (e.g. a generated token),
//! written only when it differs. Mode 0600 unless told otherwise: what is
//! fetched is often secret.

use std::path::Path;

use async_trait::async_trait;
use serde::Deserialize;

use super::args::{Deferred, Mode};
use super::files::{Content, FileWrite};
use super::{Applied, Change, Cx, Module, Pending};
use crate::error::TaskError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FetchArgs {
    pub src: String,
    /// Controller path.
    pub dest: String,
    pub mode: Option<Deferred<Mode>>,
}

#[async_trait]
impl Module for FetchArgs {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        let remote = cx.transport.fetch(&self.src).await?;
        let local = crate::transport::sha256_file(Path::new(&self.dest)).ok();
        let content = Content::bytes(remote);
        if local.as_deref() == Some(content.sha256.as_str()) {
            return Ok(None);
        }
        let mode = self
            .mode
            .as_ref()
            .map(|m| m.get("mode").map(|m| m.0))
            .transpose()
            .map_err(TaskError::Args)?
            .unwrap_or(0o600);
        Ok(Some(Change {
            summary: format!("{} -> controller {}", self.src, self.dest),
            diff: None,
            pending: Pending::File(Box::new(FileWrite {
                path: self.dest.clone(),
                content: Some(content),
                mode: Some(mode),
                owner: None,
            })),
        }))
    }

    async fn apply(&self, cx: &Cx<'_>, change: Change) -> Result<Applied, TaskError> {
        if let Pending::File(w) = change.pending {
            if let Some(c) = w.content {
                cx.controller.put(c.source, &w.path, w.mode, None).await?;
            }
        }
        Ok(Applied::changed())
    }
}
