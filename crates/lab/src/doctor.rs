//! Prerequisites of the lab on the controller, and fixing them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::cmd;
use crate::error::{LabError, Result};

/// A tool the lab runs, and the Debian package that ships it.
const TOOLS: &[(&str, &str)] = &[
    ("systemd-nspawn", "systemd-container"),
    ("debootstrap", "debootstrap"),
    ("ip", "iproute2"),
    ("ssh-keygen", "openssh-client"),
    ("ssh", "openssh-client"),
];

/// A kernel setting of the VM the machines need, and how it must compare.
struct HostSysctl {
    path: &'static str,
    want: u64,
    /// `true`: at least `want` (a limit); `false`: exactly `want`.
    at_least: bool,
}

/// Kernel settings of the VM the machines need. Inside a machine
/// `/proc/sys` (but `net`) is the VM's and read-only, so they are set here:
/// - inotify limits: past ~27 machines systemd fails with "Too many open
///   files" at the defaults;
/// - what a real kubelet insists on at start (`setupKernelTunables` in its
///   container manager): it writes them when they differ and stops when it
///   cannot. kind's nodes change the same settings of their Docker host.
const HOST_SYSCTLS: &[HostSysctl] = &[
    HostSysctl {
        path: "/proc/sys/fs/inotify/max_user_instances",
        want: 8192,
        at_least: true,
    },
    HostSysctl {
        path: "/proc/sys/fs/inotify/max_user_watches",
        want: 1_048_576,
        at_least: true,
    },
    HostSysctl {
        path: "/proc/sys/vm/overcommit_memory",
        want: 1,
        at_least: false,
    },
    HostSysctl {
        path: "/proc/sys/vm/panic_on_oom",
        want: 0,
        at_least: false,
    },
    HostSysctl {
        path: "/proc/sys/kernel/panic",
        want: 10,
        at_least: false,
    },
    HostSysctl {
        path: "/proc/sys/kernel/panic_on_oops",
        want: 1,
        at_least: false,
    },
    HostSysctl {
        path: "/proc/sys/kernel/keys/root_maxkeys",
        want: 1_000_000,
        at_least: true,
    },
    HostSysctl {
        path: "/proc/sys/kernel/keys/root_maxbytes",
        want: 25_000_000,
        at_least: true,
    },
];

/// What a light lab adds (`ezlab up --light`): the controller has an ARP
/// entry per host on the lab's bridges, and the kernel's defaults
/// (128/512/1024) start dropping neighbours before a thousand hosts,
/// which shows up as connections that stall on ARP.
const LIGHT_SYSCTLS: &[HostSysctl] = &[
    HostSysctl {
        path: "/proc/sys/net/ipv4/neigh/default/gc_thresh1",
        want: 4096,
        at_least: true,
    },
    HostSysctl {
        path: "/proc/sys/net/ipv4/neigh/default/gc_thresh2",
        want: 8192,
        at_least: true,
    },
    HostSysctl {
        path: "/proc/sys/net/ipv4/neigh/default/gc_thresh3",
        want: 16384,
        at_least: true,
    },
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub what: String,
    /// Debian package that fixes it, when one does.
    pub package: Option<&'static str>,
}

