//! kubeconfig files and a small typed client for the stand-in components.

use crate::http::{ClientError, HttpClient, Reply};
use crate::tls::{self, TlsError};
use base64::Engine;
use hyper::Method;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors loading a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error(transparent)]
    Yaml(#[from] crate::yaml::YamlError),
    #[error("kubeconfig {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("kubeconfig {path}: {source}")]
    Tls { path: PathBuf, source: TlsError },
    #[error("kubeconfig {path}: {source}")]
    Client { path: PathBuf, source: ClientError },
}

/// What a client needs from a kubeconfig: where, whom to trust, who we are.
pub struct KubeConfig {
    pub path: PathBuf,
    pub server: String,
    pub ca_pem: Vec<u8>,
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

fn named<'a>(doc: &'a Value, list: &str, name: &str, field: &str) -> Option<&'a Value> {
    doc.get(list)?
        .as_array()?
        .iter()
        .find(|e| e.get("name").and_then(Value::as_str) == Some(name))?
        .get(field)
}

/// Reads `<field>-data` (base64) or `<field>` (a file, relative to the
/// kubeconfig's folder).
fn data_or_file(
    section: &Value,
    field: &str,
    path: &Path,
) -> Result<Option<Vec<u8>>, KubeconfigError> {
    let invalid = |reason: String| KubeconfigError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    if let Some(d) = section.get(format!("{field}-data")).and_then(Value::as_str) {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(d.trim())
            .map_err(|_| invalid(format!("{field}-data is not valid base64")))?;
        return Ok(Some(bytes));
    }
    if let Some(f) = section.get(field).and_then(Value::as_str) {
        let p = Path::new(f);
        let p = if p.is_relative() {
            path.parent().unwrap_or(Path::new(".")).join(p)
        } else {
            p.to_path_buf()
        };
        let bytes = std::fs::read(&p)
            .map_err(|e| invalid(format!("reading {field} {}: {e}", p.display())))?;
        return Ok(Some(bytes));
    }
    Ok(None)
}

/// Loads the current context of a kubeconfig. Client-certificate auth and a
/// CA are required: the stand-ins never skip server verification.
pub fn load(path: &Path) -> Result<KubeConfig, KubeconfigError> {
    let doc = crate::yaml::read_file(path)?;
    let invalid = |reason: &str| KubeconfigError::Invalid {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let ctx_name = doc
        .get("current-context")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| invalid("no current-context"))?;
    let ctx = named(&doc, "contexts", ctx_name, "context")
        .ok_or_else(|| invalid("current-context not found in contexts"))?;
    let cluster_name = ctx.get("cluster").and_then(Value::as_str).unwrap_or("");
    let user_name = ctx.get("user").and_then(Value::as_str).unwrap_or("");
    let cluster = named(&doc, "clusters", cluster_name, "cluster")
        .ok_or_else(|| invalid("context's cluster not found"))?;
    let user = named(&doc, "users", user_name, "user")
        .ok_or_else(|| invalid("context's user not found"))?;
    let server = cluster
        .get("server")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("cluster has no server"))?
        .to_string();
    let ca_pem = data_or_file(cluster, "certificate-authority", path)?
        .ok_or_else(|| invalid("cluster has no certificate-authority"))?;
    let cert_pem = data_or_file(user, "client-certificate", path)?
        .ok_or_else(|| invalid("user has no client-certificate"))?;
    let key_pem =
        data_or_file(user, "client-key", path)?.ok_or_else(|| invalid("user has no client-key"))?;
    Ok(KubeConfig {
        path: path.to_path_buf(),
        server,
        ca_pem,
        cert_pem,
        key_pem,
    })
}

impl KubeConfig {
    /// The rustls client config: trust the CA, present the client cert.
    pub fn tls_config(&self) -> Result<rustls::ClientConfig, KubeconfigError> {
        let wrap = |source| KubeconfigError::Tls {
            path: self.path.clone(),
            source,
        };
        let roots = tls::roots_from_pem(&self.ca_pem, "certificate-authority").map_err(wrap)?;
        let chain = tls::certs_from_pem(&self.cert_pem, "client-certificate").map_err(wrap)?;
        let key = tls::key_from_pem(&self.key_pem, "client-key").map_err(wrap)?;
        tls::client_config(roots, Some((chain, key))).map_err(wrap)
    }
}

