//! A full NB pass is a sweep of bounded transactions over whole Routes, never one big one:
//! `run` starting on 200 Routes writes them in several transactions of at most 64 Routes,
//! every Route's rows in one of them, and the NB ends exactly as a fresh `plan` computes.
//! A relist-style restart (a second `run` on the same NB) finds nothing to write.
//!
//! Needs Debian's ovn-central (ovsdb-server, ovsdb-tool); fails loudly without it.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use std::collections::{BTreeMap, BTreeSet};

use fixture::*;

const ROUTES: usize = 200;
/// Routes per transaction of a full pass (`controller/nb_side.rs`).
const BATCH: usize = 64;

fn route(i: usize) -> String {
    format!(
        "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {{name: r{i:03}}}\nspec:\n  podSelector: {{matchLabels: {{app: client-a}}}}\n  route:\n    - {{dst: \"172.{}.{}.0/24\", dev: eth1}}\n    - {{dst: \"172.{}.{}.128/25\", dev: eth1}}\n  ovn:\n    nextHops: [\"100.64.0.2\"]\n",
        20 + i / 200,
        i % 200,
        24 + i / 200,
        i % 200,
    )
}

/// Our transactions in commit order, each as the uuids of the Logical_Router_Policy rows it
/// inserted (`ovsdb-tool show-log -m`).
fn policy_inserts(ovn: &Ovn) -> Vec<BTreeSet<String>> {
    let out = std::process::Command::new("ovsdb-tool")
        .args(["show-log", "-m"])
        .arg(ovn.nb_db_file())
        .output()
        .expect("ovsdb-tool (Debian's openvswitch-common) must be installed");
    assert!(out.status.success(), "ovsdb-tool show-log failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut txns: Vec<BTreeSet<String>> = Vec::new();
    let mut ours = false;
    for line in text.lines() {
        if line.starts_with("record ") {
            ours = line.contains("ovnkube-route");
            if ours {
                txns.push(BTreeSet::new());
            }
        } else if let (true, Some(rest)) = (
            ours,
            line.trim()
                .strip_prefix("table Logical_Router_Policy insert row "),
        ) {
            // `table Logical_Router_Policy insert row 7c9f949d:`: the uuid's first 8 digits.
            if let Some(tx) = txns.last_mut() {
                tx.insert(rest.trim_end_matches(':').to_owned());
            }
        }
    }
    txns
}

#[test]
fn a_full_pass_writes_whole_routes_in_bounded_transactions() {
    let (ovn, inputs) = with_topology(Ovn::start());
    for i in 0..ROUTES {
        inputs.put(&format!("r{i:03}.yaml"), &route(i));
    }
    let mut run = spawn_run(&ovn, &inputs, &["--skip-pods"]);
    poll(60, "every Route's two policies written", || {
        run.assert_alive();
        let n = ovn.owned_policies().len();
        if n == 2 * ROUTES { Ok(()) } else { Err(n) }
    });

    // Which transaction inserted each Route's policies.
    let txns = policy_inserts(&ovn);
    let with_policies: Vec<&BTreeSet<String>> = txns.iter().filter(|t| !t.is_empty()).collect();
    assert!(
        with_policies.len() >= ROUTES.div_ceil(BATCH),
        "a full pass over {ROUTES} Routes must take at least {} transactions, took {}",
        ROUTES.div_ceil(BATCH),
        with_policies.len()
    );
    let dump = ovn.dump();
    let policies = &dump["Logical_Router_Policy"];
    let mut txn_of: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
    for (uuid, row) in policies {
        let Some(route) = ext_id(row, "k8s.ovn.org/name") else {
            continue;
        };
        let prefix = &uuid[..8];
        let i = with_policies
            .iter()
            .position(|t| t.contains(prefix))
            .unwrap_or_else(|| panic!("policy {uuid} of {route} in no transaction of ours"));
        txn_of.entry(route).or_default().insert(i);
    }
    assert_eq!(txn_of.len(), ROUTES, "every Route has policies: {txn_of:?}");
    for (route, ts) in &txn_of {
        assert_eq!(
            ts.len(),
            1,
            "{route}'s rows were split over transactions {ts:?}"
        );
    }
    let mut per_txn: BTreeMap<usize, usize> = BTreeMap::new();
    for ts in txn_of.values() {
        *per_txn.entry(*ts.iter().next().unwrap()).or_default() += 1;
    }
    for (t, n) in &per_txn {
        assert!(
            *n <= BATCH,
            "transaction {t} wrote {n} Routes (at most {BATCH})"
        );
    }
    drop(run);

    // A fresh plan finds nothing to change, and a second `run` writes nothing.
    let before = txns.len();
    let mut again = spawn_run(&ovn, &inputs, &["--skip-pods"]);
    let (nb, world, routes) = (
        ovn.nb_remote(),
        inputs.world().display().to_string(),
        inputs.routes().display().to_string(),
    );
    poll(30, "a fresh plan agrees with the NB", || {
        again.assert_alive();
        let r = ovnkube(&[
            "plan",
            "-o",
            "json",
            "--skip-pods",
            "--nb",
            &nb,
            "-f",
            &world,
            "-f",
            &routes,
        ]);
        let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap_or_default();
        match v["nb"].as_array() {
            Some(changes) if changes.is_empty() => Ok(()),
            _ => Err(r.to_string()),
        }
    });
    poll(30, "the second run's full pass done", || {
        again.assert_alive();
        let log = again.log();
        if log.contains("initial pass done") {
            Ok(())
        } else {
            Err(log)
        }
    });
    assert_eq!(
        policy_inserts(&ovn).len(),
        before,
        "a restart on an NB that is already right wrote something"
    );
}

/// Route `i` of [`route`], or, for every tenth, a Route of every pod (static routes) whose
/// next hops have BFD sessions.
fn route_or_bfd(i: usize) -> String {
    if i % 10 != 5 {
        return route(i);
    }
    format!(
        "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {{name: r{i:03}}}\nspec:\n  route:\n    - {{dst: \"172.30.{i}.0/24\", dev: eth1}}\n  ovn:\n    nextHops: [\"100.64.0.2\", \"100.64.0.3\"]\n    bfd: true\n"
    )
}

/// The full pass sends the next batch while the server works on the one before. BFD
/// sessions are shared by every Route with the same next hop: a batch that concerns them
/// is only diffed and sent when nothing else is on its way, or two batches would each
/// create the same session (or one delete what the other starts to use).
#[test]
fn batches_with_bfd_sessions_are_not_sent_while_another_is_on_its_way() {
    let (ovn, inputs) = with_topology(Ovn::start());
    for i in 0..ROUTES {
        inputs.put(&format!("r{i:03}.yaml"), &route_or_bfd(i));
    }
    let bfd_routes = (0..ROUTES).filter(|i| i % 10 == 5).count();
    let mut run = spawn_run(&ovn, &inputs, &["--skip-pods"]);
    poll(60, "every Route's rows written", || {
        run.assert_alive();
        let dump = ovn.dump();
        let statics = dump
            .get("Logical_Router_Static_Route")
            .map_or(0, |t| t.values().filter(|r| is_owned(r)).count());
        let n = (ovn.owned_policies().len(), statics);
        if n == (2 * (ROUTES - bfd_routes), 2 * bfd_routes) {
            Ok(())
        } else {
            Err(n)
        }
    });
    let dump = ovn.dump();
    let sessions: BTreeMap<&String, (String, String)> = dump["BFD"]
        .iter()
        .map(|(u, r)| {
            (
                u,
                (
                    r["logical_port"].as_str().unwrap().to_owned(),
                    r["dst_ip"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect();
    let keys: BTreeSet<&(String, String)> = sessions.values().collect();
    assert_eq!(
        (sessions.len(), keys.len()),
        (2, 2),
        "one session per next hop: {sessions:?}"
    );
    for (uuid, row) in dump["Logical_Router_Static_Route"]
        .iter()
        .filter(|(_, r)| is_owned(r))
    {
        let bfd = &row["bfd"];
        let target = bfd[1].as_str().filter(|_| bfd[0] == "uuid");
        assert!(
            target.is_some_and(|t| sessions.contains_key(&t.to_owned())),
            "static route {uuid} refers to no session: {row:?}"
        );
    }
    let log = run.log();
    assert!(
        !log.contains("NB pass failed") && !log.contains("NB pass retried"),
        "every batch went through the first time:\n{log}"
    );
    assert!(log.contains("initial pass done"), "{log}");
}
