//! The `--json` event contract, docs/events.schema.json, checked: a small
//! validator for the subset of JSON Schema the file uses. Shared by the
//! unit tests of `output.rs` and the CLI tests.
#![allow(dead_code)]

use serde_json::Value;

/// A small validator for the subset of JSON Schema that
/// docs/events.schema.json uses: type, const, enum, required,
/// properties, additionalProperties (false), items, oneOf, $ref to
/// #/$defs. Errors say where.
pub fn validate(schema: &Value, root: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        let name = r
            .strip_prefix("#/$defs/")
            .ok_or_else(|| format!("{at}: unsupported $ref {r}"))?;
        let target = root["$defs"]
            .get(name)
            .ok_or_else(|| format!("{at}: no $defs/{name}"))?;
        return validate(target, root, v, at);
    }
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        let ok: Vec<usize> = options
            .iter()
            .enumerate()
            .filter(|(_, s)| validate(s, root, v, at).is_ok())
            .map(|(i, _)| i)
            .collect();
        return match ok.len() {
            1 => Ok(()),
            0 => Err(format!("{at}: matches none of oneOf: {v}")),
            _ => Err(format!("{at}: matches several of oneOf ({ok:?}): {v}")),
        };
    }
    if let Some(c) = schema.get("const") {
        if c != v {
            return Err(format!("{at}: expected {c}, found {v}"));
        }
    }
    if let Some(e) = schema.get("enum").and_then(Value::as_array) {
        if !e.contains(v) {
            return Err(format!("{at}: {v} is not one of {e:?}"));
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => return Err(format!("{at}: bad type in schema")),
        };
        let is = |t: &str| match t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            _ => false,
        };
        if !types.iter().any(|t| is(t)) {
            return Err(format!("{at}: expected {types:?}, found {v}"));
        }
    }
    if let Value::Object(m) = v {
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = r.as_str().unwrap_or_default();
            if !m.contains_key(key) {
                return Err(format!("{at}: missing `{key}` in {v}"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        for (k, x) in m {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(s, root, x, &format!("{at}.{k}"))?,
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{at}: unexpected `{k}` in {v}"))
                    }
                    Some(s @ Value::Object(_)) => validate(s, root, x, &format!("{at}.{k}"))?,
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (v, schema.get("items")) {
        for (i, x) in items.iter().enumerate() {
            validate(s, root, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

pub fn schema() -> Value {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/events.schema.json");
    serde_json::from_str(&std::fs::read_to_string(p).expect("docs/events.schema.json"))
        .expect("the schema is JSON")
}

/// Validate one JSON line against the event schema.
pub fn check_line(line: &str) -> Result<(), String> {
    let v: Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e}): {line}"))?;
    let s = schema();
    validate(&s, &s, &v, "$")
}

/// Every line of a command's stdout is one event of the contract.
pub fn check_stdout(stdout: &[u8]) -> Result<usize, String> {
    let text = String::from_utf8_lossy(stdout);
    let mut n = 0;
    for line in text.lines() {
        check_line(line)?;
        n += 1;
    }
    Ok(n)
}
