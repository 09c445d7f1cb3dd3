//! Lab networking. All labs share one bridge, `ezlab0`; each lab owns one
//! /24 of 10.231.0.0/16 (`10.231.X.0/24`, X recorded in its state). The
//! controller has `10.231.X.1` on the bridge; machine i (0-based) is
//! `10.231.X.(11+i)`; `10.231.X.250` is kept free for a virtual IP (ex-lb).
//! Nothing routes this range anywhere: a machine's default route is on-link
//! on its own `eth0` (no gateway), so an address outside the lab is only
//! ever asked for by ARP on the bridge, where nobody answers, and the
//! controller does not forward. A default route must exist all the same: a
//! kubelet host without one cannot connect to a Service IP (the route lookup
//! fails before kube-proxy's DNAT), and calico answers its pods' gateway by
//! proxy ARP only for destinations the node can route.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::cmd;
use crate::error::Result;

pub const BRIDGE: &str = "ezlab0";
const PREFIX: [u8; 2] = [10, 231];
const FIRST_HOST: usize = 11;
/// Highest usable machine address (.249); .250 is the lab's VIP.
const LAST_HOST: usize = 249;
pub const MAX_MACHINES: usize = LAST_HOST - FIRST_HOST + 1;
const T: Duration = Duration::from_secs(30);

pub fn controller_ip(subnet: u8) -> Ipv4Addr {
    Ipv4Addr::new(PREFIX[0], PREFIX[1], subnet, 1)
}

pub fn machine_ip(subnet: u8, index: usize) -> Ipv4Addr {
    Ipv4Addr::new(PREFIX[0], PREFIX[1], subnet, (FIRST_HOST + index) as u8)
}

pub fn vip(subnet: u8) -> Ipv4Addr {
    Ipv4Addr::new(PREFIX[0], PREFIX[1], subnet, 250)
}

pub fn cidr(subnet: u8) -> String {
    format!("{}.{}.{subnet}.0/24", PREFIX[0], PREFIX[1])
}

/// Network namespace of a machine. `.` cannot appear in a lab name, so one
/// lab's names are never a prefix of another's.
pub fn netns_name(lab: &str, index: usize) -> String {
    format!("ezlab-{lab}.{index}")
}

pub fn netns_prefix(lab: &str) -> String {
    format!("ezlab-{lab}.")
}

/// Host end of a machine's veth pair (15 characters at most).
pub fn veth_name(subnet: u8, index: usize) -> String {
    format!("ez{subnet}h{index}")
}

fn ip(args: &[&str]) -> Result<cmd::Output> {
    cmd::run_ok(Command::new("ip").args(args), T)
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Third octets of 10.231.X.0/24 already present on this host (any
/// interface): a new lab must not pick one of those.
pub fn subnets_in_use() -> Result<Vec<u8>> {
    let out = ip(&["-4", "-o", "addr", "show"])?;
    let mut used = Vec::new();
    for word in out.stdout.split_whitespace() {
        let addr = word.split('/').next().unwrap_or("");
        if let Ok(a) = addr.parse::<Ipv4Addr>() {
            let o = a.octets();
            if o[0] == PREFIX[0] && o[1] == PREFIX[1] {
                used.push(o[2]);
            }
        }
    }
    Ok(used)
}

/// Creates the shared bridge when missing and gives the controller the lab's
/// first address on it.
pub fn ensure_bridge(subnet: u8) -> Result<()> {
    if !link_exists(BRIDGE) {
        ip(&["link", "add", BRIDGE, "type", "bridge"])?;
    }
    ip(&["link", "set", BRIDGE, "up"])?;
    let addr = format!("{}/24", controller_ip(subnet));
    let shown = ip(&["-4", "-o", "addr", "show", "dev", BRIDGE])?;
    if !shown.stdout.contains(&format!(" {addr} ")) {
        ip(&["addr", "add", &addr, "dev", BRIDGE])?;
    }
    Ok(())
}

/// Removes the lab's controller address; deletes the bridge once it carries
/// no address of any lab and no port.
pub fn release_bridge(subnet: u8) -> Result<()> {
    if !link_exists(BRIDGE) {
        return Ok(());
    }
    let addr = format!("{}/24", controller_ip(subnet));
    let shown = ip(&["-4", "-o", "addr", "show", "dev", BRIDGE])?;
    if shown.stdout.contains(&format!(" {addr} ")) {
        ip(&["addr", "del", &addr, "dev", BRIDGE])?;
    }
    let still = ip(&["-4", "-o", "addr", "show", "dev", BRIDGE])?;
    let ports = std::fs::read_dir(Path::new("/sys/class/net").join(BRIDGE).join("brif"))
        .map(|d| d.count())
        .unwrap_or(0);
    if still.stdout.trim().is_empty() && ports == 0 {
        ip(&["link", "del", BRIDGE])?;
    }
    Ok(())
}

pub fn bridge_exists() -> bool {
    link_exists(BRIDGE)
}

/// A netns with `lo` up and `eth0` (the far end of a veth whose near end is
/// in the bridge) carrying the machine's address. Idempotent.
pub fn create_machine_net(netns: &str, veth: &str, addr: Ipv4Addr) -> Result<()> {
    if !Path::new("/run/netns").join(netns).exists() {
        ip(&["netns", "add", netns])?;
    }
    if !link_exists(veth) {
        ip(&[
            "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns,
        ])?;
    }
    ip(&["link", "set", veth, "master", BRIDGE, "up"])?;
    let cidr = format!("{addr}/24");
    let shown = ip(&["-n", netns, "-4", "-o", "addr", "show", "dev", "eth0"])?;
    if !shown.stdout.contains(&format!(" {cidr} ")) {
        ip(&["-n", netns, "addr", "add", &cidr, "dev", "eth0"])?;
    }
    ip(&["-n", netns, "link", "set", "lo", "up"])?;
    ip(&["-n", netns, "link", "set", "eth0", "up"])?;
    ip(&[
        "-n", netns, "route", "replace", "default", "dev", "eth0", "scope", "link",
    ])?;
    Ok(())
}

/// Deletes a netns (which destroys the veth pair with it) and the host end
/// of the veth if it somehow survived.
pub fn delete_machine_net(netns: &str, veth: Option<&str>) -> Result<()> {
    if Path::new("/run/netns").join(netns).exists() {
        ip(&["netns", "del", netns])?;
    }
    if let Some(v) = veth.filter(|v| !v.is_empty()) {
        // Deleting the netns destroys the pair asynchronously: give the
        // kernel a moment before deleting the host end by hand.
        crate::process::wait_until(Duration::from_secs(2), || !link_exists(v));
        if link_exists(v) {
            if let Err(e) = ip(&["link", "del", v]) {
                if link_exists(v) {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Names of existing netns starting with `prefix`.
pub fn netns_with_prefix(prefix: &str) -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_documented_plan() {
        assert_eq!(controller_ip(7).to_string(), "10.231.7.1");
        assert_eq!(machine_ip(7, 0).to_string(), "10.231.7.11");
        assert_eq!(machine_ip(7, MAX_MACHINES - 1).to_string(), "10.231.7.249");
        assert_eq!(vip(7).to_string(), "10.231.7.250");
        assert_eq!(cidr(7), "10.231.7.0/24");
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        assert!(veth_name(254, MAX_MACHINES - 1).len() <= 15);
    }

    #[test]
    fn netns_names_of_labs_do_not_prefix_each_other() {
        assert!(!netns_name("a-b", 1).starts_with(&netns_prefix("a")));
        assert!(netns_name("a", 1).starts_with(&netns_prefix("a")));
    }
}
