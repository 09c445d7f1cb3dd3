//! Helpers shared by the lab's integration tests (included with `mod common`).
#![allow(dead_code)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ez_lab::{cmd, Lab};

/// Tears the lab down if the test panics before its own `down`, so a failed
/// assertion does not leave machines running.
pub struct DownOnDrop<'a>(pub Option<&'a Lab>);

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        if let Some(lab) = self.0.take() {
            if let Err(e) = lab.down() {
                eprintln!("cleanup after failure: {e}");
            }
        }
    }
}

/// Plain OpenSSH client with the cluster folder's key and known_hosts and
/// strict host key checking: what an operator (or ezctl) would use.
pub fn ssh(key: &Path, known_hosts: &Path, ip: &str, remote: &str) -> cmd::Output {
    cmd::run(
        Command::new("ssh")
            .args(["-F", "/dev/null", "-i"])
            .arg(key)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
            .args([
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                "-o",
                "IdentitiesOnly=yes",
            ])
            .arg(format!("root@{ip}"))
            .arg(remote),
        Duration::from_secs(30),
    )
    .expect("ssh ran")
}

/// Asserts nothing of the lab is left on the host: netns, mounts, cgroups,
/// nspawn processes, its directory, its address on the bridge.
pub fn assert_gone(name: &str, lab_dir: &Path, controller_ip: &str) {
    let left = ez_lab::leftovers(name, lab_dir);
    assert!(left.is_empty(), "left behind: {left:?}");
    assert!(!lab_dir.exists(), "{} still exists", lab_dir.display());
    let netns = std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(&format!("ezlab-{name}.")))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    assert!(netns.is_empty(), "netns left: {netns:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&lab_dir.display().to_string()),
        "a mount under {} is left",
        lab_dir.display()
    );
    let addrs = cmd::run(
        Command::new("ip").args(["-4", "-o", "addr", "show"]),
        Duration::from_secs(10),
    )
    .unwrap()
    .stdout;
    assert!(
        !addrs.contains(&format!(" {controller_ip}/24 ")),
        "controller address {controller_ip} still configured"
    );
    let others = ez_lab::status(Path::new(ez_lab::DEFAULT_STATE_ROOT));
    if others.is_empty() {
        assert!(
            !Path::new("/sys/class/net")
                .join(ez_lab::net::BRIDGE)
                .exists(),
            "bridge left although no lab is up"
        );
    }
    let nspawn: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).ok())
        .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
        .filter(|c| c.contains("systemd-nspawn") && c.contains(&lab_dir.display().to_string()))
        .collect();
    assert!(nspawn.is_empty(), "nspawn processes left: {nspawn:?}");
}
