//! Idempotence, targeted re-issue, stale files, expiry, damaged directories, renewal, users.

mod common;

use std::path::Path;
use std::time::{Duration, SystemTime};

use common::*;
use ez_pki::{
    ensure, ensure_at, names, renew_all, user_add, user_delete, user_list, Error, NodeCert, Role,
};

fn verify(dir: &Path, file: &str) {
    verify_at(dir, file, SystemTime::now());
}

fn verify_at(dir: &Path, file: &str, at: SystemTime) {
    let ca = dir.join("ca.pem");
    let at = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    let out = openssl(&[
        "verify",
        "-attime",
        &at,
        "-CAfile",
        ca.to_str().unwrap(),
        dir.join(file).to_str().unwrap(),
    ]);
    assert!(out.trim().ends_with(": OK"), "{out}");
}

#[test]
fn same_spec_twice_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let s = spec();
    let first = ensure(&s, &dir).unwrap();
    let (before, ino) = (snapshot(&dir), inodes(&dir));
    let second = ensure(&s, &dir).unwrap();
    assert!(
        second.created.is_empty() && second.reissued.is_empty(),
        "{second}"
    );
    assert!(!second.changed());
    assert!(
        second.stale.is_empty() && second.warnings.is_empty(),
        "{second}"
    );
    // Every item of the first run is now kept.
    let mut a = first.created.clone();
    a.sort();
    let mut b = second.kept.clone();
    b.sort();
    assert_eq!(a, b);
    assert_eq!(snapshot(&dir), before);
    assert_eq!(inodes(&dir), ino, "files were rewritten");
    assert!(
        second.to_string().starts_with("0 created, 0 re-issued, "),
        "{second}"
    );
}

#[test]
fn adding_a_master_reissues_only_the_apiserver_cert() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let mut s = spec();
    ensure(&s, &dir).unwrap();
    let before = snapshot(&dir);
    assert!(
        !openssl_sans(&dir.join("kubernetes.pem")).contains(&"IP Address:10.0.0.203".to_string())
    );

    s.master_ips.push("10.0.0.203".parse().unwrap());
    let r = ensure(&s, &dir).unwrap();
    assert_eq!(r.reissued, ["kubernetes.pem"], "{r}");
    assert!(r.created.is_empty(), "{r}");
    assert!(
        r.reasons["kubernetes.pem"].contains("IP:10.0.0.203"),
        "{:?}",
        r.reasons
    );
    assert_eq!(
        diff(&before, &snapshot(&dir)),
        ["kubernetes-key.pem", "kubernetes.pem"]
    );
    assert!(
        openssl_sans(&dir.join("kubernetes.pem")).contains(&"IP Address:10.0.0.203".to_string())
    );
    verify(&dir, "kubernetes.pem"); // same CA
    assert_expiry(&dir.join("kubernetes.pem"), s.cert_expiry);

    // And it is stable afterwards.
    let again = snapshot(&dir);
    assert!(!ensure(&s, &dir).unwrap().changed());
    assert_eq!(snapshot(&dir), again);
}

#[test]
fn changing_the_vip_reissues_the_apiserver_cert_and_admin_kubeconfig() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let mut s = spec();
    ensure(&s, &dir).unwrap();
    let before = snapshot(&dir);
    s.ex_lb.as_mut().unwrap().vip = "10.0.0.7".parse().unwrap();
    let r = ensure(&s, &dir).unwrap();
    assert_eq!(r.reissued, ["kubernetes.pem", "kubectl.kubeconfig"], "{r}");
    assert_eq!(
        diff(&before, &snapshot(&dir)),
        ["kubectl.kubeconfig", "kubernetes-key.pem", "kubernetes.pem"]
    );
    let kc = std::fs::read_to_string(dir.join("kubectl.kubeconfig")).unwrap();
    assert!(kc.contains("server: \"https://10.0.0.7:8443\""));
}

