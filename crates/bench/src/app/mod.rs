//! The bench run: one temporary ezctl home, one lab name brought up fresh
//! whenever a cold run needs fresh machines, the parts in order, the table.

mod critical_run;
mod exec_bench;
mod growth;
mod home;
mod tools;
mod workload_a;
mod workload_b;

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ez_bench::measure::{self, INTERRUPTED};
use ez_bench::report::{self, Row};
use ez_lab::{Lab, LabSpec};

use crate::{Cli, Part};

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Ctrl-C / SIGTERM: the running tool is killed (its process group), the
/// bench stops at the next step and still brings its lab down.
pub fn install_interrupt_handler() {
    let handler: extern "C" fn(libc::c_int) = on_interrupt;
    // SAFETY: the handler only stores to an atomic (async-signal-safe).
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
        libc::signal(libc::SIGTERM, handler as libc::sighandler_t);
    }
}

/// Bails when the user asked to stop.
pub fn check_interrupt() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

pub fn say(msg: impl AsRef<str>) {
    eprintln!("ezbench: {}", msg.as_ref());
}

/// Everything a run shares.
pub struct Bench<'a> {
    pub cli: &'a Cli,
    pub home: home::Home,
    pub ezctl: PathBuf,
    pub lab: Option<Lab>,
    /// Bring up light hosts (network namespace + sshd, no systemd) instead
    /// of full machines: set by the growth part.
    pub light: bool,
    pub rows: Vec<Row>,
    /// (what, N, tool) -> largest controller RSS seen (KiB).
    pub rss: Vec<(String, usize, String, (u64, u64))>,
    /// Notes printed after the tables (critical path, ...).
    pub notes: Vec<String>,
    pub runtime: tokio::runtime::Runtime,
}

impl Bench<'_> {
    /// A lab of `n` machines booted just now (the previous one, if any, is
    /// torn down first): fresh machines for a cold run.
    pub fn fresh_lab(&mut self, n: usize) -> Result<&Lab> {
        check_interrupt()?;
        self.lab_down()?;
        let t = Instant::now();
        let mut spec = if self.light {
            LabSpec::light(&self.cli.lab_name, n)
        } else {
            LabSpec::new(&self.cli.lab_name, n)
        };
        spec.home = self.home.dir.clone();
        spec.progress = false;
        let lab = Lab::up(spec).with_context(|| format!("bringing up {n} lab machines"))?;
        say(format!(
            "lab {} up: {n} {} in {:.0} s",
            self.cli.lab_name,
            if self.light {
                "light hosts"
            } else {
                "machines"
            },
            t.elapsed().as_secs_f64()
        ));
        Ok(self.lab.insert(lab))
    }

    /// The current lab if it has `n` machines, else a fresh one.
    pub fn lab_of(&mut self, n: usize) -> Result<&Lab> {
        if self
            .lab
            .as_ref()
            .is_some_and(|l| l.hosts().len() == n && l.is_light() == self.light)
        {
            return self.lab.as_ref().context("lab");
        }
        self.fresh_lab(n)
    }

    pub fn lab_down(&mut self) -> Result<()> {
        if let Some(lab) = self.lab.take() {
            lab.down().context("tearing the lab down")?;
        }
        Ok(())
    }

    pub fn lab(&self) -> Result<&Lab> {
        self.lab.as_ref().context("no lab is up")
    }

    pub fn cluster_dir(&self) -> Result<PathBuf> {
        self.lab()?
            .cluster_dir()
            .context("the lab wrote no cluster folder")
    }

    /// Keeps the largest peak RSS of `tool` at `what`/`n`: (main process,
    /// all its processes), in KiB.
    pub fn note_rss(&mut self, what: &str, n: usize, tool: &str, kib: (u64, u64)) {
        match self
            .rss
            .iter_mut()
            .find(|(w, m, t, _)| w == what && *m == n && t == tool)
        {
            Some(e) => e.3 = (e.3 .0.max(kib.0), e.3 .1.max(kib.1)),
            None => self.rss.push((what.into(), n, tool.into(), kib)),
        }
    }
}

