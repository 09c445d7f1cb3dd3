//! ez-engine: turns target hosts plus `roles/` and `playbooks/` into work on
//! hosts, fast and idempotently.
//!
//! ```text
//! Targets + Playbooks + roles/ --Plan::build--> Plan (DAG of role@host units)
//! Plan --Runner::run--> units on tokio, each task: check() -> Change? -> apply()
//!                       events -> EventSink -> JSON lines | run log | Recap | CLI
//! ```
//! See README.md for the file formats and every module.

mod disk_hashes;
mod error;
mod events;
mod inspect;
mod lock;
pub(crate) mod modules;
mod plan;
mod playbook;
mod recap;
mod role;
mod scheduler;
mod targets;
pub mod transport;
mod unit;
mod vars;
mod yaml;

pub use error::{LoadError, PlanError, TaskError};
pub use events::{
    drain, Cause, Event, EventConsumer, EventSink, JsonLinesWriter, RunLogWriter, Status,
};
pub use inspect::RenderedTask;
pub use lock::{Lock, LockError, LockInfo, LOCK_FILE};
pub use modules::ModuleKind;
pub use plan::{EdgeKind, Plan, PlanFilter, Unit};
pub use playbook::{Need, Play, Playbook};
pub use recap::{HostRecap, Recap, SkippedUnit};
pub use role::{LoopSpec, Role, Task};
pub use scheduler::{RunOptions, Runner};
pub use targets::{TargetHost, Targets};
pub use transport::{
    Connector, DryRunTransport, ExecOpts, ExecOutput, FileKind, FileStat, LocalConnector,
    LocalTransport, PutSource, Transport, TransportError,
};
pub use vars::{dquote, shell_word};
