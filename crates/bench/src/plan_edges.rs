//! The DAG edges of an ezctl plan, built the way `ezctl setup` builds its
//! plan (ez-ops' view of hosts, groups and variables, the same playbooks
//! and roles, no filter), so a run's events can be laid on its dependency
//! graph.

use std::path::Path;

use ez_engine::{Plan, PlanFilter, Playbook};
use ez_inventory::Cluster;
use ez_ops::home::Home;

use crate::critical::Edge;

#[derive(Debug, thiserror::Error)]
pub enum EdgesError {
    #[error("cluster {dir}: {message}")]
    Inventory { dir: String, message: String },
    #[error("{0}")]
    Playbook(#[from] ez_engine::LoadError),
    #[error("{0}")]
    Plan(#[from] ez_engine::PlanError),
}

/// Every edge of the plan of `playbooks` (files) on the cluster in
/// `cluster_dir`, for the ezctl home `home` (its `roles/`).
pub fn plan_edges(
    home: &Path,
    cluster_dir: &Path,
    playbooks: &[&Path],
) -> Result<Vec<Edge>, EdgesError> {
    let cluster = Cluster::load(cluster_dir).map_err(|e| EdgesError::Inventory {
        dir: cluster_dir.display().to_string(),
        message: e.to_string(),
    })?;
    let books = playbooks
        .iter()
        .map(|p| Playbook::load(p))
        .collect::<Result<Vec<_>, _>>()?;
    let home = Home::new(home);
    let targets = ez_ops::view::targets(&home, &cluster);
    let plan = Plan::build(
        &home.dir.join("roles"),
        &books,
        targets,
        &PlanFilter::default(),
    )?;
    let mut edges = Vec::new();
    for u in plan.units() {
        for (role, host, _kind) in plan.deps(&u.role.name, &u.host) {
            edges.push(Edge {
                from: (role, host),
                to: (u.role.name.clone(), u.host.clone()),
            });
        }
    }
    Ok(edges)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
    }

    #[test]
    fn setup_all_on_the_example_cluster_has_the_documented_edges() {
        let repo = repo();
        let edges = plan_edges(
            &repo,
            &repo.join("clusters/example"),
            &[&repo.join("playbooks/90-all.yml")],
        )
        .expect("plan builds");
        let cluster = Cluster::load(&repo.join("clusters/example")).expect("example loads");
        let etcd = cluster
            .group(ez_inventory::Group::Etcd)
            .next()
            .expect("an etcd host")
            .ip
            .to_string();
        // etcd waits for prepare on its own host (`after: [prepare]`).
        assert!(edges.contains(&Edge {
            from: ("prepare".into(), etcd.clone()),
            to: ("etcd".into(), etcd.clone()),
        }));
        // Every master waits for every etcd member (`needs: etcd on etcd`).
        for m in cluster.group(ez_inventory::Group::KubeMaster) {
            for e in cluster.group(ez_inventory::Group::Etcd) {
                assert!(
                    edges.contains(&Edge {
                        from: ("etcd".into(), e.ip.to_string()),
                        to: ("kube-master".into(), m.ip.to_string()),
                    }),
                    "kube-master@{} should need etcd@{}",
                    m.ip,
                    e.ip
                );
            }
        }
        assert!(edges.iter().all(|e| e.from != e.to));
    }
}
