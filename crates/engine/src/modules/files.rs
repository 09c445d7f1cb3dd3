//! What the file-writing modules share: the unit's stat cache, the
//! controller-side hash cache, and "make this path hold this content with this
//! mode and owner" as a check + apply pair.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use super::{Change, Cx, Pending};
use crate::disk_hashes::{DiskHashes, Key};
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
/// With a file on disk ([`HashCache::with_disk`]) the hashes outlive the
/// process, so the next run does not read unchanged binaries at all.
#[derive(Default)]
pub(crate) struct HashCache {
    map: Mutex<HashMap<PathBuf, Arc<HashEntry>>>,
    disk: Option<Arc<DiskHashes>>,
    /// Hashes computed (not served from a cache), for tests.
    computed: std::sync::atomic::AtomicUsize,
}

/// One file's hash for one version of it (device, inode, size, times); a
/// file that changes gets a new entry.
struct HashEntry {
    key: Key,
    hash: tokio::sync::OnceCell<String>,
}

impl HashCache {
    /// Also keep the hashes in `file` (see `disk_hashes.rs`).
    pub(crate) fn with_disk(file: PathBuf) -> Self {
        HashCache {
            disk: Some(Arc::new(DiskHashes::new(file))),
            ..Self::default()
        }
    }

    pub(crate) async fn sha256(&self, path: &Path) -> Result<(String, u64), TaskError> {
        let failed =
            |e: &dyn std::fmt::Display| TaskError::Failed(format!("{}: {e}", path.display()));
        let meta = tokio::fs::metadata(path).await.map_err(|e| failed(&e))?;
        if !meta.is_file() {
            return Err(failed(&"not a regular file"));
        }
        let key = Key::of(&meta).ok_or_else(|| failed(&"file times out of range"))?;
        let entry = {
            let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
            let e = m.entry(path.to_path_buf()).or_insert_with(|| {
                Arc::new(HashEntry {
                    key: key.clone(),
                    hash: tokio::sync::OnceCell::new(),
                })
            });
            if e.key != key {
                *e = Arc::new(HashEntry {
                    key: key.clone(),
                    hash: tokio::sync::OnceCell::new(),
                });
            }
            e.clone()
        };
        // A failed hash leaves the cell empty: the next caller tries again.
        let h = entry
            .hash
            .get_or_try_init(|| async {
                let (p, disk) = (path.to_path_buf(), self.disk.clone());
                let (h, read) = tokio::task::spawn_blocking(move || {
                    if let Some(h) = disk.as_ref().and_then(|d| d.get(&p, &key)) {
                        return Ok((h, false));
                    }
                    // Read before the file, or a change made while it is
                    // read could look older than the hash.
                    let clock = disk.as_ref().and_then(|d| d.clock());
                    let h = crate::transport::sha256_file(&p)?;
                    if let (Some(d), Some(c)) = (&disk, clock) {
                        // A cache that cannot be written only costs the
                        // next run this hash.
                        let _ = d.put(&p, key, c, &h);
                    }
                    Ok::<_, std::io::Error>((h, true))
                })
                .await
                .map_err(|e| TaskError::Failed(format!("hashing {}: {e}", path.display())))?
                .map_err(|e| TaskError::Failed(format!("hashing {}: {e}", path.display())))?;
                if read {
                    self.computed.fetch_add(1, Ordering::Relaxed);
                }
                Ok::<_, TaskError>(h)
            })
            .await?;
        Ok((h.clone(), meta.len()))
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
    use std::time::SystemTime;

    /// The filesystem clock moves in ticks (a jiffy, at most 10 ms): a file
    /// written in the tick its hash starts is racy and, rightly, not kept.
    /// Tests that need an entry kept wait out the tick.
    async fn next_tick() {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }

    /// A new `HashCache` on the same file stands for the next `ezctl`
    /// process: how many files it read, and the answer.
    async fn next_process(cache: &Path, f: &Path) -> (usize, String) {
        let c = HashCache::with_disk(cache.to_path_buf());
        let (h, _) = c.sha256(f).await.unwrap();
        (c.computed.load(Ordering::Relaxed), h)
    }

    fn set_mtime(p: &Path, t: SystemTime) {
        std::fs::File::options()
            .write(true)
            .open(p)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[tokio::test]
    async fn a_second_process_does_not_hash_an_unchanged_binary() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("home/.cache/ezctl/file-hashes");
        let bin = dir.path().join("kubelet");
        std::fs::write(&bin, vec![3u8; 1 << 20]).unwrap();
        let want = sha256_bytes(&vec![3u8; 1 << 20]);
        next_tick().await;
        assert_eq!(next_process(&cache, &bin).await, (1, want.clone()));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(
            (mode(&cache), mode(cache.parent().unwrap())),
            (0o600, 0o700)
        );
        assert_eq!(next_process(&cache, &bin).await, (0, want.clone()));
        // Several files: each process adds its own, none loses the others.
        let other = dir.path().join("kubectl");
        std::fs::write(&other, b"kubectl").unwrap();
        next_tick().await;
        assert_eq!(next_process(&cache, &other).await.0, 1);
        assert_eq!(next_process(&cache, &bin).await.0, 0);
        assert_eq!(next_process(&cache, &other).await.0, 0);
    }

    /// The key holds ctime and inode because an edit can keep size and
    /// mtime (`touch -d`, `cp -p`, `rsync -t`, a tar extract).
    #[tokio::test]
    async fn an_edited_binary_keeping_size_and_mtime_is_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("c/file-hashes");
        let bin = dir.path().join("etcd");
        let old = SystemTime::UNIX_EPOCH + std::time::Duration::new(1_500_000_000, 5);
        std::fs::write(&bin, b"version 1").unwrap();
        set_mtime(&bin, old);
        next_tick().await;
        assert_eq!(next_process(&cache, &bin).await.0, 1);
        assert_eq!(next_process(&cache, &bin).await.0, 0, "cached");
        // Same inode, size and mtime: only the ctime moved.
        std::fs::write(&bin, b"version 2").unwrap();
        set_mtime(&bin, old);
        assert_eq!(
            next_process(&cache, &bin).await,
            (1, sha256_bytes(b"version 2"))
        );
        // Replaced (a new inode) by a file of the same size and mtime.
        // (Kept now if that write was racy, then served from the cache.)
        next_tick().await;
        next_process(&cache, &bin).await;
        assert_eq!(next_process(&cache, &bin).await.0, 0, "cached");
        let new = dir.path().join("etcd.new");
        std::fs::write(&new, b"version 3").unwrap();
        set_mtime(&new, old);
        std::fs::rename(&new, &bin).unwrap();
        assert_eq!(
            next_process(&cache, &bin).await,
            (1, sha256_bytes(b"version 3"))
        );
    }

