//! Generated Routes for tests/crd_admission.rs: every field mixes good values with the bad
//! ones where admission and the controller could disagree (address forms where parsers
//! differ, interface names at the byte limit, names and label syntax at their edges).
use proptest::prelude::*;
use serde_json::{Value, json};

/// Address-like text: valid and broken IPv4 / IPv6 addresses and CIDRs in the forms where
/// parsers differ (leading zeros, mapped, zones, `::` edge cases, whitespace).
pub fn address() -> impl Strategy<Value = String> {
    let octet = prop_oneof![
        (0u16..=255).prop_map(|o| o.to_string()),
        Just("256".to_owned()),
        Just("01".to_owned()),
        Just("00".to_owned()),
    ];
    let v4 = prop::collection::vec(octet, 3..=5).prop_map(|o| o.join("."));
    let group = prop_oneof![
        "[0-9a-fA-F]{1,4}",
        Just("0".to_owned()),
        Just("ffff".to_owned()),
        Just("12345".to_owned()),
    ];
    let v6 = (
        prop::collection::vec(group, 0..=9),
        any::<u8>(),
        prop::option::of(Just("1.2.3.4")),
    )
        .prop_map(|(groups, at, v4tail)| {
            let mut g = groups;
            if at % 3 == 0 && !g.is_empty() {
                let i = usize::from(at) % g.len();
                g[i] = String::new();
            }
            let mut s = g.join(":");
            if at % 5 == 0 {
                s = format!("::{s}");
            }
            if let Some(t) = v4tail {
                s = format!("{s}:{t}");
            }
            s
        });
    let addr = prop_oneof![3 => v4, 3 => v6, 1 => prop::sample::select(vec![
        "::ffff:10.0.0.1", "::ffff:10.0.0.0", "fe80::1%eth0", "::", "::1", "1::", ":::1",
        "[::1]", "10.0.0.1 ", " fd00::1", "", "x", "100.64.0.2", "0.0.0.0", "::1.2.3.4",
    ]).prop_map(str::to_owned)];
    let prefix = prop_oneof![
        Just(String::new()),
        (0u16..=130).prop_map(|n| format!("/{n}")),
        prop::sample::select(vec!["/08", "/+8", "/", "/0", "/00", "/ 8", "/32 "])
            .prop_map(str::to_owned),
    ];
    (addr, prefix).prop_map(|(a, p)| format!("{a}{p}"))
}

fn dev() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec!["eth0", "eth1", "net1", "eth0.100", "veth-x_y@", "123456789012345"]).prop_map(str::to_owned),
        2 => "[a-z0-9./: \u{a0}é-]{0,17}",
        1 => prop::sample::select(vec!["", ".", "..", "a/b", "a:b", "a\tb", "a\u{3000}b", "éééééééé", "1234567890123456"]).prop_map(str::to_owned),
    ]
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-z0-9][a-z0-9.-]{0,10}",
        1 => "[a-zA-Z0-9._/ -]{0,8}",
        1 => (250usize..256).prop_map(|n| "a".repeat(n)),
    ]
}

fn via() -> impl Strategy<Value = Option<String>> {
    prop_oneof![2 => Just(None), 1 => Just(Some(String::new())), 3 => address().prop_map(Some)]
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-zA-Z0-9]([a-zA-Z0-9._-]{0,6}[a-zA-Z0-9])?", 1 => "[a-zA-Z0-9._ /-]{0,8}", 1 => (62usize..66).prop_map(|n| "v".repeat(n))]
}

fn label_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-z0-9]{1,6}",
        2 => "([a-z0-9]{1,4}\\.){0,2}[a-z]{1,4}/[a-zA-Z0-9]([a-zA-Z0-9._-]{0,4}[a-zA-Z0-9])?",
        2 => "[a-zA-Z0-9._/-]{0,10}",
        1 => (250usize..260).prop_map(|n| format!("{}/k", "p".repeat(n))),
    ]
}

