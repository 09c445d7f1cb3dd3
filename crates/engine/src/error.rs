//! Typed errors. Callers branch on these (the CLI renders them, tests match
//! them); every message names the file, role, task or host it is about.

use std::path::PathBuf;

use crate::transport::TransportError;

/// Reading roles and playbooks.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: YAML: {message}", path.display())]
    Yaml { path: PathBuf, message: String },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
    #[error("role `{role}`: template {file}: {detail}")]
    Template {
        role: String,
        file: String,
        detail: String,
    },
}

/// Building a [`crate::Plan`]: everything here is found before anything runs.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error("{playbook}: {context}: unknown role `{role}` (no {tasks_file})")]
    UnknownRole {
        playbook: String,
        context: String,
        role: String,
        /// The tasks file the name points at (`ROLE/tasks.yml` or
        /// `ROLE/tasks/ENTRY.yml`).
        tasks_file: String,
    },
    #[error("{playbook}: {context}: `{role}` on {host} is listed again with other vars; give the plays the same vars or use another entry")]
    VarsDiffer {
        playbook: String,
        context: String,
        role: String,
        host: String,
    },
    #[error("dependency cycle: {}", path.join(" -> "))]
    Cycle { path: Vec<String> },
    #[error("{playbook}: {context}: when: {detail}")]
    When {
        playbook: String,
        context: String,
        detail: String,
    },
}

/// One task on one host failed. The unit, role and host are carried by the
/// event that reports it, so the message itself stays about the cause.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("rendering {what}: {detail}")]
    Render { what: String, detail: String },
    #[error("invalid arguments: {0}")]
    Args(String),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("{0}")]
    Failed(String),
}

impl TaskError {
    /// True when the host itself is gone, not just this task.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, TaskError::Transport(t) if t.is_unreachable())
    }
}

/// `err: source: source...` so a tera error shows which filter or variable broke.
pub(crate) fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let s = e.to_string();
        if !out.contains(&s) {
            out.push_str(": ");
            out.push_str(&s);
        }
        cur = e.source();
    }
    out
}
