//! The REST verbs on resources: get, list, watch, create, update, patch,
//! delete, plus the pod subresources drain and the scheduler use
//! (eviction, binding).

use super::admission;
use super::patch;
use super::resources::Resource;
use super::selectors::{label_selector_matches, Selector};
use super::status::{success, ApiError};
use super::store::{name_of, resource_version};
use super::{table, watch, State};
use crate::http::server::{json, Body};
use bytes::Bytes;
use hyper::{Method, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// One API request, already read.
pub struct Req {
    pub method: Method,
    pub query: HashMap<String, String>,
    pub accept: String,
    pub content_type: String,
    pub body: Bytes,
}

impl Req {
    fn q(&self, k: &str) -> Option<&str> {
        self.query
            .get(k)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }

    fn wants_table(&self) -> bool {
        self.accept.contains("as=Table")
    }

    fn dry_run(&self) -> bool {
        self.q("dryRun") == Some("All")
    }
}

/// Current time as the API writes it.
pub fn now() -> String {
    let t = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into())
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    // /dev/urandom never blocks; fall back to the clock if it is missing.
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b))
        .is_err()
    {
        let t = time::OffsetDateTime::now_utc()
            .unix_timestamp_nanos()
            .to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = t[i % t.len()] ^ (i as u8);
        }
    }
    b
}

/// A random RFC 4122 v4 UID.
pub fn uid() -> String {
    let mut b = random_bytes::<16>();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The 5-character suffix of generateName.
fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes::<5>()
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

fn reply(r: Result<(u16, Value), ApiError>) -> Response<Body> {
    match r {
        Ok((code, v)) => json(code, &v),
        Err(e) => json(e.code, &e.to_status()),
    }
}

/// A request body as JSON, decoding protobuf bodies of typed clients.
fn parse_body(req: &Req) -> Result<Value, ApiError> {
    if req
        .content_type
        .starts_with("application/vnd.kubernetes.protobuf")
    {
        return super::proto::decode_object(&req.body).map_err(|e| match e {
            super::proto::ProtoError::Unsupported(_) => {
                ApiError::new(415, "UnsupportedMediaType", e.to_string())
            }
            _ => ApiError::bad_request(e.to_string()),
        });
    }
    let body = &req.body;
    let v: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("the request body is not valid JSON: {e}")))?;
    if !v.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

fn check_type(res: &Resource, obj: &Value) -> Result<(), ApiError> {
    if let Some(k) = obj.get("kind").and_then(Value::as_str) {
        if k != res.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                res.kind
            )));
        }
    }
    if let Some(av) = obj.get("apiVersion").and_then(Value::as_str) {
        if av != res.api_version() {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({})",
                res.api_version()
            )));
        }
    }
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.contains(['/', '%'])
        && name != "."
        && name != ".."
}

/// Everything except metadata and status: what bumps `generation`.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        m.remove("metadata");
        m.remove("status");
    }
    o
}

/// Builds the object to store from the current one and the client's new
/// version (PUT body or patched object).
fn merged_update(
    res: &Resource,
    cur: &Value,
    mut new: Value,
    sub: Option<&str>,
    now: &str,
) -> Result<Value, ApiError> {
    if sub == Some("status") {
        let mut out = cur.clone();
        match new.get("status") {
            Some(s) => out["status"] = s.clone(),
            None => {
                if let Some(m) = out.as_object_mut() {
                    m.remove("status");
                }
            }
        }
        return Ok(out);
    }
    let (name, _) = name_of(cur);
    if name_of(&new).0 != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({}) does not match the name on the URL ({name})",
            name_of(&new).0
        )));
    }
    new["apiVersion"] = json!(res.api_version());
    new["kind"] = json!(res.kind);
    for k in ["uid", "creationTimestamp", "namespace", "generation"] {
        match cur.pointer(&format!("/metadata/{k}")) {
            Some(v) => new["metadata"][k] = v.clone(),
            None => {
                if let Some(m) = new["metadata"].as_object_mut() {
                    m.remove(k);
                }
            }
        }
    }
    if res.status {
        match cur.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(m) = new.as_object_mut() {
                    m.remove("status");
                }
            }
        }
    }
    if spec_part(&new) != spec_part(cur) {
        if let Some(g) = cur.pointer("/metadata/generation").and_then(Value::as_i64) {
            new["metadata"]["generation"] = json!(g + 1);
        }
    }
    admission::on_update(res, cur, &mut new, now)?;
    Ok(new)
}

