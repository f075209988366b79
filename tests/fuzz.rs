//! Property-based fuzzing (proptest; cargo-fuzz needs a nightly toolchain this project does
//! not pin) of the three parsers that read bytes from outside: the OVSDB stream decoder
//! (with message and update parsing behind it), the config loader and the CNI cache parser.
//!
//! Bounded for CI: `OVNKR_FUZZ_CASES` cases per target (default 1000). Each target asserts
//! more than "no panic": a property that a wrong parser would break.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use proptest::prelude::*;
use serde_json::{Value as Json, json};

use ovnkube_route::config::load_bytes;
use ovnkube_route::netlink::discover::parse_cni_cache;
use ovnkube_route::ovsdb::codec::Decoder;
use ovnkube_route::ovsdb::rpc::Message;
use ovnkube_route::ovsdb::update::parse_table_updates2;

fn cases() -> u32 {
    std::env::var("OVNKR_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000)
}

/// Small JSON values, nested a little.
fn json_value() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::from),
        any::<i64>().prop_map(Json::from),
        "[a-z0-9_./:-]{0,12}".prop_map(Json::from),
        Just(json!(["uuid", "8e7a52d2-5e13-4d53-9b3c-2b4f7f0b7f8a"])),
        Just(json!(["set", []])),
        Just(json!(["map", [["k", "v"]]])),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..6)
                .prop_map(|m| Json::Object(m.into_iter().collect())),
        ]
    })
}

/// OVSDB messages as a server sends them (replies, echo, update2/update3).
fn server_message() -> impl Strategy<Value = Json> {
    prop_oneof![
        json_value().prop_map(|r| json!({"id": 1, "result": r, "error": null})),
        json_value().prop_map(|e| json!({"id": "x", "error": e})),
        Just(json!({"id": "echo", "method": "echo", "params": []})),
        json_value().prop_map(|u| json!({"id": null, "method": "update2", "params": ["m", u]})),
        json_value()
            .prop_map(|u| json!({"id": null, "method": "update3", "params": ["m", "0", u]})),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// Arbitrary bytes in arbitrary chunks: the decoder errors or yields, never panics,
    /// and never buffers past its limit.
    #[test]
    fn ovsdb_decoder_bytes(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..64), 0..16)) {
        let mut d = Decoder::new(512);
        for c in &chunks {
            d.extend(c);
            while let Ok(Some(m)) = d.next_message() {
                let _ = Message::from_json(m);
            }
        }
    }

    /// Valid messages, concatenated and cut at arbitrary points, decode to exactly the
    /// messages sent, in order; update notifications parse or fail cleanly.
    #[test]
    fn ovsdb_decoder_resplits(msgs in prop::collection::vec(server_message(), 1..8), cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let bytes: Vec<u8> = msgs.iter().flat_map(|m| serde_json::to_vec(m).unwrap()).collect();
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
        points.push(0);
        points.push(bytes.len());
        points.sort_unstable();
        let mut d = Decoder::new(1 << 20);
        let mut got = Vec::new();
        for w in points.windows(2) {
            d.extend(&bytes[w[0]..w[1]]);
            while let Some(m) = d.next_message().unwrap() {
                got.push(m);
            }
        }
        prop_assert_eq!(&got, &msgs);
        for m in got {
            if let Ok(Message::Notification { params, .. }) = Message::from_json(m)
                && let Some(u) = params.as_array().and_then(|p| p.last()) {
                    let _ = parse_table_updates2(u);
                }
        }
    }

    /// Route-shaped JSON with arbitrary values in every field: the loader never panics,
    /// every error names the file and stays short.
    #[test]
    fn config_parser_routes(spec in json_value(), meta in json_value(), json in any::<bool>()) {
        let doc = json!({"apiVersion": "k8s.ovn.org/v1", "kind": "Route", "metadata": meta, "spec": spec});
        let (name, text) = if json {
            ("f.json", serde_json::to_string(&doc).unwrap())
        } else {
            ("f.yaml", serde_yaml_ng::to_string(&doc).unwrap())
        };
        let loaded = load_bytes(Path::new(name), text.as_bytes());
        for e in &loaded.errors {
            let e = e.to_string();
            prop_assert!(e.starts_with(name), "{}", e);
            prop_assert!(e.len() < 4096, "{} bytes", e.len());
        }
        prop_assert!(loaded.documents.routes.len() <= 1);
    }

    /// Arbitrary bytes as a CNI cache file: no panic, and nothing is found in them.
    #[test]
    fn cni_cache_bytes(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        prop_assert!(parse_cni_cache(&bytes).is_none() || serde_json::from_slice::<Json>(&bytes).is_ok());
    }

    /// CNI cache entries with fields replaced by arbitrary values: an entry is used only
    /// when it is a loopback cniCacheV1 entry with a pod UID and a sandbox.
    #[test]
    fn cni_cache_fields(kind in json_value(), args in json_value(), ifname in json_value(), result in json_value(), uid in "[a-f0-9-]{0,12}") {
        let mut base = json!({
            "kind": "cniCacheV1",
            "ifName": "lo",
            "cniArgs": [["K8S_POD_UID", uid], ["K8S_POD_NAMESPACE", "default"]],
            "result": {"interfaces": [{"name": "lo", "sandbox": "/var/run/netns/x"}]},
        });
        let pick = |i: usize, v: &Json| -> bool { v.as_i64().is_some_and(|n| n as usize % 4 == i) };
        if pick(0, &args) { base["kind"] = kind; }
        if pick(1, &args) { base["cniArgs"] = args.clone(); }
        if pick(2, &args) { base["ifName"] = ifname; }
        if pick(3, &args) { base["result"] = result; }
        let bytes = serde_json::to_vec(&base).unwrap();
        if let Some(p) = parse_cni_cache(&bytes) {
            prop_assert_eq!(base["kind"].as_str(), Some("cniCacheV1"));
            prop_assert!(!p.uid.is_empty());
            prop_assert!(!p.netns.as_os_str().is_empty());
        }
    }
}
