//! YAML files -> `serde_json::Value`.
//!
//! Roles and playbooks are read with `yaml-rust2` (already used by the
//! inventory) and converted to JSON values, so the rest of the engine works with
//! one value type that tera and serde both understand. Mapping order matters for
//! role defaults (a default may refer to an earlier one), so that one case is
//! returned as an ordered list of pairs.

use std::path::Path;

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

use crate::error::LoadError;

/// Read and parse one YAML file holding a single document. An empty file is `Null`.
pub(crate) fn load_file(path: &Path) -> Result<Value, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    parse_str(&text).map_err(|message| LoadError::Yaml {
        path: path.to_path_buf(),
        message,
    })
}

/// Like [`load_file`], but keeps the order of a top-level mapping.
pub(crate) fn load_ordered_map(path: &Path) -> Result<Vec<(String, Value)>, LoadError> {
    let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let yaml_err = |message: String| LoadError::Yaml {
        path: path.to_path_buf(),
        message,
    };
    let doc = first_doc(&text).map_err(yaml_err)?;
    match doc {
        Yaml::Null | Yaml::BadValue => Ok(Vec::new()),
        Yaml::Hash(h) => h
            .into_iter()
            .map(|(k, v)| {
                Ok((
                    key_string(&k).map_err(yaml_err)?,
                    to_json(v).map_err(yaml_err)?,
                ))
            })
            .collect(),
        _ => Err(yaml_err(
            "expected a mapping of variable names to values".into(),
        )),
    }
}

pub(crate) fn parse_str(text: &str) -> Result<Value, String> {
    to_json(first_doc(text)?)
}

/// Most values a file may expand to through aliases. The loader copies
/// the anchored value at each alias, so nine aliases of nine aliases (a
/// "billion laughs" playbook given to `ezctl play`) took all the memory;
/// the inventory refuses aliases, roles and playbooks may use them within
/// this bound. Real roles hold a few hundred values.
const MAX_EXPANDED_VALUES: u64 = 200_000;

/// Count the values the file expands to, from parser events (nothing is
/// copied), and refuse a file over [`MAX_EXPANDED_VALUES`].
fn check_alias_expansion(text: &str) -> Result<(), String> {
    use std::collections::HashMap;
    use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
    use yaml_rust2::scanner::Marker;
    #[derive(Default)]
    struct Budget {
        /// Values under each anchor, aliases included.
        sizes: HashMap<usize, u64>,
        /// Open collections: (anchor, values so far).
        open: Vec<(usize, u64)>,
        total: u64,
        over: Option<Marker>,
    }
    impl Budget {
        fn add(&mut self, n: u64, mark: Marker) {
            self.total = self.total.saturating_add(n);
            for f in &mut self.open {
                f.1 = f.1.saturating_add(n);
            }
            if self.total > MAX_EXPANDED_VALUES && self.over.is_none() {
                self.over = Some(mark);
            }
        }
    }
    impl MarkedEventReceiver for Budget {
        fn on_event(&mut self, ev: Event, mark: Marker) {
            if self.over.is_some() {
                return;
            }
            match ev {
                Event::Scalar(_, _, anchor, _) => {
                    self.add(1, mark);
                    if anchor > 0 {
                        self.sizes.insert(anchor, 1);
                    }
                }
                Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                    self.add(1, mark);
                    self.open.push((anchor, 1));
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    if let Some((anchor, n)) = self.open.pop() {
                        if anchor > 0 {
                            self.sizes.insert(anchor, n);
                        }
                    }
                }
                Event::Alias(id) => {
                    let n = self.sizes.get(&id).copied().unwrap_or(1);
                    self.add(n, mark);
                }
                _ => {}
            }
        }
    }
    let mut budget = Budget::default();
    Parser::new_from_str(text)
        .load(&mut budget, true)
        .map_err(|e| e.to_string())?;
    match budget.over {
        Some(m) => Err(format!(
            "line {}: through its aliases (*name) this file expands to more than {MAX_EXPANDED_VALUES} values; write the values out",
            m.line()
        )),
        None => Ok(()),
    }
}

fn first_doc(text: &str) -> Result<Yaml, String> {
    check_alias_expansion(text)?;
    let mut docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
    match docs.len() {
        0 => Ok(Yaml::Null),
        1 => Ok(docs.remove(0)),
        n => Err(format!("expected one YAML document, found {n}")),
    }
}

fn key_string(k: &Yaml) -> Result<String, String> {
    match k {
        Yaml::String(s) | Yaml::Real(s) => Ok(s.clone()),
        Yaml::Integer(i) => Ok(i.to_string()),
        Yaml::Boolean(b) => Ok(b.to_string()),
        other => Err(format!("mapping keys must be scalars, found {other:?}")),
    }
}

fn to_json(y: Yaml) -> Result<Value, String> {
    Ok(match y {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(b),
        Yaml::Integer(i) => Value::Number(i.into()),
        Yaml::Real(s) => match s.parse::<f64>().ok().and_then(Number::from_f64) {
            Some(n) => Value::Number(n),
            // .inf / .nan have no JSON form; keep the text rather than fail.
            None => Value::String(s),
        },
        Yaml::String(s) => Value::String(s),
        Yaml::Array(a) => Value::Array(a.into_iter().map(to_json).collect::<Result<_, _>>()?),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                m.insert(key_string(&k)?, to_json(v)?);
            }
            Value::Object(m)
        }
        Yaml::Alias(_) => return Err("YAML aliases are not supported".into()),
        Yaml::BadValue => return Err("invalid YAML value".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_scalars_and_nesting() {
        let v = parse_str("a: 1\nb: [x, true, 1.5]\nc: { d: ~ }\n").unwrap();
        assert_eq!(v["a"], 1);
        assert_eq!(v["b"][0], "x");
        assert_eq!(v["b"][1], true);
        assert_eq!(v["b"][2], 1.5);
        assert!(v["c"]["d"].is_null());
    }

    /// Six levels of ten aliases: over a million values once expanded (ten
    /// levels are ten billion; six keep the old loader's run of this test
    /// within memory). Refused from the parser's events.
    #[test]
    fn an_alias_bomb_is_refused_without_expanding_it() {
        let mut text = String::from("l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..6 {
            let p = format!("*l{}", i - 1);
            text.push_str(&format!("l{i}: &l{i} [{}]\n", [p.as_str(); 10].join(", ")));
        }
        let started = std::time::Instant::now();
        let err = parse_str(&text).expect_err("an alias bomb");
        assert!(err.contains("expands to more than"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        // Moderate reuse is fine.
        let v = parse_str("a: &x [1, 2]\nb: *x\nc: *x\n").unwrap();
        assert_eq!(v["c"], v["a"]);
    }

    #[test]
    fn anchors_and_aliases_are_resolved() {
        let v = parse_str("a: &x [1, 2]\nb: *x\n").unwrap();
        assert_eq!(v["b"], v["a"]);
    }

    #[test]
    fn reports_syntax_errors_with_position() {
        let err = parse_str("a: [1, 2\n").unwrap_err();
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn ordered_map_keeps_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.yml");
        std::fs::write(&p, "z: 1\na: 2\nm: 3\n").unwrap();
        let keys: Vec<String> = load_ordered_map(&p)
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(keys, ["z", "a", "m"]);
    }
}
