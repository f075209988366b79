//! The file source's per-file reading: only what changed is read, the merge finds what a
//! whole load finds, and unreadable input keeps what it held.
use std::collections::BTreeSet;
use std::path::PathBuf;

use super::*;
use crate::controller::inputs::Inputs;

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n";

fn pod(name: &str, app: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: default, labels: {{app: {app}}}}}\nspec: {{nodeName: n1, containers: []}}\n"
    )
}

fn route(name: &str, dst: &str) -> String {
    format!(
        "---\napiVersion: k8s.ovn.org/v1\nkind: Route\nmetadata: {{name: {name}}}\nspec:\n  route: [{{dst: {dst}, dev: eth1}}]\n"
    )
}

struct Dir {
    dir: tempfile::TempDir,
    decoded: Decoded,
    inputs: Inputs,
}

impl Dir {
    fn new(limits: Limits) -> Dir {
        Dir {
            dir: tempfile::tempdir().expect("tempdir"),
            decoded: Decoded::new(limits),
            inputs: Inputs::default(),
        }
    }
    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }
    /// Writes a file as editors do (a new file renamed into place).
    fn put(&self, f: &str, text: &str) {
        let tmp = self.dir.path().join(format!(".{f}.tmp"));
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, self.path(f)).expect("rename");
    }
    /// Reloads and applies the update to `inputs`, as the loop would; whether there was one.
    fn reload(&mut self) -> bool {
        let u = self
            .decoded
            .reload(&[self.dir.path().to_path_buf()], &BTreeSet::new());
        let some = u.is_some();
        self.inputs.apply_all(u);
        some
    }
    fn pods(&self) -> Vec<(String, String)> {
        self.inputs
            .world()
            .pods()
            .map(|p| {
                (
                    p.name.clone(),
                    p.labels.get("app").unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }
    fn routes(&self) -> Vec<String> {
        self.inputs
            .routes()
            .iter()
            .map(|r| r.metadata.name.clone().unwrap_or_default())
            .collect()
    }
    fn errors(&self) -> Vec<String> {
        self.inputs.errors.iter().map(ToString::to_string).collect()
    }
}

fn p(name: &str, app: &str) -> (String, String) {
    (name.to_owned(), app.to_owned())
}

#[test]
fn only_files_that_changed_are_read_and_their_changes_handed_over() {
    let mut d = Dir::new(Limits::default());
    d.put(
        "a.yaml",
        &format!("{NS}{}{}", pod("p1", "web"), pod("p2", "web")),
    );
    d.put(
        "b.yaml",
        &format!("{}{}", pod("p3", "db"), route("r1", "10.0.0.0/8")),
    );
    assert!(d.reload());
    assert_eq!(d.decoded.reads(), 2);
    assert_eq!(d.pods(), [p("p1", "web"), p("p2", "web"), p("p3", "db")]);
    assert_eq!(d.routes(), ["r1"]);
    // Nothing changed: nothing read, nothing handed over.
    assert!(!d.reload());
    assert_eq!(d.decoded.reads(), 2);
    // One pod relabelled in one file: that file alone is read.
    d.put(
        "a.yaml",
        &format!("{NS}{}{}", pod("p1", "web"), pod("p2", "db")),
    );
    assert!(d.reload());
    assert_eq!(d.decoded.reads(), 3);
    assert_eq!(d.pods(), [p("p1", "web"), p("p2", "db"), p("p3", "db")]);
    // A file removed from the directory: what it held is gone.
    std::fs::remove_file(d.path("b.yaml")).expect("rm");
    assert!(d.reload());
    assert_eq!(d.pods(), [p("p1", "web"), p("p2", "db")]);
    assert!(d.routes().is_empty() && d.errors().is_empty());
}

#[test]
fn a_route_in_two_files_is_used_nowhere_and_a_move_is_one_change() {
    let mut d = Dir::new(Limits::default());
    d.put("a.yaml", &route("r1", "10.0.0.0/8"));
    d.put("b.yaml", &route("r2", "10.1.0.0/16"));
    d.reload();
    assert_eq!(d.routes(), ["r1", "r2"]);
    // r1 also defined in b: neither definition is used; the error names both places.
    d.put(
        "b.yaml",
        &format!(
            "{}{}",
            route("r2", "10.1.0.0/16"),
            route("r1", "10.9.0.0/16")
        ),
    );
    let u = d
        .decoded
        .reload(&[d.dir.path().to_path_buf()], &BTreeSet::new());
    let text = format!("{u:?}");
    assert!(text.contains("RouteDeleted(\"r1\")"), "{text}");
    d.inputs.apply_all(u);
    assert_eq!(d.routes(), ["r2"]);
    let errs = d.errors();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("duplicate Route \"r1\"") && errs[0].contains("a.yaml"),
        "{errs:?}"
    );
    assert_eq!(d.inputs.errors[0].route_name(), Some("r1"));
    // Removed from a: b's definition is the one.
    d.put("a.yaml", "");
    d.reload();
    assert_eq!(d.routes(), ["r1", "r2"]);
    assert!(d.errors().is_empty());
    assert_eq!(
        d.inputs.route("r1").expect("r1").spec.route[0].dst,
        "10.9.0.0/16"
    );
    // Moved back to a in one step: one batch, never absent in between.
    d.put("a.yaml", &route("r1", "10.9.0.0/16"));
    d.put("b.yaml", &route("r2", "10.1.0.0/16"));
    let u = d
        .decoded
        .reload(&[d.dir.path().to_path_buf()], &BTreeSet::new());
    assert!(
        u.is_none(),
        "the same Route in another file is no change: {u:?}"
    );
}

#[test]
fn world_duplicates_keep_the_first_and_the_second_takes_over() {
    let mut d = Dir::new(Limits::default());
    d.put("a.yaml", &pod("p1", "web"));
    d.put("b.yaml", &pod("p1", "db"));
    d.reload();
    assert_eq!(d.pods(), [p("p1", "web")]);
    assert!(
        d.errors()[0].contains("duplicate Pod \"default/p1\""),
        "{:?}",
        d.errors()
    );
    std::fs::remove_file(d.path("a.yaml")).expect("rm");
    d.reload();
    assert_eq!(d.pods(), [p("p1", "db")]);
    assert!(d.errors().is_empty());
}

#[test]
fn a_file_over_its_limit_keeps_what_it_held_and_says_which_flag_to_raise() {
    let mut d = Dir::new(Limits {
        max_file_bytes: 600,
        max_input_bytes: 10_000,
    });
    d.put(
        "a.yaml",
        &format!("{}{}", pod("p1", "web"), route("r1", "10.0.0.0/8")),
    );
    d.reload();
    assert_eq!(d.pods(), [p("p1", "web")]);
    // Grows over the limit (with a relabel inside): nothing of it is read, nothing dropped.
    let big = format!(
        "{}{}{}",
        pod("p1", "db"),
        route("r1", "10.0.0.0/8"),
        "#".repeat(700)
    );
    d.put("a.yaml", &big);
    d.reload();
    assert_eq!(d.pods(), [p("p1", "web")], "the last read stays");
    assert_eq!(d.routes(), ["r1"]);
    let errs = d.errors();
    assert!(errs[0].contains("raise --max-file-bytes"), "{errs:?}");
    // Back within the limit: read, and its content applies.
    d.put(
        "a.yaml",
        &format!("{}{}", pod("p1", "db"), route("r1", "10.0.0.0/8")),
    );
    d.reload();
    assert_eq!(d.pods(), [p("p1", "db")]);
    assert!(d.errors().is_empty());
}

#[test]
fn the_whole_input_limit_is_counted_in_load_order() {
    let mut d = Dir::new(Limits {
        max_file_bytes: 10_000,
        max_input_bytes: 200,
    });
    d.put("a.yaml", &pod("p1", "web"));
    d.put("b.yaml", &pod("p2", "web"));
    d.reload();
    // Together they exceed the whole-input limit: b (second in load order) is refused,
    // exactly as `plan` and `apply` refuse it.
    let errs = d.errors();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].contains("b.yaml") && errs[0].contains("raise --max-input-bytes"),
        "{errs:?}"
    );
    let whole = crate::config::load_paths_with(&[d.dir.path().to_path_buf()], &d.decoded.limits)
        .expect("load");
    assert_eq!(whole.errors.len(), 1);
    assert_eq!(whole.errors[0].to_string(), errs[0]);
    assert_eq!(d.pods(), [p("p1", "web")]);
}

