//! Certificate profiles, issuing, and checking existing certificates.

use std::collections::BTreeSet;
use std::fmt;
use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType, SerialNumber,
};
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::names;
use crate::spec::{PkiSpec, San};

/// CA subject.
pub const CA_CN: &str = "kubernetes-ca";
/// CA organisation.
pub const CA_ORG: &str = "k8s";

/// Group of cluster administrators (bound to `cluster-admin` by Kubernetes itself).
pub const SYSTEM_MASTERS: &str = "system:masters";
/// Group of kubelets.
pub const SYSTEM_NODES: &str = "system:nodes";

/// Certificates are back-dated by this much against clock skew between hosts.
pub(crate) const BACKDATE: time::Duration = time::Duration::minutes(5);
/// At most this long before its end a certificate is re-issued by `ensure`.
pub(crate) const RENEW_BEFORE: time::Duration = time::Duration::days(30);

/// What one leaf certificate must look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Profile {
    /// File stem (`kubernetes` for `kubernetes.pem` / `kubernetes-key.pem`).
    pub stem: String,
    pub cn: String,
    pub org: Option<String>,
    /// In issuing order; compared as a set.
    pub sans: Vec<San>,
    pub server: bool,
    pub client: bool,
}

impl Profile {
    fn client(stem: &str, cn: &str, org: Option<&str>) -> Profile {
        Profile {
            stem: stem.into(),
            cn: cn.into(),
            org: org.map(Into::into),
            sans: vec![],
            server: false,
            client: true,
        }
    }
}

fn push_unique(v: &mut Vec<San>, s: San) {
    if !v.contains(&s) {
        v.push(s);
    }
}

/// The apiserver's SANs, in the order kubeasz lists them.
pub(crate) fn apiserver_sans(spec: &PkiSpec) -> Vec<San> {
    let mut v = vec![];
    push_unique(&mut v, San::Ip(IpAddr::from([127, 0, 0, 1])));
    for ip in &spec.master_ips {
        push_unique(&mut v, San::Ip(*ip));
    }
    push_unique(&mut v, San::Ip(spec.api_service_ip));
    if let Some(lb) = &spec.ex_lb {
        push_unique(&mut v, San::Ip(lb.vip));
    }
    for h in &spec.master_cert_hosts {
        push_unique(&mut v, San::parse(h));
    }
    for d in [
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        format!(
            "kubernetes.default.svc.{}",
            spec.dns_domain.trim_end_matches('.')
        ),
    ] {
        push_unique(&mut v, San::Dns(d));
    }
    v
}

/// Every leaf certificate the spec asks for, in a fixed order.
pub(crate) fn profiles(spec: &PkiSpec) -> Vec<Profile> {
    let mut out = vec![
        Profile::client(names::ADMIN, "admin", Some(SYSTEM_MASTERS)),
        Profile::client(
            names::CONTROLLER_MANAGER,
            "system:kube-controller-manager",
            Some("system:kube-controller-manager"),
        ),
        Profile::client(
            names::SCHEDULER,
            "system:kube-scheduler",
            Some("system:kube-scheduler"),
        ),
        Profile::client(names::KUBE_PROXY, "system:kube-proxy", None),
    ];
    let mut etcd_sans = vec![];
    for ip in &spec.etcd_ips {
        push_unique(&mut etcd_sans, San::Ip(*ip));
    }
    push_unique(&mut etcd_sans, San::Ip(IpAddr::from([127, 0, 0, 1])));
    push_unique(&mut etcd_sans, San::Dns("localhost".into()));
    out.push(Profile {
        stem: names::ETCD.into(),
        cn: "etcd".into(),
        org: None,
        sans: etcd_sans,
        server: true,
        client: true,
    });
    out.push(Profile {
        stem: names::APISERVER.into(),
        cn: "kubernetes".into(),
        org: None,
        sans: apiserver_sans(spec),
        server: true,
        client: false,
    });
    out.push(Profile::client(
        names::APISERVER_ETCD_CLIENT,
        "kube-apiserver-etcd-client",
        Some(SYSTEM_MASTERS),
    ));
    out.push(Profile::client(
        names::APISERVER_KUBELET_CLIENT,
        "kube-apiserver-kubelet-client",
        Some(SYSTEM_MASTERS),
    ));
    out.push(Profile::client(names::AGGREGATOR, "aggregator", None));
    out.push(Profile::client(names::CALICO, "calico", None));
    for n in &spec.nodes {
        let mut sans = vec![];
        push_unique(&mut sans, San::Ip(n.ip));
        push_unique(&mut sans, San::Dns(n.name.clone()));
        out.push(Profile {
            stem: names::kubelet(&n.name),
            cn: format!("system:node:{}", n.name),
            org: Some(SYSTEM_NODES.into()),
            sans,
            server: true,
            client: true,
        });
    }
    if let Some(r) = &spec.registry {
        let domain = r.domain.to_ascii_lowercase();
        let mut sans = vec![];
        push_unique(&mut sans, San::Dns(domain.clone()));
        push_unique(&mut sans, San::Ip(r.ip));
        out.push(Profile {
            stem: names::REGISTRY.into(),
            cn: domain,
            org: None,
            sans,
            server: true,
            client: false,
        });
    }
    out
}

