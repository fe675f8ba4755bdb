//! A sharded table of per-key reader-writer locks.
//!
//! [`KeyLockManager<K>`] hands out a reader-writer lock for every key of type `K`
//! without the caller allocating one per key: a lock exists while someone holds or
//! waits for its key and is removed from the table as soon as nobody does, so a
//! manager over an unbounded key space (row ids, file paths, account numbers) holds
//! only as many entries as there are keys in use.
//!
//! ```
//! use std::time::Duration;
//! use strata_sync::keylock::{KeyLockError, KeyLockManager, LockMode};
//!
//! let locks = KeyLockManager::<u64>::new();
//! {
//!     let a = locks.read(&7);
//!     let b = locks.read(&7); // readers share a key
//!     assert_eq!(*a.key(), 7);
//!     assert_eq!(locks.try_write(&7).unwrap_err(), KeyLockError::WouldBlock);
//!     assert_eq!(
//!         locks.try_write_for(&7, Duration::from_millis(1)).unwrap_err(),
//!         KeyLockError::Timeout
//!     );
//!     drop((a, b));
//! }
//! let w = locks.write(&7);
//! assert!(locks.try_read(&8).is_ok()); // other keys are independent
//! drop(w);
//!
//! // Several keys at once, in a global order: two such calls cannot deadlock.
//! let many = locks.lock_many([(3, LockMode::Write), (1, LockMode::Read), (3, LockMode::Read)]);
//! assert_eq!(many.len(), 2); // key 3 was asked twice: merged, Write wins
//! assert_eq!(many.mode(&3), Some(LockMode::Write));
//! drop(many);
//!
//! assert_eq!(locks.live_keys(), 0); // unused entries are removed
//! assert_eq!(locks.stats().acquisitions, 6);
//! ```
//!
//! # Algorithm
//!
//! The table is split into shards (256 by default, [`KeyLockManager::with_shards`]
//! for another power of two); a key's shard is chosen by its hash. Each shard is a
//! [`Mutex`] around a `HashMap<K, Entry>`, padded to its own cache line. An entry
//! counts the key's readers, whether a writer holds it, and how many readers and
//! writers wait for it; it owns a pair of condition variables (one for waiting readers,
//! one for waiting writers), created only when a first thread has to wait.
//!
//! * **Acquire.** Lock the shard. If the key has no entry, insert one already held
//!   in the requested mode: this is the uncontended path, one hash-map insert. If the
//!   entry admits the request, update it. Otherwise register as a waiter in the entry
//!   (which keeps it in the table), and wait on the entry's reader or writer condition
//!   variable with the shard's mutex, re-checking after every wake-up.
//! * **Release** (a guard's drop). Lock the shard, update the entry; if nobody holds
//!   the key and nobody waits for it, remove the entry (and shrink the shard's map
//!   once it is mostly empty, so a burst of keys does not pin memory); otherwise wake
//!   whoever the entry now admits: one writer if the key is free and a writer waits,
//!   else every waiting reader if no writer holds or waits. The same wake-up runs when
//!   a timed wait gives up, because the waiter that leaves may have been the one
//!   notified, or the one waiting writer that held readers back.
//!
//! Every state change happens under the shard's mutex, and a waiter re-checks the
//! state under that mutex after every wake-up, so a wake-up cannot be lost between a
//! check and a wait (the wait releases the mutex atomically), and spurious wake-ups
//! are harmless.
//!
//! # Policy
//!
//! * **Writer-preferring.** A reader is admitted only when no writer holds *or waits
//!   for* the key; a writer when no one holds it. So writers never starve behind a
//!   stream of readers. The price: a continuous stream of writers on one key can delay
//!   its readers indefinitely. A released writer wakes the next writer before any
//!   reader. Nothing is strictly FIFO: an arriving writer may take a free key ahead of
//!   a woken one (the woken one waits again).
//! * **Not re-entrant.** A thread that asks for a key it already holds in a conflicting
//!   mode (write then anything, or read then write) waits for itself forever; and a
//!   second `read` of a held key deadlocks if a writer starts waiting in between.
//!   Detecting this would need a per-thread record of held keys on every acquisition,
//!   so it is not done. [`lock_many`](KeyLockManager::lock_many) does merge a key
//!   requested twice within one call (`Write` wins).
//! * **Deadlock freedom of `lock_many`.** It sorts the keys by `K: Ord`, merges
//!   duplicates, and acquires them in that order. Threads that only take keys through
//!   `lock_many` / [`try_lock_many_for`](KeyLockManager::try_lock_many_for), or hold at
//!   most one key at a time otherwise, cannot deadlock: every such thread waits only
//!   for a key greater than every key it holds, so no cycle of waits exists. Mixing
//!   nested single-key locks with `lock_many` is the caller's responsibility. `Ord`,
//!   `Eq` and `Hash` must agree for the merging to find duplicates; if they do not,
//!   the result can deadlock but is never memory-unsafe.
//!
//! # Progress and linearization points
//!
//! This is a **blocking** lock. [`read`](KeyLockManager::read) and
//! [`write`](KeyLockManager::write) wait for conflicting holders;
//! [`try_read`](KeyLockManager::try_read) and [`try_write`](KeyLockManager::try_write)
//! never wait for a holder of the key (they fail with [`KeyLockError::WouldBlock`]), but
//! like every operation here they take the shard's mutex for a short, bounded critical
//! section (a hash-map lookup and a few counter updates), so they can be delayed by
//! another thread's bookkeeping on the same shard. The `_for` variants wait at most
//! their timeout for holders of the keys (plus the shard mutex's delays), then fail
//! with [`KeyLockError::Timeout`].
//!
//! An acquisition takes effect when the entry is updated under the shard's mutex (the
//! insert of a new entry, or the admitting check and counter update after the last
//! wake-up); a release when its guard's drop updates the entry under that mutex.
//! Mutual exclusion and the memory ordering of the protected data follow from the
//! shard mutex: a release's unlock of the shard mutex happens-before the next
//! acquisition's lock of it.
//!
//! # Panics and poisoning
//!
//! No operation panics on its own. The only code that runs while a shard's mutex is
//! held and that could panic is `K`'s `Hash`, `Eq`, `Clone` and `Drop`, and the
//! allocator; the key of a guard is cloned before the key is acquired, a waiter's
//! wake-up does not clone it, and `HashMap` stays consistent when they panic. One
//! window remains: a `Hash` or `Eq` that panics during a registered waiter's wake-up
//! leaves that waiter counted, which holds back later acquisitions of the key (readers
//! behind a phantom waiting writer). So a poisoned shard mutex still guards a consistent
//! table, and every operation here goes on with it (`PoisonError::into_inner`) rather
//! than failing. A guard's drop never panics (unless `K`'s own `Eq`, `Hash` or `Drop`
//! does).
//!
//! # Statistics
//!
//! [`KeyLockManager::stats`] sums per-shard counters: acquisitions, acquisitions that
//! had to wait, timed-out attempts and failed `try_` attempts, plus the number of
//! live entries. Each shard's counters live beside its table, under its mutex, which
//! every operation holds anyway: counting costs a plain increment on a cache line
//! already owned, and no atomic. `stats` and `live_keys` lock each shard in turn.

