//! An etcd v3 client speaking gRPC (the KV service) over HTTP/2 + TLS,
//! like the real kube-apiserver, with fail-over across endpoints.
//! Messages are encoded by hand (see `protowire`): Range and Txn suffice.

use crate::http::url::{parse, Endpoint, UrlError};
use crate::protowire::{put_bytes, put_int, Reader, Wire, WireError};
use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Errors from etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("no etcd endpoint reachable: {0}")]
    Unavailable(String),
    #[error("etcd {endpoint}: grpc status {code}: {message}")]
    Status {
        endpoint: String,
        code: u32,
        message: String,
    },
    #[error("etcd: undecodable response: {0}")]
    Decode(String),
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("https etcd endpoint {0} needs TLS settings")]
    NoTls(String),
}

impl From<WireError> for EtcdError {
    fn from(e: WireError) -> Self {
        EtcdError::Decode(e.to_string())
    }
}

/// One key-value pair.
#[derive(Debug, Clone, Default)]
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

/// Why one call to one endpoint failed.
enum CallError {
    /// Could not reach it or it is not serving: try another member.
    Transport(String),
    /// It answered with a gRPC error.
    Status(u32, String),
}

/// gRPC codes worth retrying on another member (Unavailable, DeadlineExceeded).
fn retryable(code: u32) -> bool {
    matches!(code, 4 | 14)
}

/// One HTTP/2 connection to one etcd member, re-dialled when it breaks.
struct Channel {
    endpoint: Endpoint,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    conn: tokio::sync::Mutex<Option<SendRequest<Full<Bytes>>>>,
}

impl Channel {
    fn new(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Self, EtcdError> {
        let endpoint = parse(url)?;
        let tls = if endpoint.tls {
            let mut cfg = (*tls.ok_or_else(|| EtcdError::NoTls(url.to_string()))?).clone();
            cfg.alpn_protocols = vec![b"h2".to_vec()];
            let name = ServerName::try_from(endpoint.host.clone())
                .map_err(|_| EtcdError::NoTls(format!("{url}: invalid server name")))?;
            Some((TlsConnector::from(Arc::new(cfg)), name))
        } else {
            None
        };
        Ok(Self {
            endpoint,
            tls,
            conn: tokio::sync::Mutex::new(None),
        })
    }

    async fn dial(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let addr = self.endpoint.authority();
        let tcp = tokio::time::timeout(Duration::from_secs(3), TcpStream::connect(&addr))
            .await
            .map_err(|_| format!("dial tcp {addr}: timeout"))?
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        // gRPC writes a request as a HEADERS and a DATA frame: with Nagle
        // on, the second waits for the peer's delayed ACK (~40 ms per call).
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            Some((connector, name)) => {
                let stream = tokio::time::timeout(
                    Duration::from_secs(5),
                    connector.connect(name.clone(), tcp),
                )
                .await
                .map_err(|_| format!("tls {addr}: timeout"))?
                .map_err(|e| format!("tls {addr}: {e}"))?;
                let (sender, conn) = hyper::client::conn::http2::handshake(
                    TokioExecutor::new(),
                    TokioIo::new(stream),
                )
                .await
                .map_err(|e| format!("http2 {addr}: {e}"))?;
                tokio::spawn(conn);
                Ok(sender)
            }
            None => {
                let (sender, conn) =
                    hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                        .await
                        .map_err(|e| format!("http2 {addr}: {e}"))?;
                tokio::spawn(conn);
                Ok(sender)
            }
        }
    }

    async fn sender(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        let mut guard = self.conn.lock().await;
        if let Some(s) = guard.as_ref() {
            if !s.is_closed() {
                return Ok(s.clone());
            }
        }
        let s = self.dial().await?;
        *guard = Some(s.clone());
        Ok(s)
    }

    async fn forget(&self) {
        *self.conn.lock().await = None;
    }

    /// One unary gRPC call.
    async fn unary(&self, method: &str, msg: &[u8]) -> Result<Vec<u8>, CallError> {
        let r = tokio::time::timeout(Duration::from_secs(5), self.unary_inner(method, msg)).await;
        let r = r.unwrap_or_else(|_| {
            Err(CallError::Transport(format!(
                "{}: timeout",
                self.endpoint.authority()
            )))
        });
        if matches!(r, Err(CallError::Transport(_))) {
            self.forget().await;
        }
        r
    }

