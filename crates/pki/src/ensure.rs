//! `ensure` (idempotent create / re-issue) and `renew_all` (new CA and everything).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::certs::{self, parse_cert_pem, parse_key_pem, Ca, Profile};
use crate::error::{io_err, Error, Result};
use crate::fsutil::{ensure_dir, fix_mode, read_opt, write_atomic, MODE_PUBLIC, MODE_SECRET};
use crate::kubeconfig::Kubeconfig;
use crate::names;
use crate::spec::PkiSpec;

/// What [`ensure`] did, item by item. Items are file names (`kubernetes.pem`,
/// `kubectl.kubeconfig`, `sa.key`): never key material.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// Items that did not exist and were made.
    pub created: Vec<String>,
    /// Items that existed and were replaced (certs re-issued from the same CA with a new
    /// key, kubeconfigs rewritten); the reason of each is in [`Report::reasons`].
    pub reissued: Vec<String>,
    /// Items left byte-for-byte as they were.
    pub kept: Vec<String>,
    /// Files in the directory that the spec no longer asks for (e.g. the kubelet cert
    /// of a removed node): left alone.
    pub stale: Vec<String>,
    /// Why each re-issued item was re-issued.
    pub reasons: BTreeMap<String, String>,
    /// Things worth telling the operator (CA near its end, a file mode fixed, ...).
    pub warnings: Vec<String>,
}

impl Report {
    /// True if any file was created or replaced.
    pub fn changed(&self) -> bool {
        !self.created.is_empty() || !self.reissued.is_empty()
    }

    fn created(&mut self, item: &str) {
        self.created.push(item.to_string());
    }

    fn reissued(&mut self, item: &str, reason: impl Into<String>) {
        self.reissued.push(item.to_string());
        self.reasons.insert(item.to_string(), reason.into());
    }

    fn kept(&mut self, item: &str) {
        self.kept.push(item.to_string());
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} created, {} re-issued, {} kept",
            self.created.len(),
            self.reissued.len(),
            self.kept.len()
        )?;
        if !self.stale.is_empty() {
            write!(f, ", {} stale", self.stale.len())?;
        }
        for c in &self.created {
            write!(f, "\n  created   {c}")?;
        }
        for r in &self.reissued {
            write!(f, "\n  re-issued {r}")?;
            if let Some(why) = self.reasons.get(r) {
                write!(f, ": {why}")?;
            }
        }
        for s in &self.stale {
            write!(
                f,
                "\n  stale     {s} (not in the spec any more; left alone)"
            )?;
        }
        for w in &self.warnings {
            write!(f, "\n  warning   {w}")?;
        }
        Ok(())
    }
}

/// Result of [`renew_all`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Renewal {
    /// Where the previous set was moved (`None` if there was none).
    pub backup: Option<PathBuf>,
    /// What was made (everything is `created`).
    pub report: Report,
}

/// Makes `dir` hold everything `spec` asks for, changing as little as possible.
///
/// * the CA is created only when the directory has no certificate at all; a directory
///   with certificates but no CA is an error ([`Error::CaMissing`]), never a new CA;
/// * a certificate is kept byte-for-byte while it is signed by the CA, matches its key,
///   has the subject, SANs, key usages and EKUs the spec asks for, and is not within
///   30 days (or a third of its lifetime, if shorter) of its end; otherwise it is
///   re-issued from the same CA with a new key;
/// * the service-account key is never replaced once it exists;
/// * a kubeconfig is rewritten only when its bytes would differ;
/// * files for nodes (or a registry) no longer in the spec are left and listed as stale;
/// * a changed `cert_expiry` or `ca_expiry` alone re-issues nothing: it applies to
///   certificates made from then on (use [`renew_all`] to apply it to everything).
///
/// Certificates get mode 0644, keys and kubeconfigs 0600 (fixed on kept files too).
pub fn ensure(spec: &PkiSpec, dir: &Path) -> Result<Report> {
    ensure_at(spec, dir, SystemTime::now())
}

/// What [`ensure`] would do, without writing, creating or chmod-ing
/// anything (`--dry-run`): the same report, with mode fixes as warnings.
pub fn plan(spec: &PkiSpec, dir: &Path) -> Result<Report> {
    ensure_with(spec, dir, SystemTime::now(), Out { dry: true })
}

/// [`ensure`] as if the clock showed `now` (for tests of expiry handling).
#[doc(hidden)]
pub fn ensure_at(spec: &PkiSpec, dir: &Path, now: SystemTime) -> Result<Report> {
    ensure_with(spec, dir, now, Out { dry: false })
}

