//! User kubeconfigs (`ezctl kcfg-adm`): issue, list, delete.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::certs::{self, parse_cert_pem, Profile};
use crate::ensure::load_ca;
use crate::error::{io_err, Error, Result};
use crate::fsutil::{ensure_dir, read_opt, write_atomic, MODE_SECRET};
use crate::kubeconfig::{client_cert_pem, Kubeconfig};
use crate::names;
use crate::spec::PkiSpec;

/// Group (certificate O) of users issued with [`Role::Admin`]. The cluster side binds
/// it to the `cluster-admin` ClusterRole.
pub const ADMIN_GROUP: &str = "ezctl:admin";
/// Group (certificate O) of users issued with [`Role::View`]. The cluster side binds
/// it to the `view` ClusterRole.
pub const VIEW_GROUP: &str = "ezctl:view";

/// What a user kubeconfig may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything (`cluster-admin`).
    Admin,
    /// Read-only (`view`).
    View,
}

impl Role {
    /// The certificate organisation, i.e. the Kubernetes group.
    pub fn group(self) -> &'static str {
        match self {
            Role::Admin => ADMIN_GROUP,
            Role::View => VIEW_GROUP,
        }
    }

    /// The ClusterRole the group is meant to be bound to.
    pub fn cluster_role(self) -> &'static str {
        match self {
            Role::Admin => "cluster-admin",
            Role::View => "view",
        }
    }

    fn from_group(g: &str) -> Option<Role> {
        match g {
            ADMIN_GROUP => Some(Role::Admin),
            VIEW_GROUP => Some(Role::View),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Admin => "admin",
            Role::View => "view",
        })
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "admin" => Ok(Role::Admin),
            "view" => Ok(Role::View),
            other => Err(format!("unknown role {other:?} (admin or view)")),
        }
    }
}

/// One issued user, as read back from its certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The certificate CN.
    pub name: String,
    /// From the certificate O.
    pub role: Role,
    /// End of the certificate's validity.
    pub not_after: SystemTime,
    /// The kubeconfig.
    pub path: PathBuf,
}

impl UserInfo {
    /// `not_after` as `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn not_after_utc(&self) -> String {
        let t = OffsetDateTime::from(self.not_after);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

/// User names: 1 to 64 of `a-z 0-9 . _ -`, starting and ending with a letter or digit.
fn check_user_name(name: &str) -> Result<()> {
    let err = |reason| {
        Err(Error::InvalidUserName {
            name: name.into(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 64 {
        return err("must be 1 to 64 characters");
    }
    let b = name.as_bytes();
    if !b
        .iter()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'))
    {
        return err("only a-z, 0-9, '.', '_' and '-' are allowed");
    }
    if !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric() {
        return err("must start and end with a letter or digit");
    }
    if name == "admin" {
        return err("\"admin\" is the cluster admin's own name");
    }
    Ok(())
}

fn users_dir(dir: &Path) -> PathBuf {
    dir.join(names::USERS_DIR)
}

/// Issues a client certificate `CN=<name>, O=<role group>` valid for `expiry` (clamped to
/// the CA's end) and writes `dir/users/<name>.kubeconfig` (mode 0600; the key lives only
/// there). Its server is the admin kubeconfig's (ex-lb VIP, else first master), its
/// context `<name>@<cluster_name>`. Fails if the user exists.
pub fn user_add(
    spec: &PkiSpec,
    dir: &Path,
    name: &str,
    role: Role,
    expiry: Duration,
) -> Result<PathBuf> {
    spec.validate()?;
    check_user_name(name)?;
    if expiry.is_zero() {
        return Err(Error::InvalidSpec("user certificate expiry is zero".into()));
    }
    let now = certs::truncate_to_second(OffsetDateTime::now_utc());
    let ca = load_ca(dir, now)?.ok_or_else(|| Error::CaMissing {
        dir: dir.into(),
        missing: "ca.pem and ca-key.pem".into(),
        found: vec![],
    })?;
    let path = dir.join(names::user_kubeconfig(name));
    if path.exists() {
        return Err(Error::UserExists {
            name: name.into(),
            path,
        });
    }
    let profile = Profile {
        stem: format!("{}/{name}", names::USERS_DIR),
        cn: name.into(),
        org: Some(role.group().into()),
        sans: vec![],
        server: false,
        client: true,
    };
    let (cert_pem, key_pem) = ca.issue(&profile, now, expiry)?;
    let server = spec.external_server();
    let context = format!("{name}@{}", spec.cluster_name);
    let kc = Kubeconfig {
        cluster: &spec.cluster_name,
        context: &context,
        user: name,
        server: &server,
        ca_pem: &ca.cert_pem,
        cert_pem: &cert_pem,
        key_pem: &key_pem,
    };
    ensure_dir(&users_dir(dir))?;
    write_atomic(&path, kc.render().as_bytes(), MODE_SECRET)?;
    Ok(path)
}

/// Deletes `dir/users/<name>.kubeconfig`; returns its path.
///
/// This does not revoke the certificate (Kubernetes has no CRL): whoever kept a copy
/// stays in the role's group until the certificate ends, or until the group's binding
/// is removed (which affects every user of that role).
pub fn user_delete(dir: &Path, name: &str) -> Result<PathBuf> {
    check_user_name(name)?;
    let path = dir.join(names::user_kubeconfig(name));
    match fs::remove_file(&path) {
        Ok(()) => Ok(path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::NoSuchUser { name: name.into() })
        }
        Err(e) => Err(io_err("remove", &path)(e)),
    }
}

/// Every user kubeconfig in `dir/users/`, sorted by name, read from the certificates
/// embedded in them.
pub fn user_list(dir: &Path) -> Result<Vec<UserInfo>> {
    let udir = users_dir(dir);
    let entries = match fs::read_dir(&udir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(io_err("list", &udir)(e)),
    };
    let mut out = vec![];
    for e in entries {
        let e = e.map_err(io_err("list", &udir))?;
        let path = e.path();
        let Some(fname) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if fname.starts_with('.') || !fname.ends_with(".kubeconfig") {
            continue;
        }
        let Some(bytes) = read_opt(&path)? else {
            continue;
        };
        let text = String::from_utf8(bytes).map_err(|_| Error::BadPem {
            path: path.clone(),
            what: "kubeconfig",
            reason: "not UTF-8 text".into(),
        })?;
        let pem = client_cert_pem(&path, &text)?;
        let facts = parse_cert_pem(&path, &pem)?;
        let bad = |reason: String| Error::BadPem {
            path: path.clone(),
            what: "kubeconfig",
            reason,
        };
        let name = facts
            .cn
            .first()
            .cloned()
            .ok_or_else(|| bad("client certificate has no CN".into()))?;
        let role = facts
            .org
            .iter()
            .find_map(|o| Role::from_group(o))
            .ok_or_else(|| {
                bad(format!(
                    "client certificate groups {:?} are not ezctl roles",
                    facts.org
                ))
            })?;
        out.push(UserInfo {
            name,
            role,
            not_after: facts.not_after.into(),
            path,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(check_user_name("alice").is_ok());
        assert!(check_user_name("ops.team-1_x").is_ok());
        for bad in [
            "",
            "Alice",
            "../x",
            "a/b",
            "-a",
            "a-",
            "system:x",
            "admin",
            &"a".repeat(65),
        ] {
            assert!(check_user_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles() {
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!("View".parse::<Role>().unwrap(), Role::View);
        assert!("edit".parse::<Role>().is_err());
        assert_eq!(Role::Admin.group(), "ezctl:admin");
        assert_eq!(Role::View.cluster_role(), "view");
    }
}
