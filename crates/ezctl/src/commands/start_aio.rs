//! `ezctl start-aio [HOST]`: kubeasz's all-in-one. One host is the etcd
//! member, the master and a schedulable node; the cluster is created from
//! the example with defaults that suit one machine, then `setup all` runs.
//! Running it again re-runs `setup all` on the same cluster (changed=0).

use std::net::{IpAddr, UdpSocket};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use ez_inventory::Value;

use crate::cli::RunOpts;
use crate::output::Output;
use ez_ops::exit::{ExitCode, Failure};
use ez_ops::home::Home;

/// First line of a hosts.yml written here: a re-run recognises its own.
const HEADER: &str = "# Written by `ezctl start-aio`";

pub struct Aio<'a> {
    pub cluster: &'a str,
    pub host: Option<IpAddr>,
    pub user: &'a str,
    pub ssh_key: Option<&'a Path>,
    pub config: Option<&'a Path>,
}

pub fn run(home: &Home, aio: &Aio, opts: &RunOpts, out: &Output) -> Result<()> {
    let name = aio.cluster;
    let dir = home.cluster_dir(name)?;
    let host = match aio.host {
        Some(h) => h,
        None => own_address().ok_or_else(|| {
            Failure::usage(
                "this machine has no route to pick its own address from; give the host: `ezctl start-aio <IP>`",
            )
        })?,
    };
    let hosts = hosts_yml(host, aio.user, aio.ssh_key)?;
    if dir.exists() {
        let current = std::fs::read_to_string(dir.join("hosts.yml")).unwrap_or_default();
        if current != hosts {
            bail!(Failure::new(
                ExitCode::Input,
                format!(
                    "cluster `{name}` already exists at {} with other hosts; remove it, or choose another name with --cluster",
                    dir.display()
                )
            ));
        }
        out.step(format!(
            "cluster `{name}` exists with this host: running `setup {name} all` again"
        ));
    } else {
        // One host needs no setting of its own: no ex_lb hosts means no VIP,
        // one etcd member, and a master in kube_node takes workloads.
        let settings = match aio.config {
            Some(file) => read_settings(file)?,
            None => vec![],
        };
        crate::commands::new::create(home, name, &hosts, &settings)?;
        // Validate now, before any host is touched; on bad input leave no
        // half-made cluster behind to trip the next try.
        if let Err(e) = home.load(name) {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        out.step(format!(
            "cluster `{name}` created in {} with {host} as etcd, master and node",
            dir.display()
        ));
    }
    crate::commands::setup::run(home, name, "all", opts, out)?;
    if !opts.dry_run && !out.json {
        let kubeconfig = crate::commands::list::admin_kubeconfig(home, name)?;
        println!(
            "\nall-in-one cluster `{name}` is up on {host}. Reach it with:\n  \
             kubectl --kubeconfig {} get nodes\n  \
             ezctl checkout {name}    # or make it ~/.kube/config",
            kubeconfig.display()
        );
    }
    Ok(())
}

fn hosts_yml(host: IpAddr, user: &str, key: Option<&Path>) -> Result<String> {
    if user.is_empty()
        || !user
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        bail!(Failure::usage(format!("--user {user:?}: not a user name")));
    }
    let mut y =
        format!("{HEADER}: one host is etcd, master and node.\nssh:\n  user: {user}\n  port: 22\n");
    if let Some(k) = key {
        let abs: PathBuf =
            std::path::absolute(k).with_context(|| format!("--ssh-key {}", k.display()))?;
        if !abs.is_file() {
            bail!(Failure::usage(format!(
                "--ssh-key {}: no such file",
                abs.display()
            )));
        }
        y += &format!(
            "  key: {}\n",
            ez_inventory::render::yaml_scalar(&abs.to_string_lossy())
        );
    }
    y += &format!(
        "etcd: [{host}]\nkube_master: [{host}]\nkube_node: [{host}]\nex_lb: []\nharbor: []\nchrony: []\n"
    );
    Ok(y)
}

