//! One file per command family.

pub mod check;
pub mod download;
pub mod exec;
pub mod import;
pub mod list;
pub mod new;
pub mod setup;
