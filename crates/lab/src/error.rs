//! Typed errors of the lab library. Callers (tests, the `ezlab` binary) branch
//! on a few of them: `NotRoot`/`Missing` mean "skip", `SizeMismatch` means
//! "another lab of that name is up".

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "must run as root: systemd-nspawn, network namespaces, overlay mounts and cgroups need it"
    )]
    NotRoot,

    #[error("missing prerequisites:\n{0}\n(run `ezlab doctor --install` to install the packages)")]
    Missing(String),

    #[error("invalid lab name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    #[error("invalid layout {spec:?}: {reason}")]
    InvalidLayout { spec: String, reason: String },

    #[error("a lab needs between 1 and {max} machines, not {asked}")]
    InvalidSize { asked: usize, max: usize },

    #[error(
        "lab {name} is already up with {running} machines, {wanted} were asked for; \
         run `ezlab down --name {name}` first"
    )]
    SizeMismatch {
        name: String,
        running: usize,
        wanted: usize,
    },

    #[error("no lab named {0} (see `ezlab status`)")]
    NotFound(String),

    #[error("lab {lab} has no machine {host:?}")]
    NoSuchMachine { lab: String, host: String },

    #[error("no machine {host:?} in any lab{}", labs_up(labs))]
    NoMachineInAnyLab { host: String, labs: Vec<String> },

    #[error(
        "{host:?} names a machine in more than one lab; add --name LAB to pick one:\n{}",
        candidates.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n")
    )]
    AmbiguousMachine {
        host: String,
        /// `lab: hostname ip`, one per machine that fits.
        candidates: Vec<String>,
    },

    #[error("no free /24 left in 10.231.0.0/16 for a new lab")]
    NoSubnet,

    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },

    #[error("`{command}` did not finish within {secs} s and was killed")]
    CommandTimeout { command: String, secs: u64 },

    #[error("cannot run `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("state file {path} is unreadable: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error(
        "no Debian mirror for suite {suite} in /etc/apt/sources.list or /etc/apt/sources.list.d; \
         set EZLAB_MIRROR=http://…/debian"
    )]
    NoMirror { suite: String },

    #[error("timed out after {secs} s waiting for the lock {path}")]
    LockTimeout { path: PathBuf, secs: u64 },

    #[error("machine {machine} is not ready after {secs} s (last seen: {last}); log: {log}\n--- last lines of the log ---\n{tail}")]
    NotReady {
        machine: String,
        secs: u64,
        last: String,
        log: PathBuf,
        tail: String,
    },

    #[error("{dir} exists and was not written by ezlab; refusing to overwrite it")]
    ForeignClusterDir { dir: PathBuf },

    #[error("tearing down lab {name} left things behind: {}", leftovers.join("; "))]
    Leftovers {
        name: String,
        leftovers: Vec<String>,
    },
}

/// ` (labs up: a, b)`, or that none is.
fn labs_up(labs: &[String]) -> String {
    if labs.is_empty() {
        " (no lab is up: see `ezlab up`)".to_string()
    } else {
        format!(" (labs up: {})", labs.join(", "))
    }
}

impl LabError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        LabError::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the lab cannot run on this machine at all (not root, tools
    /// missing): tests print the reason and skip instead of failing.
    pub fn is_environment(&self) -> bool {
        matches!(self, LabError::NotRoot | LabError::Missing(_))
    }
}

pub type Result<T, E = LabError> = std::result::Result<T, E>;
