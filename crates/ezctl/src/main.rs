//! ezctl: provision and operate HA Kubernetes clusters from binaries.
//!
//! This binary parses arguments, sets the process up (credentials, limits),
//! picks the work and renders results; the inventory, PKI, SSH and engine
//! crates do the work, and the day-2 procedures live in `ez-ops`.

mod cli;
mod commands;
#[cfg(test)]
mod hostile_tests;
mod limits;
mod output;
mod progress;
mod style;
mod terminal;
mod versions;

use std::process::ExitCode as ProcessExit;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command};
use ez_ops::exit::{ExitCode, Failure};
use ez_ops::home::Home;
use ez_ops::remote;
use style::Style;

fn main() -> ProcessExit {
    let cli = Cli::parse();
    let style = Style::detect(cli.color);
    let json = cli.json;
    let out = output::Output::new(json, style);
    match remote::resolve_credentials(
        cli.ask_pass,
        cli.ask_sudo_pass,
        |k| {
            let v = std::env::var(k).ok();
            // Not inherited by kubectl, ssh or anything else started later.
            std::env::remove_var(k);
            v
        },
        terminal::ask_terminal,
    ) {
        Ok(c) => remote::set_credentials(c),
        Err(e) => {
            eprintln!("{} reading a password: {e}", style.red("error:"));
            return ProcessExit::from(ExitCode::Usage as u8);
        }
    }
    remote::set_forks(usize::from(cli.forks));
    limits::raise_open_files();
    let command = command_name(&cli.command);
    match run(cli, &out) {
        Ok(()) => {
            out.finish(&command);
            ProcessExit::SUCCESS
        }
        Err(err) => {
            let code = err
                .downcast_ref::<Failure>()
                .map_or(ExitCode::Failed, |f| f.code);
            eprintln!("{} {}", style.red("error:"), render_error(&err));
            if json {
                out.emit(&output::error_event(&render_error(&err), code as u8));
            }
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

/// The subcommand as typed (`add-node`), for the `result` event.
fn command_name(c: &Command) -> String {
    let text = format!("{c:?}");
    let variant: String = text
        .chars()
        .take_while(|ch| ch.is_ascii_alphanumeric())
        .collect();
    let mut out = String::new();
    for (i, ch) in variant.chars().enumerate() {
        if ch.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(ch.to_ascii_lowercase());
        } else {
            out.push(ch);
        }
    }
    out
}

fn run(cli: Cli, out: &output::Output) -> anyhow::Result<()> {
    let home = Home::new(&cli.home);
    match cli.command {
        Command::New(c) => commands::new::run(&home, &c.cluster, out),
        Command::StartAio(a) => commands::start_aio::run(
            &home,
            &commands::start_aio::Aio {
                cluster: &a.cluster,
                host: a.host,
                user: &a.user,
                ssh_key: a.ssh_key.as_deref(),
                config: a.config.as_deref(),
            },
            &a.run,
            out,
        ),
        Command::List => commands::list::list(&home, out),
        Command::Checkout(c) => commands::list::checkout(&home, &c.cluster, out),
        Command::Check(c) => commands::check::run(&home, &c.cluster, out),
        Command::Import {
            cluster,
            hosts,
            config,
        } => commands::import::run(&home, &cluster, &hosts, config.as_deref(), out),
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
            out,
        ),
        Command::Setup { cluster, step, run } => {
            commands::setup::run(&home, &cluster, &step, &run, out)
        }
        Command::Play {
            cluster,
            playbook,
            roles,
            run,
        } => commands::setup::play(&home, &cluster, &playbook, roles.as_deref(), &run, out),
        Command::Start(c) => ez_ops::lifecycle::start(&home, &c.cluster, false, out),
        Command::Stop(c) => ez_ops::lifecycle::stop(&home, &c.cluster, false, out),
        Command::Upgrade {
            cluster,
            max_unavailable,
            drain_timeout,
            accept_new,
        } => ez_ops::upgrade::run(
            &home,
            &ez_ops::upgrade::UpgradeArgs {
                cluster: &cluster,
                max_unavailable,
                drain_timeout,
                accept_new,
            },
            out,
        ),
        Command::Destroy { cluster, yes } => {
            commands::lifecycle::destroy(&home, &cluster, yes, false, out)
        }
        Command::Backup { cluster, keep } => commands::backup::run(&home, &cluster, keep, out),
        Command::Restore {
            cluster,
            snapshot,
            force,
        } => commands::restore::run(
            &home,
            &ez_ops::restore::RestoreArgs {
                cluster: &cluster,
                snapshot: snapshot.as_deref(),
                force,
            },
            out,
        ),
        Command::AddEtcd(a) => commands::etcd_members::add(
            &home,
            &ez_ops::etcd_members::AddArgs {
                cluster: &a.cluster,
                ips: &a.ips,
                name: a.name.as_deref(),
                accept_new: a.accept_new,
            },
            out,
        ),
        Command::AddMaster(a) => ez_ops::scale::add_master(&home, &scale_add(&a), out),
        Command::AddNode(a) => ez_ops::scale::add_node(&home, &scale_add(&a), out),
        Command::DelEtcd(a) => commands::etcd_members::del(
            &home,
            &ez_ops::etcd_members::DelArgs {
                cluster: &a.cluster,
                ips: &a.ips,
            },
            out,
        ),
        Command::DelMaster(a) => ez_ops::scale::del_master(&home, &scale_del(&a), out),
        Command::DelNode(a) => ez_ops::scale::del_node(&home, &scale_del(&a), out),
        Command::KcaRenew(c) => ez_ops::certs::kca_renew(&home, &c.cluster, c.finish, false, out),
        Command::KcfgAdm {
            cluster,
            add,
            delete,
            list,
            user,
            role,
            expiry,
        } => commands::pki_cmds::kcfg_adm(
            &home,
            &ez_ops::certs::KcfgArgs {
                cluster: &cluster,
                add,
                delete,
                list,
                user: user.as_deref(),
                role: &role,
                expiry: &expiry,
            },
            out,
        ),
        Command::Download => commands::download::run(&home, out),
    }
}

fn scale_add(a: &cli::HostsArgs) -> ez_ops::scale::AddArgs<'_> {
    ez_ops::scale::AddArgs {
        cluster: &a.cluster,
        ips: &a.ips,
        name: a.name.as_deref(),
        accept_new: a.accept_new,
    }
}

fn scale_del(a: &cli::DelHostArgs) -> ez_ops::scale::DelArgs<'_> {
    ez_ops::scale::DelArgs {
        cluster: &a.cluster,
        ip: a.ip,
        drain_timeout: a.drain_timeout,
        accept_new: a.accept_new,
        force: a.force,
    }
}
