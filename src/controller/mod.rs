//! controller: wires sources, the planner and both reconcilers; status and metrics.
pub mod metrics;
