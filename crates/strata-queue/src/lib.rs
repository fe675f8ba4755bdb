//! Lock-free containers.
//!
//! | type | algorithm | progress | bound |
//! |---|---|---|---|
//! | [`Queue`] (alias [`SegQueue`]) | LPRQ: Romanov & Koval 2023, linked fetch-and-add rings; values stored in the cells (see [`lprq`]) | lock-free: a preempted push or pop delays nobody | unbounded MPMC FIFO; **the one to choose** |
//! | [`MsQueue`] | Michael & Scott 1996 | lock-free | unbounded MPMC FIFO |
//! | [`TreiberStack`] | Treiber 1986, with backoff | lock-free | unbounded LIFO |
//! | [`ArrayQueue`] | Vyukov 2010, per-slot stamps | lock-free except a wait for a slot's owner between its claim and its publish (see [`array_queue`]) | bounded MPMC FIFO |
//! | [`Worker`] / [`Stealer`] | Chase & Lev 2005, Lê et al. 2013; per-slot stamps and a buffer generation so that thieves read only claimed slots | owner wait-free, thieves lock-free; no thief reads a slot it has not claimed (see [`deque`]) | unbounded work-stealing deque |
//! | [`Injector`] | linked blocks, crossbeam-deque's design | blocking in two short windows (see [`injector`]) | unbounded MPMC FIFO |
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

pub mod array_queue;
pub mod deque;
pub mod injector;
pub mod lprq;
pub mod ms_queue;
pub mod treiber;

pub use array_queue::ArrayQueue;
pub use deque::{Injector, Steal, Stealer, Worker};
pub use lprq::{Queue, SegQueue};
pub use ms_queue::MsQueue;
pub use treiber::TreiberStack;

/// The default reclamation scheme: the process-wide epoch domain.
#[cfg(not(strata_loom))]
pub type DefaultReclaim = strata_reclaim::epoch::Epoch;
/// Under loom there is no process-wide domain: containers take an explicit one.
#[cfg(strata_loom)]
pub type DefaultReclaim = strata_reclaim::epoch::Domain;

/// The ordering of a store or CAS that publishes a value to the thread that will take
/// it (or that hands a slot back to the thread that will write it next): `Release`,
/// or `Relaxed` under the test-only `--cfg strata_weaken`, which is how
/// the loom models show that they detect a missing publication (the models marked
/// `should_panic` under that cfg).
const fn publish_ordering() -> core::sync::atomic::Ordering {
    if cfg!(strata_weaken) {
        core::sync::atomic::Ordering::Relaxed
    } else {
        core::sync::atomic::Ordering::Release
    }
}

#[cfg(test)]
mod deque_tests;
#[cfg(test)]
mod lprq_tests;
#[cfg(test)]
mod tests;
