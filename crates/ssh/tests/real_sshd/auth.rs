use std::path::PathBuf;

use ez_ssh::{connect, ExecOpts, Secret, SshError, Sudo};

use crate::support::{self, keygen, Sshd, TestUser};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_ecdsa_and_rsa_keys_authenticate() {
    support::bounded(ed25519_ecdsa_and_rsa_keys_authenticate_body()).await
}

async fn ed25519_ecdsa_and_rsa_keys_authenticate_body() {
    let Some(()) = support::ready("key types") else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let keys = tempfile::tempdir().expect("tempdir");
    let mut authorized =
        std::fs::read_to_string(sshd.dir.path().join("authorized_keys")).expect("read");
    let mut paths = Vec::new();
    for kind in ["ecdsa", "rsa"] {
        let k = keygen(keys.path(), &format!("id_{kind}"), kind, "");
        authorized.push_str(&std::fs::read_to_string(k.with_extension("pub")).expect("pub"));
        paths.push(k);
    }
    std::fs::write(sshd.dir.path().join("authorized_keys"), authorized).expect("write");
    paths.push(sshd.client_key.clone());
    for key in paths {
        let mut host = sshd.host("root");
        host.identity_files = vec![key.clone()];
        let s = connect(&host, &opts)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", key.display()));
        let out = s.exec_ok("id -u", ExecOpts::default()).await.expect("exec");
        assert_eq!(out.stdout_str(), "0\n");
    }
    // RSA must have used a SHA-2 signature (OpenSSH 9 refuses ssh-rsa anyway).
    let log = sshd.log();
    assert!(
        log.contains(&format!("Accepted publickey for {}", sshd.root_alias))
            && log.contains("RSA SHA256:"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_is_refused_naming_the_host_and_what_was_tried() {
    support::bounded(wrong_key_is_refused_naming_the_host_and_what_was_tried_body()).await
}

async fn wrong_key_is_refused_naming_the_host_and_what_was_tried_body() {
    let Some(()) = support::ready("wrong key") else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let keys = tempfile::tempdir().expect("tempdir");
    let stranger = keygen(keys.path(), "stranger", "ed25519", "");
    let mut host = sshd.host("root");
    host.identity_files = vec![stranger.clone(), PathBuf::from("/nonexistent/key")];
    let err = connect(&host, &opts).await.expect_err("refused");
    match &err {
        SshError::AuthFailed {
            host: h,
            user,
            tried,
        } => {
            assert_eq!(h, &host.name);
            assert_eq!(user, &sshd.root_alias);
            assert_eq!(tried[0], format!("publickey {}", stranger.display()));
            assert_eq!(tried[1], "publickey /nonexistent/key (missing)");
        }
        other => panic!("expected AuthFailed, got {other}"),
    }
    assert!(err
        .to_string()
        .starts_with(&format!("{}: authentication failed", host.name)));
    assert!(!err.is_transient(), "auth failures are not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_key_without_agent_asks_for_a_passphrase() {
    support::bounded(encrypted_key_without_agent_asks_for_a_passphrase_body()).await
}

async fn encrypted_key_without_agent_asks_for_a_passphrase_body() {
    let Some(()) = support::ready("encrypted key") else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let keys = tempfile::tempdir().expect("tempdir");
    let enc = keygen(keys.path(), "enc", "ed25519", "correct horse");
    let mut host = sshd.host("root");
    host.identity_files = vec![enc.clone()];
    let err = connect(&host, &opts).await.expect_err("needs passphrase");
    match &err {
        SshError::KeyPassphraseNeeded { host: h, path } => {
            assert_eq!(h, &host.name);
            assert_eq!(path, &enc);
        }
        other => panic!("expected KeyPassphraseNeeded, got {other}"),
    }
    assert!(!err.to_string().contains("correct horse"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_auth_for_a_fresh_user_and_wrong_password_refused() {
    support::bounded(password_auth_for_a_fresh_user_and_wrong_password_refused_body()).await
}

async fn password_auth_for_a_fresh_user_and_wrong_password_refused_body() {
    let Some(()) = support::ready("password auth") else {
        return;
    };
    let Some(user) = TestUser::create("password auth", "pw-Test-1234") else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let mut host = sshd.host(&user.name);
    host.identity_files = vec![PathBuf::from("/nonexistent/none")];
    host.password = Some(Secret::new(user.password.clone()));
    let s = connect(&host, &opts).await.expect("password login");
    let out = s
        .exec_ok("id -un", ExecOpts::default())
        .await
        .expect("exec");
    assert_eq!(out.stdout_str().trim(), user.name);

    host.password = Some(Secret::new("wrong-password"));
    let err = connect(&host, &opts).await.expect_err("wrong password");
    let msg = err.to_string();
    assert!(matches!(err, SshError::AuthFailed { .. }), "{msg}");
    assert!(
        msg.contains("password") && !msg.contains("wrong-password"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sudo_with_password_for_exec_and_upload_into_a_root_owned_dir() {
    support::bounded(sudo_with_password_for_exec_and_upload_into_a_root_owned_dir_body()).await
}

async fn sudo_with_password_for_exec_and_upload_into_a_root_owned_dir_body() {
    let Some(()) = support::ready("sudo with password") else {
        return;
    };
    let Some(mut user) = TestUser::create("sudo with password", "sudo-Pw-987") else {
        return;
    };
    let Some(()) = user.allow_sudo("sudo with password", false) else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let mut host = sshd.host(&user.name);
    host.sudo = Sudo::Password(Secret::new(user.password.clone()));
    let s = connect(&host, &opts).await.expect("key login as the user");

    let plain = s.exec_ok("id -u", ExecOpts::default()).await.expect("exec");
    assert_ne!(plain.stdout_str(), "0\n", "without sudo we are the user");
    let root = s
        .exec_ok(
            "id -u; cat",
            ExecOpts {
                sudo: true,
                stdin: Some(b"payload".to_vec()),
                ..Default::default()
            },
        )
        .await
        .expect("sudo exec");
    assert_eq!(
        root.stdout_str(),
        "0\npayload",
        "root, and stdin intact after the password"
    );
    assert!(!String::from_utf8_lossy(&root.stderr).contains(&user.password));

    // Upload into a root-only directory, as root, owned by root.
    let root_dir = sshd.dir.path().join("root-only");
    std::fs::create_dir(&root_dir).expect("mkdir");
    std::fs::set_permissions(
        &root_dir,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod");
    let dest = root_dir.join("sub/secret.conf");
    let dest_s = dest.to_str().expect("utf8");
    let out = s
        .upload("key=value\n", dest_s, 0o600, Some(("root", "root")))
        .await
        .expect("sudo upload");
    assert!(out.changed());
    assert_eq!(std::fs::read_to_string(&dest).expect("read"), "key=value\n");
    let meta = std::fs::metadata(&dest).expect("meta");
    assert_eq!(std::os::unix::fs::MetadataExt::uid(&meta), 0);
    let again = s
        .upload("key=value\n", dest_s, 0o600, Some(("root", "root")))
        .await
        .expect("again");
    assert_eq!(
        again,
        ez_ssh::UploadOutcome::Unchanged,
        "sha256 readable through sudo"
    );
    let hashes = s.remote_sha256(&[dest_s]).await.expect("sha256 via sudo");
    assert!(hashes[dest_s].is_some());

    // A wrong sudo password is a typed error, not exit code 1.
    let mut bad = host.clone();
    bad.sudo = Sudo::Password(Secret::new("not-it"));
    let s = connect(&bad, &opts).await.expect("login still works");
    let err = s
        .exec(
            "id -u",
            ExecOpts {
                sudo: true,
                ..Default::default()
            },
        )
        .await
        .expect_err("sudo refuses");
    assert!(matches!(err, SshError::SudoFailed { .. }), "{err}");
    assert!(!err.to_string().contains("not-it"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwordless_sudo_and_password_never_leaks_into_stdin() {
    support::bounded(passwordless_sudo_and_password_never_leaks_into_stdin_body()).await
}

async fn passwordless_sudo_and_password_never_leaks_into_stdin_body() {
    let Some(()) = support::ready("passwordless sudo") else {
        return;
    };
    let Some(mut user) = TestUser::create("passwordless sudo", "nopw-Pw-555") else {
        return;
    };
    let Some(()) = user.allow_sudo("passwordless sudo", true) else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let mut host = sshd.host(&user.name);
    host.sudo = Sudo::Passwordless;
    let s = connect(&host, &opts).await.expect("login");
    let out = s
        .exec_ok(
            "id -u",
            ExecOpts {
                sudo: true,
                ..Default::default()
            },
        )
        .await
        .expect("sudo -n");
    assert_eq!(out.stdout_str(), "0\n");

    // Password configured but the policy is NOPASSWD: sudo never reads it;
    // it must still not reach the command (or a file we upload).
    host.sudo = Sudo::Password(Secret::new(user.password.clone()));
    let s = connect(&host, &opts).await.expect("login");
    let out = s
        .exec_ok(
            "cat",
            ExecOpts {
                sudo: true,
                stdin: Some(b"only this".to_vec()),
                ..Default::default()
            },
        )
        .await
        .expect("sudo");
    assert_eq!(out.stdout_str(), "only this");
    let dest = sshd.dir.path().join("nopw/file");
    let dest_s = dest.to_str().expect("utf8");
    s.upload("data", dest_s, 0o644, None).await.expect("upload");
    assert_eq!(std::fs::read_to_string(&dest).expect("read"), "data");
}
