//! The Ansible peer: a pinned ansible-core in a virtualenv the bench makes
//! itself, a config (forks = hosts, pipelining on, facts off), an inventory
//! generated from the lab cluster's hosts.yml with the same variables
//! ezctl's templates see, and the PLAY RECAP read back.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use ez_inventory::Cluster;
use serde_json::{Map, Value};

use crate::measure;

/// The version the bench pins (`pip install ansible-core==VERSION`).
pub const DEFAULT_VERSION: &str = "2.17.14";

#[derive(Debug, thiserror::Error)]
pub enum AnsibleError {
    #[error("{step} failed: {detail}")]
    Install { step: String, detail: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no PLAY RECAP in ansible-playbook's output")]
    NoRecap,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AnsibleError + '_ {
    move |source| AnsibleError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// An installed ansible-core.
#[derive(Debug, Clone)]
pub struct Ansible {
    pub venv: PathBuf,
    pub version: String,
}

/// Written last into a venv that is complete; a venv without it (killed
/// install) is rebuilt.
const COMPLETE: &str = ".ezbench-complete";

impl Ansible {
    /// `cache/ansible-core-VERSION`, created with `python -m venv` and pip
    /// on first use, reused after. Venvs cannot be moved (their scripts
    /// name their own path), so it is built in place behind a marker file.
    pub fn ensure(cache: &Path, version: &str, python: &Path) -> Result<Ansible, AnsibleError> {
        let venv = cache.join(format!("ansible-core-{version}"));
        let a = Ansible {
            venv: venv.clone(),
            version: version.to_string(),
        };
        if venv.join(COMPLETE).is_file() && a.installed_version().as_deref() == Some(version) {
            return Ok(a);
        }
        if venv.exists() {
            std::fs::remove_dir_all(&venv).map_err(io(&venv))?;
        }
        std::fs::create_dir_all(cache).map_err(io(cache))?;
        let make_venv = || {
            step(
                "python3 -m venv",
                Command::new(python).arg("-m").arg("venv").arg(&venv),
            )
        };
        if let Err(first) = make_venv() {
            // Debian splits ensurepip into python3-venv.
            let _ = std::fs::remove_dir_all(&venv);
            step(
                "apt-get install python3-venv",
                Command::new("apt-get").args(["install", "-y", "-q", "python3-venv"]),
            )
            .map_err(|e| AnsibleError::Install {
                step: "python3 -m venv".into(),
                detail: format!("{first}; then {e}"),
            })?;
            make_venv()?;
        }
        step(
            "pip install ansible-core",
            Command::new(venv.join("bin/pip"))
                .args(["install", "-q", "--disable-pip-version-check"])
                .arg(format!("ansible-core=={version}")),
        )?;
        match a.installed_version() {
            Some(v) if v == version => {}
            other => {
                return Err(AnsibleError::Install {
                    step: "ansible-playbook --version".into(),
                    detail: format!("wanted {version}, found {other:?}"),
                })
            }
        }
        std::fs::write(venv.join(COMPLETE), version).map_err(io(&venv))?;
        Ok(a)
    }

    pub fn playbook_bin(&self) -> PathBuf {
        self.venv.join("bin/ansible-playbook")
    }

    /// `2.17.14` from `ansible-playbook [core 2.17.14]`.
    fn installed_version(&self) -> Option<String> {
        let out = Command::new(self.playbook_bin())
            .arg("--version")
            .output()
            .ok()?;
        parse_core_version(&String::from_utf8_lossy(&out.stdout))
    }
}

fn step(what: &str, cmd: &mut Command) -> Result<(), AnsibleError> {
    let m = measure::run(cmd, Duration::from_secs(900)).map_err(|e| AnsibleError::Install {
        step: what.into(),
        detail: e.to_string(),
    })?;
    if m.success() {
        Ok(())
    } else {
        Err(AnsibleError::Install {
            step: what.into(),
            detail: m.tail(15),
        })
    }
}

pub fn parse_core_version(text: &str) -> Option<String> {
    let first = text.lines().next()?;
    let at = first.find("[core ")? + "[core ".len();
    let rest = &first[at..];
    Some(rest[..rest.find(']')?].trim().to_string())
}

/// How the bench sets Ansible up. Both have forks = hosts, facts off and
/// pipelining on, which any user of a playbook like ours sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Tuning {
    /// Everything else at Ansible's defaults, which is what its users run:
    /// `ssh_args = -C -o ControlMaster=auto -o ControlPersist=60s`, the
    /// linear strategy (all hosts finish a task before any starts the
    /// next), OpenSSH's default cipher.
    Default,
    /// As an expert tunes it for this work: no `-C` (the payload is random,
    /// compressing it only burns the CPU the lab shares), ControlPersist,
    /// `strategy = free` (no barrier per task; plays stay in order), and
    /// the cipher ez-ssh picks.
    Tuned,
}

impl Tuning {
    /// The peer's name in the tables.
    pub fn label(self) -> &'static str {
        match self {
            Tuning::Default => "ansible",
            Tuning::Tuned => "ans-tuned",
        }
    }

