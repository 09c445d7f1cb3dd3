//! TLS material: PEM loading, rustls server/client configs, the identity in
//! a client certificate, and self-signed serving certs.
//!
//! Error messages name files, never their contents: keys stay secret.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Errors building TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("reading {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no PEM certificate found in {0}")]
    NoCertificate(String),
    #[error("no PEM private key found in {0}")]
    NoKey(String),
    #[error("invalid TLS setup: {0}")]
    Config(String),
}

/// The crypto provider every config uses (ring: quick to build, no cmake).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_path_buf(),
        source,
    })
}

/// Parses PEM certificates; `origin` names the source in errors.
pub fn certs_from_pem(pem: &[u8], origin: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(origin.to_string()));
    }
    Ok(certs)
}

/// Parses the first PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn key_from_pem(pem: &[u8], origin: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|_| TlsError::NoKey(origin.to_string()))
}

/// Loads certificates from a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    certs_from_pem(&read(path, "certificate")?, &path.display().to_string())
}

/// Loads a private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    key_from_pem(&read(path, "private key")?, &path.display().to_string())
}

/// A root store from PEM CA certificates.
pub fn roots_from_pem(pem: &[u8], origin: &str) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs_from_pem(pem, origin)? {
        roots
            .add(c)
            .map_err(|e| TlsError::Config(format!("CA certificate in {origin}: {e}")))?;
    }
    Ok(roots)
}

/// How a server treats client certificates.
pub enum ClientAuth {
    /// No client certificates asked for.
    None,
    /// A certificate signed by one of these CAs is required.
    Required(RootCertStore),
    /// Asked for and verified when sent; requests without one are anonymous.
    Optional(RootCertStore),
}

/// A rustls server config for a serving cert chain and key.
pub fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    auth: ClientAuth,
) -> Result<ServerConfig, TlsError> {
    let cfg = |e: rustls::Error| TlsError::Config(e.to_string());
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(cfg)?;
    let builder = match auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Required(roots) | ClientAuth::Optional(roots) if roots.is_empty() => {
            return Err(TlsError::Config("client CA bundle is empty".into()));
        }
        ClientAuth::Required(roots) => {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
        ClientAuth::Optional(roots) => {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| TlsError::Config(e.to_string()))?;
            builder.with_client_cert_verifier(v)
        }
    };
    let mut config = builder.with_single_cert(chain, key).map_err(cfg)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A rustls client config trusting `roots`, presenting an optional identity.
pub fn client_config(
    roots: RootCertStore,
    identity: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Result<ClientConfig, TlsError> {
    let cfg = |e: rustls::Error| TlsError::Config(e.to_string());
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(cfg)?
        .with_root_certificates(roots);
    let mut config = match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(cfg)?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Who a verified client certificate says it is (Kubernetes x509 authn:
/// user = subject CN, groups = subject O values).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

/// Reads CN and O from a DER certificate.
pub fn identity_of(cert: &CertificateDer<'_>) -> Option<Identity> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let user = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    Some(Identity { user, groups })
}

/// A fresh self-signed serving certificate for `hosts` (DNS names or IPs),
/// what the real components do when given no certificate.
pub fn self_signed(
    hosts: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let ck = rcgen::generate_simple_self_signed(hosts.to_vec())
        .map_err(|e| TlsError::Config(format!("self-signed certificate: {e}")))?;
    let key = PrivateKeyDer::try_from(ck.signing_key.serialize_der())
        .map_err(|e| TlsError::Config(format!("self-signed key: {e}")))?;
    Ok((vec![ck.cert.der().clone()], key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_and_leaf(cn: &str, orgs: &[&str]) -> (String, String, String) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name
                .push(rcgen::DnType::OrganizationName, *o);
        }
        let leaf = p.signed_by(&key, &issuer).unwrap();
        (ca.pem(), leaf.pem(), key.serialize_pem())
    }

    #[test]
    fn identity_from_cn_and_o() {
        let (_, leaf, _) = ca_and_leaf("admin", &["system:masters"]);
        let certs = certs_from_pem(leaf.as_bytes(), "t").unwrap();
        let id = identity_of(&certs[0]).unwrap();
        assert_eq!(id.user, "admin");
        assert_eq!(id.groups, vec!["system:masters".to_string()]);
    }

    #[test]
    fn builds_configs_and_rejects_garbage() {
        let (ca, leaf, key) = ca_and_leaf("x", &[]);
        let roots = roots_from_pem(ca.as_bytes(), "ca").unwrap();
        let chain = certs_from_pem(leaf.as_bytes(), "leaf").unwrap();
        let k = key_from_pem(key.as_bytes(), "key").unwrap();
        server_config(
            chain.clone(),
            k.clone_key(),
            ClientAuth::Required(roots.clone()),
        )
        .unwrap();
        client_config(roots, Some((chain, k))).unwrap();
        assert!(matches!(
            certs_from_pem(b"nope", "f"),
            Err(TlsError::NoCertificate(_))
        ));
        let e = key_from_pem(b"-----BEGIN NOTHING-----", "/k.pem").unwrap_err();
        assert_eq!(e.to_string(), "no PEM private key found in /k.pem");
        assert!(self_signed(&["127.0.0.1".into(), "localhost".into()]).is_ok());
    }
}
