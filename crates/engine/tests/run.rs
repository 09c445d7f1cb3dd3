//! Whole runs with real commands in temp dirs: idempotency, handlers,
//! failures, dry-run, re-runs, pipelining, and not re-sending big files.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::*;
use ez_engine::*;

fn read(p: impl AsRef<std::path::Path>) -> String {
    std::fs::read_to_string(p.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", p.as_ref().display()))
}

fn errors(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::TaskEnd {
                error: Some(err),
                host,
                task,
                ..
            } => Some(format!("{host} {task}: {err}")),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn second_run_changes_nothing_and_handler_fires_only_on_change() {
    let d = tempfile::tempdir().unwrap();
    let (first, events) = run("site.yml", cluster(d.path(), 3), RunOptions::default()).await;
    assert!(first.ok(), "{first}\n{:?}", errors(&events));
    for h in ["h1", "h2", "h3"] {
        assert!(first.host(h).changed > 0, "{first}");
        let r = root(d.path(), h);
        assert_eq!(read(r.join("etc/motd")), "welcome to an ezctl test host\n");
        let conf = read(r.join("etc/app/app.conf"));
        assert!(conf.contains(&format!("# app config for {h}")) && conf.contains("listen = 8080"));
        assert!(conf.contains("peers = h1,h2,h3"));
        assert_eq!(
            read(r.join("etc/app/listen.txt")),
            "listen = 8080\n",
            "registered stdout used"
        );
        assert!(read(r.join("etc/hosts")).contains("10.0.0.2 h2\n"));
        assert_eq!(
            read(r.join("etc/ssh/sshd_config")),
            "PermitRootLogin prohibit-password\n"
        );
        assert!(r.join("var/lib/etcd").is_dir() && r.join("var/lib/kubelet").is_dir());
        assert_eq!(read(r.join("restarts.log")), "restarted\n");
    }

    let (second, events) = run("site.yml", cluster(d.path(), 3), RunOptions::default()).await;
    assert!(second.ok(), "{second}");
    for h in ["h1", "h2", "h3"] {
        let hr = second.host(h);
        assert_eq!(
            hr.changed, 0,
            "{h} changed on a converged host: {second}\n{events:#?}"
        );
        assert_eq!(hr.failed, 0);
        assert!(hr.ok > 5);
        assert_eq!(
            read(root(d.path(), h).join("restarts.log")),
            "restarted\n",
            "handler ran without a change"
        );
    }

    // A real change: only the app config (and what reads it) changes, the handler fires once.
    let mut targets = cluster(d.path(), 3);
    targets.globals.insert("app_port".into(), 9090.into());
    let (third, events) = run("site.yml", targets, RunOptions::default()).await;
    assert!(third.ok(), "{third}");
    let changed: Vec<(String, String)> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskEnd {
                host,
                task,
                status: Status::Changed,
                ..
            } if host == "h1" => Some((host.clone(), task.clone())),
            _ => None,
        })
        .collect();
    let tasks: Vec<&str> = changed.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(tasks, ["app config", "record listen line", "restart app"]);
    assert_eq!(
        read(root(d.path(), "h1").join("restarts.log")),
        "restarted\nrestarted\n"
    );
    assert!(read(root(d.path(), "h1").join("etc/app/app.conf")).contains("listen = 9090"));
}

