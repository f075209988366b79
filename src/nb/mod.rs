//! nb: the OVN Northbound side. Typed rows (generated from the pinned schema, see [`model`]),
//! observed rows of ours, the diff against the plan, and the transaction that applies it.
//! Never touches a row without our ownership `external_ids`.
pub mod bfd;
pub mod describe;
pub mod diff;
pub mod drift;
pub mod echo;
mod family;
pub mod model;
pub mod observed;
pub mod ops;
pub mod reconcile;
pub mod row;
mod scoped;

pub use reconcile::Scope;
pub use scoped::route_names;

#[cfg(test)]
mod tests;
