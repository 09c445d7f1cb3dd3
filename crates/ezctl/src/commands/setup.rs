//! `ezctl setup <cluster> <step>` and `ezctl play`: the run is
//! [`ez_ops::setup`]; this renders its recap and sets the exit code.

use anyhow::{bail, Result};
use ez_engine::Recap;
use ez_ops::exit::{ExitCode, Failure};
use ez_ops::home::Home;
use ez_ops::setup::RunFlags;

use crate::cli::RunOpts;
use crate::output::Output;
use crate::progress;

pub fn run(home: &Home, name: &str, step: &str, opts: &RunOpts, out: &Output) -> Result<()> {
    let recap = ez_ops::setup::step(home, name, step, &flags(opts), out)?;
    finish(&recap, out, "setup")
}

/// `ezctl play <cluster> <playbook> [--roles DIR]`.
pub fn play(
    home: &Home,
    name: &str,
    playbook: &std::path::Path,
    roles: Option<&std::path::Path>,
    opts: &RunOpts,
    out: &Output,
) -> Result<()> {
    let recap = ez_ops::setup::play(home, name, playbook, roles, &flags(opts), out)?;
    finish(&recap, out, "play")
}

fn flags(opts: &RunOpts) -> RunFlags<'_> {
    RunFlags {
        dry_run: opts.dry_run,
        limit: &opts.limit,
        tags: &opts.tags,
        accept_new: opts.accept_new,
    }
}

/// Print the recap and turn failures into the exit code.
pub fn finish(recap: &Recap, out: &Output, command: &str) -> Result<()> {
    if out.json {
        out.emit(&serde_json::json!({ "event": "recap", "recap": recap }));
    } else {
        eprint!("{}", progress::recap(recap, out.style));
    }
    if recap.ok() {
        out.result(
            command,
            serde_json::json!({
                "dry_run": recap.dry_run,
                "changed": recap.total_changed(),
                "unknown": recap.total_unknown(),
            }),
        );
        Ok(())
    } else {
        bail!(Failure::new(
            ExitCode::Failed,
            format!(
                "{} failure(s); fix the cause and run the same command again",
                recap.failures.len()
            )
        ))
    }
}
