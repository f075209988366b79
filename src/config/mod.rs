//! (placeholder; see lib.rs)
