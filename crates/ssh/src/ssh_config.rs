//! A small reader for OpenSSH client config (`~/.ssh/config`): the keywords
//! that decide where and how to connect — Host, Match all, HostName, User,
//! Port, IdentityFile, ProxyJump. Everything else is ignored, as are `Match`
//! blocks other than `Match all` and `Include` (documented limitation).

use std::path::{Path, PathBuf};

use crate::error::SshError;
use crate::host::{home_dir, HostSpec};
use crate::pattern;

/// A parsed config file. `SshConfig::default()` is an empty config.
#[derive(Debug, Default, Clone)]
pub struct SshConfig {
    blocks: Vec<Block>,
}

#[derive(Debug, Clone)]
struct Block {
    /// `None` for a `Match` block we do not evaluate: it never applies.
    patterns: Option<Vec<String>>,
    options: Vec<(String, String)>,
}

/// The settings that apply to one host name, first value wins (as in ssh).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostConfig {
    pub hostname: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    /// Raw values (`~` and `%` tokens not yet expanded), in order.
    pub identity_files: Vec<String>,
    pub proxy_jump: Option<String>,
}

/// Hops of a ProxyJump chain can themselves have ProxyJump; stop cycles.
const MAX_JUMP_DEPTH: usize = 8;

impl SshConfig {
    /// Parse config text; `origin` is only used in error messages.
    pub fn parse(text: &str, origin: &Path) -> Result<Self, SshError> {
        let err = |line: usize, message: String| SshError::Config {
            path: origin.to_path_buf(),
            line,
            message,
        };
        // Lines before the first Host apply to every host.
        let mut blocks = vec![Block {
            patterns: Some(vec!["*".to_string()]),
            options: Vec::new(),
        }];
        for (idx, raw) in text.lines().enumerate() {
            let lineno = idx + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let split = line
                .find(|c: char| c.is_whitespace() || c == '=')
                .unwrap_or(line.len());
            let keyword = line[..split].to_ascii_lowercase();
            let rest = line[split..].trim_start();
            let rest = rest.strip_prefix('=').unwrap_or(rest).trim();
            let args = split_args(rest).map_err(|m| err(lineno, m))?;
            if args.is_empty() {
                return Err(err(lineno, format!("`{keyword}` needs a value")));
            }
            match keyword.as_str() {
                "host" => blocks.push(Block {
                    patterns: Some(args),
                    options: Vec::new(),
                }),
                "match" => {
                    let all = args.len() == 1 && args[0].eq_ignore_ascii_case("all");
                    blocks.push(Block {
                        patterns: all.then(|| vec!["*".to_string()]),
                        options: Vec::new(),
                    });
                }
                "port" => {
                    let port: u16 = args[0]
                        .parse()
                        .ok()
                        .filter(|p| *p != 0)
                        .ok_or_else(|| err(lineno, format!("bad port `{}`", args[0])))?;
                    push_option(&mut blocks, keyword, port.to_string());
                }
                _ => push_option(&mut blocks, keyword, args.join(" ")),
            }
        }
        Ok(SshConfig { blocks })
    }

    /// Read `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Self, SshError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(source) => Err(SshError::Io {
                host: String::new(),
                op: "read ssh config".into(),
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// `~/.ssh/config`, or an empty config without a home directory.
    pub fn load_default() -> Result<Self, SshError> {
        match home_dir() {
            Some(home) => Self::load(&home.join(".ssh/config")),
            None => Ok(Self::default()),
        }
    }

    /// The settings for `host` (the name as written, before HostName).
    pub fn lookup(&self, host: &str) -> HostConfig {
        let mut out = HostConfig::default();
        for block in &self.blocks {
            let applies = match &block.patterns {
                Some(p) => pattern::list_matches(p.iter().map(String::as_str), host),
                None => false,
            };
            if !applies {
                continue;
            }
            for (key, value) in &block.options {
                match key.as_str() {
                    "hostname" if out.hostname.is_none() => out.hostname = Some(value.clone()),
                    "user" if out.user.is_none() => out.user = Some(value.clone()),
                    "port" if out.port.is_none() => out.port = value.parse().ok(),
                    "identityfile" => out.identity_files.push(value.clone()),
                    "proxyjump" if out.proxy_jump.is_none() => out.proxy_jump = Some(value.clone()),
                    _ => {}
                }
            }
        }
        out
    }

