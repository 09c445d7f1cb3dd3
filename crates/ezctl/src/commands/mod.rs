//! One file per command family.

pub mod backup;
pub mod check;
pub mod download;
pub mod etcd_members;
pub mod exec;
pub mod import;
pub mod list;
pub mod new;
pub mod restore;
pub mod setup;
