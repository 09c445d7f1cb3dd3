//! One transactional edit of `hosts.yml`, the only way day-2 commands
//! change it.
//!
//! The rule: compute, validate, do the work, commit atomically, and refuse
//! if the file changed meanwhile.
//!
//! 1. [`Transaction::stage`] reads `hosts.yml` once (its exact bytes are
//!    kept), applies the [`Edit`]s in memory with the in-place text edits of
//!    [`crate::edit`], and loads the result as a [`Cluster`] with
//!    [`Cluster::load_with_hosts`]: an invalid result is refused before
//!    anything is written, with messages naming the real `hosts.yml` and
//!    the line of the would-be text.
//! 2. The caller does its work on the hosts with [`Transaction::cluster`].
//! 3. [`Transaction::commit`] replaces the file atomically, only if it still
//!    holds exactly the bytes read in step 1; otherwise it writes nothing
//!    and says so ([`CommitError::Changed`]). Dropping a transaction
//!    without committing writes nothing: a failed command leaves the file
//!    byte-identical.
//!
//! The cluster lock keeps ezctl commands apart; the byte comparison is for
//! everyone else (an operator's editor, a script, a second controller).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::cluster::{Cluster, LoadError, HOSTS_FILE};
use crate::diag::Diagnostics;
use crate::edit::{self, EditError};
use crate::hosts::Group;
use crate::render::HostLine;

/// One change to `hosts.yml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Add a host to a group.
    Add(Group, HostLine),
    /// Remove the host with this IP from a group.
    Remove(Group, String),
}

impl Edit {
    /// `text` with this edit applied (see [`edit::add_host`],
    /// [`edit::remove_host`]).
    pub fn apply(&self, text: &str) -> Result<String, EditError> {
        match self {
            Edit::Add(group, line) => edit::add_host(text, *group, line),
            Edit::Remove(group, ip) => edit::remove_host(text, *group, ip),
        }
    }
}

/// Why a transaction could not be staged. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// `hosts.yml` could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// `hosts.yml` is not UTF-8 text, so it cannot be edited as text.
    #[error("{path} is not valid UTF-8 text")]
    NotText { path: PathBuf },
    /// An edit does not apply to the text (the host is already listed, or
    /// not listed, or the layout is not understood).
    #[error(transparent)]
    Edit(#[from] EditError),
    /// The edited inventory does not validate. The diagnostics name the
    /// real `hosts.yml` (and `config.yml`) and the line of the edited text.
    #[error("{0}")]
    Invalid(Diagnostics),
    /// A file the load needs (`config.yml`) could not be read.
    #[error(transparent)]
    Load(LoadError),
}

/// Why a commit wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The file on disk is no longer the one staged from: someone else
    /// wrote it meanwhile. It is left as they left it; `intended` is the
    /// text this transaction would have written.
    #[error("{} changed since it was read; it was left as it is and nothing was written", path.display())]
    Changed { path: PathBuf, intended: String },
    /// Reading the file again or writing the new one failed; the file is
    /// either untouched or wholly replaced (the rename is atomic).
    #[error("writing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `hosts.yml` with edits applied in memory, validated, not yet written.
#[derive(Debug)]
pub struct Transaction {
    path: PathBuf,
    /// The file's bytes when staged; commit compares the file with these.
    before: Vec<u8>,
    after: String,
    cluster: Cluster,
}

impl Transaction {
    /// Read `cluster_dir/hosts.yml`, apply `edits` in order, and load the
    /// result (with the folder's `config.yml`) as a cluster. Nothing is
    /// written. No edits stages the file as it is.
    pub fn stage(cluster_dir: &Path, edits: &[Edit]) -> Result<Transaction, StageError> {
        let path = cluster_dir.join(HOSTS_FILE);
        let before = std::fs::read(&path).map_err(|source| StageError::Read {
            path: path.clone(),
            source,
        })?;
        let mut after = std::str::from_utf8(&before)
            .map_err(|_| StageError::NotText { path: path.clone() })?
            .to_string();
        for e in edits {
            after = e.apply(&after)?;
        }
        let cluster = Cluster::load_with_hosts(cluster_dir, &after).map_err(|e| match e {
            LoadError::Invalid(d) => StageError::Invalid(d),
            other => StageError::Load(other),
        })?;
        Ok(Transaction {
            path,
            before,
            after,
            cluster,
        })
    }

