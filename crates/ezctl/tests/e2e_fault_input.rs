//! Bad input against a real cluster: a broken hosts.yml or config.yml
//! (YAML syntax, wrong types, non-UTF-8, a 5 MB file, symlink loops in
//! clusters/) makes `ezctl setup` exit 3 with a message naming file:line
//! (or the file, where there is no line), and no host is touched: nothing
//! on any machine is newer than a marker written before, no /etc/kubernetes,
//! no /opt/kube/bin; nothing is written on the controller either (no ssl/,
//! no logs/, no lock). Own test binary (own lab). Needs root and the lab;
//! says why and passes where missing.

mod common;
mod fault_support;

use std::path::Path;

use common::{text, Env};
use fault_support::*;

const MARKER: &str = "/root/.ezf-untouched-marker";

/// Files on the host's root filesystem changed since the marker (/run is a
/// mount point of its own and changes by itself).
fn touched_since_marker(env: &Env, ip: &str) -> String {
    let (code, out) = inside(
        env,
        ip,
        &format!("find / -xdev -newer {MARKER} -not -path /run 2>/dev/null; true"),
    );
    assert_eq!(code, 0, "{out}");
    out.trim().to_string()
}

struct Case {
    name: &'static str,
    /// Sets the bad input up in the cluster folder.
    break_it: fn(&Path),
    /// What the error must say (besides exit 3 and "nothing was done").
    says: &'static [&'static str],
}

fn replace_line(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(
        text.contains(from),
        "{}: no `{from}` in\n{text}",
        path.display()
    );
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

fn first_etcd_line(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("hosts.yml")).expect("hosts.yml");
    let mut in_etcd = false;
    for line in text.lines() {
        if line.starts_with("etcd:") {
            in_etcd = true;
        } else if in_etcd && line.trim_start().starts_with("- ") {
            return line.to_string();
        }
    }
    panic!("no etcd host line in\n{text}")
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "YAML syntax error (unclosed quote)",
            break_it: |d| {
                let line = first_etcd_line(d);
                replace_line(&d.join("hosts.yml"), &line, &line.replacen("- ", "- \"", 1));
            },
            says: &["hosts.yml:", "YAML syntax error"],
        },
        Case {
            name: "wrong type (a group that is one value)",
            break_it: |d| replace_line(&d.join("hosts.yml"), "harbor: []", "harbor: just-a-word"),
            says: &[
                "hosts.yml:",
                "harbor: expected a list of hosts, found a single value",
            ],
        },
        Case {
            name: "non-UTF-8 hosts.yml",
            break_it: |d| {
                let mut bytes = std::fs::read(d.join("hosts.yml")).expect("hosts");
                bytes.extend_from_slice(b"# caf\xe9\n");
                std::fs::write(d.join("hosts.yml"), bytes).expect("write");
            },
            says: &["hosts.yml:", "file is not valid UTF-8 text"],
        },
        Case {
            name: "a 5 MB hosts.yml",
            break_it: |d| {
                let mut text = std::fs::read_to_string(d.join("hosts.yml")).expect("hosts");
                while text.len() < 5 * 1024 * 1024 {
                    text.push_str("# padding padding padding padding padding padding padding\n");
                }
                std::fs::write(d.join("hosts.yml"), text).expect("write");
            },
            says: &["hosts.yml:1:1:", "larger than"],
        },
        Case {
            name: "hosts.yml is a symlink loop",
            break_it: |d| {
                std::fs::remove_file(d.join("hosts.yml")).expect("rm");
                std::os::unix::fs::symlink("hosts.yml", d.join("hosts.yml")).expect("ln");
            },
            says: &["hosts.yml", "symbolic link"],
        },
        Case {
            name: "config.yml is a symlink loop",
            break_it: |d| {
                let _ = std::fs::remove_file(d.join("config.yml"));
                std::os::unix::fs::symlink("config.yml", d.join("config.yml")).expect("ln");
            },
            says: &["config.yml", "symbolic link"],
        },
        Case {
            name: "config.yml wrong type",
            // The lab's config.yml may be `{}`: the bad one replaces it.
            break_it: |d| {
                std::fs::write(d.join("config.yml"), "# ports\nSECURE_PORT: [6443]\n")
                    .expect("write")
            },
            says: &[
                "config.yml:",
                "SECURE_PORT: expected a single value, found a list",
            ],
        },
        Case {
            name: "config.yml setting misspelt",
            break_it: |d| {
                std::fs::write(d.join("config.yml"), "SERVICE_CIRD: 10.68.0.0/16\n").expect("write")
            },
            says: &[
                "config.yml:",
                "SERVICE_CIRD: unknown setting",
                "SERVICE_CIDR",
            ],
        },
    ]
}

