//! Root tests: netns discovery from a CNI cache full of noise, the netns-dir and /proc
//! fallbacks, then programming through the discovered paths.
mod netlink_support;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use netlink_support::*;
use ovnkube_route::netlink::{
    DiscoveryConfig, NetnsSource, PodRouteReconciler, ReconcilerConfig, discover,
};

fn lo_file(uid: &str, name: &str, sandbox: &str, if_name: &str) -> String {
    format!(
        r#"{{"kind":"cniCacheV1","containerId":"c","config":"e30=","ifName":"{if_name}",
        "networkName":"cni-loopback","cniArgs":[["K8S_POD_NAMESPACE","default"],
        ["K8S_POD_NAME","{name}"],["K8S_POD_INFRA_CONTAINER_ID","c"],["K8S_POD_UID","{uid}"],
        ["IgnoreUnknown","1"]],"capabilityArgs":{{}},
        "result":{{"cniVersion":"0.3.1","dns":{{}},"interfaces":[{{"mac":"00:00:00:00:00:00",
        "name":"lo","sandbox":"{sandbox}"}}],"ips":[{{"address":"127.0.0.1/8","interface":0}}]}}}}"#
    )
}

fn write(path: &Path, s: &str) {
    fs::write(path, s).expect("write test file");
}

#[tokio::test]
async fn discovery_tolerates_garbage_and_uses_fallbacks() {
    let mut net = TestNet::new("disc");
    let pods = net.add_pods(3, true);
    let (a, c, d) = (&pods[0], &pods[1], &pods[2]);
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("results");
    let netns_dir = tmp.path().join("netns");
    let proc_root = tmp.path().join("proc");
    for dir in [&cache, &netns_dir, &proc_root] {
        fs::create_dir_all(dir).unwrap();
    }
    let a_path = a.path().display().to_string();

    // Pod A: a stale entry (sandbox gone, written later) and the live one.
    write(
        &cache.join("cni-loopback-live-lo"),
        &lo_file(&a.key.uid, "pod-a", &a_path, "lo"),
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    write(
        &cache.join("cni-loopback-stale-lo"),
        &lo_file(
            &a.key.uid,
            "pod-a",
            "/var/run/netns/does-not-exist-ovr",
            "lo",
        ),
    );
    // Noise: another network's file, garbage, a directory, an eth0 entry, no sandbox.
    let b_uid = "11111111-2222-4333-8444-555555555555";
    write(
        &cache.join("ovn-kubernetes-x-eth1"),
        &lo_file(b_uid, "pod-b", &a_path, "eth1"),
    );
    write(&cache.join("junk-lo"), "{ this is not json");
    fs::create_dir(cache.join("dir-lo")).unwrap();
    write(
        &cache.join("eth0-x-lo"),
        &lo_file(b_uid, "pod-b", &a_path, "eth0"),
    );
    write(
        &cache.join("nosandbox-lo"),
        &lo_file(b_uid, "pod-b", "", "lo"),
    );

    // Pod C: only a netns-dir entry named after its uid.
    symlink(c.path(), netns_dir.join(format!("pod-{}", c.key.uid))).unwrap();

    // Pod D: only a process whose cgroup names it; its netns also has a netns-dir name.
    symlink("/proc/self/ns/net", {
        fs::create_dir_all(proc_root.join("1/ns")).unwrap();
        proc_root.join("1/ns/net")
    })
    .unwrap();
    let d_cg = d.key.uid.replace('-', "_");
    fs::create_dir_all(proc_root.join("4242/ns")).unwrap();
    write(
        &proc_root.join("4242/cgroup"),
        &format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{d_cg}.slice/cri-containerd-1.scope\n"
        ),
    );
    symlink(d.path(), proc_root.join("4242/ns/net")).unwrap();
    symlink(d.path(), netns_dir.join("cni-ffff")).unwrap();
    // A hostNetwork pod: its process lives in the host netns; skipped.
    let e_uid = "99999999-8888-4777-8666-555555555555";
    fs::create_dir_all(proc_root.join("5555/ns")).unwrap();
    write(
        &proc_root.join("5555/cgroup"),
        &format!("0::/kubepods/pod{e_uid}/x\n"),
    );
    symlink("/proc/self/ns/net", proc_root.join("5555/ns/net")).unwrap();

    let found = discover(&DiscoveryConfig {
        cni_cache: cache.clone(),
        netns_dir: netns_dir.clone(),
        proc_root: Some(proc_root.clone()),
    });
    let ga = found.get(&a.key.uid).expect("pod A found");
    assert_eq!(
        (ga.source, ga.netns.as_path()),
        (NetnsSource::CniCache, a.path().as_path())
    );
    assert_eq!(ga.name.as_deref(), Some("pod-a"));
    assert!(
        found.get(b_uid).is_none(),
        "other networks' / broken files must not count"
    );
    let gc = found.get(&c.key.uid).expect("pod C found");
    assert_eq!(
        (gc.source, gc.netns.clone()),
        (
            NetnsSource::NetnsDir,
            netns_dir.join(format!("pod-{}", c.key.uid))
        )
    );
    let gd = found.get(&d.key.uid).expect("pod D found");
    assert_eq!(
        (gd.source, gd.netns.clone()),
        (NetnsSource::NetnsDir, netns_dir.join("cni-ffff"))
    );
    assert!(found.get(e_uid).is_none(), "hostNetwork pods are skipped");
    assert_eq!(found.skipped_files, 4);

    // Without the netns-dir name, D comes from /proc.
    fs::remove_file(netns_dir.join("cni-ffff")).unwrap();
    let found2 = discover(&DiscoveryConfig {
        cni_cache: cache.clone(),
        netns_dir: netns_dir.clone(),
        proc_root: Some(proc_root.clone()),
    });
    let gd2 = found2.get(&d.key.uid).expect("pod D found via /proc");
    assert_eq!(
        (gd2.source, gd2.netns.clone()),
        (NetnsSource::Proc, proc_root.join("4242/ns/net"))
    );

    // Programming through every discovered path reaches the right pod.
    let rec = PodRouteReconciler::new(ReconcilerConfig {
        state_dir: tmp.path().join("state"),
        threads: 2,
        ..Default::default()
    })
    .unwrap();
    for (p, path) in [(a, &ga.netns), (c, &gc.netns), (d, &gd2.netns)] {
        let want = routes(vec![route("10.96.0.0/12", "eth1", Some(&p.eth1_gw()))]);
        let r = rec.set_desired(p.key.clone(), path.clone(), want).await;
        assert!(r.is_ok(), "{r:?}");
        assert!(table4(&p.name).contains(&format!(
            "10.96.0.0/12 via 10.244.{}.1 dev eth1 proto 136",
            p.k()
        )));
    }

    // Missing roots: an empty discovery, no error.
    let none = discover(&DiscoveryConfig {
        cni_cache: tmp.path().join("nope"),
        netns_dir: tmp.path().join("nope"),
        proc_root: None,
    });
    assert!(none.is_empty());
}