    /// The cluster as it will be once committed; paths point at the real
    /// folder.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// The `hosts.yml` this transaction writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The text commit writes.
    pub fn text(&self) -> &str {
        &self.after
    }

    /// Whether committing changes the file (an add of hosts all already
    /// listed changes nothing).
    pub fn changes_anything(&self) -> bool {
        self.before != self.after.as_bytes()
    }

    /// Write the edited text over `hosts.yml` if the file still holds the
    /// bytes staged from. Nothing to change writes nothing.
    ///
    /// The new text goes to a temp file in the same folder (created
    /// exclusively, so a planted symlink is never followed), gets the old
    /// file's mode, is fsynced, and only then is the file compared again
    /// and the temp file renamed over it, so the window in which another
    /// writer could slip in is one comparison and one rename. The folder is
    /// fsynced so the rename survives a crash. On any error the temp file
    /// is removed.
    pub fn commit(self) -> Result<(), CommitError> {
        if !self.changes_anything() {
            return Ok(());
        }
        let io = |source: std::io::Error| CommitError::Io {
            path: self.path.clone(),
            source,
        };
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let changed = || CommitError::Changed {
            path: self.path.clone(),
            intended: self.after.clone(),
        };
        // A file removed meanwhile is a change like any other: not recreated.
        let mode = match file_mode(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(changed()),
            Err(e) => return Err(io(e)),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".hosts.yml.ezctl-")
            .tempfile_in(dir)
            .map_err(io)?;
        tmp.write_all(self.after.as_bytes()).map_err(io)?;
        set_mode(tmp.as_file(), mode).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        let now = match std::fs::read(&self.path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(e)),
        };
        if now.as_deref() != Some(self.before.as_slice()) {
            // `tmp` is removed when dropped here.
            return Err(changed());
        }
        tmp.persist(&self.path).map_err(|e| io(e.error))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)
    }
}