/// Where [`ensure`]'s writes go: to disk, or nowhere ([`plan`]).
#[derive(Clone, Copy)]
struct Out {
    dry: bool,
}

impl Out {
    fn write(self, path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
        if self.dry {
            return Ok(());
        }
        write_atomic(path, bytes, mode)
    }

    /// True when the mode differs (and, unless dry, was fixed).
    fn fix_mode(self, path: &Path, mode: u32) -> Result<bool> {
        if self.dry {
            use std::os::unix::fs::PermissionsExt;
            let meta = fs::metadata(path).map_err(crate::error::io_err("stat", path))?;
            return Ok(meta.permissions().mode() & 0o7777 != mode);
        }
        fix_mode(path, mode)
    }

    fn ensure_dir(self, dir: &Path) -> Result<()> {
        if self.dry {
            return Ok(());
        }
        ensure_dir(dir)
    }

    /// Entries of `dir`; none when a dry run finds no directory yet.
    fn list(self, dir: &Path) -> Result<Vec<fs::DirEntry>> {
        if self.dry && !dir.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for e in fs::read_dir(dir).map_err(io_err("list", dir))? {
            out.push(e.map_err(io_err("list", dir))?);
        }
        Ok(out)
    }
}

fn ensure_with(spec: &PkiSpec, dir: &Path, now: SystemTime, out: Out) -> Result<Report> {
    spec.validate()?;
    let now = certs::truncate_to_second(OffsetDateTime::from(now));
    out.ensure_dir(dir)?;
    let mut report = Report::default();

    let ca = ensure_ca(spec, dir, now, out, &mut report)?;
    let signer = format!("{}\n", crate::rotation::first_cert(ca.cert_pem.trim_end()));
    ensure_file(
        dir,
        names::CA_SIGNER_CERT,
        signer.as_bytes(),
        MODE_PUBLIC,
        out,
        &mut report,
    )?;
    ensure_sa(dir, out, &mut report)?;

    let mut issued: BTreeMap<String, (String, String)> = BTreeMap::new();
    let profiles = certs::profiles(spec);
    for p in &profiles {
        let pair = ensure_leaf(dir, &ca, p, now, spec.cert_expiry, out, &mut report)?;
        issued.insert(p.stem.clone(), pair);
    }

    let external = spec.external_server();
    let local = spec.local_server();
    let mut kcs: Vec<(String, &str, String, &str)> = vec![
        (
            names::KUBECTL_KUBECONFIG.into(),
            names::ADMIN,
            "admin".into(),
            external.as_str(),
        ),
        (
            names::CONTROLLER_MANAGER_KUBECONFIG.into(),
            names::CONTROLLER_MANAGER,
            "system:kube-controller-manager".into(),
            local.as_str(),
        ),
        (
            names::SCHEDULER_KUBECONFIG.into(),
            names::SCHEDULER,
            "system:kube-scheduler".into(),
            local.as_str(),
        ),
        (
            names::KUBE_PROXY_KUBECONFIG.into(),
            names::KUBE_PROXY,
            "system:kube-proxy".into(),
            local.as_str(),
        ),
    ];
    let kubelet_stems: Vec<String> = spec.nodes.iter().map(|n| names::kubelet(&n.name)).collect();
    for (n, stem) in spec.nodes.iter().zip(&kubelet_stems) {
        kcs.push((
            names::kubelet_kubeconfig(&n.name),
            stem.as_str(),
            format!("system:node:{}", n.name),
            local.as_str(),
        ));
    }
    for (file, stem, user, server) in &kcs {
        let (cert_pem, key_pem) = &issued[*stem];
        let kc = Kubeconfig {
            cluster: &spec.cluster_name,
            context: &spec.context_name,
            user,
            server,
            ca_pem: &ca.cert_pem,
            cert_pem,
            key_pem,
        };
        ensure_file(
            dir,
            file,
            kc.render().as_bytes(),
            MODE_SECRET,
            out,
            &mut report,
        )?;
    }

    // Stale: files we would have made for a spec we no longer have.
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for f in [
        names::CA_CERT,
        names::CA_KEY,
        names::SA_KEY,
        names::SA_PUB,
        names::CA_NEXT_CERT,
        names::CA_NEXT_KEY,
        names::SA_NEXT_KEY,
        names::SA_PUB_EXTRA,
        names::CA_PREVIOUS_CERT,
        names::CA_SIGNER_CERT,
    ] {
        expected.insert(f.to_string());
    }
    for p in &profiles {
        expected.insert(names::cert_file(&p.stem));
        expected.insert(names::key_file(&p.stem));
    }
    for (file, ..) in &kcs {
        expected.insert(file.clone());
    }
    report.stale = stale_files(dir, &expected, out)?;
    Ok(report)
}

