//! Test harness: a throwaway PKI (rcgen), a real TLS etcd on loopback, the
//! kube-apiserver stand-in against it, and real kubectl.
#![allow(dead_code)]

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether a tool is on PATH; prints why a test skips when it is not.
pub fn have(tool: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        ez_lab::testing::skip(&format!(
            "{tool} not installed (apt-get install etcd-server etcd-client; kubectl)"
        ));
    }
    ok
}

/// The kubectl to run: $EZ_KUBECTL, else the v1.32 binary when kubectl is
/// a version dispatcher with one beside it (so runs are deterministic),
/// else `kubectl` from PATH.
pub fn kubectl_bin() -> PathBuf {
    if let Ok(k) = std::env::var("EZ_KUBECTL") {
        return PathBuf::from(k);
    }
    let pinned = Path::new("/usr/lib/google-cloud-sdk/bin/kubectl.1.32");
    if pinned.exists() {
        return pinned.to_path_buf();
    }
    PathBuf::from("kubectl")
}

pub use ez_lab::testing::free_port;

/// Extended key usages of an issued certificate.
#[derive(Clone, Copy)]
pub enum Eku {
    None,
    Server,
    Client,
    Both,
}

/// A CA that signs leaf certificates.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, written to files.
#[derive(Clone)]
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub cert_pem: String,
    pub key_pem: String,
}

pub fn write_secret(path: &Path, data: &str) {
    std::fs::write(path, data).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

impl Ca {
    pub fn new(cn: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.self_signed(&key).unwrap();
        Ca {
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        }
    }

    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, &self.pem).unwrap();
        p
    }

    /// Issues a cert with CN, O values, SANs and EKUs, written as NAME.pem / NAME-key.pem.
    pub fn issue(
        &self,
        dir: &Path,
        name: &str,
        cn: &str,
        orgs: &[&str],
        sans: &[&str],
        eku: Eku,
    ) -> Pair {
        let key = KeyPair::generate().unwrap();
        let mut p =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name.push(DnType::OrganizationName, *o);
        }
        if matches!(eku, Eku::Server | Eku::Both) {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
        }
        if matches!(eku, Eku::Client | Eku::Both) {
            p.extended_key_usages
                .push(ExtendedKeyUsagePurpose::ClientAuth);
        }
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        let pair = Pair {
            cert: dir.join(format!("{name}.pem")),
            key: dir.join(format!("{name}-key.pem")),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        std::fs::write(&pair.cert, &pair.cert_pem).unwrap();
        write_secret(&pair.key, &pair.key_pem);
        pair
    }
}

/// A kubeconfig with embedded data.
pub fn kubeconfig(path: &Path, server: &str, ca_pem: &str, client: &Pair) {
    let b = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: test\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\n\
         users:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n\
         contexts:\n- name: test\n  context:\n    cluster: test\n    user: u\ncurrent-context: test\n",
        b(ca_pem),
        b(&client.cert_pem),
        b(&client.key_pem)
    );
    write_secret(path, &text);
}

/// A child process killed (by pid) when dropped.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = cmd
            .stdout(out)
            .stderr(err)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Proc {
            name: name.into(),
            child,
            log,
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process has exited (and how).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `f` until it is true or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

pub fn bin(name: &str) -> PathBuf {
    match name {
        "kube-apiserver" => PathBuf::from(env!("CARGO_BIN_EXE_kube-apiserver")),
        "kubelet" => PathBuf::from(env!("CARGO_BIN_EXE_kubelet")),
        "kube-proxy" => PathBuf::from(env!("CARGO_BIN_EXE_kube-proxy")),
        "kube-controller-manager" => PathBuf::from(env!("CARGO_BIN_EXE_kube-controller-manager")),
        "kube-scheduler" => PathBuf::from(env!("CARGO_BIN_EXE_kube-scheduler")),
        "standin-set-version" => PathBuf::from(env!("CARGO_BIN_EXE_standin-set-version")),
        other => panic!("unknown binary {other}"),
    }
}

/// A running control plane: PKI, etcd, kube-apiserver, admin kubeconfig.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub ca_file: PathBuf,
    pub etcd_ca: Ca,
    pub etcd_ca_file: PathBuf,
    pub etcd_client: Pair,
    pub etcd_port: u16,
    pub api_port: u16,
    pub admin_kubeconfig: PathBuf,
    pub etcd: Option<Proc>,
    pub apiserver: Option<Proc>,
}

