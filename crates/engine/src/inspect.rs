//! Rendering a role for one host without touching it: every task, every
//! loop item and every branch (`when` is not evaluated), with what each
//! would run and write. For reviews and for tests that look at what values
//! do to commands and files (the hostile-values test of ezctl).

use serde_json::{json, Map, Value};

use crate::error::TaskError;
use crate::modules::{Args, ModuleKind};
use crate::role::Role;
use crate::targets::Targets;
use crate::unit::{loop_items, render_args};
use crate::vars::{unit_context, HostContexts};

/// One task (or one loop item of it) as it would run on a host.
#[derive(Debug, Clone)]
pub struct RenderedTask {
    pub role: String,
    pub task: String,
    pub module: ModuleKind,
    /// The loop item, if any.
    pub item: Option<Value>,
    /// Shell command lines it would run: `cmd`/`argv` (with `chdir`),
    /// `unless`, `dry_run`, a `wait` probe.
    pub commands: Vec<String>,
    /// Files it would write, as `(path, content)`: a rendered template, a
    /// `content`, a managed block or line.
    pub documents: Vec<(String, String)>,
    /// Paths it acts on: file, copy and template targets, `creates`.
    pub paths: Vec<String>,
    /// Set when it does not render; the other fields are then empty.
    pub error: Option<String>,
}

/// What a registered result holds, for tasks whose arguments use an earlier
/// task's result: not run here, so every field has a neutral value.
fn stub_result() -> Value {
    json!({
        "changed": false, "skipped": false, "failed": false, "rc": 0,
        "stdout": "", "stderr": "", "stdout_lines": [], "results": [],
    })
}

impl Role {
    /// Render every task and handler of this role for `host` of `targets`.
    pub fn render_for_host(
        &self,
        targets: &Targets,
        host: &str,
    ) -> Result<Vec<RenderedTask>, TaskError> {
        let contexts = HostContexts::build(targets);
        let vars: Map<String, Value> = contexts.get(host).ok_or_else(|| TaskError::Render {
            what: format!("host {host}"),
            detail: "not in the targets".into(),
        })?;
        let mut ctx = unit_context(vars, &self.defaults)?;
        for t in self.tasks.iter().chain(&self.handlers) {
            if let Some(name) = &t.register {
                ctx.insert(name.as_str(), &stub_result());
            }
        }
        let mut out = Vec::new();
        for task in self.tasks.iter().chain(&self.handlers) {
            let blank = |item: Option<Value>, error: Option<String>| RenderedTask {
                role: self.name.clone(),
                task: task.name.clone(),
                module: task.module,
                item,
                commands: Vec::new(),
                documents: Vec::new(),
                paths: Vec::new(),
                error,
            };
            let items = match loop_items(task, &ctx) {
                Ok(items) => items,
                Err(e) => {
                    out.push(blank(None, Some(e.to_string())));
                    continue;
                }
            };
            for item in items {
                if let Some(it) = &item {
                    ctx.insert("item", it);
                }
                let mut r = blank(item, None);
                match render_args(task, &ctx).and_then(|a| self.describe(&a, &ctx, &mut r)) {
                    Ok(()) => {}
                    Err(e) => r.error = Some(e.to_string()),
                }
                out.push(r);
            }
            ctx.remove("item");
        }
        Ok(out)
    }

    fn describe(
        &self,
        args: &Args,
        ctx: &tera::Context,
        r: &mut RenderedTask,
    ) -> Result<(), TaskError> {
        match args {
            Args::Command(c) => {
                r.commands.push(c.command_line());
                r.commands.extend(c.unless.clone());
                r.commands.extend(c.dry_run.clone());
                r.paths.extend(c.creates.clone());
            }
            Args::Wait(w) => {
                let (probe, _) = w.probe(std::time::Duration::from_secs(10))?;
                r.commands.push(probe);
            }
            Args::Template(t) => {
                let text = self.render_template(&t.src, ctx)?;
                r.documents.push((t.dest.clone(), text));
                r.paths.push(t.dest.clone());
            }
            Args::File(f) => {
                r.paths.push(f.path.clone());
                if let Some(c) = &f.content {
                    r.documents.push((f.path.clone(), c.clone()));
                }
            }
            Args::Copy(c) => {
                r.paths.push(c.dest.clone());
                if let Some(content) = &c.content {
                    r.documents.push((c.dest.clone(), content.clone()));
                }
            }
            Args::Blockinfile(b) => {
                r.paths.push(b.path.clone());
                r.documents.push((b.path.clone(), b.block.clone()));
            }
            Args::Lineinfile(l) => {
                r.paths.push(l.path.clone());
                if let Some(line) = &l.line {
                    r.documents.push((l.path.clone(), line.clone()));
                }
            }
            Args::Manifest(m) => {
                r.paths.push(m.dest.clone());
                r.documents
                    .push((m.dest.clone(), m.render(&self.dir, ctx)?));
            }
            Args::Systemd(_) | Args::Sysctl(_) | Args::Modprobe(_) | Args::Fetch(_) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::TargetHost;

    #[test]
    fn every_task_item_and_branch_is_rendered() {
        let d = tempfile::tempdir().unwrap();
        let role = d.path().join("r");
        std::fs::create_dir_all(role.join("templates")).unwrap();
        std::fs::write(role.join("templates/c.tera"), "v = {{ v | dquote }}\n").unwrap();
        std::fs::write(
            role.join("tasks.yml"),
            "- name: run\n  command: { cmd: \"echo {{ item | quote }}\", unless: \"test -e {{ v | quote }}\" }\n  loop: [a, \"b c\"]\n  register: out\n  when: false\n- name: conf\n  template: { src: c.tera, dest: /etc/c }\n  when: out.changed\n- name: probe\n  wait: { command: \"true {{ v | quote }}\" }\n",
        )
        .unwrap();
        let role = Role::load(d.path(), "r").unwrap();
        let targets = Targets {
            globals: [("v".to_string(), json!("x y"))].into_iter().collect(),
            hosts: vec![TargetHost::new("h1")],
        };
        let r = role.render_for_host(&targets, "h1").unwrap();
        assert_eq!(r.len(), 4, "{r:?}");
        assert_eq!(r[0].commands, ["echo a", "test -e 'x y'"]);
        assert_eq!(r[1].commands[0], "echo 'b c'");
        assert_eq!(
            r[2].documents,
            [("/etc/c".to_string(), "v = \"x y\"\n".to_string())]
        );
        assert_eq!(r[3].commands, ["true 'x y'"]);
        assert!(r.iter().all(|t| t.error.is_none()));
    }
}
