//! Shared by the end-to-end tests: a lab of real machines (one per test
//! binary, see `ez_lab::testing`), an ezctl home around its cluster with the
//! repo's roles and playbooks and a test bundle in bin/, and helpers to run
//! ezctl, kubectl and etcdctl against it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod workload;

pub use ez_lab::Lab;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repo root")
}

/// The lab of this test binary plus the home and cluster name ezctl uses.
pub struct Env {
    pub lab: &'static Lab,
    pub home: PathBuf,
    pub cluster: String,
}

static ENV: OnceLock<Option<Env>> = OnceLock::new();

/// Bring up (once per test binary) `machines` lab machines and an ezctl home
/// for them. `None` (after saying why) where the lab cannot run.
pub fn env(machines: usize) -> Option<&'static Env> {
    ENV.get_or_init(|| {
        let lab = ez_lab::testing::shared_lab(machines)?;
        let cluster_dir = lab.cluster_dir().expect("the lab wrote a cluster");
        let home = cluster_dir
            .parent()
            .and_then(Path::parent)
            .expect("home")
            .to_path_buf();
        prepare_home(&home);
        choose_network(&home, &cluster_dir);
        Some(Env {
            lab,
            home,
            cluster: lab.name(),
        })
    })
    .as_ref()
}

/// roles/ and playbooks/ from the repo, the example cluster, a bundle.
fn prepare_home(home: &Path) {
    let repo = repo();
    for dir in ["roles", "playbooks"] {
        let link = home.join(dir);
        if !link.exists() {
            std::os::unix::fs::symlink(repo.join(dir), &link).expect("link");
        }
    }
    let example = home.join("clusters/example");
    std::fs::create_dir_all(&example).expect("mkdir");
    for f in ["hosts.yml", "config.yml"] {
        std::fs::copy(repo.join("clusters/example").join(f), example.join(f))
            .expect("copy example");
    }
    build_bundle(&home.join("bin"), &kube_version());
}

/// Assemble a bundle of real components for Kubernetes `version` (e.g.
/// `1.37.2`) from the build cache (`scripts/test-bundle.sh` with
/// `NO_BUILD=1`: tests never compile upstream components; `scripts/test.sh`
/// builds them first). A missing component fails the test, naming it.
pub fn build_bundle(dest: &Path, version: &str) {
    bundle_with(dest, version, &[]);
}

/// The bundle one release back: Kubernetes `kubernetes-previous`, etcd
/// `etcd-previous`, containerd `containerd-previous` (the upgrade test's
/// starting point).
pub fn build_previous_bundle(dest: &Path) {
    bundle_with(
        dest,
        &kube_previous_version(),
        &[
            ("ETCD_VERSION", build_pin("etcd-previous")),
            ("CONTAINERD_VERSION", build_pin("containerd-previous")),
        ],
    );
}

