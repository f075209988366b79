//! `explain` end to end: pods as real network namespaces programmed by `apply`, a real NB
//! (ovsdb-server) with the ovn-kubernetes-shaped topology, ovn-northd + SB for `--trace`.
//! One setup, the six cases of an operator's questions: a rerouted pod, an unselected pod,
//! a pod lacking the device, a conflict loser, an enforced drop, a hostNetwork pod.
#![allow(clippy::unwrap_used)]

mod common;
mod fixture;

use serde_json::Value as Json;

use fixture::*;

/// Loses 172.16.20.0/24 to `ecmp` (priority 5 > 0) for client-a.
const LOSER: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: loser}
spec:
  podSelector: {matchLabels: {app: client-a}}
  route:
    - {dst: "172.16.20.0/24", dev: eth0}
"#;

/// client-b has no eth2; its eth1 rule still applies.
const NODEV: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: nodev}
spec:
  podSelector: {matchLabels: {app: client-b}}
  route:
    - {dst: "172.16.70.0/24", dev: eth2}
    - {dst: "172.16.71.0/24", dev: eth1}
"#;

/// Selects the hostNetwork pod.
const HOST: &str = r#"
apiVersion: k8s.ovn.org/v1
kind: Route
metadata: {name: host}
spec:
  podSelector: {matchLabels: {app: agent}}
  route:
    - {dst: "172.16.80.0/24", dev: eth1}
"#;

const HOST_POD: &str = "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: agent\n  namespace: default\n  uid: 0b5e6f7a-0000-4000-a000-00000000a6e7\n  labels:\n    app: agent\nspec:\n  nodeName: node1\n  hostNetwork: true\n  containers:\n  - name: main\n    image: busybox\nstatus:\n  phase: Running\n  podIP: 172.18.0.2\n  podIPs:\n  - ip: 172.18.0.2\n";

struct Env {
    ovn: Ovn,
    net: PodNet,
    inputs: Inputs,
}

fn setup() -> Env {
    let ovn = Ovn::start_with_northd();
    ovn.build_topology();
    let net = PodNet::new("explain");
    let mut world = world_yaml(&[NGINX, ("default", "web", "10.96.100.20")]);
    world.push_str(HOST_POD);
    let inputs = Inputs::new(&world);
    let mut ecmp = ECMP.replace("spec:\n", "spec:\n  priority: 5\n");
    ecmp.push('\n');
    inputs.put("ecmp.yaml", &ecmp);
    inputs.put("enforce.yaml", ENFORCE);
    inputs.put("loser.yaml", LOSER);
    inputs.put("nodev.yaml", NODEV);
    inputs.put("host.yaml", HOST);
    let env = Env { ovn, net, inputs };
    let r = env.cli("apply", &[]);
    // `loser` is Degraded (it lost a conflict): apply says so with exit 1, and programs.
    assert!(r.stdout.contains("loser: Degraded"), "{r}");
    env.ovn.sync_sb();
    env
}

impl Env {
    fn cli(&self, cmd: &str, extra: &[&str]) -> Run {
        let world = self.inputs.world();
        let routes = self.inputs.routes();
        let mut args: Vec<String> = vec![cmd.into()];
        args.extend(extra.iter().map(|s| s.to_string()));
        args.extend(
            [
                "-f",
                world.to_str().unwrap(),
                "-f",
                routes.to_str().unwrap(),
                "--nb",
                &self.ovn.nb_remote(),
            ]
            .iter()
            .map(|s| s.to_string()),
        );
        args.extend(self.net.args());
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        ovnkube(&a)
    }

    fn explain(&self, pod: &str, dst: &str) -> (Json, Run) {
        let sb = self.ovn.sb_remote();
        let r = self.cli("explain", &[pod, dst, "-o", "json", "--trace", &sb]);
        assert_eq!(r.code, 0, "{r}");
        (serde_json::from_str(&r.stdout).unwrap(), r)
    }
}

