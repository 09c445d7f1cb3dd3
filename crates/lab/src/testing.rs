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

use std::sync::OnceLock;

use crate::doctor;
use crate::error::LabError;
use crate::lab::{down_by_name, Lab, LabSpec};

static LAB: OnceLock<Option<Lab>> = OnceLock::new();

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
/// printing why) when the lab cannot run here. Panics when the lab fails to
/// come up for any other reason: that is a real failure.
pub fn shared_lab(machines: usize) -> Option<&'static Lab> {
    let lab = LAB
        .get_or_init(|| {
            if let Some(why) = skip_reason() {
                eprintln!("ezlab: skipping lab tests: {why}");
                return None;
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
                    Some(lab)
                }
                Err(e) if e.is_environment() => {
                    eprintln!("ezlab: skipping lab tests: {e}");
                    None
                }
                Err(e) => {
                    let _ = down_by_name(&name, &spec.state_root);
                    let _ = std::fs::remove_dir_all(&spec.home);
                    panic!("lab {name} did not come up: {e}");
                }
            }
        })
        .as_ref()?;
    assert!(
        lab.hosts().len() >= machines,
        "this test binary's lab has {} machines, a test asked for {machines}: \
         ask for the largest size in the first call",
        lab.hosts().len()
    );
    Some(lab)
}

extern "C" fn teardown_at_exit() {
    // Panicking across the C boundary would abort: catch everything.
    let _ = std::panic::catch_unwind(|| {
        let Some(Some(lab)) = LAB.get() else { return };
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
