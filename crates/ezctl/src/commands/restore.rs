//! `ezctl restore`: the procedure is [`ez_ops::restore`]; this renders what
//! it did.

use anyhow::Result;
use ez_ops::home::Home;
use ez_ops::restore::RestoreArgs;
use serde_json::json;

use crate::output::Output;

pub fn run(home: &Home, args: &RestoreArgs<'_>, out: &Output) -> Result<()> {
    let done = ez_ops::restore::run(home, args, out)?;
    if out.json {
        out.result(
            "restore",
            json!({
                "snapshot": done.snapshot,
                "sha256": done.sha256,
                "members": done.members,
                "safety_snapshot": done.safety,
                "old_data": done.old_data,
                "duration_ms": done.took.as_millis() as u64,
            }),
        );
    } else {
        println!(
            "restored {} on {} members: {}",
            done.snapshot.display(),
            done.members.len(),
            done.described
        );
        println!("  previous data kept on each member as {}", done.old_data);
        if let Some(p) = &done.safety {
            println!("  safety snapshot {}", p.display());
        }
        println!("  took {:.1}s", done.took.as_secs_f64());
    }
    Ok(())
}