#[derive(Debug, Default)]
pub struct Report {
    pub problems: Vec<Problem>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn packages(&self) -> Vec<&'static str> {
        let mut p: Vec<&'static str> = self.problems.iter().filter_map(|p| p.package).collect();
        p.sort_unstable();
        p.dedup();
        p
    }

    /// One line per problem, with the package to install when there is one.
    pub fn describe(&self) -> String {
        self.problems
            .iter()
            .map(|p| match p.package {
                Some(pkg) => format!("  - {} (apt-get install {pkg})", p.what),
                None => format!("  - {}", p.what),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The error to return when the lab cannot start here.
    pub fn into_error(self) -> Option<LabError> {
        if self.ok() {
            None
        } else if self.problems.iter().any(|p| p.what == NOT_ROOT) {
            Some(LabError::NotRoot)
        } else {
            Some(LabError::Missing(self.describe()))
        }
    }
}

const NOT_ROOT: &str = "not running as root";

/// Whether processes here may lower their OOM score (CAP_SYS_RESOURCE in
/// the bounding set). Some sandboxes drop it for every process; then a
/// container runtime asked for a negative score fails to start the pod.
pub fn can_lower_oom_score() -> bool {
    const CAP_SYS_RESOURCE: u32 = 24;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapBnd:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .is_some_and(|bnd| bnd & (1 << CAP_SYS_RESOURCE) != 0)
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Finds an executable in PATH or the sbin directories (which a non-login
/// root shell may lack in PATH).
pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .map(PathBuf::from)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(tool))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn has_overlayfs() -> bool {
    std::fs::read_to_string("/proc/filesystems")
        .is_ok_and(|t| t.lines().any(|l| l.trim_end().ends_with("\toverlay")))
}

/// Checks everything; never changes anything except loading the overlay
/// module when the kernel has it as a module.
pub fn check() -> Report {
    let mut problems = Vec::new();
    if !is_root() {
        problems.push(Problem {
            what: NOT_ROOT.into(),
            package: None,
        });
    }
    for (tool, package) in TOOLS {
        if which(tool).is_none() {
            problems.push(Problem {
                what: format!("`{tool}` not found"),
                package: Some(package),
            });
        }
    }
    if !has_overlayfs() {
        let _ = cmd::run(
            Command::new("modprobe").arg("overlay"),
            Duration::from_secs(10),
        );
        if !has_overlayfs() {
            problems.push(Problem {
                what:
                    "kernel has no overlayfs (not in /proc/filesystems, `modprobe overlay` failed)"
                        .into(),
                package: None,
            });
        }
    }
    if crate::cgroup::hierarchies().is_empty() {
        problems.push(Problem {
            what:
                "no usable cgroup hierarchy under /sys/fs/cgroup (need systemd/unified or cgroup2)"
                    .into(),
            package: None,
        });
    }
    Report { problems }
}

/// `apt-get update` then `apt-get install -y` the packages the report names.
pub fn install(report: &Report) -> Result<()> {
    let pkgs = report.packages();
    if pkgs.is_empty() {
        return Ok(());
    }
    let t = Duration::from_secs(900);
    cmd::run_ok(Command::new("apt-get").arg("update"), t)?;
    cmd::run_ok(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&pkgs)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        t,
    )?;
    Ok(())
}

/// Sets the VM's kernel settings the machines need (limits are only ever
/// raised). Returns the settings it changed, as `name old -> new`.
pub fn apply_host_sysctls() -> Result<Vec<String>> {
    apply_sysctls(HOST_SYSCTLS)
}

/// Raises the limits a light lab needs ([`LIGHT_SYSCTLS`]); returns what
/// changed, as [`apply_host_sysctls`] does.
pub fn apply_light_sysctls() -> Result<Vec<String>> {
    apply_sysctls(LIGHT_SYSCTLS)
}

fn apply_sysctls(list: &[HostSysctl]) -> Result<Vec<String>> {
    let mut changed = Vec::new();
    for s in list {
        let p = Path::new(s.path);
        if !p.exists() {
            continue; // e.g. no keyrings in this kernel: nothing to satisfy
        }
        let now: u64 = std::fs::read_to_string(p)
            .map_err(|e| LabError::io(p, e))?
            .trim()
            .parse()
            .unwrap_or(0);
        let ok = if s.at_least {
            now >= s.want
        } else {
            now == s.want
        };
        if !ok {
            std::fs::write(p, s.want.to_string()).map_err(|e| LabError::io(p, e))?;
            changed.push(format!(
                "{} {now} -> {}",
                s.path.trim_start_matches("/proc/sys/").replace('/', "."),
                s.want
            ));
        }
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_finds_sh_and_not_nonsense() {
        assert!(which("sh").is_some());
        assert!(which("no-such-tool-ezlab").is_none());
    }

    #[test]
    fn report_names_packages_once() {
        let r = Report {
            problems: vec![
                Problem {
                    what: "`ssh` not found".into(),
                    package: Some("openssh-client"),
                },
                Problem {
                    what: "`ssh-keygen` not found".into(),
                    package: Some("openssh-client"),
                },
                Problem {
                    what: "no overlayfs".into(),
                    package: None,
                },
            ],
        };
        assert_eq!(r.packages(), vec!["openssh-client"]);
        assert!(r.describe().contains("apt-get install openssh-client"));
        assert!(matches!(r.into_error(), Some(LabError::Missing(_))));
        assert!(Report::default().into_error().is_none());
    }

    #[test]
    fn not_root_is_its_own_error() {
        let r = Report {
            problems: vec![Problem {
                what: NOT_ROOT.into(),
                package: None,
            }],
        };
        assert!(matches!(r.into_error(), Some(LabError::NotRoot)));
    }
}
