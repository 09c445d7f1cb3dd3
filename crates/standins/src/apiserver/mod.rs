//! kube-apiserver stand-in: HTTPS with required client certificates, all
//! objects in the real etcd, enough REST for kubectl.
//!
//! Simplifications (documented in README.md): every authenticated user may
//! do everything (no RBAC evaluation); no admission webhooks; no schema
//! validation (fieldValidation is accepted but not enforced); watches poll.

pub mod admission;
pub mod bootstrap;
pub mod clusterip;
pub mod discovery;
pub mod patch;
pub mod proto;
pub mod resources;
pub mod rest;
pub mod selectors;
pub mod status;
pub mod store;
pub mod table;
pub mod watch;

use crate::component::{self, optional_files, required, required_file, StartupError};
use crate::etcd::Etcd;
use crate::flags::{FlagSet, Flags};
use crate::http::server::{json, respond, serve, Body, Handler, Peer};
use crate::tls::{self, ClientAuth};
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use ipnet::IpNet;
use resources::{Registry, Resource};
use serde_json::{json, Value};
use status::ApiError;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use store::Store;

/// kube-apiserver flags (the ones kubeasz-style units use, and neighbours).
pub const FLAGS: FlagSet = FlagSet {
    component: "kube-apiserver",
    values: &[
        "advertise-address",
        "api-audiences",
        "apiserver-count",
        "audit-log-maxage",
        "audit-log-maxbackup",
        "audit-log-maxsize",
        "audit-log-path",
        "audit-policy-file",
        "authorization-mode",
        "bind-address",
        "cert-dir",
        "client-ca-file",
        "cors-allowed-origins",
        "default-not-ready-toleration-seconds",
        "default-unreachable-toleration-seconds",
        "disable-admission-plugins",
        "egress-selector-config-file",
        "enable-admission-plugins",
        "encryption-provider-config",
        "endpoint-reconciler-type",
        "etcd-cafile",
        "etcd-certfile",
        "etcd-keyfile",
        "etcd-prefix",
        "etcd-servers",
        "event-ttl",
        "external-hostname",
        "kubelet-certificate-authority",
        "kubelet-client-certificate",
        "kubelet-client-key",
        "kubelet-preferred-address-types",
        "kubelet-timeout",
        "max-mutating-requests-inflight",
        "max-requests-inflight",
        "min-request-timeout",
        "oidc-client-id",
        "oidc-issuer-url",
        "oidc-username-claim",
        "oidc-groups-claim",
        "proxy-client-cert-file",
        "proxy-client-key-file",
        "request-timeout",
        "requestheader-allowed-names",
        "requestheader-client-ca-file",
        "requestheader-extra-headers-prefix",
        "requestheader-group-headers",
        "requestheader-username-headers",
        "runtime-config",
        "secure-port",
        "service-account-issuer",
        "service-account-key-file",
        "service-account-max-token-expiration",
        "service-account-signing-key-file",
        "service-cluster-ip-range",
        "service-node-port-range",
        "shutdown-delay-duration",
        "storage-backend",
        "storage-media-type",
        "tls-cert-file",
        "tls-cipher-suites",
        "tls-min-version",
        "tls-private-key-file",
        "token-auth-file",
    ],
    bools: &[
        "allow-privileged",
        "anonymous-auth",
        "enable-aggregator-routing",
        "enable-bootstrap-token-auth",
        "enable-garbage-collector",
        "enable-priority-and-fairness",
        "profiling",
        "service-account-lookup",
        "watch-cache",
        "contention-profiling",
        "enable-logs-handler",
    ],
};

/// Files that must be readable when their flag is given.
const FILE_FLAGS: &[&str] = &[
    "etcd-cafile",
    "etcd-certfile",
    "etcd-keyfile",
    "service-account-key-file",
    "requestheader-client-ca-file",
    "proxy-client-cert-file",
    "proxy-client-key-file",
    "kubelet-client-certificate",
    "kubelet-client-key",
    "kubelet-certificate-authority",
    "audit-policy-file",
    "encryption-provider-config",
    "token-auth-file",
    "egress-selector-config-file",
];

/// Shared server state.
pub struct State {
    pub registry: Registry,
    pub store: Store,
    pub service_range: Option<IpNet>,
    pub server_address: String,
}

impl State {
    /// The namespaces resource.
    pub fn namespaces(&self) -> Resource {
        self.registry
            .find("", "v1", "namespaces")
            .unwrap_or_else(|| Resource {
                group: String::new(),
                version: "v1".into(),
                kind: "Namespace".into(),
                plural: "namespaces".into(),
                singular: "namespace".into(),
                namespaced: false,
                short_names: vec![],
                categories: vec![],
                status: true,
                etcd_prefix: "namespaces".into(),
                crd: None,
            })
    }

