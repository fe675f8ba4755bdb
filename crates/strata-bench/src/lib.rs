//! `strata-bench`: runs every Strata layer beside its peers in one process and reports
//! the ratios.
//!
//! * [`harness`]: the types workloads are written against ([`harness::Workload`],
//!   [`harness::Impl`], [`harness::timed_threads`]), the runner and the statistics.
//! * [`report`]: terminal tables, `report.csv`, `ratios.csv`, the HTML/SVG page and the
//!   README table.
//! * [`workloads`]: the registry, one module per group.
#![deny(missing_docs)]

pub mod harness;
pub mod report;
pub mod workloads;
