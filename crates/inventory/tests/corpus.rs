//! The malformed-inventory corpus: every case under `tests/corpus/NN-name/`
//! holds a `hosts.yml` (and maybe a `config.yml`) and an `expect` file with
//! one line per message the load must produce:
//!   `FILE:LINE: FRAGMENT`  a message at that file and line containing FRAGMENT
//!   `FRAGMENT`             some message (with its help) contains FRAGMENT

use std::path::{Path, PathBuf};

use ez_inventory::{Cluster, Diagnostic, LoadError};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

fn cases() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

fn full_text(d: &Diagnostic) -> String {
    format!(
        "{}: {} {}",
        d.field,
        d.message,
        d.help.clone().unwrap_or_default()
    )
}

fn check_expectation(case: &Path, line: &str, diags: &[Diagnostic]) -> Result<(), String> {
    let located = line
        .split_once(": ")
        .and_then(|(loc, frag)| loc.split_once(':').map(|(f, l)| (f, l, frag)))
        .and_then(|(f, l, frag)| l.parse::<usize>().ok().map(|l| (f, l, frag)));
    let found = match located {
        Some((file, line_no, frag)) => diags.iter().any(|d| {
            d.file.file_name().is_some_and(|n| n == file)
                && d.pos.line == line_no
                && (full_text(d).contains(frag)
                    || format!("{}: {}", d.field, d.message).contains(frag))
        }),
        None => diags.iter().any(|d| full_text(d).contains(line)),
    };
    if found {
        Ok(())
    } else {
        Err(format!(
            "{}: expected `{line}`, got:\n{}",
            case.display(),
            diags
                .iter()
                .map(|d| format!("  {d}"))
                .collect::<Vec<_>>()
                .join("\n")
        ))
    }
}

#[test]
fn corpus_has_enough_cases() {
    assert!(
        cases().len() >= 40,
        "the corpus must hold at least 40 cases"
    );
}

#[test]
fn every_case_fails_with_its_expected_messages() {
    let mut failures = Vec::new();
    for case in cases() {
        let expect = std::fs::read_to_string(case.join("expect")).expect("expect file");
        let diags = match Cluster::load(&case) {
            Ok(_) => {
                failures.push(format!("{}: loaded without error", case.display()));
                continue;
            }
            Err(LoadError::Invalid(d)) => d.0,
            Err(e) => {
                failures.push(format!("{}: unexpected error {e}", case.display()));
                continue;
            }
        };
        for d in &diags {
            // Every message starts with the file path, a line and a column.
            let text = d.to_string();
            let prefix = format!("{}:{}:{}: ", d.file.display(), d.pos.line, d.pos.col);
            if !text.starts_with(&prefix) || d.pos.line == 0 {
                failures.push(format!(
                    "{}: message without file:line: {text}",
                    case.display()
                ));
            }
        }
        for line in expect.lines().filter(|l| !l.trim().is_empty()) {
            if let Err(e) = check_expectation(&case, line, &diags) {
                failures.push(e);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn all_errors_are_reported_in_one_run() {
    let case = cases()
        .into_iter()
        .find(|c| c.ends_with("75-many-at-once") || c.to_string_lossy().ends_with("many-at-once"))
        .expect("many-at-once case");
    let Err(LoadError::Invalid(d)) = Cluster::load(&case) else {
        panic!("must fail")
    };
    assert!(d.len() >= 4, "{d}");
}

/// Every prefix of valid files loads or fails cleanly: never a panic.
#[test]
fn truncated_files_never_panic() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clusters/example");
    let hosts = std::fs::read_to_string(example.join("hosts.yml")).expect("example hosts");
    let config = std::fs::read_to_string(example.join("config.yml")).expect("example config");
    let dir = tempfile::tempdir().expect("tempdir");
    for cut in (0..hosts.len()).step_by(7) {
        std::fs::write(dir.path().join("hosts.yml"), &hosts[..cut]).expect("write");
        std::fs::write(
            dir.path().join("config.yml"),
            &config[..(cut * 3).min(config.len())],
        )
        .expect("write");
        let _ = Cluster::load(dir.path());
    }
}
