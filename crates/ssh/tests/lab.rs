//! The executor against real machines of the lab (systemd, sshd, their own
//! network namespaces): parallel exec, skipped re-uploads, host-key and key
//! refusals, sudo, a jump host, and a machine that dies mid-run. Needs root
//! and the lab; says why and passes where they are missing.

use std::sync::Mutex;
use std::time::Duration;

use ez_lab::Lab;
use ez_ssh::{fan_out, ExecOpts, HostSpec, Pool, SshError, SshOptions, Sudo, UploadOutcome};

/// The tests change machines (host keys, users, firewall, power): one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn lab() -> Option<&'static Lab> {
    ez_lab::testing::shared_lab(5)
}

fn options(lab: &Lab) -> SshOptions {
    SshOptions {
        known_hosts: vec![lab.known_hosts_path()],
        connect_timeout: Duration::from_secs(5),
        connect_retries: 1,
        ..SshOptions::default()
    }
}

fn spec(lab: &Lab, index: usize) -> HostSpec {
    let host = &lab.hosts()[index];
    let mut s = HostSpec::new(host.ip.to_string());
    s.user = Some("root".into());
    s.identity_files = vec![lab.ssh_key_path()];
    s
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// A root shell command on a machine through the lab's own ssh client.
fn on(lab: &Lab, index: usize, cmd: &str) -> String {
    let out = lab
        .ssh_run(index, cmd, Duration::from_secs(60))
        .expect("ssh_run");
    assert!(
        out.status.success(),
        "`{cmd}` on machine {index}: {}{}",
        out.stdout,
        out.stderr
    );
    out.stdout
}

#[test]
fn exec_on_every_machine_in_parallel() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(lab) = lab() else { return };
    let pool = Pool::new(options(lab));
    let specs: Vec<HostSpec> = (0..lab.hosts().len()).map(|i| spec(lab, i)).collect();
    rt().block_on(async {
        // Each command stamps when it started and ended (the machines share
        // the controller's clock) around a one-second sleep.
        let mut rx = fan_out(&pool, specs, 64, |s| async move {
            s.exec_ok(
                "date +%s%N; sleep 1; date +%s%N; hostname",
                ExecOpts::default(),
            )
            .await
        });
        let mut names = Vec::new();
        let mut spans: Vec<(u128, u128, String)> = Vec::new();
        while let Some(r) = rx.recv().await {
            let out = r.result.expect("exec").stdout_str().to_string();
            let lines: Vec<&str> = out.lines().collect();
            let [start, end, name] = lines[..] else {
                panic!("{}: {out:?}", r.host)
            };
            let stamp = |t: &str| t.parse::<u128>().unwrap_or_else(|e| panic!("{t}: {e}"));
            spans.push((stamp(start), stamp(end), r.host.clone()));
            names.push(name.to_string());
        }
        // In parallel, every command started before any of them ended:
        // all five were running at once. In sequence, each would start
        // after the previous one's end.
        let last_start = spans.iter().map(|s| s.0).max().expect("spans");
        let first_end = spans.iter().map(|s| s.1).min().expect("spans");
        assert!(
            last_start < first_end,
            "not parallel: a command started {} ms after another had ended: {spans:?}",
            (last_start - first_end) / 1_000_000
        );
        names.sort();
        let mut want: Vec<String> = lab.hosts().iter().map(|h| h.hostname.clone()).collect();
        want.sort();
        assert_eq!(names, want);
    });
}

