//! `sysctl`: kernel parameters kept in one file under /etc/sysctl.d, loaded
//! with `sysctl -p FILE` when the file changed.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::args::{scalar_text, Deferred};
use super::files::{apply_write, check_file, Content};
use super::{run_checked, Applied, Change, Cx, Module, Pending};
use crate::error::TaskError;
use crate::transport::shell_quote;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SysctlArgs {
    /// e.g. /etc/sysctl.d/95-k8s.conf
    pub file: String,
    pub values: BTreeMap<String, Value>,
    /// Run `sysctl -p FILE` after a change (default true).
    pub reload: Option<Deferred<bool>>,
}

pub(crate) fn render_conf(values: &BTreeMap<String, Value>) -> Result<String, TaskError> {
    let mut out = String::from("# Managed by ezctl; changes here are overwritten.\n");
    for (k, v) in values {
        let v = scalar_text(v)
            .ok_or_else(|| TaskError::Args(format!("sysctl {k}: value must be a scalar")))?;
        out.push_str(&format!("{k} = {v}\n"));
    }
    Ok(out)
}

#[async_trait]
impl Module for SysctlArgs {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        let content = Content::bytes(render_conf(&self.values)?.into_bytes());
        check_file(cx, &self.file, Some(content), Some(0o644), None).await
    }

    async fn apply(&self, cx: &Cx<'_>, change: Change) -> Result<Applied, TaskError> {
        if let Pending::File(w) = change.pending {
            apply_write(cx, &w).await?;
        }
        let reload = self
            .reload
            .as_ref()
            .map(|r| r.get("reload"))
            .transpose()
            .map_err(TaskError::Args)?
            .unwrap_or(true);
        if reload {
            run_checked(
                cx,
                &format!("sysctl -p {}", shell_quote(&self.file)),
                "sysctl -p",
            )
            .await?;
        }
        Ok(Applied::changed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conf_is_sorted_and_stable() {
        let v: BTreeMap<String, Value> =
            serde_json::from_value(json!({"net.ipv4.ip_forward": 1, "vm.swappiness": "0"}))
                .unwrap();
        let c = render_conf(&v).unwrap();
        assert!(
            c.ends_with("net.ipv4.ip_forward = 1\nvm.swappiness = 0\n"),
            "{c}"
        );
    }
}
