//! Label selectors (`a=b,c!=d,e in (x,y),!f`) and field selectors
//! (`spec.nodeName=n1,metadata.namespace!=x`).

use serde_json::Value;

/// Errors parsing a selector.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unable to parse requirement: {0:?}")]
pub struct SelectorError(pub String);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Op {
    Eq(String),
    NotEq(String),
    In(Vec<String>),
    NotIn(Vec<String>),
    Exists,
    NotExists,
}

/// A parsed selector: every requirement must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    reqs: Vec<(String, Op)>,
}

/// Splits on commas that are not inside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn set_values(s: &str) -> Result<Vec<String>, SelectorError> {
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError(s.to_string()))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

impl Selector {
    /// Parses a label selector (set-based syntax allowed).
    pub fn parse_labels(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let req = if let Some(k) = part.strip_prefix('!') {
                (k.trim().to_string(), Op::NotExists)
            } else if let Some((k, v)) = part.split_once("!=") {
                (k.trim().into(), Op::NotEq(v.trim().into()))
            } else if let Some((k, v)) = part.split_once("==") {
                (k.trim().into(), Op::Eq(v.trim().into()))
            } else if let Some((k, v)) = part.split_once('=') {
                (k.trim().into(), Op::Eq(v.trim().into()))
            } else if let Some((k, v)) = part.split_once(" notin ") {
                (k.trim().into(), Op::NotIn(set_values(v)?))
            } else if let Some((k, v)) = part.split_once(" in ") {
                (k.trim().into(), Op::In(set_values(v)?))
            } else if part.contains(['(', ')', ' ']) {
                return Err(SelectorError(part));
            } else {
                (part.clone(), Op::Exists)
            };
            if req.0.is_empty() {
                return Err(SelectorError(part));
            }
            reqs.push(req);
        }
        Ok(Self { reqs })
    }

    /// Parses a field selector (only `=`, `==`, `!=`).
    pub fn parse_fields(s: &str) -> Result<Self, SelectorError> {
        let mut reqs = Vec::new();
        for part in split_top(s) {
            let req = if let Some((k, v)) = part.split_once("!=") {
                (k.trim().into(), Op::NotEq(v.trim().into()))
            } else if let Some((k, v)) = part.split_once("==") {
                (k.trim().into(), Op::Eq(v.trim().into()))
            } else if let Some((k, v)) = part.split_once('=') {
                (k.trim().into(), Op::Eq(v.trim().into()))
            } else {
                return Err(SelectorError(part));
            };
            reqs.push(req);
        }
        Ok(Self { reqs })
    }

    /// Whether `get(key)` values satisfy every requirement.
    fn matches_with(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.reqs.iter().all(|(k, op)| {
            let v = get(k);
            match op {
                Op::Eq(want) => v.as_deref() == Some(want.as_str()),
                Op::NotEq(want) => v.as_deref() != Some(want.as_str()),
                Op::In(set) => v.is_some_and(|v| set.contains(&v)),
                Op::NotIn(set) => !v.is_some_and(|v| set.contains(&v)),
                Op::Exists => v.is_some(),
                Op::NotExists => v.is_none(),
            }
        })
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches_labels(&self, obj: &Value) -> bool {
        let labels = obj.pointer("/metadata/labels");
        self.matches_with(|k| {
            labels
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    }

    /// Matches a field path of an object; a missing field reads as "".
    pub fn matches_fields(&self, obj: &Value) -> bool {
        self.matches_with(|k| Some(field_value(obj, k)))
    }

    /// True when the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.reqs.is_empty()
    }
}

/// The string form of a dotted field path (`spec.nodeName`).
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Matches a `matchLabels`/`matchExpressions` LabelSelector object
/// (PodDisruptionBudget, Deployment) against labels.
pub fn label_selector_matches(sel: &Value, obj: &Value) -> bool {
    let mut parts = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(exprs) = sel.get("matchExpressions").and_then(Value::as_array) {
        for e in exprs {
            let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
            let vals: Vec<&str> = e
                .get("values")
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match e.get("operator").and_then(Value::as_str) {
                Some("In") => parts.push(format!("{key} in ({})", vals.join(","))),
                Some("NotIn") => parts.push(format!("{key} notin ({})", vals.join(","))),
                Some("Exists") => parts.push(key.to_string()),
                Some("DoesNotExist") => parts.push(format!("!{key}")),
                _ => return false,
            }
        }
    }
    Selector::parse_labels(&parts.join(","))
        .map(|s| s.matches_labels(obj))
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn label_selectors() {
        let o = json!({"metadata": {"labels": {"app": "web", "tier": "fe"}}});
        let ok = |s: &str| Selector::parse_labels(s).unwrap().matches_labels(&o);
        assert!(ok("app=web"));
        assert!(ok("app==web,tier!=be"));
        assert!(ok("app in (web, api),!gone"));
        assert!(ok("tier notin (be)"));
        assert!(ok("app"));
        assert!(!ok("app=api"));
        assert!(!ok("gone"));
        assert!(!ok("tier in (be)"));
        assert!(ok(""));
        assert!(Selector::parse_labels("a in x").is_err());
    }

    #[test]
    fn field_selectors() {
        let p = json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"}});
        let ok = |s: &str| Selector::parse_fields(s).unwrap().matches_fields(&p);
        assert!(ok("spec.nodeName=n1"));
        assert!(ok("spec.nodeName=n1,metadata.namespace!=kube-system"));
        assert!(!ok("spec.nodeName=n2"));
        assert!(ok("status.phase!=Running"));
        let unbound = json!({"spec": {}});
        assert!(Selector::parse_fields("spec.nodeName=")
            .unwrap()
            .matches_fields(&unbound));
        assert!(Selector::parse_fields("bogus").is_err());
    }

    #[test]
    fn label_selector_objects() {
        let pod = json!({"metadata": {"labels": {"k8s-app": "kube-dns"}}});
        assert!(label_selector_matches(
            &json!({"matchLabels": {"k8s-app": "kube-dns"}}),
            &pod
        ));
        assert!(!label_selector_matches(
            &json!({"matchLabels": {"k8s-app": "x"}}),
            &pod
        ));
        assert!(label_selector_matches(
            &json!({"matchExpressions": [{"key": "k8s-app", "operator": "In", "values": ["kube-dns"]}]}),
            &pod
        ));
    }
}
