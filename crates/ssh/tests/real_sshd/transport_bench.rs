//! Upload transport measurement: 50 MB uploads end to end, exec+`cat`
//! (`Session::upload`) vs SFTP, interleaved, best and median of 9. Run with `cargo test -p ez-ssh --features bench-sftp --test
//! real_sshd transport -- --nocapture`; without the feature only the exec
//! path is timed (as a throughput floor).

use std::time::{Duration, Instant};

use ez_ssh::connect;

use crate::support::{self, pseudo_random, sha256sum, Sshd};

const SIZE: usize = 50 * 1024 * 1024;
// Without the SFTP side this is only a throughput floor check: keep it short.
const ROUNDS: usize = if cfg!(feature = "bench-sftp") { 9 } else { 2 };

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
    let mut cat_times = Vec::new();
    let mut sftp_times: Vec<Duration> = Vec::new();
    for _ in 0..ROUNDS {
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
    // Far below loopback speed would mean a windowing or chunking bug.
    assert!(cat_best < Duration::from_secs(10), "{cat_best:?}");
    if !sftp_times.is_empty() {
        assert_eq!(sha256sum(&sftp_path), expected);
        let (best, median) = best_and_median(&mut sftp_times);
        eprintln!(
            "sftp:     50 MB best {best:?} ({:.0} MB/s), median {median:?}",
            mb_per_s(best)
        );
    }
}
