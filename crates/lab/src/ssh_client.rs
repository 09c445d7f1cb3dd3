//! Talking to machines with the stock OpenSSH client: the lab checks its own
//! machines the way an operator would, and does not depend on ez-ssh (which
//! the lab is used to test).

use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cmd;

/// `ssh` with the lab's key and known_hosts, strict host key checking, no
/// user config, no prompts. Append the remote command with `.arg(..)`.
pub fn command(key: &Path, known_hosts: &Path, ip: Ipv4Addr) -> Command {
    command_with(key, known_hosts, ip, &[])
}

/// [`command`] with more `ssh` options (placed before the destination).
pub fn command_with(key: &Path, known_hosts: &Path, ip: Ipv4Addr, options: &[&str]) -> Command {
    let mut c = Command::new("ssh");
    c.arg("-F")
        .arg("/dev/null")
        .arg("-i")
        .arg(key)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args([
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "ServerAliveInterval=5",
            "-o",
            "ServerAliveCountMax=3",
            "-o",
            "LogLevel=ERROR",
        ])
        .args(options)
        .arg(format!("root@{ip}"));
    c
}

/// OpenSSH 9.2's default key exchange (sntrup761x25519) costs about 0.1 s
/// of CPU on each side per connection, so a thousand readiness probes
/// would keep a 2-core controller busy for minutes; curve25519 costs a
/// tenth of that. Only for the lab's own probes.
const FAST_KEX: &[&str] = &["-o", "KexAlgorithms=curve25519-sha256"];

/// One `known_hosts` line for a machine from its host public key file
/// contents (`ssh-ed25519 AAAA… comment`).
pub fn known_hosts_line(hostname: &str, ip: Ipv4Addr, host_pub: &str) -> Option<String> {
    let mut words = host_pub.split_whitespace();
    let (kind, key) = (words.next()?, words.next()?);
    Some(format!("{hostname},{ip} {kind} {key}"))
}

/// Outcome of one readiness probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `systemctl is-system-running` said running or degraded.
    Ready(String),
    /// Not yet; the text says what was seen.
    NotYet(String),
}

/// Probes a machine once: port 22 open, then over ssh
/// `systemctl is-system-running --wait` (returns when boot is done), bounded
/// by `budget`.
pub fn probe(key: &Path, known_hosts: &Path, ip: Ipv4Addr, budget: Duration) -> Probe {
    let addr = SocketAddr::from((ip, 22));
    if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
        return Probe::NotYet("port 22 closed".into());
    }
    let started = Instant::now();
    let out = cmd::run(
        command(key, known_hosts, ip).arg("systemctl is-system-running --wait"),
        budget.max(Duration::from_secs(2)),
    );
    match out {
        Ok(o) => {
            let state = o.stdout.trim().to_string();
            if state == "running" || state == "degraded" {
                Probe::Ready(state)
            } else if state.is_empty() {
                Probe::NotYet(format!(
                    "ssh: {} (after {:.1} s)",
                    cmd::tail(&o.stderr, 200),
                    started.elapsed().as_secs_f64()
                ))
            } else {
                Probe::NotYet(format!("systemd is {state}"))
            }
        }
        Err(e) => Probe::NotYet(e.to_string()),
    }
}

/// Probes a light host's sshd once: it accepts a connection on port 22 and
/// sends its `SSH-2.0-` banner.
pub fn probe_banner(ip: Ipv4Addr) -> Probe {
    use std::io::Read;
    let addr = SocketAddr::from((ip, 22));
    let mut s = match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
        Ok(s) => s,
        Err(e) => return Probe::NotYet(format!("port 22: {e}")),
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut banner = [0u8; 8];
    match s.read_exact(&mut banner) {
        Ok(()) if &banner == b"SSH-2.0-" => Probe::Ready("banner".into()),
        Ok(()) => Probe::NotYet(format!(
            "port 22 answers {:?}",
            String::from_utf8_lossy(&banner)
        )),
        Err(e) => Probe::NotYet(format!("port 22: no banner: {e}")),
    }
}

/// Probes a light host once: port 22 open, then over ssh `hostname`, which
/// must print `hostname` (the host answers as itself, as root, with the
/// lab's key and its recorded host key). No systemd to wait for.
pub fn probe_hostname(
    key: &Path,
    known_hosts: &Path,
    ip: Ipv4Addr,
    hostname: &str,
    budget: Duration,
) -> Probe {
    let addr = SocketAddr::from((ip, 22));
    if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err() {
        return Probe::NotYet("port 22 closed".into());
    }
    match cmd::run(
        command_with(key, known_hosts, ip, FAST_KEX).arg("hostname"),
        budget.clamp(Duration::from_secs(2), Duration::from_secs(30)),
    ) {
        Ok(o) if o.status.success() && o.stdout.trim() == hostname => {
            Probe::Ready(hostname.to_string())
        }
        Ok(o) => Probe::NotYet(format!(
            "ssh hostname: {:?} {}",
            o.stdout.trim(),
            cmd::tail(&o.stderr, 200)
        )),
        Err(e) => Probe::NotYet(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_line_drops_the_comment() {
        let l = known_hosts_line(
            "lab-1",
            Ipv4Addr::new(10, 231, 1, 11),
            "ssh-ed25519 AAAAC3Nza root@lab-1\n",
        );
        assert_eq!(
            l.as_deref(),
            Some("lab-1,10.231.1.11 ssh-ed25519 AAAAC3Nza")
        );
        assert_eq!(known_hosts_line("x", Ipv4Addr::LOCALHOST, ""), None);
    }

    #[test]
    fn ssh_command_is_strict() {
        let c = command(
            Path::new("/k"),
            Path::new("/kh"),
            Ipv4Addr::new(10, 231, 1, 11),
        );
        let args: Vec<String> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(args.contains(&"StrictHostKeyChecking=yes".to_string()));
        assert!(args.contains(&"UserKnownHostsFile=/kh".to_string()));
        assert_eq!(args.last().map(String::as_str), Some("root@10.231.1.11"));
        let with = command_with(
            Path::new("/k"),
            Path::new("/kh"),
            Ipv4Addr::new(10, 231, 1, 11),
            FAST_KEX,
        );
        let args: Vec<String> = with
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let n = args.len();
        assert_eq!(
            args[n - 3..],
            ["-o", "KexAlgorithms=curve25519-sha256", "root@10.231.1.11"]
        );
    }

    #[test]
    fn probe_of_a_closed_port_is_not_ready() {
        // 127.0.0.1:22 is not served on the build machines; if it is, the
        // key below does not exist, so ssh fails: never "Ready".
        let p = probe(
            Path::new("/nonexistent/key"),
            Path::new("/dev/null"),
            Ipv4Addr::LOCALHOST,
            Duration::from_secs(3),
        );
        assert!(matches!(p, Probe::NotYet(_)), "{p:?}");
    }
}
