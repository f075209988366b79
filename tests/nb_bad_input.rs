//! Bad input over a programmed NB, driven through `apply`: a Route invalid as a whole, one
//! bad rule among good ones, broken YAML, an unknown field, and the whole bad-input corpus.
//! Clear errors, the documented exit code, no panic, the valid rest applied, nothing
//! already programmed removed, foreign rows unchanged.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use fixture::*;

#[test]
fn bad_input_a_route_invalid_as_a_whole_keeps_its_rows() {
    let (ovn, inputs, foreign, owned) = programmed();
    inputs.put(
        "ecmp.yaml",
        &ECMP.replace("172.16.20.0/24", "172.16.300.0/24"),
    );
    inputs.put("extra.yaml", EXTRA);
    let r = apply_nb(&ovn, &inputs);
    assert_no_panic(&r);
    // The file loads; the Route is invalid in content: reported, and bad input fails the
    // command (message on stderr, exit 1) while the valid rest is applied.
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("error: Route ecmp is Invalid"), "{r}");
    assert!(r.stdout.contains("ecmp: Invalid"), "{r}");
    assert!(
        r.stdout.contains("172.16.300.0/24"),
        "the reason names the bad value:\n{r}"
    );
    assert!(r.stdout.contains("ecmp: kept as programmed"), "{r}");
    assert_kept(&ovn, &owned, &r);
    assert!(matches(&ovn).contains(&ECMP_MATCH.to_owned()));
    assert_extra_applied(&ovn, &r);
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

#[test]
fn bad_input_b_one_bad_rule_among_good_ones() {
    let (ovn, inputs, foreign, owned) = programmed();
    // Rule 2 becomes invalid, a third (good) rule is added.
    inputs.put(
        "multi.yaml",
        &MULTI.replace(
            "- {dst: \"172.16.31.0/24\", dev: eth1}",
            "- {dst: \"172.16.31.0/33\", dev: eth1}\n    - {dst: \"172.16.32.0/24\", dev: eth1}",
        ),
    );
    let r = apply_nb(&ovn, &inputs);
    assert_no_panic(&r);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("error: Route multi is Degraded"), "{r}");
    assert!(r.stdout.contains("multi: Degraded"), "{r}");
    assert!(
        r.stdout.contains("spec.route[1]"),
        "the problem names the rule:\n{r}"
    );
    let m = matches(&ovn);
    for dst in ["172.16.30.0/24", "172.16.31.0/24", "172.16.32.0/24"] {
        assert!(
            m.iter().any(|x| x.contains(&format!("ip4.dst == {dst}"))),
            "{dst} missing: the good rules must apply and the rule that became bad must keep its row: {m:?}\n{r}"
        );
    }
    assert_kept(&ovn, &owned, &r);
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

