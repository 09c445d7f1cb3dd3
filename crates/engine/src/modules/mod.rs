//! Task modules. Each module is one file with an argument struct that
//! implements [`Module`]: `check` says what would change (with a diff for
//! files) without changing anything, `apply` does it. `--dry-run` stops after
//! `check`; a converged host is one where every `check` returns `None`.

pub(crate) mod args;
pub(crate) mod command;
pub(crate) mod copy;
mod fetch;
pub(crate) mod file;
pub(crate) mod files;
pub(crate) mod lineinfile;
mod manifest;
mod modprobe;
mod sysctl;
mod systemd;
pub(crate) mod template;
pub(crate) mod wait;

use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::TaskError;
use crate::role::Role;
use crate::transport::Transport;
use files::{FileWrite, HashCache, StatCache};

pub(crate) use command::CommandArgs;
pub(crate) use systemd::SvcState;

/// The module names a task may use (`service` is an alias of `systemd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleKind {
    File,
    Copy,
    Template,
    Manifest,
    Command,
    Shell,
    Systemd,
    Lineinfile,
    Blockinfile,
    Sysctl,
    Modprobe,
    Wait,
    Fetch,
    Local,
}

impl ModuleKind {
    pub(crate) const NAMES: &'static [&'static str] = &[
        "file",
        "copy",
        "template",
        "manifest",
        "command",
        "shell",
        "systemd",
        "service",
        "lineinfile",
        "blockinfile",
        "sysctl",
        "modprobe",
        "wait",
        "fetch",
        "local",
    ];

    pub(crate) fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "file" => ModuleKind::File,
            "copy" => ModuleKind::Copy,
            "template" => ModuleKind::Template,
            "manifest" => ModuleKind::Manifest,
            "command" => ModuleKind::Command,
            "shell" => ModuleKind::Shell,
            "systemd" | "service" => ModuleKind::Systemd,
            "lineinfile" => ModuleKind::Lineinfile,
            "blockinfile" => ModuleKind::Blockinfile,
            "sysctl" => ModuleKind::Sysctl,
            "modprobe" => ModuleKind::Modprobe,
            "wait" => ModuleKind::Wait,
            "fetch" => ModuleKind::Fetch,
            "local" => ModuleKind::Local,
            _ => return None,
        })
    }

    /// `command: "echo hi"` is short for `command: { cmd: "echo hi" }`.
    pub(crate) fn short_form_key(self) -> Option<&'static str> {
        match self {
            ModuleKind::Command | ModuleKind::Shell | ModuleKind::Local => Some("cmd"),
            ModuleKind::Modprobe => Some("name"),
            _ => None,
        }
    }

    /// Arguments evaluated after the module ran, so not rendered before.
    pub(crate) fn raw_keys(self) -> &'static [&'static str] {
        match self {
            ModuleKind::Command | ModuleKind::Shell | ModuleKind::Local => &["changed_when"],
            _ => &[],
        }
    }

    /// Modules that only touch files they name: their targets are gathered in
    /// the unit's one stat round trip and they leave the rest of it valid.
    pub(crate) fn is_file_module(self) -> bool {
        matches!(
            self,
            ModuleKind::File | ModuleKind::Copy | ModuleKind::Template | ModuleKind::Manifest
        )
    }
}

/// Parsed, typed arguments of one task.
#[derive(Debug, Clone)]
pub(crate) enum Args {
    File(file::FileArgs),
    Copy(copy::CopyArgs),
    Template(template::TemplateArgs),
    Manifest(manifest::ManifestArgs),
    Command(command::CommandArgs),
    Systemd(systemd::SystemdArgs),
    Lineinfile(lineinfile::LineArgs),
    Blockinfile(lineinfile::BlockArgs),
    Sysctl(sysctl::SysctlArgs),
    Modprobe(modprobe::ModprobeArgs),
    Wait(wait::WaitArgs),
    Fetch(fetch::FetchArgs),
}

fn de<T: DeserializeOwned>(v: &Value) -> Result<T, String> {
    serde_json::from_value(v.clone()).map_err(|e| e.to_string())
}

impl Args {
    pub(crate) fn parse(kind: ModuleKind, v: &Value) -> Result<Args, String> {
        let args = match kind {
            ModuleKind::File => Args::File(de(v)?),
            ModuleKind::Copy => Args::Copy(de(v)?),
            ModuleKind::Template => Args::Template(de(v)?),
            ModuleKind::Manifest => Args::Manifest(de(v)?),
            ModuleKind::Command | ModuleKind::Shell => Args::Command(de(v)?),
            ModuleKind::Local => {
                let mut a: command::CommandArgs = de(v)?;
                a.on_controller = true;
                Args::Command(a)
            }
            ModuleKind::Systemd => Args::Systemd(de(v)?),
            ModuleKind::Lineinfile => Args::Lineinfile(de(v)?),
            ModuleKind::Blockinfile => Args::Blockinfile(de(v)?),
            ModuleKind::Sysctl => Args::Sysctl(de(v)?),
            ModuleKind::Modprobe => Args::Modprobe(de(v)?),
            ModuleKind::Wait => Args::Wait(de(v)?),
            ModuleKind::Fetch => Args::Fetch(de(v)?),
        };
        args.validate()?;
        Ok(args)
    }