#[test]
fn a_50_mb_upload_is_skipped_the_second_time() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("payload.bin");
    let data: Vec<u8> = (0..50 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&file, &data).expect("write");
    let pool = Pool::new(options(lab));
    rt().block_on(async {
        for i in 0..lab.hosts().len() {
            let s = pool.session(&spec(lab, i)).await.expect("connect");
            let first = s
                .upload(file.clone(), "/var/tmp/ezssh/payload.bin", 0o644, None)
                .await
                .expect("upload");
            assert!(
                matches!(
                    first,
                    UploadOutcome::Uploaded { .. } | UploadOutcome::Unchanged
                ),
                "{first:?}"
            );
            let sent_before = s.bytes_sent();
            let second = s
                .upload(file.clone(), "/var/tmp/ezssh/payload.bin", 0o644, None)
                .await
                .expect("upload");
            assert_eq!(second, UploadOutcome::Unchanged);
            assert!(
                s.bytes_sent() - sent_before < 64 * 1024,
                "the unchanged file was sent again"
            );
            let sums = s
                .remote_sha256(&["/var/tmp/ezssh/payload.bin"])
                .await
                .expect("sha");
            let want = {
                use sha2::Digest;
                hex::encode(sha2::Sha256::digest(&data))
            };
            assert_eq!(
                sums["/var/tmp/ezssh/payload.bin"].as_deref(),
                Some(want.as_str())
            );
        }
    });
}

#[test]
fn a_changed_host_key_is_refused_with_both_fingerprints() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(lab) = lab() else { return };
    let i = 1;
    on(lab, i, "mkdir -p /root/hostkeys.bak && cp -a /etc/ssh/ssh_host_* /root/hostkeys.bak/ && rm -f /etc/ssh/ssh_host_* && ssh-keygen -q -A && systemctl restart ssh");
    let err = rt()
        .block_on(ez_ssh::connect(&spec(lab, i), &options(lab)))
        .err();
    // Put the machine's own keys back before asserting, so a failure here
    // does not break the other tests (through a throw-away pin of the new key).
    let mut tofu = options(lab);
    let pins = tempfile::NamedTempFile::new().expect("tmp");
    tofu.known_hosts = vec![pins.path().to_path_buf()];
    tofu.accept_new = true;
    rt().block_on(async {
        let s = ez_ssh::connect(&spec(lab, i), &tofu)
            .await
            .expect("connect with a fresh pin");
        s.exec_ok(
            "cp -a /root/hostkeys.bak/* /etc/ssh/ && systemctl restart ssh",
            ExecOpts::default(),
        )
        .await
        .expect("restore keys");
    });
    let text = err.as_ref().map(ToString::to_string).unwrap_or_default();
    match err {
        Some(SshError::HostKeyChanged { old_fp, new_fp, .. }) => {
            assert_ne!(old_fp, new_fp);
            assert!(text.contains(&*old_fp) && text.contains(&*new_fp), "{text}");
            assert!(
                text.contains(&lab.hosts()[i].ip.to_string()),
                "names the host: {text}"
            );
            assert!(text.contains("ssh-keygen -R"), "says how to fix it: {text}");
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    // And the original key is trusted again.
    rt().block_on(async {
        let s = ez_ssh::connect(&spec(lab, i), &options(lab))
            .await
            .expect("original key back");
        s.exec_ok("true", ExecOpts::default()).await.expect("exec");
    });
}

#[test]
fn a_wrong_key_is_refused_naming_the_host() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(lab) = lab() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("id_ed25519");
    let st = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(st.success());
    let mut s = spec(lab, 0);
    s.identity_files = vec![key];
    let mut opts = options(lab);
    opts.use_agent = false;
    let Err(err) = rt().block_on(ez_ssh::connect(&s, &opts)) else {
        panic!("a wrong key must be refused")
    };
    assert!(matches!(err, SshError::AuthFailed { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&lab.hosts()[0].ip.to_string()), "{text}");
    assert!(text.contains("authentication failed"), "{text}");
}

#[test]
fn sudo_as_a_non_root_user() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(lab) = lab() else { return };
    let i = 2;
    on(
        lab,
        i,
        "id ops >/dev/null 2>&1 || useradd -m -s /bin/sh ops; mkdir -p ~ops/.ssh && cp /root/.ssh/authorized_keys ~ops/.ssh/ && chown -R ops: ~ops/.ssh && echo 'ops ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/ops && chmod 0440 /etc/sudoers.d/ops",
    );
    let mut s = spec(lab, i);
    s.user = Some("ops".into());
    s.sudo = Sudo::Passwordless;
    rt().block_on(async {
        let session = ez_ssh::connect(&s, &options(lab))
            .await
            .expect("connect as ops");
        let plain = session
            .exec_ok("id -un", ExecOpts::default())
            .await
            .expect("exec");
        assert_eq!(plain.stdout_str().trim(), "ops");
        let root = session
            .exec_ok(
                "id -u",
                ExecOpts {
                    sudo: true,
                    ..ExecOpts::default()
                },
            )
            .await
            .expect("sudo exec");
        assert_eq!(root.stdout_str().trim(), "0");
        session
            .upload(b"secret\n".as_slice(), "/root/ezssh-sudo.txt", 0o600, None)
            .await
            .expect("sudo upload");
    });
    assert_eq!(
        on(
            lab,
            i,
            "stat -c '%U %a' /root/ezssh-sudo.txt && cat /root/ezssh-sudo.txt"
        ),
        "root 600\nsecret\n"
    );
    on(
        lab,
        i,
        "rm -f /root/ezssh-sudo.txt /etc/sudoers.d/ops && userdel -r ops",
    );
}