fn outcomes(d: &Json) -> Vec<(String, String)> {
    d["plan"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["route"].as_str().unwrap().to_owned(),
                c["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn explain_answers_the_six_cases_from_plan_kernel_nb_and_trace() {
    let env = setup();

    // 1. A rerouted pod: ecmp's rule decides, the kernel agrees (our proto), the NB policy
    //    applies and ovn-trace reroutes to one of the next hops.
    let (j, r) = env.explain("default/client-a", "172.16.20.9");
    let d = &j["destinations"][0];
    assert_eq!(d["plan"]["decision"]["route"], "ecmp", "{r}");
    assert_eq!(d["plan"]["decision"]["dev"], "eth1");
    assert_eq!(d["kernel"]["state"], "looked", "{r}");
    assert_eq!(d["kernel"]["dev"], "eth1", "{r}");
    assert_eq!(d["kernel"]["protocol"], 136, "{r}");
    assert_eq!(d["kernel"]["matched"], "172.16.20.0/24");
    assert_eq!(d["kernel"]["agrees"], true);
    let rows = d["ovn"]["rows"].as_array().unwrap();
    assert!(
        rows.iter().any(|x| x["table"] == "Logical_Router_Policy"
            && x["applies"] == true
            && x["route"] == "ecmp"),
        "{r}"
    );
    assert!(
        d["ovn"]["verdict"]
            .as_str()
            .unwrap()
            .starts_with("rerouted"),
        "{r}"
    );
    let hop = d["trace"]["nextHop"].as_str();
    assert!(
        matches!(hop, Some("100.64.0.2" | "100.64.0.3")),
        "trace: {}",
        d["trace"]
    );

    // 4. The conflict loser, in the same answer: loser lost to ecmp, and why.
    let lost = d["plan"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["route"] == "loser")
        .unwrap();
    assert_eq!(lost["outcome"], "lostConflict", "{r}");
    assert_eq!(lost["winner"], "ecmp");
    assert!(lost["why"].as_str().unwrap().contains("5 > 0"), "{lost}");

    // 2. An unselected pod: nothing of ours decides; its kernel uses its own default route
    //    over eth0; the policy exists but does not apply (not in the address set).
    let (j, r) = env.explain("default/client-b", "172.16.20.9");
    let d = &j["destinations"][0];
    assert!(d["plan"]["decision"].is_null(), "{r}");
    assert!(
        outcomes(d).iter().all(|(_, o)| o == "notSelected"),
        "{:?}",
        outcomes(d)
    );
    assert_eq!(d["kernel"]["dev"], "eth0", "{r}");
    assert_ne!(d["kernel"]["protocol"], 136);
    assert_eq!(d["kernel"]["agrees"], Json::Null);
    let rows = d["ovn"]["rows"].as_array().unwrap();
    assert!(
        !rows.is_empty() && rows.iter().all(|x| x["applies"] == false),
        "{r}"
    );

    // 3. A pod lacking the device: the eth2 rule is skipped, the eth1 rule of the same
    //    Route is programmed.
    let (j, r) = env.explain("default/client-b", "172.16.70.1");
    let d = &j["destinations"][0];
    assert_eq!(
        outcomes(d),
        vec![("nodev".to_owned(), "missingDev".to_owned())],
        "{r}"
    );
    assert!(d["plan"]["decision"].is_null());
    let (j, r) = env.explain("default/client-b", "172.16.71.1");
    let d = &j["destinations"][0];
    assert_eq!(d["plan"]["decision"]["route"], "nodev", "{r}");
    assert_eq!(d["kernel"]["dev"], "eth1", "{r}");
    assert_eq!(d["kernel"]["agrees"], true, "{r}");

    // 5. An enforced drop: the pod routes it over eth0; inside OVN our ACL drops it.
    let (j, r) = env.explain("default/client-a", "192.168.50.7");
    let d = &j["destinations"][0];
    assert_eq!(d["plan"]["decision"]["route"], "enforce", "{r}");
    assert_eq!(d["kernel"]["dev"], "eth0", "{r}");
    assert!(
        d["ovn"]["verdict"].as_str().unwrap().starts_with("dropped"),
        "{r}"
    );
    assert_eq!(d["trace"]["dropped"], true, "trace: {}", d["trace"]);

    // 6. A hostNetwork pod: selected but never touched; the node's own table is shown.
    let (j, r) = env.explain("default/agent", "172.16.80.1");
    let d = &j["destinations"][0];
    assert_eq!(d["plan"]["hostNetwork"], true, "{r}");
    assert!(d["plan"]["decision"].is_null());
    assert_eq!(
        outcomes(d),
        vec![("host".to_owned(), "podSkipped".to_owned())]
    );
    assert_eq!(d["plan"]["candidates"][0]["reason"], "HostNetwork");
    assert_eq!(d["kernel"]["state"], "hostNetwork", "{r}");

    // A Service as DST: each ClusterIP explained; text output names the decision.
    let r = env.cli("explain", &["default/client-a", "default/web"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.contains("-> 10.96.100.20 (Service default/web)"),
        "{r}"
    );
    assert!(r.stdout.contains("decided by: no Route of ours"), "{r}");
    assert!(r.stdout.contains("kernel (ip -n "), "{r}");

    println!("{}", r.stdout);
    let r = env.cli(
        "explain",
        &[
            "default/client-a",
            "172.16.20.9",
            "--trace",
            &env.ovn.sb_remote(),
        ],
    );
    println!("{}", r.stdout);
    assert!(
        r.stdout
            .contains("lost a conflict (Conflict) to Route ecmp"),
        "{r}"
    );
    assert!(r.stdout.contains("ovn-trace: rerouted to next hop"), "{r}");

    // Bad input: a clear message and a non-zero exit.
    let r = env.cli("explain", &["client-a", "172.16.20.9"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("POD must be namespace/name"), "{r}");
    let r = env.cli("explain", &["default/ghost", "172.16.20.9"]);
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("pod default/ghost is not in the input"),
        "{r}"
    );
}