impl Cluster {
    /// Starts etcd and kube-apiserver, or None (with a SKIP line) when
    /// etcd or kubectl is missing.
    pub fn start() -> Option<Cluster> {
        if !have("etcd") || !have("kubectl") || !have("etcdctl") || !have("curl") {
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ca = Ca::new("kubernetes-ca");
        let ca_file = ca.write(d, "ca.pem");
        let etcd_ca = Ca::new("etcd-ca");
        let etcd_ca_file = etcd_ca.write(d, "etcd-ca.pem");
        // serverAuth only: the apiserver stand-in speaks gRPC to etcd, so
        // (unlike etcd's JSON gateway) it needs no clientAuth on this cert.
        let etcd_srv = etcd_ca.issue(
            d,
            "etcd",
            "etcd",
            &[],
            &["127.0.0.1", "localhost"],
            Eku::Server,
        );
        let etcd_client = etcd_ca.issue(d, "apiserver-etcd", "kubernetes", &[], &[], Eku::Client);
        let api = ca.issue(
            d,
            "apiserver",
            "kubernetes",
            &[],
            &["127.0.0.1", "localhost", "kubernetes", "10.68.0.1"],
            Eku::Server,
        );
        let admin = ca.issue(d, "admin", "admin", &["system:masters"], &[], Eku::Client);
        let sa_key = ca.issue(d, "sa", "service-accounts", &[], &[], Eku::None);

        let etcd_port = free_port();
        let peer_port = free_port();
        let etcd = Proc::spawn(
            "etcd",
            Command::new("etcd").args([
                "--name=t",
                &format!("--data-dir={}", d.join("etcd-data").display()),
                &format!("--listen-client-urls=https://127.0.0.1:{etcd_port}"),
                &format!("--advertise-client-urls=https://127.0.0.1:{etcd_port}"),
                &format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                &format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                &format!("--initial-cluster=t=http://127.0.0.1:{peer_port}"),
                &format!("--cert-file={}", etcd_srv.cert.display()),
                &format!("--key-file={}", etcd_srv.key.display()),
                &format!("--trusted-ca-file={}", etcd_ca_file.display()),
                "--client-cert-auth",
            ]),
            d.join("etcd.log"),
        );
        let api_port = free_port();
        let apiserver = Proc::spawn(
            "kube-apiserver",
            Command::new(bin("kube-apiserver")).args([
                "--bind-address=127.0.0.1",
                &format!("--secure-port={api_port}"),
                &format!("--etcd-servers=https://127.0.0.1:{etcd_port}"),
                &format!("--etcd-cafile={}", etcd_ca_file.display()),
                &format!("--etcd-certfile={}", etcd_client.cert.display()),
                &format!("--etcd-keyfile={}", etcd_client.key.display()),
                &format!("--tls-cert-file={}", api.cert.display()),
                &format!("--tls-private-key-file={}", api.key.display()),
                &format!("--client-ca-file={}", ca_file.display()),
                "--service-cluster-ip-range=10.68.0.0/16",
                "--service-account-issuer=https://kubernetes.default.svc",
                &format!(
                    "--service-account-signing-key-file={}",
                    sa_key.key.display()
                ),
                &format!("--service-account-key-file={}", sa_key.key.display()),
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--v=3",
            ]),
            d.join("apiserver.log"),
        );
        let admin_kubeconfig = d.join("admin.kubeconfig");
        kubeconfig(
            &admin_kubeconfig,
            &format!("https://127.0.0.1:{api_port}"),
            &ca.pem,
            &admin,
        );
        let c = Cluster {
            dir,
            ca,
            ca_file,
            etcd_ca,
            etcd_ca_file,
            etcd_client,
            etcd_port,
            api_port,
            admin_kubeconfig,
            etcd: Some(etcd),
            apiserver: Some(apiserver),
        };
        let ready = wait_until(60, || {
            let o = c.kubectl(&["get", "--raw", "/readyz"]);
            o.status.success() && c.kubectl(&["get", "ns", "kube-system"]).status.success()
        });
        assert!(
            ready,
            "apiserver not ready:\n{}\n{}",
            c.apiserver_log(),
            c.etcd_log()
        );
        Some(c)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.api_port)
    }

