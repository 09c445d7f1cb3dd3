//! Variables and tera evaluation.
//!
//! Precedence, lowest first: role defaults, globals, host vars (with
//! `inventory_hostname`, `groups`, `hostvars`), registered results, `item`.

use std::collections::BTreeMap;

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

pub(crate) fn render_str(s: &str, ctx: &Context) -> Result<String, TaskError> {
    if !is_templated(s) {
        return Ok(s.to_string());
    }
    Tera::one_off(s, ctx, false).map_err(|e| TaskError::Render {
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
    let out = Tera::one_off(&tpl, ctx, false).map_err(|e| TaskError::Render {
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
    let out = Tera::one_off(&tpl, ctx, false).map_err(|e| TaskError::Render {
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
