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

/// Where the host keeps the hashes of the files it was checked for, as root.
/// `EZCTL_HASH_CACHE` in the command's environment overrides it (tests give
/// each host its own file; an empty value turns the cache off).
pub(crate) const HOST_CACHE: &str = "/var/cache/ezctl/file-hashes";

/// Most entries a cache file keeps: reading it is part of every check, and a
/// host manages a few hundred files. Entries of the paths just checked come
/// first, so only long-unchecked paths fall off.
const CACHE_MAX_ENTRIES: usize = 4096;

/// The script that stats and hashes `paths` on the host, for [`parse`].
///
/// Symlinks are followed, like the modules that write through them.
/// Hashing and process starts are what a check costs on a host, so the
/// usual script starts few programs whatever the number of paths: one
/// `stat` for all of them, one `awk` that answers unchanged files from
/// the host's hash cache, and only when some file is not answered there,
/// one hashing program for those files plus an `awk` and `mv` that write
/// the cache. The hasher is `openssl dgst` where present: OpenSSL uses the
/// CPU's SHA extensions, ~4x less CPU per byte than coreutils' `sha256sum`,
/// but costs ~5 ms to start, which a process per file paid for every small
/// file (40 hosts x 7 files: ~1.5 CPU-s of a 5.4 CPU-s warm run).
///
/// The cache (see [`CACHE_AWK`]) holds one line per file: its
/// (device, inode, size, mtime, ctime), the clock when it was hashed, and
/// the hash. An entry answers only when the key is unchanged and both
/// times are older than that clock: git's racy-entry rule, because a file
/// written again within one tick of the filesystem clock keeps its times.
/// The clock is the ctime of a pipe made just before the `stat` (the same
/// coarse kernel clock that stamps files, unlike `date`'s), so a change
/// made after it always shows in the key. A missing, unreadable or corrupt
/// cache only means hashing as before.
///
/// Names with a newline or a backslash (which `sha256sum` escapes) get the
/// older per-path script instead, with one line per path and no cache.
#[cfg(test)]
pub(crate) fn script(paths: &[String]) -> String {
    script_with(paths, true)
}

/// [`script`], with `store_cache` false for a dry run: the cache is read
/// but never written.
pub(crate) fn script_with(paths: &[String], store_cache: bool) -> String {
    let store = u8::from(store_cache);
    let list: Vec<String> = paths.iter().map(|p| shell_quote(p)).collect();
    let list = list.join(" ");
    if !batched(paths) {
        return per_path_script(&list);
    }
    format!(
        r#"umask 077
c=${{EZCTL_HASH_CACHE-{HOST_CACHE}}}
r=; [ -n "$c" ] && [ -f "$c" ] && r=$c
nl='
'
a=$(: | stat -L --printf '{STAT_FORMAT}' -- /dev/stdin {list} 2>/dev/null | awk -v mode=check -v on="${{c:+1}}" -v cache="$r" '{CACHE_AWK}')
case $a in *"$nl#misses "*) ;; *) echo "stat: the cache's awk printed nothing" >&2; exit 1;; esac
printf '%s\n' "${{a%%"$nl#misses "*}}"
IFS=$nl; set -f; set -- ${{a#*"$nl#misses "}}; set +f; unset IFS
t0=$1; shift
if [ $# -gt 0 ]; then
  if command -v openssl >/dev/null 2>&1; then h=$(openssl dgst -sha256 -r "$@")
  else h=$(sha256sum -- "$@"); fi
  [ -z "$h" ] || printf '%s\n' "$h"
  if [ {store} = 1 ] && [ "$t0" != - ] && [ -n "$h" ]; then
    t=$c.$$; r=; [ -f "$c" ] && r=$c
    [ -d "${{c%/*}}" ] || mkdir -p -- "${{c%/*}}" 2>/dev/null
    printf '%s\n#sums\n%s\n' "$a" "$h" | awk -v mode=store -v cache="$r" -v out="$t" -v max={CACHE_MAX_ENTRIES} '{CACHE_AWK}' 2>/dev/null
    case $? in 0) mv -fT -- "$t" "$c" 2>/dev/null || rm -f -- "$t";; 1) ;; *) rm -f -- "$t";; esac
  fi