#[tokio::test]
async fn a_failing_host_stops_only_its_dependents_and_a_rerun_converges() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root(d.path(), "h2")).unwrap();
    std::fs::write(root(d.path(), "h2").join("FAIL"), "").unwrap();

    let (recap, events) = run("failure.yml", cluster(d.path(), 3), RunOptions::default()).await;
    assert!(!recap.ok());
    assert_eq!(recap.failures.len(), 1, "{recap}");
    let cause = &recap.failures[0];
    assert_eq!((cause.role.as_str(), cause.host.as_str()), ("flaky", "h2"));
    assert_eq!(cause.task.as_deref(), Some("may fail"));
    assert!(cause.error.contains("exit 1"), "{}", cause.error);

    let mut skipped: Vec<String> = recap
        .skipped_units
        .iter()
        .map(|s| format!("{}@{}", s.role, s.host))
        .collect();
    skipped.sort();
    assert_eq!(skipped, ["app@h2", "report@h1"], "{recap}");
    assert!(recap.skipped_units.iter().all(|s| s.cause == *cause));
    let text = recap.to_string();
    assert!(
        text.contains("SKIPPED report@h1: because flaky@h2 task `may fail` failed"),
        "{text}"
    );

    // Independent work finished everywhere else.
    for h in ["h1", "h3"] {
        assert!(
            root(d.path(), h).join("etc/app/app.conf").exists(),
            "{h} app ran"
        );
    }
    assert!(!root(d.path(), "h2").join("etc/app/app.conf").exists());
    assert!(!root(d.path(), "h1").join("report").exists());
    assert_eq!(recap.host("h2").failed, 1);
    assert_eq!(recap.host("h2").units_skipped, 1);
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::RunEnd { ok: false, .. })));

    // Fix the host: the re-run finishes the rest and then everything is converged.
    std::fs::remove_file(root(d.path(), "h2").join("FAIL")).unwrap();
    let (rerun, _) = run("failure.yml", cluster(d.path(), 3), RunOptions::default()).await;
    assert!(rerun.ok(), "{rerun}");
    assert!(rerun.host("h2").changed > 0);
    assert_eq!(
        rerun.host("h3").changed,
        0,
        "h3 had converged already: {rerun}"
    );
    assert!(root(d.path(), "h1").join("report").exists());
    let (again, _) = run("failure.yml", cluster(d.path(), 3), RunOptions::default()).await;
    assert!(again.ok());
    assert_eq!(again.total_changed(), 0, "{again}");
}

#[tokio::test]
async fn dry_run_changes_nothing_and_shows_diffs() {
    let d = tempfile::tempdir().unwrap();
    // Fresh hosts: everything would change, nothing may be written.
    let (recap, events) = run("site.yml", cluster(d.path(), 2), dry()).await;
    assert!(recap.ok(), "{recap}\n{:?}", errors(&events));
    assert!(recap.dry_run);
    assert!(
        tree(d.path()).is_empty(),
        "dry run wrote: {:?}",
        tree(d.path())
    );
    let diff = events
        .iter()
        .find_map(|e| match e {
            Event::TaskEnd {
                host,
                task,
                diff: Some(d),
                status: Status::Changed,
                ..
            } if host == "h1" && task == "app config" => Some(d.clone()),
            _ => None,
        })
        .expect("a diff for the template");
    assert!(diff.contains("+listen = 8080"), "{diff}");

    // Converged hosts, then a pending change: dry-run shows it, leaves files as they are.
    run("site.yml", cluster(d.path(), 2), RunOptions::default()).await;
    let before: Vec<(String, Vec<u8>)> = tree(d.path())
        .into_iter()
        .filter(|p| d.path().join(p).is_file())
        .map(|p| (p.clone(), std::fs::read(d.path().join(&p)).unwrap()))
        .collect();
    let mut targets = cluster(d.path(), 2);
    targets.globals.insert("app_port".into(), 9090.into());
    let (recap, events) = run("site.yml", targets, dry()).await;
    assert!(recap.ok());
    let after: Vec<(String, Vec<u8>)> = tree(d.path())
        .into_iter()
        .filter(|p| d.path().join(p).is_file())
        .map(|p| (p.clone(), std::fs::read(d.path().join(&p)).unwrap()))
        .collect();
    assert_eq!(before, after, "dry run modified files");
    let diff = events
        .iter()
        .find_map(|e| match e {
            Event::TaskEnd {
                task,
                diff: Some(d),
                ..
            } if task == "app config" => Some(d.clone()),
            _ => None,
        })
        .expect("diff");
    assert!(
        diff.contains("-listen = 8080") && diff.contains("+listen = 9090"),
        "{diff}"
    );
    // The handler would run, but does not.
    assert_eq!(
        read(root(d.path(), "h1").join("restarts.log")),
        "restarted\n"
    );
}

