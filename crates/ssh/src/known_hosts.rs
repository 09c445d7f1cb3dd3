//! known_hosts reading (plain, `[host]:port`, hashed `|1|`, wildcards,
//! `@revoked`) and trust-on-first-use pinning.
//!
//! Our own reader rather than russh's: we need every file at once, the line
//! of the old key for the error message, `@revoked`, and the list of key
//! algorithms already known so the handshake asks for the same type (as
//! OpenSSH does) instead of tripping over a host that also has an RSA key.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use data_encoding::BASE64;
use hmac::{Hmac, KeyInit, Mac};
use russh::keys::ssh_key::PublicKey;
use russh::keys::{Algorithm, HashAlg};
use sha1::Sha1;

use crate::pattern;

/// The name OpenSSH records a host under: `addr`, or `[addr]:port` off port 22.
pub(crate) fn lookup_name(addr: &str, port: u16) -> String {
    if port == 22 {
        addr.to_string()
    } else {
        format!("[{addr}]:{port}")
    }
}

/// `SHA256:...`, the form `ssh-keygen -l` prints.
pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// One known_hosts line that applies to the host being checked.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub file: PathBuf,
    pub line: usize,
    pub revoked: bool,
    pub key: PublicKey,
}

/// Outcome of comparing the server's key with what we know.
#[derive(Debug)]
pub(crate) enum Verdict {
    Trusted,
    Unknown,
    /// Known under a different key. A host that only has a key of another
    /// type recorded also lands here: we ask for the recorded type first, so
    /// a server that no longer offers it has changed.
    Changed(Entry),
    Revoked(Entry),
}

/// The entries of all files that apply to one lookup name.
#[derive(Debug, Default)]
pub(crate) struct KnownHosts {
    entries: Vec<Entry>,
}

impl KnownHosts {
    /// Read every file (missing ones are simply empty). Unparsable lines,
    /// unknown key types and `@cert-authority` lines are skipped, as OpenSSH does.
    pub fn load(files: &[PathBuf], lookup: &str) -> std::io::Result<Self> {
        let mut entries = Vec::new();
        for file in files {
            let text = match std::fs::read_to_string(file) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for (idx, raw) in text.lines().enumerate() {
                if let Some((revoked, key)) = parse_line(raw, lookup) {
                    entries.push(Entry {
                        file: file.clone(),
                        line: idx + 1,
                        revoked,
                        key,
                    });
                }
            }
        }
        Ok(KnownHosts { entries })
    }

    /// Key algorithms recorded for this host, first-seen first, to put at the
    /// front of our host-key preference list.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut out: Vec<Algorithm> = Vec::new();
        for e in self.entries.iter().filter(|e| !e.revoked) {
            let alg = e.key.algorithm();
            if !out.contains(&alg) {
                out.push(alg);
            }
        }
        out
    }

    pub fn verdict(&self, key: &PublicKey) -> Verdict {
        let same = |e: &&Entry| e.key.key_data() == key.key_data();
        if let Some(e) = self.entries.iter().filter(|e| e.revoked).find(same) {
            return Verdict::Revoked(e.clone());
        }
        let valid: Vec<&Entry> = self.entries.iter().filter(|e| !e.revoked).collect();
        if valid.iter().any(same) {
            return Verdict::Trusted;
        }
        let same_alg = valid.iter().find(|e| e.key.algorithm() == key.algorithm());
        match same_alg.or(valid.first()) {
            Some(old) => Verdict::Changed((*old).clone()),
            None => Verdict::Unknown,
        }
    }
}

/// `Some((revoked, key))` when the line applies to `lookup`.
fn parse_line(raw: &str, lookup: &str) -> Option<(bool, PublicKey)> {
    let line = raw.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut hosts = fields.next()?;
    let mut revoked = false;
    if hosts.starts_with('@') {
        match hosts {
            "@revoked" => revoked = true,
            // Host certificates are not used by this tool.
            _ => return None,
        }
        hosts = fields.next()?;
    }
    let _key_type = fields.next()?;
    let b64 = fields.next()?;
    if !hosts_match(hosts, lookup) {
        return None;
    }
    let key = russh::keys::parse_public_key_base64(b64).ok()?;
    Some((revoked, key))
}

fn hosts_match(hosts: &str, lookup: &str) -> bool {
    if hosts.starts_with("|1|") {
        return hashed_match(hosts, lookup);
    }
    pattern::list_matches(hosts.split(','), lookup)
}

