//! Hostile inventory values against every role.
//!
//! Every string setting, every label key and value and the node name are
//! set, one at a time and bypassing validation, to each value of a hostile
//! corpus; every task of every role in `roles/` is rendered for a host that
//! is in every group, and compared with a render where the value is a plain
//! marker word. The rules:
//!
//! * a shell command keeps its structure for ANY value: the same words and
//!   operators, the value only ever inside one word, never an expansion,
//!   glob, comment or operator (the `quote` filter);
//! * a document (YAML and TOML parsed, anything else split into tokens) and
//!   a path keep their structure for every value the inventory accepts
//!   (`check` would refuse the others, so they never reach a role).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ez_engine::{RenderedTask, Role, Targets};
use ez_inventory::settings::{self, Kind, SETTINGS};
use ez_inventory::{syntax, Cluster};
use serde_json::json;

use ez_ops::home::Home;
use ez_ops::view;

/// A word no template treats specially and no value contains.
const MARK: &str = "ezmark";

/// Values that try to break out of a shell word, a quoted string, a YAML or
/// TOML document, a unit file or a directory; and some that are valid for
/// some setting but odd (so what validation accepts is rendered too).
const HOSTILE: &[&str] = &[
    "a; touch /tmp/ezctl-pwned #",
    "$(touch /tmp/ezctl-pwned)",
    "`touch /tmp/ezctl-pwned`",
    "x' y \"z",
    "a\nb: c",
    "\"]\n[evil]\nx = \"",
    "\"\nExecStartPre=/bin/sh -c id\n",
    "../../etc",
    "/",
    "/var/lib",
    "/srv/a/../../etc",
    "*",
    "a b",
    "-rf",
    "%h $HOME",
    "} server { listen 1; }",
    "~root",
    "a\\b",
    "# comment",
    "---\nkind: ClusterRoleBinding",
    "true",
    "",
    // Valid for some kinds.
    "/srv/ez-a_b.c+d",
    "v1.2.3-rc.1_x",
    "reg.example.com:5000/a/b-c_d.e:v1.2",
    "Z-a_b.9",
    "example.com/x_Y",
    "interface=eth.*|ens[0-9]+",
    "https://mirror.example.com/v2/",
];

/// What is being made hostile.
#[derive(Debug, Clone)]
enum Field {
    Setting(&'static settings::Setting),
    LabelKey,
    LabelValue,
    NodeName,
}

impl Field {
    fn name(&self) -> String {
        match self {
            Field::Setting(s) => s.key.to_string(),
            Field::LabelKey => "label key".into(),
            Field::LabelValue => "label value".into(),
            Field::NodeName => "node name".into(),
        }
    }

    /// The word a role's files use when this field reaches them.
    fn needle(&self) -> &str {
        match self {
            Field::Setting(s) => s.key,
            Field::LabelKey | Field::LabelValue => "labels",
            Field::NodeName => "node_name",
        }
    }

    fn accepts(&self, v: &str) -> bool {
        match self {
            Field::Setting(s) => settings::accepts(s.key, v),
            Field::LabelKey => syntax::label_key(v),
            Field::LabelValue => syntax::label_value(v),
            Field::NodeName => ez_inventory::cluster::valid_node_name(v),
        }
    }

    /// An empty value means "not set" for these, and templates branch on it.
    fn empty_means_unset(&self) -> bool {
        // "" selects a default rather than being written: calico's
        // autodetection then is kubernetes-internal-ip.
        matches!(self, Field::Setting(s) if matches!(s.kind, Kind::OptAbsPath | Kind::OptIp | Kind::Autodetect))
    }