#[test]
fn a_jump_host_reaches_a_machine_the_controller_cannot() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(lab) = lab() else { return };
    let (bastion, target) = (0, 3);
    let controller = lab.controller_ip().to_string();
    on(
        lab,
        target,
        &format!("iptables -I INPUT -s {controller} -p tcp --dport 22 -j DROP"),
    );
    let mut opts = options(lab);
    opts.connect_timeout = Duration::from_secs(2);
    let direct = rt().block_on(ez_ssh::connect(&spec(lab, target), &opts));
    let mut via = spec(lab, target);
    via.jump = Some(Box::new(spec(lab, bastion)));
    let jumped = rt().block_on(async {
        let s = ez_ssh::connect(&via, &options(lab)).await?;
        s.exec_ok("hostname", ExecOpts::default()).await
    });
    let cleanup = rt().block_on(async {
        let s = ez_ssh::connect(&via, &options(lab)).await?;
        s.exec_ok(
            &format!("iptables -D INPUT -s {controller} -p tcp --dport 22 -j DROP"),
            ExecOpts::default(),
        )
        .await
    });
    assert!(
        direct.is_err(),
        "the controller must not reach the target directly"
    );
    assert_eq!(
        jumped.expect("via the jump host").stdout_str().trim(),
        lab.hosts()[target].hostname
    );
    cleanup.expect("firewall rule removed");
}

#[test]
fn a_machine_stopped_mid_run_fails_alone() {
    let _s = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let Some(lab) = lab() else { return };
    let victim = 4;
    let pool = Pool::new(options(lab));
    let specs: Vec<HostSpec> = (0..lab.hosts().len()).map(|i| spec(lab, i)).collect();
    let victim_ip = lab.hosts()[victim].ip.to_string();
    let results = rt().block_on(async {
        let mut rx = fan_out(&pool, specs, 64, |s| async move {
            s.exec_ok(
                "sleep 4; echo done",
                ExecOpts {
                    timeout: Some(Duration::from_secs(30)),
                    ..ExecOpts::default()
                },
            )
            .await
        });
        tokio::time::sleep(Duration::from_millis(1500)).await;
        lab.stop_machine(victim).expect("stop machine");
        let mut out = Vec::new();
        while let Some(r) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .expect("no host may hang the run")
        {
            out.push(r);
        }
        out
    });
    lab.start_machine(victim).expect("start machine again");
    assert_eq!(results.len(), lab.hosts().len());
    for r in &results {
        if r.host == victim_ip {
            let Err(err) = &r.result else {
                panic!("the stopped machine must fail")
            };
            assert!(
                matches!(
                    err,
                    SshError::Disconnected { .. }
                        | SshError::ChannelClosed { .. }
                        | SshError::Timeout { .. }
                ),
                "{err:?}"
            );
            assert!(err.to_string().contains(&victim_ip), "{err}");
        } else {
            let out = r
                .result
                .as_ref()
                .unwrap_or_else(|e| panic!("{} failed: {e}", r.host));
            assert_eq!(out.stdout_str().trim(), "done");
        }
    }
}
