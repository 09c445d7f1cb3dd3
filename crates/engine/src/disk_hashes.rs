//! The controller's file hashes on disk, so a second `ezctl` process does
//! not hash the bundle's binaries again (hundreds of MB, read whole by every
//! run before).
//!
//! Same rules as the hosts' cache (`transport/stat.rs`): an entry is keyed
//! by (device, inode, size, mtime, ctime) and answers only when the file's
//! mtime and ctime are both older than the clock read before it was hashed
//! (git's racy-entry rule: a file written twice within one tick of the
//! filesystem clock keeps its times). The clock is the mtime of a new file
//! in the cache's directory, the same coarse kernel clock that stamps the
//! files, unlike `SystemTime::now()`. That file becomes the next cache (a
//! temp file renamed over the old one), so readers see a whole file or the
//! previous one. The file is trusted whole or not at all; a missing,
//! unreadable or corrupt cache only means hashing again.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const HEADER: &str = "ezctl-hashes 1";

/// Most entries kept: the bundle is a few hundred files; the newest stay.
const MAX_ENTRIES: usize = 4096;

/// A file time, to the nanosecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp {
    sec: i64,
    nsec: u32,
}

impl Stamp {
    fn new(sec: i64, nsec: i64) -> Option<Stamp> {
        Some(Stamp {
            sec,
            nsec: u32::try_from(nsec).ok().filter(|n| *n < 1_000_000_000)?,
        })
    }

    /// `SEC.NNNNNNNNN`, as GNU `stat --printf %.9Y` prints it.
    fn parse(s: &str) -> Option<Stamp> {
        let (sec, nsec) = s.split_once('.')?;
        let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
        let unsigned = sec.strip_prefix('-').unwrap_or(sec);
        if !digits(unsigned) || !digits(nsec) || nsec.len() != 9 {
            return None;
        }
        Stamp::new(sec.parse().ok()?, nsec.parse().ok()?)
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{:09}", self.sec, self.nsec)
    }
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Key {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: Stamp,
    ctime: Stamp,
}

impl Key {
    /// `None` for times the kernel should never give (nanoseconds out of range).
    pub(crate) fn of(meta: &std::fs::Metadata) -> Option<Key> {
        Some(Key {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: Stamp::new(meta.mtime(), meta.mtime_nsec())?,
            ctime: Stamp::new(meta.ctime(), meta.ctime_nsec())?,
        })
    }

    /// Whether a file with this key, seen before `clock`, cannot change
    /// without its key changing.
    fn older_than(&self, clock: Stamp) -> bool {
        self.mtime < clock && self.ctime < clock
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    key: Key,
    /// The clock read before the file was hashed.
    clock: Stamp,
    sha256: String,
}

/// A clock reading, and the new file that carries it, which becomes the
/// next cache.
pub(crate) struct Clock {
    at: Stamp,
    file: tempfile::NamedTempFile,
}

/// The cache file at one path, loaded on first use and shared by the run.
pub(crate) struct DiskHashes {
    file: PathBuf,
    entries: Mutex<Option<BTreeMap<PathBuf, Entry>>>,
}

impl DiskHashes {
    pub(crate) fn new(file: PathBuf) -> Self {
        DiskHashes {
            file,
            entries: Mutex::new(None),
        }
    }

    fn read(&self) -> BTreeMap<PathBuf, Entry> {
        std::fs::read(&self.file)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|text| parse(&text))
            .unwrap_or_default()
    }

    /// The hash of the file at `path` with `key`, if the cache holds it.
    pub(crate) fn get(&self, path: &Path, key: &Key) -> Option<String> {
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entries = guard.get_or_insert_with(|| self.read());
        let e = entries.get(path)?;
        (e.key == *key && key.older_than(e.clock)).then(|| e.sha256.clone())
    }

    /// Read the clock before hashing. `None` when the cache's directory
    /// cannot be written: then nothing is stored.
    pub(crate) fn clock(&self) -> Option<Clock> {
        let dir = self.file.parent()?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .ok()?;
        let file = tempfile::Builder::new()
            .prefix(".file-hashes.")
            .tempfile_in(dir)
            .ok()?;
        let meta = file.as_file().metadata().ok()?;
        let at = Stamp::new(meta.mtime(), meta.mtime_nsec())?;
        Some(Clock { at, file })
    }

