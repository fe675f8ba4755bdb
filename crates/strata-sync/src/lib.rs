//! Blocking synchronization: locks that adapt, queue or are ordered, read-mostly
//! cells, combining, a striped map, per-key locks, an object pool and a slot table.
//!
//! | type | what it is | progress |
//! |---|---|---|
//! | [`SeqLock`] | a sequence lock over a plain-data value (`bytemuck` `NoUninit + AnyBitPattern`), read through atomic words so a racing read is never undefined behaviour | `try_read` wait-free; `read` retries while a write is in progress (writers can starve it); writers serialize on the sequence (blocking) |
//! | [`Versioned`] | a generation-counted value with optimistic reads, `version`/`validate` for optimistic concurrency, and a lock that a reader falls back to after a bounded number of tries | optimistic reads write nothing shared; bounded retries, then blocking |
//! | [`RcuCell`] | an RCU cell of an `Arc<T>`: `load` (a guard, no reference count touched), `load_full` (an `Arc`), `store`, `swap`, `update`, `compare_and_swap`; old values reclaimed through strata-reclaim (epochs or hazard pointers) | loads wait-free under epochs, lock-free under hazard pointers; `store`/`swap` one atomic swap; `update`/`compare_and_swap` lock-free |
//! | [`FlatCombining`], [`CombiningCounter`] | flat combining (Hendler, Incze, Shavit & Tzafrir, SPAA 2010) over any sequential structure ([`Sequential`]), with per-thread publication records and record aging | blocking: one combiner at a time applies everyone's published operations |
//! | [`StripedMap`] | a hash map of power-of-two shards, each a hashbrown table behind a reader-writer lock; dashmap's names; iteration that holds no lock while your code runs | blocking, one shard lock at a time |
//! | [`AdaptiveMutex`] | a mutex that spins briefly, then parks on a futex (Linux; std thread parking elsewhere or with `portable-park`) in a per-lock FIFO queue; a waiter queued longer than [`mutex::FAIR_BOUND`] is handed the lock; std's poisoning, timed locks, mapped guards | blocking; no queued waiter starves |
//! | [`AdaptiveRwLock`] | the same for a reader-writer lock with upgradable reads (parking_lot's names), writer-preferring, with a fairness bound | blocking; no waiter starves |
//! | [`McsLock`] | the MCS queue spinlock (Mellor-Crummey & Scott 1991): FIFO, each waiter spinning on its own cache line; for very short sections with no more threads than cores | blocking (spinning, then yielding) |
//! | [`OrderedMutex`], [`OrderedRwLock`] | locks with levels that form a DAG ([`lock_levels!`]): locking out of order is a compile error, so they cannot deadlock among themselves | blocking |
//! | [`lockdep`] | a runtime lock-order validator: the acquired-before graph of locks across threads, reporting the first acquisition that closes a cycle, with both sites; wired into the locks above with the `lockdep` feature, absent without it | — |
//! | [`Pool`] | an object pool: per-thread caches over a lock-free, ABA-tagged global free list, RAII handles, an exact bound on retained objects | lock-free `get` and return |
//! | [`SlotTable`] | a file-descriptor-style table: generation-tagged keys, insert into the lowest free slot, epoch-reclaimed values | wait-free reads, lock-free insert, wait-free remove |
//! | [`KeyLockManager`] | a sharded table of per-key reader-writer locks, created on first use and removed when unused, with timeouts, ordered multi-key locking and contention counters | blocking |
//!
//! ```
//! use strata_sync::{RcuCell, SeqLock, StripedMap};
//!
//! let config = RcuCell::new(String::from("v1"));
//! config.store(String::from("v2"));
//! assert_eq!(*config.load(), "v2");
//!
//! let position = SeqLock::new([0u64; 4]);
//! position.write(|p| p[0] = 7);
//! assert_eq!(position.read(), [7, 0, 0, 0]);
//!
//! let map = StripedMap::new();
//! map.insert("k", 1);
//! assert_eq!(map.get_cloned("k"), Some(1));
//! ```
//!
//! Under the test-only `--cfg strata_weaken`, each module weakens one step of its own
//! protocol (named in its test file), so that CI shows the loom models catch it.
#![deny(missing_docs)]

pub mod combining;
pub mod keylock;
pub mod lockdep;
pub mod mcs;
pub mod mutex;
pub mod ordered;
pub mod pool;
pub mod rcu;
pub mod rwlock;
pub mod seqlock;
pub mod slot_table;
pub mod striped;
pub mod versioned;

pub use combining::{CombiningCounter, CombiningStats, FlatCombining, Sequential};
pub use keylock::{KeyLockError, KeyLockManager, LockMode};
pub use mcs::{McsGuard, McsLock};
pub use mutex::{AdaptiveMutex, AdaptiveMutexGuard, MappedAdaptiveMutexGuard};
pub use ordered::{LockAfter, LockToken, OrderError, OrderedMutex, OrderedRwLock, Unlocked};
pub use pool::{Pool, PoolBuilder, PoolError, PoolStats, Pooled};
pub use rcu::RcuCell;
pub use rwlock::{
    AdaptiveRwLock, AdaptiveRwLockReadGuard, AdaptiveRwLockUpgradableReadGuard,
    AdaptiveRwLockWriteGuard,
};
pub use seqlock::SeqLock;
pub use slot_table::{SlotKey, SlotTable, SlotTableError};
pub use striped::StripedMap;
pub use versioned::Versioned;
