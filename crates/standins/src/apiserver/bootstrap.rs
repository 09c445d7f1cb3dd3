//! Objects every cluster has from its first apiserver start: the system
//! namespaces, the `kubernetes` Service at the first service IP with this
//! apiserver in its Endpoints, and the default ClusterRoles others bind to.

use super::clusterip;
use super::rest::{now, uid};
use super::status::ApiError;
use super::State;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

async fn ensure(st: &State, group: &str, plural: &str, mut obj: Value) -> Result<(), ApiError> {
    let res = st
        .registry
        .find(group, "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("no resource {plural}")))?;
    obj["apiVersion"] = json!(res.api_version());
    obj["kind"] = json!(res.kind);
    obj["metadata"]["uid"] = json!(uid());
    obj["metadata"]["creationTimestamp"] = json!(now());
    match st.store.create(&res, obj).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason == "AlreadyExists" => Ok(()),
        Err(e) => Err(e),
    }
}

fn all_rules() -> Value {
    json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}, {"nonResourceURLs": ["*"], "verbs": ["*"]}])
}

async fn once(st: &State, advertise: &str, port: u16) -> Result<(), ApiError> {
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        ensure(
            st,
            "",
            "namespaces",
            json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                   "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
        )
        .await?;
    }
    if let Some(range) = st.service_range {
        if let Some(ip) = clusterip::first_ip(&range) {
            // Another apiserver may hold it already for the same service.
            clusterip::reserve_ip(&st.store.etcd, &range, ip).await?;
            ensure(
                st,
                "",
                "services",
                json!({"metadata": {"name": "kubernetes", "namespace": "default",
                                    "labels": {"component": "apiserver", "provider": "kubernetes"}},
                       "spec": {"type": "ClusterIP", "clusterIP": ip.to_string(), "clusterIPs": [ip.to_string()],
                                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
                                "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"}}),
            )
            .await?;
        }
    }
    let eps = st
        .registry
        .find("", "v1", "endpoints")
        .ok_or_else(|| ApiError::internal("no endpoints resource"))?;
    let me = json!({"ip": advertise});
    let subset = |addrs: Vec<Value>| json!([{"addresses": addrs, "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]);
    match st.store.get(&eps, Some("default"), "kubernetes").await? {
        None => {
            ensure(st, "", "endpoints", json!({"metadata": {"name": "kubernetes", "namespace": "default"}, "subsets": subset(vec![me])})).await?;
        }
        Some(_) => {
            st.store
                .update_with(&eps, Some("default"), "kubernetes", |mut cur| {
                    let mut addrs: Vec<Value> = cur
                        .pointer("/subsets/0/addresses")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default();
                    if addrs.contains(&me) {
                        return Ok(None);
                    }
                    addrs.push(me.clone());
                    cur["subsets"] = subset(addrs);
                    Ok(Some(cur))
                })
                .await?;
        }
    }
    let roles = [
        ("cluster-admin", all_rules()),
        ("admin", all_rules()),
        ("edit", all_rules()),
        (
            "view",
            json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["get", "list", "watch"]}]),
        ),
        ("system:node", all_rules()),
        ("system:node-proxier", all_rules()),
        ("system:kube-controller-manager", all_rules()),
        ("system:kube-scheduler", all_rules()),
        (
            "system:kubelet-api-admin",
            json!([{"apiGroups": [""], "resources": ["nodes/proxy", "nodes/log", "nodes/stats", "nodes/metrics", "nodes/spec"], "verbs": ["*"]}]),
        ),
    ];
    for (name, rules) in roles {
        ensure(
            st,
            "rbac.authorization.k8s.io",
            "clusterroles",
            json!({"metadata": {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}}, "rules": rules}),
        )
        .await?;
    }
    ensure(
        st,
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        json!({"metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
               "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:masters"}]}),
    )
    .await?;
    st.sync_crds().await
}

/// Retries the bootstrap until etcd takes it, then keeps CRDs in sync
/// with what other apiservers registered.
pub async fn run(st: Arc<State>, advertise: String, port: u16) {
    loop {
        match once(&st, &advertise, port).await {
            Ok(()) => break,
            Err(e) => {
                crate::warn!("bootstrap objects not written yet: {}", e.message);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    crate::info!("bootstrap objects in place");
    loop {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let _ = st.sync_crds().await;
    }
}