#[test]
fn nodes_added_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let mut s = spec();
    ensure(&s, &dir).unwrap();
    let before = snapshot(&dir);

    s.nodes.push(NodeCert {
        name: "worker-02".into(),
        ip: "10.0.0.212".parse().unwrap(),
    });
    let r = ensure(&s, &dir).unwrap();
    assert_eq!(
        r.created,
        ["kubelet-worker-02.pem", "kubelet-worker-02.kubeconfig"],
        "{r}"
    );
    assert!(r.reissued.is_empty(), "{r}");
    assert_eq!(
        diff(&before, &snapshot(&dir)),
        [
            "kubelet-worker-02-key.pem",
            "kubelet-worker-02.kubeconfig",
            "kubelet-worker-02.pem"
        ]
    );
    verify(&dir, "kubelet-worker-02.pem");

    // worker-01 leaves: its files stay, reported as stale; nothing changes.
    s.nodes.retain(|n| n.name != "worker-01");
    let before = snapshot(&dir);
    let r = ensure(&s, &dir).unwrap();
    assert!(!r.changed(), "{r}");
    assert_eq!(
        r.stale,
        ["kubelet-worker-01.kubeconfig", "kubelet-worker-01.pem"]
    );
    assert_eq!(snapshot(&dir), before);
    assert!(
        r.to_string().contains("stale     kubelet-worker-01.pem"),
        "{r}"
    );

    // Same for a registry no longer in the spec.
    s.registry = None;
    assert!(ensure(&s, &dir)
        .unwrap()
        .stale
        .contains(&"registry.pem".to_string()));
}

#[test]
fn certificates_near_their_end_are_reissued_from_the_same_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let mut s = spec();
    s.cert_expiry = ez_pki::parse_expiry("240h").unwrap();
    let start = SystemTime::now();
    ensure_at(&s, &dir, start).unwrap();
    let before = snapshot(&dir);

    // 5 days later: more than a third of 10 days left, nothing happens.
    let r = ensure_at(&s, &dir, start + Duration::from_secs(5 * 86400)).unwrap();
    assert!(!r.changed(), "{r}");

    // 8 days later: every leaf (and so every kubeconfig) is renewed; CA and SA key kept.
    let later = start + Duration::from_secs(8 * 86400);
    let r = ensure_at(&s, &dir, later).unwrap();
    assert_eq!(
        r.kept,
        ["ca.pem", "ca-signer.pem", "sa.key", "sa.pub"],
        "{r}"
    );
    assert!(r.created.is_empty());
    // 10 fixed leaves + 3 kubelets + registry, and 4 + 3 kubeconfigs.
    assert_eq!(r.reissued.len(), 14 + 4 + 3, "{r}");
    assert!(
        r.reasons["admin.pem"].contains("ends 20"),
        "{:?}",
        r.reasons
    );
    let after = snapshot(&dir);
    assert_eq!(before["ca.pem"], after["ca.pem"]);
    assert_eq!(before["ca-key.pem"], after["ca-key.pem"]);
    assert_eq!(before["sa.key"], after["sa.key"]);
    for f in cert_files(&dir) {
        verify_at(&dir, &f, later);
    }
    // Renewed for another 10 days from then: stable until near that end.
    let r = ensure_at(&s, &dir, later + Duration::from_secs(86400)).unwrap();
    assert!(!r.changed(), "{r}");
}

#[test]
fn a_short_lived_ca_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let mut s = spec();
    s.ca_expiry = ez_pki::parse_expiry("30d").unwrap();
    let t0 = SystemTime::now();
    ensure_at(&s, &dir, t0).unwrap();
    let r = ensure_at(&s, &dir, t0 + Duration::from_secs(25 * 86400)).unwrap();
    assert!(r.warnings.iter().any(|w| w.contains("kca-renew")), "{r}");
    // Past its end the CA is refused.
    let e = ensure_at(&s, &dir, t0 + Duration::from_secs(31 * 86400)).unwrap_err();
    assert!(matches!(e, Error::CaUnusable { .. }), "{e}");
}

