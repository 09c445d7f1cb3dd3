//! A real etcd (Debian's 3.4) serving and peering with the generated etcd cert, requiring
//! client certificates from the cluster CA.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use ez_pki::ensure;

fn etcdctl(
    endpoint: &str,
    ca: &Path,
    cert: &Path,
    key: &Path,
    args: &[&str],
) -> std::process::Output {
    run(Command::new(require("/usr/bin/etcdctl"))
        .env("ETCDCTL_API", "3")
        .arg(format!("--endpoints={endpoint}"))
        .arg(format!("--cacert={}", ca.display()))
        .arg(format!("--cert={}", cert.display()))
        .arg(format!("--key={}", key.display()))
        .arg("--dial-timeout=3s")
        .arg("--command-timeout=5s")
        .args(args))
}

#[test]
fn etcd_accepts_the_apiserver_client_cert_and_refuses_another_ca() {
    let etcd = require("/usr/bin/etcd");
    let tmp = tempfile::tempdir().unwrap();
    let ssl = tmp.path().join("ssl");
    let spec = spec();
    ensure(&spec, &ssl).unwrap();
    let other = tmp.path().join("other-ssl");
    ensure(&spec, &other).unwrap();

    let f = |n: &str| ssl.join(n);
    let client_port = free_port();
    let mut peer_port = free_port();
    while peer_port == client_port {
        peer_port = free_port();
    }
    let client_url = format!("https://127.0.0.1:{client_port}");
    let peer_url = format!("https://127.0.0.1:{peer_port}");
    let data = tmp.path().join("data");
    let log = std::fs::File::create(tmp.path().join("etcd.log")).unwrap();
    let child = Command::new(etcd)
        .arg("--name=etcd-test")
        .arg(format!("--data-dir={}", data.display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=etcd-test={peer_url}"))
        .arg("--initial-cluster-state=new")
        .arg("--initial-cluster-token=ez-pki-test")
        .arg(format!("--cert-file={}", f("etcd.pem").display()))
        .arg(format!("--key-file={}", f("etcd-key.pem").display()))
        .arg(format!("--peer-cert-file={}", f("etcd.pem").display()))
        .arg(format!("--peer-key-file={}", f("etcd-key.pem").display()))
        .arg("--client-cert-auth")
        .arg(format!("--trusted-ca-file={}", f("ca.pem").display()))
        .arg("--peer-client-cert-auth")
        .arg(format!("--peer-trusted-ca-file={}", f("ca.pem").display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start etcd");
    let _guard = Killer(child);

    let ca = f("ca.pem");
    let cert = f("apiserver-etcd-client.pem");
    let key = f("apiserver-etcd-client-key.pem");

    // Wait until healthy (bounded).
    let start = Instant::now();
    loop {
        let o = etcdctl(&client_url, &ca, &cert, &key, &["endpoint", "health"]);
        if o.status.success() {
            break;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let log = std::fs::read_to_string(tmp.path().join("etcd.log")).unwrap_or_default();
            panic!(
                "etcd not healthy after 30 s: {}{}\netcd log:\n{log}",
                stdout(&o),
                stderr(&o)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // put / get with the apiserver's etcd client cert.
    let o = etcdctl(
        &client_url,
        &ca,
        &cert,
        &key,
        &["put", "/ez-pki/probe", "hello"],
    );
    assert!(o.status.success(), "put: {}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o).trim(), "OK");
    let o = etcdctl(
        &client_url,
        &ca,
        &cert,
        &key,
        &["get", "/ez-pki/probe", "--print-value-only"],
    );
    assert!(o.status.success(), "get: {}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o).trim(), "hello");

    // calico's client cert works too; the etcd cert itself is a client cert as well.
    for stem in ["calico", "etcd"] {
        let o = etcdctl(
            &client_url,
            &ca,
            &f(&format!("{stem}.pem")),
            &f(&format!("{stem}-key.pem")),
            &["get", "/ez-pki/probe", "--print-value-only"],
        );
        assert!(o.status.success(), "{stem}: {}{}", stdout(&o), stderr(&o));
        assert_eq!(stdout(&o).trim(), "hello");
    }

    // A client cert from another CA is refused (we still trust the right server CA).
    let o = etcdctl(
        &client_url,
        &ca,
        &other.join("apiserver-etcd-client.pem"),
        &other.join("apiserver-etcd-client-key.pem"),
        &[
            "get",
            "/ez-pki/probe",
            "--print-value-only",
            "--command-timeout=2s",
        ],
    );
    assert!(
        !o.status.success(),
        "a foreign client cert was accepted: {}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("hello"));
    // The refusal is etcd's TLS check, as its log says.
    let log_path = tmp.path().join("etcd.log");
    let start = Instant::now();
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("rejected connection")
            && log.contains("certificate signed by unknown authority")
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "etcd log shows no TLS rejection:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // And a client that trusts only the other CA refuses our etcd's server cert.
    let o = etcdctl(
        &client_url,
        &other.join("ca.pem"),
        &cert,
        &key,
        &[
            "get",
            "/ez-pki/probe",
            "--print-value-only",
            "--command-timeout=2s",
        ],
    );
    assert!(
        !o.status.success(),
        "server cert accepted by a foreign CA: {}",
        stdout(&o)
    );

    // The same at the TLS level: openssl checks etcd's server cert (chain and IP SAN).
    let s_client = |ca_file: &Path| {
        run(Command::new(require("/usr/bin/openssl"))
            .args(["s_client", "-connect", &format!("127.0.0.1:{client_port}")])
            .args([
                "-CAfile",
                ca_file.to_str().unwrap(),
                "-verify_return_error",
                "-verify_ip",
                "127.0.0.1",
            ])
            .args([
                "-cert",
                cert.to_str().unwrap(),
                "-key",
                key.to_str().unwrap(),
            ])
            .stdin(Stdio::null()))
    };
    let o = s_client(&ca);
    assert!(
        stdout(&o).contains("Verify return code: 0 (ok)"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let o = s_client(&other.join("ca.pem"));
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("certificate verify failed"),
        "{}",
        stderr(&o)
    );
}