    fn apply(&self, targets: &mut Targets, host: &str, v: &str) {
        match self {
            Field::Setting(s) => {
                let value = if s.kind.is_list() {
                    json!([v])
                } else {
                    json!(v)
                };
                targets.globals.insert(s.key.to_string(), value);
            }
            Field::LabelKey | Field::LabelValue | Field::NodeName => {
                let h = targets
                    .hosts
                    .iter_mut()
                    .find(|h| h.name == host)
                    .expect("host");
                match self {
                    Field::LabelKey => h.vars.insert("labels".into(), json!({ v: "a" })),
                    Field::LabelValue => h.vars.insert("labels".into(), json!({ "zone": v })),
                    _ => h.vars.insert("node_name".into(), json!(v)),
                };
            }
        }
    }
}

fn fields() -> Vec<Field> {
    let mut out: Vec<Field> = SETTINGS
        .iter()
        .filter(|s| !matches!(s.kind, Kind::Bool | Kind::Int { .. } | Kind::Port))
        .map(Field::Setting)
        .collect();
    out.extend([Field::LabelKey, Field::LabelValue, Field::NodeName]);
    out
}

// ---------------------------------------------------------------- shell --

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    /// `$x`, `${...}`, `$((...))`: its text.
    Param(String),
    /// `$(...)` or backquotes: the command inside.
    Sub(Vec<Tok>),
    /// An unquoted `*`, `?` or `[`.
    Glob(char),
    /// An unquoted `~` starting a word.
    Tilde,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(Vec<Part>),
    Op(String),
}

/// A POSIX shell lexer, enough for the commands roles run: words with
/// their quoting removed, expansions, globs, operators, comments.
struct Lexer {
    c: Vec<char>,
    i: usize,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.c.get(self.i).copied()
    }

    fn at(&self, off: usize) -> Option<char> {
        self.c.get(self.i + off).copied()
    }

    fn tokens(&mut self, close: Option<char>) -> Result<Vec<Tok>, String> {
        let mut out = Vec::new();
        loop {
            while matches!(self.peek(), Some(' ' | '\t')) {
                self.i += 1;
            }
            let Some(c) = self.peek() else {
                return match close {
                    Some(_) => Err("unterminated command substitution".into()),
                    None => Ok(out),
                };
            };
            if Some(c) == close {
                self.i += 1;
                return Ok(out);
            }
            match c {
                '#' => {
                    while self.peek().is_some_and(|c| c != '\n') {
                        self.i += 1;
                    }
                }
                '\n' => {
                    self.i += 1;
                    out.push(Tok::Op("\n".into()));
                }
                '\\' if self.at(1) == Some('\n') => self.i += 2,
                ';' | '&' | '|' | '<' | '>' | '(' | ')' => {
                    let two: String = self.c[self.i..(self.i + 2).min(self.c.len())]
                        .iter()
                        .collect();
                    let op = if ["&&", "||", ";;", ">>", ">&", "<&", "<<", "<>", ">|"]
                        .contains(&two.as_str())
                    {
                        two
                    } else {
                        c.to_string()
                    };
                    self.i += op.chars().count();
                    out.push(Tok::Op(op));
                }
                _ => out.push(Tok::Word(self.word()?)),
            }
        }
    }

    fn word(&mut self) -> Result<Vec<Part>, String> {
        let mut parts = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                ' ' | '\t' | '\n' | ';' | '&' | '|' | '<' | '>' | '(' | ')' => break,
                '\\' => {
                    self.i += 1;
                    match self.peek() {
                        Some('\n') => self.i += 1,
                        Some(n) => {
                            self.i += 1;
                            parts.push(Part::Lit(n.to_string()));
                        }
                        None => parts.push(Part::Lit("\\".into())),
                    }
                }
                '\'' => {
                    self.i += 1;
                    let start = self.i;
                    while self.peek().is_some_and(|c| c != '\'') {
                        self.i += 1;
                    }
                    if self.peek().is_none() {
                        return Err("unterminated single quote".into());
                    }
                    parts.push(Part::Lit(self.c[start..self.i].iter().collect()));
                    self.i += 1;
                }
                '"' => {
                    self.i += 1;
                    // An empty "" is still a word.
                    parts.push(Part::Lit(String::new()));
                    loop {
                        match self.peek() {
                            None => return Err("unterminated double quote".into()),
                            Some('"') => {
                                self.i += 1;
                                break;
                            }
                            Some('\\') => {
                                let n = self.at(1);
                                self.i += 2;
                                match n {
                                    Some('\n') => {}
                                    Some(n @ ('$' | '`' | '"' | '\\')) => {
                                        parts.push(Part::Lit(n.to_string()))
                                    }
                                    Some(n) => parts.push(Part::Lit(format!("\\{n}"))),
                                    None => return Err("unterminated double quote".into()),
                                }
                            }
                            Some('$') => parts.push(self.dollar()?),
                            Some('`') => parts.push(self.backquote()?),
                            Some(c) => {
                                self.i += 1;
                                parts.push(Part::Lit(c.to_string()));
                            }
                        }
                    }
                }
                '$' => parts.push(self.dollar()?),
                '`' => parts.push(self.backquote()?),
                '*' | '?' | '[' => {
                    self.i += 1;
                    parts.push(Part::Glob(c));
                }
                '~' if parts.is_empty() => {
                    self.i += 1;
                    parts.push(Part::Tilde);
                }
                c => {
                    self.i += 1;
                    parts.push(Part::Lit(c.to_string()));
                }
            }
        }
        Ok(merge(parts))
    }

    fn dollar(&mut self) -> Result<Part, String> {
        self.i += 1; // `$`
        match self.peek() {
            Some('(') if self.at(1) == Some('(') => {
                let start = self.i;
                let mut depth = 0;
                while let Some(c) = self.peek() {
                    self.i += 1;
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
                Ok(Part::Param(self.c[start..self.i].iter().collect()))
            }
            Some('(') => {
                self.i += 1;
                Ok(Part::Sub(self.tokens(Some(')'))?))
            }
            Some('{') => {
                let start = self.i;
                while self.peek().is_some_and(|c| c != '}') {
                    self.i += 1;
                }
                if self.peek().is_none() {
                    return Err("unterminated ${".into());
                }
                self.i += 1;
                Ok(Part::Param(self.c[start..self.i].iter().collect()))
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let start = self.i;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    self.i += 1;
                }
                Ok(Part::Param(self.c[start..self.i].iter().collect()))
            }
            Some(c) if c.is_ascii_digit() || "@*#?$!-".contains(c) => {
                self.i += 1;
                Ok(Part::Param(c.to_string()))
            }
            _ => Ok(Part::Lit("$".into())),
        }
    }

    fn backquote(&mut self) -> Result<Part, String> {
        self.i += 1;
        let start = self.i;
        while self.peek().is_some_and(|c| c != '`') {
            if self.peek() == Some('\\') {
                self.i += 1;
            }
            self.i += 1;
        }
        if self.peek().is_none() {
            return Err("unterminated backquote".into());
        }
        let inner: String = self.c[start..self.i].iter().collect();
        self.i += 1;
        Ok(Part::Sub(lex(&inner)?))
    }
}