/// Splits `namespaces/<ns>/...` off a path (but not `namespaces/<name>`
/// or its own subresources).
pub fn split_namespace<'a>(segs: &'a [&'a str]) -> (Option<&'a str>, &'a [&'a str]) {
    if segs.first() == Some(&"namespaces") && segs.len() >= 3 {
        let own_sub = segs.len() == 3 && matches!(segs[2], "status" | "finalize");
        if !own_sub {
            return (Some(segs[1]), &segs[2..]);
        }
    }
    (None, segs)
}

/// Serves a resource path below a group/version.
pub async fn handle(
    st: &Arc<State>,
    group: &str,
    version: &str,
    segs: &[&str],
    req: Req,
) -> Response<Body> {
    let (ns, rest) = split_namespace(segs);
    let Some(plural) = rest.first() else {
        return reply(Err(ApiError::path_not_found()));
    };
    let res = match st.registry.find(group, version, plural) {
        Some(r) => r,
        None => {
            // Another apiserver may have just registered a CRD.
            let _ = st.sync_crds().await;
            match st.registry.find(group, version, plural) {
                Some(r) => r,
                None => return reply(Err(ApiError::path_not_found())),
            }
        }
    };
    let name = rest.get(1).copied();
    let sub = rest.get(2).copied();
    if rest.len() > 3
        || (!res.namespaced && ns.is_some())
        || (res.namespaced && ns.is_none() && name.is_some())
        || (sub == Some("status") && !res.status)
    {
        return reply(Err(ApiError::path_not_found()));
    }
    let is_pods = res.group.is_empty() && res.plural == "pods";
    let m = req.method.clone();
    match (m, name, sub) {
        (Method::GET, None, None) => {
            let watching = matches!(req.q("watch"), Some("1" | "true"));
            if watching {
                return start_watch(st, &res, ns, &req);
            }
            reply(list(st, &res, ns, &req).await)
        }
        (Method::GET, Some(n), None | Some("status")) => reply(get(st, &res, ns, n, &req).await),
        (Method::POST, None, None) => match ns {
            Some(ns) if res.namespaced => reply(create(st, &res, Some(ns), &req).await),
            None if !res.namespaced => reply(create(st, &res, None, &req).await),
            _ => reply(Err(ApiError::method_not_allowed())),
        },
        (Method::POST, Some(n), Some("eviction")) if is_pods => {
            reply(evict(st, &res, ns, n, &req).await)
        }
        (Method::POST, Some(n), Some("binding")) if is_pods => {
            reply(bind(st, &res, ns, n, &req).await)
        }
        (Method::PUT, Some(n), None | Some("status")) => {
            reply(update(st, &res, ns, n, sub, &req).await)
        }
        (Method::PATCH, Some(n), None | Some("status")) => {
            reply(patch_obj(st, &res, ns, n, sub, &req).await)
        }
        (Method::DELETE, Some(n), None) => reply(delete(st, &res, ns, n, &req).await),
        (Method::DELETE, None, None) => reply(delete_collection(st, &res, ns, &req).await),
        _ => reply(Err(ApiError::method_not_allowed())),
    }
}