use core::fmt;
use core::hash::{BuildHasher, Hash};
use core::mem::ManuallyDrop;
use core::time::Duration;
use std::collections::HashMap;
#[cfg(not(strata_loom))]
use std::collections::hash_map::RandomState;
use std::time::Instant;

use strata_primitives::CachePadded;
use strata_primitives::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// The number of shards of [`KeyLockManager::new`].
pub const DEFAULT_SHARDS: usize = 256;

/// The largest shard count [`KeyLockManager::with_shards`] accepts.
pub const MAX_SHARDS: usize = 1 << 16;

/// `true` under the test-only `--cfg strata_weaken`: a release then wakes waiters
/// *before* it updates the entry, so the wake-up looks at the old state (the key still
/// held) and wakes nobody: a lost wake-up. The loom models that block a thread on a
/// held key must then report a deadlock (they are `should_panic` under that cfg), which
/// shows that they can detect one.
const fn wake_before_update() -> bool {
    cfg!(strata_weaken)
}

/// How a key is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// Shared: any number of readers hold the key together.
    Read,
    /// Exclusive: one writer and nobody else. Orders after `Read`, so merging two
    /// requests for one key is their maximum.
    Write,
}

/// Why a non-blocking or timed acquisition failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum KeyLockError {
    /// A `try_` call found the key held in a conflicting mode (or, for a reader, a
    /// writer waiting for it).
    #[error("the key is held in a conflicting mode")]
    WouldBlock,
    /// A `_for` call did not acquire the key before its timeout.
    #[error("the key could not be acquired before the timeout")]
    Timeout,
}

