//! The syntax of every value the inventory hands to roles.
//!
//! ezctl runs as root, and inventory values end up in root shell commands,
//! systemd units, TOML and YAML files, and manifests applied as
//! cluster-admin. Each value is checked against the rule of the place it
//! ends up, so that no accepted value can change the structure of a command
//! or a document (the engine also quotes what reaches a shell, see the
//! `quote` filter; this is the other half). The rules are deliberately
//! narrower than what each consumer would parse: a value that needs a
//! quote, a space, a `$` or a newline is refused here, with what is allowed.

use std::net::IpAddr;

use crate::cluster::valid_dns_subdomain;

/// Kubernetes label name: at most 63 of `[A-Za-z0-9-_.]`, starting and
/// ending alphanumeric. Also the syntax of a non-empty label value.
fn label_name(s: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    !s.is_empty()
        && s.len() <= 63
        && s.chars().all(ok_char)
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// A Kubernetes label key: an optional prefix (a lowercase DNS subdomain of
/// at most 253 characters) and `/`, then a label name.
pub fn label_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, name)) => {
            prefix.len() <= 253 && valid_dns_subdomain(prefix) && label_name(name)
        }
        None => label_name(key),
    }
}

/// A Kubernetes label value: empty, or a label name.
pub fn label_value(value: &str) -> bool {
    value.is_empty() || label_name(value)
}

pub const LABEL_KEY_ALLOWED: &str = "an optional lowercase DNS prefix and `/`, then up to 63 of [A-Za-z0-9-_.] starting and ending with a letter or digit (Kubernetes label syntax)";
pub const LABEL_VALUE_ALLOWED: &str =
    "empty, or up to 63 of [A-Za-z0-9-_.] starting and ending with a letter or digit (Kubernetes label syntax)";

/// Directories of the operating system that no setting may name: ezctl
/// creates, empties or deletes the directories it is given (`destroy`,
/// `del-node`), and writes binaries by name into `bin_dir`.
pub const SYSTEM_DIRS: &[&str] = &[
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/lib64",
    "/usr/libexec",
    "/usr/local",
    "/usr/sbin",
    "/usr/share",
    "/usr/src",
    "/var",
    "/var/backups",
    "/var/cache",
    "/var/lib",
    "/var/lib/apt",
    "/var/lib/dnf",
    "/var/lib/docker",
    "/var/lib/dpkg",
    "/var/lib/rpm",
    "/var/lib/systemd",
    "/var/lib/yum",
    "/var/local",
    "/var/log",
    "/var/mail",
    "/var/opt",
    "/var/run",
    "/var/spool",
    "/var/tmp",
];

pub const PATH_ALLOWED: &str = "an absolute path of [A-Za-z0-9._+-] names separated by single `/`, without `.` or `..`, that is not `/` or a system directory such as /var/lib or /usr/bin";

/// Why `path` cannot be a directory setting, or `None` when it can. A
/// trailing `/` is allowed (and dropped by the caller).
pub fn path_problem(path: &str) -> Option<String> {
    let Some(rest) = path.strip_prefix('/') else {
        return Some("is not absolute".into());
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Some("is the root directory".into());
    }
    if path.len() > 255 {
        return Some("is longer than 255 characters".into());
    }
    for part in rest.split('/') {
        match part {
            "" => return Some("has an empty name (`//`)".into()),
            "." | ".." => return Some(format!("has a `{part}` component")),
            _ => {}
        }
        if let Some(c) = part
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-')))
        {
            return Some(format!("contains {}", describe_char(c)));
        }
    }
    let normal = format!("/{rest}");
    if SYSTEM_DIRS.contains(&normal.as_str()) {
        return Some("is a system directory".into());
    }
    None
}

/// `true` when `inner` is `outer` or below it (both normalised, absolute).
pub fn path_within(inner: &str, outer: &str) -> bool {
    inner == outer
        || inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '\t' => "a tab".into(),
        '\n' => "a line break".into(),
        c if c.is_control() => format!("the control character U+{:04X}", u32::from(c)),
        c => format!("`{c}`"),
    }
}

