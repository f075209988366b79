//! The incremental path's figures (what `run` does per event since issue 8), on the same
//! NB and Routes as the full-pass figures:
//! 2b. one Route edit -> its rows in the NB: `Engine::upsert_route`, then a pass over the
//!     dirty Routes' rows only (`NbReconciler::reconcile` over those Routes);
//! 2c. one pod label change moving a pod from one Route's selection to another's;
//! 3b. drift repair through a loop like `run`'s: replica change -> `nb::drift` ->
//!     scoped pass.
//! Each timing ends when the transaction's reply arrived (committed in the NB; the replica
//! shows it a moment later, measured apart) unless said otherwise.
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ovnkube_route::cluster::World;
use ovnkube_route::nb::Scope;
use ovnkube_route::nb::observed::POLICY;
use ovnkube_route::nb::reconcile::{Keep, NbIntent, NbPass, NbReconciler};
use ovnkube_route::ovsdb::ReplicaEvent;
use ovnkube_route::plan::PlanConfig;
use ovnkube_route::plan::incremental::Engine;
use ovnkube_route::plan::nb::ID_KEY;

use super::{
    connect, deletions, edits, fresh, ms, pass, pct, pod, pods_n, route, routes, routes_n,
};

/// The pass `run` makes for what the engine marked dirty.
async fn scoped(nb: &NbReconciler, e: &Engine, routes: &BTreeSet<String>) -> NbPass {
    let (desired, ips) = e.desired_nb(routes);
    nb.reconcile(
        NbIntent {
            desired: &desired,
            service_ips: &ips,
            keep: &Keep::default(),
        },
        Scope::Routes(routes),
    )
    .await
    .unwrap()
}

/// Our diff of some Routes (snapshot, their rows by the name index, diff), without writing.
fn preview_time(nb: &NbReconciler, e: &Engine, routes: &BTreeSet<String>) -> Duration {
    let t = Instant::now();
    let (desired, ips) = e.desired_nb(routes);
    let d = nb.preview(
        NbIntent {
            desired: &desired,
            service_ips: &ips,
            keep: &Keep::default(),
        },
        Scope::Routes(routes),
    );
    std::hint::black_box(d);
    t.elapsed()
}

/// Prints where the edits' time went: medians of each part, and the slowest edits whole.
fn breakdown(parts: &mut [(Duration, Duration, Duration)]) {
    parts.sort();
    let rest = |(w, p, d): (Duration, Duration, Duration)| w.saturating_sub(p + d);
    let mut diffs: Vec<Duration> = parts.iter().map(|x| x.2).collect();
    let mut rests: Vec<Duration> = parts.iter().map(|x| rest(*x)).collect();
    line(
        "    of which our diff (snapshot, rows by name, diff)",
        &mut diffs,
        "",
    );
    line(
        "    of which the rest (transaction round trip and the server's commit)",
        &mut rests,
        "",
    );
    let slowest: Vec<String> = parts
        .iter()
        .rev()
        .take(3)
        .map(|x| {
            format!(
                "{:.2} ms = planner {:.2} + diff {:.2} + server {:.2}",
                ms(x.0),
                ms(x.1),
                ms(x.2),
                ms(rest(*x))
            )
        })
        .collect();
    println!("    slowest edits: {}", slowest.join("; "));
}

fn line(what: &str, v: &mut [Duration], goal: &str) {
    v.sort();
    println!(
        "{what}: p50 {:.3} ms p99 {:.3} ms{goal}",
        ms(pct(v, 0.5)),
        ms(pct(v, 0.99))
    );
}

