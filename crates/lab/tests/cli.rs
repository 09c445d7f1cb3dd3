//! The `ezlab` binary end to end: up 7 (default layout with ex-lb and
//! harbor), status, ssh, idempotent up, size mismatch, down.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ez_lab::{cmd, testing};

fn ezlab(home: &Path, args: &[&str]) -> cmd::Output {
    let out = cmd::run(
        Command::new(env!("CARGO_BIN_EXE_ezlab"))
            .arg("--home")
            .arg(home)
            .args(args),
        Duration::from_secs(900),
    )
    .expect("ezlab ran");
    println!("$ ezlab {}\n{}{}", args.join(" "), out.stdout, out.stderr);
    out
}

#[test]
fn ezlab_up_status_ssh_down() {
    if let Some(why) = testing::skip_reason() {
        eprintln!("skipping: {why}");
        return;
    }
    let name = format!("c{}", &testing::lab_name()[1..]);
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    let started = Instant::now();
    let up = ezlab(h, &["up", "7", "--name", &name]);
    if !up.status.success() {
        let _ = ezlab(h, &["down", "--name", &name]);
        panic!("ezlab up failed");
    }
    println!(
        "TIMING: ezlab up 7 took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let cleanup = CliDown(h, &name);

    let cluster = h.join("clusters").join(&name);
    let hosts_yml = std::fs::read_to_string(cluster.join("hosts.yml")).unwrap();
    assert!(
        hosts_yml.contains("lb_role: master") && hosts_yml.contains("lb_role: backup"),
        "{hosts_yml}"
    );
    assert!(hosts_yml.contains("harbor:\n  - { ip: "), "{hosts_yml}");

    let status = ezlab(h, &["status"]);
    assert!(status.status.success());
    assert!(
        status.stdout.contains(&format!("{name}  10.231.")),
        "{}",
        status.stdout
    );
    assert!(status.stdout.contains("7/7 running"), "{}", status.stdout);
    let first = format!("{name}-1");
    assert!(status.stdout.contains(&first));

    let ssh = ezlab(h, &["ssh", &first, "--name", &name, "--", "hostname"]);
    assert!(ssh.status.success());
    assert_eq!(ssh.stdout.trim(), first);
    // By number too, and the remote exit code comes back.
    let ssh = ezlab(h, &["ssh", "7", "--name", &name, "--", "exit 3"]);
    assert_eq!(ssh.status.code(), Some(3));

    // Idempotent: same size is left alone, another size is refused.
    let t = Instant::now();
    let again = ezlab(h, &["up", "7", "--name", &name]);
    assert!(again.status.success());
    assert!(again.stderr.contains("already up"), "{}", again.stderr);
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "re-up rebuilt the lab"
    );
    let other = ezlab(h, &["up", "3", "--name", &name]);
    assert!(!other.status.success());
    assert!(
        other.stderr.contains("already up with 7 machines"),
        "{}",
        other.stderr
    );

    std::mem::forget(cleanup);
    let lab = ez_lab::Lab::open(&name, Path::new(ez_lab::DEFAULT_STATE_ROOT)).unwrap();
    let (dir, controller) = (lab.dir(), lab.controller_ip().to_string());
    let down = ezlab(h, &["down", "--name", &name]);
    assert!(down.status.success());
    common::assert_gone(&name, &dir, &controller);
    assert!(!cluster.exists());
    let status = ezlab(h, &["status"]);
    assert!(!status.stdout.contains(&name));
}

struct CliDown<'a>(&'a Path, &'a str);

impl Drop for CliDown<'_> {
    fn drop(&mut self) {
        let _ = ezlab(self.0, &["down", "--name", self.1]);
    }
}
