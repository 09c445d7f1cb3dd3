//! The files every workload uploads: random content (it does not compress,
//! like the binaries and archives real runs push), generated once per bench
//! run.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Names and sizes of the 4 uploads (1 KB, 1 MB, 20 MB, 20 MB).
pub const FILES: [(&str, u64); 4] = [
    ("f1k.bin", 1 << 10),
    ("f1m.bin", 1 << 20),
    ("f20m-1.bin", 20 << 20),
    ("f20m-2.bin", 20 << 20),
];

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadFile {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
}

/// Writes `FILES` into `dir` with content from `/dev/urandom`.
pub fn generate(dir: &Path) -> std::io::Result<Vec<PayloadFile>> {
    generate_sizes(dir, &FILES)
}

/// Like [`generate`] with chosen names and sizes.
pub fn generate_sizes(dir: &Path, files: &[(&str, u64)]) -> std::io::Result<Vec<PayloadFile>> {
    std::fs::create_dir_all(dir)?;
    let mut random = std::fs::File::open("/dev/urandom")?;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    for (name, size) in files {
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path)?;
        let mut hash = Sha256::new();
        let mut left = *size;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            random.read_exact(&mut buf[..n])?;
            f.write_all(&buf[..n])?;
            hash.update(&buf[..n]);
            left -= n as u64;
        }
        f.sync_all()?;
        out.push(PayloadFile {
            name: (*name).to_string(),
            path,
            size: *size,
            sha256: hex::encode(hash.finalize()),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_have_their_size_hash_and_differ() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = generate_sizes(dir.path(), &[("a", 3000), ("b", 3000)]).expect("generate");
        assert_eq!(files.len(), 2);
        for f in &files {
            let bytes = std::fs::read(&f.path).expect("read");
            assert_eq!(bytes.len() as u64, f.size);
            assert_eq!(hex::encode(Sha256::digest(&bytes)), f.sha256);
        }
        assert_ne!(files[0].sha256, files[1].sha256, "random, not constant");
    }

    #[test]
    fn the_workload_sizes_are_the_issue_s() {
        let total: u64 = FILES.iter().map(|f| f.1).sum();
        assert_eq!(total, 1024 + (1 << 20) + 2 * (20 << 20));
    }
}
