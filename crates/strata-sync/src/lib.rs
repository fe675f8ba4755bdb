//! Read-mostly cells, combining, a striped map and per-key locks.
//!
//! | type | what it is | progress |
//! |---|---|---|
//! | [`SeqLock`] | a sequence lock over a plain-data value (`bytemuck` `NoUninit + AnyBitPattern`), read through atomic words so a racing read is never undefined behaviour | `try_read` wait-free; `read` retries while a write is in progress (writers can starve it); writers serialize on the sequence (blocking) |
//! | [`Versioned`] | a generation-counted value with optimistic reads, `version`/`validate` for optimistic concurrency, and a lock that a reader falls back to after a bounded number of tries | optimistic reads write nothing shared; bounded retries, then blocking |
//! | [`RcuCell`] | an RCU cell of an `Arc<T>`: `load` (a guard, no reference count touched), `load_full` (an `Arc`), `store`, `swap`, `update`, `compare_and_swap`; old values reclaimed through strata-reclaim (epochs or hazard pointers) | loads wait-free under epochs, lock-free under hazard pointers; `store`/`swap` one atomic swap; `update`/`compare_and_swap` lock-free |
//! | [`FlatCombining`], [`CombiningCounter`] | flat combining (Hendler, Incze, Shavit & Tzafrir, SPAA 2010) over any sequential structure ([`Sequential`]), with per-thread publication records and record aging | blocking: one combiner at a time applies everyone's published operations |
//! | [`StripedMap`] | a hash map of power-of-two shards, each a hashbrown table behind a reader-writer lock; dashmap's names; iteration that holds no lock while your code runs | blocking, one shard lock at a time |
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
pub use rcu::RcuCell;
pub use seqlock::SeqLock;
pub use striped::StripedMap;
pub use versioned::Versioned;
