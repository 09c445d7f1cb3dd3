//! Modules through whole runs, on "hosts" that are temp directories.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use ez_engine::*;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn read(p: impl AsRef<Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

/// One role `r` with these tasks (and handlers) under `dir/roles`, one host
/// h1 rooted at `dir/h1`.
struct OneRole {
    dir: tempfile::TempDir,
}

impl OneRole {
    fn new(tasks: &str, handlers: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "roles/r/tasks.yml", tasks);
        if let Some(h) = handlers {
            write(dir.path(), "roles/r/handlers.yml", h);
        }
        OneRole { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("h1")
    }

    fn targets(&self) -> Targets {
        cluster(self.dir.path(), 1)
    }

    async fn run_with(&self, targets: Targets, runner: Runner) -> (Recap, Vec<Event>) {
        let pb = Playbook::from_plays("t", vec![Play::new("r", "all")]);
        let plan = Plan::build(
            &self.dir.path().join("roles"),
            &[pb],
            targets,
            &PlanFilter::default(),
        )
        .unwrap();
        run_plan(&plan, &runner).await
    }

    async fn run(&self, options: RunOptions) -> (Recap, Vec<Event>) {
        self.run_with(
            self.targets(),
            Runner::new(Arc::new(LocalConnector::new())).with_options(options),
        )
        .await
    }
}

fn task_status(events: &[Event], name: &str) -> Vec<Status> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TaskEnd { task, status, .. } if task == name => Some(*status),
            _ => None,
        })
        .collect()
}

/// A stand-in `systemctl` (PID 1 here is not systemd): keeps unit state in
/// files and logs every call, so the engine's use of it can be checked.
fn systemctl_shim(dir: &Path) -> PathBuf {
    let bin = dir.join("shim-bin");
    write(
        &bin,
        "systemctl",
        r#"#!/bin/sh
state="$SHIM_STATE"; mkdir -p "$state"
echo "$*" >> "$state/calls.log"
cmd="$1"; shift; [ "$1" = "--no-reload" ] && shift; [ "$1" = "--" ] && shift; unit="$1"
case "$cmd" in
  is-enabled) if [ -e "$state/$unit.enabled" ]; then echo enabled; else echo disabled; exit 1; fi ;;
  is-active) if [ -e "$state/$unit.active" ]; then echo active; else echo inactive; exit 3; fi ;;
  enable) touch "$state/$unit.enabled" ;;
  disable) rm -f "$state/$unit.enabled" ;;
  start|restart) touch "$state/$unit.active" ;;
  stop) rm -f "$state/$unit.active" ;;
  daemon-reload) ;;
esac
"#,
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    bin
}

