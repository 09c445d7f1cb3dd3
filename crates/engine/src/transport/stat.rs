//! The one-round-trip stat script and its parser, shared by every transport.

use std::collections::BTreeMap;

use super::shell_quote;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    File,
    Directory,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    pub kind: FileKind,
    /// Permission bits (e.g. 0o644).
    pub mode: u32,
    pub owner: String,
    pub group: String,
    pub size: u64,
    /// Hex sha256, for regular files.
    pub sha256: Option<String>,
}

/// The script that stats and hashes `paths` on the host, for [`parse`].
///
/// Symlinks are followed, like the modules that write through them.
/// Hashing and process starts are what a check costs on a host (a warm run
/// re-hashes every file it manages), so the usual script starts two
/// programs whatever the number of paths: one `stat` for all of them and
/// one hashing program for all regular files (`[ -f ]` is a shell
/// builtin). The hasher is `openssl dgst` where present: OpenSSL uses the
/// CPU's SHA extensions, ~4x less CPU per byte than coreutils' `sha256sum`,
/// but costs ~5 ms to start, which a process per file paid for every small
/// file (40 hosts x 7 files: ~1.5 CPU-s of a 5.4 CPU-s warm run).
///
/// Names with a newline or a backslash (which `sha256sum` escapes) get the
/// older per-path script instead, with one line per path.
pub(crate) fn script(paths: &[String]) -> String {
    let list: Vec<String> = paths.iter().map(|p| shell_quote(p)).collect();
    let list = list.join(" ");
    if !batched(paths) {
        return per_path_script(&list);
    }
    format!(
        r#"stat -L --printf '%n\t%f\t%a\t%U\t%G\t%s\n' -- {list} 2>/dev/null
echo '{HASHES}'
set --
for p in {list}; do [ -f "$p" ] && set -- "$@" "$p"; done
if [ $# -gt 0 ]; then
  if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "$@"
  else sha256sum -- "$@"; fi
fi
exit 0
"#
    )
}

/// The line between the stat lines (which always hold tabs) and the hashes.
const HASHES: &str = "#hashes";

fn batched(paths: &[String]) -> bool {
    !paths.iter().any(|p| p.contains('\n') || p.contains('\\'))
}

/// One output line per path, in order: `-` when absent, else
/// `kind TAB mode TAB owner TAB group TAB size [TAB sha256]`.
fn per_path_script(list: &str) -> String {
    format!(
        r#"if command -v openssl >/dev/null 2>&1; then sum() {{ openssl dgst -sha256 -r < "$1"; }}
else sum() {{ sha256sum < "$1"; }}; fi
for p in {list}; do
if [ -e "$p" ]; then
  s=$(stat -L --printf '%a\t%U\t%G\t%s' -- "$p") || s='0	?	?	0'
  if [ -d "$p" ]; then printf 'd\t%s\n' "$s"
  elif [ -f "$p" ]; then h=$(sum "$p"); printf 'f\t%s\t%s\n' "$s" "${{h%% *}}"
  else printf 'o\t%s\n' "$s"; fi
else echo -; fi
done
"#
    )
}

pub(crate) fn parse(
    paths: &[String],
    stdout: &str,
) -> Result<BTreeMap<String, Option<FileStat>>, String> {
    if batched(paths) {
        parse_batched(paths, stdout)
    } else {
        parse_per_path(paths, stdout)
    }
}

/// `name TAB rawmode(hex) TAB mode TAB owner TAB group TAB size` per path
/// that exists, the `#hashes` line, then `HEX *name` (openssl) or
/// `HEX  name` (sha256sum) per regular file.
fn parse_batched(
    paths: &[String],
    stdout: &str,
) -> Result<BTreeMap<String, Option<FileStat>>, String> {
    let (stats, hashes) = stdout
        .split_once(&format!("{HASHES}\n"))
        .filter(|(before, _)| before.is_empty() || before.ends_with('\n'))
        .ok_or_else(|| "stat output has no hash section".to_string())?;
    let mut found: BTreeMap<&str, FileStat> = BTreeMap::new();
    for line in stats.lines() {
        let mut f = line.rsplitn(6, '\t');
        let (Some(size), Some(group), Some(owner), Some(mode), Some(raw), Some(name)) =
            (f.next(), f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            return Err(format!("unexpected stat line {line:?}"));
        };
        let raw = u32::from_str_radix(raw, 16).map_err(|_| format!("bad raw mode {raw:?}"))?;
        let kind = match raw & 0o170000 {
            0o100000 => FileKind::File,
            0o040000 => FileKind::Directory,
            _ => FileKind::Other,
        };
        found.insert(
            name,
            FileStat {
                kind,
                mode: u32::from_str_radix(mode, 8).map_err(|_| format!("bad mode {mode:?}"))?,
                owner: owner.to_string(),
                group: group.to_string(),
                size: size.parse().map_err(|_| format!("bad size {size:?}"))?,
                sha256: None,
            },
        );
    }
    for line in hashes.lines() {
        let bad = || format!("unexpected hash line {line:?}");
        let hex = line.get(..64).ok_or_else(bad)?;
        let name = line[64..]
            .strip_prefix(" *")
            .or_else(|| line[64..].strip_prefix("  "))
            .ok_or_else(bad)?;
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad());
        }
        if let Some(st) = found.get_mut(name) {
            st.sha256 = Some(hex.to_ascii_lowercase());
        }
    }
    let mut out = BTreeMap::new();
    for path in paths {
        let st = found.get(path.as_str()).cloned();
        if let Some(st) = &st {
            if st.kind == FileKind::File && st.sha256.is_none() {
                return Err(format!("stat {path}: missing sha256 (unreadable?)"));
            }
        }
        out.insert(path.clone(), st);
    }
    Ok(out)
}

