//! The binary's contract with people and scripts: messages on stderr and exit codes
//! (0 ok, 1 bad input, 2 fatal), and `crd` printing deploy/crd.yaml byte for byte.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ovnkube-route"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("NODE_NAME")
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn crd_prints_the_checked_in_crd() {
    let o = run(&["crd"]);
    assert_eq!(o.status.code(), Some(0));
    let on_disk = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/crd.yaml")).unwrap();
    assert_eq!(
        o.stdout, on_disk,
        "deploy/crd.yaml differs from `ovnkube-route crd`"
    );
}

#[test]
fn fatal_errors_exit_2_with_one_clear_line() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["plan", "-f", "/nonexistent/routes.yaml"],
            "/nonexistent/routes.yaml: cannot read",
        ),
        (
            &[
                "plan",
                "-f",
                "deploy/examples",
                "--priority-band",
                "300-200",
            ],
            "need 0 <= LOW <= HIGH",
        ),
        (
            &["plan", "-f", "deploy/examples", "--priority-band", "x-1"],
            "LOW is not a number",
        ),
        (
            &["plan", "-f", "deploy/examples", "--nb", "tcp:127.0.0.1"],
            "bad OVSDB remote",
        ),
    ];
    for (args, want) in cases {
        let o = run(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: expected {want:?} in {err}");
        let line = err.lines().find(|l| l.starts_with("error: ")).unwrap();
        // The cause is not repeated.
        assert_eq!(line.matches(want).count(), 1, "{line}");
    }
}

#[test]
fn plan_without_nb_shows_rows_and_pod_routes() {
    let o = run(&[
        "plan",
        "-f",
        "ovn-sandbox/world.yaml",
        "-f",
        "deploy/examples",
        "--cni-results",
        "/nonexistent",
    ]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("demo: Applied"), "{out}");
    assert!(
        out.contains("create Logical_Router_Policy")
            && out.contains("add Logical_Router ovn_cluster_router policies @p"),
        "{out}"
    );
    assert!(
        out.contains("route replace 172.16.10.0/24 via 10.244.1.1 dev eth1 proto 136"),
        "{out}"
    );
    let json = run(&[
        "plan",
        "-f",
        "ovn-sandbox/world.yaml",
        "-f",
        "deploy/examples",
        "-o",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("plan -o json is JSON");
    assert_eq!(v["routes"]["ecmp"]["status"], "Applied");
    assert!(v["pods"].as_array().is_some_and(|p| !p.is_empty()));
}

#[test]
fn bad_input_exits_1_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(
        &f,
        "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {name: bad}\nspec:\n  route:\n  - {dst: 10.0.0.0/33, dev: eth1}\n",
    )
    .unwrap();
    let o = run(&["plan", "-f", f.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("error: Route bad is Invalid"), "{err}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("spec.route[0].dst"), "{out}");
}

/// `run` with a deadline: a hung process is killed and reported, not waited on forever.
fn run_within(args: &[&str], secs: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovnkube-route"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("{args:?} did not return within {secs} s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// Issue 9 points 1 and 2: a FIFO and a symlink to /dev/zero in the input directory are
/// skipped by name, neither blocks nor takes memory, and the good file is still planned.
#[test]
fn fifos_devices_and_huge_files_are_skipped_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy("deploy/examples/demo.yaml", dir.path().join("demo.yaml")).unwrap();
    let fifo = dir.path().join("pipe.yaml");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.yaml")).unwrap();
    std::fs::write(dir.path().join("big.yaml"), vec![b'#'; 2048]).unwrap();
    let d = dir.path().to_str().unwrap();
    let o = run_within(&["plan", "-f", d, "--max-file-bytes", "1024"], 20);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("pipe.yaml: not a regular file: a FIFO (named pipe); skipped"),
        "{err}"
    );
    assert!(
        err.contains("zero.yaml: not a regular file: a character device; skipped"),
        "{err}"
    );
    assert!(
        err.contains("big.yaml: 2048 bytes, more than the limit of 1024"),
        "{err}"
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("ovnkube_route_demo"), "{out}");
    // Given by name, /dev/zero is refused too; the whole-input bound applies across files.
    let o = run_within(&["plan", "-f", "/dev/zero"], 20);
    assert!(stderr(&o).contains("/dev/zero: not a regular file: a character device"));
    let o = run_within(&["plan", "-f", d, "--max-input-bytes", "16"], 20);
    assert!(
        stderr(&o).contains("skipped: the input would exceed its limit of 16 bytes"),
        "{}",
        stderr(&o)
    );
}

/// Every option of the commands people run says what it does (`--help` shows a line of
/// text under it, not only `[default: ...]`).
#[test]
fn every_option_has_a_description() {
    for cmd in ["plan", "apply", "run", "explain"] {
        let o = run(&[cmd, "--help"]);
        assert_eq!(o.status.code(), Some(0));
        let help = String::from_utf8_lossy(&o.stdout).into_owned();
        let lines: Vec<&str> = help.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            let t = l.trim_start();
            if !(t.starts_with("--") || (t.starts_with('-') && t.get(2..4) == Some(", "))) {
                continue;
            }
            let next = lines.get(i + 1).map(|n| n.trim()).unwrap_or_default();
            assert!(
                !next.is_empty() && !next.starts_with('['),
                "{cmd} --help: {t} has no description:\n{help}"
            );
        }
    }
}

#[test]
fn out_of_range_flag_values_are_refused_with_a_message() {
    for (flag, value) in [
        ("--nb-probe-secs", "18446744073709551615"),
        ("--nb-probe-secs", "0"),
        ("--audit-mins", "99999999999"),
        ("--status-interval-ms", "1"),
    ] {
        let o = run(&[
            "run",
            "--source",
            "file:/nonexistent",
            "--nb",
            "unix:/nonexistent",
            flag,
            value,
        ]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag} {value}: {err}");
        assert!(err.contains(flag) && err.contains("is not in"), "{err}");
    }
}

#[test]
fn apply_without_node_refuses_to_touch_pods() {
    let o = run(&[
        "apply",
        "-f",
        "ovn-sandbox/world.yaml",
        "--nb",
        "unix:/nonexistent",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--node NAME") && err.contains("--skip-pods"),
        "{err}"
    );
}
