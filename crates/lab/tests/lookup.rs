//! `ezlab ssh` finds a machine across every lab that is up: two labs of
//! one machine each, reached by IP and by hostname without `--name`; a
//! machine number both labs have is refused, listing both; `--name`
//! narrows the search. Needs root and the lab.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::DownOnDrop;
use ez_lab::{cmd, testing, Lab, LabSpec};

fn ezlab(args: &[&str]) -> cmd::Output {
    let out = cmd::run(
        Command::new(env!("CARGO_BIN_EXE_ezlab")).args(args),
        Duration::from_secs(120),
    )
    .expect("ezlab ran");
    println!("$ ezlab {}\n{}{}", args.join(" "), out.stdout, out.stderr);
    out
}

fn up(name: &str, home: &Path) -> Lab {
    let mut spec = LabSpec::new(name, 1);
    spec.home = home.to_path_buf();
    spec.progress = true;
    Lab::up(spec).unwrap_or_else(|e| panic!("lab {name} did not come up: {e}"))
}

#[test]
fn ssh_finds_a_machine_in_any_lab_and_lists_the_candidates_of_an_ambiguous_name() {
    if testing::ready().is_none() {
        return;
    }
    // Named after this test binary, like every test lab: a re-run reuses
    // (or replaces) its own labs, never another test's.
    let names = [
        format!("a{}", &testing::lab_name()[1..]),
        format!("b{}", &testing::lab_name()[1..]),
    ];
    let home = tempfile::tempdir().unwrap();
    let first = up(&names[0], home.path());
    let _down_first = DownOnDrop(Some(&first));
    let second = up(&names[1], home.path());
    let _down_second = DownOnDrop(Some(&second));
    let machines: Vec<(String, String, String)> = [&first, &second]
        .iter()
        .map(|l| {
            let h = &l.hosts()[0];
            (l.name(), h.hostname.clone(), h.ip.to_string())
        })
        .collect();

    // By IP and by hostname, without --name: the machine answers as itself.
    for (lab, hostname, ip) in &machines {
        for by in [ip, hostname] {
            let out = ezlab(&["ssh", by, "--", "hostname"]);
            assert!(out.status.success(), "{lab}: ssh {by}: {}", out.stderr);
            assert_eq!(out.stdout.trim(), hostname, "ssh {by}");
        }
    }

    // A number both labs have: refused, both candidates listed, no ssh run.
    let out = ezlab(&["ssh", "1", "--", "echo reached"]);
    assert!(!out.status.success(), "an ambiguous name was accepted");
    assert!(!out.stdout.contains("reached"), "{}", out.stdout);
    assert!(out.stderr.contains("--name"), "{}", out.stderr);
    for (lab, hostname, ip) in &machines {
        let want = format!("{lab}: {hostname} {ip}");
        assert!(
            out.stderr.contains(&want),
            "candidate `{want}` not listed: {}",
            out.stderr
        );
    }

    // --name narrows: the number in one lab, and another lab's IP not found.
    let out = ezlab(&["ssh", "1", "--name", &names[1], "--", "hostname"]);
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(out.stdout.trim(), machines[1].1);
    let out = ezlab(&["ssh", &machines[1].2, "--name", &names[0], "--", "true"]);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains(&format!("lab {} has no machine", names[0])),
        "{}",
        out.stderr
    );
    // A machine no lab has: said so, naming the labs looked in.
    let out = ezlab(&["ssh", "10.231.255.254", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("no machine \"10.231.255.254\" in any lab")
            && out.stderr.contains(&names[0])
            && out.stderr.contains(&names[1]),
        "{}",
        out.stderr
    );
}
