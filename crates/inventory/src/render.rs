//! Writing inventory files: `ezctl new`, `ezctl import` and the day-2
//! commands that add or remove hosts produce text, not serialized structs,
//! so that comments and layout survive.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::hosts::Group;
use crate::settings::Value;

/// A host as it will be written to `hosts.yml`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostLine {
    pub ip: String,
    pub name: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub lb_role: Option<String>,
    pub new_install: Option<bool>,
}

/// A whole `hosts.yml` to write.
#[derive(Debug, Clone, Default)]
pub struct HostsSpec {
    pub header: String,
    pub ssh_user: Option<String>,
    pub ssh_port: Option<u16>,
    pub ssh_key: Option<String>,
    pub groups: BTreeMap<Group, Vec<HostLine>>,
}

/// Quote a YAML scalar when plain style could change its meaning.
pub fn yaml_scalar(s: &str) -> String {
    let plain_ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:+@".contains(c))
        && !s.starts_with(['-', ':', '@'])
        // `fd00::` (a valid IPv6 address): a plain scalar ending in `:` reads
        // as a mapping key, and breaks a `{ ip: ..., name: ... }` line.
        && !s.ends_with(':')
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "~"
        )
        && s.parse::<f64>().is_err();
    if plain_ok {
        return s.to_string();
    }
    // Double-quoted, with every character YAML would read as a line break
    // or that is not printable escaped: a raw `\r` inside the quotes
    // folded the line (found by fuzzing `ezctl import`).
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One `  - ...` list item for a host, without the newline.
pub fn render_host_item(h: &HostLine) -> String {
    render_host(h).trim_end().to_string()
}

fn render_host(h: &HostLine) -> String {
    // Quoted like any other scalar: an imported host that is not an IP
    // (`,`, `[x]`) must reach the loader as text it can name, not break the
    // YAML of the whole file.
    let ip = yaml_scalar(&h.ip);
    let mut parts = vec![format!("ip: {ip}")];
    if let Some(n) = &h.name {
        parts.push(format!("name: {}", yaml_scalar(n)));
    }
    if let Some(r) = &h.lb_role {
        parts.push(format!("lb_role: {}", yaml_scalar(r)));
    }
    if let Some(n) = h.new_install {
        parts.push(format!("new_install: {n}"));
    }
    if !h.labels.is_empty() {
        let labels: Vec<String> = h
            .labels
            .iter()
            .map(|(k, v)| format!("{}: {}", yaml_scalar(k), yaml_scalar(v)))
            .collect();
        parts.push(format!("labels: {{ {} }}", labels.join(", ")));
    }
    if parts.len() == 1 {
        format!("  - {ip}\n")
    } else {
        format!("  - {{ {} }}\n", parts.join(", "))
    }
}

/// Render a complete `hosts.yml`.
pub fn render_hosts(spec: &HostsSpec) -> String {
    let mut out = String::new();
    for line in spec.header.lines() {
        let _ = writeln!(out, "# {line}");
    }
    out.push_str("ssh:\n");
    let _ = writeln!(
        out,
        "  user: {}",
        yaml_scalar(spec.ssh_user.as_deref().unwrap_or("root"))
    );
    let _ = writeln!(out, "  port: {}", spec.ssh_port.unwrap_or(22));
    match &spec.ssh_key {
        Some(k) => {
            let _ = writeln!(out, "  key: {}", yaml_scalar(k));
        }
        None => out.push_str("  # key: ~/.ssh/id_ed25519\n"),
    }
    for g in Group::ALL {
        let hosts = spec.groups.get(&g).map(Vec::as_slice).unwrap_or(&[]);
        out.push('\n');
        if hosts.is_empty() {
            let _ = writeln!(out, "{}: []", g.key());
            continue;
        }
        let _ = writeln!(out, "{}:", g.key());
        for h in hosts {
            out.push_str(&render_host(h));
        }
    }
    out
}

fn render_value(key: &str, v: &Value) -> String {
    match v {
        Value::Bool(b) => format!("{key}: {b}\n"),
        Value::Int(i) => format!("{key}: {i}\n"),
        Value::Text(t) => format!(
            "{key}: {}\n",
            if t.is_empty() {
                "\"\"".to_string()
            } else {
                yaml_scalar(t)
            }
        ),
        Value::List(items) if items.is_empty() => format!("{key}: []\n"),
        Value::List(items) => {
            let mut s = format!("{key}:\n");
            for i in items {
                let _ = writeln!(s, "  - {}", yaml_scalar(i));
            }
            s
        }
    }
}

