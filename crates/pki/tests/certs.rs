//! Every generated certificate against the spec, checked with openssl and x509-parser.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use common::*;
use ez_pki::{ensure, names, PkiSpec};

const SERVER: &str = "TLS Web Server Authentication";
const CLIENT: &str = "TLS Web Client Authentication";
const BOTH: &str = "TLS Web Server Authentication, TLS Web Client Authentication";

/// (subject, SANs, EKUs) that the brief asks for, per certificate file.
fn expected(spec: &PkiSpec) -> BTreeMap<String, (Vec<&'static str>, Vec<String>, &'static str)> {
    let mut m = BTreeMap::new();
    let none = Vec::<String>::new;
    m.insert(
        "admin.pem".into(),
        (vec!["CN=admin", "O=system:masters"], none(), CLIENT),
    );
    m.insert(
        "kube-controller-manager.pem".into(),
        (
            vec![
                "CN=system:kube-controller-manager",
                "O=system:kube-controller-manager",
            ],
            none(),
            CLIENT,
        ),
    );
    m.insert(
        "kube-scheduler.pem".into(),
        (
            vec!["CN=system:kube-scheduler", "O=system:kube-scheduler"],
            none(),
            CLIENT,
        ),
    );
    m.insert(
        "kube-proxy.pem".into(),
        (vec!["CN=system:kube-proxy"], none(), CLIENT),
    );
    let mut etcd: Vec<String> = spec
        .etcd_ips
        .iter()
        .map(|ip| format!("IP Address:{ip}"))
        .collect();
    etcd.push("IP Address:127.0.0.1".into());
    etcd.push("DNS:localhost".into());
    m.insert("etcd.pem".into(), (vec!["CN=etcd"], etcd, BOTH));
    let mut api: Vec<String> = vec!["IP Address:127.0.0.1".into()];
    api.extend(spec.master_ips.iter().map(|ip| format!("IP Address:{ip}")));
    api.push(format!("IP Address:{}", spec.api_service_ip));
    api.push(format!("IP Address:{}", spec.ex_lb.unwrap().vip));
    api.push("IP Address:10.0.0.88".into());
    api.push("DNS:api.mystical.org".into());
    api.push("DNS:kubernetes".into());
    api.push("DNS:kubernetes.default".into());
    api.push("DNS:kubernetes.default.svc".into());
    api.push("DNS:kubernetes.default.svc.cluster.local".into());
    m.insert(
        "kubernetes.pem".into(),
        (vec!["CN=kubernetes"], api, SERVER),
    );
    m.insert(
        "apiserver-etcd-client.pem".into(),
        (
            vec!["CN=kube-apiserver-etcd-client", "O=system:masters"],
            none(),
            CLIENT,
        ),
    );
    m.insert(
        "apiserver-kubelet-client.pem".into(),
        (
            vec!["CN=kube-apiserver-kubelet-client", "O=system:masters"],
            none(),
            CLIENT,
        ),
    );
    m.insert(
        "aggregator-proxy.pem".into(),
        (vec!["CN=aggregator"], none(), CLIENT),
    );
    m.insert("calico.pem".into(), (vec!["CN=calico"], none(), CLIENT));
    for n in &spec.nodes {
        let cn: &'static str = Box::leak(format!("CN=system:node:{}", n.name).into_boxed_str());
        m.insert(
            format!("kubelet-{}.pem", n.name),
            (
                vec![cn, "O=system:nodes"],
                vec![format!("IP Address:{}", n.ip), format!("DNS:{}", n.name)],
                BOTH,
            ),
        );
    }
    let r = spec.registry.as_ref().unwrap();
    let cn: &'static str = Box::leak(format!("CN={}", r.domain).into_boxed_str());
    m.insert(
        "registry.pem".into(),
        (
            vec![cn],
            vec![format!("DNS:{}", r.domain), format!("IP Address:{}", r.ip)],
            SERVER,
        ),
    );
    for (_, sans, _) in m.values_mut() {
        sans.sort();
    }
    m
}

fn p(dir: &Path, f: &str) -> String {
    dir.join(f).to_str().unwrap().to_string()
}