/// Would a YAML 1.1 reader (Kubernetes' sigs.k8s.io/yaml, most Go
/// programs) read `s`, written as a plain scalar, as this string? Not for
/// `true`, `no`, `null`, `123`, `1e5`, `0x1f` or a date: a node named `true`
/// in `hostnameOverride: true` is a boolean, and the file no longer loads.
pub fn yaml_plain_is_string(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let word = matches!(
        lower.as_str(),
        "" | "~" | "null" | "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    );
    let digits = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_digit() || c == '_');
    let unsigned = lower.trim_start_matches(['+', '-']);
    let number = {
        let (mantissa, exp) = match unsigned.split_once('e') {
            Some((m, e)) => (m, Some(e.trim_start_matches(['+', '-']))),
            None => (unsigned, None),
        };
        let mantissa_ok = match mantissa.split_once('.') {
            Some((a, b)) => {
                (digits(a) || a.is_empty())
                    && (digits(b) || b.is_empty())
                    && !(a.is_empty() && b.is_empty())
            }
            None => digits(mantissa),
        };
        (mantissa_ok && exp.is_none_or(digits))
            || ["0x", "0o", "0b"].iter().any(|p| {
                unsigned.strip_prefix(p).is_some_and(|r| {
                    !r.is_empty() && r.chars().all(|c| c.is_ascii_hexdigit() || c == '_')
                })
            })
    };
    // YAML 1.1 timestamps: 2001-12-14 (longer forms need a `:`).
    let date = {
        let parts: Vec<&str> = s.split('-').collect();
        let num = |p: &str, n: std::ops::RangeInclusive<usize>| {
            n.contains(&p.len()) && p.chars().all(|c| c.is_ascii_digit())
        };
        parts.len() == 3 && num(parts[0], 4..=4) && num(parts[1], 1..=2) && num(parts[2], 1..=2)
    };
    !(word || number || date)
}

pub const YAML_STRING_ALLOWED: &str =
    "a name a YAML reader takes as text: not true/false/yes/no/on/off/y/n/null, a number or a date";

/// A plain name (cluster and context names): 1 to 63 of `[A-Za-z0-9._-]`,
/// starting with a letter or digit.
pub fn name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

pub const NAME_ALLOWED: &str =
    "1 to 63 of [A-Za-z0-9._-], starting with a letter or digit, e.g. cluster1";

/// A version, which is also an image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn version(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub const VERSION_ALLOWED: &str =
    "a version (image tag syntax): up to 128 of [A-Za-z0-9_.-], not starting with `.` or `-`, e.g. v3.26.4";

/// One host part of an image reference or registry: a DNS-like name with
/// letters of either case (registries are case-insensitive), and a port.
fn registry_host(s: &str) -> bool {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    };
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.len() <= 63
            && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    let host_ok = host.parse::<std::net::Ipv4Addr>().is_ok()
        || (host.len() <= 253 && host.split('.').all(component_ok));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|n| n > 0));
    host_ok && port_ok
}

/// One path component of an image name: lowercase alphanumerics joined by
/// `.`, `_`, `__` or runs of `-`.
fn image_component(s: &str) -> bool {
    if s.is_empty() || s.len() > 128 {
        return false;
    }
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    let bytes: Vec<char> = s.chars().collect();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if alnum(c) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__`, or one or more `-`.
        let start = i;
        match c {
            '.' => i += 1,
            '_' => {
                i += 1;
                if bytes.get(i) == Some(&'_') {
                    i += 1;
                }
            }
            '-' => {
                while bytes.get(i) == Some(&'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !bytes.get(i).copied().is_some_and(alnum) {
            return false;
        }
    }
    true
}

/// `host[:port]` with optional `/path` components: where images are pulled
/// from (e.g. `quay.io`, `reg.local:5000/mirror`).
pub fn image_registry(s: &str) -> bool {
    let mut parts = s.split('/');
    let Some(host) = parts.next() else {
        return false;
    };
    s.len() <= 255 && registry_host(host) && parts.all(image_component)
}

pub const IMAGE_REGISTRY_ALLOWED: &str =
    "a registry host[:port], optionally with a path, e.g. quay.io or reg.local:5000/mirror";

/// An image reference: `[registry/]path[:tag][@algorithm:hex]`, the
/// grammar of container image names.
pub fn image_reference(s: &str) -> bool {
    if s.is_empty() || s.len() > 512 {
        return false;
    }
    let (rest, digest) = match s.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (s, None),
    };
    if let Some(d) = digest {
        let Some((alg, hex)) = d.split_once(':') else {
            return false;
        };
        let alg_ok = !alg.is_empty()
            && alg.split(['+', '.', '_', '-']).all(|p| {
                !p.is_empty()
                    && p.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
        if !alg_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return false;
        }
    }
    // A tag follows the last `:` that comes after the last `/`.
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if tag.is_some_and(|t| !version(t)) {
        return false;
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first component is a registry when it looks like a host.
    if parts.len() > 1 {
        let first = parts[0];
        if first.contains(['.', ':'])
            || first == "localhost"
            || first.chars().any(|c| c.is_ascii_uppercase())
        {
            if !registry_host(first) {
                return false;
            }
            parts.remove(0);
        }
    }
    !parts.is_empty() && parts.into_iter().all(image_component)
}

pub const IMAGE_ALLOWED: &str =
    "an image reference [registry/]path[:tag][@sha256:hex], e.g. registry.k8s.io/pause:3.9";

/// An IP address or a DNS name (NTP servers, route reflectors).
pub fn host(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok() || valid_dns_subdomain(s)
}

/// A registry mirror: `http://` or `https://`, `host[:port]`, optionally a
/// path of image components and a trailing `/`.
pub fn mirror(s: &str) -> bool {
    let Some(rest) = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
    else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    image_registry(rest)
}

pub const MIRROR_ALLOWED: &str =
    "a list of registry URLs, http:// or https:// then host[:port] and an optional path, e.g. [\"https://mirror.example.com/\"]";

/// A jump host `[user@]host[:port]`: `(user, host, port)`. The host is an
/// IP address (IPv6 in brackets) or a DNS name.
pub fn jump_host(text: &str) -> Option<(Option<&str>, &str, Option<u16>)> {
    let (user, rest) = match text.split_once('@') {
        Some((u, r)) => (Some(u), r),
        None => (None, text),
    };
    let user_ok = user.is_none_or(|u| {
        !u.is_empty()
            && u.len() <= 32
            && u.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    });
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (ip, tail) = v6.split_once(']')?;
        ip.parse::<std::net::Ipv6Addr>().ok()?;
        match tail.strip_prefix(':') {
            Some(p) => (ip, Some(p)),
            None if tail.is_empty() => (ip, None),
            None => return None,
        }
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|n| *n > 0)?),
        None => None,
    };
    (user_ok && (host.parse::<IpAddr>().is_ok() || valid_dns_subdomain(host)))
        .then_some((user, host, port))
}