    pub fn apiserver_log(&self) -> String {
        self.apiserver
            .as_ref()
            .map(Proc::log_text)
            .unwrap_or_default()
    }

    pub fn etcd_log(&self) -> String {
        self.etcd.as_ref().map(Proc::log_text).unwrap_or_default()
    }

    /// Runs real kubectl as admin with a private discovery cache.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_as(&self.admin_kubeconfig, args)
    }

    pub fn kubectl_as(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        Command::new(kubectl_bin())
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!(
                "--cache-dir={}",
                self.path().join("kubectl-cache").display()
            ))
            .arg("--request-timeout=20s")
            .args(args)
            .env("HOME", self.path())
            .output()
            .unwrap()
    }

    /// kubectl that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.kubectl(args);
        assert!(
            o.status.success(),
            "kubectl {args:?} failed:\nstdout: {}\nstderr: {}\napiserver log tail:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr),
            tail(&self.apiserver_log(), 40)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// A client cert signed by the cluster CA, as a kubeconfig.
    pub fn user_kubeconfig(&self, name: &str, cn: &str, orgs: &[&str]) -> PathBuf {
        let pair = self.ca.issue(self.path(), name, cn, orgs, &[], Eku::Client);
        let p = self.path().join(format!("{name}.kubeconfig"));
        kubeconfig(&p, &self.server(), &self.ca.pem, &pair);
        p
    }

    /// Starts another kube-apiserver on the same PKI with other etcd
    /// settings; returns it and its port.
    pub fn extra_apiserver(
        &self,
        name: &str,
        etcd_servers: &str,
        etcd_client: &Pair,
    ) -> (Proc, u16) {
        let d = self.path();
        let api = self.ca.issue(
            d,
            &format!("{name}-serving"),
            "kubernetes",
            &[],
            &["127.0.0.1"],
            Eku::Server,
        );
        let sa = self
            .ca
            .issue(d, &format!("{name}-sa"), "sa", &[], &[], Eku::None);
        let port = free_port();
        let p = Proc::spawn(
            name,
            Command::new(bin("kube-apiserver")).args([
                "--bind-address=127.0.0.1",
                &format!("--secure-port={port}"),
                &format!("--etcd-servers={etcd_servers}"),
                &format!("--etcd-cafile={}", self.etcd_ca_file.display()),
                &format!("--etcd-certfile={}", etcd_client.cert.display()),
                &format!("--etcd-keyfile={}", etcd_client.key.display()),
                &format!("--tls-cert-file={}", api.cert.display()),
                &format!("--tls-private-key-file={}", api.key.display()),
                &format!("--client-ca-file={}", self.ca_file.display()),
                "--service-cluster-ip-range=10.68.0.0/16",
                "--service-account-issuer=https://kubernetes.default.svc",
                &format!("--service-account-signing-key-file={}", sa.key.display()),
            ]),
            d.join(format!("{name}.log")),
        );
        (p, port)
    }

    /// An admin kubeconfig for another server URL.
    pub fn admin_for(&self, port: u16) -> PathBuf {
        self.component_kubeconfig(
            &format!("admin-{port}"),
            "admin",
            &["system:masters"],
            &format!("https://127.0.0.1:{port}"),
        )
    }

    /// `etcdctl get --prefix` over TLS as the apiserver's etcd client.
    pub fn etcdctl(&self, args: &[&str]) -> Output {
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints=https://127.0.0.1:{}", self.etcd_port))
            .arg(format!("--cacert={}", self.etcd_ca_file.display()))
            .arg(format!("--cert={}", self.etcd_client.cert.display()))
            .arg(format!("--key={}", self.etcd_client.key.display()))
            .args(args)
            .output()
            .unwrap()
    }
}

pub fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