#[tokio::test]
async fn other_hosts_move_on_while_one_host_is_slow() {
    let d = tempfile::tempdir().unwrap();
    let mut targets = cluster(d.path(), 4);
    targets.hosts[0].vars.insert("delay".into(), 2.into());
    let plan = Plan::build(
        &roles_dir(),
        &[playbook("pipeline.yml")],
        targets,
        &PlanFilter::default(),
    )
    .unwrap();
    let runner = Runner::new(Arc::new(LocalConnector::new()));
    let (recap, events) = run_plan(&plan, &runner).await;
    assert!(recap.ok(), "{recap}");

    // Judge from the JSON lines, as a consumer of the log would.
    let mut w = JsonLinesWriter::new(Vec::new());
    for e in &events {
        w.on_event(e).unwrap();
    }
    let lines: Vec<serde_json::Value> = String::from_utf8(w.into_inner())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let find = |event: &str, role: &str, host: &str| {
        lines
            .iter()
            .position(|l| l["event"] == event && l["role"] == role && l["host"] == host)
            .unwrap_or_else(|| panic!("no {event} {role}@{host}"))
    };
    let slow_done = find("unit_end", "slow", "h1");
    for h in ["h2", "h3", "h4"] {
        assert!(
            find("task_start", "second", h) < slow_done,
            "{h} waited for the slow host: no per-host pipelining"
        );
        assert!(find("unit_end", "second", h) < slow_done);
    }
    assert!(
        find("unit_start", "second", "h1") > slow_done,
        "h1's second role ran before its first"
    );
    let slow_ms = lines[slow_done]["duration_ms"].as_u64().unwrap();
    assert!(slow_ms >= 2000, "{slow_ms}");
}

#[tokio::test]
async fn unchanged_big_file_is_not_sent_again() {
    let d = tempfile::tempdir().unwrap();
    let big = d.path().join("big.bin");
    let data: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&big, &data).unwrap();
    let hosts_dir = d.path().join("hosts");
    let mut targets = cluster(&hosts_dir, 2);
    targets
        .globals
        .insert("big_src".into(), big.to_string_lossy().into_owned().into());
    let pb = Playbook::from_plays("copy", vec![Play::new("bigcopy", "all")]);
    let plan = Plan::build(&roles_dir(), &[pb], targets, &PlanFilter::default()).unwrap();

    let counters = Arc::new(Counters::default());
    let runner = Runner::new(Arc::new(CountingConnector {
        counters: counters.clone(),
    }));
    let (first, _) = run_plan(&plan, &runner).await;
    assert!(first.ok(), "{first}");
    assert_eq!(counters.put.load(Ordering::SeqCst), 2, "sent once per host");
    for h in ["h1", "h2"] {
        assert!(std::fs::read(root(&hosts_dir, h).join("opt/bin/big.bin")).unwrap() == data);
    }

    let counters = Arc::new(Counters::default());
    let runner = Runner::new(Arc::new(CountingConnector {
        counters: counters.clone(),
    }));
    let (second, _) = run_plan(&plan, &runner).await;
    assert!(second.ok(), "{second}");
    assert_eq!(second.total_changed(), 0);
    assert_eq!(
        counters.put.load(Ordering::SeqCst),
        0,
        "unchanged file was sent again"
    );
    // The check is the unit's one batched stat round trip per host, nothing else.
    assert_eq!(counters.stat_many.load(Ordering::SeqCst), 2);
    assert_eq!(counters.exec.load(Ordering::SeqCst), 0);
    assert_eq!(counters.fetch.load(Ordering::SeqCst), 0);

    // Mode drift is fixed without re-sending the content.
    use std::os::unix::fs::PermissionsExt;
    let target = root(&hosts_dir, "h1").join("opt/bin/big.bin");
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    let counters = Arc::new(Counters::default());
    let runner = Runner::new(Arc::new(CountingConnector {
        counters: counters.clone(),
    }));
    let (third, _) = run_plan(&plan, &runner).await;
    assert_eq!(third.host("h1").changed, 1, "{third}");
    assert_eq!(counters.put.load(Ordering::SeqCst), 0);
    assert_eq!(
        std::fs::metadata(&target).unwrap().permissions().mode() & 0o777,
        0o755
    );
}

#[tokio::test]
async fn template_error_names_role_task_and_template() {
    let d = tempfile::tempdir().unwrap();
    let pb = Playbook::from_plays("x", vec![Play::new("broken", "all")]);
    let plan = Plan::build(
        &roles_dir(),
        &[pb],
        cluster(d.path(), 1),
        &PlanFilter::default(),
    )
    .unwrap();
    let (recap, _) = run_plan(&plan, &Runner::new(Arc::new(LocalConnector::new()))).await;
    let c = &recap.failures[0];
    assert_eq!(c.role, "broken");
    assert_eq!(c.task.as_deref(), Some("render broken template"));
    assert!(
        c.error.contains("roles/broken/templates/bad.conf.tera"),
        "{}",
        c.error
    );
    assert!(
        c.error.contains("no_such_variable"),
        "tera's cause is kept: {}",
        c.error
    );
}

