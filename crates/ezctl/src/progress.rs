//! Rendering engine events for people: progress bars on a terminal, plain
//! lines in logs and pipes, and the recap at the end. JSON lines for CI are
//! the engine's own writer.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use ez_engine::{Event, EventConsumer, HostRecap, Recap, Status};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::style::Style;

/// Progress bars, one per host, when stderr is a terminal.
pub struct Bars {
    multi: MultiProgress,
    bars: BTreeMap<String, ProgressBar>,
    style: Style,
    dry_run: bool,
}

impl Bars {
    pub fn new(hosts: &[String], style: Style, dry_run: bool) -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(10));
        let bar_style =
            ProgressStyle::with_template("{prefix:>15} {spinner} [{elapsed:>4}] {wide_msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bars = hosts
            .iter()
            .map(|h| {
                let pb = multi.add(ProgressBar::new_spinner());
                pb.set_style(bar_style.clone());
                pb.set_prefix(h.clone());
                pb.enable_steady_tick(Duration::from_millis(120));
                (h.clone(), pb)
            })
            .collect();
        Bars {
            multi,
            bars,
            style,
            dry_run,
        }
    }

    fn println(&self, line: String) {
        let _ = self.multi.println(line);
    }
}

impl EventConsumer for Bars {
    fn on_event(&mut self, e: &Event) -> std::io::Result<()> {
        match e {
            Event::TaskStart {
                host, role, task, ..
            } => {
                if let Some(pb) = self.bars.get(host) {
                    pb.set_message(format!("{role}: {task}"));
                }
            }
            Event::TaskEnd { .. } => {
                if let Some(line) = task_line(e, self.style, self.dry_run) {
                    self.println(line);
                }
            }
            Event::UnitSkipped { .. } | Event::Warning { .. } => {
                if let Some(line) = task_line(e, self.style, self.dry_run) {
                    self.println(line);
                }
            }
            Event::UnitEnd { .. } => {
                if let Some(line) = unit_failure_line(e, self.style) {
                    self.println(line);
                }
            }
            Event::RunEnd { .. } => {
                for pb in self.bars.values() {
                    pb.finish_and_clear();
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// Plain lines: what changed, failed or was skipped; quiet about `ok`.
pub struct Lines<W: Write + Send> {
    out: W,
    style: Style,
    dry_run: bool,
}

impl<W: Write + Send> Lines<W> {
    pub fn new(out: W, style: Style, dry_run: bool) -> Self {
        Lines {
            out,
            style,
            dry_run,
        }
    }
}

impl<W: Write + Send> EventConsumer for Lines<W> {
    fn on_event(&mut self, e: &Event) -> std::io::Result<()> {
        if let Event::UnitEnd {
            host,
            role,
            status,
            duration_ms,
            ..
        } = e
        {
            writeln!(
                self.out,
                "{:>15}  {role} {} ({:.1}s)",
                host,
                status.as_str(),
                *duration_ms as f64 / 1000.0
            )?;
            if let Some(line) = unit_failure_line(e, self.style) {
                writeln!(self.out, "{line}")?;
            }
        }
        if let Some(line) = task_line(e, self.style, self.dry_run) {
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }
}

fn task_line(e: &Event, style: Style, dry_run: bool) -> Option<String> {
    match e {
        Event::TaskEnd {
            host,
            role,
            task,
            status,
            duration_ms,
            changes,
            diff,
            error,
            ignored,
            ..
        } => {
            let secs = *duration_ms as f64 / 1000.0;
            let mut line = match status {
                Status::Changed => {
                    let word = if dry_run { "would change" } else { "changed" };
                    format!(
                        "{:>15}  {role}: {task} {} ({secs:.1}s)",
                        host,
                        style.bold(word)
                    )
                }
                Status::Unknown => format!(
                    "{:>15}  {role}: {task} {} ({secs:.1}s)",
                    host,
                    style.bold("would run, outcome unknown")
                ),
                Status::Failed if *ignored => {
                    format!("{:>15}  {role}: {task} failed (ignored)", host)
                }
                Status::Failed => format!("{:>15}  {role}: {task} {}", host, style.red("FAILED")),
                _ => return None,
            };
            for c in changes.iter().take(20) {
                line.push_str(&format!("\n{:>15}    {}", "", style.dim(c)));
            }
            if let Some(err) = error {
                for l in without_host(host, err).lines() {
                    line.push_str(&format!("\n{:>15}    {l}", ""));
                }
            }
            if dry_run {
                if let Some(d) = diff {
                    for l in d.lines() {
                        let l = if l.starts_with('+') && !l.starts_with("+++") {
                            style.green(l)
                        } else if l.starts_with('-') && !l.starts_with("---") {
                            style.red(l)
                        } else {
                            l.to_string()
                        };
                        line.push_str(&format!("\n{:>15}    {l}", ""));
                    }
                }
            }
            Some(line)
        }
        Event::UnitSkipped {
            host, role, cause, ..
        } => Some(format!(
            "{:>15}  {role} skipped: {} on {} failed",
            host, cause.role, cause.host
        )),
        Event::Warning { message, .. } => Some(format!("warning: {message}")),
        _ => None,
    }
}

/// Why a unit failed before any of its tasks ran (the host could not be
/// reached): task failures are shown by their own `task_end` line.
fn unit_failure_line(e: &Event, style: Style) -> Option<String> {
    let Event::UnitEnd {
        host,
        role,
        failure: Some(cause),
        ..
    } = e
    else {
        return None;
    };
    if cause.task.is_some() {
        return None;
    }
    let mut line = format!("{:>15}  {role} {}", host, style.red("FAILED"));
    for l in without_host(&cause.host, &cause.error).lines() {
        line.push_str(&format!("\n{:>15}    {l}", ""));
    }
    Some(line)
}

/// An error without its leading `HOST: `: transport errors name their host,
/// and every line that shows one names the host already.
fn without_host<'a>(host: &str, error: &'a str) -> &'a str {
    error
        .strip_prefix(host)
        .and_then(|rest| rest.strip_prefix(": "))
        .unwrap_or(error)
}

/// From this many hosts on, the recap lists only the hosts with a problem
/// and sums up the others: a thousand identical lines hide the one that
/// matters.
const COMPACT_RECAP_FROM: usize = 26;
/// From this many hosts on, the recap names the hosts that finished last.
const SLOWEST_FROM: usize = 10;

/// The closing summary: one row per host (on a large run, per host with a
/// problem, and one line for the rest), then every failure and what it
/// caused to be skipped, then the hosts that finished last.
pub fn recap(r: &Recap, style: Style) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "\n{}\n",
        style.bold(if r.dry_run {
            "PLAN RECAP (dry run: nothing was changed)"
        } else {
            "RECAP"
        })
    ));
    let compact = r.hosts.len() >= COMPACT_RECAP_FROM;
    let mut rest = (0usize, HostRecap::default());
    for (host, h) in &r.hosts {
        if compact && h.failed == 0 && h.unreachable == 0 && h.units_skipped == 0 {
            rest.0 += 1;
            rest.1.ok += h.ok;
            rest.1.changed += h.changed;
            rest.1.skipped += h.skipped;
            rest.1.unknown += h.unknown;
            continue;
        }
        let failed = if h.failed > 0 {
            style.red(&format!("failed={}", h.failed))
        } else {
            "failed=0".into()
        };
        let unreachable = if h.unreachable > 0 {
            style.red(&format!("unreachable={}", h.unreachable))
        } else {
            "unreachable=0".into()
        };
        if r.dry_run {
            // Certain changes apart from commands only a real run can judge.
            out.push_str(&format!(
                "{:>15}  ok={:<3} would_change={:<3} would_run_unknown={:<3} {failed:<9} skipped={:<3} {unreachable}\n",
                host, h.ok, h.changed, h.unknown, h.skipped
            ));
            continue;
        }
        out.push_str(&format!(
            "{:>15}  ok={:<3} changed={:<3} {failed:<9} skipped={:<3} {unreachable}\n",
            host, h.ok, h.changed, h.skipped
        ));
    }
    if compact {
        let (n, t) = rest;
        out.push_str(&if r.dry_run {
            format!(
                "{n} other hosts without a problem: ok={} would_change={} would_run_unknown={} skipped={} in all\n",
                t.ok, t.changed, t.unknown, t.skipped
            )
        } else {
            format!(
                "{n} other hosts without a problem: ok={} changed={} skipped={} in all\n",
                t.ok, t.changed, t.skipped
            )
        });
    }
    for f in &r.failures {
        let task = f
            .task
            .as_deref()
            .map(|t| format!(" / {t}"))
            .unwrap_or_default();
        out.push_str(&format!(
            "{} {} on {}{task}: {}\n",
            style.red("failed:"),
            f.role,
            f.host,
            without_host(&f.host, &f.error)
        ));
    }
    for s in &r.skipped_units {
        out.push_str(&format!(
            "skipped: {} on {} because {} on {} failed\n",
            s.role, s.host, s.cause.role, s.cause.host
        ));
    }
    if r.hosts.len() >= SLOWEST_FROM {
        if let Some(median) = r.median_finished_ms() {
            let last = r
                .slowest(3)
                .iter()
                .map(|(h, t)| format!("{h} {:.1}s", *t as f64 / 1000.0))
                .collect::<Vec<_>>()
                .join(", ");
            out.push_str(&format!(
                "finished last: {last} (half the hosts were done by {:.1}s)\n",
                median as f64 / 1000.0
            ));
        }
    }
    out.push_str(&format!(
        "{} hosts, changed={} in {:.1}s\n",
        r.hosts.len(),
        r.total_changed(),
        r.duration_ms as f64 / 1000.0
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ez_engine::Cause;

    const PLAIN: Style = Style { color: false };

    fn unreachable_cause() -> Cause {
        Cause {
            role: "prepare".into(),
            host: "10.0.0.4".into(),
            task: None,
            error: "10.0.0.4: unreachable: no SSH connection to 10.0.0.4:22: Connection refused"
                .into(),
        }
    }

    #[test]
    fn a_host_that_could_not_be_reached_says_why_in_the_plain_lines() {
        let mut out = Vec::new();
        let mut lines = Lines::new(&mut out, PLAIN, false);
        lines
            .on_event(&Event::UnitEnd {
                t_ms: 1,
                host: "10.0.0.4".into(),
                role: "prepare".into(),
                status: Status::Failed,
                duration_ms: 800,
                failure: Some(unreachable_cause()),
                unreachable: true,
            })
            .expect("write");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("prepare failed (0.8s)"), "{text}");
        assert!(
            text.contains("    unreachable: no SSH connection to 10.0.0.4:22: Connection refused"),
            "{text}"
        );
    }

    #[test]
    fn the_recap_names_host_role_and_cause_once_on_one_line() {
        let recap = Recap {
            failures: vec![unreachable_cause()],
            ..Recap::default()
        };
        let text = recap_text(&recap);
        let line = text
            .lines()
            .find(|l| l.starts_with("failed:"))
            .expect("a failure line");
        assert_eq!(
            line,
            "failed: prepare on 10.0.0.4: unreachable: no SSH connection to 10.0.0.4:22: Connection refused"
        );
    }

    fn recap_text(r: &Recap) -> String {
        recap(r, PLAIN)
    }

    /// A run over `n` hosts `10.0.0.<i>` with 2 changed tasks each, host i
    /// finishing at i * 10 ms, except `slow` at 9 s; `down` unreachable.
    fn big_recap(n: usize, slow: usize, down: usize) -> Recap {
        let mut r = Recap::default();
        for i in 1..=n {
            let host = format!("10.0.0.{i}");
            let mut h = HostRecap {
                changed: 2,
                ..HostRecap::default()
            };
            if i == down {
                h = HostRecap {
                    unreachable: 1,
                    ..HostRecap::default()
                };
            }
            r.hosts.insert(host.clone(), h);
            let t = if i == slow { 9_000 } else { i as u64 * 10 };
            r.finished_ms.insert(host, t);
        }
        r
    }

    #[test]
    fn a_large_recap_lists_the_hosts_with_a_problem_and_sums_up_the_rest() {
        let text = recap_text(&big_recap(200, 7, 3));
        let host_lines: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("unreachable="))
            .collect();
        assert_eq!(host_lines.len(), 1, "{text}");
        assert!(
            host_lines[0].trim_start().starts_with("10.0.0.3 "),
            "{text}"
        );
        assert!(
            text.contains("199 other hosts without a problem: ok=0 changed=398 skipped=0 in all"),
            "{text}"
        );
        assert!(
            text.contains("finished last: 10.0.0.7 9.0s, 10.0.0.200 2.0s, 10.0.0.199 2.0s (half the hosts were done by 1.0s)"),
            "{text}"
        );
        assert!(text.contains("200 hosts, changed=398"), "{text}");
    }

    #[test]
    fn a_small_recap_keeps_a_line_per_host_and_names_no_slowest() {
        let text = recap_text(&big_recap(5, 2, 0));
        assert_eq!(
            text.lines().filter(|l| l.contains("unreachable=")).count(),
            5,
            "{text}"
        );
        assert!(!text.contains("other hosts"), "{text}");
        assert!(!text.contains("finished last"), "{text}");
    }
}
