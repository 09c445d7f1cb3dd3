//! Container images without Docker: a directory tree becomes a one-layer
//! image in the docker-archive format (what `docker save` writes), which
//! `ctr images import` and `skopeo copy docker-archive:...` read.
//!
//! The archive is a function of the tree's names, contents, permission bits,
//! symlink targets, hard links and the given config only: entries are sorted
//! by name, every mtime is 0, every owner is 0:0, JSON keys come in a fixed
//! order. Building the same tree twice gives the same bytes, so the same
//! image id and layer digest, and an upload of an unchanged image is a no-op
//! (see `build`: an identical file on disk is not even rewritten).
//!
//! Layout written:
//!
//! ```text
//! <layer hex>/layer.tar    the uncompressed layer (its sha256 is the diff id)
//! <config hex>.json        image config: os, architecture, rootfs.diff_ids, Entrypoint, ...
//! manifest.json            [{"Config": ..., "RepoTags": [...], "Layers": [...]}]
//! ```

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::image_tar::{Entry, EntryKind, TarWriter};

/// The one timestamp every entry and the config carry.
pub const EPOCH: &str = "1970-01-01T00:00:00Z";

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid image reference {reference:?}: {reason}")]
    Reference {
        reference: String,
        reason: &'static str,
    },
    #[error("{path}: a {kind} cannot go into an image layer here (only files, directories and symlinks)")]
    Unsupported { path: PathBuf, kind: &'static str },
    #[error("unknown capability {0:?} (e.g. cap_net_bind_service)")]
    Capability(String),
    #[error("--file-cap names {0:?}, which is not a regular file in the tree")]
    CapPath(String),
    #[error("{0:?} is not a directory")]
    NotADirectory(PathBuf),
    #[error("encoding the image JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ImageError + '_ {
    move |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What goes into the image config besides the layer.
#[derive(Debug, Clone, Default)]
pub struct ImageConfig {
    /// `name:tag` references (`RepoTags`); at least one.
    pub repo_tags: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `uid[:gid]` or a name from the image's /etc/passwd.
    pub user: Option<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    /// `53/udp`, `8080/tcp`, `9153` (tcp).
    pub exposed_ports: Vec<String>,
    pub labels: BTreeMap<String, String>,
    /// Docker's names: amd64, arm64, ...
    pub architecture: String,
    pub os: String,
    /// Layer path (relative, e.g. `coredns`) -> capabilities given to it as
    /// effective + permitted file capabilities.
    pub file_caps: BTreeMap<String, Vec<String>>,
}

impl ImageConfig {
    /// A config for this machine's architecture, Linux.
    pub fn new(repo_tags: Vec<String>) -> Self {
        ImageConfig {
            repo_tags,
            architecture: host_architecture().to_string(),
            os: "linux".into(),
            ..Default::default()
        }
    }
}

/// Docker's name for the architecture this program runs on.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// What `build` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    /// `sha256:<hex>` of the config: the image id `ctr`/`docker` show.
    pub image_id: String,
    /// `sha256:<hex>` of the uncompressed layer.
    pub diff_id: String,
    pub layer_bytes: u64,
    pub archive_bytes: u64,
    /// Layer members (directories, files, links).
    pub entries: usize,
    /// False when the output already held exactly these bytes.
    pub written: bool,
}

/// Builds the archive for `root` and writes it to `out` (atomically, and
/// only when its bytes differ from what is there).
pub fn build(root: &Path, config: &ImageConfig, out: &Path) -> Result<Built, ImageError> {
    let (archive, mut built) = archive_bytes(root, config)?;
    let same = std::fs::read(out).is_ok_and(|old| old == archive);
    if !same {
        if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        let tmp = out.with_extension("tmp");
        std::fs::write(&tmp, &archive).map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, out).map_err(io_err(out))?;
    }
    built.written = !same;
    Ok(built)
}