pub fn out(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A fake container runtime: a unix socket that accepts connections.
pub struct Runtime {
    pub path: PathBuf,
    listener: Option<std::os::unix::net::UnixListener>,
}

impl Runtime {
    pub fn start(path: PathBuf) -> Runtime {
        let _ = std::fs::remove_file(&path);
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        Runtime {
            path,
            listener: Some(listener),
        }
    }

    /// Closes the socket: connections are refused from now on.
    pub fn stop(&mut self) {
        self.listener = None;
        let _ = std::fs::remove_file(&self.path);
    }

    pub fn endpoint(&self) -> String {
        format!("unix://{}", self.path.display())
    }
}

/// Plain-HTTP GET on loopback; (status, body).
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let status = buf.split_whitespace().nth(1)?.parse().ok()?;
    let body = buf
        .split_once("\r\n\r\n")
        .map(|x| x.1.to_string())
        .unwrap_or_default();
    Some((status, body))
}

/// HTTPS GET without verifying the server (self-signed health ports).
pub fn https_status(url: &str) -> Option<u16> {
    let o = Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "5",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            url,
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&o.stdout).trim().parse().ok()
}

/// A kubelet and what it needs.
pub struct Kubelet {
    pub proc: Proc,
    pub runtime: Runtime,
    pub healthz: String,
    pub port: u16,
}

impl Cluster {
    /// Writes a kubeconfig for a component: the cluster CA, a client cert
    /// with `cn`/`orgs`, the given server URL.
    pub fn component_kubeconfig(
        &self,
        name: &str,
        cn: &str,
        orgs: &[&str],
        server: &str,
    ) -> PathBuf {
        let pair = self.ca.issue(self.path(), name, cn, orgs, &[], Eku::Client);
        let p = self.path().join(format!("{name}.kubeconfig"));
        kubeconfig(&p, server, &self.ca.pem, &pair);
        p
    }

    /// Starts a kubelet stand-in for node `name` against `server`.
    pub fn start_kubelet(&self, name: &str, server: &str) -> Kubelet {
        let d = self.path().join(format!("node-{name}"));
        std::fs::create_dir_all(&d).unwrap();
        let runtime = Runtime::start(d.join("containerd.sock"));
        let _serving = self.ca.issue(
            &d,
            "kubelet",
            &format!("system:node:{name}"),
            &["system:nodes"],
            &["127.0.0.1", name],
            Eku::Both,
        );
        let kc = self.component_kubeconfig(
            &format!("kubelet-{name}"),
            &format!("system:node:{name}"),
            &["system:nodes"],
            server,
        );
        let (port, hport) = (free_port(), free_port());
        std::fs::write(d.join("ca.pem"), &self.ca.pem).unwrap();
        let cfg = d.join("config.yaml");
        std::fs::write(
            &cfg,
            format!(
                "kind: KubeletConfiguration\napiVersion: kubelet.config.k8s.io/v1beta1\naddress: 127.0.0.1\nport: {port}\n\
                 healthzBindAddress: 127.0.0.1\nhealthzPort: {hport}\ntlsCertFile: kubelet.pem\ntlsPrivateKeyFile: kubelet-key.pem\n\
                 authentication:\n  anonymous: {{enabled: false}}\n  x509: {{clientCAFile: ca.pem}}\nauthorization: {{mode: Webhook}}\n\
                 clusterDNS: [10.68.0.2]\nclusterDomain: cluster.local\nmaxPods: 42\ncgroupDriver: systemd\nnodeStatusUpdateFrequency: 1s\n"
            ),
        )
        .unwrap();
        let proc = Proc::spawn(
            "kubelet",
            Command::new(bin("kubelet")).args([
                &format!("--config={}", cfg.display()),
                &format!("--kubeconfig={}", kc.display()),
                &format!("--hostname-override={name}"),
                "--node-ip=127.0.0.1",
                &format!("--root-dir={}", d.join("root").display()),
                &format!("--container-runtime-endpoint={}", runtime.endpoint()),
                "--v=2",
            ]),
            d.join("kubelet.log"),
        );
        Kubelet {
            proc,
            runtime,
            healthz: format!("127.0.0.1:{hport}"),
            port,
        }
    }

    /// The STATUS column of `kubectl get node NAME`.
    pub fn node_status(&self, name: &str) -> String {
        let o = self.kubectl(&["get", "node", name, "--no-headers"]);
        String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string()
    }
}
