//! `destroy`'s confirmation; `start`, `stop` and `destroy` themselves are
//! [`ez_ops::lifecycle`].

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{bail, Result};
use ez_inventory::Cluster;
use ez_ops::exit::{ExitCode, Failure};
use ez_ops::home::Home;

use crate::output::Output;

pub fn destroy(home: &Home, name: &str, yes: bool, accept_new: bool, out: &Output) -> Result<()> {
    let cluster = home.load(name)?;
    if !yes {
        confirm(&cluster)?;
    }
    ez_ops::lifecycle::destroy(home, &cluster, accept_new, out)
}

/// Ask on a terminal; refuse without one.
fn confirm(cluster: &Cluster) -> Result<()> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        bail!(Failure::usage(format!(
            "destroy removes cluster `{}` from every host (services, etcd data, certificates); stdin is not a terminal, so confirm with --yes",
            cluster.name
        )));
    }
    eprint!(
        "This removes cluster `{}` from {} host(s): services, units, etcd data, certificates, CNI files.\nType the cluster name to confirm: ",
        cluster.name,
        cluster.hosts.len()
    );
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    if line.trim() != cluster.name {
        bail!(Failure::new(
            ExitCode::Failed,
            "not confirmed; nothing was done"
        ));
    }
    Ok(())
}
