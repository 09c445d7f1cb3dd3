//! `manifest`: an upstream Kubernetes manifest (multi-document YAML from the
//! release bundle, on the controller) with a role's edits applied, written to
//! a file like `template` writes one. The repo keeps no copy of upstream
//! manifests; a role says what to change as data, and every edit must find
//! its target, so an upstream change fails the task instead of passing
//! silently.

mod tree;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::args::{Deferred, Mode};
use super::files::{apply_write, check_file, Content};
use super::{Applied, Change, Cx, Module, Pending};
use crate::error::TaskError;
use tree::{Node, Scalar};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ManifestArgs {
    /// On the controller: absolute, or relative to the role's `files/`.
    pub src: String,
    pub dest: String,
    pub mode: Option<Deferred<Mode>>,
    pub owner: Option<String>,
    /// Image prefix -> replacement, for containers and initContainers of
    /// every Pod template (and bare Pods).
    #[serde(default)]
    pub images: BTreeMap<String, String>,
    #[serde(default)]
    pub set: Vec<Edit>,
    #[serde(default)]
    pub drop: Vec<DocRef>,
}

/// One document, by kind, `metadata.name` and optionally `metadata.namespace`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocRef {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
}

/// Set `path` in one document to `value` (any YAML value) or to `yaml`
/// (text read as YAML, so a templated number stays a number).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Edit {
    pub kind: String,
    pub name: String,
    pub namespace: Option<String>,
    pub path: String,
    /// `Some(Null)` for an explicit `value: null`, `None` when absent.
    #[serde(default, deserialize_with = "present")]
    pub value: Option<Value>,
    pub yaml: Option<String>,
}

fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl fmt::Display for DocRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_doc(f, &self.kind, &self.name, self.namespace.as_deref())
    }
}

impl fmt::Display for Edit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_doc(f, &self.kind, &self.name, self.namespace.as_deref())?;
        write!(f, ", path `{}`", self.path)
    }
}

fn write_doc(f: &mut fmt::Formatter<'_>, kind: &str, name: &str, ns: Option<&str>) -> fmt::Result {
    write!(f, "{kind} `{name}`")?;
    if let Some(ns) = ns {
        write!(f, " in namespace `{ns}`")?;
    }
    Ok(())
}

fn templated(s: &str) -> bool {
    s.contains("{{") || s.contains("{%")
}

impl ManifestArgs {
    pub(crate) fn validate(&self) -> Result<(), String> {
        for (i, e) in self.set.iter().enumerate() {
            let what = || format!("set #{} ({e})", i + 1);
            if e.kind.is_empty() || e.name.is_empty() {
                return Err(format!("{}: `kind` and `name` must not be empty", what()));
            }
            match (&e.value, &e.yaml) {
                (Some(_), None) | (None, Some(_)) => {}
                _ => {
                    return Err(format!(
                        "{}: give exactly one of `value` and `yaml`",
                        what()
                    ))
                }
            }
            if !templated(&e.path) {
                parse_path(&e.path).map_err(|m| format!("{}: {m}", what()))?;
            }
        }
        for (i, d) in self.drop.iter().enumerate() {
            if d.kind.is_empty() || d.name.is_empty() {
                return Err(format!(
                    "drop #{} ({d}): `kind` and `name` must not be empty",
                    i + 1
                ));
            }
        }
        if self.images.keys().any(String::is_empty) {
            return Err("images: an empty prefix would rewrite every image".into());
        }
        Ok(())
    }
}

/// What a manifest task reads before editing: the source's path and text,
/// and the image rewrites with their prefixes rendered.
type Inputs = (PathBuf, String, Vec<(String, String)>);

