//! Failures say what failed and where to look.

mod common;

use std::time::Duration;

use ez_lab::{testing, Lab, LabError, LabSpec};

#[test]
fn a_machine_that_does_not_answer_in_time_is_named_with_its_log() {
    if testing::ready().is_none() {
        return;
    }
    let name = format!("r{}", &testing::lab_name()[1..]);
    let home = tempfile::tempdir().unwrap();
    let mut spec = LabSpec::new(&name, 1);
    spec.home = home.path().to_path_buf();
    // No machine boots in zero time.
    spec.ready_timeout = Duration::ZERO;
    let err = Lab::up(spec.clone()).expect_err("up cannot succeed with a zero timeout");
    let lab_dir = spec.state_root.join(&name);
    let text = err.to_string();
    let _ = ez_lab::down_by_name(&name, &spec.state_root);
    match err {
        LabError::NotReady { machine, log, .. } => {
            assert_eq!(machine, format!("{name}-1"));
            assert_eq!(log, lab_dir.join(format!("logs/{name}-1.log")));
        }
        other => panic!("expected NotReady, got {other}"),
    }
    assert!(
        text.contains(&format!("{name}-1")) && text.contains(".log"),
        "{text}"
    );
    let left = ez_lab::leftovers(&name, &lab_dir);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn bad_requests_fail_before_touching_the_host() {
    let spec = LabSpec::new("Bad_Name", 1);
    assert!(matches!(Lab::up(spec), Err(LabError::InvalidName { .. })));
    let spec = LabSpec::new("ok", 0);
    assert!(matches!(Lab::up(spec), Err(LabError::InvalidSize { .. })));
    let mut spec = LabSpec::new("ok", 3);
    spec.layout = Some(ez_lab::Layout::parse("etcd=1,master=1,node=2").unwrap());
    assert!(matches!(Lab::up(spec), Err(LabError::InvalidLayout { .. })));
}
