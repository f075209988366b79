//! The admission rules of the `Route` CRD: the CEL expressions (`x-kubernetes-validations`)
//! the API server runs on `kubectl apply`, each with the message the controller's validation
//! gives for the same defect (`api::validate` is the reference; tests/crd_admission.rs proves
//! the two agree on the bad-input corpus, the examples and generated Routes).
//!
//! Owns: the rule text, its message, where it sits in the schema and which controller reason it
//! stands for. Must not: hold checks that need the world (a Service that exists, a next hop on
//! a router's network, conflicts between Routes): those stay in the controller, listed in
//! docs/crd.md.
//!
//! The expressions use the Kubernetes CEL IP/CIDR library (`isIP`, `ip`, `isCIDR`, `cidr`),
//! usable in CRDs from Kubernetes 1.31; `ovnkube-route crd --compat pre-1.31` prints the CRD
//! without them (see `api::schema::compat`).
use kube::core::{Message, Rule};

/// One `x-kubernetes-validations` entry and what it stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdmissionRule {
    /// Where the rule sits, as docs/crd.md writes it (`[]` for every item of a list,
    /// `{}` for every value of a map).
    pub field: &'static str,
    /// The CEL expression; `self` is the value at `field`.
    pub rule: &'static str,
    /// A CEL expression building the message, naming the bad value (`messageExpression`).
    pub message_expression: Option<&'static str>,
    /// A fixed message, when there is no value worth quoting.
    pub message: Option<&'static str>,
    /// For a rule on an object: the field it reports (`fieldPath`), e.g. `.via`.
    pub field_path: Option<&'static str>,
    /// The controller's `Problem::reason` for the same defect.
    pub reason: &'static str,
}

impl From<AdmissionRule> for Rule {
    fn from(r: AdmissionRule) -> Rule {
        let mut out = Rule::new(r.rule);
        if let Some(m) = r.message_expression {
            out = out.message(Message::Expression(m.to_owned()));
        } else if let Some(m) = r.message {
            out = out.message(m);
        }
        if let Some(p) = r.field_path {
            out = out.field_path(p);
        }
        out
    }
}

/// Unicode White_Space, which the controller refuses in an interface name
/// (`char::is_whitespace`), as an RE2 character class body (RE2's `\s` is ASCII only).
pub const WHITESPACE_CLASS: &str =
    r"\t-\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}";

const CIDR: &str = super::validate::reason::INVALID_CIDR;

pub const DST_NOT_EMPTY: AdmissionRule = AdmissionRule {
    field: "spec.route[].dst",
    rule: "self != ''",
    message_expression: None,
    message: Some("empty destination"),
    field_path: None,
    reason: CIDR,
};

