//! Many commands in one round trip: the script that runs a loop of commands
//! one after another inside a single `exec`, and the parser that splits its
//! output back into one [`ExecOutput`] per command.
//!
//! Why: on a converged host almost all of a run's cost is the per-command
//! cost on the host (an SSH session, a login shell), ~10 ms of host CPU each
//! on the lab machines, not the command itself. A loop of ten checks is ten
//! sessions; batched, it is one, and each command costs a fork.
//!
//! Each command runs in its own subshell (`cd`, `exit`, `set -e` and
//! variables stay inside it), through `eval` (a syntax error fails that
//! command only, as it would alone), with stdin from `/dev/null` (as an exec
//! without input). After each one the script writes a frame line
//! `\n<marker> <exit code>\n` to stdout and to stderr; the marker is random
//! per batch, so no command output can forge a frame. The script stops after
//! the first command that fails, like a loop does.

use super::{shell_quote, ExecOutput};

/// One command of a batch, with its extra environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchCommand {
    pub cmd: String,
    pub env: Vec<(String, String)>,
}

/// Names the script uses for itself; unset inside each command's subshell so
/// a command sees the same variables it would see alone.
const MARK_VAR: &str = "__ezctl_batch_mark";
const CODE_VAR: &str = "__ezctl_batch_rc";

pub(crate) fn marker() -> String {
    let mut bytes = [0u8; 16];
    // Without an entropy source, time and pid still make a marker no command
    // prints by accident.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        bytes.copy_from_slice(&(nanos ^ u128::from(std::process::id())).to_le_bytes());
    }
    format!("--ezctl-batch-{}", hex::encode(bytes))
}

pub(crate) fn script(marker: &str, cmds: &[BatchCommand]) -> String {
    let mut s = format!("{MARK_VAR}={}\n", shell_quote(marker));
    for c in cmds {
        s.push_str(&format!("( unset {MARK_VAR} {CODE_VAR}; "));
        for (k, v) in &c.env {
            s.push_str(&format!("export {k}={}; ", shell_quote(v)));
        }
        s.push_str(&format!(
            "eval {} ) </dev/null\n{CODE_VAR}=$?\n\
             printf '\\n%s %s\\n' \"${MARK_VAR}\" \"${CODE_VAR}\"\n\
             printf '\\n%s %s\\n' \"${MARK_VAR}\" \"${CODE_VAR}\" >&2\n\
             [ \"${CODE_VAR}\" -eq 0 ] || exit 0\n",
            shell_quote(&c.cmd)
        ));
    }
    s
}

/// One stream split at the frames.
struct Split<'a> {
    /// `(text, exit code)` per finished command.
    done: Vec<(&'a str, i32)>,
    /// What follows the last frame: output of a command that never finished.
    rest: &'a str,
}

fn split<'a>(marker: &str, text: &'a str) -> Result<Split<'a>, String> {
    let frame = format!("\n{marker} ");
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&frame) {
        let body = &rest[..at];
        let after = &rest[at + frame.len()..];
        let end = after
            .find('\n')
            .ok_or_else(|| "a frame line is cut short".to_string())?;
        let code = after[..end]
            .parse::<i32>()
            .map_err(|_| format!("a frame line has no exit code: `{}`", &after[..end]))?;
        parts.push((body, code));
        rest = &after[end + 1..];
    }
    Ok(Split { done: parts, rest })
}

/// The outputs of the commands that ran, in order. Fewer than `count` means
/// the last one failed (the batch stopped there), or the script itself was
/// cut off, which the caller tells apart by the last exit code.
pub(crate) fn parse(
    marker: &str,
    count: usize,
    stdout: &str,
    stderr: &str,
) -> Result<Vec<ExecOutput>, String> {
    let outs = split(marker, stdout)?.done;
    let errs = split(marker, stderr)?.done;
    if outs.len() != errs.len() || outs.len() > count {
        return Err(format!(
            "{} frames on stdout and {} on stderr for {count} commands",
            outs.len(),
            errs.len()
        ));
    }
    outs.into_iter()
        .zip(errs)
        .map(|((out, code), (err, code_err))| {
            if code != code_err {
                return Err(format!(
                    "exit code {code} on stdout but {code_err} on stderr"
                ));
            }
            Ok(ExecOutput {
                code,
                stdout: out.to_string(),
                stderr: err.to_string(),
            })
        })
        .collect()
}