    /// Fill what `spec` leaves unset from the config, like `ssh <addr>`
    /// would: HostName replaces `addr` (the inventory `name` stays), User,
    /// Port and IdentityFile fill empty fields, ProxyJump builds the jump
    /// chain when none is set. Jump hosts get the same treatment.
    pub fn apply(&self, spec: &mut HostSpec) {
        self.apply_depth(spec, 0);
    }

    fn apply_depth(&self, spec: &mut HostSpec, depth: usize) {
        let cfg = self.lookup(&spec.addr);
        let original = spec.addr.clone();
        if let Some(hostname) = &cfg.hostname {
            spec.addr = expand_tokens(hostname, &original, &original, 22, "");
        }
        if spec.user.is_none() {
            spec.user = cfg.user.clone();
        }
        if spec.port.is_none() {
            spec.port = cfg.port;
        }
        if spec.identity_files.is_empty() {
            let (addr, port, user) = (spec.addr.clone(), spec.port(), spec.user().to_string());
            spec.identity_files = cfg
                .identity_files
                .iter()
                .map(|f| PathBuf::from(expand_tokens(f, &original, &addr, port, &user)))
                .collect();
        }
        if depth >= MAX_JUMP_DEPTH {
            return;
        }
        if spec.jump.is_none() {
            if let Some(pj) = cfg.proxy_jump.as_deref() {
                spec.jump = parse_proxy_jump(pj).map(Box::new);
            }
        }
        if let Some(jump) = spec.jump.as_deref_mut() {
            self.apply_depth(jump, depth + 1);
        }
    }
}

fn push_option(blocks: &mut [Block], key: String, value: String) {
    if let Some(block) = blocks.last_mut() {
        block.options.push((key, value));
    }
}

/// Whitespace-separated arguments; double quotes group.
fn split_args(s: &str) -> Result<Vec<String>, String> {
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_quotes = false;
    let mut has = false;
    for c in s.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                has = true;
            }
            c if c.is_whitespace() && !in_quotes => {
                if has {
                    args.push(std::mem::take(&mut cur));
                    has = false;
                }
            }
            c => {
                cur.push(c);
                has = true;
            }
        }
    }
    if in_quotes {
        return Err("unterminated quote".into());
    }
    if has {
        args.push(cur);
    }
    Ok(args)
}

/// `~/` and the `%` tokens ssh documents for these keywords: %d home,
/// %h remote host, %n original name, %p port, %r remote user, %u local user.
fn expand_tokens(value: &str, original: &str, host: &str, port: u16, user: &str) -> String {
    let home = home_dir()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default();
    let local_user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let value = match value.strip_prefix("~/") {
        Some(rest) => format!("{home}/{rest}"),
        None => value.to_string(),
    };
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('d') => out.push_str(&home),
            Some('h') => out.push_str(host),
            Some('n') => out.push_str(original),
            Some('p') => out.push_str(&port.to_string()),
            Some('r') => out.push_str(user),
            Some('u') => out.push_str(&local_user),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// `[user@]host[:port]` hops, comma separated, first hop outermost; `none`
/// disables. Returns the hop nearest the target, with earlier hops as its jumps.
pub(crate) fn parse_proxy_jump(value: &str) -> Option<HostSpec> {
    if value.trim().eq_ignore_ascii_case("none") {
        return None;
    }
    let mut chain: Option<HostSpec> = None;
    for hop in value.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        let hop = hop.strip_prefix("ssh://").unwrap_or(hop);
        let (user, hostport) = match hop.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_string()), h),
            None => (None, hop),
        };
        let (host, port) = split_host_port(hostport);
        let mut spec = HostSpec::new(host);
        spec.user = user;
        spec.port = port;
        spec.jump = chain.take().map(Box::new);
        chain = Some(spec);
    }
    chain
}

