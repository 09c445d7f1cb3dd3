//! `ezctl import`: read a kubeasz inventory (Ansible INI `hosts` and an
//! optional `config.yml`) into our two files, and say what did not carry over.

use std::collections::BTreeMap;

use crate::hosts::Group;
use crate::render::{HostLine, HostsSpec};
use crate::settings::{self, Value};
use crate::yaml::{self, Kind};

/// The result of an import: files to write and what the user should know.
#[derive(Debug, Clone, Default)]
pub struct Import {
    pub hosts: HostsSpec,
    pub config: Vec<(&'static str, Value)>,
    /// One line for each thing that was not carried over, and why.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
    #[error("hosts line {line}: {message}")]
    Hosts { line: usize, message: String },
    #[error("config.yml line {line}: {message}")]
    Config { line: usize, message: String },
}

/// Variables of `[all:vars]` that only make sense to kubeasz's Ansible.
const ANSIBLE_ONLY: &[&str] = &[
    "base_dir",
    "cluster_dir",
    "ansible_python_interpreter",
    "k8s_nodename",
];

/// Split an INI line into tokens, keeping quoted values together.
fn tokens(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut has = false;
    for c in line.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => cur.push(c),
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                has = true;
            }
            None if c == '#' && !has => break,
            None if c.is_whitespace() => {
                if has {
                    out.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            None => {
                cur.push(c);
                has = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if has {
        out.push(cur);
    }
    Ok(out)
}

fn setting_value(key: &'static str, raw: &str) -> Value {
    match settings::find(key).map(|s| s.kind) {
        Some(settings::Kind::Bool) => match raw.to_ascii_lowercase().as_str() {
            "true" | "yes" => Value::Bool(true),
            "false" | "no" => Value::Bool(false),
            _ => Value::Text(raw.into()),
        },
        Some(settings::Kind::Int { .. } | settings::Kind::Port) => raw
            .parse()
            .map(Value::Int)
            .unwrap_or_else(|_| Value::Text(raw.into())),
        _ => Value::Text(raw.into()),
    }
}

fn push_setting(out: &mut Import, key: &str, raw: &str, source: &str) {
    match settings::find(key) {
        Some(s) => {
            let value = setting_value(s.key, raw);
            // A setting given twice (two ex_lb lines with their own VIP):
            // the last one wins, and the user hears about the other.
            if let Some((_, old)) = out.config.iter().find(|(k, _)| *k == s.key) {
                if *old != value {
                    out.notes.push(format!(
                        "{source}: `{key}={raw}` replaces an earlier value of {key}; the earlier one was dropped"
                    ));
                }
            }
            out.config.retain(|(k, _)| *k != s.key);
            out.config.push((s.key, value));
        }
        None if ANSIBLE_ONLY.contains(&key) || key.starts_with("ansible_") => {
            out.notes.push(format!(
                "{source}: `{key}` is specific to kubeasz's Ansible and was dropped"
            ));
        }
        None => out.notes.push(format!(
            "{source}: `{key}={raw}` has no ezctl equivalent and was dropped"
        )),
    }
}

/// Import a kubeasz `hosts` file and optional `config.yml` text.
pub fn import(hosts_ini: &str, config_yml: Option<&str>) -> Result<Import, ImportError> {
    let mut out = Import::default();
    let mut section: Option<String> = None;
    let mut groups: BTreeMap<Group, Vec<HostLine>> = BTreeMap::new();
    // Where each (group, host) was first listed.
    let mut first_line: BTreeMap<(Group, String), usize> = BTreeMap::new();
    for (i, raw) in hosts_ini.lines().enumerate() {
        let line_no = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            let name = name.strip_suffix(']').ok_or_else(|| ImportError::Hosts {
                line: line_no,
                message: format!("section header `{line}` has no closing `]`"),
            })?;
            section = Some(name.trim().to_string());
            continue;
        }
        let toks = tokens(line).map_err(|message| ImportError::Hosts {
            line: line_no,
            message,
        })?;
        let Some(sec) = section.as_deref() else {
            return Err(ImportError::Hosts {
                line: line_no,
                message: "host or variable outside any [section]".into(),
            });
        };
        if sec.ends_with(":vars") {
            let (k, v) = match line.split_once('=') {
                Some((k, v)) => (k.trim(), v.trim()),
                None => {
                    return Err(ImportError::Hosts {
                        line: line_no,
                        message: format!("expected KEY=value in [{sec}], found `{line}`"),
                    })
                }
            };
            let v = tokens(v)
                .map_err(|message| ImportError::Hosts {
                    line: line_no,
                    message,
                })?
                .join(" ");
            if sec == "all:vars" {
                push_setting(&mut out, k, &v, &format!("hosts line {line_no}"));
            } else {
                out.notes.push(format!(
                    "hosts line {line_no}: group variables of [{sec}] are not carried over"
                ));
            }
            continue;
        }
        if sec.ends_with(":children") {
            // kubeasz's kube_cluster:children only groups the groups.
            out.notes.push(format!(
                "hosts line {line_no}: `{line}` in [{sec}] groups groups, which ezctl does not need"
            ));
            continue;
        }
        let Some(group) = Group::from_key(sec) else {
            out.notes.push(format!(
                "hosts line {line_no}: group [{sec}] is not known to ezctl; its hosts were dropped"
            ));
            continue;
        };
        let mut host = HostLine {
            ip: toks[0].clone(),
            ..HostLine::default()
        };
        for t in &toks[1..] {
            let Some((k, v)) = t.split_once('=') else {
                out.notes.push(format!(
                    "hosts line {line_no}: `{t}` is not KEY=value, ignored"
                ));
                continue;
            };
            match (k, group) {
                ("k8s_nodename", _) => host.name = (!v.is_empty()).then(|| v.to_string()),
                ("LB_ROLE", Group::ExLb) => host.lb_role = Some(v.to_string()),
                ("NEW_INSTALL", Group::Harbor) => {
                    host.new_install =
                        Some(matches!(v.to_ascii_lowercase().as_str(), "true" | "yes"))
                }
                ("EX_APISERVER_VIP" | "EX_APISERVER_PORT", Group::ExLb) => {
                    push_setting(&mut out, k, v, &format!("hosts line {line_no}"))
                }
                _ => out.notes.push(format!(
                    "hosts line {line_no}: host variable `{k}` of {} was dropped",
                    host.ip
                )),
            }
        }
        let list = groups.entry(group).or_default();
        match first_line.get(&(group, host.ip.clone())) {
            // Listed twice: one entry, and the user is told which line went.
            Some(first) => {
                let same = list.contains(&host);
                out.notes.push(format!(
                    "hosts line {line_no}: {} is already listed in [{sec}] on line {first}; this line was dropped{}",
                    host.ip,
                    if same { "" } else { " with its different settings" }
                ));
            }
            None => {
                first_line.insert((group, host.ip.clone()), line_no);
                list.push(host);
            }
        }
    }
    out.hosts.groups = groups;
    out.hosts.header = "Imported from a kubeasz inventory by `ezctl import`.".into();
    if let Some(cfg) = config_yml {
        import_config(&mut out, cfg)?;
    }
    Ok(out)
}

fn import_config(out: &mut Import, text: &str) -> Result<(), ImportError> {
    let root = yaml::parse(text).map_err(|e| ImportError::Config {
        line: e.pos.line,
        message: e.message,
    })?;
    let Some(root) = root else { return Ok(()) };
    let Kind::Map(entries) = root.kind else {
        return Err(ImportError::Config {
            line: root.pos.line,
            message: "expected a mapping of settings".into(),
        });
    };
    for (k, v) in entries {
        let key = k.as_str().unwrap_or("");
        let src = format!("config.yml line {}", k.pos.line);
        let Some(setting) = settings::find(key) else {
            out.notes.push(format!(
                "{src}: `{key}` is not an ezctl setting and was dropped"
            ));
            continue;
        };
        let value = match &v.kind {
            Kind::Null => Value::Text(String::new()),
            Kind::Scalar { text, .. } if text.contains("{{") => {
                out.notes.push(format!(
                    "{src}: `{key}` uses an Ansible template (`{text}`); the ezctl default is kept"
                ));
                continue;
            }
            Kind::Scalar { text, .. } => setting_value(setting.key, text),
            Kind::Seq(items) => {
                let mut list = Vec::new();
                for i in items {
                    match i.as_str() {
                        Some(t) => list.push(t.to_string()),
                        None => out.notes.push(format!(
                            "config.yml line {}: an item of `{key}` is {}, not text; dropped",
                            i.pos.line,
                            i.type_name()
                        )),
                    }
                }
                Value::List(list)
            }
            Kind::Map(_) => {
                out.notes.push(format!(
                    "{src}: `{key}` is a mapping, which ezctl does not take; dropped"
                ));
                continue;
            }
        };
        out.config.retain(|(k, _)| *k != setting.key);
        out.config.push((setting.key, value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_respect_quotes_and_comments() {
        assert_eq!(
            tokens("10.0.0.1 k8s_nodename='master-01' # c").unwrap(),
            vec!["10.0.0.1", "k8s_nodename=master-01"]
        );
        assert_eq!(tokens("A=\"x y\"").unwrap(), vec!["A=x y"]);
        assert!(tokens("A='x").is_err());
    }

    #[test]
    fn section_without_bracket_is_an_error() {
        let err = import("[etcd\n10.0.0.1\n", None).unwrap_err();
        assert_eq!(
            err,
            ImportError::Hosts {
                line: 1,
                message: "section header `[etcd` has no closing `]`".into()
            }
        );
    }
}