fn stale_files(dir: &Path, expected: &BTreeSet<String>, fs_out: Out) -> Result<Vec<String>> {
    let mut out = vec![];
    for e in fs_out.list(dir)? {
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if expected.contains(&name) || name.starts_with('.') {
            continue;
        }
        if name.ends_with(".kubeconfig") {
            out.push(name);
        } else if name.ends_with(".pem") {
            // Keys are reported through their certificate; only list certificates.
            let head = read_opt(&e.path())?.unwrap_or_default();
            if head.starts_with(b"-----BEGIN CERTIFICATE") {
                out.push(name);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Lists a few certificate-looking files (for [`Error::CaMissing`]).
fn existing_certs(dir: &Path) -> Result<Vec<String>> {
    let mut found = vec![];
    if !dir.exists() {
        return Ok(found);
    }
    for e in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let e = e.map_err(io_err("list", dir))?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if name != names::CA_CERT
            && name != names::CA_KEY
            && (name.ends_with(".pem") || name.ends_with(".kubeconfig"))
        {
            found.push(name);
        }
    }
    found.sort();
    Ok(found)
}

pub(crate) fn load_ca(dir: &Path, now: OffsetDateTime) -> Result<Option<Ca>> {
    let cp = dir.join(names::CA_CERT);
    let kp = dir.join(names::CA_KEY);
    match (read_opt(&cp)?, read_opt(&kp)?) {
        (Some(c), Some(k)) => Ok(Some(Ca::load(&cp, &c, &kp, &k, now)?)),
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::CaMissing {
            dir: dir.into(),
            missing: names::CA_KEY.into(),
            found: existing_certs(dir)?,
        }),
        (None, Some(_)) => Err(Error::CaMissing {
            dir: dir.into(),
            missing: names::CA_CERT.into(),
            found: existing_certs(dir)?,
        }),
    }
}

fn ensure_ca(
    spec: &PkiSpec,
    dir: &Path,
    now: OffsetDateTime,
    out: Out,
    report: &mut Report,
) -> Result<Ca> {
    if let Some(ca) = load_ca(dir, now)? {
        fix_modes(dir, names::CA_CERT, names::CA_KEY, out, report)?;
        report.kept(names::CA_CERT);
        if ca.facts.not_after - certs::renew_margin(&ca.facts) <= now {
            report.warnings.push(format!(
                "the CA ends on {}; renew everything (kca-renew) before then",
                certs::fmt_time(ca.facts.not_after)
            ));
        }
        return Ok(ca);
    }
    let found = existing_certs(dir)?;
    if !found.is_empty() {
        return Err(Error::CaMissing {
            dir: dir.into(),
            missing: "ca.pem and ca-key.pem".into(),
            found,
        });
    }
    let (ca, key_pem) = Ca::generate(spec, now)?;
    out.write(&dir.join(names::CA_KEY), key_pem.as_bytes(), MODE_SECRET)?;
    out.write(
        &dir.join(names::CA_CERT),
        ca.cert_pem.as_bytes(),
        MODE_PUBLIC,
    )?;
    report.created(names::CA_CERT);
    Ok(ca)
}

fn fix_modes(dir: &Path, cert: &str, key: &str, out: Out, report: &mut Report) -> Result<()> {
    let verb = if out.dry { "would be set" } else { "set" };
    if out.fix_mode(&dir.join(cert), MODE_PUBLIC)? {
        report.warnings.push(format!("{cert}: mode {verb} to 0644"));
    }
    if out.fix_mode(&dir.join(key), MODE_SECRET)? {
        report.warnings.push(format!("{key}: mode {verb} to 0600"));
    }
    Ok(())
}

fn ensure_sa(dir: &Path, out: Out, report: &mut Report) -> Result<()> {
    let kp = dir.join(names::SA_KEY);
    let key = match read_opt(&kp)? {
        Some(k) => {
            let key = parse_key_pem(&kp, &k)?;
            if out.fix_mode(&kp, MODE_SECRET)? {
                report
                    .warnings
                    .push(format!("{}: mode set to 0600", names::SA_KEY));
            }
            report.kept(names::SA_KEY);
            key
        }
        None => {
            let key = rcgen::KeyPair::generate().map_err(|source| Error::Generate {
                what: names::SA_KEY.into(),
                source,
            })?;
            out.write(&kp, key.serialize_pem().as_bytes(), MODE_SECRET)?;
            report.created(names::SA_KEY);
            key
        }
    };
    // During a CA rotation the other key is trusted too (crate::rotation).
    let mut public = key.public_key_pem();
    if let Some(extra) = read_opt(&dir.join(names::SA_PUB_EXTRA))? {
        public = format!(
            "{}\n{}\n",
            public.trim_end(),
            String::from_utf8_lossy(&extra).trim_end()
        );
    }
    ensure_file(
        dir,
        names::SA_PUB,
        public.as_bytes(),
        MODE_PUBLIC,
        out,
        report,
    )
}

/// Writes `file` unless it already holds exactly `want`.
fn ensure_file(
    dir: &Path,
    file: &str,
    want: &[u8],
    mode: u32,
    out: Out,
    report: &mut Report,
) -> Result<()> {
    let path = dir.join(file);
    match read_opt(&path)? {
        Some(have) if have == want => {
            if out.fix_mode(&path, mode)? {
                report
                    .warnings
                    .push(format!("{file}: mode set to {mode:04o}"));
            }
            report.kept(file);
        }
        Some(_) => {
            out.write(&path, want, mode)?;
            report.reissued(
                file,
                "content differs from what the spec and certificates give",
            );
        }
        None => {
            out.write(&path, want, mode)?;
            report.created(file);
        }
    }
    Ok(())
}

/// Keeps, creates or re-issues one leaf; returns its (cert PEM, key PEM).
fn ensure_leaf(
    dir: &Path,
    ca: &Ca,
    p: &Profile,
    now: OffsetDateTime,
    expiry: std::time::Duration,
    out: Out,
    report: &mut Report,
) -> Result<(String, String)> {
    let cert_name = names::cert_file(&p.stem);
    let key_name = names::key_file(&p.stem);
    let cp = dir.join(&cert_name);
    let kp = dir.join(&key_name);
    let reason = match (read_opt(&cp)?, read_opt(&kp)?) {
        (Some(c), Some(k)) => {
            let facts = parse_cert_pem(&cp, &c)?;
            let key = parse_key_pem(&kp, &k)?;
            match ca.check_leaf(p, &facts, &key, now) {
                None => {
                    fix_modes(dir, &cert_name, &key_name, out, report)?;
                    report.kept(&cert_name);
                    // Both parsed as PEM above, so both are UTF-8.
                    return Ok((
                        String::from_utf8_lossy(&c).into_owned(),
                        String::from_utf8_lossy(&k).into_owned(),
                    ));
                }
                Some(r) => Some(r),
            }
        }
        (None, None) => None,
        (Some(_), None) => Some(format!("{key_name} missing")),
        (None, Some(_)) => Some(format!("{cert_name} missing")),
    };
    let (cert_pem, key_pem) = ca.issue(p, now, expiry)?;
    // Key first: a crash in between leaves a mismatch that the next run re-issues.
    out.write(&kp, key_pem.as_bytes(), MODE_SECRET)?;
    out.write(&cp, cert_pem.as_bytes(), MODE_PUBLIC)?;
    match reason {
        Some(r) => report.reissued(&cert_name, r),
        None => report.created(&cert_name),
    }
    Ok((cert_pem, key_pem))
}

/// `kca-renew`: moves the whole directory to `<dir>/../ssl-backup-<YYYYmmddHHMMSS>/`
/// (UTC), then makes a new CA and everything else in a fresh `dir`. User kubeconfigs
/// go with the backup (they were signed by the old CA).
pub fn renew_all(spec: &PkiSpec, dir: &Path) -> Result<Renewal> {
    spec.validate()?;
    let backup = if dir.exists() {
        let parent = match dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let t = OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        );
        let mut target = parent.join(format!("ssl-backup-{stamp}"));
        let mut n = 1;
        while target.exists() {
            target = parent.join(format!("ssl-backup-{stamp}-{n}"));
            n += 1;
        }
        fs::rename(dir, &target).map_err(io_err("move to backup", dir))?;
        Some(target)
    } else {
        None
    };
    let report = ensure(spec, dir)?;
    Ok(Renewal { backup, report })
}
