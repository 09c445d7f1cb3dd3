//! OpenSSH host patterns (`*`, `?`, `!negation`, comma or space lists),
//! shared by the known_hosts and ssh_config readers.

/// Glob match with `*` (any run) and `?` (one char), case-insensitive like
/// OpenSSH's host matching.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    let t: Vec<char> = text.to_lowercase().chars().collect();
    // Iterative matcher with one backtrack point: linear-ish, no recursion blowup.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// A list of patterns matches when at least one positive pattern matches and
/// no negated (`!pat`) pattern does.
pub(crate) fn list_matches<'a>(patterns: impl IntoIterator<Item = &'a str>, host: &str) -> bool {
    let mut positive = false;
    for pat in patterns {
        if let Some(neg) = pat.strip_prefix('!') {
            if glob(neg, host) {
                return false;
            }
        } else if glob(pat, host) {
            positive = true;
        }
    }
    positive
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob("*", "anything"));
        assert!(glob("10.0.0.*", "10.0.0.17"));
        assert!(!glob("10.0.0.*", "10.0.1.17"));
        assert!(glob("web-??", "web-01"));
        assert!(!glob("web-??", "web-001"));
        assert!(glob("*.Example.com", "a.b.example.COM"));
        assert!(glob("a*b*c", "aXbYc"));
        assert!(!glob("a*b*c", "aXbY"));
        assert!(glob("[10.0.0.1]:2222", "[10.0.0.1]:2222"));
    }

    #[test]
    fn negation_wins() {
        assert!(list_matches(["10.*", "!10.0.0.9"], "10.0.0.8"));
        assert!(!list_matches(["10.*", "!10.0.0.9"], "10.0.0.9"));
        assert!(
            !list_matches(["!10.0.0.9"], "10.0.0.8"),
            "negation alone never matches"
        );
    }
}