/// Calico's `IP_AUTODETECTION_METHOD`: `first-found`,
/// `kubernetes-internal-ip`, `can-reach=HOST`, `interface=REGEX[,REGEX]`,
/// `skip-interface=REGEX[,REGEX]` or `cidr=CIDR[,CIDR]`. Interface patterns
/// are regular expressions, limited to characters that need no quoting in
/// a YAML double-quoted string.
pub fn autodetection_method(s: &str) -> bool {
    // "": ezctl's default, `kubernetes-internal-ip` (the calico role).
    if matches!(s, "" | "first-found" | "kubernetes-internal-ip") {
        return true;
    }
    let Some((method, arg)) = s.split_once('=') else {
        return false;
    };
    if arg.is_empty() || s.len() > 255 {
        return false;
    }
    match method {
        "can-reach" => host(arg),
        "cidr" => arg.split(',').all(|c| c.parse::<ipnet::IpNet>().is_ok()),
        "interface" | "skip-interface" => arg.split(',').all(|re| {
            !re.is_empty()
                && re.chars().all(|c| {
                    c.is_ascii_alphanumeric()
                        || matches!(
                            c,
                            '.' | '_'
                                | '-'
                                | '*'
                                | '+'
                                | '?'
                                | '^'
                                | '$'
                                | '|'
                                | '('
                                | ')'
                                | '['
                                | ']'
                                | '{'
                                | '}'
                        )
                })
        }),
        _ => false,
    }
}