fn merge(parts: Vec<Part>) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    for p in parts {
        match (out.last_mut(), p) {
            (Some(Part::Lit(a)), Part::Lit(b)) => a.push_str(&b),
            (_, p) => out.push(p),
        }
    }
    out
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    Lexer {
        c: s.chars().collect(),
        i: 0,
    }
    .tokens(None)
}

/// The baseline's tokens with the marker replaced by the value in every
/// literal: what the hostile command must lex to.
fn substitute(toks: &[Tok], v: &str) -> Vec<Tok> {
    toks.iter()
        .map(|t| match t {
            Tok::Op(o) => Tok::Op(o.clone()),
            Tok::Word(parts) => Tok::Word(merge(
                parts
                    .iter()
                    .map(|p| match p {
                        Part::Lit(s) => Part::Lit(s.replace(MARK, v)),
                        Part::Param(s) => Part::Param(s.replace(MARK, v)),
                        Part::Sub(t) => Part::Sub(substitute(t, v)),
                        other => other.clone(),
                    })
                    .collect(),
            )),
        })
        .collect()
}

/// `None` when `hostile` is `baseline` with the value inside words only.
fn shell_difference(baseline: &str, hostile: &str, v: &str) -> Option<String> {
    let want = match lex(baseline) {
        Ok(t) => substitute(&t, v),
        Err(e) => return Some(format!("baseline does not lex ({e}): {baseline}")),
    };
    match lex(hostile) {
        Ok(got) if got == want => None,
        Ok(_) => Some(format!("command structure changed: {hostile}")),
        Err(e) => Some(format!("command does not lex ({e}): {hostile}")),
    }
}

