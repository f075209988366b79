//! The `Route` API: CRD types and their validation. No I/O.
pub mod crd;
pub mod limits;
pub mod node_report;
pub mod quote;
pub mod rules;
pub mod schema;
pub mod types;
pub mod validate;

pub use crd::{crd, crd_compat, crd_compat_yaml, crd_yaml};
pub use node_report::{
    NodeRouteReport, RouteNodeReport, RouteNodeReportSpec, node_report_crd, node_report_crd_yaml,
};
pub use types::*;
pub use validate::{ValidatedRoute, validate};
