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
    if testing::ready().is_none() {
        return;
    }
    let name = format!("c{}", &testing::lab_name()[1..]);
    let home = tempfile::tempdir().unwrap();
    let h = home.path();

    // `up` runs with a descriptor of its caller open (as under `flock` or a
    // CI runner's pipe); the machines it launches must not keep it.
    let held = h.join("held-by-the-caller");
    std::fs::write(&held, "").unwrap();
    let with_fd = |inner: &str| {
        cmd::run(
            Command::new("sh")
                .arg("-c")
                .arg(format!("exec 9<'{}'; {inner}", held.display())),
            Duration::from_secs(900),
        )
        .expect("sh ran")
    };
    let control = with_fd("ls -l /proc/self/fd/");
    assert!(
        control.stdout.contains(&held.display().to_string()),
        "the caller's descriptor is not visible to its children: {}",
        control.stdout
    );
    let started = Instant::now();
    let up = with_fd(&format!(
        "exec '{}' --home '{}' up 7 --name {name}",
        env!("CARGO_BIN_EXE_ezlab"),
        h.display()
    ));
    println!("$ ezlab up 7 --name {name}\n{}{}", up.stdout, up.stderr);
    if !up.status.success() {
        let _ = ezlab(h, &["down", "--name", &name]);
        panic!("ezlab up failed");
    }
    println!(
        "TIMING: ezlab up 7 took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let cleanup = CliDown(h, &name);
    let lab = ez_lab::Lab::open(&name, Path::new(ez_lab::DEFAULT_STATE_ROOT)).expect("lab state");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(lab.dir().join("state.json")).expect("state.json"),
    )
    .expect("state JSON");
    let launchers: Vec<i64> = state["machines"]
        .as_array()
        .expect("machines")
        .iter()
        .filter_map(|m| m["launcher_pid"].as_i64())
        .collect();
    assert_eq!(launchers.len(), 7, "{state}");
    for pid in launchers {
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).expect("launcher fds");
        for fd in fds.flatten() {
            let target = std::fs::read_link(fd.path()).unwrap_or_default();
            assert_ne!(
                target, held,
                "machine launcher {pid} holds the caller's descriptor"
            );
        }
    }

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

/// `up` killed half way (machines launched, state incomplete): `down` still
/// removes everything, and a new `up` of the same name works afterwards.
#[test]
fn down_cleans_up_after_a_killed_up() {
    if testing::ready().is_none() {
        return;
    }
    let name = format!("k{}", &testing::lab_name()[1..]);
    let home = tempfile::tempdir().unwrap();
    let state_file = Path::new(ez_lab::DEFAULT_STATE_ROOT)
        .join(&name)
        .join("state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ezlab"))
        .arg("--home")
        .arg(home.path())
        .args(["up", "3", "--name", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill it as soon as the first machine has been launched.
    let deadline = Instant::now() + Duration::from_secs(300);
    let launched = loop {
        let text = std::fs::read_to_string(&state_file).unwrap_or_default();
        let state: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let any_launched = state["machines"]
            .as_array()
            .is_some_and(|ms| ms.iter().any(|m| m["launcher_pid"].is_number()));
        if any_launched {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    let lab = ez_lab::Lab::open(&name, Path::new(ez_lab::DEFAULT_STATE_ROOT));
    assert!(launched, "up never launched a machine");
    let lab = lab.expect("state.json of the killed up");
    let (dir, controller) = (lab.dir(), lab.controller_ip().to_string());
    let status = ezlab(home.path(), &["status"]);
    assert!(status.stdout.contains(&name), "{}", status.stdout);

    let down = ezlab(home.path(), &["down", "--name", &name]);
    assert!(down.status.success(), "{}", down.stderr);
    common::assert_gone(&name, &dir, &controller);

    // The name is free again.
    let up = ezlab(home.path(), &["up", "1", "--name", &name]);
    let down = ezlab(home.path(), &["down", "--name", &name]);
    assert!(up.status.success() && down.status.success());
}
