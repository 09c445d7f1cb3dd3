//! Finding the machine an `ezlab` verb names, across every lab that is up:
//! by IP or hostname (unique across labs: each lab has its own /24 and its
//! name in its hostnames), or by number within a lab. `--name` narrows the
//! search to one lab; without it a name that fits machines of several labs
//! (a number, with two labs up) is refused, listing them.

use std::path::Path;

use crate::error::{LabError, Result};
use crate::lab::{list_states, Host, Lab};

/// The lab and machine `host` names: in lab `name` when given, else in
/// whichever lab has it.
pub fn find_machine(state_root: &Path, host: &str, name: Option<&str>) -> Result<(Lab, Host)> {
    if let Some(name) = name {
        let lab = Lab::open(name, state_root)?;
        let h = lab.find(host)?;
        return Ok((lab, h));
    }
    let labs = list_states(state_root);
    // (lab, hostname, ip) of every machine that fits.
    let exact: Vec<(String, String, String)> = labs
        .iter()
        .flat_map(|l| {
            l.machines
                .iter()
                .filter(|m| m.hostname == host || m.ip.to_string() == host)
                .map(|m| (l.name.clone(), m.hostname.clone(), m.ip.to_string()))
        })
        .collect();
    let candidates = if exact.is_empty() {
        // A number is the n-th machine of a lab, 1-based.
        match host.parse::<usize>() {
            Ok(n) if n >= 1 => labs
                .iter()
                .filter_map(|l| {
                    l.machines
                        .get(n - 1)
                        .map(|m| (l.name.clone(), m.hostname.clone(), m.ip.to_string()))
                })
                .collect(),
            _ => Vec::new(),
        }
    } else {
        exact
    };
    match candidates.as_slice() {
        [] => Err(LabError::NoMachineInAnyLab {
            host: host.to_string(),
            labs: labs.iter().map(|l| l.name.clone()).collect(),
        }),
        [(lab, hostname, _)] => {
            let lab = Lab::open(lab, state_root)?;
            let h = lab.find(hostname)?;
            Ok((lab, h))
        }
        many => Err(LabError::AmbiguousMachine {
            host: host.to_string(),
            candidates: many
                .iter()
                .map(|(lab, hostname, ip)| format!("{lab}: {hostname} {ip}"))
                .collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::state::{save, LabState, MachineState};

    /// A state file for lab `name` on 10.231.`subnet`.0/24 with `n` machines.
    fn lab(root: &Path, name: &str, subnet: u8, n: usize) {
        let machines = (0..n)
            .map(|i| MachineState {
                index: i,
                hostname: format!("{name}-{}", i + 1),
                ip: Ipv4Addr::new(10, 231, subnet, 11 + i as u8),
                netns: format!("ezlab-{name}.{i}"),
                veth: format!("ez{subnet}h{i}"),
                dir: root.join(name).join(i.to_string()),
                log: root.join(name).join(format!("{i}.log")),
                roles: vec![],
                launcher_pid: None,
            })
            .collect();
        let st = LabState {
            name: name.to_string(),
            subnet,
            bridge: "ezlab0".into(),
            controller_ip: Ipv4Addr::new(10, 231, subnet, 1),
            rootfs: "/r".into(),
            cluster_dir: None,
            complete: true,
            created: 1,
            machines,
            light: None,
        };
        std::fs::create_dir_all(root.join(name)).unwrap();
        save(&root.join(name).join("state.json"), &st).unwrap();
    }

    fn two_labs() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        lab(d.path(), "demo", 2, 2);
        lab(d.path(), "other", 3, 1);
        d
    }

    #[test]
    fn an_ip_or_a_hostname_is_found_in_whichever_lab_has_it() {
        let d = two_labs();
        let (l, h) = find_machine(d.path(), "10.231.3.11", None).unwrap();
        assert_eq!(
            (l.name().as_str(), h.hostname.as_str()),
            ("other", "other-1")
        );
        let (l, h) = find_machine(d.path(), "demo-2", None).unwrap();
        assert_eq!((l.name().as_str(), h.index), ("demo", 1));
        // A number only one lab has.
        let (l, h) = find_machine(d.path(), "2", None).unwrap();
        assert_eq!((l.name().as_str(), h.hostname.as_str()), ("demo", "demo-2"));
    }

    #[test]
    fn a_name_that_fits_several_labs_lists_them_and_name_narrows_it() {
        let d = two_labs();
        let err = find_machine(d.path(), "1", None).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, LabError::AmbiguousMachine { .. }), "{err:?}");
        for want in [
            "demo: demo-1 10.231.2.11",
            "other: other-1 10.231.3.11",
            "--name",
        ] {
            assert!(text.contains(want), "no `{want}` in: {text}");
        }
        let (l, h) = find_machine(d.path(), "1", Some("other")).unwrap();
        assert_eq!(
            (l.name().as_str(), h.hostname.as_str()),
            ("other", "other-1")
        );
        // --name narrows: the other lab's machine is not found there.
        let err = find_machine(d.path(), "10.231.3.11", Some("demo")).unwrap_err();
        assert!(matches!(err, LabError::NoSuchMachine { .. }), "{err:?}");
    }

    #[test]
    fn an_unknown_machine_names_the_labs_looked_in() {
        let d = two_labs();
        let text = find_machine(d.path(), "10.231.9.11", None)
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("10.231.9.11") && text.contains("demo, other"),
            "{text}"
        );
        let empty = tempfile::tempdir().unwrap();
        let text = find_machine(empty.path(), "1", None)
            .unwrap_err()
            .to_string();
        assert!(text.contains("no lab is up"), "{text}");
        // Before this lookup, `ezlab ssh` without --name looked only in
        // the lab named `lab`.
        let text = find_machine(d.path(), "demo-1", Some("lab"))
            .unwrap_err()
            .to_string();
        assert!(text.contains("no lab named lab"), "{text}");
    }
}