    fn validate(&self) -> Result<(), String> {
        match self {
            Args::File(a) => a.validate(),
            Args::Copy(a) => a.validate(),
            Args::Command(a) => a.validate(),
            Args::Wait(a) => a.validate(),
            Args::Lineinfile(a) => a.validate(),
            Args::Manifest(a) => a.validate(),
            _ => Ok(()),
        }
    }

    pub(crate) fn module(&self) -> &dyn Module {
        match self {
            Args::File(a) => a,
            Args::Copy(a) => a,
            Args::Template(a) => a,
            Args::Manifest(a) => a,
            Args::Command(a) => a,
            Args::Systemd(a) => a,
            Args::Lineinfile(a) => a,
            Args::Blockinfile(a) => a,
            Args::Sysctl(a) => a,
            Args::Modprobe(a) => a,
            Args::Wait(a) => a,
            Args::Fetch(a) => a,
        }
    }

    /// The remote path this task writes, if it is known before running it.
    pub(crate) fn file_target(&self) -> Option<&str> {
        match self {
            Args::File(a) => Some(&a.path),
            Args::Copy(a) => Some(&a.dest),
            Args::Template(a) => Some(&a.dest),
            Args::Manifest(a) => Some(&a.dest),
            Args::Command(a) => a.creates.as_deref(),
            _ => None,
        }
    }
}

/// State shared by every unit of one host during a run.
#[derive(Default)]
pub(crate) struct HostState {
    /// A unit file was written since the last `systemctl daemon-reload`.
    pub(crate) daemon_reload_pending: AtomicBool,
}

/// What a module sees.
pub(crate) struct Cx<'a> {
    pub transport: &'a dyn Transport,
    /// The unit's own host, also for a task delegated to the controller: a
    /// delegated `wait` with `unit:` reads that unit's journal there.
    pub target: &'a dyn Transport,
    /// For `local` and for reading files on the controller.
    pub controller: &'a dyn Transport,
    pub role: &'a Role,
    pub vars: &'a tera::Context,
    pub stats: &'a StatCache,
    pub hashes: &'a HashCache,
    pub host: &'a HostState,
    /// Produce diffs (dry-run or --diff, and the task is not `no_log`).
    pub want_diff: bool,
}

/// How a dry run judges a task that `check` says would do something.
pub(crate) enum DryRun {
    /// It would change what `check` says.
    Certain,
    /// A probe: nothing to report.
    Skip,
    /// Only a real run would tell.
    Unknown,
    /// The task's own read-only counterpart ran and predicts this.
    Predicted(Applied),
}

/// What `check` found would change.
pub(crate) struct Change {
    pub summary: String,
    pub diff: Option<String>,
    pub(crate) pending: Pending,
}

impl Change {
    pub(crate) fn new(summary: impl Into<String>) -> Self {
        Change {
            summary: summary.into(),
            diff: None,
            pending: Pending::Nothing,
        }
    }
}

/// Work `check` prepared for `apply`, so nothing is rendered or read twice.
pub(crate) enum Pending {
    Nothing,
    File(Box<FileWrite>),
}

/// What `apply` did. `data` goes into the registered result (rc, stdout...).
/// `failed` is set when the module ran and reports failure with its output
/// still worth registering (a command's non-zero exit).
#[derive(Default)]
pub(crate) struct Applied {
    pub changed: bool,
    pub data: Map<String, Value>,
    pub failed: Option<String>,
}

impl Applied {
    pub(crate) fn changed() -> Self {
        Applied {
            changed: true,
            ..Default::default()
        }
    }
}

#[async_trait]
pub(crate) trait Module: Send + Sync {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError>;
    async fn apply(&self, cx: &Cx<'_>, change: Change) -> Result<Applied, TaskError>;
    /// False for probes (`wait`): dry-run skips them instead of reporting a change.
    fn changes_state(&self) -> bool {
        true
    }
    /// Under `--dry-run`, once `check` found something to do: how sure is
    /// that? File and service modules compare real state, so their change
    /// is certain; a command can only be judged by running something.
    async fn dry_run(&self, _cx: &Cx<'_>) -> Result<DryRun, TaskError> {
        Ok(if self.changes_state() {
            DryRun::Certain
        } else {
            DryRun::Skip
        })
    }
    /// Declared free of side effects (a command with `changed_when: false`):
    /// runs in dry-run too, so what registers its output sees real values.
    fn read_only(&self) -> bool {
        false
    }
    /// Registered data when `check` found nothing to do.
    fn unchanged_data(&self) -> Map<String, Value> {
        Map::new()
    }
}

/// Run a command on the host and fail the task on a non-zero exit.
pub(crate) async fn run_checked(cx: &Cx<'_>, cmd: &str, what: &str) -> Result<String, TaskError> {
    let out = cx.transport.exec(cmd, Default::default()).await?;
    if out.success() {
        Ok(out.stdout)
    } else {
        Err(TaskError::Failed(format!(
            "{what} failed (exit {}): {}",
            out.code,
            last_lines(&format!("{}{}", out.stdout, out.stderr), 20)
        )))
    }
}

/// The last `n` lines of command output, for error messages.
pub(crate) fn last_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.trim_end().lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}
