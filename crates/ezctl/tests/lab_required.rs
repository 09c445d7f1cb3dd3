//! A lab test never passes without running under CI.
//!
//! The parent test runs this same binary again for the child test, as the
//! unprivileged user `nobody`: the lab cannot run there (it needs root), the
//! same way it could not on a CI machine that lost root, a tool or its
//! cgroups. The child takes the path every end-to-end test takes
//! (`common::env`, i.e. `ez_lab::testing::shared_lab`). Under `CI=true` it
//! must fail, naming what was missing; without it, it must skip and say so.

mod common;

use std::os::unix::process::CommandExt;
use std::process::Command;

const CHILD_ENV: &str = "EZ_LAB_REQUIRED_CHILD";

/// Runs only inside the child process started below.
#[test]
fn child_takes_the_e2e_path() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let Some(_env) = common::env(1) else {
        println!("CHILD_RETURNED_WITHOUT_LAB");
        return;
    };
    println!("CHILD_HAD_A_LAB");
}

/// The child's exit status, stdout+stderr and tally, run as `nobody`.
fn run_child(ci: bool) -> (bool, String, String) {
    let tally = tempfile::NamedTempFile::new().expect("tally file");
    // nobody must be able to append to the tally.
    std::fs::set_permissions(
        tally.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .expect("chmod tally");
    let mut cmd = Command::new(std::env::current_exe().expect("own exe"));
    cmd.args([
        "--exact",
        "child_takes_the_e2e_path",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_ENV, "1")
    .env("EZ_TEST_TALLY", tally.path())
    .env_remove("EZ_REQUIRE_LAB")
    .env_remove("EZLAB_KEEP")
    .current_dir("/");
    if ci {
        cmd.env("CI", "true");
    } else {
        cmd.env_remove("CI");
    }
    // std drops the supplementary groups too when root sets a uid.
    cmd.uid(65534).gid(65534);
    let out = cmd.output().expect("run the child test");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let tally_text = std::fs::read_to_string(tally.path()).unwrap_or_default();
    (out.status.success(), text, tally_text)
}

#[test]
fn under_ci_a_missing_lab_fails_the_test_and_says_what_was_missing() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    // Dropping to `nobody` needs root; without root this test cannot make
    // the lab unavailable on purpose (it already is): that is itself a skip.
    if !ez_lab::doctor::is_root() {
        ez_lab::testing::skip("needs root to run the child test as `nobody`");
        return;
    }
    ez_lab::testing::record_run();

    let (ok, text, tally) = run_child(true);
    assert!(!ok, "under CI=true the child passed without a lab:\n{text}");
    assert!(
        !text.contains("CHILD_RETURNED_WITHOUT_LAB") && !text.contains("CHILD_HAD_A_LAB"),
        "the child went on past the lab:\n{text}"
    );
    assert!(
        text.contains("does not allow skipping") && text.contains("must run as root"),
        "the failure must say what was missing:\n{text}"
    );
    assert!(tally.contains("failed-skip\t"), "tally: {tally:?}");

    // The positive control: the same child, outside CI, skips (and says so).
    let (ok, text, tally) = run_child(false);
    assert!(ok, "outside CI the child must skip, not fail:\n{text}");
    assert!(text.contains("CHILD_RETURNED_WITHOUT_LAB"), "{text}");
    assert!(
        text.contains("SKIP ") && text.contains("must run as root"),
        "{text}"
    );
    assert!(tally.contains("skipped\t"), "tally: {tally:?}");
}
