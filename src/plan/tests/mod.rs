//! Planner tests, one module per concern. Built with `testkit` builders, no cluster.
mod big;
mod conflicts;
mod determinism;
mod explain;
mod guards;
mod nb_rows;
mod props;
mod seed;
mod selection;
mod status;
mod svc;
mod targets;
