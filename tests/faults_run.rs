//! Faults around a running controller (issue 9, "Suite"): the NB server restarted (an
//! edit made right after the restart converges, and so does one made while it was down),
//! the NB replaced by an empty database (everything rewritten, foreign rows untouched),
//! the NB server killed at random points of a pass (exactly one row per id), and the
//! controller killed -9 at random points (no duplicate, no orphan).
//!
//! Iterations are bounded for CI; `OVNKR_LONG=1` runs the full counts (100).
//! Figures are printed (`--nocapture`) and recorded in docs/reliability.md.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use fixture::*;

fn long() -> bool {
    std::env::var_os("OVNKR_LONG").is_some()
}

/// Twenty every-pod static routes (two next hops each) plus ecmp, enforce and multi: a
/// pass that writes some 60 rows.
fn many_routes() -> String {
    let mut rules = String::new();
    for i in 0..20 {
        rules.push_str(&format!("    - {{dst: \"172.20.{i}.0/24\", dev: eth1}}\n"));
    }
    let wide = format!(
        "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {{name: wide}}\nspec:\n  route:\n{rules}  ovn:\n    nextHops: [\"100.64.0.2\", \"100.64.0.3\"]\n"
    );
    documents(&[&wide, ECMP, ENFORCE, MULTI])
}

/// Every owned row's `k8s.ovn.org/id`, with how many rows carry it.
fn ids(ovn: &Ovn) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for rows in ovn.dump().values() {
        for r in rows.values().filter(|r| is_owned(r)) {
            *out.entry(ext_id(r, "k8s.ovn.org/id").unwrap_or_default())
                .or_default() += 1;
        }
    }
    out
}

/// Waits until the NB holds exactly the rows (by id, one each) in `want`.
fn wait_for(ovn: &Ovn, run: &mut Spawned, want: &BTreeMap<String, usize>, secs: u64) -> Duration {
    poll(secs, "NB converged", || {
        run.assert_alive();
        let now = ids(ovn);
        if &now == want {
            Ok(())
        } else {
            let missing = want.keys().filter(|k| !now.contains_key(*k)).count();
            let extra = now.keys().filter(|k| !want.contains_key(*k)).count();
            Err(format!(
                "{missing} missing, {extra} extra of {}",
                want.len()
            ))
        }
    })
}

/// The row ids a clean apply of `routes` writes on a fresh NB with the same topology.
fn expected(routes: &str) -> BTreeMap<String, usize> {
    let (ovn, inputs) = with_topology(Ovn::start());
    inputs.put("routes.yaml", routes);
    apply_ok(&ovn, &inputs);
    ids(&ovn)
}

#[test]
fn nb_restart_edits_during_and_right_after_converge() {
    let (mut ovn, inputs) = with_topology(Ovn::start());
    inputs.put("routes.yaml", ECMP);
    let mut run = spawn_run(&ovn, &inputs, &["--skip-pods"]);
    wait_for(&ovn, &mut run, &expected(ECMP), 15);

    // An edit made while the server is down is written once it is back.
    ovn.nb.kill();
    inputs.put("routes.yaml", &documents(&[ECMP, EXTRA]));
    std::thread::sleep(Duration::from_millis(300));
    ovn.nb.start();
    let took = wait_for(&ovn, &mut run, &expected(&documents(&[ECMP, EXTRA])), 10);
    println!(
        "NB restart, edit made while down: converged {:.3} s after the server accepted connections",
        took.as_secs_f64()
    );

    // An edit made right after the restart.
    ovn.nb.kill();
    std::thread::sleep(Duration::from_millis(300));
    ovn.nb.start();
    let back = Instant::now();
    inputs.put("routes.yaml", &documents(&[ECMP, EXTRA, MULTI]));
    let want = expected(&documents(&[ECMP, EXTRA, MULTI]));
    wait_for(&ovn, &mut run, &want, 10);
    println!(
        "NB restart, edit made right after: converged {:.3} s after the server accepted connections",
        back.elapsed().as_secs_f64()
    );
    assert!(
        run.log()
            .contains("retried as soon as the NB client is connected again")
            || run.log().contains("connected to OVSDB server")
    );
}

