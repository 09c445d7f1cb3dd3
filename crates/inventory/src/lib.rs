//! The cluster inventory of ezctl.
//!
//! `clusters/<c>/hosts.yml` says which machines are what, `config.yml` holds
//! the cluster settings. [`Cluster::load`] reads both, reports every problem
//! with file, line and field ([`Diagnostics`]), and computes derived values
//! once ([`Derived`]). Nothing here knows about SSH, roles or certificates.

pub mod cluster;
pub mod diag;
pub mod edit;
pub mod hosts;
pub mod kubeasz;
pub mod render;
mod resolve;
pub mod settings;
pub mod syntax;
pub mod transaction;
pub mod yaml;

pub use cluster::{Cluster, Derived, Host, LoadError, SshTarget, CONFIG_FILE, HOSTS_FILE};
pub use diag::{Diagnostic, Diagnostics};
pub use hosts::Group;
pub use settings::{Setting, Settings, Value, SETTINGS};
pub use transaction::{CommitError, Edit, StageError, Transaction};
