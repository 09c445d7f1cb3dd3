//! ezctl: provision and operate HA Kubernetes clusters from binaries.
//!
//! This binary only parses arguments, picks the work and renders results;
//! the inventory, PKI, SSH and engine crates do the work.

mod cli;
mod commands;
mod etcd;
mod exit;
mod home;
mod progress;
mod remote;
mod steps;
mod style;
mod versions;
mod view;

use std::process::ExitCode as ProcessExit;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command};
use exit::{ExitCode, Failure};
use home::Home;
use style::Style;

fn main() -> ProcessExit {
    let cli = Cli::parse();
    let style = Style::detect(cli.color);
    match run(cli, style) {
        Ok(()) => ProcessExit::SUCCESS,
        Err(err) => {
            let code = err
                .downcast_ref::<Failure>()
                .map_or(ExitCode::Failed, |f| f.code);
            eprintln!("{} {}", style.red("error:"), render_error(&err));
            ProcessExit::from(code as u8)
        }
    }
}

/// The error and its causes, one per line.
fn render_error(err: &anyhow::Error) -> String {
    let mut out = err.to_string();
    for cause in err.chain().skip(1) {
        out.push_str(&format!("\n  caused by: {cause}"));
    }
    out
}

fn run(cli: Cli, style: Style) -> anyhow::Result<()> {
    let home = Home::new(&cli.home);
    match cli.command {
        Command::New(c) => commands::new::run(&home, &c.cluster),
        Command::List => commands::list::list(&home, style),
        Command::Checkout(c) => commands::list::checkout(&home, &c.cluster),
        Command::Check(c) => commands::check::run(&home, &c.cluster, cli.json, style),
        Command::Import {
            cluster,
            hosts,
            config,
        } => commands::import::run(&home, &cluster, &hosts, config.as_deref()),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "ezctl", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
        Command::Exec {
            cluster,
            group,
            host,
            accept_new,
            command,
        } => commands::exec::run(
            &home,
            &commands::exec::ExecArgs {
                cluster: &cluster,
                group: group.as_deref(),
                host: host.as_deref(),
                accept_new,
                command: &command,
            },
            cli.json,
            style,
        ),
        Command::Setup { cluster, step, run } => commands::setup::run(
            &home,
            &cluster,
            &step,
            &run,
            &commands::setup::Output {
                json: cli.json,
                style,
            },
        ),
        Command::Play {
            cluster,
            playbook,
            roles,
            run,
        } => commands::setup::play(
            &home,
            &cluster,
            &playbook,
            roles.as_deref(),
            &run,
            &commands::setup::Output {
                json: cli.json,
                style,
            },
        ),
        Command::Start(_) => Err(Failure::not_implemented("start").into()),
        Command::Stop(_) => Err(Failure::not_implemented("stop").into()),
        Command::Upgrade { .. } => Err(Failure::not_implemented("upgrade").into()),
        Command::Destroy { .. } => Err(Failure::not_implemented("destroy").into()),
        Command::Backup { cluster, keep } => commands::backup::run(
            &home,
            &cluster,
            keep,
            &commands::setup::Output {
                json: cli.json,
                style,
            },
        ),
        Command::Restore {
            cluster,
            snapshot,
            force,
        } => commands::restore::run(
            &home,
            &commands::restore::RestoreArgs {
                cluster: &cluster,
                snapshot: snapshot.as_deref(),
                force,
            },
            &commands::setup::Output {
                json: cli.json,
                style,
            },
        ),
        Command::AddEtcd(a) => commands::etcd_members::add(
            &home,
            &commands::etcd_members::AddArgs {
                cluster: &a.cluster,
                ips: &a.ips,
                name: a.name.as_deref(),
                accept_new: a.accept_new,
            },
            &commands::setup::Output {
                json: cli.json,
                style,
            },
        ),
        Command::AddMaster(_) => Err(Failure::not_implemented("add-master").into()),
        Command::AddNode(_) => Err(Failure::not_implemented("add-node").into()),
        Command::DelEtcd(a) => commands::etcd_members::del(
            &home,
            &commands::etcd_members::DelArgs {
                cluster: &a.cluster,
                ip: &a.ip,
                force: a.force,
            },
            &commands::setup::Output {
                json: cli.json,
                style,
            },
        ),
        Command::DelMaster(_) => Err(Failure::not_implemented("del-master").into()),
        Command::DelNode(_) => Err(Failure::not_implemented("del-node").into()),
        Command::KcaRenew(_) => Err(Failure::not_implemented("kca-renew").into()),
        Command::KcfgAdm { .. } => Err(Failure::not_implemented("kcfg-adm").into()),
        Command::Download => commands::download::run(&home),
    }
}
