//! A sequence lock: readers copy a small plain-old-data value without writing shared
//! memory, writers bump a sequence counter around each write.
//!
//! [`SeqLock<T>`] holds a `T` that is *plain old data*: the bound is
//! `T: bytemuck::NoUninit + bytemuck::AnyBitPattern` (what `#[derive(Pod, Zeroable)]`
//! gives, or any [`bytemuck::Pod`] type: integers, floats, arrays of them, `#[repr(C)]`
//! structs without padding). A reader copies the value while a writer may be changing
//! it, notices the overlap from the sequence counter, and throws the copy away. Two
//! properties of the bound make that copy sound:
//!
//! * `NoUninit`: `T` has no padding, so every byte of the storage is initialized and
//!   may be loaded as part of an integer (loading an uninitialized byte is undefined
//!   behaviour).
//! * `AnyBitPattern`: every bit pattern is a valid `T`, so a torn copy (half old, half
//!   new) is still a valid value to hold until it is discarded. A type with a pointer,
//!   a reference, a `bool` or an enum has invalid bit patterns and is rejected.
//!
//! # Storage: atomics only
//!
//! A read racing a write is a data race unless both sides are atomic, and a data race
//! is undefined behaviour in Rust, whatever the sequence check does afterwards. So the
//! value is never read or written with ordinary loads and stores once the lock is
//! shared: it is copied word by word through [`AtomicUsize`] (whole machine words),
//! then an [`AtomicU32`] and [`AtomicU8`]s for the last `size_of::<T>() % 8` bytes,
//! into a local `T` (see `Words`). The storage is inline: a `#[repr(C)]` cell exactly
//! the size of `T`, aligned to at least a word, that these atomics view with
//! `Atomic*::from_ptr`. A read of a 32-byte value is one sequence load, four word
//! loads, one fence and one sequence load (on x86-64 the fence is free and the word
//! loads are plain `mov`s). Under `--cfg strata_loom` the storage is a boxed slice of
//! loom's atomic words instead, because loom's atomics cannot be laid over memory;
//! the protocol above them (orderings, fences, retries) is the same code.
//!
//! # The algorithm and why its fences are enough
//!
//! The counter `seq` is even when no write is in progress.
//!
//! * Writer: take the writer lock by a compare-and-swap of `seq` from an even `s` to
//!   `s + 1` (`Acquire`); `fence(Release)`; store the words (`Relaxed`); store
//!   `s + 2` into `seq` (`Release`).
//! * Reader: `s1 = seq.load(Acquire)`; if `s1` is odd a write is in progress, retry;
//!   load the words (`Relaxed`); `fence(Acquire)`; `s2 = seq.load(Relaxed)`; the copy
//!   is good if `s2 == s1`, otherwise retry.
//!
//! This is the fence-based seqlock of H.-J. Boehm, "Can seqlocks get along with
//! programming language memory models?", MSPC 2012 (section 4's reader and writer with
//! `atomic_thread_fence`). The argument, in Rust's (C++20's) terms:
//!
//! 1. *A reader never sees a write older than `s1`.* If `s1` was written by the
//!    `Release` store that ended a write, the `Acquire` load synchronizes with it, so
//!    every word that write stored happens-before the reader's word loads, and by
//!    coherence each load returns that write's word or a later one.
//! 2. *A reader that sees any word of a later write fails its check.* Say a word load
//!    returns a value stored by a writer whose lock CAS made `seq` odd. That writer's
//!    `fence(Release)` is sequenced after its CAS and before the word store; the
//!    reader's `fence(Acquire)` is sequenced after the word load and before the
//!    reload of `seq`. By the fence-fence synchronization rule the writer's fence
//!    synchronizes with the reader's, so the CAS happens-before the reload, which
//!    therefore returns the CAS's odd value or a later one: never `s1`.
//! 3. With 1 and 2, a copy whose `s2 == s1` (even) holds exactly the words of the
//!    write that stored `s1` (or the initial value): it is not torn.
//!
//! Writers exclude each other: the CAS reads the `Release` store that ended the
//! previous write, so that write's word stores happen-before this writer's, and the
//! words' modification orders follow the writers' order.
//!
//! # Progress and linearization
//!
//! * Readers never write shared memory and never delay a writer. They are *not*
//!   lock-free: [`read`](SeqLock::read) waits (spinning, then yielding) while a write
//!   is in progress, so a writer preempted mid-write stalls every reader until it
//!   runs again, and a continuous stream of writers can starve a reader forever (each
//!   attempt overlaps a write). [`try_read`](SeqLock::try_read) makes one attempt and
//!   is wait-free: it returns `None` instead of waiting.
//! * Writers are blocking: the sequence counter is the writer lock (odd = held), taken
//!   by compare-and-swap with spinning and yielding backoff. The closure of
//!   [`write`](SeqLock::write) runs while the lock is held, so readers spin for as long
//!   as it runs; keep it short, or compute the value first and [`store`](SeqLock::store)
//!   it.
//! * A write takes effect at the `Release` store that makes the sequence even again;
//!   a successful read at its first load of the sequence (the value it returns is the
//!   one that was current from then until its reload).
//!
//! A panic in the closure given to [`write`](SeqLock::write) leaves the old value and
//! releases the lock: the closure works on a local copy, which is stored only after
//! it returns.
//!
//! Calling [`read`](SeqLock::read) or [`write`](SeqLock::write) on the same lock from
//! inside a `write` closure never returns (the lock is held by the caller).
//!
//! # Example
//!
//! ```
//! use bytemuck::{Pod, Zeroable};
//! use strata_sync::seqlock::SeqLock;
//!
//! #[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
//! #[repr(C)]
//! struct Position {
//!     x: f64,
//!     y: f64,
//!     tick: u64,
//! }
//!
//! let pos = SeqLock::new(Position { x: 0.0, y: 0.0, tick: 0 });
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         for _ in 0..100 {
//!             pos.write(|p| {
//!                 p.x += 1.0;
//!                 p.y += 2.0;
//!                 p.tick += 1;
//!             });
//!         }
//!     });
//!     s.spawn(|| {
//!         for _ in 0..100 {
//!             let p = pos.read();
//!             // Never a mix of two writes.
//!             assert_eq!(p.x, p.tick as f64);
//!             assert_eq!(p.y, 2.0 * p.tick as f64);
//!         }
//!     });
//! });
//! assert_eq!(pos.read().tick, 100);
//! assert_eq!(pos.sequence(), 200); // two steps per write
//! ```

use core::fmt;
#[cfg(strata_loom)]
use core::marker::PhantomData;
use core::mem::size_of;

use bytemuck::{AnyBitPattern, NoUninit};
use strata_primitives::Backoff;
#[cfg(not(strata_loom))]
use strata_primitives::sync::atomic::{AtomicU8, AtomicU32};
use strata_primitives::sync::atomic::{AtomicU64, AtomicUsize, Ordering, fence};

/// The ordering of the store that ends a write (makes the sequence even again).
/// `Release`; `Relaxed` under `--cfg strata_weaken`, which lets a reader that sees the
/// new sequence still load old words (a torn read the loom models must catch).
pub(crate) const fn publish_ordering() -> Ordering {
    if cfg!(strata_weaken) {
        Ordering::Relaxed
    } else {
        Ordering::Release
    }
}

/// Bytes per storage word.
const WORD: usize = size_of::<usize>();

/// The storage of a `T`, read and written only through atomics (shared by
/// [`SeqLock`] and [`crate::versioned::Versioned`]).
///
/// A `#[repr(C)]` cell exactly as large as `T`, aligned to at least a word. Its bytes
/// are covered by `size_of::<T>() / WORD` word atomics, then (on 64-bit targets) one
/// `AtomicU32` if 4 or more bytes remain, then `AtomicU8`s. Every access uses this same
/// decomposition, so atomic accesses of different sizes never overlap.
#[cfg(not(strata_loom))]
#[repr(C)]
pub(crate) struct Words<T> {
    /// Aligns the cell to a word (and to `T`).
    _align: [AtomicUsize; 0],
    cell: strata_primitives::cell::UnsafeCell<T>,
}

/// Under loom: the value's bytes in loom atomic words (the last one zero-padded),
/// because loom's atomics cannot view existing memory.
#[cfg(strata_loom)]
pub(crate) struct Words<T> {
    words: Box<[AtomicUsize]>,
    _value: PhantomData<T>,
}

// SAFETY: the cell is only accessed through atomics (or with `&mut`/ownership), so
// sharing `&Words<T>` between threads is free of data races; what crosses threads is
// a copy of a `T`, which is sound when `T: Send`.
#[cfg(not(strata_loom))]
unsafe impl<T: Send> Sync for Words<T> {}

#[cfg(not(strata_loom))]
impl<T: NoUninit + AnyBitPattern> Words<T> {
    /// Storage holding `value`.
    #[inline]
    pub(crate) const fn new(value: T) -> Self {
        Self {
            _align: [],
            cell: strata_primitives::cell::UnsafeCell::new(value),
        }
    }

    /// The first byte of the storage, with the provenance of the whole cell.
    #[inline(always)]
    fn base(&self) -> *mut u8 {
        self.cell.with_mut(|p| p.cast::<u8>())
    }

    /// Copies the value out with `Relaxed` atomic loads. The copy may be torn if a
    /// store runs concurrently; it is a valid `T` anyway (`AnyBitPattern`).
    #[inline(always)]
    pub(crate) fn load(&self) -> T {
        let mut out = T::zeroed();
        let dst = bytemuck::bytes_of_mut(&mut out);
        let base = self.base();
        let mut chunks = dst.chunks_exact_mut(WORD);
        for (i, chunk) in (&mut chunks).enumerate() {
            // SAFETY: `base + i * WORD` is inside the cell (`i * WORD + WORD <=
            // size_of::<T>()`), aligned to a word (the cell is, via `_align`), valid
            // while `&self` lives, and only ever accessed through an `AtomicUsize`
            // at this offset (see `Words`).
            let word = unsafe { AtomicUsize::from_ptr(base.add(i * WORD).cast()) };
            chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
        }
        let off = size_of::<T>() - size_of::<T>() % WORD;
        let tail = chunks.into_remainder();
        let mut t = 0;
        if WORD > 4 && tail.len() >= 4 {
            // SAFETY: bytes `off..off + 4` are inside the cell, `off` is a multiple of
            // `WORD` (so of 4), and only ever accessed through this `AtomicU32`.
            let word = unsafe { AtomicU32::from_ptr(base.add(off).cast()) };
            tail[..4].copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
            t = 4;
        }
        while t < tail.len() {
            // SAFETY: byte `off + t` is inside the cell (`off + tail.len() ==
            // size_of::<T>()`) and only ever accessed through this `AtomicU8`.
            let byte = unsafe { AtomicU8::from_ptr(base.add(off + t)) };
            tail[t] = byte.load(Ordering::Relaxed);
            t += 1;
        }
        out
    }

    /// Stores `value` with `Relaxed` atomic stores, in the same pieces as
    /// [`load`](Self::load).
    #[inline(always)]
    pub(crate) fn store(&self, value: &T) {
        let src = bytemuck::bytes_of(value);
        let base = self.base();
        let mut chunks = src.chunks_exact(WORD);
        for (i, chunk) in (&mut chunks).enumerate() {
            let mut bytes = [0; WORD];
            bytes.copy_from_slice(chunk);
            // SAFETY: as in `load`: in bounds, word-aligned, only accessed through an
            // `AtomicUsize` at this offset.
            let word = unsafe { AtomicUsize::from_ptr(base.add(i * WORD).cast()) };
            word.store(usize::from_ne_bytes(bytes), Ordering::Relaxed);
        }
        let off = size_of::<T>() - size_of::<T>() % WORD;
        let tail = chunks.remainder();
        let mut t = 0;
        if WORD > 4 && tail.len() >= 4 {
            let mut bytes = [0; 4];
            bytes.copy_from_slice(&tail[..4]);
            // SAFETY: as in `load`: in bounds, 4-aligned, only accessed through this
            // `AtomicU32`.
            let word = unsafe { AtomicU32::from_ptr(base.add(off).cast()) };
            word.store(u32::from_ne_bytes(bytes), Ordering::Relaxed);
            t = 4;
        }
        while t < tail.len() {
            // SAFETY: as in `load`: in bounds, only accessed through this `AtomicU8`.
            let byte = unsafe { AtomicU8::from_ptr(base.add(off + t)) };
            byte.store(tail[t], Ordering::Relaxed);
            t += 1;
        }
    }
}

#[cfg(strata_loom)]
impl<T: NoUninit + AnyBitPattern> Words<T> {
    /// Storage holding `value`.
    pub(crate) fn new(value: T) -> Self {
        let n = size_of::<T>().div_ceil(WORD);
        let words: Box<[AtomicUsize]> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        let this = Self {
            words,
            _value: PhantomData,
        };
        this.store(&value);
        this
    }

    /// Copies the value out with `Relaxed` atomic loads.
    pub(crate) fn load(&self) -> T {
        let mut out = T::zeroed();
        let dst = bytemuck::bytes_of_mut(&mut out);
        for (chunk, word) in dst.chunks_mut(WORD).zip(self.words.iter()) {
            let bytes = word.load(Ordering::Relaxed).to_ne_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        out
    }

    /// Stores `value` with `Relaxed` atomic stores.
    pub(crate) fn store(&self, value: &T) {
        let src = bytemuck::bytes_of(value);
        for (chunk, word) in src.chunks(WORD).zip(self.words.iter()) {
            let mut bytes = [0; WORD];
            bytes[..chunk.len()].copy_from_slice(chunk);
            word.store(usize::from_ne_bytes(bytes), Ordering::Relaxed);
        }
    }
}

/// One optimistic read attempt of `words` guarded by the sequence `seq`: the value and
/// the (even) sequence it was read at, or `None` if a write was in progress or
/// overlapped the copy. Shared by [`SeqLock`] and [`crate::versioned::Versioned`].
#[inline(always)]
pub(crate) fn read_once<T: NoUninit + AnyBitPattern>(
    seq: &AtomicU64,
    words: &Words<T>,
) -> Option<(T, u64)> {
    let s1 = seq.load(Ordering::Acquire);
    if s1 & 1 != 0 {
        return None;
    }
    let value = words.load();
    fence(Ordering::Acquire);
    let s2 = seq.load(Ordering::Relaxed);
    (s1 == s2).then_some((value, s1))
}

/// Writes `value` into `words` while the caller holds the writer lock and `seq` is
/// `odd` (already stored): `fence(Release)`, the word stores, then `odd + 1` with the
/// publishing store. Shared by [`SeqLock`] and [`crate::versioned::Versioned`].
#[inline(always)]
pub(crate) fn publish<T: NoUninit + AnyBitPattern>(
    seq: &AtomicU64,
    words: &Words<T>,
    odd: u64,
    value: &T,
) {
    fence(Ordering::Release);
    words.store(value);
    seq.store(odd.wrapping_add(1), publish_ordering());
}

/// A sequence lock over a plain-old-data value; see the [module docs](self).
///
/// `T` must be `bytemuck::NoUninit + bytemuck::AnyBitPattern` (for example any
/// [`bytemuck::Pod`] type): no padding, no pointers, every bit pattern valid.
///
/// `SeqLock<T>` is `Send` and `Sync` when `T: Send`.
pub struct SeqLock<T> {
    seq: AtomicU64,
    words: Words<T>,
}

/// Releases the writer lock without a write if the writer's closure panics: restores
/// the even sequence the writer started from (nothing was stored).
struct UnlockOnUnwind<'a> {
    seq: &'a AtomicU64,
    even: u64,
}

impl Drop for UnlockOnUnwind<'_> {
    fn drop(&mut self) {
        self.seq.store(self.even, publish_ordering());
    }
}