    /// What differs from Ansible's defaults, for the table header.
    pub fn describe(self) -> String {
        let common = "forks = hosts, pipelining, no facts";
        match self {
            Tuning::Default => {
                format!("{common}; ssh_args and strategy at their defaults (-C, linear)")
            }
            Tuning::Tuned => format!("{common}; ssh_args = {}, strategy = free", tuned_ssh_args()),
        }
    }
}

/// `ssh_args` of the tuned config: Ansible's default without `-C`, and the
/// cipher ez-ssh uses.
pub fn tuned_ssh_args() -> String {
    format!(
        "-o ControlMaster=auto -o ControlPersist=60s -o Ciphers={}",
        ez_ssh::PREFERRED_CIPHER
    )
}

/// The variable naming the file Ansible's ssh wrappers count into.
pub const SSH_COUNT_ENV: &str = "EZBENCH_SSH_COUNT";

/// `work/bin/{ssh,sftp,scp}`: each appends a line to `$EZBENCH_SSH_COUNT`
/// and runs the real program. Every one of them Ansible starts is one
/// operation on a host through the ControlMaster (a module run, a file
/// sent): a round trip, counted as ezctl counts its SSH channels. The cost
/// is one `sh` start per operation, next to Ansible's own Python per task.
pub fn write_ssh_wrappers(work: &Path) -> Result<(), AnsibleError> {
    use std::os::unix::fs::PermissionsExt;
    let bin = work.join("bin");
    std::fs::create_dir_all(&bin).map_err(io(&bin))?;
    for prog in ["ssh", "sftp", "scp"] {
        let path = bin.join(prog);
        let script = format!(
            "#!/bin/sh\n# ezbench: count this {prog}, then run it.\n\
             [ -n \"${SSH_COUNT_ENV}\" ] && echo {prog} >>\"${SSH_COUNT_ENV}\"\n\
             exec /usr/bin/{prog} \"$@\"\n"
        );
        std::fs::write(&path, script).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(io(&path))?;
    }
    Ok(())
}

/// Lines in the wrappers' count file: the ssh/sftp/scp processes a run
/// started. `-O check`/`-O exit` calls of the bench itself are not run
/// through the wrappers.
pub fn ssh_processes(count_file: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(count_file).ok()?;
    Some(text.lines().filter(|l| !l.is_empty()).count() as u64)
}

/// `ansible.cfg`: forks = hosts, facts off, pipelining on, its own control
/// socket and temp directories under `work`, the counting wrappers as its
/// ssh/sftp/scp; with [`Tuning::Tuned`] also the expert's ssh_args and
/// strategy.
pub fn config(forks: usize, work: &Path, tuning: Tuning) -> String {
    let (strategy, ssh_args) = match tuning {
        Tuning::Default => (String::new(), String::new()),
        Tuning::Tuned => (
            "strategy = free\n".to_string(),
            format!("ssh_args = {}\n", tuned_ssh_args()),
        ),
    };
    format!(
        "[defaults]\n\
         forks = {forks}\n\
         gathering = explicit\n\
         host_key_checking = True\n\
         interpreter_python = /usr/bin/python3\n\
         retry_files_enabled = False\n\
         nocows = 1\n\
         local_tmp = {tmp}\n\
         {strategy}\
         \n\
         [ssh_connection]\n\
         pipelining = True\n\
         {ssh_args}\
         control_path_dir = {cp}\n\
         ssh_executable = {bin}/ssh\n\
         sftp_executable = {bin}/sftp\n\
         scp_executable = {bin}/scp\n",
        tmp = work.join("tmp").display(),
        cp = control_dir(work).display(),
        bin = work.join("bin").display(),
    )
}

