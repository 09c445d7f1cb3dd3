//! Rules no single field can check: a host against itself, hosts against
//! each other, group sizes, and settings against hosts and each other.
//! Each rule reports at the line an operator would edit to fix it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use super::merge::Merged;
use super::Files;
use crate::cluster::valid_dns_subdomain;
use crate::diag::{Diagnostic, Reporter};
use crate::hosts::{Group, HostsDoc};
use crate::settings::{parse_duration_hours, Settings};
use crate::yaml::Pos;

const FILE_START: Pos = Pos { line: 1, col: 1 };

/// Rules on one merged host: a usable node name, and not being its own
/// jump host.
pub(super) fn host(m: &Merged<'_>, hrep: &mut Reporter<'_>) {
    node_name(m, hrep);
    not_its_own_jump(m, hrep);
}

fn node_name(m: &Merged<'_>, hrep: &mut Reporter<'_>) {
    let name = &m.host.name;
    if !valid_dns_subdomain(name) {
        hrep.error_help(
            m.name_pos,
            &m.name_field,
            format!("`{name}` is not a valid node name"),
            "allowed: lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (DNS-1123), at most 253 characters",
        );
    } else if !crate::syntax::yaml_plain_is_string(name) {
        // Node names are written into YAML files on the nodes.
        hrep.error_help(
            m.name_pos,
            &m.name_field,
            format!("`{name}` would be read as a boolean, number or date in YAML files"),
            format!("allowed: {}", crate::syntax::YAML_STRING_ALLOWED),
        );
    }
}

/// A host's own jump host may not be itself (a cluster-wide one may: that
/// host is then reached directly).
fn not_its_own_jump(m: &Merged<'_>, hrep: &mut Reporter<'_>) {
    let ip = m.host.ip;
    let Some((_, addr, port)) = m.own_jump.as_deref().and_then(crate::syntax::jump_host) else {
        return;
    };
    if addr == ip.to_string() && port.unwrap_or(22) == m.host.ssh.port {
        let e = m.ssh_entry;
        hrep.error_help(
            e.pos,
            &format!("{}.ssh.jump", e.field),
            format!("{ip} would be reached through itself"),
            "remove `jump` from this host, or name another host",
        );
    }
}

