//! A CA rotation in phases, without a moment where two components that must
//! talk distrust each other (`kca-renew`, then `kca-renew --finish`):
//!
//! 1. [`begin`]: a next CA and a next service-account key are made beside
//!    the current ones. `ca.pem` becomes a bundle, current CA first (it
//!    still signs: no certificate is re-issued) then the next one; `sa.pub`
//!    trusts both keys. Pushed and rolled, every component trusts both CAs.
//! 2. [`switch`]: the next CA signs. `ca.pem` becomes next first, previous
//!    second (still trusted); `sa.key` is the next key, `sa.pub` trusts the
//!    previous one too. [`crate::ensure`] then re-issues every certificate
//!    from the new CA, and every component rolls onto them.
//! 3. [`finish`]: the previous CA and key are dropped from the bundles. A
//!    separate, explicit step: certificates of the previous CA (user
//!    kubeconfigs not re-issued, copies of the old admin kubeconfig) and
//!    service-account tokens signed by the previous key stop working then.
//!
//! Each step is a few file writes in `clusters/<c>/ssl/`, ordered so that a
//! step cut short is finished by running it again; [`phase`] says where a
//! directory is.

use std::fs;
use std::path::Path;

use crate::certs::{parse_cert_pem, parse_key_pem, Ca};
use crate::error::{io_err, Error, Result};
use crate::fsutil::{read_opt, write_atomic, MODE_PUBLIC, MODE_SECRET};
use crate::names;
use crate::spec::PkiSpec;

/// Where a PKI directory is in a rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No rotation: one CA, one service-account key.
    None,
    /// After [`begin`]: the current CA signs, both are trusted.
    Trusting,
    /// After [`switch`]: the new CA signs, the previous one is still trusted.
    Switched,
}

/// The phase of the directory, from the files a rotation leaves.
pub fn phase(dir: &Path) -> Phase {
    if dir.join(names::CA_NEXT_CERT).exists() {
        Phase::Trusting
    } else if dir.join(names::CA_PREVIOUS_CERT).exists() {
        Phase::Switched
    } else {
        Phase::None
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    read_opt(path)?.ok_or_else(|| {
        io_err("read", path)(std::io::Error::new(std::io::ErrorKind::NotFound, "missing"))
    })
}

fn text(path: &Path, bytes: Vec<u8>) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| Error::BadPem {
        path: path.to_path_buf(),
        what: "PEM file",
        reason: "not UTF-8 text".into(),
    })
}

/// The first PEM block of `bundle` (the signing CA of a bundle).
pub(crate) fn first_cert(bundle: &str) -> &str {
    const END: &str = "-----END CERTIFICATE-----";
    match bundle.find(END) {
        Some(i) => &bundle[..i + END.len()],
        None => bundle,
    }
}

fn join(a: &str, b: &str) -> String {
    format!("{}\n{}\n", a.trim_end(), b.trim_end())
}

fn public_of(key_path: &Path) -> Result<String> {
    let key = parse_key_pem(key_path, &read(key_path)?)?;
    Ok(key.public_key_pem())
}

/// Step 1: a next CA and service-account key, trusted beside the current
/// ones. Idempotent: a directory already trusting does not get another.
pub fn begin(spec: &PkiSpec, dir: &Path) -> Result<()> {
    let now = crate::certs::truncate_to_second(time::OffsetDateTime::now_utc());
    let next_cert = dir.join(names::CA_NEXT_CERT);
    let next_key = dir.join(names::CA_NEXT_KEY);
    let sa_next = dir.join(names::SA_NEXT_KEY);
    // Keys first, the certificate that marks the phase last: a cut-short
    // begin leaves no `ca-next.pem` and is simply run again.
    if !next_cert.exists() {
        let (ca, key_pem) = Ca::generate(spec, now)?;
        let sa = rcgen::KeyPair::generate().map_err(|source| Error::Generate {
            what: names::SA_NEXT_KEY.into(),
            source,
        })?;
        write_atomic(&next_key, key_pem.as_bytes(), MODE_SECRET)?;
        write_atomic(&sa_next, sa.serialize_pem().as_bytes(), MODE_SECRET)?;
        write_atomic(&next_cert, ca.cert_pem.as_bytes(), MODE_PUBLIC)?;
    }
    let ca_path = dir.join(names::CA_CERT);
    let current = text(&ca_path, read(&ca_path)?)?;
    let next = text(&next_cert, read(&next_cert)?)?;
    let bundle = join(first_cert(&current), &next);
    write_atomic(&ca_path, bundle.as_bytes(), MODE_PUBLIC)?;
    let extra = public_of(&sa_next)?;
    write_atomic(
        &dir.join(names::SA_PUB_EXTRA),
        extra.as_bytes(),
        MODE_PUBLIC,
    )?;
    Ok(())
}

