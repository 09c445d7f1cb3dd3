//! The real kubectl reads every generated kubeconfig, and talks TLS with the generated
//! certificates to a local stand-in server (openssl s_server requiring a client cert).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::*;
use ez_pki::{ensure, names, user_add, PkiSpec, Role};

fn kubectl(home: &Path, kubeconfig: &Path, args: &[&str]) -> std::process::Output {
    run(Command::new(require("/usr/bin/kubectl"))
        .env_remove("KUBECONFIG")
        .env("HOME", home)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args))
}

struct Expect<'a> {
    file: String,
    server: String,
    user: String,
    cert: Option<&'a str>,
}

fn expectations(spec: &PkiSpec) -> Vec<Expect<'static>> {
    let local = format!("https://127.0.0.1:{}", spec.secure_port);
    let external = match spec.ex_lb {
        Some(lb) if lb.serving => format!("https://{}:{}", lb.vip, lb.port),
        _ => format!("https://{}:{}", spec.master_ips[0], spec.secure_port),
    };
    let mut v = vec![
        Expect {
            file: "kubectl.kubeconfig".into(),
            server: external,
            user: "admin".into(),
            cert: Some("admin.pem"),
        },
        Expect {
            file: "kube-controller-manager.kubeconfig".into(),
            server: local.clone(),
            user: "system:kube-controller-manager".into(),
            cert: Some("kube-controller-manager.pem"),
        },
        Expect {
            file: "kube-scheduler.kubeconfig".into(),
            server: local.clone(),
            user: "system:kube-scheduler".into(),
            cert: Some("kube-scheduler.pem"),
        },
        Expect {
            file: "kube-proxy.kubeconfig".into(),
            server: local.clone(),
            user: "system:kube-proxy".into(),
            cert: Some("kube-proxy.pem"),
        },
    ];
    for n in &spec.nodes {
        v.push(Expect {
            file: format!("kubelet-{}.kubeconfig", n.name),
            server: local.clone(),
            user: format!("system:node:{}", n.name),
            cert: None,
        });
    }
    v
}

#[test]
fn kubectl_reads_every_kubeconfig() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    for (label, spec) in [
        ("with ex-lb", spec()),
        ("without ex-lb", {
            let mut s = spec();
            s.ex_lb = None;
            s
        }),
        ("ex-lb listed, its VIP not verified yet", {
            let mut s = spec();
            if let Some(lb) = s.ex_lb.as_mut() {
                lb.serving = false;
            }
            s
        }),
    ] {
        let _ = std::fs::remove_dir_all(&dir);
        ensure(&spec, &dir).unwrap();
        let ca = std::fs::read(dir.join("ca.pem")).unwrap();
        for e in expectations(&spec) {
            let kc = dir.join(&e.file);
            let o = kubectl(&home, &kc, &["config", "view", "--raw", "-o", "json"]);
            assert!(o.status.success(), "{label} {}: {}", e.file, stderr(&o));
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let ctx = &spec.context_name;
            assert_eq!(v["current-context"], ctx.as_str(), "{label} {}", e.file);
            assert_eq!(v["clusters"].as_array().unwrap().len(), 1);
            assert_eq!(v["clusters"][0]["name"], spec.cluster_name.as_str());
            assert_eq!(
                v["clusters"][0]["cluster"]["server"],
                e.server.as_str(),
                "{label} {}",
                e.file
            );
            assert_eq!(v["contexts"][0]["name"], ctx.as_str());
            assert_eq!(
                v["contexts"][0]["context"]["cluster"],
                spec.cluster_name.as_str()
            );
            assert_eq!(
                v["contexts"][0]["context"]["user"],
                e.user.as_str(),
                "{}",
                e.file
            );
            assert_eq!(v["users"][0]["name"], e.user.as_str(), "{}", e.file);
            let b64 = |x: &serde_json::Value| {
                base64::engine::general_purpose::STANDARD
                    .decode(x.as_str().unwrap())
                    .unwrap()
            };
            assert_eq!(
                b64(&v["clusters"][0]["cluster"]["certificate-authority-data"]),
                ca
            );
            let cert_name = e
                .cert
                .map(str::to_string)
                .unwrap_or_else(|| e.file.replace(".kubeconfig", ".pem"));
            let key_name = names::key_file(cert_name.trim_end_matches(".pem"));
            assert_eq!(
                b64(&v["users"][0]["user"]["client-certificate-data"]),
                std::fs::read(dir.join(&cert_name)).unwrap()
            );
            assert_eq!(
                b64(&v["users"][0]["user"]["client-key-data"]),
                std::fs::read(dir.join(&key_name)).unwrap()
            );

            // Without --raw, kubectl redacts the data and still reads it.
            let o = kubectl(&home, &kc, &["config", "view", "-o", "json"]);
            assert!(String::from_utf8_lossy(&o.stdout).contains("DATA+OMITTED"));

            let o = kubectl(&home, &kc, &["config", "get-contexts"]);
            assert!(o.status.success(), "{}", stderr(&o));
            let out = stdout(&o);
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 2, "{out}");
            let cols: Vec<&str> = lines[1].split_whitespace().collect();
            assert_eq!(
                cols,
                [
                    "*",
                    ctx.as_str(),
                    spec.cluster_name.as_str(),
                    e.user.as_str()
                ],
                "{out}"
            );
        }
    }
}

