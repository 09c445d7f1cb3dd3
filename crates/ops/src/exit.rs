//! Exit codes scripts can rely on, and errors that carry one.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitCode {
    /// Work failed on at least one host.
    Failed = 1,
    /// Bad command line, or a command that is not implemented yet.
    Usage = 2,
    /// The inventory or another input file is invalid; nothing was touched.
    Input = 3,
    /// Another ezctl run holds the cluster lock.
    Locked = 4,
}

/// An error with a chosen exit code; its message is shown as is.
#[derive(Debug)]
pub struct Failure {
    pub code: ExitCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ExitCode, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(ExitCode::Usage, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}
