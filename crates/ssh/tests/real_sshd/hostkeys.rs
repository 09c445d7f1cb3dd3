use ez_ssh::{connect, SshError};

use crate::support::{self, test_options, Sshd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_refused_then_pinned_with_accept_new_then_changed_key_refused() {
    support::bounded(
        unknown_key_refused_then_pinned_with_accept_new_then_changed_key_refused_body(),
    )
    .await
}

async fn unknown_key_refused_then_pinned_with_accept_new_then_changed_key_refused_body() {
    let Some(()) = support::ready("host key policy") else {
        return;
    };
    let mut sshd = Sshd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // First file: the writable cluster file; second: a user file we must not touch.
    let cluster_kh = dir.path().join("clusters/c1/known_hosts");
    let user_kh = dir.path().join("user_known_hosts");
    std::fs::write(&user_kh, "# user file\n").expect("write");
    let mut opts = test_options(cluster_kh.clone());
    opts.known_hosts.push(user_kh.clone());
    let host = sshd.host("root");
    let fp = sshd.host_fingerprint();
    assert!(fp.starts_with("SHA256:"), "{fp}");

    // 1. Strict by default.
    let err = connect(&host, &opts)
        .await
        .expect_err("unknown key refused");
    match &err {
        SshError::HostKeyUnknown {
            host: h,
            fp: got,
            hint,
            ..
        } => {
            assert_eq!(h, &host.name);
            assert_eq!(got, &fp);
            assert!(hint.contains("--accept-new"), "{hint}");
        }
        other => panic!("expected HostKeyUnknown, got {other}"),
    }
    assert!(!cluster_kh.exists(), "nothing recorded without accept_new");

    // 2. accept_new pins into the first file only.
    let mut tofu = opts.clone();
    tofu.accept_new = true;
    let s = connect(&host, &tofu).await.expect("accepted");
    s.exec_ok("true", Default::default()).await.expect("usable");
    let pinned = std::fs::read_to_string(&cluster_kh).expect("cluster known_hosts written");
    assert_eq!(pinned, sshd.known_hosts_line());
    assert_eq!(
        std::fs::read_to_string(&user_kh).expect("read"),
        "# user file\n"
    );

    // 3. Now known: strict mode connects.
    connect(&host, &opts).await.expect("pinned key trusted");

    // 4. Same address, new host key: refused even with accept_new.
    sshd.restart_with_new_host_key();
    let new_fp = sshd.host_fingerprint();
    assert_ne!(new_fp, fp);
    for o in [&opts, &tofu] {
        let err = connect(&host, o).await.expect_err("changed key refused");
        let msg = err.to_string();
        match &err {
            SshError::HostKeyChanged {
                old_fp,
                new_fp: got,
                file,
                line,
                ..
            } => {
                assert_eq!(&**old_fp, fp.as_str());
                assert_eq!(&**got, new_fp.as_str());
                assert_eq!(file, &cluster_kh);
                assert_eq!(*line, 1);
            }
            other => panic!("expected HostKeyChanged, got {other}"),
        }
        assert!(msg.contains(&fp) && msg.contains(&new_fp), "{msg}");
        assert!(msg.contains(&host.name), "{msg}");
        assert!(
            msg.contains(&format!(
                "ssh-keygen -R '[127.0.0.1]:{}' -f {}",
                sshd.port,
                cluster_kh.display()
            )),
            "{msg}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&cluster_kh).expect("read"),
        pinned,
        "file untouched"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hashed_known_hosts_entry_is_trusted() {
    support::bounded(hashed_known_hosts_entry_is_trusted_body()).await
}

async fn hashed_known_hosts_entry_is_trusted_body() {
    let Some(()) = support::ready("hashed known_hosts") else {
        return;
    };
    let sshd = Sshd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let kh = dir.path().join("known_hosts");
    std::fs::write(&kh, sshd.known_hosts_line()).expect("write");
    support::run(
        std::process::Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&kh),
    );
    let text = std::fs::read_to_string(&kh).expect("read");
    assert!(text.starts_with("|1|"), "ssh-keygen -H hashed it: {text}");
    connect(&sshd.host("root"), &test_options(kh))
        .await
        .expect("hashed entry matches");
}