    async fn unary_inner(&self, method: &str, msg: &[u8]) -> Result<Vec<u8>, CallError> {
        let mut sender = self.sender().await.map_err(CallError::Transport)?;
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let mut framed = Vec::with_capacity(msg.len() + 5);
        framed.push(0);
        framed.extend_from_slice(&u32::try_from(msg.len()).unwrap_or(u32::MAX).to_be_bytes());
        framed.extend_from_slice(msg);
        let req = hyper::Request::builder()
            .method(hyper::Method::POST)
            .uri(format!("{scheme}://{}{method}", self.endpoint.authority()))
            .header(hyper::header::CONTENT_TYPE, "application/grpc")
            .header("te", "trailers")
            .body(Full::new(Bytes::from(framed)))
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| CallError::Transport(format!("{}: {e}", self.endpoint.authority())))?;
        let head_status = grpc_status(resp.headers());
        if resp.status() != hyper::StatusCode::OK {
            return Err(CallError::Transport(format!(
                "{}: HTTP {}",
                self.endpoint.authority(),
                resp.status()
            )));
        }
        let collected = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| CallError::Transport(format!("{}: {e}", self.endpoint.authority())))?;
        let status = collected.trailers().and_then(grpc_status).or(head_status);
        if let Some((code, message)) = status {
            if code != 0 {
                return Err(CallError::Status(code, message));
            }
        }
        let mut body = collected.to_bytes();
        if body.len() < 5 {
            return Err(CallError::Transport(format!(
                "{}: empty gRPC response",
                self.endpoint.authority()
            )));
        }
        body.advance(1);
        let len = body.get_u32() as usize;
        Ok(body.get(..len).map(<[u8]>::to_vec).unwrap_or_default())
    }
}