/// Where this bench's Ansible keeps its ControlPersist sockets.
pub fn control_dir(work: &Path) -> PathBuf {
    work.join("cp")
}

/// Names Ansible sets itself; an inventory must not define them.
const RESERVED: &[&str] = &[
    "groups",
    "hostvars",
    "group_names",
    "inventory_hostname",
    "inventory_hostname_short",
    "playbook_dir",
    "omit",
];

/// A YAML inventory for `cluster`: the same groups (hosts in inventory
/// order, so `groups.all` lists them as ezctl does), the cluster's globals
/// and `extra` (controller paths) as `all` vars, each host's own variables,
/// and how to reach it: its user, port, key, and the cluster's known_hosts
/// with strict checking. Values are written as JSON, which YAML reads.
pub fn inventory_yaml(cluster: &Cluster, known_hosts: &Path, extra: &Map<String, Value>) -> String {
    let mut y =
        String::from("# Written by ezbench from the lab cluster's hosts.yml.\nall:\n  vars:\n");
    let mut globals = cluster.globals();
    globals.extend(extra.clone());
    for (k, v) in &globals {
        if !RESERVED.contains(&k.as_str()) {
            y.push_str(&format!(
                "    {}: {}\n",
                json(&Value::from(k.as_str())),
                json(v)
            ));
        }
    }
    y.push_str("  hosts:\n");
    for h in &cluster.hosts {
        y.push_str(&format!("    {}:\n", json(&Value::from(h.ip.to_string()))));
        let mut vars = cluster.host_vars(h);
        vars.retain(|k, _| !RESERVED.contains(&k.as_str()));
        vars.insert("ansible_host".into(), Value::from(h.ip.to_string()));
        vars.insert("ansible_user".into(), Value::from(h.ssh.user.clone()));
        vars.insert("ansible_port".into(), Value::from(h.ssh.port));
        if let Some(key) = &h.ssh.key {
            vars.insert(
                "ansible_ssh_private_key_file".into(),
                Value::from(key.display().to_string()),
            );
        }
        vars.insert(
            "ansible_ssh_common_args".into(),
            Value::from(format!(
                "-o UserKnownHostsFile={} -o GlobalKnownHostsFile=/dev/null -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes",
                known_hosts.display()
            )),
        );
        for (k, v) in &vars {
            y.push_str(&format!(
                "      {}: {}\n",
                json(&Value::from(k.as_str())),
                json(v)
            ));
        }
    }
    y.push_str("  children:\n");
    for g in ez_inventory::Group::ALL {
        let members: Vec<_> = cluster.group(g).collect();
        if members.is_empty() {
            continue;
        }
        y.push_str(&format!("    {}:\n      hosts:\n", g.key()));
        for h in members {
            y.push_str(&format!(
                "        {}: {{}}\n",
                json(&Value::from(h.ip.to_string()))
            ));
        }
    }
    y
}

fn json(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

/// Totals of a PLAY RECAP.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recap {
    pub hosts: usize,
    pub ok: u64,
    pub changed: u64,
    pub unreachable: u64,
    pub failed: u64,
}

impl Recap {
    pub fn success(&self) -> bool {
        self.hosts > 0 && self.unreachable == 0 && self.failed == 0
    }
}

/// Sums the host lines after the (last) `PLAY RECAP` of the default
/// callback's output.
pub fn parse_recap(stdout: &str) -> Result<Recap, AnsibleError> {
    let at = stdout.rfind("PLAY RECAP").ok_or(AnsibleError::NoRecap)?;
    let mut r = Recap::default();
    for line in stdout[at..].lines().skip(1) {
        let Some((_host, counts)) = line.split_once(" : ") else {
            continue;
        };
        r.hosts += 1;
        for word in counts.split_whitespace() {
            let Some((k, v)) = word.split_once('=') else {
                continue;
            };
            let v: u64 = v.parse().unwrap_or(0);
            match k {
                "ok" => r.ok += v,
                "changed" => r.changed += v,
                "unreachable" => r.unreachable += v,
                "failed" => r.failed += v,
                _ => {}
            }
        }
    }
    if r.hosts == 0 {
        return Err(AnsibleError::NoRecap);
    }
    Ok(r)
}

