//! Decoding of `application/vnd.kubernetes.protobuf` request bodies.
//!
//! kubectl 1.32's typed clients (`kubectl create clusterrolebinding ...`,
//! `kubectl drain`'s evictions) send protobuf, not JSON. The stand-in
//! stores JSON, so it decodes the kinds those commands send, using the
//! field numbers of the Kubernetes .proto files, into the JSON form.
//! Other kinds get 415 Unsupported Media Type.

use crate::protowire::{Reader, Wire, WireError};
use base64::Engine;
use serde_json::{json, Map, Value};

/// The 4-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: &[u8] = b"k8s\0";

/// Errors decoding a protobuf body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("protobuf body does not start with the k8s magic")]
    NoMagic,
    #[error("truncated or malformed protobuf")]
    Malformed,
    #[error("protobuf decoding of {0} is not supported by this stand-in; send JSON")]
    Unsupported(String),
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    Bool,
    Time,
    Msg(&'static str),
    MapStr,
    MapBytes,
}

struct Field {
    num: u64,
    name: &'static str,
    kind: Kind,
    repeated: bool,
}

const fn f(num: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        num,
        name,
        kind,
        repeated: false,
    }
}

const fn r(num: u64, name: &'static str, kind: Kind) -> Field {
    Field {
        num,
        name,
        kind,
        repeated: true,
    }
}

use Kind::*;

/// Message schemas: field number, JSON name, type.
const SCHEMAS: &[(&str, &[Field])] = &[
    (
        "ObjectMeta",
        &[
            f(1, "name", Str),
            f(2, "generateName", Str),
            f(3, "namespace", Str),
            f(5, "uid", Str),
            f(6, "resourceVersion", Str),
            f(7, "generation", Int),
            f(8, "creationTimestamp", Time),
            f(11, "labels", MapStr),
            f(12, "annotations", MapStr),
            r(13, "ownerReferences", Msg("OwnerReference")),
            r(14, "finalizers", Str),
        ],
    ),
    (
        "OwnerReference",
        &[
            f(1, "kind", Str),
            f(3, "name", Str),
            f(4, "uid", Str),
            f(5, "apiVersion", Str),
            f(6, "controller", Bool),
            f(7, "blockOwnerDeletion", Bool),
        ],
    ),
    (
        "RoleBinding",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            r(2, "subjects", Msg("Subject")),
            f(3, "roleRef", Msg("RoleRef")),
        ],
    ),
    (
        "Subject",
        &[
            f(1, "kind", Str),
            f(2, "apiGroup", Str),
            f(3, "name", Str),
            f(4, "namespace", Str),
        ],
    ),
    (
        "RoleRef",
        &[f(1, "apiGroup", Str), f(2, "kind", Str), f(3, "name", Str)],
    ),
    (
        "Role",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            r(2, "rules", Msg("PolicyRule")),
        ],
    ),
    (
        "PolicyRule",
        &[
            r(1, "verbs", Str),
            r(2, "apiGroups", Str),
            r(3, "resources", Str),
            r(4, "resourceNames", Str),
            r(5, "nonResourceURLs", Str),
        ],
    ),
    (
        "Eviction",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "deleteOptions", Msg("DeleteOptions")),
        ],
    ),
    (
        "DeleteOptions",
        &[
            f(1, "gracePeriodSeconds", Int),
            f(2, "preconditions", Msg("Preconditions")),
            f(3, "orphanDependents", Bool),
            f(4, "propagationPolicy", Str),
            r(5, "dryRun", Str),
        ],
    ),
    (
        "Preconditions",
        &[f(1, "uid", Str), f(2, "resourceVersion", Str)],
    ),
    (
        "Namespace",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "spec", Msg("NamespaceSpec")),
        ],
    ),
    ("NamespaceSpec", &[r(1, "finalizers", Str)]),
    (
        "ConfigMap",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "data", MapStr),
            f(3, "binaryData", MapBytes),
            f(4, "immutable", Bool),
        ],
    ),
    (
        "Secret",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "data", MapBytes),
            f(3, "type", Str),
            f(4, "stringData", MapStr),
            f(5, "immutable", Bool),
        ],
    ),
    (
        "ServiceAccount",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            r(2, "secrets", Msg("ObjectReference")),
            r(3, "imagePullSecrets", Msg("LocalObjectReference")),
            f(4, "automountServiceAccountToken", Bool),
        ],
    ),
    (
        "ObjectReference",
        &[
            f(1, "kind", Str),
            f(2, "namespace", Str),
            f(3, "name", Str),
            f(4, "uid", Str),
            f(5, "apiVersion", Str),
        ],
    ),
    ("LocalObjectReference", &[f(1, "name", Str)]),
    (
        "Binding",
        &[
            f(1, "metadata", Msg("ObjectMeta")),
            f(2, "target", Msg("ObjectReference")),
        ],
    ),
];