/// [`KeyLockManager::with_shards`] was given a count that is not a power of two
/// between 1 and [`MAX_SHARDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("invalid shard count {requested}: expected a power of two from 1 to {MAX_SHARDS}")]
pub struct ShardCountError {
    requested: usize,
}

impl ShardCountError {
    /// The rejected shard count.
    pub const fn requested(&self) -> usize {
        self.requested
    }
}

/// A snapshot of a manager's counters (cumulative since its creation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyLockStats {
    /// Successful acquisitions of a key (each key of a `lock_many` counts once).
    pub acquisitions: u64,
    /// Successful acquisitions that found the key unavailable and waited for it.
    pub contended: u64,
    /// Timed attempts (`_for`) that gave up.
    pub timeouts: u64,
    /// `try_` attempts that failed with [`KeyLockError::WouldBlock`].
    pub would_block: u64,
    /// Keys with an entry in the table: held or waited for.
    pub live_keys: usize,
}

impl KeyLockStats {
    /// `contended / acquisitions`: the fraction of acquisitions that had to wait, in
    /// `[0, 1]` (0 when there was no acquisition).
    pub fn contention_ratio(&self) -> f64 {
        if self.acquisitions == 0 {
            0.0
        } else {
            self.contended as f64 / self.acquisitions as f64
        }
    }
}

/// The condition variables of one key, shared with its waiters (a waiter waits on
/// them while the entry itself may move in the map).
struct Waiters {
    readers: Condvar,
    writers: Condvar,
}

/// A waiter's own reference to its key's condition variables.
struct WaitHandle(ManuallyDrop<Arc<Waiters>>);

impl Drop for WaitHandle {
    fn drop(&mut self) {
        // Under loom, dropping loom's `Arc` while a failed model unwinds (after a
        // reported deadlock) aborts the process; the reference is leaked instead, so
        // that the model's failure is reported. Outside loom it is always dropped.
        if !(cfg!(strata_loom) && std::thread::panicking()) {
            // SAFETY: `self.0` is dropped only here, once, and not used afterwards (this
            // is `WaitHandle`'s drop).
            unsafe { ManuallyDrop::drop(&mut self.0) }
        }
    }
}

/// The state of one key in use. Counts are `usize`: every holder owns a guard and
/// every waiter a stack frame, so they cannot overflow.
struct Entry {
    readers: usize,
    writer: bool,
    waiting_readers: usize,
    waiting_writers: usize,
    /// Created when a first thread has to wait; kept until the entry is removed.
    waiters: Option<Arc<Waiters>>,
}

impl Entry {
    fn held(mode: LockMode) -> Self {
        Self {
            readers: usize::from(mode == LockMode::Read),
            writer: mode == LockMode::Write,
            waiting_readers: 0,
            waiting_writers: 0,
            waiters: None,
        }
    }

    /// Whether a request in `mode` may take the key now (writer-preferring: a reader
    /// also defers to waiting writers).
    fn admits(&self, mode: LockMode) -> bool {
        match mode {
            LockMode::Read => !self.writer && self.waiting_writers == 0,
            LockMode::Write => !self.writer && self.readers == 0,
        }
    }

    fn grant(&mut self, mode: LockMode) {
        match mode {
            LockMode::Read => self.readers += 1,
            LockMode::Write => self.writer = true,
        }
    }

    fn waiting(&mut self, mode: LockMode) -> &mut usize {
        match mode {
            LockMode::Read => &mut self.waiting_readers,
            LockMode::Write => &mut self.waiting_writers,
        }
    }

