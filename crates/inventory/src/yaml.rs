//! A small YAML tree that remembers where every node came from.
//!
//! serde-based YAML loaders lose positions once a value is deserialized, but
//! every validation message must name the file, line and field. So the
//! inventory is parsed into this spanned tree first and read by hand.

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// 1-based line and column of a node in its source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    Null,
    /// A scalar's text; `quoted` scalars are always strings (never null/bool/int).
    Scalar {
        text: String,
        quoted: bool,
    },
    Seq(Vec<Node>),
    /// Keys are kept as nodes so messages can point at the key itself.
    Map(Vec<(Node, Node)>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub kind: Kind,
    pub pos: Pos,
}

impl Node {
    /// Short name of the node's type, for "expected X, found Y" messages.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Null => "nothing",
            Kind::Scalar { .. } => "a single value",
            Kind::Seq(_) => "a list",
            Kind::Map(_) => "a mapping",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            Kind::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not YAML.
    Syntax,
    /// A tab used for indentation (YAML forbids it; parsers point elsewhere).
    Tab,
    /// Valid YAML this loader refuses: anchors, aliases, several documents.
    Unsupported,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub pos: Pos,
    pub kind: ErrorKind,
    pub message: String,
}

/// Deepest nesting accepted. Inventories are shallow; this only stops
/// pathological input from making the tree huge.
const MAX_DEPTH: usize = 64;

fn pos_of(mark: &Marker) -> Pos {
    // yaml-rust2 reports 1-based lines and 0-based columns.
    Pos {
        line: mark.line().max(1),
        col: mark.col() + 1,
    }
}

enum Frame {
    Seq(Pos, Vec<Node>),
    Map(Pos, Vec<(Node, Node)>, Option<Node>),
}

#[derive(Default)]
struct Builder {
    stack: Vec<Frame>,
    root: Option<Node>,
    docs: usize,
    error: Option<SyntaxError>,
}

impl Builder {
    fn fail(&mut self, pos: Pos, message: impl Into<String>) {
        if self.error.is_none() {
            self.error = Some(SyntaxError {
                pos,
                kind: ErrorKind::Unsupported,
                message: message.into(),
            });
        }
    }

