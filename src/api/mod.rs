//! The `Route` API: CRD types and their validation. No I/O.
pub mod types;

pub use types::*;
