//! Validation: every problem with its path and reason; the valid rest comes back.
use super::*;
use crate::api::{
    DefaultRouteRule, Exclude, OvnSpec, Route, RouteRule, RouteSpec, SvcRule, Target,
};

fn rr(dst: &str, dev: &str, via: Option<&str>) -> RouteRule {
    RouteRule {
        dst: dst.into(),
        dev: dev.into(),
        via: via.map(Into::into),
    }
}

fn sr(ns: &str, name: &str, dev: &str) -> SvcRule {
    SvcRule {
        namespace: ns.into(),
        name: name.into(),
        dev: dev.into(),
        via: None,
    }
}

fn route(spec: RouteSpec) -> Route {
    Route::new("r", spec)
}

/// `(path, reason)` of every problem.
fn found(v: &ValidatedRoute) -> Vec<(String, String)> {
    v.problems
        .iter()
        .map(|p| (p.path.clone().unwrap_or_default(), p.reason.clone()))
        .collect()
}

fn pr(path: &str, reason: &str) -> (String, String) {
    (path.to_owned(), reason.to_owned())
}

#[test]
fn route_rules_each_problem_with_its_path() {
    let v = validate(&route(RouteSpec {
        route: vec![
            rr("172.16.10.0/24", "eth1", None),
            rr("172.16.10.0/33", "eth1", None),
            rr("", "eth1", None),
            rr("10.0.0.5/24", "eth1", None),
            rr("10.1.0.0/16", "", None),
            rr("10.2.0.0/16", "this-name-is-too-long", None),
            rr("10.3.0.0/16", "eth 0", None),
            rr("10.4.0.0/16", "eth1", Some("gateway")),
            rr("10.5.0.0/16", "eth1", Some("fd00::1")),
            rr("172.16.10.0/24", "eth0", None),
            rr("0.0.0.0/0", "eth1", None),
            rr("10.6.0.7", "eth0", Some("")),
            rr("fd00:6::/64", "eth1", Some("fd00:6::1")),
        ],
        ..RouteSpec::default()
    }));
    assert_eq!(
        found(&v),
        [
            pr("spec.route[1].dst", "InvalidCIDR"),
            pr("spec.route[2].dst", "InvalidCIDR"),
            pr("spec.route[3].dst", "InvalidCIDR"),
            pr("spec.route[4].dev", "InvalidDev"),
            pr("spec.route[5].dev", "InvalidDev"),
            pr("spec.route[6].dev", "InvalidDev"),
            pr("spec.route[7].via", "InvalidVia"),
            pr("spec.route[8].via", "FamilyMismatch"),
            pr("spec.route[9].dst", "DuplicateRule"),
            pr("spec.route[10].dst", "InvalidCIDR"),
        ]
    );
    let kept: Vec<String> = v
        .rules
        .iter()
        .map(|r| format!("{} {} {:?}", r.dst, r.dev, r.via))
        .collect();
    assert_eq!(
        kept,
        [
            "172.16.10.0/24 eth1 None",
            "10.6.0.7/32 eth0 None",
            "fd00:6::/64 eth1 Some(fd00:6::1)"
        ]
    );
    assert!(
        v.problems[2].message.contains("10.0.0.0/24"),
        "{}",
        v.problems[2].message
    );
    assert!(!v.is_invalid());
}

#[test]
fn svc_rules_checked_and_deduplicated() {
    let mut bad_via = sr("default", "a", "eth0");
    bad_via.via = Some("x".into());
    let v = validate(&route(RouteSpec {
        svc: vec![
            sr("default", "nginx", "eth1"),
            sr("", "nginx", "eth1"),
            sr("default", "", "eth1"),
            sr("default", "Bad_Name", "eth1"),
            sr("default", "nginx", "eth0"),
            sr("default", "b", "a/b"),
            bad_via,
        ],
        ..RouteSpec::default()
    }));
    assert_eq!(
        found(&v),
        [
            pr("spec.svc[1].namespace", "InvalidService"),
            pr("spec.svc[2].name", "InvalidService"),
            pr("spec.svc[3].name", "InvalidService"),
            pr("spec.svc[4]", "DuplicateRule"),
            pr("spec.svc[5].dev", "InvalidDev"),
            pr("spec.svc[6].via", "InvalidVia"),
        ]
    );
    assert_eq!(v.rules.len(), 1);
    assert_eq!(v.rules[0].path, "spec.svc[0]");
}

