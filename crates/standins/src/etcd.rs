//! An etcd v3 client over etcd's JSON gateway (`/v3/kv/*`, served on the
//! client port by etcd 3.4), with fail-over across endpoints.

use crate::http::{ClientError, HttpClient};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hyper::Method;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Errors from etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("no etcd endpoint reachable: {0}")]
    Unavailable(String),
    #[error("etcd {endpoint}: HTTP {status}: {message}")]
    Status {
        endpoint: String,
        status: u16,
        message: String,
    },
    #[error("etcd: undecodable response: {0}")]
    Decode(String),
    #[error(transparent)]
    Setup(#[from] ClientError),
}

/// One key-value pair.
#[derive(Debug, Clone)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    pub mod_revision: i64,
    pub create_revision: i64,
}

/// Outcome of a conditional write.
#[derive(Debug)]
pub enum Write {
    /// Written at this revision.
    Done(i64),
    /// The condition failed; the current value, if the key exists.
    Conflict(Option<Kv>),
}

/// A client for an etcd cluster.
pub struct Etcd {
    endpoints: Vec<HttpClient>,
    preferred: AtomicUsize,
}

fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

/// The key just past every key starting with `prefix`.
fn prefix_end(prefix: &str) -> Vec<u8> {
    let mut end = prefix.as_bytes().to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn parse_kv(v: &Value) -> Result<Kv, EtcdError> {
    let dec = |f: &str| -> Result<Vec<u8>, EtcdError> {
        match v.get(f).and_then(Value::as_str) {
            None => Ok(Vec::new()),
            Some(s) => B64
                .decode(s)
                .map_err(|e| EtcdError::Decode(format!("{f}: {e}"))),
        }
    };
    Ok(Kv {
        key: String::from_utf8_lossy(&dec("key")?).into_owned(),
        value: dec("value")?,
        mod_revision: v.get("mod_revision").map(int).unwrap_or(0),
        create_revision: v.get("create_revision").map(int).unwrap_or(0),
    })
}

fn parse_kvs(v: &Value) -> Result<Vec<Kv>, EtcdError> {
    v.get("kvs")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(parse_kv).collect())
        .unwrap_or_else(|| Ok(Vec::new()))
}