/// Rules across hosts and settings, in the order they are reported.
pub(super) fn cluster(
    hosts: &[Merged<'_>],
    doc: &HostsDoc,
    settings: &Settings,
    files: Files<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    let mut hrep = Reporter {
        file: files.hosts,
        out: diags,
    };
    unique_node_names(hosts, &mut hrep);
    group_sizes(hosts, doc, &mut hrep);
    networks(hosts, doc, settings, files, diags);
    let mut crep = Reporter {
        file: files.config,
        out: diags,
    };
    roles_not_installed(settings, &mut crep);
    certificates_within_ca(settings, &mut crep);
    deleted_dirs_hold_nothing_else(settings, &mut crep);
    ex_lb_vip(hosts, settings, &mut crep);
    ports_free_per_host(hosts, settings, &mut crep);
}

/// Where setting `key` is written in `config.yml` (the file's start for a
/// default).
fn cfg_pos(settings: &Settings, key: &str) -> Pos {
    settings.pos(key).unwrap_or(FILE_START)
}

fn unique_node_names(hosts: &[Merged<'_>], hrep: &mut Reporter<'_>) {
    let mut names: BTreeMap<&str, (IpAddr, Pos)> = BTreeMap::new();
    for m in hosts {
        let h = &m.host;
        if let Some((other, other_pos)) = names.insert(&h.name, (h.ip, m.name_pos)) {
            hrep.error_help(
                m.name_pos,
                &m.name_field,
                format!(
                    "node name `{}` is already used by {other} (line {})",
                    h.name, other_pos.line
                ),
                "every node name must be unique",
            );
        }
    }
}

fn group_sizes(hosts: &[Merged<'_>], doc: &HostsDoc, hrep: &mut Reporter<'_>) {
    let count = |g: Group| hosts.iter().filter(|m| m.host.is(g)).count();
    let group_pos = |g: Group| doc.group_pos.get(&g).copied().unwrap_or(FILE_START);
    // A group with an unreadable entry is not counted: its size would be a
    // consequence of that error, not a second problem.
    let unreadable = |g: Group| doc.entries.iter().any(|e| e.group == g && e.ip.is_none());
    let etcd = count(Group::Etcd);
    if unreadable(Group::Etcd) {
    } else if etcd == 0 {
        hrep.error_help(
            group_pos(Group::Etcd),
            "etcd",
            "no etcd hosts",
            "list 1, 3 or 5 hosts under `etcd:`",
        );
    } else if etcd % 2 == 0 {
        hrep.error_help(
            group_pos(Group::Etcd),
            "etcd",
            format!("{etcd} etcd hosts: an even count tolerates no more failures than one fewer"),
            "use an odd number of etcd hosts (1, 3, 5, 7)",
        );
    }
    if count(Group::KubeMaster) == 0 && !unreadable(Group::KubeMaster) {
        hrep.error_help(
            group_pos(Group::KubeMaster),
            "kube_master",
            "no master hosts",
            "list at least one host under `kube_master:`",
        );
    }
    if count(Group::Harbor) > 1 {
        hrep.error_help(
            group_pos(Group::Harbor),
            "harbor",
            "more than one harbor host",
            "list one registry host",
        );
    }
    let lb_masters = hosts
        .iter()
        .filter(|m| m.host.is(Group::ExLb) && m.host.lb_role.as_deref() == Some("master"))
        .count();
    if lb_masters > 1 {
        hrep.error_help(
            group_pos(Group::ExLb),
            "ex_lb",
            format!("{lb_masters} hosts have lb_role: master"),
            "one ex_lb host is master, the others backup",
        );
    }
}

/// Pod and service networks: apart from each other and from every host,
/// and large enough for what is carved out of them.
fn networks(
    hosts: &[Merged<'_>],
    doc: &HostsDoc,
    settings: &Settings,
    files: Files<'_>,
    diags: &mut Vec<Diagnostic>,
) {
    let service: Option<IpNet> = settings.text("SERVICE_CIDR").parse().ok();
    let pods: Option<IpNet> = settings.text("CLUSTER_CIDR").parse().ok();
    let mut crep = Reporter {
        file: files.config,
        out: diags,
    };
    if let (Some(s), Some(p)) = (service, pods) {
        pods_apart_from_services(s, p, settings, &mut crep);
    }
    if let Some(s) = service {
        service_network_size(s, settings, &mut crep);
    }
    let mut hrep = Reporter {
        file: files.hosts,
        out: diags,
    };
    for m in hosts {
        host_outside_networks(
            m.host.ip,
            doc,
            [("SERVICE_CIDR", service), ("CLUSTER_CIDR", pods)],
            &mut hrep,
        );
    }
}

fn pods_apart_from_services(s: IpNet, p: IpNet, settings: &Settings, crep: &mut Reporter<'_>) {
    if s.contains(&p.network()) || p.contains(&s.network()) {
        crep.error_help(
            cfg_pos(settings, "CLUSTER_CIDR"),
            "CLUSTER_CIDR",
            format!("{p} overlaps SERVICE_CIDR {s}"),
            "pod and service networks must not overlap each other or the hosts' network",
        );
    }
    let node_len = settings.int("NODE_CIDR_LEN");
    if node_len <= i64::from(p.prefix_len()) {
        crep.error_help(
            cfg_pos(settings, "NODE_CIDR_LEN"),
            "NODE_CIDR_LEN",
            format!(
                "{node_len} is not longer than CLUSTER_CIDR's /{}",
                p.prefix_len()
            ),
            format!("allowed: {} to 30", p.prefix_len() + 1),
        );
    }
}

fn service_network_size(s: IpNet, settings: &Settings, crep: &mut Reporter<'_>) {
    let max_prefix = if s.network().is_ipv4() { 30 } else { 126 };
    if s.prefix_len() > max_prefix || s.hosts().take(2).count() < 2 {
        crep.error_help(
            cfg_pos(settings, "SERVICE_CIDR"),
            "SERVICE_CIDR",
            format!("{s} is too small"),
            "it needs room for the API (.1) and DNS (.2) service IPs; use /24 or larger",
        );
    }
}

/// Reported at the host's first entry: the host is what the operator sees
/// in the wrong place, though the fix is in `config.yml`.
fn host_outside_networks(
    ip: IpAddr,
    doc: &HostsDoc,
    nets: [(&str, Option<IpNet>); 2],
    hrep: &mut Reporter<'_>,
) {
    let (pos, field) = doc
        .entries
        .iter()
        .find(|e| e.ip == Some(ip))
        .map(|e| (e.pos, e.field.clone()))
        .unwrap_or((FILE_START, String::new()));
    for (key, net) in nets {
        let Some(net) = net else { continue };
        if net.contains(&ip) {
            hrep.error_help(
                pos,
                &field,
                format!("host {ip} lies inside {key} {net}"),
                format!("change {key} in config.yml so it does not overlap the hosts' network"),
            );
        }
    }
}

/// Settings whose role is not there yet: accepting them would break a
/// cluster silently (kubelets pointing every pod at a DNS cache nobody
/// runs; calico-node images without BIRD told to speak BGP).
fn roles_not_installed(settings: &Settings, crep: &mut Reporter<'_>) {
    if settings.bool("ENABLE_LOCAL_DNS_CACHE") {
        crep.error_help(
            cfg_pos(settings, "ENABLE_LOCAL_DNS_CACHE"),
            "ENABLE_LOCAL_DNS_CACHE",
            "node-local-dns is not installed by ezctl yet",
            "allowed: false (pods would be given a DNS server at LOCAL_DNS_CACHE that nothing serves)",
        );
    }
}

fn certificates_within_ca(settings: &Settings, crep: &mut Reporter<'_>) {
    let ca_h = parse_duration_hours(settings.text("CA_EXPIRY")).unwrap_or(0);
    let cert_h = parse_duration_hours(settings.text("CERT_EXPIRY")).unwrap_or(0);
    if ca_h > 0 && cert_h > ca_h {
        crep.error_help(
            cfg_pos(settings, "CERT_EXPIRY"),
            "CERT_EXPIRY",
            format!("certificates ({cert_h}h) would outlive the CA ({ca_h}h)"),
            "make CERT_EXPIRY shorter than CA_EXPIRY",
        );
    }
}

/// Directories that destroy, del-node and del-etcd delete as a whole must
/// not hold another directory ezctl uses: deleting one would take the
/// other (CONTAINERD_STORAGE_DIR: /var/lib/etcd on an etcd member).
fn deleted_dirs_hold_nothing_else(settings: &Settings, crep: &mut Reporter<'_>) {
    for (whole, other, pos_key) in nested_dirs(settings) {
        crep.error_help(
            cfg_pos(settings, pos_key),
            pos_key,
            format!(
                "`{}` ({other}) is inside `{}` ({whole}), which ezctl deletes as a whole when a host leaves",
                settings_or_fixed(settings, other),
                settings.text(whole),
            ),
            format!("give {whole} and {other} directories that do not contain each other"),
        );
    }
}

/// ex_lb hosts need a VIP, and it must be free.
fn ex_lb_vip(hosts: &[Merged<'_>], settings: &Settings, crep: &mut Reporter<'_>) {
    let has_ex_lb = hosts.iter().any(|m| m.host.is(Group::ExLb));
    let vip: Option<IpAddr> = settings.text("EX_APISERVER_VIP").parse().ok();
    if has_ex_lb && vip.is_none() {
        crep.error_help(
            cfg_pos(settings, "EX_APISERVER_VIP"),
            "EX_APISERVER_VIP",
            "ex_lb hosts are listed but no VIP is set",
            "set EX_APISERVER_VIP to a free address on the hosts' network",
        );
    }
    if let Some(v) = vip {
        if hosts.iter().any(|m| m.host.ip == v) {
            crep.error_help(
                cfg_pos(settings, "EX_APISERVER_VIP"),
                "EX_APISERVER_VIP",
                format!("{v} is already a host's address"),
                "a VIP must be a free address",
            );
        }
    }
}

/// Two services on one host may not listen on the same port.
fn ports_free_per_host(hosts: &[Merged<'_>], settings: &Settings, crep: &mut Reporter<'_>) {
    for m in hosts {
        let h = &m.host;
        let mut used: Vec<(i64, &str)> = Vec::new();
        let services = [
            (Group::KubeMaster, "SECURE_PORT"),
            (Group::ExLb, "EX_APISERVER_PORT"),
            (Group::Harbor, "HARBOR_TLS_PORT"),
        ];
        for (group, key) in services {
            if !h.is(group) {
                continue;
            }
            let port = settings.int(key);
            if let Some((_, other)) = used.iter().find(|(p, _)| *p == port) {
                crep.error_help(
                    cfg_pos(settings, key),
                    key,
                    format!("port {port} on {} is already taken by {other}", h.ip),
                    format!("give {key} and {other} different ports"),
                );
            } else {
                used.push((port, key));
            }
        }
    }
}

/// Settings naming a directory that a role deletes with everything in it.
const DELETED_DIRS: &[&str] = &[
    "ETCD_DATA_DIR",
    "ETCD_WAL_DIR",
    "CONTAINERD_STORAGE_DIR",
    "KUBELET_ROOT_DIR",
];

/// Every directory ezctl puts something in: the settings, then fixed ones
/// the roles use (named by their path).
const USED_DIRS: &[&str] = &[
    "ETCD_DATA_DIR",
    "ETCD_WAL_DIR",
    "CONTAINERD_STORAGE_DIR",
    "KUBELET_ROOT_DIR",
    "bin_dir",
    "ca_dir",
    "HARBOR_PATH",
    "/etc/kubernetes",
    "/etc/containerd",
    "/etc/cni/net.d",
    "/opt/cni/bin",
    "/var/lib/kube-proxy",
];

fn settings_or_fixed<'a>(settings: &'a Settings, key: &'a str) -> &'a str {
    if key.starts_with('/') {
        key
    } else {
        settings.text(key)
    }
}

/// `(deleted dir setting, other, key to report at)` for every directory
/// inside one that is deleted as a whole. Each pair is reported once.
fn nested_dirs(settings: &Settings) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = Vec::new();
    for whole in DELETED_DIRS {
        let outer = settings.text(whole);
        if outer.is_empty() {
            continue;
        }
        for other in USED_DIRS {
            let inner = settings_or_fixed(settings, other);
            if other == whole || inner.is_empty() {
                continue;
            }
            // Two deleted directories inside each other (equal): report once.
            if DELETED_DIRS.contains(other)
                && crate::syntax::path_within(outer, inner)
                && DELETED_DIRS.iter().position(|k| k == other)
                    < DELETED_DIRS.iter().position(|k| k == whole)
            {
                continue;
            }
            if crate::syntax::path_within(inner, outer) {
                let at = if other.starts_with('/') || settings.pos(other).is_none() {
                    whole
                } else {
                    other
                };
                out.push((*whole, *other, *at));
            }
        }
    }
    out
}