fn grpc_status(h: &hyper::HeaderMap) -> Option<(u32, String)> {
    let code = h.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let msg = h
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .replace("%20", " ");
    Some((code, msg))
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

fn range_request(key: &[u8], range_end: Option<&[u8]>, count_only: bool) -> Vec<u8> {
    let mut m = Vec::new();
    put_bytes(&mut m, 1, key);
    if let Some(e) = range_end {
        put_bytes(&mut m, 2, e);
    }
    if count_only {
        put_int(&mut m, 9, 1);
    }
    m
}

fn header_revision(b: &[u8]) -> Result<i64, WireError> {
    let mut r = Reader::new(b);
    let mut rev = 0;
    while !r.done() {
        if let (3, Wire::Varint(v)) = r.field()? {
            rev = v as i64;
        }
    }
    Ok(rev)
}

fn parse_kv(b: &[u8]) -> Result<Kv, WireError> {
    let mut kv = Kv::default();
    let mut r = Reader::new(b);
    while !r.done() {
        match r.field()? {
            (1, Wire::Bytes(k)) => kv.key = String::from_utf8_lossy(k).into_owned(),
            (2, Wire::Varint(v)) => kv.create_revision = v as i64,
            (3, Wire::Varint(v)) => kv.mod_revision = v as i64,
            (5, Wire::Bytes(v)) => kv.value = v.to_vec(),
            _ => {}
        }
    }
    Ok(kv)
}

/// RangeResponse: (kvs, header revision).
fn parse_range(b: &[u8]) -> Result<(Vec<Kv>, i64), WireError> {
    let (mut kvs, mut rev) = (Vec::new(), 0);
    let mut r = Reader::new(b);
    while !r.done() {
        match r.field()? {
            (1, Wire::Bytes(h)) => rev = header_revision(h)?,
            (2, Wire::Bytes(kv)) => kvs.push(parse_kv(kv)?),
            _ => {}
        }
    }
    Ok((kvs, rev))
}

/// TxnResponse: (succeeded, revision, first response_range's kvs).
fn parse_txn(b: &[u8]) -> Result<(bool, i64, Vec<Kv>), WireError> {
    let (mut ok, mut rev, mut kvs) = (false, 0, Vec::new());
    let mut r = Reader::new(b);
    while !r.done() {
        match r.field()? {
            (1, Wire::Bytes(h)) => rev = header_revision(h)?,
            (2, Wire::Varint(v)) => ok = v != 0,
            (3, Wire::Bytes(op)) => {
                let mut o = Reader::new(op);
                while !o.done() {
                    if let (1, Wire::Bytes(range)) = o.field()? {
                        kvs = parse_range(range)?.0;
                    }
                }
            }
            _ => {}
        }
    }
    Ok((ok, rev, kvs))
}

// Compare.target values.
const TARGET_CREATE: i64 = 1;
const TARGET_MOD: i64 = 2;

/// A client for an etcd cluster.
pub struct Etcd {
    endpoints: Vec<Channel>,
    preferred: AtomicUsize,
}

impl Etcd {
    /// A client for comma-separated `urls`, with TLS config for https ones.
    pub fn new(urls: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Self, EtcdError> {
        let endpoints = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(|u| Channel::new(u, tls.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        if endpoints.is_empty() {
            return Err(EtcdError::Unavailable("no endpoints given".into()));
        }
        Ok(Self {
            endpoints,
            preferred: AtomicUsize::new(0),
        })
    }

    /// Calls a KV method, trying the last good member first and the others
    /// when it cannot be reached or has no leader.
    async fn call(&self, method: &str, msg: Vec<u8>) -> Result<Vec<u8>, EtcdError> {
        let n = self.endpoints.len();
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let mut failures = Vec::new();
        for i in 0..n {
            let idx = (start + i) % n;
            let ch = &self.endpoints[idx];
            match ch.unary(method, &msg).await {
                Ok(b) => {
                    self.preferred.store(idx, Ordering::Relaxed);
                    return Ok(b);
                }
                Err(CallError::Transport(e)) => failures.push(e),
                Err(CallError::Status(code, m)) if retryable(code) => {
                    failures.push(format!("{}: {m}", ch.endpoint.authority()))
                }
                Err(CallError::Status(code, message)) => {
                    return Err(EtcdError::Status {
                        endpoint: ch.endpoint.authority(),
                        code,
                        message,
                    })
                }
            }
        }
        Err(EtcdError::Unavailable(failures.join("; ")))
    }

    /// Reads one key.
    pub async fn get(&self, key: &str) -> Result<Option<Kv>, EtcdError> {
        let b = self
            .call(
                "/etcdserverpb.KV/Range",
                range_request(key.as_bytes(), None, false),
            )
            .await?;
        Ok(parse_range(&b)?.0.into_iter().next())
    }

    /// Reads every key under `prefix`; also returns the store revision.
    pub async fn list(&self, prefix: &str) -> Result<(Vec<Kv>, i64), EtcdError> {
        let end = prefix_end(prefix);
        let b = self
            .call(
                "/etcdserverpb.KV/Range",
                range_request(prefix.as_bytes(), Some(&end), false),
            )
            .await?;
        Ok(parse_range(&b)?)
    }

    /// The current store revision (also a liveness probe).
    pub async fn revision(&self) -> Result<i64, EtcdError> {
        let b = self
            .call(
                "/etcdserverpb.KV/Range",
                range_request(b"/registry/health", None, true),
            )
            .await?;
        Ok(parse_range(&b)?.1)
    }

    async fn txn(
        &self,
        key: &str,
        target: i64,
        revision: i64,
        success: Vec<u8>,
    ) -> Result<Write, EtcdError> {
        let mut cmp = Vec::new();
        put_int(&mut cmp, 1, 0); // EQUAL
        put_int(&mut cmp, 2, target);
        put_bytes(&mut cmp, 3, key.as_bytes());
        // oneof target_union: set explicitly even when zero
        put_int(
            &mut cmp,
            if target == TARGET_CREATE { 5 } else { 6 },
            revision,
        );
        let mut failure = Vec::new();
        put_bytes(&mut failure, 1, &range_request(key.as_bytes(), None, false));
        let mut req = Vec::new();
        put_bytes(&mut req, 1, &cmp);
        put_bytes(&mut req, 2, &success);
        put_bytes(&mut req, 3, &failure);
        let b = self.call("/etcdserverpb.KV/Txn", req).await?;
        let (ok, rev, kvs) = parse_txn(&b)?;
        if ok {
            Ok(Write::Done(rev))
        } else {
            Ok(Write::Conflict(kvs.into_iter().next()))
        }
    }

    fn put_op(key: &str, value: &[u8]) -> Vec<u8> {
        let mut put = Vec::new();
        put_bytes(&mut put, 1, key.as_bytes());
        put_bytes(&mut put, 2, value);
        let mut op = Vec::new();
        put_bytes(&mut op, 2, &put);
        op
    }

    /// Creates `key` only if it does not exist.
    pub async fn create(&self, key: &str, value: &[u8]) -> Result<Write, EtcdError> {
        self.txn(key, TARGET_CREATE, 0, Self::put_op(key, value))
            .await
    }

    /// Replaces `key` only if it is still at `mod_revision`.
    pub async fn update(
        &self,
        key: &str,
        value: &[u8],
        mod_revision: i64,
    ) -> Result<Write, EtcdError> {
        self.txn(key, TARGET_MOD, mod_revision, Self::put_op(key, value))
            .await
    }

    /// Deletes `key` only if it is still at `mod_revision`.
    pub async fn delete(&self, key: &str, mod_revision: i64) -> Result<Write, EtcdError> {
        let mut del = Vec::new();
        put_bytes(&mut del, 1, key.as_bytes());
        let mut op = Vec::new();
        put_bytes(&mut op, 3, &del);
        self.txn(key, TARGET_MOD, mod_revision, op).await
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
    fn decodes_range_and_txn_responses() {
        let mut header = Vec::new();
        put_int(&mut header, 3, 42);
        let mut kv = Vec::new();
        put_bytes(&mut kv, 1, b"foo");
        put_int(&mut kv, 2, 3);
        put_int(&mut kv, 3, 7);
        put_bytes(&mut kv, 5, b"bar");
        let mut range = Vec::new();
        put_bytes(&mut range, 1, &header);
        put_bytes(&mut range, 2, &kv);
        let (kvs, rev) = parse_range(&range).unwrap();
        assert_eq!(rev, 42);
        assert_eq!(
            (kvs[0].key.as_str(), kvs[0].value.as_slice()),
            ("foo", &b"bar"[..])
        );
        assert_eq!((kvs[0].create_revision, kvs[0].mod_revision), (3, 7));
        let mut op = Vec::new();
        put_bytes(&mut op, 1, &range);
        let mut txn = Vec::new();
        put_bytes(&mut txn, 1, &header);
        put_bytes(&mut txn, 3, &op);
        let (ok, rev, kvs) = parse_txn(&txn).unwrap();
        assert!(!ok);
        assert_eq!(rev, 42);
        assert_eq!(kvs.len(), 1);
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