#[test]
fn damaged_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let s = spec();
    ensure(&s, &dir).unwrap();

    // A deleted key: that cert is re-issued (new key), its kubeconfig rewritten.
    std::fs::remove_file(dir.join("kube-proxy-key.pem")).unwrap();
    let before = snapshot(&dir);
    let r = ensure(&s, &dir).unwrap();
    assert_eq!(
        r.reissued,
        ["kube-proxy.pem", "kube-proxy.kubeconfig"],
        "{r}"
    );
    assert_eq!(
        diff(&before, &snapshot(&dir)),
        [
            "kube-proxy-key.pem",
            "kube-proxy.kubeconfig",
            "kube-proxy.pem"
        ]
    );

    // A deleted kubeconfig is recreated alone.
    std::fs::remove_file(dir.join("kube-scheduler.kubeconfig")).unwrap();
    let r = ensure(&s, &dir).unwrap();
    assert_eq!(r.created, ["kube-scheduler.kubeconfig"], "{r}");
    assert!(r.reissued.is_empty());

    // A loose mode is fixed without rewriting.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dir.join("etcd-key.pem"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let r = ensure(&s, &dir).unwrap();
    assert!(!r.changed());
    assert_eq!(mode(&dir.join("etcd-key.pem")), 0o600);
    assert!(r.warnings.iter().any(|w| w.contains("etcd-key.pem")), "{r}");

    // A corrupt certificate is an error naming the file, and nothing is overwritten.
    std::fs::write(
        dir.join("calico.pem"),
        "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let before = snapshot(&dir);
    let e = ensure(&s, &dir).unwrap_err();
    match &e {
        Error::BadPem { path, what, .. } => {
            assert!(path.ends_with("calico.pem"), "{e}");
            assert_eq!(*what, "certificate");
        }
        other => panic!("{other}"),
    }
    assert!(e.to_string().contains("calico.pem"));
    assert_eq!(snapshot(&dir), before);
    std::fs::remove_file(dir.join("calico.pem")).unwrap();

    // A corrupt key likewise.
    std::fs::write(dir.join("admin-key.pem"), "garbage").unwrap();
    let e = ensure(&s, &dir).unwrap_err();
    assert!(
        matches!(&e, Error::BadPem { path, what: "private key", .. } if path.ends_with("admin-key.pem")),
        "{e}"
    );
    std::fs::remove_file(dir.join("admin-key.pem")).unwrap();
    let r = ensure(&s, &dir).unwrap();
    // Key present, cert gone (or the reverse): re-issued with a new key.
    assert_eq!(
        r.reissued,
        ["admin.pem", "calico.pem", "kubectl.kubeconfig"],
        "{r}"
    );
    assert_eq!(r.reasons["calico.pem"], "calico.pem missing");

    // The CA key gone while certificates exist: refused, no new CA.
    std::fs::remove_file(dir.join("ca-key.pem")).unwrap();
    let before = snapshot(&dir);
    let e = ensure(&s, &dir).unwrap_err();
    assert!(
        matches!(&e, Error::CaMissing { missing, .. } if missing == "ca-key.pem"),
        "{e}"
    );
    assert_eq!(snapshot(&dir), before);
    // Both CA files gone: same.
    std::fs::remove_file(dir.join("ca.pem")).unwrap();
    let e = ensure(&s, &dir).unwrap_err();
    assert!(
        matches!(&e, Error::CaMissing { found, .. } if found.contains(&"admin.pem".to_string())),
        "{e}"
    );
    assert!(e.to_string().contains("kca-renew"), "{e}");
}