impl ManifestArgs {
    fn inputs(
        &self,
        role_dir: &std::path::Path,
        vars: &tera::Context,
    ) -> Result<Inputs, TaskError> {
        let path = if self.src.starts_with('/') {
            PathBuf::from(&self.src)
        } else {
            role_dir.join("files").join(&self.src)
        };
        let text = std::fs::read_to_string(&path)
            .map_err(|e| TaskError::Failed(format!("manifest source {}: {e}", path.display())))?;
        // Values are rendered with the other arguments; keys are not, and a
        // registry prefix may well come from a variable.
        let mut images = Vec::with_capacity(self.images.len());
        for (prefix, to) in &self.images {
            let prefix = crate::vars::render_str(prefix, vars)?;
            if prefix.is_empty() || images.iter().any(|(p, _)| *p == prefix) {
                return Err(TaskError::Args(format!(
                    "images: prefix `{prefix}` is empty or given twice"
                )));
            }
            images.push((prefix, to.clone()));
        }
        Ok((path, text, images))
    }

    /// The edited manifest as it would be written (for `inspect`).
    pub(crate) fn render(
        &self,
        role_dir: &std::path::Path,
        vars: &tera::Context,
    ) -> Result<String, TaskError> {
        let (path, text, images) = self.inputs(role_dir, vars)?;
        transform(&text, &images, &self.set, &self.drop)
            .map_err(|e| TaskError::Failed(format!("manifest {}: {e}", path.display())))
    }
}

#[async_trait]
impl Module for ManifestArgs {
    async fn check(&self, cx: &Cx<'_>) -> Result<Option<Change>, TaskError> {
        let mode = self
            .mode
            .as_ref()
            .map(|m| m.get("mode").map(|m| m.0))
            .transpose()
            .map_err(TaskError::Args)?;
        let (path, text, images) = self.inputs(&cx.role.dir, cx.vars)?;
        let (set, drop) = (self.set.clone(), self.drop.clone());
        // Upstream manifests with CRDs run to megabytes: keep it off the runtime.
        let out = tokio::task::spawn_blocking(move || transform(&text, &images, &set, &drop))
            .await
            .map_err(|e| TaskError::Failed(format!("manifest {}: {e}", path.display())))?
            .map_err(|e| TaskError::Failed(format!("manifest {}: {e}", path.display())))?;
        let content = Content::bytes(out.into_bytes());
        check_file(cx, &self.dest, Some(content), mode, self.owner.as_deref()).await
    }

    async fn apply(&self, cx: &Cx<'_>, change: Change) -> Result<Applied, TaskError> {
        if let Pending::File(w) = change.pending {
            apply_write(cx, &w).await?;
        }
        Ok(Applied::changed())
    }
}

/// The manifest `text` with the edits applied, as YAML. Errors name the edit.
pub(crate) fn transform(
    text: &str,
    images: &[(String, String)],
    set: &[Edit],
    drop: &[DocRef],
) -> Result<String, String> {
    let mut docs = tree::parse(text)?;
    let mut dropped = BTreeSet::new();
    for (i, d) in drop.iter().enumerate() {
        let what = format!("drop #{} ({d})", i + 1);
        let at = find_doc(&docs, &d.kind, &d.name, d.namespace.as_deref())
            .map_err(|m| format!("{what}: {m}"))?;
        dropped.insert(at);
    }
    for (i, e) in set.iter().enumerate() {
        let what = format!("set #{} ({e})", i + 1);
        let at = find_doc(&docs, &e.kind, &e.name, e.namespace.as_deref())
            .map_err(|m| format!("{what}: {m}"))?;
        if dropped.contains(&at) {
            return Err(format!("{what}: `drop` removes this document"));
        }
        let steps = parse_path(&e.path).map_err(|m| format!("{what}: {m}"))?;
        let value = match (&e.value, &e.yaml) {
            (Some(v), _) => from_json(v),
            (None, Some(y)) => {
                let mut parsed = tree::parse(y).map_err(|m| format!("{what}: yaml: {m}"))?;
                match parsed.len() {
                    0 => Node::null(),
                    1 => parsed.remove(0),
                    n => return Err(format!("{what}: yaml: {n} documents, expected one value")),
                }
            }
            (None, None) => return Err(format!("{what}: no `value`")),
        };
        set_path(&mut docs[at], &steps, 0, value).map_err(|m| format!("{what}: {m}"))?;
    }
    let mut docs: Vec<Node> = docs
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(_, d)| d)
        .collect();
    if !images.is_empty() {
        let mut rw = ImageRewrite {
            rules: images,
            hits: vec![0; images.len()],
            seen: BTreeSet::new(),
        };
        for d in &mut docs {
            rw.document(d);
        }
        for (n, (prefix, _)) in rw.hits.iter().zip(images) {
            if *n == 0 {
                let seen: Vec<&str> = rw.seen.iter().map(String::as_str).collect();
                return Err(format!(
                    "images: prefix `{prefix}` matches no container or initContainer image (images: {})",
                    if seen.is_empty() { "none".into() } else { seen.join(", ") }
                ));
            }
        }
    }
    if docs.is_empty() {
        return Err("no document left to write".into());
    }
    verified_emit(&docs)
}

