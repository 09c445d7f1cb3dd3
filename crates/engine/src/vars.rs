//! Variables and tera evaluation.
//!
//! Precedence, lowest first: role defaults, globals, host vars (with
//! `inventory_hostname`, `groups`, `hostvars`), the play's `vars:`,
//! registered results, `item`.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use tera::{Context, Tera};

use crate::error::{chain, TaskError};
use crate::targets::Targets;

/// What every host sees of the cluster (`groups`, `hostvars`), built once
/// per run. A unit's variables are assembled when it starts, so only running
/// units hold a copy: memory stays O(concurrency x hosts), not O(hosts^2).
pub(crate) struct HostContexts {
    globals: Map<String, Value>,
    groups: Value,
    hostvars: Value,
    host_vars: BTreeMap<String, Map<String, Value>>,
}

impl HostContexts {
    pub(crate) fn build(targets: &Targets) -> Self {
        let mut groups: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let mut hostvars = Map::new();
        for h in &targets.hosts {
            groups
                .entry("all".into())
                .or_default()
                .push(h.name.clone().into());
            for g in &h.groups {
                groups
                    .entry(g.clone())
                    .or_default()
                    .push(h.name.clone().into());
            }
            hostvars.insert(h.name.clone(), Value::Object(h.vars.clone()));
        }
        let groups: Map<String, Value> = groups
            .into_iter()
            .map(|(k, v)| (k, Value::Array(v)))
            .collect();
        HostContexts {
            globals: targets.globals.clone(),
            groups: Value::Object(groups),
            hostvars: Value::Object(hostvars),
            host_vars: targets
                .hosts
                .iter()
                .map(|h| (h.name.clone(), h.vars.clone()))
                .collect(),
        }
    }

    /// Globals, then the host's vars over them, plus the cluster view.
    pub(crate) fn get(&self, host: &str) -> Option<Map<String, Value>> {
        let vars = self.host_vars.get(host)?;
        let mut m = self.globals.clone();
        m.extend(vars.clone());
        m.insert("inventory_hostname".into(), host.into());
        m.insert("groups".into(), self.groups.clone());
        m.insert("hostvars".into(), self.hostvars.clone());
        Some(m)
    }
}

/// Host variables with the role defaults filled in under them. A default may
/// use any host variable and the defaults above it in `defaults.yml`.
pub(crate) fn unit_context(
    host: Map<String, Value>,
    defaults: &[(String, Value)],
) -> Result<Context, TaskError> {
    let mut ctx = Context::from_value(Value::Object(host)).map_err(|e| TaskError::Render {
        what: "variables".into(),
        detail: chain(&e),
    })?;
    for (k, v) in defaults {
        if ctx.contains_key(k) {
            continue;
        }
        let rendered = render_value(v, &ctx).map_err(|e| match e {
            TaskError::Render { detail, .. } => TaskError::Render {
                what: format!("default `{k}`"),
                detail,
            },
            other => other,
        })?;
        ctx.insert(k.as_str(), &rendered);
    }
    Ok(ctx)
}

fn is_templated(s: &str) -> bool {
    s.contains("{{") || s.contains("{%") || s.contains("{#")
}

/// `"{{ expr }}"` and nothing else, not even whitespace around it.
fn sole_expression(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("{{")?.strip_suffix("}}")?;
    if inner.contains("{{") || inner.contains("}}") {
        return None;
    }
    Some(inner.trim())
}

/// A POSIX shell word that the shell reads back as exactly `s`: bare when
/// it only holds characters with no meaning to the shell (so a rendered
/// command stays readable and unchanged for ordinary values), else in
/// single quotes. A leading `~` or an `=` is quoted too: unquoted, they
/// are tilde expansion and an assignment.
pub fn shell_word(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(c, '@' | '%' | '+' | ':' | ',' | '.' | '/' | '_' | '-')
        });
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A double-quoted string literal that JSON, YAML and TOML all read back as
/// exactly `s`: `\\`, `"` and every control or line-breaking character
/// escaped as `\uXXXX` (TOML allows no raw DEL, YAML folds U+2028).
pub fn dquote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn filter_text(filter: &str, v: &Value) -> tera::Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(tera::Error::msg(format!(
            "filter `{filter}`: expected text, found {other}"
        ))),
    }
}

