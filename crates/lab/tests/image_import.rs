//! Images from `ezlab image build` are accepted by the real consumers:
//! containerd (`ctr images import`, unpacked by its overlayfs snapshotter,
//! file capability included; `ctr run` through runc) and skopeo
//! (`docker-archive:` source).
//!
//! containerd runs on the controller in a temporary root with its socket in
//! a temporary directory; nothing of the host's containerd is touched. Its
//! binaries: `$EZ_CONTAINERD_DIR`, else the ones `scripts/build-components.sh`
//! builds (the version `bin/versions.toml` `[build]` pins), else Debian's
//! (`scripts/install-deps.sh`); runc likewise (`$EZ_RUNC` first). Both
//! Debian's (containerd 1.6.20, runc 1.1.5) and the built ones (2.4.2, 1.5.3)
//! were seen passing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ez_lab::{cmd, doctor, testing};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `[build] KEY = "X"` from bin/versions.toml.
fn pinned(key: &str) -> Option<String> {
    let text = std::fs::read_to_string(repo().join("bin/versions.toml")).ok()?;
    let mut in_build = false;
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_build = line == "[build]";
        } else if in_build {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().trim_matches('"').to_string());
                }
            }
        }
    }
    None
}

fn build_cache() -> PathBuf {
    std::env::var_os("EZCTL_BUILD_CACHE")
        .map_or_else(|| PathBuf::from("/var/cache/ezctl-build"), PathBuf::from)
}

/// A runc: `$EZ_RUNC`, else the built one (`[build] runc`), else Debian's.
fn runc() -> Option<PathBuf> {
    if let Some(r) = std::env::var_os("EZ_RUNC").map(PathBuf::from) {
        return r.is_file().then_some(r);
    }
    let built = pinned("runc").map(|v| build_cache().join("runc").join(v).join("runc"));
    built
        .into_iter()
        .chain([
            PathBuf::from("/usr/sbin/runc"),
            PathBuf::from("/usr/bin/runc"),
        ])
        .find(|p| p.is_file())
}

/// A directory holding `containerd` and `ctr`, and what it is.
fn containerd_dir() -> Option<(PathBuf, String)> {
    let has = |d: &Path| d.join("containerd").is_file() && d.join("ctr").is_file();
    if let Some(d) = std::env::var_os("EZ_CONTAINERD_DIR").map(PathBuf::from) {
        return has(&d).then(|| (d, "EZ_CONTAINERD_DIR".into()));
    }
    if let Some(v) = pinned("containerd") {
        let d = build_cache().join("containerd").join(&v);
        if has(&d) {
            return Some((d, format!("built containerd {v}")));
        }
    }
    let d = PathBuf::from("/usr/bin");
    has(&d).then(|| (d, "Debian's containerd".into()))
}

/// containerd in a temp root; killed (and waited for) on drop.
struct Containerd {
    child: Child,
    ctr: PathBuf,
    socket: PathBuf,
    root: PathBuf,
    log: PathBuf,
}