#[test]
fn a_document_that_fails_keeps_the_objects_it_may_have_held() {
    let mut d = Dir::new(Limits::default());
    d.put(
        "a.yaml",
        &format!(
            "{}{}{}",
            pod("p1", "web"),
            pod("p2", "web"),
            route("r1", "10.0.0.0/8")
        ),
    );
    d.reload();
    // p2's document breaks (its kind is unknown now) while p1 changes: p1's change applies,
    // p2 stays as it was, and so does the Route whose document is intact.
    let broken = format!(
        "{}---\napiVersion: v1\nkind: Podd\nmetadata: {{name: p2}}\n{}",
        pod("p1", "db"),
        route("r1", "10.0.0.0/8")
    );
    d.put("a.yaml", &broken);
    d.reload();
    assert_eq!(d.pods(), [p("p1", "db"), p("p2", "web")]);
    assert_eq!(d.errors().len(), 1);
    // A syntax error: the whole file is unreadable; everything it held stays.
    d.put("a.yaml", "apiVersion: v1\nkind: [unclosed\n");
    d.reload();
    assert_eq!(d.pods(), [p("p1", "db"), p("p2", "web")]);
    assert_eq!(d.routes(), ["r1"]);
    // Fixed, without p2: p2 goes now, because the file reads cleanly.
    d.put(
        "a.yaml",
        &format!("{}{}", pod("p1", "db"), route("r1", "10.0.0.0/8")),
    );
    d.reload();
    assert_eq!(d.pods(), [p("p1", "db")]);
    assert!(d.errors().is_empty());
}

