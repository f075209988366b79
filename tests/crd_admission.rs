//! Admission (the CRD's bounds, enums and CEL rules, run as the API server runs them by
//! tests/cel) and the controller's validation (`api::validate`) agree:
//! - every Route admission refuses is `Invalid` in the controller, or the controller reports a
//!   problem in the same rule (`spec.route[2]`, `spec.podSelector`, ...);
//! - every problem the controller reports that admission covers is refused by admission in the
//!   same rule, so a Route admission accepts has only controller-only problems left (those
//!   that need the world, and the few listed in docs/crd.md);
//! - each rule's message is the controller's message for the same field;
//! - the seed's CRs and deploy/examples pass; the `--compat pre-1.31` CRD refuses nothing the
//!   controller accepts.
//!
//! Inputs: the bad-input corpus (tests/corpus), the examples, the seed, Routes at and past
//! every bound, and generated Routes mixing good and bad values.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

#[path = "cel/mod.rs"]
mod cel_k8s;
#[path = "admission_gen/mod.rs"]
mod generate;

use std::path::Path;

use cel_k8s::crd::{Cause, Kind, validate as admit};
use ovnkube_route::api::validate::{ValidatedRoute, reason, validate};
use ovnkube_route::api::{Route, crd, limits};
use proptest::prelude::*;
use serde_json::{Value, json};

