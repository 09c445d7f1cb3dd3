//! Legacy discovery documents (/api, /apis, resource lists) and the small
//! OpenAPI v3 documents kubectl reads to learn that the server accepts
//! `fieldValidation` (so it relies on server-side validation).

use super::resources::{Registry, Resource};
use serde_json::{json, Value};
use std::cmp::Ordering;

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// Kubernetes version priority: GA > beta > alpha, higher numbers first.
pub fn version_cmp(a: &str, b: &str) -> Ordering {
    fn key(v: &str) -> (u8, u64, u64) {
        let Some(rest) = v.strip_prefix('v') else {
            return (0, 0, 0);
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let major = digits.parse().unwrap_or(0);
        let tail = &rest[digits.len()..];
        let (level, minor) = if tail.is_empty() {
            (3, 0)
        } else if let Some(m) = tail.strip_prefix("beta") {
            (2, m.parse().unwrap_or(0))
        } else if let Some(m) = tail.strip_prefix("alpha") {
            (1, m.parse().unwrap_or(0))
        } else {
            (0, 0)
        };
        (level, major, minor)
    }
    key(b).cmp(&key(a)).then_with(|| a.cmp(b))
}

/// `/api`.
pub fn api_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    })
}

fn group_doc(name: &str, versions: &[String]) -> Value {
    let mut vs = versions.to_vec();
    vs.sort_by(|a, b| version_cmp(a, b));
    let entries: Vec<Value> = vs
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "name": name,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(json!({})),
    })
}

/// `/apis`.
pub fn api_group_list(reg: &Registry) -> Value {
    let groups: Vec<Value> = reg
        .groups()
        .iter()
        .map(|(g, vs)| group_doc(g, vs))
        .collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/<group>`, None for an unknown group.
pub fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    let groups = reg.groups();
    let vs = groups.get(group)?;
    let mut doc = group_doc(group, vs);
    doc["kind"] = json!("APIGroup");
    doc["apiVersion"] = json!("v1");
    Some(doc)
}

fn entry(r: &Resource) -> Value {
    let mut e = json!({
        "name": r.plural,
        "singularName": r.singular,
        "namespaced": r.namespaced,
        "kind": r.kind,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    e
}

/// `/api/v1` or `/apis/<group>/<version>`, None when nothing is there.
pub fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let rs = reg.in_group_version(group, version);
    if rs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    for r in &rs {
        out.push(entry(r));
        if r.status {
            out.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "",
                "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if r.group.is_empty() && r.plural == "pods" {
            out.push(json!({
                "name": "pods/eviction", "singularName": "", "namespaced": true,
                "group": "policy", "version": "v1", "kind": "Eviction", "verbs": ["create"],
            }));
            out.push(json!({
                "name": "pods/binding", "singularName": "", "namespaced": true,
                "kind": "Binding", "verbs": ["create"],
            }));
        }
    }
    let gv = rs[0].api_version();
    Some(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": out}),
    )
}

/// A short stable hash (FNV-1a) for the OpenAPI index, so kubectl's cache
/// notices when CRDs change a group.
fn hash(s: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016X}")
}

fn gv_key(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`: one entry per group/version.
pub fn openapi_index(reg: &Registry) -> Value {
    let mut paths = serde_json::Map::new();
    let mut gvs: Vec<(String, String)> = reg
        .all()
        .into_iter()
        .map(|r| (r.group, r.version))
        .collect();
    gvs.sort();
    gvs.dedup();
    for (g, v) in gvs {
        let doc = openapi_gv(reg, &g, &v).unwrap_or_default();
        let k = gv_key(&g, &v);
        paths.insert(
            k.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{k}?hash={}", hash(&doc.to_string()))}),
        );
    }
    json!({"paths": paths})
}

/// `/openapi/v3/<api/v1 | apis/g/v>`: paths with PATCH operations that
/// declare the `fieldValidation` parameter. Strategic merge is left out of
/// the request body types on purpose: without full schemas kubectl must
/// fall back to its compiled-in type metadata to build apply patches.
pub fn openapi_gv(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let rs = reg.in_group_version(group, version);
    if rs.is_empty() {
        return None;
    }
    let mut paths = serde_json::Map::new();
    for r in rs {
        let base = r.gv_path();
        let item = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
        let op = |verb: &str| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "x-kubernetes-group-version-kind": gvk,
                "parameters": [
                    {"name": "dryRun", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldManager", "in": "query", "schema": {"type": "string"}},
                    {"name": "fieldValidation", "in": "query", "schema": {"type": "string"}},
                ],
                "requestBody": {"content": {
                    "application/json-patch+json": {"schema": {"type": "object"}},
                    "application/merge-patch+json": {"schema": {"type": "object"}},
                }},
                "responses": {"200": {"description": "OK"}},
            })
        };
        paths.insert(item, json!({"patch": op("patch"), "put": op("replace")}));
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::version::current()},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

fn proto_field(out: &mut Vec<u8>, field: u8, data: &[u8]) {
    // Length-delimited field (wire type 2); lengths here stay below 128.
    out.push((field << 3) | 2);
    out.push(u8::try_from(data.len()).unwrap_or(0x7f));
    out.extend_from_slice(data);
}

/// `/openapi/v2` as the protobuf `openapi_v2.Document` kubectl asks for:
/// a valid but empty spec (swagger, info, no paths). kubectl then skips
/// client-side validation of kinds it does not know and builds apply
/// patches from its compiled-in types.
pub fn openapi_v2_protobuf() -> Vec<u8> {
    let mut info = Vec::new();
    proto_field(&mut info, 1, b"Kubernetes");
    proto_field(&mut info, 2, crate::version::current().as_bytes());
    let mut doc = Vec::new();
    proto_field(&mut doc, 1, b"2.0");
    proto_field(&mut doc, 2, &info);
    proto_field(&mut doc, 8, &[]);
    doc
}

/// `/openapi/v2` as JSON, for clients that ask for it.
pub fn openapi_v2_json() -> Value {
    json!({"swagger": "2.0", "info": {"title": "Kubernetes", "version": crate::version::current()}, "paths": {}})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openapi_v2_bytes() {
        let d = openapi_v2_protobuf();
        assert_eq!(&d[..5], b"\x0a\x032.0");
        assert_eq!(d[5], 0x12);
        assert_eq!(&d[d.len() - 2..], &[0x42, 0x00]);
    }

    #[test]
    fn version_priority() {
        let mut v = vec!["v1beta1", "v1alpha1", "v2", "v1", "v2beta2", "foo"];
        v.sort_by(|a, b| version_cmp(a, b));
        assert_eq!(v, vec!["v2", "v1", "v2beta2", "v1beta1", "v1alpha1", "foo"]);
    }

    #[test]
    fn discovery_shapes() {
        let reg = Registry::new();
        let core = resource_list(&reg, "", "v1").unwrap();
        assert_eq!(core["groupVersion"], "v1");
        let names: Vec<&str> = core["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"pods/eviction") && names.contains(&"nodes/status"));
        let apps = api_group(&reg, "apps").unwrap();
        assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
        assert!(api_group(&reg, "nope").is_none());
        let idx = openapi_index(&reg);
        assert!(idx["paths"]["apis/apps/v1"]["serverRelativeURL"]
            .as_str()
            .unwrap()
            .starts_with("/openapi/v3/apis/apps/v1?hash="));
        let doc = openapi_gv(&reg, "apps", "v1").unwrap();
        let p = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(p["x-kubernetes-group-version-kind"]["kind"], "Deployment");
        assert_eq!(p["parameters"][2]["name"], "fieldValidation");
    }
}
