//! `wait`: poll until something is ready — a command exits 0, a TCP port
//! accepts, or an HTTPS URL answers (optionally with a client certificate).
//! Every probe runs on the task's host, so "127.0.0.1:2379" means that host.
//! On giving up, the error shows the last probe output and, with `unit:`,
//! the last 20 journal lines of that systemd unit.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::args::Deferred;
use super::{last_lines, Applied, Change, Cx, Module};
use crate::error::TaskError;
use crate::transport::{shell_quote, ExecOpts};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WaitArgs {
    pub command: Option<String>,
    /// `host:port` (`[v6]:port` for IPv6).
    pub tcp: Option<String>,
    pub https: Option<String>,
    pub ca: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    /// Expected HTTP status (default 200).
    pub status: Option<Deferred<u64>>,
    pub retries: Option<Deferred<u64>>,
    pub delay: Option<Deferred<Duration>>,
    /// Per probe.
    pub timeout: Option<Deferred<Duration>>,
    /// A systemd unit whose journal explains a failure.
    pub unit: Option<String>,
    /// Text in a failed probe's output that means `unit` is stuck and only
    /// a restart gets it going: the unit is restarted once, on the task's
    /// host, and the wait goes on (the task then reports a change).
    pub restart_when: Option<String>,
}

impl WaitArgs {
    pub(crate) fn validate(&self) -> Result<(), String> {
        let n = [&self.command, &self.tcp, &self.https]
            .iter()
            .filter(|x| x.is_some())
            .count();
        if n != 1 {
            return Err("give exactly one of `command`, `tcp` and `https`".into());
        }
        if self.cert.is_some() != self.key.is_some() {
            return Err("`cert` and `key` go together".into());
        }
        if self.restart_when.is_some() && self.unit.is_none() {
            return Err("`restart_when` restarts `unit`: give the unit".into());
        }
        Ok(())
    }

    fn what(&self) -> String {
        match (&self.command, &self.tcp, &self.https) {
            (Some(c), _, _) => format!("`{c}`"),
            (_, Some(t), _) => format!("tcp {t}"),
            (_, _, Some(u)) => u.clone(),
            _ => String::new(),
        }
    }

    /// The probe as one shell command and, for HTTPS, the wanted status.
    pub(crate) fn probe(&self, timeout: Duration) -> Result<(String, Option<u64>), TaskError> {
        if let Some(c) = &self.command {
            return Ok((c.clone(), None));
        }
        if let Some(t) = &self.tcp {
            let (host, port) = t
                .rsplit_once(':')
                .ok_or_else(|| TaskError::Args(format!("tcp: expected host:port, found {t:?}")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port
                .parse()
                .map_err(|_| TaskError::Args(format!("tcp: bad port in {t:?}")))?;
            let inner = format!("exec 3<>/dev/tcp/{host}/{port}");
            return Ok((format!("bash -c {}", shell_quote(&inner)), None));
        }
        let url = self.https.clone().unwrap_or_default();
        let mut cmd = format!(
            "curl -sS -o /dev/null -w '%{{http_code}}' --max-time {}",
            timeout.as_secs().max(1)
        );
        for (flag, v) in [
            ("--cacert", &self.ca),
            ("--cert", &self.cert),
            ("--key", &self.key),
        ] {
            if let Some(v) = v {
                cmd.push_str(&format!(" {flag} {}", shell_quote(v)));
            }
        }
        cmd.push_str(&format!(" {}", shell_quote(&url)));
        let status = self
            .status
            .as_ref()
            .map(|s| s.get("status"))
            .transpose()
            .map_err(TaskError::Args)?
            .unwrap_or(200);
        Ok((cmd, Some(status)))
    }
}

#[async_trait]
impl Module for WaitArgs {
    async fn check(&self, _cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        Ok(Some(Change::new(format!("wait for {}", self.what()))))
    }

    fn changes_state(&self) -> bool {
        false
    }

    async fn apply(&self, cx: &Cx<'_>, _change: Change) -> Result<Applied, TaskError> {
        let get = |d: &Option<Deferred<Duration>>, name: &str, default: Duration| {
            d.as_ref()
                .map(|x| x.get(name))
                .transpose()
                .map(|x| x.unwrap_or(default))
                .map_err(TaskError::Args)
        };
        let delay = get(&self.delay, "delay", Duration::from_secs(2))?;
        let timeout = get(&self.timeout, "timeout", Duration::from_secs(10))?;
        let retries = self
            .retries
            .as_ref()
            .map(|r| r.get("retries"))
            .transpose()
            .map_err(TaskError::Args)?
            .unwrap_or(30)
            .max(1);
        let (cmd, want_status) = self.probe(timeout)?;
        let mut last = String::new();
        let mut restarted = false;
        for attempt in 1..=retries {
            let opts = ExecOpts {
                timeout: Some(timeout),
                ..Default::default()
            };
            match cx.transport.exec(&cmd, opts).await {
                Ok(o) => {
                    let ok = match want_status {
                        None => o.success(),
                        Some(s) => o.success() && o.stdout.trim() == s.to_string(),
                    };
                    if ok {
                        return Ok(if restarted {
                            Applied::changed()
                        } else {
                            Applied::default()
                        });
                    }
                    last = match want_status {
                        Some(s) => format!(
                            "HTTP status {} (want {s}) {}",
                            o.stdout.trim(),
                            o.stderr.trim()
                        ),
                        None => format!("exit {}: {}{}", o.code, o.stdout, o.stderr),
                    };
                }
                Err(e) if e.is_unreachable() => return Err(e.into()),
                Err(e) => last = e.to_string(),
            }
            if let (Some(pattern), Some(unit), false) = (&self.restart_when, &self.unit, restarted)
            {
                if last.contains(pattern.as_str()) {
                    restarted = true;
                    let out = cx
                        .target
                        .exec(
                            &format!("systemctl restart {}", shell_quote(unit)),
                            ExecOpts {
                                timeout: Some(Duration::from_secs(90)),
                                ..Default::default()
                            },
                        )
                        .await?;
                    if !out.success() {
                        return Err(TaskError::Failed(format!(
                            "{unit} was stuck ({pattern}) and did not restart: {}{}",
                            out.stdout, out.stderr
                        )));
                    }
                }
            }
            if attempt < retries {
                tokio::time::sleep(delay).await;
            }
        }
        let mut msg = format!(
            "{} not ready after {retries} attempts; last output:\n{}",
            self.what(),
            last_lines(&last, 20)
        );
        if let Some(unit) = &self.unit {
            // The unit runs on the task's host even when the probe ran on the
            // controller (e.g. "node Ready" asked of the API server).
            let j = cx
                .target
                .exec(
                    &format!("journalctl -u {} -n 20 --no-pager 2>&1", shell_quote(unit)),
                    ExecOpts {
                        timeout: Some(Duration::from_secs(10)),
                        ..Default::default()
                    },
                )
                .await;
            let journal = match j {
                Ok(o) => last_lines(&o.stdout, 20),
                Err(e) => format!("(journal unavailable: {e})"),
            };
            msg.push_str(&format!(
                "\nlast journal lines of {unit} on {}:\n{journal}",
                cx.target.host()
            ));
        }
        Err(TaskError::Failed(msg))
    }
}