    fn unused(&self) -> bool {
        self.readers == 0 && !self.writer && self.waiting_readers == 0 && self.waiting_writers == 0
    }

    /// Wakes whoever the current state admits: one waiting writer if the key is free,
    /// else all waiting readers if no writer holds or waits. Idempotent.
    fn wake(&self) {
        let Some(w) = &self.waiters else { return };
        if self.writer {
            return;
        }
        if self.readers == 0 && self.waiting_writers > 0 {
            w.writers.notify_one();
        } else if self.waiting_writers == 0 && self.waiting_readers > 0 {
            w.readers.notify_all();
        }
    }
}

/// One shard's table and counters, behind the shard's mutex.
struct Table<K> {
    map: HashMap<K, Entry>,
    acquisitions: u64,
    contended: u64,
    timeouts: u64,
    would_block: u64,
}

/// One shard: a mutex around its part of the table, on its own cache line(s).
struct Shard<K> {
    table: Mutex<Table<K>>,
}

impl<K> Shard<K> {
    fn new() -> Self {
        Self {
            table: Mutex::new(Table {
                map: HashMap::new(),
                acquisitions: 0,
                contended: 0,
                timeouts: 0,
                would_block: 0,
            }),
        }
    }

    /// Locks the table, going on through poisoning (see the module docs: the table is
    /// consistent whenever the mutex is released, even by a panic).
    fn lock(&self) -> MutexGuard<'_, Table<K>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The hasher that picks a key's shard: randomly keyed (so that keys chosen by an
/// adversary do not all land in one shard), except under loom, which needs every
/// execution of a model to make the same choices: there the keys are fixed.
#[cfg(not(strata_loom))]
type ShardHasher = RandomState;
#[cfg(strata_loom)]
type ShardHasher = core::hash::BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

/// Removes an unused entry, and shrinks the shard's map when it has become mostly
/// empty (fewer than 1/8 of its capacity in use, above 64 slots), to twice its length:
/// a burst of many keys does not pin its memory for ever. The hysteresis between the
/// shrink threshold and the new capacity keeps the rehashing amortized O(1) per
/// operation.
fn remove_entry<K: Hash + Eq>(map: &mut HashMap<K, Entry>, key: &K) {
    map.remove(key);
    let cap = map.capacity();
    if cap > 64 && map.len() < cap / 8 {
        map.shrink_to(map.len() * 2);
    }
}

/// How long an acquisition may wait.
#[derive(Clone, Copy)]
enum Wait {
    /// Not at all (`try_`).
    No,
    /// Until this instant (`_for`).
    Until(Instant),
    /// As long as it takes.
    Forever,
}

impl Wait {
    fn for_timeout(timeout: Duration) -> Self {
        // A timeout too long to represent is no timeout.
        Instant::now()
            .checked_add(timeout)
            .map_or(Self::Forever, Self::Until)
    }
}

/// A sharded table of per-key reader-writer locks; see the [module docs](self).
///
/// `K` needs `Hash + Eq + Clone` (a guard keeps a clone of its key, and the table
/// another), and `Ord` for [`lock_many`](Self::lock_many).
pub struct KeyLockManager<K> {
    shards: Box<[CachePadded<Shard<K>>]>,
    mask: usize,
    hasher: ShardHasher,
}

impl<K: Hash + Eq + Clone> Default for KeyLockManager<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K> fmt::Debug for KeyLockManager<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyLockManager")
            .field("shards", &self.shards.len())
            .field("stats", &self.stats())
            .finish()
    }
}

impl<K> KeyLockManager<K> {
    /// The number of shards.
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// A snapshot of the counters (see [`KeyLockStats`]). It locks each shard in turn,
    /// so it is consistent per shard but not across shards while other threads run.
    pub fn stats(&self) -> KeyLockStats {
        let mut s = KeyLockStats::default();
        for sh in self.shards.iter() {
            let t = sh.lock();
            s.acquisitions = s.acquisitions.wrapping_add(t.acquisitions);
            s.contended = s.contended.wrapping_add(t.contended);
            s.timeouts = s.timeouts.wrapping_add(t.timeouts);
            s.would_block = s.would_block.wrapping_add(t.would_block);
            s.live_keys = s.live_keys.wrapping_add(t.map.len());
        }
        s
    }

