//! Shared helpers of the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use ez_pki::{ExLb, NodeCert, PkiSpec, RegistryCert};

/// A kubeasz-like spec: 3 etcd, 2 masters (also nodes), 1 worker, ex-lb, MASTER_CERT_HOSTS.
pub fn spec() -> PkiSpec {
    PkiSpec {
        cluster_name: "cluster1".into(),
        context_name: "context-cluster1".into(),
        ca_expiry: ez_pki::parse_expiry("876000h").unwrap(),
        cert_expiry: ez_pki::parse_expiry("438000h").unwrap(),
        secure_port: 6443,
        etcd_ips: ["10.0.0.206", "10.0.0.207", "10.0.0.208"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect(),
        master_ips: ["10.0.0.201", "10.0.0.202"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect(),
        api_service_ip: "10.68.0.1".parse().unwrap(),
        ex_lb: Some(ExLb {
            vip: "10.0.0.6".parse().unwrap(),
            port: 8443,
            serving: true,
        }),
        master_cert_hosts: vec!["10.0.0.88".into(), "api.mystical.org".into()],
        dns_domain: "cluster.local".into(),
        nodes: vec![
            NodeCert {
                name: "master-01".into(),
                ip: "10.0.0.201".parse().unwrap(),
            },
            NodeCert {
                name: "master-02".into(),
                ip: "10.0.0.202".parse().unwrap(),
            },
            NodeCert {
                name: "worker-01".into(),
                ip: "10.0.0.211".parse().unwrap(),
            },
        ],
        registry: Some(RegistryCert {
            domain: "harbor.mystical.org".into(),
            ip: "10.0.0.8".parse().unwrap(),
        }),
    }
}

/// Panics with a clear message when an external tool the test needs is missing.
pub fn require(tool: &str) -> PathBuf {
    let p = PathBuf::from(tool);
    assert!(
        p.exists(),
        "{tool} is missing: install Debian packages openssl, etcd-server, etcd-client and kubectl"
    );
    p
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"))
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `openssl ARGS...`, asserting success; returns stdout.
pub fn openssl(args: &[&str]) -> String {
    let o = run(Command::new(require("/usr/bin/openssl")).args(args));
    assert!(
        o.status.success(),
        "openssl {args:?} failed: {}{}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Every regular file under `dir` (relative path -> bytes).
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut |rel, p| {
        out.insert(rel, std::fs::read(p).unwrap());
    });
    out
}

/// Every regular file under `dir` (relative path -> inode), to show files were not rewritten.
pub fn inodes(dir: &Path) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut |rel, p| {
        out.insert(rel, std::fs::metadata(p).unwrap().ino());
    });
    out
}

pub fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

fn walk(root: &Path, dir: &Path, f: &mut dyn FnMut(String, &Path)) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(root, &p, f);
        } else {
            f(
                p.strip_prefix(root).unwrap().to_string_lossy().into_owned(),
                &p,
            );
        }
    }
}

/// Names of files whose bytes differ (or that exist on one side only).
pub fn diff(a: &BTreeMap<String, Vec<u8>>, b: &BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Certificate files (not keys, not kubeconfigs) directly in `dir`, sorted.
pub fn cert_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".pem") && !n.ends_with("-key.pem"))
        .collect();
    v.sort();
    v
}

/// SANs as openssl prints them, e.g. `["IP Address:127.0.0.1", "DNS:kubernetes"]`, sorted.
pub fn openssl_sans(cert: &Path) -> Vec<String> {
    let text = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-ext",
        "subjectAltName",
    ]);
    let mut v: Vec<String> = text
        .lines()
        .skip(1)
        .flat_map(|l| l.split(", "))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    v.sort();
    v
}

/// The value line of one extension as openssl prints it (`"Digital Signature, Key Encipherment"`).
pub fn openssl_ext(cert: &Path, ext: &str) -> String {
    let text = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-ext", ext]);
    text.lines()
        .skip(1)
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Subject attributes as a sorted list like `["CN=admin", "O=system:masters"]`.
pub fn openssl_subject(cert: &Path) -> Vec<String> {
    let text = openssl(&[
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-subject",
        "-nameopt",
        "RFC2253",
    ]);
    let s = text.trim().strip_prefix("subject=").unwrap().to_string();
    let mut v: Vec<String> = s.split(',').map(|x| x.trim().to_string()).collect();
    v.sort();
    v
}

/// `openssl x509 -checkend SECS`: true if the certificate is still valid `secs` from now.
pub fn valid_for(cert: &Path, secs: u64) -> bool {
    let o = run(Command::new(require("/usr/bin/openssl")).args([
        "x509",
        "-in",
        cert.to_str().unwrap(),
        "-noout",
        "-checkend",
        &secs.to_string(),
    ]));
    o.status.success()
}

/// Asserts that `cert` ends `expiry` from now, within ten minutes.
pub fn assert_expiry(cert: &Path, expiry: Duration) {
    let e = expiry.as_secs();
    assert!(
        valid_for(cert, e - 600),
        "{} ends before {e}s - 10 min",
        cert.display()
    );
    assert!(
        !valid_for(cert, e + 600),
        "{} still valid at {e}s + 10 min",
        cert.display()
    );
}

#[allow(unused_imports)]
pub use ez_lab::testing::free_port;

/// Kills and reaps a child process when dropped.
pub struct Killer(pub std::process::Child);

impl Drop for Killer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