impl Etcd {
    /// A client for comma-separated `urls`, with TLS config for https ones.
    pub fn new(urls: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Self, EtcdError> {
        let endpoints = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| {
                HttpClient::new(u, tls.clone()).map(|c| c.with_timeout(Duration::from_secs(5)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(EtcdError::Unavailable("no endpoints given".into()));
        }
        Ok(Self {
            endpoints,
            preferred: AtomicUsize::new(0),
        })
    }

    /// POSTs to the gateway, trying the last good endpoint first and the
    /// others when it cannot be reached.
    async fn call(&self, path: &str, body: Value) -> Result<Value, EtcdError> {
        let n = self.endpoints.len();
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let mut failures = Vec::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let client = &self.endpoints[idx];
            let data = body.to_string().into_bytes();
            match client
                .request(Method::POST, path, Some(("application/json", data)))
                .await
            {
                Ok(r) if r.ok() => {
                    self.preferred.store(idx, Ordering::Relaxed);
                    return serde_json::from_slice(&r.body)
                        .map_err(|e| EtcdError::Decode(e.to_string()));
                }
                Ok(r) if r.status >= 500 => {
                    // e.g. "etcdserver: no leader": another member may do.
                    failures.push(format!(
                        "{}: HTTP {}: {}",
                        client.authority(),
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ));
                }
                Ok(r) => {
                    return Err(EtcdError::Status {
                        endpoint: client.authority(),
                        status: r.status,
                        message: String::from_utf8_lossy(&r.body).into_owned(),
                    })
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        Err(EtcdError::Unavailable(failures.join("; ")))
    }

    /// Reads one key.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let r = self.call("/v3/kv/range", json!({"key": b64(key)})).await?;
        Ok(parse_kvs(&r)?.into_iter().next())
    }

    /// Reads every key under `prefix`; also returns the store revision.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Kv>, i64), EtcdError> {
        let r = self
            .call(
                "/v3/kv/range",
                json!({"key": b64(prefix), "range_end": B64.encode(prefix_end(prefix))}),
            )
            .await?;
        let rev = r.pointer("/header/revision").map(int).unwrap_or(0);
        Ok((parse_kvs(&r)?, rev))
    }

    /// The current store revision (also a liveness probe).
    pub async fn revision(&self) -> Result<i64, EtcdError> {
        let r = self
            .call(
                "/v3/kv/range",
                json!({"key": b64("/registry/health"), "count_only": true}),
            )
            .await?;
        Ok(r.pointer("/header/revision").map(int).unwrap_or(0))
    }

    async fn txn(&self, key: &str, compare: Value, success: Value) -> Result<Write, EtcdError> {
        let r = self
            .call(
                "/v3/kv/txn",
                json!({
                    "compare": [compare],
                    "success": [success],
                    "failure": [{"request_range": {"key": b64(key)}}],
                }),
            )
            .await?;
        // The gateway leaves out false booleans.
        if r.get("succeeded").and_then(Value::as_bool) == Some(true) {
            return Ok(Write::Done(
                r.pointer("/header/revision").map(int).unwrap_or(0),
            ));
        }
        let current = r
            .pointer("/responses/0/response_range")
            .map(parse_kvs)
            .transpose()?
            .and_then(|v| v.into_iter().next());
        Ok(Write::Conflict(current))
    }

    /// Creates `key` only if it does not exist.
    pub async fn create(&self, key: &str, value: &[u8]) -> Result<Write, EtcdError> {
        self.txn(
            key,
            json!({"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}),
            json!({"request_put": {"key": b64(key), "value": B64.encode(value)}}),
        )
        .await
    }

    /// Replaces `key` only if it is still at `mod_revision`.
    pub async fn update(
        &self,
        key: &str,
        value: &[u8],
        mod_revision: i64,
    ) -> Result<Write, EtcdError> {
        self.txn(
            key,
            json!({"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": mod_revision.to_string()}),
            json!({"request_put": {"key": b64(key), "value": B64.encode(value)}}),
        )
        .await
    }

    /// Deletes `key` only if it is still at `mod_revision`.
    pub async fn delete(&self, key: &str, mod_revision: i64) -> Result<Write, EtcdError> {
        self.txn(
            key,
            json!({"key": b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": mod_revision.to_string()}),
            json!({"request_delete_range": {"key": b64(key)}}),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_last_byte() {
        assert_eq!(prefix_end("/registry/"), b"/registry0".to_vec());
        assert_eq!(prefix_end("a\u{7f}"), b"a\x80".to_vec());
    }

    #[test]
    fn parses_gateway_kvs() {
        let v =
            json!({"kvs":[{"key":"Zm9v","value":"YmFy","mod_revision":"7","create_revision":"3"}]});
        let kvs = parse_kvs(&v).unwrap();
        assert_eq!(kvs[0].key, "foo");
        assert_eq!(kvs[0].value, b"bar");
        assert_eq!((kvs[0].mod_revision, kvs[0].create_revision), (7, 3));
        assert!(parse_kvs(&json!({})).unwrap().is_empty());
    }

    #[tokio::test]
    async fn unreachable_endpoints_fail_over_then_report_all() {
        // Two closed loopback ports: both are tried, both named.
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let urls = format!(
            "http://{},http://{}",
            a.local_addr().unwrap(),
            b.local_addr().unwrap()
        );
        drop((a, b));
        let e = Etcd::new(&urls, None).unwrap().get("/x").await.unwrap_err();
        let EtcdError::Unavailable(msg) = e else {
            panic!("{e}")
        };
        assert_eq!(msg.matches("dial tcp").count(), 2, "{msg}");
    }
}
