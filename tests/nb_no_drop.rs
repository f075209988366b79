//! Unreadable input never tears down what it held, against a real NB: when the world file
//! is refused (over `--max-file-bytes`, not YAML) or one pod's document does not decode,
//! neither `apply` nor `run --source file:` takes a pod out of an address set or a port
//! group, or removes any row. `run` keeps the last read of a file that was read once;
//! `apply` (and `run` before the file ever read) does not know which pods it held, so every
//! Route with rows keeps them as they are. Once the file reads again, changes apply.
//!
//! Also here: `run` reads only the files that changed (its debug log names every file it
//! reads).
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use fixture::*;

const ENFORCE_SET: &str = "ovnkube_route_enforce_v4";
const CLIENT_A: &str = "10.244.1.4";

fn world() -> String {
    world_yaml(&[NGINX])
}

/// The world with client-a's labels of the wrong type: that one Pod does not decode.
fn world_with_client_a_undecodable() -> String {
    let w = world();
    let broken = w.replace("    app: client-a\n", "    app: [client-a]\n");
    assert_ne!(w, broken, "fixture: client-a's labels not found");
    broken
}

/// The world without client-a.
fn world_without_client_a() -> String {
    let world = world();
    let w: Vec<&str> = world
        .split("---\n")
        .filter(|d| !d.contains("name: client-a\n"))
        .collect();
    w.join("---\n")
}

/// A world over `limit` bytes in which client-a is gone (were it read, client-a would
/// leave every set).
fn oversized_world(limit: usize) -> String {
    let mut w = world_without_client_a();
    while w.len() <= limit {
        w.push_str("# padding past --max-file-bytes\n");
    }
    w
}

/// `apply_nb` with more flags.
fn apply_with(ovn: &Ovn, inputs: &Inputs, extra: &[&str]) -> Run {
    let (world, routes) = (inputs.world(), inputs.routes());
    let nb = ovn.nb_remote();
    let mut args = vec![
        "apply",
        "-f",
        world.to_str().unwrap(),
        "-f",
        routes.to_str().unwrap(),
        "--nb",
        &nb,
        "--skip-pods",
    ];
    args.extend_from_slice(extra);
    ovnkube(&args)
}

/// A `--max-file-bytes` that reads every file of the fixture as it is.
fn limit() -> usize {
    let w = world().len();
    assert!(w > 2 * EXTRA.len(), "fixture: world too small ({w} bytes)");
    w + 64
}

fn enforce_set(ovn: &Ovn) -> String {
    address_set(ovn, ENFORCE_SET)
}