/// `{{ x | quote }}`: one shell word (a list: one word per item, separated
/// by spaces). Use it wherever a value enters a shell command.
fn quote_filter(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let words = match v {
        Value::Array(items) => items
            .iter()
            .map(|i| filter_text("quote", i).map(|t| shell_word(&t)))
            .collect::<tera::Result<Vec<_>>>()?
            .join(" "),
        other => shell_word(&filter_text("quote", other)?),
    };
    Ok(Value::String(words))
}

/// `{{ x | dquote }}`: a double-quoted string for TOML, YAML or JSON.
fn dquote_filter(v: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    Ok(Value::String(dquote(&filter_text("dquote", v)?)))
}

/// A tera instance with ezctl's filters. Every template and every string
/// the engine renders goes through one of these.
pub(crate) fn new_tera() -> Tera {
    let mut tera = Tera::default();
    tera.autoescape_on(vec![]);
    tera.register_filter("quote", quote_filter);
    tera.register_filter("dquote", dquote_filter);
    tera
}

thread_local! {
    /// One per thread: building a tera instance registers every built-in
    /// filter, which cost more than rendering a short argument.
    static ONE_OFF: RefCell<Tera> = RefCell::new(new_tera());
}

/// Render a one-off template with [`new_tera`]'s filters.
fn one_off(s: &str, ctx: &Context) -> Result<String, tera::Error> {
    ONE_OFF.with(|t| t.borrow_mut().render_str(s, ctx))
}

pub(crate) fn render_str(s: &str, ctx: &Context) -> Result<String, TaskError> {
    if !is_templated(s) {
        return Ok(s.to_string());
    }
    one_off(s, ctx).map_err(|e| TaskError::Render {
        what: format!("`{s}`"),
        detail: chain(&e),
    })
}

/// Evaluate a tera expression to a JSON value.
pub(crate) fn eval_expr(expr: &str, ctx: &Context) -> Result<Value, TaskError> {
    // `set` takes any expression, comparisons and `and`/`or` included, which
    // a filter applied to a parenthesised comparison does not.
    let tpl =
        format!("{{% set ezctl_value = {expr} %}}{{{{ ezctl_value | json_encode() | safe }}}}");
    let out = one_off(&tpl, ctx).map_err(|e| TaskError::Render {
        what: format!("`{expr}`"),
        detail: chain(&e),
    })?;
    serde_json::from_str(&out).map_err(|e| TaskError::Render {
        what: format!("`{expr}`"),
        detail: e.to_string(),
    })
}

/// A `when` condition: a tera expression (optionally wrapped in `{{ }}`).
pub(crate) fn eval_condition(cond: &str, ctx: &Context) -> Result<bool, TaskError> {
    let expr = sole_expression(cond.trim()).unwrap_or(cond.trim());
    let tpl = format!("{{% if {expr} %}}1{{% else %}}0{{% endif %}}");
    let out = one_off(&tpl, ctx).map_err(|e| TaskError::Render {
        what: format!("condition `{cond}`"),
        detail: chain(&e),
    })?;
    Ok(out == "1")
}

