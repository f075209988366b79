//! Heap bytes per programmed route, counted exactly: this benchmark's allocator counts live
//! bytes, and the plan of the node's files is built in-process; the pod routes it holds
//! (`Plan::pods`, which `run`'s pod side shares rather than copies; pods with equal routes
//! share one copy) are then dropped and the difference divided by the number of routes.
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use ovnkube_route::controller::source::world_from;
use ovnkube_route::plan::{PlanConfig, plan};

use crate::node::Node;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is
// updated beside it. Needed because no safe API reports the heap held by a value.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

pub fn per_route(node: &Node) {
    let loaded = ovnkube_route::config::load_paths(&[node.path("world.yaml"), node.path("routes")])
        .expect("load");
    let (world, routes) = world_from(&loaded.documents);
    let cfg = PlanConfig {
        node: Some("node1".into()),
        ..PlanConfig::default()
    };
    let start = std::time::Instant::now();
    let mut p = plan(&world, &routes, &cfg);
    println!(
        "plan() of this node in-process: {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let count: usize = p.pods.values().map(|r| r.routes.len()).sum();
    let pods = p.pods.len();
    let distinct: std::collections::HashSet<*const ovnkube_route::plan::pod::PodRoutes> =
        p.pods.values().map(std::sync::Arc::as_ptr).collect();
    println!(
        "pods share their routes: {} distinct route sets (one copy each) for {pods} pods",
        distinct.len()
    );
    let before = LIVE.load(Ordering::Relaxed);
    drop(std::mem::take(&mut p.pods));
    let held = before - LIVE.load(Ordering::Relaxed);
    println!(
        "heap held by the planned pod routes: {:.1} MiB for {count} routes in {pods} pods = {:.1} bytes per route ({} bytes per PodRoute value)",
        held as f64 / 1048576.0,
        held as f64 / count as f64,
        std::mem::size_of::<ovnkube_route::plan::pod::PodRoute>()
    );
}