/// `host task` of every `changed: [host]` line of the default callback,
/// for telling what a run that should change nothing changed.
pub fn changed_tasks(stdout: &str) -> Vec<String> {
    let mut task = "";
    let mut out = Vec::new();
    for line in stdout.lines() {
        if let Some(rest) = line.strip_prefix("TASK [") {
            task = rest.split(']').next().unwrap_or("");
        } else if let Some(rest) = line.strip_prefix("changed: [") {
            let host = rest.split(']').next().unwrap_or("");
            out.push(format!("{host} {task}"));
        }
    }
    out
}

/// Closes the ControlPersist masters a run left in `control_dir` (so the
/// next run starts without connections, as ezctl does) and returns the CPU
/// time they used: detached from ansible-playbook, they are not in its
/// rusage, and they do the encryption (and Ansible's default `-C`
/// compression) of every transfer. Only sockets in our own directory are
/// touched, each master by the pid it reports.
pub fn close_control_masters(control_dir: &Path) -> Duration {
    let mut cpu = Duration::ZERO;
    let Ok(entries) = std::fs::read_dir(control_dir) else {
        return cpu;
    };
    for e in entries.flatten() {
        let sock = e.path();
        let check = Command::new("ssh")
            .args(["-F", "/dev/null", "-S"])
            .arg(&sock)
            .args(["-O", "check", "ezbench"])
            .output();
        if let Some(pid) = check
            .ok()
            .and_then(|o| parse_master_pid(&String::from_utf8_lossy(&o.stderr)))
        {
            cpu += measure::proc_cpu(pid).unwrap_or_default();
        }
        let _ = Command::new("ssh")
            .args(["-F", "/dev/null", "-S"])
            .arg(&sock)
            .args(["-O", "exit", "ezbench"])
            .output();
    }
    cpu
}

