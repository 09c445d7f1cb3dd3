//! What the engine and the PKI see of a cluster: the inventory turned into
//! template variables and a certificate spec. Computed here, once per run.

use std::path::Path;
use std::time::Duration;

use ez_engine::{TargetHost, Targets};
use ez_inventory::{Cluster, Group};
use ez_pki::{ExLb, NodeCert, PkiSpec, RegistryCert};
use serde_json::{json, Value};

use crate::home::Home;

/// Controller paths every role may use; certificates are read from `ssl`.
fn controller_vars(home: &Home, cluster: &Cluster, ssl: &Path) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    let ssl = ssl.to_path_buf();
    let bundle = home.dir.join("bin");
    let kubectl_bin = if bundle.join("kubectl").is_file() {
        bundle.join("kubectl").display().to_string()
    } else {
        "kubectl".to_string()
    };
    // Controller-side kubectl goes straight to the first master, so steps
    // 04..07 work before the optional ex-lb VIP (step 10) exists.
    let first_master = cluster.group(Group::KubeMaster).next().map(|h| h.ip);
    let server = first_master
        .map(|ip| {
            format!(
                " --server=https://{}",
                ez_inventory::cluster::socket(ip, cluster.settings.int("SECURE_PORT") as u16)
            )
        })
        .unwrap_or_default();
    m.insert("bundle_dir".into(), json!(bundle.display().to_string()));
    m.insert(
        "offline_images".into(),
        json!(offline_images(
            &bundle.join("images"),
            cluster.settings.text("CLUSTER_NETWORK")
        )),
    );
    m.insert("ssl_dir".into(), json!(ssl.display().to_string()));
    m.insert(
        "cluster_dir".into(),
        json!(cluster.dir.display().to_string()),
    );
    m.insert(
        "manifests_dir".into(),
        json!(cluster.dir.join("manifests").display().to_string()),
    );
    m.insert(
        "etcdctl".into(),
        json!(crate::etcd::ctl::Ctl::for_cluster(cluster).prefix()),
    );
    m.insert(
        "kubectl".into(),
        // A command prefix that roles put in shell commands as is: each
        // controller path in it is one shell word, whatever --home is.
        json!(format!(
            "{} --kubeconfig={}{server}",
            ez_engine::shell_word(&kubectl_bin),
            ez_engine::shell_word(&ssl.join("kubectl.kubeconfig").display().to_string())
        )),
    );
    m
}

/// The images the bundle carries for every node, as docker-archives:
/// `images/*.tar`, plus `images/<network>/*.tar` of the cluster's
/// `CLUSTER_NETWORK` only. Each is `{file, name, ref}`: `file` relative to
/// `images/`, `name` a flat file name for the node, `ref` the first name in
/// the archive's `manifest.json`. Roles import them into containerd, as
/// kubeasz loads its offline images. An archive that cannot be read is left
/// out here; its import then never happens and the pod that needs it says
/// which image it lacks.
pub fn offline_images(dir: &Path, network: &str) -> Vec<Value> {
    let tars = |sub: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(sub)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(".tar"))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    };
    let mut files: Vec<String> = tars(dir);
    if !network.is_empty() && !network.contains('/') && network != ".." {
        files.extend(
            tars(&dir.join(network))
                .into_iter()
                .map(|n| format!("{network}/{n}")),
        );
    }
    files
        .into_iter()
        .filter_map(|file| {
            let image = image_ref(&dir.join(&file))?;
            let name = file.replace('/', "-");
            Some(json!({ "file": file, "name": name, "ref": image }))
        })
        .collect()
}

/// The first `RepoTags` entry of a docker-archive's `manifest.json`.
fn image_ref(archive: &Path) -> Option<String> {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).ok()?);
    for entry in tar.entries().ok()? {
        let mut entry = entry.ok()?;
        if entry.path().ok()?.as_os_str() != "manifest.json" {
            continue;
        }
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).ok()?;
        let manifest: Value = serde_json::from_str(&text).ok()?;
        return manifest[0]["RepoTags"][0].as_str().map(str::to_string);
    }
    None
}