#[test]
fn targets_kinds_and_namespaces() {
    let v = validate(&route(RouteSpec {
        targets: vec![
            Target {
                kind: "Deployment".into(),
                namespace: Some("app".into()),
                name: "web".into(),
            },
            Target {
                kind: "Service".into(),
                namespace: Some("app".into()),
                name: "web".into(),
            },
            Target {
                kind: "deployment".into(),
                namespace: Some("app".into()),
                name: "web".into(),
            },
            Target {
                kind: "Pod".into(),
                namespace: None,
                name: "p".into(),
            },
            Target {
                kind: "Job".into(),
                namespace: Some("".into()),
                name: "j".into(),
            },
            Target {
                kind: "Namespace".into(),
                namespace: None,
                name: "kube-system".into(),
            },
            Target {
                kind: "CronJob".into(),
                namespace: Some("app".into()),
                name: "".into(),
            },
            Target {
                kind: "StatefulSet".into(),
                namespace: Some("App".into()),
                name: "db".into(),
            },
        ],
        ..RouteSpec::default()
    }));
    assert_eq!(
        found(&v),
        [
            pr("spec.targets[1].kind", "InvalidTargetKind"),
            pr("spec.targets[2].kind", "InvalidTargetKind"),
            pr("spec.targets[3].namespace", "MissingNamespace"),
            pr("spec.targets[4].namespace", "MissingNamespace"),
            pr("spec.targets[6].name", "InvalidTarget"),
            pr("spec.targets[7].namespace", "InvalidTarget"),
        ]
    );
    let t = v.selection.targets.as_ref().unwrap();
    assert_eq!(t.len(), 2);
    assert_eq!(t[1].kind, TargetKind::Namespace);
    assert_eq!(t[1].namespace, "kube-system");
    assert!(!v.selection.is_everything());
    // Any unusable target breaks the selection: the Route is invalid as a whole.
    assert!(v.selection.broken && v.is_invalid());
}

#[test]
fn exclude_and_selectors() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    let bad_sel = LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: "app".into(),
            operator: "Exists".into(),
            values: Some(vec!["x".into()]),
        }]),
    };
    let v = validate(&route(RouteSpec {
        route: vec![rr("10.0.0.0/8", "eth1", None)],
        pod_selector: Some(bad_sel.clone()),
        exclude: Some(Exclude {
            pods: vec![
                "default/web".into(),
                "web".into(),
                "/x".into(),
                "a/b/c".into(),
            ],
            namespaces: vec!["kube-system".into(), "".into()],
            namespace_selector: Some(bad_sel),
            ..Exclude::default()
        }),
        ..RouteSpec::default()
    }));
    assert_eq!(
        found(&v),
        [
            pr(
                "spec.podSelector.matchExpressions[0].values",
                "InvalidSelector"
            ),
            pr("spec.exclude.pods[1]", "InvalidExclude"),
            pr("spec.exclude.pods[2]", "InvalidExclude"),
            pr("spec.exclude.pods[3]", "InvalidExclude"),
            pr("spec.exclude.namespaces[1]", "InvalidExclude"),
            pr(
                "spec.exclude.namespaceSelector.matchExpressions[0].values",
                "InvalidSelector"
            ),
        ]
    );
    assert!(v.selection.broken && v.exclude.broken);
    assert!(v.is_invalid(), "a broken selection makes the Route invalid");
    assert_eq!(v.exclude.pods.len(), 1);
}

#[test]
fn default_route_and_ovn_fields() {
    let v = validate(&route(RouteSpec {
        default_route: Some(DefaultRouteRule {
            dev: "eth1".into(),
            via: Some("10.124.0.1".into()),
        }),
        ovn: Some(OvnSpec {
            router: Some("GR node".into()),
            next_hops: vec![
                "100.64.0.2".into(),
                "nope".into(),
                "100.64.0.2".into(),
                "fd98::2".into(),
            ],
            bfd: None,
            enforce: Some(true),
            next_hop_pods: None,
            symmetric_reply: None,
        }),
        ..RouteSpec::default()
    }));
    assert_eq!(
        found(&v),
        [
            pr("spec.ovn.router", "InvalidRouter"),
            pr("spec.ovn.nextHops[1]", "InvalidNextHop"),
            pr("spec.ovn.nextHops[2]", "DuplicateRule"),
        ]
    );
    assert_eq!(
        v.default_route.as_ref().unwrap().via,
        Some("10.124.0.1".parse().unwrap())
    );
    assert_eq!(v.ovn.next_hops.len(), 2);
    assert!(v.ovn.enforce && !v.ovn.bfd && v.ovn.router.is_none());

    let v = validate(&route(RouteSpec {
        default_route: Some(DefaultRouteRule {
            dev: "".into(),
            via: Some("x".into()),
        }),
        ..RouteSpec::default()
    }));
    assert_eq!(
        found(&v),
        [
            pr("spec.defaultRoute.dev", "InvalidDev"),
            pr("spec.defaultRoute.via", "InvalidVia")
        ]
    );
    assert!(v.default_route.is_none());
    assert!(v.is_invalid());
}

#[test]
fn seed_shaped_route_is_valid_and_selects_everything() {
    let v = validate(&route(RouteSpec {
        route: vec![rr("172.16.10.0/24", "eth1", None)],
        svc: vec![sr("default", "nginx", "eth1")],
        ..RouteSpec::default()
    }));
    assert!(v.problems.is_empty());
    assert!(v.selection.is_everything() && v.exclude.is_empty());
    assert_eq!(v.name, "r");
    // an empty Route is valid too (it only names a selection)
    let empty = validate(&route(RouteSpec::default()));
    assert!(empty.problems.is_empty() && !empty.is_invalid());
}