fn parse_per_path(
    paths: &[String],
    stdout: &str,
) -> Result<BTreeMap<String, Option<FileStat>>, String> {
    let lines: Vec<&str> = stdout.lines().collect();
    if lines.len() != paths.len() {
        return Err(format!(
            "stat returned {} lines for {} paths",
            lines.len(),
            paths.len()
        ));
    }
    let mut out = BTreeMap::new();
    for (path, line) in paths.iter().zip(lines) {
        out.insert(
            path.clone(),
            parse_line(line).map_err(|e| format!("stat {path}: {e}"))?,
        );
    }
    Ok(out)
}

fn parse_line(line: &str) -> Result<Option<FileStat>, String> {
    if line == "-" {
        return Ok(None);
    }
    let f: Vec<&str> = line.split('\t').collect();
    if f.len() < 5 {
        return Err(format!("unexpected line {line:?}"));
    }
    let kind = match f[0] {
        "d" => FileKind::Directory,
        "f" => FileKind::File,
        _ => FileKind::Other,
    };
    let mode = u32::from_str_radix(f[1], 8).map_err(|_| format!("bad mode {:?}", f[1]))?;
    let size = f[4].parse().map_err(|_| format!("bad size {:?}", f[4]))?;
    let sha256 = match (kind, f.get(5)) {
        (FileKind::File, Some(h)) if h.len() == 64 => Some((*h).to_string()),
        (FileKind::File, _) => return Err("missing sha256".into()),
        _ => None,
    };
    Ok(Some(FileStat {
        kind,
        mode,
        owner: f[2].to_string(),
        group: f[3].to_string(),
        size,
        sha256,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_each_kind() {
        let paths = vec![
            "/a".to_string(),
            "/b".to_string(),
            "/c d".to_string(),
            "/e".to_string(),
        ];
        let out = format!(
            "/b\t41ed\t755\troot\troot\t4096\n/c d\t8180\t600\tu\tg\t0\n/e\t21b6\t666\troot\troot\t0\n#hashes\n{EMPTY} */c d\n"
        );
        let m = parse(&paths, &out).unwrap();
        assert_eq!(m["/a"], None);
        assert_eq!(m["/b"].as_ref().unwrap().kind, FileKind::Directory);
        let c = m["/c d"].as_ref().unwrap();
        assert_eq!(
            (c.kind, c.mode, c.owner.as_str()),
            (FileKind::File, 0o600, "u")
        );
        assert_eq!(c.sha256.as_deref(), Some(EMPTY));
        assert_eq!(m["/e"].as_ref().unwrap().kind, FileKind::Other);
        // sha256sum's form, and a name that holds the other form's separator.
        let paths = vec!["/x *y".to_string()];
        let out = format!("/x *y\t81a4\t644\tr\tr\t0\n#hashes\n{EMPTY}  /x *y\n");
        let m = parse(&paths, &out).unwrap();
        assert_eq!(m["/x *y"].as_ref().unwrap().sha256.as_deref(), Some(EMPTY));
    }

    #[test]
    fn a_regular_file_without_a_hash_is_an_error() {
        let paths = vec!["/a".to_string()];
        let err = parse(&paths, "/a\t81a4\t644\tr\tr\t3\n#hashes\n").unwrap_err();
        assert!(err.contains("/a") && err.contains("sha256"), "{err}");
        assert!(
            parse(&paths, "/a\t81a4\t644\tr\tr\t3\n").is_err(),
            "no hash section"
        );
    }

    /// Runs the script with `path_env` as PATH; returns its output.
    fn run_script(paths: &[String], path_env: &std::ffi::OsStr) -> String {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script(paths))
            .env("PATH", path_env)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    #[test]
    fn script_hashes_with_or_without_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a file with spaces");
        std::fs::write(&f, b"abc").unwrap();
        let paths = vec![
            f.display().to_string(),
            dir.path().display().to_string(),
            dir.path().join("missing").display().to_string(),
        ];
        // A backslash in a name: the per-path script, same results.
        let odd = dir.path().join("back\\slash");
        std::fs::write(&odd, b"abc").unwrap();
        let odd_paths = vec![
            odd.display().to_string(),
            dir.path().display().to_string(),
            dir.path().join("missing").display().to_string(),
        ];
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let check = |out: &str| {
            let m = parse(&paths, out).unwrap();
            let st = m[&paths[0]].as_ref().unwrap();
            assert_eq!(st.sha256.as_deref(), Some(abc), "{out}");
            assert_eq!(st.size, 3);
            assert_eq!(m[&paths[1]].as_ref().unwrap().kind, FileKind::Directory);
            assert_eq!(m[&paths[2]], None);
        };
        let check_odd = |out: &str| {
            let m = parse(&odd_paths, out).unwrap();
            let st = m[&odd_paths[0]].as_ref().unwrap();
            assert_eq!(st.sha256.as_deref(), Some(abc), "{out}");
            assert_eq!(m[&odd_paths[1]].as_ref().unwrap().kind, FileKind::Directory);
            assert_eq!(m[&odd_paths[2]], None);
        };
        // Whatever this machine has (openssl on a stock Debian).
        let path_env = std::env::var_os("PATH").unwrap_or_default();
        check(&run_script(&paths, &path_env));
        check_odd(&run_script(&odd_paths, &path_env));
        // Without openssl: only the coreutils the fallback needs.
        let bin = tempfile::tempdir().unwrap();
        for tool in ["stat", "sha256sum"] {
            let real = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| std::path::Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap();
            std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap();
        }
        check(&run_script(&paths, bin.path().as_os_str()));
        check_odd(&run_script(&odd_paths, bin.path().as_os_str()));
    }

    #[test]
    fn line_count_mismatch_is_an_error() {
        assert!(parse(&["/a".to_string()], "").is_err());
    }
}