fn bundle_with(dest: &Path, version: &str, env: &[(&str, String)]) {
    std::fs::create_dir_all(dest).expect("mkdir bin");
    std::fs::copy(repo().join("bin/versions.toml"), dest.join("versions.toml")).expect("versions");
    let out = Command::new(repo().join("scripts/test-bundle.sh"))
        .arg(dest)
        .arg(version)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("NO_BUILD", "1")
        .output()
        .expect("run test-bundle.sh");
    assert!(
        out.status.success(),
        "test-bundle.sh failed (run scripts/build-components.sh first): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A `[build]` version from bin/versions.toml.
pub fn build_pin(key: &str) -> String {
    let text = std::fs::read_to_string(repo().join("bin/versions.toml")).expect("versions.toml");
    let table: toml::Value = text.parse().expect("versions.toml parses");
    table["build"][key]
        .as_str()
        .unwrap_or_else(|| panic!("bin/versions.toml has no [build] {key}"))
        .to_string()
}

/// The Kubernetes release the bundle is built for by default (`1.37.2`).
pub fn kube_version() -> String {
    build_pin("kubernetes")
}

/// The older release the upgrade tests start from.
pub fn kube_previous_version() -> String {
    build_pin("kubernetes-previous")
}

/// The pod network the lab runs: `EZ_LAB_NETWORK` (calico or flannel) when
/// set, else calico when the bundle has it (its source is not served by the
/// Go proxy, so a fresh machine may not build it), else flannel. Said on
/// stderr, so every test log shows which one ran.
pub fn choose_network(home: &Path, cluster_dir: &Path) -> &'static str {
    let network = match std::env::var("EZ_LAB_NETWORK").as_deref() {
        Ok("flannel") => "flannel",
        Ok("calico") => {
            assert!(
                home.join("bin/manifests/calico").is_dir(),
                "EZ_LAB_NETWORK=calico, but the bundle has no calico (scripts/build-lab-components.sh says why)"
            );
            "calico"
        }
        Ok(other) => panic!("EZ_LAB_NETWORK={other}: allowed: calico, flannel"),
        Err(_) if home.join("bin/manifests/calico").is_dir() => "calico",
        Err(_) => "flannel",
    };
    eprintln!("lab network: {network}");
    let config = cluster_dir.join("config.yml");
    let mut text = std::fs::read_to_string(&config).expect("config.yml");
    if !text.contains("\nCLUSTER_NETWORK:") {
        text = text.replace("{}\n", "");
        text.push_str(&format!("CLUSTER_NETWORK: {network}\n"));
        std::fs::write(&config, text).expect("write config.yml");
    }
    network
}

impl Env {
    pub fn cluster_dir(&self) -> PathBuf {
        self.home.join("clusters").join(&self.cluster)
    }

    pub fn ssl(&self, file: &str) -> String {
        self.cluster_dir()
            .join("ssl")
            .join(file)
            .display()
            .to_string()
    }

    /// Run ezctl with this home; the cluster name is not added.
    pub fn ezctl(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ezctl"))
            .arg("--home")
            .arg(&self.home)
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run ezctl")
    }

    /// `ezctl <cmd> <cluster> <rest...>`, asserting success.
    pub fn ezctl_ok(&self, cmd: &str, rest: &[&str]) -> Output {
        let mut args = vec![cmd, self.cluster.as_str()];
        args.extend_from_slice(rest);
        let out = self.ezctl(&args);
        assert!(
            out.status.success(),
            "ezctl {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// kubectl exactly as a user gets it: the admin kubeconfig as written,
    /// its own server (no `--server` override).
    pub fn admin_kubectl(&self, args: &[&str]) -> Output {
        Command::new(self.home.join("bin/kubectl"))
            .arg(format!("--kubeconfig={}", self.ssl("kubectl.kubeconfig")))
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// The bundle's kubectl with the admin kubeconfig, straight to a master.
    pub fn kubectl(&self, master: &str, args: &[&str]) -> Output {
        Command::new(self.home.join("bin/kubectl"))
            .arg(format!("--kubeconfig={}", self.ssl("kubectl.kubeconfig")))
            .arg(format!("--server=https://{master}:6443"))
            .args(args)
            .output()
            .expect("run kubectl")
    }

    /// The bundle's etcdctl with the apiserver's etcd client cert.
    pub fn etcdctl(&self, endpoints: &str, args: &[&str]) -> Output {
        Command::new(self.home.join("bin/etcdctl"))
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoints}"))
            .arg(format!("--cacert={}", self.ssl("ca.pem")))
            .arg(format!("--cert={}", self.ssl("apiserver-etcd-client.pem")))
            .arg(format!(
                "--key={}",
                self.ssl("apiserver-etcd-client-key.pem")
            ))
            .args(args)
            .output()
            .expect("run etcdctl")
    }

    /// A command on lab machine `ip` as root; (exit code, stdout+stderr).
    pub fn on(&self, ip: &str, cmd: &str) -> (i32, String) {
        let host = self.lab.find(ip).expect("lab host");
        match self
            .lab
            .ssh_run(host.index, cmd, std::time::Duration::from_secs(60))
        {
            Ok(o) => (
                o.status.code().unwrap_or(-1),
                format!("{}{}", o.stdout, o.stderr),
            ),
            Err(e) => (-1, e.to_string()),
        }
    }

    pub fn group(&self, role: ez_lab::Role) -> Vec<String> {
        self.lab
            .hosts()
            .into_iter()
            .filter(|h| h.roles.contains(&role))
            .map(|h| h.ip.to_string())
            .collect()
    }
}

pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}
