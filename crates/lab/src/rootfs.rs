//! The shared, read-only root filesystem every machine overlays: built once
//! with debootstrap and cached under a name derived from what is in it.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::cmd;
use crate::error::{LabError, Result};
use crate::fsutil::{self, FileLock};

/// Debian release of the machines.
pub const SUITE: &str = "bookworm";

/// What a stock host has before ezctl touches it. Nothing that ezctl itself
/// installs (etcd, containerd, nginx, …) belongs here: the roles must bring
/// those, or tests would pass against a host that real users never have.
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "procps",
    "ca-certificates",
    "python3",
    "sudo",
    "kmod",
    "conntrack",
    "ipset",
    "socat",
    "iptables",
    "libseccomp2",
    "libpcre2-8-0",
    "libssl3",
    "zlib1g",
    "curl",
    "less",
    // Shared libraries a stock server has or gets with its base system; the
    // bundle's keepalived (ex-lb) links against them.
    "libglib2.0-0",
    "libmnl0",
    "libnftnl11",
    "libnl-3-200",
    "libnl-genl-3-200",
    "libsnmp40",
];

/// Bumped whenever [`prepare`] changes what it writes, so old caches are not
/// reused with a different preparation.
const PREPARE_VERSION: u32 = 3;

/// File inside a finished rootfs naming its cache key; its presence marks the
/// rootfs as complete.
const MARKER: &str = "etc/ezlab-rootfs";

/// Short hash of suite + package list (+ preparation version).
pub fn cache_key() -> String {
    let mut h = Sha256::new();
    h.update(SUITE.as_bytes());
    h.update(b"\n");
    h.update(PACKAGES.join(",").as_bytes());
    h.update(format!("\nprepare-v{PREPARE_VERSION}").as_bytes());
    hex::encode(&h.finalize()[..8])
}

/// Path of the cached rootfs for the current package list.
pub fn cached_path(cache_dir: &Path) -> PathBuf {
    cache_dir.join(format!("rootfs-{}", cache_key()))
}

/// Returns the cached rootfs, building it first when it is missing. The build
/// happens in a temporary directory renamed into place at the end, so a killed
/// build never leaves something that looks finished.
pub fn ensure(cache_dir: &Path, mirror: Option<&str>, progress: &dyn Fn(&str)) -> Result<PathBuf> {
    let target = cached_path(cache_dir);
    if target.join(MARKER).exists() {
        return Ok(target);
    }
    fs::create_dir_all(cache_dir).map_err(|e| LabError::io(cache_dir, e))?;
    // Another process may be building the same rootfs: wait for it.
    let _lock = FileLock::acquire(&cache_dir.join(".build.lock"), Duration::from_secs(1800))?;
    if target.join(MARKER).exists() {
        return Ok(target);
    }
    remove_stale_builds(cache_dir)?;
    let mirror = match mirror {
        Some(m) => m.to_string(),
        None => find_mirror(SUITE)?,
    };
    let tmp = cache_dir.join(format!(
        ".tmp-rootfs-{}-{}",
        cache_key(),
        std::process::id()
    ));
    let log = cache_dir.join(format!("debootstrap-{}.log", cache_key()));
    progress(&format!(
        "building rootfs {} from {mirror} (log: {})",
        target.display(),
        log.display()
    ));
    let result = debootstrap(&tmp, &mirror, &log).and_then(|()| prepare(&tmp));
    if let Err(e) = result {
        let _ = fsutil::remove_tree_unmounted(&tmp);
        return Err(e);
    }
    if target.exists() {
        // An unfinished directory under the final name (older code, manual
        // copy): never overlay it.
        fsutil::remove_tree_unmounted(&target)?;
    }
    fs::rename(&tmp, &target).map_err(|e| LabError::io(&target, e))?;
    Ok(target)
}

/// Temp dirs of builds that were killed. Called with the build lock held, so
/// none of them is in use. debootstrap mounts /proc and /sys inside its
/// target: those are unmounted before anything is deleted.
fn remove_stale_builds(cache_dir: &Path) -> Result<()> {
    let entries = fs::read_dir(cache_dir).map_err(|e| LabError::io(cache_dir, e))?;
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(".tmp-rootfs-")
        {
            fsutil::remove_tree_unmounted(&entry.path())?;
        }
    }
    Ok(())
}

fn debootstrap(dir: &Path, mirror: &str, log: &Path) -> Result<()> {
    fsutil::write_file(log, b"", 0o644)?;
    let status = cmd::run_logged(
        Command::new("debootstrap")
            .arg("--variant=minbase")
            .arg(format!("--include={}", PACKAGES.join(",")))
            .arg("--components=main")
            .arg(SUITE)
            .arg(dir)
            .arg(mirror),
        log,
        Duration::from_secs(1800),
    )?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        return Err(LabError::Command {
            command: format!("debootstrap {SUITE} {mirror} (log: {})", log.display()),
            status: status.to_string(),
            stderr: cmd::tail(&text, 1500),
        });
    }
    Ok(())
}

