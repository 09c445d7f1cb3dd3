//! The HTTPS health port of controller-manager and scheduler: the given
//! certificate, or a self-signed one like the real components make when
//! started without one.

use crate::component::{self, StartupError};
use crate::flags::Flags;
use crate::http::server::{respond, serve, Handler};
use crate::tls::{self, ClientAuth};
use anyhow::Context;
use std::sync::Arc;

/// Serves /healthz, /livez, /readyz on `--bind-address:--secure-port`.
pub async fn start_health(flags: &Flags, default_port: u16) -> anyhow::Result<()> {
    let port: u16 = component::number(flags, "secure-port", default_port)?;
    if port == 0 {
        return Ok(());
    }
    let bind = flags.get_or("bind-address", "0.0.0.0");
    let (chain, key) = match (
        flags.get("tls-cert-file"),
        flags.get("tls-private-key-file"),
    ) {
        (Some(c), Some(k)) => (
            tls::load_certs(c.as_ref()).context("--tls-cert-file")?,
            tls::load_key(k.as_ref()).context("--tls-private-key-file")?,
        ),
        (None, None) => tls::self_signed(&["localhost".to_string(), "127.0.0.1".to_string()])?,
        _ => {
            return Err(
                StartupError::MissingFlag(if flags.get("tls-cert-file").is_none() {
                    "tls-cert-file"
                } else {
                    "tls-private-key-file"
                })
                .into(),
            )
        }
    };
    let cfg = Arc::new(tls::server_config(chain, key, ClientAuth::None)?);
    let addr = component::join_host_port(bind, port);
    let l = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("failed to create listener: failed to listen on {addr}"))?;
    // Health paths are always allowed, like the real
    // --authorization-always-allow-paths default.
    let h: Handler = Arc::new(|req, _| {
        Box::pin(async move {
            match req.uri().path() {
                "/healthz" | "/livez" | "/readyz" => respond(200, "text/plain", "ok"),
                _ => respond(403, "text/plain", "forbidden"),
            }
        })
    });
    tokio::spawn(serve(l, Some(cfg), h));
    crate::info!("Serving securely on {addr}");
    Ok(())
}