/// The documents as YAML, read back and compared with what was meant. Our
/// own emitter wrote it; if it does not read back as the same tree, writing
/// it would ship a silently different manifest.
fn verified_emit(docs: &[Node]) -> Result<String, String> {
    let bug = |i: usize, doc: &Node, what: &str| {
        format!(
            "bug: rendered document #{} ({}) {what}; please report it with the manifest and the task",
            i + 1,
            label(doc)
        )
    };
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        let text = tree::emit(std::slice::from_ref(doc));
        match tree::parse(&text) {
            Ok(back) if back.len() == 1 && tree::same(doc, &back[0]) => {}
            Ok(_) => return Err(bug(i, doc, "does not read back as written")),
            Err(e) => return Err(bug(i, doc, &format!("does not parse ({e})"))),
        }
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&text);
    }
    // Each document reads back alone; the separators must not change that.
    match tree::parse(&out) {
        Ok(back) if back.len() == docs.len() => Ok(out),
        _ => Err("bug: the rendered documents do not read back together; please report it".into()),
    }
}

fn meta<'a>(doc: &'a Node, key: &str) -> Option<&'a str> {
    doc.get("metadata")
        .and_then(|m| m.get(key))
        .and_then(Node::text)
}

fn label(doc: &Node) -> String {
    let kind = doc.get("kind").and_then(Node::text).unwrap_or("?");
    let name = meta(doc, "name").unwrap_or("?");
    match meta(doc, "namespace") {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// The index of the one document with this kind and name (and namespace).
fn find_doc(docs: &[Node], kind: &str, name: &str, ns: Option<&str>) -> Result<usize, String> {
    let hits: Vec<usize> = docs
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            d.get("kind").and_then(Node::text) == Some(kind)
                && meta(d, "name") == Some(name)
                && ns.is_none_or(|ns| meta(d, "namespace") == Some(ns))
        })
        .map(|(i, _)| i)
        .collect();
    match hits.as_slice() {
        [one] => Ok(*one),
        [] => {
            let same_kind: Vec<String> = docs
                .iter()
                .filter(|d| d.get("kind").and_then(Node::text) == Some(kind))
                .map(label)
                .collect();
            if same_kind.is_empty() {
                let kinds: BTreeSet<&str> = docs
                    .iter()
                    .filter_map(|d| d.get("kind").and_then(Node::text))
                    .collect();
                let kinds: Vec<&str> = kinds.into_iter().collect();
                Err(format!(
                    "no such document in the file (no {kind} at all; kinds: {})",
                    kinds.join(", ")
                ))
            } else {
                Err(format!(
                    "no such document in the file (it has: {})",
                    same_kind.join(", ")
                ))
            }
        }
        many => Err(format!(
            "{} documents match ({}); add `namespace`",
            many.len(),
            many.iter()
                .map(|&i| label(&docs[i]))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn from_json(v: &Value) -> Node {
    match v {
        Value::Null => Node::Scalar(Scalar::plain("null")),
        Value::Bool(b) => Node::Scalar(Scalar::plain(b.to_string())),
        Value::Number(n) => Node::Scalar(Scalar::plain(n.to_string())),
        Value::String(s) => Node::Scalar(Scalar::string(s.clone())),
        Value::Array(a) => Node::Seq(a.iter().map(from_json).collect()),
        Value::Object(m) => Node::Map(
            m.iter()
                .map(|(k, v)| (Scalar::string(k.clone()), from_json(v)))
                .collect(),
        ),
    }
}

/// One step of an edit's path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    /// A mapping key.
    Key(String),
    /// `[field=value]`: the list element whose `field` is `value`.
    Select { field: String, value: String },
}

/// `key`, `"quoted.key"`, each followed by any number of `[field=value]`,
/// joined with dots: `spec.template.spec.containers[name=x].env[name=Y].value`.
fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let bad = |m: &str| format!("path `{path}`: {m}");
    let mut steps = Vec::new();
    let mut rest = path;
    loop {
        let (key, after) = if let Some(q) = rest.strip_prefix('"') {
            quoted(q).map_err(|m| bad(&m))?
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            let key = &rest[..end];
            if key.is_empty() {
                return Err(bad("expected a key (empty segment)"));
            }
            if key.contains(['"', ']', '=']) {
                return Err(bad(&format!(
                    "`{key}`: put keys with `\"`, `]` or `=` in double quotes"
                )));
            }
            (key.to_string(), &rest[end..])
        };
        steps.push(Step::Key(key));
        rest = after;
        while let Some(sel) = rest.strip_prefix('[') {
            let eq = sel
                .find(['=', ']'])
                .filter(|&i| sel[i..].starts_with('='))
                .ok_or_else(|| bad("a list selector is `[field=value]`"))?;
            let field = &sel[..eq];
            if field.is_empty() || field.contains('"') {
                return Err(bad("a list selector is `[field=value]`"));
            }
            let v = &sel[eq + 1..];
            let (value, after) = if let Some(q) = v.strip_prefix('"') {
                quoted(q).map_err(|m| bad(&m))?
            } else {
                let end = v.find(']').ok_or_else(|| bad("`[` without `]`"))?;
                if end == 0 {
                    return Err(bad(&format!(
                        "`[{field}=]`: empty value (write `[{field}=\"\"]`)"
                    )));
                }
                (v[..end].to_string(), &v[end..])
            };
            rest = after
                .strip_prefix(']')
                .ok_or_else(|| bad(&format!("expected `]` after `[{field}=`")))?;
            steps.push(Step::Select {
                field: field.to_string(),
                value,
            });
        }
        match rest.strip_prefix('.') {
            Some(r) => rest = r,
            None if rest.is_empty() => return Ok(steps),
            None => return Err(bad(&format!("unexpected `{rest}`"))),
        }
    }
}

/// The text of a double-quoted segment (opening quote already taken) and
/// what follows its closing quote. `\"` and `\\` are the only escapes.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => out.push(e),
                _ => return Err("in quotes, `\\` only escapes `\"` and `\\`".into()),
            },
            c => out.push(c),
        }
    }
    Err("unterminated `\"`".into())
}

