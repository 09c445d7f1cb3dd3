//! Plan building: edges, cycles, unknown roles, tag and host filters.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::*;
use ez_engine::*;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// roles r1..: each one trivial task, `t` tagged `upgrade` in r2.
fn simple_roles(dir: &Path, names: &[&str]) {
    for n in names {
        let tags = if *n == "r2" {
            "\n  tags: [upgrade]"
        } else {
            ""
        };
        write(
            dir,
            &format!("{n}/tasks.yml"),
            &format!("- name: t\n  command: 'true'{tags}\n"),
        );
    }
}

fn targets() -> Targets {
    Targets {
        globals: Default::default(),
        hosts: vec![
            TargetHost::new("m1").group("kube_master").group("etcd"),
            TargetHost::new("m2").group("kube_master").group("etcd"),
            TargetHost::new("n1").group("kube_node"),
            TargetHost::new("n2").group("kube_node"),
        ],
    }
}

fn play(role: &str, hosts: &str) -> Play {
    Play::new(role, hosts)
}

#[test]
fn edges_from_after_needs_and_serial() {
    let d = tempfile::tempdir().unwrap();
    simple_roles(d.path(), &["prepare", "etcd", "master", "node"]);
    let mut master = play("master", "kube_master");
    master.after = vec!["prepare".into()];
    master.needs = vec![Need {
        role: "etcd".into(),
        on: "etcd".into(),
    }];
    let mut node = play("node", "kube_node");
    node.after = vec!["prepare".into()];
    node.serial = Some(1);
    let pb = Playbook::from_plays(
        "90-all",
        vec![play("prepare", "all"), play("etcd", "etcd"), master, node],
    );
    let plan = Plan::build(d.path(), &[pb], targets(), &PlanFilter::default()).unwrap();
    assert_eq!(plan.len(), 4 + 2 + 2 + 2);
    assert_eq!(
        plan.deps("master", "m2"),
        vec![
            ("etcd".to_string(), "m1".to_string(), EdgeKind::Needs),
            ("etcd".to_string(), "m2".to_string(), EdgeKind::Needs),
            ("prepare".to_string(), "m2".to_string(), EdgeKind::After),
        ]
    );
    // serial 1: n2 waits for n1, n1 only for its own prepare.
    assert_eq!(
        plan.deps("node", "n2"),
        vec![
            ("node".to_string(), "n1".to_string(), EdgeKind::Serial),
            ("prepare".to_string(), "n2".to_string(), EdgeKind::After),
        ]
    );
    assert_eq!(
        plan.deps("node", "n1"),
        vec![("prepare".to_string(), "n1".to_string(), EdgeKind::After)]
    );
    assert!(
        plan.deps("etcd", "m1").is_empty(),
        "etcd has no `after`: no edge"
    );
    assert!(plan
        .describe()
        .contains("master@m1 (1 tasks) <- etcd@m1 [needs]"));
}

#[test]
fn cycle_is_reported_with_its_path() {
    let d = tempfile::tempdir().unwrap();
    simple_roles(d.path(), &["a", "b", "c"]);
    let mut a = play("a", "m1");
    a.after = vec!["c".into()];
    let mut b = play("b", "m1");
    b.after = vec!["a".into()];
    let mut c = play("c", "m1");
    c.needs = vec![Need {
        role: "b".into(),
        on: "kube_master".into(),
    }];
    let pb = Playbook::from_plays("x", vec![a, b, c]);
    let err = Plan::build(d.path(), &[pb], targets(), &PlanFilter::default())
        .err()
        .expect("cycle");
    match &err {
        PlanError::Cycle { path } => {
            assert_eq!(path.first(), path.last());
            assert_eq!(path.len(), 4, "{path:?}");
            for u in ["a@m1", "b@m1", "c@m1"] {
                assert!(path.contains(&u.to_string()), "{path:?}");
            }
        }
        other => panic!("expected a cycle, got {other}"),
    }
    assert!(err.to_string().contains(" -> "));
}

#[test]
fn self_dependency_is_a_cycle() {
    let d = tempfile::tempdir().unwrap();
    simple_roles(d.path(), &["a"]);
    let mut a = play("a", "m1");
    a.after = vec!["a".into()];
    let err = Plan::build(
        d.path(),
        &[Playbook::from_plays("x", vec![a])],
        targets(),
        &PlanFilter::default(),
    );
    assert!(matches!(err, Err(PlanError::Cycle { .. })));
}

#[test]
fn unknown_roles_are_errors_but_absent_ones_are_satisfied() {
    let d = tempfile::tempdir().unwrap();
    simple_roles(d.path(), &["prepare", "etcd"]);
    let err = Plan::build(
        d.path(),
        &[Playbook::from_plays("02-etcd", vec![play("etdc", "etcd")])],
        targets(),
        &PlanFilter::default(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, PlanError::UnknownRole { role, .. } if role == "etdc"),
        "{err}"
    );
    assert!(
        err.to_string().contains("02-etcd") && err.to_string().contains("play #1"),
        "{err}"
    );

    let mut e = play("etcd", "etcd");
    e.after = vec!["prepair".into()];
    let err = Plan::build(
        d.path(),
        &[Playbook::from_plays("02-etcd", vec![e])],
        targets(),
        &PlanFilter::default(),
    )
    .err()
    .unwrap();
    assert!(
        matches!(&err, PlanError::UnknownRole { role, .. } if role == "prepair"),
        "{err}"
    );

    // `prepare` exists but is not in this plan (step 01 ran before): satisfied.
    let mut e = play("etcd", "etcd");
    e.after = vec!["prepare".into()];
    let plan = Plan::build(
        d.path(),
        &[Playbook::from_plays("02-etcd", vec![e])],
        targets(),
        &PlanFilter::default(),
    )
    .unwrap();
    assert_eq!(plan.len(), 2);
    assert!(plan.deps("etcd", "m1").is_empty());
}

