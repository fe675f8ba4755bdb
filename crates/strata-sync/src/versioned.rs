//! A versioned cell for optimistic concurrency control: readers copy the value without
//! a lock and validate a generation counter, writers take a lock and bump the
//! generation.
//!
//! [`Versioned<T>`] holds a plain-old-data `T` (the bound is
//! `bytemuck::NoUninit + bytemuck::AnyBitPattern`, as for
//! [`SeqLock`](crate::seqlock::SeqLock): no padding, no pointers, every bit pattern
//! valid; `#[derive(Pod, Zeroable)]` types qualify) and a generation number that is
//! even when the value is stable and grows by 2 with every write.
//!
//! # Algorithm
//!
//! The storage and the optimistic read are [`SeqLock`](crate::seqlock::SeqLock)'s:
//! the value is read and written only through atomic words, and an optimistic read is
//! `g1 = generation.load(Acquire)`; an odd `g1` fails; the `Relaxed` word loads;
//! `fence(Acquire)`; `g2 = generation.load(Relaxed)`; success iff `g1 == g2` (Boehm,
//! "Can seqlocks get along with programming language memory models?", MSPC 2012; the
//! argument is in the [`seqlock`](crate::seqlock) module docs).
//!
//! What differs is the writer side and the reader's way out:
//!
//! * Writers serialize on a real lock, a [`Mutex<()>`](strata_primitives::sync::Mutex)
//!   (std's; loom's under `--cfg strata_loom`), so a waiting writer sleeps in the OS
//!   instead of spinning. Holding it, a writer copies the value out, runs its closure
//!   on the copy, and only then publishes: generation `g + 1` (a `Relaxed`
//!   `fetch_add`),
//!   `fence(Release)`, the word stores, generation `g + 2` (`Release`). The generation
//!   is odd only for the length of the word copy, not while the closure runs, so
//!   optimistic readers are disturbed only by the copy itself.
//! * A reader makes at most `max_optimistic_tries` optimistic attempts (8 by default,
//!   [`DEFAULT_MAX_TRIES`]; see [`with_max_tries`](Versioned::with_max_tries)), then
//!   falls back to taking the writers' lock and copying the value under it.
//!
//! # Progress and linearization
//!
//! * Reads are blocking, with bounded optimism: after at most `max_optimistic_tries`
//!   attempts (each a few loads, none writing the value's memory) a reader stops
//!   retrying and waits for the writers' mutex, then copies the value under it. So a
//!   stream of writers cannot keep a reader retrying forever as it can a plain
//!   seqlock's reader; from then on the reader waits for the lock as a writer would
//!   (std's `Mutex` promises no fairness, so that wait is bounded only by how the
//!   lock is shared, not by a count of writes).
//! * Writers are blocking (a mutex).
//! * A write takes effect at the `Release` store of its new even generation; an
//!   optimistic read at its first load of the generation; a fallback read while it
//!   holds the lock.
//!
//! A panic in the closure given to [`write`](Versioned::write) leaves the value and the
//! generation unchanged (the closure works on a copy that is stored only after it
//! returns); the mutex's poisoning is ignored, because the value it guards is intact.
//!
//! # Optimistic validation
//!
//! [`read_with_version`](Versioned::read_with_version) returns a consistent copy
//! together with its generation, and [`validate`](Versioned::validate) later says
//! whether that generation is still the current one (no write has begun since): the
//! classic optimistic pattern of reading a version, computing, and validating before
//! acting on the result.
//!
//! # Statistics
//!
//! [`stats`](Versioned::stats) reports how reads went wrong: failed optimistic attempts
//! and fallbacks to the lock, both counted exactly (`Relaxed` `fetch_add`, on the slow
//! path only). A successful optimistic read writes nothing shared at all, so reads
//! scale with the readers: counting successes would make every read write one shared
//! cache line. Count your reads yourself if you need the ratio.
//!
//! # Example
//!
//! ```
//! use bytemuck::{Pod, Zeroable};
//! use strata_sync::versioned::Versioned;
//!
//! #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
//! #[repr(C)]
//! struct Limits {
//!     min: u32,
//!     max: u32,
//! }
//!
//! let limits = Versioned::new(Limits { min: 0, max: 10 });
//!
//! // Optimistic concurrency: read with a generation, compute, validate.
//! let (snapshot, generation) = limits.read_with_version();
//! let width = snapshot.max - snapshot.min;
//! assert!(limits.validate(generation)); // nothing was written meanwhile
//!
//! let new_generation = limits.write(|l| l.max = 20);
//! assert_eq!(new_generation, generation + 2);
//! assert!(!limits.validate(generation)); // `width` is stale now
//! assert_eq!(limits.read().max - limits.read().min, width + 10);
//! ```

use core::fmt;

use bytemuck::{AnyBitPattern, NoUninit};
use strata_primitives::sync::atomic::{AtomicU64, Ordering, fence};
use strata_primitives::sync::{Mutex, MutexGuard, PoisonError};
use strata_primitives::{Backoff, CachePadded};

