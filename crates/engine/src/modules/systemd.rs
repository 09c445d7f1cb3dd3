//! `systemd` (alias `service`): enable and start/stop a unit. Unit files are
//! written by `template`/`copy`; when any of them changed on a host, the next
//! systemd task there runs `systemctl daemon-reload` first, once.
//! `state: restarted` / `reloaded` are only allowed in handlers, so a restart
//! happens only when something notified it.

use std::sync::atomic::Ordering;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::args::{Deferred, FromArg};
use super::{last_lines, Applied, Change, Cx, Module};
use crate::error::TaskError;
use crate::transport::{shell_quote, ExecOpts};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SvcState {
    Started,
    Stopped,
    Restarted,
    Reloaded,
}

impl FromArg for SvcState {
    fn from_arg(v: &Value) -> Result<Self, String> {
        match v.as_str() {
            Some("started") => Ok(SvcState::Started),
            Some("stopped") => Ok(SvcState::Stopped),
            Some("restarted") => Ok(SvcState::Restarted),
            Some("reloaded") => Ok(SvcState::Reloaded),
            _ => Err(format!(
                "state: expected started, stopped, restarted or reloaded, found {v}"
            )),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SystemdArgs {
    pub name: String,
    pub enabled: Option<Deferred<bool>>,
    pub state: Option<Deferred<SvcState>>,
}

/// What `systemctl` says about a unit.
#[derive(Debug, PartialEq, Eq)]
struct Status {
    enabled: String,
    active: String,
}

impl Status {
    fn is_enabled(&self) -> bool {
        // `static`/`indirect` units cannot be enabled; asking for it is a no-op.
        matches!(
            self.enabled.as_str(),
            "enabled" | "enabled-runtime" | "static" | "indirect" | "alias" | "generated"
        )
    }

    fn is_running(&self) -> bool {
        matches!(self.active.as_str(), "active" | "activating" | "reloading")
    }
}

fn parse_status(out: &str) -> Status {
    let mut lines = out.lines().map(str::trim);
    Status {
        enabled: lines.next().unwrap_or_default().to_string(),
        active: lines.next().unwrap_or_default().to_string(),
    }
}

impl SystemdArgs {
    fn wanted(&self) -> Result<(Option<bool>, Option<SvcState>), TaskError> {
        let enabled = self.enabled.as_ref().map(|e| e.get("enabled")).transpose();
        let state = self.state.as_ref().map(|s| s.get("state")).transpose();
        Ok((
            enabled.map_err(TaskError::Args)?,
            state.map_err(TaskError::Args)?,
        ))
    }

    async fn status(&self, cx: &Cx<'_>) -> Result<Status, TaskError> {
        let n = shell_quote(&self.name);
        // Both questions in one round trip; each prints one word even on error.
        let cmd = format!(
            "e=$(systemctl is-enabled -- {n} 2>/dev/null) || e=${{e:-unknown}}; \
             a=$(systemctl is-active -- {n} 2>/dev/null) || a=${{a:-unknown}}; \
             printf '%s\\n%s\\n' \"$e\" \"$a\""
        );
        let out = cx.transport.exec(&cmd, ExecOpts::default()).await?;
        Ok(parse_status(&out.stdout))
    }

    /// The `systemctl` steps needed, given the current status.
    fn steps(&self, st: &Status) -> Result<Vec<String>, TaskError> {
        let (enabled, state) = self.wanted()?;
        let n = shell_quote(&self.name);
        let mut steps = Vec::new();
        match enabled {
            Some(true) if !st.is_enabled() => steps.push(format!("systemctl enable -- {n}")),
            Some(false) if st.enabled == "enabled" => {
                steps.push(format!("systemctl disable -- {n}"))
            }
            _ => {}
        }
        match state {
            Some(SvcState::Started) if !st.is_running() => {
                steps.push(format!("systemctl start -- {n}"))
            }
            Some(SvcState::Stopped) if st.is_running() => {
                steps.push(format!("systemctl stop -- {n}"))
            }
            Some(SvcState::Restarted) => steps.push(format!("systemctl restart -- {n}")),
            Some(SvcState::Reloaded) => steps.push(format!("systemctl reload-or-restart -- {n}")),
            _ => {}
        }
        Ok(steps)
    }

    async fn journal(&self, cx: &Cx<'_>) -> String {
        let cmd = format!(
            "journalctl -u {} -n 20 --no-pager 2>&1",
            shell_quote(&self.name)
        );
        match cx.transport.exec(&cmd, ExecOpts::default()).await {
            Ok(o) => o.stdout,
            Err(e) => format!("(journal unavailable: {e})"),
        }
    }
}

#[async_trait]
impl Module for SystemdArgs {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        let reload = cx.host.daemon_reload_pending.load(Ordering::SeqCst);
        let st = self.status(cx).await?;
        let mut steps = self.steps(&st)?;
        if reload {
            steps.insert(0, "systemctl daemon-reload".into());
        }
        if steps.is_empty() {
            return Ok(None);
        }
        let words: Vec<&str> = steps
            .iter()
            .filter_map(|s| s.split_whitespace().nth(1))
            .collect();
        Ok(Some(Change::new(format!(
            "{}: {}",
            self.name,
            words.join(", ")
        ))))
    }

    async fn apply(&self, cx: &Cx<'_>, _change: Change) -> Result<Applied, TaskError> {
        // Status first: `is-enabled` reads the unit files on disk and
        // `is-active` the runtime state, neither needs the reload.
        let st = self.status(cx).await?;
        let reload = cx.host.daemon_reload_pending.swap(false, Ordering::SeqCst);
        let mut reloaded = false;
        // Until the reload has happened, a failure leaves it pending for the
        // next systemd task on this host.
        let keep_pending = |reloaded: bool| {
            if reload && !reloaded {
                cx.host.daemon_reload_pending.store(true, Ordering::SeqCst);
            }
        };
        for step in ordered(self.steps(&st)?, reload) {
            let out = match cx.transport.exec(&step, ExecOpts::default()).await {
                Ok(o) => o,
                Err(e) => {
                    keep_pending(reloaded);
                    return Err(e.into());
                }
            };
            if out.success() {
                reloaded |= step == DAEMON_RELOAD;
                continue;
            }
            keep_pending(reloaded);
            if step == DAEMON_RELOAD {
                return Err(TaskError::Failed(format!(
                    "systemctl daemon-reload: exit {}: {}",
                    out.code,
                    out.stderr.trim()
                )));
            }
            let journal = self.journal(cx).await;
            return Err(TaskError::Failed(format!(
                "`{step}` failed (exit {}): {}\nlast journal lines of {}:\n{}",
                out.code,
                out.stderr.trim(),
                self.name,
                last_lines(&journal, 20)
            )));
        }
        Ok(Applied::changed())
    }
}

const DAEMON_RELOAD: &str = "systemctl daemon-reload";

/// With a reload pending, (dis)abling goes first with `--no-reload` and the
/// one `daemon-reload` then picks up the unit files and the new symlinks
/// together: `systemctl enable` reloads on its own, and a reload (PID 1
/// re-reading its units, the generators run) is the dearest thing here,
/// about 100 ms on a lab machine.
/// Starting, stopping and restarting come after the reload, so they use the
/// new unit file.
fn ordered(steps: Vec<String>, reload: bool) -> Vec<String> {
    if !reload {
        return steps;
    }
    let is_install =
        |s: &str| s.starts_with("systemctl enable ") || s.starts_with("systemctl disable ");
    let (install, state): (Vec<String>, Vec<String>) =
        steps.into_iter().partition(|s| is_install(s));
    install
        .into_iter()
        .map(|s| s.replacen(" -- ", " --no-reload -- ", 1))
        .chain(std::iter::once(DAEMON_RELOAD.to_string()))
        .chain(state)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> SystemdArgs {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn steps_follow_status() {
        let a = args(json!({"name": "etcd", "enabled": true, "state": "started"}));
        let off = parse_status("disabled\ninactive\n");
        assert_eq!(
            a.steps(&off).unwrap(),
            ["systemctl enable -- 'etcd'", "systemctl start -- 'etcd'"]
        );
        let on = parse_status("enabled\nactive\n");
        assert!(a.steps(&on).unwrap().is_empty());
        let r = args(json!({"name": "etcd", "state": "restarted"}));
        assert_eq!(r.steps(&on).unwrap(), ["systemctl restart -- 'etcd'"]);
    }

    #[test]
    fn one_reload_after_enabling_without_one() {
        let a = args(json!({"name": "etcd", "enabled": true, "state": "started"}));
        let off = parse_status("disabled\ninactive\n");
        assert_eq!(
            ordered(a.steps(&off).unwrap(), true),
            [
                "systemctl enable --no-reload -- 'etcd'",
                "systemctl daemon-reload",
                "systemctl start -- 'etcd'"
            ]
        );
        assert_eq!(
            ordered(a.steps(&off).unwrap(), false),
            ["systemctl enable -- 'etcd'", "systemctl start -- 'etcd'"]
        );
        let on = parse_status("enabled\nactive\n");
        assert_eq!(
            ordered(a.steps(&on).unwrap(), true),
            ["systemctl daemon-reload"]
        );
    }
}