fn schema(msg: &str) -> Option<&'static [Field]> {
    SCHEMAS.iter().find(|(n, _)| *n == msg).map(|(_, f)| *f)
}

/// The message type of a top-level kind.
fn message_for(api_version: &str, kind: &str) -> Option<&'static str> {
    Some(match (api_version, kind) {
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding" | "RoleBinding") => "RoleBinding",
        ("rbac.authorization.k8s.io/v1", "ClusterRole" | "Role") => "Role",
        ("policy/v1", "Eviction") => "Eviction",
        ("v1", "Namespace") => "Namespace",
        ("v1", "ConfigMap") => "ConfigMap",
        ("v1", "Secret") => "Secret",
        ("v1", "ServiceAccount") => "ServiceAccount",
        ("v1", "Binding") => "Binding",
        (_, "DeleteOptions") => "DeleteOptions",
        _ => return None,
    })
}

impl From<WireError> for ProtoError {
    fn from(_: WireError) -> Self {
        ProtoError::Malformed
    }
}

fn utf8(b: &[u8]) -> Result<String, ProtoError> {
    String::from_utf8(b.to_vec()).map_err(|_| ProtoError::Malformed)
}

fn map_entry(b: &[u8], bytes_value: bool) -> Result<(String, Value), ProtoError> {
    let mut r = Reader::new(b);
    let (mut k, mut v) = (String::new(), Value::String(String::new()));
    while !r.done() {
        match r.field()? {
            (1, Wire::Bytes(x)) => k = utf8(x)?,
            (2, Wire::Bytes(x)) if bytes_value => {
                v = json!(base64::engine::general_purpose::STANDARD.encode(x))
            }
            (2, Wire::Bytes(x)) => v = json!(utf8(x)?),
            _ => {}
        }
    }
    Ok((k, v))
}

fn time(b: &[u8]) -> Result<Value, ProtoError> {
    let mut r = Reader::new(b);
    let mut secs: i64 = 0;
    while !r.done() {
        if let (1, Wire::Varint(v)) = r.field()? {
            secs = v as i64;
        }
    }
    if secs == 0 {
        return Ok(Value::Null);
    }
    let t = time::OffsetDateTime::from_unix_timestamp(secs).map_err(|_| ProtoError::Malformed)?;
    Ok(json!(t
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()))
}

fn decode_message(msg: &str, buf: &[u8]) -> Result<Value, ProtoError> {
    let fields = schema(msg).ok_or_else(|| ProtoError::Unsupported(msg.to_string()))?;
    let mut out = Map::new();
    let mut r = Reader::new(buf);
    while !r.done() {
        let (num, wire) = r.field()?;
        let Some(fd) = fields.iter().find(|x| x.num == num) else {
            continue; // unknown field: skipped, like proto2 parsers
        };
        let value = match (fd.kind, wire) {
            (Str, Wire::Bytes(b)) => json!(utf8(b)?),
            (Int, Wire::Varint(v)) => json!(v as i64),
            (Bool, Wire::Varint(v)) => json!(v != 0),
            (Time, Wire::Bytes(b)) => time(b)?,
            (Msg(m), Wire::Bytes(b)) => decode_message(m, b)?,
            (MapStr | MapBytes, Wire::Bytes(b)) => {
                let (k, v) = map_entry(b, matches!(fd.kind, MapBytes))?;
                let entry = out.entry(fd.name).or_insert_with(|| json!({}));
                entry[k.as_str()] = v;
                continue;
            }
            _ => return Err(ProtoError::Malformed),
        };
        if fd.repeated {
            match out.entry(fd.name).or_insert_with(|| json!([])) {
                Value::Array(a) => a.push(value),
                _ => return Err(ProtoError::Malformed),
            }
        } else {
            out.insert(fd.name.to_string(), value);
        }
    }
    Ok(Value::Object(out))
}