fn actions(state: &Path) -> Vec<String> {
    let log = std::fs::read_to_string(state.join("calls.log")).unwrap_or_default();
    std::fs::remove_file(state.join("calls.log")).ok();
    log.lines()
        .filter(|l| !l.starts_with("is-"))
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn systemd_reloads_once_per_change_and_restarts_only_when_notified() {
    let fx = fixtures().join("roles");
    let d = tempfile::tempdir().unwrap();
    let bin = systemctl_shim(d.path());
    let state = d.path().join("shim-state");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let runner = || {
        Runner::new(Arc::new(
            LocalConnector::new()
                .with_env("PATH", path.clone())
                .with_env("SHIM_STATE", state.to_string_lossy().into_owned()),
        ))
    };
    let pb = Playbook::from_plays("svc", vec![Play::new("svc", "all")]);
    let plan = |targets| {
        Plan::build(
            &fx,
            std::slice::from_ref(&pb),
            targets,
            &PlanFilter::default(),
        )
        .unwrap()
    };
    let hosts = d.path().join("hosts");

    let (recap, _) = run_plan(&plan(cluster(&hosts, 1)), &runner()).await;
    assert!(recap.ok(), "{recap}");
    assert_eq!(
        actions(&state),
        [
            // The unit file is new: enabled without systemctl's own reload,
            // then the one reload picks up file and symlink together.
            "enable --no-reload -- a",
            "daemon-reload",
            "start -- a",
            "enable -- b",
            "start -- b",
            "restart -- a"
        ]
    );

    let (recap, _) = run_plan(&plan(cluster(&hosts, 1)), &runner()).await;
    assert_eq!(recap.total_changed(), 0, "{recap}");
    assert!(
        actions(&state).is_empty(),
        "converged: no reload, no restart"
    );

    let mut targets = cluster(&hosts, 1);
    targets.globals.insert("a_args".into(), "--port=2".into());
    let (recap, _) = run_plan(&plan(targets), &runner()).await;
    assert!(recap.ok(), "{recap}");
    assert_eq!(actions(&state), ["daemon-reload", "restart -- a"]);
}

#[tokio::test]
async fn wait_succeeds_on_an_open_port_and_explains_a_timeout() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = tokio::spawn(async move {
        // Accept a few probes, then stop.
        for _ in 0..3 {
            if listener.accept().await.is_err() {
                break;
            }
        }
    });
    let r = OneRole::new(
        &format!(
            "- name: port open\n  wait: {{ tcp: \"127.0.0.1:{port}\", retries: 3, delay: 50ms, timeout: 2s }}\n"
        ),
        None,
    );
    let (recap, events) = r.run(RunOptions::default()).await;
    assert!(recap.ok(), "{recap}");
    assert_eq!(
        task_status(&events, "port open"),
        [Status::Ok],
        "waiting is not a change"
    );
    accept.abort();

    let r = OneRole::new(
        "- name: never ready\n  wait: { command: \"echo still starting; false\", retries: 3, delay: 10ms, unit: etcd }\n",
        None,
    );
    let started = std::time::Instant::now();
    let (recap, _) = r.run(RunOptions::default()).await;
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    let err = &recap.failures[0].error;
    assert!(err.contains("not ready after 3 attempts"), "{err}");
    assert!(err.contains("still starting"), "last output shown: {err}");
    assert!(err.contains("last journal lines of etcd"), "{err}");

    // Dry-run does not wait.
    let (recap, events) = r.run(dry()).await;
    assert!(recap.ok());
    assert_eq!(task_status(&events, "never ready"), [Status::Skipped]);
}