fi
exit 0
"#
    )
}

/// Name, raw mode (hex), mode, owner, group, size, then the cache key's
/// device, inode, mtime and ctime (nanoseconds: GNU stat's `%.9Y`).
const STAT_FORMAT: &str = r"%n\t%f\t%a\t%U\t%G\t%s\t%d\t%i\t%.9Y\t%.9Z\n";

/// The cache's awk program, in two modes. No single quote inside: it is
/// passed in one.
///
/// `mode=check` reads the stat lines (the first is the clock pipe,
/// `/dev/stdin`) and prints them, then `#hashes` and `HEX *name` for each
/// regular file the cache answers, then `#misses CLOCK` (`-` when there is
/// no cache) and the names left to hash.
///
/// `mode=store` reads that output, `#sums` and the hasher's lines, and
/// writes the new cache to `out`: the fresh entries that are not racy
/// against this run's clock, the entries that answered, then the other
/// paths' entries up to `max`. It exits 1 when it has nothing new to store.
///
/// The file is `ezctl-hashes 1`, one tab-separated line per file (device,
/// inode, size, mtime, ctime, clock, sha256, name) and `#end COUNT`. It is
/// trusted whole or not at all: a wrong header, a malformed or repeated
/// line, or a missing or wrong footer (a truncated file) drops every entry.
pub(crate) const CACHE_AWK: &str = r##"
function lt(a, b,  x, y) {
  split(a, x, "."); split(b, y, ".")
  if (x[1] + 0 != y[1] + 0) return x[1] + 0 < y[1] + 0
  return x[2] + 0 < y[2] + 0
}
function num(s) { return s ~ /^[0-9]+$/ }
function ts(s) { return s ~ /^[0-9]+\.[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]$/ }
function forget() { split("", ekey); split("", et0); split("", esum); ne = 0 }
function load(  line, f, k, i, p, ok) {
  ne = 0; ok = 0
  if (cache == "") return
  if ((getline line < cache) <= 0 || line != "ezctl-hashes 1") { close(cache); return }
  while ((getline line < cache) > 0) {
    if (line ~ /^#end /) { ok = substr(line, 6) == ne ""; break }
    k = split(line, f, "\t")
    p = f[8]; for (i = 9; i <= k; i++) p = p "\t" f[i]
    if (k < 8 || p == "" || (p in ekey) || !num(f[1]) || !num(f[2]) || !num(f[3]) || !ts(f[4]) || !ts(f[5]) || !ts(f[6]) || length(f[7]) != 64 || f[7] !~ /^[0-9a-f]+$/) break
    ekey[p] = f[1] "\t" f[2] "\t" f[3] "\t" f[4] "\t" f[5]; et0[p] = f[6]; esum[p] = f[7]; eorder[++ne] = p
  }
  close(cache)
  if (!ok) forget()
}
function statline(line,  f, k, i) {
  k = split(line, f, "\t")
  if (k < 10) return 0
  sname = f[1]; for (i = 2; i <= k - 9; i++) sname = sname "\t" f[i]
  sfile = f[k - 8] ~ /^8[0-9a-f][0-9a-f][0-9a-f]$/
  smt = f[k - 1]; sct = f[k]
  skey = f[k - 3] "\t" f[k - 2] "\t" f[k - 4] "\t" smt "\t" sct
  return 1
}
function fresh(key, mt, ct, t0) { return ts(t0) && lt(mt, t0) && lt(ct, t0) }
mode == "check" && NR == 1 && statline($0) && sname == "/dev/stdin" { if (on) clock = sct; next }
mode == "check" {
  print
  if (statline($0) && sfile) { n++; name[n] = sname; key[n] = skey; mt[n] = smt; ct[n] = sct }
  next
}
mode == "store" && part == 0 {
  if ($0 == "#hashes") part = 1
  else if (statline($0) && sfile) { key[sname] = skey; mt[sname] = smt; ct[sname] = sct }
  next
}
mode == "store" && part == 1 {
  if ($0 ~ /^#misses /) { clock = substr($0, 9); part = 2 } else hit[substr($0, 67)] = 1
  next
}
mode == "store" && part == 2 { if ($0 == "#sums") part = 3; next }
mode == "store" && part == 3 {
  p = substr($0, 67); h = tolower(substr($0, 1, 64)); sep = substr($0, 65, 2)
  if ((sep == " *" || sep == "  ") && (p in key) && !(p in hit) && !(p in new) && h ~ /^[0-9a-f]+$/ && length(h) == 64 && fresh(key[p], mt[p], ct[p], clock)) {
    new[p] = key[p] "\t" clock "\t" h; norder[++nn] = p
  }
  next
}
END {
  if (mode == "check") {
    if (n > 0) load()
    print "#hashes"
    for (i = 1; i <= n; i++) {
      p = name[i]
      if ((p in ekey) && ekey[p] == key[i] && fresh(key[i], mt[i], ct[i], et0[p])) print esum[p] " *" p
      else miss[++m] = p
    }
    print "#misses " (clock == "" ? "-" : clock)
    for (i = 1; i <= m; i++) print miss[i]
    exit 0
  }
  if (nn == 0) exit 1
  load()
  print "ezctl-hashes 1" > out
  w = 0
  for (i = 1; i <= nn; i++) { p = norder[i]; print new[p] "\t" p > out; w++ }
  for (p in hit) if (p in ekey) { print ekey[p] "\t" et0[p] "\t" esum[p] "\t" p > out; w++ }
  for (i = 1; i <= ne && w < max + 0; i++) {
    p = eorder[i]
    if (!(p in key)) { print ekey[p] "\t" et0[p] "\t" esum[p] "\t" p > out; w++ }
  }
  print "#end " w > out
  if (close(out) != 0) exit 2
  exit 0
}
"##;

/// The line between the stat lines (which always hold tabs) and the hashes.
const HASHES: &str = "#hashes";

/// Whether the batched script fits: it needs names without a newline or a
/// backslash, and absolute ones, so no name can look like its `#hashes` or
/// `#misses` marker lines.
fn batched(paths: &[String]) -> bool {
    !paths
        .iter()
        .any(|p| p.contains('\n') || p.contains('\\') || !p.starts_with('/'))
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

/// `name TAB rawmode(hex) TAB mode TAB owner TAB group TAB size TAB device
/// TAB inode TAB mtime TAB ctime` per path that exists, the `#hashes` line,
/// then `HEX *name` (openssl and the cache) or `HEX  name` (sha256sum) per
/// regular file.
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
        // The cache key's fields (device, inode, times) are the awk's.
        let mut f = line.rsplitn(10, '\t').skip(4);
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
    use std::path::Path;

    /// The cache key's fields of a stat line, which the parser skips.
    const K: &str = "\t1\t2\t3.000000000\t4.000000000";
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
            "/b\t41ed\t755\troot\troot\t4096{K}\n/c d\t8180\t600\tu\tg\t0{K}\n/e\t21b6\t666\troot\troot\t0{K}\n#hashes\n{EMPTY} */c d\n"
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
        let out = format!("/x *y\t81a4\t644\tr\tr\t0{K}\n#hashes\n{EMPTY}  /x *y\n");
        let m = parse(&paths, &out).unwrap();
        assert_eq!(m["/x *y"].as_ref().unwrap().sha256.as_deref(), Some(EMPTY));
    }

    #[test]
    fn a_regular_file_without_a_hash_is_an_error() {
        let paths = vec!["/a".to_string()];
        let err = parse(&paths, &format!("/a\t81a4\t644\tr\tr\t3{K}\n#hashes\n")).unwrap_err();
        assert!(err.contains("/a") && err.contains("sha256"), "{err}");
        assert!(
            parse(&paths, "/a\t81a4\t644\tr\tr\t3\n").is_err(),
            "no hash section"
        );
    }

    /// Runs the script with `path_env` as PATH; returns its output.
    fn run_script(paths: &[String], path_env: &std::ffi::OsStr, cache: &Path) -> String {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script(paths))
            .env("PATH", path_env)
            .env("EZCTL_HASH_CACHE", cache)
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
        // Whatever this machine has (openssl on a stock Debian); twice, so
        // the second run may answer from the cache.
        let cache = dir.path().join("cache/hashes");
        let path_env = std::env::var_os("PATH").unwrap_or_default();
        for _ in 0..2 {
            check(&run_script(&paths, &path_env, &cache));
            check_odd(&run_script(&odd_paths, &path_env, &cache));
        }
        // Without openssl: only the coreutils the fallback needs.
        let bin = tempfile::tempdir().unwrap();
        for tool in ["stat", "sha256sum", "awk", "mkdir", "mv", "rm"] {
            let real = ["/usr/bin", "/bin"]
                .iter()
                .map(|d| std::path::Path::new(d).join(tool))
                .find(|p| p.exists())
                .unwrap();
            std::os::unix::fs::symlink(real, bin.path().join(tool)).unwrap();
        }
        let cache = dir.path().join("cache2/hashes");
        for _ in 0..2 {
            check(&run_script(&paths, bin.path().as_os_str(), &cache));
            check_odd(&run_script(&odd_paths, bin.path().as_os_str(), &cache));
        }
    }

    #[test]
    fn the_awk_program_fits_in_single_quotes() {
        assert!(!CACHE_AWK.contains('\''));
    }

    /// A host for the cache tests: a directory, its own cache file, and an
    /// `openssl` on PATH that logs every file it is asked to hash, so a
    /// test sees which files were read.
    struct Host {
        dir: tempfile::TempDir,
        cache: std::path::PathBuf,
        log: std::path::PathBuf,
        t: crate::transport::LocalTransport,
    }

    fn host() -> Host {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let log = dir.path().join("hashed.log");
        let real = ["/usr/bin/openssl", "/bin/openssl"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("openssl on this machine");
        let shim = bin.join("openssl");
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\" >> '{}'; done\nexec {real} \"$@\"\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cache = dir.path().join("var/cache/ezctl/file-hashes");
        let path = format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let t = crate::transport::LocalTransport::new("h")
            .with_env("PATH", path)
            .with_env("EZCTL_HASH_CACHE", cache.display().to_string());
        Host { dir, cache, log, t }
    }

    impl Host {
        fn file(&self, name: &str, content: &[u8]) -> String {
            let p = self.dir.path().join(name);
            std::fs::write(&p, content).unwrap();
            p.display().to_string()
        }

        /// The files hashed so far (not answered from the cache).
        fn hashed(&self) -> Vec<String> {
            let root = self.dir.path().display().to_string();
            std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with(&root))
                .map(str::to_string)
                .collect()
        }

        fn times_hashed(&self, path: &str) -> usize {
            self.hashed().iter().filter(|h| *h == path).count()
        }

        async fn sums(&self, paths: &[&String]) -> Vec<Option<String>> {
            use crate::transport::Transport;
            let paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
            let m = self.t.stat_many(&paths).await.unwrap();
            paths
                .iter()
                .map(|p| m[p].as_ref().and_then(|s| s.sha256.clone()))
                .collect()
        }
    }

    fn sha(b: &[u8]) -> Option<String> {
        Some(crate::modules::files::sha256_bytes(b))
    }

    /// The filesystem clock moves in ticks (a jiffy, at most 10 ms): a file
    /// written in the same tick as a check is racy and, rightly, not cached.
    /// The tests that need an entry cached wait out the tick.
    async fn next_tick() {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }

    #[tokio::test]
    async fn a_second_check_answers_an_unchanged_file_from_the_cache() {
        use std::os::unix::fs::PermissionsExt;
        let h = host();
        let a = h.file("a", b"alpha");
        let b = h.file("b b", b"beta");
        next_tick().await;
        assert_eq!(h.sums(&[&a, &b]).await, vec![sha(b"alpha"), sha(b"beta")]);
        assert_eq!(
            h.hashed(),
            vec![a.clone(), b.clone()],
            "a cold check hashes"
        );
        let mode = std::fs::metadata(&h.cache).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the cache is root's alone");
        assert_eq!(h.sums(&[&a, &b]).await, vec![sha(b"alpha"), sha(b"beta")]);
        assert_eq!(h.hashed().len(), 2, "the warm check read no file");
        // A changed file is hashed, the other one still is not.
        next_tick().await;
        std::fs::write(&b, b"BETA, longer").unwrap();
        assert_eq!(
            h.sums(&[&a, &b]).await,
            vec![sha(b"alpha"), sha(b"BETA, longer")]
        );
        assert_eq!((h.times_hashed(&a), h.times_hashed(&b)), (1, 2));
        // Removed and made a directory: no stale answer.
        std::fs::remove_file(&b).unwrap();
        assert_eq!(h.sums(&[&a, &b]).await, vec![sha(b"alpha"), None]);
        std::fs::create_dir(&b).unwrap();
        assert_eq!(h.sums(&[&a, &b]).await, vec![sha(b"alpha"), None]);
        assert_eq!(h.times_hashed(&a), 1);
    }

    /// The key holds ctime and inode because an edit can keep size and
    /// mtime (`touch -d`, `cp -p`, `rsync -t`, a tar extract).
    #[tokio::test]
    async fn an_edit_keeping_size_and_mtime_is_seen() {
        let h = host();
        let old = std::time::UNIX_EPOCH + std::time::Duration::new(1_500_000_000, 123_456_789);
        let a = h.file("a", b"aaaa");
        let set_mtime = |p: &str| {
            std::fs::File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(old)
                .unwrap()
        };
        set_mtime(&a);
        next_tick().await;
        assert_eq!(h.sums(&[&a]).await, vec![sha(b"aaaa")]);
        assert_eq!(h.sums(&[&a]).await, vec![sha(b"aaaa")]);
        assert_eq!(h.times_hashed(&a), 1, "cached");
        // Same inode, same size, mtime put back: only the ctime moved.
        std::fs::write(&a, b"bbbb").unwrap();
        set_mtime(&a);
        assert_eq!(h.sums(&[&a]).await, vec![sha(b"bbbb")]);
        assert_eq!(h.times_hashed(&a), 2);
        // Replaced by another file (a new inode) of the same size and mtime.
        // (Cached now if the last check found it racy, then answered.)
        next_tick().await;
        assert_eq!(h.sums(&[&a]).await, vec![sha(b"bbbb")]);
        let before = h.times_hashed(&a);
        assert_eq!(h.sums(&[&a]).await, vec![sha(b"bbbb")]);
        assert_eq!(h.times_hashed(&a), before, "cached again");
        let tmp = h.file("a.new", b"cccc");
        set_mtime(&tmp);
        std::fs::rename(&tmp, &a).unwrap();
        assert_eq!(h.sums(&[&a]).await, vec![sha(b"cccc")]);
        assert_eq!(h.times_hashed(&a), before + 1);
    }

    /// A file whose times are not older than the check's clock may still
    /// change without its times moving (same tick): it is never cached.
    #[tokio::test]
    async fn a_racy_file_is_hashed_on_every_check() {
        let h = host();
        let a = h.file("a", b"racy");
        let future = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&a)
            .unwrap()
            .set_modified(future)
            .unwrap();
        let b = h.file("b", b"calm");
        next_tick().await;
        for _ in 0..3 {
            assert_eq!(h.sums(&[&a, &b]).await, vec![sha(b"racy"), sha(b"calm")]);
        }
        assert_eq!((h.times_hashed(&a), h.times_hashed(&b)), (3, 1));
        let cache = std::fs::read_to_string(&h.cache).unwrap();
        assert!(!cache.contains(&format!("\t{a}\n")), "{cache}");
    }

    /// Runs [`CACHE_AWK`] alone on `input`, with the given variables.
    fn awk(vars: &[(&str, &str)], input: &str) -> (i32, String) {
        use std::io::Write;
        let mut cmd = std::process::Command::new("awk");
        for (k, v) in vars {
            cmd.arg("-v").arg(format!("{k}={v}"));
        }
        let mut child = cmd
            .arg(CACHE_AWK)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8(out.stdout).unwrap(),
        )
    }

    /// The racy rule at its edge, with made-up times (a real file cannot be
    /// placed in a given tick): an entry answers only when the file's mtime
    /// and ctime are strictly older than the clock it was hashed at, to the
    /// nanosecond, across a second boundary too; a fresh hash is stored
    /// only under the same rule.
    #[test]
    fn the_racy_rule_holds_to_the_nanosecond() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("c");
        let hash = "ab".repeat(32);
        let stat =
            |mt: &str, ct: &str| format!("/f\t81a4\t644\troot\troot\t3\t2049\t77\t{mt}\t{ct}");
        let clock = "/dev/stdin\t11b6\t600\troot\troot\t0\t14\t9\t5.000000000\t5.000000000";
        let answered = |mt: &str, ct: &str, t0: &str| {
            std::fs::write(
                &cache,
                format!("ezctl-hashes 1\n2049\t77\t3\t{mt}\t{ct}\t{t0}\t{hash}\t/f\n#end 1\n"),
            )
            .unwrap();
            let (code, out) = awk(
                &[
                    ("mode", "check"),
                    ("on", "1"),
                    ("cache", cache.to_str().unwrap()),
                ],
                &format!("{clock}\n{}\n", stat(mt, ct)),
            );
            assert_eq!(code, 0);
            assert!(
                out.starts_with(&format!("{}\n#hashes\n", stat(mt, ct))),
                "{out}"
            );
            assert!(
                out.ends_with("#misses 5.000000000\n/f\n")
                    || out.ends_with("#misses 5.000000000\n"),
                "{out}"
            );
            out.contains(&format!("{hash} */f\n"))
        };
        assert!(answered("100.000000000", "100.000000004", "100.000000005"));
        assert!(
            !answered("100.000000000", "100.000000004", "100.000000004"),
            "ctime == clock"
        );
        assert!(
            !answered("100.000000005", "100.000000004", "100.000000005"),
            "mtime == clock"
        );
        assert!(
            !answered("100.000000006", "100.000000004", "100.000000005"),
            "mtime after"
        );
        assert!(answered("100.999999999", "100.999999999", "101.000000000"));
        assert!(!answered("101.000000000", "100.999999999", "101.000000000"));
        assert!(
            answered("99.000000000", "99.500000000", "100.000000000"),
            "shorter seconds"
        );

        let stored = |ct: &str, clock: &str| {
            let out = dir.path().join("new");
            let _ = std::fs::remove_file(&out);
            let (code, _) = awk(
                &[
                    ("mode", "store"),
                    ("cache", ""),
                    ("out", out.to_str().unwrap()),
                    ("max", "10"),
                ],
                &format!(
                    "{}\n#hashes\n#misses {clock}\n/f\n#sums\n{hash} */f\n",
                    stat("100.000000000", ct)
                ),
            );
            let text = std::fs::read_to_string(&out).unwrap_or_default();
            (code, text)
        };
        let (code, text) = stored("100.000000004", "100.000000004");
        assert_eq!((code, text.as_str()), (1, ""), "racy: nothing stored");
        let (code, text) = stored("100.000000004", "100.000000005");
        assert_eq!(code, 0);
        assert_eq!(
            text,
            format!("ezctl-hashes 1\n2049\t77\t3\t100.000000000\t100.000000004\t100.000000005\t{hash}\t/f\n#end 1\n")
        );
        let (code, _) = stored("100.000000004", "-");
        assert_eq!(code, 1, "no clock, no cache");
    }

    /// Whatever is at the cache's path, the answer is the file's real hash:
    /// the cache below claims a wrong hash under the file's right key, and
    /// it is believed only when the file is whole and well formed.
    #[tokio::test]
    async fn a_corrupt_or_missing_cache_only_costs_hashing() {
        let h = host();
        let a = h.file("a", b"true content");
        next_tick().await;
        assert_eq!(h.sums(&[&a]).await, vec![sha(b"true content")]);
        let good = std::fs::read_to_string(&h.cache).unwrap();
        let real = sha(b"true content").unwrap();
        let lie = sha(b"a lie").unwrap();
        assert!(good.contains(&real), "{good}");
        let lying = good.replace(&real, &lie);
        // The control: whole and well formed, the lie is believed (so the
        // cases below would fail if they were not refused).
        std::fs::write(&h.cache, &lying).unwrap();
        assert_eq!(h.sums(&[&a]).await, vec![Some(lie.clone())]);
        let entry = lying.lines().nth(1).unwrap().to_string();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "truncated: no footer",
                lying.replace("#end 1\n", "").into_bytes(),
            ),
            (
                "cut inside the footer",
                lying.as_bytes()[..lying.len() - 3].to_vec(),
            ),
            (
                "wrong count",
                lying.replace("#end 1", "#end 2").into_bytes(),
            ),
            (
                "a garbage line",
                lying.replace("#end 1", "garbage\n#end 1").into_bytes(),
            ),
            (
                "a repeated entry",
                lying
                    .replace("#end 1", &format!("{entry}\n#end 2"))
                    .into_bytes(),
            ),
            ("a short hash", lying.replace(&lie, &lie[..63]).into_bytes()),
            (
                "wrong version",
                lying
                    .replace("ezctl-hashes 1", "ezctl-hashes 2")
                    .into_bytes(),
            ),
            (
                "no header",
                lying
                    .lines()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join("\n")
                    .into_bytes(),
            ),
            ("binary", vec![0u8, 0xff, b'\n', 0x80, 0]),
            ("empty", Vec::new()),
        ];
        let mut hashes = h.times_hashed(&a);
        for (what, bytes) in cases {
            std::fs::write(&h.cache, &bytes).unwrap();
            assert_eq!(h.sums(&[&a]).await, vec![Some(real.clone())], "{what}");
            hashes += 1;
            assert_eq!(h.times_hashed(&a), hashes, "{what}: hashed");
            // Rewritten whole: the next check is answered by it.
            assert_eq!(h.sums(&[&a]).await, vec![Some(real.clone())], "{what}");
            assert_eq!(h.times_hashed(&a), hashes, "{what}: healed");
        }
        // Missing, a directory, or an unwritable place: hashed every time.
        std::fs::remove_file(&h.cache).unwrap();
        assert_eq!(h.sums(&[&a]).await, vec![Some(real.clone())]);
        std::fs::remove_file(&h.cache).unwrap();
        std::fs::create_dir(&h.cache).unwrap();
        for _ in 0..2 {
            assert_eq!(h.sums(&[&a]).await, vec![Some(real.clone())]);
        }
        assert_eq!(h.times_hashed(&a), hashes + 3);
        assert_eq!(
            std::fs::read_dir(&h.cache).unwrap().count(),
            0,
            "nothing moved into it"
        );
        let leftovers: Vec<_> = std::fs::read_dir(h.cache.parent().unwrap())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(leftovers, vec![h.cache.file_name().unwrap().to_owned()]);
    }

    /// Units of one host check at the same time: the cache must stay whole
    /// (a lost entry is allowed, a broken file is not), and every answer
    /// right.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_checks_keep_the_cache_whole() {
        let h = std::sync::Arc::new(host());
        let files: Vec<String> = (0..8)
            .map(|i| h.file(&format!("f{i}"), format!("content {i}").as_bytes()))
            .collect();
        next_tick().await;
        for _round in 0..3 {
            let tasks: Vec<_> = files
                .iter()
                .enumerate()
                .map(|(i, f)| {
                    let (h, f) = (h.clone(), f.clone());
                    tokio::spawn(async move {
                        let got = h.sums(&[&f]).await;
                        assert_eq!(got, vec![sha(format!("content {i}").as_bytes())]);
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            let text = std::fs::read_to_string(&h.cache).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            assert_eq!(lines.first(), Some(&"ezctl-hashes 1"), "{text}");
            assert_eq!(
                lines.last().copied(),
                Some(format!("#end {}", lines.len() - 2).as_str()),
                "{text}"
            );
        }
        let names: Vec<_> = std::fs::read_dir(h.cache.parent().unwrap())
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
    }

    #[test]
    fn line_count_mismatch_is_an_error() {
        assert!(parse(&["/a".to_string()], "").is_err());
    }
}