/// The cluster folder as it was: every file's bytes (links as links).
fn folder_state(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)
        .expect("cluster dir")
        .filter_map(Result::ok)
    {
        let p = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = std::fs::symlink_metadata(&p).expect("stat");
        let bytes = if meta.is_file() {
            std::fs::read(&p).expect("read")
        } else if meta.file_type().is_symlink() {
            std::fs::read_link(&p)
                .expect("readlink")
                .to_string_lossy()
                .into_owned()
                .into_bytes()
        } else {
            b"<dir>".to_vec()
        };
        out.push((name, bytes));
    }
    out.sort();
    out
}

fn restore(dir: &Path, hosts: &[u8], config: Option<&[u8]>) {
    for f in ["hosts.yml", "config.yml"] {
        let _ = std::fs::remove_file(dir.join(f));
    }
    std::fs::write(dir.join("hosts.yml"), hosts).expect("restore hosts.yml");
    if let Some(c) = config {
        std::fs::write(dir.join("config.yml"), c).expect("restore config.yml");
    }
}

#[test]
fn bad_inventories_exit_3_naming_the_file_and_touch_no_host() {
    let Some(env) = common::env(3) else { return };
    let dir = env.cluster_dir();
    let hosts = std::fs::read(dir.join("hosts.yml")).expect("hosts.yml");
    let config = std::fs::read(dir.join("config.yml")).ok();
    let before = folder_state(&dir);
    for ip in all_hosts(env) {
        let (code, out) = inside(env, &ip, &format!("touch {MARKER}"));
        assert_eq!(code, 0, "{out}");
    }
    // A second of clock between the marker and anything a run could write.
    std::thread::sleep(std::time::Duration::from_millis(1100));

    for case in cases() {
        (case.break_it)(&dir);
        for args in [
            vec!["setup", env.cluster.as_str(), "all"],
            vec!["--json", "setup", env.cluster.as_str(), "01"],
            vec!["setup", env.cluster.as_str(), "all", "--dry-run"],
            vec![
                "exec",
                env.cluster.as_str(),
                "--",
                "touch",
                "/root/ezf-exec-ran",
            ],
        ] {
            let out = env.ezctl(&args);
            let said = text(&out);
            assert_eq!(
                out.status.code(),
                Some(3),
                "{}: {args:?}:\n{said}",
                case.name
            );
            for want in case.says {
                assert!(
                    said.contains(want),
                    "{}: {args:?}: no `{want}` in\n{said}",
                    case.name
                );
            }
            assert!(
                said.contains(&format!("{}/", dir.display())),
                "{}: the full path of the file: {said}",
                case.name
            );
            assert!(
                said.contains("nothing was done on any host"),
                "{}: {said}",
                case.name
            );
        }
        restore(&dir, &hosts, config.as_deref());
    }

    // A cluster folder that is a symlink loop in clusters/.
    let looping = env.home.join("clusters/ezf-loop");
    std::os::unix::fs::symlink("ezf-loop", &looping).expect("ln");
    let out = env.ezctl(&["setup", "ezf-loop", "all"]);
    std::fs::remove_file(&looping).expect("rm loop");
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        text(&out).contains("clusters/ezf-loop: Too many levels of symbolic links"),
        "{}",
        text(&out)
    );

    // Nothing written on the controller, byte-identical inventory.
    assert_eq!(before, folder_state(&dir), "the cluster folder changed");
    for made in ["ssl", "logs", "manifests", ez_engine::LOCK_FILE] {
        assert!(!dir.join(made).exists(), "{made} was created");
    }
    // Nothing on any host.
    for ip in all_hosts(env) {
        assert_eq!(touched_since_marker(env, &ip), "", "{ip} was touched");
        let (_, out) = inside(
            env,
            &ip,
            "ls -d /etc/kubernetes /opt/kube/bin /root/ezf-exec-ran 2>&1; true",
        );
        assert_eq!(
            out.matches("No such file or directory").count(),
            3,
            "{ip}: {out}"
        );
    }

    // The check above can see a touch: a valid run does touch the hosts.
    let out = ezctl_json(env, "setup", &["01"]);
    assert!(out.status.success(), "{}", text(&out));
    for ip in all_hosts(env) {
        assert_ne!(
            touched_since_marker(env, &ip),
            "",
            "{ip}: a real run went unseen"
        );
    }
}
