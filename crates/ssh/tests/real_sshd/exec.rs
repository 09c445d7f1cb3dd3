use std::time::{Duration, Instant};

use ez_ssh::{connect, ExecOpts, SshError};

use crate::support::{self, Sshd};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_returns_code_stdout_stderr_env_and_stdin() {
    support::bounded(exec_returns_code_stdout_stderr_env_and_stdin_body()).await
}

async fn exec_returns_code_stdout_stderr_env_and_stdin_body() {
    let Some(()) = support::ready("exec_returns_code_stdout_stderr_env_and_stdin") else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let s = connect(&sshd.host("root"), &opts).await.expect("connect");

    let out = s
        .exec("echo out; echo err >&2; exit 3", ExecOpts::default())
        .await
        .expect("exec");
    assert_eq!(out.code, 3);
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert!(!out.success());

    let out = s
        .exec(
            "printf '%s|%s' \"$GREETING\" \"$(cat)\"",
            ExecOpts {
                env: vec![("GREETING".into(), "hello 'world' $HOME".into())],
                stdin: Some(b"from stdin".to_vec()),
                ..Default::default()
            },
        )
        .await
        .expect("exec with env");
    assert_eq!(out.stdout_str(), "hello 'world' $HOME|from stdin");

    let err = s
        .exec(
            "true",
            ExecOpts {
                env: vec![("BAD-NAME".into(), "x".into())],
                ..Default::default()
            },
        )
        .await
        .expect_err("invalid env name refused");
    assert!(matches!(err, SshError::InvalidInput { .. }), "{err}");

    let err = s
        .exec_ok("echo boom >&2; exit 7", ExecOpts::default())
        .await
        .expect_err("fails");
    match &err {
        SshError::RemoteCommand {
            host,
            code,
            stderr_tail,
            ..
        } => {
            assert_eq!(host, s.host());
            assert_eq!(*code, 7);
            assert_eq!(stderr_tail, "boom");
        }
        other => panic!("expected RemoteCommand, got {other}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("{}: command `echo boom", s.host())),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_timeout_kills_and_session_stays_usable() {
    support::bounded(exec_timeout_kills_and_session_stays_usable_body()).await
}

async fn exec_timeout_kills_and_session_stays_usable_body() {
    let Some(()) = support::ready("exec_timeout_kills_and_session_stays_usable") else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let s = connect(&sshd.host("root"), &opts).await.expect("connect");
    let pidfile = sshd.dir.path().join("sleeper.pid");
    let started = Instant::now();
    let err = s
        .exec(
            // `exec` keeps the pid: the one written is the sleep's.
            &format!("echo $$ > {}; exec sleep 30", pidfile.display()),
            ExecOpts {
                timeout: Some(Duration::from_millis(700)),
                ..Default::default()
            },
        )
        .await
        .expect_err("times out");
    let took = started.elapsed();
    assert!(matches!(err, SshError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("timed out after 0.7s"), "{err}");
    assert!(took < Duration::from_secs(5), "timeout took {took:?}");
    // The remote command was killed, not left running.
    let pid = std::fs::read_to_string(&pidfile).expect("pid written");
    let proc_dir = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "remote sleep {} still running\n{}",
            pid.trim(),
            sshd.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The same connection still works, for many more channels than the
    // slot limit (a leaked slot would hang here).
    for i in 0..12 {
        let out = s
            .exec(&format!("echo {i}"), ExecOpts::default())
            .await
            .expect("exec after timeout");
        assert_eq!(out.stdout_str(), format!("{i}\n"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_execs_share_one_connection_within_the_channel_limit() {
    support::bounded(twenty_concurrent_execs_share_one_connection_within_the_channel_limit_body())
        .await
}

async fn twenty_concurrent_execs_share_one_connection_within_the_channel_limit_body() {
    let Some(()) = support::ready("twenty_concurrent_execs") else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let s = connect(&sshd.host("root"), &opts).await.expect("connect");
    let before = s.channels_opened();
    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                s.exec_ok(
                    &format!("sleep 0.5; echo task-$((1 + {i}))"),
                    ExecOpts::default(),
                )
                .await
                .map(|o| o.stdout_str())
            })
        })
        .collect();
    for (i, t) in tasks.into_iter().enumerate() {
        let out = t
            .await
            .expect("join")
            .unwrap_or_else(|e| panic!("{e}\n{}", sshd.log()));
        assert_eq!(out, format!("task-{}\n", i + 1));
    }
    let took = started.elapsed();
    assert_eq!(s.channels_opened() - before, 20);
    // Serial would take 10 s; all 20 at once would take 0.5 s, but only 10
    // channels may be open (MaxSessions), so two waves: about 1 s.
    assert!(
        took >= Duration::from_millis(1000),
        "more than 10 channels at once? {took:?}"
    );
    assert!(took < Duration::from_secs(5), "not concurrent: {took:?}");
    // Exactly one TCP connection to this sshd.
    let log = sshd.log();
    assert_eq!(log.matches("Accepted publickey").count(), 1, "{log}");
}
