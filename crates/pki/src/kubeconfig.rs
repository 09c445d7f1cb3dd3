//! Kubeconfig rendering (hand-written YAML, deterministic, data embedded as base64).

use std::path::Path;

use base64::Engine as _;

use crate::error::{Error, Result};

/// Inputs of one kubeconfig. Holds a private key: Debug is hand-written.
pub(crate) struct Kubeconfig<'a> {
    pub cluster: &'a str,
    pub context: &'a str,
    pub user: &'a str,
    pub server: &'a str,
    pub ca_pem: &'a str,
    pub cert_pem: &'a str,
    pub key_pem: &'a str,
}

impl std::fmt::Debug for Kubeconfig<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubeconfig")
            .field("cluster", &self.cluster)
            .field("context", &self.context)
            .field("user", &self.user)
            .field("server", &self.server)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// A YAML double-quoted scalar.
fn q(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

impl Kubeconfig<'_> {
    /// The file's text. Same inputs, same bytes.
    pub(crate) fn render(&self) -> String {
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             clusters:\n\
             - name: {cluster}\n  \
               cluster:\n    \
                 server: {server}\n    \
                 certificate-authority-data: {ca}\n\
             users:\n\
             - name: {user}\n  \
               user:\n    \
                 client-certificate-data: {cert}\n    \
                 client-key-data: {key}\n\
             contexts:\n\
             - name: {context}\n  \
               context:\n    \
                 cluster: {cluster}\n    \
                 user: {user}\n\
             current-context: {context}\n\
             preferences: {{}}\n",
            cluster = q(self.cluster),
            context = q(self.context),
            user = q(self.user),
            server = q(self.server),
            ca = b64(self.ca_pem),
            cert = b64(self.cert_pem),
            key = b64(self.key_pem),
        )
    }
}

/// Reads back the client certificate PEM embedded in a kubeconfig written by [`Kubeconfig::render`].
pub(crate) fn client_cert_pem(path: &Path, text: &str) -> Result<Vec<u8>> {
    let bad = |reason: &str| Error::BadPem {
        path: path.to_path_buf(),
        what: "kubeconfig",
        reason: reason.to_string(),
    };
    let line = text
        .lines()
        .map(str::trim)
        .find_map(|l| l.strip_prefix("client-certificate-data:"))
        .ok_or_else(|| bad("no client-certificate-data"))?;
    base64::engine::general_purpose::STANDARD
        .decode(line.trim().trim_matches('"'))
        .map_err(|_| bad("client-certificate-data is not base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_is_deterministic_and_quoted() {
        let k = Kubeconfig {
            cluster: "c\"1",
            context: "ctx",
            user: "system:node:a",
            server: "https://127.0.0.1:6443",
            ca_pem: "CA",
            cert_pem: "CERT",
            key_pem: "KEY",
        };
        let a = k.render();
        assert_eq!(a, k.render());
        assert!(a.contains("- name: \"c\\\"1\"\n"), "{a}");
        assert!(a.contains("    server: \"https://127.0.0.1:6443\"\n"));
        assert!(a.contains("client-key-data: S0VZ\n"));
        assert!(a.contains("current-context: \"ctx\"\n"));
        assert_eq!(client_cert_pem(Path::new("x"), &a).unwrap(), b"CERT");
        let dbg = format!("{k:?}");
        assert!(!dbg.contains("KEY") && dbg.contains("[redacted]"), "{dbg}");
    }
}
