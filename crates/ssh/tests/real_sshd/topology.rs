use std::time::{Duration, Instant};

use ez_ssh::{connect, fan_out, ExecOpts, HostSpec, Pool, SshError};

use crate::support::{self, test_options, Sshd, SshdConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reach_a_host_through_a_jump_host() {
    support::bounded(reach_a_host_through_a_jump_host_body()).await
}

async fn reach_a_host_through_a_jump_host_body() {
    let Some(()) = support::ready("jump host") else {
        return;
    };
    // DEBUG1 makes the bastion log each direct-tcpip request it serves.
    let mut bastion = Sshd::start_with(SshdConfig {
        extra: vec!["LogLevel DEBUG1".into()],
        ..Default::default()
    });
    let target = Sshd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = bastion.options(dir.path());
    let opts = target.options(dir.path());
    let mut host = target.host("root");
    host.jump = Some(Box::new(bastion.host("root")));
    let s = connect(&host, &opts).await.expect("connect via bastion");
    let out = s
        .exec_ok("echo via-jump", ExecOpts::default())
        .await
        .expect("exec");
    assert_eq!(out.stdout_str(), "via-jump\n");
    // The bastion really carried it: it logged the forward...
    let log = bastion.log();
    assert!(
        log.contains(&format!("target 127.0.0.1 port {}", target.port)),
        "bastion log: {log}"
    );
    // ...and when the bastion dies the tunnelled session dies with it.
    bastion.kill();
    let err = tokio::time::timeout(
        Duration::from_secs(15),
        s.exec("echo hi", ExecOpts::default()),
    )
    .await
    .expect("fails promptly")
    .expect_err("tunnel gone");
    assert!(
        matches!(
            err,
            SshError::Disconnected { .. } | SshError::ChannelClosed { .. }
        ),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jump_host_that_refuses_forwarding_makes_the_target_unreachable() {
    support::bounded(jump_host_that_refuses_forwarding_makes_the_target_unreachable_body()).await
}

async fn jump_host_that_refuses_forwarding_makes_the_target_unreachable_body() {
    let Some(()) = support::ready("jump refuses") else {
        return;
    };
    let bastion = Sshd::start_with(SshdConfig {
        extra: vec!["AllowTcpForwarding no".into()],
        ..Default::default()
    });
    let target = Sshd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = bastion.options(dir.path());
    let opts = target.options(dir.path());
    let mut host = target.host("root");
    host.jump = Some(Box::new(bastion.host("root")));
    let err = connect(&host, &opts).await.expect_err("no forwarding");
    match &err {
        SshError::Unreachable { host: h, addr, .. } => {
            assert_eq!(h, &host.name);
            assert!(
                addr.contains(&format!("via {}", bastion.host("root").name)),
                "{addr}"
            );
        }
        other => panic!("expected Unreachable, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_survives_one_host_dying_mid_run() {
    support::bounded(fan_out_survives_one_host_dying_mid_run_body()).await
}

async fn fan_out_survives_one_host_dying_mid_run_body() {
    let Some(()) = support::ready("fan_out") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut servers: Vec<Sshd> = (0..4).map(|_| Sshd::start()).collect();
    let mut opts = test_options(dir.path().join("known_hosts"));
    for s in &servers {
        opts = s.options(dir.path());
    }
    let mut hosts: Vec<HostSpec> = servers.iter().map(|s| s.host("root")).collect();
    // A fifth host nobody listens on.
    let mut dead = HostSpec::new("127.0.0.1");
    dead.name = "nobody-home".into();
    dead.port = Some(support::free_port());
    hosts.push(dead);
    let victim = hosts[1].name.clone();

    let pool = Pool::new(opts);
    let started = Instant::now();
    let mut rx = fan_out(&pool, hosts.clone(), 64, |s| async move {
        // Three steps of 1 s: the victim dies during the first.
        for _ in 0..3 {
            s.exec_ok("sleep 1", ExecOpts::default()).await?;
        }
        Ok(s.host().to_string())
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    servers[1].kill();

    let mut ok = Vec::new();
    let mut failed = Vec::new();
    while let Some(r) = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("results keep coming")
    {
        match r.result {
            Ok(name) => ok.push(name),
            Err(e) => failed.push((r.host, e)),
        }
    }
    let took = started.elapsed();
    ok.sort();
    let mut expected: Vec<String> = [0, 2, 3].iter().map(|i| hosts[*i].name.clone()).collect();
    expected.sort();
    assert_eq!(ok, expected);
    assert_eq!(failed.len(), 2, "{failed:?}");
    for (host, err) in &failed {
        assert_eq!(err.host(), host);
        if host == &victim {
            assert!(
                matches!(
                    err,
                    SshError::Disconnected { .. } | SshError::ChannelClosed { .. }
                ),
                "{err}"
            );
        } else {
            assert_eq!(host, "nobody-home");
            assert!(matches!(err, SshError::Unreachable { .. }), "{err}");
        }
    }
    // The healthy hosts ran in parallel and were not held up by the others.
    assert!(took < Duration::from_secs(8), "{took:?}");

    // The pool reuses the healthy sessions: a second fan-out opens no new connection.
    let healthy: Vec<HostSpec> = [0, 2, 3].iter().map(|i| hosts[*i].clone()).collect();
    let mut rx = fan_out(&pool, healthy, 2, |s| async move {
        s.exec_ok("true", ExecOpts::default()).await.map(|_| ())
    });
    let mut n = 0;
    while let Some(r) = rx.recv().await {
        r.result.expect("second round");
        n += 1;
    }
    assert_eq!(n, 3);
    for i in [0, 2, 3] {
        assert_eq!(
            servers[i].log().matches("Accepted publickey").count(),
            1,
            "one connection per host"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_retries_until_the_server_comes_up_and_times_out_on_a_silent_port() {
    support::bounded(
        connect_retries_until_the_server_comes_up_and_times_out_on_a_silent_port_body(),
    )
    .await
}

async fn connect_retries_until_the_server_comes_up_and_times_out_on_a_silent_port_body() {
    let Some(()) = support::ready("retries") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = support::keygen(dir.path(), "client", "ed25519", "");
    let port = support::free_port();
    let alias = format!("ezr{}", &support::ez_ssh_random_suffix()[..8]);
    let mut host = HostSpec::new("127.0.0.1");
    host.port = Some(port);
    host.user = Some(alias.clone());
    host.identity_files = vec![key.clone()];
    let mut opts = test_options(dir.path().join("kh"));
    opts.accept_new = true;

    // Without retries: refused at once.
    let err = connect(&host, &opts)
        .await
        .expect_err("nothing listens yet");
    assert!(matches!(err, SshError::Unreachable { .. }), "{err}");

    // With retries (backoff 0.2, 0.4, 0.8, 1.6 s) it reaches a server that
    // comes up 0.8 s later.
    opts.connect_retries = 6;
    opts.retry_backoff = Duration::from_millis(200);
    let started = Instant::now();
    let starter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(800));
        Sshd::start_on(
            port,
            SshdConfig {
                client_key: Some(key),
                root_alias: Some(alias),
                ..Default::default()
            },
        )
    });
    let result = connect(&host, &opts).await;
    let sshd = tokio::task::spawn_blocking(move || starter.join().expect("sshd thread"))
        .await
        .expect("join");
    let s =
        result.unwrap_or_else(|e| panic!("retries should reach the server: {e}\n{}", sshd.log()));
    assert!(started.elapsed() >= Duration::from_millis(700));
    s.exec_ok("true", ExecOpts::default())
        .await
        .expect("usable");

    // A port that accepts TCP but never speaks SSH: connect timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut host = HostSpec::new("127.0.0.1");
    host.port = Some(silent.local_addr().expect("addr").port());
    let mut opts = test_options(dir.path().join("kh"));
    opts.connect_timeout = Duration::from_millis(500);
    let started = Instant::now();
    let err = connect(&host, &opts).await.expect_err("silent server");
    assert!(matches!(err, SshError::Timeout { .. }), "{err}");
    assert!(
        err.to_string().contains("connect timed out after 0.5s"),
        "{err}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_turns_a_hung_server_into_disconnected() {
    support::bounded(keepalive_turns_a_hung_server_into_disconnected_body()).await
}

async fn keepalive_turns_a_hung_server_into_disconnected_body() {
    let Some(()) = support::ready("keepalive") else {
        return;
    };
    let sshd = Sshd::start();
    let mut opts = sshd.options(sshd.dir.path());
    opts.keepalive_interval = Some(Duration::from_millis(500));
    let s = connect(&sshd.host("root"), &opts).await.expect("connect");
    s.exec_ok("true", ExecOpts::default()).await.expect("alive");
    // The TCP connection stays open but nothing answers any more.
    sshd.signal_sessions("STOP");
    let started = Instant::now();
    let result = tokio::time::timeout(
        Duration::from_secs(30),
        s.exec("echo never", ExecOpts::default()),
    )
    .await;
    sshd.signal_sessions("CONT");
    let err = result
        .expect("keepalive must end the wait")
        .expect_err("hung server");
    assert!(
        matches!(
            err,
            SshError::Disconnected { .. } | SshError::ChannelClosed { .. }
        ),
        "{err}"
    );
    // 3 unanswered keepalives at 0.5 s: a few seconds, not forever.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(s.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_shares_one_bastion_connection_between_targets() {
    support::bounded(pool_shares_one_bastion_connection_between_targets_body()).await
}

async fn pool_shares_one_bastion_connection_between_targets_body() {
    let Some(()) = support::ready("shared bastion") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let bastion = Sshd::start();
    let targets: Vec<Sshd> = (0..3).map(|_| Sshd::start()).collect();
    let mut opts = bastion.options(dir.path());
    for t in &targets {
        opts = t.options(dir.path());
    }
    let hosts: Vec<HostSpec> = targets
        .iter()
        .map(|t| {
            let mut h = t.host("root");
            h.jump = Some(Box::new(bastion.host("root")));
            h
        })
        .collect();
    let pool = Pool::new(opts);
    let mut rx = fan_out(&pool, hosts, 8, |s| async move {
        s.exec_ok("echo ok", ExecOpts::default())
            .await
            .map(|o| o.stdout_str())
    });
    let mut n = 0;
    while let Some(r) = rx.recv().await {
        assert_eq!(r.result.expect("via bastion"), "ok\n");
        n += 1;
    }
    assert_eq!(n, 3);
    let log = bastion.log();
    assert_eq!(log.matches("Accepted publickey").count(), 1, "{log}");
    assert_eq!(pool.sessions().len(), 4, "3 targets + the bastion");
}

/// Two hosts whose per-host jumps name one bastion with different users
/// get one bastion connection per user. The pool was keyed by host name:
/// the first connection to the bastion served the second, as its user.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_bastion_with_two_users_is_two_pooled_connections() {
    support::bounded(one_bastion_with_two_users_is_two_pooled_connections_body()).await
}

async fn one_bastion_with_two_users_is_two_pooled_connections_body() {
    let Some(()) = support::ready("bastion per user") else {
        return;
    };
    let Some(user) = support::TestUser::create("bastion per user", "pw-Jump-4321") else {
        return;
    };
    let bastion = Sshd::start();
    let target = Sshd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let _ = bastion.options(dir.path());
    let opts = target.options(dir.path());
    let pool = Pool::new(opts);
    let as_root = bastion.host("root");
    let as_user = bastion.host(&user.name);
    assert_eq!(as_root.name, as_user.name, "one bastion, one name");
    let mut a = target.host("root");
    a.name = "a".into();
    a.jump = Some(Box::new(as_root.clone()));
    let mut b = target.host("root");
    b.name = "b".into();
    b.jump = Some(Box::new(as_user.clone()));
    for h in [&a, &b] {
        let s = pool.session(h).await.expect("through the bastion");
        let out = s
            .exec_ok("echo ok", ExecOpts::default())
            .await
            .expect("exec");
        assert_eq!(out.stdout_str(), "ok\n");
    }
    // The pooled bastion sessions log in as the user each jump names.
    let whoami = |spec: HostSpec| {
        let pool = pool.clone();
        async move {
            let s = pool.session(&spec).await.expect("bastion session");
            s.exec_ok("id -un", ExecOpts::default())
                .await
                .expect("id")
                .stdout_str()
                .trim()
                .to_string()
        }
    };
    assert_eq!(whoami(as_root).await, "root", "the uid-0 alias");
    assert_eq!(whoami(as_user).await, user.name);
    pool.close_all().await;
}

/// A jump host that accepts TCP and never speaks SSH: the target behind it
/// fails within the connect timeout, through the pool as well as directly
/// (every hop's attempt is bounded; nothing waits forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_jump_host_fails_within_the_connect_timeout() {
    support::bounded(a_silent_jump_host_fails_within_the_connect_timeout_body()).await
}

async fn a_silent_jump_host_fails_within_the_connect_timeout_body() {
    let Some(()) = support::ready("silent jump host") else {
        return;
    };
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = silent.local_addr().expect("addr").port();
    // Accept and hold every connection without a byte of SSH.
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = silent.accept().await {
            held.push(s);
        }
    });
    let target = Sshd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut opts = target.options(dir.path());
    opts.connect_timeout = Duration::from_secs(2);
    opts.connect_retries = 0;
    let mut bastion = HostSpec::new("127.0.0.1");
    bastion.name = "silent".into();
    bastion.port = Some(port);
    let mut host = target.host("root");
    host.jump = Some(Box::new(bastion));
    for via_pool in [false, true] {
        let started = Instant::now();
        let err = if via_pool {
            Pool::new(opts.clone())
                .session(&host)
                .await
                .expect_err("silent")
        } else {
            connect(&host, &opts).await.expect_err("silent")
        };
        assert!(matches!(err, SshError::Timeout { .. }), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(6),
            "{:?}",
            started.elapsed()
        );
    }
    holder.abort();
}
