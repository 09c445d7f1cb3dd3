//! The resource table: which group/version/kind/plural exist, whether they
//! are namespaced, which subresources they have. Built-ins are listed here;
//! CustomResourceDefinitions add rows at run time. One generic storage
//! implementation serves every row.

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::RwLock;

/// One REST resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Has a `/status` subresource (status is then ignored on main writes).
    pub status: bool,
    /// Key prefix under `/registry/`.
    pub etcd_prefix: String,
    /// Name of the CRD that defined it, if any.
    pub crd: Option<String>,
}

impl Resource {
    /// `apps/v1`, or `v1` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps`, or `nodes` for the core group (as in messages).
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// URL prefix of this group/version: `/api/v1` or `/apis/apps/v1`.
    pub fn gv_path(&self) -> String {
        if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        }
    }
}

// (group, version, kind, plural, namespaced, short names, status, etcd prefix)
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
    bool,
    &'static str,
);

/// Built-in resources: the ones kubectl and the add-on manifests ezctl
/// applies (calico, coredns, metrics-server, dashboard) use.
const BUILTIN: &[Row] = &[
    (
        "",
        "v1",
        "Namespace",
        "namespaces",
        false,
        &["ns"],
        true,
        "",
    ),
    ("", "v1", "Node", "nodes", false, &["no"], true, "minions"),
    ("", "v1", "Pod", "pods", true, &["po"], true, ""),
    (
        "",
        "v1",
        "Service",
        "services",
        true,
        &["svc"],
        true,
        "services/specs",
    ),
    (
        "",
        "v1",
        "Endpoints",
        "endpoints",
        true,
        &["ep"],
        false,
        "services/endpoints",
    ),
    (
        "",
        "v1",
        "ConfigMap",
        "configmaps",
        true,
        &["cm"],
        false,
        "",
    ),
    ("", "v1", "Secret", "secrets", true, &[], false, ""),
    (
        "",
        "v1",
        "ServiceAccount",
        "serviceaccounts",
        true,
        &["sa"],
        false,
        "",
    ),
    ("", "v1", "Event", "events", true, &["ev"], false, ""),
    (
        "",
        "v1",
        "PersistentVolume",
        "persistentvolumes",
        false,
        &["pv"],
        true,
        "",
    ),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
        &["pvc"],
        true,
        "",
    ),
    (
        "",
        "v1",
        "LimitRange",
        "limitranges",
        true,
        &["limits"],
        false,
        "",
    ),
    (
        "",
        "v1",
        "ResourceQuota",
        "resourcequotas",
        true,
        &["quota"],
        true,
        "",
    ),
    (
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
        &["rc"],
        true,
        "controllers",
    ),
    (
        "apps",
        "v1",
        "Deployment",
        "deployments",
        true,
        &["deploy"],
        true,
        "",
    ),
    (
        "apps",
        "v1",
        "DaemonSet",
        "daemonsets",
        true,
        &["ds"],
        true,
        "",
    ),
    (
        "apps",
        "v1",
        "StatefulSet",
        "statefulsets",
        true,
        &["sts"],
        true,
        "",
    ),
    (
        "apps",
        "v1",
        "ReplicaSet",
        "replicasets",
        true,
        &["rs"],
        true,
        "",
    ),
    (
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
        &[],
        false,
        "",
    ),
    ("batch", "v1", "Job", "jobs", true, &[], true, ""),
    (
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        true,
        &["cj"],
        true,
        "",
    ),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
        &["hpa"],
        true,
        "",
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
        &["pdb"],
        true,
        "",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRole",
        "clusterroles",
        false,
        &[],
        false,
        "",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "ClusterRoleBinding",
        "clusterrolebindings",
        false,
        &[],
        false,
        "",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "Role",
        "roles",
        true,
        &[],
        false,
        "",
    ),
    (
        "rbac.authorization.k8s.io",
        "v1",
        "RoleBinding",
        "rolebindings",
        true,
        &[],
        false,
        "",
    ),
    (
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
        false,
        &["crd", "crds"],
        true,
        "apiextensions.k8s.io/customresourcedefinitions",
    ),
    (
        "apiregistration.k8s.io",
        "v1",
        "APIService",
        "apiservices",
        false,
        &[],
        true,
        "apiregistration.k8s.io/apiservices",
    ),
    (
        "coordination.k8s.io",
        "v1",
        "Lease",
        "leases",
        true,
        &[],
        false,
        "leases",
    ),
    (
        "networking.k8s.io",
        "v1",
        "NetworkPolicy",
        "networkpolicies",
        true,
        &["netpol"],
        false,
        "",
    ),
    (
        "networking.k8s.io",
        "v1",
        "Ingress",
        "ingresses",
        true,
        &["ing"],
        true,
        "ingress",
    ),
    (
        "networking.k8s.io",
        "v1",
        "IngressClass",
        "ingressclasses",
        false,
        &[],
        false,
        "ingressclasses",
    ),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
        &[],
        false,
        "",
    ),
    (
        "storage.k8s.io",
        "v1",
        "StorageClass",
        "storageclasses",
        false,
        &["sc"],
        false,
        "",
    ),
    (
        "storage.k8s.io",
        "v1",
        "CSIDriver",
        "csidrivers",
        false,
        &[],
        false,
        "",
    ),
    (
        "scheduling.k8s.io",
        "v1",
        "PriorityClass",
        "priorityclasses",
        false,
        &["pc"],
        false,
        "",
    ),
    (
        "node.k8s.io",
        "v1",
        "RuntimeClass",
        "runtimeclasses",
        false,
        &[],
        false,
        "",
    ),
    (
        "certificates.k8s.io",
        "v1",
        "CertificateSigningRequest",
        "certificatesigningrequests",
        false,
        &["csr"],
        true,
        "",
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "MutatingWebhookConfiguration",
        "mutatingwebhookconfigurations",
        false,
        &[],
        false,
        "",
    ),
    (
        "admissionregistration.k8s.io",
        "v1",
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfigurations",
        false,
        &[],
        false,
        "",
    ),
];