pub async fn bench(tmp: &Path, w: &World, cfg: &PlanConfig) {
    let t = Instant::now();
    let mut e = Engine::new(cfg.clone());
    e.replace_world(w.clone());
    e.replace_routes(&routes(routes_n()));
    e.take_dirty();
    println!(
        "2a. incremental planner built from the whole World and every Route: {:.3} s",
        t.elapsed().as_secs_f64()
    );
    let s = fresh(&tmp.join("incremental")).await;
    let nb = connect(&s).await;
    pass(&nb, &e.plan()).await;

    // 2b. Route edits: flip Route k's first rule between two destinations.
    let mut variants = vec![0usize; routes_n()];
    let (mut total, mut planner, mut visible) = (vec![], vec![], vec![]);
    // Where each edit's time goes: planner, our diff (the same diff computed once more,
    // outside the timed window), and the rest (the transaction's round trip and commit).
    let mut parts: Vec<(Duration, Duration, Duration)> = Vec::new();
    for i in 0..edits() {
        let k = (i * 37) % routes_n();
        variants[k] ^= 1;
        let t = Instant::now();
        e.upsert_route(&route(k, variants[k]));
        let d = e.take_dirty();
        let p = t.elapsed();
        planner.push(p);
        let diff = preview_time(&nb, &e, &d.nb);
        let t2 = Instant::now();
        let done = scoped(&nb, &e, &d.nb).await;
        let whole = p + t2.elapsed();
        total.push(whole);
        parts.push((whole, p, diff));
        nb.settle().await.unwrap();
        visible.push(p + t2.elapsed());
        assert_eq!(d.nb, BTreeSet::from([format!("route-{k}")]), "edit {i}");
        assert_eq!(done.changes, 2, "edit {i}: one policy out, one in");
    }
    breakdown(&mut parts);
    line(
        &format!(
            "2b. one Route edit -> NB committed, incremental, {} edits",
            edits()
        ),
        &mut total,
        " (goal p50 <= 1 ms, p99 <= 2 ms)",
    );
    line("    of which the incremental planner", &mut planner, "");
    line(
        "    same edits until the controller's own replica shows them",
        &mut visible,
        "",
    );

    // 2c. Pod label changes: pod 2i leaves app-i for app-j and comes back next time.
    let (mut total, mut visible) = (vec![], vec![]);
    for i in 0..edits() {
        // Even i moves a pod, odd i moves the same pod back.
        let from = ((i / 2) * 13) % routes_n();
        let to = (from * 7 + 3) % routes_n();
        let mut p = pod(2 * from);
        if i % 2 == 0 {
            p.labels.insert("app", format!("app-{to}"));
        }
        let t = Instant::now();
        e.apply(p);
        let d = e.take_dirty();
        let done = scoped(&nb, &e, &d.nb).await;
        total.push(t.elapsed());
        nb.settle().await.unwrap();
        visible.push(t.elapsed());
        assert!(done.changes >= 2, "label change {i}: {:?}", d.nb);
    }
    line(
        &format!(
            "2c. one pod label change -> NB committed (the pod moves between two Routes' sets), {} changes",
            edits()
        ),
        &mut total,
        " (goal p99 <= 2 ms)",
    );
    line(
        "    same changes until the controller's own replica shows them",
        &mut visible,
        "",
    );
    // The oracle: a full pass finds nothing left to do.
    nb.settle().await.unwrap();
    let p = e.plan();
    let left = nb.preview(
        NbIntent {
            desired: &p.nb,
            service_ips: &p.ovn_service_ips,
            keep: &Keep::default(),
        },
        Scope::All,
    );
    assert!(left.changes.is_empty(), "{:?}", left.changes);
    drop(nb);

    drift(&s, e).await;
}

/// 3b. A loop like `run`'s: each batch of replica changes is mapped to the Routes it
/// concerns, and only their rows are diffed.
async fn drift(s: &super::Server, e: Engine) {
    let nb = Arc::new(connect(s).await);
    let e = Arc::new(Mutex::new(e));
    let looper = {
        let (nb, e) = (nb.clone(), e.clone());
        let mut sub = nb.subscribe();
        tokio::spawn(async move {
            while let Some(ev) = sub.recv().await {
                let mut events = vec![ev];
                while let Some(more) = sub.try_recv() {
                    events.push(more);
                }
                let (routes, desired, ips) = {
                    let e = e.lock().unwrap();
                    let d = nb.drift(&events);
                    let routes: BTreeSet<String> = if d.everything {
                        e.route_names().cloned().collect()
                    } else if d.routes.is_empty() {
                        continue;
                    } else {
                        d.routes
                    };
                    let (d, i) = e.desired_nb(&routes);
                    (routes, d, i)
                };
                let _ = nb
                    .reconcile(
                        NbIntent {
                            desired: &desired,
                            service_ips: &ips,
                            keep: &Keep::default(),
                        },
                        Scope::Routes(&routes),
                    )
                    .await;
            }
        })
    };
    let db = format!("--db=unix:{}", s.sock.display());
    let (mut from_exit, mut from_spawn) = (vec![], vec![]);
    for i in 0..deletions() {
        let snap = nb.snapshot();
        let victim = snap
            .iter(POLICY)
            .nth(i * 7 % snap.len(POLICY))
            .expect("an owned policy");
        let (old, id) = (
            victim.uuid(),
            victim.external_id(ID_KEY).unwrap().to_owned(),
        );
        drop(snap);
        let mut sub = nb.subscribe();
        let watcher = {
            let nb = nb.clone();
            tokio::spawn(async move {
                loop {
                    if nb
                        .snapshot()
                        .find_by_external_id(POLICY, ID_KEY, &id)
                        .iter()
                        .any(|r| r.uuid() != old)
                    {
                        return Instant::now();
                    }
                    match sub.recv().await {
                        Some(ReplicaEvent::Changes(_) | ReplicaEvent::Resync { .. }) => {}
                        None => panic!("replica closed"),
                    }
                }
            })
        };
        let t = Instant::now();
        let out = tokio::process::Command::new("ovn-nbctl")
            .args([
                db.as_str(),
                "lr-policy-del",
                "ovn_cluster_router",
                &old.to_string(),
            ])
            .output()
            .await
            .unwrap();
        let exit = Instant::now();
        assert!(out.status.success());
        let restored = tokio::time::timeout(Duration::from_secs(10), watcher)
            .await
            .expect("policy not restored within 10 s")
            .unwrap();
        from_spawn.push(restored - t);
        from_exit.push(restored.saturating_duration_since(exit));
    }
    looper.abort();
    line(
        &format!(
            "3b. drift repair, incremental: owned policy deleted with ovn-nbctl -> restored and visible in the replica, {} deletions, from ovn-nbctl exit",
            deletions()
        ),
        &mut from_exit,
        " (goal p99 <= 5 ms)",
    );
    line("    same, from ovn-nbctl start", &mut from_spawn, "");
    let _ = pods_n();
}