// ------------------------------------------------------------ documents --

#[derive(Debug, Clone, PartialEq)]
enum YamlEvent {
    Scalar { text: String, kind: &'static str },
    Alias,
    SeqStart,
    SeqEnd,
    MapStart,
    MapEnd,
    DocStart,
}

/// How a YAML 1.1 reader (Kubernetes' and containerd's) types a scalar.
fn yaml_type(text: &str, plain: bool) -> &'static str {
    if !plain {
        return "str";
    }
    let lower = text.to_ascii_lowercase();
    if matches!(lower.as_str(), "" | "~" | "null") {
        "null"
    } else if matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "on" | "off" | "y" | "n"
    ) {
        "bool"
    } else if text.parse::<f64>().is_ok() || text.starts_with("0x") || text.starts_with("0o") {
        "num"
    } else {
        "str"
    }
}

fn yaml_events(text: &str) -> Result<Vec<YamlEvent>, String> {
    use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
    use yaml_rust2::scanner::{Marker, TScalarStyle};
    struct Rx(Vec<YamlEvent>);
    impl MarkedEventReceiver for Rx {
        fn on_event(&mut self, ev: Event, _: Marker) {
            let e = match ev {
                Event::Scalar(text, style, _, _) => {
                    let kind = yaml_type(&text, matches!(style, TScalarStyle::Plain));
                    YamlEvent::Scalar { text, kind }
                }
                Event::Alias(_) => YamlEvent::Alias,
                Event::SequenceStart(..) => YamlEvent::SeqStart,
                Event::SequenceEnd => YamlEvent::SeqEnd,
                Event::MappingStart(..) => YamlEvent::MapStart,
                Event::MappingEnd => YamlEvent::MapEnd,
                Event::DocumentStart => YamlEvent::DocStart,
                _ => return,
            };
            self.0.push(e);
        }
    }
    let mut rx = Rx(Vec::new());
    Parser::new_from_str(text)
        .load(&mut rx, true)
        .map_err(|e| e.to_string())?;
    Ok(rx.0)
}

