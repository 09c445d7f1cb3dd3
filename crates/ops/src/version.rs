//! Kubernetes versions as `--version` prints them, and the upgrade rules:
//! no downgrades, no skipped minor versions (1.30 -> 1.32 is refused, like
//! the Kubernetes version skew policy asks).

use std::cmp::Ordering;
use std::fmt;

/// `v1.30.11` (a pre-release or build suffix is kept for display and
/// equality, ignored for ordering).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
    pub text: String,
}

impl KubeVersion {
    /// Parses `v1.30.11`, `1.30.11`, `Kubernetes v1.30.11` (the whole
    /// `--version` line) and `v1.30.11-rc.1`.
    pub fn parse(s: &str) -> Option<KubeVersion> {
        let word = s.split_whitespace().find(|w| {
            w.trim_start_matches('v')
                .starts_with(|c: char| c.is_ascii_digit())
        })?;
        let text = if word.starts_with('v') {
            word.to_string()
        } else {
            format!("v{word}")
        };
        let core = text[1..].split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().unwrap_or("0").parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(KubeVersion {
            major,
            minor,
            patch,
            text,
        })
    }

    fn key(&self) -> (u32, u32, u32) {
        (self.major, self.minor, self.patch)
    }
}

impl fmt::Display for KubeVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// What moving one host from `running` to `target` means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Already there.
    Current,
    /// A patch or next-minor upgrade.
    Upgrade,
    /// Refused: the bundle is older than what runs.
    Downgrade,
    /// Refused: more than one minor version at once, or another major.
    Skip,
}

pub fn step(running: &KubeVersion, target: &KubeVersion) -> Step {
    if running == target {
        return Step::Current;
    }
    match running.key().cmp(&target.key()) {
        Ordering::Greater => Step::Downgrade,
        // Same numbers, different suffix: a release is newer than its rc.
        Ordering::Equal if !running.text.contains('-') => Step::Downgrade,
        Ordering::Equal => Step::Upgrade,
        Ordering::Less if running.major != target.major => Step::Skip,
        Ordering::Less if target.minor > running.minor + 1 => Step::Skip,
        Ordering::Less => Step::Upgrade,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> KubeVersion {
        KubeVersion::parse(s).unwrap()
    }

    #[test]
    fn parses_what_binaries_print() {
        assert_eq!(v("Kubernetes v1.30.11").key(), (1, 30, 11));
        assert_eq!(v("v1.30.1\n").text, "v1.30.1");
        assert_eq!(v("1.29.0").text, "v1.29.0");
        assert_eq!(v("v1.31.0-rc.1").key(), (1, 31, 0));
        assert_eq!(KubeVersion::parse("Kubernetes"), None);
        assert_eq!(KubeVersion::parse("v1.x.1"), None);
        assert_eq!(KubeVersion::parse("v1.2.3.4"), None);
    }

    #[test]
    fn upgrade_rules() {
        assert_eq!(step(&v("v1.30.1"), &v("v1.30.11")), Step::Upgrade);
        assert_eq!(step(&v("v1.30.11"), &v("v1.31.0")), Step::Upgrade);
        assert_eq!(step(&v("v1.30.11"), &v("v1.30.11")), Step::Current);
        assert_eq!(step(&v("v1.30.11"), &v("v1.30.1")), Step::Downgrade);
        assert_eq!(step(&v("v1.31.0"), &v("v1.30.9")), Step::Downgrade);
        assert_eq!(step(&v("v1.30.1"), &v("v1.32.0")), Step::Skip);
        assert_eq!(step(&v("v1.30.1"), &v("v2.0.0")), Step::Skip);
        assert_eq!(step(&v("v1.31.0-rc.1"), &v("v1.31.0")), Step::Upgrade);
        assert_eq!(step(&v("v1.31.0"), &v("v1.31.0-rc.1")), Step::Downgrade);
    }
}
