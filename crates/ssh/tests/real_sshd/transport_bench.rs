//! Upload transport measurement: 50 MB uploads end to end, exec+`cat`
//! (`Session::upload`) vs SFTP, interleaved, best and median of 9. Run with `cargo test -p ez-ssh --features bench-sftp --test
//! real_sshd transport -- --nocapture`; without the feature only the exec
//! path is timed, against OpenSSH's own client piping the same 50 MB into
//! `cat` on the same server in the same rounds: a windowing or chunking
//! bug shows as a ratio, whatever the machine's speed. Absolute speed is
//! the bench's business (crates/bench), not this test's.

use std::path::Path;
use std::time::{Duration, Instant};

use ez_ssh::connect;

use crate::support::{self, pseudo_random, sha256sum, Sshd};

const SIZE: usize = 50 * 1024 * 1024;
// Without the SFTP side this is only a throughput floor check: keep it short.
const ROUNDS: usize = if cfg!(feature = "bench-sftp") { 9 } else { 2 };

/// How much longer than OpenSSH's client our upload may take. On the
/// 2-core test machine (debug build of ez-ssh) it takes 0.4-0.6 times as
/// long; a 10 ms stall per 256 KiB chunk (a delayed ACK's kind of bug)
/// makes it about 4 times.
const MAX_RATIO: f64 = 2.0;

/// `ssh ... 'cat > dest' < src` with OpenSSH's client, strict host keys.
async fn openssh_cat(sshd: &Sshd, known_hosts: &Path, src: &Path, dest: &Path) {
    let input = std::fs::File::open(src).expect("open source");
    let out = tokio::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-i"])
        .arg(&sshd.client_key)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-p",
        ])
        .arg(sshd.port.to_string())
        .arg(format!("{}@127.0.0.1", sshd.root_alias))
        .arg(format!("cat > {}", dest.display()))
        .stdin(input)
        .output()
        .await
        .expect("run ssh");
    assert!(
        out.status.success(),
        "OpenSSH upload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn best_and_median(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    (times[0], times[times.len() / 2])
}

fn mb_per_s(d: Duration) -> f64 {
    50.0 / d.as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_transport_exec_cat_vs_sftp() {
    support::bounded(upload_transport_exec_cat_vs_sftp_body()).await
}

async fn upload_transport_exec_cat_vs_sftp_body() {
    let Some(()) = support::ready("transport benchmark") else {
        return;
    };
    let Some(()) = ez_lab::testing::require(
        support::which("ssh").is_some(),
        "the OpenSSH client (ssh) is not installed: apt-get install openssh-client",
    ) else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let s = connect(&sshd.host("root"), &opts).await.expect("connect");
    let data = pseudo_random(SIZE, 11);
    let src = sshd.dir.path().join("src.bin");
    std::fs::write(&src, &data).expect("write");
    let expected = sha256sum(&src);

    // Interleaved rounds, best of each: the machine is shared, so single
    // runs are noisy; the minimum is the transport's own cost.
    let cat_path = sshd.dir.path().join("via-cat.bin");
    let sftp_path = sshd.dir.path().join("via-sftp.bin");
    let openssh_path = sshd.dir.path().join("via-openssh.bin");
    let known_hosts = sshd.dir.path().join("known_hosts");
    let mut cat_times = Vec::new();
    let mut openssh_times = Vec::new();
    let mut sftp_times: Vec<Duration> = Vec::new();
    for _ in 0..ROUNDS {
        // The reference: OpenSSH's client, a new connection each round
        // (its handshake counts against it, not against us).
        let _ = std::fs::remove_file(&openssh_path);
        let started = Instant::now();
        openssh_cat(&sshd, &known_hosts, &src, &openssh_path).await;
        openssh_times.push(started.elapsed());

        let started = Instant::now();
        // A fresh name each round: both paths then do the full work
        // (local hash, probe, transfer to a temp file, chmod, rename).
        let _ = std::fs::remove_file(&cat_path);
        let out = s
            .upload(data.clone(), cat_path.to_str().expect("utf8"), 0o644, None)
            .await
            .expect("exec+cat upload");
        assert!(out.changed());
        cat_times.push(started.elapsed());
        #[cfg(feature = "bench-sftp")]
        {
            let started = Instant::now();
            let _ = std::fs::remove_file(&sftp_path);
            let out = s
                .bench_sftp_upload(data.clone(), sftp_path.to_str().expect("utf8"), 0o644)
                .await
                .expect("sftp upload");
            assert!(out.changed());
            sftp_times.push(started.elapsed());
        }
    }
    assert_eq!(sha256sum(&cat_path), expected);
    let (cat_best, cat_median) = best_and_median(&mut cat_times);
    eprintln!(
        "exec+cat: 50 MB best {cat_best:?} ({:.0} MB/s), median {cat_median:?}",
        mb_per_s(cat_best)
    );
    assert_eq!(sha256sum(&openssh_path), expected);
    let (openssh_best, _) = best_and_median(&mut openssh_times);
    let ratio = cat_best.as_secs_f64() / openssh_best.as_secs_f64();
    eprintln!(
        "openssh:  50 MB best {openssh_best:?} ({:.0} MB/s); exec+cat takes {ratio:.1} times as long",
        mb_per_s(openssh_best)
    );
    // Far below what OpenSSH moves over the same loopback would mean a
    // windowing or chunking bug.
    assert!(
        ratio < MAX_RATIO,
        "exec+cat {cat_best:?} vs OpenSSH {openssh_best:?}: {ratio:.1} times as long"
    );
    if !sftp_times.is_empty() {
        assert_eq!(sha256sum(&sftp_path), expected);
        let (best, median) = best_and_median(&mut sftp_times);
        eprintln!(
            "sftp:     50 MB best {best:?} ({:.0} MB/s), median {median:?}",
            mb_per_s(best)
        );
    }
}