fn toml_substitute(v: &toml::Value, value: &str) -> toml::Value {
    match v {
        toml::Value::String(s) => toml::Value::String(s.replace(MARK, value)),
        toml::Value::Array(a) => {
            toml::Value::Array(a.iter().map(|x| toml_substitute(x, value)).collect())
        }
        toml::Value::Table(t) => toml::Value::Table(
            t.iter()
                .map(|(k, x)| (k.replace(MARK, value), toml_substitute(x, value)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Tokens of a file we do not parse (systemd units, nginx and keepalived
/// configuration, /etc/hosts): every character with a meaning in one of
/// them is a token of its own.
fn plain_tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in text.chars() {
        if c.is_whitespace() && c != '\n' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else if c == '\n' || ";{}[]()\"'=,#\\$%:`".contains(c) || c.is_control() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            out.push(c.to_string());
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn document_difference(path: &str, baseline: &str, hostile: &str, v: &str) -> Option<String> {
    if path.ends_with(".yaml") || path.ends_with(".yml") {
        let want: Vec<YamlEvent> = match yaml_events(baseline) {
            Ok(ev) => ev
                .into_iter()
                .map(|e| match e {
                    YamlEvent::Scalar { text, kind } => YamlEvent::Scalar {
                        text: text.replace(MARK, v),
                        kind,
                    },
                    other => other,
                })
                .collect(),
            Err(e) => return Some(format!("baseline {path} is not YAML: {e}")),
        };
        match yaml_events(hostile) {
            Ok(got) if got == want => None,
            Ok(_) => Some(format!("YAML structure of {path} changed")),
            Err(e) => Some(format!("{path} is no longer YAML: {e}")),
        }
    } else if path.ends_with(".toml") {
        let want = match toml::from_str::<toml::Value>(baseline) {
            Ok(t) => toml_substitute(&t, v),
            Err(e) => return Some(format!("baseline {path} is not TOML: {e}")),
        };
        match toml::from_str::<toml::Value>(hostile) {
            Ok(got) if got == want => None,
            Ok(_) => Some(format!("TOML structure of {path} changed")),
            Err(e) => Some(format!("{path} is no longer TOML: {e}")),
        }
    } else {
        let want: Vec<String> = plain_tokens(baseline)
            .into_iter()
            .map(|t| t.replace(MARK, v))
            .collect();
        (plain_tokens(hostile) != want).then(|| format!("token structure of {path} changed"))
    }
}

/// A path made with an accepted value must stay a plain absolute path.
fn path_difference(path: &str) -> Option<String> {
    let bad = !path.starts_with('/')
        || path.contains("//")
        || path.split('/').any(|p| p == ".." || p == ".")
        || path.chars().any(|c| c.is_whitespace() || c.is_control());
    bad.then(|| format!("path `{path}`"))
}

// ------------------------------------------------------------- the test --

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A cluster whose one host is in every group, with every optional branch
/// of the roles switched on.
fn cluster(dir: &Path) -> Cluster {
    let c = dir.join("clusters/hostile");
    std::fs::create_dir_all(&c).expect("mkdir");
    let host = "{ ip: 10.0.0.1, name: n1, labels: { zone: a } }";
    std::fs::write(
        c.join("hosts.yml"),
        format!(
            "etcd: [{host}]\nkube_master: [{host}]\nkube_node: [{host}]\nex_lb: [{{ ip: 10.0.0.1, lb_role: master }}]\nharbor: [10.0.0.1]\nchrony: [10.0.0.1]\n"
        ),
    )
    .expect("hosts.yml");
    std::fs::write(
        c.join("config.yml"),
        "EX_APISERVER_VIP: 10.0.0.250\nETCD_WAL_DIR: /var/lib/etcd-wal\nINSECURE_REG: [\"http://reg.local:5000\"]\nHARBOR_TLS_PORT: 8444\n",
    )
    .expect("config.yml");
    Cluster::load(&c).unwrap_or_else(|e| panic!("test cluster: {e}"))
}

fn roles() -> Vec<(Role, String)> {
    let dir = repo().join("roles");
    let mut folders: Vec<String> = std::fs::read_dir(&dir)
        .expect("roles/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    // Every entry point of every role (`etcd-restore`, `etcd-restore:stage`, ...).
    let names: Vec<(String, String)> = folders
        .iter()
        .flat_map(|f| {
            Role::entries(&dir, f)
                .into_iter()
                .map(move |n| (f.clone(), n))
        })
        .collect();
    names
        .into_iter()
        .map(|(folder, n)| {
            let role = Role::load(&dir, &n).unwrap_or_else(|e| panic!("role {n}: {e}"));
            // Everything a role reads: to render only the roles a field reaches.
            let mut text = String::new();
            for entry in walk(&dir.join(&folder)) {
                text.push_str(&std::fs::read_to_string(entry).unwrap_or_default());
            }
            (role, text)
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn render(roles: &[&Role], targets: &Targets) -> Vec<RenderedTask> {
    roles
        .iter()
        .flat_map(|r| {
            r.render_for_host(targets, "10.0.0.1")
                .unwrap_or_else(|e| panic!("role {}: {e}", r.name))
        })
        .collect()
}

struct Findings {
    violations: Vec<String>,
    /// Per field: renders where the value reached a command / a document.
    in_commands: BTreeMap<String, usize>,
    in_documents: BTreeMap<String, usize>,
}

fn compare(
    field: &Field,
    v: &str,
    base: &[RenderedTask],
    hostile: &[RenderedTask],
    f: &mut Findings,
) {
    let accepted = field.accepts(v);
    let name = field.name();
    let mut report = |strict: bool, t: &RenderedTask, what: String| {
        if strict || accepted {
            f.violations.push(format!(
                "{name} = {v:?} ({}accepted by check): {}/{}: {what}",
                if accepted { "" } else { "not " },
                t.role,
                t.task
            ));
        }
    };
    assert_eq!(base.len(), hostile.len(), "{name} = {v:?}: task count");
    for (b, h) in base.iter().zip(hostile) {
        assert!(
            b.error.is_none(),
            "baseline {}/{}: {:?}",
            b.role,
            b.task,
            b.error
        );
        if let Some(e) = &h.error {
            report(false, h, format!("does not render: {e}"));
            continue;
        }
        for (bc, hc) in b.commands.iter().zip(&h.commands) {
            if bc.contains(MARK) {
                *f.in_commands.entry(name.clone()).or_default() += 1;
            }
            if let Some(d) = shell_difference(bc, hc, v) {
                report(true, h, d);
            }
        }
        for ((path, bd), (hpath, hd)) in b.documents.iter().zip(&h.documents) {
            if bd.contains(MARK) {
                *f.in_documents.entry(name.clone()).or_default() += 1;
            }
            if let Some(d) = document_difference(path, bd, hd, v) {
                report(false, h, d);
            }
            if path.contains(MARK) {
                if let Some(d) = path_difference(hpath) {
                    report(false, h, d);
                }
            }
        }
        for (bp, hp) in b.paths.iter().zip(&h.paths) {
            if bp.contains(MARK) {
                if let Some(d) = path_difference(hp) {
                    report(false, h, d);
                }
            }
        }
    }
}

#[test]
fn the_checkers_see_what_they_look_for() {
    // Shell: quoted values pass, unquoted ones do not.
    assert_eq!(
        shell_difference("rm -rf 'ezmark'/x", "rm -rf 'a; b'/x", "a; b"),
        None
    );
    assert!(shell_difference("rm -rf ezmark/x", "rm -rf a; b/x", "a; b").is_some());
    assert!(shell_difference("echo \"ezmark\"", "echo \"$(id)\"", "$(id)").is_some());
    assert!(shell_difference("ls ezmark", "ls *", "*").is_some());
    assert!(shell_difference("ls ezmark", "ls a #b", "a #b").is_some());
    assert_eq!(shell_difference("ls ezmark", "ls '*'", "*"), None);
    assert!(shell_difference(
        "test -z \"$(ls -A ezmark)\"",
        "test -z \"$(ls -A a b)\"",
        "a b"
    )
    .is_some());
    assert_eq!(
        shell_difference(
            "test -z \"$(ls -A ezmark)\"",
            "test -z \"$(ls -A 'a b')\"",
            "a b"
        ),
        None
    );
    // Documents.
    assert!(document_difference("x.yaml", "k: ezmark\n", "k: a\nb: c\n", "a\nb: c").is_some());
    assert!(document_difference("x.yaml", "k: ezmark\n", "k: true\n", "true").is_some());
    assert_eq!(
        document_difference("x.yaml", "k: \"ezmark\"\n", "k: \"a: b\"\n", "a: b"),
        None
    );
    assert!(document_difference(
        "x.toml",
        "k = \"ezmark\"\n",
        "k = \"a\"\nx = \"\"\n",
        "a\"\nx = \""
    )
    .is_some());
    assert_eq!(
        document_difference("x.toml", "k = \"ezmark\"\n", "k = \"a\\\"b\"\n", "a\"b"),
        None
    );
    assert!(document_difference(
        "x.service",
        "ExecStart=/b/ezmark/x\n",
        "ExecStart=/b/a b/x\n",
        "a b"
    )
    .is_some());
    assert_eq!(
        document_difference(
            "x.service",
            "ExecStart=ezmark/x\n",
            "ExecStart=/srv/d/x\n",
            "/srv/d"
        ),
        None
    );
    assert!(path_difference("/srv/../etc/x").is_some());
    assert_eq!(path_difference("/srv/d/x"), None);
}

/// Small stand-ins for the upstream network manifests the bundle carries
/// (our own text, shaped like upstream's where the roles edit them), so the
/// calico and flannel roles' `manifest` tasks render here.
fn write_network_manifests(dir: &Path) {
    let calico = "\
kind: ConfigMap
apiVersion: v1
metadata: { name: calico-config, namespace: kube-system }
data:
  calico_backend: \"vxlan\"
  veth_mtu: \"0\"
---
kind: DaemonSet
apiVersion: apps/v1
metadata: { name: calico-node, namespace: kube-system }
spec:
  template:
    spec:
      initContainers:
        - { name: install-cni, image: docker.io/calico/cni:v0 }
      containers:
        - name: calico-node
          image: docker.io/calico/node:v0
          env:
            - { name: CALICO_IPV4POOL_VXLAN, value: \"CrossSubnet\" }
            - { name: CALICO_IPV4POOL_IPIP, value: \"Never\" }
---
kind: Deployment
apiVersion: apps/v1
metadata: { name: calico-kube-controllers, namespace: kube-system }
spec:
  template:
    spec:
      containers:
        - { name: calico-kube-controllers, image: docker.io/calico/kube-controllers:v0 }
";
    let flannel = "\
kind: ConfigMap
apiVersion: v1
metadata: { name: kube-flannel-cfg, namespace: kube-flannel }
data:
  cni-conf.json: |
    {}
  net-conf.json: |
    {}
---
kind: DaemonSet
apiVersion: apps/v1
metadata: { name: kube-flannel-ds, namespace: kube-flannel }
spec:
  template:
    spec:
      initContainers:
        - { name: install-cni-plugin, image: example/cni:v0 }
        - { name: install-cni, image: example/flannel:v0 }
      containers:
        - { name: kube-flannel, image: example/flannel:v0 }
";
    for (file, text) in [
        ("calico/calico-vxlan.yaml", calico),
        ("calico/calico.yaml", calico),
        ("flannel/kube-flannel.yml", flannel),
    ] {
        let path = dir.join(file);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write manifest");
    }
}

#[test]
fn no_inventory_value_changes_a_command_or_a_document() {
    let dir = tempfile::tempdir().expect("tempdir");
    write_network_manifests(&dir.path().join("bin/manifests"));
    let home = Home::new(dir.path());
    let cluster = cluster(dir.path());
    let mut targets = view::targets(&home, &cluster);
    // Variables day-2 commands add (restore, add-etcd).
    for (k, v) in [
        ("restore_snapshot", json!("/srv/backup/snapshot.db")),
        ("restore_stamp", json!("20240101T000000Z")),
        ("restore_dir", json!("/var/lib/ezctl-restore")),
    ] {
        targets.globals.insert(k.into(), v);
    }
    let roles = roles();
    assert!(roles.len() >= 20, "{} roles", roles.len());
    let mut f = Findings {
        violations: Vec::new(),
        in_commands: BTreeMap::new(),
        in_documents: BTreeMap::new(),
    };
    let mut renders = 0;
    for field in fields() {
        let reached: Vec<&Role> = roles
            .iter()
            .filter(|(_, text)| text.contains(field.needle()))
            .map(|(r, _)| r)
            .collect();
        if reached.is_empty() {
            continue;
        }
        let mut base_targets = targets.clone();
        field.apply(&mut base_targets, "10.0.0.1", MARK);
        let base = render(&reached, &base_targets);
        for v in HOSTILE {
            if v.is_empty() && field.empty_means_unset() {
                continue;
            }
            let mut t = targets.clone();
            field.apply(&mut t, "10.0.0.1", v);
            let hostile = render(&reached, &t);
            compare(&field, v, &base, &hostile, &mut f);
            renders += 1;
        }
    }
    // The test saw the values where they matter.
    for key in [
        "label key",
        "label value",
        "node name",
        "CONTAINERD_STORAGE_DIR",
        "KUBELET_ROOT_DIR",
        "ETCD_DATA_DIR",
        "ETCD_WAL_DIR",
        "bin_dir",
        "ca_dir",
    ] {
        assert!(
            f.in_commands.get(key).copied().unwrap_or(0) > 0,
            "{key} never reached a command: {:?}",
            f.in_commands
        );
    }
    for key in [
        "SANDBOX_IMAGE",
        "CALICO_IMAGE_REGISTRY",
        "CLUSTER_CIDR",
        "FLANNEL_IMAGE_REGISTRY",
        "IP_AUTODETECTION_METHOD",
        "corednsVer",
        "INSECURE_REG",
        "HARBOR_PATH",
        "bin_dir",
    ] {
        assert!(
            f.in_documents.get(key).copied().unwrap_or(0) > 0,
            "{key} never reached a document: {:?}",
            f.in_documents
        );
    }
    assert!(renders > 300, "{renders} renders");
    assert!(
        f.violations.is_empty(),
        "{} violations:\n{}",
        f.violations.len(),
        f.violations.join("\n")
    );
}
