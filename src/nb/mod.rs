//! The OVN Northbound database as this project sees it: typed rows (generated from the
//! pinned schema, see [`model`]). Ownership and reconciliation come later in this module.
pub mod model;