/// Settings from a config.yml-style file: top-level `KEY: value`, where a
/// value is a boolean, an integer, a string or a list of strings. They are
/// checked like any config.yml when the cluster loads.
fn read_settings(file: &Path) -> Result<Vec<(String, Value)>> {
    use yaml_rust2::Yaml;
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading --config {}", file.display()))?;
    let docs = yaml_rust2::YamlLoader::load_from_str(&text)
        .map_err(|e| Failure::usage(format!("--config {}: {e}", file.display())))?;
    let mut out = vec![];
    let Some(doc) = docs.into_iter().next() else {
        return Ok(out);
    };
    let Yaml::Hash(map) = doc else {
        bail!(Failure::usage(format!(
            "--config {}: not a mapping of settings",
            file.display()
        )));
    };
    for (k, v) in map {
        let Yaml::String(key) = k else {
            bail!(Failure::usage(format!(
                "--config {}: a key is not a setting name",
                file.display()
            )));
        };
        let value = match v {
            Yaml::Boolean(b) => Value::Bool(b),
            Yaml::Integer(i) => Value::Int(i),
            Yaml::String(s) | Yaml::Real(s) => Value::Text(s),
            Yaml::Array(items) => Value::List(
                items
                    .into_iter()
                    .map(|i| match i {
                        Yaml::String(s) | Yaml::Real(s) => Ok(s),
                        Yaml::Integer(n) => Ok(n.to_string()),
                        _ => Err(Failure::usage(format!(
                            "--config {}: {key}: list items must be strings",
                            file.display()
                        ))),
                    })
                    .collect::<std::result::Result<_, _>>()?,
            ),
            _ => bail!(Failure::usage(format!(
                "--config {}: {key}: not a boolean, number, string or list",
                file.display()
            ))),
        };
        out.push((key, value));
    }
    Ok(out)
}

/// The address this machine uses to reach others: the source address of
/// a route to a public address (a UDP connect sends nothing).
fn own_address() -> Option<IpAddr> {
    let s = UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_in_every_kubernetes_group_and_no_extras() {
        let y = hosts_yml("10.0.0.5".parse().unwrap(), "root", None).unwrap();
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("hosts.yml"), &y).unwrap();
        let c = ez_inventory::Cluster::load(d.path()).unwrap();
        assert_eq!(c.hosts.len(), 1);
        let h = &c.hosts[0];
        for g in [
            ez_inventory::Group::Etcd,
            ez_inventory::Group::KubeMaster,
            ez_inventory::Group::KubeNode,
        ] {
            assert!(h.is(g), "{g:?}");
        }
        assert!(!h.is(ez_inventory::Group::ExLb));
        assert!(y.starts_with(HEADER));
    }

    #[test]
    fn a_hostile_user_name_is_refused() {
        assert!(hosts_yml(
            "10.0.0.5".parse().unwrap(),
            "root\nkube_node: [1.2.3.4]",
            None
        )
        .is_err());
    }

    #[test]
    fn settings_file_values_keep_their_types() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("site.yml");
        std::fs::write(
            &f,
            "KUBELET_IMAGE_GC_HIGH_PERCENT: 100\nKUBELET_ALLOW_CGROUP_V1: true\nKUBELET_EVICTION_HARD: \"memory.available<100Mi\"\nMASTER_CERT_HOSTS: [a.example.com]\n",
        )
        .unwrap();
        let s = read_settings(&f).unwrap();
        assert_eq!(
            s,
            vec![
                ("KUBELET_IMAGE_GC_HIGH_PERCENT".into(), Value::Int(100)),
                ("KUBELET_ALLOW_CGROUP_V1".into(), Value::Bool(true)),
                (
                    "KUBELET_EVICTION_HARD".into(),
                    Value::Text("memory.available<100Mi".into())
                ),
                (
                    "MASTER_CERT_HOSTS".into(),
                    Value::List(vec!["a.example.com".into()])
                ),
            ]
        );
        std::fs::write(&f, "- not\n- a mapping\n").unwrap();
        assert!(read_settings(&f).is_err());
    }
}