/// A `journalctl` on PATH that says where it ran.
fn journalctl_shim(dir: &Path, name: &str, says: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join(name);
    write(
        &bin,
        "journalctl",
        &format!("#!/bin/sh\necho \"{says}: $*\"\n"),
    );
    std::fs::set_permissions(
        bin.join("journalctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
    bin
}

/// "node Ready" is asked of the API server from the controller, but the
/// kubelet that explains why it is not Ready runs on the node: the journal
/// must come from the task's host, not from where the probe ran.
#[tokio::test]
async fn a_delegated_wait_shows_the_journal_of_the_tasks_host() {
    let r = OneRole::new(
        "- name: node ready\n  wait: { command: \"echo NotReady; false\", retries: 2, delay: 10ms, unit: kubelet }\n  delegate: controller\n",
        None,
    );
    let path = std::env::var("PATH").unwrap_or_default();
    let on_host = journalctl_shim(r.dir.path(), "host-bin", "journal of the host");
    let on_controller = journalctl_shim(r.dir.path(), "ctl-bin", "journal of the controller");
    let runner = Runner::new(Arc::new(
        LocalConnector::new().with_env("PATH", format!("{}:{path}", on_host.display())),
    ))
    .with_controller(Arc::new(
        transport::LocalTransport::new("controller")
            .with_env("PATH", format!("{}:{path}", on_controller.display())),
    ));
    let (recap, _) = r.run_with(r.targets(), runner).await;
    let err = &recap.failures[0].error;
    assert!(err.contains("NotReady"), "the probe's output: {err}");
    assert!(
        err.contains("last journal lines of kubelet on h1:"),
        "{err}"
    );
    assert!(
        err.contains("journal of the host: -u kubelet -n 20"),
        "{err}"
    );
    assert!(!err.contains("journal of the controller"), "{err}");
}

/// A unit stuck in a state only a restart clears (a kubelet whose CSINode
/// start failed): `restart_when` restarts it once on the task's host, the
/// wait goes on and the task reports the change.
#[tokio::test]
async fn a_wait_restarts_a_stuck_unit_once_on_the_tasks_host() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("restarted");
    let calls = dir.path().join("calls");
    let bin = dir.path().join("host-bin");
    std::fs::create_dir_all(&bin).expect("bin");
    std::fs::write(
        bin.join("systemctl"),
        format!(
            "#!/bin/sh\necho \"$*\" >> {calls}\ntouch {marker}\n",
            calls = calls.display(),
            marker = marker.display()
        ),
    )
    .expect("shim");
    std::fs::set_permissions(
        bin.join("systemctl"),
        std::fs::Permissions::from_mode(0o755),
    )
    .expect("chmod");
    let probe = format!(
        "test -e {m} || {{ echo 'Ready=False: failed to initialize CSINode'; false; }}",
        m = marker.display()
    );
    let r = OneRole::new(
        &format!(
            "- name: node ready\n  wait: {{ command: {probe:?}, retries: 5, delay: 10ms, unit: kubelet, restart_when: failed to initialize CSINode }}\n  delegate: controller\n"
        ),
        None,
    );
    let path = std::env::var("PATH").unwrap_or_default();
    let runner = Runner::new(Arc::new(
        LocalConnector::new().with_env("PATH", format!("{}:{path}", bin.display())),
    ))
    .with_controller(Arc::new(transport::LocalTransport::new("controller")));
    let (recap, _) = r.run_with(r.targets(), runner).await;
    assert!(recap.ok(), "{recap}");
    assert_eq!(recap.total_changed(), 1, "the restart is a change: {recap}");
    assert_eq!(
        std::fs::read_to_string(&calls).expect("systemctl was called"),
        "restart kubelet\n",
        "restarted once, on the task's host"
    );
}

#[tokio::test]
async fn sysctl_writes_the_file_and_loads_it_on_change() {
    let r = OneRole::new(
        "- name: params\n  sysctl: { file: \"{{ root }}/sysctl.d/95-test.conf\", values: { ezctl.no.such.key: 1 } }\n",
        None,
    );
    let (recap, _) = r.run(RunOptions::default()).await;
    // The file is written, then `sysctl -p` runs and rejects the unknown key.
    assert_eq!(
        read(r.root().join("sysctl.d/95-test.conf")).lines().last(),
        Some("ezctl.no.such.key = 1")
    );
    let err = &recap.failures[0].error;
    assert!(err.contains("sysctl -p failed"), "{err}");

    let r = OneRole::new(
        "- name: params\n  sysctl: { file: \"{{ root }}/95.conf\", values: { vm.swappiness: 0 }, reload: false }\n",
        None,
    );
    let (first, _) = r.run(RunOptions::default()).await;
    let (second, _) = r.run(RunOptions::default()).await;
    assert_eq!((first.total_changed(), second.total_changed()), (1, 0));
}

#[tokio::test]
async fn modprobe_persists_a_loaded_module_without_reloading_it() {
    // `kernel` is always present in /sys/module; modprobe itself may not even
    // be installed, so success proves it was not called.
    if ez_lab::testing::require(
        Path::new("/sys/module/kernel").is_dir(),
        "/sys/module/kernel missing",
    )
    .is_none()
    {
        return;
    }
    let r = OneRole::new(
        "- name: mod\n  modprobe: { name: kernel, conf_dir: \"{{ root }}/modules-load.d\" }\n",
        None,
    );
    let (first, _) = r.run(RunOptions::default()).await;
    assert!(first.ok(), "{first}");
    assert_eq!(
        read(r.root().join("modules-load.d/kernel.conf")),
        "kernel\n"
    );
    let (second, _) = r.run(RunOptions::default()).await;
    assert_eq!(second.total_changed(), 0);
}

#[tokio::test]
async fn secrets_stay_out_of_events() {
    let r = OneRole::new(
        r#"- name: key file
  file: { path: "{{ root }}/ssl/key.pem", content: "SECRET-KEY-MATERIAL\n", mode: "0600" }
- name: token command
  command: "echo SECRET-TOKEN; exit 1"
  no_log: true
"#,
        None,
    );
    let (recap, events) = r.run(dry()).await;
    let mut json = JsonLinesWriter::new(Vec::new());
    for e in &events {
        json.on_event(e).unwrap();
    }
    let text = String::from_utf8(json.into_inner()).unwrap();
    assert!(text.contains("diff hidden: private file"), "{text}");
    assert!(!text.contains("SECRET-KEY-MATERIAL"), "{text}");

    let (recap2, events) = r.run(RunOptions::default()).await;
    let _ = recap;
    let mut json = JsonLinesWriter::new(Vec::new());
    for e in &events {
        json.on_event(e).unwrap();
    }
    let text = String::from_utf8(json.into_inner()).unwrap();
    assert!(!text.contains("SECRET"), "{text}");
    assert!(
        recap2.failures[0].error.contains("hidden"),
        "{}",
        recap2.failures[0].error
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(r.root().join("ssl/key.pem"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[tokio::test]
async fn fetch_brings_a_file_back_once_with_private_mode() {
    let r = OneRole::new(
        r#"- name: token
  file: { path: "{{ root }}/token", content: "abc\n" }
- name: bring back
  fetch: { src: "{{ root }}/token", dest: "{{ root }}-controller/token" }
"#,
        None,
    );
    let (first, _) = r.run(RunOptions::default()).await;
    assert!(first.ok(), "{first}");
    let fetched = r.dir.path().join("h1-controller/token");
    assert_eq!(read(&fetched), "abc\n");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&fetched).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let (second, _) = r.run(RunOptions::default()).await;
    assert_eq!(second.total_changed(), 0, "{second}");
}

#[tokio::test]
async fn file_states_loops_and_registered_loop_results() {
    let r = OneRole::new(
        r#"- name: dirs
  file: { path: "{{ root }}/d/{{ item }}", state: directory, mode: "0750" }
  loop: "{{ groups.all }}"
- name: old
  file: { path: "{{ root }}/old", content: "x" }
  when: make_old | default(value=true)
- name: probe
  command: { cmd: "test -d {{ root }}/d/{{ item }}", changed_when: false }
  loop: [h1, nope]
  register: probes
  ignore_errors: true
- name: summary
  file: { path: "{{ root }}/summary", content: "{{ probes.results | map(attribute='rc') | join(sep=',') }}\n" }
"#,
        None,
    );
    let (recap, events) = r.run(RunOptions::default()).await;
    assert!(recap.ok(), "{recap}");
    assert!(r.root().join("d/h1").is_dir());
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(r.root().join("d/h1"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o750);
    assert_eq!(
        read(r.root().join("summary")),
        "0,1\n",
        "the loop stopped? {events:#?}"
    );
    assert_eq!(recap.host("h1").ignored, 1);

    // `state: absent` removes; `when` false skips.
    let r2 = OneRole::new(
        "- name: gone\n  file: { path: \"{{ root }}/old\", state: absent }\n- name: never\n  file: { path: \"{{ root }}/never\" }\n  when: false\n",
        None,
    );
    std::fs::create_dir_all(r2.root()).unwrap();
    std::fs::write(r2.root().join("old"), "x").unwrap();
    let (recap, events) = r2.run(RunOptions::default()).await;
    assert!(recap.ok());
    assert!(!r2.root().join("old").exists());
    assert!(!r2.root().join("never").exists());
    assert_eq!(task_status(&events, "never"), [Status::Skipped]);
}

/// Kills the process when the test ends, even on panic.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[tokio::test]
async fn wait_https_with_client_certificate() {
    if ez_lab::testing::require(
        have("openssl") && have("curl"),
        "needs openssl and curl (apt-get install openssl curl)",
    )
    .is_none()
    {
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let pki = d.path().join("pki");
    std::fs::create_dir_all(&pki).unwrap();
    let script = r#"set -e
ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $ec -keyout ca-key.pem -out ca.pem -subj /CN=test-ca -days 1
printf 'subjectAltName=IP:127.0.0.1\n' > san.ext
openssl req $ec -keyout server-key.pem -out server.csr -subj /CN=127.0.0.1
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out server.pem -days 1 -extfile san.ext
openssl req $ec -keyout admin-key.pem -out admin.csr -subj /CN=admin
openssl x509 -req -in admin.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -out admin.pem -days 1
"#;
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(&pki)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = KillOnDrop(
        std::process::Command::new("openssl")
            .args(["s_server", "-quiet", "-www", "-Verify", "1"])
            .args(["-accept", &format!("127.0.0.1:{port}")])
            .args([
                "-cert",
                "server.pem",
                "-key",
                "server-key.pem",
                "-CAfile",
                "ca.pem",
            ])
            .current_dir(&pki)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let p = pki.display();
    let r = OneRole::new(
        &format!(
            r#"- name: healthy
  wait:
    https: "https://127.0.0.1:{port}/"
    ca: "{p}/ca.pem"
    cert: "{p}/admin.pem"
    key: "{p}/admin-key.pem"
    retries: 50
    delay: 100ms
    timeout: 3s
"#
        ),
        None,
    );
    let (recap, _) = r.run(RunOptions::default()).await;
    assert!(recap.ok(), "{recap}");

    // Without the client certificate the server refuses: the wait gives up.
    let r = OneRole::new(
        &format!(
            "- name: no cert\n  wait: {{ https: \"https://127.0.0.1:{port}/\", ca: \"{p}/ca.pem\", retries: 2, delay: 50ms, timeout: 3s }}\n"
        ),
        None,
    );
    let (recap, _) = r.run(RunOptions::default()).await;
    let err = &recap.failures[0].error;
    assert!(
        err.contains("not ready after 2 attempts") && err.contains("HTTP status"),
        "{err}"
    );
}

#[tokio::test]
async fn dropping_the_run_kills_its_commands() {
    let r = OneRole::new(
        "- name: long\n  command: \"sleep 1; touch {{ root }}/late\"\n",
        None,
    );
    std::fs::create_dir_all(r.root()).unwrap();
    let run = r.run(RunOptions::default());
    // Cancel the run, as the CLI does on Ctrl-C.
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(300), run)
            .await
            .is_err()
    );
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !r.root().join("late").exists(),
        "the command outlived the run"
    );
}

// ---- manifest -------------------------------------------------------------

fn net_addon() -> PathBuf {
    fixtures().join("manifests/net-addon.yml")
}

/// Every document of a YAML stream, read by yaml-rust2's own loader: an
/// independent reader of what the module wrote.
fn yaml_docs(text: &str) -> Vec<yaml_rust2::Yaml> {
    yaml_rust2::YamlLoader::load_from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn doc_of<'a>(docs: &'a [yaml_rust2::Yaml], kind: &str) -> &'a yaml_rust2::Yaml {
    docs.iter()
        .find(|d| d["kind"].as_str() == Some(kind))
        .unwrap_or_else(|| panic!("no {kind} in {docs:?}"))
}

fn env_value<'a>(container: &'a yaml_rust2::Yaml, name: &str) -> Vec<&'a yaml_rust2::Yaml> {
    container["env"]
        .as_vec()
        .unwrap()
        .iter()
        .filter(|e| e["name"].as_str() == Some(name))
        .map(|e| &e["value"])
        .collect()
}

/// The task every manifest test starts from: edits of each kind on the
/// fixture, the pod CIDR from a variable.
fn manifest_task(extra: &str) -> String {
    format!(
        r#"- name: net manifest
  manifest:
    src: "{src}"
    dest: "{{{{ root }}}}/manifests/net.yaml"
    mode: "0644"
    images:
      "docker.io/example/": "reg.local:5000/example/"
      "docker.io/example/net-cni-": "reg.local:5000/cni/net-cni-"
      "quay.io/example/kube-": "reg.local:5000/mirror/kube-"
    set:
      - kind: ConfigMap
        name: net-cfg
        path: 'data."net-conf.json"'
        value: |
          {{
            "Network": "{{{{ cidr | default(value='10.244.0.0/16') }}}}",
            "Backend": {{ "Type": "vxlan", "VNI": 4096 }}
          }}
      - kind: DaemonSet
        name: net-node
        namespace: kube-net
        path: 'spec.template.spec.containers[name=net-node].env[name=CALICO_IPV4POOL_CIDR].value'
        value: "{{{{ cidr | default(value='10.244.0.0/16') }}}}"
      - kind: DaemonSet
        name: net-node
        path: 'spec.template.spec.containers[name=net-node].env[name=FELIX_IPINIPMTU].value'
        value: "{{{{ mtu | default(value=1450) }}}}"
      - kind: Deployment
        name: net-controllers
        path: spec.replicas
        yaml: "{{{{ replicas | default(value=2) }}}}"
      - kind: IPPool
        name: default-pool
        path: spec.natOutgoing
        value: false
    drop:
      - {{ kind: Namespace, name: kube-net }}
  delegate: controller
{extra}"#,
        src = net_addon().display()
    )
}

#[tokio::test]
async fn manifest_applies_the_roles_edits_and_converges() {
    let r = OneRole::new(&manifest_task(""), None);
    let (recap, events) = r.run(RunOptions::default()).await;
    assert!(recap.ok(), "{recap}");
    assert_eq!(task_status(&events, "net manifest"), [Status::Changed]);
    let dest = r.root().join("manifests/net.yaml");
    let out = read(&dest);
    let docs = yaml_docs(&out);
    let upstream = yaml_docs(&read(net_addon()));

    // Order kept, the empty trailing document and the dropped Namespace gone.
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "ConfigMap",
            "DaemonSet",
            "Deployment",
            "CustomResourceDefinition",
            "IPPool"
        ]
    );
    assert!(
        !out.starts_with("---") && out.matches("\n---\n").count() == 4,
        "{out}"
    );
    assert!(!out.contains('#'), "comments are dropped:\n{out}");

    // A key with dots, set to a multi-line string.
    let cm = doc_of(&docs, "ConfigMap");
    assert_eq!(
        cm["data"]["net-conf.json"].as_str(),
        Some("{\n  \"Network\": \"10.244.0.0/16\",\n  \"Backend\": { \"Type\": \"vxlan\", \"VNI\": 4096 }\n}\n")
    );
    // Everything else in data is byte-for-byte upstream's, and strings that
    // look like numbers or booleans are still strings.
    let up_cm = doc_of(&upstream, "ConfigMap");
    for key in [
        "cni-conf.json",
        "veth_mtu",
        "enable_ipv6",
        "typha_service_name",
        "log_level",
        "banner",
        "trailer",
    ] {
        assert!(up_cm["data"][key].as_str().is_some(), "fixture has {key}");
        assert_eq!(cm["data"][key], up_cm["data"][key], "{key} in\n{out}");
    }
    assert_eq!(cm["data"]["veth_mtu"].as_str(), Some("0"));
    assert_eq!(cm["data"]["enable_ipv6"].as_str(), Some("false"));
    assert_eq!(
        cm["data"]["trailer"].as_str(),
        Some("ends with two line breaks\n\n")
    );

    // One env var added, one changed (a templated number stays a string, as
    // env values must be), the others untouched and in place.
    let ds = doc_of(&docs, "DaemonSet");
    let node = &ds["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        env_value(node, "CALICO_IPV4POOL_CIDR")[0].as_str(),
        Some("10.244.0.0/16")
    );
    assert_eq!(env_value(node, "FELIX_IPINIPMTU")[0].as_str(), Some("1450"));
    assert_eq!(
        env_value(node, "EVENT_QUEUE_DEPTH")[0].as_str(),
        Some("5000")
    );
    let names: Vec<&str> = node["env"]
        .as_vec()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "POD_NAME",
            "IP_AUTODETECTION_METHOD",
            "FELIX_IPINIPMTU",
            "EVENT_QUEUE_DEPTH",
            "CALICO_IPV4POOL_CIDR"
        ]
    );
    // Image prefixes rewritten in initContainers and containers alike, the
    // longest prefix winning; an `image` field outside a Pod spec is not a
    // container image.
    let pod = &ds["spec"]["template"]["spec"];
    let images: Vec<&str> = ["initContainers", "containers"]
        .iter()
        .flat_map(|l| pod[*l].as_vec().unwrap())
        .map(|c| c["image"].as_str().unwrap())
        .collect();
    assert_eq!(
        images,
        [
            "reg.local:5000/cni/net-cni-plugin:v1.6.2",
            "reg.local:5000/example/net:v0.27.0",
            "reg.local:5000/example/net:v0.27.0"
        ]
    );
    let dep = doc_of(&docs, "Deployment");
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"].as_str(),
        Some("reg.local:5000/mirror/kube-controllers:v3.30.0")
    );
    // `yaml:` keeps a templated number a number; `value: false` is a bool.
    assert_eq!(dep["spec"]["replicas"].as_i64(), Some(2));
    let pool = doc_of(&docs, "IPPool");
    assert_eq!(pool["spec"]["natOutgoing"].as_bool(), Some(false));
    assert_eq!(
        pool["spec"]["image"].as_str(),
        Some("docker.io/example/not-a-container-image")
    );
    // Plain scalars keep their text: 0644 stays octal for the API server.
    assert!(out.contains("defaultMode: 0644\n"), "{out}");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&dest).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o644);

    // Same input, same edits: same bytes, nothing to do.
    let (second, events) = r.run(RunOptions::default()).await;
    assert_eq!(second.total_changed(), 0, "{second}");
    assert_eq!(task_status(&events, "net manifest"), [Status::Ok]);
    assert_eq!(read(&dest), out);

    // A changed setting: dry-run shows the diff and writes nothing.
    let mut targets = r.targets();
    targets
        .globals
        .insert("cidr".into(), "172.20.0.0/16".into());
    let runner = Runner::new(Arc::new(LocalConnector::new())).with_options(dry());
    let (recap, events) = r.run_with(targets, runner).await;
    assert_eq!(recap.total_changed(), 1, "{recap}");
    let diff = events
        .iter()
        .find_map(|e| match e {
            Event::TaskEnd { task, diff, .. } if task == "net manifest" => diff.clone(),
            _ => None,
        })
        .expect("a diff");
    assert!(
        diff.contains("-      \"Network\": \"10.244.0.0/16\",")
            && diff.contains("+      \"Network\": \"172.20.0.0/16\",")
            && diff.contains("+          value: \"172.20.0.0/16\""),
        "{diff}"
    );
    assert_eq!(read(&dest), out, "dry-run wrote nothing");
}