/// Makes the image safe to clone: nothing machine-specific may be baked in,
/// and nothing periodic should wake fifty idle machines at once.
pub fn prepare(root: &Path) -> Result<()> {
    // Empty machine-id: each machine gets its own in its overlay upper dir.
    fsutil::write_file(&root.join("etc/machine-id"), b"", 0o444)?;
    let dbus_id = root.join("var/lib/dbus/machine-id");
    fsutil::mkdir_mode(&root.join("var/lib/dbus"), 0o755)?;
    fsutil::remove_file_if_exists(&dbus_id)?;
    symlink("/etc/machine-id", &dbus_id).map_err(|e| LabError::io(&dbus_id, e))?;

    // Host keys are per machine (pre-generated by the lab); remove the ones
    // openssh-server's postinst made in the image.
    let ssh_dir = root.join("etc/ssh");
    for entry in fs::read_dir(&ssh_dir)
        .map_err(|e| LabError::io(&ssh_dir, e))?
        .flatten()
    {
        if entry.file_name().to_string_lossy().starts_with("ssh_host_") {
            fsutil::remove_file_if_exists(&entry.path())?;
        }
    }
    fsutil::mkdir_mode(&root.join("etc/ssh/sshd_config.d"), 0o755)?;
    fsutil::write_file(
        &root.join("etc/ssh/sshd_config.d/ezlab.conf"),
        SSHD_CONF.as_bytes(),
        0o644,
    )?;
    fsutil::mkdir_mode(&root.join("etc/systemd/system/ssh.service.d"), 0o755)?;
    fsutil::write_file(
        &root.join("etc/systemd/system/ssh.service.d/ezlab.conf"),
        SSH_DROPIN.as_bytes(),
        0o644,
    )?;

    // Volatile, small journal: machines are disposable and many.
    fsutil::mkdir_mode(&root.join("etc/systemd/journald.conf.d"), 0o755)?;
    fsutil::write_file(
        &root.join("etc/systemd/journald.conf.d/ezlab.conf"),
        b"[Journal]\nStorage=volatile\nRuntimeMaxUse=16M\n",
        0o644,
    )?;

    mask_units(root)?;
    fsutil::remove_file_if_exists(&root.join("etc/hostname"))?;
    fsutil::write_file(
        &root.join(MARKER),
        format!("{}\n", cache_key()).as_bytes(),
        0o644,
    )
}

const SSHD_CONF: &str = "\
# ezlab: one pre-generated ed25519 host key per machine, key-only root login.
HostKey /etc/ssh/ssh_host_ed25519_key
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
";

/// A machine booted without a pre-generated key (not how the lab starts
/// them) still gets sshd running.
const SSH_DROPIN: &str = "\
[Service]
ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || ssh-keygen -q -t ed25519 -N \"\" -f /etc/ssh/ssh_host_ed25519_key'
";

/// Units that only cost CPU or fail in a container: every timer, e2scrub,
/// pstore, and the getty on the passive console.
fn mask_units(root: &Path) -> Result<()> {
    let etc_units = root.join("etc/systemd/system");
    fsutil::mkdir_mode(&etc_units, 0o755)?;
    let mut masked: Vec<String> = [
        "e2scrub_reap.service",
        "systemd-pstore.service",
        "console-getty.service",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for dir in ["usr/lib/systemd/system", "lib/systemd/system"] {
        if let Ok(entries) = fs::read_dir(root.join(dir)) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".timer") && !masked.contains(&name) {
                    masked.push(name);
                }
            }
        }
    }
    let wants = etc_units.join("timers.target.wants");
    if wants.exists() {
        fs::remove_dir_all(&wants).map_err(|e| LabError::io(&wants, e))?;
    }
    for name in masked {
        let link = etc_units.join(&name);
        fsutil::remove_file_if_exists(&link)?;
        symlink("/dev/null", &link).map_err(|e| LabError::io(&link, e))?;
    }
    Ok(())
}

/// The Debian mirror this machine already uses for `suite`, read from the
/// apt sources (one-line and deb822 formats).
pub fn find_mirror(suite: &str) -> Result<String> {
    if let Ok(m) = std::env::var("EZLAB_MIRROR") {
        if !m.trim().is_empty() {
            return Ok(m.trim().to_string());
        }
    }
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(entries) = fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        more.sort();
        files.extend(more);
    }
    for f in files {
        let Ok(text) = fs::read_to_string(&f) else {
            continue;
        };
        let found = if f.extension().is_some_and(|e| e == "sources") {
            mirror_in_deb822(&text, suite)
        } else {
            mirror_in_one_line(&text, suite)
        };
        if let Some(m) = found {
            return Ok(m);
        }
    }
    Err(LabError::NoMirror {
        suite: suite.to_string(),
    })
}

/// `deb [opts] URI SUITE COMPONENTS…`
fn mirror_in_one_line(text: &str, suite: &str) -> Option<String> {
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        if words.next() != Some("deb") {
            continue;
        }
        let mut rest: Vec<&str> = words.collect();
        if rest.first().is_some_and(|w| w.starts_with('[')) {
            // Options run until the word ending with ']'.
            let end = rest.iter().position(|w| w.ends_with(']'))?;
            rest.drain(..=end);
        }
        if rest.len() >= 2 && rest[1] == suite && rest[0].starts_with("http") {
            return Some(rest[0].to_string());
        }
    }
    None
}

