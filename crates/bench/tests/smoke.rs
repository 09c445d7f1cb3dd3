//! `ezbench --smoke`: every path of the bench once on 2 lab machines. Not a
//! measurement and no timing is asserted: these check that the bench runs,
//! that both tools did the same work (the bench itself stops when a warm run
//! of one tool finds something to change after the other's cold run), that
//! the table has figures for every row, and that nothing is left behind.
//!
//! `smoke_exec` is the executor benchmark alone (no Ansible); `smoke_all`
//! also runs workloads A and B against Ansible as shipped and as tuned
//! (PyPI the first time, a few minutes). Both run wherever the lab can (and
//! under CI, where a lab that cannot run is a failure).

use std::path::{Path, PathBuf};
use std::process::Command;

/// ezctl built next to this test's ezbench, if any (cargo test does not
/// build other packages' binaries).
fn ezctl() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_BIN_EXE_ezbench")).parent()?;
    let p = dir.join("ezctl");
    p.is_file().then_some(p)
}

/// Runs `ezbench --smoke` with its own lab name and work directory.
fn smoke(lab: &str, only: &str, ezctl: Option<&Path>) -> (bool, String, String) {
    let work = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ezbench"));
    cmd.args(["--smoke", "--lab-name", lab, "--only", only])
        .arg("--work-root")
        .arg(work.path())
        .arg("--json-out")
        .arg(work.path().join("results.json"));
    if let Some(e) = ezctl {
        cmd.arg("--ezctl").arg(e);
    }
    let out = cmd.output().expect("run ezbench");
    let json = std::fs::read_to_string(work.path().join("results.json")).unwrap_or_default();
    // The temporary home is gone: the bench cleans up after itself.
    let left: Vec<_> = std::fs::read_dir(work.path())
        .expect("work root")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("ezbench."))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, json)
}

fn lab_is_gone(lab: &str) -> bool {
    !Path::new(ez_lab::DEFAULT_STATE_ROOT).join(lab).exists()
}

/// Every data line of the main table for `workload` has figures for both
/// tools and a ratio.
fn assert_rows(stdout: &str, workload: &str, peer: &str) {
    for phase in ["cold", "warm"] {
        let line = stdout
            .lines()
            .find(|l| {
                l.starts_with(workload)
                    && l.contains(&format!(" {phase} "))
                    && l.contains(&format!("| {peer} "))
            })
            .unwrap_or_else(|| panic!("no {workload} {phase} row for {peer} in:\n{stdout}"));
        let ratio = line.rsplit('|').next().unwrap_or("").trim();
        assert!(
            ratio.ends_with('x') && ratio.trim_end_matches('x').parse::<f64>().is_ok(),
            "ratio missing in {line}"
        );
    }
}

#[test]
fn smoke_exec() {
    if ez_lab::testing::ready().is_none() {
        return;
    }
    let lab = "ezbench-smoke-exec";
    let (ok, text, json) = smoke(lab, "exec", None);
    assert!(ok, "ezbench --smoke failed:\n{text}");
    assert_rows(&text, "exec 10 cmd+4 up", "openssh");
    let v: serde_json::Value = serde_json::from_str(&json).expect("results JSON");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "cold and warm");
    for r in rows {
        assert_eq!(r["n"], 2);
        assert_eq!(r["ours"]["wall_s"].as_array().map(Vec::len), Some(1));
        assert_eq!(r["theirs"]["wall_s"].as_array().map(Vec::len), Some(1));
    }
    assert!(lab_is_gone(lab), "lab {lab} is still there");
}

/// Runs in CI: it is what shows that ezctl and Ansible (as shipped and as
/// tuned) do the same work. PyPI the first time (ansible-core is cached).
#[test]
fn smoke_all() {
    if ez_lab::testing::ready().is_none() {
        return;
    }
    let Some(ezctl) = ezctl() else {
        ez_lab::testing::skip("build ezctl first (cargo build -p ezctl)");
        return;
    };
    let lab = "ezbench-smoke-all";
    let (ok, text, _) = smoke(lab, "exec,a,b", Some(&ezctl));
    assert!(ok, "ezbench --smoke failed:\n{text}");
    assert_rows(&text, "exec 10 cmd+4 up", "openssh");
    for peer in ["ansible", "ans-tuned"] {
        assert_rows(&text, "A executor", peer);
        assert_rows(&text, "B etcd+containerd", peer);
    }
    // Every tool's configuration is in the header.
    assert!(text.contains("ans-tuned: ansible-core "), "{text}");
    assert!(text.contains("strategy = free"), "{text}");
    assert!(text.contains("openssh loop: "), "{text}");
    assert!(text.contains("controller peak RSS"), "{text}");
    assert!(lab_is_gone(lab), "lab {lab} is still there");
}
