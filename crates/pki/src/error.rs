//! Typed errors of the crate.

use std::path::PathBuf;

use crate::expiry::ExpiryError;

/// Everything that can go wrong in `ez-pki`.
///
/// No variant carries key material: paths, names and short reasons only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", "rename", ...).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An existing file could not be read as the PEM certificate or key it should be.
    #[error("{}: not a usable {what}: {reason}", path.display())]
    BadPem {
        /// The offending file.
        path: PathBuf,
        /// "certificate", "private key", "public key" or "kubeconfig".
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// Certificates exist in the directory but the CA certificate or key does not:
    /// issuing a new CA silently would break trust with everything already deployed.
    #[error("{}", ca_missing_message(dir, missing, found))]
    CaMissing {
        /// The PKI directory.
        dir: PathBuf,
        /// Which CA file is missing (`ca.pem`, `ca-key.pem` or both).
        missing: String,
        /// Certificate files found next to it (empty when the directory has none).
        found: Vec<String>,
    },

    /// The CA certificate in the directory is unusable as a CA (expired, not a CA,
    /// or its key does not match it).
    #[error("{}: CA unusable: {reason}", path.display())]
    CaUnusable {
        /// The CA certificate file.
        path: PathBuf,
        /// Why.
        reason: String,
    },

    /// The [`PkiSpec`](crate::PkiSpec) is not usable (empty etcd list, bad host name, ...).
    #[error("invalid PKI spec: {0}")]
    InvalidSpec(String),

    /// A user name given to [`user_add`](crate::user_add) / [`user_delete`](crate::user_delete)
    /// is not acceptable as a certificate CN and a file name.
    #[error("invalid user name {name:?}: {reason}")]
    InvalidUserName {
        /// The rejected name.
        name: String,
        /// Why.
        reason: &'static str,
    },

    /// [`user_add`](crate::user_add) for a user that already has a kubeconfig.
    #[error("user {name:?} already exists ({})", path.display())]
    UserExists {
        /// The user name.
        name: String,
        /// Its kubeconfig.
        path: PathBuf,
    },

    /// [`user_delete`](crate::user_delete) for a user that has no kubeconfig.
    #[error("no such user {name:?}")]
    NoSuchUser {
        /// The user name.
        name: String,
    },

    /// A duration string could not be parsed.
    #[error(transparent)]
    Expiry(#[from] ExpiryError),

    /// Certificate generation failed inside rcgen.
    #[error("generating {what}: {source}")]
    Generate {
        /// The item being generated.
        what: String,
        /// rcgen's error.
        #[source]
        source: rcgen::Error,
    },
}

/// Result alias of the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn ca_missing_message(dir: &std::path::Path, missing: &str, found: &[String]) -> String {
    if found.is_empty() {
        format!(
            "{}: CA {missing} is missing; create the cluster PKI first",
            dir.display()
        )
    } else {
        format!(
            "{}: CA {missing} is missing but other certificates exist ({}); restore it from a backup, or renew everything (kca-renew)",
            dir.display(),
            found.join(", ")
        )
    }
}

pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
