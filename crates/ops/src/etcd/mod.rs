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
use crate::report::Report;

/// The cluster lock for the whole command: every etcd command runs several
/// steps (etcdctl calls, plans) that no other ezctl run may interleave with.
pub fn lock(cluster: &Cluster, command: &str, out: &dyn Report) -> Result<Lock> {
    let lock = Lock::acquire(&cluster.dir, command)
        .map_err(|e| Failure::new(ExitCode::Locked, e.to_string()))?;
    if let Some(prev) = lock.taken_over() {
        out.warn(&format!(
            "took over a stale lock of pid {} ({} since {})",
            prev.pid, prev.command, prev.since
        ));
    }
    Ok(lock)
}

/// A progress line: on stderr, or a `step` event in JSON mode (it was
/// silent there, while add-node sent its steps).
pub fn say(out: &dyn Report, text: impl std::fmt::Display) {
    out.step(&text.to_string());
}

/// A warning: on stderr, or a `warning` event in JSON mode (it went to
/// stderr as plain text).
pub fn warn(out: &dyn Report, text: impl std::fmt::Display) {
    out.warn(&text.to_string());
}
