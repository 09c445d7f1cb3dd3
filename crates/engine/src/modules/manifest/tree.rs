//! A small YAML tree for Kubernetes manifests: read with `yaml-rust2`'s event
//! parser, written by a deterministic block-style emitter.
//!
//! Why not `yaml_rust2::Yaml` and its `YamlEmitter`: the loader decides the
//! type of every plain scalar by YAML 1.2 rules, while Kubernetes reads
//! manifests with YAML 1.1 rules (go-yaml). Upstream `defaultMode: 0644` is
//! 420 for the API server but 644 for `Yaml::Integer`, so re-emitting the
//! loaded value would change its meaning. Here a plain scalar keeps its source
//! text and is written back plain, so whoever reads our output types it exactly
//! as it would have typed the upstream file. Quoted and block scalars are
//! strings and stay strings. The stock emitter also loses multi-line strings
//! with trailing blank lines (`|+`) and leaves some YAML 1.1 numbers
//! (`0o17`, `1_000`) unquoted; this one re-reads what it wrote and compares.

use std::collections::HashMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A scalar as written in the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scalar {
    pub text: String,
    /// Written plain: its type (string, number, bool, null) is left to the
    /// reader. Not plain: a string.
    pub plain: bool,
}

impl Scalar {
    pub(crate) fn string(s: impl Into<String>) -> Self {
        Scalar {
            text: s.into(),
            plain: false,
        }
    }

    pub(crate) fn plain(s: impl Into<String>) -> Self {
        Scalar {
            text: s.into(),
            plain: true,
        }
    }

    fn is_null(&self) -> bool {
        self.plain && matches!(self.text.as_str(), "~" | "null" | "Null" | "NULL" | "")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Scalar(Scalar),
    Seq(Vec<Node>),
    /// In source order; new keys are appended.
    Map(Vec<(Scalar, Node)>),
}

impl Node {
    pub(crate) fn null() -> Self {
        Node::Scalar(Scalar::plain("~"))
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Node::Scalar(s) if s.is_null())
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(entries) => entries.iter().find(|(k, _)| k.text == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Node> {
        match self {
            Node::Map(entries) => entries
                .iter_mut()
                .find(|(k, _)| k.text == key)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The text of a scalar.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Node::Scalar(s) => Some(&s.text),
            _ => None,
        }
    }

    /// "a string", "a list", ... for error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Node::Scalar(s) if s.is_null() => "null".into(),
            Node::Scalar(s) => {
                let t: String = s.text.chars().take(40).collect();
                let more = if t.len() < s.text.len() { "..." } else { "" };
                format!("the scalar `{t}{more}`")
            }
            Node::Seq(_) => "a list".into(),
            Node::Map(_) => "a mapping".into(),
        }
    }
}

/// Every non-empty document of `text`, in order. Empty documents (a file
/// starting with `---`, `---` twice, a comment-only document) are left out.
pub(crate) fn parse(text: &str) -> Result<Vec<Node>, String> {
    let mut b = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut b, true).map_err(|e| e.to_string())?;
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(b.docs)
}

enum Frame {
    Seq {
        anchor: usize,
        items: Vec<Node>,
    },
    Map {
        anchor: usize,
        entries: Vec<(Scalar, Node)>,
        key: Option<(Scalar, Marker)>,
    },
}

#[derive(Default)]
struct Builder {
    docs: Vec<Node>,
    stack: Vec<Frame>,
    anchors: HashMap<usize, Node>,
    /// The first problem; later events are ignored.
    error: Option<String>,
}

fn is_core_tag(tag: &Tag, suffix: &str) -> bool {
    (tag.handle == "!!" || tag.handle == "tag:yaml.org,2002:") && tag.suffix == suffix
}

fn at(mark: &Marker) -> String {
    format!("line {} column {}", mark.line(), mark.col() + 1)
}

impl Builder {
    fn fail(&mut self, msg: String) {
        self.error.get_or_insert(msg);
    }