#[tokio::test]
async fn run_once_and_delegate_to_controller() {
    let d = tempfile::tempdir().unwrap();
    let log = d.path().join("controller.log");
    let mut targets = cluster(&d.path().join("hosts"), 3);
    targets.globals.insert(
        "controller_log".into(),
        log.to_string_lossy().into_owned().into(),
    );
    let pb = Playbook::from_plays("x", vec![Play::new("once", "all")]);
    let plan = Plan::build(&roles_dir(), &[pb], targets, &PlanFilter::default()).unwrap();
    let (recap, events) = run_plan(&plan, &Runner::new(Arc::new(LocalConnector::new()))).await;
    assert!(recap.ok(), "{recap}");
    assert_eq!(read(&log), "h1\n", "run_once ran on the first host only");
    let mut all: Vec<String> = read(format!("{}.all", log.display()))
        .lines()
        .map(str::to_string)
        .collect();
    all.sort();
    assert_eq!(all, ["h1", "h2", "h3"]);
    let skipped = events
        .iter()
        .filter(|e| matches!(e, Event::TaskEnd { status: Status::Skipped, reason: Some(r), .. } if r.contains("run_once")))
        .count();
    assert_eq!(skipped, 2);
}

/// A host that cannot be reached: its units fail/skip, the others finish.
struct HalfReachable;

#[async_trait::async_trait]
impl Connector for HalfReachable {
    async fn connect(&self, host: &TargetHost) -> Result<Arc<dyn Transport>, TransportError> {
        if host.name == "h2" {
            return Err(TransportError::Unreachable {
                host: host.name.clone(),
                reason: "connection refused".into(),
            });
        }
        LocalConnector::new().connect(host).await
    }
}

#[tokio::test]
async fn unreachable_host_is_counted_and_skipped() {
    let d = tempfile::tempdir().unwrap();
    let plan = Plan::build(
        &roles_dir(),
        &[playbook("site.yml")],
        cluster(d.path(), 3),
        &PlanFilter::default(),
    )
    .unwrap();
    let (recap, _) = run_plan(&plan, &Runner::new(Arc::new(HalfReachable))).await;
    assert_eq!(recap.host("h2").unreachable, 1, "{recap}");
    assert_eq!(recap.host("h2").units_skipped, 1);
    assert!(recap.failures[0].error.contains("connection refused"));
    assert!(root(d.path(), "h3").join("etc/app/app.conf").exists());
}

#[tokio::test]
async fn run_log_and_json_lines_cover_the_run() {
    let d = tempfile::tempdir().unwrap();
    let plan = Plan::build(
        &roles_dir(),
        &[playbook("site.yml")],
        cluster(d.path(), 1),
        &PlanFilter::default(),
    )
    .unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let runner = Runner::new(Arc::new(LocalConnector::new()));
    let consumer = tokio::spawn(async move {
        let mut json = JsonLinesWriter::new(Vec::new());
        let mut log = RunLogWriter::new(Vec::new());
        let mut recap = Recap::default();
        drain(rx, &mut [&mut json, &mut log, &mut recap])
            .await
            .unwrap();
        (json.into_inner(), log.into_inner(), recap)
    });
    let recap = runner.run(&plan, EventSink::new(tx)).await;
    let (json, log, consumer_recap) = consumer.await.unwrap();
    assert_eq!(
        consumer_recap.hosts, recap.hosts,
        "the recap is the same from events"
    );
    let json = String::from_utf8(json).unwrap();
    let first: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    let last: serde_json::Value = serde_json::from_str(json.lines().last().unwrap()).unwrap();
    assert_eq!(first["event"], "run_start");
    assert_eq!(last["event"], "run_end");
    assert!(json
        .lines()
        .any(|l| l.contains("\"event\":\"task_end\"") && l.contains("\"status\":\"changed\"")));
    let log = String::from_utf8(log).unwrap();
    assert!(log.contains("h1 app | app config: changed"), "{log}");
    assert!(log.contains("run end: ok"), "{log}");
}

