use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use ez_ssh::{connect, FileKind, SshError, UploadOutcome};

use crate::support::{self, pseudo_random, sha256sum, Sshd, SshdConfig};

/// Files in `dir` other than `keep` (temp files an upload left behind).
fn strays(dir: &Path, keep: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read_dir")
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != keep)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_upload_then_unchanged_without_resending() {
    support::bounded(fifty_megabytes_upload_then_unchanged_without_resending_body()).await
}

async fn fifty_megabytes_upload_then_unchanged_without_resending_body() {
    let Some(()) = support::ready("fifty_megabytes_upload") else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let s = connect(&sshd.host("root"), &opts).await.expect("connect");
    // sshd and this test share the machine: the remote path is local too.
    let remote_dir = sshd.dir.path().join("remote/a/b");
    let dest = remote_dir.join("big.bin");
    let dest_s = dest.to_str().expect("utf8");
    let src = sshd.dir.path().join("big-source.bin");
    std::fs::write(&src, pseudo_random(50 * 1024 * 1024, 7)).expect("write source");

    let started = Instant::now();
    let sent_before = s.bytes_sent();
    let first = s
        .upload(src.as_path(), dest_s, 0o640, Some(("nobody", "nogroup")))
        .await
        .expect("first upload");
    let first_took = started.elapsed();
    let first_sent = s.bytes_sent() - sent_before;
    eprintln!("50 MB upload took {first_took:?}");
    assert_eq!(
        first,
        UploadOutcome::Uploaded {
            bytes: 50 * 1024 * 1024
        }
    );
    assert!(first_sent >= 50 * 1024 * 1024, "sent {first_sent}");
    assert_eq!(sha256sum(&dest), sha256sum(&src));
    let meta = std::fs::metadata(&dest).expect("dest exists");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(
        (meta.uid(), meta.gid()),
        (65534, 65534),
        "owner nobody:nogroup"
    );
    assert_eq!(
        strays(&remote_dir, "big.bin"),
        Vec::<String>::new(),
        "no temp files"
    );

    let started = Instant::now();
    let sent_before = s.bytes_sent();
    let channels_before = s.channels_opened();
    let second = s
        .upload(src.as_path(), dest_s, 0o640, Some(("nobody", "nogroup")))
        .await
        .expect("second upload");
    let second_took = started.elapsed();
    assert_eq!(second, UploadOutcome::Unchanged);
    assert_eq!(
        s.bytes_sent() - sent_before,
        0,
        "unchanged upload sent data"
    );
    assert_eq!(
        s.channels_opened() - channels_before,
        1,
        "one probe round trip"
    );
    // Time is no proof on a shared machine (both sides hash 50 MB here);
    // the byte counter above is.
    eprintln!("first upload {first_took:?}, unchanged check {second_took:?}");

    // Same content, different mode: fixed without sending the data.
    let third = s
        .upload(src.as_path(), dest_s, 0o600, None)
        .await
        .expect("mode change");
    assert_eq!(third, UploadOutcome::MetadataChanged);
    let meta = std::fs::metadata(&dest).expect("dest exists");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(s.bytes_sent() - sent_before, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_uploads_replace_content_and_refuse_bad_input() {
    support::bounded(small_uploads_replace_content_and_refuse_bad_input_body()).await
}

async fn small_uploads_replace_content_and_refuse_bad_input_body() {
    let Some(()) = support::ready("small_uploads") else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let s = connect(&sshd.host("root"), &opts).await.expect("connect");
    let dest = sshd.dir.path().join("conf/app.conf");
    let dest_s = dest.to_str().expect("utf8");
    let out = s.upload("v1\n", dest_s, 0o644, None).await.expect("v1");
    assert_eq!(out, UploadOutcome::Uploaded { bytes: 3 });
    let out = s
        .upload("v2 longer\n", dest_s, 0o644, None)
        .await
        .expect("v2");
    assert!(out.changed());
    assert_eq!(std::fs::read_to_string(&dest).expect("read"), "v2 longer\n");
    let out = s
        .upload(Vec::new(), dest_s, 0o644, None)
        .await
        .expect("empty");
    assert_eq!(out, UploadOutcome::Uploaded { bytes: 0 });
    assert_eq!(std::fs::read(&dest).expect("read").len(), 0);
    assert_eq!(
        strays(dest.parent().expect("dir"), "app.conf"),
        Vec::<String>::new()
    );

    for bad in ["relative/path", "/ends/with/", "/new\nline"] {
        let err = s.upload("x", bad, 0o644, None).await.expect_err("bad path");
        assert!(matches!(err, SshError::InvalidInput { .. }), "{bad}: {err}");
    }
    let err = s
        .upload("x", dest_s, 0o644, Some(("root;id", "root")))
        .await
        .expect_err("bad owner");
    assert!(matches!(err, SshError::InvalidInput { .. }), "{err}");
    let err = s
        .upload("x", dest_s, 0o644, Some(("no-such-user-ezssh", "root")))
        .await
        .expect_err("unknown owner");
    assert!(matches!(err, SshError::RemoteCommand { .. }), "{err}");
    assert!(err.to_string().contains("no-such-user-ezssh"), "{err}");
    assert_eq!(
        std::fs::read(&dest).expect("read").len(),
        0,
        "failed upload kept old content"
    );
    assert_eq!(
        strays(dest.parent().expect("dir"), "app.conf"),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_cut_by_a_dying_sshd_leaves_old_file_and_no_temp() {
    support::bounded(upload_cut_by_a_dying_sshd_leaves_old_file_and_no_temp_body()).await
}

async fn upload_cut_by_a_dying_sshd_leaves_old_file_and_no_temp_body() {
    let Some(()) = support::ready("upload_cut_by_a_dying_sshd") else {
        return;
    };
    let mut sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let s = connect(&sshd.host("root"), &opts).await.expect("connect");
    let dir = sshd.dir.path().join("cut");
    let dest = dir.join("target.bin");
    let dest_s = dest.to_str().expect("utf8").to_string();
    s.upload("old", &dest_s, 0o644, None)
        .await
        .expect("old content");
    let big = pseudo_random(200 * 1024 * 1024, 3);
    let uploader = {
        let s = s.clone();
        tokio::spawn(async move { s.upload(big, &dest_s, 0o644, None).await })
    };
    // Wait until the temp file exists and is growing, then kill sshd.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let growing = std::fs::read_dir(&dir)
            .expect("read_dir")
            .filter_map(Result::ok)
            .any(|e| {
                e.file_name().to_string_lossy().starts_with(".ezctl-upload")
                    && e.metadata().map(|m| m.len() > 0).unwrap_or(false)
            });
        if growing {
            break;
        }
        assert!(Instant::now() < deadline, "upload never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sshd.kill_sshd_only();
    let err = tokio::time::timeout(Duration::from_secs(20), uploader)
        .await
        .expect("upload returns after the server died")
        .expect("join")
        .expect_err("upload must fail");
    assert!(
        matches!(
            err,
            SshError::Disconnected { .. } | SshError::ChannelClosed { .. }
        ),
        "{err}"
    );
    // The remote shell saw EOF, failed the size check and removed its temp file.
    let deadline = Instant::now() + Duration::from_secs(10);
    while strays(&dir, "target.bin") != Vec::<String>::new() {
        assert!(
            Instant::now() < deadline,
            "temp file left: {:?}",
            strays(&dir, "target.bin")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(std::fs::read_to_string(&dest).expect("old file"), "old");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sha256_and_stat_of_many_files_in_one_round_trip_and_download() {
    support::bounded(sha256_and_stat_of_many_files_in_one_round_trip_and_download_body()).await
}

async fn sha256_and_stat_of_many_files_in_one_round_trip_and_download_body() {
    let Some(()) = support::ready("sha256_and_stat") else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let s = connect(&sshd.host("root"), &opts).await.expect("connect");
    let dir = sshd.dir.path().join("many");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut paths = Vec::new();
    for i in 0..40 {
        let p = dir.join(format!("file {i} 'q'.txt"));
        std::fs::write(&p, format!("content {i}\n")).expect("write");
        paths.push(p.to_str().expect("utf8").to_string());
    }
    let missing = dir.join("missing").to_str().expect("utf8").to_string();
    let dir_s = dir.to_str().expect("utf8").to_string();
    let mut query: Vec<&str> = paths.iter().map(String::as_str).collect();
    query.push(&missing);
    query.push(&dir_s);

    let before = s.channels_opened();
    let hashes = s.remote_sha256(&query).await.expect("sha256");
    assert_eq!(
        s.channels_opened() - before,
        1,
        "one round trip for 42 paths"
    );
    assert_eq!(hashes.len(), 42);
    for p in &paths {
        let expected = sha256sum(Path::new(p));
        assert_eq!(hashes[p].as_deref(), Some(expected.as_str()), "{p}");
    }
    assert_eq!(hashes[&missing], None);
    assert_eq!(hashes[&dir_s], None, "a directory has no sha256");

    let before = s.channels_opened();
    let stats = s.stat(&query).await.expect("stat");
    assert_eq!(s.channels_opened() - before, 1);
    let st = stats[&paths[3]].as_ref().expect("exists");
    assert_eq!(
        (st.kind, st.size, st.owner.as_str()),
        (FileKind::File, 10, "root")
    );
    assert_eq!(stats[&dir_s].as_ref().map(|s| s.kind), Some(FileKind::Dir));
    assert!(stats[&missing].is_none());

    // Download a root-only file: content equal, written 0600 locally.
    let secret = dir.join("secret.key");
    std::fs::write(&secret, "top secret\n").expect("write");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let local = sshd.dir.path().join("downloaded.key");
    let n = s
        .download(secret.to_str().expect("utf8"), &local)
        .await
        .expect("download");
    assert_eq!(n, 11);
    assert_eq!(
        std::fs::read_to_string(&local).expect("read"),
        "top secret\n"
    );
    assert_eq!(
        std::fs::metadata(&local)
            .expect("meta")
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let err = s
        .download(&missing, &sshd.dir.path().join("nothing"))
        .await
        .expect_err("missing remote file");
    assert!(matches!(err, SshError::RemoteCommand { .. }), "{err}");
    assert!(!sshd.dir.path().join("nothing").exists());
    let leftovers: Vec<_> = std::fs::read_dir(sshd.dir.path())
        .expect("read_dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".nothing"))
        .collect();
    assert!(leftovers.is_empty(), "download temp file left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_file_sends_without_probing_in_one_channel() {
    support::bounded(write_file_sends_without_probing_in_one_channel_body()).await
}

async fn write_file_sends_without_probing_in_one_channel_body() {
    let Some(()) = support::ready("write_file_sends_without_probing") else {
        return;
    };
    let sshd = Sshd::start();
    let opts = sshd.options(sshd.dir.path());
    let s = connect(&sshd.host("root"), &opts).await.expect("connect");
    let dir = sshd.dir.path().join("remote/w");
    let dest = dir.join("unit.conf");
    let dest_s = dest.to_str().expect("utf8");
    for round in 0..2 {
        let channels_before = s.channels_opened();
        let sent_before = s.bytes_sent();
        let out = s
            .write_file("same content\n", dest_s, Some(0o600), None)
            .await
            .expect("write_file");
        // Same content the second time: still sent, in one channel, no probe.
        assert_eq!(out, UploadOutcome::Uploaded { bytes: 13 }, "round {round}");
        assert_eq!(s.channels_opened() - channels_before, 1, "round {round}");
        assert!(s.bytes_sent() - sent_before >= 13);
        assert_eq!(std::fs::read(&dest).expect("dest"), b"same content\n");
        let meta = std::fs::metadata(&dest).expect("dest exists");
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert_eq!(strays(&dir, "unit.conf"), Vec::<String>::new());
    }
    // A missing source file is a clear error naming it, and nothing is sent.
    let err = s
        .write_file(
            sshd.dir.path().join("no-such-file"),
            dest_s,
            Some(0o644),
            None,
        )
        .await
        .expect_err("missing source");
    assert!(err.to_string().contains("no-such-file"), "{err}");
}

/// `write_file` without a mode keeps the mode of the file it replaces (a
/// 0600 key stayed 0644 when ezctl rewrote it without one), a new file is
/// 0644; and the temp file is fsynced before the rename: a `sync` first in
/// the server's PATH logs what it was asked to flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_file_keeps_the_mode_and_syncs_before_the_rename() {
    support::bounded(write_file_keeps_the_mode_and_syncs_before_the_rename_body()).await
}

async fn write_file_keeps_the_mode_and_syncs_before_the_rename_body() {
    let Some(()) = support::ready("write_file keeps the mode") else {
        return;
    };
    let shim = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(shim.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let log = shim.path().join("sync.log");
    let real_sync = support::which("sync").expect("sync");
    std::fs::write(
        shim.path().join("sync"),
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = -- ] || {{ [ -f \"$a\" ] && echo \"file $a\" || echo \"dir $a\"; }}; done >> {}\nexec {} \"$@\"\n",
            log.display(),
            real_sync.display()
        ),
    )
    .expect("shim");
    std::fs::set_permissions(
        shim.path().join("sync"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod shim");
    let sshd = Sshd::start_with(SshdConfig {
        extra: vec![format!(
            "SetEnv PATH={}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
            shim.path().display()
        )],
        ..Default::default()
    });
    let opts = sshd.options(sshd.dir.path());
    let s = connect(&sshd.host("root"), &opts).await.expect("connect");
    let dir = sshd.dir.path().join("remote/k");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let key = dir.join("etcd-key.pem");
    std::fs::write(&key, "old\n").expect("key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    s.write_file("new\n", key.to_str().unwrap(), None, None)
        .await
        .expect("write_file");
    assert_eq!(std::fs::read(&key).expect("key"), b"new\n");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o7777,
        0o600
    );
    let fresh = dir.join("fresh.conf");
    s.write_file("x\n", fresh.to_str().unwrap(), None, None)
        .await
        .expect("write_file");
    assert_eq!(
        std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o7777,
        0o644
    );
    let synced = std::fs::read_to_string(&log).unwrap_or_default();
    let files: Vec<&str> = synced.lines().filter(|l| l.starts_with("file ")).collect();
    assert_eq!(
        files.len(),
        2,
        "one fsync of each temp file before its rename:\n{synced}"
    );
    assert!(
        files.iter().all(|l| l.contains("/.ezctl-upload.")),
        "{synced}"
    );
    assert!(
        synced
            .lines()
            .any(|l| l == format!("dir {}", dir.display())),
        "{synced}"
    );
}
