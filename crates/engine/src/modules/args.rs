//! Argument value types shared by modules.
//!
//! Arguments are checked twice: when the role is loaded (unknown keys, bad
//! literal values) and after rendering on each host. A templated string such
//! as `mode: "{{ key_mode }}"` cannot be checked at load time, so typed fields
//! use [`Deferred`], which holds the template until it is rendered.

use std::time::Duration;

use serde::de::{Deserialize, Deserializer, Error as _};
use serde_json::Value;

pub(crate) trait FromArg: Sized {
    fn from_arg(v: &Value) -> Result<Self, String>;
}

#[derive(Debug, Clone)]
pub(crate) enum Deferred<T> {
    Ready(T),
    Template(String),
}

impl<T: Clone> Deferred<T> {
    pub(crate) fn get(&self, field: &str) -> Result<T, String> {
        match self {
            Deferred::Ready(t) => Ok(t.clone()),
            Deferred::Template(s) => Err(format!(
                "`{field}` is still a template after rendering: {s}"
            )),
        }
    }
}

impl<'de, T: FromArg> Deserialize<'de> for Deferred<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(d)?;
        if let Value::String(s) = &v {
            if s.contains("{{") || s.contains("{%") {
                return Ok(Deferred::Template(s.clone()));
            }
        }
        T::from_arg(&v)
            .map(Deferred::Ready)
            .map_err(D::Error::custom)
    }
}

impl FromArg for bool {
    fn from_arg(v: &Value) -> Result<Self, String> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => Ok(true),
                "false" | "no" | "off" | "" => Ok(false),
                _ => Err(format!("expected true or false, found {s:?}")),
            },
            other => Err(format!("expected true or false, found {other}")),
        }
    }
}

impl FromArg for u64 {
    fn from_arg(v: &Value) -> Result<Self, String> {
        match v {
            Value::Number(n) => n
                .as_u64()
                .ok_or_else(|| format!("expected a whole number, found {n}")),
            Value::String(s) => s
                .trim()
                .parse()
                .map_err(|_| format!("expected a whole number, found {s:?}")),
            other => Err(format!("expected a whole number, found {other}")),
        }
    }
}

/// File permission bits. Written `"0644"` (quoted: YAML reads a bare 0644 as
/// the decimal 644, which is accepted too and read digit by digit as octal).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mode(pub u32);

impl FromArg for Mode {
    fn from_arg(v: &Value) -> Result<Self, String> {
        let text = match v {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) if n.is_u64() => n.to_string(),
            other => {
                return Err(format!(
                    "mode: expected an octal string like \"0644\", found {other}"
                ))
            }
        };
        let digits = text.strip_prefix("0o").unwrap_or(&text);
        match u32::from_str_radix(digits, 8) {
            Ok(m) if m <= 0o7777 => Ok(Mode(m)),
            _ => Err(format!("mode: {text:?} is not an octal mode like \"0644\"")),
        }
    }
}

/// `1.5s`, `500ms`, `2m`, `1h`, or a number of seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("expected a duration like 3s or 500ms, found {s:?}"))?;
    let secs = match unit.trim() {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("expected a duration like 3s or 500ms, found {s:?}")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("duration {s:?}: {e}"))
}

impl FromArg for Duration {
    fn from_arg(v: &Value) -> Result<Self, String> {
        match v {
            Value::Number(n) => {
                let f = n.as_f64().unwrap_or(-1.0);
                Duration::try_from_secs_f64(f).map_err(|e| format!("duration {n}: {e}"))
            }
            Value::String(s) => parse_duration(s),
            other => Err(format!("expected a duration like 3s, found {other}")),
        }
    }
}

/// A value given as a YAML scalar that should be used as text (`1` -> "1").
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modes() {
        assert_eq!(Mode::from_arg(&json!("0644")).unwrap(), Mode(0o644));
        assert_eq!(Mode::from_arg(&json!(755)).unwrap(), Mode(0o755));
        assert!(Mode::from_arg(&json!("0998")).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3s").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn deferred_keeps_templates_for_later() {
        let d: Deferred<Mode> = serde_json::from_value(json!("{{ m }}")).unwrap();
        assert!(matches!(d, Deferred::Template(_)));
        let bad: Result<Deferred<Mode>, _> = serde_json::from_value(json!("rw"));
        assert!(bad.is_err());
    }
}