/// What this crate needs to know about a parsed certificate.
#[derive(Debug, Clone)]
pub(crate) struct CertFacts {
    pub der: Vec<u8>,
    pub subject_raw: Vec<u8>,
    pub issuer_raw: Vec<u8>,
    pub cn: Vec<String>,
    pub org: Vec<String>,
    /// Number of subject attributes other than CN and O.
    pub other_attrs: usize,
    pub sans: BTreeSet<San>,
    /// Number of SAN entries that are neither IP nor DNS.
    pub other_sans: usize,
    pub is_ca: bool,
    /// (digitalSignature, keyEncipherment, keyCertSign, cRLSign); None when absent.
    pub key_usage: Option<(bool, bool, bool, bool)>,
    pub eku_server: bool,
    pub eku_client: bool,
    pub eku_other: bool,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
    /// SubjectPublicKeyInfo DER.
    pub spki: Vec<u8>,
}

fn bad(path: &Path, what: &'static str, reason: impl Into<String>) -> Error {
    Error::BadPem {
        path: path.to_path_buf(),
        what,
        reason: reason.into(),
    }
}

/// Parses the first `CERTIFICATE` block of a PEM file.
pub(crate) fn parse_cert_pem(path: &Path, pem: &[u8]) -> Result<CertFacts> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem)
        .map_err(|e| bad(path, "certificate", format!("PEM: {e}")))?;
    if p.label != "CERTIFICATE" {
        return Err(bad(
            path,
            "certificate",
            format!("PEM block is {:?}, not CERTIFICATE", p.label),
        ));
    }
    parse_cert_der(path, p.contents)
}

pub(crate) fn parse_cert_der(path: &Path, der: Vec<u8>) -> Result<CertFacts> {
    use x509_parser::extensions::GeneralName;
    use x509_parser::oid_registry::{OID_X509_COMMON_NAME, OID_X509_ORGANIZATION_NAME};

    let (rest, c) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| bad(path, "certificate", format!("X.509: {e}")))?;
    if !rest.is_empty() {
        return Err(bad(
            path,
            "certificate",
            "trailing data after the certificate",
        ));
    }
    let mut cn = vec![];
    let mut org = vec![];
    let mut other_attrs = 0;
    for attr in c.subject().iter_attributes() {
        let val = attr.as_str().map(str::to_string);
        if attr.attr_type() == &OID_X509_COMMON_NAME {
            cn.push(val.map_err(|_| bad(path, "certificate", "CN is not a string"))?);
        } else if attr.attr_type() == &OID_X509_ORGANIZATION_NAME {
            org.push(val.map_err(|_| bad(path, "certificate", "O is not a string"))?);
        } else {
            other_attrs += 1;
        }
    }
    let mut sans = BTreeSet::new();
    let mut other_sans = 0;
    let san_ext = c
        .subject_alternative_name()
        .map_err(|e| bad(path, "certificate", format!("subjectAltName: {e}")))?;
    if let Some(ext) = san_ext {
        for g in &ext.value.general_names {
            match g {
                GeneralName::DNSName(d) => {
                    sans.insert(San::Dns(d.to_ascii_lowercase()));
                }
                GeneralName::IPAddress(b) => match b.len() {
                    4 => {
                        let a: [u8; 4] = (*b).try_into().unwrap_or_default();
                        sans.insert(San::Ip(IpAddr::from(a)));
                    }
                    16 => {
                        let a: [u8; 16] = (*b).try_into().unwrap_or_default();
                        sans.insert(San::Ip(IpAddr::from(a)));
                    }
                    _ => other_sans += 1,
                },
                _ => other_sans += 1,
            }
        }
    }
    let is_ca = c
        .basic_constraints()
        .map_err(|e| bad(path, "certificate", format!("basicConstraints: {e}")))?
        .map(|b| b.value.ca)
        .unwrap_or(false);
    let key_usage = c
        .key_usage()
        .map_err(|e| bad(path, "certificate", format!("keyUsage: {e}")))?
        .map(|k| {
            let k = k.value;
            (
                k.digital_signature(),
                k.key_encipherment(),
                k.key_cert_sign(),
                k.crl_sign(),
            )
        });
    let (mut eku_server, mut eku_client, mut eku_other) = (false, false, false);
    if let Some(e) = c
        .extended_key_usage()
        .map_err(|e| bad(path, "certificate", format!("extendedKeyUsage: {e}")))?
    {
        let e = e.value;
        eku_server = e.server_auth;
        eku_client = e.client_auth;
        eku_other = e.any
            || e.code_signing
            || e.email_protection
            || e.time_stamping
            || e.ocsp_signing
            || !e.other.is_empty();
    }
    let facts = CertFacts {
        subject_raw: c.subject().as_raw().to_vec(),
        issuer_raw: c.issuer().as_raw().to_vec(),
        cn,
        org,
        other_attrs,
        sans,
        other_sans,
        is_ca,
        key_usage,
        eku_server,
        eku_client,
        eku_other,
        not_before: c.validity().not_before.to_datetime(),
        not_after: c.validity().not_after.to_datetime(),
        spki: c.public_key().raw.to_vec(),
        der: Vec::new(),
    };
    Ok(CertFacts { der, ..facts })
}

