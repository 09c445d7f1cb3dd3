//! `meta.k8s.io/v1 Table` rendering for `kubectl get` (columns like the
//! real server's printers for the common kinds; Name and Age otherwise).

use super::resources::Resource;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Short human duration like the real printers (`5m`, `3h12m`, `4d`).
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        match s % 60 {
            0 => format!("{m}m"),
            r => format!("{m}m{r}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            r => format!("{h}h{r}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{}d", h / 24),
            r => format!("{}d{r}h", h / 24),
        }
    } else if h < 24 * 365 * 2 {
        format!("{}d", h / 24)
    } else if h < 24 * 365 * 8 {
        format!("{}y{}d", h / 24 / 365, (h / 24) % 365)
    } else {
        format!("{}y", h / 24 / 365)
    }
}

/// Age of an object from its creationTimestamp.
pub fn age(obj: &Value, now: OffsetDateTime) -> String {
    obj.pointer("/metadata/creationTimestamp")
        .and_then(Value::as_str)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .map(|t| human_duration((now - t).whole_seconds()))
        .unwrap_or_else(|| "<unknown>".into())
}

fn s<'a>(obj: &'a Value, p: &str) -> &'a str {
    obj.pointer(p).and_then(Value::as_str).unwrap_or("")
}

fn n(obj: &Value, p: &str) -> i64 {
    obj.pointer(p).and_then(Value::as_i64).unwrap_or(0)
}

fn or_none(v: String) -> String {
    if v.is_empty() {
        "<none>".into()
    } else {
        v
    }
}

/// Node STATUS: Ready/NotReady/Unknown, plus SchedulingDisabled.
pub fn node_status(node: &Value) -> String {
    let ready = node
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| s(c, "/type") == "Ready"))
        .map(|c| s(c, "/status"));
    let mut out = match ready {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if node.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        out.push_str(",SchedulingDisabled");
    }
    out
}

/// Node ROLES from `node-role.kubernetes.io/<role>` and `kubernetes.io/role`.
pub fn node_roles(node: &Value) -> String {
    let mut roles: Vec<String> = node
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|l| {
            l.iter()
                .filter_map(|(k, v)| {
                    if let Some(r) = k.strip_prefix("node-role.kubernetes.io/") {
                        Some(r.to_string())
                    } else if k == "kubernetes.io/role" {
                        v.as_str().map(str::to_string)
                    } else {
                        None
                    }
                })
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default();
    roles.sort();
    roles.dedup();
    or_none(roles.join(","))
}

fn address(node: &Value, kind: &str) -> String {
    node.pointer("/status/addresses")
        .and_then(Value::as_array)
        .and_then(|a| a.iter().find(|x| s(x, "/type") == kind))
        .map(|x| s(x, "/address").to_string())
        .unwrap_or_else(|| "<none>".into())
}

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
                    match p.get("nodePort").and_then(Value::as_i64) {
                        Some(np) => format!("{}:{np}/{proto}", n(p, "/port")),
                        None => format!("{}/{proto}", n(p, "/port")),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    or_none(ports.join(","))
}

fn map_selector(v: Option<&Value>) -> String {
    let parts: Vec<String> = v
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    or_none(parts.join(","))
}

fn containers(obj: &Value, field: &str) -> String {
    let names: Vec<&str> = obj
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().map(|c| s(c, field)).collect())
        .unwrap_or_default();
    names.join(",")
}

