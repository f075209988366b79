//! Targets: pods, namespaces and workloads through their ownership chains.
use crate::cluster::LinkKind;
use crate::plan::plan;
use crate::plan::testkit::*;

fn wl_world() -> crate::cluster::World {
    world([
        owned_by(mk_pod("app", "web-5d9f-aaaaa"), "ReplicaSet", "web-5d9f").into(),
        owned_by(
            mk_pod("app", "webapi-77c-bbbbb"),
            "ReplicaSet",
            "webapi-77c",
        )
        .into(),
        owned_by(mk_pod("app", "odd-ccccc"), "ReplicaSet", "odd").into(),
        owned_by(mk_pod("app", "agent-x1"), "DaemonSet", "agent").into(),
        owned_by(mk_pod("app", "db-0"), "StatefulSet", "db").into(),
        owned_by(mk_pod("app", "backup-28910-zzz"), "Job", "backup-28910").into(),
        owned_by(mk_pod("app", "once-q"), "Job", "once").into(),
        mk_pod("app", "loose").into(),
        mk_pod("other", "loose").into(),
        // the RS "odd" is known and owned by Deployment "web": the link wins over the name
        mk_link(LinkKind::ReplicaSet, "app", "odd", "Deployment", "web"),
    ])
}

fn selected(targets: Vec<crate::api::Target>) -> Vec<String> {
    let mut r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.targets = targets;
    planned_pods(&plan(&wl_world(), &[r], &cfg()))
}

#[test]
fn deployment_via_known_replica_set_or_name_fallback() {
    assert_eq!(
        selected(vec![target("Deployment", Some("app"), "web")]),
        ["app/odd-ccccc", "app/web-5d9f-aaaaa"]
    );
    // a known RS owned by someone else does not match by name
    let mut w = wl_world();
    w.apply(mk_link(
        LinkKind::ReplicaSet,
        "app",
        "web-5d9f",
        "Deployment",
        "other",
    ));
    let mut r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.targets = vec![target("Deployment", Some("app"), "web")];
    assert_eq!(planned_pods(&plan(&w, &[r], &cfg())), ["app/odd-ccccc"]);
}

#[test]
fn daemonset_statefulset_replicaset_job_pod_namespace() {
    assert_eq!(
        selected(vec![target("DaemonSet", Some("app"), "agent")]),
        ["app/agent-x1"]
    );
    assert_eq!(
        selected(vec![target("StatefulSet", Some("app"), "db")]),
        ["app/db-0"]
    );
    assert_eq!(
        selected(vec![target("ReplicaSet", Some("app"), "webapi-77c")]),
        ["app/webapi-77c-bbbbb"]
    );
    assert_eq!(
        selected(vec![target("Job", Some("app"), "once")]),
        ["app/once-q"]
    );
    assert_eq!(
        selected(vec![target("Pod", Some("other"), "loose")]),
        ["other/loose"]
    );
    assert_eq!(
        selected(vec![target("Namespace", None, "other")]),
        ["other/loose"]
    );
    // wrong namespace: nothing
    assert!(selected(vec![target("DaemonSet", Some("other"), "agent")]).is_empty());
}

#[test]
fn cronjob_via_job_link_or_name_fallback() {
    assert_eq!(
        selected(vec![target("CronJob", Some("app"), "backup")]),
        ["app/backup-28910-zzz"]
    );
    let mut w = wl_world();
    w.apply(mk_link(LinkKind::Job, "app", "once", "CronJob", "nightly"));
    let mut r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.targets = vec![target("CronJob", Some("app"), "nightly")];
    assert_eq!(planned_pods(&plan(&w, &[r], &cfg())), ["app/once-q"]);
}

#[test]
fn targets_union_then_intersect_with_selectors() {
    assert_eq!(
        selected(vec![
            target("DaemonSet", Some("app"), "agent"),
            target("StatefulSet", Some("app"), "db")
        ]),
        ["app/agent-x1", "app/db-0"]
    );
    let mut w = wl_world();
    w.apply(with_labels(
        owned_by(mk_pod("app", "db-1"), "StatefulSet", "db"),
        &[("role", "replica")],
    ));
    let mut r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.targets = vec![
        target("StatefulSet", Some("app"), "db"),
        target("DaemonSet", Some("app"), "agent"),
    ];
    r.spec.pod_selector = Some(sel(&[("role", "replica")]));
    assert_eq!(planned_pods(&plan(&w, &[r], &cfg())), ["app/db-1"]);
}

#[test]
fn only_invalid_targets_select_nothing() {
    let mut r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.targets = vec![
        target("Service", Some("app"), "x"),
        target("Deployment", None, "web"),
    ];
    let p = plan(&wl_world(), &[r], &cfg());
    assert!(p.pods.is_empty());
    let reasons: Vec<_> = p.reports["r"]
        .problems
        .iter()
        .map(|x| x.reason.as_str())
        .collect();
    assert_eq!(reasons, ["InvalidTargetKind", "MissingNamespace"]);
}

/// Issue 9 point 7: an unusable target (unknown kind, here beside a good one) leaves the
/// Route's intent unknown: the Route is Invalid as a whole and plans no NB row at all (no
/// empty Address_Set / Port_Group written), so what is programmed for it stays.
#[test]
fn an_unknown_target_kind_makes_the_route_invalid_and_plans_no_row() {
    let mut r = mk_route("r", vec![rr("172.16.0.0/16", "eth1")], vec![]);
    r.spec.targets = vec![
        target("Deployment", Some("app"), "web"),
        target("deployment", Some("app"), "web"),
    ];
    let engine = crate::plan::Engine::build(cfg(), wl_world(), &[r]);
    let mut p = engine.plan();
    assert_eq!(p.reports["r"].summary, crate::plan::Summary::Invalid);
    assert!(p.pods.is_empty());
    // The controller's keep rule (Invalid: leave as is) then drops every row it planned.
    let keep = crate::controller::keep::keep(&[], [], &engine, crate::nb::Scope::All);
    assert!(keep.routes.contains("r"));
    crate::controller::keep::drop_kept(&mut p.nb, &keep);
    assert!(p.nb.address_sets.is_empty() && p.nb.port_groups.is_empty());
}
