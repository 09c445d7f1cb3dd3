//! Values computed once from hosts and settings that passed the rules, so
//! every role and command reads the same ones.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::cluster::{socket, Derived, Host};
use crate::hosts::Group;
use crate::settings::{parse_duration_hours, parse_port_range, Settings};

/// `None` only where the rules have already reported why (an unparsable
/// SERVICE_CIDR, no master): callers derive after the rules passed.
pub(super) fn derive(hosts: &[Host], settings: &Settings) -> Option<Derived> {
    let service: IpNet = settings.text("SERVICE_CIDR").parse().ok()?;
    let mut svc_hosts = service.hosts();
    let api_service_ip = svc_hosts.next()?;
    let dns_service_ip = svc_hosts.next()?;
    let ex_lb_vip = ex_lb_vip(hosts, settings);
    Some(Derived {
        api_service_ip,
        dns_service_ip,
        etcd_initial_cluster: etcd_initial_cluster(hosts),
        etcd_endpoints: etcd_endpoints(hosts),
        node_port_range: parse_port_range(settings.text("NODE_PORT_RANGE"))?,
        ca_expiry_hours: parse_duration_hours(settings.text("CA_EXPIRY")).unwrap_or(0),
        cert_expiry_hours: parse_duration_hours(settings.text("CERT_EXPIRY")).unwrap_or(0),
        ex_lb_vip,
        api_endpoint: api_endpoint(hosts, settings, ex_lb_vip)?,
    })
}

fn etcd_hosts(hosts: &[Host]) -> impl Iterator<Item = &Host> {
    hosts.iter().filter(|h| h.is(Group::Etcd))
}

/// `etcd-10.0.0.1=https://10.0.0.1:2380,...`
fn etcd_initial_cluster(hosts: &[Host]) -> String {
    etcd_hosts(hosts)
        .map(|h| format!("{}=https://{}", h.etcd_name(), socket(h.ip, 2380)))
        .collect::<Vec<_>>()
        .join(",")
}

/// `https://10.0.0.1:2379,...`
fn etcd_endpoints(hosts: &[Host]) -> String {
    etcd_hosts(hosts)
        .map(|h| format!("https://{}", socket(h.ip, 2379)))
        .collect::<Vec<_>>()
        .join(",")
}

/// The VIP, only when ex_lb hosts exist to hold it.
fn ex_lb_vip(hosts: &[Host], settings: &Settings) -> Option<IpAddr> {
    let has_ex_lb = hosts.iter().any(|h| h.is(Group::ExLb));
    let vip: Option<IpAddr> = settings.text("EX_APISERVER_VIP").parse().ok();
    if has_ex_lb {
        vip
    } else {
        None
    }
}

/// The ex-lb VIP if any, else the first master.
fn api_endpoint(hosts: &[Host], settings: &Settings, ex_lb_vip: Option<IpAddr>) -> Option<String> {
    let at = match ex_lb_vip {
        Some(v) => socket(v, settings.int("EX_APISERVER_PORT") as u16),
        None => {
            let first = hosts.iter().find(|h| h.is(Group::KubeMaster))?;
            socket(first.ip, settings.int("SECURE_PORT") as u16)
        }
    };
    Some(format!("https://{at}"))
}
