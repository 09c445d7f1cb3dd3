//! YAML config files (kubeconfig, KubeletConfiguration, ...) read into
//! `serde_json::Value`, so the rest of the crate handles one data model.

use serde_json::{Map, Number, Value};
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

/// Errors from reading a YAML file.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parsing {path}: {message}")]
    Parse { path: PathBuf, message: String },
}

/// Parses every document of a YAML text.
pub fn parse_all(text: &str, path: &Path) -> Result<Vec<Value>, YamlError> {
    let docs = YamlLoader::load_from_str(text).map_err(|e| YamlError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(docs.iter().map(to_json).collect())
}

/// Reads a file holding one YAML (or JSON) document; empty files give Null.
pub fn read_file(path: &Path) -> Result<Value, YamlError> {
    let text = std::fs::read_to_string(path).map_err(|source| YamlError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(parse_all(&text, path)?
        .into_iter()
        .next()
        .unwrap_or(Value::Null))
}

/// Converts one YAML node.
pub fn to_json(y: &Yaml) -> Value {
    match y {
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::Number((*i).into()),
        Yaml::Real(s) => s
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .unwrap_or_else(|| Value::String(s.clone())),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        Yaml::Hash(h) => {
            let mut m = Map::new();
            for (k, v) in h {
                let key = match k {
                    Yaml::String(s) | Yaml::Real(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => continue,
                };
                m.insert(key, to_json(v));
            }
            Value::Object(m)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_nested_documents() {
        let docs = parse_all(
            "a: 1\nb: [x, 2.5, true, null]\nc: {d: \"10s\"}\n---\nkind: X\n",
            Path::new("t"),
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(
            docs[0],
            serde_json::json!({"a":1,"b":["x",2.5,true,null],"c":{"d":"10s"}})
        );
        assert_eq!(docs[1]["kind"], "X");
    }

    #[test]
    fn reports_path_on_error() {
        let e = parse_all("a: [", Path::new("/x/y.yaml")).unwrap_err();
        assert!(e.to_string().contains("/x/y.yaml"));
        let e = read_file(Path::new("/nonexistent/k.yaml")).unwrap_err();
        assert!(matches!(e, YamlError::Read { .. }));
    }
}
