//! The three PATCH flavours kubectl sends: JSON merge patch (RFC 7386),
//! strategic merge patch, and JSON patch (RFC 6902).
//!
//! Strategic merge without Go type metadata: a list is merged by key when
//! the patch carries a `$setElementOrder/<list>` directive (kubectl always
//! sends one for merge-keyed lists, and its entries name the merge key);
//! otherwise a list is replaced, as JSON merge patch would.

use serde_json::{Map, Value};

/// Errors applying a patch.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PatchError {
    #[error("invalid JSON patch: {0}")]
    InvalidJsonPatch(String),
    #[error("JSON patch test failed at {0}")]
    TestFailed(String),
    #[error("patch path {0} does not exist")]
    NoPath(String),
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

const ORDER: &str = "$setElementOrder/";
const DEL_PRIM: &str = "$deleteFromPrimitiveList/";

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn directive(v: &Value) -> Option<&str> {
    v.get("$patch").and_then(Value::as_str)
}

/// Applies a strategic merge patch.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if directive(patch) == Some("replace") {
        *target = strip_directives(patch);
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(_) if directive(v) == Some("delete") => {
                t.remove(k);
            }
            Value::Object(_) => {
                strategic_merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
            Value::Array(items) => match p.get(&format!("{ORDER}{k}")).and_then(Value::as_array) {
                Some(order) => {
                    let cur = t.entry(k.clone()).or_insert(Value::Array(vec![]));
                    merge_list(cur, items, order);
                }
                None => {
                    t.insert(k.clone(), strip_directives(v));
                }
            },
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
    // Directives about lists the patch did not otherwise touch.
    for (k, v) in p {
        if let Some(list) = k.strip_prefix(DEL_PRIM) {
            if let (Some(Value::Array(cur)), Some(del)) = (t.get_mut(list), v.as_array()) {
                cur.retain(|x| !del.contains(x));
            }
        } else if let Some(list) = k.strip_prefix(ORDER) {
            if !p.contains_key(list) {
                if let (Some(cur), Some(order)) = (t.get_mut(list), v.as_array()) {
                    reorder(cur, order, merge_key(order).as_deref());
                }
            }
        }
    }
}

/// The merge key named by `$setElementOrder` entries (`{"name": "x"}`).
fn merge_key(order: &[Value]) -> Option<String> {
    order
        .iter()
        .find_map(|e| e.as_object().and_then(|m| m.keys().next().cloned()))
}

fn same_key(a: &Value, b: &Value, key: &str) -> bool {
    a.get(key).is_some() && a.get(key) == b.get(key)
}

fn merge_list(cur: &mut Value, items: &[Value], order: &[Value]) {
    if !cur.is_array() {
        *cur = Value::Array(vec![]);
    }
    let key = merge_key(order);
    let Value::Array(list) = cur else { return };
    match &key {
        Some(key) => {
            for item in items {
                let pos = list.iter().position(|e| same_key(e, item, key));
                match (directive(item), pos) {
                    (Some("delete"), Some(i)) => {
                        list.remove(i);
                    }
                    (Some("delete"), None) => {}
                    (_, Some(i)) => strategic_merge(&mut list[i], item),
                    (_, None) => list.push(strip_directives(item)),
                }
            }
        }
        None => {
            for item in items {
                if !list.contains(item) {
                    list.push(item.clone());
                }
            }
        }
    }
    reorder(cur, order, key.as_deref());
}

/// Puts elements named in `order` first, in that order; others follow.
fn reorder(cur: &mut Value, order: &[Value], key: Option<&str>) {
    let Value::Array(list) = cur else { return };
    let mut rest = std::mem::take(list);
    for o in order {
        let pos = match key {
            Some(k) => rest.iter().position(|e| same_key(e, o, k)),
            None => rest.iter().position(|e| e == o),
        };
        if let Some(i) = pos {
            list.push(rest.remove(i));
        }
    }
    list.extend(rest);
}

fn unescape(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(String, String), PatchError> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| PatchError::InvalidJsonPatch(format!("bad path {path:?}")))?;
    Ok((parent.to_string(), unescape(last)))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => {
            m.insert(last, value);
            Ok(())
        }
        Some(Value::Array(a)) => {
            let i = if last == "-" {
                a.len()
            } else {
                last.parse::<usize>()
                    .ok()
                    .filter(|i| *i <= a.len())
                    .ok_or_else(|| PatchError::NoPath(path.into()))?
            };
            a.insert(i, value);
            Ok(())
        }
        _ => Err(PatchError::NoPath(path.into())),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = split_pointer(path)?;
    match doc.pointer_mut(&parent) {
        Some(Value::Object(m)) => m
            .remove(&last)
            .ok_or_else(|| PatchError::NoPath(path.into())),
        Some(Value::Array(a)) => {
            let i = last
                .parse::<usize>()
                .ok()
                .filter(|i| *i < a.len())
                .ok_or_else(|| PatchError::NoPath(path.into()))?;
            Ok(a.remove(i))
        }
        _ => Err(PatchError::NoPath(path.into())),
    }
}