/// The archive's bytes and what they hold (`written` is false).
pub fn archive_bytes(root: &Path, config: &ImageConfig) -> Result<(Vec<u8>, Built), ImageError> {
    if config.repo_tags.is_empty() {
        return Err(ImageError::Invalid {
            what: "image",
            value: String::new(),
            reason: "needs at least one name:tag",
        });
    }
    for r in &config.repo_tags {
        validate_reference(r)?;
    }
    let caps = config
        .file_caps
        .iter()
        .map(|(p, names)| {
            Ok((
                p.trim_start_matches('/').to_string(),
                capability_xattr(names)?,
            ))
        })
        .collect::<Result<BTreeMap<_, _>, ImageError>>()?;
    let (layer, entries) = layer_from_dir(root, &caps)?;
    let diff_hex = hex::encode(Sha256::digest(&layer));
    let config_json = config_json(config, &diff_hex)?;
    let config_hex = hex::encode(Sha256::digest(&config_json));
    let layer_path = format!("{diff_hex}/layer.tar");
    let config_path = format!("{config_hex}.json");
    let manifest = serde_json::to_vec(&[Manifest {
        config: &config_path,
        repo_tags: &config.repo_tags,
        layers: vec![&layer_path],
    }])?;

    let mut w = TarWriter::new(Vec::new());
    let member = |path: &str, kind: EntryKind, mode: u32| Entry {
        path: path.to_string(),
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: 0,
        xattrs: vec![],
    };
    let tar_err = |e| ImageError::Io {
        path: PathBuf::from("<archive>"),
        source: e,
    };
    w.append(&member(&diff_hex, EntryKind::Dir, 0o755), &[])
        .map_err(tar_err)?;
    w.append(&member(&layer_path, EntryKind::File, 0o644), &layer)
        .map_err(tar_err)?;
    w.append(&member(&config_path, EntryKind::File, 0o644), &config_json)
        .map_err(tar_err)?;
    w.append(&member("manifest.json", EntryKind::File, 0o644), &manifest)
        .map_err(tar_err)?;
    let archive = w.finish().map_err(tar_err)?;
    let built = Built {
        image_id: format!("sha256:{config_hex}"),
        diff_id: format!("sha256:{diff_hex}"),
        layer_bytes: layer.len() as u64,
        archive_bytes: archive.len() as u64,
        entries,
        written: false,
    };
    Ok((archive, built))
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Manifest<'a> {
    config: &'a str,
    repo_tags: &'a [String],
    layers: Vec<&'a str>,
}

#[derive(Serialize)]
struct ConfigFile<'a> {
    architecture: &'a str,
    os: &'a str,
    created: &'a str,
    config: RunConfig<'a>,
    rootfs: RootFs,
    history: [History; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RunConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    exposed_ports: BTreeMap<String, Empty>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    env: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    entrypoint: &'a [String],
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    cmd: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    working_dir: Option<&'a str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Empty {}

#[derive(Serialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: [String; 1],
}

#[derive(Serialize)]
struct History {
    created: &'static str,
    created_by: &'static str,
}

fn config_json(c: &ImageConfig, diff_hex: &str) -> Result<Vec<u8>, ImageError> {
    for e in &c.env {
        if !e.contains('=') || e.starts_with('=') {
            return Err(ImageError::Invalid {
                what: "env",
                value: e.clone(),
                reason: "expected KEY=value",
            });
        }
    }
    let mut ports = BTreeMap::new();
    for p in &c.exposed_ports {
        let (num, proto) = p.split_once('/').unwrap_or((p, "tcp"));
        if num.parse::<u16>().map_or(true, |n| n == 0) || !matches!(proto, "tcp" | "udp" | "sctp") {
            return Err(ImageError::Invalid {
                what: "port",
                value: p.clone(),
                reason: "expected PORT[/tcp|udp|sctp]",
            });
        }
        ports.insert(format!("{num}/{proto}"), Empty {});
    }
    let file = ConfigFile {
        architecture: &c.architecture,
        os: &c.os,
        created: EPOCH,
        config: RunConfig {
            user: c.user.as_deref(),
            exposed_ports: ports,
            env: &c.env,
            entrypoint: &c.entrypoint,
            cmd: &c.cmd,
            working_dir: c.working_dir.as_deref(),
            labels: &c.labels,
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: [format!("sha256:{diff_hex}")],
        },
        history: [History {
            created: EPOCH,
            created_by: "ezlab image build",
        }],
    };
    Ok(serde_json::to_vec(&file)?)
}

