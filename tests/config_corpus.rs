//! The bad-input corpus: every file in tests/corpus loads without a panic and with the
//! outcome and error text its row in tests/corpus/README.md promises.
#![allow(clippy::unwrap_used)] // test helpers: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ovnkube_route::config::{Loaded, load_bytes, load_path};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

#[derive(Debug)]
enum Outcome {
    LoadError,
    Loads(usize),
    Partial(usize),
}

struct Row {
    outcome: Outcome,
    must_contain: Vec<String>,
}

/// `code spans` of a markdown cell.
fn spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_string())
        .collect()
}

fn expectations() -> BTreeMap<String, Row> {
    let readme = std::fs::read_to_string(corpus_dir().join("README.md")).unwrap();
    let mut rows = BTreeMap::new();
    for line in readme.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 4, "malformed README row: {line}");
        let file = spans(cells[0]).remove(0);
        let expected = cells[2];
        let outcome = if expected == "load error" {
            Outcome::LoadError
        } else if let Some(n) = expected.strip_prefix("loads ") {
            Outcome::Loads(n.parse().unwrap())
        } else if let Some(n) = expected.strip_prefix("partial ") {
            Outcome::Partial(n.parse().unwrap())
        } else {
            panic!("unknown outcome {expected:?} for {file}");
        };
        let must_contain = spans(cells[3]);
        assert!(
            !matches!(outcome, Outcome::LoadError | Outcome::Partial(_))
                || !must_contain.is_empty(),
            "{file}: an error outcome must say what the message contains"
        );
        assert!(
            rows.insert(
                file.clone(),
                Row {
                    outcome,
                    must_contain
                }
            )
            .is_none(),
            "{file} twice"
        );
    }
    rows
}

/// Loads one corpus file as `plan -f FILE` does (bounded, regular files only), on its own
/// thread with a deadline: a loader that hangs or panics fails the test by name.
fn load_one(file: &str) -> Loaded {
    let path = corpus_dir().join(file);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = std::panic::catch_unwind(|| load_path(&path).map_err(Box::new));
        let _ = tx.send(r);
    });
    match rx.recv_timeout(std::time::Duration::from_secs(20)) {
        Ok(Ok(Ok(l))) => l,
        Ok(Ok(Err(e))) => Loaded {
            errors: vec![*e],
            ..Loaded::default()
        },
        Ok(Err(_)) => panic!("{file}: the loader panicked"),
        Err(_) => panic!("{file}: the loader did not return within 20 s"),
    }
}

/// Peak resident memory of this test process so far.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Corpus entries that are not regular files (symlinks to devices): never read.
fn is_regular(file: &str) -> bool {
    std::fs::metadata(corpus_dir().join(file)).is_ok_and(|m| m.is_file())
}

#[test]
fn every_corpus_file_has_its_promised_outcome() {
    let rows = expectations();
    let files: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| !e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "README.md")
        .collect();
    assert!(
        files.len() >= 80,
        "the corpus must hold at least 80 files, has {}",
        files.len()
    );
    let mut failures = Vec::new();
    for file in &files {
        let Some(row) = rows.get(file) else {
            failures.push(format!("{file}: no row in tests/corpus/README.md"));
            continue;
        };
        let loaded = load_one(file);
        let errors: Vec<String> = loaded.errors.iter().map(ToString::to_string).collect();
        let text = errors.join("\n");
        let routes = loaded.documents.routes.len();
        match row.outcome {
            Outcome::LoadError => {
                if errors.is_empty() || !loaded.documents.is_empty() {
                    failures.push(format!(
                        "{file}: expected a load error and nothing loaded, got {routes} routes, errors {errors:?}"
                    ));
                }
            }
            Outcome::Loads(n) => {
                if !errors.is_empty() || routes != n {
                    failures.push(format!(
                        "{file}: expected {n} routes and no error, got {routes}, {errors:?}"
                    ));
                }
            }
            Outcome::Partial(n) => {
                if errors.is_empty() || routes != n {
                    failures.push(format!(
                        "{file}: expected {n} routes and errors, got {routes}, {errors:?}"
                    ));
                }
            }
        }
        for e in &errors {
            if !e.contains(file.as_str()) {
                failures.push(format!("{file}: error does not name the file: {e}"));
            }
        }
        // A clear error is a short one: no message echoes a huge value, and neither do the
        // problems validation finds in what loaded.
        for e in &errors {
            if e.len() > 2048 {
                failures.push(format!("{file}: a {} byte error message", e.len()));
            }
        }
        for r in &loaded.documents.routes {
            for p in ovnkube_route::api::validate(r).problems {
                if p.message.len() > 1024 {
                    failures.push(format!("{file}: a {} byte problem", p.message.len()));
                }
            }
        }
        for needle in &row.must_contain {
            if !text.contains(needle.as_str()) {
                failures.push(format!("{file}: error lacks {needle:?}; errors: {text}"));
            }
        }
    }
    // Bounded memory: the whole corpus (a symlink to /dev/zero and a YAML bomb included)
    // never took this process past 512 MiB.
    let peak = peak_rss_kib();
    assert!(
        peak < 512 * 1024,
        "peak RSS {peak} KiB while loading the corpus"
    );
    for file in rows.keys() {
        if !files.contains(file) {
            failures.push(format!("{file}: listed in README.md but missing"));
        }
    }
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}

