//! Editing `hosts.yml` in place for add-* / del-* commands: only the text of
//! the affected entry changes; comments and layout stay. A group may be a
//! block list (`- 10.0.0.1` lines) or a flow list (`[10.0.0.1, ...]`).
//! Every edit checks its own result: the hosts of the new text must be the
//! old ones plus or minus exactly the entry edited, everything else equal,
//! or the edit fails and nothing is written. Day-2 commands apply these
//! through [`crate::transaction`], which validates the result and writes it
//! only after the work on the hosts succeeded.

use serde_json::{json, Value};

use crate::hosts::Group;
use crate::render::{render_host_item, HostLine};
use crate::yaml::{self, Kind, Node, Pos};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("hosts.yml does not parse: line {line}: {message}")]
    Syntax { line: usize, message: String },
    #[error("hosts.yml is not a mapping of groups")]
    NotAMapping,
    #[error("{ip} is already listed in {group}")]
    AlreadyListed { ip: String, group: &'static str },
    #[error("{ip} is not listed in {group}")]
    NotListed { ip: String, group: &'static str },
    #[error("{group} is not a list of hosts")]
    NotAList { group: &'static str },
    /// The edited text does not hold exactly the hosts it should: a bug
    /// or a layout this editor does not understand; nothing is written.
    #[error(
        "editing {group} would not give the intended hosts ({detail}); edit hosts.yml by hand"
    )]
    Unverified { group: &'static str, detail: String },
}

fn entry_ip(item: &Node) -> Option<&str> {
    match &item.kind {
        Kind::Scalar { text, .. } => Some(text.trim()),
        Kind::Map(pairs) => pairs
            .iter()
            .find(|(k, _)| k.as_str() == Some("ip"))
            .and_then(|(_, v)| v.as_str())
            .map(str::trim),
        _ => None,
    }
}

struct GroupSpan<'a> {
    key_line: usize,
    /// The group's value (a list, or empty).
    value: &'a Node,
    items: Option<&'a [Node]>,
}

fn find_group<'a>(root: &'a Node, group: Group) -> Result<Option<GroupSpan<'a>>, EditError> {
    let Kind::Map(pairs) = &root.kind else {
        return Err(EditError::NotAMapping);
    };
    for (k, v) in pairs {
        if k.as_str() == Some(group.key()) {
            let items = match &v.kind {
                Kind::Seq(items) => Some(items.as_slice()),
                Kind::Null => None,
                _ => return Err(EditError::NotAList { group: group.key() }),
            };
            return Ok(Some(GroupSpan {
                key_line: k.pos.line,
                value: v,
                items,
            }));
        }
    }
    Ok(None)
}

fn parse(text: &str) -> Result<Node, EditError> {
    match yaml::parse(text) {
        Ok(Some(root)) => Ok(root),
        Ok(None) => Err(EditError::NotAMapping),
        Err(e) => Err(EditError::Syntax {
            line: e.pos.line,
            message: e.message,
        }),
    }
}

/// The last line (1-based) that belongs to the group starting at `key_line`:
/// up to the next top-level key, without trailing blank or comment lines.
fn group_end(lines: &[&str], key_line: usize) -> usize {
    let mut end = key_line;
    for (i, l) in lines.iter().enumerate().skip(key_line) {
        let top_level = !l.is_empty() && !l.starts_with([' ', '\t', '#', '-']);
        if top_level {
            break;
        }
        if !l.trim().is_empty() && !l.trim_start().starts_with('#') {
            end = i + 1;
        }
    }
    end
}

/// Byte offset of a parser position (1-based line, 1-based char column).
fn offset(text: &str, pos: Pos) -> Option<usize> {
    let mut line_start = 0;
    for _ in 1..pos.line {
        line_start += text[line_start..].find('\n')? + 1;
    }
    let line = &text[line_start..];
    let col = line
        .char_indices()
        .nth(pos.col.saturating_sub(1))
        .map(|(i, _)| i)
        .unwrap_or(line.len());
    Some(line_start + col)
}

