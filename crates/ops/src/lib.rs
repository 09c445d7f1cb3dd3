//! ez-ops: the day-2 procedures of ezctl and their building blocks.
//!
//! The CLI (`ezctl`) parses arguments, calls a procedure here and renders
//! what it reports; nothing here prints or depends on a terminal crate.
//! Every procedure runs over one [`context::Ops`] (home, report, tokio
//! runtime, cluster lock, certificate step) and reports through
//! [`report::Report`]. Errors that decide an exit code are
//! [`exit::Failure`]s.

pub mod backup;
pub mod certs;
pub mod clean;
pub mod context;
pub mod endpoint;
pub mod etcd;
pub mod etcd_members;
pub mod exit;
pub mod files;
pub mod fleet;
pub mod home;
pub mod hosts;
pub mod kube;
pub mod lifecycle;
pub mod plans;
pub mod remote;
pub mod report;
pub mod restore;
pub mod run;
pub mod scale;
pub mod setup;
pub mod stamp;
pub mod steps;
pub mod upgrade;
pub mod upgrade_state;
pub mod version;
pub mod view;

pub use hosts::{add_host, commit_hosts, mark, set_vars};
pub use report::Report;