/// Step 2: the next CA and key sign; the previous ones stay trusted.
/// Idempotent: each write checks what an earlier, cut-short run did.
pub fn switch(dir: &Path) -> Result<()> {
    let next_cert = dir.join(names::CA_NEXT_CERT);
    if !next_cert.exists() {
        // Done already (or never begun: nothing to switch).
        return Ok(());
    }
    let next_key = dir.join(names::CA_NEXT_KEY);
    let sa_next = dir.join(names::SA_NEXT_KEY);
    let ca_path = dir.join(names::CA_CERT);
    let ca_key = dir.join(names::CA_KEY);
    let sa_key = dir.join(names::SA_KEY);
    let previous_path = dir.join(names::CA_PREVIOUS_CERT);
    let next = text(&next_cert, read(&next_cert)?)?;
    let next_key_pem = read(&next_key)?;

    // The previous CA, kept once (the first certificate of the bundle while
    // it still signs).
    if !previous_path.exists() {
        let bundle = text(&ca_path, read(&ca_path)?)?;
        let previous = first_cert(&bundle).to_string();
        parse_cert_pem(&ca_path, previous.as_bytes())?;
        write_atomic(
            &previous_path,
            format!("{previous}\n").as_bytes(),
            MODE_PUBLIC,
        )?;
    }
    let previous = text(&previous_path, read(&previous_path)?)?;
    write_atomic(&ca_key, &next_key_pem, MODE_SECRET)?;
    write_atomic(&ca_path, join(&next, &previous).as_bytes(), MODE_PUBLIC)?;

    // The service-account key: the previous public key is trusted beside
    // the new one, taken before sa.key is replaced (and not again after).
    let sa_next_pem = read(&sa_next)?;
    if read(&sa_key)? != sa_next_pem {
        let previous_pub = public_of(&sa_key)?;
        write_atomic(
            &dir.join(names::SA_PUB_EXTRA),
            previous_pub.as_bytes(),
            MODE_PUBLIC,
        )?;
        write_atomic(&sa_key, &sa_next_pem, MODE_SECRET)?;
    }
    for f in [&sa_next, &next_key, &next_cert] {
        fs::remove_file(f).map_err(io_err("remove", f))?;
    }
    Ok(())
}

