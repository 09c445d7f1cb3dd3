//! ssh-agent authentication, in its own test binary because it sets
//! SSH_AUTH_SOCK for the whole process.

#[path = "real_sshd/support.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ez_ssh::{connect, ExecOpts, SshError};
use support::{keygen, Sshd};

/// An `ssh-agent -D` on a socket in `dir`, killed on drop.
struct Agent(std::process::Child);

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn encrypted_key_is_used_through_the_agent() {
    if support::ready("agent").is_none() {
        return;
    }
    if support::which("ssh-agent").is_none() || support::which("ssh-add").is_none() {
        ez_lab::testing::skip("ssh-agent/ssh-add not installed (apt-get install openssh-client)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("agent.sock");
    let agent = Agent(
        Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&sock)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() {
        assert!(Instant::now() < deadline, "agent socket never appeared");
        std::thread::sleep(Duration::from_millis(20));
    }
    let key = keygen(dir.path(), "enc", "ed25519", "agent pass");
    // ssh-add reads the passphrase from an askpass program when forced.
    let askpass = dir.path().join("askpass.sh");
    std::fs::write(&askpass, "#!/bin/sh\necho 'agent pass'\n").expect("askpass");
    std::fs::set_permissions(
        &askpass,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .expect("chmod askpass");
    support::run(
        Command::new("ssh-add")
            .arg(&key)
            .env("SSH_AUTH_SOCK", &sock)
            .env("SSH_ASKPASS", &askpass)
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0")
            .stdin(Stdio::null()),
    );
    // Before any runtime thread exists: nothing else reads the environment yet.
    std::env::set_var("SSH_AUTH_SOCK", &sock);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sshd = Sshd::start_with(support::SshdConfig {
            client_key: Some(key.clone()),
            ..Default::default()
        });
        let mut opts = sshd.options(sshd.dir.path());
        let mut host = sshd.host("root");
        host.identity_files = vec![key.clone()];

        // Agent off: the encrypted key is unusable and we say so.
        opts.use_agent = false;
        let err = connect(&host, &opts).await.expect_err("passphrase needed");
        assert!(matches!(err, SshError::KeyPassphraseNeeded { .. }), "{err}");

        // Agent on: the agent signs for the encrypted key.
        opts.use_agent = true;
        let s = connect(&host, &opts).await.expect("agent auth");
        let out = s.exec_ok("id -u", ExecOpts::default()).await.expect("exec");
        assert_eq!(out.stdout_str(), "0\n");
    });
    drop(agent);
}
