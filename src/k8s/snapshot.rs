//! One read of the API server for `explain --source kubernetes`: every object the planner
//! uses, listed once (no watch, no Lease, no writes), turned into the same World and Routes
//! the watches build.
//!
//! Must not: write anything; it needs only the list permissions `run` already has.
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DynamicObject, ListParams, ObjectList};
use kube::{Api, Client};

use crate::api::Route;
use crate::cluster::{LinkKind, NamespaceInfo, WorkloadLink, World, WorldObject};
use crate::controller::Options;
use crate::controller::explain::{ExplainRequest, Explanation, explain};

use super::KubeError;
use super::client::DEFAULT_PAGE_SIZE;
use super::watch::{decode, route_resource};

/// Every object `list` returns, page after page (`limit` / `continue`, pages of
/// [`DEFAULT_PAGE_SIZE`]): a large cluster is read in bounded responses.
async fn all_pages<T, F, Fut>(list: F) -> Result<Vec<T>, KubeError>
where
    T: Clone,
    F: Fn(ListParams) -> Fut,
    Fut: std::future::Future<Output = Result<ObjectList<T>, kube::Error>>,
{
    let mut out = Vec::new();
    let mut lp = ListParams::default().limit(DEFAULT_PAGE_SIZE);
    loop {
        let page = list(lp.clone()).await?;
        out.extend(page.items);
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => lp = lp.continue_token(&token),
            None => return Ok(out),
        }
    }
}

/// The world and the Routes, listed once. Routes that do not decode are returned by name
/// with their error (the planner never sees them).
pub async fn read_once(client: &Client) -> Result<(World, Vec<Route>, Vec<String>), KubeError> {
    let mut world = World::new();
    let pods = &Api::<Pod>::all(client.clone());
    for p in all_pages(|lp| async move { pods.list(&lp).await }).await? {
        world.apply(WorldObject::Pod(Box::new((&p).into())));
    }
    let services = &Api::<Service>::all(client.clone());
    for s in all_pages(|lp| async move { services.list(&lp).await }).await? {
        world.apply(WorldObject::Service((&s).into()));
    }
    let slices = &Api::<EndpointSlice>::all(client.clone());
    for s in all_pages(|lp| async move { slices.list(&lp).await }).await? {
        world.apply(WorldObject::EndpointSlice((&s).into()));
    }
    let namespaces = &Api::<Namespace>::all(client.clone());
    for n in all_pages(|lp| async move { namespaces.list_metadata(&lp).await }).await? {
        world.apply(WorldObject::Namespace(NamespaceInfo::from_meta(
            &n.metadata,
        )));
    }
    let replica_sets = &Api::<ReplicaSet>::all(client.clone());
    for r in all_pages(|lp| async move { replica_sets.list_metadata(&lp).await }).await? {
        world.apply(WorldObject::Link(
            LinkKind::ReplicaSet,
            WorkloadLink::from_meta(&r.metadata),
        ));
    }
    let jobs = &Api::<Job>::all(client.clone());
    for j in all_pages(|lp| async move { jobs.list_metadata(&lp).await }).await? {
        world.apply(WorldObject::Link(
            LinkKind::Job,
            WorkloadLink::from_meta(&j.metadata),
        ));
    }
    let api: &Api<DynamicObject> = &Api::all_with(client.clone(), &route_resource());
    let mut routes = Vec::new();
    let mut undecodable = Vec::new();
    for o in all_pages(|lp| async move { api.list(&lp).await }).await? {
        match decode(&o) {
            Ok(r) => routes.push(r),
            Err(u) => undecodable.push(format!("Route {} does not decode: {}", u.name, u.error)),
        }
    }
    Ok((world, routes, undecodable))
}

/// `explain` against the cluster named by $KUBECONFIG or the in-cluster service account.
pub async fn explain_kubernetes(
    req: &ExplainRequest,
    opts: &Options,
) -> Result<Explanation, KubeError> {
    let client = super::run::client().await?;
    let (world, routes, undecodable) = read_once(&client).await?;
    let mut e = explain(&world, &routes, req, opts).await?;
    e.notes.extend(undecodable);
    Ok(e)
}