#[test]
fn every_certificate_verifies_and_matches_the_spec() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let spec = spec();
    let report = ensure(&spec, &dir).unwrap();
    assert!(
        report.reissued.is_empty() && report.kept.is_empty(),
        "{report}"
    );

    // The CA.
    let ca = dir.join(names::CA_CERT);
    assert_eq!(openssl_subject(&ca), ["CN=kubernetes-ca", "O=k8s"]);
    assert_eq!(openssl_ext(&ca, "basicConstraints"), "CA:TRUE");
    assert_eq!(
        openssl_ext(&ca, "keyUsage"),
        "Digital Signature, Certificate Sign, CRL Sign"
    );
    assert_expiry(&ca, spec.ca_expiry);
    openssl(&["verify", "-CAfile", &p(&dir, "ca.pem"), &p(&dir, "ca.pem")]);

    // Every leaf: exactly the expected set of files, each verified and compared.
    let want = expected(&spec);
    // ca-signer.pem: the signing CA alone, the same certificate as ca.pem
    // outside a rotation.
    assert_eq!(
        std::fs::read(dir.join(names::CA_SIGNER_CERT)).unwrap(),
        std::fs::read(&ca).unwrap()
    );
    let mut got = cert_files(&dir);
    got.retain(|f| f != "ca.pem" && f != names::CA_SIGNER_CERT);
    assert_eq!(got, want.keys().cloned().collect::<Vec<_>>());
    for (file, (subject, sans, eku)) in &want {
        let cert = dir.join(file);
        let out = openssl(&["verify", "-CAfile", &p(&dir, "ca.pem"), &p(&dir, file)]);
        assert_eq!(out.trim(), format!("{}: OK", cert.display()), "{file}");
        assert_eq!(openssl_subject(&cert), *subject, "{file} subject");
        assert_eq!(openssl_sans(&cert), *sans, "{file} SANs");
        assert_eq!(
            openssl_ext(&cert, "keyUsage"),
            "Digital Signature, Key Encipherment",
            "{file}"
        );
        assert_eq!(openssl_ext(&cert, "extendedKeyUsage"), *eku, "{file} EKU");
        assert_eq!(openssl_ext(&cert, "basicConstraints"), "CA:FALSE", "{file}");
        assert_expiry(&cert, spec.cert_expiry);
        // The key file holds the certificate's key.
        let stem = file.trim_end_matches(".pem");
        let from_cert = openssl(&["x509", "-in", &p(&dir, file), "-noout", "-pubkey"]);
        let from_key = openssl(&["pkey", "-in", &p(&dir, &names::key_file(stem)), "-pubout"]);
        assert_eq!(from_cert, from_key, "{file} key pair");
        // x509-parser agrees on the end date: cert_expiry after the CA's start (+ skew).
        let der = openssl(&["x509", "-in", &p(&dir, file), "-outform", "PEM"]);
        let (_, pem) = x509_parser::pem::parse_x509_pem(der.as_bytes()).unwrap();
        let c = pem.parse_x509().unwrap();
        let life = c.validity().not_after.timestamp() - c.validity().not_before.timestamp();
        // not_before is back-dated by 5 minutes.
        assert_eq!(
            life,
            spec.cert_expiry.as_secs() as i64 + 300,
            "{file} lifetime"
        );
    }

    // Service-account key pair.
    let sa_pub = std::fs::read_to_string(dir.join(names::SA_PUB)).unwrap();
    assert_eq!(
        openssl(&["pkey", "-in", &p(&dir, names::SA_KEY), "-pubout"]),
        sa_pub
    );
    assert!(sa_pub.starts_with("-----BEGIN PUBLIC KEY-----"));

    // The report names files only.
    let shown = format!("{report}\n{report:?}");
    assert!(
        !shown.contains("PRIVATE") && !shown.contains("BEGIN"),
        "{shown}"
    );
    assert!(report.created.contains(&"kubernetes.pem".to_string()));
    assert!(report.created.contains(&"kubectl.kubeconfig".to_string()));
    assert!(report
        .created
        .contains(&"kubelet-worker-01.kubeconfig".to_string()));
}

