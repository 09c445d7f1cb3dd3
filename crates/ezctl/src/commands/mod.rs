//! One file per command family.

pub mod check;
pub mod download;
pub mod import;
pub mod list;
pub mod new;