/// The layer tar of `root`'s contents (not `root` itself) and its number
/// of entries. `caps` maps layer paths to `security.capability` values.
pub fn layer_from_dir(
    root: &Path,
    caps: &BTreeMap<String, Vec<u8>>,
) -> Result<(Vec<u8>, usize), ImageError> {
    let meta = std::fs::metadata(root).map_err(io_err(root))?;
    if !meta.is_dir() {
        return Err(ImageError::NotADirectory(root.to_path_buf()));
    }
    let mut walk = Walk {
        w: TarWriter::new(Vec::new()),
        links: HashMap::new(),
        caps,
        capped: Vec::new(),
        entries: 0,
    };
    walk.dir(root, "")?;
    for path in caps.keys() {
        if !walk.capped.contains(path) {
            return Err(ImageError::CapPath(path.clone()));
        }
    }
    let entries = walk.entries;
    let layer = walk.w.finish().map_err(io_err(root))?;
    Ok((layer, entries))
}

struct Walk<'a> {
    w: TarWriter<Vec<u8>>,
    /// (dev, ino) of files with several links -> first tar path.
    links: HashMap<(u64, u64), String>,
    caps: &'a BTreeMap<String, Vec<u8>>,
    capped: Vec<String>,
    entries: usize,
}

impl Walk<'_> {
    fn dir(&mut self, dir: &Path, prefix: &str) -> Result<(), ImageError> {
        let mut children = std::fs::read_dir(dir)
            .map_err(io_err(dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io_err(dir))?;
        // Byte order of names: the same on every machine and locale.
        children.sort();
        for name in children {
            let path = dir.join(&name);
            let Some(name) = name.to_str() else {
                return Err(ImageError::Invalid {
                    what: "file name",
                    value: path.display().to_string(),
                    reason: "not UTF-8",
                });
            };
            let tar_path = format!("{prefix}{name}");
            let meta = std::fs::symlink_metadata(&path).map_err(io_err(&path))?;
            let ft = meta.file_type();
            let mut entry = Entry {
                path: tar_path.clone(),
                kind: EntryKind::File,
                mode: meta.mode() & 0o7777,
                uid: 0,
                gid: 0,
                mtime: 0,
                xattrs: vec![],
            };
            let mut data = Vec::new();
            if ft.is_dir() {
                entry.kind = EntryKind::Dir;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path).map_err(io_err(&path))?;
                let target = target.to_str().ok_or_else(|| ImageError::Invalid {
                    what: "symlink target",
                    value: path.display().to_string(),
                    reason: "not UTF-8",
                })?;
                entry.kind = EntryKind::Symlink(target.to_string());
                // Symlink permissions mean nothing on Linux; fix them.
                entry.mode = 0o777;
            } else if ft.is_file() {
                let first = if meta.nlink() > 1 {
                    self.links
                        .get(&(meta.dev(), meta.ino()))
                        .cloned()
                        .or_else(|| {
                            self.links
                                .insert((meta.dev(), meta.ino()), tar_path.clone());
                            None
                        })
                } else {
                    None
                };
                match first {
                    Some(target) => entry.kind = EntryKind::HardLink(target),
                    None => data = std::fs::read(&path).map_err(io_err(&path))?,
                }
                if let Some(cap) = self.caps.get(&tar_path) {
                    entry
                        .xattrs
                        .push(("security.capability".into(), cap.clone()));
                    self.capped.push(tar_path.clone());
                }
            } else {
                use std::os::unix::fs::FileTypeExt;
                let kind = if ft.is_fifo() {
                    "fifo"
                } else if ft.is_socket() {
                    "socket"
                } else {
                    "device"
                };
                return Err(ImageError::Unsupported { path, kind });
            }
            self.w.append(&entry, &data).map_err(io_err(&path))?;
            self.entries += 1;
            if ft.is_dir() {
                self.dir(&path, &format!("{tar_path}/"))?;
            }
        }
        Ok(())
    }
}

