//! From the two parsed files to a [`Cluster`], in three steps:
//! [`merge`] turns the entries of `hosts.yml` into hosts (one per IP, however
//! many groups list it), [`rules`] checks what no single field can (names,
//! group sizes, networks, ports across hosts and files), and [`derive`]
//! computes the values every role reads.
//!
//! Diagnostics are emitted in file order per host, as operators read them:
//! a host's merge conflicts and then its own rules, before the next host.
//! That is why this function interleaves `merge` and `rules` per host.

mod derive;
mod merge;
mod rules;

use std::path::Path;

use crate::cluster::{Cluster, Host};
use crate::diag::{Diagnostic, Reporter};
use crate::hosts::HostsDoc;
use crate::settings::Settings;

/// The files a diagnostic can point at.
#[derive(Clone, Copy)]
pub(crate) struct Files<'a> {
    pub hosts: &'a Path,
    pub config: &'a Path,
}

/// Merge entries into hosts, check cross-field rules, derive values. `None`
/// when any rule failed (the reasons are in `diags`).
pub(crate) fn resolve(
    name: String,
    dir: &Path,
    files: Files<'_>,
    doc: HostsDoc,
    settings: Settings,
    diags: &mut Vec<Diagnostic>,
) -> Option<Cluster> {
    let before = diags.len();
    let mut merged = Vec::new();
    let mut hrep = Reporter {
        file: files.hosts,
        out: diags,
    };
    for (ip, entries) in merge::entries_by_ip(&doc, &mut hrep) {
        let host = merge::host(ip, &entries, &doc.ssh, dir, &mut hrep);
        rules::host(&host, &mut hrep);
        merged.push(host);
    }
    rules::cluster(&merged, &doc, &settings, files, diags);
    if diags.len() > before {
        return None;
    }

    let hosts: Vec<Host> = merged.into_iter().map(|m| m.host).collect();
    let derived = derive::derive(&hosts, &settings)?;
    Some(Cluster {
        name,
        dir: dir.to_path_buf(),
        derived,
        hosts,
        settings,
    })
}
