//! One [`Host`] per IP from the entries of `hosts.yml`. A host may be listed
//! in several groups; its entries must then agree on its name and ssh
//! settings, which only merging can see, so those conflicts are reported
//! here.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::cluster::{default_node_name, Host, SshTarget};
use crate::diag::Reporter;
use crate::hosts::{Entry, Group, HostsDoc, SshSettings};
use crate::yaml::Pos;

/// A merged host, with what the rules need to point back at its entries.
pub(super) struct Merged<'d> {
    pub host: Host,
    /// Where the node name was written (or the host's first entry, for a
    /// default name), and that field's path.
    pub name_pos: Pos,
    pub name_field: String,
    /// The jump host set on this host itself; a cluster-wide one is not
    /// the host's own choice, so it is left out.
    pub own_jump: Option<String>,
    /// The entry that gave the host's ssh settings (else its first entry).
    pub ssh_entry: &'d Entry,
}

/// Entries with an IP, grouped by IP in the order first listed. An IP listed
/// twice in one group is reported and the repeat left out.
pub(super) fn entries_by_ip<'d>(
    doc: &'d HostsDoc,
    hrep: &mut Reporter<'_>,
) -> Vec<(IpAddr, Vec<&'d Entry>)> {
    let mut by_ip: Vec<(IpAddr, Vec<&Entry>)> = Vec::new();
    let mut seen_in_group: BTreeMap<(Group, IpAddr), Pos> = BTreeMap::new();
    for e in &doc.entries {
        let Some(ip) = e.ip else { continue };
        if let Some(first) = seen_in_group.insert((e.group, ip), e.pos) {
            hrep.error(
                e.pos,
                &e.field,
                format!(
                    "{ip} is listed twice in {} (first on line {})",
                    e.group.key(),
                    first.line
                ),
            );
            continue;
        }
        match by_ip.iter_mut().find(|(i, _)| *i == ip) {
            Some((_, list)) => list.push(e),
            None => by_ip.push((ip, vec![e])),
        }
    }
    by_ip
}

/// The host at `ip` from its entries (at least one), with the cluster-wide
/// ssh settings `defaults` under its own.
pub(super) fn host<'d>(
    ip: IpAddr,
    entries: &[&'d Entry],
    defaults: &SshSettings,
    dir: &Path,
    hrep: &mut Reporter<'_>,
) -> Merged<'d> {
    let first = entries[0];
    let mut acc = Accumulated::default();
    for e in entries {
        acc.add(ip, e, hrep);
    }
    let (node_name, name_pos, name_field) = match acc.name {
        Some((n, e, pos)) => (n, pos, format!("{}.name", e.field)),
        None => (default_node_name(ip), first.pos, first.field.clone()),
    };
    let merged = acc.ssh.or(defaults);
    let key = merged.key.as_deref().map(|k| resolve_path(dir, k));
    Merged {
        host: Host {
            ip,
            name: node_name,
            groups: entries.iter().map(|e| e.group).collect(),
            labels: acc.labels,
            ssh: SshTarget {
                user: merged.user.unwrap_or_else(|| "root".into()),
                port: merged.port.unwrap_or(22),
                key,
                jump: merged.jump,
                sudo: merged.sudo.unwrap_or(false),
            },
            lb_role: acc.lb_role,
            harbor_new_install: acc.new_install,
        },
        name_pos,
        name_field,
        own_jump: acc.ssh.jump,
        ssh_entry: acc.ssh_from.unwrap_or(first),
    }
}

/// What the entries of one host say so far.
#[derive(Default)]
struct Accumulated<'d> {
    /// The first name given, with its entry and position.
    name: Option<(String, &'d Entry, Pos)>,
    ssh: SshSettings,
    ssh_from: Option<&'d Entry>,
    labels: BTreeMap<String, String>,
    lb_role: Option<String>,
    new_install: bool,
}

impl<'d> Accumulated<'d> {
    /// Takes in one more entry. Labels add up; for `lb_role` and
    /// `new_install` the last entry that sets one wins.
    fn add(&mut self, ip: IpAddr, e: &'d Entry, hrep: &mut Reporter<'_>) {
        self.add_name(ip, e, hrep);
        self.add_ssh(ip, e, hrep);
        self.labels.extend(e.labels.clone());
        if let Some((r, _)) = &e.lb_role {
            self.lb_role = Some(r.clone());
        }
        if let Some(n) = e.new_install {
            self.new_install = n;
        }
    }

    fn add_name(&mut self, ip: IpAddr, e: &'d Entry, hrep: &mut Reporter<'_>) {
        let Some((n, pos)) = &e.name else { return };
        match &self.name {
            Some((prev, prev_e, _)) if prev != n => hrep.error_help(
                *pos,
                &format!("{}.name", e.field),
                format!(
                    "{ip} is named `{n}` here but `{prev}` in {} (line {})",
                    prev_e.group.key(),
                    prev_e.pos.line
                ),
                "give a host the same name in every group, or name it once",
            ),
            Some(_) => {}
            None => self.name = Some((n.clone(), e, *pos)),
        }
    }

    fn add_ssh(&mut self, ip: IpAddr, e: &'d Entry, hrep: &mut Reporter<'_>) {
        if e.ssh == SshSettings::default() {
            return;
        }
        match self.ssh_from {
            Some(prev) if prev.ssh != e.ssh => hrep.error_help(
                e.pos,
                &format!("{}.ssh", e.field),
                format!(
                    "{ip} has different ssh settings here than in {} (line {})",
                    prev.group.key(),
                    prev.pos.line
                ),
                "set a host's ssh settings once",
            ),
            _ => {
                self.ssh = e.ssh.clone();
                self.ssh_from = Some(e);
            }
        }
    }
}

/// A key path from `hosts.yml`: `~/` is the user's home, a relative path is
/// relative to the cluster folder (where the file that names it lives).
fn resolve_path(dir: &Path, p: &str) -> PathBuf {
    if let Some(rest) = p.strip_prefix("~/") {
        if let Some(home) = std::env::var_os("HOME") {
            return PathBuf::from(home).join(rest);
        }
    }
    let path = PathBuf::from(p);
    if path.is_absolute() {
        path
    } else {
        dir.join(path)
    }
}
