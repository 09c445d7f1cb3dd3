//! `ezctl import <cluster> <kubeasz hosts> [config.yml]`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use ez_inventory::kubeasz;
use ez_inventory::render::{render_hosts, set_config_values};

use ez_ops::exit::{ExitCode, Failure};
use ez_ops::home::Home;

pub fn run(
    home: &Home,
    name: &str,
    hosts: &Path,
    config: Option<&Path>,
    out: &crate::output::Output,
) -> Result<()> {
    let dir = home.cluster_dir(name)?;
    if dir.exists() {
        bail!(Failure::new(
            ExitCode::Input,
            format!("cluster `{name}` already exists at {}", dir.display())
        ));
    }
    let hosts_text =
        std::fs::read_to_string(hosts).with_context(|| format!("reading {}", hosts.display()))?;
    let config_text = match config {
        Some(p) => {
            Some(std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)
        }
        None => None,
    };
    let imported = kubeasz::import(&hosts_text, config_text.as_deref())
        .map_err(|e| Failure::new(ExitCode::Input, format!("{}: {e}", hosts.display())))?;
    let example = std::fs::read_to_string(home.clusters().join("example/config.yml"))
        .context("reading clusters/example/config.yml")?;
    let mut values = imported.config.clone();
    if !values.iter().any(|(k, _)| *k == "CLUSTER_NAME") {
        values.push(("CLUSTER_NAME", ez_inventory::Value::Text(name.to_string())));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("hosts.yml"), render_hosts(&imported.hosts))?;
    std::fs::write(dir.join("config.yml"), set_config_values(&example, &values))?;
    if out.json {
        out.result(
            "import",
            serde_json::json!({ "cluster": name, "dir": dir, "not_carried_over": imported.notes }),
        );
        return Ok(());
    }
    println!(
        "imported {} into cluster `{name}` ({})",
        hosts.display(),
        dir.display()
    );
    if imported.notes.is_empty() {
        println!("everything was carried over");
    } else {
        println!("not carried over:");
        for n in &imported.notes {
            println!("  - {n}");
        }
    }
    println!("next: `ezctl check {name}`");
    Ok(())
}