fn show_steps(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                if k.contains(['.', '[', '"', ']', '=']) {
                    out.push_str(&format!(
                        "\"{}\"",
                        k.replace('\\', "\\\\").replace('"', "\\\"")
                    ));
                } else {
                    out.push_str(k);
                }
            }
            Step::Select { field, value } => out.push_str(&format!("[{field}={value}]")),
        }
    }
    out
}

/// Set `steps[depth..]` below `node`. Missing keys and list elements are
/// created; a null on the way becomes what the next step needs.
fn set_path(node: &mut Node, steps: &[Step], depth: usize, value: Node) -> Result<(), String> {
    let last = depth + 1 == steps.len();
    let here = || {
        if depth == 0 {
            "the document".to_string()
        } else {
            format!("`{}`", show_steps(&steps[..depth]))
        }
    };
    match &steps[depth] {
        Step::Key(key) => {
            if node.is_null() {
                *node = Node::Map(Vec::new());
            }
            let Node::Map(entries) = node else {
                return Err(format!(
                    "{} is {}, not a mapping: cannot set key `{key}`",
                    here(),
                    node.describe()
                ));
            };
            let i = match entries.iter().position(|(k, _)| k.text == *key) {
                Some(i) => i,
                None => {
                    entries.push((Scalar::string(key.clone()), Node::null()));
                    entries.len() - 1
                }
            };
            if last {
                entries[i].1 = value;
                Ok(())
            } else {
                set_path(&mut entries[i].1, steps, depth + 1, value)
            }
        }
        Step::Select { field, value: want } => {
            if node.is_null() {
                *node = Node::Seq(Vec::new());
            }
            let Node::Seq(items) = node else {
                return Err(format!(
                    "{} is {}, not a list: cannot select `[{field}={want}]`",
                    here(),
                    node.describe()
                ));
            };
            let hits: Vec<usize> = items
                .iter()
                .enumerate()
                .filter(|(_, it)| it.get(field).and_then(Node::text) == Some(want.as_str()))
                .map(|(i, _)| i)
                .collect();
            let i = match hits.as_slice() {
                [one] => *one,
                [] => {
                    items.push(Node::Map(vec![(
                        Scalar::string(field.clone()),
                        Node::Scalar(Scalar::string(want.clone())),
                    )]));
                    items.len() - 1
                }
                many => {
                    return Err(format!(
                        "`{}` is ambiguous: {} elements of {} have {field}={want}",
                        show_steps(&steps[..=depth]),
                        many.len(),
                        here()
                    ))
                }
            };
            if last {
                items[i] = value;
                Ok(())
            } else {
                set_path(&mut items[i], steps, depth + 1, value)
            }
        }
    }
}