impl Containerd {
    /// `runc`: the directory of the runc its shim runs (put first in the
    /// daemon's PATH, where containerd finds its shim and the shim runc).
    fn start(bin: &Path, dir: &Path, runc: Option<&Path>) -> Containerd {
        let (root, state, socket) = (dir.join("root"), dir.join("state"), dir.join("c.sock"));
        std::fs::create_dir_all(dir).expect("containerd dir");
        let config = dir.join("config.toml");
        // Version 2 is read by containerd 1.6 and migrated by 2.x. Plugins
        // that would reach outside the temp dirs (CRI and its CNI/netns
        // setup, NRI's socket in /var/run/nri, /opt) are off.
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = {root:?}\nstate = {state:?}\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\", \"io.containerd.cri.v1.runtime\", \
                 \"io.containerd.cri.v1.images\", \"io.containerd.podsandbox.controller.v1.podsandbox\", \
                 \"io.containerd.nri.v1.nri\", \"io.containerd.internal.v1.opt\"]\n\
                 [grpc]\n  address = {socket:?}\n[ttrpc]\n  address = {ttrpc:?}\n",
                ttrpc = dir.join("c.ttrpc.sock"),
            ),
        )
        .expect("config");
        let log = dir.join("containerd.log");
        let mut path = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
            .collect::<Vec<_>>();
        path.insert(0, bin.to_path_buf());
        if let Some(r) = runc {
            path.insert(0, r.to_path_buf());
        }
        let child = Command::new(bin.join("containerd"))
            .arg("--config")
            .arg(&config)
            .env("PATH", std::env::join_paths(path).expect("PATH"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(dir.join("containerd.err")).expect("log"))
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            child,
            ctr: bin.join("ctr"),
            socket,
            root,
            log: dir.join("containerd.err"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if c.ctr(&["version"]).status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not answer on {} within 30 s:\n{}",
                c.socket.display(),
                c.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> cmd::Output {
        cmd::run(
            Command::new(&self.ctr)
                .arg("--address")
                .arg(&self.socket)
                .args(["--namespace", "k8s.io"])
                .args(args),
            Duration::from_secs(120),
        )
        .expect("ctr ran")
    }

    fn log_tail(&self) -> String {
        cmd::tail(
            &std::fs::read_to_string(&self.log).unwrap_or_default(),
            3000,
        )
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A small tree: a capped "binary", a symlink, a nested dir, /etc/passwd.
fn tree(dir: &Path, payload: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir.join("etc")).expect("etc");
    std::fs::create_dir_all(dir.join("usr/share/doc")).expect("usr");
    std::fs::write(dir.join("server"), payload).expect("server");
    std::fs::set_permissions(dir.join("server"), std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    std::os::unix::fs::symlink("/server", dir.join("usr/server")).expect("symlink");
    std::fs::write(dir.join("usr/share/doc/README"), "doc\n").expect("doc");
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532::/:/sbin/nologin\n",
    )
    .expect("passwd");
}

fn ezlab_build(root: &Path, tag: &str, out: &Path) -> String {
    let o = cmd::run(
        Command::new(env!("CARGO_BIN_EXE_ezlab"))
            .args(["image", "build", "--root"])
            .arg(root)
            .args([
                "--tag",
                tag,
                "--entrypoint",
                "/server",
                "--user",
                "65532:65532",
            ])
            .args(["--file-cap", "/server=cap_net_bind_service", "-o"])
            .arg(out),
        Duration::from_secs(60),
    )
    .expect("ezlab ran");
    assert!(o.status.success(), "ezlab image build: {}", o.stderr);
    o.stdout
}

/// The `sha256:...` after `word` in ezlab's summary line.
fn digest_after(summary: &str, word: &str) -> String {
    summary
        .split_whitespace()
        .skip_while(|w| *w != word)
        .nth(1)
        .unwrap_or_else(|| panic!("no {word} in {summary:?}"))
        .to_string()
}

fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    let n = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 256];
    // SAFETY: valid NUL-terminated strings and a buffer of the given length.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| {
        buf.truncate(len as usize);
        buf
    })
}

