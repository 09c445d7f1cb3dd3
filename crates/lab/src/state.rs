//! `/var/lib/ezlab/<lab>/state.json`: what a lab is made of. Written before
//! each thing is created, so `down` can undo a crashed `up`.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::fsutil;
use crate::layout::Role;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabState {
    pub name: String,
    /// X of 10.231.X.0/24.
    pub subnet: u8,
    pub bridge: String,
    pub controller_ip: Ipv4Addr,
    pub rootfs: PathBuf,
    /// HOME/clusters/<name> written for this lab, once written.
    pub cluster_dir: Option<PathBuf>,
    /// False until every machine answered: a lab left incomplete is rebuilt.
    pub complete: bool,
    /// Seconds since the epoch when `up` started.
    pub created: u64,
    pub machines: Vec<MachineState>,
    /// Set for a lab of light hosts (`ezlab up N --light`, see `light`);
    /// absent for a lab of full machines, and in state files written
    /// before light hosts existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub light: Option<LightState>,
}

/// The network of a light lab: an aligned block of `subnets` /24s of
/// 10.232.0.0/16 starting at 10.232.`base`.0, as one layer-2 segment over
/// `bridges` (each with at most `hosts_per_bridge` hosts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightState {
    pub base: u8,
    pub subnets: usize,
    pub hosts_per_bridge: usize,
    pub bridges: Vec<String>,
}

impl LabState {
    /// The lab's address range, e.g. `10.231.4.0/24` or `10.232.4.0/22`.
    pub fn cidr(&self) -> String {
        match &self.light {
            Some(l) => crate::light::cidr(l.base, l.subnets),
            None => crate::net::cidr(self.subnet),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MachineState {
    pub index: usize,
    pub hostname: String,
    pub ip: Ipv4Addr,
    pub netns: String,
    pub veth: String,
    /// Per-machine directory: up/, wk/, root/ (overlay mount), containerd/.
    pub dir: PathBuf,
    pub log: PathBuf,
    pub roles: Vec<Role>,
    /// The `sh` launcher that restarts nspawn on reboot (exit 133).
    pub launcher_pid: Option<i32>,
}

impl MachineState {
    pub fn root(&self) -> PathBuf {
        self.dir.join("root")
    }
    pub fn launcher_script(&self) -> PathBuf {
        self.dir.join("launch.sh")
    }
    pub fn nspawn_pid_file(&self) -> PathBuf {
        self.dir.join("nspawn.pid")
    }
    pub fn host_key_pub(&self) -> PathBuf {
        self.dir.join("up/etc/ssh/ssh_host_ed25519_key.pub")
    }
}

pub fn load(path: &Path) -> Result<Option<LabState>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(LabError::io(path, e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| LabError::State {
            path: path.to_path_buf(),
            source,
        })
}

pub fn save(path: &Path, state: &LabState) -> Result<()> {
    let text = serde_json::to_vec_pretty(state).map_err(|source| LabError::State {
        path: path.to_path_buf(),
        source,
    })?;
    fsutil::write_file(path, &text, 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_missing_is_none() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state.json");
        assert!(load(&p).unwrap().is_none());
        let s = LabState {
            name: "x".into(),
            subnet: 3,
            bridge: "ezlab0".into(),
            controller_ip: Ipv4Addr::new(10, 231, 3, 1),
            rootfs: "/r".into(),
            cluster_dir: None,
            complete: false,
            created: 1,
            machines: vec![MachineState {
                index: 0,
                hostname: "x-1".into(),
                ip: Ipv4Addr::new(10, 231, 3, 11),
                netns: "ezlab-x.0".into(),
                veth: "ez3h0".into(),
                dir: "/m".into(),
                log: "/m.log".into(),
                roles: vec![Role::Etcd],
                launcher_pid: Some(42),
            }],
            light: None,
        };
        save(&p, &s).unwrap();
        let back = load(&p).unwrap().unwrap();
        assert_eq!(back.machines[0].launcher_pid, Some(42));
        assert_eq!(back.machines[0].roles, vec![Role::Etcd]);
        assert!(back.light.is_none());
        assert_eq!(back.cidr(), "10.231.3.0/24");
        // A light lab's network survives the round trip; a full lab's state
        // file does not mention it at all (older readers see nothing new).
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(!text.contains("light"), "{text}");
        let mut l = s.clone();
        l.light = Some(LightState {
            base: 8,
            subnets: 4,
            hosts_per_bridge: 250,
            bridges: vec!["ezl8b0".into(), "ezl8b1".into()],
        });
        save(&p, &l).unwrap();
        let back = load(&p).unwrap().unwrap();
        assert_eq!(back.light, l.light);
        assert_eq!(back.cidr(), "10.232.8.0/22");
        std::fs::write(&p, "{").unwrap();
        assert!(matches!(load(&p), Err(LabError::State { .. })));
    }
}