use crate::seqlock::{Words, publish, read_once};

/// The default number of optimistic read attempts before a reader takes the lock.
pub const DEFAULT_MAX_TRIES: u32 = 8;

/// How reads of a [`Versioned`] went wrong, from [`Versioned::stats`] (see the
/// [module docs](self#statistics)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct Stats {
    /// Optimistic attempts that failed (a write was in progress or overlapped the
    /// copy), including the last one before a fallback.
    pub retries: u64,
    /// Reads that gave up on optimism and copied the value under the lock.
    pub fallbacks: u64,
}

/// The statistics counters, on their own cache line.
struct Counters {
    retries: AtomicU64,
    fallbacks: AtomicU64,
}

/// A versioned cell with optimistic reads and locked writes; see the
/// [module docs](self).
///
/// `T` must be `bytemuck::NoUninit + bytemuck::AnyBitPattern` (for example any
/// [`bytemuck::Pod`] type). `Versioned<T>` is `Send` and `Sync` when `T: Send`.
pub struct Versioned<T> {
    generation: AtomicU64,
    words: Words<T>,
    lock: Mutex<()>,
    max_tries: u32,
    counters: CachePadded<Counters>,
}

impl<T: NoUninit + AnyBitPattern> Versioned<T> {
    /// A cell holding `value` at generation 0, with [`DEFAULT_MAX_TRIES`] optimistic
    /// attempts per read.
    ///
    /// ```
    /// use strata_sync::versioned::Versioned;
    ///
    /// let v = Versioned::new(1u64);
    /// assert_eq!(v.version(), 0);
    /// ```
    pub fn new(value: T) -> Self {
        Self::with_max_tries(value, DEFAULT_MAX_TRIES)
    }

    /// A cell holding `value` at generation 0, whose reads make at most `max_tries`
    /// optimistic attempts before taking the lock. `0` makes every read take the lock.
    ///
    /// ```
    /// use strata_sync::versioned::Versioned;
    ///
    /// let v = Versioned::with_max_tries([0u8; 3], 2);
    /// assert_eq!(v.max_tries(), 2);
    /// ```
    pub fn with_max_tries(value: T, max_tries: u32) -> Self {
        Self {
            generation: AtomicU64::new(0),
            words: Words::new(value),
            lock: Mutex::new(()),
            max_tries,
            counters: CachePadded::new(Counters {
                retries: AtomicU64::new(0),
                fallbacks: AtomicU64::new(0),
            }),
        }
    }

    /// The number of optimistic attempts a read makes before taking the lock.
    pub fn max_tries(&self) -> u32 {
        self.max_tries
    }

    /// The writers' lock; poisoning is ignored (a panicking writer never stored
    /// anything, see [`write`](Self::write)).
    fn lock(&self) -> MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns a copy of the value (see [`read_with_version`](Self::read_with_version)).
    ///
    /// ```
    /// use strata_sync::versioned::Versioned;
    ///
    /// let v = Versioned::new(5i16);
    /// assert_eq!(v.read(), 5);
    /// ```
    #[inline]
    pub fn read(&self) -> T {
        self.read_with_version().0
    }

    /// Returns a consistent copy of the value and its generation (even): the value is
    /// exactly the one the write that produced that generation stored.
    ///
    /// Makes up to [`max_tries`](Self::max_tries) optimistic attempts, then copies the
    /// value under the writers' lock.
    ///
    /// ```
    /// use strata_sync::versioned::Versioned;
    ///
    /// let v = Versioned::new(0u32);
    /// v.store(9);
    /// assert_eq!(v.read_with_version(), (9, 2));
    /// ```
    #[inline]
    pub fn read_with_version(&self) -> (T, u64) {
        if self.max_tries > 0
            && let Some(found) = read_once(&self.generation, &self.words)
        {
            return found;
        }
        self.read_slow()
    }

    #[cold]
    fn read_slow(&self) -> (T, u64) {
        let backoff = Backoff::new();
        if self.max_tries > 0 {
            // The first attempt (in `read_with_version`) failed.
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            for _ in 1..self.max_tries {
                backoff.spin();
                if let Some(found) = read_once(&self.generation, &self.words) {
                    return found;
                }
                self.counters.retries.fetch_add(1, Ordering::Relaxed);
            }
        }
        let _guard = self.lock();
        self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
        // Writers change the generation and the words only under the lock, and the
        // lock's acquisition happens after the last writer's release of it: both are
        // stable and current here.
        let generation = self.generation.load(Ordering::Relaxed);
        (self.words.load(), generation)
    }

