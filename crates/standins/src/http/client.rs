//! An HTTP(S) client for one server, with a small pool of keep-alive
//! connections. TLS verification is rustls's: the server certificate must
//! chain to the given CA and carry the host (DNS name or IP) in its SANs.

use super::url::{parse, Endpoint, UrlError};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::Method;
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Errors talking to a server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error("https URL {0} needs a TLS config")]
    NoTls(String),
    #[error("invalid server name {0:?}")]
    ServerName(String),
    #[error("dial tcp {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("tls: {addr}: {source}")]
    Tls {
        addr: String,
        source: std::io::Error,
    },
    #[error("{addr}: {message}")]
    Http { addr: String, message: String },
    #[error("{addr}: timed out after {secs}s")]
    Timeout { addr: String, secs: u64 },
}

/// A response read in full.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Bytes,
}

impl Reply {
    /// The body parsed as JSON (Null when it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// Whether the status is 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// A client bound to one server.
pub struct HttpClient {
    endpoint: Endpoint,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    timeout: Duration,
}

impl HttpClient {
    /// A client for `url`; `tls` is required for https URLs.
    pub fn new(url: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Self, ClientError> {
        let endpoint = parse(url)?;
        let tls = if endpoint.tls {
            let cfg = tls.ok_or_else(|| ClientError::NoTls(url.to_string()))?;
            let name = ServerName::try_from(endpoint.host.clone())
                .map_err(|_| ClientError::ServerName(endpoint.host.clone()))?;
            Some((TlsConnector::from(cfg), name))
        } else {
            None
        };
        Ok(Self {
            endpoint,
            tls,
            idle: Mutex::new(Vec::new()),
            timeout: Duration::from_secs(15),
        })
    }

    /// Overrides the per-request timeout (default 15 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// `host:port` of the server.
    pub fn authority(&self) -> String {
        self.endpoint.authority()
    }

    async fn connect(&self) -> Result<SendRequest<Full<Bytes>>, ClientError> {
        let addr = self.authority();
        let tcp = TcpStream::connect(&addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.clone(),
                source,
            })?;
        // Headers and body go out as separate writes; without this the body
        // waits for the server's delayed ACK (~40 ms per request).
        let _ = tcp.set_nodelay(true);
        let http_err = |e: hyper::Error| ClientError::Http {
            addr: addr.clone(),
            message: e.to_string(),
        };
        let sender = match &self.tls {
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|source| ClientError::Tls {
                        addr: addr.clone(),
                        source,
                    })?;
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(http_err)?;
                tokio::spawn(conn);
                sender
            }
            None => {
                let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(http_err)?;
                tokio::spawn(conn);
                sender
            }
        };
        Ok(sender)
    }

    fn take_idle(&self) -> Option<SendRequest<Full<Bytes>>> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(s) = idle.pop() {
            if s.is_ready() {
                return Some(s);
            }
        }
        None
    }

    fn put_idle(&self, s: SendRequest<Full<Bytes>>) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < 8 {
                idle.push(s);
            }
        }
    }

    /// Sends one request; `body` is (content type, bytes).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Reply, ClientError> {
        let addr = self.authority();
        let secs = self.timeout.as_secs();
        tokio::time::timeout(self.timeout, self.request_inner(method, path, body))
            .await
            .map_err(|_| ClientError::Timeout { addr, secs })?
    }

    async fn request_inner(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, Vec<u8>)>,
    ) -> Result<Reply, ClientError> {
        let addr = self.authority();
        let http_err = |m: String| ClientError::Http {
            addr: addr.clone(),
            message: m,
        };
        let mut sender = match self.take_idle() {
            Some(s) => s,
            None => self.connect().await?,
        };
        let mut builder = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &addr)
            .header(hyper::header::ACCEPT, "application/json")
            .header(hyper::header::USER_AGENT, "ez-standins");
        let payload = match body {
            Some((ct, data)) => {
                builder = builder.header(hyper::header::CONTENT_TYPE, ct);
                Bytes::from(data)
            }
            None => Bytes::new(),
        };
        let req = builder
            .body(Full::new(payload))
            .map_err(|e| http_err(e.to_string()))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| http_err(e.to_string()))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| http_err(e.to_string()))?
            .to_bytes();
        self.put_idle(sender);
        Ok(Reply {
            status,
            content_type,
            body,
        })
    }
}
