//! Per-kind behaviour around the generic storage: defaults the real API
//! fills in, ClusterIP allocation, namespace lifecycle, CRD registration.

use super::clusterip;
use super::resources::{crd_status, resources_of_crd, Resource};
use super::status::ApiError;
use super::store::name_of;
use super::State;
use serde_json::{json, Value};
use std::net::IpAddr;

fn is(res: &Resource, group: &str, plural: &str) -> bool {
    res.group == group && res.plural == plural
}

/// Defaults and checks before an object is first stored.
pub async fn on_create(
    st: &State,
    res: &Resource,
    obj: &mut Value,
    now: &str,
) -> Result<(), ApiError> {
    let name = name_of(obj).0.to_string();
    if res.namespaced {
        let ns = name_of(obj).1.unwrap_or("default").to_string();
        let nsres = st.namespaces();
        match st.store.get(&nsres, None, &ns).await? {
            None => return Err(ApiError::not_found(&nsres, &ns)),
            Some(n)
                if n.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating") =>
            {
                return Err(ApiError::new(
                    403,
                    "Forbidden",
                    format!("{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated", res.qualified()),
                ));
            }
            Some(_) => {}
        }
    }
    if is(res, "", "namespaces") {
        obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        obj["spec"] = json!({"finalizers": ["kubernetes"]});
        obj["status"] = json!({"phase": "Active"});
    } else if is(res, "", "services") {
        service_defaults(st, res, obj, &name).await?;
    } else if is(res, "", "pods") {
        if obj.pointer("/status/phase").is_none() {
            obj["status"] = json!({"phase": "Pending"});
        }
        let spec = obj.get_mut("spec").and_then(Value::as_object_mut);
        if let Some(spec) = spec {
            spec.entry("restartPolicy").or_insert(json!("Always"));
            spec.entry("schedulerName")
                .or_insert(json!("default-scheduler"));
        }
    } else if is(res, "", "secrets") {
        secret_string_data(obj);
        if obj.get("type").is_none() {
            obj["type"] = json!("Opaque");
        }
    } else if is(res, "apiextensions.k8s.io", "customresourcedefinitions") {
        resources_of_crd(obj).map_err(|e| ApiError::invalid(res, &name, &e.to_string()))?;
        obj["status"] = crd_status(obj, now);
    }
    Ok(())
}

async fn service_defaults(
    st: &State,
    res: &Resource,
    obj: &mut Value,
    name: &str,
) -> Result<(), ApiError> {
    if obj.get("spec").is_none_or(|s| !s.is_object()) {
        obj["spec"] = json!({});
    }
    let spec = &mut obj["spec"];
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    spec["type"] = json!(ty);
    if spec.get("sessionAffinity").is_none() {
        spec["sessionAffinity"] = json!("None");
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut() {
            if p.get("protocol").is_none() {
                p["protocol"] = json!("TCP");
            }
            if p.get("targetPort").is_none() {
                p["targetPort"] = p.get("port").cloned().unwrap_or(json!(0));
            }
            if matches!(ty.as_str(), "NodePort" | "LoadBalancer") {
                match p.get("nodePort").and_then(Value::as_u64) {
                    Some(np) => {
                        let np = u16::try_from(np).unwrap_or(0);
                        if !clusterip::reserve_port(&st.store.etcd, np).await? {
                            return Err(ApiError::invalid(res, name, &format!("spec.ports[0].nodePort: Invalid value: {np}: provided port is already allocated")));
                        }
                    }
                    None => p["nodePort"] = json!(clusterip::allocate_port(&st.store.etcd).await?),
                }
            }
        }
    }
    if ty == "ExternalName" {
        return Ok(());
    }
    let Some(range) = st.service_range else {
        return Ok(());
    };
    let ip = match spec.get("clusterIP").and_then(Value::as_str) {
        Some("None") => "None".to_string(),
        Some(ip) if !ip.is_empty() => {
            let parsed: IpAddr = ip.parse().map_err(|_| {
                ApiError::invalid(
                    res,
                    name,
                    &format!(
                        "spec.clusterIPs[0]: Invalid value: \"{ip}\": must be a valid IP address"
                    ),
                )
            })?;
            if !clusterip::reserve_ip(&st.store.etcd, &range, parsed).await? {
                return Err(ApiError::invalid(res, name, &format!("spec.clusterIPs: Invalid value: []string{{\"{ip}\"}}: failed to allocate IP {ip}: provided IP is already allocated")));
            }
            ip.to_string()
        }
        _ => clusterip::allocate_ip(&st.store.etcd, &range)
            .await?
            .to_string(),
    };
    spec["clusterIP"] = json!(ip);
    spec["clusterIPs"] = json!([ip]);
    if ip != "None" {
        spec["ipFamilies"] = json!([if ip.contains(':') { "IPv6" } else { "IPv4" }]);
        spec["ipFamilyPolicy"] = json!("SingleStack");
    }
    spec["internalTrafficPolicy"] = json!("Cluster");
    Ok(())
}