#[test]
fn a_file_given_by_name_that_is_missing_keeps_what_it_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let world = dir.path().join("world.yaml");
    std::fs::write(&world, pod("p1", "web")).expect("write");
    let mut d = Decoded::new(Limits::default());
    let mut inputs = Inputs::default();
    inputs.apply_all(d.reload(std::slice::from_ref(&world), &BTreeSet::new()));
    assert_eq!(inputs.world().pod_count(), 1);
    std::fs::remove_file(&world).expect("rm");
    inputs.apply_all(d.reload(std::slice::from_ref(&world), &BTreeSet::new()));
    assert_eq!(
        inputs.world().pod_count(),
        1,
        "an unreadable path keeps its pods"
    );
    assert!(inputs.errors[0].to_string().contains("cannot read"));
}

#[test]
fn the_world_is_unknown_until_every_file_read_once_without_hiding_errors() {
    let mut d = Dir::new(Limits::default());
    // Broken from the start: what it holds was never seen.
    d.put("a.yaml", "apiVersion: v1\nkind: [unclosed\n");
    d.put("b.yaml", &route("r1", "10.0.0.0/8"));
    d.reload();
    assert!(d.inputs.world_unknown, "a file never read may hold any pod");
    // Read: known.
    d.put("a.yaml", &pod("p1", "web"));
    d.reload();
    assert!(!d.inputs.world_unknown);
    assert_eq!(d.pods(), [p("p1", "web")]);
    // Broken again: its last read stands in for it, so the world stays known.
    d.put("a.yaml", "apiVersion: v1\nkind: [unclosed\n");
    d.reload();
    assert!(!d.inputs.world_unknown);
    assert_eq!(d.pods(), [p("p1", "web")]);
    // A new file whose pod does not decode: never seen, unknown.
    d.put("c.yaml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p9, namespace: default}\nspec: {nodeName: [1]}\n");
    d.reload();
    assert!(d.inputs.world_unknown, "{:?}", d.errors());
    // A Route-level error hides no pod.
    std::fs::remove_file(d.path("c.yaml")).expect("rm");
    d.put("a.yaml", &pod("p1", "web"));
    d.put("b.yaml", &route("r1", "10.0.0.0/33"));
    d.reload();
    assert!(!d.inputs.world_unknown, "{:?}", d.errors());
}

#[test]
fn a_fifo_is_reported_and_hides_nothing() {
    let mut d = Dir::new(Limits::default());
    d.put("a.yaml", &pod("p1", "web"));
    nix::unistd::mkfifo(&d.path("p.yaml"), nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
    d.reload();
    assert_eq!(d.pods(), [p("p1", "web")]);
    assert!(d.errors()[0].contains("FIFO"), "{:?}", d.errors());
    assert!(!d.inputs.world_unknown, "nothing is ever read from a FIFO");
}