    /// The number of keys with an entry (held, or waited for). 0 once every guard is
    /// dropped and no thread waits. Locks each shard in turn.
    pub fn live_keys(&self) -> usize {
        self.shards
            .iter()
            .map(|sh| sh.lock().map.len())
            .fold(0, usize::wrapping_add)
    }
}

impl<K: Hash + Eq + Clone> KeyLockManager<K> {
    /// A manager with [`DEFAULT_SHARDS`] shards.
    pub fn new() -> Self {
        Self::build(DEFAULT_SHARDS)
    }

    /// A manager with `shards` shards: a power of two from 1 to [`MAX_SHARDS`], else
    /// [`ShardCountError`]. More shards mean less contention on the shard mutexes
    /// between unrelated keys, at 128 bytes each.
    pub fn with_shards(shards: usize) -> Result<Self, ShardCountError> {
        if shards.is_power_of_two() && shards <= MAX_SHARDS {
            Ok(Self::build(shards))
        } else {
            Err(ShardCountError { requested: shards })
        }
    }

    fn build(shards: usize) -> Self {
        Self {
            shards: (0..shards)
                .map(|_| CachePadded::new(Shard::new()))
                .collect(),
            mask: shards - 1,
            hasher: ShardHasher::default(),
        }
    }

    fn shard_of(&self, key: &K) -> usize {
        // Truncation to usize is intended: only the low bits select the shard.
        (self.hasher.hash_one(key) as usize) & self.mask
    }