/// `|1|base64(salt)|base64(HMAC-SHA1(salt, host))`, as `ssh-keygen -H` writes.
fn hashed_match(entry: &str, lookup: &str) -> bool {
    let mut parts = entry.trim_start_matches("|1|").split('|');
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    match Hmac::<Sha1>::new_from_slice(&salt) {
        Ok(mac) => mac
            .chain_update(lookup.as_bytes())
            .verify_slice(&hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// Serialises appends from the many connections of one fan-out.
static PIN_LOCK: Mutex<()> = Mutex::new(());

/// Append `lookup keytype base64` to `file` (created with its directory).
pub(crate) fn pin(file: &Path, lookup: &str, key: &PublicKey) -> std::io::Result<()> {
    let _guard = PIN_LOCK.lock().unwrap_or_else(|poison| poison.into_inner());
    if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let needs_newline = match std::fs::read(file) {
        Ok(bytes) => !bytes.is_empty() && !bytes.ends_with(b"\n"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(e),
    };
    let mut encoded = key.clone();
    encoded.set_comment("");
    let openssh = encoded
        .to_openssh()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
    let line = format!(
        "{}{lookup} {}\n",
        if needs_newline { "\n" } else { "" },
        openssh.trim()
    );
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    // One write call: an O_APPEND write of a short line is not interleaved.
    f.write_all(line.as_bytes())?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with `ssh-keygen -t ed25519`, then `ssh-keygen -H` on a file with
    // "[127.0.0.1]:2222 <key>" and "10.1.2.3 <key>".
    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIKyTYwOj7A5z1hfpytgJZrtpf+z7GD/MQT4RzVjJTBHe";
    const FP: &str = "SHA256:07PnrdJ5E1D/Pxoi4wFFrd3rL1HkvzrVqjlzmS/FURY";
    const HASHED: &str = "\
|1|9TGUs71DaIaO5X57baC8rSL9Ra0=|Fb9Tl9xDPU+Vp3EtmBOaGXqS3Xs= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKyTYwOj7A5z1hfpytgJZrtpf+z7GD/MQT4RzVjJTBHe
|1|Mj2Rf64VTzoLsIphHEd73V2qws8=|o8rtrWIRup34thLo9WWYiRqwtyM= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKyTYwOj7A5z1hfpytgJZrtpf+z7GD/MQT4RzVjJTBHe
";
    // Another ed25519 key, for "changed".
    const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIFy0b9ebqp7eOJOmU5M1uYbIdoUq4MoojLYNXKJIlaSv";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).expect("test key parses")
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write test file");
        p
    }

    #[test]
    fn lookup_and_fingerprint() {
        assert_eq!(lookup_name("10.0.0.1", 22), "10.0.0.1");
        assert_eq!(lookup_name("10.0.0.1", 2222), "[10.0.0.1]:2222");
        assert_eq!(fingerprint(&key(KEY)), FP);
    }

    #[test]
    fn hashed_entries_match_only_their_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = write(dir.path(), "kh", HASHED);
        let files = vec![f];
        for lookup in ["[127.0.0.1]:2222", "10.1.2.3"] {
            let kh = KnownHosts::load(&files, lookup).expect("load");
            assert!(
                matches!(kh.verdict(&key(KEY)), Verdict::Trusted),
                "{lookup}"
            );
        }
        let kh = KnownHosts::load(&files, "127.0.0.1").expect("load");
        assert!(
            matches!(kh.verdict(&key(KEY)), Verdict::Unknown),
            "port matters"
        );
    }

    #[test]
    fn plain_patterns_port_form_and_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = format!(
            "# comment\n\n10.0.0.*,!10.0.0.9 ssh-ed25519 {KEY}\n[h.example]:2200 ssh-ed25519 {OTHER} c\n"
        );
        let files = vec![write(dir.path(), "kh", &text)];
        let kh = KnownHosts::load(&files, "10.0.0.4").expect("load");
        assert!(matches!(kh.verdict(&key(KEY)), Verdict::Trusted));
        match kh.verdict(&key(OTHER)) {
            Verdict::Changed(e) => {
                assert_eq!(e.line, 3);
                assert_eq!(fingerprint(&e.key), FP);
            }
            v => panic!("expected Changed, got {v:?}"),
        }
        let kh = KnownHosts::load(&files, "10.0.0.9").expect("load");
        assert!(matches!(kh.verdict(&key(KEY)), Verdict::Unknown), "negated");
        let kh = KnownHosts::load(&files, "[h.example]:2200").expect("load");
        assert!(matches!(kh.verdict(&key(OTHER)), Verdict::Trusted));
        assert_eq!(kh.algorithms(), vec![Algorithm::Ed25519]);
    }

    #[test]
    fn revoked_and_second_file_and_missing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = write(
            dir.path(),
            "a",
            &format!("@revoked * ssh-ed25519 {OTHER}\n"),
        );
        let b = write(dir.path(), "b", &format!("h1 ssh-ed25519 {KEY}\n"));
        let files = vec![dir.path().join("missing"), a, b];
        let kh = KnownHosts::load(&files, "h1").expect("load");
        assert!(matches!(kh.verdict(&key(KEY)), Verdict::Trusted));
        assert!(matches!(kh.verdict(&key(OTHER)), Verdict::Revoked(e) if e.line == 1));
    }

    #[test]
    fn pin_appends_a_line_that_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("sub/known_hosts");
        std::fs::create_dir_all(dir.path().join("sub")).expect("mkdir");
        std::fs::write(&f, format!("other ssh-ed25519 {OTHER}")).expect("write");
        pin(&f, "[127.0.0.1]:2222", &key(KEY)).expect("pin");
        let text = std::fs::read_to_string(&f).expect("read");
        assert_eq!(
            text,
            format!("other ssh-ed25519 {OTHER}\n[127.0.0.1]:2222 ssh-ed25519 {KEY}\n")
        );
        let kh = KnownHosts::load(&[f], "[127.0.0.1]:2222").expect("load");
        assert!(matches!(kh.verdict(&key(KEY)), Verdict::Trusted));
    }
}