fn selectors(req: &Req) -> Result<(Selector, Selector), ApiError> {
    let ls = Selector::parse_labels(req.q("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let fs = Selector::parse_fields(req.q("fieldSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok((ls, fs))
}

async fn list(
    st: &State,
    res: &Resource,
    ns: Option<&str>,
    req: &Req,
) -> Result<(u16, Value), ApiError> {
    let (ls, fs) = selectors(req)?;
    let (items, rev) = st.store.list(res, ns).await?;
    let items: Vec<Value> = items
        .into_iter()
        .filter(|o| ls.matches_labels(o) && fs.matches_fields(o))
        .collect();
    if req.wants_table() {
        let inc = req.q("includeObject").unwrap_or("Metadata");
        return Ok((200, table::render(res, &items, &rev.to_string(), inc)));
    }
    Ok((
        200,
        json!({
            "kind": format!("{}List", res.kind),
            "apiVersion": res.api_version(),
            "metadata": {"resourceVersion": rev.to_string()},
            "items": items,
        }),
    ))
}

fn start_watch(st: &Arc<State>, res: &Resource, ns: Option<&str>, req: &Req) -> Response<Body> {
    let (ls, fs) = match selectors(req) {
        Ok(x) => x,
        Err(e) => return reply(Err(e)),
    };
    let opts = watch::Options {
        ns: ns.map(str::to_string),
        labels: ls,
        fields: fs,
        since: req
            .q("resourceVersion")
            .and_then(|v| v.parse().ok())
            .filter(|v| *v > 0),
        timeout_secs: req
            .q("timeoutSeconds")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1800),
        table: req
            .wants_table()
            .then(|| req.q("includeObject").unwrap_or("Metadata").to_string()),
    };
    watch::start(st.clone(), res.clone(), opts)
}

async fn get(
    st: &State,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    req: &Req,
) -> Result<(u16, Value), ApiError> {
    let obj = st
        .store
        .get(res, ns, name)
        .await?
        .ok_or_else(|| ApiError::not_found(res, name))?;
    if req.wants_table() {
        let rv = resource_version(&obj).to_string();
        let inc = req.q("includeObject").unwrap_or("Metadata");
        return Ok((200, table::render(res, &[obj], &rv, inc)));
    }
    Ok((200, obj))
}

async fn create(
    st: &State,
    res: &Resource,
    ns: Option<&str>,
    req: &Req,
) -> Result<(u16, Value), ApiError> {
    let mut obj = parse_body(req)?;
    create_object(st, res, ns, &mut obj, req.dry_run()).await
}

/// Creates `obj` (shared by POST and server-side apply of a new object).
async fn create_object(
    st: &State,
    res: &Resource,
    ns: Option<&str>,
    obj: &mut Value,
    dry_run: bool,
) -> Result<(u16, Value), ApiError> {
    check_type(res, obj)?;
    obj["apiVersion"] = json!(res.api_version());
    obj["kind"] = json!(res.kind);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    let meta = &mut obj["metadata"];
    if res.namespaced {
        let path_ns = ns.unwrap_or("default");
        match meta.get("namespace").and_then(Value::as_str) {
            Some(b) if !b.is_empty() && b != path_ns => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            _ => meta["namespace"] = json!(path_ns),
        }
    } else if let Some(m) = meta.as_object_mut() {
        m.remove("namespace");
    }
    let mut name = meta
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if name.is_empty() {
        match meta.get("generateName").and_then(Value::as_str) {
            Some(g) if !g.is_empty() => name = format!("{g}{}", name_suffix()),
            _ => {
                return Err(ApiError::invalid(
                    res,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
        }
        meta["name"] = json!(name);
    }
    if !valid_name(&name) {
        return Err(ApiError::invalid(
            res,
            &name,
            "metadata.name: Invalid value: a valid name must not contain '/' or '%'",
        ));
    }
    let now = now();
    meta["uid"] = json!(uid());
    meta["creationTimestamp"] = json!(now);
    if let Some(m) = meta.as_object_mut() {
        m.remove("resourceVersion");
        m.remove("deletionTimestamp");
        m.remove("selfLink");
    }
    if obj.get("spec").is_some() {
        obj["metadata"]["generation"] = json!(1);
    }
    if dry_run {
        return Ok((201, obj.clone()));
    }
    admission::on_create(st, res, obj, &now).await?;
    match st.store.create(res, obj.clone()).await {
        Ok(created) => {
            admission::after_write(st, res).await?;
            Ok((201, created))
        }
        Err(e) => {
            // Give back what admission allocated (service IPs, ports).
            if res.group.is_empty() && res.plural == "services" {
                let _ = admission::after_delete(st, res, obj).await;
            }
            Err(e)
        }
    }
}

async fn update(
    st: &State,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    req: &Req,
) -> Result<(u16, Value), ApiError> {
    let body = parse_body(req)?;
    check_type(res, &body)?;
    let wanted = resource_version(&body);
    let now = now();
    if req.dry_run() {
        let cur = st
            .store
            .get(res, ns, name)
            .await?
            .ok_or_else(|| ApiError::not_found(res, name))?;
        return Ok((200, merged_update(res, &cur, body, sub, &now)?));
    }
    let out = st
        .store
        .update_with(res, ns, name, |cur| {
            if wanted != 0 && wanted != resource_version(&cur) {
                return Err(ApiError::conflict(res, name));
            }
            merged_update(res, &cur, body.clone(), sub, &now).map(Some)
        })
        .await?;
    admission::after_write(st, res).await?;
    Ok((200, out))
}

fn media_type(ct: &str) -> &str {
    ct.split(';').next().unwrap_or("").trim()
}

async fn patch_obj(
    st: &State,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    sub: Option<&str>,
    req: &Req,
) -> Result<(u16, Value), ApiError> {
    let ct = media_type(&req.content_type).to_string();
    let patch: Value = if ct == "application/apply-patch+yaml" {
        let text = String::from_utf8_lossy(&req.body);
        crate::yaml::parse_all(&text, std::path::Path::new("request body"))
            .map_err(|e| ApiError::bad_request(e.to_string()))?
            .into_iter()
            .next()
            .unwrap_or(Value::Null)
    } else {
        serde_json::from_slice(&req.body).map_err(|e| {
            ApiError::bad_request(format!("the request body is not valid JSON: {e}"))
        })?
    };
    let known = [
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
        "application/json-patch+json",
        "application/apply-patch+yaml",
    ];
    if !known.contains(&ct.as_str()) {
        return Err(ApiError::unsupported_media(&ct));
    }
    if ct == "application/apply-patch+yaml"
        && sub.is_none()
        && st.store.get(res, ns, name).await?.is_none()
    {
        // Server-side apply of a new object creates it.
        let mut obj = patch.clone();
        obj["metadata"]["name"] = json!(name);
        return create_object(st, res, ns, &mut obj, req.dry_run()).await;
    }
    let now = now();
    let apply = |cur: &Value| -> Result<Value, ApiError> {
        let mut target = cur.clone();
        match ct.as_str() {
            "application/strategic-merge-patch+json" => patch::strategic_merge(&mut target, &patch),
            "application/json-patch+json" => patch::json_patch(&mut target, &patch)
                .map_err(|e| ApiError::new(422, "Invalid", e.to_string()))?,
            _ => patch::merge_patch(&mut target, &patch),
        }
        let wanted = resource_version(&target);
        if wanted != 0 && wanted != resource_version(cur) {
            return Err(ApiError::conflict(res, name));
        }
        merged_update(res, cur, target, sub, &now)
    };
    if req.dry_run() {
        let cur = st
            .store
            .get(res, ns, name)
            .await?
            .ok_or_else(|| ApiError::not_found(res, name))?;
        return Ok((200, apply(&cur)?));
    }
    let out = st
        .store
        .update_with(res, ns, name, |cur| apply(&cur).map(Some))
        .await?;
    admission::after_write(st, res).await?;
    Ok((200, out))
}

fn check_preconditions(opts: &Value, cur: &Value) -> Result<(), ApiError> {
    let pre = opts.get("preconditions");
    for (field, ptr) in [
        ("uid", "/metadata/uid"),
        ("resourceVersion", "/metadata/resourceVersion"),
    ] {
        if let Some(want) = pre.and_then(|p| p.get(field)).and_then(Value::as_str) {
            let have = cur.pointer(ptr).and_then(Value::as_str).unwrap_or("");
            if want != have {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("Precondition failed: {field} in precondition: {want}, {field} in object meta: {have}"),
                ));
            }
        }
    }
    Ok(())
}

async fn delete(
    st: &State,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    req: &Req,
) -> Result<(u16, Value), ApiError> {
    let opts: Value = if req.body.is_empty() {
        Value::Null
    } else {
        parse_body(req).unwrap_or(Value::Null)
    };
    if req.dry_run()
        || opts
            .get("dryRun")
            .is_some_and(|d| d.as_array().is_some_and(|a| !a.is_empty()))
    {
        let cur = st
            .store
            .get(res, ns, name)
            .await?
            .ok_or_else(|| ApiError::not_found(res, name))?;
        return Ok((200, cur));
    }
    let mut gone = st
        .store
        .delete(res, ns, name, |cur| check_preconditions(&opts, cur))
        .await?;
    admission::after_delete(st, res, &gone).await?;
    if res.group.is_empty() && res.plural == "namespaces" {
        gone["status"]["phase"] = json!("Terminating");
    }
    Ok((200, gone))
}

async fn delete_collection(
    st: &State,
    res: &Resource,
    ns: Option<&str>,
    req: &Req,
) -> Result<(u16, Value), ApiError> {
    let (ls, fs) = selectors(req)?;
    let (items, rev) = st.store.list(res, ns).await?;
    let mut deleted = Vec::new();
    for o in items
        .into_iter()
        .filter(|o| ls.matches_labels(o) && fs.matches_fields(o))
    {
        let (name, ons) = name_of(&o);
        let (name, ons) = (name.to_string(), ons.map(str::to_string));
        if let Ok(g) = st
            .store
            .delete(res, ons.as_deref(), &name, |_| Ok(()))
            .await
        {
            admission::after_delete(st, res, &g).await?;
            deleted.push(g);
        }
    }
    Ok((
        200,
        json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(),
                    "metadata": {"resourceVersion": rev.to_string()}, "items": deleted}),
    ))
}

