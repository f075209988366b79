//! The container image: `scripts/build-image.sh` builds an OCI image (umoci, no registry, no
//! engine) whose config has the Containerfile's entrypoint and command, and whose one layer
//! holds a static binary that runs on an empty base, and `kubectl-route`, a symlink to it (the
//! kubectl plugin).
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use serde_json::Value;

fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap()
}

/// The JSON array after `KEY ` in the Containerfile.
fn containerfile(key: &str) -> Vec<String> {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Containerfile")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("{key} ")))
        .unwrap();
    serde_json::from_str(&line[key.len() + 1..]).unwrap()
}

#[test]
fn the_image_builds_and_runs_its_static_binary() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/build-image.sh"
    ))
    .args(["--debug", "--out"])
    .arg(out.path())
    .status()
    .expect("scripts/build-image.sh must run (it installs umoci when missing)");
    assert!(status.success(), "the image build failed");
    let layout = out.path().join("layout");
    let index: Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest_desc = &index["manifests"][0];
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        manifest_desc["annotations"]["org.opencontainers.image.ref.name"],
        version
    );
    let manifest: Value =
        serde_json::from_slice(&blob(&layout, manifest_desc["digest"].as_str().unwrap())).unwrap();
    let config: Value = serde_json::from_slice(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        strings(&config["config"]["Entrypoint"]),
        containerfile("ENTRYPOINT")
    );
    assert_eq!(strings(&config["config"]["Cmd"]), containerfile("CMD"));
    assert_eq!(config["config"]["User"], "0:0");
    assert_eq!(
        (config["os"].as_str(), config["architecture"].as_str()),
        (Some("linux"), Some("amd64"))
    );
    // One layer, holding only the binary; it runs with no library from the host.
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    let rootfs = out.path().join("rootfs");
    std::fs::create_dir(&rootfs).unwrap();
    let tarball = out.path().join("layer.tar.gz");
    std::fs::write(
        &tarball,
        blob(&layout, layers[0]["digest"].as_str().unwrap()),
    )
    .unwrap();
    let x = Command::new("tar")
        .arg("-xzf")
        .arg(&tarball)
        .arg("-C")
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(x.success());
    let mut files: Vec<String> = std::fs::read_dir(&rootfs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["kubectl-route", "ovnkube-route"]);
    // The kubectl plugin: the binary under another name.
    assert_eq!(
        std::fs::read_link(rootfs.join("kubectl-route")).unwrap(),
        Path::new("ovnkube-route")
    );
    let plugin = Command::new("chroot")
        .arg(&rootfs)
        .args(["/kubectl-route", "--help"])
        .output()
        .unwrap();
    assert!(plugin.status.success());
    assert!(
        String::from_utf8_lossy(&plugin.stdout).contains("Usage: kubectl route"),
        "{}",
        String::from_utf8_lossy(&plugin.stdout)
    );
    let bin = rootfs.join("ovnkube-route");
    let ldd = Command::new("ldd").arg(&bin).output().unwrap();
    assert!(
        !ldd.status.success() || String::from_utf8_lossy(&ldd.stdout).contains("statically linked"),
        "dynamically linked: {}",
        String::from_utf8_lossy(&ldd.stdout)
    );
    // chroot into the layer alone: nothing from the host is there.
    let run = Command::new("chroot")
        .arg(&rootfs)
        .args(["/ovnkube-route", "crd"])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        String::from_utf8(run.stdout).unwrap(),
        ovnkube_route::api::crd_yaml()
    );
    assert!(
        out.path()
            .join(format!("ovnkube-route-{version}.oci.tar"))
            .exists()
    );
}