impl<T: NoUninit + AnyBitPattern> SeqLock<T> {
    /// A lock holding `value`, with sequence 0.
    ///
    /// ```
    /// use strata_sync::seqlock::SeqLock;
    ///
    /// static CLOCK: SeqLock<[u64; 2]> = SeqLock::new([0, 0]);
    /// CLOCK.store([1, 2]);
    /// assert_eq!(CLOCK.read(), [1, 2]);
    /// ```
    #[cfg(not(strata_loom))]
    #[inline]
    pub const fn new(value: T) -> Self {
        Self {
            seq: AtomicU64::new(0),
            words: Words::new(value),
        }
    }

    /// A lock holding `value`, with sequence 0.
    #[cfg(strata_loom)]
    pub fn new(value: T) -> Self {
        Self {
            seq: AtomicU64::new(0),
            words: Words::new(value),
        }
    }

    /// Returns a copy of the value, waiting while a write is in progress and retrying
    /// after a write that overlapped the copy.
    ///
    /// Blocking: a stream of writers can delay a reader indefinitely, and a writer
    /// preempted in its write delays it until the writer runs again.
    ///
    /// ```
    /// use strata_sync::seqlock::SeqLock;
    ///
    /// let lock = SeqLock::new(7u32);
    /// assert_eq!(lock.read(), 7);
    /// ```
    #[inline]
    pub fn read(&self) -> T {
        if let Some((value, _)) = read_once(&self.seq, &self.words) {
            return value;
        }
        self.read_slow()
    }

