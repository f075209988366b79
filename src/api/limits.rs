//! The sizes one Route may reach. The CRD (`maxItems`, `maxLength`, `maxProperties`) and the
//! controller's validation read these same numbers, so a Route the API server refuses for its
//! size is one the controller reports too, and the other way round (docs/crd.md, "Limits").
//!
//! Owns: the numbers and how a length is counted. Must not: decide what a value means.
//!
//! Lengths count characters, not bytes, because that is what the API server's `maxLength`
//! counts (the OpenAPI validator counts runes). The one byte limit, an interface name's
//! 15 bytes, is a rule of its own.

/// `spec.route[]`: the default of `--max-routes-per-pod`. A pod never carries more routes
/// than that, so a longer list could only be cut per pod; the 10,000-rule Route is the
/// size the planner and the NB writer are tested with.
pub const ROUTE_RULES: usize = 10_000;
/// `spec.svc[]`: every Service rule is at least one route per pod and a watch on a Service;
/// a thousand is far past any Route seen, and keeps the admission rules inside the API
/// server's CEL cost budget (each item runs five string rules).
pub const SVC_RULES: usize = 1_000;
/// `spec.targets[]`: workloads named one by one; past a hundred, a label selector says it
/// better.
pub const TARGETS: usize = 100;
/// `spec.exclude.pods[]` and `spec.exclude.namespaces[]`.
pub const EXCLUDES: usize = 1_000;
/// `spec.ovn.nextHops[]`: gateway routers to spread traffic over (ECMP); one per node of a
/// 256-node cluster.
pub const NEXT_HOPS: usize = 256;
/// `matchExpressions[]` of a label selector.
pub const MATCH_EXPRESSIONS: usize = 16;
/// `matchExpressions[].values[]` of a label selector.
pub const SELECTOR_VALUES: usize = 32;
/// `matchLabels` pairs of a label selector (`maxProperties`).
pub const MATCH_LABELS: usize = 32;

/// `dst`, `via`, `nextHops[]`: the longest address or CIDR written as Go or Rust print them
/// is 49 characters (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128`).
pub const ADDRESS_CHARS: usize = 64;
/// `dev` (characters; the kernel's limit of 15 bytes, IFNAMSIZ - 1, is checked on its own).
pub const DEV_CHARS: usize = 15;
/// A namespace, Service or object name: a DNS subdomain.
pub const NAME_CHARS: usize = 253;
/// `exclude.pods[]`: `namespace/name`.
pub const POD_REF_CHARS: usize = 2 * NAME_CHARS + 1;
/// `ovn.router`: ovn-kubernetes names gateway routers `GR_<node name>`.
pub const ROUTER_CHARS: usize = NAME_CHARS + 3;
/// A label key: a DNS subdomain prefix, `/`, a 63-character name.
pub const LABEL_KEY_CHARS: usize = NAME_CHARS + 1 + 63;
/// A label value.
pub const LABEL_VALUE_CHARS: usize = 63;
/// `targets[].kind`: the longest kind (`StatefulSet`); any longer value is not a kind.
pub const TARGET_KIND_CHARS: usize = 11;
/// `matchExpressions[].operator`: the longest operator (`DoesNotExist`).
pub const OPERATOR_CHARS: usize = 12;

/// True when `s` is longer than `max` characters, counted as the API server counts them.
pub fn too_long(s: &str, max: usize) -> bool {
    s.chars().nth(max).is_some()
}

/// The problem text for a string over its limit, in the API server's words.
pub fn too_long_message(max: usize) -> String {
    format!("Too long: may not be more than {max} characters")
}

/// The problem text for a list (or map) over its limit, in the API server's words.
pub fn too_many_message(found: usize, max: usize) -> String {
    format!("Too many: {found}: must have at most {max} items")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_count_characters_like_the_api_server() {
        assert!(!too_long("", 0));
        assert!(too_long("a", 0));
        assert!(!too_long(&"é".repeat(15), DEV_CHARS));
        assert!(too_long(&"é".repeat(16), DEV_CHARS));
        assert_eq!(
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128".len(),
            49
        );
    }
}