    /// Blocks until `key` is held for reading; shared with other readers.
    pub fn read(&self, key: &K) -> KeyReadGuard<'_, K> {
        let shard = self.shard_of(key);
        // Cloned before acquiring: a panicking `clone` must not leave the key held.
        let owned = key.clone();
        // Waiting without a deadline only ends by acquiring.
        let _ = self.acquire(shard, key, LockMode::Read, Wait::Forever);
        KeyReadGuard {
            held: Held::new(self, owned, shard, LockMode::Read),
        }
    }

    /// Blocks until `key` is held for writing, exclusively.
    pub fn write(&self, key: &K) -> KeyWriteGuard<'_, K> {
        let shard = self.shard_of(key);
        // Cloned before acquiring: a panicking `clone` must not leave the key held.
        let owned = key.clone();
        let _ = self.acquire(shard, key, LockMode::Write, Wait::Forever);
        KeyWriteGuard {
            held: Held::new(self, owned, shard, LockMode::Write),
        }
    }

    /// Takes `key` for reading if no writer holds or waits for it, without waiting;
    /// else [`KeyLockError::WouldBlock`].
    pub fn try_read(&self, key: &K) -> Result<KeyReadGuard<'_, K>, KeyLockError> {
        self.read_with(key, Wait::No)
    }

    /// Takes `key` for writing if nobody holds it, without waiting; else
    /// [`KeyLockError::WouldBlock`].
    pub fn try_write(&self, key: &K) -> Result<KeyWriteGuard<'_, K>, KeyLockError> {
        self.write_with(key, Wait::No)
    }

    /// Like [`read`](Self::read), but gives up with [`KeyLockError::Timeout`] after
    /// `timeout`. A timeout too large to represent waits forever.
    pub fn try_read_for(
        &self,
        key: &K,
        timeout: Duration,
    ) -> Result<KeyReadGuard<'_, K>, KeyLockError> {
        self.read_with(key, Wait::for_timeout(timeout))
    }

    /// Like [`write`](Self::write), but gives up with [`KeyLockError::Timeout`] after
    /// `timeout`. A timeout too large to represent waits forever.
    pub fn try_write_for(
        &self,
        key: &K,
        timeout: Duration,
    ) -> Result<KeyWriteGuard<'_, K>, KeyLockError> {
        self.write_with(key, Wait::for_timeout(timeout))
    }

    fn read_with(&self, key: &K, wait: Wait) -> Result<KeyReadGuard<'_, K>, KeyLockError> {
        let shard = self.shard_of(key);
        // Cloned before acquiring: a panicking `clone` must not leave the key held.
        let owned = key.clone();
        self.acquire(shard, key, LockMode::Read, wait)?;
        Ok(KeyReadGuard {
            held: Held::new(self, owned, shard, LockMode::Read),
        })
    }

    fn write_with(&self, key: &K, wait: Wait) -> Result<KeyWriteGuard<'_, K>, KeyLockError> {
        let shard = self.shard_of(key);
        // Cloned before acquiring: a panicking `clone` must not leave the key held.
        let owned = key.clone();
        self.acquire(shard, key, LockMode::Write, wait)?;
        Ok(KeyWriteGuard {
            held: Held::new(self, owned, shard, LockMode::Write),
        })
    }

    /// Acquires `key` in `mode` on shard `shard`, waiting as `wait` allows.
    fn acquire(
        &self,
        shard: usize,
        key: &K,
        mode: LockMode,
        wait: Wait,
    ) -> Result<(), KeyLockError> {
        let sh = &self.shards[shard];
        let mut guard = sh.lock();
        let t = &mut *guard;
        let waiters = match t.map.get_mut(key) {
            None => {
                // The uncontended path: a fresh entry, already held.
                t.map.insert(key.clone(), Entry::held(mode));
                t.acquisitions = t.acquisitions.wrapping_add(1);
                return Ok(());
            }
            Some(e) if e.admits(mode) => {
                e.grant(mode);
                t.acquisitions = t.acquisitions.wrapping_add(1);
                return Ok(());
            }
            Some(e) => {
                if let Wait::No = wait {
                    t.would_block = t.would_block.wrapping_add(1);
                    return Err(KeyLockError::WouldBlock);
                }
                // Registered as a waiter, this thread keeps the entry in the table.
                *e.waiting(mode) += 1;
                WaitHandle(ManuallyDrop::new(Arc::clone(e.waiters.get_or_insert_with(
                    || {
                        Arc::new(Waiters {
                            readers: Condvar::new(),
                            writers: Condvar::new(),
                        })
                    },
                ))))
            }
        };
        let waiters: &Waiters = &waiters.0;
        let cv = match mode {
            LockMode::Read => &waiters.readers,
            LockMode::Write => &waiters.writers,
        };
        loop {
            guard = match wait {
                Wait::Until(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        let t = &mut *guard;
                        t.timeouts = t.timeouts.wrapping_add(1);
                        let e = Self::waiter_entry(&mut t.map, key, mode);
                        let w = e.waiting(mode);
                        *w = w.saturating_sub(1);
                        if e.unused() {
                            remove_entry(&mut t.map, key);
                        } else {
                            // This waiter may have taken a notification meant for the
                            // next in line, or have been the waiting writer that held
                            // readers back: pass it on.
                            e.wake();
                        }
                        return Err(KeyLockError::Timeout);
                    }
                    cv.wait_timeout(guard, deadline - now)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
                Wait::Forever | Wait::No => cv.wait(guard).unwrap_or_else(PoisonError::into_inner),
            };
            let t = &mut *guard;
            let e = Self::waiter_entry(&mut t.map, key, mode);
            if e.admits(mode) {
                let w = e.waiting(mode);
                *w = w.saturating_sub(1);
                e.grant(mode);
                t.acquisitions = t.acquisitions.wrapping_add(1);
                t.contended = t.contended.wrapping_add(1);
                return Ok(());
            }
        }
    }

    /// The entry of a registered waiter. A registered waiter keeps its entry in the
    /// table, so the entry is always there; should that invariant ever break, the entry
    /// is re-created with this waiter registered (instead of a panic) and the waiter
    /// goes on waiting on its condition variable, which any later state change on the
    /// key does not notify: the worst outcome is a hang, never a panic or UB.
    ///
    /// The key is not cloned on this path (a wake-up), so a panicking `Clone` cannot
    /// leave the waiter's registration behind. Only an inconsistent `Hash`/`Eq` of `K`
    /// (a broken trait contract, which `HashMap` itself does not survive) can make the
    /// final lookup miss the entry just inserted; that panics.
    fn waiter_entry<'m>(map: &'m mut HashMap<K, Entry>, key: &K, mode: LockMode) -> &'m mut Entry {
        if !map.contains_key(key) {
            let mut e = Entry {
                readers: 0,
                writer: false,
                waiting_readers: 0,
                waiting_writers: 0,
                waiters: None,
            };
            *e.waiting(mode) = 1;
            map.insert(key.clone(), e);
        }
        map.get_mut(key)
            .expect("KeyLockManager: K's Hash and Eq disagree (an entry just inserted is not found)")
    }

    /// Releases `key` held in `mode` on shard `shard`. Never panics.
    fn release(&self, shard: usize, key: &K, mode: LockMode) {
        // Under loom, a panic (a failed assertion, a reported deadlock) ends the
        // model's execution, and touching loom's primitives while it unwinds aborts the
        // process (a second panic), so a guard dropped by the unwinding releases
        // nothing. Nothing would observe the release. Not compiled outside loom.
        #[cfg(strata_loom)]
        if std::thread::panicking() {
            return;
        }
        let Some(sh) = self.shards.get(shard) else {
            return;
        };
        let mut guard = sh.lock();
        let map = &mut guard.map;
        let Some(e) = map.get_mut(key) else {
            // Unreachable: a guard's key has an entry until the guard is dropped.
            return;
        };
        if wake_before_update() {
            e.wake(); // the planted bug of `--cfg strata_weaken`
        }
        match mode {
            LockMode::Read => e.readers = e.readers.saturating_sub(1),
            LockMode::Write => e.writer = false,
        }
        if e.unused() {
            remove_entry(map, key);
        } else if !wake_before_update() {
            e.wake();
        }
    }
}

