//! ovnkube-route: live, declarative per-workload routing for pods with two CNIs.
//!
//! Layers (each owns one error enum; `anyhow` lives only in `main.rs`):
//! - [`api`]: the `Route` CRD types and their validation.
//! - [`config`]: Routes and world objects from JSON / YAML files.
//! - [`cluster`]: the world as the controller sees it (pods, services, namespaces, workloads).
//! - [`plan`]: pure planner, world -> desired pod routes and desired NB rows. No I/O, no clock.
//! - [`ovsdb`]: our own OVSDB (RFC 7047) client: wire, connection, monitor replica, transactions.
//! - [`nb`]: typed OVN Northbound rows, ownership, diff -> one transaction per pass.
//! - [`netlink`]: pod network namespace discovery and kernel route reconcile.
//! - [`controller`]: event loop wiring sources, planner and both reconcilers.
//! - [`k8s`]: the Kubernetes edge: watches, leader election, Route status and events.
//! - [`heap`]: gives freed heap memory back to the kernel after large passes.
//! - [`backoff`]: the one retry schedule of the watches, the status writer and the OVSDB client.
//! - [`kubectl`]: the binary as a kubectl plugin (`kubectl route status | explain | plan`).
pub mod api;
pub mod backoff;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod controller;
pub mod heap;
pub mod k8s;
pub mod kubectl;
pub mod nb;
pub mod netlink;
pub mod ovsdb;
pub mod plan;
