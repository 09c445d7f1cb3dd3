//! `?watch=1`: a stream of ADDED/MODIFIED/DELETED events. Simplification:
//! the stand-in polls etcd twice a second and diffs, instead of using an
//! etcd watch and a cache; event order per object is preserved.

use super::resources::Resource;
use super::selectors::Selector;
use super::store::{name_of, resource_version};
use super::{table, State};
use crate::http::server::{Body, ChannelBody};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Response;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What to watch.
pub struct Options {
    pub ns: Option<String>,
    pub labels: Selector,
    pub fields: Selector,
    /// Only changes after this resourceVersion (None: start with ADDED for
    /// everything that exists).
    pub since: Option<i64>,
    pub timeout_secs: u64,
    /// Send Table rows instead of objects (value: includeObject).
    pub table: Option<String>,
}

/// Starts a watch and returns the streaming response.
pub fn start(st: Arc<State>, res: Resource, opts: Options) -> Response<Body> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(run(st, res, opts, tx));
    let mut r = Response::new(ChannelBody(rx).boxed());
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn event(kind: &str, obj: &Value, res: &Resource, opts: &Options) -> Bytes {
    let object = match &opts.table {
        Some(inc) => table::render(
            res,
            std::slice::from_ref(obj),
            &resource_version(obj).to_string(),
            inc,
        ),
        None => obj.clone(),
    };
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn object_key(o: &Value) -> String {
    let (name, ns) = name_of(o);
    format!("{}/{name}", ns.unwrap_or(""))
}

async fn snapshot(
    st: &State,
    res: &Resource,
    opts: &Options,
) -> Result<(HashMap<String, Value>, i64), super::status::ApiError> {
    let (items, rev) = st.store.list(res, opts.ns.as_deref()).await?;
    Ok((
        items
            .into_iter()
            .filter(|o| opts.labels.matches_labels(o) && opts.fields.matches_fields(o))
            .map(|o| (object_key(&o), o))
            .collect(),
        rev,
    ))
}

async fn run(st: Arc<State>, res: Resource, opts: Options, tx: mpsc::Sender<Bytes>) {
    let deadline = Instant::now() + Duration::from_secs(opts.timeout_secs);
    let mut known = match snapshot(&st, &res, &opts).await {
        Ok((m, _)) => m,
        Err(e) => {
            let _ = tx
                .send(Bytes::from(
                    json!({"type": "ERROR", "object": e.to_status()}).to_string(),
                ))
                .await;
            return;
        }
    };
    let mut initial: Vec<&Value> = known
        .values()
        .filter(|o| opts.since.is_none_or(|s| resource_version(o) > s))
        .collect();
    initial.sort_by_key(|o| resource_version(o));
    for o in initial {
        if tx.send(event("ADDED", o, &res, &opts)).await.is_err() {
            return;
        }
    }
    while Instant::now() < deadline && !tx.is_closed() {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let Ok((now, rev)) = snapshot(&st, &res, &opts).await else {
            continue;
        };
        let mut events: Vec<(i64, &str, Value)> = Vec::new();
        for (k, o) in &now {
            match known.get(k) {
                None => events.push((resource_version(o), "ADDED", o.clone())),
                Some(old) if resource_version(old) != resource_version(o) => {
                    events.push((resource_version(o), "MODIFIED", o.clone()))
                }
                Some(_) => {}
            }
        }
        for (k, old) in &known {
            if !now.contains_key(k) {
                let mut gone = old.clone();
                gone["metadata"]["resourceVersion"] = json!(rev.to_string());
                events.push((rev, "DELETED", gone));
            }
        }
        events.sort_by_key(|e| e.0);
        for (_, kind, o) in &events {
            if tx.send(event(kind, o, &res, &opts)).await.is_err() {
                return;
            }
        }
        known = now;
    }
}
