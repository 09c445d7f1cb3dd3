//! Small filesystem helpers: files with explicit modes, atomic replace,
//! advisory locks, and the mount table.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::{LabError, Result};

/// Creates `path` (and parents) and sets its mode exactly (umask ignored).
/// Overlay upper dirs take their metadata from here, so modes matter.
pub fn mkdir_mode(path: &Path, mode: u32) -> Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .map_err(|e| LabError::io(path, e))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| LabError::io(path, e))
}

/// Writes `data` to `path` with `mode`, replacing it atomically (temp file +
/// rename), so a reader never sees half a file and a crash never leaves one.
pub fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| LabError::io(&tmp, e))?;
    // The mode given to open() is filtered by the umask; set it exactly.
    f.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| LabError::io(&tmp, e))?;
    f.write_all(data).map_err(|e| LabError::io(&tmp, e))?;
    f.sync_all().map_err(|e| LabError::io(&tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| LabError::io(path, e))
}

pub fn read_to_string(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| LabError::io(path, e))
}

/// Removes a path whether it is a file, a symlink or missing.
pub fn remove_file_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(LabError::io(path, e)),
        _ => Ok(()),
    }
}

/// An exclusive `flock` held until dropped. The lock file itself is never
/// deleted: unlinking a lock file lets two holders lock different inodes.
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    pub fn acquire(path: &Path, timeout: Duration) -> Result<FileLock> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(|e| LabError::io(dir, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| LabError::io(path, e))?;
        let deadline = Instant::now() + timeout;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is shared.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
            if rc == 0 {
                return Ok(FileLock { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(LabError::io(path, err));
            }
            if Instant::now() >= deadline {
                return Err(LabError::LockTimeout {
                    path: path.to_path_buf(),
                    secs: timeout.as_secs(),
                });
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Mount points currently at or below `dir`, deepest first (the order in
/// which they can be unmounted).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape_mount_path)
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as octal `\NNN`.
fn unescape_mount_path(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts every mount at or below `dir`, deepest first; a busy mount is
/// detached lazily so teardown always makes progress.
pub fn unmount_all_under(dir: &Path) -> Vec<String> {
    let mut failures = Vec::new();
    for m in mounts_under(dir) {
        if let Err(e) = unmount(&m) {
            failures.push(format!("umount {}: {e}", m.display()));
        }
    }
    failures
}

pub fn unmount(path: &Path) -> std::io::Result<()> {
    let c = cstring(path)?;
    // SAFETY: c is a valid NUL-terminated path for the duration of the call.
    if unsafe { libc::umount2(c.as_ptr(), 0) } == 0 {
        return Ok(());
    }
    // SAFETY: as above.
    if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } == 0 {
        return Ok(());
    }
    Err(std::io::Error::last_os_error())
}

pub fn cstring(path: &Path) -> std::io::Result<std::ffi::CString> {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Deletes `dir` recursively, but only once nothing is mounted below it:
/// remove_dir_all would otherwise walk into a still-mounted tree.
pub fn remove_tree_unmounted(dir: &Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let failures = unmount_all_under(dir);
    let left = mounts_under(dir);
    if !left.is_empty() {
        return Err(LabError::Leftovers {
            name: dir.display().to_string(),
            leftovers: left
                .iter()
                .map(|m| format!("mount {}", m.display()))
                .chain(failures)
                .collect(),
        });
    }
    fs::remove_dir_all(dir).map_err(|e| LabError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn write_file_sets_exact_mode_and_content() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("key");
        write_file(&p, b"secret", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"secret");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        write_file(&p, b"new", 0o644).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o644);
        // no temp file is left beside it
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn mkdir_mode_ignores_umask() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a/b");
        mkdir_mode(&p, 0o700).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn lock_is_exclusive_until_dropped() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("l.lock");
        let held = FileLock::acquire(&p, Duration::from_secs(1)).unwrap();
        let err = FileLock::acquire(&p, Duration::from_millis(200)).unwrap_err();
        assert!(matches!(err, LabError::LockTimeout { .. }));
        drop(held);
        FileLock::acquire(&p, Duration::from_secs(1)).unwrap();
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b"), "/a b");
        assert_eq!(unescape_mount_path(r"/plain"), "/plain");
    }

    #[test]
    fn mounts_under_sees_proc() {
        assert_eq!(
            mounts_under(Path::new("/proc")).last(),
            Some(&PathBuf::from("/proc"))
        );
    }
}