/// Render every string in a value. A string that is exactly `{{ expr }}`
/// giving a list or mapping keeps that type (`loop: "{{ groups.etcd }}"`);
/// scalars become text, which typed arguments parse (`retries: "{{ n }}"`).
pub(crate) fn render_value(v: &Value, ctx: &Context) -> Result<Value, TaskError> {
    Ok(match v {
        Value::String(s) => match sole_expression(s) {
            Some(expr) => match eval_expr(expr, ctx)? {
                Value::String(t) => Value::String(t),
                Value::Number(n) => Value::String(n.to_string()),
                Value::Bool(b) => Value::String(b.to_string()),
                other => other,
            },
            None => Value::String(render_str(s, ctx)?),
        },
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| render_value(x, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, x) in m {
                out.insert(k.clone(), render_value(x, ctx)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::TargetHost;
    use serde_json::json;

    fn ctx() -> Context {
        Context::from_value(json!({"a": 2, "list": [1, 2], "name": "x"})).unwrap()
    }

    #[test]
    fn quote_filter_gives_one_shell_word() {
        let ctx = Context::from_value(json!({
            "plain": "/var/lib/etcd",
            "evil": "a'; touch /tmp/x #",
            "list": ["a b", "c"],
            "n": 3,
        }))
        .unwrap();
        assert_eq!(
            render_str("rm {{ plain | quote }}", &ctx).unwrap(),
            "rm /var/lib/etcd"
        );
        assert_eq!(
            render_str("rm {{ evil | quote }}", &ctx).unwrap(),
            r"rm 'a'\''; touch /tmp/x #'"
        );
        assert_eq!(
            render_str("x {{ list | quote }}", &ctx).unwrap(),
            "x 'a b' c"
        );
        assert_eq!(render_str("{{ n | quote }}", &ctx).unwrap(), "3");
        for s in ["", "~root", "a=b", "$(id)", "`id`", "a\nb", "*"] {
            assert!(shell_word(s).starts_with('\''), "{s:?}");
        }
        // The shell reads it back unchanged.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf %s {}",
                shell_word("a'b\"c $(id) `x` \\ \n~")
            ))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "a'b\"c $(id) `x` \\ \n~"
        );
    }

    #[test]
    fn dquote_is_a_string_in_toml_yaml_and_json() {
        let nasty = "a\"b\\c\nd\r\u{7f}\u{2028}e\tf\u{1b}";
        let q = dquote(nasty);
        assert_eq!(serde_json::from_str::<String>(&q).unwrap(), nasty);
        let t: toml::Value = toml::from_str(&format!("k = {q}")).unwrap();
        assert_eq!(t["k"].as_str(), Some(nasty));
        let y = crate::yaml::parse_str(&format!("k: {q}")).unwrap();
        assert_eq!(y["k"], json!(nasty));
        let ctx = Context::from_value(json!({"v": nasty})).unwrap();
        assert_eq!(render_str("{{ v | dquote }}", &ctx).unwrap(), q);
    }

    #[test]
    fn conditions() {
        assert!(eval_condition("a == 2", &ctx()).unwrap());
        assert!(eval_condition("{{ a > 1 }}", &ctx()).unwrap());
        assert!(!eval_condition("name == 'y'", &ctx()).unwrap());
        assert!(eval_condition("nosuch == 1", &ctx()).is_err());
    }

    #[test]
    fn sole_expressions_may_compare_and_combine() {
        assert_eq!(
            render_value(&json!("{{ a != 0 }}"), &ctx()).unwrap(),
            json!("true")
        );
        assert_eq!(
            render_value(&json!("{{ a > 5 or name == 'x' }}"), &ctx()).unwrap(),
            json!("true")
        );
        assert_eq!(
            render_value(&json!("{{ list | length }}"), &ctx()).unwrap(),
            json!("2")
        );
    }

    #[test]
    fn sole_expression_keeps_type() {
        assert_eq!(
            render_value(&json!("{{ list }}"), &ctx()).unwrap(),
            json!([1, 2])
        );
        assert_eq!(render_value(&json!("{{ a }}"), &ctx()).unwrap(), json!("2"));
        assert_eq!(
            render_value(&json!("{{ name }}\n"), &ctx()).unwrap(),
            json!("x\n")
        );
        assert_eq!(
            render_value(&json!("n-{{ a }}"), &ctx()).unwrap(),
            json!("n-2")
        );
        assert_eq!(
            render_value(&json!({"k": ["{{ name }}"]}), &ctx()).unwrap(),
            json!({"k": ["x"]})
        );
    }

    #[test]
    fn precedence_defaults_under_host_vars() {
        let targets = Targets {
            globals: [
                ("g".to_string(), json!("global")),
                ("v".to_string(), json!("global")),
            ]
            .into_iter()
            .collect(),
            hosts: vec![TargetHost::new("h1").group("etcd").var("v", "host")],
        };
        let hc = HostContexts::build(&targets);
        let defaults = vec![
            ("v".to_string(), json!("default")),
            ("d".to_string(), json!("{{ g }}-d")),
            ("e".to_string(), json!("{{ d }}-e")),
        ];
        let ctx = unit_context(hc.get("h1").unwrap(), &defaults).unwrap();
        let j = ctx.into_json();
        assert_eq!(j["v"], "host");
        assert_eq!(j["e"], "global-d-e");
        assert_eq!(j["groups"]["etcd"], json!(["h1"]));
        assert_eq!(j["inventory_hostname"], "h1");
    }
}