/// True if `cert_der`'s signature verifies with the public key of `ca_der`.
pub(crate) fn signed_by(cert_der: &[u8], ca_der: &[u8]) -> bool {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(cert_der) else {
        return false;
    };
    let Ok((_, ca)) = x509_parser::parse_x509_certificate(ca_der) else {
        return false;
    };
    cert.issuer().as_raw() == ca.subject().as_raw()
        && cert.verify_signature(Some(ca.public_key())).is_ok()
}

/// Parses a PEM private key (PKCS#8, as written here).
pub(crate) fn parse_key_pem(path: &Path, pem: &[u8]) -> Result<KeyPair> {
    let s = std::str::from_utf8(pem).map_err(|_| bad(path, "private key", "not UTF-8 text"))?;
    // rcgen's error text never contains key material.
    KeyPair::from_pem(s).map_err(|e| bad(path, "private key", e.to_string()))
}

/// The CA: certificate plus key.
pub(crate) struct Ca {
    pub cert_pem: String,
    pub facts: CertFacts,
    key: KeyPair,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("subject_cn", &self.facts.cn)
            .field("not_after", &self.facts.not_after)
            .field("key", &"[redacted]")
            .finish()
    }
}

fn random_serial() -> SerialNumber {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .expect("system random number generator failed");
    // Positive, and exactly 16 significant bytes.
    b[0] = (b[0] & 0x7f) | 0x40;
    SerialNumber::from_slice(&b)
}

fn gen_err(what: &str) -> impl FnOnce(rcgen::Error) -> Error + '_ {
    move |source| Error::Generate {
        what: what.to_string(),
        source,
    }
}

/// `2026-01-02 03:04:05 UTC`.
pub(crate) fn fmt_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn truncate_to_second(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_nanosecond(0).unwrap_or(t)
}

fn add_duration(now: OffsetDateTime, d: std::time::Duration) -> OffsetDateTime {
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    now.checked_add(time::Duration::seconds(secs))
        .unwrap_or_else(|| rcgen::date_time_ymd(9999, 12, 31))
        .min(rcgen::date_time_ymd(9999, 12, 31))
}

/// How long before its end a certificate of this lifetime is renewed:
/// 30 days, or a third of its lifetime when that is shorter.
pub(crate) fn renew_margin(f: &CertFacts) -> time::Duration {
    let life = f.not_after - f.not_before;
    RENEW_BEFORE.min(life / 3)
}