/// From `start` (inside a flow collection), the offset of the first `,`,
/// `]` or `}` at nesting depth 0, skipping quoted strings and nested
/// collections.
fn flow_stop(text: &str, start: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'\'' => {
                i += 1;
                while i < bytes.len() {
                    if bytes[i] == b'\'' {
                        if bytes.get(i + 1) == Some(&b'\'') {
                            i += 1;
                        } else {
                            break;
                        }
                    }
                    i += 1;
                }
            }
            b'#' if i > 0 && matches!(bytes[i - 1], b' ' | b'\t') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'[' | b'{' => depth += 1,
            b']' | b'}' if depth == 0 => return Some(i),
            b']' | b'}' => depth -= 1,
            b',' if depth == 0 => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// A flow list's source: where `[` starts, where `]` ends, and the text of
/// each item.
struct FlowList {
    start: usize,
    end: usize,
    items: Vec<String>,
}

fn flow_list(text: &str, value: &Node, items: &[Node]) -> Option<FlowList> {
    let start = offset(text, value.pos)?;
    if text.as_bytes().get(start) != Some(&b'[') {
        return None;
    }
    let mut out = Vec::new();
    for item in items {
        let from = offset(text, item.pos)?;
        let to = flow_stop(text, from)?;
        out.push(text[from..to].trim_end().to_string());
    }
    // The closing bracket: after the last item (and a trailing comma).
    let mut at = match items.last() {
        Some(last) => flow_stop(text, offset(text, last.pos)?)?,
        None => start + 1,
    };
    loop {
        let stop = flow_stop(text, at)?;
        if text.as_bytes()[stop] == b']' {
            at = stop;
            break;
        }
        at = stop + 1;
    }
    Some(FlowList {
        start,
        end: at + 1,
        items: out,
    })
}

fn flow_text(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

/// A node without positions, for comparing two texts' hosts.
fn canon(node: &Node) -> Value {
    match &node.kind {
        Kind::Null => Value::Null,
        Kind::Scalar { text, .. } => json!(text),
        Kind::Seq(items) => Value::Array(items.iter().map(canon).collect()),
        Kind::Map(pairs) => Value::Array(
            pairs
                .iter()
                .map(|(k, v)| json!([canon(k), canon(v)]))
                .collect(),
        ),
    }
}

/// Every top-level key of a hosts text with its value; an empty group
/// (`group:`, `group: []`) is an empty list.
fn canon_doc(root: &Node) -> Vec<(String, Value)> {
    let Kind::Map(pairs) = &root.kind else {
        return Vec::new();
    };
    pairs
        .iter()
        .map(|(k, v)| {
            let key = k.as_str().unwrap_or_default().to_string();
            let value = match (&v.kind, Group::from_key(&key)) {
                (Kind::Null, Some(_)) => json!([]),
                _ => canon(v),
            };
            (key, value)
        })
        .collect()
}

/// Check that `after` holds what `before` held with `change` applied to
/// `group`'s list, and nothing else changed.
fn verify(
    before: &Node,
    after: &str,
    group: Group,
    change: impl FnOnce(&mut Vec<Value>),
) -> Result<(), EditError> {
    let unverified = |detail: String| EditError::Unverified {
        group: group.key(),
        detail,
    };
    let after = parse(after).map_err(|e| unverified(format!("the result does not parse: {e}")))?;
    let mut want = canon_doc(before);
    match want.iter_mut().find(|(k, _)| k == group.key()) {
        Some((_, Value::Array(list))) => change(list),
        Some(_) => return Err(unverified("the group is not a list".into())),
        None => {
            let mut list = Vec::new();
            change(&mut list);
            want.push((group.key().to_string(), Value::Array(list)));
        }
    }
    let got = canon_doc(&after);
    if got == want {
        return Ok(());
    }
    let names = |d: &[(String, Value)]| {
        d.iter()
            .map(|(k, v)| match v {
                Value::Array(a) if Group::from_key(k).is_some() => {
                    format!("{k}: {} hosts", a.len())
                }
                _ => k.clone(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(unverified(format!(
        "expected {}, got {}",
        names(&want),
        names(&got)
    )))
}

/// Add `host` to `group`.
pub fn add_host(text: &str, group: Group, host: &HostLine) -> Result<String, EditError> {
    let root = parse(text)?;
    let item = render_host_item(host);
    let flow_item = item.trim_start().trim_start_matches("- ").to_string();
    let new_entry = parse(&format!("x:\n{item}\n"))
        .ok()
        .and_then(|n| match n.kind {
            Kind::Map(mut pairs) => pairs.pop().map(|(_, v)| v),
            _ => None,
        })
        .and_then(|v| match v.kind {
            Kind::Seq(mut items) => items.pop(),
            _ => None,
        })
        .ok_or_else(|| EditError::Unverified {
            group: group.key(),
            detail: format!("the new entry `{item}` does not parse"),
        })?;
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let out = match find_group(&root, group)? {
        None => {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("{}:", group.key()));
            lines.push(item);
            lines.join("\n") + "\n"
        }
        Some(span) => {
            let items = span.items.unwrap_or(&[]);
            if items.iter().any(|i| entry_ip(i) == Some(host.ip.as_str())) {
                return Err(EditError::AlreadyListed {
                    ip: host.ip.clone(),
                    group: group.key(),
                });
            }
            let key_idx = span.key_line - 1;
            let key_line = lines.get(key_idx).cloned().unwrap_or_default();
            if let Some(flow) = flow_list(text, span.value, items).filter(|_| !items.is_empty()) {
                // `group: [a, b]` stays a flow list.
                let mut all = flow.items;
                all.push(flow_item);
                format!(
                    "{}{}{}",
                    &text[..flow.start],
                    flow_text(&all),
                    &text[flow.end..]
                )
            } else if items.is_empty() {
                // `group: []`, `group:` or `group: ~`: make it a block list.
                let comment = key_line
                    .find(" #")
                    .map(|i| key_line[i..].to_string())
                    .unwrap_or_default();
                lines[key_idx] = format!("{}:{comment}", group.key());
                lines.insert(key_idx + 1, item);
                lines.join("\n") + "\n"
            } else {
                let refs: Vec<&str> = text.lines().collect();
                let end = group_end(&refs, span.key_line);
                lines.insert(end, item);
                lines.join("\n") + "\n"
            }
        }
    };
    let entry = canon(&new_entry);
    verify(&root, &out, group, |list| list.push(entry))?;
    Ok(out)
}

/// Remove the entry of `ip` from `group`.
pub fn remove_host(text: &str, group: Group, ip: &str) -> Result<String, EditError> {
    let root = parse(text)?;
    let not_listed = || EditError::NotListed {
        ip: ip.to_string(),
        group: group.key(),
    };
    let span = find_group(&root, group)?.ok_or_else(not_listed)?;
    let items = span.items.unwrap_or(&[]);
    let idx = items
        .iter()
        .position(|i| entry_ip(i) == Some(ip))
        .ok_or_else(not_listed)?;
    let out = if let Some(flow) = flow_list(text, span.value, items) {
        let mut kept = flow.items;
        kept.remove(idx);
        format!(
            "{}{}{}",
            &text[..flow.start],
            flow_text(&kept),
            &text[flow.end..]
        )
    } else {
        let refs: Vec<&str> = text.lines().collect();
        let start = items[idx].pos.line; // 1-based line of the item's first token
        let end = match items.get(idx + 1) {
            Some(next) => next.pos.line - 1,
            None => group_end(&refs, span.key_line),
        };
        if start <= span.key_line || end < start {
            return Err(EditError::Unverified {
                group: group.key(),
                detail: "the entry shares a line with the group name".into(),
            });
        }
        let mut lines: Vec<String> = refs.iter().map(|s| s.to_string()).collect();
        // The item's line starts with `- `; its mapping may start on that line.
        lines.drain(start - 1..end);
        if items.len() == 1 {
            let k = span.key_line - 1;
            lines[k] = format!("{}: []", group.key());
        }
        lines.join("\n") + "\n"
    };
    verify(&root, &out, group, |list| {
        list.remove(idx);
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "# my cluster\nssh:\n  user: root\n\netcd:\n  - 10.0.0.1   # first\n  - 10.0.0.2\n  - 10.0.0.3\n\nkube_master:\n  - { ip: 10.0.0.1, name: m1 }\n\n# workers\nkube_node:\n  - ip: 10.0.0.4\n    name: w1\n  - { ip: 10.0.0.5, name: w2 }\nex_lb: []\n";

    fn line(ip: &str, name: Option<&str>) -> HostLine {
        HostLine {
            ip: ip.into(),
            name: name.map(Into::into),
            ..HostLine::default()
        }
    }

    #[test]
    fn add_appends_to_the_group_and_keeps_the_rest() {
        let out = add_host(HOSTS, Group::KubeNode, &line("10.0.0.6", Some("w3"))).unwrap();
        assert!(
            out.contains(
                "  - { ip: 10.0.0.5, name: w2 }\n  - { ip: 10.0.0.6, name: w3 }\nex_lb: []"
            ),
            "{out}"
        );
        assert!(out.starts_with("# my cluster\n"));
        assert!(out.contains("  - 10.0.0.1   # first\n"));
        let out = add_host(HOSTS, Group::Etcd, &line("10.0.0.9", None)).unwrap();
        assert!(
            out.contains("  - 10.0.0.3\n  - 10.0.0.9\n\nkube_master:"),
            "{out}"
        );
    }

    #[test]
    fn add_to_an_empty_or_missing_group() {
        let out = add_host(HOSTS, Group::ExLb, &line("10.0.0.7", None)).unwrap();
        assert!(out.ends_with("ex_lb:\n  - 10.0.0.7\n"), "{out}");
        let out = add_host(HOSTS, Group::Harbor, &line("10.0.0.8", None)).unwrap();
        assert!(
            out.ends_with("ex_lb: []\n\nharbor:\n  - 10.0.0.8\n"),
            "{out}"
        );
    }

    #[test]
    fn add_refuses_duplicates() {
        assert_eq!(
            add_host(HOSTS, Group::Etcd, &line("10.0.0.2", None)),
            Err(EditError::AlreadyListed {
                ip: "10.0.0.2".into(),
                group: "etcd"
            })
        );
    }

    #[test]
    fn remove_takes_only_that_entry() {
        let out = remove_host(HOSTS, Group::KubeNode, "10.0.0.4").unwrap();
        assert!(
            out.contains("kube_node:\n  - { ip: 10.0.0.5, name: w2 }\nex_lb"),
            "{out}"
        );
        let out = remove_host(HOSTS, Group::KubeNode, "10.0.0.5").unwrap();
        assert!(
            out.contains("  - ip: 10.0.0.4\n    name: w1\nex_lb"),
            "{out}"
        );
        let out = remove_host(HOSTS, Group::Etcd, "10.0.0.2").unwrap();
        assert!(
            out.contains("  - 10.0.0.1   # first\n  - 10.0.0.3\n"),
            "{out}"
        );
        let out = remove_host(HOSTS, Group::KubeMaster, "10.0.0.1").unwrap();
        assert!(out.contains("kube_master: []\n"), "{out}");
        assert_eq!(
            remove_host(HOSTS, Group::KubeNode, "10.0.0.99"),
            Err(EditError::NotListed {
                ip: "10.0.0.99".into(),
                group: "kube_node"
            })
        );
    }

    /// (group, ip) of every entry, read back with the YAML parser.
    fn host_set(text: &str) -> std::collections::BTreeSet<(String, String)> {
        let root = parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let Kind::Map(pairs) = &root.kind else {
            panic!("{text}")
        };
        let mut out = std::collections::BTreeSet::new();
        for (k, v) in pairs {
            if let (Some(g), Kind::Seq(items)) = (k.as_str(), &v.kind) {
                if Group::from_key(g).is_some() {
                    for i in items {
                        out.insert((g.to_string(), entry_ip(i).expect("ip").to_string()));
                    }
                }
            }
        }
        out
    }

    const FLOW: &str = "# flow style\nssh: { user: root }\netcd: [10.0.0.1, 10.0.0.2, 10.0.0.3]   # members\nkube_master: [{ ip: 10.0.0.1, name: m1 }]\nkube_node: [{ ip: 10.0.0.4, name: w1 }, \"10.0.0.5\", { ip: 10.0.0.6, labels: { zone: a, rack: \"r,1\" } }]\nex_lb: [{ ip: 10.0.0.7, lb_role: master }]\nharbor: [10.0.0.8]\nchrony: []\n";

    const MIXED: &str = "etcd:\n  - 10.0.0.1\nkube_master: [10.0.0.1,\n  10.0.0.2]\nkube_node:\n  - { ip: 10.0.0.4, name: w1 }\n  - ip: 10.0.0.5\n    labels: { zone: b }\nex_lb: [10.0.0.7]\nharbor:\nchrony: [10.0.0.9, ]\n";

    /// The three ways `kube_node: [a, b, c]` lost hosts.
    #[test]
    fn flow_lists_lose_no_hosts() {
        let text = "etcd: [10.0.0.1]\nkube_master: [10.0.0.1]\nkube_node: [10.0.0.4, 10.0.0.5, 10.0.0.6]\nex_lb: [10.0.0.7]\nharbor: [10.0.0.8]\n";
        // The last item: the other nodes stay.
        let out = remove_host(text, Group::KubeNode, "10.0.0.6").unwrap();
        assert!(out.contains("kube_node: [10.0.0.4, 10.0.0.5]\n"), "{out}");
        // Another item: it really goes.
        let out = remove_host(text, Group::KubeNode, "10.0.0.4").unwrap();
        assert!(out.contains("kube_node: [10.0.0.5, 10.0.0.6]\n"), "{out}");
        // The only item: the next group is untouched.
        let out = remove_host(text, Group::ExLb, "10.0.0.7").unwrap();
        assert!(out.contains("ex_lb: []\nharbor: [10.0.0.8]\n"), "{out}");
        // Adding keeps the flow style.
        let out = add_host(text, Group::KubeNode, &line("10.0.0.9", Some("w9"))).unwrap();
        assert!(
            out.contains("kube_node: [10.0.0.4, 10.0.0.5, 10.0.0.6, { ip: 10.0.0.9, name: w9 }]\n"),
            "{out}"
        );
    }

    /// Add and remove a host in every group of block, flow and mixed
    /// texts; after each edit the host set is the old one plus or minus
    /// exactly that host.
    #[test]
    fn every_group_round_trips_in_block_and_flow_style() {
        let mut edits = 0;
        for text in [HOSTS, FLOW, MIXED] {
            let before = host_set(text);
            for g in Group::ALL {
                let key = g.key().to_string();
                // Remove each listed host, then add it back.
                for (_, ip) in before.iter().filter(|(k, _)| *k == key) {
                    let removed =
                        remove_host(text, g, ip).unwrap_or_else(|e| panic!("{e}\n{text}"));
                    let mut want = before.clone();
                    want.remove(&(key.clone(), ip.clone()));
                    assert_eq!(
                        host_set(&removed),
                        want,
                        "remove {ip} from {key}:\n{removed}"
                    );
                    let back = add_host(&removed, g, &line(ip, None)).unwrap();
                    assert_eq!(host_set(&back), before, "add {ip} back to {key}:\n{back}");
                    edits += 2;
                }
                // Add a new host, then remove it: the text comes back.
                let added = add_host(text, g, &line("10.0.9.9", Some("new")))
                    .unwrap_or_else(|e| panic!("{e}\n{text}"));
                let mut want = before.clone();
                want.insert((key.clone(), "10.0.9.9".into()));
                assert_eq!(host_set(&added), want, "add to {key}:\n{added}");
                let removed = remove_host(&added, g, "10.0.9.9").unwrap();
                assert_eq!(
                    host_set(&removed),
                    before,
                    "remove again from {key}:\n{removed}"
                );
                edits += 2;
            }
        }
        assert!(edits > 60, "{edits} edits");
    }

    /// An edit whose result is not the intended host set is refused.
    #[test]
    fn an_edit_that_would_lose_hosts_is_refused() {
        let root = parse(HOSTS).unwrap();
        let lost = HOSTS.replace("  - 10.0.0.3\n", "");
        let err = verify(&root, &lost, Group::KubeNode, |l| {
            l.pop();
        })
        .unwrap_err();
        assert!(matches!(err, EditError::Unverified { .. }), "{err}");
        assert!(verify(&root, HOSTS, Group::KubeNode, |_| {}).is_ok());
    }

    #[test]
    fn add_then_remove_round_trips() {
        let added = add_host(HOSTS, Group::KubeNode, &line("10.0.0.6", None)).unwrap();
        assert_eq!(
            remove_host(&added, Group::KubeNode, "10.0.0.6").unwrap(),
            HOSTS
        );
    }
}