    #[cold]
    fn read_slow(&self) -> T {
        let backoff = Backoff::new();
        loop {
            backoff.snooze();
            if let Some((value, _)) = read_once(&self.seq, &self.words) {
                return value;
            }
        }
    }

    /// One read attempt: a copy of the value, or `None` if a write was in progress or
    /// overlapped the copy. Wait-free.
    ///
    /// ```
    /// use strata_sync::seqlock::SeqLock;
    ///
    /// let lock = SeqLock::new(1u8);
    /// assert_eq!(lock.try_read(), Some(1)); // no writer: the attempt succeeds
    /// ```
    #[inline]
    pub fn try_read(&self) -> Option<T> {
        read_once(&self.seq, &self.words).map(|(value, _)| value)
    }

    /// Takes the writer lock (the sequence becomes odd), waiting for another writer
    /// if needed; returns the odd sequence.
    #[inline]
    fn lock(&self) -> u64 {
        let s = self.seq.load(Ordering::Relaxed);
        if s & 1 == 0
            && self
                .seq
                .compare_exchange_weak(s, s.wrapping_add(1), Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return s.wrapping_add(1);
        }
        self.lock_slow()
    }

    #[cold]
    fn lock_slow(&self) -> u64 {
        let backoff = Backoff::new();
        loop {
            let s = self.seq.load(Ordering::Relaxed);
            if s & 1 != 0 {
                backoff.snooze();
                continue;
            }
            match self.seq.compare_exchange_weak(
                s,
                s.wrapping_add(1),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return s.wrapping_add(1),
                Err(_) => backoff.spin(),
            }
        }
    }

