//! `ezctl exec <cluster> [-g GROUP|-H HOST] -- CMD`: an ad-hoc command on
//! many hosts at once, output grouped per host as each one finishes.

use std::time::Instant;

use anyhow::{bail, Result};
use ez_inventory::{Group, Host};
use ez_ssh::{fan_out, ExecOpts, Pool};

use crate::exit::{ExitCode, Failure};
use crate::home::Home;
use crate::output::Output;
use crate::remote::{host_spec, ssh_options};

pub struct ExecArgs<'a> {
    pub cluster: &'a str,
    pub group: Option<&'a str>,
    pub host: Option<&'a str>,
    pub accept_new: bool,
    pub command: &'a [String],
}

pub fn run(home: &Home, args: &ExecArgs<'_>, out: &Output) -> Result<()> {
    let cluster = home.load(args.cluster)?;
    let hosts: Vec<&Host> = match (args.group, args.host) {
        (Some(g), _) => {
            let Some(group) = Group::from_key(g) else {
                bail!(Failure::usage(format!(
                    "unknown group `{g}` (allowed: {})",
                    Group::ALL
                        .iter()
                        .map(|g| g.key())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            cluster.group(group).collect()
        }
        (None, Some(h)) => match cluster.host(h) {
            Some(host) => vec![host],
            None => bail!(Failure::new(
                ExitCode::Input,
                format!("no host `{h}` in cluster `{}`", cluster.name)
            )),
        },
        (None, None) => cluster.hosts.iter().collect(),
    };
    if hosts.is_empty() {
        bail!(Failure::new(ExitCode::Input, "no hosts match"));
    }
    let command = args.command.join(" ");
    let specs: Vec<_> = hosts.iter().map(|h| host_spec(&cluster, h)).collect();
    let pool = Pool::new(ssh_options(&cluster, args.accept_new));
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let failures = runtime.block_on(async {
        let cmd = command.clone();
        let mut results = fan_out(&pool, specs, ez_ssh::DEFAULT_FAN_OUT, move |session| {
            let cmd = cmd.clone();
            async move {
                session
                    .exec(
                        &cmd,
                        ExecOpts {
                            sudo: true,
                            ..ExecOpts::default()
                        },
                    )
                    .await
            }
        });
        let mut failures = 0;
        while let Some(r) = results.recv().await {
            let host = r.host.clone();
            match r.result {
                Ok(res) => {
                    if res.code != 0 {
                        failures += 1;
                    }
                    print_result(&host, res.code, &res.stdout_str(), &res.stderr_str(), out);
                }
                Err(e) => {
                    failures += 1;
                    print_error(&host, &e.to_string(), out);
                }
            }
        }
        pool.close_all().await;
        failures
    });
    if !out.json {
        eprintln!(
            "{} host(s) in {:.2}s, {failures} failed",
            hosts.len(),
            started.elapsed().as_secs_f64()
        );
    }
    if failures > 0 {
        bail!(Failure::new(
            ExitCode::Failed,
            format!("the command failed on {failures} host(s)")
        ));
    }
    out.result(
        "exec",
        serde_json::json!({ "hosts": hosts.len(), "failed": 0 }),
    );
    Ok(())
}

fn print_result(host: &str, code: i32, stdout: &str, stderr: &str, out: &Output) {
    let style = out.style;
    if out.json {
        out.emit(&serde_json::json!({
            "event": "host_result", "host": host, "rc": code, "stdout": stdout, "stderr": stderr
        }));
        return;
    }
    let status = if code == 0 {
        style.green(&format!("rc={code}"))
    } else {
        style.red(&format!("rc={code}"))
    };
    println!("{} | {status}", style.bold(host));
    for l in stdout.lines() {
        println!("  {l}");
    }
    for l in stderr.lines() {
        println!("  {}", style.dim(l));
    }
}

fn print_error(host: &str, error: &str, out: &Output) {
    let style = out.style;
    if out.json {
        out.emit(&serde_json::json!({ "event": "host_result", "host": host, "error": error }));
    } else {
        println!(
            "{} | {}",
            style.bold(host),
            style.red(&format!("UNREACHABLE: {error}"))
        );
    }
}
