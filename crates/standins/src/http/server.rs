//! An HTTP/1.1 server loop with optional TLS; handlers see who called.

use crate::tls::{identity_of, Identity};
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

/// Response body type of every handler.
pub type Body = BoxBody<Bytes, Infallible>;

/// The caller of a request.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// From a verified client certificate, if one was presented.
    pub identity: Option<Identity>,
}

/// A request handler.
pub type Handler = Arc<
    dyn Fn(Request<Incoming>, Arc<Peer>) -> Pin<Box<dyn Future<Output = Response<Body>> + Send>>
        + Send
        + Sync,
>;

/// A whole body from bytes.
pub fn full(data: impl Into<Bytes>) -> Body {
    Full::new(data.into()).boxed()
}

/// A response with a body and content type.
pub fn respond(status: u16, content_type: &str, data: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(full(data));
    *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// A JSON response.
pub fn json(status: u16, value: &serde_json::Value) -> Response<Body> {
    respond(status, "application/json", value.to_string())
}

/// A streaming body fed by a channel (used for watches).
pub struct ChannelBody(pub mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

/// Accepts connections forever, each on its own task. With `tls`, the
/// handshake (and so client-certificate verification) happens first.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: Handler,
) {
    let acceptor = tls.map(TlsAcceptor::from);
    loop {
        let (tcp, addr) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                crate::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // Responses go out as several writes (headers, body, TLS records);
        // with Nagle on, a client waits for our delayed ACK between them.
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let handler = handler.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acc) => {
                    let stream = match tokio::time::timeout(
                        Duration::from_secs(10),
                        acc.accept(tcp),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            crate::vlog!(2, "TLS handshake error from {addr}: {e}");
                            return;
                        }
                        Err(_) => return,
                    };
                    let identity = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .and_then(identity_of);
                    let peer = Arc::new(Peer { addr, identity });
                    serve_conn(TokioIo::new(stream), peer, handler).await;
                }
                None => {
                    let peer = Arc::new(Peer {
                        addr,
                        identity: None,
                    });
                    serve_conn(TokioIo::new(tcp), peer, handler).await;
                }
            }
        });
    }
}

async fn serve_conn<I>(io: I, peer: Arc<Peer>, handler: Handler)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let svc = hyper::service::service_fn(move |req| {
        let fut = handler(req, peer.clone());
        async move { Ok::<_, Infallible>(fut.await) }
    });
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, svc)
        .await
    {
        crate::vlog!(4, "connection: {e}");
    }
}
