//! `run` with hostile input files (issue 9 points 1 and 2): a FIFO and a symlink to
//! /dev/zero dropped into the watched directory are skipped by name; the loop keeps
//! repairing drift and applying later edits; nothing programmed is removed; memory stays
//! bounded.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use fixture::*;

const OWNED: &str = "external_ids:\"k8s.ovn.org/owner-controller\"=ovnkube-route";

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

#[test]
fn run_skips_fifos_and_devices_and_keeps_repairing() {
    let (ovn, inputs) = with_topology(Ovn::start());
    let foreign = ovn.foreign();
    inputs.put("ecmp.yaml", ECMP);
    let mut run = spawn_run(&ovn, &inputs, &["--skip-pods"]);
    poll(15, "initial programming", || {
        run.assert_alive();
        let m = matches(&ovn);
        if m == [ECMP_MATCH] { Ok(()) } else { Err(m) }
    });
    let programmed = ovn.owned();

    // The two inputs that hung the loop or took gigabytes.
    let fifo = inputs.routes().join("pipe.yaml");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::os::unix::fs::symlink("/dev/zero", inputs.routes().join("zero.yaml")).unwrap();
    poll(10, "both reported by name", || {
        run.assert_alive();
        let log = run.log();
        if log.contains("pipe.yaml: not a regular file: a FIFO")
            && log.contains("zero.yaml: not a regular file: a character device")
        {
            Ok(())
        } else {
            Err(log.lines().rev().take(5).collect::<Vec<_>>().join("\n"))
        }
    });

    // The loop still repairs drift (the NB monitor path) ...
    let uuid = ovn.nbctl(&[
        "--bare",
        "--columns=_uuid",
        "find",
        "Logical_Router_Policy",
        OWNED,
    ]);
    ovn.nbctl(&[
        "remove",
        "Logical_Router",
        "ovn_cluster_router",
        "policies",
        &uuid,
    ]);
    poll(10, "deleted policy restored", || {
        run.assert_alive();
        let m = matches(&ovn);
        if m == [ECMP_MATCH] { Ok(()) } else { Err(m) }
    });
    // ... and applies a later edit, while the unreadable files keep everything else.
    inputs.put("extra.yaml", EXTRA);
    poll(10, "later edit applied", || {
        run.assert_alive();
        let m = matches(&ovn);
        if m.len() == 2 { Ok(()) } else { Err(m) }
    });
    let now = ovn.owned();
    for (table, rows) in &programmed {
        for row in rows {
            assert!(now[table].contains(row), "{table} row removed: {row}");
        }
    }
    let rss = rss_kib(run.child.id());
    assert!(
        rss < 512 * 1024,
        "RSS {rss} KiB after /dev/zero in the input"
    );
    std::fs::remove_file(&fifo).unwrap();
    assert_foreign_unchanged(&foreign, &ovn.foreign());
}
