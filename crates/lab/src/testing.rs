//! A lab shared by all tests of one test binary.
//!
//! `shared_lab(n)` brings a lab of `n` machines up on first use and returns
//! the same lab to every later caller in the process. Its name is derived
//! from the test binary's path (`t` + 8 hex digits), so two test binaries
//! never share a lab and a re-run of a binary that was killed reuses or
//! cleans up its own leftovers. Teardown is registered with `atexit`: it
//! runs when the test harness exits, after the last test. Set
//! `EZLAB_KEEP=1` to leave the lab up for inspection (`ezlab status`).
//!
//! Tests that stop machines should live in their own test binary: the lab
//! is shared by every test of the binary, and they run in parallel.
//!
//! **A lab test never passes without running.** Where the lab (or a tool a
//! test needs) is missing, [`skip`] prints why and the test returns, except
//! under CI (`CI=true`) or with `EZ_REQUIRE_LAB=1`, where it is a failure
//! naming what was missing. Every lab test that ran or skipped is counted in
//! the tally file `scripts/test.sh` reads for its summary line.

use std::sync::OnceLock;

use crate::doctor;
use crate::error::LabError;
use crate::lab::{Lab, LabSpec};
use crate::teardown::down_by_name;

/// The lab of this process, or why it could not come up (an environment
/// problem; any other failure panics).
static LAB: OnceLock<std::result::Result<Lab, String>> = OnceLock::new();

/// Whether a missing lab, tool or component fails the test instead of
/// skipping it: under CI (`CI=true`) or with `EZ_REQUIRE_LAB=1`.
pub fn lab_required() -> bool {
    let set = |k: &str, v: &str| std::env::var(k).is_ok_and(|x| x.eq_ignore_ascii_case(v));
    set("CI", "true") || set("EZ_REQUIRE_LAB", "1")
}

/// The test running on this thread, as libtest names it (its thread name),
/// else the binary's name.
fn current_test() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .unwrap_or_default();
    // cargo names test binaries `<name>-<hash>`.
    let bin = exe
        .rsplit_once('-')
        .map_or(exe.as_str(), |(b, _)| b)
        .to_string();
    match std::thread::current().name() {
        Some(t) if t != "main" => format!("{bin}::{t}"),
        _ => bin,
    }
}

/// Appends `outcome test` to the tally file named by `EZ_TEST_TALLY`, when
/// set (`scripts/test.sh` counts them). Best effort: a tally that cannot be
/// written must not change a test's outcome, only the summary.
fn tally(outcome: &str, test: &str) {
    use std::io::Write;
    let Some(path) = std::env::var_os("EZ_TEST_TALLY") else {
        return;
    };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        // One write per line: O_APPEND keeps lines from parallel tests whole.
        let _ = f.write_all(format!("{outcome}\t{test}\n").as_bytes());
    }
}

/// Records that the current lab test got what it needs and runs.
pub fn record_run() {
    tally("ran", &current_test());
}

/// The one way a lab test gives up: prints `SKIP <test>: <why>` and
/// returns, so the caller can `return`; under [`lab_required`] it panics
/// instead, so CI can never be green with tests that did not run.
pub fn skip(why: &str) {
    let test = current_test();
    if lab_required() {
        tally("failed-skip", &test);
        panic!(
            "{test}: this lab test cannot run here and CI (CI=true or EZ_REQUIRE_LAB=1) \
             does not allow skipping it: {why}"
        );
    }
    tally("skipped", &test);
    eprintln!("SKIP {test}: {why}");
}

/// `Some(())` when the lab can run here; else [`skip`]s (which fails under
/// CI) and returns `None`. For lab tests that do not use [`shared_lab`].
pub fn ready() -> Option<()> {
    match skip_reason() {
        Some(why) => {
            skip(&why);
            None
        }
        None => {
            record_run();
            Some(())
        }
    }
}

/// `Some(())` when `condition` holds; else [`skip`]s with `why`. For a
/// test that needs a tool or a file besides the lab.
pub fn require(condition: bool, why: &str) -> Option<()> {
    if condition {
        Some(())
    } else {
        skip(why);
        None
    }
}

