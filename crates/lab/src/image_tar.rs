//! A minimal, deterministic tar writer (POSIX ustar with PAX extended
//! headers) for image layers and docker-archive files.
//!
//! Why not a tar crate: every field that could vary between two builds of
//! the same tree must be fixed here (mtime, owner, names, order), and file
//! capabilities travel as a PAX `SCHILY.xattr.security.capability` record
//! with a binary value, which is what containerd's and Docker's layer
//! appliers read. Keeping the writer this small makes both easy to see.

use std::io::{self, Write};

const BLOCK: usize = 512;
/// Largest size an octal ustar size field holds (11 digits).
const MAX_OCTAL_SIZE: u64 = 0o77_777_777_777;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink(String),
    /// A hard link to an earlier entry of the same archive (its tar path).
    HardLink(String),
}

/// One archive member. Paths are relative, `/`-separated, without a
/// leading `./`; a directory's path has no trailing slash (added here).
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits including setuid/setgid/sticky (`& 0o7777`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: u64,
    /// Extended attributes, written as `SCHILY.xattr.<name>` PAX records.
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// Streams tar members to `W`; [`TarWriter::finish`] writes the end marker.
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        TarWriter { out, written: 0 }
    }

    /// Writes `entry` with `data` as its content (empty unless a file).
    pub fn append(&mut self, entry: &Entry, data: &[u8]) -> io::Result<()> {
        if entry.kind != EntryKind::File && !data.is_empty() {
            return Err(invalid(format!("{}: only files carry data", entry.path)));
        }
        let size = data.len() as u64;
        if size > MAX_OCTAL_SIZE {
            return Err(invalid(format!("{}: larger than 8 GiB", entry.path)));
        }
        let mut name = entry.path.clone();
        if entry.kind == EntryKind::Dir {
            name.push('/');
        }
        let link = match &entry.kind {
            EntryKind::Symlink(t) | EntryKind::HardLink(t) => t.as_str(),
            _ => "",
        };
        // PAX records for what ustar cannot hold: long names and xattrs.
        let mut pax: Vec<(String, Vec<u8>)> = Vec::new();
        let (prefix, short) = match split_ustar_name(&name) {
            Some(parts) => parts,
            None => {
                pax.push(("path".into(), name.clone().into_bytes()));
                (String::new(), truncate_utf8(&name, 100))
            }
        };
        let short_link = if link.len() > 100 {
            pax.push(("linkpath".into(), link.as_bytes().to_vec()));
            truncate_utf8(link, 100)
        } else {
            link.to_string()
        };
        for (k, v) in &entry.xattrs {
            pax.push((format!("SCHILY.xattr.{k}"), v.clone()));
        }
        if !pax.is_empty() {
            let body = pax_body(&pax);
            let pax_name = format!("PaxHeaders/{}", truncate_utf8(&short, 80));
            let header = ustar_header(&HeaderFields {
                name: &pax_name,
                prefix: "",
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: body.len() as u64,
                mtime: entry.mtime,
                typeflag: b'x',
                link: "",
            })?;
            self.write_block_data(&header, &body)?;
        }
        let typeflag = match entry.kind {
            EntryKind::File => b'0',
            EntryKind::HardLink(_) => b'1',
            EntryKind::Symlink(_) => b'2',
            EntryKind::Dir => b'5',
        };
        let header = ustar_header(&HeaderFields {
            name: &short,
            prefix: &prefix,
            mode: entry.mode & 0o7777,
            uid: entry.uid,
            gid: entry.gid,
            size,
            mtime: entry.mtime,
            typeflag,
            link: &short_link,
        })?;
        self.write_block_data(&header, data)
    }

    fn write_block_data(&mut self, header: &[u8; BLOCK], data: &[u8]) -> io::Result<()> {
        self.out.write_all(header)?;
        self.out.write_all(data)?;
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])?;
        self.written += (BLOCK + data.len() + pad) as u64;
        Ok(())
    }

    /// Two zero blocks end the archive; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// Splits a name into ustar's (prefix, name) fields, or `None` when it needs
/// a PAX `path` record (too long, or not splittable at a `/`).
fn split_ustar_name(name: &str) -> Option<(String, String)> {
    if name.len() <= 100 {
        return Some((String::new(), name.to_string()));
    }
    // The split point is a '/' with at most 155 bytes before it and at most
    // 100 after; a directory's trailing slash stays in the name part.
    let trimmed = name.strip_suffix('/').unwrap_or(name);
    for (i, _) in trimmed.match_indices('/').rev() {
        let (prefix, rest) = (&name[..i], &name[i + 1..]);
        if prefix.len() <= 155 && rest.len() <= 100 && !rest.is_empty() {
            return Some((prefix.to_string(), rest.to_string()));
        }
    }
    None
}

