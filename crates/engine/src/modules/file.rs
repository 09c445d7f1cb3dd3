//! `file`: a regular file (optionally with content), a directory, or nothing.

use async_trait::async_trait;
use serde::Deserialize;

use super::args::{Deferred, Mode};
use super::files::{apply_write, check_file, owner_matches, Content};
use super::{run_checked, Applied, Change, Cx, Module, Pending};
use crate::error::TaskError;
use crate::transport::{shell_quote, FileKind};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum FileState {
    #[default]
    File,
    Directory,
    Absent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileArgs {
    pub path: String,
    #[serde(default)]
    pub state: FileState,
    pub content: Option<String>,
    pub mode: Option<Deferred<Mode>>,
    pub owner: Option<String>,
}

impl FileArgs {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.content.is_some() && self.state != FileState::File {
            return Err("`content` only goes with `state: file`".into());
        }
        Ok(())
    }

    fn mode(&self) -> Result<Option<u32>, TaskError> {
        self.mode
            .as_ref()
            .map(|m| m.get("mode").map(|m| m.0))
            .transpose()
            .map_err(TaskError::Args)
    }
}

/// Paths `rm -rf` must never be pointed at, whatever a variable rendered to.
fn refuse_removal(path: &str) -> bool {
    let p = path.trim_end_matches('/');
    p.is_empty() || p == "/" || !path.starts_with('/') || p.split('/').any(|c| c == "..")
}

#[async_trait]
impl Module for FileArgs {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        let mode = self.mode()?;
        match self.state {
            FileState::File => {
                let content = self
                    .content
                    .as_ref()
                    .map(|c| Content::bytes(c.clone().into_bytes()));
                let stat = cx.stats.get(cx.transport, &self.path).await?;
                // Without `content`, an existing file keeps what it holds.
                let content = match (content, &stat) {
                    (None, Some(s)) if s.kind == FileKind::File => None,
                    (c, _) => c,
                };
                check_file(cx, &self.path, content, mode, self.owner.as_deref()).await
            }
            FileState::Directory => {
                let stat = cx.stats.get(cx.transport, &self.path).await?;
                let ok = match &stat {
                    Some(s) if s.kind == FileKind::Directory => {
                        mode.is_none_or(|m| m == s.mode)
                            && self.owner.as_deref().is_none_or(|o| owner_matches(o, s))
                    }
                    Some(_) => {
                        return Err(TaskError::Failed(format!(
                            "{} exists and is not a directory",
                            self.path
                        )))
                    }
                    None => false,
                };
                Ok((!ok).then(|| {
                    Change::new(format!(
                        "{}: {}",
                        self.path,
                        if stat.is_none() {
                            "create directory"
                        } else {
                            "directory mode/owner"
                        }
                    ))
                }))
            }
            FileState::Absent => {
                if refuse_removal(&self.path) {
                    return Err(TaskError::Args(format!(
                        "refusing to remove {:?}: not an absolute, normal path",
                        self.path
                    )));
                }
                let stat = cx.stats.get(cx.transport, &self.path).await?;
                Ok(stat.map(|_| Change::new(format!("{}: remove", self.path))))
            }
        }
    }

    async fn apply(&self, cx: &Cx<'_>, change: Change) -> Result<Applied, TaskError> {
        let q = shell_quote(&self.path);
        match (self.state, change.pending) {
            (FileState::File, Pending::File(w)) => apply_write(cx, &w).await?,
            (FileState::Directory, _) => {
                let mut script = format!("mkdir -p -- {q}");
                if let Some(m) = self.mode()? {
                    script.push_str(&format!(" && chmod {m:o} -- {q}"));
                }
                if let Some(o) = &self.owner {
                    script.push_str(&format!(" && chown -- {} {q}", shell_quote(o)));
                }
                run_checked(cx, &script, &format!("creating directory {}", self.path)).await?;
                let mut fresh = cx
                    .transport
                    .stat_many(std::slice::from_ref(&self.path))
                    .await?;
                cx.stats.set(&self.path, fresh.remove(&self.path).flatten());
            }
            (FileState::Absent, _) => {
                run_checked(
                    cx,
                    &format!("rm -rf -- {q}"),
                    &format!("removing {}", self.path),
                )
                .await?;
                // Anything cached below it is gone too.
                cx.stats.clear();
                cx.stats.set(&self.path, None);
            }
            (FileState::File, _) => {
                return Err(TaskError::Failed(
                    "internal: file change without a write".into(),
                ))
            }
        }
        Ok(Applied::changed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_guard() {
        assert!(refuse_removal("/"));
        assert!(refuse_removal(""));
        assert!(refuse_removal("relative/x"));
        assert!(refuse_removal("/a/../etc"));
        assert!(!refuse_removal("/tmp/x"));
    }
}