/// A loopback TCP port for a test server that nothing else in this process
/// was given, free when checked. Ports from the kernel (`bind :0`) come
/// from the ephemeral range, where the next outgoing connection or the next
/// caller may get the same one before the server binds it; these come from
/// below that range (20000-32767), in turn from a per-process start.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_768;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(
        u32::MAX,
        std::process::id().wrapping_mul(7919) % SPAN,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    for _ in 0..SPAN {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!(
        "no free TCP port on 127.0.0.1 from {LOW} to {}",
        LOW + SPAN - 1
    );
}

/// Why the lab cannot run here (not root, tools missing), or `None`.
pub fn skip_reason() -> Option<String> {
    doctor::check().into_error().map(|e| e.to_string())
}

/// Name of this test binary's lab.
pub fn lab_name() -> String {
    use sha2::{Digest, Sha256};
    let exe = std::env::current_exe().unwrap_or_default();
    let digest = Sha256::digest(exe.as_os_str().as_encoded_bytes());
    format!("t{}", &hex::encode(digest)[..8])
}

/// The binary's lab with at least `machines` machines, or `None` (after
/// [`skip`], which fails the test under CI) when the lab cannot run here.
/// Panics when the lab fails to come up for any other reason: that is a
/// real failure.
pub fn shared_lab(machines: usize) -> Option<&'static Lab> {
    let lab = LAB.get_or_init(|| {
        if let Some(why) = skip_reason() {
            return Err(why);
        }
        let name = lab_name();
        let mut spec = LabSpec::new(&name, machines);
        // Keep the cluster folder inside the lab's directory: tests never
        // write into the operator's /etc/ezctl.
        spec.home = spec.state_root.join(format!(".home-{name}"));
        spec.progress = true;
        let mut result = Lab::up(spec.clone());
        if let Err(LabError::SizeMismatch { .. }) = result {
            // Left up by an earlier run of this binary with another size.
            let _ = down_by_name(&name, &spec.state_root);
            result = Lab::up(spec.clone());
        }
        match result {
            Ok(lab) => {
                // SAFETY: registering a plain extern "C" fn without
                // captured state.
                unsafe {
                    libc::atexit(teardown_at_exit);
                }
                Ok(lab)
            }
            Err(e) if e.is_environment() => Err(e.to_string()),
            Err(e) => {
                let _ = down_by_name(&name, &spec.state_root);
                let _ = std::fs::remove_dir_all(&spec.home);
                panic!("lab {name} did not come up: {e}");
            }
        }
    });
    let lab = match lab {
        Ok(lab) => lab,
        Err(why) => {
            skip(&format!("the lab cannot run here: {why}"));
            return None;
        }
    };
    assert!(
        lab.hosts().len() >= machines,
        "this test binary's lab has {} machines, a test asked for {machines}: \
         ask for the largest size in the first call",
        lab.hosts().len()
    );
    record_run();
    Some(lab)
}

extern "C" fn teardown_at_exit() {
    // Panicking across the C boundary would abort: catch everything.
    let _ = std::panic::catch_unwind(|| {
        let Some(Ok(lab)) = LAB.get() else { return };
        if std::env::var_os("EZLAB_KEEP").is_some_and(|v| v == "1") {
            eprintln!("ezlab: EZLAB_KEEP=1, leaving lab {} up", lab.name());
            return;
        }
        let home = lab.dir().with_file_name(format!(".home-{}", lab.name()));
        match lab.down() {
            Ok(()) => eprintln!("ezlab: lab {} torn down", lab.name()),
            Err(e) => eprintln!("ezlab: tearing down lab {} failed: {e}", lab.name()),
        }
        let _ = std::fs::remove_dir_all(home);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct_below_the_ephemeral_range_and_bindable() {
        let ports: Vec<u16> = (0..50).map(|_| free_port()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len(), "{ports:?}");
        for p in ports {
            assert!((20_000..=32_767).contains(&p), "{p}");
            std::net::TcpListener::bind(("127.0.0.1", p)).expect("bindable");
        }
    }
}