/// Linux capability numbers (include/uapi/linux/capability.h).
const CAPABILITIES: [&str; 41] = [
    "chown",
    "dac_override",
    "dac_read_search",
    "fowner",
    "fsetid",
    "kill",
    "setgid",
    "setuid",
    "setpcap",
    "linux_immutable",
    "net_bind_service",
    "net_broadcast",
    "net_admin",
    "net_raw",
    "ipc_lock",
    "ipc_owner",
    "sys_module",
    "sys_rawio",
    "sys_chroot",
    "sys_ptrace",
    "sys_pacct",
    "sys_admin",
    "sys_boot",
    "sys_nice",
    "sys_resource",
    "sys_time",
    "sys_tty_config",
    "mknod",
    "lease",
    "audit_write",
    "audit_control",
    "setfcap",
    "mac_override",
    "mac_admin",
    "syslog",
    "wake_alarm",
    "block_suspend",
    "audit_read",
    "perfmon",
    "bpf",
    "checkpoint_restore",
];

/// The `security.capability` xattr value (struct vfs_cap_data, revision 2)
/// giving `names` as permitted and effective file capabilities, like
/// `setcap cap_x,cap_y=+ep`.
pub fn capability_xattr(names: &[String]) -> Result<Vec<u8>, ImageError> {
    const VFS_CAP_REVISION_2: u32 = 0x0200_0000;
    const VFS_CAP_FLAGS_EFFECTIVE: u32 = 0x1;
    let mut permitted: u64 = 0;
    for n in names {
        let short = n.to_ascii_lowercase();
        let short = short.strip_prefix("cap_").unwrap_or(&short);
        let bit = CAPABILITIES
            .iter()
            .position(|c| *c == short)
            .ok_or_else(|| ImageError::Capability(n.clone()))?;
        permitted |= 1 << bit;
    }
    if permitted == 0 {
        return Err(ImageError::Capability(String::new()));
    }
    let mut v = Vec::with_capacity(20);
    v.extend_from_slice(&(VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE).to_le_bytes());
    // data[0] and data[1]: permitted then inheritable, low and high 32 bits.
    v.extend_from_slice(&(permitted as u32).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&((permitted >> 32) as u32).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    Ok(v)
}

/// Checks a `name:tag` reference the way the docker reference grammar does
/// (simplified: no digests, which RepoTags cannot hold).
pub fn validate_reference(r: &str) -> Result<(), ImageError> {
    let bad = |reason| {
        Err(ImageError::Reference {
            reference: r.to_string(),
            reason,
        })
    };
    if r.contains('@') {
        return bad("digests cannot be image names here; use name:tag");
    }
    let slash = r.rfind('/').map_or(0, |i| i + 1);
    let Some(colon) = r[slash..].rfind(':').map(|i| slash + i) else {
        return bad("no tag (expected name:tag)");
    };
    let (name, tag) = (&r[..colon], &r[colon + 1..]);
    let tag_ok = !tag.is_empty()
        && tag.len() <= 128
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        && !tag.starts_with(['.', '-']);
    if !tag_ok {
        return bad("tag must be 1-128 of [A-Za-z0-9_.-], not starting with . or -");
    }
    if name.is_empty() || name.len() > 255 {
        return bad("name must be 1-255 characters");
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    let first = parts[0];
    if parts.len() > 1 && (first.contains(['.', ':']) || first == "localhost") {
        let (host, port) = first.split_once(':').unwrap_or((first, ""));
        let host_ok = !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !host_ok || (!port.is_empty() && port.parse::<u16>().is_err()) {
            return bad("invalid registry host[:port]");
        }
        parts.remove(0);
    }
    for p in parts {
        let ok = !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
            && p.as_bytes()[0].is_ascii_alphanumeric()
            && p.as_bytes()[p.len() - 1].is_ascii_alphanumeric();
        if !ok {
            return bad("path components are lower-case letters and digits separated by . _ or -");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;

    /// A member of a tar read back with the `tar` crate (an independent
    /// reader): path, type, mode, uid, gid, mtime, link target, xattrs, data.
    #[derive(Debug)]
    struct Member {
        path: String,
        kind: tar::EntryType,
        mode: u32,
        uid: u64,
        gid: u64,
        mtime: u64,
        link: Option<String>,
        xattrs: BTreeMap<String, Vec<u8>>,
        data: Vec<u8>,
    }

    fn read_tar(bytes: &[u8]) -> Vec<Member> {
        let mut a = tar::Archive::new(bytes);
        let mut out = Vec::new();
        for e in a.entries().expect("entries") {
            let mut e = e.expect("entry");
            let mut xattrs = BTreeMap::new();
            if let Some(pax) = e.pax_extensions().expect("pax") {
                for r in pax {
                    let r = r.expect("pax record");
                    if let Some(k) = r.key().expect("key").strip_prefix("SCHILY.xattr.") {
                        xattrs.insert(k.to_string(), r.value_bytes().to_vec());
                    }
                }
            }
            let h = e.header().clone();
            let link = e
                .link_name()
                .expect("link")
                .map(|l| l.to_string_lossy().into_owned());
            let mut data = Vec::new();
            e.read_to_end(&mut data).expect("data");
            out.push(Member {
                path: e.path().expect("path").to_string_lossy().into_owned(),
                kind: h.entry_type(),
                mode: h.mode().expect("mode"),
                uid: h.uid().expect("uid"),
                gid: h.gid().expect("gid"),
                mtime: h.mtime().expect("mtime"),
                link,
                xattrs,
                data,
            });
        }
        out
    }

    fn sample_tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        std::fs::create_dir_all(r.join("bin")).expect("bin");
        std::fs::create_dir_all(r.join("etc")).expect("etc");
        std::fs::create_dir_all(r.join("tmp")).expect("tmp");
        std::fs::set_permissions(r.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .expect("chmod tmp");
        std::fs::write(r.join("bin/busybox"), b"\x7fELF fake").expect("busybox");
        std::fs::set_permissions(
            r.join("bin/busybox"),
            std::fs::Permissions::from_mode(0o755),
        )
        .expect("chmod");
        std::os::unix::fs::symlink("busybox", r.join("bin/sh")).expect("symlink");
        std::fs::hard_link(r.join("bin/busybox"), r.join("bin/zz-hardlink")).expect("link");
        std::fs::write(r.join("etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n").expect("pw");
        std::fs::set_permissions(r.join("etc/passwd"), std::fs::Permissions::from_mode(0o644))
            .expect("chmod");
        let deep = r.join(format!("{}/{}", "d".repeat(90), "e".repeat(90)));
        std::fs::create_dir_all(&deep).expect("deep");
        std::fs::write(deep.join("f".repeat(60)), b"long").expect("long");
        std::fs::write(r.join("coredns"), b"binary").expect("coredns");
        std::fs::set_permissions(r.join("coredns"), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
        t
    }

    fn sample_config() -> ImageConfig {
        let mut c = ImageConfig::new(vec!["registry.example:5000/lab/test:v1.2.3".into()]);
        c.entrypoint = vec!["/coredns".into()];
        c.cmd = vec!["-conf".into(), "/etc/coredns/Corefile".into()];
        c.user = Some("65532:65532".into());
        c.env = vec!["PATH=/bin".into()];
        c.exposed_ports = vec!["53/udp".into(), "53".into()];
        c.file_caps
            .insert("/coredns".into(), vec!["cap_net_bind_service".into()]);
        c
    }

    #[test]
    fn archive_has_the_docker_layout_and_parses_back() {
        let tree = sample_tree();
        let (bytes, built) = archive_bytes(tree.path(), &sample_config()).expect("archive");
        let outer = read_tar(&bytes);
        let names: Vec<&str> = outer.iter().map(|m| m.path.as_str()).collect();
        let diff_hex = built.diff_id.strip_prefix("sha256:").expect("diff id");
        let config_hex = built.image_id.strip_prefix("sha256:").expect("image id");
        assert_eq!(
            names,
            [
                format!("{diff_hex}/"),
                format!("{diff_hex}/layer.tar"),
                format!("{config_hex}.json"),
                "manifest.json".to_string()
            ]
        );
        let file = |n: &str| &outer.iter().find(|m| m.path == n).expect(n).data;

        let manifest: serde_json::Value =
            serde_json::from_slice(file("manifest.json")).expect("manifest json");
        assert_eq!(
            manifest,
            serde_json::json!([{
                "Config": format!("{config_hex}.json"),
                "RepoTags": ["registry.example:5000/lab/test:v1.2.3"],
                "Layers": [format!("{diff_hex}/layer.tar")],
            }])
        );
        // Content addresses hold: names are the sha256 of what they name.
        let config_bytes = file(&format!("{config_hex}.json"));
        assert_eq!(hex::encode(Sha256::digest(config_bytes)), config_hex);
        let layer = file(&format!("{diff_hex}/layer.tar"));
        assert_eq!(hex::encode(Sha256::digest(layer)), diff_hex);

        let config: serde_json::Value = serde_json::from_slice(config_bytes).expect("config");
        assert_eq!(config["os"], "linux");
        assert_eq!(config["architecture"], host_architecture());
        assert_eq!(config["rootfs"]["type"], "layers");
        assert_eq!(
            config["rootfs"]["diff_ids"],
            serde_json::json!([built.diff_id])
        );
        assert_eq!(
            config["config"]["Entrypoint"],
            serde_json::json!(["/coredns"])
        );
        assert_eq!(
            config["config"]["Cmd"],
            serde_json::json!(["-conf", "/etc/coredns/Corefile"])
        );
        assert_eq!(config["config"]["User"], "65532:65532");
        assert_eq!(config["config"]["Env"], serde_json::json!(["PATH=/bin"]));
        assert_eq!(
            config["config"]["ExposedPorts"],
            serde_json::json!({"53/tcp": {}, "53/udp": {}})
        );
        assert_eq!(config["history"].as_array().map(Vec::len), Some(1));

        // The layer: sorted, parents first, fixed owner and time, modes kept.
        let members = read_tar(layer);
        assert_eq!(members.len(), built.entries);
        let paths: Vec<&str> = members.iter().map(|m| m.path.as_str()).collect();
        let long_dir = format!("{}/{}", "d".repeat(90), "e".repeat(90));
        let long_file = format!("{long_dir}/{}", "f".repeat(60));
        assert_eq!(
            paths,
            [
                "bin/",
                "bin/busybox",
                "bin/sh",
                "bin/zz-hardlink",
                "coredns",
                &format!("{}/", "d".repeat(90)),
                &format!("{long_dir}/"),
                &long_file,
                "etc/",
                "etc/passwd",
                "tmp/",
            ]
        );
        for m in &members {
            assert_eq!((m.uid, m.gid, m.mtime), (0, 0, 0), "{}", m.path);
        }
        let get = |p: &str| members.iter().find(|m| m.path == p).expect(p);
        assert_eq!(get("tmp/").mode, 0o1777);
        assert_eq!(get("tmp/").kind, tar::EntryType::Directory);
        assert_eq!(get("etc/passwd").mode, 0o644);
        assert_eq!(get("bin/busybox").data, b"\x7fELF fake");
        assert_eq!(get("bin/sh").kind, tar::EntryType::Symlink);
        assert_eq!(get("bin/sh").link.as_deref(), Some("busybox"));
        assert_eq!(get("bin/zz-hardlink").kind, tar::EntryType::Link);
        assert_eq!(get("bin/zz-hardlink").link.as_deref(), Some("bin/busybox"));
        assert_eq!(get(&long_file).data, b"long");
        // cap_net_bind_service (bit 10) permitted + effective, revision 2.
        let cap = &get("coredns").xattrs["security.capability"];
        assert_eq!(
            cap.as_slice(),
            [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert!(get("bin/busybox").xattrs.is_empty());
    }

    #[test]
    fn a_rebuild_is_byte_identical_and_a_content_change_is_not() {
        let tree = sample_tree();
        let dir = tempfile::tempdir().expect("out");
        let out = dir.path().join("img.tar");
        let first = build(tree.path(), &sample_config(), &out).expect("first");
        assert!(first.written);
        let bytes = std::fs::read(&out).expect("read");
        // Times on disk change (a fresh checkout): the archive must not.
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(tree.path().join("etc/passwd"))
            .and_then(|f| f.set_modified(later))
            .expect("touch");
        let second = build(tree.path(), &sample_config(), &out).expect("second");
        assert!(!second.written, "an identical archive is not rewritten");
        assert_eq!(second.image_id, first.image_id);
        assert_eq!(std::fs::read(&out).expect("read"), bytes);

        std::fs::write(tree.path().join("etc/passwd"), b"root:x:0:0::/:/bin/sh\n").expect("w");
        let third = build(tree.path(), &sample_config(), &out).expect("third");
        assert!(third.written);
        assert_ne!(third.diff_id, first.diff_id);
        assert_ne!(third.image_id, first.image_id);
    }

    #[test]
    fn references_are_checked() {
        for ok in [
            "registry.k8s.io/pause:3.10.2",
            "registry.k8s.io/coredns/coredns:v1.14.6",
            "docker.io/library/busybox:1.35.0",
            "localhost:5000/x:y",
            "busybox:latest",
        ] {
            validate_reference(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in [
            "registry.k8s.io/pause",
            "Registry.k8s.io/Pause:1",
            "busybox:",
            "busybox:-x",
            "x@sha256:abcd",
            "a//b:1",
            "host:99999/x:1",
        ] {
            assert!(validate_reference(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn wrong_inputs_are_refused_with_a_reason() {
        let tree = sample_tree();
        let mut c = sample_config();
        c.file_caps
            .insert("/missing".into(), vec!["cap_net_bind_service".into()]);
        let e = archive_bytes(tree.path(), &c).expect_err("cap on missing file");
        assert!(e.to_string().contains("missing"), "{e}");

        let mut c = sample_config();
        c.file_caps
            .insert("/coredns".into(), vec!["cap_flying".into()]);
        assert!(archive_bytes(tree.path(), &c).is_err());

        let mut c = sample_config();
        c.env = vec!["NOEQUALS".into()];
        assert!(archive_bytes(tree.path(), &c).is_err());

        let mut c = sample_config();
        c.repo_tags.clear();
        assert!(archive_bytes(tree.path(), &c).is_err());

        let fifo = tree.path().join("fifo");
        let cpath = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("c");
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(cpath.as_ptr(), 0o644) }, 0);
        let e = archive_bytes(tree.path(), &sample_config()).expect_err("fifo");
        assert!(e.to_string().contains("fifo"), "{e}");
    }

    #[test]
    fn capability_values_match_setcap() {
        // `setcap cap_net_admin,cap_net_raw+ep` stores bits 12 and 13.
        let v = capability_xattr(&["CAP_NET_ADMIN".into(), "net_raw".into()]).expect("caps");
        assert_eq!(u32::from_le_bytes(v[4..8].try_into().expect("4")), 0x3000);
        // A bit above 31 goes to the second word.
        let v = capability_xattr(&["cap_bpf".into()]).expect("bpf");
        assert_eq!(u32::from_le_bytes(v[12..16].try_into().expect("4")), 1 << 7);
    }
}
