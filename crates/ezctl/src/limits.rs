//! Process limits a run over many hosts needs: each host holds a socket
//! (two through a jump host), and a run also opens files to hash and send.
//! The soft open-files limit is often 1 024 while the hard one is far
//! higher, so a 1 000-host run would fail on "too many open files" for no
//! reason the operator chose.

use rustix::process::{getrlimit, setrlimit, Resource};

/// Raises the soft open-files limit to the hard one. Returns the limit in
/// force afterwards (`None`: unlimited, or the limit could not be read).
/// Failing to raise it is not an error: the run goes on with what it has.
pub fn raise_open_files() -> Option<u64> {
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current != limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
    getrlimit(Resource::Nofile).current
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_ends_at_the_hard_one() {
        // Start from a lowered soft limit, as a default login has.
        let before = getrlimit(Resource::Nofile);
        if let Some(max) = before.maximum {
            let lowered = rustix::process::Rlimit {
                current: Some(max.min(256)),
                maximum: before.maximum,
            };
            setrlimit(Resource::Nofile, lowered).expect("lower the soft limit");
            assert_eq!(getrlimit(Resource::Nofile).current, Some(max.min(256)));
        }
        let now = raise_open_files();
        assert_eq!(now, getrlimit(Resource::Nofile).maximum);
    }
}
