//! Time of `up` and `down` for 20 machines (printed, not asserted: the
//! numbers depend on the machine). `EZLAB_SCALE_N` changes the size.

mod common;

use std::time::{Duration, Instant};

use common::DownOnDrop;
use ez_lab::{testing, Lab, LabSpec};

#[test]
fn twenty_machines_come_up_and_go_away() {
    if testing::ready().is_none() {
        return;
    }
    let n: usize = std::env::var("EZLAB_SCALE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let name = format!("s{}", &testing::lab_name()[1..]);
    let home = tempfile::tempdir().unwrap();
    let mut spec = LabSpec::new(&name, n);
    spec.home = home.path().to_path_buf();
    spec.progress = true;

    let started = Instant::now();
    let lab = match Lab::up(spec.clone()) {
        Ok(lab) => lab,
        Err(e) => {
            let _ = ez_lab::down_by_name(&name, &spec.state_root);
            panic!("up of {n} failed: {e}");
        }
    };
    println!(
        "TIMING: up of {n} machines took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut guard = DownOnDrop(Some(&lab));

    // Every machine answers with its own name (up already waited for
    // systemd; this checks the last one as much as the first).
    for h in lab.hosts() {
        let out = lab
            .ssh_run(h.index, "hostname", Duration::from_secs(30))
            .unwrap();
        assert_eq!(out.stdout.trim(), h.hostname, "{out:?}");
    }

    let (dir, controller) = (lab.dir(), lab.controller_ip().to_string());
    guard.0 = None;
    let t = Instant::now();
    lab.down().expect("down");
    println!(
        "TIMING: down of {n} machines took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    common::assert_gone(&name, &dir, &controller);
}
