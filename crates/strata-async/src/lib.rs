//! Async synchronization that works on any executor: it uses only `core::task`'s
//! `Waker`, never a runtime's internals, so the same types serve tokio, smol,
//! async-executor and `futures::executor::block_on`.
//!
//! | type | what it is | progress |
//! |---|---|---|
//! | [`Semaphore`] | tokio's semaphore API (`acquire`, `acquire_many`, owned variants, `try_*`, `add_permits`, `forget_permits`, `close`; permits with `forget`, `split`, `merge`), strictly FIFO (a large request at the head collects permits until it is served), misuse reported as errors | `try_acquire*`, an uncontended `acquire` and a release with nobody queued: a load and one CAS, no lock; queueing and releases to queued waiters take a short internal lock |
//! | [`Mutex`] | tokio's async mutex (`lock`, `try_lock`, `lock_owned`, `blocking_lock`, `Send` guards with `map`/`try_map`, owned and mapped guards), built on the semaphore with one permit: FIFO hand-off, no barging, no poisoning | `try_lock`, an uncontended `lock` and an unlock with nobody queued: a load and one CAS, no lock; the rest as the semaphore |
//! | [`RwLock`] | tokio's async rw-lock (`read`, `write`, `try_*`, owned variants, guards with `map`, `downgrade`) plus upgradable reads (`upgradable_read`, `upgrade`, `try_upgrade`), on two FIFO semaphores: writer-preferring, and neither writers nor readers starve | an uncontended `read` and its release: a load and one CAS; an uncontended `write` or `upgradable_read`: one CAS on each of the two semaphores; the rest as the semaphore |
//! | [`Notify`] | tokio's notify (`notified`, `notify_one`, `notify_last`, `notify_waiters`, one stored permit); a chosen `Notified` that is dropped passes its notification on | `notify_one`/`notify_last` with nobody waiting and consuming a stored permit: a load and one CAS; the rest takes a short internal lock |
//!
//! The waiter lists are intrusive: each waiter's node lives inside its pinned future,
//! so waiting allocates nothing. Dropping a future at any point loses no permit and no
//! wake-up. Wakers are never called or dropped while the internal lock is held.
//!
//! ```
//! use std::sync::Arc;
//! use strata_async::{Notify, Semaphore};
//!
//! let sem = Arc::new(Semaphore::new(2));
//! let ready = Arc::new(Notify::new());
//! futures::executor::block_on(async {
//!     let permit = sem.acquire_many(2).await.unwrap();
//!     assert_eq!(sem.available_permits(), 0);
//!     drop(permit);
//!     ready.notify_one(); // stored: nobody waits yet
//!     ready.notified().await; // consumes the stored permit at once
//! });
//! assert_eq!(sem.available_permits(), 2);
//! ```
//!
//! Under the test-only `--cfg strata_weaken`, each module weakens one publication
//! ordering of its lock-free paths (named in its test file), so that CI shows the loom
//! models catch it.
#![deny(missing_docs)]

pub mod mutex;
pub mod notify;
pub mod rwlock;
pub mod semaphore;

#[cfg(test)]
mod test_util;

pub use mutex::{
    Lock, LockOwned, MappedMutexGuard, Mutex, MutexGuard, OwnedMappedMutexGuard, OwnedMutexGuard,
    TryLockError,
};
#[cfg(not(strata_loom))]
pub use notify::OwnedNotified;
pub use notify::{Notified, Notify};
// The rw-lock's futures (`Read`, `Write`, ...) stay in `rwlock::`, so that a glob
// import of the crate does not shadow `std::io::{Read, Write}`.
pub use rwlock::{
    OwnedRwLockReadGuard, OwnedRwLockUpgradableReadGuard, OwnedRwLockWriteGuard, RwLock,
    RwLockMappedWriteGuard, RwLockReadGuard, RwLockUpgradableReadGuard, RwLockWriteGuard,
};
pub use semaphore::{
    Acquire, AcquireError, AcquireOwned, AddPermitsError, MergeError, OwnedSemaphorePermit,
    Semaphore, SemaphorePermit, TryAcquireError,
};
