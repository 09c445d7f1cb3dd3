//! etcd day-2 operations shared by `backup`, `restore`, `add-etcd` and
//! `del-etcd`.
//!
//! * [`ctl`]: etcdctl command lines run ON a member (its binary, its certs)
//!   and the JSON they print;
//! * [`quorum`]: when adding or removing a member, or restarting its
//!   clients (upgrade), is safe;
//! * [`snapshots`]: snapshot files on the controller (names, latest copy,
//!   retention);
//! * [`members`]: etcdctl over SSH, with errors that name the host and step.
//!
//! UTC time stamps for file names are [`crate::stamp`].

pub mod ctl;
pub mod members;
pub mod quorum;
pub mod snapshots;

use crate::report::Report;

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
