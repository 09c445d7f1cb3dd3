//! What the file-writing modules share: the unit's stat cache, the
//! controller-side hash cache, and "make this path hold this content with this
//! mode and owner" as a check + apply pair.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::{Change, Cx, Pending};
use crate::error::TaskError;
use crate::transport::{shell_quote, FileKind, FileStat, PutSource, Transport, TransportError};

/// Stats of remote paths, filled by the unit's one batched round trip and
/// kept in step with what the unit writes. Cleared when a task that may touch
/// arbitrary files (a command) changed something.
#[derive(Default)]
pub(crate) struct StatCache {
    map: Mutex<HashMap<String, Option<FileStat>>>,
}

impl StatCache {
    pub(crate) fn fill(&self, stats: impl IntoIterator<Item = (String, Option<FileStat>)>) {
        if let Ok(mut m) = self.map.lock() {
            m.extend(stats);
        }
    }

    pub(crate) fn clear(&self) {
        if let Ok(mut m) = self.map.lock() {
            m.clear();
        }
    }

    fn cached(&self, path: &str) -> Option<Option<FileStat>> {
        self.map.lock().ok()?.get(path).cloned()
    }

    pub(crate) fn set(&self, path: &str, stat: Option<FileStat>) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(path.to_string(), stat);
        }
    }

    /// The stat of `path`, from the cache or with one round trip.
    pub(crate) async fn get(
        &self,
        t: &dyn Transport,
        path: &str,
    ) -> Result<Option<FileStat>, TransportError> {
        if let Some(s) = self.cached(path) {
            return Ok(s);
        }
        let mut m = t.stat_many(&[path.to_string()]).await?;
        let s = m.remove(path).flatten();
        self.set(path, s.clone());
        Ok(s)
    }
}

/// sha256 of controller files, so a binary copied to 100 hosts is hashed once.
/// Units reach the same `copy` task at about the same time, so a hash being
/// computed is shared too: later callers wait for it instead of hashing the
/// same file again (40 hosts x 41 MiB was up to 1.6 GB of hashing per run).
#[derive(Default)]
pub(crate) struct HashCache {
    map: Mutex<HashMap<PathBuf, Arc<HashEntry>>>,
    /// Hashes computed (not served from the cache), for tests.
    computed: std::sync::atomic::AtomicUsize,
}

/// One file's hash for one (mtime, size); a file that changes gets a new
/// entry.
struct HashEntry {
    key: (SystemTime, u64),
    hash: tokio::sync::OnceCell<String>,
}

impl HashCache {
    pub(crate) async fn sha256(&self, path: &Path) -> Result<(String, u64), TaskError> {
        let meta = tokio::fs::metadata(path)
            .await
            .map_err(|e| TaskError::Failed(format!("{}: {e}", path.display())))?;
        if !meta.is_file() {
            return Err(TaskError::Failed(format!(
                "{}: not a regular file",
                path.display()
            )));
        }
        let key = (
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            meta.len(),
        );
        let entry = {
            let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
            let e = m.entry(path.to_path_buf()).or_insert_with(|| {
                Arc::new(HashEntry {
                    key,
                    hash: tokio::sync::OnceCell::new(),
                })
            });
            if e.key != key {
                *e = Arc::new(HashEntry {
                    key,
                    hash: tokio::sync::OnceCell::new(),
                });
            }
            e.clone()
        };
        // A failed hash leaves the cell empty: the next caller tries again.
        let h = entry
            .hash
            .get_or_try_init(|| async {
                self.computed.fetch_add(1, Ordering::Relaxed);
                let p = path.to_path_buf();
                tokio::task::spawn_blocking(move || crate::transport::sha256_file(&p))
                    .await
                    .map_err(|e| TaskError::Failed(format!("hashing {}: {e}", path.display())))?
                    .map_err(|e| TaskError::Failed(format!("hashing {}: {e}", path.display())))
            })
            .await?;
        Ok((h.clone(), key.1))
    }
}