/// RFC 6902 JSON patch.
pub fn json_patch(doc: &mut Value, ops: &Value) -> Result<(), PatchError> {
    let ops = ops
        .as_array()
        .ok_or_else(|| PatchError::InvalidJsonPatch("not an array".into()))?;
    for op in ops {
        let s = |f: &str| op.get(f).and_then(Value::as_str);
        let path = s("path").ok_or_else(|| PatchError::InvalidJsonPatch("missing path".into()))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError::InvalidJsonPatch("missing value".into()))
        };
        match s("op") {
            Some("add") => add(doc, path, value()?)?,
            Some("remove") => {
                remove(doc, path)?;
            }
            Some("replace") => {
                remove(doc, path)?;
                add(doc, path, value()?)?;
            }
            Some("test") => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(PatchError::TestFailed(path.into()));
                }
            }
            Some("move") | Some("copy") => {
                let from =
                    s("from").ok_or_else(|| PatchError::InvalidJsonPatch("missing from".into()))?;
                let v = if s("op") == Some("move") {
                    remove(doc, from)?
                } else {
                    doc.pointer(from)
                        .cloned()
                        .ok_or_else(|| PatchError::NoPath(from.into()))?
                };
                add(doc, path, v)?;
            }
            other => {
                return Err(PatchError::InvalidJsonPatch(format!(
                    "unknown op {other:?}"
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_rfc7386() {
        let mut t = json!({"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]});
        merge_patch(&mut t, &json!({"a": "z", "c": {"f": null}, "l": [3]}));
        assert_eq!(t, json!({"a": "z", "c": {"d": "e"}, "l": [3]}));
    }

    #[test]
    fn strategic_merges_keyed_lists_by_set_element_order() {
        let mut t = json!({"spec": {"containers": [
            {"name": "a", "image": "a:1", "args": ["x"]},
            {"name": "b", "image": "b:1"}
        ]}});
        let p = json!({"spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}, {"name": "c"}],
            "containers": [{"name": "a", "image": "a:2"}, {"name": "c", "image": "c:1"}]
        }});
        strategic_merge(&mut t, &p);
        assert_eq!(
            t,
            json!({"spec": {"containers": [
                {"name": "b", "image": "b:1"},
                {"name": "a", "image": "a:2", "args": ["x"]},
                {"name": "c", "image": "c:1"}
            ]}})
        );
    }

    #[test]
    fn strategic_delete_directives() {
        let mut t =
            json!({"m": {"x": 1}, "l": [{"name": "a"}, {"name": "b"}], "f": ["p", "q"], "k": 1});
        let p = json!({
            "m": {"$patch": "delete"},
            "$setElementOrder/l": [{"name": "a"}],
            "l": [{"name": "b", "$patch": "delete"}],
            "$deleteFromPrimitiveList/f": ["q"],
            "k": null,
        });
        strategic_merge(&mut t, &p);
        assert_eq!(t, json!({"l": [{"name": "a"}], "f": ["p"]}));
    }

    #[test]
    fn strategic_without_order_replaces_lists_and_sets_scalars() {
        let mut t = json!({"spec": {"unschedulable": false, "taints": [{"key": "a"}]}});
        strategic_merge(
            &mut t,
            &json!({"spec": {"unschedulable": true, "taints": [{"key": "b"}]}}),
        );
        assert_eq!(
            t,
            json!({"spec": {"unschedulable": true, "taints": [{"key": "b"}]}})
        );
    }

    #[test]
    fn json_patch_ops() {
        let mut d = json!({"metadata": {"labels": {"a": "1"}}, "l": [1, 3]});
        json_patch(
            &mut d,
            &json!([
                {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
                {"op": "remove", "path": "/metadata/labels/a"},
                {"op": "add", "path": "/l/1", "value": 2},
                {"op": "replace", "path": "/l/0", "value": 0},
                {"op": "test", "path": "/l/2", "value": 3},
            ]),
        )
        .unwrap();
        assert_eq!(
            d,
            json!({"metadata": {"labels": {"b/c": "2"}}, "l": [0, 2, 3]})
        );
        assert_eq!(
            json_patch(&mut d, &json!([{"op": "test", "path": "/l/0", "value": 9}])),
            Err(PatchError::TestFailed("/l/0".into()))
        );
        assert!(json_patch(&mut d, &json!([{"op": "remove", "path": "/nope"}])).is_err());
    }
}