pub const AUTODETECT_ALLOWED: &str = "\"\" (the node's InternalIP), first-found, kubernetes-internal-ip, can-reach=HOST, interface=REGEX, skip-interface=REGEX or cidr=CIDR (regular expressions of [A-Za-z0-9._-*+?^$|()[]{}] separated by `,`)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_keys_and_values() {
        for ok in [
            "zone",
            "topology.kubernetes.io/zone",
            "a",
            "Z-a_b.9",
            "example.com/x_Y",
        ] {
            assert!(label_key(ok), "{ok}");
        }
        for bad in [
            "",
            "-bad",
            "a/b/c",
            "zone; id",
            "Example.com/zone",
            "a b",
            "x/",
            "/x",
            "bad_prefix/x",
            "a\nb",
            &"a".repeat(64),
        ] {
            assert!(!label_key(bad), "{bad}");
        }
        for ok in ["", "a", "v1.2-rc_3", &"a".repeat(63)] {
            assert!(label_value(ok), "{ok}");
        }
        for bad in [
            "a; touch /tmp/x",
            "$(id)",
            "-a",
            "a.",
            "a b",
            "a=b",
            &"a".repeat(64),
        ] {
            assert!(!label_value(bad), "{bad}");
        }
    }

    #[test]
    fn paths() {
        for ok in [
            "/var/lib/containerd",
            "/opt/kube/bin",
            "/usr/local/bin",
            "/data/a-b_c.d+e",
            "/var/lib/etcd/",
        ] {
            assert_eq!(path_problem(ok), None, "{ok}");
        }
        for bad in [
            "/",
            "//",
            "relative/path",
            "",
            "/var/lib",
            "/var/lib/",
            "/usr",
            "/etc",
            "/var/lib/dpkg",
            "/opt/../etc",
            "/opt/./x",
            "/opt//x",
            "/opt/a b",
            "/opt/a;b",
            "/opt/$(id)",
            "/opt/a\nb",
            "/opt/`id`",
            "/opt/'x'",
            "/opt/~",
            "/opt/%h",
        ] {
            assert!(path_problem(bad).is_some(), "{bad:?}");
        }
        assert!(path_within("/var/lib/etcd/wal", "/var/lib/etcd"));
        assert!(path_within("/var/lib/etcd", "/var/lib/etcd"));
        assert!(!path_within("/var/lib/etcd2", "/var/lib/etcd"));
    }

    #[test]
    fn images() {
        for ok in [
            "registry.k8s.io/pause:3.9",
            "pause",
            "library/busybox:1.36",
            "easzlab.io.local:5000/easzlab/pause:3.9",
            "localhost/a/b",
            "reg.example.com:5000/a/b-c_d.e__f:v1.2-rc.1",
            "quay.io/calico/node@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            "quay.io/calico/node:v3.26.4@sha256:0123456789abcdef0123456789abcdef",
        ] {
            assert!(image_reference(ok), "{ok}");
        }
        for bad in [
            "",
            "Pause",
            "registry.k8s.io/pause:3.9\"\nroot = \"/",
            "a b",
            "reg/a:-tag",
            "reg.io/a//b",
            "reg.io/a/b:",
            "reg.io/a@sha256:xyz",
            "$(id)",
            "a;b",
            "a_-b",
            "reg.io:0/a",
        ] {
            assert!(!image_reference(bad), "{bad:?}");
        }
        for ok in [
            "quay.io",
            "reg.local:5000/mirror",
            "10.0.0.5:5000",
            "Quay.IO",
        ] {
            assert!(image_registry(ok), "{ok}");
        }
        for bad in [
            "",
            "quay.io/",
            "a b",
            "quay.io/Calico",
            "x\"y",
            "quay.io:abc",
        ] {
            assert!(!image_registry(bad), "{bad}");
        }
    }

    #[test]
    fn yaml_plain_strings() {
        for ok in [
            "master-01",
            "cluster.local",
            "k8s-10-0-0-1",
            "a1",
            "1a",
            "node.1",
            "inf",
            "v1.2",
            "2024-01-01-node",
        ] {
            assert!(yaml_plain_is_string(ok), "{ok}");
        }
        for bad in [
            "true",
            "False",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "null",
            "~",
            "",
            "123",
            "1_000",
            "1e5",
            "1.5",
            ".5",
            "-1",
            "0x1f",
            "0o17",
            "2024-01-01",
            "2024-1-1",
        ] {
            assert!(!yaml_plain_is_string(bad), "{bad}");
        }
    }

    #[test]
    fn versions_names_and_the_rest() {
        assert!(version("v3.26.4") && version("1.30.1") && version("_x"));
        for bad in ["", ".1", "-1", "1.0 beta", "1;2", &"1".repeat(129)] {
            assert!(!version(bad), "{bad}");
        }
        assert!(name("cluster1") && name("context-cluster1") && name("a.b_c"));
        for bad in ["", "-a", "a b", "a/b", "a:b", "a$b"] {
            assert!(!name(bad), "{bad}");
        }
        for ok in [
            "",
            "first-found",
            "kubernetes-internal-ip",
            "can-reach=8.8.8.8",
            "can-reach=www.example.com",
            "interface=eth.*",
            "interface=eth0,ens[0-9]+",
            "skip-interface=^veth.*$",
            "cidr=10.0.0.0/8,192.168.0.0/16",
        ] {
            assert!(autodetection_method(ok), "{ok}");
        }
        for bad in [
            "first",
            "interface=",
            "interface=eth0\"",
            "interface=a b",
            "can-reach=a;b",
            "cidr=10.0.0.0",
            "interface=\\d",
        ] {
            assert!(!autodetection_method(bad), "{bad}");
        }
        for ok in [
            "https://mirror.example.com/",
            "http://10.0.0.5:5000",
            "https://m.io/v2",
        ] {
            assert!(mirror(ok), "{ok}");
        }
        for bad in ["mirror.example.com", "ftp://x", "https://", "https://a b"] {
            assert!(!mirror(bad), "{bad}");
        }
        assert!(host("10.0.0.1") && host("ntp.example.com") && !host("a;b"));
    }
}
