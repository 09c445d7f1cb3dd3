//! The ezctl binary as users run it: commands, exit codes, output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ezctl(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ezctl"))
        .arg("--home")
        .arg(home)
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run ezctl")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A home with the repo's example cluster.
fn home() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let ex = dir.path().join("clusters/example");
    std::fs::create_dir_all(&ex).expect("mkdir");
    for f in ["hosts.yml", "config.yml"] {
        std::fs::copy(repo().join("clusters/example").join(f), ex.join(f)).expect("copy");
    }
    std::fs::create_dir_all(dir.path().join("bin")).expect("mkdir");
    std::fs::write(
        dir.path().join("bin/versions.toml"),
        "[components.kubernetes]\nversion = \"1.30.11\"\nsetting = \"K8S_VER\"\n",
    )
    .expect("write");
    dir
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_every_kubeasz_command() {
    let h = home();
    let out = ezctl(h.path(), &["--help"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for cmd in [
        "new",
        "list",
        "checkout",
        "setup",
        "start",
        "stop",
        "upgrade",
        "destroy",
        "backup",
        "restore",
        "add-etcd",
        "add-master",
        "add-node",
        "del-etcd",
        "del-master",
        "del-node",
        "kca-renew",
        "kcfg-adm",
        "check",
        "import",
        "exec",
        "download",
        "completions",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
            "--help lacks `{cmd}`:\n{text}"
        );
    }
    assert!(text.contains("01 prepare"), "help explains the steps");
}

#[test]
fn import_then_check_prints_seven_hosts() {
    let h = home();
    let fixtures = repo().join("crates/inventory/tests/kubeasz");
    let out = ezctl(
        h.path(),
        &[
            "import",
            "k8s-cluster1",
            fixtures.join("hosts").to_str().unwrap_or(""),
            fixtures.join("config.yml").to_str().unwrap_or(""),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("ansible_python_interpreter"),
        "import reports what it dropped"
    );

    let out = ezctl(h.path(), &["check", "k8s-cluster1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let host_rows: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("10.0.0."))
        .collect();
    assert_eq!(host_rows.len(), 7, "{text}");
    assert!(
        text.contains("10.0.0.201       master-01       kube_master"),
        "{text}"
    );
    assert!(
        text.contains("10.100.0.1"),
        "API service IP derived: {text}"
    );
    assert!(text.contains("10.100.0.2"), "DNS IP derived: {text}");

    let out = ezctl(h.path(), &["check", "k8s-cluster1", "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["event"], "result");
    let v = &v["cluster"];
    assert_eq!(v["hosts"].as_array().map(Vec::len), Some(7));
    assert_eq!(v["derived"]["dns_service_ip"], "10.100.0.2");

    // Importing over an existing cluster is refused.
    let out = ezctl(
        h.path(),
        &[
            "import",
            "k8s-cluster1",
            fixtures.join("hosts").to_str().unwrap_or(""),
        ],
    );
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn new_fills_versions_and_refuses_existing() {
    let h = home();
    let out = ezctl(h.path(), &["new", "c1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cfg = std::fs::read_to_string(h.path().join("clusters/c1/config.yml")).expect("config");
    assert!(
        cfg.contains("K8S_VER: 1.30.11") || cfg.contains("K8S_VER: \"1.30.11\""),
        "{cfg}"
    );
    assert!(cfg.contains("CLUSTER_NAME: c1"), "{cfg}");
    let out = ezctl(h.path(), &["check", "c1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = ezctl(h.path(), &["new", "c1"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("already exists"));
    let out = ezctl(h.path(), &["list"]);
    assert!(stdout(&out).contains("c1"));
    let out = ezctl(h.path(), &["new", "../escape"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn invalid_inventory_exits_3_with_every_message() {
    let h = home();
    let case = repo().join("crates/inventory/tests/corpus/75-many-at-once");
    let dest = h.path().join("clusters/bad");
    std::fs::create_dir_all(&dest).expect("mkdir");
    for f in ["hosts.yml", "config.yml"] {
        std::fs::copy(case.join(f), dest.join(f)).expect("copy");
    }
    let out = ezctl(h.path(), &["check", "bad"]);
    assert_eq!(out.status.code(), Some(3));
    let err = stderr(&out);
    assert!(err.contains("hosts.yml:6:"), "{err}");
    assert!(err.contains("config.yml:2:"), "{err}");
    assert!(err.contains("nothing was done on any host"), "{err}");
    assert!(
        !err.contains("etcd: 2 etcd hosts"),
        "no knock-on error: {err}"
    );
}

#[test]
fn forks_is_a_bounded_number() {
    let h = home();
    for bad in ["0", "5000", "many"] {
        let out = ezctl(h.path(), &["--forks", bad, "list"]);
        assert_eq!(out.status.code(), Some(2), "--forks {bad}");
        assert!(stderr(&out).contains("--forks"), "{}", stderr(&out));
    }
    let out = ezctl(h.path(), &["--forks", "8", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let help = stdout(&ezctl(h.path(), &["--help"]));
    assert!(
        help.contains("--forks") && help.contains("EZCTL_FORKS"),
        "{help}"
    );
}

#[test]
fn hosts_on_the_command_line_are_ip_addresses() {
    let h = home();
    for args in [
        &["add-node", "c1", "10.0.0.300"][..],
        &["add-master", "c1", "10.0.0.3", "node-7"],
        &["add-etcd", "c1", "::g"],
        &["del-node", "c1", "10.0.0"],
        &["del-master", "c1", "master-1"],
        &["del-etcd", "c1", "10.0.0.1", "10.0.0.2/24"],
    ] {
        let out = ezctl(h.path(), args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let bad = args.last().expect("an address");
        assert!(
            err.contains(&format!(
                "`{bad}` is not an IP address (hosts are given by IP)"
            )),
            "{args:?}: {err}"
        );
    }
    // Parsed as addresses, so the next complaint is about the cluster, not
    // the address (a pasted list's blanks are forgiven).
    let out = ezctl(h.path(), &["add-node", "nosuch", " 10.0.0.3 ", "fd00::3"]);
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(2), "{err}");
    assert!(!err.contains("not an IP address"), "{err}");
    assert!(err.contains("nosuch"), "{err}");
}

#[test]
fn completions_and_man_page() {
    let h = home();
    let out = ezctl(h.path(), &["completions", "bash"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("kcfg-adm"));
    let out = ezctl(h.path(), &["man"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains(".TH"));
}

/// Serve `body` for every request on a loopback port, for `requests` requests.
fn serve(body: Vec<u8>, requests: usize) -> (String, std::thread::JoinHandle<()>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let handle = std::thread::spawn(move || {
        for _ in 0..requests {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    (format!("http://{addr}"), handle)
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[test]
fn download_verifies_checksums() {
    let h = home();
    let body = b"#!/bin/sh\necho fake-tool\n".to_vec();
    let good = sha256_hex(&body);

    let (url, server) = serve(body.clone(), 1);
    std::fs::write(
        h.path().join("bin/versions.toml"),
        format!("[components.tool]\nversion = \"1.0\"\nurl = \"{url}/tool-{{version}}\"\nsha256 = \"{good}\"\nfile = \"tool\"\n"),
    )
    .expect("write");
    let out = ezctl(h.path(), &["download"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(h.path().join("bin/tool")).expect("downloaded"),
        body
    );
    server.join().expect("server");

    // A mismatch is refused and nothing lands in bin/.
    let (url, server) = serve(b"tampered".to_vec(), 1);
    std::fs::write(
        h.path().join("bin/versions.toml"),
        format!("[components.other]\nversion = \"1.0\"\nurl = \"{url}/x\"\nsha256 = \"{good}\"\nfile = \"other\"\n"),
    )
    .expect("write");
    let out = ezctl(h.path(), &["download"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
    assert!(!h.path().join("bin/other").exists());
    server.join().expect("server");

    // No pinned checksum: refused before any request.
    std::fs::write(
        h.path().join("bin/versions.toml"),
        "[components.nopin]\nversion = \"1.0\"\nurl = \"http://127.0.0.1:9/x\"\n",
    )
    .expect("write");
    let out = ezctl(h.path(), &["download"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("no sha256 pinned"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unreadable_inventories_are_input_errors() {
    let h = home();
    // A symlink loop in clusters/.
    let dir = h.path().join("clusters/loop");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::os::unix::fs::symlink("hosts.yml", dir.join("hosts.yml")).expect("symlink");
    let out = ezctl(h.path(), &["check", "loop"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("loop/hosts.yml"), "{}", stderr(&out));

    // A huge hosts.yml is refused before it is parsed.
    let dir = h.path().join("clusters/huge");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut big = String::from("etcd:\n");
    while big.len() < 5 * 1024 * 1024 {
        big.push_str("  - 10.0.0.1\n");
    }
    std::fs::write(dir.join("hosts.yml"), big).expect("write");
    let out = ezctl(h.path(), &["check", "huge"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).contains("huge/hosts.yml:1:1:"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));

    // hosts.yml that is a directory.
    let dir = h.path().join("clusters/dir");
    std::fs::create_dir_all(dir.join("hosts.yml")).expect("mkdir");
    let out = ezctl(h.path(), &["check", "dir"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("is not a regular file"),
        "{}",
        stderr(&out)
    );
}

#[path = "schema/mod.rs"]
mod schema;

/// With --json every line on stdout is an event of docs/events.schema.json,
/// and a command ends with one `result`, or one `error` with its exit code.
#[test]
fn json_output_follows_one_contract() {
    let h = home();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../inventory/tests/kubeasz");
    let hosts = fixtures.join("hosts");
    let runs: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec!["--json", "new", "c1"], 0, "result"),
        (vec!["--json", "list"], 0, "result"),
        (vec!["--json", "check", "c1"], 0, "result"),
        (
            vec!["--json", "import", "c2", hosts.to_str().unwrap_or("")],
            0,
            "result",
        ),
        (vec!["--json", "check", "nosuch"], 3, "error"),
        (vec!["--json", "setup", "c1", "nosuchstep"], 2, "error"),
        (vec!["--json", "checkout", "c1"], 3, "error"),
    ];
    for (args, code, last) in runs {
        let out = ezctl(h.path(), &args);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
        let n = schema::check_stdout(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: {e}\n{}", stdout(&out)));
        assert!(n >= 1, "{args:?} printed nothing");
        let lines: Vec<serde_json::Value> = stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        let ends: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|v| v["event"] == "result" || v["event"] == "error")
            .collect();
        assert_eq!(ends.len(), 1, "{args:?}: {lines:?}");
        assert_eq!(ends[0]["event"], last, "{args:?}");
        if last == "error" {
            assert_eq!(ends[0]["exit_code"], code, "{args:?}");
        } else {
            assert_eq!(ends[0]["command"], args[1], "{args:?}");
        }
    }
    // check's result holds the resolved cluster.
    let out = ezctl(h.path(), &["--json", "check", "c1"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one line");
    assert!(
        v["cluster"]["hosts"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{v}"
    );
}

/// The inventory tells users to pass --ask-pass or set EZCTL_SSH_PASSWORD:
/// both exist (they did not), and so does the sudo password's pair.
#[test]
fn the_password_options_the_inventory_names_exist() {
    let h = home();
    let out = ezctl(h.path(), &["--help"]);
    let help = stdout(&out);
    for word in [
        "--ask-pass",
        "EZCTL_SSH_PASSWORD",
        "--ask-sudo-pass",
        "EZCTL_SUDO_PASSWORD",
    ] {
        assert!(
            help.contains(word),
            "--help does not mention {word}:\n{help}"
        );
    }
    // A password in the environment is accepted (and not a usage error).
    let out = Command::new(env!("CARGO_BIN_EXE_ezctl"))
        .arg("--home")
        .arg(h.path())
        .args(["--ask-pass", "list"])
        .env("EZCTL_SSH_PASSWORD", "pw")
        .output()
        .expect("run ezctl");
    assert!(out.status.success(), "{}", stderr(&out));
}

/// README's "First five minutes" block is the demo followed by exactly the
/// commands `scripts/demo.sh --hint` prints with its defaults (e2e_demo_hint
/// runs each of those against a lab): the README cannot drift from them.
#[test]
fn readme_first_five_minutes_is_the_demo_and_its_hint() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let block: Vec<&str> = readme
        .lines()
        .skip_while(|l| l.trim() != "<!-- first-five-minutes -->")
        .skip(2)
        .take_while(|l| l.trim() != "```")
        .collect();
    assert!(block.len() > 3, "no first-five-minutes block in README.md");
    assert_eq!(block[0], "scripts/demo.sh");

    let h = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(h.path().join("clusters/demo")).unwrap();
    std::fs::write(
        h.path().join("clusters/demo/hosts.yml"),
        "etcd:\n  - 10.0.0.1\nkube_master:\n  - 10.0.0.4\n",
    )
    .unwrap();
    let out = Command::new(repo().join("scripts/demo.sh"))
        .arg("--hint")
        .env("EZCTL_HOME", h.path())
        .env_remove("DEMO_NAME")
        .env_remove("EZCTL")
        .env_remove("EZLAB")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let hint: Vec<String> = stdout(&out)
        .lines()
        .skip_while(|l| l.trim() != "Try:")
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .map(|l| l.trim().replace("10.0.0.4", "<master-ip>"))
        .collect();
    let readme_lines: Vec<String> = block[1..].iter().map(|l| l.trim().to_string()).collect();
    assert_eq!(
        readme_lines, hint,
        "README's first-five-minutes block differs from `scripts/demo.sh --hint`"
    );
}