/// Decodes a whole body: magic, `runtime.Unknown` envelope, object.
pub fn decode_object(body: &[u8]) -> Result<Value, ProtoError> {
    let rest = body.strip_prefix(MAGIC).ok_or(ProtoError::NoMagic)?;
    let mut r = Reader::new(rest);
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    while !r.done() {
        match r.field()? {
            (1, Wire::Bytes(tm)) => {
                let mut t = Reader::new(tm);
                while !t.done() {
                    match t.field()? {
                        (1, Wire::Bytes(b)) => api_version = utf8(b)?,
                        (2, Wire::Bytes(b)) => kind = utf8(b)?,
                        _ => {}
                    }
                }
            }
            (2, Wire::Bytes(b)) => raw = b,
            _ => {}
        }
    }
    let msg = message_for(&api_version, &kind)
        .ok_or_else(|| ProtoError::Unsupported(format!("{api_version} {kind}")))?;
    let mut obj = decode_message(msg, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, num: u8, data: &[u8]) {
        out.push((num << 3) | 2);
        out.push(data.len() as u8);
        out.extend_from_slice(data);
    }

    fn envelope(api: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let mut tm = Vec::new();
        field(&mut tm, 1, api.as_bytes());
        field(&mut tm, 2, kind.as_bytes());
        let mut body = MAGIC.to_vec();
        field(&mut body, 1, &tm);
        field(&mut body, 2, raw);
        body
    }

    #[test]
    fn decodes_a_clusterrolebinding() {
        let mut meta = Vec::new();
        field(&mut meta, 1, b"x");
        let mut label = Vec::new();
        field(&mut label, 1, b"k");
        field(&mut label, 2, b"v");
        field(&mut meta, 11, &label);
        field(&mut meta, 8, &[]); // empty Time
        let mut subj = Vec::new();
        field(&mut subj, 1, b"User");
        field(&mut subj, 3, b"u");
        let mut rr = Vec::new();
        field(&mut rr, 2, b"ClusterRole");
        field(&mut rr, 3, b"cluster-admin");
        let mut crb = Vec::new();
        field(&mut crb, 1, &meta);
        field(&mut crb, 2, &subj);
        field(&mut crb, 3, &rr);
        crb.extend_from_slice(&[0x78, 0x01]); // unknown varint field 15: skipped
        let v = decode_object(&envelope(
            "rbac.authorization.k8s.io/v1",
            "ClusterRoleBinding",
            &crb,
        ))
        .unwrap();
        assert_eq!(
            v,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                   "metadata": {"name": "x", "labels": {"k": "v"}, "creationTimestamp": null},
                   "subjects": [{"kind": "User", "name": "u"}],
                   "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"}})
        );
    }

    #[test]
    fn decodes_an_eviction_and_rejects_the_rest() {
        let mut pre = Vec::new();
        field(&mut pre, 1, b"uid-1");
        let mut opts = vec![0x08, 0x1e]; // gracePeriodSeconds = 30
        field(&mut opts, 2, &pre);
        let mut meta = Vec::new();
        field(&mut meta, 1, b"p");
        field(&mut meta, 3, b"ns");
        let mut ev = Vec::new();
        field(&mut ev, 1, &meta);
        field(&mut ev, 2, &opts);
        let v = decode_object(&envelope("policy/v1", "Eviction", &ev)).unwrap();
        assert_eq!(v["metadata"]["namespace"], "ns");
        assert_eq!(v["deleteOptions"]["gracePeriodSeconds"], 30);
        assert_eq!(v["deleteOptions"]["preconditions"]["uid"], "uid-1");
        assert!(matches!(
            decode_object(&envelope("apps/v1", "Deployment", &[])),
            Err(ProtoError::Unsupported(_))
        ));
        assert_eq!(decode_object(b"{}"), Err(ProtoError::NoMagic));
        assert_eq!(
            decode_object(&envelope("v1", "Secret", &[0x0a, 0x05, 0x01])),
            Err(ProtoError::Malformed)
        );
    }
}
