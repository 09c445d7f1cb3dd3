//! `ezctl import`: a kubeasz `hosts` INI and an optional config.yml, split
//! at the first NUL byte. A successful import is rendered the way the
//! command writes it and loaded back: the files we write must never make
//! the loader misbehave (they may still be invalid, e.g. an even etcd).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

const EXAMPLE_CONFIG: &str = include_str!("../../clusters/example/config.yml");

fn cluster_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir()
            .join(format!("ezctl-fuzz-import-{}", std::process::id()))
            .join("imported");
        std::fs::create_dir_all(&dir).expect("fuzz scratch dir");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let (hosts, config) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    // The command reads both as UTF-8 text and refuses anything else.
    let Ok(hosts) = std::str::from_utf8(hosts) else {
        return;
    };
    let config = match config.map(std::str::from_utf8) {
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => return,
        None => None,
    };
    let Ok(imported) = ez_inventory::kubeasz::import(hosts, config) else {
        return;
    };
    let hosts_yml = ez_inventory::render::render_hosts(&imported.hosts);
    let values: Vec<(&str, ez_inventory::Value)> = imported
        .config
        .iter()
        .map(|(k, v)| (*k, v.clone()))
        .collect();
    let config_yml = ez_inventory::render::set_config_values(EXAMPLE_CONFIG, &values);
    let dir = cluster_dir();
    std::fs::write(dir.join("hosts.yml"), &hosts_yml).expect("write hosts.yml");
    std::fs::write(dir.join("config.yml"), &config_yml).expect("write config.yml");
    match ez_inventory::Cluster::load(dir) {
        Ok(_) => {}
        Err(ez_inventory::LoadError::Invalid(d)) => {
            // What we wrote must at least be YAML we can read back. (A
            // syntax error is a message of its own, not about a field: the
            // words may well appear inside an imported value.)
            for diag in &d.0 {
                assert!(
                    !(diag.field.is_empty() && diag.message.starts_with("YAML syntax error")),
                    "import wrote unreadable YAML: {diag}\n--- hosts.yml\n{hosts_yml}\n--- config.yml\n{config_yml}"
                );
            }
        }
        Err(e) => panic!("{e}"),
    }
});
