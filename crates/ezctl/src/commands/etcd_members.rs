//! `ezctl add-etcd` and `ezctl del-etcd`: the procedures are in
//! [`ez_ops::etcd_members`]; this renders what they did.

use anyhow::Result;
use ez_ops::etcd_members::{self, ip_list, AddArgs, DelArgs};
use ez_ops::home::Home;
use serde_json::json;

use crate::output::Output;

pub fn add(home: &Home, args: &AddArgs<'_>, out: &Output) -> Result<()> {
    let done = etcd_members::add(home, args, out)?;
    let (ips, summary, took) = (&done.ips, &done.members, done.took);
    if out.json {
        out.result(
            "add-etcd",
            json!({"ips": ips, "members": summary, "duration_ms": took.as_millis() as u64}),
        );
    } else {
        println!(
            "etcd member(s) {} added to {} in {:.1}s: {summary}",
            ip_list(ips),
            args.cluster,
            took.as_secs_f64()
        );
        println!("  hosts.yml updated");
    }
    Ok(())
}

pub fn del(home: &Home, args: &DelArgs<'_>, out: &Output) -> Result<()> {
    let done = etcd_members::del(home, args, out)?;
    let (ips, summary, warnings, took) = (&done.ips, &done.members, &done.warnings, done.took);
    if out.json {
        out.result(
            "del-etcd",
            json!({"ips": ips, "members": summary, "warnings": warnings, "duration_ms": took.as_millis() as u64}),
        );
    } else {
        println!(
            "etcd member(s) {} removed from {} in {:.1}s: {summary}",
            ip_list(ips),
            args.cluster,
            took.as_secs_f64()
        );
        for w in warnings {
            println!("  warning: {w}");
        }
        println!("  hosts.yml updated");
    }
    Ok(())
}
