//! The per-test-binary helper: `testing::shared_lab` brings a lab up once
//! and its atexit hook tears it down when the test process exits. The only
//! way to observe "after exit" is from another process, so the parent test
//! runs this same binary again for the child test and inspects the host
//! once the child has exited.

mod common;

use std::process::Command;
use std::time::Duration;

use ez_lab::{cmd, testing};

const CHILD_ENV: &str = "EZLAB_HELPER_CHILD";

/// Runs only inside the child process started below.
#[test]
fn child_uses_the_shared_lab() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let Some(lab) = testing::shared_lab(2) else {
        println!("CHILD_SKIPPED");
        return;
    };
    // A second call returns the same lab, not a new one.
    let again = testing::shared_lab(1).expect("same lab");
    assert!(std::ptr::eq(lab, again));
    for h in lab.hosts() {
        let out = lab
            .ssh_run(h.index, "hostname", Duration::from_secs(30))
            .unwrap();
        assert_eq!(out.stdout.trim(), h.hostname, "{out:?}");
    }
    println!("LAB_NAME={}", lab.name());
    println!("LAB_DIR={}", lab.dir().display());
    println!("LAB_CONTROLLER={}", lab.controller_ip());
}

#[test]
fn shared_lab_is_torn_down_when_the_test_process_exits() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    if testing::ready().is_none() {
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = cmd::run(
        Command::new(exe)
            .args([
                "--exact",
                "child_uses_the_shared_lab",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, "1")
            .env_remove("EZLAB_KEEP"),
        Duration::from_secs(600),
    )
    .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        !out.stdout.contains("CHILD_SKIPPED"),
        "child skipped though the parent can run labs"
    );
    let field = |k: &str| {
        out.stdout
            .lines()
            // libtest may print "test name ... " on the same line first.
            .find_map(|l| l.split_once(&format!("{k}=")).map(|(_, v)| v.trim()))
            .unwrap_or_else(|| panic!("child printed no {k}:\n{}", out.stdout))
            .to_string()
    };
    let name = field("LAB_NAME");
    assert_eq!(name, testing::lab_name(), "lab named after the test binary");
    assert!(
        out.stderr.contains(&format!("lab {name} torn down")),
        "{}",
        out.stderr
    );
    common::assert_gone(
        &name,
        std::path::Path::new(&field("LAB_DIR")),
        &field("LAB_CONTROLLER"),
    );
}