#[test]
fn a_role_listed_by_two_plays_is_one_unit_with_both_plays_edges() {
    let d = tempfile::tempdir().unwrap();
    simple_roles(d.path(), &["prepare", "etcd", "lb"]);
    // As 90-all importing step 04 (lb on masters) and 05 (lb on nodes): m1 is
    // an etcd host too, so lb@m1 comes from both plays.
    let mut on_masters = play("lb", "kube_master");
    on_masters.after = vec!["prepare".into()];
    let mut on_etcd = play("lb", "etcd");
    on_etcd.needs = vec![Need {
        role: "etcd".into(),
        on: "m2".into(),
    }];
    let pb = Playbook::from_plays(
        "90-all",
        vec![
            play("prepare", "all"),
            play("etcd", "etcd"),
            on_masters,
            on_etcd,
        ],
    );
    let plan = Plan::build(d.path(), &[pb], targets(), &PlanFilter::default()).unwrap();
    assert_eq!(plan.units().filter(|u| u.role.name == "lb").count(), 2);
    assert_eq!(
        plan.deps("lb", "m1"),
        vec![
            ("etcd".to_string(), "m2".to_string(), EdgeKind::Needs),
            ("prepare".to_string(), "m1".to_string(), EdgeKind::After),
        ]
    );
}

#[test]
fn tags_and_limit_filter_units() {
    let d = tempfile::tempdir().unwrap();
    simple_roles(d.path(), &["r1", "r2"]);
    let mut r2 = play("r2", "all");
    r2.after = vec!["r1".into()];
    let pb = Playbook::from_plays("x", vec![play("r1", "all"), r2]);

    let tags = PlanFilter {
        tags: BTreeSet::from(["upgrade".to_string()]),
        ..Default::default()
    };
    let plan = Plan::build(d.path(), std::slice::from_ref(&pb), targets(), &tags).unwrap();
    let units: Vec<String> = plan.units().map(Unit::label).collect();
    assert_eq!(units, ["r2@m1", "r2@m2", "r2@n1", "r2@n2"]);
    assert!(
        plan.deps("r2", "m1").is_empty(),
        "r1 filtered out: dependency satisfied"
    );

    let skip = PlanFilter {
        skip_tags: BTreeSet::from(["upgrade".to_string()]),
        ..Default::default()
    };
    let plan = Plan::build(d.path(), std::slice::from_ref(&pb), targets(), &skip).unwrap();
    assert!(plan.units().all(|u| u.role.name == "r1"));

    let limit = PlanFilter {
        limit: Some("kube_node:!n2".into()),
        ..Default::default()
    };
    let plan = Plan::build(d.path(), &[pb], targets(), &limit).unwrap();
    let units: Vec<String> = plan.units().map(Unit::label).collect();
    assert_eq!(units, ["r1@n1", "r2@n1"]);
}

#[test]
fn fixture_playbooks_build() {
    let d = tempfile::tempdir().unwrap();
    for pb in ["site.yml", "failure.yml", "pipeline.yml"] {
        let plan = Plan::build(
            &roles_dir(),
            &[playbook(pb)],
            cluster(d.path(), 3),
            &PlanFilter::default(),
        );
        assert!(plan.is_ok(), "{pb}: {:?}", plan.err());
    }
}

#[test]
fn a_play_whose_when_is_false_adds_no_units() {
    let d = tempfile::tempdir().unwrap();
    simple_roles(d.path(), &["calico", "flannel", "dns"]);
    let mut t = targets();
    t.globals
        .insert("CLUSTER_NETWORK".into(), serde_json::json!("flannel"));
    let mut calico = play("calico", "kube_master");
    calico.when = Some("CLUSTER_NETWORK == \"calico\"".into());
    let mut flannel = play("flannel", "kube_master");
    flannel.when = Some("{{ CLUSTER_NETWORK == 'flannel' }}".into());
    let mut dns = play("dns", "kube_master");
    dns.needs = vec![
        Need {
            role: "calico".into(),
            on: "kube_master".into(),
        },
        Need {
            role: "flannel".into(),
            on: "kube_master".into(),
        },
    ];
    let pb = Playbook::from_plays("06", vec![calico, flannel, dns]);
    let plan = Plan::build(d.path(), &[pb], t, &PlanFilter::default()).unwrap();
    let roles: BTreeSet<String> = plan.units().map(|u| u.role.name.clone()).collect();
    assert!(!roles.contains("calico"), "{roles:?}");
    assert!(
        roles.contains("flannel") && roles.contains("dns"),
        "{roles:?}"
    );
    // dns waits for the network that is there, not for the one that is not.
    let text = plan.describe();
    assert!(text.contains("flannel"), "{text}");

    // A condition that cannot be evaluated names the play.
    let mut bad = play("calico", "kube_master");
    bad.when = Some("NO_SUCH_SETTING == 1".into());
    let pb = Playbook::from_plays("06", vec![bad]);
    let err = Plan::build(d.path(), &[pb], targets(), &PlanFilter::default())
        .err()
        .expect("an undefined variable is an error");
    assert!(
        err.to_string().contains("06: play #1 (calico): when:"),
        "{err}"
    );
}