/// The end of what an unfinished batch printed, for the error message.
pub(crate) fn tail(marker: &str, stderr: &str) -> String {
    match split(marker, stderr) {
        Ok(s) => s.rest.trim().to_string(),
        Err(_) => stderr.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(c: &str) -> BatchCommand {
        BatchCommand {
            cmd: c.into(),
            env: vec![],
        }
    }

    fn run_sh(script: &str) -> (String, String, i32) {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("sh runs");
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    fn batch(cmds: &[BatchCommand]) -> Vec<ExecOutput> {
        let m = marker();
        let (o, e, code) = run_sh(&script(&m, cmds));
        assert_eq!(code, 0, "the script itself succeeds: {e}");
        parse(&m, cmds.len(), &o, &e).expect("parses")
    }

    #[test]
    fn each_command_keeps_its_own_output_and_exit_code() {
        let outs = batch(&[
            cmd("echo one; echo err1 >&2"),
            cmd("printf 'no newline'"),
            cmd("printf ''"),
            cmd("printf 'two\\nlines\\n\\n'"),
        ]);
        let got: Vec<(i32, &str, &str)> = outs
            .iter()
            .map(|o| (o.code, o.stdout.as_str(), o.stderr.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "one\n", "err1\n"),
                (0, "no newline", ""),
                (0, "", ""),
                (0, "two\nlines\n\n", ""),
            ]
        );
    }

    #[test]
    fn stops_after_the_first_failure() {
        let outs = batch(&[
            cmd("true"),
            cmd("echo before; exit 7"),
            cmd("echo never-runs"),
        ]);
        assert_eq!(outs.len(), 2);
        assert_eq!(outs[1].code, 7);
        assert_eq!(outs[1].stdout, "before\n");
    }

    #[test]
    fn commands_do_not_leak_into_each_other() {
        let outs = batch(&[
            cmd("cd /; X=1; set -e; exit 0"),
            cmd("pwd >/dev/null; echo \"x=${X:-unset} mark=${__ezctl_batch_mark:-unset}\""),
            cmd("read line; echo \"read=$? ${line:-nothing}\""),
        ]);
        assert_eq!(outs[1].stdout, "x=unset mark=unset\n");
        assert_eq!(outs[2].stdout, "read=1 nothing\n", "stdin is empty");
    }

    #[test]
    fn a_syntax_error_fails_only_that_command() {
        let outs = batch(&[cmd("true"), cmd("echo 'unterminated"), cmd("true")]);
        assert_eq!(outs.len(), 2);
        assert_ne!(outs[1].code, 0);
        assert!(!outs[1].stderr.is_empty(), "the shell says why");
    }

    #[test]
    fn environment_is_per_command_and_quoted() {
        let outs = batch(&[
            BatchCommand {
                cmd: "echo \"$A\"".into(),
                env: vec![("A".into(), "it's $HOME".into())],
            },
            cmd("echo \"${A:-unset}\""),
        ]);
        assert_eq!(outs[0].stdout, "it's $HOME\n");
        assert_eq!(outs[1].stdout, "unset\n");
    }

    #[test]
    fn output_that_looks_like_a_frame_from_another_marker_is_just_output() {
        let outs = batch(&[cmd("printf '\\n--ezctl-batch-00 0\\n'")]);
        assert_eq!(outs[0].stdout, "\n--ezctl-batch-00 0\n");
    }

    #[test]
    fn a_cut_off_batch_has_fewer_results_and_a_tail() {
        let m = marker();
        let (o, e, _) = run_sh(&script(
            &m,
            &[cmd("true"), cmd("echo dying >&2; kill -9 $$")],
        ));
        // `$$` is the batch's own shell: the whole batch dies mid-command.
        let outs = parse(&m, 2, &o, &e).expect("parses");
        assert_eq!(outs.len(), 1);
        assert!(outs[0].success());
        assert_eq!(tail(&m, &e), "dying");
    }

    #[test]
    fn broken_frames_are_errors() {
        let m = "--ezctl-batch-x";
        assert!(parse(m, 1, "\n--ezctl-batch-x zero\n", "\n--ezctl-batch-x 0\n").is_err());
        assert!(parse(m, 1, "\n--ezctl-batch-x 0\n", "").is_err());
        assert!(parse(m, 1, "\n--ezctl-batch-x 0\n", "\n--ezctl-batch-x 1\n").is_err());
    }
}