struct ImageRewrite<'a> {
    rules: &'a [(String, String)],
    /// Images each rule's prefix matched.
    hits: Vec<usize>,
    /// Every image seen, for the error when a prefix matches none.
    seen: BTreeSet<String>,
}

impl ImageRewrite<'_> {
    fn document(&mut self, doc: &mut Node) {
        if doc.get("kind").and_then(Node::text) == Some("Pod") {
            if let Some(spec) = doc.get_mut("spec") {
                self.pod_spec(spec);
            }
        }
        self.templates(doc);
    }

    /// Every `template.spec` holding containers, at any depth: Deployments,
    /// DaemonSets, StatefulSets, Jobs, CronJobs (`jobTemplate.spec.template`),
    /// PodTemplates, items of a `List`, and custom workload kinds alike.
    fn templates(&mut self, node: &mut Node) {
        match node {
            Node::Map(entries) => {
                for (k, v) in entries.iter_mut() {
                    if k.text == "template" {
                        if let Some(spec) = v.get_mut("spec") {
                            if matches!(spec.get("containers"), Some(Node::Seq(_))) {
                                self.pod_spec(spec);
                                continue;
                            }
                        }
                    }
                    self.templates(v);
                }
            }
            Node::Seq(items) => items.iter_mut().for_each(|i| self.templates(i)),
            Node::Scalar(_) => {}
        }
    }

    fn pod_spec(&mut self, spec: &mut Node) {
        for list in ["initContainers", "containers", "ephemeralContainers"] {
            let Some(Node::Seq(containers)) = spec.get_mut(list) else {
                continue;
            };
            for c in containers {
                if let Some(Node::Scalar(image)) = c.get_mut("image") {
                    self.image(image);
                }
            }
        }
    }

    /// The longest matching prefix wins, so the order of `images` does not matter.
    fn image(&mut self, image: &mut Scalar) {
        self.seen.insert(image.text.clone());
        let mut best: Option<usize> = None;
        for (i, (prefix, _)) in self.rules.iter().enumerate() {
            if image.text.starts_with(prefix.as_str()) {
                self.hits[i] += 1;
                if best.is_none_or(|b| self.rules[b].0.len() < prefix.len()) {
                    best = Some(i);
                }
            }
        }
        if let Some(b) = best {
            let (prefix, to) = &self.rules[b];
            *image = Scalar::string(format!("{to}{}", &image.text[prefix.len()..]));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn edit(kind: &str, name: &str, path: &str, value: Value) -> Edit {
        Edit {
            kind: kind.into(),
            name: name.into(),
            namespace: None,
            path: path.into(),
            value: Some(value),
            yaml: None,
        }
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse_path(r#"data."net-conf.json""#).unwrap(),
            [Step::Key("data".into()), Step::Key("net-conf.json".into())]
        );
        assert_eq!(
            parse_path("spec.containers[name=calico-node].env[name=\"A=B]\"].value").unwrap(),
            [
                Step::Key("spec".into()),
                Step::Key("containers".into()),
                Step::Select {
                    field: "name".into(),
                    value: "calico-node".into()
                },
                Step::Key("env".into()),
                Step::Select {
                    field: "name".into(),
                    value: "A=B]".into()
                },
                Step::Key("value".into()),
            ]
        );
        assert_eq!(
            parse_path(r#""a\"b\\c".d"#).unwrap(),
            [Step::Key("a\"b\\c".into()), Step::Key("d".into())]
        );
        for bad in [
            "",
            "a.",
            ".a",
            "a..b",
            "a[name]",
            "a[=x]",
            "a[name=x",
            "a[name=x]b",
            "\"a",
            "a\"b",
            "[name=x]",
            "a[name=]",
        ] {
            assert!(parse_path(bad).is_err(), "{bad:?} should not parse");
        }
        assert_eq!(
            parse_path(r#"a[name=""]"#).unwrap()[1],
            Step::Select {
                field: "name".into(),
                value: String::new()
            }
        );
    }

    #[test]
    fn set_creates_and_refuses_scalars() {
        let mut doc = tree::parse("kind: X\nspec:\n  env:\n  a: 1\n")
            .unwrap()
            .remove(0);
        let steps = parse_path("spec.env[name=A].value").unwrap();
        set_path(&mut doc, &steps, 0, from_json(&json!("v"))).unwrap();
        let steps = parse_path("spec.new.deep").unwrap();
        set_path(
            &mut doc,
            &steps,
            0,
            from_json(&json!({"b": [1, true, null]})),
        )
        .unwrap();
        assert_eq!(
            tree::emit(&[doc.clone()]),
            "kind: X\nspec:\n  env:\n  - name: A\n    value: v\n  a: 1\n  new:\n    deep:\n      b:\n      - 1\n      - true\n      - null\n"
        );
        let steps = parse_path("spec.a.b").unwrap();
        let e = set_path(&mut doc, &steps, 0, Node::null()).unwrap_err();
        assert_eq!(
            e,
            "`spec.a` is the scalar `1`, not a mapping: cannot set key `b`"
        );
        let steps = parse_path("spec[name=x]").unwrap();
        let e = set_path(&mut doc, &steps, 0, Node::null()).unwrap_err();
        assert!(e.contains("`spec` is a mapping, not a list"), "{e}");
    }

    #[test]
    fn transform_reports_edits_that_find_nothing() {
        let text = "kind: ConfigMap\nmetadata: {name: a, namespace: x}\n---\nkind: ConfigMap\nmetadata: {name: a, namespace: y}\n";
        let e =
            transform(text, &[], &[edit("Secret", "a", "data.k", json!("v"))], &[]).unwrap_err();
        assert_eq!(
            e,
            "set #1 (Secret `a`, path `data.k`): no such document in the file (no Secret at all; kinds: ConfigMap)"
        );
        let e = transform(
            text,
            &[],
            &[edit("ConfigMap", "b", "data.k", json!("v"))],
            &[],
        )
        .unwrap_err();
        assert!(e.contains("it has: ConfigMap x/a, ConfigMap y/a"), "{e}");
        let e = transform(
            text,
            &[],
            &[edit("ConfigMap", "a", "data.k", json!("v"))],
            &[],
        )
        .unwrap_err();
        assert!(
            e.contains("2 documents match") && e.contains("add `namespace`"),
            "{e}"
        );
        let mut one = edit("ConfigMap", "a", "data.k", json!("v"));
        one.namespace = Some("y".into());
        let out = transform(text, &[], &[one], &[]).unwrap();
        assert!(out.ends_with("namespace: y\ndata:\n  k: v\n"), "{out}");
    }

    #[test]
    fn yaml_values_are_read_as_yaml() {
        let text = "kind: Deployment\nmetadata: {name: d}\nspec: {replicas: 1}\n";
        let mut e = edit("Deployment", "d", "spec.replicas", Value::Null);
        e.value = None;
        e.yaml = Some("3".into());
        let out = transform(text, &[], std::slice::from_ref(&e), &[]).unwrap();
        assert!(out.contains("replicas: 3\n"), "{out}");
        e.yaml = Some("a: 1\n---\nb: 2\n".into());
        let err = transform(text, &[], &[e], &[]).unwrap_err();
        assert!(err.contains("2 documents"), "{err}");
    }

    #[test]
    fn validate_checks_literal_paths_at_load() {
        let args = |v: Value| {
            serde_json::from_value::<ManifestArgs>(v)
                .unwrap()
                .validate()
        };
        let base = json!({"src": "/m.yml", "dest": "/o.yml"});
        assert!(args(base.clone()).is_ok());
        let mut v = base.clone();
        v["set"] = json!([{"kind": "A", "name": "b", "path": "a[x", "value": 1}]);
        assert!(args(v.clone()).unwrap_err().contains("set #1"));
        v["set"][0]["path"] = json!("{{ p }}");
        assert!(
            args(v.clone()).is_ok(),
            "a templated path is checked after rendering"
        );
        v["set"][0]["yaml"] = json!("1");
        assert!(args(v.clone()).unwrap_err().contains("exactly one of"));
        v["set"] = json!([{"kind": "A", "name": "b", "path": "a", "value": null}]);
        assert!(args(v).is_ok(), "value: null is a value");
        let mut v = base;
        v["images"] = json!({"": "x/"});
        assert!(args(v).is_err());
    }

    #[test]
    fn images_in_pods_cron_jobs_and_lists() {
        let text = "kind: Pod\nmetadata: {name: p}\nspec:\n  ephemeralContainers: [{name: dbg, image: a/dbg}]\n  containers: [{name: c, image: a/pod}]\n---\nkind: CronJob\nmetadata: {name: cj}\nspec:\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          initContainers: [{name: i, image: a/init}]\n          containers: [{name: c, image: b/job}]\n---\nkind: List\nitems:\n- kind: StatefulSet\n  metadata: {name: s}\n  spec: {template: {spec: {containers: [{name: c, image: a/sts}]}}}\n";
        let rules = [("a/".to_string(), "r/a/".to_string())];
        let out = transform(text, &rules, &[], &[]).unwrap();
        let images: Vec<&str> = out
            .lines()
            .filter_map(|l| {
                l.trim_start()
                    .trim_start_matches("- ")
                    .strip_prefix("image: ")
            })
            .collect();
        assert_eq!(
            images,
            ["r/a/dbg", "r/a/pod", "r/a/init", "b/job", "r/a/sts"]
        );
    }

    #[test]
    fn a_tree_that_does_not_read_back_is_refused() {
        // A "plain" scalar that is really a mapping when read: what a bug in
        // the emitter or the tree would look like.
        let doc = |v: Scalar| {
            Node::Map(vec![
                (
                    Scalar::plain("kind"),
                    Node::Scalar(Scalar::plain("ConfigMap")),
                ),
                (
                    Scalar::plain("metadata"),
                    Node::Map(vec![(
                        Scalar::plain("name"),
                        Node::Scalar(Scalar::plain("c")),
                    )]),
                ),
                (Scalar::plain("data"), Node::Scalar(v)),
            ])
        };
        let ok = verified_emit(&[doc(Scalar::string("a: b #c"))]).unwrap();
        assert!(ok.ends_with("data: \"a: b #c\"\n"), "{ok}");
        let e =
            verified_emit(&[doc(Scalar::string("ok")), doc(Scalar::plain("a #c"))]).unwrap_err();
        assert_eq!(
            e,
            "bug: rendered document #2 (ConfigMap c) does not read back as written; please report it with the manifest and the task"
        );
        let e = verified_emit(&[doc(Scalar::plain("a: b"))]).unwrap_err();
        assert!(
            e.starts_with("bug: rendered document #1 (ConfigMap c) does not parse (mapping values are not allowed"),
            "{e}"
        );
    }
}