/// How many of `count` pods a budget lets go: minAvailable or
/// maxUnavailable, integers or percentages (rounded up, like the real one).
fn disruptions_allowed(pdb: &Value, count: i64) -> (i64, i64) {
    let scaled = |v: &Value| -> i64 {
        match v {
            Value::Number(n) => n.as_i64().unwrap_or(0),
            Value::String(s) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
                Some(p) => (p * count + 99) / 100,
                None => s.parse().unwrap_or(0),
            },
            _ => 0,
        }
    };
    if let Some(min) = pdb.pointer("/spec/minAvailable") {
        let min = scaled(min);
        (count - min, min)
    } else if let Some(max) = pdb.pointer("/spec/maxUnavailable") {
        let max = scaled(max);
        (max, count - max)
    } else {
        (count, 0)
    }
}

async fn evict(
    st: &State,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    req: &Req,
) -> Result<(u16, Value), ApiError> {
    let pod = st
        .store
        .get(res, ns, name)
        .await?
        .ok_or_else(|| ApiError::not_found(res, name))?;
    // Simplification: every existing pod counts as healthy.
    if let Some(pdbs) = st.registry.find("policy", "v1", "poddisruptionbudgets") {
        let (budgets, _) = st.store.list(&pdbs, ns).await?;
        let (pods, _) = st.store.list(res, ns).await?;
        for b in budgets {
            let sel = b.pointer("/spec/selector").cloned().unwrap_or(json!({}));
            if !label_selector_matches(&sel, &pod) {
                continue;
            }
            let count = pods
                .iter()
                .filter(|p| label_selector_matches(&sel, p))
                .count() as i64;
            let (allowed, needed) = disruptions_allowed(&b, count);
            if allowed < 1 {
                let mut e = ApiError::too_many_requests(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                );
                e.details = Some(
                    json!({"causes": [{"reason": "DisruptionBudget", "message": format!(
                    "The disruption budget {} needs {needed} healthy pods and has {count} currently", name_of(&b).0)}]}),
                );
                return Err(e);
            }
        }
    }
    if !req.dry_run() {
        let gone = st.store.delete(res, ns, name, |_| Ok(())).await?;
        admission::after_delete(st, res, &gone).await?;
    }
    Ok((201, success(201)))
}

