//! Brings up 5 real machines and checks what every other test relies on:
//! real systemd and sshd, strict host keys, distinct identities, isolated
//! disks, stop/start, reboot (exit 133) and a teardown that leaves nothing.

mod common;

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

use common::{assert_gone, ssh, DownOnDrop};
use ez_lab::{testing, Lab, LabSpec};

#[test]
fn five_machines_boot_isolate_restart_and_go_away() {
    if testing::ready().is_none() {
        return;
    }
    // Unique per test binary, and not the name the shared helper would use.
    let name = format!("e{}", &testing::lab_name()[1..]);
    let home = tempfile::tempdir().unwrap();
    let mut spec = LabSpec::new(&name, 5);
    spec.home = home.path().to_path_buf();
    spec.progress = true;

    let started = Instant::now();
    let lab = match Lab::up(spec.clone()) {
        Ok(lab) => lab,
        Err(e) => {
            let _ = ez_lab::down_by_name(&name, &spec.state_root);
            panic!("up failed: {e}");
        }
    };
    println!(
        "TIMING: up of 5 machines took {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let mut guard = DownOnDrop(Some(&lab));
    let hosts = lab.hosts();
    assert_eq!(hosts.len(), 5);

    // The cluster folder ezctl will use: key 0600, every machine in
    // known_hosts and hosts.yml.
    let cluster = lab.cluster_dir().expect("cluster folder written");
    assert_eq!(cluster, home.path().join("clusters").join(&name));
    let key = cluster.join("ssh/id_ed25519");
    let known_hosts = cluster.join("known_hosts");
    assert_eq!(std::fs::metadata(&key).unwrap().mode() & 0o777, 0o600);
    let hosts_yml = std::fs::read_to_string(cluster.join("hosts.yml")).unwrap();
    let kh = std::fs::read_to_string(&known_hosts).unwrap();
    for h in &hosts {
        assert!(
            hosts_yml.contains(&h.ip.to_string()),
            "{} not in hosts.yml",
            h.ip
        );
        assert!(kh.contains(&format!("{},{} ssh-ed25519 ", h.hostname, h.ip)));
    }

    // Real systemd and sshd on each, own hostname and machine-id.
    let mut ids = HashSet::new();
    for h in &hosts {
        let out = ssh(
            &key,
            &known_hosts,
            &h.ip.to_string(),
            "systemctl is-system-running; hostname; cat /etc/machine-id",
        );
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines.len(), 3, "{h:?}: {out:?}");
        assert!(
            lines[0] == "running" || lines[0] == "degraded",
            "{}: systemd is {}",
            h.hostname,
            lines[0]
        );
        assert_eq!(lines[1], h.hostname);
        assert_eq!(lines[2].len(), 32, "machine-id {:?}", lines[2]);
        assert!(
            ids.insert(lines[2].to_string()),
            "machine-id {} is shared",
            lines[2]
        );
    }

    // Strictness: with a known_hosts that lacks the machine, ssh refuses.
    let empty_kh = home.path().join("empty_known_hosts");
    std::fs::write(&empty_kh, "").unwrap();
    let refused = ssh(&key, &empty_kh, &hosts[0].ip.to_string(), "true");
    assert!(
        !refused.status.success(),
        "ssh accepted an unknown host key"
    );

    // Disks are separate: a file written on one is not on another.
    let (a, b) = (&hosts[0], &hosts[1]);
    let w = ssh(
        &key,
        &known_hosts,
        &a.ip.to_string(),
        "echo one > /root/ezlab-marker && sync",
    );
    assert!(w.status.success(), "{w:?}");
    let on_a = ssh(
        &key,
        &known_hosts,
        &a.ip.to_string(),
        "cat /root/ezlab-marker",
    );
    assert_eq!(on_a.stdout.trim(), "one");
    let on_b = ssh(
        &key,
        &known_hosts,
        &b.ip.to_string(),
        "test -e /root/ezlab-marker",
    );
    assert_eq!(
        on_b.status.code(),
        Some(1),
        "machine {} sees {}'s file",
        b.hostname,
        a.hostname
    );

    // Stop machine 3: it stops answering; start it: it answers again and
    // kept its disk.
    let c = &hosts[2];
    let w = ssh(
        &key,
        &known_hosts,
        &c.ip.to_string(),
        "echo kept > /root/before-stop && sync",
    );
    assert!(w.status.success(), "{w:?}");
    let t = Instant::now();
    lab.stop_machine(2).expect("stop");
    println!(
        "TIMING: stop of one machine took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert!(!lab.is_running(2));
    let down = ssh(&key, &known_hosts, &c.ip.to_string(), "true");
    assert!(!down.status.success(), "a stopped machine answered ssh");
    assert!(lab.is_running(1), "stopping one machine touched another");
    let t = Instant::now();
    lab.start_machine(2).expect("start");
    println!(
        "TIMING: start of one machine took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let back = ssh(
        &key,
        &known_hosts,
        &c.ip.to_string(),
        "hostname; cat /root/before-stop",
    );
    assert_eq!(back.stdout, format!("{}\nkept\n", c.hostname), "{back:?}");

    // `systemctl reboot` inside a machine exits nspawn with 133: the
    // launcher boots it again (new boot id, same machine).
    let d = &hosts[3];
    let boot_id = |out: ez_lab::cmd::Output| out.stdout.trim().to_string();
    let before = boot_id(ssh(
        &key,
        &known_hosts,
        &d.ip.to_string(),
        "cat /proc/sys/kernel/random/boot_id",
    ));
    assert_eq!(before.len(), 36);
    let _ = ssh(&key, &known_hosts, &d.ip.to_string(), "systemctl reboot");
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut after = String::new();
    while Instant::now() < deadline {
        let out = ssh(
            &key,
            &known_hosts,
            &d.ip.to_string(),
            "systemctl is-system-running --wait >/dev/null; cat /proc/sys/kernel/random/boot_id",
        );
        if out.status.success() && out.stdout.trim() != before {
            after = boot_id(out);
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        !after.is_empty(),
        "machine {} did not come back after reboot",
        d.hostname
    );
    assert!(lab.is_running(3));
    let log = std::fs::read_to_string(lab.log_path(3).unwrap()).unwrap();
    assert!(
        log.contains("exited with 133"),
        "reboot not seen in the launcher log"
    );

    // Down leaves nothing behind.
    let (lab_dir, controller) = (lab.dir(), lab.controller_ip().to_string());
    guard.0 = None;
    let t = Instant::now();
    lab.down().expect("down");
    println!(
        "TIMING: down of 5 machines took {:.1} s",
        t.elapsed().as_secs_f64()
    );
    assert_gone(&name, &lab_dir, &controller);
    assert!(!cluster.exists(), "cluster folder left");
}
