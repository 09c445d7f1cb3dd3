//! Issue 16: one controller, a thousand hosts, two of them in trouble.
//!
//! `ezctl play` over 1 000 light hosts (`ezlab up N --light`: a network
//! namespace with its own sshd each, no systemd) where one host is down
//! (its namespace gone: nothing answers ARP for its address) and one sits
//! behind a slow link (a token bucket of 4 kbit/s on what it sends, so its
//! every answer crawls). The run must finish, name the host that is down
//! (unreachable, with the reason) and the one that was slow (among the
//! hosts that finished last), and leave every other host converged. The
//! recap sums the hosts without a problem in one line instead of printing a
//! thousand identical ones.
//!
//! `EZ_LIGHT_SCALE_HOSTS` sets the number of hosts (default 1 000) for a
//! quicker look while developing; CI runs the default.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ez_lab::{testing, Lab, LabSpec};

const DEFAULT_HOSTS: usize = 1000;

/// Tears the lab down however the test ends.
struct LabGuard(Lab);

impl Drop for LabGuard {
    fn drop(&mut self) {
        if let Err(e) = self.0.down() {
            eprintln!("tearing down the light lab: {e}");
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

#[test]
fn a_thousand_hosts_one_down_one_slow_the_run_names_both_and_converges_the_rest() {
    if testing::ready().is_none() {
        return;
    }
    let n: usize = std::env::var("EZ_LIGHT_SCALE_HOSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_HOSTS);
    assert!(n >= 12, "the test needs at least 12 hosts, not {n}");
    let home = tempfile::tempdir().expect("home");
    // Unique per test binary, and not a name other lab tests use.
    let name = format!("s{}", &testing::lab_name()[1..]);
    let _ = ez_lab::down_by_name(&name, Path::new(ez_lab::DEFAULT_STATE_ROOT));
    let mut spec = LabSpec::light(&name, n);
    spec.home = home.path().to_path_buf();
    spec.progress = false;
    let t = Instant::now();
    let lab = LabGuard(Lab::up(spec).expect("light hosts up"));
    eprintln!("{n} light hosts up in {:.0} s", t.elapsed().as_secs_f64());
    let lab = &lab.0;
    let hosts = lab.hosts();

    // The slow host is the last of the inventory, so it is also among the
    // last to be reached: it must finish last by the time its link costs.
    let (down, slow) = (1, n - 1);
    let shaped = lab
        .ssh_run(
            slow,
            "tc qdisc replace dev eth0 root tbf rate 4kbit burst 1600 latency 60s",
            Duration::from_secs(60),
        )
        .expect("ssh to the slow host");
    assert!(
        shaped.status.success(),
        "shaping the slow host's link: {shaped:?}"
    );
    lab.stop_machine(down).expect("stop one host");
    let (down_ip, slow_ip) = (hosts[down].ip.to_string(), hosts[slow].ip.to_string());

    write(
        &home.path().join("scale/playbook.yml"),
        "- role: scale-probe\n  hosts: all\n",
    );
    write(
        &home.path().join("scale/roles/scale-probe/tasks.yml"),
        "- name: marker directory\n  file: { path: /opt/ezctl-scale, state: directory, mode: \"0755\" }\n\
         - name: marker\n  copy: { content: \"{{ inventory_hostname }}\\n\", dest: /opt/ezctl-scale/host, mode: \"0644\" }\n\
         - name: check\n  command: { cmd: \"cat /opt/ezctl-scale/host\", changed_when: false }\n",
    );
    let t = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_ezctl"))
        .arg("--home")
        .arg(home.path())
        .args(["--color", "never", "play", &lab.name()])
        .arg(home.path().join("scale/playbook.yml"))
        .arg("--roles")
        .arg(home.path().join("scale/roles"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run ezctl");
    let took = t.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let recap = stderr
        .rfind("RECAP")
        .map_or(stderr.as_ref(), |i| &stderr[i..]);
    eprintln!(
        "ezctl play over {n} hosts took {:.1} s; recap:\n{recap}",
        took.as_secs_f64()
    );

    assert_eq!(
        out.status.code(),
        Some(1),
        "a host is down, so the run fails (exit 1): {recap}"
    );
    assert!(
        recap.contains(&format!(
            "failed: scale-probe on {down_ip}: unreachable: no SSH connection to {down_ip}:22"
        )),
        "the host that is down is named with the reason: {recap}"
    );
    let others = n - 1;
    assert!(
        recap.contains(&format!(
            "{others} other hosts without a problem: ok={others} changed={} skipped=0 in all",
            2 * others
        )),
        "every other host converged (two changes and one check each): {recap}"
    );
    let last = recap
        .lines()
        .find(|l| l.starts_with("finished last: "))
        .unwrap_or_else(|| panic!("no line names the hosts that finished last: {recap}"));
    assert!(
        last.starts_with(&format!("finished last: {slow_ip} ")),
        "the slow host finished last: {last}"
    );
    // The slow host got its files, slowly.
    let there = lab
        .ssh_run(slow, "cat /opt/ezctl-scale/host", Duration::from_secs(120))
        .expect("ssh to the slow host");
    assert_eq!(there.stdout.trim(), slow_ip, "{there:?}");
}
