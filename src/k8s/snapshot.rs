//! One read of the API server for `explain --source kubernetes`: every object the planner
//! uses, listed once (no watch, no Lease, no writes), turned into the same World and Routes
//! the watches build.
//!
//! Must not: write anything; it needs only the list permissions `run` already has.
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DynamicObject, ListParams};
use kube::{Api, Client};

use crate::api::Route;
use crate::cluster::{LinkKind, NamespaceInfo, WorkloadLink, World, WorldObject};
use crate::controller::Options;
use crate::controller::explain::{ExplainRequest, Explanation, explain};

use super::KubeError;
use super::watch::{decode, route_resource};

/// The world and the Routes, listed once. Routes that do not decode are returned by name
/// with their error (the planner never sees them).
pub async fn read_once(client: &Client) -> Result<(World, Vec<Route>, Vec<String>), KubeError> {
    let lp = ListParams::default();
    let mut world = World::new();
    for p in Api::<Pod>::all(client.clone()).list(&lp).await? {
        world.apply(WorldObject::Pod((&p).into()));
    }
    for s in Api::<Service>::all(client.clone()).list(&lp).await? {
        world.apply(WorldObject::Service((&s).into()));
    }
    for s in Api::<EndpointSlice>::all(client.clone()).list(&lp).await? {
        world.apply(WorldObject::EndpointSlice((&s).into()));
    }
    for n in Api::<Namespace>::all(client.clone())
        .list_metadata(&lp)
        .await?
    {
        world.apply(WorldObject::Namespace(NamespaceInfo::from_meta(
            &n.metadata,
        )));
    }
    for r in Api::<ReplicaSet>::all(client.clone())
        .list_metadata(&lp)
        .await?
    {
        world.apply(WorldObject::Link(
            LinkKind::ReplicaSet,
            WorkloadLink::from_meta(&r.metadata),
        ));
    }
    for j in Api::<Job>::all(client.clone()).list_metadata(&lp).await? {
        world.apply(WorldObject::Link(
            LinkKind::Job,
            WorkloadLink::from_meta(&j.metadata),
        ));
    }
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &route_resource());
    let mut routes = Vec::new();
    let mut undecodable = Vec::new();
    for o in api.list(&lp).await? {
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