    /// Updates the value in place: takes the writer lock (waiting for other writers),
    /// runs `f` on a copy of the current value, stores the copy and releases the lock.
    ///
    /// Readers wait while `f` runs. If `f` panics, the value is unchanged, the lock is
    /// released and the sequence is back where it was; the panic propagates.
    ///
    /// ```
    /// use strata_sync::seqlock::SeqLock;
    ///
    /// let lock = SeqLock::new([1u16, 2]);
    /// lock.write(|v| v.swap(0, 1));
    /// assert_eq!(lock.read(), [2, 1]);
    /// ```
    #[inline]
    pub fn write(&self, f: impl FnOnce(&mut T)) {
        let odd = self.lock();
        let guard = UnlockOnUnwind {
            seq: &self.seq,
            even: odd.wrapping_sub(1),
        };
        // Writers are excluded by the lock: this copy is not torn.
        let mut value = self.words.load();
        f(&mut value);
        core::mem::forget(guard);
        publish(&self.seq, &self.words, odd, &value);
    }

    /// Replaces the value (takes the writer lock, waiting for other writers).
    ///
    /// ```
    /// use strata_sync::seqlock::SeqLock;
    ///
    /// let lock = SeqLock::new(0u64);
    /// lock.store(5);
    /// assert_eq!(lock.read(), 5);
    /// ```
    #[inline]
    pub fn store(&self, value: T) {
        let odd = self.lock();
        publish(&self.seq, &self.words, odd, &value);
    }