fn truncate_utf8(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

/// PAX records: `"<len> <key>=<value>\n"`, where len counts the whole
/// record including its own digits.
fn pax_body(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in records {
        let rest = k.len() + v.len() + 3; // ' ', '=', '\n'
        let mut len = rest + 1;
        while len != rest + len.to_string().len() {
            len = rest + len.to_string().len();
        }
        body.extend_from_slice(len.to_string().as_bytes());
        body.push(b' ');
        body.extend_from_slice(k.as_bytes());
        body.push(b'=');
        body.extend_from_slice(v);
        body.push(b'\n');
    }
    body
}

struct HeaderFields<'a> {
    name: &'a str,
    prefix: &'a str,
    mode: u32,
    uid: u32,
    gid: u32,
    size: u64,
    mtime: u64,
    typeflag: u8,
    link: &'a str,
}

fn put(field: &mut [u8], value: &[u8]) -> io::Result<()> {
    if value.len() > field.len() {
        return Err(invalid(format!(
            "tar header field too long: {:?}",
            String::from_utf8_lossy(value)
        )));
    }
    field[..value.len()].copy_from_slice(value);
    Ok(())
}

/// Octal, zero-padded to the field's width minus its NUL terminator.
fn put_octal(field: &mut [u8], value: u64) -> io::Result<()> {
    let width = field.len() - 1;
    let s = format!("{value:0width$o}");
    if s.len() > width {
        return Err(invalid(format!("tar header value {value} does not fit")));
    }
    put(field, s.as_bytes())
}

fn ustar_header(f: &HeaderFields<'_>) -> io::Result<[u8; BLOCK]> {
    let mut h = [0u8; BLOCK];
    put(&mut h[0..100], f.name.as_bytes())?;
    put_octal(&mut h[100..108], u64::from(f.mode))?;
    put_octal(&mut h[108..116], u64::from(f.uid))?;
    put_octal(&mut h[116..124], u64::from(f.gid))?;
    put_octal(&mut h[124..136], f.size)?;
    put_octal(&mut h[136..148], f.mtime)?;
    h[156] = f.typeflag;
    put(&mut h[157..257], f.link.as_bytes())?;
    put(&mut h[257..263], b"ustar\0")?;
    put(&mut h[263..265], b"00")?;
    put_octal(&mut h[329..337], 0)?;
    put_octal(&mut h[337..345], 0)?;
    put(&mut h[345..500], f.prefix.as_bytes())?;
    // The checksum is computed with its own field read as spaces.
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    put(&mut h[148..156], format!("{sum:06o}\0 ").as_bytes())?;
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        // "7 a=bc\n" is 7 bytes: 1 digit, ' ', "a=bc", '\n'.
        assert_eq!(pax_body(&[("a".into(), b"bc".to_vec())]), b"7 a=bc\n");
        // 98 bytes besides the length: 2 digits would make 100, which has
        // 3 digits, so the record is 101 bytes long.
        let body = pax_body(&[("ab".into(), vec![b'x'; 93])]);
        assert_eq!(body.len(), 101);
        assert!(body.starts_with(b"101 ab="));
    }

    #[test]
    fn long_names_split_at_a_slash_or_go_to_pax() {
        let long_dir = "d".repeat(120);
        let (p, n) = split_ustar_name(&format!("{long_dir}/file")).expect("splits");
        assert_eq!((p.as_str(), n.as_str()), (long_dir.as_str(), "file"));
        assert!(split_ustar_name(&"x".repeat(101)).is_none());
        assert_eq!(
            split_ustar_name("short"),
            Some((String::new(), "short".into()))
        );
    }

    #[test]
    fn header_checksum_matches_the_ustar_rule() {
        let h = ustar_header(&HeaderFields {
            name: "a",
            prefix: "",
            mode: 0o755,
            uid: 0,
            gid: 0,
            size: 3,
            mtime: 0,
            typeflag: b'0',
            link: "",
        })
        .expect("header");
        let mut copy = h;
        copy[148..156].copy_from_slice(b"        ");
        let sum: u32 = copy.iter().map(|&b| u32::from(b)).sum();
        let field = std::str::from_utf8(&h[148..154]).expect("ascii");
        assert_eq!(u32::from_str_radix(field, 8).expect("octal"), sum);
    }

    #[test]
    fn data_on_a_directory_is_refused() {
        let mut w = TarWriter::new(Vec::new());
        let e = Entry {
            path: "d".into(),
            kind: EntryKind::Dir,
            mode: 0o755,
            uid: 0,
            gid: 0,
            mtime: 0,
            xattrs: vec![],
        };
        assert!(w.append(&e, b"x").is_err());
        assert!(w.append(&e, b"").is_ok());
    }
}