/// `host`, `host:22`, `[v6::addr]:22`.
fn split_host_port(s: &str) -> (String, Option<u16>) {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host.to_string(), port);
        }
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h.to_string(), Some(port)),
            Err(_) => (s.to_string(), None),
        },
        _ => (s.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
# global defaults come first
IdentityFile ~/.ssh/global_key

Host bastion
    HostName 192.0.2.10
    User jumper
    Port=2200

Host 10.0.0.* !10.0.0.99
    User ops
    Port 2222
    IdentityFile "/keys/my cluster key"
    IdentityFile /keys/%r@%h
    ProxyJump bastion

Host *
    User fallback
    Port 22

Match host foo exec "true"
    User never
"#;

    fn cfg() -> SshConfig {
        SshConfig::parse(SAMPLE, Path::new("/test/config")).expect("sample parses")
    }

    #[test]
    fn first_value_wins_and_identity_files_accumulate() {
        let c = cfg().lookup("10.0.0.5");
        assert_eq!(c.user.as_deref(), Some("ops"));
        assert_eq!(c.port, Some(2222));
        assert_eq!(c.proxy_jump.as_deref(), Some("bastion"));
        assert_eq!(
            c.identity_files,
            vec!["~/.ssh/global_key", "/keys/my cluster key", "/keys/%r@%h"]
        );
        let c = cfg().lookup("10.0.0.99");
        assert_eq!(
            c.user.as_deref(),
            Some("fallback"),
            "negated pattern skips block"
        );
        assert_eq!(c.proxy_jump, None);
        let c = cfg().lookup("foo");
        assert_eq!(
            c.user.as_deref(),
            Some("fallback"),
            "Match blocks never apply"
        );
    }

    #[test]
    fn apply_fills_only_unset_fields_and_resolves_the_jump() {
        let mut spec = HostSpec::new("10.0.0.5");
        spec.port = Some(22);
        cfg().apply(&mut spec);
        assert_eq!(spec.name, "10.0.0.5");
        assert_eq!(spec.addr, "10.0.0.5");
        assert_eq!(spec.user.as_deref(), Some("ops"));
        assert_eq!(spec.port, Some(22), "explicit port kept");
        assert_eq!(
            spec.identity_files[1],
            PathBuf::from("/keys/my cluster key")
        );
        assert_eq!(spec.identity_files[2], PathBuf::from("/keys/ops@10.0.0.5"));
        let jump = spec.jump.as_deref().expect("jump from ProxyJump");
        assert_eq!(jump.name, "bastion");
        assert_eq!(jump.addr, "192.0.2.10", "HostName applied to the jump");
        assert_eq!((jump.user(), jump.port()), ("jumper", 2200));
        assert!(jump.jump.is_none());
    }

    #[test]
    fn explicit_user_and_keys_are_kept() {
        let mut spec = HostSpec::new("10.0.0.5");
        spec.user = Some("root".into());
        spec.identity_files = vec![PathBuf::from("/mine")];
        spec.jump = Some(Box::new(HostSpec::new("other")));
        cfg().apply(&mut spec);
        assert_eq!(spec.user(), "root");
        assert_eq!(spec.identity_files, vec![PathBuf::from("/mine")]);
        assert_eq!(spec.jump.as_deref().map(|j| j.addr.as_str()), Some("other"));
    }

    #[test]
    fn proxy_jump_chains() {
        let hop = parse_proxy_jump("a@first:2201,second,[fe80::1]:2203").expect("chain");
        assert_eq!((hop.addr.as_str(), hop.port), ("fe80::1", Some(2203)));
        let second = hop.jump.as_deref().expect("second");
        assert_eq!((second.addr.as_str(), second.port), ("second", None));
        let first = second.jump.as_deref().expect("first");
        assert_eq!(
            (first.addr.as_str(), first.user.as_deref(), first.port),
            ("first", Some("a"), Some(2201))
        );
        assert!(parse_proxy_jump("none").is_none());
    }

    #[test]
    fn cyclic_proxy_jump_terminates() {
        let c = SshConfig::parse(
            "Host a\n ProxyJump b\nHost b\n ProxyJump a\n",
            Path::new("x"),
        )
        .expect("parses");
        let mut spec = HostSpec::new("a");
        c.apply(&mut spec);
        let mut depth = 0;
        let mut cur = spec.jump.as_deref();
        while let Some(j) = cur {
            depth += 1;
            cur = j.jump.as_deref();
        }
        assert_eq!(depth, MAX_JUMP_DEPTH);
    }

    #[test]
    fn errors_carry_file_and_line() {
        let e = SshConfig::parse("Host x\n  Port nope\n", Path::new("/cfg")).unwrap_err();
        assert_eq!(e.to_string(), "/cfg:2: bad port `nope`");
        let e = SshConfig::parse("User \"open\n", Path::new("/cfg")).unwrap_err();
        assert_eq!(e.to_string(), "/cfg:1: unterminated quote");
    }

    #[test]
    fn missing_file_is_empty() {
        let c = SshConfig::load(Path::new("/nonexistent/ssh_config")).expect("empty");
        assert_eq!(c.lookup("x"), HostConfig::default());
    }
}
