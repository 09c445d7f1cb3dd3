//! One file per command family.

pub mod backup;
pub mod check;
pub mod download;
pub mod etcd_members;
pub mod exec;
pub mod import;
pub mod lifecycle;
pub mod list;
pub mod new;
pub mod pki_cmds;
pub mod restore;
pub mod setup;
pub mod start_aio;