async fn bind(
    st: &State,
    res: &Resource,
    ns: Option<&str>,
    name: &str,
    req: &Req,
) -> Result<(u16, Value), ApiError> {
    let binding = parse_body(req)?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ApiError::invalid(res, name, "target.name: Required value"))?
        .to_string();
    let now = now();
    st.store
        .update_with(res, ns, name, |mut pod| {
            let cur = pod.pointer("/spec/nodeName").and_then(Value::as_str).unwrap_or("");
            if !cur.is_empty() {
                return Err(ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on pods/binding \"{name}\": pod {name} is already assigned to node \"{cur}\"")));
            }
            pod["spec"]["nodeName"] = json!(node);
            let cond = json!({"type": "PodScheduled", "status": "True", "lastTransitionTime": now});
            match pod.pointer_mut("/status/conditions").and_then(Value::as_array_mut) {
                Some(cs) => cs.push(cond),
                None => pod["status"]["conditions"] = json!([cond]),
            }
            Ok(Some(pod))
        })
        .await?;
    Ok((201, success(201)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apiserver::resources::Registry;

    #[test]
    fn namespace_splitting() {
        assert_eq!(
            split_namespace(&["namespaces", "kube-system", "pods"]),
            (Some("kube-system"), &["pods"][..])
        );
        assert_eq!(split_namespace(&["namespaces", "kube-system"]).0, None);
        assert_eq!(split_namespace(&["namespaces", "x", "status"]).0, None);
        assert_eq!(
            split_namespace(&["namespaces", "x", "pods", "p", "status"]).1,
            &["pods", "p", "status"][..]
        );
    }

    #[test]
    fn uids_are_v4() {
        let u = uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uid());
        assert_eq!(name_suffix().len(), 5);
    }

    #[test]
    fn update_keeps_identity_status_and_bumps_generation() {
        let reg = Registry::new();
        let d = reg.find("apps", "v1", "deployments").unwrap();
        let cur = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns", "uid": "u1", "generation": 1, "creationTimestamp": "t"},
            "spec": {"replicas": 1}, "status": {"replicas": 1}});
        let new = json!({"metadata": {"name": "d", "uid": "forged"}, "spec": {"replicas": 2}, "status": {}});
        let out = merged_update(&d, &cur, new, None, "now").unwrap();
        assert_eq!(out["metadata"]["uid"], "u1");
        assert_eq!(out["metadata"]["namespace"], "ns");
        assert_eq!(out["metadata"]["generation"], 2);
        assert_eq!(out["status"], json!({"replicas": 1}));
        let st = merged_update(
            &d,
            &cur,
            json!({"status": {"replicas": 5}, "spec": {"replicas": 9}}),
            Some("status"),
            "now",
        )
        .unwrap();
        assert_eq!(st["spec"]["replicas"], 1);
        assert_eq!(st["status"]["replicas"], 5);
        let renamed = merged_update(&d, &cur, json!({"metadata": {"name": "e"}}), None, "now");
        assert_eq!(renamed.unwrap_err().code, 400);
    }

    #[test]
    fn budgets() {
        assert_eq!(
            disruptions_allowed(&json!({"spec": {"minAvailable": 1}}), 1),
            (0, 1)
        );
        assert_eq!(
            disruptions_allowed(&json!({"spec": {"minAvailable": "50%"}}), 3),
            (1, 2)
        );
        assert_eq!(
            disruptions_allowed(&json!({"spec": {"maxUnavailable": 1}}), 3),
            (1, 2)
        );
    }

    #[test]
    fn preconditions() {
        let cur = json!({"metadata": {"uid": "a", "resourceVersion": "3"}});
        assert!(check_preconditions(&json!({"preconditions": {"uid": "a"}}), &cur).is_ok());
        assert_eq!(
            check_preconditions(&json!({"preconditions": {"uid": "b"}}), &cur)
                .unwrap_err()
                .code,
            409
        );
        assert!(check_preconditions(&Value::Null, &cur).is_ok());
    }
}
