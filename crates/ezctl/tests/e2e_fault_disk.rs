//! Fault: the disk of one host is full while a large binary is uploaded
//! (a 1 MB tmpfs over /opt/kube/bin holding an older etcd, then `setup 02`
//! sends the real one). The error names host, file and "No space left";
//! the old file stays intact and no temp file is left; after the space is
//! back the same command converges. Own test binary (mounts on a machine).
//! Needs root and the lab; says why and passes where missing.

mod common;
mod fault_support;

use std::time::Duration;

use common::text;
use ez_lab::Role;
use fault_support::*;

#[test]
fn a_full_disk_fails_the_upload_cleanly_and_a_rerun_converges() {
    let Some(env) = common::env(3) else { return };
    let prepare = ezctl_json(env, "setup", &["01"]);
    assert!(prepare.status.success(), "{}", text(&prepare));
    let etcd = env.group(Role::Etcd);
    let full = etcd[1].clone();
    let old = "#!/bin/sh\necho an older etcd\n";
    let (code, out) = env.on(
        &full,
        &format!(
            "mkdir -p /opt/kube/bin && mount -t tmpfs -o size=1m ezf-full /opt/kube/bin && \
             printf '{}' > /opt/kube/bin/etcd && chmod 755 /opt/kube/bin/etcd",
            old.replace('\n', "\\n")
        ),
    );
    assert_eq!(code, 0, "{out}");
    let old_sha = remote_sha(env, &full, "/opt/kube/bin/etcd");
    let inventory = inventory_bytes(env);

    let out = ezctl_json(env, "setup", &["02"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let r = recap(&out);
    let failures = r["failures"].as_array().cloned().unwrap_or_default();
    assert_eq!(failures.len(), 1, "only the full host fails: {r}");
    let f = &failures[0];
    assert_eq!(f["host"], full.as_str(), "{f}");
    assert_eq!(f["role"], "etcd", "{f}");
    let error = f["error"].as_str().unwrap_or("");
    assert!(
        error.contains("upload /opt/kube/bin/etcd") && error.contains("No space left on device"),
        "names the file and the cause: {error}"
    );
    // The old binary is intact, nothing else is in the directory.
    assert_eq!(remote_sha(env, &full, "/opt/kube/bin/etcd"), old_sha);
    let (_, listing) = env.on(&full, "ls -A /opt/kube/bin");
    assert_eq!(listing.trim(), "etcd", "a temp or truncated file is left");
    assert_no_upload_leftovers(env, Duration::from_secs(5));
    assert_eq!(inventory, inventory_bytes(env));
    // The human output says it too, with host and file.
    let human = env.ezctl(&["setup", &env.cluster, "02"]);
    let said = text(&human);
    assert!(
        said.lines().any(|l| l.starts_with(&format!(
            "failed: etcd on {full} / etcd binaries: upload /opt/kube/bin/etcd failed"
        )) && l.contains("No space left on device")),
        "{said}"
    );

    // Space back: the same command converges.
    let (code, out) = env.on(&full, "umount /opt/kube/bin");
    assert_eq!(code, 0, "{out}");
    let rerun = ezctl_json(env, "setup", &["02"]);
    assert!(rerun.status.success(), "{}", text(&rerun));
    let bundle_sha = sha256_file(&env.home.join("bin/etcd"));
    assert_eq!(remote_sha(env, &full, "/opt/kube/bin/etcd"), bundle_sha);
    assert_converged(env, "setup", &["02"]);
}