impl<K: Hash + Eq + Clone + Ord> KeyLockManager<K> {
    /// Acquires every key of `keys` in its mode, blocking, and returns one guard for
    /// all of them.
    ///
    /// The keys are sorted by `K: Ord` and a key given more than once is taken once
    /// (in `Write` mode if any request for it was `Write`), then acquired in that order;
    /// so two `lock_many` calls with overlapping key sets cannot deadlock (see the
    /// module docs for the exact condition). An empty set gives an empty guard.
    pub fn lock_many(&self, keys: impl IntoIterator<Item = (K, LockMode)>) -> MultiGuard<'_, K> {
        let wanted = Self::ordered(keys);
        let mut guard = MultiGuard {
            mgr: self,
            held: Vec::with_capacity(wanted.len()),
        };
        for (key, mode) in wanted {
            let shard = self.shard_of(&key);
            let _ = self.acquire(shard, &key, mode, Wait::Forever);
            guard.held.push((key, mode, shard));
        }
        guard
    }

    /// Like [`lock_many`](Self::lock_many), but gives up with [`KeyLockError::Timeout`]
    /// once `timeout` has passed (one deadline for the whole set), releasing every key
    /// already taken.
    pub fn try_lock_many_for(
        &self,
        keys: impl IntoIterator<Item = (K, LockMode)>,
        timeout: Duration,
    ) -> Result<MultiGuard<'_, K>, KeyLockError> {
        self.lock_many_with(keys, Wait::for_timeout(timeout))
    }

    /// Like [`lock_many`](Self::lock_many), but never waits for a holder: if some key
    /// is unavailable, releases the keys already taken and fails with
    /// [`KeyLockError::WouldBlock`].
    pub fn try_lock_many(
        &self,
        keys: impl IntoIterator<Item = (K, LockMode)>,
    ) -> Result<MultiGuard<'_, K>, KeyLockError> {
        self.lock_many_with(keys, Wait::No)
    }

    fn lock_many_with(
        &self,
        keys: impl IntoIterator<Item = (K, LockMode)>,
        wait: Wait,
    ) -> Result<MultiGuard<'_, K>, KeyLockError> {
        let wanted = Self::ordered(keys);
        let mut guard = MultiGuard {
            mgr: self,
            held: Vec::with_capacity(wanted.len()),
        };
        for (key, mode) in wanted {
            let shard = self.shard_of(&key);
            // On failure `guard` drops here and releases what it holds.
            self.acquire(shard, &key, mode, wait)?;
            guard.held.push((key, mode, shard));
        }
        Ok(guard)
    }

    /// The requests sorted by key, each key once with the strongest mode asked.
    fn ordered(keys: impl IntoIterator<Item = (K, LockMode)>) -> Vec<(K, LockMode)> {
        let mut v: Vec<(K, LockMode)> = keys.into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                kept.1 = kept.1.max(later.1);
                true
            } else {
                false
            }
        });
        v
    }
}