/// Folds `stringData` into base64 `data`, as the real API does on write.
pub fn secret_string_data(obj: &mut Value) {
    use base64::Engine;
    let Some(Value::Object(sd)) = obj.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    for (k, v) in sd {
        let text = v.as_str().unwrap_or_default();
        obj["data"][k.as_str()] = json!(base64::engine::general_purpose::STANDARD.encode(text));
    }
}

/// Keeps what an update may not change and applies per-kind rules.
pub fn on_update(res: &Resource, old: &Value, new: &mut Value, now: &str) -> Result<(), ApiError> {
    let name = name_of(old).0.to_string();
    if is(res, "", "services") {
        let old_ip = old.pointer("/spec/clusterIP").cloned();
        match (
            new.pointer("/spec/clusterIP").and_then(Value::as_str),
            &old_ip,
        ) {
            (None | Some(""), Some(ip)) => {
                new["spec"]["clusterIP"] = ip.clone();
                new["spec"]["clusterIPs"] = json!([ip]);
            }
            (Some(n), Some(o)) if Some(n) != o.as_str() => {
                return Err(ApiError::invalid(
                    res,
                    &name,
                    "spec.clusterIPs[0]: Invalid value: field is immutable",
                ));
            }
            _ => {}
        }
        // Node ports survive an update that does not name them.
        if let (Some(new_ports), Some(old_ports)) = (
            new.pointer_mut("/spec/ports").and_then(Value::as_array_mut),
            old.pointer("/spec/ports").and_then(Value::as_array),
        ) {
            for p in new_ports.iter_mut() {
                if p.get("nodePort").is_none() {
                    if let Some(np) = old_ports
                        .iter()
                        .find(|o| o.get("port") == p.get("port"))
                        .and_then(|o| o.get("nodePort"))
                    {
                        p["nodePort"] = np.clone();
                    }
                }
            }
        }
    } else if is(res, "apiextensions.k8s.io", "customresourcedefinitions") {
        resources_of_crd(new).map_err(|e| ApiError::invalid(res, &name, &e.to_string()))?;
        new["status"] = crd_status(new, now);
    } else if is(res, "", "secrets") {
        secret_string_data(new);
    } else if is(res, "", "namespaces") {
        new["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
    }
    Ok(())
}

/// Side effects after an object was deleted.
pub async fn after_delete(st: &State, res: &Resource, obj: &Value) -> Result<(), ApiError> {
    if is(res, "", "services") {
        if let Some(ip) = obj.pointer("/spec/clusterIP").and_then(Value::as_str) {
            if ip != "None" && !ip.is_empty() {
                clusterip::release_ip(&st.store.etcd, ip).await?;
            }
        }
        for p in obj
            .pointer("/spec/ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(np) = p.get("nodePort").and_then(Value::as_u64) {
                clusterip::release_port(&st.store.etcd, u16::try_from(np).unwrap_or(0)).await?;
            }
        }
    } else if is(res, "", "namespaces") {
        // Simplification: content goes at once instead of through a
        // Terminating phase and the namespace controller.
        let ns = name_of(obj).0.to_string();
        for r in st.registry.all().into_iter().filter(|r| r.namespaced) {
            let (items, _) = st.store.list(&r, Some(&ns)).await?;
            for item in items {
                let name = name_of(&item).0.to_string();
                if let Ok(gone) = st.store.delete(&r, Some(&ns), &name, |_| Ok(())).await {
                    Box::pin(after_delete(st, &r, &gone)).await?;
                }
            }
        }
    } else if is(res, "apiextensions.k8s.io", "customresourcedefinitions") {
        if let Ok(rs) = resources_of_crd(obj) {
            if let Some(r) = rs.first() {
                let (kvs, _) = st
                    .store
                    .etcd
                    .list(&format!("/registry/{}/", r.etcd_prefix))
                    .await?;
                for kv in kvs {
                    st.store.etcd.delete(&kv.key, kv.mod_revision).await?;
                }
            }
        }
        st.sync_crds().await?;
    }
    Ok(())
}

/// Side effects after a create or update.
pub async fn after_write(st: &State, res: &Resource) -> Result<(), ApiError> {
    if is(res, "apiextensions.k8s.io", "customresourcedefinitions") {
        st.sync_crds().await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_becomes_data() {
        let mut s = json!({"data": {"a": "eA=="}, "stringData": {"b": "hi"}});
        secret_string_data(&mut s);
        assert_eq!(s, json!({"data": {"a": "eA==", "b": "aGk="}}));
    }
}
