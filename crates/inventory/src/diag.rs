//! Validation messages that point at a file, a line and a field.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::yaml::Pos;

/// One problem found in an inventory file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub pos: Pos,
    /// Dotted path of the field, e.g. `kube_node[1].name` or `SERVICE_CIDR`.
    pub field: String,
    pub message: String,
    /// What would be accepted instead, or how to fix it.
    pub help: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: ",
            self.file.display(),
            self.pos.line,
            self.pos.col
        )?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if let Some(help) = &self.help {
            write!(f, "\n    help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in one load, in file order. Loading never stops at the
/// first problem: operators fix a whole inventory in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Diagnostic> {
        self.0.iter()
    }

    pub(crate) fn sort(&mut self) {
        self.0.sort_by(|a, b| {
            (&a.file, a.pos.line, a.pos.col).cmp(&(&b.file, b.pos.line, b.pos.col))
        });
        self.0.dedup();
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// Collects diagnostics for one file.
pub(crate) struct Reporter<'a> {
    pub file: &'a Path,
    pub out: &'a mut Vec<Diagnostic>,
}

impl Reporter<'_> {
    pub fn error(&mut self, pos: Pos, field: &str, message: impl Into<String>) {
        self.push(pos, field, message.into(), None);
    }

    pub fn error_help(
        &mut self,
        pos: Pos,
        field: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.push(pos, field, message.into(), Some(help.into()));
    }

    fn push(&mut self, pos: Pos, field: &str, message: String, help: Option<String>) {
        self.out.push(Diagnostic {
            file: self.file.to_path_buf(),
            pos,
            field: field.to_string(),
            message,
            help,
        });
    }
}

/// The closest candidate to a misspelt name, if it is close enough to be a
/// plausible typo ("did you mean ...?").
pub fn did_you_mean<'a>(
    name: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let lower = name.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        let keys = ["SERVICE_CIDR", "CLUSTER_CIDR", "SECURE_PORT"];
        assert_eq!(did_you_mean("SERVICE_CIRD", keys), Some("SERVICE_CIDR"));
        assert_eq!(did_you_mean("service_cidr", keys), Some("SERVICE_CIDR"));
        assert_eq!(did_you_mean("TOTALLY_ELSE", keys), None);
        assert_eq!(
            did_you_mean("kube-master", ["kube_master", "kube_node"]),
            Some("kube_master")
        );
    }
}