/// Paragraphs of `Types:`, `URIs:`, `Suites:` fields.
fn mirror_in_deb822(text: &str, suite: &str) -> Option<String> {
    for para in text.split("\n\n") {
        let field = |name: &str| {
            para.lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_string())
                })
        };
        let (Some(types), Some(uris), Some(suites)) =
            (field("Types"), field("URIs"), field("Suites"))
        else {
            continue;
        };
        if types.split_whitespace().any(|t| t == "deb")
            && suites.split_whitespace().any(|s| s == suite)
        {
            if let Some(uri) = uris.split_whitespace().find(|u| u.starts_with("http")) {
                return Some(uri.to_string());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_key_depends_on_packages_and_is_stable() {
        assert_eq!(cache_key(), cache_key());
        assert_eq!(cache_key().len(), 16);
        assert!(PACKAGES.contains(&"openssh-server"));
        for forbidden in ["etcd", "containerd", "nginx", "runc", "kubelet"] {
            assert!(
                !PACKAGES.iter().any(|p| p.contains(forbidden)),
                "{forbidden} is installed by ezctl, not by the lab"
            );
        }
    }

    #[test]
    fn a_finished_rootfs_is_reused_without_building() {
        let d = tempfile::tempdir().unwrap();
        let target = cached_path(d.path());
        fs::create_dir_all(target.join("etc")).unwrap();
        fs::write(target.join(MARKER), cache_key()).unwrap();
        // A mirror that cannot work: building would fail.
        let got = ensure(d.path(), Some("http://127.0.0.1:9/none"), &|_| {}).unwrap();
        assert_eq!(got, target);
    }

    #[test]
    fn killed_builds_are_removed_and_finished_ones_kept() {
        let d = tempfile::tempdir().unwrap();
        let stale = d.path().join(".tmp-rootfs-abc-123/etc");
        fs::create_dir_all(&stale).unwrap();
        fs::create_dir_all(d.path().join("rootfs-abc/etc")).unwrap();
        remove_stale_builds(d.path()).unwrap();
        assert!(!d.path().join(".tmp-rootfs-abc-123").exists());
        assert!(d.path().join("rootfs-abc/etc").exists());
    }

    #[test]
    fn one_line_sources_pick_the_main_suite() {
        let text = "# comment\n\
            deb http://security.debian.org/debian-security bookworm-security main\n\
            deb [arch=amd64 signed-by=/x.gpg] http://ftp.example.org/debian bookworm main contrib\n";
        assert_eq!(
            mirror_in_one_line(text, "bookworm").as_deref(),
            Some("http://ftp.example.org/debian")
        );
        assert_eq!(
            mirror_in_one_line("deb-src http://x/debian bookworm main", "bookworm"),
            None
        );
    }

    #[test]
    fn deb822_sources_pick_the_main_suite() {
        let text = "Types: deb\n# http://snapshot.debian.org/archive/debian/2025\nURIs: http://deb.debian.org/debian\n\
            Suites: bookworm bookworm-updates\nComponents: main\n\n\
            Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n";
        assert_eq!(
            mirror_in_deb822(text, "bookworm").as_deref(),
            Some("http://deb.debian.org/debian")
        );
        assert_eq!(mirror_in_deb822(text, "trixie"), None);
    }

    #[test]
    fn prepare_strips_machine_identity() {
        let d = tempfile::tempdir().unwrap();
        let r = d.path();
        for dir in [
            "etc/ssh",
            "usr/lib/systemd/system",
            "etc/systemd/system/timers.target.wants",
        ] {
            fs::create_dir_all(r.join(dir)).unwrap();
        }
        fs::write(
            r.join("etc/machine-id"),
            "0123456789abcdef0123456789abcdef\n",
        )
        .unwrap();
        fs::write(r.join("etc/ssh/ssh_host_rsa_key"), "k").unwrap();
        fs::write(r.join("etc/hostname"), "builder").unwrap();
        fs::write(r.join("usr/lib/systemd/system/apt-daily.timer"), "").unwrap();
        prepare(r).unwrap();
        assert_eq!(fs::read(r.join("etc/machine-id")).unwrap(), b"");
        assert!(!r.join("etc/ssh/ssh_host_rsa_key").exists());
        assert!(!r.join("etc/hostname").exists());
        assert!(!r.join("etc/systemd/system/timers.target.wants").exists());
        assert_eq!(
            fs::read_link(r.join("etc/systemd/system/apt-daily.timer")).unwrap(),
            PathBuf::from("/dev/null")
        );
        assert_eq!(
            fs::read_link(r.join("var/lib/dbus/machine-id")).unwrap(),
            PathBuf::from("/etc/machine-id")
        );
        assert!(r.join(MARKER).exists());
    }
}