fn file_mode(path: &Path) -> std::io::Result<u32> {
    use std::os::unix::fs::PermissionsExt;
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

fn set_mode(file: &std::fs::File, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(mode))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::CONFIG_FILE;
    use std::os::unix::fs::PermissionsExt;

    const HOSTS: &str = "# lab\nssh:\n  user: root\n  key: ssh/id_ed25519\netcd:\n  - 10.0.0.1\nkube_master:\n  - 10.0.0.1\nkube_node:\n  - 10.0.0.2   # worker\n";

    fn cluster_dir() -> (tempfile::TempDir, PathBuf) {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("c1");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(HOSTS_FILE), HOSTS).unwrap();
        std::fs::write(dir.join(CONFIG_FILE), "ETCD_DATA_DIR: /data/etcd\n").unwrap();
        (t, dir)
    }

    fn node(ip: &str, name: Option<&str>) -> Edit {
        Edit::Add(
            Group::KubeNode,
            HostLine {
                ip: ip.into(),
                name: name.map(Into::into),
                ..HostLine::default()
            },
        )
    }

    fn on_disk(dir: &Path) -> String {
        std::fs::read_to_string(dir.join(HOSTS_FILE)).unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_valid_edit_commits_exactly_the_edited_text() {
        let (_t, dir) = cluster_dir();
        let tx = Transaction::stage(&dir, &[node("10.0.0.3", Some("w3"))]).unwrap();
        let want = "# lab\nssh:\n  user: root\n  key: ssh/id_ed25519\netcd:\n  - 10.0.0.1\nkube_master:\n  - 10.0.0.1\nkube_node:\n  - 10.0.0.2   # worker\n  - { ip: 10.0.0.3, name: w3 }\n";
        assert_eq!(tx.text(), want);
        assert!(tx.changes_anything());
        assert_eq!(tx.path(), dir.join(HOSTS_FILE));
        // The staged cluster is the real folder's, with the new host.
        let c = tx.cluster();
        assert_eq!(c.dir, dir);
        assert_eq!(c.name, "c1");
        assert_eq!(c.settings.text("ETCD_DATA_DIR"), "/data/etcd");
        assert!(c.host("w3").is_some());
        for h in &c.hosts {
            assert_eq!(
                h.ssh.key.as_deref(),
                Some(dir.join("ssh/id_ed25519").as_path())
            );
        }
        // Not written until commit.
        assert_eq!(on_disk(&dir), HOSTS);
        tx.commit().unwrap();
        assert_eq!(on_disk(&dir), want);
        // What was written loads as what was staged.
        assert!(Cluster::load(&dir).unwrap().host("w3").is_some());
    }

    #[test]
    fn several_edits_apply_in_order() {
        let (_t, dir) = cluster_dir();
        let tx = Transaction::stage(
            &dir,
            &[
                node("10.0.0.3", None),
                Edit::Remove(Group::KubeNode, "10.0.0.2".into()),
            ],
        )
        .unwrap();
        tx.commit().unwrap();
        let now = on_disk(&dir);
        assert!(now.ends_with("kube_node:\n  - 10.0.0.3\n"), "{now}");
    }

    #[test]
    fn an_invalid_edit_is_refused_naming_the_real_file_and_line() {
        let (_t, dir) = cluster_dir();
        let hosts = dir.join(HOSTS_FILE).display().to_string();
        // A second host with the same node name as 10.0.0.2's default.
        let e = Transaction::stage(&dir, &[node("10.0.0.3", Some("k8s-10-0-0-2"))]).unwrap_err();
        let StageError::Invalid(d) = &e else {
            panic!("expected diagnostics, got {e:?}")
        };
        let text = d.to_string();
        assert!(text.contains("already used by 10.0.0.2"), "{text}");
        // Line 11 is the added entry, in the would-be text.
        assert!(text.contains(&format!("{hosts}:11:")), "{text}");
        assert_eq!(on_disk(&dir), HOSTS);

        // An address that is not one: the text edit itself accepts it, the
        // validation does not.
        let e = Transaction::stage(&dir, &[node("10.0.0.300", None)]).unwrap_err();
        let StageError::Invalid(d) = &e else {
            panic!("expected diagnostics, got {e:?}")
        };
        let text = d.to_string();
        assert!(text.starts_with(&format!("{hosts}:11:")), "{text}");
        assert!(d.iter().all(|x| x.file == dir.join(HOSTS_FILE)), "{text}");
        assert_eq!(on_disk(&dir), HOSTS);
        assert_eq!(entries(&dir), [CONFIG_FILE, HOSTS_FILE]);
    }

    #[test]
    fn an_edit_that_does_not_apply_is_refused() {
        let (_t, dir) = cluster_dir();
        // The IP is already in the group: the text edit refuses it.
        match Transaction::stage(&dir, &[node("10.0.0.2", None)]) {
            Err(StageError::Edit(EditError::AlreadyListed { ip, group })) => {
                assert_eq!((ip.as_str(), group), ("10.0.0.2", "kube_node"));
            }
            other => panic!("expected AlreadyListed, got {other:?}"),
        }
        match Transaction::stage(&dir, &[Edit::Remove(Group::KubeNode, "10.0.0.9".into())]) {
            Err(StageError::Edit(e)) => {
                assert!(e.to_string().contains("not listed in kube_node"), "{e}")
            }
            other => panic!("expected NotListed, got {other:?}"),
        }
        // A duplicate IP from two edits of one transaction.
        match Transaction::stage(&dir, &[node("10.0.0.3", None), node("10.0.0.3", None)]) {
            Err(StageError::Edit(EditError::AlreadyListed { .. })) => {}
            other => panic!("expected AlreadyListed, got {other:?}"),
        }
        assert_eq!(on_disk(&dir), HOSTS);
    }

    #[test]
    fn a_missing_file_is_a_read_error() {
        let t = tempfile::tempdir().unwrap();
        match Transaction::stage(t.path(), &[]) {
            Err(StageError::Read { path, .. }) => assert_eq!(path, t.path().join(HOSTS_FILE)),
            other => panic!("expected Read, got {other:?}"),
        }
    }

    #[test]
    fn dropping_without_commit_leaves_the_file_byte_identical() {
        let (_t, dir) = cluster_dir();
        let before = std::fs::metadata(dir.join(HOSTS_FILE)).unwrap();
        let tx = Transaction::stage(&dir, &[node("10.0.0.3", None)]).unwrap();
        drop(tx);
        assert_eq!(on_disk(&dir), HOSTS);
        let after = std::fs::metadata(dir.join(HOSTS_FILE)).unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::ino(&before),
            std::os::unix::fs::MetadataExt::ino(&after),
            "the file was not replaced"
        );
        assert_eq!(entries(&dir), [CONFIG_FILE, HOSTS_FILE]);
    }

    #[test]
    fn a_file_changed_meanwhile_is_refused_and_left_as_the_other_writer_left_it() {
        let (_t, dir) = cluster_dir();
        let tx = Transaction::stage(&dir, &[node("10.0.0.3", None)]).unwrap();
        let edited = format!("{HOSTS}# edited by hand\n");
        std::fs::write(dir.join(HOSTS_FILE), &edited).unwrap();
        match tx.commit() {
            Err(e @ CommitError::Changed { .. }) => {
                assert!(e.to_string().contains("changed since it was read"), "{e}");
                let CommitError::Changed { path, intended } = e else {
                    unreachable!()
                };
                assert_eq!(path, dir.join(HOSTS_FILE));
                assert!(intended.contains("10.0.0.3"), "{intended}");
            }
            other => panic!("expected Changed, got {other:?}"),
        }
        assert_eq!(on_disk(&dir), edited);
        assert_eq!(
            entries(&dir),
            [CONFIG_FILE, HOSTS_FILE],
            "no temp file left"
        );

        // A change that only touches bytes the edit ignores (a trailing
        // space) still counts: the rule is byte identity.
        let tx = Transaction::stage(&dir, &[node("10.0.0.3", None)]).unwrap();
        std::fs::write(dir.join(HOSTS_FILE), format!("{edited} ")).unwrap();
        assert!(matches!(tx.commit(), Err(CommitError::Changed { .. })));

        // A removed file is a change too, and is not recreated.
        let tx = Transaction::stage(&dir, &[node("10.0.0.4", None)]).unwrap();
        std::fs::remove_file(dir.join(HOSTS_FILE)).unwrap();
        assert!(matches!(tx.commit(), Err(CommitError::Changed { .. })));
        assert!(!dir.join(HOSTS_FILE).exists());
        assert_eq!(entries(&dir), [CONFIG_FILE]);
    }

    #[test]
    fn the_commit_is_atomic_and_keeps_the_mode() {
        let (_t, dir) = cluster_dir();
        let path = dir.join(HOSTS_FILE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        let tx = Transaction::stage(&dir, &[node("10.0.0.3", None)]).unwrap();
        tx.commit().unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
        // Replaced by rename, not rewritten in place: a reader holding the
        // old file never sees a half-written one.
        assert_ne!(std::os::unix::fs::MetadataExt::ino(&meta), inode);
        assert_eq!(
            entries(&dir),
            [CONFIG_FILE, HOSTS_FILE],
            "no temp file left"
        );
    }

    /// An earlier commit used the fixed name `hosts.yml.ezctl-tmp` and
    /// followed a symlink planted there.
    #[test]
    fn the_commit_follows_no_planted_symlink() {
        let (_t, dir) = cluster_dir();
        let victim = dir.join("victim");
        std::fs::write(&victim, "untouched").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join("hosts.yml.ezctl-tmp")).unwrap();
        let tx = Transaction::stage(&dir, &[node("10.0.0.3", None)]).unwrap();
        let want = tx.text().to_string();
        tx.commit().unwrap();
        assert_eq!(on_disk(&dir), want);
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched");
        assert_eq!(
            entries(&dir),
            [CONFIG_FILE, HOSTS_FILE, "hosts.yml.ezctl-tmp", "victim"]
        );
    }

    #[test]
    fn nothing_to_change_writes_nothing() {
        let (_t, dir) = cluster_dir();
        let path = dir.join(HOSTS_FILE);
        let inode = std::os::unix::fs::MetadataExt::ino(&std::fs::metadata(&path).unwrap());
        let tx = Transaction::stage(&dir, &[]).unwrap();
        assert!(!tx.changes_anything());
        assert_eq!(tx.cluster().hosts.len(), 2);
        tx.commit().unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(std::os::unix::fs::MetadataExt::ino(&meta), inode);
        assert_eq!(on_disk(&dir), HOSTS);
    }
}
