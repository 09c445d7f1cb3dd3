//! `ezctl download`: fetch every component of bin/versions.toml into bin/,
//! verifying each against its pinned sha256 before anything lands in bin/.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::versions::{Component, Versions};
use ez_ops::exit::{ExitCode, Failure};
use ez_ops::home::Home;

/// Largest download accepted (Kubernetes server tarballs are ~400 MB).
const MAX_BYTES: u64 = 2 << 30;

pub fn run(home: &Home, out: &crate::output::Output) -> Result<()> {
    let bin = home.dir.join("bin");
    let versions = Versions::load(&bin.join("versions.toml"))?;
    let mut fetched = 0;
    for (name, c) in &versions.components {
        let Some(url) = &c.url else { continue };
        let url = url.replace("{version}", &c.version);
        let Some(expected) = c.sha256.as_deref().filter(|s| !s.is_empty()) else {
            bail!(Failure::new(
                ExitCode::Input,
                format!("{name}: no sha256 pinned in bin/versions.toml for {url}; add the value published with the release, nothing is downloaded unverified")
            ));
        };
        out.step(format!("{name} {}: {url}", c.version));
        let data = fetch(&url).with_context(|| format!("{name}: downloading {url}"))?;
        let actual = hex::encode(Sha256::digest(&data));
        if !actual.eq_ignore_ascii_case(expected) {
            bail!(Failure::new(
                ExitCode::Failed,
                format!("{name}: checksum mismatch for {url}\n  expected sha256 {expected}\n  got      sha256 {actual}\nnothing was written to bin/")
            ));
        }
        install(&bin, name, c, &data)?;
        fetched += 1;
    }
    if out.json {
        out.result(
            "download",
            serde_json::json!({ "fetched": fetched, "dir": bin }),
        );
    } else {
        println!(
            "{fetched} component(s) downloaded and verified into {}",
            bin.display()
        );
    }
    Ok(())
}

fn fetch(url: &str) -> Result<Vec<u8>> {
    let resp = ureq::get(url)
        .timeout(std::time::Duration::from_secs(600))
        .call()?;
    let mut data = Vec::new();
    resp.into_reader()
        .take(MAX_BYTES + 1)
        .read_to_end(&mut data)?;
    if data.len() as u64 > MAX_BYTES {
        bail!("larger than {MAX_BYTES} bytes");
    }
    Ok(data)
}

/// Write verified content into bin/, each file atomically.
fn install(bin: &Path, name: &str, c: &Component, data: &[u8]) -> Result<()> {
    if c.extract.is_empty() {
        let file = c.file.as_deref().unwrap_or(name);
        return write_exec(&bin.join(file), data);
    }
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(data));
    let mut wanted = c.extract.clone();
    for entry in archive.entries().context("reading archive")? {
        let mut entry = entry.context("reading archive")?;
        let path = entry.path()?.to_string_lossy().into_owned();
        if let Some(dest) = wanted.remove(&path) {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf)?;
            write_exec(&bin.join(dest), &buf)?;
        }
    }
    if let Some(missing) = wanted.keys().next() {
        bail!("{name}: the archive has no member `{missing}`");
    }
    Ok(())
}

fn write_exec(dest: &Path, data: &[u8]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = dest.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = dest.with_extension("download");
    std::fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(&tmp, dest).with_context(|| format!("writing {}", dest.display()))?;
    Ok(())
}