fn selector() -> impl Strategy<Value = Value> {
    let expr = (
        label_key(),
        prop::sample::select(vec!["In", "NotIn", "Exists", "DoesNotExist", "Near", "in"]),
        prop::option::of(prop::collection::vec(label_value(), 0..3)),
    )
        .prop_map(|(key, op, values)| {
            let mut e = json!({"key": key, "operator": op});
            if let Some(v) = values {
                e["values"] = json!(v);
            }
            e
        });
    (
        prop::option::of(prop::collection::btree_map(
            "[a-z]{1,4}",
            label_value(),
            0..3,
        )),
        prop::option::of(prop::collection::vec(expr, 0..3)),
    )
        .prop_map(|(labels, exprs)| {
            let mut s = json!({});
            if let Some(l) = labels {
                s["matchLabels"] = json!(l);
            }
            if let Some(e) = exprs {
                s["matchExpressions"] = json!(e);
            }
            s
        })
}

pub fn spec() -> impl Strategy<Value = Value> {
    let rule = (address(), dev(), via()).prop_map(|(dst, dev, via)| {
        let mut r = json!({"dst": dst, "dev": dev});
        if let Some(v) = via {
            r["via"] = json!(v);
        }
        r
    });
    let svc = (name(), name(), dev(), via()).prop_map(|(ns, n, dev, via)| {
        let mut r = json!({"namespace": ns, "name": n, "dev": dev});
        if let Some(v) = via {
            r["via"] = json!(v);
        }
        r
    });
    let target = (
        prop::sample::select(vec![
            "Pod",
            "Deployment",
            "Namespace",
            "CronJob",
            "Gadget",
            "deployment",
        ]),
        prop::option::of(name()),
        name(),
    )
        .prop_map(|(kind, ns, n)| {
            let mut t = json!({"kind": kind, "name": n});
            if let Some(ns) = ns {
                t["namespace"] = json!(ns);
            }
            t
        });
    let exclude = (
        prop::collection::vec(
            prop_oneof![
                (name(), name()).prop_map(|(a, b)| format!("{a}/{b}")),
                name()
            ],
            0..3,
        ),
        prop::collection::vec(name(), 0..3),
        prop::option::of(selector()),
        prop::option::of(selector()),
    )
        .prop_map(|(pods, namespaces, ps, ns)| {
            let mut e = json!({"pods": pods, "namespaces": namespaces});
            if let Some(s) = ps {
                e["podSelector"] = s;
            }
            if let Some(s) = ns {
                e["namespaceSelector"] = s;
            }
            e
        });
    let ovn = (
        prop::option::of(prop_oneof!["[A-Za-z0-9_.:-]{0,12}", "[A-Za-z0-9_ /]{0,6}"]),
        prop::collection::vec(address(), 0..4),
    )
        .prop_map(|(router, hops)| {
            let mut o = json!({"nextHops": hops});
            if let Some(r) = router {
                o["router"] = json!(r);
            }
            o
        });
    (
        prop::collection::vec(rule, 0..4),
        prop::collection::vec(svc, 0..3),
        prop::option::of(prop::collection::vec(target, 0..3)),
        prop::option::of(exclude),
        prop::option::of((dev(), via())),
        prop::option::of(ovn),
        prop::option::of(selector()),
        prop::option::of(selector()),
    )
        .prop_map(
            |(route, svc, targets, exclude, default_route, ovn, ps, ns)| {
                let mut s = json!({"route": route, "svc": svc});
                if let Some(t) = targets {
                    s["targets"] = json!(t);
                }
                if let Some(e) = exclude {
                    s["exclude"] = e;
                }
                if let Some((dev, via)) = default_route {
                    s["defaultRoute"] = json!({"dev": dev});
                    if let Some(v) = via {
                        s["defaultRoute"]["via"] = json!(v);
                    }
                }
                if let Some(o) = ovn {
                    s["ovn"] = o;
                }
                if let Some(p) = ps {
                    s["podSelector"] = p;
                }
                if let Some(n) = ns {
                    s["namespaceSelector"] = n;
                }
                s
            },
        )
}