    fn push_value(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.root = Some(node),
            Some(Frame::Seq(_, items)) => items.push(node),
            Some(Frame::Map(_, entries, pending_key)) => match pending_key.take() {
                None => *pending_key = Some(node),
                Some(key) => {
                    // An empty value (`KEY:` and nothing) is marked where
                    // the parser found the next token, often the next
                    // line; the user wrote it on the key's line.
                    let node = if node.kind == Kind::Null && node.pos.line > key.pos.line {
                        Node {
                            pos: key.pos,
                            ..node
                        }
                    } else {
                        node
                    };
                    entries.push((key, node))
                }
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let pos = pos_of(&mark);
        match ev {
            Event::DocumentStart => {
                self.docs += 1;
                if self.docs > 1 {
                    self.fail(pos, "only one YAML document is allowed in this file");
                }
            }
            Event::Alias(_) => self.fail(
                pos,
                "YAML aliases (*name) are not supported in inventory files; write the value out",
            ),
            Event::Scalar(text, style, anchor, _tag) => {
                if anchor > 0 {
                    self.fail(
                        pos,
                        "YAML anchors (&name) are not supported in inventory files",
                    );
                    return;
                }
                let quoted = !matches!(style, TScalarStyle::Plain);
                let kind =
                    if !quoted && matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL") {
                        Kind::Null
                    } else {
                        Kind::Scalar { text, quoted }
                    };
                self.push_value(Node { kind, pos });
            }
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if anchor > 0 {
                    self.fail(
                        pos,
                        "YAML anchors (&name) are not supported in inventory files",
                    );
                    return;
                }
                if self.stack.len() >= MAX_DEPTH {
                    self.fail(pos, format!("nesting deeper than {MAX_DEPTH} levels"));
                    return;
                }
                if matches!(ev, Event::SequenceStart(..)) {
                    self.stack.push(Frame::Seq(pos, Vec::new()));
                } else {
                    self.stack.push(Frame::Map(pos, Vec::new(), None));
                }
            }
            Event::SequenceEnd => {
                if let Some(Frame::Seq(start, items)) = self.stack.pop() {
                    self.push_value(Node {
                        kind: Kind::Seq(items),
                        pos: start,
                    });
                }
            }
            Event::MappingEnd => {
                if let Some(Frame::Map(start, entries, _)) = self.stack.pop() {
                    self.push_value(Node {
                        kind: Kind::Map(entries),
                        pos: start,
                    });
                }
            }
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
}

/// The first line indented with a tab, if any.
fn tab_indent(src: &str) -> Option<Pos> {
    src.lines().enumerate().find_map(|(i, line)| {
        let indent: String = line
            .chars()
            .take_while(|c| *c == ' ' || *c == '\t')
            .collect();
        let rest = &line[indent.len()..];
        (indent.contains('\t') && !rest.is_empty() && !rest.starts_with('#')).then(|| Pos {
            line: i + 1,
            col: indent.find('\t').map_or(1, |c| c + 1),
        })
    })
}

/// The line holding the anchor that an error at `pos` refers to: parsers
/// report the anchored node, which may start on the next line.
fn anchor_line(src: &str, pos: Pos) -> Pos {
    let lines: Vec<&str> = src.lines().collect();
    for line in (pos.line.saturating_sub(1)..=pos.line).rev() {
        if let Some(text) = lines.get(line.wrapping_sub(1)) {
            if let Some(col) = text.find(['&', '*']) {
                return Pos { line, col: col + 1 };
            }
        }
    }
    pos
}

/// Parse one YAML document. An empty file yields `Ok(None)`.
pub fn parse(src: &str) -> Result<Option<Node>, SyntaxError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(src);
    if let Err(e) = parser.load(&mut builder, true) {
        if let Some(pos) = tab_indent(src) {
            return Err(SyntaxError {
                pos,
                kind: ErrorKind::Tab,
                message: "YAML syntax error: a tab is used for indentation".into(),
            });
        }
        return Err(SyntaxError {
            pos: pos_of(e.marker()),
            kind: ErrorKind::Syntax,
            message: format!("YAML syntax error: {}", e.info()),
        });
    }
    if let Some(mut err) = builder.error {
        if err.message.contains("anchors") || err.message.contains("aliases") {
            err.pos = anchor_line(src, err.pos);
        }
        return Err(err);
    }
    Ok(builder.root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let node = parse("a: 1\nb:\n  - x\n  - 'y'\n").unwrap().unwrap();
        let Kind::Map(entries) = node.kind else {
            panic!("map expected")
        };
        assert_eq!(entries[0].0.pos, Pos { line: 1, col: 1 });
        assert_eq!(entries[1].0.pos, Pos { line: 2, col: 1 });
        let Kind::Seq(items) = &entries[1].1.kind else {
            panic!("seq expected")
        };
        assert_eq!(items[1].pos, Pos { line: 4, col: 5 });
        assert_eq!(
            items[1].kind,
            Kind::Scalar {
                text: "y".into(),
                quoted: true
            }
        );
    }

    #[test]
    fn empty_and_null() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("# only a comment\n").unwrap(), None);
        let node = parse("a: ~\n").unwrap().unwrap();
        let Kind::Map(entries) = node.kind else {
            panic!()
        };
        assert_eq!(entries[0].1.kind, Kind::Null);
    }

    #[test]
    fn an_empty_value_is_placed_on_its_keys_line() {
        let node = parse("a: 1\nSECURE_PORT:\n\n\nb: 2\n").unwrap().unwrap();
        let Kind::Map(entries) = node.kind else {
            panic!()
        };
        assert_eq!(entries[1].1.kind, Kind::Null);
        assert_eq!(entries[1].1.pos.line, 2);
    }

    #[test]
    fn syntax_error_has_line() {
        let err = parse("a: 1\nb: [1, 2\n").unwrap_err();
        assert!(err.pos.line >= 2, "{err:?}");
    }

    #[test]
    fn aliases_and_multi_docs_are_refused() {
        assert!(parse("a: &x 1\nb: *x\n").is_err());
        assert!(parse("a: 1\n---\nb: 2\n").is_err());
    }
}
