//! Setup steps, by number or name, as kubeasz names them.

use std::path::Path;

use anyhow::{bail, Result};
use ez_engine::Playbook;

use crate::exit::Failure;

/// (number, names, playbook files).
const STEPS: &[(&str, &[&str], &[&str])] = &[
    ("01", &["prepare"], &["01-prepare"]),
    ("02", &["etcd"], &["02-etcd"]),
    (
        "03",
        &["container-runtime", "containerd", "runtime"],
        &["03-containerd"],
    ),
    ("04", &["kube-master", "master"], &["04-kube-master"]),
    ("05", &["kube-node", "node"], &["05-kube-node"]),
    ("06", &["network"], &["06-network"]),
    ("07", &["cluster-addon", "addon"], &["07-cluster-addon"]),
    ("90", &["all"], &["90-all"]),
    ("10", &["ex-lb"], &["10-ex-lb"]),
    ("11", &["harbor"], &["11-harbor"]),
];

pub fn help() -> String {
    let mut s = String::from("available steps:\n");
    for (n, names, _) in STEPS {
        s.push_str(&format!("  {n}  {}\n", names.join(" | ")));
    }
    s
}

/// The playbooks of a step.
pub fn playbooks(playbooks_dir: &Path, step: &str) -> Result<Vec<Playbook>> {
    let wanted = step.trim().to_ascii_lowercase();
    let Some((_, _, files)) = STEPS.iter().find(|(n, names, _)| {
        *n == wanted || names.contains(&wanted.as_str()) || n.trim_start_matches('0') == wanted
    }) else {
        bail!(Failure::usage(format!("unknown step `{step}`\n{}", help())));
    };
    let mut out = Vec::new();
    for f in *files {
        let path = playbooks_dir.join(format!("{f}.yml"));
        out.push(
            Playbook::load(&path)
                .map_err(|e| Failure::new(crate::exit::ExitCode::Input, e.to_string()))?,
        );
    }
    Ok(out)
}