/// openssl s_server with the apiserver cert, demanding a client cert from the CA.
fn stand_in_apiserver(dir: &Path, port: u16) -> Killer {
    let child = Command::new(require("/usr/bin/openssl"))
        .current_dir(dir)
        .args(["s_server", "-accept", &format!("127.0.0.1:{port}")])
        .args([
            "-cert",
            "kubernetes.pem",
            "-key",
            "kubernetes-key.pem",
            "-CAfile",
            "ca.pem",
        ])
        .args(["-Verify", "1", "-verify_return_error", "-www", "-quiet"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let k = Killer(child);
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "s_server did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    k
}

#[test]
fn kubectl_talks_tls_with_the_generated_certs() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ssl");
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let port = free_port();
    let mut spec = spec();
    spec.secure_port = port;
    ensure(&spec, &dir).unwrap();
    let user = user_add(&spec, &dir, "bob", Role::View, Duration::from_secs(3600)).unwrap();
    let _server = stand_in_apiserver(&dir, port);
    let local = format!("https://127.0.0.1:{port}");

    // Local kubeconfigs reach it as they are; the admin and user ones point at the
    // ex-lb VIP, so for them the server is overridden to the loopback stand-in.
    let cases: Vec<(std::path::PathBuf, Vec<&str>, String)> = vec![
        (
            dir.join("kubelet-worker-01.kubeconfig"),
            vec![],
            "CN = system:node:worker-01, O = system:nodes".into(),
        ),
        (
            dir.join("kube-proxy.kubeconfig"),
            vec![],
            "CN = system:kube-proxy".into(),
        ),
        (
            dir.join("kube-scheduler.kubeconfig"),
            vec![],
            "CN = system:kube-scheduler, O = system:kube-scheduler".into(),
        ),
        (
            dir.join("kubectl.kubeconfig"),
            vec!["--server", &local],
            "CN = admin, O = system:masters".into(),
        ),
        (
            user.clone(),
            vec!["--server", &local],
            "CN = bob, O = ezctl:view".into(),
        ),
    ];
    for (kc, extra, subject) in cases {
        let mut args = extra.clone();
        args.extend(["--request-timeout=10s", "get", "--raw", "/"]);
        let o = kubectl(&home, &kc, &args);
        assert!(o.status.success(), "{}: {}", kc.display(), stderr(&o));
        // openssl prints "CN = x, O = y" or "CN=x, O=y" depending on options: ignore spaces.
        let body = stdout(&o);
        let flat: String = body.chars().filter(|c| *c != ' ').collect();
        let want: String = format!("Subject:{subject}")
            .chars()
            .filter(|c| *c != ' ')
            .collect();
        assert!(flat.contains("Clientcertificate"), "{body}");
        assert!(
            flat.contains(&want),
            "{}: server saw no {subject}:\n{body}",
            kc.display()
        );
    }

    // A kubeconfig from another CA: kubectl refuses the server's certificate.
    let other = tmp.path().join("other");
    let mut spec2 = spec.clone();
    spec2.cluster_name = "other".into();
    ensure(&spec2, &other).unwrap();
    let o = kubectl(
        &home,
        &other.join("kubelet-worker-01.kubeconfig"),
        &["--request-timeout=10s", "get", "--raw", "/"],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("certificate signed by unknown authority"),
        "{}",
        stderr(&o)
    );
}