#[test]
fn nb_replaced_by_an_empty_database_is_rewritten_and_foreign_rows_untouched() {
    let (mut ovn, inputs) = with_topology(Ovn::start());
    inputs.put("routes.yaml", &many_routes());
    let mut run = spawn_run(&ovn, &inputs, &["--skip-pods"]);
    let want = expected(&many_routes());
    wait_for(&ovn, &mut run, &want, 15);

    ovn.nb.kill();
    let db = ovn.nb_db_file();
    std::fs::remove_file(&db).unwrap();
    let out = Command::new("ovsdb-tool")
        .arg("create")
        .arg(&db)
        .arg(NB_SCHEMA)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    ovn.nb.start();
    // ovn-kubernetes rebuilds its topology; we rewrite ours beside it.
    let back = Instant::now();
    ovn.build_topology();
    let foreign = ovn.foreign();
    wait_for(&ovn, &mut run, &want, 15);
    println!(
        "NB replaced by an empty database: {} rows rewritten {:.3} s after the server came back",
        want.len(),
        back.elapsed().as_secs_f64()
    );
    assert_foreign_unchanged(&foreign, &ovn.foreign());
    assert!(ids(&ovn).values().all(|n| *n == 1));
}

#[test]
fn nb_killed_at_random_points_of_a_pass_leaves_exactly_one_row_per_id() {
    let rounds = if long() { 100 } else { 8 };
    let (mut ovn, inputs) = with_topology(Ovn::start());
    let mut run = spawn_run(&ovn, &inputs, &["--skip-pods"]);
    let with = many_routes();
    let want_with = expected(&with);
    let want_without: BTreeMap<String, usize> = BTreeMap::new();
    for round in 0..rounds {
        // Alternate writing and deleting everything, killing the server mid-pass.
        let (text, want) = if round % 2 == 0 {
            (with.as_str(), &want_with)
        } else {
            ("", &want_without)
        };
        inputs.put("routes.yaml", text);
        std::thread::sleep(Duration::from_millis(rand_ms(0..=120)));
        ovn.nb.kill();
        std::thread::sleep(Duration::from_millis(100));
        ovn.nb.start();
        wait_for(&ovn, &mut run, want, 15);
        let counts = ids(&ovn);
        assert!(
            counts.values().all(|n| *n == 1),
            "round {round}: duplicate rows"
        );
    }
    println!(
        "NB kill -9 at random points of a pass: {rounds} rounds, exactly one row per id each time"
    );
}

fn rand_ms(r: std::ops::RangeInclusive<u64>) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    r.start() + u64::from(nanos) % (r.end() - r.start() + 1)
}

#[test]
fn controller_killed_at_random_points_leaves_no_duplicate_or_orphan() {
    let rounds = if long() { 100 } else { 10 };
    let (ovn, inputs) = with_topology(Ovn::start());
    let foreign = ovn.foreign();
    let with = many_routes();
    let want_with = expected(&with);
    let mut killed_mid_pass = 0;
    for round in 0..rounds {
        let text = if round % 3 == 2 {
            documents(&[ECMP])
        } else {
            with.clone()
        };
        inputs.put("routes.yaml", &text);
        let mut apply = Command::new(BIN)
            .args(["--log", "warn", "apply", "-f"])
            .arg(inputs.world())
            .arg("-f")
            .arg(inputs.routes())
            .args(["--nb", &ovn.nb_remote(), "--skip-pods"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rand_ms(0..=60)));
        let _ = apply.kill();
        let status = apply.wait().unwrap();
        killed_mid_pass += usize::from(status.code().is_none());
    }
    // Whatever state the kills left, one full apply converges with no duplicate and no
    // orphan (exactly the rows a clean apply writes), and foreign rows are untouched.
    inputs.put("routes.yaml", &with);
    apply_ok(&ovn, &inputs);
    assert!(
        ids(&ovn) == want_with,
        "duplicates or orphans after the kills"
    );
    // Deleting everything restores the database to its foreign rows only.
    inputs.put("routes.yaml", "");
    apply_ok(&ovn, &inputs);
    assert!(ovn.owned().is_empty());
    assert_foreign_unchanged(&foreign, &ovn.foreign());
    println!(
        "controller kill -9 at random points: {rounds} rounds ({killed_mid_pass} killed before exiting), 0 duplicates, 0 orphans"
    );
}
