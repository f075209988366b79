//! Validation of who a Route is for: `podSelector`, `namespaceSelector`, `targets` and
//! `exclude`. A selector that does not validate marks the selection (or exclusion) broken
//! rather than being dropped, so a typo never widens a Route to every pod.
use crate::api::quote::quote;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{
    Exclusion, Problem, Route, Selection, Selector, TargetKind, TargetRef, check_k8s_name, problem,
    reason, selector,
};

fn compile_selector(
    sel: &Option<LabelSelector>,
    path: &str,
    reason: &str,
    problems: &mut Vec<Problem>,
    broken: &mut bool,
) -> Option<Selector> {
    let sel = sel.as_ref()?;
    match selector::compile(sel) {
        Ok(s) => Some(s),
        Err(errs) => {
            for (sub, m) in errs {
                problems.push(problem(format!("{path}.{sub}"), reason, m));
            }
            *broken = true;
            None
        }
    }
}

pub(super) fn validate_selection(route: &Route, problems: &mut Vec<Problem>) -> Selection {
    let spec = &route.spec;
    let mut broken = false;
    let pod_selector = compile_selector(
        &spec.pod_selector,
        "spec.podSelector",
        reason::INVALID_SELECTOR,
        problems,
        &mut broken,
    );
    let namespace_selector = compile_selector(
        &spec.namespace_selector,
        "spec.namespaceSelector",
        reason::INVALID_SELECTOR,
        problems,
        &mut broken,
    );
    let targets = (!spec.targets.is_empty()).then(|| {
        let mut out = Vec::new();
        for (i, t) in spec.targets.iter().enumerate() {
            let path = format!("spec.targets[{i}]");
            let Some(kind) = TargetKind::parse(&t.kind) else {
                problems.push(problem(
                    format!("{path}.kind"),
                    reason::INVALID_TARGET_KIND,
                    format!(
                        "unknown kind {}; allowed: {}",
                        quote(&t.kind),
                        TargetKind::ALL.map(|k| k.as_str()).join(", ")
                    ),
                ));
                broken = true;
                continue;
            };
            if !check_k8s_name(&t.name) {
                problems.push(problem(
                    format!("{path}.name"),
                    reason::INVALID_TARGET,
                    format!("{} is not an object name", quote(&t.name)),
                ));
                broken = true;
                continue;
            }
            let namespace = if kind == TargetKind::Namespace {
                t.name.clone()
            } else {
                match t.namespace.as_deref() {
                    Some(ns) if check_k8s_name(ns) => ns.to_owned(),
                    Some(ns) if !ns.is_empty() => {
                        problems.push(problem(
                            format!("{path}.namespace"),
                            reason::INVALID_TARGET,
                            format!("{} is not a namespace name", quote(ns)),
                        ));
                        broken = true;
                        continue;
                    }
                    _ => {
                        problems.push(problem(
                            format!("{path}.namespace"),
                            reason::MISSING_NAMESPACE,
                            format!("a {} target needs a namespace", kind.as_str()),
                        ));
                        broken = true;
                        continue;
                    }
                }
            };
            out.push(TargetRef {
                kind,
                namespace,
                name: t.name.clone(),
            });
        }
        out
    });
    Selection {
        pod_selector,
        namespace_selector,
        targets,
        broken,
    }
}

pub(super) fn validate_exclude(route: &Route, problems: &mut Vec<Problem>) -> Exclusion {
    let Some(ex) = &route.spec.exclude else {
        return Exclusion::default();
    };
    let mut out = Exclusion::default();
    for (i, p) in ex.pods.iter().enumerate() {
        match p.split_once('/') {
            Some((ns, name)) if check_k8s_name(ns) && check_k8s_name(name) => {
                out.pods.insert((ns.to_owned(), name.to_owned()));
            }
            _ => problems.push(problem(
                format!("spec.exclude.pods[{i}]"),
                reason::INVALID_EXCLUDE,
                format!("{} is not of the form namespace/name", quote(p)),
            )),
        }
    }
    for (i, ns) in ex.namespaces.iter().enumerate() {
        if check_k8s_name(ns) {
            out.namespaces.insert(ns.clone());
        } else {
            problems.push(problem(
                format!("spec.exclude.namespaces[{i}]"),
                reason::INVALID_EXCLUDE,
                format!("{} is not a namespace name", quote(ns)),
            ));
        }
    }
    let mut broken = false;
    out.pod_selector = compile_selector(
        &ex.pod_selector,
        "spec.exclude.podSelector",
        reason::INVALID_SELECTOR,
        problems,
        &mut broken,
    );
    out.namespace_selector = compile_selector(
        &ex.namespace_selector,
        "spec.exclude.namespaceSelector",
        reason::INVALID_SELECTOR,
        problems,
        &mut broken,
    );
    out.broken = broken;
    out
}
