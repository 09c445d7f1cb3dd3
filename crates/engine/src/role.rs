//! Roles as data: `roles/<role>/{tasks,handlers,defaults}.yml`,
//! `templates/**` (tera) and `files/**`. Everything that can be checked
//! without a host is checked at load time: unknown keys, module arguments,
//! template syntax, missing templates and files, unknown handlers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tera::Tera;

use crate::error::{chain, LoadError, TaskError};
use crate::modules::args::Deferred;
use crate::modules::{Args, ModuleKind, SvcState};
use crate::yaml;

/// `loop:` — a literal list or an expression evaluated per host.
#[derive(Debug, Clone)]
pub enum LoopSpec {
    Items(Vec<Value>),
    Expr(String),
}

#[derive(Debug, Clone)]
pub struct Task {
    pub name: String,
    pub module: ModuleKind,
    /// Raw arguments (templates not rendered yet).
    pub args: Value,
    /// All must hold.
    pub when: Vec<String>,
    pub loop_over: Option<LoopSpec>,
    pub register: Option<String>,
    pub tags: BTreeSet<String>,
    pub run_once: bool,
    pub notify: Vec<String>,
    /// `delegate: controller`: run through the controller's transport.
    pub delegate_controller: bool,
    pub ignore_errors: bool,
    /// Keep diffs and output of this task out of events and logs.
    pub no_log: bool,
}

#[derive(Debug)]
pub struct Role {
    pub name: String,
    pub dir: PathBuf,
    pub tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    /// In file order: a default may use the ones above it.
    pub defaults: Vec<(String, Value)>,
    templates: Tera,
}

const TASK_KEYS: &[&str] = &[
    "name",
    "when",
    "loop",
    "register",
    "tags",
    "run_once",
    "notify",
    "delegate",
    "ignore_errors",
    "no_log",
];

impl Role {
    /// Load `roles_dir/name`: `name` is `ROLE` (its `tasks.yml`) or
    /// `ROLE:ENTRY` (its `tasks/ENTRY.yml`). Every entry of a role shares its
    /// defaults, handlers, templates and files. The tasks file is required,
    /// the rest optional.
    pub fn load(roles_dir: &Path, name: &str) -> Result<Role, LoadError> {
        let (dir_name, _) = split_entry(name);
        let dir = roles_dir.join(dir_name);
        let tasks_path = tasks_file(roles_dir, name).ok_or_else(|| LoadError::Invalid {
            path: dir.clone(),
            message: format!(
                "`{name}`: an entry is named by letters, digits, `-` and `_` (ROLE:ENTRY runs ROLE/tasks/ENTRY.yml)"
            ),
        })?;
        let templates = load_templates(name, &dir.join("templates"))?;
        let defaults_path = dir.join("defaults.yml");
        let defaults = if defaults_path.exists() {
            yaml::load_ordered_map(&defaults_path)?
        } else {
            Vec::new()
        };
        let mut role = Role {
            name: name.to_string(),
            dir: dir.clone(),
            tasks: Vec::new(),
            handlers: Vec::new(),
            defaults,
            templates,
        };
        let handlers_path = dir.join("handlers.yml");
        if handlers_path.exists() {
            role.handlers = role.load_task_list(&handlers_path, true)?;
        }
        role.tasks = role.load_task_list(&tasks_path, false)?;
        Ok(role)
    }

    /// True when `roles_dir/name` (`ROLE` or `ROLE:ENTRY`) has its tasks file.
    pub fn exists(roles_dir: &Path, name: &str) -> bool {
        tasks_file(roles_dir, name).is_some_and(|p| p.is_file())
    }

    /// Every runnable name of the role in `roles_dir/role`: `ROLE` when it
    /// has a `tasks.yml`, then `ROLE:ENTRY` for each `tasks/ENTRY.yml`, sorted.
    pub fn entries(roles_dir: &Path, role: &str) -> Vec<String> {
        let mut names = Vec::new();
        if Role::exists(roles_dir, role) {
            names.push(role.to_string());
        }
        let mut more: Vec<String> = std::fs::read_dir(roles_dir.join(role).join("tasks"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let file = e.file_name().to_string_lossy().into_owned();
                let entry = file.strip_suffix(".yml")?;
                let name = format!("{role}:{entry}");
                Role::exists(roles_dir, &name).then_some(name)
            })
            .collect();
        more.sort();
        names.extend(more);
        names
    }