pub(crate) fn sha256_bytes(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// `user` or `user:group`.
pub(crate) fn owner_matches(want: &str, stat: &FileStat) -> bool {
    match want.split_once(':') {
        Some((u, g)) => (u.is_empty() || u == stat.owner) && (g.is_empty() || g == stat.group),
        None => want == stat.owner,
    }
}

/// Desired content of a file.
#[derive(Clone)]
pub(crate) struct Content {
    pub source: PutSource,
    pub sha256: String,
    pub size: u64,
}

impl Content {
    pub(crate) fn bytes(b: Vec<u8>) -> Self {
        Content {
            sha256: sha256_bytes(&b),
            size: b.len() as u64,
            source: PutSource::Bytes(Arc::new(b)),
        }
    }

    /// Text of the new content, for diffs, when it is small text in memory.
    fn text(&self) -> Option<&str> {
        match &self.source {
            PutSource::Bytes(b) if b.len() <= MAX_DIFF_BYTES => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

const MAX_DIFF_BYTES: usize = 512 * 1024;

/// A prepared write: content (when it differs) and the attributes to set.
pub(crate) struct FileWrite {
    pub path: String,
    /// `None`: content is right, only mode / owner change.
    pub content: Option<Content>,
    pub mode: Option<u32>,
    pub owner: Option<String>,
}

/// Check `path` against the desired content / mode / owner.
pub(crate) async fn check_file(
    cx: &Cx<'_>,
    path: &str,
    content: Option<Content>,
    mode: Option<u32>,
    owner: Option<&str>,
) -> Result<Option<Change>, TaskError> {
    let stat = cx.stats.get(cx.transport, path).await?;
    if let Some(s) = &stat {
        if s.kind == FileKind::Directory {
            return Err(TaskError::Failed(format!("{path} is a directory")));
        }
    }
    let content_differs = match (&stat, &content) {
        (None, _) => true,
        (Some(s), Some(c)) => s.sha256.as_deref() != Some(c.sha256.as_str()),
        (Some(_), None) => false,
    };
    let mode_differs = match (&stat, mode) {
        (Some(s), Some(m)) => s.mode != m,
        _ => false,
    };
    let owner_differs = match (&stat, owner) {
        (Some(s), Some(o)) => !owner_matches(o, s),
        _ => false,
    };
    if !content_differs && !mode_differs && !owner_differs {
        return Ok(None);
    }
    let content = if content_differs {
        Some(content.unwrap_or_else(|| Content::bytes(Vec::new())))
    } else {
        None
    };
    let mut what = Vec::new();
    if content_differs {
        what.push(if stat.is_none() { "create" } else { "content" });
    }
    if mode_differs {
        what.push("mode");
    }
    if owner_differs {
        what.push("owner");
    }
    let summary = format!("{path}: {}", what.join(", "));
    let diff = match (&content, cx.want_diff) {
        (Some(c), true) => Some(file_diff(cx, path, stat.as_ref(), c, mode).await?),
        _ => None,
    };
    Ok(Some(Change {
        summary,
        diff,
        pending: Pending::File(Box::new(FileWrite {
            path: path.to_string(),
            content,
            mode,
            owner: owner.map(str::to_string),
        })),
    }))
}

async fn file_diff(
    cx: &Cx<'_>,
    path: &str,
    stat: Option<&FileStat>,
    new: &Content,
    mode: Option<u32>,
) -> Result<String, TaskError> {
    // Keys, tokens and kubeconfigs live in files only their owner may read;
    // their content never goes into events or logs.
    let private = |m: u32| m & 0o077 == 0;
    if mode.is_some_and(private) || stat.is_some_and(|s| private(s.mode)) {
        return Ok(format!(
            "{path}: content differs (diff hidden: private file)\n"
        ));
    }
    let Some(new_text) = new.text() else {
        return Ok(format!(
            "{path}: binary content differs ({} bytes)\n",
            new.size
        ));
    };
    let old_text = match stat {
        None => String::new(),
        Some(s) if s.size as usize > MAX_DIFF_BYTES => {
            return Ok(format!("{path}: content differs (too large to diff)\n"))
        }
        Some(_) => {
            let bytes = cx.transport.fetch(path).await?;
            match String::from_utf8(bytes) {
                Ok(s) => s,
                Err(_) => return Ok(format!("{path}: binary content differs\n")),
            }
        }
    };
    Ok(unified_diff(path, &old_text, new_text))
}

pub(crate) fn unified_diff(path: &str, old: &str, new: &str) -> String {
    similar::TextDiff::from_lines(old, new)
        .unified_diff()
        .context_radius(3)
        .header(&format!("{path} (current)"), &format!("{path} (new)"))
        .to_string()
}

/// Carry out a [`FileWrite`] and keep the stat cache true.
pub(crate) async fn apply_write(cx: &Cx<'_>, w: &FileWrite) -> Result<(), TaskError> {
    match &w.content {
        Some(c) => {
            cx.transport
                .put(c.source.clone(), &w.path, w.mode, w.owner.as_deref())
                .await?;
            // The new state is known; no need to stat again.
            let prev = cx.stats.get(cx.transport, &w.path).await.ok().flatten();
            cx.stats.set(
                &w.path,
                Some(FileStat {
                    kind: FileKind::File,
                    mode: w.mode.or(prev.as_ref().map(|p| p.mode)).unwrap_or(0o644),
                    owner: owner_part(w.owner.as_deref(), prev.as_ref().map(|p| p.owner.as_str())),
                    group: group_part(w.owner.as_deref(), prev.as_ref().map(|p| p.group.as_str())),
                    size: c.size,
                    sha256: Some(c.sha256.clone()),
                }),
            );
            if is_unit_file(&w.path) {
                cx.host.daemon_reload_pending.store(true, Ordering::SeqCst);
            }
        }
        None => {
            let mut script = String::new();
            if let Some(m) = w.mode {
                script.push_str(&format!("chmod {:o} -- {} && ", m, shell_quote(&w.path)));
            }
            if let Some(o) = &w.owner {
                script.push_str(&format!(
                    "chown -- {} {} && ",
                    shell_quote(o),
                    shell_quote(&w.path)
                ));
            }
            script.push_str("true");
            super::run_checked(cx, &script, &format!("setting mode/owner of {}", w.path)).await?;
            // Owner names may resolve differently (uid vs name); re-stat.
            if let Ok(mut fresh) = cx.transport.stat_many(std::slice::from_ref(&w.path)).await {
                cx.stats.set(&w.path, fresh.remove(&w.path).flatten());
            }
        }
    }
    Ok(())
}

fn owner_part(want: Option<&str>, prev: Option<&str>) -> String {
    want.map(|w| w.split(':').next().unwrap_or(w).to_string())
        .or(prev.map(str::to_string))
        .unwrap_or_default()
}

fn group_part(want: Option<&str>, prev: Option<&str>) -> String {
    want.and_then(|w| w.split_once(':').map(|(_, g)| g.to_string()))
        .or(prev.map(str::to_string))
        .unwrap_or_default()
}

/// Writing one of these means systemd must re-read its units.
pub(crate) fn is_unit_file(path: &str) -> bool {
    path.contains("/systemd/system/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_callers_share_one_hash() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("big");
        std::fs::write(&f, vec![7u8; 8 << 20]).unwrap();
        let cache = Arc::new(HashCache::default());
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let (c, f) = (cache.clone(), f.clone());
                tokio::spawn(async move { c.sha256(&f).await.unwrap() })
            })
            .collect();
        let mut hashes = Vec::new();
        for t in tasks {
            hashes.push(t.await.unwrap());
        }
        assert!(hashes.iter().all(|h| *h == hashes[0]));
        assert_eq!(hashes[0].1, 8 << 20);
        assert_eq!(cache.computed.load(Ordering::Relaxed), 1, "hashed once");
        // A changed file is hashed again.
        std::fs::write(&f, b"new").unwrap();
        let (h, len) = cache.sha256(&f).await.unwrap();
        assert_eq!(len, 3);
        assert_eq!(h, sha256_bytes(b"new"));
        assert_eq!(cache.computed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn owner_forms() {
        let s = FileStat {
            kind: FileKind::File,
            mode: 0o644,
            owner: "root".into(),
            group: "adm".into(),
            size: 0,
            sha256: None,
        };
        assert!(owner_matches("root", &s));
        assert!(owner_matches("root:adm", &s));
        assert!(!owner_matches("root:root", &s));
        assert!(owner_matches(":adm", &s));
    }

    #[test]
    fn diff_marks_changed_lines() {
        let d = unified_diff("/etc/x", "a\nb\n", "a\nc\n");
        assert!(d.contains("-b\n") && d.contains("+c\n"), "{d}");
    }
}
