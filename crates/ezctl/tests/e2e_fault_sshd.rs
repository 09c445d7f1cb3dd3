//! Fault: sshd dies on one host while a long task runs there (`ezctl play`
//! with a test playbook whose role sleeps on every host). That host fails
//! alone with "connection lost", the others finish, nothing is
//! half-written, and once sshd is back a re-run converges.
//! Own test binary: it kills a machine's sshd. Needs root and the lab.

mod common;
mod fault_support;

use std::time::Duration;

use common::text;
use fault_support::*;

fn play_args(env: &common::Env) -> Vec<String> {
    vec![
        "--json".into(),
        "play".into(),
        env.cluster.clone(),
        fixtures().join("playbooks/long.yml").display().to_string(),
        "--roles".into(),
        fixtures().join("roles").display().to_string(),
    ]
}

#[test]
fn sshd_killed_mid_task_fails_that_host_alone_and_a_rerun_converges() {
    let Some(env) = common::env(3) else { return };
    for ip in all_hosts(env) {
        env.on(&ip, "rm -rf /srv/ezf");
    }
    let hosts = all_hosts(env);
    let victim = hosts[1].clone();
    let args = play_args(env);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut run = Running::start(env, &args);
    // The long task has started on the victim: cut its SSH there.
    run.wait_for(Duration::from_secs(60), |e| {
        e["event"] == "task_start" && e["host"] == victim.as_str() && e["task"] == "long task"
    });
    std::thread::sleep(Duration::from_millis(500));
    kill_sshd(env, &victim);
    let (code, said) = run.finish(Duration::from_secs(120));
    assert_eq!(code, Some(1), "{said}");

    let recap_line = said
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "recap")
        .unwrap_or_else(|| panic!("no recap in\n{said}"));
    let r = &recap_line["recap"];
    let failures = r["failures"].as_array().cloned().unwrap_or_default();
    assert_eq!(failures.len(), 1, "only the victim fails: {r}");
    assert_eq!(failures[0]["host"], victim.as_str(), "{r}");
    assert_eq!(failures[0]["role"], "long", "{r}");
    assert_eq!(failures[0]["task"], "long task", "{r}");
    let error = failures[0]["error"].as_str().unwrap_or("");
    assert!(
        error.contains("connection lost") && error.contains("sleep"),
        "names the loss and the command it cut: {error}"
    );
    assert_eq!(r["hosts"][&victim]["unreachable"], 1, "{r}");
    // The others finished, including the role that runs after the long one.
    for ip in hosts.iter().filter(|ip| **ip != victim) {
        assert_eq!(r["hosts"][ip]["failed"], 0, "{ip}: {r}");
        let (code, out) = env.on(ip, "cat /srv/ezf/result /srv/ezf/after");
        assert_eq!(code, 0, "{ip}: {out}");
        assert!(out.contains("long task finished") && out.contains("after long"));
    }
    // On the victim: no result file and no temp file (checked without SSH).
    // The same listing on another host shows both files: it can see them.
    let listing = |ip: &str| {
        let (code, files) = inside(env, ip, "ls -A /srv/ezf");
        assert_eq!(code, 0, "{ip}: {files}");
        files
    };
    let other = hosts
        .iter()
        .find(|ip| **ip != victim)
        .expect("another host");
    let files = listing(other);
    assert!(
        files.contains("result") && files.contains("after"),
        "{other}: {files}"
    );
    let files = listing(&victim);
    assert!(
        !files.contains("result") && !files.contains("after") && !files.contains(".ezctl"),
        "{files}"
    );
    assert_no_upload_leftovers(env, Duration::from_secs(5));

    // sshd back (through nsenter: SSH cannot start it), the same play
    // converges, and a further run changes nothing.
    start_sshd(env, &victim);
    let rerun = env.ezctl(&args);
    assert!(rerun.status.success(), "{}", text(&rerun));
    let rr = recap(&rerun);
    assert!(
        rr["hosts"][&victim]["changed"].as_u64().unwrap_or(0) >= 2,
        "the victim catches up (result and after): {rr}"
    );
    // A further run changes nothing on any host (and has a recap for
    // every host: an empty one would pass a loop over it).
    let rest: Vec<&str> = args
        .iter()
        .copied()
        .skip_while(|a| *a != env.cluster)
        .skip(1)
        .collect();
    assert_converged(env, "play", &rest);
}
