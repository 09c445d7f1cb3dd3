//! `ezctl check <cluster>`: validate, then show the resolved cluster.

use anyhow::Result;
use ez_inventory::{Cluster, Group};

use crate::output::Output;
use crate::style::Style;
use ez_ops::home::Home;

pub fn run(home: &Home, name: &str, out: &Output) -> Result<()> {
    let cluster = home.load(name)?;
    if out.json {
        let e = ez_ops::endpoint::admin_endpoint(&cluster);
        out.result(
            "check",
            serde_json::json!({
                "cluster": cluster,
                "kubeconfig_endpoint": { "url": e.url, "why": e.why },
            }),
        );
        return Ok(());
    }
    print!("{}", render(&cluster, out.style));
    Ok(())
}

pub fn render(c: &Cluster, style: Style) -> String {
    let mut out = String::new();
    let d = &c.derived;
    out += &format!(
        "{} {} is valid\n\n",
        style.green("✓"),
        style.bold(&format!("cluster `{}`", c.name))
    );
    let width = c
        .hosts
        .iter()
        .map(|h| h.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    out += &format!("  {:<15}  {:<width$}  {}\n", "HOST", "NAME", "ROLES");
    for h in &c.hosts {
        let roles: Vec<&str> = Group::ALL
            .iter()
            .filter(|g| h.is(**g))
            .map(|g| g.key())
            .collect();
        out += &format!(
            "  {:<15}  {:<width$}  {}\n",
            h.ip.to_string(),
            h.name,
            roles.join(",")
        );
    }
    out += "\n";
    let s = &c.settings;
    let rows = [
        ("API endpoint", d.api_endpoint.clone()),
        ("kubeconfigs point at", {
            let e = ez_ops::endpoint::admin_endpoint(c);
            format!("{} ({})", e.url, e.why)
        }),
        ("API service IP", d.api_service_ip.to_string()),
        ("cluster DNS IP", d.dns_service_ip.to_string()),
        ("service network", s.text("SERVICE_CIDR").to_string()),
        ("pod network", s.text("CLUSTER_CIDR").to_string()),
        ("node ports", s.text("NODE_PORT_RANGE").to_string()),
        (
            "runtime / network / proxy",
            format!(
                "{} / {} / {}",
                s.text("CONTAINER_RUNTIME"),
                s.text("CLUSTER_NETWORK"),
                s.text("PROXY_MODE")
            ),
        ),
        ("kubernetes", s.text("K8S_VER").to_string()),
        (
            "etcd members",
            d.etcd_initial_cluster
                .replace(',', "\n                              "),
        ),
    ];
    for (k, v) in rows {
        out += &format!("  {:<26}  {v}\n", style.dim(k));
    }
    out
}
