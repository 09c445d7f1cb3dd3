//! Command lines of the stand-in binaries, and the version patcher.

mod common;
use common::*;
use std::process::Command;

const ALL: &[&str] = &[
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubelet",
    "kube-proxy",
];

#[test]
fn every_binary_rejects_unknown_flags_like_the_real_ones() {
    for b in ALL {
        let o = Command::new(bin(b)).arg("--foo").output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{b}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("Error: unknown flag: --foo"), "{b}: {err}");
        let o = Command::new(bin(b))
            .args(["--v=2", "--nonsense=1"])
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("unknown flag: --nonsense"),
            "{b}"
        );
    }
    // A flag of another component is unknown too.
    let o = Command::new(bin("kubelet"))
        .arg("--etcd-servers=https://x:2379")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown flag: --etcd-servers"));
}

#[test]
fn version_flag() {
    for b in ALL {
        let o = Command::new(bin(b)).arg("--version").output().unwrap();
        assert!(o.status.success(), "{b}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            "Kubernetes v1.30.1",
            "{b}"
        );
    }
}

#[test]
fn missing_inputs_name_the_flag_and_path() {
    let d = tempfile::tempdir().unwrap();
    let run = |b: &str, args: &[&str]| {
        let o = Command::new(bin(b)).args(args).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{b} {args:?}");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let e = run(
        "kube-apiserver",
        &[
            "--etcd-servers=https://127.0.0.1:2379",
            "--tls-cert-file=/nonexistent/apiserver.pem",
        ],
    );
    assert!(
        e.contains("--tls-cert-file") && e.contains("/nonexistent/apiserver.pem"),
        "{e}"
    );
    let e = run("kube-apiserver", &["--tls-cert-file=/x"]);
    assert!(e.contains("--etcd-servers is required"), "{e}");
    let e = run("kubelet", &["--kubeconfig=/nonexistent/kubelet.kubeconfig"]);
    assert!(
        e.contains("--kubeconfig") && e.contains("/nonexistent/kubelet.kubeconfig"),
        "{e}"
    );
    let kc = d.path().join("kc");
    std::fs::write(&kc, "x").unwrap();
    let cfg = d.path().join("config.yaml");
    std::fs::write(&cfg, "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\ntlsCertFile: /nonexistent/kubelet.pem\n").unwrap();
    let e = run(
        "kubelet",
        &[
            &format!("--kubeconfig={}", kc.display()),
            &format!("--config={}", cfg.display()),
        ],
    );
    assert!(
        e.contains("tlsCertFile") && e.contains("/nonexistent/kubelet.pem"),
        "{e}"
    );
    let e = run(
        "kube-controller-manager",
        &[
            &format!("--kubeconfig={}", kc.display()),
            "--root-ca-file=/nonexistent/ca.pem",
        ],
    );
    assert!(
        e.contains("--root-ca-file") && e.contains("/nonexistent/ca.pem"),
        "{e}"
    );
    let e = run("kube-controller-manager", &[]);
    assert!(e.contains("--kubeconfig is required"), "{e}");
    let e = run(
        "kube-proxy",
        &["--config=/nonexistent/kube-proxy-config.yaml"],
    );
    assert!(
        e.contains("--config") && e.contains("/nonexistent/kube-proxy-config.yaml"),
        "{e}"
    );
    let e = run("kube-scheduler", &["--config=/nonexistent/scheduler.yaml"]);
    assert!(
        e.contains("--config") && e.contains("/nonexistent/scheduler.yaml"),
        "{e}"
    );
    // A kubeconfig that exists but cannot be used is named too.
    let e = run(
        "kube-scheduler",
        &[&format!("--kubeconfig={}", kc.display())],
    );
    assert!(e.contains(&kc.display().to_string()), "{e}");
}

#[test]
fn patched_binary_reports_the_new_version() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("kubelet");
    let o = Command::new(bin("standin-set-version"))
        .args([
            bin("kubelet").to_str().unwrap(),
            out.to_str().unwrap(),
            "v1.30.11",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v = Command::new(&out).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        "Kubernetes v1.30.11"
    );
    // The original is untouched.
    let v = Command::new(bin("kubelet"))
        .arg("--version")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        "Kubernetes v1.30.1"
    );
    // Patch back down, over the copy.
    let o = Command::new(bin("standin-set-version"))
        .args([out.to_str().unwrap(), out.to_str().unwrap(), "v1.29.0"])
        .output()
        .unwrap();
    assert!(o.status.success());
    let v = Command::new(&out).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout).trim(),
        "Kubernetes v1.29.0"
    );
    // Bad input is refused.
    let o = Command::new(bin("standin-set-version"))
        .args([
            bin("kubelet").to_str().unwrap(),
            out.to_str().unwrap(),
            "1.30",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let txt = d.path().join("not-a-binary");
    std::fs::write(&txt, "hello").unwrap();
    let o = Command::new(bin("standin-set-version"))
        .args([txt.to_str().unwrap(), out.to_str().unwrap(), "v1.30.2"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 version markers"));
}