/// Files named `name` at the top of any unpacked overlayfs snapshot.
fn unpacked(root: &Path, name: &str) -> Vec<PathBuf> {
    let snaps = root.join("io.containerd.snapshotter.v1.overlayfs/snapshots");
    std::fs::read_dir(&snaps)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.path().join("fs").join(name))
                .filter(|p| p.exists())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn ctr_imports_and_unpacks_an_ezlab_image_with_its_file_capability() {
    if testing::require(doctor::is_root(), "containerd needs root").is_none() {
        return;
    }
    let found = containerd_dir();
    if testing::require(
        found.is_some(),
        "no containerd: run scripts/build-components.sh (or scripts/install-deps.sh for Debian's)",
    )
    .is_none()
    {
        return;
    }
    let (bin, what) = found.expect("checked");
    testing::record_run();
    println!("using {what} from {}", bin.display());

    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    tree(&src, "payload-1\n");
    let archive = t.path().join("img.tar");
    let tag = "registry.example:5000/lab/server:v1";
    let summary = ezlab_build(&src, tag, &archive);
    let image_id = digest_after(&summary, "id");
    let diff_id = digest_after(&summary, "layer");

    let c = Containerd::start(&bin, &t.path().join("ctd"), None);

    // A broken archive (manifest naming a layer that is not there) is
    // refused and leaves no image: the check below can see a failure.
    let broken = t.path().join("broken.tar");
    {
        let bytes = std::fs::read(&archive).expect("archive");
        let mut a = tar::Archive::new(bytes.as_slice());
        let mut b = tar::Builder::new(std::fs::File::create(&broken).expect("broken"));
        for e in a.entries().expect("entries") {
            let mut e = e.expect("entry");
            let path = e.path().expect("path").into_owned();
            if path.ends_with("layer.tar") {
                continue;
            }
            let mut h = e.header().clone();
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).expect("read");
            b.append_data(&mut h, &path, data.as_slice())
                .expect("append");
        }
        b.finish().expect("finish");
    }
    let bad = c.ctr(&["images", "import", broken.to_str().expect("utf-8")]);
    assert!(
        !bad.status.success(),
        "an archive without its layer was imported:\n{}{}",
        bad.stdout,
        bad.stderr
    );
    assert!(!c.ctr(&["images", "ls", "-q"]).stdout.contains(tag));

    let imp = c.ctr(&["images", "import", archive.to_str().expect("utf-8")]);
    assert!(
        imp.status.success(),
        "ctr images import failed:\n{}{}\ncontainerd:\n{}",
        imp.stdout,
        imp.stderr,
        c.log_tail()
    );
    println!("$ ctr images import\n{}{}", imp.stdout, imp.stderr);
    let ls = c.ctr(&["images", "ls"]);
    println!("$ ctr images ls\n{}", ls.stdout);
    let line = ls
        .stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(tag))
        .unwrap_or_else(|| panic!("{tag} not listed:\n{}", ls.stdout));
    let manifest_digest = line.split_whitespace().nth(2).expect("digest").to_string();
    assert!(
        line.contains("linux/amd64") || line.contains("linux/"),
        "{line}"
    );
    let content = c.ctr(&["content", "ls", "-q"]).stdout;
    assert!(
        content.contains(&image_id),
        "config {image_id} not in content store:\n{content}"
    );
    assert!(
        content.contains(&diff_id),
        "layer {diff_id} not in content store:\n{content}"
    );

    // Unpacked: the file is there with its content and its capability.
    let files = unpacked(&c.root, "server");
    assert_eq!(files.len(), 1, "unpacked snapshots with /server: {files:?}");
    assert_eq!(
        std::fs::read_to_string(&files[0]).expect("read"),
        "payload-1\n"
    );
    let cap = getxattr(&files[0], "security.capability").expect("security.capability set");
    assert_eq!(
        cap,
        [1, 0, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    );
    let link = files[0].with_file_name("usr").join("server");
    assert_eq!(
        std::fs::read_link(link).expect("symlink"),
        Path::new("/server")
    );

    // A rebuild from a fresh copy of the tree is the same image: importing
    // it again changes nothing.
    let src2 = t.path().join("src2");
    tree(&src2, "payload-1\n");
    let archive2 = t.path().join("img2.tar");
    ezlab_build(&src2, tag, &archive2);
    assert_eq!(
        std::fs::read(&archive).expect("a"),
        std::fs::read(&archive2).expect("b")
    );
    let again = c.ctr(&["images", "import", archive2.to_str().expect("utf-8")]);
    assert!(again.status.success(), "{}", again.stderr);
    let ls2 = c.ctr(&["images", "ls"]).stdout;
    assert!(
        ls2.lines()
            .any(|l| l.split_whitespace().nth(2) == Some(manifest_digest.as_str())),
        "digest changed after re-import:\n{ls2}"
    );
}

#[test]
fn skopeo_reads_the_archive() {
    let skopeo = ["/usr/bin/skopeo", "/usr/local/bin/skopeo"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if testing::require(
        skopeo.is_some(),
        "no skopeo (scripts/install-deps.sh installs it)",
    )
    .is_none()
    {
        return;
    }
    testing::record_run();
    let skopeo = skopeo.expect("checked");
    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("src");
    tree(&src, "payload-2\n");
    let archive = t.path().join("img.tar");
    let summary = ezlab_build(&src, "docker.io/library/lab-server:v2", &archive);
    let diff_id = digest_after(&summary, "layer");

    let inspect = cmd::run(
        Command::new(&skopeo)
            .arg("inspect")
            .arg(format!("docker-archive:{}", archive.display())),
        Duration::from_secs(60),
    )
    .expect("skopeo ran");
    assert!(
        inspect.status.success(),
        "skopeo inspect: {}",
        inspect.stderr
    );
    let info: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("json");
    println!("$ skopeo inspect\n{}", inspect.stdout);
    assert_eq!(info["Architecture"], ez_lab::image::host_architecture());
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1));

    // Copy to an OCI layout (what a push to a registry reads from too).
    let oci = t.path().join("oci");
    let copy = cmd::run(
        Command::new(&skopeo)
            .arg("copy")
            .arg(format!("docker-archive:{}", archive.display()))
            .arg(format!("oci:{}:v2", oci.display())),
        Duration::from_secs(60),
    )
    .expect("skopeo ran");
    assert!(copy.status.success(), "skopeo copy: {}", copy.stderr);
    // skopeo rewrites the config for OCI and compresses the layer, so the
    // digests change; what the image is must not: same diff id, same
    // entrypoint and user.
    let read_json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(
            &std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())),
        )
        .expect("json")
    };
    let blob = |d: &serde_json::Value| {
        let d = d.as_str().expect("digest");
        oci.join("blobs/sha256")
            .join(d.strip_prefix("sha256:").expect("sha256"))
    };
    let index = read_json(oci.join("index.json"));
    let manifest = read_json(blob(&index["manifests"][0]["digest"]));
    assert_eq!(manifest["layers"].as_array().map(Vec::len), Some(1));
    let config = read_json(blob(&manifest["config"]["digest"]));
    assert_eq!(config["rootfs"]["diff_ids"], serde_json::json!([diff_id]));
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/server"])
    );
    assert_eq!(config["config"]["User"], "65532:65532");
}

