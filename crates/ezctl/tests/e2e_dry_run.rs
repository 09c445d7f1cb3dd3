//! `--dry-run` is dry and exact, on a converged cluster of real machines:
//! `setup all --dry-run` reports 0 changes (and 0 "outcome unknown") and
//! leaves every file on the controller and the hosts byte-identical; a
//! dry run that would re-issue a certificate re-issues nothing on the
//! controller and shows the change on the hosts.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::{text, Env};
use serde_json::Value;

fn recap(out: &std::process::Output) -> Value {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .rfind(|e| e["event"] == "recap")
        .map(|e| e["recap"].clone())
        .unwrap_or(Value::Null)
}

fn sum(recap: &Value, field: &str) -> u64 {
    recap["hosts"]
        .as_object()
        .map(|h| h.values().map(|v| v[field].as_u64().unwrap_or(0)).sum())
        .unwrap_or(0)
}

/// Every file under `dir` (path relative to it) with its sha256 and mode.
fn controller_files(dir: &Path) -> BTreeMap<String, String> {
    use sha2::{Digest, Sha256};
    use std::os::unix::fs::PermissionsExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let meta = std::fs::symlink_metadata(&p).expect("stat");
            if meta.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            let hash = hex::encode(Sha256::digest(std::fs::read(&p).unwrap_or_default()));
            out.insert(rel, format!("{hash} {:o}", meta.permissions().mode()));
        }
    }
    out
}

/// sha256, mode and owner of every file ezctl manages on a host.
fn host_files(env: &Env, ip: &str) -> String {
    let (code, out) = env.on(
        ip,
        "find /etc /opt/kube /opt/cni /var/lib/kube-proxy /var/lib/kubelet/config.yaml -xdev -type f 2>/dev/null \
         | sort | while read -r f; do echo \"$(sha256sum < \"$f\" | cut -c1-64) $(stat -c '%a %U:%G' \"$f\") $f\"; done",
    );
    assert_eq!(code, 0, "{ip}: {out}");
    assert!(out.lines().count() > 50, "{ip}: too few files:\n{out}");
    out
}

fn snapshot(env: &Env) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let hosts = env
        .lab
        .hosts()
        .iter()
        .map(|h| (h.ip.to_string(), host_files(env, &h.ip.to_string())))
        .collect();
    (controller_files(&env.cluster_dir()), hosts)
}

fn assert_same(
    what: &str,
    before: &(BTreeMap<String, String>, BTreeMap<String, String>),
    after: &(BTreeMap<String, String>, BTreeMap<String, String>),
) {
    for (k, v) in &before.0 {
        assert_eq!(
            after.0.get(k),
            Some(v),
            "{what}: controller file {k} changed"
        );
    }
    for k in after.0.keys() {
        assert!(before.0.contains_key(k), "{what}: new controller file {k}");
    }
    for (ip, files) in &before.1 {
        let now = &after.1[ip];
        if files != now {
            let old: Vec<&str> = files.lines().collect();
            let diff: Vec<&str> = now.lines().filter(|l| !old.contains(l)).collect();
            panic!("{what}: files on {ip} changed:\n{}", diff.join("\n"));
        }
    }
}

#[test]
fn a_dry_run_of_a_converged_cluster_changes_nothing_and_reports_nothing() {
    let Some(env) = common::env(4) else { return };
    let first = env.ezctl(&["--json", "setup", &env.cluster, "all"]);
    assert!(first.status.success(), "{}", text(&first));
    let second = env.ezctl(&["--json", "setup", &env.cluster, "all"]);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(
        sum(&recap(&second), "changed"),
        0,
        "not converged: {}",
        recap(&second)
    );

    let before = snapshot(env);
    let dry = env.ezctl(&["--json", "setup", &env.cluster, "all", "--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let r = recap(&dry);
    assert_eq!(r["dry_run"], true, "{r}");
    eprintln!(
        "setup all --dry-run on a converged cluster: ok={} would_change={} unknown={} skipped={}",
        sum(&r, "ok"),
        sum(&r, "changed"),
        sum(&r, "unknown"),
        sum(&r, "skipped")
    );
    assert!(sum(&r, "ok") > 50, "the dry run checked too little: {r}");
    assert_eq!(
        sum(&r, "changed"),
        0,
        "would change on a converged cluster: {r}"
    );
    assert_eq!(
        sum(&r, "unknown"),
        0,
        "outcome unknown on a converged cluster: {r}"
    );
    assert_same("setup all --dry-run", &before, &snapshot(env));

    // A new name for the API: the dry run re-issues nothing here, and says
    // the apiserver certificate would change on every master.
    let config = env.cluster_dir().join("config.yml");
    let original = std::fs::read_to_string(&config).expect("config.yml");
    // The lab's config.yml sets a few keys, or is `{}`.
    assert!(!original.contains("MASTER_CERT_HOSTS"), "{original}");
    let edited = format!(
        "{}MASTER_CERT_HOSTS: [dry-run.example.com]\n",
        original.replace("{}\n", "")
    );
    std::fs::write(&config, &edited).expect("write config.yml");
    let before = snapshot(env);
    let dry = env.ezctl(&["--json", "setup", &env.cluster, "04", "--dry-run"]);
    std::fs::write(&config, &original).expect("restore config.yml");
    assert!(dry.status.success(), "{}", text(&dry));
    let r = recap(&dry);
    let masters = env.group(ez_lab::Role::KubeMaster);
    for m in &masters {
        assert!(
            r["hosts"][m]["changed"].as_u64().unwrap_or(0) > 0,
            "{m}: the new certificate is not reported: {r}"
        );
    }
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(out.contains("kubernetes.pem"), "{out}");
    let mut after = snapshot(env);
    // config.yml was edited by this test, not by ezctl.
    after.0.insert(
        "config.yml".into(),
        before.0.get("config.yml").cloned().unwrap_or_default(),
    );
    assert_same(
        "setup 04 --dry-run after a MASTER_CERT_HOSTS edit",
        &before,
        &after,
    );
}
