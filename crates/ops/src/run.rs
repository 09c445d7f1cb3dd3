//! Running one plan: the engine with the SSH connector, events to the
//! screen the [`Report`] chooses (bars, plain lines or JSON lines) and to
//! the run log `clusters/<c>/logs/<stamp>-<label>.log`.
//! Every command that runs plans goes through here.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use ez_engine::transport::{Connector, LocalTransport};
use ez_engine::{EventConsumer, EventSink, Plan, Recap, RunLogWriter, RunOptions, Runner};
use ez_inventory::Cluster;

use crate::report::Report;

pub async fn run_plan(
    cluster: &Cluster,
    connector: Arc<dyn Connector>,
    plan: &Plan,
    options: RunOptions,
    out: &dyn Report,
    label: &str,
) -> Result<Recap> {
    let dry_run = options.dry_run;
    // A dry run writes nothing on the controller, not even its run log.
    let log = if dry_run {
        None
    } else {
        let logs = cluster.dir.join("logs");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
        std::fs::create_dir_all(cluster.dir.join("manifests"))?;
        let log_path = log_file_path(&logs, label);
        let log_file = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        Some((log_path, log_file))
    };
    let (log_path, log_file) = match log {
        Some((p, f)) => (Some(p), Some(f)),
        None => (None, None),
    };
    let mut options = options;
    // A dry run writes nothing on the controller, so it keeps no hashes.
    if !dry_run && options.hash_cache.is_none() {
        options.hash_cache = controller_hash_cache();
    }
    let runner = Runner::new(connector)
        .with_options(options)
        .with_controller(Arc::new(LocalTransport::new("controller")));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    // A bar per host with work in this plan (targets may be a superset).
    let hosts: Vec<String> = plan
        .units()
        .map(|u| u.host.clone())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut screen = out.plan_screen(&hosts, dry_run);
    let consumer = tokio::task::spawn_blocking(move || {
        let mut log = log_file.map(RunLogWriter::new);
        while let Some(e) = rx.blocking_recv() {
            if let Some(log) = log.as_mut() {
                let _ = log.on_event(&e);
            }
            let _ = screen.on_event(&e);
        }
    });
    let recap = runner.run(plan, EventSink::new(tx)).await;
    let _ = consumer.await;
    if let Some(p) = &log_path {
        out.run_log(p);
    }
    Ok(recap)
}

/// `logs/<UTC stamp>-<label>.log`, the label made file-name safe; never
/// overwrites an earlier log (two runs in one second get `-1`, `-2`...).
/// Where the controller keeps the hashes of the files it sends (the
/// bundle's binaries), so the next run does not read them again: the user's
/// own cache directory (`$XDG_CACHE_HOME/ezctl`, else `~/.cache/ezctl`).
/// Not next to the bundle: a bundle may be shared or read-only, and a hash
/// file that another user can write would let them make ezctl skip sending
/// a changed binary.
fn controller_hash_cache() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    let base = std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".cache"))
        })?;
    Some(base.join("ezctl").join("file-hashes"))
}

fn log_file_path(logs: &Path, label: &str) -> PathBuf {
    let slug: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = format!("{}-{slug}", crate::stamp::now());
    let mut path = logs.join(format!("{base}.log"));
    let mut n = 1;
    while path.exists() {
        path = logs.join(format!("{base}-{n}.log"));
        n += 1;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_names_are_safe_and_never_collide() {
        let dir = tempfile::tempdir().unwrap();
        let a = log_file_path(dir.path(), "add-node c1 10.0.0.9");
        std::fs::write(&a, "").unwrap();
        let b = log_file_path(dir.path(), "add-node c1 10.0.0.9");
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.ends_with("-add-node-c1-10.0.0.9.log"), "{name}");
        let odd = log_file_path(dir.path(), "../x/y");
        assert_eq!(odd.parent(), Some(dir.path()));
    }
}