/// Errors from API calls.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error(transparent)]
    Transport(#[from] ClientError),
    #[error("{method} {path}: HTTP {status}: {message}")]
    Status {
        method: String,
        path: String,
        status: u16,
        message: String,
    },
}

impl KubeError {
    /// The HTTP status, if the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            KubeError::Status { status, .. } => Some(*status),
            KubeError::Transport(_) => None,
        }
    }
}

/// A client for the Kubernetes API, authenticated by client certificate.
pub struct KubeClient {
    http: HttpClient,
    pub server: String,
}

impl KubeClient {
    /// Builds a client from a kubeconfig file.
    pub fn from_kubeconfig(path: &Path) -> Result<Self, KubeconfigError> {
        let kc = load(path)?;
        let tls = Arc::new(kc.tls_config()?);
        let http =
            HttpClient::new(&kc.server, Some(tls)).map_err(|source| KubeconfigError::Client {
                path: path.to_path_buf(),
                source,
            })?;
        Ok(Self {
            http,
            server: kc.server,
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(&str, &Value)>,
    ) -> Result<Reply, KubeError> {
        let body = body.map(|(ct, v)| (ct, v.to_string().into_bytes()));
        Ok(self.http.request(method, path, body).await?)
    }

    fn check(method: &str, path: &str, r: Reply) -> Result<Value, KubeError> {
        if r.ok() {
            return Ok(r.json());
        }
        let message = r
            .json()
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| String::from_utf8_lossy(&r.body).into_owned());
        Err(KubeError::Status {
            method: method.into(),
            path: path.into(),
            status: r.status,
            message,
        })
    }

    /// GET; `Ok(None)` on 404.
    pub async fn get(&self, path: &str) -> Result<Option<Value>, KubeError> {
        let r = self.call(Method::GET, path, None).await?;
        if r.status == 404 {
            return Ok(None);
        }
        Self::check("GET", path, r).map(Some)
    }

    /// GET of a raw path, returning status and body text (health checks).
    pub async fn get_raw(&self, path: &str) -> Result<(u16, String), KubeError> {
        let r = self.call(Method::GET, path, None).await?;
        Ok((r.status, String::from_utf8_lossy(&r.body).into_owned()))
    }

    /// POST a JSON object.
    pub async fn create(&self, path: &str, obj: &Value) -> Result<Value, KubeError> {
        let r = self
            .call(Method::POST, path, Some(("application/json", obj)))
            .await?;
        Self::check("POST", path, r)
    }

    /// PUT a JSON object.
    pub async fn update(&self, path: &str, obj: &Value) -> Result<Value, KubeError> {
        let r = self
            .call(Method::PUT, path, Some(("application/json", obj)))
            .await?;
        Self::check("PUT", path, r)
    }

    /// PATCH with a JSON merge patch.
    pub async fn merge_patch(&self, path: &str, patch: &Value) -> Result<Value, KubeError> {
        let r = self
            .call(
                Method::PATCH,
                path,
                Some(("application/merge-patch+json", patch)),
            )
            .await?;
        Self::check("PATCH", path, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_current_context_and_relative_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), b"CA").unwrap();
        let kc = dir.path().join("kc");
        std::fs::write(
            &kc,
            "apiVersion: v1\nkind: Config\ncurrent-context: b\n\
             clusters:\n- name: c1\n  cluster: {server: 'https://wrong:1', certificate-authority-data: Tk8=}\n\
             - name: c2\n  cluster: {server: 'https://127.0.0.1:6443', certificate-authority: ca.pem}\n\
             users:\n- name: u\n  user: {client-certificate-data: Q0VSVA==, client-key-data: S0VZ}\n\
             contexts:\n- name: a\n  context: {cluster: c1, user: u}\n- name: b\n  context: {cluster: c2, user: u}\n",
        )
        .unwrap();
        let c = load(&kc).unwrap();
        assert_eq!(c.server, "https://127.0.0.1:6443");
        assert_eq!(c.ca_pem, b"CA");
        assert_eq!(c.cert_pem, b"CERT");
        assert_eq!(c.key_pem, b"KEY");
    }

    #[test]
    fn missing_ca_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let kc = dir.path().join("kc");
        std::fs::write(
            &kc,
            "current-context: a\nclusters:\n- name: c\n  cluster: {server: 'https://h:1'}\n\
             users:\n- name: u\n  user: {}\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n",
        )
        .unwrap();
        let e = load(&kc).err().unwrap().to_string();
        assert!(e.contains("certificate-authority"), "{e}");
    }
}
