//! Light hosts end to end through the `ezlab` binary: `up 5 --light` on two
//! bridges (3 hosts per bridge), root over ssh with the cluster folder's key
//! and strict host keys, private files per host, one network across the
//! bridges, stop/start of one host, `status`, and a `down` that leaves no
//! namespace, link, process, mount or cgroup behind.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::ssh;
use ez_lab::{cmd, testing, Lab};

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

/// Removes the lab if the test fails before its own `down`.
struct DownByName(Option<String>);

impl Drop for DownByName {
    fn drop(&mut self) {
        if let Some(name) = self.0.take() {
            if let Err(e) = ez_lab::down_by_name(&name, Path::new(ez_lab::DEFAULT_STATE_ROOT)) {
                eprintln!("cleanup after failure: {e}");
            }
        }
    }
}

#[test]
fn light_hosts_answer_ssh_keep_their_files_apart_and_go_away() {
    if testing::ready().is_none() {
        return;
    }
    // Unique per test binary, and not the name any other lab test uses.
    let name = format!("l{}", &testing::lab_name()[1..]);
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let state_root = Path::new(ez_lab::DEFAULT_STATE_ROOT);
    // Leftovers of a killed earlier run of this binary.
    let _ = ez_lab::down_by_name(&name, state_root);

    let started = Instant::now();
    let mut guard = DownByName(Some(name.clone()));
    let up = ezlab(
        h,
        &[
            "up",
            "5",
            "--light",
            "--name",
            &name,
            "--hosts-per-bridge",
            "3",
        ],
    );
    assert!(up.status.success(), "up failed");
    println!(
        "TIMING: up of 5 light hosts took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let lab = Lab::open(&name, state_root).expect("lab state");
    assert!(lab.is_light());
    let hosts = lab.hosts();
    assert_eq!(hosts.len(), 5);
    let subnet = lab.subnet();
    assert!(
        subnet.starts_with("10.232.") && subnet.ends_with(".0/24"),
        "{subnet}"
    );
    let base: u8 = subnet.split('.').nth(2).unwrap().parse().unwrap();

    // Two bridges, chained: hosts 1-3 on the first, 4-5 on the second.
    for (i, want) in [(0, 0), (2, 0), (3, 1), (4, 1)] {
        let veth = ez_lab::light::veth_name(base, i);
        let master = std::fs::read_link(format!("/sys/class/net/{veth}/master")).unwrap();
        assert_eq!(
            master.file_name().unwrap().to_string_lossy(),
            ez_lab::light::bridge_name(base, want),
            "host {i}"
        );
    }

    // The cluster folder ezctl (and the bench) use: every host in hosts.yml
    // and known_hosts; ssh as root with strict host key checking.
    let cluster = lab.cluster_dir().expect("cluster folder written");
    assert_eq!(cluster, h.join("clusters").join(&name));
    let key = cluster.join("ssh/id_ed25519");
    let known_hosts = cluster.join("known_hosts");
    let hosts_yml = std::fs::read_to_string(cluster.join("hosts.yml")).unwrap();
    assert!(!hosts_yml.contains("ex_lb:\n"), "light hosts run no ex-lb");
    for host in &hosts {
        assert!(hosts_yml.contains(&format!("  - {}    # {}", host.ip, host.hostname)));
        let out = ssh(
            &key,
            &known_hosts,
            &host.ip.to_string(),
            "id -u; hostname; cat /proc/1/comm; ip -4 -o addr show dev eth0 | wc -l; ip route",
        );
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert!(out.status.success(), "{}: {out:?}", host.hostname);
        assert_eq!(lines[0], "0", "{}: not root", host.hostname);
        assert_eq!(lines[1], host.hostname);
        // No systemd: the host's own sshd is PID 1 of its PID namespace.
        assert_eq!(lines[2], "sshd", "{}: PID 1 is {}", host.hostname, lines[2]);
        assert_eq!(lines[3], "1");
        // On-link only: nothing is routed out of the lab's block.
        assert!(
            !out.stdout.contains("default"),
            "{}: {}",
            host.hostname,
            out.stdout
        );
    }

    // Private files: what host 1 writes in /etc, /var, /tmp and /root is
    // there on host 1 only (not on the others, not on the controller).
    let mark = format!("ezlab-light-{}", std::process::id());
    let paths = ["/etc", "/var/lib", "/tmp", "/root"].map(|d| format!("{d}/{mark}"));
    let write = ssh(
        &key,
        &known_hosts,
        &hosts[0].ip.to_string(),
        &format!("for p in {}; do echo one > $p; done", paths.join(" ")),
    );
    assert!(write.status.success(), "{write:?}");
    for host in &hosts {
        let out = ssh(
            &key,
            &known_hosts,
            &host.ip.to_string(),
            &format!(
                "for p in {}; do cat $p 2>/dev/null || echo -; done",
                paths.join(" ")
            ),
        );
        let want = if host.index == 0 { "one" } else { "-" };
        assert_eq!(
            out.stdout.lines().collect::<Vec<_>>(),
            vec![want; paths.len()],
            "{}",
            host.hostname
        );
    }
    for p in &paths {
        assert!(!Path::new(p).exists(), "{p} reached the controller");
    }

    // One network over both bridges: host 1 reaches host 5's sshd.
    let cross = ssh(
        &key,
        &known_hosts,
        &hosts[0].ip.to_string(),
        &format!("timeout 5 bash -c 'head -c 7 </dev/tcp/{}/22'", hosts[4].ip),
    );
    assert_eq!(cross.stdout, "SSH-2.0", "{cross:?}");

    // A stopped host is down for ssh; started again it is the same host.
    lab.stop_machine(1).expect("stop host 2");
    assert!(!lab.is_running(1));
    let refused = ssh(&key, &known_hosts, &hosts[1].ip.to_string(), "true");
    assert!(!refused.status.success());
    lab.start_machine(1).expect("start host 2");
    let again = ssh(&key, &known_hosts, &hosts[1].ip.to_string(), "hostname");
    assert_eq!(again.stdout.trim(), hosts[1].hostname);

    let status = ezlab(h, &["status"]);
    assert!(status.status.success());
    assert!(
        status
            .stdout
            .contains(&format!("{name} (light)  {subnet}  5/5 running")),
        "{}",
        status.stdout
    );

    let (dir, controller) = (lab.dir(), lab.controller_ip().to_string());
    let init = ez_lab::light::init_path(&dir).display().to_string();
    let t = Instant::now();
    let down = ezlab(h, &["down", "--name", &name]);
    assert!(down.status.success(), "down failed");
    guard.0 = None;
    println!(
        "TIMING: down of 5 light hosts took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    common::assert_gone(&name, &dir, &controller);
    assert!(
        ez_lab::light::links_of(&name).is_empty(),
        "links left: {:?}",
        ez_lab::light::links_of(&name)
    );
    let left: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("ezl{base}")))
        .collect();
    assert!(left.is_empty(), "links left: {left:?}");
    let procs: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .filter(|c| c.contains(&init))
        .collect();
    assert!(procs.is_empty(), "launchers left: {procs:?}");
    for hier in ["unified", "memory", "systemd"] {
        let cg = Path::new("/sys/fs/cgroup")
            .join(hier)
            .join("ezlab")
            .join(&name);
        assert!(!cg.exists(), "{} left", cg.display());
    }
    assert!(!cluster.exists(), "cluster folder left");
}
