//! `lineinfile` (one line, optionally replacing a regexp match) and
//! `blockinfile` (a block between marker lines, e.g. in /etc/hosts). Both
//! compute the new text on the controller and write it only when it differs.

use async_trait::async_trait;
use regex::Regex;
use serde::Deserialize;

use super::args::{Deferred, Mode};
use super::files::{apply_write, check_file, Content};
use super::{Applied, Change, Cx, Module, Pending};
use crate::error::TaskError;
use crate::transport::FileKind;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Presence {
    #[default]
    Present,
    Absent,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LineArgs {
    pub path: String,
    pub line: Option<String>,
    pub regexp: Option<String>,
    #[serde(default)]
    pub state: Presence,
    /// `EOF` (default), `BOF`, or a regexp: insert after its last match.
    pub insertafter: Option<String>,
    pub create: Option<Deferred<bool>>,
    pub mode: Option<Deferred<Mode>>,
    pub owner: Option<String>,
}

impl LineArgs {
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.state == Presence::Present && self.line.is_none() {
            return Err("`line` is required with state: present".into());
        }
        if self.line.is_none() && self.regexp.is_none() {
            return Err("give `line` or `regexp`".into());
        }
        if let Some(r) = &self.regexp {
            if !r.contains("{{") {
                Regex::new(r).map_err(|e| format!("regexp: {e}"))?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BlockArgs {
    pub path: String,
    #[serde(default)]
    pub block: String,
    /// `{mark}` becomes BEGIN / END. Use distinct markers for two blocks in one file.
    #[serde(default = "default_marker")]
    pub marker: String,
    #[serde(default)]
    pub state: Presence,
    pub insertafter: Option<String>,
    pub create: Option<Deferred<bool>>,
    pub mode: Option<Deferred<Mode>>,
    pub owner: Option<String>,
}

fn default_marker() -> String {
    "# {mark} EZCTL MANAGED BLOCK".into()
}

fn regex(r: &str) -> Result<Regex, TaskError> {
    Regex::new(r).map_err(|e| TaskError::Args(format!("regexp {r:?}: {e}")))
}

/// Index after which to insert: `None` means at the top.
fn insert_point(lines: &[String], insertafter: Option<&str>) -> Result<Option<usize>, TaskError> {
    match insertafter {
        None | Some("EOF") => Ok(lines.len().checked_sub(1)),
        Some("BOF") => Ok(None),
        Some(r) => {
            let re = regex(r)?;
            Ok(lines
                .iter()
                .rposition(|l| re.is_match(l))
                .or(lines.len().checked_sub(1)))
        }
    }
}

fn insert_at(lines: &mut Vec<String>, after: Option<usize>, new: Vec<String>) {
    let at = after.map_or(0, |i| i + 1);
    lines.splice(at..at, new);
}

fn join(lines: &[String]) -> String {
    if lines.is_empty() {
        String::new()
    } else {
        format!("{}\n", lines.join("\n"))
    }
}

pub(crate) fn edit_line(old: &str, a: &LineArgs) -> Result<String, TaskError> {
    let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
    let re = a.regexp.as_deref().map(regex).transpose()?;
    let hit = |l: &String| match (&re, &a.line) {
        (Some(re), _) => re.is_match(l),
        (None, Some(line)) => l == line,
        (None, None) => false,
    };
    match a.state {
        Presence::Absent => lines.retain(|l| !hit(l)),
        Presence::Present => {
            let line = a.line.clone().unwrap_or_default();
            match lines.iter().rposition(hit) {
                Some(i) => lines[i] = line,
                None if lines.contains(&line) => {}
                None => {
                    let at = insert_point(&lines, a.insertafter.as_deref())?;
                    insert_at(&mut lines, at, vec![line]);
                }
            }
        }
    }
    Ok(join(&lines))
}

pub(crate) fn edit_block(old: &str, a: &BlockArgs) -> Result<String, TaskError> {
    let begin = a.marker.replace("{mark}", "BEGIN");
    let end = a.marker.replace("{mark}", "END");
    let mut lines: Vec<String> = old.lines().map(str::to_string).collect();
    let b = lines.iter().position(|l| *l == begin);
    let e = b.and_then(|b| lines[b..].iter().position(|l| *l == end).map(|e| b + e));
    let existing = match (b, e) {
        (Some(b), Some(e)) => Some((b, e)),
        (Some(_), None) => {
            return Err(TaskError::Failed(format!(
                "{}: found {begin:?} without {end:?}; fix the file by hand",
                a.path
            )))
        }
        _ => None,
    };
    let mut block = vec![begin.clone()];
    block.extend(a.block.lines().map(str::to_string));
    block.push(end.clone());
    match (a.state, existing) {
        (Presence::Absent, Some((b, e))) => {
            lines.drain(b..=e);
        }
        (Presence::Absent, None) => {}
        (Presence::Present, Some((b, e))) => {
            lines.splice(b..=e, block);
        }
        (Presence::Present, None) => {
            let at = insert_point(&lines, a.insertafter.as_deref())?;
            insert_at(&mut lines, at, block);
        }
    }
    Ok(join(&lines))
}

/// Current text of the file, `None` when it does not exist.
async fn current(cx: &Cx<'_>, path: &str) -> Result<Option<String>, TaskError> {
    match cx.stats.get(cx.transport, path).await? {
        None => Ok(None),
        Some(s) if s.kind != FileKind::File => {
            Err(TaskError::Failed(format!("{path} is not a regular file")))
        }
        Some(_) => {
            let b = cx.transport.fetch(path).await?;
            String::from_utf8(b)
                .map(Some)
                .map_err(|_| TaskError::Failed(format!("{path} is not UTF-8 text")))
        }
    }
}

async fn check_edit(
    cx: &Cx<'_>,
    path: &str,
    create: &Option<Deferred<bool>>,
    mode: &Option<Deferred<Mode>>,
    owner: Option<&str>,
    edit: impl FnOnce(&str) -> Result<String, TaskError>,
) -> Result<Option<Change>, TaskError> {
    let create = create
        .as_ref()
        .map(|c| c.get("create"))
        .transpose()
        .map_err(TaskError::Args)?
        .unwrap_or(false);
    let mode = mode
        .as_ref()
        .map(|m| m.get("mode").map(|m| m.0))
        .transpose()
        .map_err(TaskError::Args)?;
    let old = match current(cx, path).await? {
        Some(t) => t,
        None if create => String::new(),
        None => {
            return Err(TaskError::Failed(format!(
                "{path} does not exist (set `create: true`)"
            )))
        }
    };
    let new = edit(&old)?;
    check_file(
        cx,
        path,
        Some(Content::bytes(new.into_bytes())),
        mode,
        owner,
    )
    .await
}

#[async_trait]
impl Module for LineArgs {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        check_edit(
            cx,
            &self.path,
            &self.create,
            &self.mode,
            self.owner.as_deref(),
            |old| edit_line(old, self),
        )
        .await
    }

    async fn apply(&self, cx: &Cx<'_>, change: Change) -> Result<Applied, TaskError> {
        if let Pending::File(w) = change.pending {
            apply_write(cx, &w).await?;
        }
        Ok(Applied::changed())
    }
}

#[async_trait]
impl Module for BlockArgs {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        check_edit(
            cx,
            &self.path,
            &self.create,
            &self.mode,
            self.owner.as_deref(),
            |old| edit_block(old, self),
        )
        .await
    }

    async fn apply(&self, cx: &Cx<'_>, change: Change) -> Result<Applied, TaskError> {
        if let Pending::File(w) = change.pending {
            apply_write(cx, &w).await?;
        }
        Ok(Applied::changed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn line(v: serde_json::Value) -> LineArgs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn line_replaces_match_or_appends_once() {
        let a =
            line(json!({"path": "/x", "regexp": "^PermitRootLogin", "line": "PermitRootLogin no"}));
        let once = edit_line("Port 22\nPermitRootLogin yes\n", &a).unwrap();
        assert_eq!(once, "Port 22\nPermitRootLogin no\n");
        assert_eq!(edit_line(&once, &a).unwrap(), once);
        let b = line(json!({"path": "/x", "line": "new"}));
        assert_eq!(edit_line("a\n", &b).unwrap(), "a\nnew\n");
        assert_eq!(edit_line("a\nnew\n", &b).unwrap(), "a\nnew\n");
        let gone = line(json!({"path": "/x", "regexp": "^a", "state": "absent"}));
        assert_eq!(edit_line("a1\nb\na2\n", &gone).unwrap(), "b\n");
    }

    #[test]
    fn block_is_inserted_replaced_and_removed() {
        let mut a: BlockArgs = serde_json::from_value(
            json!({"path": "/etc/hosts", "block": "10.0.0.1 m1\n10.0.0.2 m2"}),
        )
        .unwrap();
        let first = edit_block("127.0.0.1 localhost\n", &a).unwrap();
        assert_eq!(
            first,
            "127.0.0.1 localhost\n# BEGIN EZCTL MANAGED BLOCK\n10.0.0.1 m1\n10.0.0.2 m2\n# END EZCTL MANAGED BLOCK\n"
        );
        assert_eq!(edit_block(&first, &a).unwrap(), first);
        a.block = "10.0.0.3 m3".into();
        let second = edit_block(&first, &a).unwrap();
        assert!(second.contains("m3") && !second.contains("m1"));
        a.state = Presence::Absent;
        assert_eq!(edit_block(&second, &a).unwrap(), "127.0.0.1 localhost\n");
    }
}
