//! Lock-free containers.
//!
//! | type | algorithm | progress | bound |
//! |---|---|---|---|
//! | [`MsQueue`] | Michael & Scott 1996 | lock-free | unbounded MPMC FIFO |
//! | [`TreiberStack`] | Treiber 1986, with backoff | lock-free | unbounded LIFO |
//!
//! Every container takes its memory reclamation scheme as a type parameter (any
//! [`strata_reclaim::Reclaim`]): the default epoch domain, a custom epoch domain, or
//! hazard pointers.
//!
//! ```
//! use strata_queue::MsQueue;
//! use strata_reclaim::hazard::Hazard;
//!
//! let q = MsQueue::with_reclaim(Hazard);
//! q.push("a");
//! assert_eq!(q.pop(), Some("a"));
//! ```
#![deny(missing_docs)]

pub mod ms_queue;
pub mod treiber;

pub use ms_queue::MsQueue;
pub use treiber::TreiberStack;

/// The default reclamation scheme: the process-wide epoch domain.
#[cfg(not(strata_loom))]
pub type DefaultReclaim = strata_reclaim::epoch::Epoch;
/// Under loom there is no process-wide domain: containers take an explicit one.
#[cfg(strata_loom)]
pub type DefaultReclaim = strata_reclaim::epoch::Domain;

#[cfg(test)]
mod tests;