/// `1234` from `Master running (pid=1234)`.
pub fn parse_master_pid(text: &str) -> Option<u32> {
    let at = text.find("(pid=")? + 5;
    let rest = &text[at..];
    rest[..rest.find(')')?].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_core_version_and_master_pid() {
        assert_eq!(
            parse_core_version("ansible-playbook [core 2.17.14]\n  config file = x\n"),
            Some("2.17.14".into())
        );
        assert_eq!(parse_core_version("ansible-playbook 2.9.0\n"), None);
        assert_eq!(
            parse_master_pid("Master running (pid=4711)\r\n"),
            Some(4711)
        );
        assert_eq!(
            parse_master_pid("Control socket connect: No such file"),
            None
        );
    }

    #[test]
    fn recap_totals() {
        let out = "PLAY [all] ****\nTASK [x] ****\nok: [10.0.0.1]\n\n\
PLAY RECAP *********************************************************************\n\
10.0.0.1                   : ok=22   changed=17   unreachable=0    failed=0    skipped=1    rescued=0    ignored=0   \n\
10.0.0.2                   : ok=20   changed=0    unreachable=1    failed=2    skipped=1    rescued=0    ignored=0   \n\n";
        let r = parse_recap(out).expect("recap");
        assert_eq!(
            r,
            Recap {
                hosts: 2,
                ok: 42,
                changed: 17,
                unreachable: 1,
                failed: 2
            }
        );
        assert!(!r.success());
        assert!(matches!(
            parse_recap("ERROR! no hosts"),
            Err(AnsibleError::NoRecap)
        ));
    }

    #[test]
    fn changed_lines_name_host_and_task() {
        let out = "TASK [payload] ****\nok: [h1] => (item=a)\nchanged: [h2] => (item=a)\n\
TASK [checks] ****\nchanged: [h1]\n";
        assert_eq!(changed_tasks(out), vec!["h2 payload", "h1 checks"]);
    }

    #[test]
    fn config_sets_forks_pipelining_and_no_facts() {
        for tuning in [Tuning::Default, Tuning::Tuned] {
            let c = config(40, Path::new("/w"), tuning);
            assert!(c.contains("forks = 40\n"));
            assert!(c.contains("gathering = explicit\n"));
            assert!(c.contains("pipelining = True\n"));
            assert!(c.contains("control_path_dir = /w/cp\n"));
            assert!(c.contains("ssh_executable = /w/bin/ssh\n"));
            assert!(c.contains("sftp_executable = /w/bin/sftp\n"));
        }
    }

    #[test]
    fn the_wrappers_count_each_process_and_run_the_program() {
        let dir = tempfile::tempdir().expect("tempdir");
        write_ssh_wrappers(dir.path()).expect("wrappers");
        let count = dir.path().join("count");
        std::fs::write(&count, "").expect("count file");
        for _ in 0..3 {
            let out = Command::new(dir.path().join("bin/ssh"))
                .arg("-V")
                .env(SSH_COUNT_ENV, &count)
                .output()
                .expect("run the wrapper");
            // ssh -V prints its version on stderr: the real ssh ran.
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("OpenSSH"),
                "{out:?}"
            );
        }
        assert_eq!(ssh_processes(&count), Some(3));
        assert_eq!(ssh_processes(&dir.path().join("absent")), None);
    }

    #[test]
    fn only_the_tuned_config_drops_compression_and_the_barrier() {
        let default = config(4, Path::new("/w"), Tuning::Default);
        assert!(!default.contains("ssh_args"), "{default}");
        assert!(!default.contains("strategy"), "{default}");
        let tuned = config(4, Path::new("/w"), Tuning::Tuned);
        let section = |name: &str| {
            let at = tuned.find(&format!("[{name}]")).expect("section");
            let rest = &tuned[at + 1..];
            rest[..rest.find("\n[").unwrap_or(rest.len())].to_string()
        };
        assert!(
            section("defaults").contains("\nstrategy = free\n"),
            "{tuned}"
        );
        let ssh = section("ssh_connection");
        let args = ssh
            .lines()
            .find_map(|l| l.strip_prefix("ssh_args = "))
            .expect("ssh_args in [ssh_connection]");
        assert!(!args.split_whitespace().any(|a| a == "-C"), "{args}");
        assert!(args.contains("ControlPersist=60s"), "{args}");
        assert!(args.contains("-o Ciphers=aes256-gcm@openssh.com"), "{args}");
    }

    #[test]
    fn inventory_has_groups_in_order_vars_and_ssh_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("hosts.yml"),
            "ssh:\n  user: root\n  key: ssh/id_ed25519\netcd:\n  - 10.1.0.12\n  - 10.1.0.11\n  - 10.1.0.14\n\
             kube_master:\n  - 10.1.0.12\nkube_node:\n  - { ip: 10.1.0.13, labels: { zone: a } }\n",
        )
        .expect("write hosts");
        let cluster = Cluster::load(dir.path()).expect("loads");
        let mut extra = Map::new();
        extra.insert("bundle_dir".into(), Value::from("/h/bin"));
        let y = inventory_yaml(&cluster, Path::new("/k/known_hosts"), &extra);
        let etcd_at = y.find("    etcd:\n      hosts:\n").expect("etcd group");
        let first = y[etcd_at..].find("\"10.1.0.12\": {}").expect("12");
        let second = y[etcd_at..].find("\"10.1.0.11\": {}").expect("11");
        assert!(first < second, "group order kept:\n{y}");
        assert!(y.contains("    \"bundle_dir\": \"/h/bin\"\n"));
        assert!(
            y.contains("    \"ETCD_DATA_DIR\": \"/var/lib/etcd\"\n"),
            "{y}"
        );
        assert!(y.contains("      \"etcd_name\": \"etcd-10.1.0.11\"\n"));
        assert!(y.contains("      \"labels\": {\"zone\":\"a\"}\n"));
        assert!(y.contains("UserKnownHostsFile=/k/known_hosts"));
        let key = dir.path().join("ssh/id_ed25519").display().to_string();
        assert!(
            y.contains(&format!("\"ansible_ssh_private_key_file\": \"{key}\"")),
            "{y}"
        );
        // Ansible's own names are never redefined.
        assert!(!y.contains("\"groups\":"));
        assert!(!y.contains("\"inventory_hostname\":"));
    }
}