    /// Re-reads every stored CRD into the resource table.
    pub async fn sync_crds(&self) -> Result<(), ApiError> {
        let Some(crds) =
            self.registry
                .find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        else {
            return Ok(());
        };
        let (items, _) = self.store.list(&crds, None).await?;
        self.registry.sync_crds(&items);
        Ok(())
    }
}

fn version_doc() -> Value {
    let v = crate::version::current();
    let mut parts = v.trim_start_matches('v').split('.');
    let major = parts.next().unwrap_or("1").to_string();
    let minor = parts.next().unwrap_or("0").to_string();
    json!({
        "major": major, "minor": minor, "gitVersion": v, "gitCommit": "ez-standins",
        "gitTreeState": "clean", "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22.0",
        "compiler": "gc", "platform": "linux/amd64",
    })
}

async fn health(st: &State, path: &str, query: &HashMap<String, String>) -> Response<Body> {
    let check_etcd = path.starts_with("/readyz") || path.starts_with("/healthz");
    let etcd_ok = if check_etcd {
        match tokio::time::timeout(Duration::from_secs(5), st.store.etcd.revision()).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                crate::warn!("health check: etcd: {e}");
                false
            }
            Err(_) => false,
        }
    } else {
        true
    };
    let root = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("healthz");
    let mut lines = vec!["[+]ping ok".to_string(), "[+]log ok".to_string()];
    if check_etcd {
        lines.push(if etcd_ok {
            "[+]etcd ok".into()
        } else {
            "[-]etcd failed: reason withheld".into()
        });
    }
    if etcd_ok {
        let body = if query.contains_key("verbose") {
            format!("{}\n{root} check passed\n", lines.join("\n"))
        } else {
            "ok".into()
        };
        respond(200, "text/plain; charset=utf-8", body)
    } else {
        respond(
            500,
            "text/plain; charset=utf-8",
            format!("{}\n{root} check failed\n", lines.join("\n")),
        )
    }
}

async fn dispatch(st: &Arc<State>, req: rest::Req, path: &str) -> Response<Body> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = || json(404, &ApiError::path_not_found().to_status());
    if req.method != Method::GET && !matches!(segs.first(), Some(&"api" | &"apis")) {
        return json(405, &ApiError::method_not_allowed().to_status());
    }
    match segs.as_slice() {
        ["healthz" | "livez" | "readyz", ..] => health(st, path, &req.query).await,
        ["version"] => json(200, &version_doc()),
        ["api"] => json(200, &discovery::api_versions(&st.server_address)),
        ["apis"] => json(200, &discovery::api_group_list(&st.registry)),
        ["openapi", "v2"] if req.accept.contains("protobuf") => respond(
            200,
            "application/com.github.proto-openapi.spec.v2.v1.0+protobuf",
            discovery::openapi_v2_protobuf(),
        ),
        ["openapi", "v2"] => json(200, &discovery::openapi_v2_json()),
        ["openapi", "v3"] => json(200, &discovery::openapi_index(&st.registry)),
        ["openapi", "v3", "api", v] => {
            discovery::openapi_gv(&st.registry, "", v).map_or_else(not_found, |d| json(200, &d))
        }
        ["openapi", "v3", "apis", g, v] => {
            discovery::openapi_gv(&st.registry, g, v).map_or_else(not_found, |d| json(200, &d))
        }
        ["api", "v1"] if req.method == Method::GET => {
            discovery::resource_list(&st.registry, "", "v1")
                .map_or_else(not_found, |d| json(200, &d))
        }
        ["apis", g] if req.method == Method::GET => {
            discovery::api_group(&st.registry, g).map_or_else(not_found, |d| json(200, &d))
        }
        ["apis", g, v] if req.method == Method::GET => {
            if st.registry.in_group_version(g, v).is_empty() {
                let _ = st.sync_crds().await;
            }
            discovery::resource_list(&st.registry, g, v).map_or_else(not_found, |d| json(200, &d))
        }
        ["api", "v1", rest @ ..] if !rest.is_empty() => rest::handle(st, "", "v1", rest, req).await,
        ["apis", g, v, rest @ ..] if !rest.is_empty() => rest::handle(st, g, v, rest, req).await,
        _ => not_found(),
    }
}