#[tokio::test]
async fn manifest_diff_is_hidden_by_no_log() {
    let r = OneRole::new(&manifest_task("  no_log: true\n"), None);
    let (recap, events) = r.run(dry()).await;
    assert_eq!(recap.total_changed(), 1, "{recap}");
    let mut json = JsonLinesWriter::new(Vec::new());
    for e in &events {
        json.on_event(e).unwrap();
    }
    let text = String::from_utf8(json.into_inner()).unwrap();
    assert!(text.contains("(hidden: no_log)"), "{text}");
    assert!(!text.contains("10.244.0.0"), "{text}");
    // The same task without no_log does show it: the check above can fail.
    let r = OneRole::new(&manifest_task(""), None);
    let (_, events) = r.run(dry()).await;
    let mut json = JsonLinesWriter::new(Vec::new());
    for e in &events {
        json.on_event(e).unwrap();
    }
    let text = String::from_utf8(json.into_inner()).unwrap();
    assert!(text.contains("10.244.0.0"), "{text}");
}

/// One manifest task on the fixture with these arguments after src/dest;
/// returns the run's single failure.
async fn manifest_failure(args: &str) -> String {
    let r = OneRole::new(
        &format!(
            "- name: m\n  manifest:\n    src: \"{}\"\n    dest: \"{{{{ root }}}}/out.yaml\"\n{args}",
            net_addon().display()
        ),
        None,
    );
    let (recap, _) = r.run(RunOptions::default()).await;
    assert!(
        !r.root().join("out.yaml").exists(),
        "nothing written on failure"
    );
    assert_eq!(recap.failures.len(), 1, "{recap}");
    recap.failures[0].error.clone()
}