#[test]
fn a_cert_from_another_ca_is_reissued() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let other = tmp.path().join("other");
    let s = spec();
    ensure(&s, &dir).unwrap();
    ensure(&s, &other).unwrap();
    for f in ["etcd.pem", "etcd-key.pem"] {
        std::fs::copy(other.join(f), dir.join(f)).unwrap();
    }
    let r = ensure(&s, &dir).unwrap();
    assert_eq!(r.reissued, ["etcd.pem"], "{r}");
    assert!(r.reasons["etcd.pem"].contains("CA"), "{:?}", r.reasons);
    verify(&dir, "etcd.pem");
}

#[test]
fn renew_all_moves_the_old_set_aside_and_starts_over() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let s = spec();
    ensure(&s, &dir).unwrap();
    user_add(&s, &dir, "carol", Role::Admin, Duration::from_secs(86400)).unwrap();
    let before = snapshot(&dir);

    let renewal = renew_all(&s, &dir).unwrap();
    let backup = renewal.backup.clone().unwrap();
    let name = backup.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(backup.parent().unwrap(), tmp.path());
    assert!(
        name.starts_with("ssl-backup-") && name.len() == "ssl-backup-".len() + 14,
        "{name}"
    );
    assert!(
        name["ssl-backup-".len()..]
            .chars()
            .all(|c| c.is_ascii_digit()),
        "{name}"
    );
    assert_eq!(snapshot(&backup), before, "backup is the old set, complete");

    let after = snapshot(&dir);
    assert_ne!(after["ca.pem"], before["ca.pem"]);
    assert_ne!(after["ca-key.pem"], before["ca-key.pem"]);
    assert_ne!(after["sa.key"], before["sa.key"]);
    assert!(renewal.report.reissued.is_empty() && renewal.report.kept.is_empty());
    assert_eq!(
        renewal.report.created.len(),
        before
            .keys()
            .filter(|k| !k.contains("-key.pem") && !k.starts_with("users/"))
            .count()
    );
    assert!(!dir.join("users").exists());
    for f in cert_files(&dir) {
        verify(&dir, &f);
    }
    // The old certs do not verify against the new CA.
    let o = run(std::process::Command::new("/usr/bin/openssl").args([
        "verify",
        "-CAfile",
        dir.join("ca.pem").to_str().unwrap(),
        backup.join("admin.pem").to_str().unwrap(),
    ]));
    assert!(!o.status.success());

    // Twice in the same second: a distinct backup.
    let r2 = renew_all(&s, &dir).unwrap();
    assert_ne!(r2.backup.unwrap(), backup);
}