fn subjects(obj: &Value, kind: &str) -> String {
    let v: Vec<String> = obj
        .get("subjects")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter(|x| s(x, "/kind") == kind)
                .map(|x| match kind {
                    "ServiceAccount" => format!("{}/{}", s(x, "/namespace"), s(x, "/name")),
                    _ => s(x, "/name").to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    v.join(", ")
}

type Cell = fn(&Value, OffsetDateTime) -> Value;

struct Column {
    name: &'static str,
    kind: &'static str,
    priority: u8,
    cell: Cell,
}

const fn col(name: &'static str, kind: &'static str, priority: u8, cell: Cell) -> Column {
    Column {
        name,
        kind,
        priority,
        cell,
    }
}

fn name_cell(o: &Value, _: OffsetDateTime) -> Value {
    json!(s(o, "/metadata/name"))
}

fn age_cell(o: &Value, now: OffsetDateTime) -> Value {
    json!(age(o, now))
}

fn created_at(o: &Value, _: OffsetDateTime) -> Value {
    json!(s(o, "/metadata/creationTimestamp"))
}

fn columns(plural: &str) -> Vec<Column> {
    let name = col("Name", "string", 0, name_cell);
    let age = col("Age", "string", 0, age_cell);
    match plural {
        "nodes" => vec![
            name,
            col("Status", "string", 0, |o, _| json!(node_status(o))),
            col("Roles", "string", 0, |o, _| json!(node_roles(o))),
            age,
            col("Version", "string", 0, |o, _| {
                json!(s(o, "/status/nodeInfo/kubeletVersion"))
            }),
            col("Internal-IP", "string", 1, |o, _| {
                json!(address(o, "InternalIP"))
            }),
            col("External-IP", "string", 1, |o, _| {
                json!(address(o, "ExternalIP"))
            }),
            col("OS-Image", "string", 1, |o, _| {
                json!(s(o, "/status/nodeInfo/osImage"))
            }),
            col("Kernel-Version", "string", 1, |o, _| {
                json!(s(o, "/status/nodeInfo/kernelVersion"))
            }),
            col("Container-Runtime", "string", 1, |o, _| {
                json!(s(o, "/status/nodeInfo/containerRuntimeVersion"))
            }),
        ],
        "pods" => vec![
            name,
            col("Ready", "string", 0, |o, _| {
                let total = o
                    .pointer("/spec/containers")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len);
                let ready = o
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .map_or(0, |a| {
                        a.iter()
                            .filter(|c| c.get("ready") == Some(&json!(true)))
                            .count()
                    });
                json!(format!("{ready}/{total}"))
            }),
            col("Status", "string", 0, |o, _| {
                let phase = s(o, "/status/phase");
                json!(if phase.is_empty() { "Pending" } else { phase })
            }),
            col("Restarts", "string", 0, |_, _| json!("0")),
            age,
            col("IP", "string", 1, |o, _| {
                json!(or_none(s(o, "/status/podIP").into()))
            }),
            col("Node", "string", 1, |o, _| {
                json!(or_none(s(o, "/spec/nodeName").into()))
            }),
        ],
        "services" => vec![
            name,
            col("Type", "string", 0, |o, _| json!(s(o, "/spec/type"))),
            col("Cluster-IP", "string", 0, |o, _| {
                json!(or_none(s(o, "/spec/clusterIP").into()))
            }),
            col("External-IP", "string", 0, |_, _| json!("<none>")),
            col("Port(s)", "string", 0, |o, _| json!(service_ports(o))),
            age,
            col("Selector", "string", 1, |o, _| {
                json!(map_selector(o.pointer("/spec/selector")))
            }),
        ],
        "deployments" => vec![
            name,
            col("Ready", "string", 0, |o, _| {
                json!(format!(
                    "{}/{}",
                    n(o, "/status/readyReplicas"),
                    o.pointer("/spec/replicas")
                        .and_then(Value::as_i64)
                        .unwrap_or(1)
                ))
            }),
            col("Up-to-date", "integer", 0, |o, _| {
                json!(n(o, "/status/updatedReplicas"))
            }),
            col("Available", "integer", 0, |o, _| {
                json!(n(o, "/status/availableReplicas"))
            }),
            age,
            col("Containers", "string", 1, |o, _| {
                json!(containers(o, "/name"))
            }),
            col("Images", "string", 1, |o, _| json!(containers(o, "/image"))),
            col("Selector", "string", 1, |o, _| {
                json!(map_selector(o.pointer("/spec/selector/matchLabels")))
            }),
        ],
        "daemonsets" => vec![
            name,
            col("Desired", "integer", 0, |o, _| {
                json!(n(o, "/status/desiredNumberScheduled"))
            }),
            col("Current", "integer", 0, |o, _| {
                json!(n(o, "/status/currentNumberScheduled"))
            }),
            col("Ready", "integer", 0, |o, _| {
                json!(n(o, "/status/numberReady"))
            }),
            col("Up-to-date", "integer", 0, |o, _| {
                json!(n(o, "/status/updatedNumberScheduled"))
            }),
            col("Available", "integer", 0, |o, _| {
                json!(n(o, "/status/numberAvailable"))
            }),
            col("Node Selector", "string", 0, |o, _| {
                json!(map_selector(o.pointer("/spec/template/spec/nodeSelector")))
            }),
            age,
            col("Containers", "string", 1, |o, _| {
                json!(containers(o, "/name"))
            }),
            col("Images", "string", 1, |o, _| json!(containers(o, "/image"))),
        ],
        "namespaces" => vec![
            name,
            col("Status", "string", 0, |o, _| json!(s(o, "/status/phase"))),
            age,
        ],
        "configmaps" => vec![
            name,
            col("Data", "integer", 0, |o, _| {
                let c = |f: &str| o.get(f).and_then(Value::as_object).map_or(0, |m| m.len());
                json!(c("data") + c("binaryData"))
            }),
            age,
        ],
        "secrets" => vec![
            name,
            col("Type", "string", 0, |o, _| json!(s(o, "/type"))),
            col("Data", "integer", 0, |o, _| {
                json!(o
                    .get("data")
                    .and_then(Value::as_object)
                    .map_or(0, |m| m.len()))
            }),
            age,
        ],
        "clusterrolebindings" | "rolebindings" => vec![
            name,
            col("Role", "string", 0, |o, _| {
                json!(format!(
                    "{}/{}",
                    s(o, "/roleRef/kind"),
                    s(o, "/roleRef/name")
                ))
            }),
            age,
            col("Users", "string", 1, |o, _| json!(subjects(o, "User"))),
            col("Groups", "string", 1, |o, _| json!(subjects(o, "Group"))),
            col("ServiceAccounts", "string", 1, |o, _| {
                json!(subjects(o, "ServiceAccount"))
            }),
        ],
        "clusterroles" | "roles" | "customresourcedefinitions" => {
            vec![name, col("Created At", "date", 0, created_at)]
        }
        _ => vec![name, age],
    }
}

/// Renders objects as a Table. `include_object` is the request's
/// `includeObject` (`Object`, `None`, default `Metadata`).
pub fn render(
    res: &Resource,
    objs: &[Value],
    resource_version: &str,
    include_object: &str,
) -> Value {
    let cols = columns(&res.plural);
    let now = OffsetDateTime::now_utc();
    let defs: Vec<Value> = cols
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": if c.name == "Name" { "name" } else { "" },
                "description": "",
                "priority": c.priority,
            })
        })
        .collect();
    let rows: Vec<Value> = objs
        .iter()
        .map(|o| {
            let cells: Vec<Value> = cols.iter().map(|c| (c.cell)(o, now)).collect();
            let object = match include_object {
                "Object" => o.clone(),
                "None" => Value::Null,
                _ => json!({
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                }),
            };
            json!({"cells": cells, "object": object})
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": resource_version},
        "columnDefinitions": defs,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::Registry;

    #[test]
    fn durations_like_kubectl() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(4 * 3600 + 60), "4h1m");
        assert_eq!(human_duration(30 * 3600), "30h");
        assert_eq!(human_duration(3 * 86400 + 3600), "3d1h");
        assert_eq!(human_duration(100 * 86400), "100d");
    }

    #[test]
    fn node_rows() {
        let reg = Registry::new();
        let nodes = reg.find("", "v1", "nodes").unwrap();
        let node = json!({
            "metadata": {"name": "n1", "creationTimestamp": "2020-01-01T00:00:00Z",
                          "labels": {"node-role.kubernetes.io/master": "", "kubernetes.io/role": "node"}},
            "spec": {"unschedulable": true},
            "status": {"conditions": [{"type": "Ready", "status": "False"}],
                       "nodeInfo": {"kubeletVersion": "v1.30.1"}}
        });
        let t = render(&nodes, &[node], "7", "");
        let cells = &t["rows"][0]["cells"];
        assert_eq!(cells[0], "n1");
        assert_eq!(cells[1], "NotReady,SchedulingDisabled");
        assert_eq!(cells[2], "master,node");
        assert_eq!(cells[4], "v1.30.1");
        assert_eq!(t["columnDefinitions"][1]["name"], "Status");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
    }
}