/// Highest number of units running at once, from start/end events.
fn max_overlap(events: &[Event], role: &str) -> usize {
    let (mut now, mut max) = (0usize, 0usize);
    for e in events {
        match e {
            Event::UnitStart { role: r, .. } if r == role => {
                now += 1;
                max = max.max(now);
            }
            Event::UnitEnd { role: r, .. } if r == role => now -= 1,
            _ => {}
        }
    }
    max
}

#[tokio::test]
async fn concurrency_limit_and_serial_bound_parallel_units() {
    let d = tempfile::tempdir().unwrap();
    let mut targets = cluster(d.path(), 6);
    for h in &mut targets.hosts {
        h.vars.insert("delay".into(), "0.2".into());
    }
    let pb = Playbook::from_plays("x", vec![Play::new("slow", "all")]);
    let plan = Plan::build(&roles_dir(), &[pb], targets.clone(), &PlanFilter::default()).unwrap();
    let options = RunOptions {
        concurrency: 2,
        ..Default::default()
    };
    let runner = Runner::new(Arc::new(LocalConnector::new())).with_options(options);
    let (recap, events) = run_plan(&plan, &runner).await;
    assert!(recap.ok(), "{recap}");
    assert_eq!(max_overlap(&events, "slow"), 2);

    // serial: 2 — a rolling window of two hosts, in inventory order.
    let mut play = Play::new("slow", "all");
    play.serial = Some(2);
    let plan = Plan::build(
        &roles_dir(),
        &[Playbook::from_plays("x", vec![play])],
        targets,
        &PlanFilter::default(),
    )
    .unwrap();
    let (recap, events) = run_plan(&plan, &Runner::new(Arc::new(LocalConnector::new()))).await;
    assert!(recap.ok(), "{recap}");
    assert_eq!(max_overlap(&events, "slow"), 2);
    let starts: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            Event::UnitStart { host, .. } => Some(host.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(starts, ["h1", "h2", "h3", "h4", "h5", "h6"]);
}

/// What converging a fleet of `n` hosts took: a cold run, then a warm one
/// through a transport that counts what the engine asks of the hosts.
struct FleetRun {
    /// Units of the warm run.
    units: usize,
    /// Transport operations (exec, put, stat, fetch) of the warm run.
    warm_ops: usize,
    /// Most units of one role running at once in the warm run.
    overlap: usize,
    /// Both runs, wall clock.
    took: std::time::Duration,
}

async fn converge_fleet(n: usize) -> FleetRun {
    let d = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (first, _) = run("pipeline.yml", cluster(d.path(), n), RunOptions::default()).await;
    assert!(first.ok(), "{first}");
    assert!(first.total_changed() > 0, "{first}");
    let counters = Arc::new(Counters::default());
    let plan = Plan::build(
        &roles_dir(),
        &[playbook("pipeline.yml")],
        cluster(d.path(), n),
        &PlanFilter::default(),
    )
    .unwrap();
    let runner = Runner::new(Arc::new(CountingConnector {
        counters: counters.clone(),
    }));
    let (second, events) = run_plan(&plan, &runner).await;
    let took = started.elapsed();
    assert!(second.ok(), "{second}");
    assert_eq!(second.total_changed(), 0);
    let units = events
        .iter()
        .filter(|e| matches!(e, Event::UnitEnd { .. }))
        .count();
    assert_eq!(units, 2 * n, "two roles on every host");
    let c = &counters;
    let warm_ops = [&c.exec, &c.put, &c.stat_many, &c.fetch]
        .iter()
        .map(|x| x.load(Ordering::SeqCst))
        .sum();
    assert_eq!(c.put.load(Ordering::SeqCst), 0, "a warm run sends nothing");
    FleetRun {
        units,
        warm_ops,
        overlap: max_overlap(&events, "slow"),
        took,
    }
}

/// 800 units (2 runs x 200 hosts x 2 roles) against 80 (20 hosts), in the
/// same process: what a warm run asks of each host does not grow with the
/// fleet, hosts are worked on at once, and the time per unit stays within
/// a small factor of the small fleet's (a cost that grows with the fleet,
/// per unit, would make it ten times worse or more). How fast that is in
/// absolute terms is the bench's business (crates/bench), not this test's.
#[tokio::test]
async fn two_hundred_hosts_cost_per_unit_what_twenty_do() {
    let small = converge_fleet(20).await;
    let large = converge_fleet(200).await;
    let per_unit = |f: &FleetRun| f.warm_ops as f64 / f.units as f64;
    eprintln!(
        "20 hosts: {} units, {} warm ops, {:?}; 200 hosts: {} units, {} warm ops, {:?}",
        small.units, small.warm_ops, small.took, large.units, large.warm_ops, large.took
    );
    // One operation per unit (the command, or the batched stat of the
    // file), two per host: the same for 20 hosts as for 200.
    assert!(per_unit(&large) <= 1.0, "{} ops per unit", per_unit(&large));
    assert_eq!(
        large.warm_ops * small.units,
        small.warm_ops * large.units,
        "transport operations per unit differ between 20 and 200 hosts"
    );
    assert!(large.overlap > 1, "the 200 hosts' units ran one at a time");
    let ratio = (large.took.as_secs_f64() / large.units as f64)
        / (small.took.as_secs_f64() / small.units as f64);
    eprintln!("time per unit, 200 hosts / 20 hosts: {ratio:.2}");
    assert!(
        ratio < 3.0,
        "a unit costs {ratio:.1} times as much with 200 hosts as with 20: {:?} vs {:?}",
        large.took,
        small.took
    );
}

#[tokio::test]
async fn a_tag_filtered_run_sees_skipped_results_of_left_out_tasks() {
    let d = tempfile::tempdir().unwrap();
    let targets = cluster(d.path(), 2);
    for h in &targets.hosts {
        std::fs::create_dir_all(root(d.path(), &h.name)).unwrap();
    }
    let filter = PlanFilter {
        tags: ["upgrade".to_string()].into_iter().collect(),
        ..PlanFilter::default()
    };
    let plan = Plan::build(&roles_dir(), &[playbook("tagged.yml")], targets, &filter).unwrap();
    let runner = Runner::new(Arc::new(LocalConnector::new()));
    let (recap, _) = run_plan(&plan, &runner).await;
    assert!(recap.ok(), "{recap}");
    for h in ["h1", "h2"] {
        let r = root(d.path(), h);
        assert!(
            !r.join("tagged.conf").exists(),
            "the untagged task ran on {h}"
        );
        assert!(
            !r.join("tagged.log").exists(),
            "`when: conf.changed` must see a skipped result on {h}"
        );
        assert_eq!(
            std::fs::read_to_string(r.join("upgrade.log")).unwrap(),
            "upgraded\n"
        );
    }
}

#[tokio::test]
async fn a_loop_of_commands_is_one_round_trip_with_per_item_results() {
    let d = tempfile::tempdir().unwrap();
    let pb = Playbook::from_plays("batched", vec![Play::new("batched", "all")]);
    let plan = |fail: bool| {
        let mut targets = cluster(d.path(), 2);
        targets.globals.insert("fail_loop".into(), fail.into());
        Plan::build(
            &roles_dir(),
            std::slice::from_ref(&pb),
            targets,
            &PlanFilter::default(),
        )
        .unwrap()
    };
    let counters = Arc::new(Counters::default());
    let runner = Runner::new(Arc::new(CountingConnector {
        counters: counters.clone(),
    }));
    let (first, events) = run_plan(&plan(false), &runner).await;
    assert!(first.ok(), "{first}\n{:?}", errors(&events));
    // Per host: one exec for the three probes `when` lets through (one per
    // item would be three), and one for the first `guarded` item; its
    // second item is skipped by `creates`, which needs no exec.
    assert_eq!(counters.exec.load(Ordering::SeqCst), 4, "2 per host");
    assert_eq!(
        read(root(d.path(), "h1").join("probes.txt")),
        "1 changed=false skipped=false rc=0 out=first-h1 err=\n\
         2 changed=true skipped=false rc=0 out=made err=\n\
         3 changed=false skipped=true rc=- out=- err=-\n\
         4 changed=false skipped=false rc=0 out=no-newline err=to-stderr\n\n"
    );
    assert!(root(d.path(), "h1").join("g-marker").exists());
    assert!(
        !root(d.path(), "h1").join("guarded-ran").exists(),
        "the second guarded item saw the marker the first one made"
    );

    // Second run: the probes are one batch again.
    let counters = Arc::new(Counters::default());
    let runner = Runner::new(Arc::new(CountingConnector {
        counters: counters.clone(),
    }));
    let (second, _) = run_plan(&plan(false), &runner).await;
    assert!(second.ok(), "{second}");
    assert_eq!(counters.exec.load(Ordering::SeqCst), 2, "1 per host");

    // A failing item stops the loop there, as item by item would, and the
    // error names the exit code and output.
    let (third, events) = run_plan(&plan(true), &runner).await;
    assert!(!third.ok());
    let errs = errors(&events);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("h1 failing loop: exit 1")),
        "{errs:?}"
    );
    assert_eq!(
        read(root(d.path(), "h1").join("failing.log")),
        "ran-1\nran-2\n"
    );
}

