//! The Kubernetes version a stand-in reports, changeable without recompiling.
//!
//! The upgrade tests need two builds that differ only in version, and
//! building twice on a 2-core machine is slow, so the version lives in a
//! fixed-length marker inside the binary's read-only data. `patch_binary`
//! rewrites the marker in a copy of a built binary.

use std::path::{Path, PathBuf};

/// Total marker length in bytes: prefix + version + NUL padding.
pub const MARKER_LEN: usize = 64;
/// Version compiled into the binaries.
pub const DEFAULT_VERSION: &str = "v1.30.1";

const PREFIX_LEN: usize = 18; // "EZSTANDIN_VERSION=".len()

const fn build_marker() -> [u8; MARKER_LEN] {
    let text = b"EZSTANDIN_VERSION=v1.30.1";
    let mut out = [0u8; MARKER_LEN];
    let mut i = 0;
    while i < text.len() {
        out[i] = text[i];
        i += 1;
    }
    out
}

// `#[used]` keeps the marker in the binary even if the optimiser could
// otherwise inline it; the volatile read in `current()` stops it from
// constant-folding the default version into the code.
#[used]
static VERSION_MARKER: [u8; MARKER_LEN] = build_marker();

/// The marker prefix, assembled at run time so the patcher's own search
/// pattern never forms a second complete marker in any binary.
fn marker_prefix() -> Vec<u8> {
    ["EZSTANDIN", "_VERSION="].concat().into_bytes()
}

/// Errors from reading or patching the version marker.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("version {0:?} is not of the form vMAJOR.MINOR.PATCH")]
    BadVersion(String),
    #[error("version {0:?} does not fit the {1}-byte marker")]
    TooLong(String, usize),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds {count} version markers, expected exactly one")]
    MarkerCount { path: PathBuf, count: usize },
}

/// The version this binary reports, e.g. `v1.30.1`.
pub fn current() -> String {
    // SAFETY: VERSION_MARKER is an initialised, immutable static; a volatile
    // read of it is a plain read the compiler may not elide or fold.
    let bytes: [u8; MARKER_LEN] = unsafe { std::ptr::read_volatile(&VERSION_MARKER) };
    let value = &bytes[PREFIX_LEN..];
    let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
    String::from_utf8_lossy(&value[..end]).into_owned()
}

/// Checks that `version` looks like a Kubernetes release (`v1.30.11`).
pub fn validate(version: &str) -> Result<(), VersionError> {
    let bad = || VersionError::BadVersion(version.to_string());
    let rest = version.strip_prefix('v').ok_or_else(bad)?;
    let parts: Vec<&str> = rest.split('.').collect();
    if parts.len() != 3
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    if PREFIX_LEN + version.len() >= MARKER_LEN {
        return Err(VersionError::TooLong(version.to_string(), MARKER_LEN));
    }
    Ok(())
}

/// Rewrites the version marker in `data` (a whole binary image).
pub fn patch_bytes(data: &mut [u8], version: &str, path: &Path) -> Result<(), VersionError> {
    validate(version)?;
    let prefix = marker_prefix();
    let hits: Vec<usize> = data
        .windows(prefix.len())
        .enumerate()
        .filter(|(_, w)| *w == prefix.as_slice())
        .map(|(i, _)| i)
        .filter(|i| i + MARKER_LEN <= data.len())
        .collect();
    let &[at] = hits.as_slice() else {
        return Err(VersionError::MarkerCount {
            path: path.to_path_buf(),
            count: hits.len(),
        });
    };
    let slot = &mut data[at + PREFIX_LEN..at + MARKER_LEN];
    slot.fill(0);
    slot[..version.len()].copy_from_slice(version.as_bytes());
    Ok(())
}

/// Copies the binary `input` to `output` with its version set to `version`,
/// keeping the executable permission bits.
pub fn patch_binary(input: &Path, output: &Path, version: &str) -> Result<(), VersionError> {
    let mut data = std::fs::read(input).map_err(|source| VersionError::Read {
        path: input.to_path_buf(),
        source,
    })?;
    patch_bytes(&mut data, version, input)?;
    let perms = std::fs::metadata(input)
        .map_err(|source| VersionError::Read {
            path: input.to_path_buf(),
            source,
        })?
        .permissions();
    let write_err = |source| VersionError::Write {
        path: output.to_path_buf(),
        source,
    };
    // Write next to the target and rename, so a running copy of `output`
    // is never truncated under its feet ("text file busy").
    let tmp = output.with_extension("standin-tmp");
    std::fs::write(&tmp, &data).map_err(write_err)?;
    std::fs::set_permissions(&tmp, perms).map_err(write_err)?;
    std::fs::rename(&tmp, output).map_err(write_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_marker_reads_back() {
        assert_eq!(current(), DEFAULT_VERSION);
        assert_eq!(&VERSION_MARKER[..PREFIX_LEN], marker_prefix().as_slice());
    }

    #[test]
    fn patch_replaces_and_pads() {
        let mut image = b"junk".to_vec();
        image.extend_from_slice(&build_marker());
        image.extend_from_slice(b"tail");
        patch_bytes(&mut image, "v1.30.11", Path::new("x")).unwrap();
        let m = &image[4..4 + MARKER_LEN];
        assert_eq!(&m[PREFIX_LEN..PREFIX_LEN + 8], b"v1.30.11");
        assert!(m[PREFIX_LEN + 8..].iter().all(|b| *b == 0));
        assert!(image.ends_with(b"tail"));
        // and back to a shorter one: no leftover digits
        patch_bytes(&mut image, "v1.3.1", Path::new("x")).unwrap();
        assert_eq!(&image[4 + PREFIX_LEN..4 + PREFIX_LEN + 7], b"v1.3.1\0");
    }

    #[test]
    fn rejects_missing_or_duplicate_marker_and_bad_versions() {
        let mut none = vec![0u8; 100];
        assert!(matches!(
            patch_bytes(&mut none, "v1.2.3", Path::new("x")),
            Err(VersionError::MarkerCount { count: 0, .. })
        ));
        let mut two = build_marker().repeat(2);
        assert!(matches!(
            patch_bytes(&mut two, "v1.2.3", Path::new("x")),
            Err(VersionError::MarkerCount { count: 2, .. })
        ));
        for bad in [
            "1.2.3",
            "v1.2",
            "v1.2.x",
            "v1..3",
            &format!("v1.2.{}", "9".repeat(60)),
        ] {
            assert!(validate(bad).is_err(), "{bad}");
        }
    }
}