    fn load_task_list(&self, path: &Path, handlers: bool) -> Result<Vec<Task>, LoadError> {
        let invalid = |message: String| LoadError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let list = match yaml::load_file(path)? {
            Value::Null => Vec::new(),
            Value::Array(a) => a,
            _ => return Err(invalid("expected a list of tasks".into())),
        };
        let mut tasks = Vec::with_capacity(list.len());
        for (i, item) in list.into_iter().enumerate() {
            let task = self
                .parse_task(item, handlers)
                .map_err(|(name, m)| invalid(format!("task #{} {name}: {m}", i + 1)))?;
            tasks.push(task);
        }
        let mut seen = BTreeSet::new();
        for t in &tasks {
            if handlers && !seen.insert(t.name.as_str()) {
                return Err(invalid(format!("two handlers are named `{}`", t.name)));
            }
            if handlers && !t.notify.is_empty() {
                return Err(invalid(format!(
                    "handler `{}`: handlers cannot notify",
                    t.name
                )));
            }
            for n in &t.notify {
                if !self.handlers.iter().any(|h| &h.name == n) {
                    return Err(invalid(format!(
                        "task `{}` notifies `{n}`, which is not in handlers.yml",
                        t.name
                    )));
                }
            }
        }
        Ok(tasks)
    }

