//! Every command `scripts/demo.sh` suggests at its end ("Try:") works on a
//! cluster like the demo's: 7 machines set up with `all`, 10 and 11, as the
//! demo does. The commands are read from the script's own output
//! (`demo.sh --hint`, pointed at this test's lab, binaries and home), so
//! the hint and this test cannot drift apart. The hint's last command
//! tears the lab down. Own test binary (own lab). Needs root and the lab.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::text;

/// `ezlab` built next to this test's `ezctl` (like the stand-ins).
fn ezlab_bin() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_ezctl")).with_file_name("ezlab");
    assert!(
        bin.is_file(),
        "{} is missing: build it first (`cargo build -p ez-lab`; scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// The commands of the hint's "Try:" block, comments stripped.
fn hint_commands(hint: &str) -> Vec<String> {
    hint.lines()
        .skip_while(|l| l.trim() != "Try:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| match l.find(" #") {
            Some(i) => l[..i].trim().to_string(),
            None => l.trim().to_string(),
        })
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn every_command_the_demo_suggests_works() {
    let Some(env) = common::env(7) else { return };
    let ezlab = ezlab_bin();
    for step in ["all", "10", "11"] {
        env.ezctl_ok("setup", &[step]);
    }

    let out = Command::new(common::repo().join("scripts/demo.sh"))
        .arg("--hint")
        .env("DEMO_NAME", &env.cluster)
        .env("EZCTL", env!("CARGO_BIN_EXE_ezctl"))
        .env("EZLAB", &ezlab)
        .env("EZCTL_HOME", &env.home)
        .output()
        .expect("run demo.sh --hint");
    assert!(out.status.success(), "demo.sh --hint: {}", text(&out));
    let hint = String::from_utf8_lossy(&out.stdout).into_owned();
    let commands = hint_commands(&hint);
    // An extraction that found nothing would pass every check below.
    assert!(
        commands.len() >= 3,
        "no commands found in the hint:\n{hint}"
    );
    assert!(
        commands.iter().any(|c| c.contains(" ssh ")),
        "the hint no longer suggests `ezlab ssh`; this test still reads it:\n{hint}"
    );

    // As the reader would: in the ezctl home (the demo's is the repo root,
    // where its relative paths point), one command at a time, in order.
    for cmd in &commands {
        let out = ez_lab::cmd::run(
            Command::new("bash")
                .args(["-c", cmd])
                .current_dir(&env.home)
                .env("EZCTL_HOME", &env.home)
                .env("NO_COLOR", "1"),
            Duration::from_secs(600),
        )
        .unwrap_or_else(|e| panic!("`{cmd}`: {e}"));
        eprintln!("$ {cmd}\n{}{}", out.stdout, out.stderr);
        assert!(
            out.status.success(),
            "a command the demo suggests failed ({}): `{cmd}`\n{}{}",
            out.status,
            out.stdout,
            out.stderr
        );
    }
    // The hint ends by taking the fleet down: it is gone.
    let state = Path::new(ez_lab::DEFAULT_STATE_ROOT)
        .join(&env.cluster)
        .join("state.json");
    if commands.last().is_some_and(|c| c.contains(" down --name ")) {
        assert!(
            !state.exists(),
            "the hint's `down` left the lab: {}",
            state.display()
        );
    }
}

#[test]
fn the_hint_is_read_as_the_reader_sees_it() {
    let hint = "\nThe cluster is up.\nTry:\n  a --x     # comment\n  b -- c\n\nAfter.\n  d\n";
    assert_eq!(hint_commands(hint), ["a --x", "b -- c"]);
}