    /// A file whose times are not older than the clock read before hashing
    /// may change without its times moving: it is never kept.
    #[tokio::test]
    async fn a_racy_binary_is_hashed_by_every_process() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("c/file-hashes");
        let bin = dir.path().join("containerd");
        std::fs::write(&bin, b"racy").unwrap();
        set_mtime(
            &bin,
            SystemTime::now() + std::time::Duration::from_secs(3600),
        );
        next_tick().await;
        for _ in 0..3 {
            assert_eq!(next_process(&cache, &bin).await, (1, sha256_bytes(b"racy")));
        }
        assert!(!cache.exists(), "nothing was stored");
    }

    /// Whatever is at the cache's path, the answer is the file's real hash:
    /// the cache below claims a wrong hash under the file's right key, and
    /// is believed only when whole and well formed.
    #[tokio::test]
    async fn a_corrupt_or_missing_controller_cache_only_costs_hashing() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("c/file-hashes");
        let bin = dir.path().join("kube-proxy");
        std::fs::write(&bin, b"true content").unwrap();
        next_tick().await;
        let real = sha256_bytes(b"true content");
        assert_eq!(next_process(&cache, &bin).await, (1, real.clone()));
        let good = std::fs::read_to_string(&cache).unwrap();
        let lie = sha256_bytes(b"a lie");
        let lying = good.replace(&real, &lie);
        assert_ne!(good, lying);
        // The control: whole and well formed, the lie is believed.
        std::fs::write(&cache, &lying).unwrap();
        assert_eq!(next_process(&cache, &bin).await, (0, lie.clone()));
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("no footer", lying.replace("#end 1\n", "").into_bytes()),
            ("cut", lying.as_bytes()[..lying.len() - 3].to_vec()),
            (
                "wrong count",
                lying.replace("#end 1", "#end 2").into_bytes(),
            ),
            (
                "garbage line",
                lying.replace("#end 1", "garbage\n#end 1").into_bytes(),
            ),
            ("short hash", lying.replace(&lie, &lie[..63]).into_bytes()),
            (
                "no header",
                lying.replace("ezctl-hashes 1\n", "").into_bytes(),
            ),
            ("not UTF-8", [lying.as_bytes(), &[0xff]].concat()),
            ("empty", Vec::new()),
        ];
        for (what, bytes) in cases {
            std::fs::write(&cache, &bytes).unwrap();
            assert_eq!(
                next_process(&cache, &bin).await,
                (1, real.clone()),
                "{what}"
            );
            assert_eq!(
                next_process(&cache, &bin).await,
                (0, real.clone()),
                "{what}: healed"
            );
        }
        // Missing; a directory in its place; its directory a file.
        std::fs::remove_file(&cache).unwrap();
        assert_eq!(next_process(&cache, &bin).await, (1, real.clone()));
        std::fs::remove_file(&cache).unwrap();
        std::fs::create_dir(&cache).unwrap();
        assert_eq!(next_process(&cache, &bin).await, (1, real.clone()));
        assert_eq!(next_process(&cache, &bin).await, (1, real.clone()));
        let blocked = dir.path().join("a-file/file-hashes");
        std::fs::write(dir.path().join("a-file"), b"").unwrap();
        assert_eq!(next_process(&blocked, &bin).await, (1, real.clone()));
        let names: Vec<_> = std::fs::read_dir(cache.parent().unwrap())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
    }

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