    /// Errors carry the task name (or `?`) for the caller's message.
    fn parse_task(&self, v: Value, handler: bool) -> Result<Task, (String, String)> {
        let Value::Object(m) = v else {
            return Err(("?".into(), "expected a mapping".into()));
        };
        let label = m
            .get("name")
            .and_then(Value::as_str)
            .map(|n| format!("`{n}`"))
            .unwrap_or_else(|| "?".into());
        let fail = |msg: String| (label.clone(), msg);
        let modules: Vec<&String> = m
            .keys()
            .filter(|k| ModuleKind::NAMES.contains(&k.as_str()))
            .collect();
        for k in m.keys() {
            if !TASK_KEYS.contains(&k.as_str()) && !ModuleKind::NAMES.contains(&k.as_str()) {
                return Err(fail(format!(
                    "unknown key `{k}` (task keys: {}; modules: {})",
                    TASK_KEYS.join(", "),
                    ModuleKind::NAMES.join(", ")
                )));
            }
        }
        let key = match modules.as_slice() {
            [k] => (*k).clone(),
            [] => {
                return Err(fail(format!(
                    "no module (one of {})",
                    ModuleKind::NAMES.join(", ")
                )))
            }
            many => {
                let names: Vec<&str> = many.iter().map(|s| s.as_str()).collect();
                return Err(fail(format!("more than one module: {}", names.join(", "))));
            }
        };
        let module =
            ModuleKind::from_key(&key).ok_or_else(|| fail(format!("unknown module {key}")))?;
        let mut args = m.get(&key).cloned().unwrap_or(Value::Null);
        if let (Value::String(s), Some(k)) = (&args, module.short_form_key()) {
            let mut o = Map::new();
            o.insert(k.into(), Value::String(s.clone()));
            args = Value::Object(o);
        }
        if !args.is_object() {
            return Err(fail(format!("`{key}` needs a mapping of arguments")));
        }
        let parsed = Args::parse(module, &args).map_err(|e| fail(format!("{key}: {e}")))?;
        self.check_static_refs(&parsed).map_err(&fail)?;
        if !handler {
            if let Args::Systemd(s) = &parsed {
                if matches!(
                    s.state,
                    Some(Deferred::Ready(SvcState::Restarted | SvcState::Reloaded))
                ) {
                    return Err(fail(
                        "state restarted/reloaded belongs in handlers.yml; notify the handler from the task that changes the config".into(),
                    ));
                }
            }
        }
        let name = match m.get("name") {
            Some(Value::String(s)) => s.clone(),
            None => format!("{key} {}", first_arg(&args)),
            Some(other) => return Err(fail(format!("name: expected text, found {other}"))),
        };
        let when = match m.get("when") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Bool(b)) => vec![b.to_string()],
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .map(|c| match c {
                    Value::String(s) => Ok(s.clone()),
                    Value::Bool(b) => Ok(b.to_string()),
                    other => Err(fail(format!("when: expected expressions, found {other}"))),
                })
                .collect::<Result<_, _>>()?,
            Some(other) => {
                return Err(fail(format!("when: expected an expression, found {other}")))
            }
        };
        let loop_over = match m.get("loop") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(LoopSpec::Items(a.clone())),
            Some(Value::String(s)) => Some(LoopSpec::Expr(s.clone())),
            Some(other) => {
                return Err(fail(format!(
                    "loop: expected a list or an expression, found {other}"
                )))
            }
        };
        let register = match m.get("register") {
            None => None,
            Some(Value::String(s)) if is_identifier(s) => Some(s.clone()),
            Some(other) => {
                return Err(fail(format!(
                    "register: expected a variable name, found {other}"
                )))
            }
        };
        let words = |k: &str| -> Result<Vec<String>, (String, String)> {
            match m.get(k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::String(s)) => Ok(vec![s.clone()]),
                Some(Value::Array(a)) => a
                    .iter()
                    .map(|x| {
                        x.as_str()
                            .map(str::to_string)
                            .ok_or_else(|| fail(format!("{k}: expected names, found {x}")))
                    })
                    .collect(),
                Some(other) => Err(fail(format!(
                    "{k}: expected a name or a list, found {other}"
                ))),
            }
        };
        let flag = |k: &str| -> Result<bool, (String, String)> {
            match m.get(k) {
                None => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(other) => Err(fail(format!("{k}: expected true or false, found {other}"))),
            }
        };
        let delegate_controller = match m.get("delegate") {
            None => false,
            Some(Value::String(s)) if s == "controller" => true,
            Some(other) => {
                return Err(fail(format!(
                    "delegate: only `controller` is supported, found {other}"
                )))
            }
        };
        Ok(Task {
            name,
            module,
            args,
            when,
            loop_over,
            register,
            tags: words("tags")?.into_iter().collect(),
            run_once: flag("run_once")?,
            notify: words("notify")?,
            delegate_controller,
            ignore_errors: flag("ignore_errors")?,
            no_log: flag("no_log")?,
        })
    }

    /// Literal template and `files/` names must exist.
    fn check_static_refs(&self, args: &Args) -> Result<(), String> {
        match args {
            Args::Template(t)
                if !t.src.contains("{{")
                    && !self.templates.get_template_names().any(|n| n == t.src) =>
            {
                return Err(format!(
                    "template `{}` not found in {}",
                    t.src,
                    self.dir.join("templates").display()
                ));
            }
            Args::Copy(c) => {
                if let Some(src) = c
                    .src
                    .as_deref()
                    .filter(|s| !s.contains("{{") && !s.starts_with('/'))
                {
                    let p = self.dir.join("files").join(src);
                    if !p.is_file() {
                        return Err(format!("copy source {} not found", p.display()));
                    }
                }
            }
            Args::Manifest(m) if !m.src.contains("{{") && !m.src.starts_with('/') => {
                let p = self.dir.join("files").join(&m.src);
                if !p.is_file() {
                    return Err(format!("manifest source {} not found", p.display()));
                }
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn render_template(
        &self,
        src: &str,
        vars: &tera::Context,
    ) -> Result<String, TaskError> {
        self.templates
            .render(src, vars)
            .map_err(|e| TaskError::Render {
                what: format!(
                    "template {}",
                    self.dir.join("templates").join(src).display()
                ),
                detail: chain(&e),
            })
    }

    /// Every tag used by a task of this role.
    pub fn tags(&self) -> BTreeSet<String> {
        self.tasks
            .iter()
            .flat_map(|t| t.tags.iter().cloned())
            .collect()
    }
}

fn is_identifier(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn first_arg(args: &Value) -> String {
    args.as_object()
        .and_then(|m| m.values().next())
        .and_then(Value::as_str)
        .map(|s| s.chars().take(60).collect())
        .unwrap_or_default()
}

/// `ROLE:ENTRY` into its parts; a plain `ROLE` has no entry.
fn split_entry(name: &str) -> (&str, Option<&str>) {
    match name.split_once(':') {
        Some((role, entry)) => (role, Some(entry)),
        None => (name, None),
    }
}

/// Where the tasks of `ROLE` or `ROLE:ENTRY` live, or `None` for a name
/// that could leave the role's folder (an entry is one plain file name).
pub fn tasks_file(roles_dir: &Path, name: &str) -> Option<PathBuf> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            && !s.starts_with('.')
    };
    match split_entry(name) {
        (role, None) if plain(role) => Some(roles_dir.join(role).join("tasks.yml")),
        (role, Some(entry)) if plain(role) && plain(entry) && !entry.contains('.') => Some(
            roles_dir
                .join(role)
                .join("tasks")
                .join(format!("{entry}.yml")),
        ),
        _ => None,
    }
}

fn load_templates(role: &str, dir: &Path) -> Result<Tera, LoadError> {
    let mut tera = crate::vars::new_tera();
    if !dir.is_dir() {
        return Ok(tera);
    }
    let mut files = Vec::new();
    collect_files(dir, dir, &mut files)?;
    let mut sources = Vec::new();
    for (name, path) in files {
        let text = std::fs::read_to_string(&path).map_err(|source| LoadError::Io {
            path: path.clone(),
            source,
        })?;
        sources.push((name, text));
    }
    // One at a time first, so a syntax error names its file.
    for (name, text) in &sources {
        let mut probe = crate::vars::new_tera();
        if let Err(e) = probe.add_raw_template(name, text) {
            // A template using `extends`/`include` may only fail here for a
            // missing parent; that is caught by the combined load below.
            if !matches!(e.kind, tera::ErrorKind::MissingParent { .. }) {
                return Err(LoadError::Template {
                    role: role.to_string(),
                    file: name.clone(),
                    detail: chain(&e),
                });
            }
        }
    }
    tera.add_raw_templates(sources)
        .map_err(|e| LoadError::Template {
            role: role.to_string(),
            file: "templates/".into(),
            detail: chain(&e),
        })?;
    Ok(tera)
}

fn collect_files(
    base: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), LoadError> {
    let io = |source| LoadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            collect_files(base, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push((rel.to_string_lossy().into_owned(), p));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    fn load(tasks: &str) -> Result<Role, LoadError> {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "r/tasks.yml", tasks);
        write(
            d.path(),
            "r/handlers.yml",
            "- name: restart x\n  command: 'true'\n",
        );
        write(d.path(), "r/templates/a.conf.tera", "v={{ v }}\n");
        Role::load(d.path(), "r")
    }

    #[test]
    fn parses_a_full_task() {
        let r = load(
            "- name: conf\n  template: { src: a.conf.tera, dest: /x }\n  when: [a, b]\n  loop: [1, 2]\n  register: out\n  tags: upgrade\n  notify: restart x\n  delegate: controller\n",
        )
        .unwrap();
        let t = &r.tasks[0];
        assert_eq!(t.module, ModuleKind::Template);
        assert_eq!(t.when, ["a", "b"]);
        assert!(matches!(&t.loop_over, Some(LoopSpec::Items(i)) if i.len() == 2));
        assert!(t.tags.contains("upgrade"));
        assert!(t.delegate_controller);
    }

    #[test]
    fn rejects_bad_tasks_with_their_name() {
        let e = load("- name: two\n  command: a\n  shell: b\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("task #1 `two`") && e.contains("more than one module"),
            "{e}"
        );
        let e = load("- name: k\n  command: a\n  retries: 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown key `retries`"), "{e}");
        let e = load("- name: t\n  template: { src: nope.tera, dest: /x }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("template `nope.tera` not found"), "{e}");
        let e = load("- name: n\n  command: a\n  notify: nobody\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("notifies `nobody`"), "{e}");
        let e = load("- name: f\n  file: { path: /x, mode: rwx }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("mode"), "{e}");
        let e = load("- name: s\n  systemd: { name: x, state: restarted }\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("handlers.yml"), "{e}");
    }

    #[test]
    fn template_syntax_error_names_the_file() {
        let d = tempfile::tempdir().unwrap();
        write(d.path(), "r/tasks.yml", "[]");
        write(d.path(), "r/templates/bad.tera", "{{ x ");
        let e = Role::load(d.path(), "r").unwrap_err().to_string();
        assert!(e.contains("role `r`") && e.contains("bad.tera"), "{e}");
    }
}
