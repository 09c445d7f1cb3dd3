//! Editing `hosts.yml` in place for add-* / del-* commands: only the lines of
//! the affected entry change; comments and layout stay. Callers write the
//! result only after the work on the hosts succeeded (see [`commit`]), so a
//! failed add leaves the file byte-identical.

use std::path::Path;

use crate::hosts::Group;
use crate::render::{render_host_item, HostLine};
use crate::yaml::{self, Kind, Node};

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

/// Add `host` to `group`.
pub fn add_host(text: &str, group: Group, host: &HostLine) -> Result<String, EditError> {
    let root = parse(text)?;
    let item = render_host_item(host);
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match find_group(&root, group)? {
        None => {
            if lines.last().is_some_and(|l| !l.trim().is_empty()) {
                lines.push(String::new());
            }
            lines.push(format!("{}:", group.key()));
            lines.push(item);
        }
        Some(span) => {
            if span
                .items
                .unwrap_or(&[])
                .iter()
                .any(|i| entry_ip(i) == Some(host.ip.as_str()))
            {
                return Err(EditError::AlreadyListed {
                    ip: host.ip.clone(),
                    group: group.key(),
                });
            }
            let key_idx = span.key_line - 1;
            let key_line = lines.get(key_idx).cloned().unwrap_or_default();
            if span.items.is_none_or(<[Node]>::is_empty) {
                // `group: []`, `group:` or `group: ~`: make it a block list.
                let comment = key_line
                    .find(" #")
                    .map(|i| key_line[i..].to_string())
                    .unwrap_or_default();
                lines[key_idx] = format!("{}:{comment}", group.key());
                lines.insert(key_idx + 1, item);
            } else {
                let refs: Vec<&str> = text.lines().collect();
                let end = group_end(&refs, span.key_line);
                lines.insert(end, item);
            }
        }
    }
    Ok(lines.join("\n") + "\n")
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
    let refs: Vec<&str> = text.lines().collect();
    let start = items[idx].pos.line; // 1-based line of the item's first token
    let end = match items.get(idx + 1) {
        Some(next) => next.pos.line - 1,
        None => group_end(&refs, span.key_line),
    };
    let mut lines: Vec<String> = refs.iter().map(|s| s.to_string()).collect();
    // The item's line starts with `- `; its mapping may start on that line.
    lines.drain(start - 1..end);
    if items.len() == 1 {
        let k = span.key_line - 1;
        lines[k] = format!("{}: []", group.key());
    }
    Ok(lines.join("\n") + "\n")
}

/// Replace `path` with `text` atomically (temp file + rename): a crash never
/// leaves a half-written inventory.
pub fn commit(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("yml.ezctl-tmp");
    std::fs::write(&tmp, text)?;
    let f = std::fs::File::open(&tmp)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
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

    #[test]
    fn add_then_remove_round_trips() {
        let added = add_host(HOSTS, Group::KubeNode, &line("10.0.0.6", None)).unwrap();
        assert_eq!(
            remove_host(&added, Group::KubeNode, "10.0.0.6").unwrap(),
            HOSTS
        );
    }
}
