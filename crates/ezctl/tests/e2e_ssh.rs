//! How ezctl reaches and writes on real machines over SSH.
//!
//! A cluster-wide jump host that is also one of the inventory's hosts: the
//! run completes, that host is reached directly, every other host through
//! it (their sshd sees the jump host as the client), with the inventory's
//! key for the jump connection. Before, the jump host waited for a
//! connection to itself forever and the jump login ignored `ssh.key`.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;

/// A copy of the lab's cluster whose hosts.yml says `jump: root@<first>`.
fn jump_cluster(env: &Env, name: &str, jump: &str) -> std::path::PathBuf {
    let src = env.cluster_dir();
    let dst = env.home.join("clusters").join(name);
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(dst.join("ssh")).expect("mkdir");
    for f in [
        "config.yml",
        "known_hosts",
        "ssh/id_ed25519",
        "ssh/id_ed25519.pub",
    ] {
        std::fs::copy(src.join(f), dst.join(f)).expect("copy");
    }
    let hosts = std::fs::read_to_string(src.join("hosts.yml")).expect("hosts.yml");
    let hosts = hosts.replacen("ssh:\n", &format!("ssh:\n  jump: root@{jump}\n"), 1);
    assert!(hosts.contains("jump: root@"), "{hosts}");
    std::fs::write(dst.join("hosts.yml"), hosts).expect("write");
    // The copy's key keeps its mode (ssh refuses a readable key).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        dst.join("ssh/id_ed25519"),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod");
    dst
}

/// Run ezctl, killed after `limit`: a hang is a failure, not a stuck test.
fn ezctl_within(home: &Path, args: &[&str], limit: Duration) -> (bool, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ezctl"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("NO_COLOR", "1")
        // Only the inventory's key: no agent, no ~/.ssh fallback.
        .env_remove("SSH_AUTH_SOCK")
        .env("HOME", home)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn ezctl");
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut out = String::new();
            let _ = child.stdout.take().map(|mut o| o.read_to_string(&mut out));
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut out));
            return (status.success(), out);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let mut out = String::new();
            let _ = child.stdout.take().map(|mut o| o.read_to_string(&mut out));
            let _ = child.stderr.take().map(|mut e| e.read_to_string(&mut out));
            panic!(
                "ezctl {} did not finish within {limit:?}:\n{out}",
                args.join(" ")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_cluster_wide_jump_host_that_is_an_inventory_host() {
    let Some(env) = common::env(3) else { return };
    let hosts: Vec<String> = env.lab.hosts().iter().map(|h| h.ip.to_string()).collect();
    let jump = hosts[0].clone();
    let name = "jumpy";
    jump_cluster(env, name, &jump);
    let dir = tempfile::tempdir().expect("tempdir");
    // A play (the engine's connector) and an ad-hoc exec (ezctl's pool).
    let roles = dir.path().join("roles/whence/tasks.yml");
    std::fs::create_dir_all(roles.parent().unwrap()).expect("mkdir");
    std::fs::write(
        &roles,
        "- name: where the ssh client is\n  shell: { cmd: \"echo ${SSH_CONNECTION%% *} > /tmp/ezctl-jump-test\" }\n",
    )
    .expect("role");
    let playbook = dir.path().join("whence.yml");
    std::fs::write(&playbook, "- { role: whence, hosts: all }\n").expect("playbook");
    let (ok, out) = ezctl_within(
        &env.home,
        &[
            "play",
            name,
            playbook.to_str().unwrap(),
            "--roles",
            dir.path().join("roles").to_str().unwrap(),
        ],
        Duration::from_secs(180),
    );
    assert!(ok, "play through the jump host failed:\n{out}");
    let controller = env.lab.controller_ip().to_string();
    for ip in &hosts {
        let client = env.on(ip, "cat /tmp/ezctl-jump-test").1.trim().to_string();
        let want = if *ip == jump { &controller } else { &jump };
        assert_eq!(&client, want, "{ip} was reached from {client}");
    }
    let (ok, out) = ezctl_within(
        &env.home,
        // One argument: a shell command line, expanded on the host.
        &["exec", name, "--", "echo via-${SSH_CONNECTION%% *}"],
        Duration::from_secs(120),
    );
    assert!(ok, "exec through the jump host failed:\n{out}");
    for ip in &hosts {
        let want = if *ip == jump { &controller } else { &jump };
        assert!(out.contains(&format!("via-{want}")), "{ip}: {out}");
    }
}

/// A file written without a mode keeps the mode of the file it replaces:
/// ezctl's SSH transport made an existing 0600 file 0644.
#[test]
fn a_copy_without_a_mode_keeps_the_mode_of_the_file_it_replaces() {
    let Some(env) = common::env(3) else { return };
    let ip = env.lab.hosts()[1].ip.to_string();
    let (code, out) = env.on(
        &ip,
        "printf old > /root/ezctl-mode-test && chmod 600 /root/ezctl-mode-test && rm -f /root/ezctl-mode-new",
    );
    assert_eq!(code, 0, "{out}");
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = dir.path().join("roles/modes/tasks.yml");
    std::fs::create_dir_all(tasks.parent().unwrap()).expect("mkdir");
    std::fs::write(
        &tasks,
        "- name: replace a private file\n  copy: { content: \"new\\n\", dest: /root/ezctl-mode-test }\n- name: a new file\n  copy: { content: \"x\\n\", dest: /root/ezctl-mode-new }\n",
    )
    .expect("role");
    let playbook = dir.path().join("modes.yml");
    std::fs::write(&playbook, format!("- {{ role: modes, hosts: \"{ip}\" }}\n")).expect("playbook");
    let (ok, out) = ezctl_within(
        &env.home,
        &[
            "play",
            &env.cluster,
            playbook.to_str().unwrap(),
            "--roles",
            dir.path().join("roles").to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    assert!(ok, "{out}");
    let (_, stat) = env.on(
        &ip,
        "cat /root/ezctl-mode-test; stat -c %a /root/ezctl-mode-test /root/ezctl-mode-new",
    );
    assert_eq!(stat, "new\n600\n644\n", "content and modes");
}
