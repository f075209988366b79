//! Heap held per pod and per Route, in this process (a counting allocator): the World built
//! from the same pods the API server serves (each decoded as the watch decodes it, then
//! converted), and the planner built over that World with the same Routes, in central mode.
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicIsize, Ordering};

use ovnkube_route::api::Route;
use ovnkube_route::cluster::{
    LinkKind, NamespaceInfo, PodInfo, ServiceInfo, WorkloadLink, World, WorldObject,
};
use ovnkube_route::plan::incremental::Engine;
use ovnkube_route::plan::{NbScope, PlanConfig};

use super::world::{self, Spec};

pub struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

/// Under the count, the allocator the controller uses (mimalloc): with glibc's, the API
/// server in this process paid for the frees of the figures before it (a
/// `malloc_consolidate` of tens of milliseconds on the first request after them), and that
/// was timed as the controller's latency.
static UNDER: mimalloc::MiMalloc = mimalloc::MiMalloc;

// The only unsafe code of the benchmarks: a global allocator must implement an unsafe trait.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is to the underlying allocator.
        unsafe { UNDER.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is to the underlying allocator.
        unsafe { UNDER.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: forwarded as is to the underlying allocator.
        unsafe { UNDER.realloc(p, l, new) }
    }
}

/// Live heap bytes of this process.
pub fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Held {
    /// World bytes per pod (pods, plus their share of namespaces, ReplicaSets, Services).
    pub world_per_pod: f64,
    /// Planner bytes over the World, per pod and per Route (split by a second, half-size
    /// planner: what grows with Routes at a fixed World).
    pub planner_per_pod: f64,
    pub planner_per_route: f64,
}

fn world_of(spec: &Spec) -> World {
    let mut w = World::new();
    for n in 0..spec.namespaces() {
        for o in world::namespace_objects(spec, n, n) {
            let obj: Option<WorldObject> = match o["kind"].as_str() {
                Some("Pod") => {
                    let pod: k8s_openapi::api::core::v1::Pod = serde_json::from_value(o).unwrap();
                    Some(PodInfo::from(&pod).into())
                }
                Some("Namespace") => {
                    let ns: k8s_openapi::api::core::v1::Namespace =
                        serde_json::from_value(o).unwrap();
                    Some(NamespaceInfo::from(&ns).into())
                }
                Some("Service") => {
                    let s: k8s_openapi::api::core::v1::Service = serde_json::from_value(o).unwrap();
                    Some(ServiceInfo::from(&s).into())
                }
                Some("ReplicaSet") => {
                    let rs: k8s_openapi::api::apps::v1::ReplicaSet =
                        serde_json::from_value(o).unwrap();
                    Some(WorldObject::Link(
                        LinkKind::ReplicaSet,
                        WorkloadLink::from(&rs),
                    ))
                }
                _ => None,
            };
            if let Some(o) = obj {
                w.apply(o);
            }
        }
    }
    w
}

fn routes(spec: &Spec, n: usize) -> Vec<Route> {
    (0..n)
        .map(|i| serde_json::from_value(world::route(spec, i, None)).unwrap())
        .collect()
}

fn planner_bytes(spec: &Spec, w: &World, n: usize) -> isize {
    let cfg = PlanConfig {
        node: Some("node-0".into()),
        nb_scope: NbScope::Cluster,
        ..PlanConfig::default()
    };
    let rs = routes(spec, n);
    let before = live();
    let w = w.clone();
    let copy = live() - before;
    let e = Engine::build(cfg, w, &rs);
    // What the planner holds beyond its own copy of the World.
    let held = live() - before - copy;
    drop(e);
    held
}

pub fn measure(spec: &Spec) -> Held {
    let before = live();
    let w = world_of(spec);
    let world = live() - before;
    let full = planner_bytes(spec, &w, spec.routes());
    let half = planner_bytes(spec, &w, spec.routes() / 2);
    let per_route = (full - half) as f64 / (spec.routes() - spec.routes() / 2) as f64;
    Held {
        world_per_pod: world as f64 / spec.pods as f64,
        planner_per_route: per_route,
        planner_per_pod: (full as f64 - per_route * spec.routes() as f64) / spec.pods as f64,
    }
}
