//! Service ClusterIP and NodePort allocation. Each allocated value is a key
//! created atomically in etcd, so several apiservers never hand out the
//! same address.

use super::status::ApiError;
use crate::etcd::{Etcd, Write};
use ipnet::IpNet;
use std::collections::HashSet;
use std::net::IpAddr;

const IP_PREFIX: &str = "/registry/ranges/serviceips/";
const PORT_PREFIX: &str = "/registry/ranges/servicenodeports/";
/// Default --service-node-port-range.
pub const NODE_PORTS: (u16, u16) = (30000, 32767);

/// The first usable address of the range: the `kubernetes` service's IP.
pub fn first_ip(range: &IpNet) -> Option<IpAddr> {
    range.hosts().next()
}

async fn taken(etcd: &Etcd, prefix: &str) -> Result<HashSet<String>, ApiError> {
    let (kvs, _) = etcd.list(prefix).await?;
    Ok(kvs
        .into_iter()
        .map(|kv| kv.key[prefix.len()..].to_string())
        .collect())
}

/// Reserves a specific IP; false when already taken.
pub async fn reserve_ip(etcd: &Etcd, range: &IpNet, ip: IpAddr) -> Result<bool, ApiError> {
    if !range.contains(&ip) {
        return Err(ApiError::new(
            422,
            "Invalid",
            format!("spec.clusterIPs: Invalid value: \"{ip}\": provided IP is not in the valid range. The range of valid IPs is {range}"),
        ));
    }
    Ok(matches!(
        etcd.create(&format!("{IP_PREFIX}{ip}"), b"1").await?,
        Write::Done(_)
    ))
}

/// Allocates the lowest free IP of the range (the first one is left for
/// the `kubernetes` service, which reserves it explicitly).
pub async fn allocate_ip(etcd: &Etcd, range: &IpNet) -> Result<IpAddr, ApiError> {
    for _ in 0..10 {
        let used = taken(etcd, IP_PREFIX).await?;
        let Some(ip) = range
            .hosts()
            .skip(1)
            .find(|ip| !used.contains(&ip.to_string()))
        else {
            return Err(ApiError::internal("range is full"));
        };
        if reserve_ip(etcd, range, ip).await? {
            return Ok(ip);
        }
    }
    Err(ApiError::internal("could not allocate a cluster IP"))
}

/// Releases an IP.
pub async fn release_ip(etcd: &Etcd, ip: &str) -> Result<(), ApiError> {
    release(etcd, &format!("{IP_PREFIX}{ip}")).await
}

async fn release(etcd: &Etcd, key: &str) -> Result<(), ApiError> {
    if let Some(kv) = etcd.get(key).await? {
        etcd.delete(key, kv.mod_revision).await?;
    }
    Ok(())
}

/// Reserves a specific node port; false when taken.
pub async fn reserve_port(etcd: &Etcd, port: u16) -> Result<bool, ApiError> {
    Ok(matches!(
        etcd.create(&format!("{PORT_PREFIX}{port}"), b"1").await?,
        Write::Done(_)
    ))
}

/// Allocates a free node port.
pub async fn allocate_port(etcd: &Etcd) -> Result<u16, ApiError> {
    for _ in 0..10 {
        let used = taken(etcd, PORT_PREFIX).await?;
        let Some(p) = (NODE_PORTS.0..=NODE_PORTS.1).find(|p| !used.contains(&p.to_string())) else {
            return Err(ApiError::internal("node port range is full"));
        };
        if reserve_port(etcd, p).await? {
            return Ok(p);
        }
    }
    Err(ApiError::internal("could not allocate a node port"))
}

/// Releases a node port.
pub async fn release_port(etcd: &Etcd, port: u16) -> Result<(), ApiError> {
    release(etcd, &format!("{PORT_PREFIX}{port}")).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_ip_is_dot_one() {
        let r: IpNet = "10.68.0.0/16".parse().unwrap();
        assert_eq!(first_ip(&r).unwrap().to_string(), "10.68.0.1");
        assert_eq!(r.hosts().nth(1).unwrap().to_string(), "10.68.0.2");
    }
}