impl Ca {
    /// Makes a new self-signed CA.
    pub(crate) fn generate(spec: &PkiSpec, now: OffsetDateTime) -> Result<(Ca, String)> {
        let key = KeyPair::generate().map_err(gen_err(names::CA_CERT))?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_CN);
        dn.push(DnType::OrganizationName, CA_ORG);
        p.distinguished_name = dn;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        p.not_before = now - BACKDATE;
        p.not_after = add_duration(now, spec.ca_expiry);
        p.serial_number = Some(random_serial());
        let cert = p.self_signed(&key).map_err(gen_err(names::CA_CERT))?;
        let cert_pem = cert.pem();
        let facts = parse_cert_der(Path::new(names::CA_CERT), cert.der().to_vec())?;
        let key_pem = key.serialize_pem();
        Ok((
            Ca {
                cert_pem,
                facts,
                key,
            },
            key_pem,
        ))
    }

    /// Loads and checks an existing CA.
    pub(crate) fn load(
        cert_path: &Path,
        cert_pem: &[u8],
        key_path: &Path,
        key_pem: &[u8],
        now: OffsetDateTime,
    ) -> Result<Ca> {
        let facts = parse_cert_pem(cert_path, cert_pem)?;
        let key = parse_key_pem(key_path, key_pem)?;
        let unusable = |reason: String| Error::CaUnusable {
            path: cert_path.to_path_buf(),
            reason,
        };
        if !facts.is_ca {
            return Err(unusable(
                "certificate is not a CA (basicConstraints CA:FALSE or absent)".into(),
            ));
        }
        if key.subject_public_key_info() != facts.spki {
            return Err(unusable(format!(
                "{} does not match the certificate",
                key_path.display()
            )));
        }
        if facts.not_after <= now {
            return Err(unusable(format!(
                "expired on {}; renew everything (kca-renew)",
                fmt_time(facts.not_after)
            )));
        }
        let cert_pem = String::from_utf8(cert_pem.to_vec())
            .map_err(|_| bad(cert_path, "certificate", "not UTF-8 text"))?;
        Ok(Ca {
            cert_pem,
            facts,
            key,
        })
    }

    fn issuer(&self) -> Result<Issuer<'static, &KeyPair>> {
        Issuer::from_ca_cert_der(&self.facts.der.as_slice().into(), &self.key)
            .map_err(gen_err(names::CA_CERT))
    }

    /// Issues a leaf for `profile`, valid from now for `expiry` but never past the CA's end.
    /// Returns (cert PEM, key PEM).
    pub(crate) fn issue(
        &self,
        profile: &Profile,
        now: OffsetDateTime,
        expiry: std::time::Duration,
    ) -> Result<(String, String)> {
        let what = names::cert_file(&profile.stem);
        let key = KeyPair::generate().map_err(gen_err(&what))?;
        let mut p = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, profile.cn.as_str());
        if let Some(o) = &profile.org {
            dn.push(DnType::OrganizationName, o.as_str());
        }
        p.distinguished_name = dn;
        p.subject_alt_names = profile
            .sans
            .iter()
            .map(|s| match s {
                San::Ip(ip) => Ok(SanType::IpAddress(*ip)),
                San::Dns(d) => d
                    .as_str()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(gen_err(&what)),
            })
            .collect::<Result<_>>()?;
        p.is_ca = IsCa::ExplicitNoCa;
        p.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        if profile.server {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if profile.client {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        p.use_authority_key_identifier_extension = true;
        p.not_before = now - BACKDATE;
        p.not_after = add_duration(now, expiry).min(self.facts.not_after);
        p.serial_number = Some(random_serial());
        let issuer = self.issuer()?;
        let cert = p.signed_by(&key, &issuer).map_err(gen_err(&what))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// Why an existing leaf must be re-issued, or `None` if it can be kept.
    pub(crate) fn check_leaf(
        &self,
        profile: &Profile,
        facts: &CertFacts,
        key: &KeyPair,
        now: OffsetDateTime,
    ) -> Option<String> {
        if key.subject_public_key_info() != facts.spki {
            return Some("key does not match certificate".into());
        }
        if facts.issuer_raw != self.facts.subject_raw || !signed_by(&facts.der, &self.facts.der) {
            return Some("not signed by the current CA".into());
        }
        if facts.cn != [profile.cn.clone()] {
            return Some(format!("subject CN {:?} != {:?}", facts.cn, profile.cn));
        }
        let want_org: Vec<String> = profile.org.iter().cloned().collect();
        if facts.org != want_org || facts.other_attrs != 0 {
            return Some(format!("subject O {:?} != {:?}", facts.org, want_org));
        }
        let want: BTreeSet<San> = profile.sans.iter().cloned().collect();
        if facts.sans != want || facts.other_sans != 0 {
            let added: Vec<String> = want
                .difference(&facts.sans)
                .map(|s| s.to_string())
                .collect();
            let removed: Vec<String> = facts
                .sans
                .difference(&want)
                .map(|s| s.to_string())
                .collect();
            return Some(format!(
                "SANs changed (add [{}], remove [{}])",
                added.join(", "),
                removed.join(", ")
            ));
        }
        if facts.is_ca {
            return Some("is a CA certificate".into());
        }
        if facts.key_usage != Some((true, true, false, false)) {
            return Some("key usage differs".into());
        }
        if facts.eku_server != profile.server
            || facts.eku_client != profile.client
            || facts.eku_other
        {
            return Some("extended key usage differs".into());
        }
        if facts.not_after > self.facts.not_after {
            return Some("outlives the CA".into());
        }
        if facts.not_after - renew_margin(facts) <= now {
            return Some(format!("ends {} (near or past)", fmt_time(facts.not_after)));
        }
        None
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spec::{ExLb, NodeCert};

    pub(crate) fn spec() -> PkiSpec {
        PkiSpec {
            cluster_name: "c1".into(),
            context_name: "ctx".into(),
            ca_expiry: std::time::Duration::from_secs(876_000 * 3600),
            cert_expiry: std::time::Duration::from_secs(438_000 * 3600),
            secure_port: 6443,
            etcd_ips: vec!["10.0.0.206".parse().unwrap()],
            master_ips: vec!["10.0.0.201".parse().unwrap(), "10.0.0.202".parse().unwrap()],
            api_service_ip: "10.68.0.1".parse().unwrap(),
            ex_lb: Some(ExLb {
                vip: "10.0.0.6".parse().unwrap(),
                port: 8443,
                serving: true,
            }),
            master_cert_hosts: vec![
                "10.0.0.88".into(),
                "api.mystical.org".into(),
                "10.0.0.201".into(),
            ],
            dns_domain: "cluster.local".into(),
            nodes: vec![NodeCert {
                name: "worker-01".into(),
                ip: "10.0.0.211".parse().unwrap(),
            }],
            registry: None,
        }
    }

    #[test]
    fn apiserver_sans_in_order_without_duplicates() {
        let got: Vec<String> = apiserver_sans(&spec())
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "IP:127.0.0.1",
                "IP:10.0.0.201",
                "IP:10.0.0.202",
                "IP:10.68.0.1",
                "IP:10.0.0.6",
                "IP:10.0.0.88",
                "DNS:api.mystical.org",
                "DNS:kubernetes",
                "DNS:kubernetes.default",
                "DNS:kubernetes.default.svc",
                "DNS:kubernetes.default.svc.cluster.local",
            ]
        );
    }

    #[test]
    fn ca_debug_is_redacted_and_issue_check_roundtrip() {
        let now = truncate_to_second(OffsetDateTime::now_utc());
        let (ca, key_pem) = Ca::generate(&spec(), now).unwrap();
        let dbg = format!("{ca:?}");
        assert!(dbg.contains("[redacted]"));
        assert!(!dbg.contains("PRIVATE"));
        let body: String = key_pem
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert!(!dbg.contains(&body[..20]));

        let profs = profiles(&spec());
        let api = profs.iter().find(|p| p.stem == "kubernetes").unwrap();
        let (cert, key) = ca.issue(api, now, spec().cert_expiry).unwrap();
        let facts = parse_cert_pem(Path::new("x"), cert.as_bytes()).unwrap();
        let key = parse_key_pem(Path::new("k"), key.as_bytes()).unwrap();
        assert_eq!(ca.check_leaf(api, &facts, &key, now), None);
        // 50 years, fits in the 100-year CA.
        assert!(facts.not_after < ca.facts.not_after);
        // The same cert judged against another profile is re-issued.
        let admin = profs.iter().find(|p| p.stem == "admin").unwrap();
        assert!(ca.check_leaf(admin, &facts, &key, now).is_some());
        // Far in the future it is near expiry.
        let later = facts.not_after - time::Duration::days(1);
        assert!(ca
            .check_leaf(api, &facts, &key, later)
            .unwrap()
            .contains("ends"));
    }

    #[test]
    fn leaf_clamped_to_ca() {
        let now = truncate_to_second(OffsetDateTime::now_utc());
        let mut s = spec();
        s.ca_expiry = std::time::Duration::from_secs(10 * 86400);
        let (ca, _) = Ca::generate(&s, now).unwrap();
        let (cert, _) = ca.issue(&profiles(&s)[0], now, s.cert_expiry).unwrap();
        let facts = parse_cert_pem(Path::new("x"), cert.as_bytes()).unwrap();
        assert_eq!(facts.not_after, ca.facts.not_after);
    }
}