#[test]
fn leaf_certificates_never_outlive_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let mut s = spec();
    s.ca_expiry = ez_pki::parse_expiry("240h").unwrap();
    s.cert_expiry = ez_pki::parse_expiry("438000h").unwrap();
    ensure(&s, &dir).unwrap();
    let ca_end = openssl(&["x509", "-in", &p(&dir, "ca.pem"), "-noout", "-enddate"]);
    for f in cert_files(&dir) {
        assert_eq!(
            openssl(&["x509", "-in", &p(&dir, &f), "-noout", "-enddate"]),
            ca_end,
            "{f}"
        );
    }
    assert_expiry(&dir.join("admin.pem"), Duration::from_secs(240 * 3600));
}

#[test]
fn modes_are_strict_even_with_a_loose_umask() {
    // Process-wide; harmless for the other tests, which only get looser defaults.
    unsafe { libc::umask(0) };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    ensure(&spec(), &dir).unwrap();
    ez_pki::user_add(
        &spec(),
        &dir,
        "alice",
        ez_pki::Role::View,
        Duration::from_secs(86400),
    )
    .unwrap();
    assert_eq!(mode(&dir), 0o700);
    let mut n_keys = 0;
    for (rel, _) in snapshot(&dir) {
        let m = mode(&dir.join(&rel));
        if rel.ends_with("-key.pem") || rel.ends_with(".kubeconfig") || rel == "sa.key" {
            assert_eq!(m, 0o600, "{rel}");
            n_keys += 1;
        } else {
            assert_eq!(m, 0o644, "{rel}");
        }
    }
    // ca + 10 fixed leaves + 3 kubelets + registry keys, sa.key, 4 + 3 kubeconfigs, 1 user.
    assert_eq!(n_keys, 15 + 1 + 7 + 1);
    assert_eq!(mode(&dir.join("users")), 0o700);
}

#[test]
fn no_registry_no_registry_cert_and_ipv6_works() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let mut s = spec();
    s.registry = None;
    s.ex_lb = None;
    s.master_ips = vec!["fd00::201".parse().unwrap()];
    s.master_cert_hosts = vec!["[fd00::88]".into(), "*.apps.example.org".into()];
    ensure(&s, &dir).unwrap();
    assert!(!dir.join("registry.pem").exists());
    let sans = openssl_sans(&dir.join("kubernetes.pem"));
    assert!(
        sans.contains(&"IP Address:FD00:0:0:0:0:0:0:201".to_string()),
        "{sans:?}"
    );
    assert!(
        sans.contains(&"IP Address:FD00:0:0:0:0:0:0:88".to_string()),
        "{sans:?}"
    );
    assert!(
        sans.contains(&"DNS:*.apps.example.org".to_string()),
        "{sans:?}"
    );
    let kc = std::fs::read_to_string(dir.join("kubectl.kubeconfig")).unwrap();
    assert!(kc.contains("server: \"https://[fd00::201]:6443\""), "{kc}");
}

#[test]
fn invalid_specs_are_refused_before_touching_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    type Edit = Box<dyn Fn(&mut PkiSpec)>;
    let cases: Vec<(&str, Edit)> = vec![
        ("no etcd", Box::new(|s| s.etcd_ips.clear())),
        ("no master", Box::new(|s| s.master_ips.clear())),
        (
            "bad node",
            Box::new(|s| s.nodes[0].name = "Bad_Name".into()),
        ),
        (
            "dup node",
            Box::new(|s| s.nodes[1].name = s.nodes[0].name.clone()),
        ),
        (
            "bad host",
            Box::new(|s| s.master_cert_hosts.push("not a host".into())),
        ),
        ("zero", Box::new(|s| s.cert_expiry = Duration::ZERO)),
        ("domain", Box::new(|s| s.dns_domain = "".into())),
    ];
    for (what, f) in cases {
        let mut s = spec();
        f(&mut s);
        let e = ensure(&s, &dir).unwrap_err();
        assert!(matches!(e, ez_pki::Error::InvalidSpec(_)), "{what}: {e}");
        assert!(!dir.exists(), "{what}");
    }
}
