//! The `Route` API: CRD types and their validation. No I/O.
pub mod types;
pub mod validate;

pub use types::*;
pub use validate::{ValidatedRoute, validate};