#[test]
fn every_rule_invalid_means_invalid() {
    let v = validate(&route(RouteSpec {
        route: vec![rr("x", "eth1", None)],
        svc: vec![sr("", "", "")],
        ..RouteSpec::default()
    }));
    assert!(v.rules.is_empty());
    assert!(v.is_invalid());
}

#[test]
fn linux_interface_names() {
    for ok in [
        "eth0",
        "net1",
        "a",
        "eth0.100",
        "veth-x_y@",
        "123456789012345",
    ] {
        assert!(check_dev(ok).is_ok(), "{ok}");
    }
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a:b",
        "a b",
        "a\tb",
        "1234567890123456",
    ] {
        assert!(check_dev(bad).is_err(), "{bad:?}");
    }
}

/// The CRD's bounds (`api::limits`) are the controller's: past them a list is cut (rules,
/// next hops) or the selection fails safe (targets, exclusions), and every case is reported.
#[test]
fn lists_past_the_crd_bounds_are_reported() {
    use crate::api::limits;
    let many = |n: usize| -> Vec<RouteRule> {
        (0..n)
            .map(|i| rr(&format!("10.{}.{}.0/24", i / 256, i % 256), "eth1", None))
            .collect()
    };
    let v = validate(&route(RouteSpec {
        route: many(limits::ROUTE_RULES + 1),
        ovn: Some(OvnSpec {
            next_hops: (0..=limits::NEXT_HOPS)
                .map(|i| format!("100.64.{}.{}", i / 200, i % 200 + 1))
                .collect(),
            ..OvnSpec::default()
        }),
        targets: (0..=limits::TARGETS)
            .map(|i| Target {
                kind: "Pod".into(),
                namespace: Some("default".into()),
                name: format!("p{i}"),
            })
            .collect(),
        ..RouteSpec::default()
    }));
    assert_eq!(
        found(&v),
        [
            pr("spec.route", "TooManyRules"),
            pr("spec.targets", "InvalidTarget"),
            pr("spec.ovn.nextHops", "InvalidNextHop"),
        ]
    );
    assert_eq!(
        v.problems[0].message,
        "Too many: 10001: must have at most 10000 items; the ones after the first 10000 are ignored"
    );
    assert_eq!(v.rules.len(), limits::ROUTE_RULES);
    assert_eq!(v.ovn.next_hops.len(), limits::NEXT_HOPS);
    assert!(
        v.selection.broken,
        "past the cap the selection selects nothing"
    );
    let v = validate(&route(RouteSpec {
        route: many(limits::ROUTE_RULES),
        ..RouteSpec::default()
    }));
    assert!(v.problems.is_empty());
}

/// Addresses are read as the API server's CEL library reads them: no surrounding
/// whitespace, no IPv4-mapped IPv6 address, no leading zeros.
#[test]
fn addresses_are_read_as_kubernetes_reads_them() {
    let v = validate(&route(RouteSpec {
        route: vec![
            rr("172.16.0.0/16 ", "eth1", None),
            rr("::ffff:10.0.0.0/104", "eth1", None),
            rr("10.1.0.0/016", "eth1", None),
            rr("10.2.0.0/16", "eth1", Some(" 10.0.0.1")),
            rr("10.3.0.0/16", "eth1", Some("::ffff:10.0.0.1")),
        ],
        ovn: Some(OvnSpec {
            next_hops: vec![" 100.64.0.2".into(), "::ffff:100.64.0.3".into()],
            ..OvnSpec::default()
        }),
        ..RouteSpec::default()
    }));
    assert_eq!(
        found(&v),
        [
            pr("spec.route[0].dst", "InvalidCIDR"),
            pr("spec.route[1].dst", "InvalidCIDR"),
            pr("spec.route[2].dst", "InvalidCIDR"),
            pr("spec.route[3].via", "InvalidVia"),
            pr("spec.route[4].via", "InvalidVia"),
            pr("spec.ovn.nextHops[0]", "InvalidNextHop"),
            pr("spec.ovn.nextHops[1]", "InvalidNextHop"),
        ]
    );
    assert_eq!(
        v.problems[0].message,
        "not a CIDR or IP address: \"172.16.0.0/16 \""
    );
}

/// Unknown enum values are reported in the API server's words for an `enum`, and a
/// namespace written on a Namespace target must still be a name.
#[test]
fn enum_values_and_namespace_targets() {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
    let v = validate(&route(RouteSpec {
        targets: vec![
            Target {
                kind: "Gadget".into(),
                namespace: None,
                name: "g".into(),
            },
            Target {
                kind: "Namespace".into(),
                namespace: Some("Not A Name".into()),
                name: "kube-system".into(),
            },
        ],
        pod_selector: Some(LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "app".into(),
                operator: "Near".into(),
                values: None,
            }]),
        }),
        ..RouteSpec::default()
    }));
    let messages: Vec<&str> = v.problems.iter().map(|p| p.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "unsupported value \"Near\"; supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"",
            "unsupported value \"Gadget\"; supported values: \"Pod\", \"Deployment\", \"DaemonSet\", \"StatefulSet\", \"ReplicaSet\", \"Job\", \"CronJob\", \"Namespace\"",
            "\"Not A Name\" is not a namespace name",
        ]
    );
}