    /// The current generation: even when no write is in progress (odd during one's
    /// word copy), 2 more after each write; it starts at 0.
    ///
    /// ```
    /// use strata_sync::versioned::Versioned;
    ///
    /// let v = Versioned::new(0u8);
    /// v.write(|x| *x += 1);
    /// assert_eq!(v.version(), 2);
    /// ```
    #[inline]
    pub fn version(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// `true` if `version` is even and still the current generation: no write has
    /// begun since it was read. Loads made before the call (of this cell or of other
    /// atomics) are ordered before the check, so what was computed from them is known
    /// not to have seen a later write of this cell.
    ///
    /// ```
    /// use strata_sync::versioned::Versioned;
    ///
    /// let v = Versioned::new([1u32, 2]);
    /// let g = v.version();
    /// let sum: u32 = v.read().iter().sum();
    /// assert!(v.validate(g));
    /// v.store([3, 4]);
    /// assert!(!v.validate(g));
    /// # let _ = sum;
    /// ```
    #[inline]
    pub fn validate(&self, version: u64) -> bool {
        fence(Ordering::Acquire);
        version & 1 == 0 && self.generation.load(Ordering::Relaxed) == version
    }

    /// Updates the value: takes the writers' lock, runs `f` on a copy of the current
    /// value, publishes the copy, and returns the new generation.
    ///
    /// Readers are not held up while `f` runs (the generation stays even until the
    /// copy is published). If `f` panics, nothing is stored, the generation is
    /// unchanged and the lock is released; the panic propagates. Calling
    /// [`write`](Self::write) or [`store`](Self::store) on the same cell inside `f`
    /// deadlocks (or panics, as std's `Mutex` may).
    ///
    /// ```
    /// use strata_sync::versioned::Versioned;
    ///
    /// let v = Versioned::new(1u64);
    /// assert_eq!(v.write(|x| *x *= 10), 2);
    /// assert_eq!(v.read(), 10);
    /// ```
    pub fn write(&self, f: impl FnOnce(&mut T)) -> u64 {
        let _guard = self.lock();
        // Writers are excluded by the lock: this copy is not torn.
        let mut value = self.words.load();
        f(&mut value);
        self.publish_locked(&value)
    }

    /// Replaces the value and returns the new generation.
    ///
    /// ```
    /// use strata_sync::versioned::Versioned;
    ///
    /// let v = Versioned::new(0u8);
    /// assert_eq!(v.store(4), 2);
    /// assert_eq!(v.read(), 4);
    /// ```
    pub fn store(&self, value: T) -> u64 {
        let _guard = self.lock();
        self.publish_locked(&value)
    }

    /// Publishes `value` while holding the lock: generation `g + 1`, then the
    /// seqlock writer's fence, words and `g + 2`.
    fn publish_locked(&self, value: &T) -> u64 {
        // Only lock holders change the generation, so a load and a store would do;
        // the read-modify-write (uncontended, next to the mutex's own two) makes the
        // writer's first access to the generation a write, which loom's DPOR needs to
        // see it race the readers' loads (it remembers one last access per object,
        // and after a load-then-store that access is the writer's own load).
        let odd = self
            .generation
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1);
        publish(&self.generation, &self.words, odd, value);
        odd.wrapping_add(1)
    }

    /// The failed optimistic attempts and the fallbacks so far (see the
    /// [module docs](self#statistics)).
    ///
    /// ```
    /// use strata_sync::versioned::Versioned;
    ///
    /// let v = Versioned::new(0u32);
    /// v.read();
    /// let s = v.stats();
    /// assert_eq!((s.retries, s.fallbacks), (0, 0));
    /// ```
    pub fn stats(&self) -> Stats {
        Stats {
            retries: self.counters.retries.load(Ordering::Relaxed),
            fallbacks: self.counters.fallbacks.load(Ordering::Relaxed),
        }
    }

    /// Consumes the cell and returns the value.
    ///
    /// ```
    /// use strata_sync::versioned::Versioned;
    ///
    /// assert_eq!(Versioned::new(6u16).into_inner(), 6);
    /// ```
    pub fn into_inner(self) -> T {
        // Ownership: no writer can run, the copy is exact.
        self.words.load()
    }
}

impl<T: NoUninit + AnyBitPattern + Default> Default for Versioned<T> {
    /// A cell holding `T::default()` with the default number of tries.
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: NoUninit + AnyBitPattern> From<T> for Versioned<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: NoUninit + AnyBitPattern> Clone for Versioned<T> {
    /// A new cell (generation 0, fresh statistics, the same `max_tries`) holding a
    /// snapshot of this one's value.
    fn clone(&self) -> Self {
        Self::with_max_tries(self.read(), self.max_tries)
    }
}

impl<T: NoUninit + AnyBitPattern + fmt::Debug> fmt::Debug for Versioned<T> {
    /// Shows one optimistic read attempt: the value and its generation, or
    /// `<writing>` if a write's copy was in progress (it never takes the lock, so it is
    /// safe inside a write closure).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Versioned");
        match read_once(&self.generation, &self.words) {
            Some((value, generation)) => d.field("value", &value).field("version", &generation),
            None => d.field("value", &format_args!("<writing>")),
        };
        d.field("max_tries", &self.max_tries).finish()
    }
}

#[cfg(test)]
#[path = "versioned_tests.rs"]
mod tests;
