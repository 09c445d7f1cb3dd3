//! The bench's temporary ezctl home:
//!
//! ```text
//! home/roles, home/playbooks   -> the repo's (symlinks)
//! home/bin/                    test bundle (workload B, setup all)
//! home/bench-a/                fixtures/workload-a + the random payload in roles/ezbench-a/files/
//!                              + playbook-light.yml (its play vars: light-vars.yml)
//! home/bench-b/ansible.yml     fixtures/workload-b
//! home/clusters/<lab>/         written by the lab
//! work/ansible/, work/cp-ssh/  Ansible's config, inventory, sockets; the OpenSSH loop's sockets
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ez_bench::measure;
use ez_bench::payload::{self, PayloadFile};

use super::say;
use crate::Cli;

pub struct Home {
    /// Removed when the bench ends (unless kept).
    work_dir: Option<tempfile::TempDir>,
    pub work: PathBuf,
    pub dir: PathBuf,
    pub payload: Vec<PayloadFile>,
}

impl Home {
    pub fn create(cli: &Cli, ezctl: &Path, with_bundle: bool) -> Result<Home> {
        std::fs::create_dir_all(&cli.work_root)?;
        let work = tempfile::Builder::new()
            .prefix("ezbench.")
            .tempdir_in(&cli.work_root)
            .context("temporary directory")?;
        let root = work.path().to_path_buf();
        let dir = root.join("home");
        std::fs::create_dir_all(dir.join("clusters"))?;
        let repo = cli.repo.canonicalize().context("--repo")?;
        for d in ["roles", "playbooks"] {
            std::os::unix::fs::symlink(repo.join(d), dir.join(d))?;
        }
        let fixtures = repo.join("crates/bench/fixtures");
        copy_tree(&fixtures.join("workload-a"), &dir.join("bench-a"))?;
        copy_tree(&fixtures.join("workload-b"), &dir.join("bench-b"))?;
        write_light_playbook(&dir.join("bench-a"))?;
        let files_dir = dir.join("bench-a/roles/ezbench-a/files");
        say("generating the payload (1 KB, 1 MB, 2 x 20 MB of random bytes)");
        let payload = payload::generate(&files_dir)?;
        if with_bundle {
            build_bundle(&repo, &dir.join("bin"), ezctl)?;
        }
        Ok(Home {
            work_dir: Some(work),
            work: root,
            dir,
            payload,
        })
    }

    /// Leaves the temporary directory on disk; returns its path.
    pub fn keep(&mut self) -> PathBuf {
        if let Some(d) = self.work_dir.take() {
            let _ = d.keep();
        }
        self.work.clone()
    }

    pub fn bench_a(&self) -> PathBuf {
        self.dir.join("bench-a")
    }

    pub fn bench_b(&self) -> PathBuf {
        self.dir.join("bench-b")
    }
}

/// scripts/test-bundle.sh: the real components from the build cache
/// (scripts/build-lab-components.sh builds them; the bench never does).
fn build_bundle(repo: &Path, dest: &Path, _ezctl: &Path) -> Result<()> {
    std::fs::create_dir_all(dest)?;
    std::fs::copy(repo.join("bin/versions.toml"), dest.join("versions.toml"))?;
    let m = measure::run(
        Command::new(repo.join("scripts/test-bundle.sh"))
            .arg(dest)
            .env("NO_BUILD", "1")
            .current_dir(repo),
        Duration::from_secs(300),
    )?;
    if !m.success() {
        bail!(
            "scripts/test-bundle.sh failed (run scripts/build-lab-components.sh first):\n{}",
            m.tail(20)
        );
    }
    // Workload B is etcd + containerd as files and services; the offline
    // images (hundreds of MB per node, imported by roles/containerd) are not
    // part of what it compares, and its Ansible playbook has no such step.
    // They wait beside the bundle for the critical part: `setup all` needs
    // them (no node can pull from the internet; without the pause and
    // calico images no pod starts).
    let images = dest.join("images");
    if images.exists() {
        let aside = images_aside(dest);
        let _ = std::fs::remove_dir_all(&aside);
        std::fs::rename(&images, &aside)
            .with_context(|| format!("moving {} aside", images.display()))?;
    }
    Ok(())
}

fn images_aside(bundle: &Path) -> PathBuf {
    bundle.with_file_name("bundle-images")
}

impl Home {
    /// Puts the bundle's offline images back (after workload B), for runs
    /// of `setup all`.
    pub fn restore_images(&self) -> Result<()> {
        let bundle = self.dir.join("bin");
        let aside = images_aside(&bundle);
        if aside.exists() {
            std::fs::rename(&aside, bundle.join("images"))
                .with_context(|| format!("moving {} back", aside.display()))?;
        }
        Ok(())
    }
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let e = e?;
        let target = to.join(e.file_name());
        if e.file_type()?.is_dir() {
            copy_tree(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)
                .with_context(|| format!("copying {}", e.path().display()))?;
        }
    }
    Ok(())
}

/// `playbook-light.yml`: workload A's play with `light-vars.yml` as its
/// vars, so ezctl and Ansible (`-e @light-vars.yml`) read one file.
fn write_light_playbook(bench_a: &Path) -> Result<()> {
    let vars_path = bench_a.join("light-vars.yml");
    let vars = std::fs::read_to_string(&vars_path)
        .with_context(|| format!("reading {}", vars_path.display()))?;
    std::fs::write(bench_a.join("playbook-light.yml"), light_playbook(&vars))
        .context("writing playbook-light.yml")
}

/// The play, with every line of `vars` indented under `vars:` (comments
/// and blank lines kept: they are YAML too).
fn light_playbook(vars: &str) -> String {
    let mut s = String::from(
        "# Written by ezbench from light-vars.yml: workload A on light hosts.\n\
         - role: ezbench-a\n  hosts: all\n  vars:\n",
    );
    for line in vars.lines() {
        s.push_str("    ");
        s.push_str(line);
        s.push('\n');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_light_playbook_is_the_play_with_the_vars_file_as_its_vars() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/workload-a");
        let vars = std::fs::read_to_string(fixtures.join("light-vars.yml")).expect("light vars");
        let text = light_playbook(&vars);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("playbook-light.yml");
        std::fs::write(&path, &text).expect("write");
        let book = ez_engine::Playbook::load(&path).expect("a playbook the engine reads");
        assert_eq!(book.plays.len(), 1);
        let vars = &book.plays[0].vars;
        assert_eq!(vars["with_unit"], false);
        assert_eq!(vars["payload"], serde_json::json!(["f1k.bin", "f1m.bin"]));
        let checks = vars["checks"].as_array().expect("checks");
        assert_eq!(checks.len(), 10);
        assert!(
            checks
                .iter()
                .all(|c| !c.as_str().unwrap_or_default().contains("systemctl")),
            "a light host has no systemd: {checks:?}"
        );
    }
}