/// The engine's view: globals from the settings and derived values, one
/// target per host with its groups and variables.
pub fn targets(home: &Home, cluster: &Cluster) -> Targets {
    targets_with_ssl(home, cluster, &ssl_dir(&cluster.dir))
}

/// [`targets`] with the certificates read from `ssl` (a dry run's scratch copy).
pub fn targets_with_ssl(home: &Home, cluster: &Cluster, ssl: &Path) -> Targets {
    let mut globals = cluster.globals();
    globals.extend(controller_vars(home, cluster, ssl));
    let hosts = cluster
        .hosts
        .iter()
        .map(|h| {
            let mut t = TargetHost::new(h.ip.to_string());
            for g in &h.groups {
                t = t.group(g.key());
            }
            t.vars = cluster.host_vars(h);
            // Its inventory groups, like Ansible's variable of that name
            // (only day-2 commands had it: a role using it failed in setup).
            let groups: Vec<&str> = h.groups.iter().map(|g| g.key()).collect();
            t.vars.insert("group_names".into(), json!(groups));
            t
        })
        .collect();
    Targets { globals, hosts }
}

/// The certificates this cluster needs.
pub fn pki_spec(cluster: &Cluster) -> PkiSpec {
    let s = &cluster.settings;
    let d = &cluster.derived;
    let hours = |h: u64| Duration::from_secs(h * 3600);
    let kubelets = cluster
        .hosts
        .iter()
        .filter(|h| h.is(Group::KubeMaster) || h.is(Group::KubeNode))
        .map(|h| NodeCert {
            name: h.name.clone(),
            ip: h.ip,
        })
        .collect();
    PkiSpec {
        cluster_name: s.text("CLUSTER_NAME").to_string(),
        context_name: s.text("CONTEXT_NAME").to_string(),
        ca_expiry: hours(d.ca_expiry_hours),
        cert_expiry: hours(d.cert_expiry_hours),
        secure_port: s.int("SECURE_PORT") as u16,
        etcd_ips: cluster.group(Group::Etcd).map(|h| h.ip).collect(),
        master_ips: cluster.masters(),
        api_service_ip: d.api_service_ip,
        ex_lb: d.ex_lb_vip.map(|vip| ExLb {
            vip,
            port: s.int("EX_APISERVER_PORT") as u16,
            serving: crate::endpoint::admin_endpoint(cluster).vip_serving,
        }),
        master_cert_hosts: s.list("MASTER_CERT_HOSTS").to_vec(),
        dns_domain: s.text("CLUSTER_DNS_DOMAIN").to_string(),
        nodes: kubelets,
        registry: cluster.group(Group::Harbor).next().map(|h| RegistryCert {
            domain: s.text("HARBOR_DOMAIN").to_string(),
            ip: h.ip,
        }),
    }
}

/// Where the certificates of a cluster live on the controller.
pub fn ssl_dir(cluster_dir: &Path) -> std::path::PathBuf {
    cluster_dir.join("ssl")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command builds its targets here, so every host carries
    /// `group_names` (only day-2 commands added it, so a role using it
    /// worked under add-node and failed under setup).
    #[test]
    fn every_host_has_its_group_names() {
        let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clusters/example");
        let cluster = Cluster::load(&example).expect("example cluster");
        let home = Home::new(Path::new("/nonexistent-home"));
        let t = targets(&home, &cluster);
        assert_eq!(t.hosts.len(), cluster.hosts.len());
        for (th, h) in t.hosts.iter().zip(&cluster.hosts) {
            let want: Vec<&str> = h.groups.iter().map(|g| g.key()).collect();
            assert_eq!(th.vars["group_names"], json!(want), "{}", th.name);
        }
        let day2 = crate::plans::targets(&home, &cluster, &[], &[]);
        assert_eq!(
            day2.hosts[0].vars["group_names"],
            t.hosts[0].vars["group_names"]
        );
    }
}
