//! `ezctl backup`: the procedure is [`ez_ops::backup`]; this renders what
//! it did.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use ez_ops::backup::{human_size, Saved};
use ez_ops::home::Home;
use serde_json::json;

use crate::output::Output;

pub fn run(home: &Home, name: &str, keep: Option<usize>, out: &Output) -> Result<()> {
    let done = ez_ops::backup::run(home, name, keep, out)?;
    report(
        &done.saved,
        &done.latest,
        done.keep,
        &done.removed,
        done.took,
        out,
    );
    Ok(())
}

fn report(
    saved: &Saved,
    latest: &Path,
    keep: usize,
    removed: &[PathBuf],
    took: Duration,
    out: &Output,
) {
    let s = &saved.snapshot;
    let removed_names: Vec<String> = removed
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    if out.json {
        out.result(
            "backup",
            json!({
                "path": saved.path,
                "latest": latest,
                "member": s.member.to_string(),
                "size": s.size,
                "revision": s.status.revision,
                "total_keys": s.status.total_keys,
                "hash": s.status.hash,
                "sha256": s.sha256,
                "kept": keep,
                "removed": removed_names,
                "skipped": saved.skipped.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "duration_ms": took.as_millis() as u64,
            }),
        );
        return;
    }
    println!("saved {}", saved.path.display());
    println!(
        "  from etcd member {}: {}, revision {}, {} keys, hash {:#010x}, sha256 {}",
        s.member,
        human_size(s.size),
        s.status.revision,
        s.status.total_keys,
        s.status.hash,
        s.sha256
    );
    println!("  latest copy {}", latest.display());
    if removed_names.is_empty() {
        println!("  retention: newest {keep} kept, nothing removed");
    } else {
        println!(
            "  retention: newest {keep} kept, removed {}",
            removed_names.join(", ")
        );
    }
    println!("  took {:.1}s", took.as_secs_f64());
}
