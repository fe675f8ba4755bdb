//! Strata: a Rust concurrency substrate.
//!
//! This crate only re-exports the layers, each behind a feature of the same name:
//!
//! | feature | module | crate |
//! |---|---|---|
//! | `primitives` | [`primitives`] | `strata-primitives`: the atomics/loom shim, parking, backoff, `CachePadded` |
//! | `reclaim` | [`reclaim`] | `strata-reclaim`: epoch/RCU and hazard-pointer reclamation |
//! | `queue` | [`queue`] | `strata-queue`: the LPRQ and Michael–Scott unbounded MPMC queues, a stack, a bounded MPMC ring, a work-stealing deque |
//! | `sync` | [`sync`] | `strata-sync`: `SeqLock`, `RcuCell`, `Versioned`, flat combining, a striped map, a per-key lock manager |
//!
//! ```
//! let guard = strata::reclaim::epoch::pin();
//! drop(guard);
//! ```
#![deny(missing_docs)]
#![no_std]

#[cfg(feature = "primitives")]
#[doc(inline)]
pub use strata_primitives as primitives;

#[cfg(feature = "reclaim")]
#[doc(inline)]
pub use strata_reclaim as reclaim;

#[cfg(feature = "queue")]
#[doc(inline)]
pub use strata_queue as queue;

#[cfg(feature = "sync")]
#[doc(inline)]
pub use strata_sync as sync;
