//! `command` / `shell` / `local`: run a command line (through `sh -c`).
//! `creates: PATH` and `unless: CMD` make it idempotent; `changed_when`
//! (a tera expression over `result.rc/stdout/stderr`) says whether a run
//! changed anything. `local` runs on the controller.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::args::Deferred;
use super::{last_lines, Applied, Change, Cx, DryRun, Module};
use crate::error::TaskError;
use crate::transport::{shell_quote, BatchCommand, ExecOpts, ExecOutput, Transport};
use crate::vars::eval_condition;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CommandArgs {
    /// A shell command line.
    pub cmd: Option<String>,
    /// Or a list of words, each quoted for you.
    pub argv: Option<Vec<String>>,
    /// Skip when this remote path exists.
    pub creates: Option<String>,
    /// Skip when this command exits 0.
    pub unless: Option<String>,
    /// `true`, `false`, or an expression over `result` (not rendered early).
    pub changed_when: Option<Value>,
    pub chdir: Option<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub stdin: Option<String>,
    pub timeout: Option<Deferred<Duration>>,
    /// A command that predicts this one's outcome without changing anything
    /// (`kubectl ... --dry-run=server`, `modprobe -n`): `--dry-run` runs it
    /// instead and judges it with the same `changed_when`. Without it a dry
    /// run can only say "would run: outcome unknown".
    pub dry_run: Option<String>,
    #[serde(skip)]
    pub on_controller: bool,
}

impl CommandArgs {
    pub(crate) fn validate(&self) -> Result<(), String> {
        match (&self.cmd, &self.argv) {
            (Some(_), None) => Ok::<(), String>(()),
            (None, Some(a)) if !a.is_empty() => Ok(()),
            _ => Err("give exactly one of `cmd` and a non-empty `argv`".into()),
        }?;
        match &self.changed_when {
            None | Some(Value::Bool(_)) | Some(Value::String(_)) => Ok(()),
            Some(other) => Err(format!(
                "changed_when: expected a boolean or an expression, found {other}"
            )),
        }
    }

    pub(crate) fn command_line(&self) -> String {
        let base = match (&self.cmd, &self.argv) {
            (Some(c), _) => c.clone(),
            (None, Some(a)) => a
                .iter()
                .map(|w| shell_quote(w))
                .collect::<Vec<_>>()
                .join(" "),
            (None, None) => String::new(),
        };
        match &self.chdir {
            Some(d) => format!("cd {} && {base}", shell_quote(d)),
            None => base,
        }
    }

    /// This command as one item of a batch (several loop items in one round
    /// trip), when nothing in it needs a round trip of its own: a guard
    /// command, input, a timeout, or the controller. A `creates` guard
    /// too: an earlier item of the loop may create the path, and item by
    /// item that guard is checked after it ran, not before the batch.
    pub(crate) fn batch_command(&self) -> Option<BatchCommand> {
        let alone = self.on_controller
            || self.creates.is_some()
            || self.unless.is_some()
            || self.stdin.is_some()
            || self.timeout.is_some();
        (!alone).then(|| BatchCommand {
            cmd: self.command_line(),
            env: self.env.clone().into_iter().collect(),
        })
    }

    /// What a finished run means: its `result`, failed or not, changed or not.
    pub(crate) fn judge(
        &self,
        out: ExecOutput,
        vars: &tera::Context,
    ) -> Result<Applied, TaskError> {
        let result = json!({
            "rc": out.code,
            "stdout": out.stdout.trim_end_matches('\n'),
            "stderr": out.stderr.trim_end_matches('\n'),
            "stdout_lines": out.stdout.lines().collect::<Vec<_>>(),
        });
        let mut data = Map::new();
        if let Value::Object(m) = &result {
            data = m.clone();
        }
        if !out.success() {
            return Ok(Applied {
                changed: false,
                data,
                failed: Some(format!(
                    "exit {}: {}",
                    out.code,
                    last_lines(&format!("{}\n{}", out.stdout, out.stderr), 20)
                )),
            });
        }
        let changed = match &self.changed_when {
            None => true,
            Some(Value::Bool(b)) => *b,
            Some(Value::String(expr)) => {
                let mut vars = vars.clone();
                vars.insert("result", &result);
                eval_condition(expr, &vars)?
            }
            Some(_) => true,
        };
        Ok(Applied {
            changed,
            data,
            failed: None,
        })
    }

    fn transport<'a>(&self, cx: &'a Cx<'_>) -> &'a dyn Transport {
        if self.on_controller {
            cx.controller
        } else {
            cx.transport
        }
    }
}

#[async_trait]
impl Module for CommandArgs {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        let t = self.transport(cx);
        if let Some(path) = &self.creates {
            let exists = if self.on_controller {
                tokio::fs::try_exists(path).await.unwrap_or(false)
            } else {
                cx.stats.get(t, path).await?.is_some()
            };
            if exists {
                return Ok(None);
            }
        }
        if let Some(guard) = &self.unless {
            if t.exec(guard, ExecOpts::default()).await?.success() {
                return Ok(None);
            }
        }
        let line = self.command_line();
        let first = line.lines().next().unwrap_or_default();
        Ok(Some(Change::new(format!("run: {first}"))))
    }

    async fn apply(&self, cx: &Cx<'_>, _change: Change) -> Result<Applied, TaskError> {
        let timeout = self
            .timeout
            .as_ref()
            .map(|t| t.get("timeout"))
            .transpose()
            .map_err(TaskError::Args)?;
        let out = self
            .transport(cx)
            .exec(
                &self.command_line(),
                ExecOpts {
                    stdin: self.stdin.clone().map(String::into_bytes),
                    env: self.env.clone().into_iter().collect(),
                    timeout,
                },
            )
            .await?;
        self.judge(out, cx.vars)
    }

    fn read_only(&self) -> bool {
        matches!(self.changed_when, Some(Value::Bool(false)))
    }

    async fn dry_run(&self, cx: &Cx<'_>) -> Result<DryRun, TaskError> {
        let Some(cmd) = &self.dry_run else {
            return Ok(DryRun::Unknown);
        };
        let cmd = match &self.chdir {
            Some(d) => format!("cd {} && {cmd}", shell_quote(d)),
            None => cmd.clone(),
        };
        let timeout = self
            .timeout
            .as_ref()
            .map(|t| t.get("timeout"))
            .transpose()
            .map_err(TaskError::Args)?;
        let out = self
            .transport(cx)
            .exec(
                &cmd,
                ExecOpts {
                    stdin: self.stdin.clone().map(String::into_bytes),
                    env: self.env.clone().into_iter().collect(),
                    timeout,
                },
            )
            .await?;
        Ok(DryRun::Predicted(self.judge(out, cx.vars)?))
    }

    fn unchanged_data(&self) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("rc".into(), 0.into());
        m.insert("stdout".into(), "".into());
        m.insert("stderr".into(), "".into());
        m.insert("stdout_lines".into(), Value::Array(vec![]));
        m
    }
}
