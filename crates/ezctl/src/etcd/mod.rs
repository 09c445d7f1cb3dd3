//! etcd day-2 operations shared by `backup`, `restore`, `add-etcd` and
//! `del-etcd`.
//!
//! * [`ctl`]: etcdctl command lines run ON a member (its binary, its certs)
//!   and the JSON they print;
//! * [`quorum`]: when adding or removing a member, or restarting its
//!   clients (upgrade), is safe;
//! * [`snapshots`]: snapshot files on the controller (names, latest copy,
//!   retention);
//! * [`members`]: etcdctl over SSH, with errors that name the host and step;
//! * [`inventory`]: `hosts.yml` with an edit applied, loaded and checked
//!   before it is written;
//!
//! UTC time stamps for file names are [`crate::stamp`].

pub mod ctl;
pub mod members;
pub mod quorum;
pub mod snapshots;

use anyhow::Result;
use ez_engine::Lock;
use ez_inventory::Cluster;

use crate::exit::{ExitCode, Failure};

/// The cluster lock for the whole command: every etcd command runs several
/// steps (etcdctl calls, plans) that no other ezctl run may interleave with.
pub fn lock(cluster: &Cluster, command: &str, out: &crate::output::Output) -> Result<Lock> {
    let lock = Lock::acquire(&cluster.dir, command)
        .map_err(|e| Failure::new(ExitCode::Locked, e.to_string()))?;
    if let Some(prev) = lock.taken_over() {
        out.warn(format!(
            "took over a stale lock of pid {} ({} since {})",
            prev.pid, prev.command, prev.since
        ));
    }
    Ok(lock)
}

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// A progress line: on stderr, or a `step` event in JSON mode (it was
/// silent there, while add-node sent its steps).
pub fn say(out: &crate::output::Output, text: impl std::fmt::Display) {
    out.step(text.to_string());
}

/// A warning: on stderr, or a `warning` event in JSON mode (it went to
/// stderr as plain text).
pub fn warn(out: &crate::output::Output, text: impl std::fmt::Display) {
    out.warn(text.to_string());
}

#[cfg(test)]
mod tests {
    /// add-etcd, del-etcd, backup and restore speak through these: in JSON
    /// mode their steps were silent and their warnings plain text on
    /// stderr, while add-node sent events.
    #[test]
    fn steps_and_warnings_are_events_in_json_mode() {
        let (out, lines) = crate::output::Output::capturing(true);
        super::say(&out, "member add etcd-10.0.0.9");
        super::warn(&out, "asked another member");
        let lines = lines.lock().unwrap().clone();
        assert_eq!(lines.len(), 2, "{lines:?}");
        for l in &lines {
            crate::output::schema::check_line(l).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(lines[0].contains("\"event\":\"step\""), "{}", lines[0]);
        assert!(lines[1].contains("\"event\":\"warning\""), "{}", lines[1]);
    }
}