/// Rewrite the value of top-level keys in a `config.yml` text, keeping every
/// comment and every other line. Keys not present are appended at the end.
pub fn set_config_values(text: &str, values: &[(&str, Value)]) -> String {
    let mut out = String::new();
    let mut pending: Vec<&(&str, Value)> = values.iter().collect();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let key = line
            .split_once(':')
            .map(|(k, _)| k)
            .filter(|k| !k.starts_with([' ', '#', '-']));
        let hit = key.and_then(|k| pending.iter().position(|(pk, _)| *pk == k));
        match hit {
            Some(i) => {
                let (k, v) = pending.remove(i);
                out.push_str(&render_value(k, v));
                // Skip the old value's continuation lines (list items, nested).
                while let Some(next) = lines.peek() {
                    if next.starts_with(' ') || next.starts_with('-') {
                        lines.next();
                    } else {
                        break;
                    }
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    for (k, v) in pending {
        out.push_str(&render_value(k, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars() {
        assert_eq!(yaml_scalar("10.0.0.1"), "10.0.0.1");
        assert_eq!(yaml_scalar("master-01"), "master-01");
        assert_eq!(yaml_scalar("yes"), "\"yes\"");
        assert_eq!(yaml_scalar("1.30"), "\"1.30\"");
        assert_eq!(yaml_scalar("a b"), "\"a b\"");
        assert_eq!(yaml_scalar(""), "\"\"");
    }

    /// Found by fuzzing `ezctl import`: a host token `,` was written as
    /// `  - ,`, which no YAML reader accepts.
    #[test]
    fn hosts_that_are_not_plain_scalars_are_quoted() {
        for odd in [
            ",",
            "[x]",
            "a: b",
            "#c",
            "10.0",
            "- y",
            "{z}",
            "fd00::",
            "10.0CAUTION:",
            "1\r\r0.200.0.0/16",
            "a\nb",
            "tab\there",
            "nel\u{85}ls\u{2028}ps\u{2029}",
            "bell\u{7}del\u{7f}",
            "quote\"back\\slash",
        ] {
            let line = render_host_item(&HostLine {
                ip: odd.into(),
                ..HostLine::default()
            });
            let root = crate::yaml::parse(&format!("etcd:\n{line}\n"))
                .unwrap_or_else(|e| panic!("{odd:?} -> {line:?}: {e:?}"))
                .expect("a document");
            let crate::yaml::Kind::Map(pairs) = &root.kind else {
                panic!("{line}")
            };
            let crate::yaml::Kind::Seq(items) = &pairs[0].1.kind else {
                panic!("{line}")
            };
            assert_eq!(items[0].as_str(), Some(odd), "{line}");
        }
        let line = render_host_item(&HostLine {
            ip: "10.0.0.1".into(),
            name: Some("n1".into()),
            ..HostLine::default()
        });
        assert_eq!(line, "  - { ip: 10.0.0.1, name: n1 }");
        // Also inside a flow mapping, next to other keys.
        let line = render_host_item(&HostLine {
            ip: "fd00::".into(),
            name: Some("n1".into()),
            ..HostLine::default()
        });
        let root = crate::yaml::parse(&format!("etcd:\n{line}\n"))
            .unwrap_or_else(|e| panic!("{line}: {e:?}"))
            .expect("a document");
        assert!(format!("{root:?}").contains("fd00::"), "{line}");
        // An imported lb_role is text too (the loader says whether it is
        // master or backup).
        let line = render_host_item(&HostLine {
            ip: "10.0.0.6".into(),
            lb_role: Some("b.nal]".into()),
            ..HostLine::default()
        });
        let root = crate::yaml::parse(&format!("ex_lb:\n{line}\n"))
            .unwrap_or_else(|e| panic!("{line}: {e:?}"))
            .expect("a document");
        assert!(format!("{root:?}").contains("b.nal]"), "{line}");
    }

    #[test]
    fn set_values_keeps_comments() {
        let text = "# top\nA: 1\nLIST:\n  - x\n  - y\n# mid\nB: old\n";
        let out = set_config_values(
            text,
            &[
                ("B", Value::Text("new".into())),
                ("LIST", Value::List(vec!["z".into()])),
                ("C", Value::Bool(true)),
            ],
        );
        assert_eq!(out, "# top\nA: 1\nLIST:\n  - z\n# mid\nB: new\nC: true\n");
    }
}