/// Step 3: only the CA that signs, and only its key, are trusted.
pub fn finish(dir: &Path) -> Result<()> {
    let ca_path = dir.join(names::CA_CERT);
    let bundle = text(&ca_path, read(&ca_path)?)?;
    let only = format!("{}\n", first_cert(&bundle));
    if only != bundle {
        write_atomic(&ca_path, only.as_bytes(), MODE_PUBLIC)?;
    }
    for f in [names::SA_PUB_EXTRA, names::CA_PREVIOUS_CERT] {
        let path = dir.join(f);
        if path.exists() {
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ensure;

    fn spec() -> PkiSpec {
        crate::certs::tests::spec()
    }

    fn certs_in(pem: &str) -> usize {
        pem.matches("-----BEGIN CERTIFICATE-----").count()
    }

    fn read_s(dir: &Path, f: &str) -> String {
        fs::read_to_string(dir.join(f)).unwrap()
    }

    #[test]
    fn three_phases_trust_then_switch_then_drop_and_each_step_runs_twice() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ssl");
        let spec = spec();
        ensure(&spec, &dir).unwrap();
        let old_ca = read_s(&dir, names::CA_CERT);
        let old_admin = read_s(&dir, "admin.pem");
        let old_sa_pub = read_s(&dir, names::SA_PUB);
        assert_eq!(phase(&dir), Phase::None);

        // 1. Trust both; nothing is re-issued.
        begin(&spec, &dir).unwrap();
        begin(&spec, &dir).unwrap();
        assert_eq!(phase(&dir), Phase::Trusting);
        let report = ensure(&spec, &dir).unwrap();
        let bundle = read_s(&dir, names::CA_CERT);
        assert_eq!(certs_in(&bundle), 2);
        assert!(
            bundle.starts_with(old_ca.trim_end()),
            "the current CA still signs first"
        );
        assert_eq!(read_s(&dir, "admin.pem"), old_admin, "{report}");
        // The signing CA alone, for kube-controller-manager (which refuses
        // a bundle there): still the current one.
        assert_eq!(
            read_s(&dir, names::CA_SIGNER_CERT).trim_end(),
            old_ca.trim_end()
        );
        let sa_pub = read_s(&dir, names::SA_PUB);
        assert!(sa_pub.starts_with(old_sa_pub.trim_end()), "{sa_pub}");
        assert_eq!(sa_pub.matches("BEGIN PUBLIC KEY").count(), 2, "{sa_pub}");
        let kubeconfig = read_s(&dir, "kubectl.kubeconfig");
        assert!(kubeconfig.contains("certificate-authority-data"));
        assert!(ensure(&spec, &dir).unwrap().created.is_empty());

        // 2. The next CA signs: every leaf re-issued, the previous CA and
        //    service-account key still trusted.
        switch(&dir).unwrap();
        switch(&dir).unwrap();
        assert_eq!(phase(&dir), Phase::Switched);
        ensure(&spec, &dir).unwrap();
        let bundle = read_s(&dir, names::CA_CERT);
        assert_eq!(certs_in(&bundle), 2);
        assert!(
            !bundle.starts_with(old_ca.trim_end()),
            "the new CA signs first"
        );
        assert!(
            bundle.contains(old_ca.trim_end()),
            "the previous CA is still trusted"
        );
        let signer = read_s(&dir, names::CA_SIGNER_CERT);
        assert_eq!(certs_in(&signer), 1);
        assert!(bundle.starts_with(signer.trim_end()), "the new CA signs");
        assert_ne!(read_s(&dir, "admin.pem"), old_admin);
        let sa_pub = read_s(&dir, names::SA_PUB);
        assert!(!sa_pub.starts_with(old_sa_pub.trim_end()));
        assert!(sa_pub.contains(old_sa_pub.trim_end()), "{sa_pub}");
        let admin = read_s(&dir, "admin.pem");
        assert_eq!(ensure(&spec, &dir).unwrap().reissued.len(), 0);

        // 3. Only the new CA and key.
        finish(&dir).unwrap();
        finish(&dir).unwrap();
        assert_eq!(phase(&dir), Phase::None);
        ensure(&spec, &dir).unwrap();
        let ca = read_s(&dir, names::CA_CERT);
        assert_eq!(certs_in(&ca), 1);
        assert!(!ca.contains(old_ca.trim_end()));
        assert_eq!(read_s(&dir, "admin.pem"), admin, "finish re-issues nothing");
        assert_eq!(
            read_s(&dir, names::SA_PUB)
                .matches("BEGIN PUBLIC KEY")
                .count(),
            1
        );
        assert!(ensure(&spec, &dir).unwrap().stale.is_empty());
    }

    #[test]
    fn a_switch_cut_short_after_the_key_swap_keeps_the_previous_public_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ssl");
        let spec = spec();
        ensure(&spec, &dir).unwrap();
        let old_sa_pub = read_s(&dir, names::SA_PUB);
        begin(&spec, &dir).unwrap();
        // What the first half of a switch leaves: sa.key already the next
        // key, the next files still there.
        let next = fs::read(dir.join(names::SA_NEXT_KEY)).unwrap();
        let previous_pub = public_of(&dir.join(names::SA_KEY)).unwrap();
        fs::write(dir.join(names::SA_PUB_EXTRA), &previous_pub).unwrap();
        fs::write(dir.join(names::SA_KEY), &next).unwrap();
        switch(&dir).unwrap();
        ensure(&spec, &dir).unwrap();
        assert!(read_s(&dir, names::SA_PUB).contains(old_sa_pub.trim_end()));
    }
}