/// A static C program that binds UDP :53 and says whether it could.
const BIND53_C: &str = r#"
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
int main(void) {
  struct sockaddr_in a;
  int s = socket(AF_INET, SOCK_DGRAM, 0);
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(53);
  a.sin_addr.s_addr = htonl(INADDR_ANY);
  if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0) {
    printf("uid=%d bind :53: %s\n", (int)getuid(), strerror(errno));
    return 1;
  }
  printf("uid=%d bound :53\n", (int)getuid());
  return 0;
}
"#;

/// What upstream's coredns image relies on, end to end through our image
/// format: a non-root process binds :53 because its file carries
/// cap_net_bind_service (unpacked from the layer's PAX xattr by containerd,
/// exec'd by runc under no_new_privs), and without the capability it cannot.
/// The container has its own network namespace (only loopback).
#[test]
fn a_non_root_container_binds_port_53_through_the_file_capability() {
    if testing::require(doctor::is_root(), "containerd needs root").is_none() {
        return;
    }
    let found = containerd_dir();
    let runc = runc();
    let gcc = Command::new("gcc")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why =
        "needs containerd, runc and gcc (scripts/install-deps.sh, scripts/build-components.sh)";
    if testing::require(found.is_some() && runc.is_some() && gcc, why).is_none() {
        return;
    }
    let (bin, what) = found.expect("checked");
    let runc = runc.expect("checked");
    testing::record_run();
    println!(
        "using {what} from {}, runc {}",
        bin.display(),
        runc.display()
    );

    let t = tempfile::tempdir().expect("tempdir");
    let src = t.path().join("bind53.c");
    std::fs::write(&src, BIND53_C).expect("source");
    let root = t.path().join("root");
    std::fs::create_dir_all(&root).expect("root");
    let cc = cmd::run(
        Command::new("gcc")
            .args(["-static", "-Os", "-o"])
            .arg(root.join("bind53"))
            .arg(&src),
        Duration::from_secs(120),
    )
    .expect("gcc ran");
    assert!(cc.status.success(), "gcc: {}", cc.stderr);

    let image = |tag: &str, cap: bool| {
        let out = t
            .path()
            .join(format!("{}.tar", tag.replace([':', '/'], "_")));
        let mut c = Command::new(env!("CARGO_BIN_EXE_ezlab"));
        c.args(["image", "build", "--root"])
            .arg(&root)
            .args([
                "--tag",
                tag,
                "--entrypoint",
                "/bind53",
                "--user",
                "65532:65532",
                "-o",
            ])
            .arg(&out);
        if cap {
            c.args(["--file-cap", "/bind53=cap_net_bind_service"]);
        }
        let o = cmd::run(&mut c, Duration::from_secs(60)).expect("ezlab ran");
        assert!(o.status.success(), "ezlab image build: {}", o.stderr);
        out
    };
    let with_cap = image("lab.local/bind53:cap", true);
    let without = image("lab.local/bind53:nocap", false);

    let runc_dir = runc.parent().expect("runc dir");
    let c = Containerd::start(&bin, &t.path().join("ctd"), Some(runc_dir));
    for a in [&with_cap, &without] {
        let imp = c.ctr(&["images", "import", a.to_str().expect("utf-8")]);
        assert!(
            imp.status.success(),
            "import: {}{}",
            imp.stderr,
            c.log_tail()
        );
    }
    let id = |s: &str| format!("bind53-{s}-{}", std::process::id());
    let run = |image: &str, name: &str| {
        let o = c.ctr(&["run", "--rm", image, name]);
        println!("$ ctr run {image}\n{}{}", o.stdout, o.stderr);
        o
    };
    let denied = run("lab.local/bind53:nocap", &id("nocap"));
    assert!(
        denied
            .stdout
            .contains("uid=65532 bind :53: Permission denied"),
        "without the capability a non-root bind of :53 must fail:\n{}{}\n{}",
        denied.stdout,
        denied.stderr,
        c.log_tail()
    );
    let bound = run("lab.local/bind53:cap", &id("cap"));
    assert!(
        bound.status.success() && bound.stdout.contains("uid=65532 bound :53"),
        "with cap_net_bind_service the bind must work:\n{}{}\n{}",
        bound.stdout,
        bound.stderr,
        c.log_tail()
    );
    let left = c.ctr(&["containers", "ls", "-q"]).stdout;
    assert!(left.trim().is_empty(), "containers left behind: {left}");
}