/// The whole corpus as one directory: the bad files do not stop the good ones.
#[test]
fn the_corpus_directory_loads_the_good_and_reports_the_bad() {
    let rows = expectations();
    let loaded = load_path(&corpus_dir()).unwrap();
    let want_routes: usize = rows
        .values()
        .map(|r| match r.outcome {
            Outcome::Loads(n) | Outcome::Partial(n) => n,
            Outcome::LoadError => 0,
        })
        .sum();
    // Short-form files in one directory still make one Route each (named after the file).
    assert_eq!(loaded.documents.routes.len(), want_routes);
    let bad_files = rows
        .values()
        .filter(|r| !matches!(r.outcome, Outcome::Loads(_)))
        .count();
    assert!(
        loaded.errors.len() >= bad_files,
        "{} errors for {bad_files} bad files",
        loaded.errors.len()
    );
    // Every corpus file is .yaml or .json; README.md and seed/ are not picked up, and
    // entries that are not regular files are reported, not read.
    let regular = rows.keys().filter(|f| is_regular(f)).count();
    assert_eq!(loaded.files.len(), regular);
    // Errors carry the full path and Route names when known.
    let e = loaded
        .errors
        .iter()
        .find(|e| e.to_string().contains("unknown-field-spec.yaml"))
        .unwrap();
    assert_eq!(e.route_name(), Some("unknown-field-spec"));
    assert!(e.location().file.starts_with(corpus_dir()));
}

/// A 10,000-rule Route (generated, not checked in) loads completely; validation, not the
/// loader, decides what is wrong with its rules.
#[test]
fn a_ten_thousand_rule_route_loads() {
    let mut doc = String::from(
        "apiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata:\n  name: big\nspec:\n  route:\n",
    );
    for i in 0..10_000u32 {
        let dev = if i % 2 == 0 { "eth0" } else { "eth1" };
        doc.push_str(&format!(
            "    - {{dst: \"10.{}.{}.0/24\", dev: {dev}}}\n",
            i / 256,
            i % 256
        ));
    }
    let loaded = load_bytes(Path::new("big.yaml"), doc.as_bytes());
    assert!(loaded.errors.is_empty(), "{:?}", loaded.errors);
    let route = &loaded.documents.routes[0];
    assert_eq!(route.spec.route.len(), 10_000);
    assert_eq!(route.spec.route[9_999].dst, "10.39.15.0/24");
    // The same as a short-form JSON list.
    let rules: Vec<String> = (0..10_000u32)
        .map(|i| {
            format!(
                r#"{{"route": "10.{}.{}.0/24", "dev": "eth1"}}"#,
                i / 256,
                i % 256
            )
        })
        .collect();
    let json = format!("[{}]", rules.join(","));
    let loaded = load_bytes(Path::new("big-rules.json"), json.as_bytes());
    assert!(loaded.errors.is_empty());
    assert_eq!(loaded.documents.routes[0].spec.route.len(), 10_000);
}

/// Arbitrary bytes and arbitrary YAML-ish text never panic the loader.
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), json in any::<bool>()) {
            let name = if json { "x.json" } else { "x.yaml" };
            let _ = load_bytes(Path::new(name), &bytes);
        }

        #[test]
        fn yamlish_text_never_panics(parts in prop::collection::vec(
            prop::sample::select(vec![
                "apiVersion: k8s.ovn.org/v1\n", "kind: Route\n", "kind: List\n", "kind: Pod\n",
                "apiVersion: v1\n", "metadata:\n", "  name: a\n", "spec:\n", "  route:\n",
                "    - dst: 1.2.3.0/24\n", "      dev: eth1\n", "items:\n", "- route: x\n",
                "  dev: eth0\n", "- svc: a/b\n", "---\n", "...\n", "  priority: 1e400\n",
                "  ovn: {nextHops: [a]}\n", "- &a [*a]\n", "- {kind: Route}\n", ": :\n", "[\n",
                "  feature_gate: {a: 1}\n", "- null\n", "? [a]\n: b\n", "%YAML 1.2\n",
            ]), 0..24)) {
            let text: String = parts.concat();
            let loaded = load_bytes(Path::new("fuzz.yaml"), text.as_bytes());
            for e in &loaded.errors {
                prop_assert!(e.to_string().contains("fuzz.yaml"), "{}", e);
            }
        }
    }
}

/// A FIFO in the input (it hung `plan`, `apply` and `run`): loading returns at once, names
/// it, and still loads the good file beside it.
#[test]
fn a_fifo_beside_a_good_file_is_skipped_by_name() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        corpus_dir().join("negative-priority.yaml"),
        dir.path().join("good.yaml"),
    )
    .unwrap();
    let fifo = dir.path().join("pipe.yaml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let path = dir.path().to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(load_path(&path).unwrap());
    });
    let loaded = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading a directory with a FIFO hung");
    assert_eq!(loaded.documents.routes.len(), 1);
    assert_eq!(loaded.errors.len(), 1);
    assert!(
        loaded.errors[0]
            .to_string()
            .ends_with("pipe.yaml: not a regular file: a FIFO (named pipe); skipped")
    );
}
