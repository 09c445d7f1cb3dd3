//! `ezctl new <cluster>`: copy clusters/example/, fill versions.

use anyhow::{bail, Context, Result};
use ez_inventory::render::set_config_values;
use ez_inventory::Value;

use crate::versions::Versions;
use ez_ops::exit::{ExitCode, Failure};
use ez_ops::home::Home;

pub fn run(home: &Home, name: &str, out: &crate::output::Output) -> Result<()> {
    let dir = home.cluster_dir(name)?;
    refuse_existing(name, &dir)?;
    let example = home.clusters().join("example");
    let hosts = std::fs::read_to_string(example.join("hosts.yml"))
        .with_context(|| format!("reading the example inventory in {}", example.display()))?;
    create(home, name, &hosts, &[])?;
    if out.json {
        out.result("new", serde_json::json!({ "cluster": name, "dir": dir }));
        return Ok(());
    }
    println!("cluster `{name}` created in {}", dir.display());
    println!(
        "next: edit {}/hosts.yml and config.yml, then `ezctl check {name}`",
        dir.display()
    );
    Ok(())
}

pub fn refuse_existing(name: &str, dir: &std::path::Path) -> Result<()> {
    if dir.exists() {
        bail!(Failure::new(
            ExitCode::Input,
            format!(
                "cluster `{name}` already exists at {}; pick another name or remove that folder",
                dir.display()
            )
        ));
    }
    Ok(())
}

/// Write clusters/<name>/: `hosts`, and the example's config.yml with the
/// name, the versions of bin/versions.toml and then `settings` filled in.
pub fn create(home: &Home, name: &str, hosts: &str, settings: &[(String, Value)]) -> Result<()> {
    let dir = home.cluster_dir(name)?;
    let example = home.clusters().join("example");
    let config = std::fs::read_to_string(example.join("config.yml"))
        .with_context(|| format!("reading the example config in {}", example.display()))?;
    let versions = Versions::load(&home.dir.join("bin/versions.toml"))?;
    let mut values: Vec<(&str, Value)> = vec![
        ("CLUSTER_NAME", Value::Text(name.to_string())),
        ("CONTEXT_NAME", Value::Text(format!("context-{name}"))),
    ];
    for (setting, version) in versions.settings() {
        values.push((setting, Value::Text(version)));
    }
    for (k, v) in settings {
        values.retain(|(key, _)| key != k);
        values.push((k.as_str(), v.clone()));
    }
    let config = set_config_values(&config, &values);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::write(dir.join("hosts.yml"), hosts)?;
    std::fs::write(dir.join("config.yml"), config)?;
    Ok(())
}