    fn finish(&mut self, node: Node, anchor: usize, mark: Marker) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let problem = match self.stack.last_mut() {
            None => {
                if !node.is_null() {
                    self.docs.push(node);
                }
                None
            }
            Some(Frame::Seq { items, .. }) => {
                items.push(node);
                None
            }
            Some(Frame::Map { entries, key, .. }) => match (key.take(), node) {
                (None, Node::Scalar(s)) => {
                    *key = Some((s, mark));
                    None
                }
                (None, _) => Some(format!(
                    "{}: a list or mapping as a mapping key is not supported",
                    at(&mark)
                )),
                (Some((k, key_mark)), node) => {
                    if entries.iter().any(|(e, _)| e.text == k.text) {
                        Some(format!("{}: duplicate key `{}`", at(&key_mark), k.text))
                    } else {
                        entries.push((k, node));
                        None
                    }
                }
            },
        };
        if let Some(p) = problem {
            self.fail(p);
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::DocumentStart => self.anchors.clear(),
            Event::Scalar(text, style, anchor, tag) => {
                let plain = match &tag {
                    None => style == TScalarStyle::Plain,
                    Some(t) if is_core_tag(t, "str") => false,
                    Some(t) => {
                        return self.fail(format!(
                            "{}: tag {}{} is not supported (only !!str)",
                            at(&mark),
                            t.handle,
                            t.suffix
                        ))
                    }
                };
                // A plain scalar spanning lines with a blank line in between
                // folds to text with a line break: that can only be a string.
                let plain = plain && !text.contains('\n');
                // `key:` with nothing after it: null, written `~` so that no
                // line ends in a space.
                let text = if plain && text.is_empty() {
                    "~".to_string()
                } else {
                    text
                };
                self.finish(Node::Scalar(Scalar { text, plain }), anchor, mark);
            }
            Event::SequenceStart(anchor, tag) => {
                if let Some(t) = tag.filter(|t| !is_core_tag(t, "seq")) {
                    return self.fail(format!(
                        "{}: tag {}{} is not supported on a list",
                        at(&mark),
                        t.handle,
                        t.suffix
                    ));
                }
                self.stack.push(Frame::Seq {
                    anchor,
                    items: Vec::new(),
                });
            }
            Event::MappingStart(anchor, tag) => {
                if let Some(t) = tag.filter(|t| !is_core_tag(t, "map")) {
                    return self.fail(format!(
                        "{}: tag {}{} is not supported on a mapping",
                        at(&mark),
                        t.handle,
                        t.suffix
                    ));
                }
                self.stack.push(Frame::Map {
                    anchor,
                    entries: Vec::new(),
                    key: None,
                });
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { anchor, items }) => self.finish(Node::Seq(items), anchor, mark),
                Some(Frame::Map {
                    anchor, entries, ..
                }) => self.finish(Node::Map(entries), anchor, mark),
                None => self.fail(format!("{}: unbalanced YAML events", at(&mark))),
            },
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(node) => self.finish(node, 0, mark),
                None => self.fail(format!("{}: alias to an unknown anchor", at(&mark))),
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// Documents as YAML, separated by `---`. Same tree, same bytes.
pub(crate) fn emit(docs: &[Node]) -> String {
    let mut out = String::new();
    for (i, d) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        match d {
            Node::Map(e) if !e.is_empty() => emit_map(e, 0, false, &mut out),
            Node::Seq(s) if !s.is_empty() => emit_seq(s, 0, false, &mut out),
            Node::Map(_) => out.push_str("{}\n"),
            Node::Seq(_) => out.push_str("[]\n"),
            Node::Scalar(s) => emit_scalar(s, 2, &mut out),
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

/// `started`: the first entry goes on the current line (after `- `).
fn emit_map(entries: &[(Scalar, Node)], indent: usize, started: bool, out: &mut String) {
    for (i, (k, v)) in entries.iter().enumerate() {
        if i > 0 || !started {
            pad(out, indent);
        }
        out.push_str(&key_text(k));
        out.push(':');
        emit_value(v, indent, false, out);
    }
}

fn emit_seq(items: &[Node], indent: usize, started: bool, out: &mut String) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 || !started {
            pad(out, indent);
        }
        out.push('-');
        emit_value(v, indent, true, out);
    }
}

/// A value after `key:` or `-` at `indent`. Lists under a key are not
/// indented (`env:` then `- name: A` in the same column), as kubectl writes them.
fn emit_value(v: &Node, indent: usize, in_seq: bool, out: &mut String) {
    match v {
        Node::Map(e) if e.is_empty() => out.push_str(" {}\n"),
        Node::Seq(s) if s.is_empty() => out.push_str(" []\n"),
        Node::Map(e) if in_seq => {
            out.push(' ');
            emit_map(e, indent + 2, true, out);
        }
        Node::Map(e) => {
            out.push('\n');
            emit_map(e, indent + 2, false, out);
        }
        Node::Seq(s) if in_seq => {
            out.push(' ');
            emit_seq(s, indent + 2, true, out);
        }
        Node::Seq(s) => {
            out.push('\n');
            emit_seq(s, indent, false, out);
        }
        Node::Scalar(s) => {
            out.push(' ');
            emit_scalar(s, indent + 2, out);
        }
    }
}

fn key_text(k: &Scalar) -> String {
    if (k.plain && !k.text.is_empty()) || safe_plain(&k.text) {
        k.text.clone()
    } else {
        double_quoted(&k.text)
    }
}

/// A scalar and its line end; a literal block's lines at `block_indent`.
fn emit_scalar(s: &Scalar, block_indent: usize, out: &mut String) {
    if s.plain || safe_plain(&s.text) {
        out.push_str(&s.text);
        out.push('\n');
    } else if literal_ok(&s.text) {
        let breaks = s.text.len() - s.text.trim_end_matches('\n').len();
        out.push_str(match breaks {
            0 => "|-",
            1 => "|",
            _ => "|+",
        });
        out.push('\n');
        let body = s.text.strip_suffix('\n').unwrap_or(&s.text);
        for line in body.split('\n') {
            // Blank lines carry no indentation (no trailing spaces).
            if !line.is_empty() {
                pad(out, block_indent);
                out.push_str(line);
            }
            out.push('\n');
        }
    } else {
        out.push_str(&double_quoted(&s.text));
        out.push('\n');
    }
}

/// Text that every YAML reader (1.1 and 1.2) takes as this string when it is
/// written without quotes. Deliberately narrow: anything else is quoted.
pub(crate) fn safe_plain(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    // A letter first rules out numbers, dates, sexagesimals, `.inf`, `~` and
    // every indicator character.
    if !(first.is_ascii_alphabetic() || first == '/' || first == '_') {
        return false;
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_./:=+@, ".contains(c);
    if !s.chars().all(allowed) || s.ends_with(' ') || s.ends_with(':') || s.contains(": ") {
        return false;
    }
    // YAML 1.1 booleans and null, in any case.
    let lower = s.to_ascii_lowercase();
    !matches!(
        lower.as_str(),
        "y" | "n" | "yes" | "no" | "true" | "false" | "on" | "off" | "null"
    )
}

fn unsafe_char(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// A multi-line string a literal block (`|`, `|-`, `|+`) holds exactly
/// without an indentation indicator: printable text (tabs allowed) whose
/// first non-blank line does not start with white space.
fn literal_ok(s: &str) -> bool {
    if !s.contains('\n') || s.chars().any(|c| c != '\n' && c != '\t' && unsafe_char(c)) {
        return false;
    }
    for line in s.split('\n') {
        if line.starts_with([' ', '\t']) {
            return false;
        }
        if !line.is_empty() {
            return true;
        }
    }
    // Nothing but line breaks.
    false
}

pub(crate) fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if unsafe_char(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `read` is what parsing our output gave for `want`: the same tree, where a
/// string may come back plain only if it was written plain on purpose.
pub(crate) fn same(want: &Node, read: &Node) -> bool {
    let scalar = |w: &Scalar, r: &Scalar| {
        w.text == r.text && (w.plain == r.plain || (!w.plain && r.plain && safe_plain(&w.text)))
    };
    match (want, read) {
        (Node::Scalar(w), Node::Scalar(r)) => scalar(w, r),
        (Node::Seq(w), Node::Seq(r)) => {
            w.len() == r.len() && w.iter().zip(r).all(|(a, b)| same(a, b))
        }
        (Node::Map(w), Node::Map(r)) => {
            w.len() == r.len()
                && w.iter()
                    .zip(r)
                    .all(|((wk, wv), (rk, rv))| scalar(wk, rk) && same(wv, rv))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        let docs = parse(text).unwrap();
        let out = emit(&docs);
        let again = parse(&out).unwrap();
        assert_eq!(docs.len(), again.len(), "{out}");
        for (a, b) in docs.iter().zip(&again) {
            assert!(same(a, b), "{out}\n{a:?}\n{b:?}");
        }
        out
    }

    #[test]
    fn plain_scalars_keep_their_source_text() {
        // 0644 is octal for a YAML 1.1 reader (the API server): written back as is.
        let out = round_trip("a: 0644\nb: 0o17\nc: 1_000\nd: yes\ne: 1.10\nf:\ng: ~\n");
        assert_eq!(
            out,
            "a: 0644\nb: 0o17\nc: 1_000\nd: yes\ne: 1.10\nf: ~\ng: ~\n"
        );
    }

    #[test]
    fn strings_that_look_like_other_types_stay_quoted() {
        let out = round_trip(
            "a: \"0\"\nb: 'true'\nc: \"1.5\"\nd: \"\"\ne: \"yes\"\nf: '2024-01-01'\ng: \"0o17\"\nh: 'null'\ni: \"~\"\nj: 'On'\n",
        );
        for line in out.lines() {
            let (_, v) = line.split_once(": ").unwrap();
            assert!(v.starts_with('"'), "{line} in\n{out}");
        }
        // Plain-safe strings lose their quotes, nothing else.
        assert_eq!(round_trip("a: 'calico-node'\n"), "a: calico-node\n");
    }

    #[test]
    fn multi_line_strings_round_trip_exactly() {
        for s in [
            "{\n  \"Network\": \"10.244.0.0/16\"\n}\n",
            "no final break\nsecond",
            "kept\n\n\n",
            "\n\nleading blank lines\n",
            "  indented first line\nsecond\n",
            "tab\tinside\n\tand leading\n",
            "trailing spaces  \n  \nend\n",
            "carriage\r\nreturn\n",
            "\n",
            "# not a comment\n---\n- not a list\n",
        ] {
            let doc = Node::Map(vec![(
                Scalar::string("k"),
                Node::Seq(vec![Node::Map(vec![(
                    Scalar::string("v"),
                    Node::Scalar(Scalar::string(s)),
                )])]),
            )]);
            let out = emit(std::slice::from_ref(&doc));
            let back = parse(&out).unwrap();
            assert_eq!(back.len(), 1, "{s:?} as\n{out}");
            assert!(same(&doc, &back[0]), "{s:?} as\n{out}");
            let text = back[0].get("k").and_then(|l| match l {
                Node::Seq(items) => items[0].get("v").and_then(Node::text),
                _ => None,
            });
            assert_eq!(text, Some(s), "{out}");
        }
    }

    #[test]
    fn layout_is_kubectl_like() {
        let out = round_trip(
            "kind: DaemonSet\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          args: [x, y]\n          env: []\n          ports:\n          - {containerPort: 80}\n      nested: [[1, 2], []]\n      empty: {}\n",
        );
        assert_eq!(
            out,
            "kind: DaemonSet\nspec:\n  template:\n    spec:\n      containers:\n      - name: a\n        args:\n        - x\n        - y\n        env: []\n        ports:\n        - containerPort: 80\n      nested:\n      - - 1\n        - 2\n      - []\n      empty: {}\n"
        );
    }

    #[test]
    fn documents_anchors_and_errors() {
        let docs =
            parse("---\n# only a comment\n---\na: &x {b: 1}\nc: *x\n---\n---\nd: 2\n").unwrap();
        assert_eq!(docs.len(), 2, "empty documents are skipped");
        assert_eq!(docs[0].get("c"), docs[0].get("a"));
        assert_eq!(emit(&docs), "a:\n  b: 1\nc:\n  b: 1\n---\nd: 2\n");

        let e = parse("a: 1\nb: 2\na: 3\n").unwrap_err();
        assert!(
            e.contains("line 3") && e.contains("duplicate key `a`"),
            "{e}"
        );
        let e = parse("a: !!binary aGk=\n").unwrap_err();
        assert!(e.contains("not supported"), "{e}");
        let e = parse("a: [1, 2\n").unwrap_err();
        assert!(e.contains("line"), "{e}");
        // !!str makes a string of what would be a number.
        assert_eq!(
            parse("a: !!str 10\n").unwrap()[0].get("a"),
            Some(&Node::Scalar(Scalar::string("10")))
        );
    }

    #[test]
    fn keys_and_odd_strings_are_quoted_when_needed() {
        let doc = Node::Map(vec![
            (
                Scalar::string("net-conf.json"),
                Node::Scalar(Scalar::string("x")),
            ),
            (
                Scalar::string("a: b"),
                Node::Scalar(Scalar::string("- not a list")),
            ),
            (
                Scalar::string("8080"),
                Node::Scalar(Scalar::string("say \"hi\" \\ \u{1}")),
            ),
            (
                Scalar::string("y"),
                Node::Scalar(Scalar::string("trailing ")),
            ),
        ]);
        let out = emit(std::slice::from_ref(&doc));
        assert_eq!(
            out,
            "net-conf.json: x\n\"a: b\": \"- not a list\"\n\"8080\": \"say \\\"hi\\\" \\\\ \\u0001\"\n\"y\": \"trailing \"\n"
        );
        let back = parse(&out).unwrap();
        assert!(same(&doc, &back[0]), "{out}");
    }

    #[test]
    fn safe_plain_is_narrow() {
        for ok in [
            "calico-node",
            "docker.io/flannel/flannel:v0.26.7",
            "/etc/cni",
            "a b",
        ] {
            assert!(safe_plain(ok), "{ok}");
        }
        for bad in [
            "", "0", "1e3", "true", "No", "off", "~", ".5", "-x", "a: b", "a:", "a#b", "a ", "é",
        ] {
            assert!(!safe_plain(bad), "{bad}");
        }
    }
}