const ALL_CATEGORY: &[&str] = &[
    "pods",
    "services",
    "deployments",
    "daemonsets",
    "statefulsets",
    "replicasets",
    "jobs",
    "cronjobs",
    "replicationcontrollers",
    "horizontalpodautoscalers",
];

fn builtin() -> Vec<Resource> {
    BUILTIN
        .iter()
        .map(
            |&(group, version, kind, plural, namespaced, short, status, prefix)| Resource {
                group: group.into(),
                version: version.into(),
                kind: kind.into(),
                plural: plural.into(),
                singular: kind.to_lowercase(),
                namespaced,
                short_names: short.iter().map(|s| s.to_string()).collect(),
                categories: if ALL_CATEGORY.contains(&plural) {
                    vec!["all".into()]
                } else {
                    vec![]
                },
                status,
                etcd_prefix: if prefix.is_empty() {
                    plural.into()
                } else {
                    prefix.into()
                },
                crd: None,
            },
        )
        .collect()
}

/// Why a CRD could not be registered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CrdError {
    #[error("spec.{0} is required")]
    Missing(&'static str),
    #[error("metadata.name must be spec.names.plural+\".\"+spec.group")]
    BadName,
}

/// Resources a CRD defines (one per served version).
pub fn resources_of_crd(crd: &Value) -> Result<Vec<Resource>, CrdError> {
    let spec = crd.get("spec").ok_or(CrdError::Missing("spec"))?;
    let s = |p: &str| spec.pointer(p).and_then(Value::as_str).map(str::to_string);
    let group = s("/group").ok_or(CrdError::Missing("group"))?;
    let plural = s("/names/plural").ok_or(CrdError::Missing("names.plural"))?;
    let kind = s("/names/kind").ok_or(CrdError::Missing("names.kind"))?;
    let name = crd.pointer("/metadata/name").and_then(Value::as_str);
    if name != Some(format!("{plural}.{group}").as_str()) {
        return Err(CrdError::BadName);
    }
    let singular = s("/names/singular").unwrap_or_else(|| kind.to_lowercase());
    let namespaced = s("/scope").as_deref() != Some("Cluster");
    let strings = |p: &str| -> Vec<String> {
        spec.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .ok_or(CrdError::Missing("versions"))?;
    let mut out = Vec::new();
    for v in versions {
        if v.get("served").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let Some(version) = v.get("name").and_then(Value::as_str) else {
            return Err(CrdError::Missing("versions[].name"));
        };
        out.push(Resource {
            group: group.clone(),
            version: version.into(),
            kind: kind.clone(),
            plural: plural.clone(),
            singular: singular.clone(),
            namespaced,
            short_names: strings("/names/shortNames"),
            categories: strings("/names/categories"),
            status: v.pointer("/subresources/status").is_some(),
            // CR keys carry the group, like the real apiserver's.
            etcd_prefix: format!("{group}/{plural}"),
            crd: name.map(str::to_string),
        });
    }
    Ok(out)
}

/// All resources known to this apiserver.
pub struct Registry {
    rows: RwLock<Vec<Resource>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// The built-in resources.
    pub fn new() -> Self {
        Self {
            rows: RwLock::new(builtin()),
        }
    }

    fn read(&self) -> Vec<Resource> {
        match self.rows.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// A resource by group, version and plural.
    pub fn find(&self, group: &str, version: &str, plural: &str) -> Option<Resource> {
        self.read()
            .into_iter()
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    }

    /// A resource by group, version and kind.
    pub fn find_kind(&self, group: &str, version: &str, kind: &str) -> Option<Resource> {
        self.read()
            .into_iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
    }

    /// Resources of one group/version.
    pub fn in_group_version(&self, group: &str, version: &str) -> Vec<Resource> {
        self.read()
            .into_iter()
            .filter(|r| r.group == group && r.version == version)
            .collect()
    }

    /// Every group (core excluded) with its versions, in first-seen order.
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in self.read() {
            if r.group.is_empty() {
                continue;
            }
            let vs = out.entry(r.group.clone()).or_default();
            if !vs.contains(&r.version) {
                vs.push(r.version.clone());
            }
        }
        out
    }

    /// All rows (for discovery documents).
    pub fn all(&self) -> Vec<Resource> {
        self.read()
    }

    /// Replaces every CRD-defined row with those of `crds` (the full set
    /// currently stored), keeping built-ins. Invalid CRDs are skipped.
    pub fn sync_crds(&self, crds: &[Value]) {
        let mut rows: Vec<Resource> = builtin();
        for crd in crds {
            if let Ok(rs) = resources_of_crd(crd) {
                for r in rs {
                    let clash = rows.iter().any(|x| {
                        x.group == r.group && x.version == r.version && x.plural == r.plural
                    });
                    if !clash {
                        rows.push(r);
                    }
                }
            }
        }
        match self.rows.write() {
            Ok(mut g) => *g = rows,
            Err(p) => *p.into_inner() = rows,
        }
    }
}

/// A CRD's status as the real apiextensions server writes it once the
/// names are accepted and the API is established.
pub fn crd_status(crd: &Value, now: &str) -> Value {
    let names = crd.pointer("/spec/names").cloned().unwrap_or(json!({}));
    let stored: Vec<Value> = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(|vs| {
            vs.iter()
                .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
                .filter_map(|v| v.get("name").cloned())
                .collect()
        })
        .unwrap_or_default();
    let cond = |t: &str, reason: &str, msg: &str| json!({"type": t, "status": "True", "lastTransitionTime": now, "reason": reason, "message": msg});
    json!({
        "acceptedNames": names,
        "conditions": [
            cond("NamesAccepted", "NoConflicts", "no conflicts found"),
            cond("Established", "InitialNamesAccepted", "the initial names have been accepted"),
        ],
        "storedVersions": stored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "metadata": {"name": "ippools.crd.projectcalico.org"},
            "spec": {
                "group": "crd.projectcalico.org",
                "names": {"kind": "IPPool", "plural": "ippools", "singular": "ippool", "listKind": "IPPoolList"},
                "scope": "Cluster",
                "versions": [{"name": "v1", "served": true, "storage": true, "schema": {}}]
            }
        })
    }

    #[test]
    fn builtins_resolve() {
        let r = Registry::new();
        let n = r.find("", "v1", "nodes").unwrap();
        assert!(!n.namespaced && n.status);
        assert_eq!(n.etcd_prefix, "minions");
        assert_eq!(
            r.find_kind("apps", "v1", "DaemonSet").unwrap().plural,
            "daemonsets"
        );
        assert_eq!(
            r.find("apps", "v1", "deployments").unwrap().qualified(),
            "deployments.apps"
        );
        assert!(r.groups().contains_key("policy"));
        assert!(r.find("", "v1", "widgets").is_none());
    }

    #[test]
    fn crds_register_and_unregister() {
        let r = Registry::new();
        r.sync_crds(&[crd()]);
        let p = r.find("crd.projectcalico.org", "v1", "ippools").unwrap();
        assert!(!p.namespaced);
        assert_eq!(p.etcd_prefix, "crd.projectcalico.org/ippools");
        assert_eq!(p.crd.as_deref(), Some("ippools.crd.projectcalico.org"));
        r.sync_crds(&[]);
        assert!(r.find("crd.projectcalico.org", "v1", "ippools").is_none());
        assert!(r.find("", "v1", "pods").is_some());
    }

    #[test]
    fn crd_validation_and_status() {
        let mut bad = crd();
        bad["metadata"]["name"] = json!("wrong");
        assert_eq!(resources_of_crd(&bad), Err(CrdError::BadName));
        let st = crd_status(&crd(), "2026-01-01T00:00:00Z");
        assert_eq!(st["storedVersions"], json!(["v1"]));
        assert_eq!(st["conditions"][1]["type"], "Established");
    }
}
