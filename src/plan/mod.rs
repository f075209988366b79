//! plan: pure. World -> desired pod routes and desired NB rows. No I/O, no clock, no
//! randomness; output order is stable so diffs and tests are deterministic.
pub mod nb;
pub mod pod;
