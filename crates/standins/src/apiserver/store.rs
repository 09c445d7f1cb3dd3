//! Generic object storage in etcd: one key per object under
//! `/registry/<prefix>/[<namespace>/]<name>`, JSON values, resourceVersion
//! = the key's mod_revision (never stored in the value).

use super::resources::Resource;
use super::status::ApiError;
use crate::etcd::{Etcd, Kv, Write};
use serde_json::Value;

/// Object storage for every resource.
pub struct Store {
    pub etcd: Etcd,
}

/// The etcd key of one object.
pub fn key(res: &Resource, ns: Option<&str>, name: &str) -> String {
    match ns.filter(|_| res.namespaced) {
        Some(ns) => format!("/registry/{}/{ns}/{name}", res.etcd_prefix),
        None => format!("/registry/{}/{name}", res.etcd_prefix),
    }
}

/// The etcd prefix of a collection (all namespaces when `ns` is None).
pub fn prefix(res: &Resource, ns: Option<&str>) -> String {
    match ns.filter(|_| res.namespaced) {
        Some(ns) => format!("/registry/{}/{ns}/", res.etcd_prefix),
        None => format!("/registry/{}/", res.etcd_prefix),
    }
}

fn decode(kv: &Kv) -> Result<Value, ApiError> {
    let mut v: Value = serde_json::from_slice(&kv.value)
        .map_err(|_| ApiError::internal(format!("stored object at {} is not JSON", kv.key)))?;
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert(
            "resourceVersion".into(),
            Value::String(kv.mod_revision.to_string()),
        );
    }
    Ok(v)
}

fn encode(obj: &Value) -> Vec<u8> {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
    }
    o.to_string().into_bytes()
}

fn with_rv(mut obj: Value, rev: i64) -> Value {
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("resourceVersion".into(), Value::String(rev.to_string()));
    }
    obj
}

/// The resourceVersion of an object as a number (0 when absent).
pub fn resource_version(obj: &Value) -> i64 {
    obj.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// An object's name and namespace.
pub fn name_of(obj: &Value) -> (&str, Option<&str>) {
    (
        obj.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or(""),
        obj.pointer("/metadata/namespace").and_then(Value::as_str),
    )
}

impl Store {
    /// One object, or None.
    pub async fn get(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        match self.etcd.get(&key(res, ns, name)).await? {
            Some(kv) => decode(&kv).map(Some),
            None => Ok(None),
        }
    }

    /// All objects of a collection and the store revision.
    pub async fn list(
        &self,
        res: &Resource,
        ns: Option<&str>,
    ) -> Result<(Vec<Value>, i64), ApiError> {
        let (kvs, rev) = self.etcd.list(&prefix(res, ns)).await?;
        let mut out = Vec::with_capacity(kvs.len());
        for kv in &kvs {
            // A prefix like "services/specs/" must not pick up deeper keys
            // of another layout; skip anything that is not ns/name or name.
            let rest = &kv.key[prefix(res, ns).len()..];
            let depth = rest.matches('/').count();
            let want = usize::from(res.namespaced && ns.is_none());
            if depth == want {
                out.push(decode(kv)?);
            }
        }
        Ok((out, rev))
    }

    /// Creates an object; AlreadyExists when the key is taken.
    pub async fn create(&self, res: &Resource, obj: Value) -> Result<Value, ApiError> {
        let (name, ns) = name_of(&obj);
        let k = key(res, ns, name);
        match self.etcd.create(&k, &encode(&obj)).await? {
            Write::Done(rev) => Ok(with_rv(obj, rev)),
            Write::Conflict(_) => Err(ApiError::already_exists(res, name)),
        }
    }

    /// Read-modify-write with retries on concurrent change. `f` gets the
    /// current object (with resourceVersion) and returns the new one, or
    /// None to leave it unchanged.
    pub async fn update_with<F>(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        mut f: F,
    ) -> Result<Value, ApiError>
    where
        F: FnMut(Value) -> Result<Option<Value>, ApiError>,
    {
        let k = key(res, ns, name);
        for _ in 0..20 {
            let Some(kv) = self.etcd.get(&k).await? else {
                return Err(ApiError::not_found(res, name));
            };
            let current = decode(&kv)?;
            let Some(new) = f(current.clone())? else {
                return Ok(current);
            };
            if encode(&new) == encode(&current) {
                return Ok(current);
            }
            match self.etcd.update(&k, &encode(&new), kv.mod_revision).await? {
                Write::Done(rev) => return Ok(with_rv(new, rev)),
                Write::Conflict(_) => continue,
            }
        }
        Err(ApiError::conflict(res, name))
    }

    /// Deletes an object after `check` approves the current version.
    pub async fn delete<F>(
        &self,
        res: &Resource,
        ns: Option<&str>,
        name: &str,
        check: F,
    ) -> Result<Value, ApiError>
    where
        F: Fn(&Value) -> Result<(), ApiError>,
    {
        let k = key(res, ns, name);
        for _ in 0..20 {
            let Some(kv) = self.etcd.get(&k).await? else {
                return Err(ApiError::not_found(res, name));
            };
            let current = decode(&kv)?;
            check(&current)?;
            match self.etcd.delete(&k, kv.mod_revision).await? {
                Write::Done(_) => return Ok(current),
                Write::Conflict(_) => continue,
            }
        }
        Err(ApiError::conflict(res, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::Registry;

    #[test]
    fn keys_follow_the_real_layout() {
        let r = Registry::new();
        let pods = r.find("", "v1", "pods").unwrap();
        let nodes = r.find("", "v1", "nodes").unwrap();
        let svc = r.find("", "v1", "services").unwrap();
        assert_eq!(
            key(&pods, Some("kube-system"), "p"),
            "/registry/pods/kube-system/p"
        );
        assert_eq!(key(&nodes, Some("ignored"), "n1"), "/registry/minions/n1");
        assert_eq!(
            key(&svc, Some("default"), "kubernetes"),
            "/registry/services/specs/default/kubernetes"
        );
        assert_eq!(prefix(&pods, None), "/registry/pods/");
    }

    #[test]
    fn resource_version_never_stored() {
        let obj = serde_json::json!({"metadata": {"name": "x", "resourceVersion": "5"}});
        let stored: Value = serde_json::from_slice(&encode(&obj)).unwrap();
        assert!(stored["metadata"].get("resourceVersion").is_none());
        let kv = Kv {
            key: "k".into(),
            value: encode(&obj),
            mod_revision: 9,
            create_revision: 9,
        };
        assert_eq!(resource_version(&decode(&kv).unwrap()), 9);
    }
}