fn schema(compat: bool) -> Value {
    let c = if compat {
        ovnkube_route::api::crd_compat()
    } else {
        crd::crd()
    };
    serde_json::to_value(
        c.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

thread_local! {
    static FULL: Value = schema(false);
    static COMPAT: Value = schema(true);
}

fn admission(doc: &Value) -> Vec<Cause> {
    FULL.with(|s| admit(s, doc))
}

fn admission_compat(doc: &Value) -> Vec<Cause> {
    COMPAT.with(|s| admit(s, doc))
}

/// The rule a path belongs to: a list item (`spec.route[3]`), a selector, `spec.defaultRoute`,
/// or the path itself (`spec.ovn.router`, a whole list past its bound).
fn rule_of(path: &str) -> String {
    for root in [
        "spec.exclude.podSelector",
        "spec.exclude.namespaceSelector",
        "spec.podSelector",
        "spec.namespaceSelector",
        "spec.defaultRoute",
    ] {
        if path.starts_with(root) {
            return root.to_owned();
        }
    }
    for list in [
        "spec.route",
        "spec.svc",
        "spec.targets",
        "spec.exclude.pods",
        "spec.exclude.namespaces",
        "spec.ovn.nextHops",
    ] {
        if let Some(rest) = path.strip_prefix(list)
            && rest.starts_with('[')
        {
            let end = rest.find(']').map_or(rest.len(), |i| i + 1);
            return format!("{list}{}", &rest[..end]);
        }
    }
    path.to_owned()
}

/// Controller problems no admission rule stands for (docs/crd.md, "Checked by the controller
/// only"): duplicates, and the keys of `matchLabels` (a map's keys have no bound the CEL
/// cost estimator can use).
fn controller_only(reason: &str, path: &str, message: &str) -> bool {
    reason == reason::DUPLICATE_RULE
        || (path.contains("matchLabels[") && message.starts_with("label key"))
}

fn controller(doc: &Value) -> ValidatedRoute {
    let route: Route = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("a well-typed Route does not decode: {e}\n{doc}"));
    validate(&route)
}

/// The two properties, with a readable report when they fail.
fn agree(doc: &Value) -> Result<(), String> {
    let causes = admission(doc);
    let v = controller(doc);
    let problems: Vec<(String, &str, &str)> = v
        .problems
        .iter()
        .map(|p| {
            (
                p.path.clone().unwrap_or_default(),
                p.reason.as_str(),
                p.message.as_str(),
            )
        })
        .collect();
    let report = || format!("admission: {causes:#?}\ncontroller: {problems:#?}\nroute: {doc}");
    for c in causes.iter().filter(|c| c.field != "<nil>") {
        let rule = rule_of(&c.field);
        if !v.is_invalid() && !problems.iter().any(|(p, _, _)| rule_of(p) == rule) {
            return Err(format!(
                "admission refuses {} and the controller does not\n{}",
                c.error(),
                report()
            ));
        }
    }
    let blocked = causes
        .iter()
        .any(|c| matches!(c.kind, Kind::TypeInvalid | Kind::NotSupported));
    if blocked {
        // The API server did not run the rules; the Route is refused all the same.
        return Ok(());
    }
    for (path, reason, message) in &problems {
        if controller_only(reason, path, message) {
            continue;
        }
        let rule = rule_of(path);
        if !causes.iter().any(|c| rule_of(&c.field) == rule) {
            return Err(format!(
                "the controller reports {path}: {reason}: {message}; admission accepts it\n{}",
                report()
            ));
        }
    }
    // The messages: a rule's message is the controller's for that field, for values that
    // quote plainly (the controller escapes and cuts what it quotes).
    // The controller reports one defect per field (the first it finds), admission every rule
    // that fails: on each field both report, one of admission's messages is the controller's.
    if plain(doc) {
        let mut by_field: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
        for c in &causes {
            if let Some(m) = c.rule_message() {
                by_field.entry(c.field.as_str()).or_default().push(m);
            }
        }
        for (field, said) in by_field {
            let here: Vec<&str> = problems
                .iter()
                .filter(|(p, _, _)| field == p || field.starts_with(&format!("{p}[")))
                .map(|(_, _, pm)| *pm)
                .collect();
            if !here.is_empty() && !said.iter().any(|m| here.contains(m)) {
                return Err(format!(
                    "admission says {field}: {said:?}; the controller says {here:?}\n{}",
                    report()
                ));
            }
        }
    }
    // The compat CRD refuses nothing the controller accepts.
    for c in admission_compat(doc).iter().filter(|c| c.field != "<nil>") {
        let rule = rule_of(&c.field);
        if !v.is_invalid() && !problems.iter().any(|(p, _, _)| rule_of(p) == rule) {
            return Err(format!(
                "the compat CRD refuses {} and the controller does not\n{}",
                c.error(),
                report()
            ));
        }
    }
    Ok(())
}

/// True when every string in `doc` is short printable ASCII without `"` or `\`.
fn plain(doc: &Value) -> bool {
    match doc {
        Value::String(s) => {
            s.chars().count() <= 64
                && s.chars()
                    .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\')
        }
        Value::Array(a) => a.iter().all(plain),
        Value::Object(m) => m
            .iter()
            .all(|(k, v)| plain(&Value::String(k.clone())) && plain(v)),
        _ => true,
    }
}

fn routes_in(path: &Path) -> Vec<Value> {
    let loaded = ovnkube_route::config::load_path(path).unwrap();
    loaded
        .documents
        .routes
        .iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect()
}

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

#[test]
fn the_corpus_agrees() {
    let docs = routes_in(&repo("tests/corpus"));
    assert!(docs.len() >= 35, "{} Routes in the corpus", docs.len());
    let mut refused = 0;
    let mut failures = Vec::new();
    for d in &docs {
        if !admission(d).is_empty() {
            refused += 1;
        }
        if let Err(e) = agree(d) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // The semantic files are bad on purpose: admission refuses them at `kubectl apply`.
    assert!(refused >= 15, "only {refused} corpus Routes refused");
    println!(
        "{refused} of {} corpus Routes refused at admission",
        docs.len()
    );
}

#[test]
fn the_seed_and_the_examples_pass() {
    let mut docs = routes_in(&repo("deploy/examples"));
    docs.extend(routes_in(&repo("deploy/examples/gateways")));
    docs.push(serde_yaml_ng::from_str(include_str!("corpus/seed/seed-demo.yaml")).unwrap());
    assert!(docs.len() >= 4);
    for d in &docs {
        assert_eq!(admission(d), vec![], "{d}");
        assert_eq!(admission_compat(d), vec![], "{d}");
        assert!(controller(d).problems.is_empty(), "{d}");
    }
}

/// One case per rule, with the message the API server gives, word for word the
/// controller's.
#[test]
fn each_rule_says_what_the_controller_says() {
    let route = |spec: Value| json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "r"}, "spec": spec});
    let cases = [
        (
            json!({"route": [{"dst": "", "dev": "eth1"}]}),
            "spec.route[0].dst",
            "empty destination",
        ),
        (
            json!({"route": [{"dst": "10.0.0.0/33", "dev": "eth1"}]}),
            "spec.route[0].dst",
            "not a CIDR or IP address: \"10.0.0.0/33\"",
        ),
        (
            json!({"route": [{"dst": "10.0.0.0/0", "dev": "eth1"}]}),
            "spec.route[0].dst",
            "\"10.0.0.0/0\" would replace the default route; use spec.defaultRoute for that",
        ),
        (
            json!({"route": [{"dst": "10.0.0.5/24", "dev": "eth1"}]}),
            "spec.route[0].dst",
            "\"10.0.0.5/24\" has host bits set; did you mean 10.0.0.0/24?",
        ),
        (
            json!({"route": [{"dst": "fd00::5/64", "dev": "eth1"}]}),
            "spec.route[0].dst",
            "\"fd00::5/64\" has host bits set; did you mean fd00::/64?",
        ),
        (
            json!({"route": [{"dst": "10.0.0.0/8", "dev": ""}]}),
            "spec.route[0].dev",
            "empty interface name",
        ),
        (
            json!({"route": [{"dst": "10.0.0.0/8", "dev": "éééééééé"}]}),
            "spec.route[0].dev",
            "interface name \"éééééééé\" is longer than 15 bytes",
        ),
        (
            json!({"route": [{"dst": "10.0.0.0/8", "dev": "eth 0"}]}),
            "spec.route[0].dev",
            "\"eth 0\" is not a valid Linux interface name",
        ),
        (
            json!({"route": [{"dst": "10.0.0.0/8", "dev": "eth1", "via": "gw"}]}),
            "spec.route[0].via",
            "via \"gw\" is not an IP address",
        ),
        (
            json!({"route": [{"dst": "10.0.0.0/8", "dev": "eth1", "via": "fd00::1"}]}),
            "spec.route[0].via",
            "via fd00::1 and dst 10.0.0.0/8 are of different IP families",
        ),
        (
            json!({"route": [{"dst": "fd00::7", "dev": "eth1", "via": "10.0.0.1"}]}),
            "spec.route[0].via",
            "via 10.0.0.1 and dst fd00::7/128 are of different IP families",
        ),
        (
            json!({"svc": [{"namespace": "Default", "name": "web", "dev": "eth1"}]}),
            "spec.svc[0].namespace",
            "\"Default\" is not a namespace name",
        ),
        (
            json!({"svc": [{"namespace": "default", "name": "web_1", "dev": "eth1"}]}),
            "spec.svc[0].name",
            "\"web_1\" is not a Service name",
        ),
        (
            json!({"svc": [{"namespace": "default", "name": "web", "dev": "a/b"}]}),
            "spec.svc[0].dev",
            "\"a/b\" is not a valid Linux interface name",
        ),
        (
            json!({"defaultRoute": {"dev": "eth1", "via": "x"}}),
            "spec.defaultRoute.via",
            "via \"x\" is not an IP address",
        ),
        (
            json!({"targets": [{"kind": "Pod", "name": "p"}]}),
            "spec.targets[0].namespace",
            "a Pod target needs a namespace",
        ),
        (
            json!({"targets": [{"kind": "Pod", "namespace": "a", "name": "P"}]}),
            "spec.targets[0].name",
            "\"P\" is not an object name",
        ),
        (
            json!({"targets": [{"kind": "Job", "namespace": "A", "name": "p"}]}),
            "spec.targets[0].namespace",
            "\"A\" is not a namespace name",
        ),
        (
            json!({"exclude": {"pods": ["web"]}}),
            "spec.exclude.pods[0]",
            "\"web\" is not of the form namespace/name",
        ),
        (
            json!({"exclude": {"namespaces": ["Kube"]}}),
            "spec.exclude.namespaces[0]",
            "\"Kube\" is not a namespace name",
        ),
        (
            json!({"ovn": {"router": "GR node"}}),
            "spec.ovn.router",
            "\"GR node\" is not a logical router name",
        ),
        (
            json!({"ovn": {"nextHops": ["100.64.0.300"]}}),
            "spec.ovn.nextHops[0]",
            "\"100.64.0.300\" is not an IP address",
        ),
        (
            json!({"podSelector": {"matchLabels": {"app": "-web"}}}),
            "spec.podSelector.matchLabels[app]",
            "label value \"-web\": at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
        ),
        (
            json!({"podSelector": {"matchExpressions": [{"key": "a/", "operator": "Exists"}]}}),
            "spec.podSelector.matchExpressions[0].key",
            "label key \"a/\": name must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
        ),
        (
            json!({"namespaceSelector": {"matchExpressions": [{"key": "-x.io/a", "operator": "Exists"}]}}),
            "spec.namespaceSelector.matchExpressions[0].key",
            "label key \"-x.io/a\": invalid prefix",
        ),
        (
            json!({"exclude": {"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}}),
            "spec.exclude.podSelector.matchExpressions[0].values",
            "operator In needs at least one value",
        ),
        (
            json!({"exclude": {"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}}}),
            "spec.exclude.namespaceSelector.matchExpressions[0].values",
            "operator Exists takes no values",
        ),
        (
            json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In", "values": ["x y"]}]}}),
            "spec.podSelector.matchExpressions[0].values[0]",
            "label value \"x y\": at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
        ),
    ];
    for (spec, field, message) in cases {
        let doc = route(spec);
        let causes = admission(&doc);
        let got: Vec<(String, Option<&str>)> = causes
            .iter()
            .map(|c| (c.field.clone(), c.rule_message()))
            .collect();
        assert!(
            got.iter().any(|(f, m)| f == field && *m == Some(message)),
            "want {field}: {message}\ngot {got:#?}"
        );
        let v = controller(&doc);
        assert!(
            v.problems.iter().any(
                |p| p.message == message && field.starts_with(p.path.as_deref().unwrap_or("-"))
            ),
            "the controller does not say {message:?} for {field}: {:#?}",
            v.problems
        );
        agree(&doc).unwrap();
    }
}

/// Lists and strings at their bound are accepted; one past it is refused by both, in the
/// API server's words.
#[test]
fn bounds_agree() {
    let route = |spec: Value| json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "r"}, "spec": spec});
    let hops = |n: usize| -> Vec<String> {
        (0..n)
            .map(|i| format!("100.64.{}.{}", i / 200, i % 200 + 1))
            .collect()
    };
    let svcs = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"namespace": "default", "name": format!("s{i}"), "dev": "eth1"}))
            .collect()
    };
    let targets = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"kind": "Pod", "namespace": "default", "name": format!("p{i}")}))
            .collect()
    };
    let names = |n: usize| -> Vec<String> { (0..n).map(|i| format!("ns{i}")).collect() };
    let exprs = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| json!({"key": format!("k{i}"), "operator": "Exists"}))
            .collect()
    };
    let labels = |n: usize| -> serde_json::Map<String, Value> {
        (0..n).map(|i| (format!("k{i}"), json!("v"))).collect()
    };
    let values = |n: usize| -> Vec<String> { (0..n).map(|i| format!("v{i}")).collect() };
    let cases: Vec<(Value, Value, &str)> = vec![
        (
            json!({"ovn": {"nextHops": hops(limits::NEXT_HOPS)}}),
            json!({"ovn": {"nextHops": hops(limits::NEXT_HOPS + 1)}}),
            "spec.ovn.nextHops",
        ),
        (
            json!({"svc": svcs(limits::SVC_RULES)}),
            json!({"svc": svcs(limits::SVC_RULES + 1)}),
            "spec.svc",
        ),
        (
            json!({"targets": targets(limits::TARGETS)}),
            json!({"targets": targets(limits::TARGETS + 1)}),
            "spec.targets",
        ),
        (
            json!({"exclude": {"namespaces": names(limits::EXCLUDES)}}),
            json!({"exclude": {"namespaces": names(limits::EXCLUDES + 1)}}),
            "spec.exclude.namespaces",
        ),
        (
            json!({"podSelector": {"matchExpressions": exprs(limits::MATCH_EXPRESSIONS)}}),
            json!({"podSelector": {"matchExpressions": exprs(limits::MATCH_EXPRESSIONS + 1)}}),
            "spec.podSelector.matchExpressions",
        ),
        (
            json!({"podSelector": {"matchLabels": labels(limits::MATCH_LABELS)}}),
            json!({"podSelector": {"matchLabels": labels(limits::MATCH_LABELS + 1)}}),
            "spec.podSelector.matchLabels",
        ),
        (
            json!({"namespaceSelector": {"matchExpressions": [{"key": "k", "operator": "In", "values": values(limits::SELECTOR_VALUES)}]}}),
            json!({"namespaceSelector": {"matchExpressions": [{"key": "k", "operator": "In", "values": values(limits::SELECTOR_VALUES + 1)}]}}),
            "spec.namespaceSelector.matchExpressions[0].values",
        ),
        (
            json!({"ovn": {"router": "r".repeat(limits::ROUTER_CHARS)}}),
            json!({"ovn": {"router": "r".repeat(limits::ROUTER_CHARS + 1)}}),
            "spec.ovn.router",
        ),
        (
            json!({"svc": [{"namespace": "n".repeat(limits::NAME_CHARS), "name": "s", "dev": "eth1"}]}),
            json!({"svc": [{"namespace": "n".repeat(limits::NAME_CHARS + 1), "name": "s", "dev": "eth1"}]}),
            "spec.svc[0].namespace",
        ),
        (
            json!({"route": [{"dst": "10.0.0.0/8", "dev": "eth1", "via": "1.2.3.4"}]}),
            json!({"route": [{"dst": "10.0.0.0/8", "dev": "eth1", "via": format!("1.2.3.4{}", "0".repeat(limits::ADDRESS_CHARS))}]}),
            "spec.route[0].via",
        ),
        (
            json!({"priority": i32::MAX}),
            json!({"priority": i64::from(i32::MAX) + 1}),
            "spec.priority",
        ),
    ];
    for (at, past, field) in cases {
        let ok = route(at);
        assert_eq!(admission(&ok), vec![], "{field} at its bound");
        if field != "spec.priority" {
            agree(&ok).unwrap();
            assert!(
                controller(&ok).problems.is_empty(),
                "{field}: {:#?}",
                controller(&ok).problems
            );
        }
        let bad = route(past);
        let causes = admission(&bad);
        assert!(
            causes.iter().any(|c| c.field == field
                && matches!(c.kind, Kind::TooMany | Kind::TooLong | Kind::Invalid)),
            "{field} past its bound: {causes:#?}"
        );
        if field == "spec.priority" {
            // Past int32 the controller cannot even decode the Route; the loader and the
            // schema checker refuse it (tests/corpus/priority-out-of-range.yaml).
            continue;
        }
        agree(&bad).unwrap();
    }
}

