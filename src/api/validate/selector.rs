//! Label selectors (metav1.LabelSelector) checked once and compiled into a matcher.
//!
//! Semantics follow Kubernetes: every `matchLabels` pair and every `matchExpressions`
//! requirement must hold; an empty selector (`{}`) matches everything. A selector that does
//! not validate never reaches the planner as "match all": the caller decides what an
//! invalid selector means (see `validate`).
use crate::api::limits;
use crate::api::quote::quote;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// One `matchExpressions` requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Requirement {
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

/// A validated label selector.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Selector {
    pub match_labels: BTreeMap<String, String>,
    pub requirements: Vec<Requirement>,
}

/// Labels a selector can be matched against: a map, or a pod's compact labels.
pub trait LabelLookup {
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelLookup for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl Selector {
    /// True when `labels` satisfy every pair and requirement.
    pub fn matches<L: LabelLookup + ?Sized>(&self, labels: &L) -> bool {
        let has = |vs: &[String], v: &str| vs.iter().any(|x| x == v);
        self.match_labels
            .iter()
            .all(|(k, v)| labels.label(k) == Some(v.as_str()))
            && self.requirements.iter().all(|r| match r {
                Requirement::In(k, vs) => labels.label(k).is_some_and(|v| has(vs, v)),
                Requirement::NotIn(k, vs) => labels.label(k).is_none_or(|v| !has(vs, v)),
                Requirement::Exists(k) => labels.label(k).is_some(),
                Requirement::DoesNotExist(k) => labels.label(k).is_none(),
            })
    }
}

/// The `matchExpressions[].operator` values (the CRD's `enum`).
pub const OPERATORS: [&str; 4] = ["In", "NotIn", "Exists", "DoesNotExist"];

/// Checks a selector; each problem is `(sub-path, reason message)`.
pub fn compile(sel: &LabelSelector) -> Result<Selector, Vec<(String, String)>> {
    let mut errs = Vec::new();
    let mut out = Selector::default();
    let labels = sel.match_labels.as_ref().map_or(0, |m| m.len());
    if labels > limits::MATCH_LABELS {
        errs.push((
            "matchLabels".to_owned(),
            limits::too_many_message(labels, limits::MATCH_LABELS),
        ));
    }
    let exprs = sel.match_expressions.as_ref().map_or(0, |e| e.len());
    if exprs > limits::MATCH_EXPRESSIONS {
        errs.push((
            "matchExpressions".to_owned(),
            limits::too_many_message(exprs, limits::MATCH_EXPRESSIONS),
        ));
    }
    for (k, v) in sel.match_labels.iter().flatten() {
        if let Err(e) = check_key(k) {
            errs.push((format!("matchLabels[{k}]"), e));
        }
        if let Err(e) = check_value(v) {
            errs.push((format!("matchLabels[{k}]"), e));
        }
        out.match_labels.insert(k.clone(), v.clone());
    }
    for (i, e) in sel.match_expressions.iter().flatten().enumerate() {
        let path = format!("matchExpressions[{i}]");
        if let Err(m) = check_key(&e.key) {
            errs.push((format!("{path}.key"), m));
            continue;
        }
        let values = e.values.clone().unwrap_or_default();
        if values.len() > limits::SELECTOR_VALUES {
            errs.push((
                format!("{path}.values"),
                limits::too_many_message(values.len(), limits::SELECTOR_VALUES),
            ));
        }
        for v in &values {
            if let Err(m) = check_value(v) {
                errs.push((format!("{path}.values"), m));
            }
        }
        let req = match e.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                errs.push((
                    format!("{path}.values"),
                    format!("operator {} needs at least one value", e.operator),
                ));
                continue;
            }
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                errs.push((
                    format!("{path}.values"),
                    format!("operator {} takes no values", e.operator),
                ));
                continue;
            }
            "In" => Requirement::In(e.key.clone(), values),
            "NotIn" => Requirement::NotIn(e.key.clone(), values),
            "Exists" => Requirement::Exists(e.key.clone()),
            "DoesNotExist" => Requirement::DoesNotExist(e.key.clone()),
            other => {
                errs.push((
                    format!("{path}.operator"),
                    format!(
                        "unsupported value {}; supported values: {}",
                        quote(other),
                        OPERATORS.map(|o| format!("{o:?}")).join(", ")
                    ),
                ));
                continue;
            }
        };
        out.requirements.push(req);
    }
    if errs.is_empty() { Ok(out) } else { Err(errs) }
}

/// A label key: optional DNS-subdomain prefix and `/`, then a name of at most 63 characters.
fn check_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && (p.is_empty()
            || p.len() > 253
            || !p
                .split('.')
                .all(|l| !l.is_empty() && is_dns_label_like(l, false)))
    {
        return Err(format!("label key {}: invalid prefix", quote(key)));
    }
    if name.is_empty() || name.len() > 63 || !is_dns_label_like(name, true) {
        return Err(format!(
            "label key {}: name must be 1-63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
            quote(key)
        ));
    }
    Ok(())
}

fn check_value(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Ok(());
    }
    if v.len() > 63 || !is_dns_label_like(v, true) {
        return Err(format!(
            "label value {}: at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
            quote(v)
        ));
    }
    Ok(())
}

fn is_dns_label_like(s: &str, label_chars: bool) -> bool {
    let ok_inner =
        |c: char| c.is_ascii_alphanumeric() || c == '-' || (label_chars && (c == '_' || c == '.'));
    let first = s.chars().next();
    let last = s.chars().last();
    first.is_some_and(|c| c.is_ascii_alphanumeric())
        && last.is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars().all(ok_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: Some(values.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn operators_match_like_kubernetes() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                expr("tier", "In", &["a", "b"]),
                expr("env", "NotIn", &["prod"]),
                expr("team", "Exists", &[]),
                expr("legacy", "DoesNotExist", &[]),
            ]),
        };
        let s = compile(&sel).unwrap();
        let mut l = labels(&[("app", "web"), ("tier", "a"), ("team", "x")]);
        assert!(s.matches(&l));
        l.insert("env".into(), "prod".into());
        assert!(!s.matches(&l));
        l.insert("env".into(), "dev".into());
        assert!(s.matches(&l));
        l.insert("legacy".into(), "1".into());
        assert!(!s.matches(&l));
        assert!(!s.matches(&labels(&[("app", "web"), ("team", "x")])));
        assert!(compile(&LabelSelector::default()).unwrap().matches(&l));
    }

    #[test]
    fn bad_selectors_are_rejected_with_paths() {
        let sel = LabelSelector {
            match_labels: Some(labels(&[("-bad", "ok"), ("good", "no spaces")])),
            match_expressions: Some(vec![
                expr("a", "In", &[]),
                expr("b", "Exists", &["x"]),
                expr("c", "Matches", &["x"]),
            ]),
        };
        let errs = compile(&sel).unwrap_err();
        let paths: Vec<_> = errs.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            [
                "matchLabels[-bad]",
                "matchLabels[good]",
                "matchExpressions[0].values",
                "matchExpressions[1].values",
                "matchExpressions[2].operator"
            ]
        );
        assert!(
            compile(&LabelSelector {
                match_labels: Some(labels(&[("example.com/app", "web-1.x_y")])),
                match_expressions: None
            })
            .is_ok()
        );
    }
}
