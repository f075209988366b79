//! Turns loaded documents into the planner's inputs: the world and the Routes.
//! File mode only; the Kubernetes source feeds the same `World` through watchers.
use crate::api::Route;
use crate::cluster::World;
use crate::config::Documents;

/// The world the documents describe, and their Routes in file order.
pub fn world_from(docs: &Documents) -> (World, Vec<Route>) {
    let mut world = World::new();
    for ns in &docs.namespaces {
        world.apply(ns);
    }
    for pod in &docs.pods {
        world.apply(pod);
    }
    for svc in &docs.services {
        world.apply(svc);
    }
    for es in &docs.endpoint_slices {
        world.apply(es);
    }
    for rs in &docs.replica_sets {
        world.apply(rs);
    }
    for job in &docs.jobs {
        world.apply(job);
    }
    (world, docs.routes.clone())
}