    /// Store the hash of `path`, whose `key` was read before `clock`.
    /// Returns whether it was stored: a racy file is not. The entries on
    /// disk are merged in, so concurrent processes mostly keep each
    /// other's; when two write at once, the last one wins.
    pub(crate) fn put(
        &self,
        path: &Path,
        key: Key,
        clock: Clock,
        sha256: &str,
    ) -> std::io::Result<bool> {
        let storable = path.to_str().is_some_and(|p| !p.contains('\n'));
        if !storable || !key.older_than(clock.at) {
            return Ok(false);
        }
        let mut guard = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut merged = self.read();
        merged.extend(guard.take().unwrap_or_default());
        merged.insert(
            path.to_path_buf(),
            Entry {
                key,
                clock: clock.at,
                sha256: sha256.to_string(),
            },
        );
        if merged.len() > MAX_ENTRIES {
            let mut clocks: Vec<Stamp> = merged.values().map(|e| e.clock).collect();
            clocks.sort_unstable_by(|a, b| b.cmp(a));
            let oldest_kept = clocks[MAX_ENTRIES - 1];
            merged.retain(|_, e| e.clock >= oldest_kept);
        }
        let text = render(&merged);
        *guard = Some(merged);
        let Clock { mut file, .. } = clock;
        file.write_all(text.as_bytes())?;
        file.persist(&self.file).map_err(|e| e.error)?;
        Ok(true)
    }
}

/// The whole file, or `None` when any part of it is wrong.
fn parse(text: &str) -> Option<BTreeMap<PathBuf, Entry>> {
    let mut lines = text.split_inclusive('\n');
    if lines.next()? != format!("{HEADER}\n") {
        return None;
    }
    let mut entries = BTreeMap::new();
    for line in lines.by_ref() {
        let line = line.strip_suffix('\n')?;
        if let Some(count) = line.strip_prefix("#end ") {
            return (count.parse::<usize>().ok()? == entries.len() && lines.next().is_none())
                .then_some(entries);
        }
        let f: Vec<&str> = line.splitn(8, '\t').collect();
        let [dev, ino, size, mtime, ctime, clock, sha256, path] = f[..] else {
            return None;
        };
        let hex = sha256.len() == 64
            && sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if !hex || path.is_empty() {
            return None;
        }
        let entry = Entry {
            key: Key {
                dev: dev.parse().ok()?,
                ino: ino.parse().ok()?,
                size: size.parse().ok()?,
                mtime: Stamp::parse(mtime)?,
                ctime: Stamp::parse(ctime)?,
            },
            clock: Stamp::parse(clock)?,
            sha256: sha256.to_string(),
        };
        if entries.insert(PathBuf::from(path), entry).is_some() {
            return None;
        }
    }
    None
}

fn render(entries: &BTreeMap<PathBuf, Entry>) -> String {
    let mut s = format!("{HEADER}\n");
    let mut n = 0;
    for (path, e) in entries {
        let Some(p) = path.to_str() else { continue };
        let k = &e.key;
        s.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{p}\n",
            k.dev, k.ino, k.size, k.mtime, k.ctime, e.clock, e.sha256
        ));
        n += 1;
    }
    s.push_str(&format!("#end {n}\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(s: &str) -> Stamp {
        Stamp::parse(s).unwrap()
    }

    #[test]
    fn stamps_parse_compare_and_print() {
        assert!(stamp("100.000000004") < stamp("100.000000005"));
        assert!(stamp("99.999999999") < stamp("100.000000000"));
        assert!(stamp("-1.500000000") < stamp("0.000000000"));
        assert_eq!(stamp("7.000000042").to_string(), "7.000000042");
        for bad in [
            "1.5",
            "1",
            "a.000000000",
            "1.0000000001",
            ".000000000",
            "1.-00000000",
        ] {
            assert_eq!(Stamp::parse(bad), None, "{bad}");
        }
    }

    /// The racy rule at its edge, with made-up times (a real file cannot be
    /// placed in a given tick).
    #[test]
    fn an_entry_answers_only_when_older_than_its_clock() {
        let key = |mt: &str, ct: &str| Key {
            dev: 1,
            ino: 2,
            size: 3,
            mtime: stamp(mt),
            ctime: stamp(ct),
        };
        let k = key("100.000000000", "100.000000004");
        assert!(k.older_than(stamp("100.000000005")));
        assert!(!k.older_than(stamp("100.000000004")), "ctime == clock");
        assert!(!key("100.000000005", "100.000000004").older_than(stamp("100.000000005")));
        assert!(key("100.999999999", "100.999999999").older_than(stamp("101.000000000")));
        // And `get` applies it to what it reads.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c");
        let h = "ab".repeat(32);
        for (clock, answers) in [("100.000000005", true), ("100.000000004", false)] {
            std::fs::write(
                &file,
                format!(
                    "{HEADER}\n2\t3\t4\t100.000000000\t100.000000004\t{clock}\t{h}\t/f\n#end 1\n"
                ),
            )
            .unwrap();
            let mut k = key("100.000000000", "100.000000004");
            (k.dev, k.ino, k.size) = (2, 3, 4);
            let got = DiskHashes::new(file.clone()).get(Path::new("/f"), &k);
            assert_eq!(got.is_some(), answers, "clock {clock}");
        }
    }

    #[test]
    fn only_a_whole_well_formed_file_is_trusted() {
        let h = "ab".repeat(32);
        let line = format!("1\t2\t3\t4.000000000\t5.000000000\t6.000000000\t{h}\t/a b\tc");
        let good = format!("{HEADER}\n{line}\n#end 1\n");
        let m = parse(&good).unwrap();
        assert_eq!(m[Path::new("/a b\tc")].sha256, h);
        assert_eq!(render(&m), good);
        for bad in [
            format!("{HEADER}\n{line}\n"),
            format!("{HEADER}\n{line}\n#end 1"),
            format!("{HEADER}\n{line}\n#end 2\n"),
            format!("{HEADER}\n{line}\n{line}\n#end 2\n"),
            format!("{HEADER}\n{line}\n#end 1\nmore\n"),
            format!("{HEADER}\nx\n{line}\n#end 1\n"),
            format!("ezctl-hashes 2\n{line}\n#end 1\n"),
            format!(
                "{HEADER}\n{}\n#end 1\n",
                line.replace(&h, &h.to_uppercase())
            ),
            format!("{HEADER}\n{}\n#end 1\n", line.replace("4.000000000", "4.0")),
            String::new(),
        ] {
            assert_eq!(parse(&bad), None, "{bad:?}");
        }
    }
}