    /// The sequence counter: even when no write is in progress, odd during a write,
    /// 2 more after each completed write (it wraps after 2^63 writes). A panicked
    /// [`write`](Self::write) leaves it unchanged.
    ///
    /// ```
    /// use strata_sync::seqlock::SeqLock;
    ///
    /// let lock = SeqLock::new(0i32);
    /// lock.store(1);
    /// assert_eq!(lock.sequence(), 2);
    /// ```
    #[inline]
    pub fn sequence(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Consumes the lock and returns the value.
    ///
    /// (There is no `get_mut`: the value lives in atomic storage, which cannot hand out
    /// a `&mut T` in every build. Read, modify and [`store`](Self::store), or
    /// [`write`](Self::write), instead.)
    ///
    /// ```
    /// use strata_sync::seqlock::SeqLock;
    ///
    /// let lock = SeqLock::new(3u8);
    /// assert_eq!(lock.into_inner(), 3);
    /// ```
    #[inline]
    pub fn into_inner(self) -> T {
        // Ownership: no writer can run, the copy is exact.
        self.words.load()
    }
}

impl<T: NoUninit + AnyBitPattern + Default> Default for SeqLock<T> {
    /// A lock holding `T::default()`.
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: NoUninit + AnyBitPattern> From<T> for SeqLock<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: NoUninit + AnyBitPattern> Clone for SeqLock<T> {
    /// A new lock (sequence 0) holding a snapshot of this one's value (waits for a
    /// write in progress, like [`read`](Self::read)).
    fn clone(&self) -> Self {
        Self::new(self.read())
    }
}

impl<T: NoUninit + AnyBitPattern + fmt::Debug> fmt::Debug for SeqLock<T> {
    /// Shows one read attempt: the value, or `<locked>` if a write was in progress
    /// (it never waits, so it is safe inside a write closure).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("SeqLock");
        match read_once(&self.seq, &self.words) {
            Some((value, seq)) => d.field("value", &value).field("sequence", &seq),
            None => d.field("value", &format_args!("<locked>")),
        };
        d.finish()
    }
}

#[cfg(test)]
#[path = "seqlock_tests.rs"]
pub(crate) mod tests;