#[tokio::test]
async fn manifest_edits_that_do_not_apply_fail_naming_edit_and_file() {
    let file = net_addon().display().to_string();

    let e = manifest_failure(
        "    set:\n    - { kind: ConfigMap, name: net-config, path: data.x, value: y }\n",
    )
    .await;
    assert!(
        e.contains(&file)
            && e.contains("set #1 (ConfigMap `net-config`, path `data.x`)")
            && e.contains("no such document in the file (it has: ConfigMap kube-net/net-cfg)"),
        "{e}"
    );

    let e = manifest_failure(
        "    set:\n    - { kind: Deployment, name: net-controllers, path: 'spec.template.spec.containers[name=controllers].ports[containerPort=9094].protocol', value: SCTP }\n",
    )
    .await;
    assert!(
        e.contains(&file)
            && e.contains("set #1 (Deployment `net-controllers`")
            && e.contains("is ambiguous: 2 elements of `spec.template.spec.containers[name=controllers].ports` have containerPort=9094"),
        "{e}"
    );

    let e = manifest_failure(
        "    set:\n    - { kind: DaemonSet, name: net-node, path: 'spec.template.spec.hostNetwork.x', value: 1 }\n",
    )
    .await;
    assert!(
        e.contains("`spec.template.spec.hostNetwork` is the scalar `true`, not a mapping: cannot set key `x`"),
        "{e}"
    );

    let e = manifest_failure("    drop:\n    - { kind: Namespace, name: kube-system }\n").await;
    assert!(
        e.contains(&file) && e.contains("drop #1 (Namespace `kube-system`): no such document"),
        "{e}"
    );

    let e =
        manifest_failure("    images: { \"ghcr.io/example/\": \"reg.local/example/\" }\n").await;
    assert!(
        e.contains(&file)
            && e.contains(
                "images: prefix `ghcr.io/example/` matches no container or initContainer image"
            )
            && e.contains("docker.io/example/net:v0.27.0"),
        "{e}"
    );

    let e = manifest_failure(
        "    set:\n    - { kind: Namespace, name: kube-net, path: metadata.labels.x, value: y }\n    drop:\n    - { kind: Namespace, name: kube-net }\n",
    )
    .await;
    assert!(e.contains("`drop` removes this document"), "{e}");

    // With the right name the same edit applies: the failures above are
    // about the edits, not the fixture.
    let r = OneRole::new(
        &format!(
            "- name: m\n  manifest:\n    src: \"{}\"\n    dest: \"{{{{ root }}}}/out.yaml\"\n    set:\n    - {{ kind: ConfigMap, name: net-cfg, path: data.x, value: z }}\n",
            net_addon().display()
        ),
        None,
    );
    let (recap, _) = r.run(RunOptions::default()).await;
    assert!(recap.ok(), "{recap}");
    assert!(read(r.root().join("out.yaml")).contains("\n  x: z\n"));
}