pub fn run(cli: &Cli) -> Result<()> {
    if cli.sizes.is_empty() {
        bail!("--sizes: give at least one lab size");
    }
    if let Some(why) = ez_lab::testing::skip_reason() {
        bail!("the lab cannot run here: {why}");
    }
    let started = Instant::now();
    let load_before = measure::load_average();
    let ezctl = match &cli.ezctl {
        Some(p) => p.clone(),
        None => std::env::current_exe()?
            .parent()
            .context("ezbench's directory")?
            .join("ezctl"),
    };
    let needs_ezctl = cli.only.iter().any(|p| *p != Part::Exec);
    if needs_ezctl && !ezctl.is_file() {
        bail!(
            "no ezctl binary at {} (cargo build --release -p ezctl, or --ezctl PATH)",
            ezctl.display()
        );
    }
    // A lab of ours left by a killed earlier run.
    if Path::new(ez_lab::DEFAULT_STATE_ROOT)
        .join(&cli.lab_name)
        .exists()
    {
        say(format!(
            "removing lab {} left by an earlier run",
            cli.lab_name
        ));
        ez_lab::down_by_name(&cli.lab_name, Path::new(ez_lab::DEFAULT_STATE_ROOT))?;
    }
    let needs_bundle = cli
        .only
        .iter()
        .any(|p| matches!(p, Part::B | Part::Critical));
    let home = home::Home::create(cli, &ezctl, needs_bundle)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut bench = Bench {
        cli,
        home,
        ezctl,
        lab: None,
        light: false,
        rows: Vec::new(),
        rss: Vec::new(),
        notes: Vec::new(),
        runtime,
    };
    let result = run_parts(&mut bench);
    if result.is_err() && cli.keep_on_error {
        let kept = bench.home.keep();
        say(format!(
            "kept for a look: lab {} (ezlab down --name {} when done), home {}",
            cli.lab_name,
            cli.lab_name,
            kept.display()
        ));
        return result;
    }
    let down = bench.lab_down();
    result?;
    down?;
    print_results(&bench, started.elapsed(), load_before)
}

fn run_parts(bench: &mut Bench) -> Result<()> {
    let cli = bench.cli;
    let ansible_needed = cli
        .only
        .iter()
        .any(|p| matches!(p, Part::A | Part::B | Part::Growth));
    let ansible = if ansible_needed {
        say(format!(
            "ansible-core {} in {}",
            cli.ansible_version,
            cli.cache.display()
        ));
        Some(ez_bench::ansible::Ansible::ensure(
            &cli.cache,
            &cli.ansible_version,
            &cli.python,
        )?)
    } else {
        None
    };
    for &n in &cli.sizes {
        if cli.only.contains(&Part::Exec) {
            exec_bench::run(bench, n)?;
        }
        if let (true, Some(a)) = (cli.only.contains(&Part::A), &ansible) {
            workload_a::run(bench, a, n)?;
        }
    }
    if let (true, Some(a)) = (cli.only.contains(&Part::B), &ansible) {
        workload_b::run(bench, a, cli.b_machines)?;
    }
    if cli.only.contains(&Part::Critical) {
        critical_run::run(bench, cli.b_machines)?;
    }
    if cli.only.contains(&Part::Growth) {
        growth::run(bench, ansible.as_ref())?;
    }
    Ok(())
}

fn print_results(bench: &Bench, took: Duration, load_before: Option<f64>) -> Result<()> {
    let cli = bench.cli;
    let fmt_load = |l: Option<f64>| l.map_or_else(|| "?".into(), |l| format!("{l:.1}"));
    println!();
    println!(
        "ezbench{}: {} reps per tool/phase/size, runs alternate between the tools; seconds of wall time",
        if cli.smoke { " --smoke (not a measurement)" } else { "" },
        cli.reps
    );
    println!(
        "box: {} CPUs, load average {} at start, {} at end; took {:.0} min",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        fmt_load(load_before),
        fmt_load(measure::load_average()),
        took.as_secs_f64() / 60.0
    );
    println!("{}", tools::versions(bench));
    println!();
    print!("{}", report::table(&bench.rows));
    println!();
    println!("CPU seconds (medians): ctl = the tool's processes on the controller, lab = all lab machines");
    print!("{}", report::cpu_table(&bench.rows));
    if !bench.rss.is_empty() {
        println!();
        println!("controller peak RSS (largest over the runs): the main process, and all the tool's processes together");
        let w = bench.rss.iter().map(|r| r.0.len()).max().unwrap_or(0);
        for (what, n, tool, (main, all)) in &bench.rss {
            println!(
                "  {what:<w$} N={n:<3} {tool:<9} {:>8.1} MiB main {:>8.1} MiB all",
                *main as f64 / 1024.0,
                *all as f64 / 1024.0
            );
        }
    }
    for workload in growth::WORKLOADS {
        let points = ez_bench::growth::points(&bench.rows, workload, |n| {
            bench
                .rss
                .iter()
                .filter(|(w, m, t, _)| w == workload && *m == n && t == "ezctl")
                .map(|(_, _, _, (main, _))| *main)
                .max()
        });
        if !points.is_empty() {
            println!();
            print!("{}", ez_bench::growth::table(workload, &points));
        }
    }
    for note in &bench.notes {
        println!();
        print!("{note}");
    }
    if let Some(path) = &cli.json_out {
        let doc = serde_json::json!({
            "rows": report::to_json(&bench.rows),
            "rss_kib": bench.rss.iter().map(|(w, n, t, (main, all))| serde_json::json!({"what": w, "n": n, "tool": t, "main_kib": main, "all_kib": all})).collect::<Vec<_>>(),
            "notes": bench.notes,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