/// A dry run counts only certain changes as changes. A command it cannot
/// judge is "would run: outcome unknown"; a command with a `dry_run`
/// counterpart is judged by that counterpart (with its `changed_when`);
/// after a certain change in the same unit a prediction says nothing. No
/// real command runs.
#[tokio::test]
async fn dry_run_separates_certain_changes_from_unknown_outcomes() {
    let d = tempfile::tempdir().unwrap();
    let roles = d.path().join("roles");
    for r in ["cmds", "after"] {
        std::fs::create_dir_all(roles.join(r)).unwrap();
    }
    std::fs::write(
        roles.join("cmds/tasks.yml"),
        r#"
- name: predicted unchanged
  command:
    cmd: "touch {{ root }}.ran-1; echo labeled"
    dry_run: "echo not labeled"
    changed_when: "not 'not labeled' in result.stdout"
- name: predicted changed
  command:
    cmd: "touch {{ root }}.ran-2; echo labeled"
    dry_run: "echo labeled"
    changed_when: "not 'not labeled' in result.stdout"
- name: no counterpart
  command: { cmd: "touch {{ root }}.ran-3" }
"#,
    )
    .unwrap();
    std::fs::write(
        roles.join("after/tasks.yml"),
        r#"
- name: a file that would change
  file: { path: "{{ root }}.file", state: file, content: "x" }
- name: predicted after it
  command:
    cmd: "touch {{ root }}.ran-4; echo labeled"
    dry_run: "echo not labeled"
    changed_when: "not 'not labeled' in result.stdout"
"#,
    )
    .unwrap();
    let pb = d.path().join("pb.yml");
    std::fs::write(
        &pb,
        "- { role: cmds, hosts: all_nodes }\n- { role: after, hosts: all_nodes }\n",
    )
    .unwrap();
    let hosts = d.path().join("hosts");
    let plan = Plan::build(
        &roles,
        &[Playbook::load(&pb).unwrap()],
        cluster(&hosts, 1),
        &PlanFilter::default(),
    )
    .expect("plan");
    let runner = Runner::new(Arc::new(LocalConnector::new())).with_options(dry());
    let (recap, events) = run_plan(&plan, &runner).await;
    assert!(recap.ok(), "{recap}\n{:?}", errors(&events));
    let status = |name: &str| {
        events
            .iter()
            .find_map(|e| match e {
                Event::TaskEnd { task, status, .. } if task == name => Some(*status),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no task_end for {name}"))
    };
    assert_eq!(status("predicted unchanged"), Status::Ok);
    assert_eq!(status("predicted changed"), Status::Changed);
    assert_eq!(status("no counterpart"), Status::Unknown);
    assert_eq!(status("a file that would change"), Status::Changed);
    assert_eq!(status("predicted after it"), Status::Unknown);
    let h = recap.host("h1");
    assert_eq!((h.changed, h.unknown), (2, 2), "{recap}");
    // The hosts' folder does not exist: a command that ran would have
    // failed the run, a file written would have made it.
    assert!(!hosts.exists(), "a dry run wrote on the host");
}

#[tokio::test]
async fn role_entry_points_are_units_of_their_own_and_play_vars_beat_defaults() {
    let d = tempfile::tempdir().unwrap();
    let targets = cluster(d.path(), 2);
    for h in &targets.hosts {
        std::fs::create_dir_all(root(d.path(), &h.name)).unwrap();
    }
    let plan = Plan::build(
        &roles_dir(),
        &[playbook("phased.yml")],
        targets,
        &PlanFilter::default(),
    )
    .unwrap();
    // Three units per host, one per entry, wired by the plays' edges.
    assert_eq!(plan.len(), 6);
    assert_eq!(
        plan.deps("phased:second", "h2"),
        vec![
            (
                "phased:first".to_string(),
                "h1".to_string(),
                EdgeKind::Needs
            ),
            (
                "phased:first".to_string(),
                "h2".to_string(),
                EdgeKind::Needs
            ),
        ]
    );
    assert_eq!(
        plan.deps("phased", "h1"),
        vec![(
            "phased:second".to_string(),
            "h1".to_string(),
            EdgeKind::After
        )]
    );
    let runner = Runner::new(Arc::new(LocalConnector::new()));
    let (recap, events) = run_plan(&plan, &runner).await;
    assert!(recap.ok(), "{recap}\n{:?}", errors(&events));
    for h in ["h1", "h2"] {
        assert_eq!(
            read(root(d.path(), h).join("phases.log")),
            "first from-play\nsecond default\nmain default\n",
            "entries in order on {h}, the play's vars only in its own play"
        );
    }
    assert!(
        events.iter().any(|e| is_unit_end(e, "phased:first", "h1")),
        "events name the entry"
    );
}

#[test]
fn a_role_listed_twice_on_a_host_with_other_vars_is_refused() {
    let mut a = Play::new("phased", "all");
    a.vars.insert("phase_word".into(), "x".into());
    let mut b = Play::new("phased", "h1");
    b.vars.insert("phase_word".into(), "y".into());
    let d = tempfile::tempdir().unwrap();
    let err = Plan::build(
        &roles_dir(),
        &[Playbook::from_plays("p", vec![a, b])],
        cluster(d.path(), 2),
        &PlanFilter::default(),
    )
    .err()
    .expect("refused");
    assert!(
        matches!(&err, PlanError::VarsDiffer { host, .. } if host == "h1"),
        "{err}"
    );
    let err = Plan::build(
        &roles_dir(),
        &[Playbook::from_plays(
            "p",
            vec![Play::new("phased:nope", "all")],
        )],
        cluster(d.path(), 1),
        &PlanFilter::default(),
    )
    .err()
    .expect("unknown entry");
    assert!(err.to_string().contains("phased/tasks/nope.yml"), "{err}");
}

#[tokio::test]
async fn a_dry_run_reads_the_hosts_hash_cache_but_never_writes_it() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("host-cache/file-hashes");
    let connector = || {
        Arc::new(LocalConnector::new().with_env("EZCTL_HASH_CACHE", cache.display().to_string()))
    };
    let plan = |dir: &std::path::Path| {
        Plan::build(
            &roles_dir(),
            &[playbook("site.yml")],
            cluster(dir, 2),
            &PlanFilter::default(),
        )
        .unwrap()
    };
    // The first run finds no files to hash; it writes them.
    let (recap, _) = run_plan(&plan(d.path()), &Runner::new(connector())).await;
    assert!(recap.ok(), "{recap}");
    std::thread::sleep(std::time::Duration::from_millis(20));
    // A dry run now hashes files the cache does not know: it must not store them.
    let (recap, _) = run_plan(
        &plan(d.path()),
        &Runner::new(connector()).with_options(dry()),
    )
    .await;
    assert!(recap.ok(), "{recap}");
    assert!(!cache.exists(), "a dry run wrote the hash cache");
    // A real run does (the control: the same checks do write it).
    let (recap, _) = run_plan(&plan(d.path()), &Runner::new(connector())).await;
    assert!(recap.ok(), "{recap}");
    let written = std::fs::read(&cache).expect("a real run writes the cache");
    let mtime = std::fs::metadata(&cache).unwrap().modified().unwrap();
    let (recap, _) = run_plan(
        &plan(d.path()),
        &Runner::new(connector()).with_options(dry()),
    )
    .await;
    assert!(recap.ok(), "{recap}");
    assert_eq!(
        std::fs::read(&cache).unwrap(),
        written,
        "a dry run rewrote the cache"
    );
    assert_eq!(
        std::fs::metadata(&cache).unwrap().modified().unwrap(),
        mtime
    );
}