#[test]
fn bad_input_c_broken_yaml_keeps_everything() {
    let (ovn, inputs, foreign, owned) = programmed();
    let broken = std::fs::read_to_string(format!("{CORPUS}/broken-yaml.yaml")).unwrap();
    inputs.put("ecmp.yaml", &broken);
    inputs.put("extra.yaml", EXTRA);
    let r = apply_nb(&ovn, &inputs);
    assert_no_panic(&r);
    assert_eq!(r.code, 1, "apply exits 1 on input errors:\n{r}");
    assert!(
        r.stderr.contains("ecmp.yaml") && r.stderr.contains("YAML syntax error"),
        "{r}"
    );
    // ecmp's file no longer says which Routes it held: nothing may be deleted.
    assert_kept(&ovn, &owned, &r);
    assert_extra_applied(&ovn, &r);
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

#[test]
fn bad_input_d_unknown_field_keeps_the_route() {
    let (ovn, inputs, foreign, owned) = programmed();
    // A misspelled selector would widen enforce to every pod: rejected, enforce kept.
    inputs.put(
        "enforce.yaml",
        &ENFORCE.replace(
            "podSelector: {matchLabels: {app: client-a}}",
            "podSelecter: {matchLabels: {app: client-b}}",
        ),
    );
    inputs.put("extra.yaml", EXTRA);
    let r = apply_nb(&ovn, &inputs);
    assert_no_panic(&r);
    assert_eq!(r.code, 1, "apply exits 1 on input errors:\n{r}");
    assert!(r.stderr.contains("spec.podSelecter: unknown field"), "{r}");
    assert!(r.stdout.contains("enforce: kept as programmed"), "{r}");
    assert_kept(&ovn, &owned, &r);
    assert_eq!(address_set(&ovn, "ovnkube_route_enforce_v4"), "10.244.1.4");
    assert_extra_applied(&ovn, &r);
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

/// Every file of the bad-input corpus, dropped beside a programmed state: no panic, exit
/// 0 or 1, nothing programmed removed, foreign rows unchanged.
#[test]
fn bad_input_corpus_over_a_programmed_state() {
    let (ovn, inputs, foreign, owned) = programmed();
    let mut files: Vec<_> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 80, "corpus too small: {files:?}");
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        match std::fs::read_link(f) {
            // The symlink to /dev/zero goes in as a symlink: it must be skipped, not read.
            Ok(target) => std::os::unix::fs::symlink(target, inputs.routes().join(name)).unwrap(),
            Err(_) => {
                std::fs::copy(f, inputs.routes().join(name)).unwrap();
            }
        }
        let r = apply_nb(&ovn, &inputs);
        assert_no_panic(&r);
        assert!(r.code == 0 || r.code == 1, "{name}: {r}");
        if r.code == 1 {
            assert!(
                r.stderr.contains("error:"),
                "{name}: exit 1 without an error line:\n{r}"
            );
        }
        let now = ovn.owned();
        for (table, rows) in &owned {
            for row in rows {
                assert!(
                    now.get(table).is_some_and(|v| v.contains(row)),
                    "{name}: {table} row removed: {row}\n{r}"
                );
            }
        }
        std::fs::remove_file(inputs.routes().join(name)).unwrap();
    }
    // With the corpus gone, the NB holds exactly the programmed rows again.
    apply_ok(&ovn, &inputs);
    assert_eq!(ovn.owned(), owned);
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

/// Issue 9 point 6: a Route selecting every pod (static routes) with one invalid rule is
/// narrowed to a podSelector. Its valid rule now needs a policy: the static route that the
/// policy replaced goes, so the other pods are no longer rerouted; `plan --nb` then shows
/// no change. Only a row no valid rule speaks for (the invalid rule's) may stay.
#[test]
fn bad_input_e_narrowing_a_route_with_a_bad_rule_leaves_no_stale_row() {
    let (ovn, inputs, foreign) = setup();
    let with_bad = EVERYONE.replace(
        "    - {dst: \"172.16.60.0/24\", dev: eth1}",
        "    - {dst: \"172.16.60.0/24\", dev: eth1}\n    - {dst: \"172.16.61.0/24\", dev: eth1}",
    );
    inputs.put("everyone.yaml", &with_bad);
    apply_ok(&ovn, &inputs);
    assert_eq!(
        static_routes(&ovn),
        vec![
            "172.16.60.0/24 100.64.0.2",
            "172.16.60.0/24 100.64.0.3",
            "172.16.61.0/24 100.64.0.2",
            "172.16.61.0/24 100.64.0.3",
        ]
    );
    // Narrowed, and the second rule broken in the same edit.
    let narrowed = with_bad
        .replace(
            "spec:\n",
            "spec:\n  podSelector: {matchLabels: {app: client-a}}\n",
        )
        .replace("172.16.61.0/24", "172.16.61.0/33");
    inputs.put("everyone.yaml", &narrowed);
    let r = apply_nb(&ovn, &inputs);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stdout.contains("everyone: Degraded"), "{r}");
    // The valid rule's policy replaced its static routes; the broken rule's rows stay.
    assert!(
        matches(&ovn)
            .iter()
            .any(|m| m.ends_with("ip4.dst == 172.16.60.0/24")),
        "{r}"
    );
    assert_eq!(
        static_routes(&ovn),
        vec!["172.16.61.0/24 100.64.0.2", "172.16.61.0/24 100.64.0.3"],
        "a static route the new policy replaced is still there:\n{r}"
    );
    let world = inputs.world();
    let routes = inputs.routes();
    let nb = ovn.nb_remote();
    let p = ovnkube(&[
        "plan",
        "-f",
        world.to_str().unwrap(),
        "-f",
        routes.to_str().unwrap(),
        "--nb",
        &nb,
        "-o",
        "json",
    ]);
    let j: serde_json::Value = serde_json::from_str(&p.stdout).unwrap();
    assert_eq!(j["nb"].as_array().map(Vec::len), Some(0), "{p}");
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

/// Issue 9 point 5: a second file defining a programmed Route's name changes nothing
/// programmed for it (neither definition is used) and is reported naming both files.
#[test]
fn bad_input_f_a_route_name_defined_twice_changes_nothing_programmed() {
    let (ovn, inputs, foreign, owned) = programmed();
    // Sorted after ecmp.yaml: before the fix the CLI said "keeping the first" while the
    // other definition's rows were programmed.
    inputs.put(
        "zz-ecmp-again.yaml",
        &ECMP
            .replace("172.16.20.0/24", "172.16.21.0/24")
            .replace("client-a", "client-b"),
    );
    let r = apply_nb(&ovn, &inputs);
    assert_no_panic(&r);
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stderr.contains("zz-ecmp-again.yaml")
            && r.stderr.contains("ecmp.yaml:")
            && r.stderr.contains("duplicate Route \"ecmp\"")
            && r.stderr.contains("neither definition is used"),
        "{r}"
    );
    assert!(r.stdout.contains("ecmp: kept as programmed"), "{r}");
    assert_eq!(ovn.owned(), owned, "{r}");
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}