#[test]
fn user_kubeconfigs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let s = spec();
    // No CA yet: refused.
    let e = user_add(&s, &dir, "dave", Role::Admin, Duration::from_secs(3600)).unwrap_err();
    assert!(matches!(e, Error::CaMissing { .. }), "{e}");

    ensure(&s, &dir).unwrap();
    let base = snapshot(&dir);
    let a = user_add(
        &s,
        &dir,
        "dave",
        Role::Admin,
        ez_pki::parse_expiry("720h").unwrap(),
    )
    .unwrap();
    let v = user_add(
        &s,
        &dir,
        "erin",
        Role::View,
        ez_pki::parse_expiry("24h").unwrap(),
    )
    .unwrap();
    assert_eq!(a, dir.join("users/dave.kubeconfig"));
    assert_eq!(mode(&a), 0o600);
    // Nothing else was touched, and ensure ignores users/.
    let now = snapshot(&dir);
    assert_eq!(
        diff(&base, &now),
        ["users/dave.kubeconfig", "users/erin.kubeconfig"]
    );
    let r = ensure(&s, &dir).unwrap();
    assert!(!r.changed() && r.stale.is_empty(), "{r}");

    let list = user_list(&dir).unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!((list[0].name.as_str(), list[0].role), ("dave", Role::Admin));
    assert_eq!((list[1].name.as_str(), list[1].role), ("erin", Role::View));
    assert_eq!(list[1].path, v);
    let left = list[0]
        .not_after
        .duration_since(SystemTime::now())
        .unwrap()
        .as_secs();
    assert!(left > 720 * 3600 - 600 && left <= 720 * 3600, "{left}");
    assert!(list[0].not_after_utc().ends_with('Z'));

    // The embedded cert: CN and group as promised, from the cluster CA, client only.
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let o = run(std::process::Command::new(require("/usr/bin/kubectl"))
        .env("HOME", &home)
        .args(["config", "view", "--raw", "-o", "json", "--kubeconfig"])
        .arg(&v));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["current-context"], "erin@cluster1");
    assert_eq!(j["users"][0]["name"], "erin");
    assert_eq!(
        j["clusters"][0]["cluster"]["server"],
        "https://10.0.0.6:8443"
    );
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(
            j["users"][0]["user"]["client-certificate-data"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    let cert = tmp.path().join("erin.pem");
    std::fs::write(&cert, pem).unwrap();
    assert_eq!(
        openssl_subject(&cert),
        ["CN=erin", format!("O={}", ez_pki::VIEW_GROUP).as_str()]
    );
    assert_eq!(
        openssl_ext(&cert, "extendedKeyUsage"),
        "TLS Web Client Authentication"
    );
    openssl(&[
        "verify",
        "-CAfile",
        dir.join("ca.pem").to_str().unwrap(),
        cert.to_str().unwrap(),
    ]);
    assert_expiry(&cert, Duration::from_secs(24 * 3600));

    // Duplicates, bad names, deletion.
    let e = user_add(&s, &dir, "dave", Role::View, Duration::from_secs(3600)).unwrap_err();
    assert!(matches!(e, Error::UserExists { .. }), "{e}");
    let e = user_add(&s, &dir, "../etc", Role::View, Duration::from_secs(3600)).unwrap_err();
    assert!(matches!(e, Error::InvalidUserName { .. }), "{e}");
    assert_eq!(user_delete(&dir, "dave").unwrap(), a);
    assert!(!a.exists());
    assert!(matches!(
        user_delete(&dir, "dave").unwrap_err(),
        Error::NoSuchUser { .. }
    ));
    assert_eq!(user_list(&dir).unwrap().len(), 1);
    assert_eq!(names::user_kubeconfig("erin"), "users/erin.kubeconfig");
}

/// `plan` reports what `ensure` would do and writes nothing: not on a
/// fresh folder, not for a certificate that must be re-issued, not for a
/// mode that drifted.
#[test]
fn plan_reports_without_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let s = spec();
    let fresh = ez_pki::plan(&s, &dir).unwrap();
    assert!(!dir.exists(), "plan created the directory");
    assert!(fresh.created.contains(&"ca.pem".to_string()), "{fresh}");
    let made = ensure(&s, &dir).unwrap();
    let mut want = made.created.clone();
    let mut got = fresh.created.clone();
    want.sort();
    got.sort();
    assert_eq!(got, want, "plan and ensure disagree");

    // Converged: nothing would change.
    let (before, ino) = (snapshot(&dir), inodes(&dir));
    assert!(!ez_pki::plan(&s, &dir).unwrap().changed());

    // A new master needs a new apiserver certificate; a key's mode drifted.
    let mut grown = s.clone();
    grown.master_ips.push("10.0.0.9".parse().unwrap());
    let key = dir.join("etcd-key.pem");
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let planned = ez_pki::plan(&grown, &dir).unwrap();
    assert!(
        planned.reissued.contains(&"kubernetes.pem".to_string()),
        "{planned}"
    );
    assert!(
        planned
            .warnings
            .iter()
            .any(|w| w.contains("etcd-key.pem") && w.contains("would be set")),
        "{planned:?}"
    );
    assert_eq!(snapshot(&dir), before, "plan wrote a file");
    assert_eq!(inodes(&dir), ino, "plan replaced a file");
    assert_eq!(mode(&key), 0o644, "plan fixed a mode");
}
