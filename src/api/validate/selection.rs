//! Validation of who a Route is for: `podSelector`, `namespaceSelector`, `targets` and
//! `exclude`. A selector that does not validate marks the selection (or exclusion) broken
//! rather than being dropped, so a typo never widens a Route to every pod.
use crate::api::quote::quote;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::{
    Exclusion, Problem, Route, Selection, Selector, TargetKind, TargetRef, capped, check_k8s_name,
    problem, reason, selector,
};
use crate::api::limits;

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
        let written = capped(
            &spec.targets,
            limits::TARGETS,
            "spec.targets",
            reason::INVALID_TARGET,
            problems,
        );
        // Past the cap the set of pods meant is unknown: select none (fail safe).
        broken |= written.len() < spec.targets.len();
        for (i, t) in written.iter().enumerate() {
            let path = format!("spec.targets[{i}]");
            let Some(kind) = TargetKind::parse(&t.kind) else {
                problems.push(problem(
                    format!("{path}.kind"),
                    reason::INVALID_TARGET_KIND,
                    format!(
                        "unsupported value {}; supported values: {}",
                        quote(&t.kind),
                        TargetKind::ALL
                            .map(|k| format!("{:?}", k.as_str()))
                            .join(", ")
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
            // A namespace that is written must be a name, for every kind (the CRD checks the
            // field on its own); a Namespace target's is otherwise unused.
            if let Some(ns) = t.namespace.as_deref().filter(|ns| !ns.is_empty())
                && !check_k8s_name(ns)
            {
                problems.push(problem(
                    format!("{path}.namespace"),
                    reason::INVALID_TARGET,
                    format!("{} is not a namespace name", quote(ns)),
                ));
                broken = true;
                continue;
            }
            let namespace = if kind == TargetKind::Namespace {
                t.name.clone()
            } else {
                match t.namespace.as_deref() {
                    Some(ns) if !ns.is_empty() => ns.to_owned(),
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
    let pods = capped(
        &ex.pods,
        limits::EXCLUDES,
        "spec.exclude.pods",
        reason::INVALID_EXCLUDE,
        problems,
    );
    let namespaces = capped(
        &ex.namespaces,
        limits::EXCLUDES,
        "spec.exclude.namespaces",
        reason::INVALID_EXCLUDE,
        problems,
    );
    // Past the cap, which pods were meant to be left alone is unknown: exclude every pod.
    let mut broken = pods.len() < ex.pods.len() || namespaces.len() < ex.namespaces.len();
    for (i, p) in pods.iter().enumerate() {
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
    for (i, ns) in namespaces.iter().enumerate() {
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
