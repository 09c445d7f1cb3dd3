//! hosts.yml and config.yml as the loader reads them: real files in a
//! cluster folder, any bytes (not only UTF-8). The input is split at its
//! first NUL byte: hosts.yml before, config.yml after (no NUL: no
//! config.yml). Also the spanned YAML parser alone on the same text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One folder per process, rewritten for each input (libFuzzer runs
/// inputs one after another in a process).
fn cluster_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir()
            .join(format!("ezctl-fuzz-inventory-{}", std::process::id()))
            .join("c1");
        std::fs::create_dir_all(&dir).expect("fuzz scratch dir");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let (hosts, config) = match data.iter().position(|b| *b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    if let Ok(text) = std::str::from_utf8(hosts) {
        let _ = ez_inventory::yaml::parse(text);
    }
    let dir = cluster_dir();
    std::fs::write(dir.join("hosts.yml"), hosts).expect("write hosts.yml");
    let config_path = dir.join("config.yml");
    match config {
        Some(c) => std::fs::write(&config_path, c).expect("write config.yml"),
        None => {
            let _ = std::fs::remove_file(&config_path);
        }
    }
    match ez_inventory::Cluster::load(dir) {
        Ok(cluster) => {
            // What every command does next with a valid inventory.
            let _ = cluster.globals();
            for h in &cluster.hosts {
                let _ = cluster.host_vars(h);
            }
        }
        Err(ez_inventory::LoadError::Invalid(d)) => {
            // Every message names file:line:col (line 1 or later).
            for diag in &d.0 {
                assert!(diag.pos.line >= 1, "{diag}");
                let _ = diag.to_string();
            }
        }
        Err(e) => panic!("a readable inventory gave a non-diagnostic error: {e}"),
    }
});
