//! nb: the OVN Northbound side. Observed rows of ours, the diff against the plan, and the
//! transaction that applies it. Never touches a row without our ownership `external_ids`.
pub mod diff;
pub mod observed;
pub mod ops;

#[cfg(test)]
mod tests;