#[test]
fn apply_with_the_world_over_its_limit_keeps_every_selection() {
    let (ovn, inputs, foreign, owned) = programmed();
    assert_eq!(enforce_set(&ovn), CLIENT_A);
    inputs.set_world(&oversized_world(limit()));
    inputs.put("extra.yaml", EXTRA);
    let r = apply_with(&ovn, &inputs, &["--max-file-bytes", &limit().to_string()]);
    assert_no_panic(&r);
    assert_eq!(r.code, 1, "a refused file fails the command:\n{r}");
    assert!(
        r.stderr.contains("world.yaml") && r.stderr.contains("raise --max-file-bytes"),
        "the error names the file and the flag to raise:\n{r}"
    );
    assert!(
        r.stdout
            .contains("enforce: kept as programmed (the pods it selects are unknown"),
        "{r}"
    );
    assert_kept(&ovn, &owned, &r);
    assert_eq!(enforce_set(&ovn), CLIENT_A, "{r}");
    // A Route without rows is written: that removes nothing.
    assert_extra_applied(&ovn, &r);
    assert_foreign_unchanged(&foreign, &ovn.foreign());
    // Read again (the flag raised): the world as it is now applies, client-a leaves.
    let r = apply_with(&ovn, &inputs, &["--max-file-bytes", "10000000"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(enforce_set(&ovn), "", "{r}");
}

#[test]
fn apply_with_the_world_not_yaml_keeps_every_selection() {
    let (ovn, inputs, foreign, owned) = programmed();
    inputs.set_world(&format!("{}\nkind: [unclosed\n", world_without_client_a()));
    let r = apply_nb(&ovn, &inputs);
    assert_no_panic(&r);
    assert_eq!(r.code, 1, "{r}");
    assert!(r.stderr.contains("world.yaml"), "{r}");
    assert_kept(&ovn, &owned, &r);
    assert_eq!(enforce_set(&ovn), CLIENT_A, "{r}");
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

#[test]
fn apply_with_one_pod_undecodable_keeps_its_membership() {
    let (ovn, inputs, foreign, owned) = programmed();
    inputs.set_world(&world_with_client_a_undecodable());
    let r = apply_nb(&ovn, &inputs);
    assert_no_panic(&r);
    assert_eq!(r.code, 1, "{r}");
    assert!(
        r.stderr.contains("client-a"),
        "the error names the pod:\n{r}"
    );
    assert_kept(&ovn, &owned, &r);
    assert_eq!(enforce_set(&ovn), CLIENT_A, "{r}");
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

/// Waits until `run` has handled every input change made before: writes a new Route
/// (`mark<n>`, whose rows a pass writes whatever else is held) and waits for its policy;
/// files are read in the order they changed.
fn settle(ovn: &Ovn, run: &mut Spawned, inputs: &Inputs, n: u8) {
    let dst = format!("172.16.{}.0/24", 100 + n);
    inputs.put(
        &format!("mark{n}.yaml"),
        &EXTRA
            .replace("name: extra", &format!("name: mark{n}"))
            .replace("172.16.40.0/24", &dst),
    );
    poll(20, "run handled the change", || {
        run.assert_alive();
        if matches(ovn).iter().any(|m| m.contains(&dst)) {
            Ok(())
        } else {
            Err(run.log())
        }
    });
}

#[test]
fn run_keeps_what_an_unreadable_world_file_held() {
    let (ovn, inputs, foreign) = setup();
    inputs.put("routes.yaml", &documents(&[ECMP, ENFORCE, MULTI]));
    let limit = limit().to_string();
    let mut run = spawn_run(&ovn, &inputs, &["--skip-pods", "--max-file-bytes", &limit]);
    poll(20, "initial programming", || {
        run.assert_alive();
        let n = ovn.owned_policies().len();
        if n == 3 && enforce_set(&ovn) == CLIENT_A {
            Ok(())
        } else {
            Err(n)
        }
    });
    let owned = ovn.owned();
    let no_run = Run {
        code: 0,
        stdout: String::new(),
        stderr: run.log(),
    };

    // Over the limit (and without client-a, were it read): the last read stands.
    inputs.set_world(&oversized_world(limit.parse().unwrap()));
    settle(&ovn, &mut run, &inputs, 1);
    assert!(
        run.log().contains("raise --max-file-bytes"),
        "{}",
        run.log()
    );
    assert_kept(&ovn, &owned, &no_run);
    assert_eq!(enforce_set(&ovn), CLIENT_A, "{}", run.log());

    // Readable, but client-a's document does not decode: client-a stays as last read.
    inputs.set_world(&world_with_client_a_undecodable());
    settle(&ovn, &mut run, &inputs, 2);
    assert_kept(&ovn, &owned, &no_run);
    assert_eq!(enforce_set(&ovn), CLIENT_A, "{}", run.log());

    // Read cleanly without client-a: now it leaves.
    inputs.set_world(&world_without_client_a());
    poll(20, "client-a removed once the world reads", || {
        run.assert_alive();
        let s = enforce_set(&ovn);
        if s.is_empty() { Ok(()) } else { Err(s) }
    });
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

#[test]
fn run_started_on_an_unreadable_world_keeps_what_is_programmed() {
    let (ovn, inputs, foreign, owned) = programmed();
    let limit = limit();
    inputs.set_world(&oversized_world(limit));
    let mut run = spawn_run(
        &ovn,
        &inputs,
        &["--skip-pods", "--max-file-bytes", &limit.to_string()],
    );
    // Which pods the world holds was never known: every Route with rows keeps them; a new
    // Route is written.
    settle(&ovn, &mut run, &inputs, 1);
    let no_run = Run {
        code: 0,
        stdout: String::new(),
        stderr: run.log(),
    };
    assert_kept(&ovn, &owned, &no_run);
    assert_eq!(enforce_set(&ovn), CLIENT_A, "{}", run.log());
    // A pod document that does not decode in a world never read is unknown too.
    inputs.set_world(&world_with_client_a_undecodable());
    settle(&ovn, &mut run, &inputs, 2);
    assert_kept(&ovn, &owned, &no_run);
    assert_eq!(enforce_set(&ovn), CLIENT_A, "{}", run.log());
    // Read: the world as it is applies.
    inputs.set_world(&world_without_client_a());
    poll(20, "client-a removed once the world reads", || {
        run.assert_alive();
        let s = enforce_set(&ovn);
        if s.is_empty() { Ok(()) } else { Err(s) }
    });
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}

/// Input files `run` read, by file name, from its debug log.
fn reads(log: &str, file: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("input file read") && l.contains(file))
        .count()
}

#[test]
fn run_reads_only_the_file_that_changed() {
    let (ovn, inputs, _) = setup();
    inputs.put("routes.yaml", &documents(&[ECMP, ENFORCE]));
    let mut run = spawn_run(
        &ovn,
        &inputs,
        &[
            "--skip-pods",
            "--log",
            "info,ovnkube_route::controller::decoded=debug",
        ],
    );
    poll(20, "initial programming", || {
        run.assert_alive();
        let n = ovn.owned_policies().len();
        if n == 1 { Ok(()) } else { Err(n) }
    });
    let log = run.log();
    assert_eq!(reads(&log, "world.yaml"), 1, "{log}");
    assert_eq!(reads(&log, "routes.yaml"), 1, "{log}");
    // One Route file added, then one edited: each read once, the world never again.
    settle(&ovn, &mut run, &inputs, 1);
    inputs.put("routes.yaml", &documents(&[ECMP]));
    poll(20, "enforce removed", || {
        run.assert_alive();
        let s = enforce_set(&ovn);
        if s.is_empty() { Ok(()) } else { Err(s) }
    });
    let log = run.log();
    assert_eq!(reads(&log, "mark1.yaml"), 1, "{log}");
    assert_eq!(reads(&log, "routes.yaml"), 2, "{log}");
    assert_eq!(
        reads(&log, "world.yaml"),
        1,
        "the world file was read again:\n{log}"
    );
}