pub const DST_IS_CIDR: AdmissionRule = AdmissionRule {
    field: "spec.route[].dst",
    rule: "self == '' || isIP(self) || isCIDR(self)",
    message_expression: Some(r#"'not a CIDR or IP address: "' + self + '"'"#),
    message: None,
    field_path: None,
    reason: CIDR,
};

pub const DST_NOT_DEFAULT: AdmissionRule = AdmissionRule {
    field: "spec.route[].dst",
    rule: "!isCIDR(self) || cidr(self).prefixLength() != 0",
    message_expression: Some(
        r#"'"' + self + '" would replace the default route; use spec.defaultRoute for that'"#,
    ),
    message: None,
    field_path: None,
    reason: CIDR,
};

pub const DST_NO_HOST_BITS: AdmissionRule = AdmissionRule {
    field: "spec.route[].dst",
    rule: "!isCIDR(self) || cidr(self).prefixLength() == 0 || cidr(self).masked() == cidr(self)",
    message_expression: Some(
        r#"'"' + self + '" has host bits set; did you mean ' + string(cidr(self).masked()) + '?'"#,
    ),
    message: None,
    field_path: None,
    reason: CIDR,
};

const DEV: &str = super::validate::reason::INVALID_DEV;

/// The three interface-name rules, on every `dev` (route, svc, defaultRoute).
pub const fn dev_rules(field: &'static str) -> [AdmissionRule; 3] {
    [
        AdmissionRule {
            field,
            rule: "self != ''",
            message_expression: None,
            message: Some("empty interface name"),
            field_path: None,
            reason: DEV,
        },
        AdmissionRule {
            field,
            rule: "size(bytes(self)) <= 15",
            message_expression: Some(r#"'interface name "' + self + '" is longer than 15 bytes'"#),
            message: None,
            field_path: None,
            reason: DEV,
        },
        AdmissionRule {
            field,
            rule: r"self != '.' && self != '..' && !self.matches('[/:\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}]')",
            message_expression: Some(r#"'"' + self + '" is not a valid Linux interface name'"#),
            message: None,
            field_path: None,
            reason: DEV,
        },
    ]
}

pub const ROUTE_DEV: [AdmissionRule; 3] = dev_rules("spec.route[].dev");
pub const SVC_DEV: [AdmissionRule; 3] = dev_rules("spec.svc[].dev");
pub const DEFAULT_ROUTE_DEV: [AdmissionRule; 3] = dev_rules("spec.defaultRoute.dev");

/// `via`: empty means "the interface's gateway" (the seed's clients wrote `via: ""`).
pub const fn via_rule(field: &'static str) -> AdmissionRule {
    AdmissionRule {
        field,
        rule: "self == '' || isIP(self)",
        message_expression: Some(r#"'via "' + self + '" is not an IP address'"#),
        message: None,
        field_path: None,
        reason: super::validate::reason::INVALID_VIA,
    }
}

pub const ROUTE_VIA: AdmissionRule = via_rule("spec.route[].via");
pub const SVC_VIA: AdmissionRule = via_rule("spec.svc[].via");
pub const DEFAULT_ROUTE_VIA: AdmissionRule = via_rule("spec.defaultRoute.via");

/// A rule's `via` and `dst` are of one family (checked only when both parse).
pub const ROUTE_FAMILY: AdmissionRule = AdmissionRule {
    field: "spec.route[]",
    rule: "!has(self.via) || self.via == '' || !isIP(self.via) || !(isIP(self.dst) || isCIDR(self.dst)) || (isIP(self.dst) ? ip(self.dst).family() : cidr(self.dst).ip().family()) == ip(self.via).family()",
    message_expression: Some(
        "'via ' + string(ip(self.via)) + ' and dst ' + (isIP(self.dst) ? string(ip(self.dst)) + (ip(self.dst).family() == 4 ? '/32' : '/128') : string(cidr(self.dst))) + ' are of different IP families'",
    ),
    message: None,
    field_path: Some(".via"),
    reason: super::validate::reason::FAMILY_MISMATCH,
};

pub const SVC_NAMESPACE: AdmissionRule = AdmissionRule {
    field: "spec.svc[].namespace",
    rule: "self.matches('^[a-z0-9.-]+$')",
    message_expression: Some(r#"'"' + self + '" is not a namespace name'"#),
    message: None,
    field_path: None,
    reason: super::validate::reason::INVALID_SERVICE,
};

pub const SVC_NAME: AdmissionRule = AdmissionRule {
    field: "spec.svc[].name",
    rule: "self.matches('^[a-z0-9.-]+$')",
    message_expression: Some(r#"'"' + self + '" is not a Service name'"#),
    message: None,
    field_path: None,
    reason: super::validate::reason::INVALID_SERVICE,
};

pub const TARGET_NAME: AdmissionRule = AdmissionRule {
    field: "spec.targets[].name",
    rule: "self.matches('^[a-z0-9.-]+$')",
    message_expression: Some(r#"'"' + self + '" is not an object name'"#),
    message: None,
    field_path: None,
    reason: super::validate::reason::INVALID_TARGET,
};

pub const TARGET_NAMESPACE: AdmissionRule = AdmissionRule {
    field: "spec.targets[].namespace",
    rule: "self == '' || self.matches('^[a-z0-9.-]+$')",
    message_expression: Some(r#"'"' + self + '" is not a namespace name'"#),
    message: None,
    field_path: None,
    reason: super::validate::reason::INVALID_TARGET,
};

pub const TARGET_NEEDS_NAMESPACE: AdmissionRule = AdmissionRule {
    field: "spec.targets[]",
    rule: "self.kind == 'Namespace' || (has(self.namespace) && self.namespace != '')",
    message_expression: Some("'a ' + self.kind + ' target needs a namespace'"),
    message: None,
    field_path: Some(".namespace"),
    reason: super::validate::reason::MISSING_NAMESPACE,
};

pub const EXCLUDE_POD: AdmissionRule = AdmissionRule {
    field: "spec.exclude.pods[]",
    rule: "self.matches('^[a-z0-9.-]{1,253}/[a-z0-9.-]{1,253}$')",
    message_expression: Some(r#"'"' + self + '" is not of the form namespace/name'"#),
    message: None,
    field_path: None,
    reason: super::validate::reason::INVALID_EXCLUDE,
};

pub const EXCLUDE_NAMESPACE: AdmissionRule = AdmissionRule {
    field: "spec.exclude.namespaces[]",
    rule: "self.matches('^[a-z0-9.-]+$')",
    message_expression: Some(r#"'"' + self + '" is not a namespace name'"#),
    message: None,
    field_path: None,
    reason: super::validate::reason::INVALID_EXCLUDE,
};

pub const OVN_ROUTER: AdmissionRule = AdmissionRule {
    field: "spec.ovn.router",
    rule: "self == '' || self.matches('^[A-Za-z0-9_.:-]+$')",
    message_expression: Some(r#"'"' + self + '" is not a logical router name'"#),
    message: None,
    field_path: None,
    reason: super::validate::reason::INVALID_ROUTER,
};

pub const NEXT_HOP: AdmissionRule = AdmissionRule {
    field: "spec.ovn.nextHops[]",
    rule: "isIP(self)",
    message_expression: Some(r#"'"' + self + '" is not an IP address'"#),
    message: None,
    field_path: None,
    reason: super::validate::reason::INVALID_NEXT_HOP,
};

const SEL: &str = super::validate::reason::INVALID_SELECTOR;

/// The label rules of one selector (`podSelector`, `namespaceSelector` and the two of
/// `exclude`). `matchLabels` keys are checked by the controller only: the keys of a map
/// have no length the CEL cost estimator can use.
pub const fn selector_rules(
    label_value: &'static str,
    key: &'static str,
    values: &'static str,
    requirement: &'static str,
) -> [AdmissionRule; 6] {
    [
        label_value_rule(label_value),
        AdmissionRule {
            field: key,
            rule: r"!self.contains('/') || (self.matches('^[^/]{1,253}/') && self.matches('^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*/'))",
            message_expression: Some(r#"'label key "' + self + '": invalid prefix'"#),
            message: None,
            field_path: None,
            reason: SEL,
        },
        AdmissionRule {
            field: key,
            rule: "self.matches('^([^/]*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$')",
            message_expression: Some(
                r#"'label key "' + self + '": name must be 1-63 alphanumerics, \'-\', \'_\' or \'.\', starting and ending alphanumeric'"#,
            ),
            message: None,
            field_path: None,
            reason: SEL,
        },
        label_value_rule(values),
        AdmissionRule {
            field: requirement,
            rule: "!(self.operator in ['In', 'NotIn']) || (has(self.values) && size(self.values) > 0)",
            message_expression: Some("'operator ' + self.operator + ' needs at least one value'"),
            message: None,
            field_path: Some(".values"),
            reason: SEL,
        },
        AdmissionRule {
            field: requirement,
            rule: "!(self.operator in ['Exists', 'DoesNotExist']) || !has(self.values) || size(self.values) == 0",
            message_expression: Some("'operator ' + self.operator + ' takes no values'"),
            message: None,
            field_path: Some(".values"),
            reason: SEL,
        },
    ]
}

const fn label_value_rule(field: &'static str) -> AdmissionRule {
    AdmissionRule {
        field,
        rule: "self == '' || self.matches('^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$')",
        message_expression: Some(
            r#"'label value "' + self + '": at most 63 alphanumerics, \'-\', \'_\' or \'.\', starting and ending alphanumeric'"#,
        ),
        message: None,
        field_path: None,
        reason: SEL,
    }
}

/// The rules of the selector at `at` (e.g. `spec.podSelector`).
pub fn selector_rules_at(at: &str) -> Option<&'static [AdmissionRule; 6]> {
    SELECTORS.iter().find(|(p, _)| *p == at).map(|(_, r)| r)
}

macro_rules! selector {
    ($at:literal) => {
        (
            $at,
            selector_rules(
                concat!($at, ".matchLabels{}"),
                concat!($at, ".matchExpressions[].key"),
                concat!($at, ".matchExpressions[].values[]"),
                concat!($at, ".matchExpressions[]"),
            ),
        )
    };
}

/// Every selector of a Route and its rules.
pub const SELECTORS: [(&str, [AdmissionRule; 6]); 6] = [
    selector!("spec.podSelector"),
    selector!("spec.namespaceSelector"),
    selector!("spec.exclude.podSelector"),
    selector!("spec.exclude.namespaceSelector"),
    selector!("spec.ovn.nextHopPods.namespaceSelector"),
    selector!("spec.ovn.nextHopPods.podSelector"),
];

/// The `pattern`s of `ovnkube-route crd --compat pre-1.31`, which has no CEL rules: each is
/// looser than the rules it stands for and refuses only what the controller refuses too
/// (tests/crd_admission.rs proves that on the same inputs).
pub const COMPAT_PATTERNS: &[(&str, &str)] = &[
    ("spec.route[].dst", "^[0-9A-Fa-f:.]+(/[0-9]+)?$"),
    ("spec.route[].via", "^[0-9A-Fa-f:.]*$"),
    ("spec.svc[].via", "^[0-9A-Fa-f:.]*$"),
    ("spec.defaultRoute.via", "^[0-9A-Fa-f:.]*$"),
    ("spec.ovn.nextHops[]", "^[0-9A-Fa-f:.]+$"),
    ("spec.route[].dev", DEV_PATTERN),
    ("spec.svc[].dev", DEV_PATTERN),
    ("spec.defaultRoute.dev", DEV_PATTERN),
    ("spec.svc[].namespace", "^[a-z0-9.-]+$"),
    ("spec.svc[].name", "^[a-z0-9.-]+$"),
    ("spec.targets[].name", "^[a-z0-9.-]+$"),
    ("spec.targets[].namespace", "^[a-z0-9.-]*$"),
    (
        "spec.exclude.pods[]",
        "^[a-z0-9.-]{1,253}/[a-z0-9.-]{1,253}$",
    ),
    ("spec.exclude.namespaces[]", "^[a-z0-9.-]+$"),
    ("spec.ovn.router", "^[A-Za-z0-9_.:-]*$"),
    ("spec.podSelector.matchLabels{}", LABEL_VALUE_PATTERN),
    ("spec.podSelector.matchExpressions[].key", LABEL_KEY_PATTERN),
    (
        "spec.podSelector.matchExpressions[].values[]",
        LABEL_VALUE_PATTERN,
    ),
    ("spec.namespaceSelector.matchLabels{}", LABEL_VALUE_PATTERN),
    (
        "spec.namespaceSelector.matchExpressions[].key",
        LABEL_KEY_PATTERN,
    ),
    (
        "spec.namespaceSelector.matchExpressions[].values[]",
        LABEL_VALUE_PATTERN,
    ),
    (
        "spec.exclude.podSelector.matchLabels{}",
        LABEL_VALUE_PATTERN,
    ),
    (
        "spec.exclude.podSelector.matchExpressions[].key",
        LABEL_KEY_PATTERN,
    ),
    (
        "spec.exclude.podSelector.matchExpressions[].values[]",
        LABEL_VALUE_PATTERN,
    ),
    (
        "spec.exclude.namespaceSelector.matchLabels{}",
        LABEL_VALUE_PATTERN,
    ),
    (
        "spec.exclude.namespaceSelector.matchExpressions[].key",
        LABEL_KEY_PATTERN,
    ),
    (
        "spec.exclude.namespaceSelector.matchExpressions[].values[]",
        LABEL_VALUE_PATTERN,
    ),
];

const DEV_PATTERN: &str =
    r"^[^/:\t-\r \x{85}\x{A0}\x{1680}\x{2000}-\x{200A}\x{2028}\x{2029}\x{202F}\x{205F}\x{3000}]+$";
const LABEL_VALUE_PATTERN: &str = "^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$";
const LABEL_KEY_PATTERN: &str = r"^([A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$";

/// Every rule of the CRD, for docs/crd.md's table and the tests.
pub fn all() -> Vec<AdmissionRule> {
    let mut out = vec![
        DST_NOT_EMPTY,
        DST_IS_CIDR,
        DST_NOT_DEFAULT,
        DST_NO_HOST_BITS,
    ];
    out.extend(ROUTE_DEV);
    out.extend([ROUTE_VIA, ROUTE_FAMILY, SVC_NAMESPACE, SVC_NAME]);
    out.extend(SVC_DEV);
    out.push(SVC_VIA);
    out.extend(DEFAULT_ROUTE_DEV);
    out.push(DEFAULT_ROUTE_VIA);
    out.extend([
        TARGET_NAME,
        TARGET_NAMESPACE,
        TARGET_NEEDS_NAMESPACE,
        EXCLUDE_POD,
        EXCLUDE_NAMESPACE,
        OVN_ROUTER,
        NEXT_HOP,
    ]);
    for (_, rules) in SELECTORS {
        out.extend(rules);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whitespace_class_is_what_the_controller_refuses() {
        // The class written into the dev rule is WHITESPACE_CLASS with CEL's escaping.
        assert!(
            ROUTE_DEV[2]
                .rule
                .contains(&WHITESPACE_CLASS.replace('\\', r"\\"))
        );
        let re = regex_lite_class(WHITESPACE_CLASS);
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            assert_eq!(re(c), c.is_whitespace(), "U+{:04X}", c as u32);
        }
    }

    /// `WHITESPACE_CLASS` as a predicate (ranges and `\x{..}` / `\t`-`\r` escapes only).
    fn regex_lite_class(class: &str) -> impl Fn(char) -> bool {
        let mut chars = Vec::new();
        let mut rest = class;
        while !rest.is_empty() {
            let (c, tail) = one(rest);
            chars.push(c);
            rest = tail;
        }
        let mut ranges = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            if i + 2 < chars.len() && chars[i + 1].is_none() {
                ranges.push((chars[i].unwrap_or('\0'), chars[i + 2].unwrap_or('\0')));
                i += 3;
            } else {
                let c = chars[i].unwrap_or('\0');
                ranges.push((c, c));
                i += 1;
            }
        }
        move |c| ranges.iter().any(|(a, b)| (*a..=*b).contains(&c))
    }

    /// One element of the class: `Some(char)`, or `None` for a literal `-` between two.
    fn one(s: &str) -> (Option<char>, &str) {
        if let Some(t) = s.strip_prefix(r"\x{") {
            let end = t.find('}').unwrap_or(0);
            let c = u32::from_str_radix(&t[..end], 16)
                .ok()
                .and_then(char::from_u32);
            return (c, &t[end + 1..]);
        }
        for (esc, c) in [(r"\t", '\t'), (r"\r", '\r')] {
            if let Some(t) = s.strip_prefix(esc) {
                return (Some(c), t);
            }
        }
        let c = s.chars().next().unwrap_or('\0');
        let t = &s[c.len_utf8()..];
        if c == '-' { (None, t) } else { (Some(c), t) }
    }

    #[test]
    fn every_rule_has_a_message_and_a_known_field() {
        for r in all() {
            assert!(
                r.message.is_some() != r.message_expression.is_some(),
                "{r:?}"
            );
            assert!(r.field.starts_with("spec."), "{r:?}");
        }
    }
}
