//! The Route CRD's rules fit the API server's CEL cost budget: each rule's estimated cost
//! (and its `messageExpression`'s, a separate expression), times the number of times it may
//! run (the bounds of the lists above it), at most 1,000,000, and all of them together at most
//! 10,000,000 for one Route (Kubernetes' per-call limit and per-object runtime budget). A rule that reads a string, list or map without a bound fails
//! the test, as the API server would refuse the CRD. Prints every rule's figures.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

#[path = "cel/mod.rs"]
mod cel_k8s;

use cel_k8s::cost::rules;
use serde_json::{Value, json};

const PER_RULE: u64 = 1_000_000;
const PER_OBJECT: u64 = 10_000_000;

fn route_schema() -> Value {
    serde_json::to_value(ovnkube_route::api::crd::route_schema()).unwrap()
}

#[test]
fn every_rule_fits_the_budget() {
    let mut all = rules(&route_schema());
    assert_eq!(
        all.len(),
        ovnkube_route::api::rules::all().len(),
        "every rule of api::rules is in the CRD, once"
    );
    all.sort_by_key(|r| std::cmp::Reverse(r.total()));
    println!(
        "{:>10} {:>10} {:>7} {:>6} {:>8}  rule at",
        "total", "message", "runs", "cost", "msg cost"
    );
    for r in &all {
        println!(
            "{:>10} {:>10} {:>7} {:>6} {:>8}  {}",
            r.total(),
            r.message_total(),
            r.runs,
            r.per_run,
            r.message_per_run,
            r.at
        );
    }
    let sum: u64 = all.iter().map(|r| r.total() + r.message_total()).sum();
    println!("sum over all rules: {sum} (budget {PER_OBJECT})");
    let errors: Vec<String> = all
        .iter()
        .flat_map(|r| {
            r.errors
                .iter()
                .map(move |e| format!("{}: {e} ({})", r.at, r.rule))
        })
        .collect();
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    for r in &all {
        assert!(
            r.total() <= PER_RULE,
            "{} at {}: {} > {PER_RULE}",
            r.rule,
            r.at,
            r.total()
        );
        assert!(
            r.message_total() <= PER_RULE,
            "the message of {} at {}: {} > {PER_RULE}",
            r.rule,
            r.at,
            r.message_total()
        );
    }
    assert!(sum <= PER_OBJECT, "{sum} > {PER_OBJECT}");
}

/// The estimator refuses what the Kubernetes documentation says the API server refuses, and
/// accepts it once bounded (the docs' `foo` examples).
#[test]
fn an_unbounded_read_is_refused() {
    let unbounded = json!({"type": "object", "properties": {"foo": {
        "type": "array", "items": {"type": "string"},
        "x-kubernetes-validations": [{"rule": "self.all(x, x.contains('a string'))"}]}}});
    let r = rules(&unbounded);
    assert!(!r[0].errors.is_empty(), "{r:?}");
    let bounded = json!({"type": "object", "properties": {"foo": {
        "type": "array", "maxItems": 25, "items": {"type": "string", "maxLength": 10},
        "x-kubernetes-validations": [{"rule": "self.all(x, x.contains('a string'))"}]}}});
    let r = rules(&bounded);
    assert!(r[0].errors.is_empty(), "{r:?}");
    // The same rule on the items runs 25 times: the same order of cost.
    let on_items = json!({"type": "object", "properties": {"foo": {
        "type": "array", "maxItems": 25, "items": {"type": "string", "maxLength": 10,
        "x-kubernetes-validations": [{"rule": "self.contains('a string')"}]}}}});
    let items = rules(&on_items);
    assert!(
        items[0].errors.is_empty() && items[0].runs == 25,
        "{items:?}"
    );
    assert!(
        items[0].total() <= r[0].total() && r[0].total() <= 3 * items[0].total(),
        "{items:?} vs {r:?}"
    );
    // A rule inside a list without maxItems has no bound on how often it runs.
    let inside = json!({"type": "object", "properties": {"foo": {
        "type": "array", "items": {"type": "string", "maxLength": 10,
        "x-kubernetes-validations": [{"rule": "self != ''"}]}}}});
    assert!(!rules(&inside)[0].errors.is_empty());
    // Regexes cost by input and pattern length.
    let re = json!({"type": "string", "maxLength": 100,
        "x-kubernetes-validations": [{"rule": "self.matches('^[a-z]+$')"}]});
    assert_eq!(rules(&re)[0].per_run, 1 + 1 + 10 * 2);
}
