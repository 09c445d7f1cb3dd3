//! `ezctl exec <cluster> [-g GROUP|-H HOST] -- CMD`: an ad-hoc command on
//! many hosts at once, output grouped per host as each one finishes.

use std::time::Instant;

use anyhow::{bail, Result};
use ez_inventory::{Group, Host};
use ez_ssh::{fan_out, ExecOpts};

use crate::output::Output;
use ez_ops::exit::{ExitCode, Failure};
use ez_ops::home::Home;
use ez_ops::remote::host_spec;

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
    let command = remote_command(args.command);
    let specs: Vec<_> = hosts.iter().map(|h| host_spec(&cluster, h)).collect();
    let pool = ez_ops::remote::new_pool(&cluster, args.accept_new);
    let started = Instant::now();
    let runtime = ez_ops::context::runtime()?;
    let failures = runtime.block_on(async {
        let cmd = command.clone();
        let mut results = fan_out(&pool, specs, ez_ops::remote::forks(), move |session| {
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

/// What the remote shell runs. One argument is a shell command line, run
/// as written (`-- 'ls /tmp | wc -l'`); several are a command and its
/// arguments, each passed as it is (`-- sh -c 'echo $HOSTNAME'`). Joining
/// them with spaces lost the quoting: that ran `sh -c echo $HOSTNAME`.
pub fn remote_command(args: &[String]) -> String {
    match args {
        [line] => line.clone(),
        words => words
            .iter()
            .map(|w| ez_engine::shell_word(w))
            .collect::<Vec<_>>()
            .join(" "),
    }
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

#[cfg(test)]
mod tests {
    use super::remote_command;

    fn sh(line: &str) -> String {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(line)
            .env("HOME", "/home/ez")
            .output()
            .expect("sh");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn several_arguments_keep_their_quoting_and_one_is_a_shell_line() {
        let argv = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // `ezctl exec c -- sh -c 'echo $HOME'`: the inner shell expands it.
        assert_eq!(
            sh(&remote_command(&argv(&["sh", "-c", "echo $HOME"]))),
            "/home/ez\n"
        );
        // Arguments reach the command unchanged, whatever they hold.
        assert_eq!(
            sh(&remote_command(&argv(&[
                "printf", "%s|", "a b", "$HOME", "'q'", "*", ""
            ]))),
            "a b|$HOME|'q'|*||"
        );
        // One argument is a command line for the remote shell.
        assert_eq!(sh(&remote_command(&argv(&["echo a | tr a b"]))), "b\n");
    }
}