/// What a single-key guard holds: the manager, its own copy of the key, its shard.
struct Held<'a, K: Hash + Eq + Clone> {
    mgr: &'a KeyLockManager<K>,
    key: K,
    shard: usize,
    mode: LockMode,
}

impl<'a, K: Hash + Eq + Clone> Held<'a, K> {
    fn new(mgr: &'a KeyLockManager<K>, key: K, shard: usize, mode: LockMode) -> Self {
        Self {
            mgr,
            key,
            shard,
            mode,
        }
    }
}

/// Releases the key: the drop of both guard types.
impl<K: Hash + Eq + Clone> Drop for Held<'_, K> {
    fn drop(&mut self) {
        self.mgr.release(self.shard, &self.key, self.mode);
    }
}

/// Holds a key for reading; releases it when dropped.
#[must_use = "the key is released as soon as the guard is dropped"]
pub struct KeyReadGuard<'a, K: Hash + Eq + Clone> {
    held: Held<'a, K>,
}

impl<K: Hash + Eq + Clone> KeyReadGuard<'_, K> {
    /// The key held.
    pub fn key(&self) -> &K {
        &self.held.key
    }
}

impl<K: Hash + Eq + Clone + fmt::Debug> fmt::Debug for KeyReadGuard<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyReadGuard")
            .field("key", &self.held.key)
            .finish()
    }
}

/// Holds a key for writing, exclusively; releases it when dropped.
#[must_use = "the key is released as soon as the guard is dropped"]
pub struct KeyWriteGuard<'a, K: Hash + Eq + Clone> {
    held: Held<'a, K>,
}

impl<K: Hash + Eq + Clone> KeyWriteGuard<'_, K> {
    /// The key held.
    pub fn key(&self) -> &K {
        &self.held.key
    }
}

impl<K: Hash + Eq + Clone + fmt::Debug> fmt::Debug for KeyWriteGuard<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyWriteGuard")
            .field("key", &self.held.key)
            .finish()
    }
}

/// Holds a set of keys taken by [`KeyLockManager::lock_many`] and friends; releases
/// them (in reverse order of acquisition) when dropped.
#[must_use = "the keys are released as soon as the guard is dropped"]
pub struct MultiGuard<'a, K: Hash + Eq + Clone> {
    mgr: &'a KeyLockManager<K>,
    /// Sorted by key, each key once.
    held: Vec<(K, LockMode, usize)>,
}

impl<K: Hash + Eq + Clone + Ord> MultiGuard<'_, K> {
    /// The number of distinct keys held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether no key is held (the request was empty).
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The keys held and their modes, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, LockMode)> + '_ {
        self.held.iter().map(|(k, m, _)| (k, *m))
    }

    /// The mode `key` is held in by this guard, or `None` if it is not one of its keys.
    pub fn mode(&self, key: &K) -> Option<LockMode> {
        self.held
            .binary_search_by(|(k, _, _)| k.cmp(key))
            .ok()
            .map(|i| self.held[i].1)
    }
}

impl<K: Hash + Eq + Clone> Drop for MultiGuard<'_, K> {
    fn drop(&mut self) {
        while let Some((key, mode, shard)) = self.held.pop() {
            self.mgr.release(shard, &key, mode);
        }
    }
}

impl<K: Hash + Eq + Clone + fmt::Debug> fmt::Debug for MultiGuard<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.held.iter().map(|(k, m, _)| (k, m)))
            .finish()
    }
}

#[cfg(test)]
#[path = "keylock_tests.rs"]
mod tests;
