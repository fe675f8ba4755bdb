//! Strata: a Rust concurrency substrate.
//!
//! This crate only re-exports the layers, each behind a feature of the same name:
//!
//! | feature | module | crate |
//! |---|---|---|
//! | `primitives` | [`primitives`] | `strata-primitives`: the atomics/loom shim, parking, backoff, `CachePadded` |
//! | `reclaim` | [`reclaim`] | `strata-reclaim`: epoch/RCU and hazard-pointer reclamation |
//! | `queue` | [`queue`] | `strata-queue`: the LPRQ and Michael–Scott unbounded MPMC queues, a stack, a bounded MPMC ring, a work-stealing deque |
//! | `sync` | [`sync`] | `strata-sync`: adaptive, queued and ordered locks, a lock-order validator, `SeqLock`, `RcuCell`, `Versioned`, flat combining, a striped map, a per-key lock manager, an object pool, a slot table |
//! | `async` | `r#async` | `strata-async`: a FIFO semaphore and a notify for any executor |
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

#[cfg(feature = "async")]
#[doc(inline)]
pub use strata_async as r#async;
