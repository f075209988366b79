//! controller: wires sources, the planner and both reconcilers; status and metrics.
//! Owns no policy of its own: what to program is the planner's, how is nb's and netlink's.
pub mod metrics;
pub mod source;