/// The biggest list: 10,000 rules pass, 10,001 are refused, and the controller uses the
/// first 10,000 and reports the rest.
#[test]
fn ten_thousand_rules_is_the_bound() {
    let rules = |n: usize| -> Vec<Value> {
        (0..n)
            .map(
                |i| json!({"dst": format!("10.{}.{}.0/24", i / 256 % 256, i % 256), "dev": "eth1"}),
            )
            .collect()
    };
    let doc = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "big"}, "spec": {"route": rules(limits::ROUTE_RULES + 1)}});
    let causes = admission(&doc);
    assert_eq!(
        causes.iter().map(Cause::error).collect::<Vec<_>>(),
        ["spec.route: Too many: 10001: must have at most 10000 items"]
    );
    let v = controller(&doc);
    assert_eq!(v.rules.len(), limits::ROUTE_RULES);
    assert_eq!(v.problems[0].path.as_deref(), Some("spec.route"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn generated_routes_agree(spec in generate::spec()) {
        let doc = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "gen"}, "spec": spec});
        if let Err(e) = agree(&doc) {
            prop_assert!(false, "{}", e);
        }
    }

    /// Addresses alone, many more of them: `isIP` / `isCIDR` (Go's rules, tests/cel/net.rs)
    /// and the controller's parser (Rust's `std::net`) accept the same text.
    #[test]
    fn addresses_agree(dst in generate::address(), v in generate::address()) {
        let doc = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": {"name": "a"},
            "spec": {"route": [{"dst": dst, "dev": "eth1"}], "ovn": {"nextHops": [v]}}});
        if let Err(e) = agree(&doc) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// docs/crd.md lists every rule: its field, its CEL text and its message.
#[test]
fn docs_list_every_rule() {
    let doc = std::fs::read_to_string(repo("docs/crd.md")).unwrap();
    for r in ovnkube_route::api::rules::all() {
        let message = r.message.or(r.message_expression).unwrap();
        for needle in [r.rule, message] {
            let cell = needle.replace('|', "\\|");
            assert!(
                doc.contains(&cell),
                "docs/crd.md does not show `{needle}` (rule at {})",
                r.field
            );
        }
    }
}