#[tokio::test]
async fn manifest_source_in_role_files_and_load_time_checks() {
    let r = OneRole::new(
        "- name: m\n  manifest: { src: net.yml, dest: \"{{ root }}/out.yaml\" }\n",
        None,
    );
    let roles = r.dir.path().join("roles");
    let pb = Playbook::from_plays("t", vec![Play::new("r", "all")]);
    let build = || {
        Plan::build(
            &roles,
            std::slice::from_ref(&pb),
            r.targets(),
            &PlanFilter::default(),
        )
    };
    let e = build()
        .err()
        .expect("missing source is a load error")
        .to_string();
    assert!(
        e.contains("manifest source") && e.contains("files/net.yml"),
        "{e}"
    );

    write(&roles, "r/files/net.yml", &read(net_addon()));
    assert!(build().is_ok());
    let (recap, _) = r.run(RunOptions::default()).await;
    assert!(recap.ok(), "{recap}");
    // No edits: the documents as upstream has them, in our layout.
    let out = read(r.root().join("out.yaml"));
    assert_eq!(
        yaml_docs(&out),
        yaml_docs(&read(net_addon()))
            .into_iter()
            .filter(|d| !d.is_null())
            .collect::<Vec<_>>()
    );

    // A literal path that cannot parse is caught when the role loads.
    write(
        &roles,
        "r/tasks.yml",
        "- name: m\n  manifest:\n    src: net.yml\n    dest: /x\n    set: [{ kind: A, name: b, path: 'a[name=x', value: 1 }]\n",
    );
    let e = build().err().expect("bad path is a load error").to_string();
    assert!(e.contains("set #1") && e.contains("path `a[name=x`"), "{e}");
}