/// Handles one HTTP request.
pub async fn route(st: Arc<State>, req: Request<Incoming>, peer: Arc<Peer>) -> Response<Body> {
    let Some(id) = peer.identity.clone() else {
        let e = ApiError::new(401, "Unauthorized", "Unauthorized");
        return json(401, &e.to_status());
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: HashMap<String, String> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let header = |h: hyper::header::HeaderName| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let accept = header(hyper::header::ACCEPT);
    let content_type = header(hyper::header::CONTENT_TYPE);
    // Large enough for the biggest CRDs in add-on manifests.
    let body: Bytes = match Limited::new(req.into_body(), 16 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = ApiError::new(413, "RequestEntityTooLarge", "request is too large");
            return json(413, &e.to_status());
        }
    };
    let r = rest::Req {
        method: method.clone(),
        query,
        accept,
        content_type,
        body,
    };
    let resp = dispatch(&st, r, &path).await;
    crate::vlog!(
        3,
        "HTTP verb={method} path={path} user={:?} groups={:?} status={}",
        id.user,
        id.groups,
        resp.status().as_u16()
    );
    resp
}

fn first_non_loopback() -> Option<String> {
    // The route to a public address tells the primary IP without sending
    // anything (UDP connect only picks a source address).
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    Some(s.local_addr().ok()?.ip().to_string())
}

/// Runs kube-apiserver until killed.
pub async fn run(flags: Flags) -> anyhow::Result<()> {
    let etcd_servers = required(&flags, "etcd-servers")?.to_string();
    let cert = required_file(&flags, "tls-cert-file")?;
    let key = required_file(&flags, "tls-private-key-file")?;
    let client_ca = required_file(&flags, "client-ca-file")?;
    required(&flags, "service-account-issuer")?;
    required_file(&flags, "service-account-signing-key-file")?;
    optional_files(&flags, FILE_FLAGS)?;
    let port: u16 = component::number(&flags, "secure-port", 6443)?;
    let bind = flags.get_or("bind-address", "0.0.0.0").to_string();
    let service_range = match flags.get("service-cluster-ip-range") {
        Some(r) => Some(r.parse::<IpNet>().map_err(|_| StartupError::BadValue {
            flag: "service-cluster-ip-range".into(),
            value: r.into(),
            reason: "not a CIDR".into(),
        })?),
        None => None,
    };

    let chain = tls::load_certs(&cert).context("--tls-cert-file")?;
    let key = tls::load_key(&key).context("--tls-private-key-file")?;
    let ca_pem = std::fs::read(&client_ca).context("--client-ca-file")?;
    let roots = tls::roots_from_pem(&ca_pem, &client_ca.display().to_string())
        .context("--client-ca-file")?;
    let server_tls = tls::server_config(chain, key, ClientAuth::Required(roots))
        .context("serving certificate")?;

    let etcd_tls = if etcd_servers.contains("https://") {
        let ca = required_file(&flags, "etcd-cafile")?;
        let ca_pem = std::fs::read(&ca).context("--etcd-cafile")?;
        let roots =
            tls::roots_from_pem(&ca_pem, &ca.display().to_string()).context("--etcd-cafile")?;
        let identity = match (flags.get("etcd-certfile"), flags.get("etcd-keyfile")) {
            (Some(c), Some(k)) => Some((
                tls::load_certs(c.as_ref()).context("--etcd-certfile")?,
                tls::load_key(k.as_ref()).context("--etcd-keyfile")?,
            )),
            (None, None) => None,
            _ => anyhow::bail!("--etcd-certfile and --etcd-keyfile must be given together"),
        };
        Some(Arc::new(
            tls::client_config(roots, identity).context("etcd client TLS")?,
        ))
    } else {
        None
    };
    let etcd = Etcd::new(&etcd_servers, etcd_tls).context("--etcd-servers")?;

    let advertise = match flags.get("advertise-address") {
        Some(a) => a.to_string(),
        None if bind != "0.0.0.0" && bind != "::" => bind.clone(),
        None => first_non_loopback().unwrap_or_else(|| "127.0.0.1".into()),
    };
    let addr = component::join_host_port(&bind, port);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("failed to listen on {addr}"))?;
    let st = Arc::new(State {
        registry: Registry::new(),
        store: Store { etcd },
        service_range,
        server_address: component::join_host_port(&advertise, port),
    });
    tokio::spawn(bootstrap::run(st.clone(), advertise, port));
    crate::info!("Serving securely on {addr}");
    let handler: Handler = Arc::new(move |req, peer| Box::pin(route(st.clone(), req, peer)));
    serve(listener, Some(Arc::new(server_tls)), handler).await;
    Ok(())
}
