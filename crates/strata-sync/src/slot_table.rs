//! [`SlotTable`]: a table of values named by generation-tagged indices, like a file
//! descriptor table: reads by key without locks, inserts that take the lowest free
//! slot, and removals after which an old key never reaches a new occupant.
//!
//! # What it is
//!
//! [`SlotTable::insert`] stores a value in the lowest free slot and returns a
//! [`SlotKey`]: the slot's index and the slot's *generation*, a counter that every
//! removal from the slot advances. A key reads ([`get`](SlotTable::get),
//! [`get_cloned`](SlotTable::get_cloned), [`with`](SlotTable::with),
//! [`contains`](SlotTable::contains)) and removes ([`remove`](SlotTable::remove),
//! [`take`](SlotTable::take)) only the value it was returned for: once that value is
//! removed the key is *stale*, and a stale key finds nothing, even after the index has
//! been handed to a new value (which comes with a new generation).
//!
//! ```
//! use strata_sync::slot_table::SlotTable;
//!
//! let files = SlotTable::new();
//! let a = files.insert("stdin").unwrap();
//! let b = files.insert("stdout").unwrap();
//! assert_eq!((a.index(), b.index()), (0, 1));
//! assert_eq!(files.get_cloned(a), Some("stdin"));
//!
//! assert!(files.remove(a)); // the value is dropped once no reader can see it
//! assert!(files.get(a).is_none()); // a stale key finds nothing...
//! let c = files.insert("log").unwrap(); // ...even once its index is reused
//! assert_eq!(c.index(), 0);
//! assert_ne!(c, a);
//! assert!(files.get(a).is_none());
//! assert_eq!(*files.get(c).unwrap(), "log");
//! ```
//!
//! # The algorithm
//!
//! * **Storage.** Slots live in segments of doubling size: segment `k` holds
//!   `64 << k` slots (2 under loom) and is allocated on first use with a
//!   `compare_exchange` on its pointer (the loser frees its copy); segments are freed
//!   only with the table. An index maps to a segment and an offset with a few shifts,
//!   so finding a slot is at most one load of a segment pointer. The table's largest
//!   size is fixed at construction ([`SlotTable::with_max_capacity`], at most
//!   [`MAX_CAPACITY`]); an insert into a full table fails with [`Full`], which hands
//!   the value back.
//! * **A slot** is an `AtomicPtr` to a boxed entry `(generation, value)` (null when
//!   empty) and the generation its next occupant will get. Each segment has a bitmap of
//!   `u64` words, one bit per slot, set while the slot is *in use* (being filled,
//!   occupied, or being emptied).
//! * **Insert** scans the bitmap from index 0, word by word, and claims the lowest
//!   clear bit with a `compare_exchange` on its word (a failed exchange re-reads the
//!   word and goes on). It then writes the entry and publishes it with a `Release`
//!   store of the slot's pointer. The slot is its own until then: no other insert can
//!   claim it and no key names it.
//! * **Get** loads the pointer (`Acquire`) and returns the entry only if it is non-null
//!   and its generation is the key's. Each entry is a fresh allocation that carries its
//!   own generation, and a slot never gives out a generation twice, so an entry with the
//!   key's index and generation *is* the key's value: one load decides, with no
//!   re-validation.
//! * **Remove** loads the pointer, checks the generation, and swings the pointer from
//!   that entry to null with a `compare_exchange`: exactly one remover of a key wins.
//!   The winner stores the next generation in the slot, clears the slot's bit
//!   (`Release`, which hands the slot to the next insert), and hands the entry to the
//!   reclaimer.
//! * **Reclamation.** A reader may still be reading a value when it is removed, so
//!   entries are freed through strata-reclaim's epochs: readers pin (a [`Ref`] holds the
//!   pin), and a removed entry is dropped once every pin that could have seen it has
//!   ended. [`remove`](SlotTable::remove) defers the drop (the value is dropped later,
//!   on whichever thread collects); [`take`](SlotTable::take) waits for the grace
//!   period itself and then moves the value out to the caller, which is why it is
//!   blocking and refuses to run while the calling thread is pinned. Under epochs the
//!   address of an entry is not reused while a pinned reader may hold it, so the
//!   remover's `compare_exchange` on the pointer has no ABA.
//!
//! # Generations and their wrap-around
//!
//! Generations are `u32`s starting at 0. A slot whose occupant had generation
//! `u32::MAX` is **retired** when that occupant is removed: its bit is never cleared,
//! so the slot is never reused, and no generation is ever given out twice for one
//! index. Without this, a key held across 2³² reuses of its slot would name a new
//! occupant (the ABA problem). A retired slot still counts in
//! [`max_capacity`](SlotTable::max_capacity) but can no longer be filled;
//! [`retired`](SlotTable::retired) counts them.
//!
//! # Which slot an insert takes
//!
//! An insert returns a slot that was free when it claimed it, and **every lower slot
//! was in use at some instant during the insert**. "In use" means the slot's bit was
//! set: it held a value, or another insert was filling it, or a removal had already
//! made its key stale but not yet freed the slot. When no slot below the one it takes
//! is freed during the call, that is exactly "the lowest free slot". When a lower slot
//! is freed while the insert scans past it, the insert may take a higher one: the scan
//! saw the lower slot in use and moved on. This is weaker than a linearizable "lowest
//! free slot at the instant of the insert", and it is the property the linearizability
//! test (`tests/slot_table_linearizability.rs`) checks: its model lets an insert pass
//! over a slot only if that slot was occupied in the model or was freed by a removal
//! that had not responded before the insert was invoked.
//!
//! # Progress
//!
//! * [`get`](SlotTable::get), [`get_cloned`](SlotTable::get_cloned),
//!   [`with`](SlotTable::with), [`contains`](SlotTable::contains): **wait-free** in the
//!   table's own steps: an epoch pin, at most two `Acquire` loads (the segment pointer
//!   and the slot's pointer) and one read of the entry, with no loop. The pin of
//!   strata-reclaim's epochs is one store and one full fence for the outermost pin of
//!   a thread; it is wait-free except for a thread's first pin (registration, lock-free)
//!   and an occasional collection pass (every 128th pin when garbage waits), which
//!   runs the destructors of removed values.
//! * [`insert`](SlotTable::insert): **lock-free**: a failed claim means another insert
//!   or removal changed the same bitmap word (the claim is a `compare_exchange_weak`,
//!   whose spurious failures, on LL/SC machines, are the usual caveat); a segment is
//!   allocated at most once, and the scan visits each word at most once. Its
//!   cost is linear in the number of bitmap words below the slot it takes (one word per
//!   64 slots).
//! * [`remove`](SlotTable::remove): **wait-free** in the table's steps (one load, one
//!   `compare_exchange`, one `fetch_and`, no loop) plus the epoch defer, which may run
//!   a collection.
//! * [`take`](SlotTable::take): **blocking**: it waits for a grace period.
//!
//! # Linearization points
//!
//! * `get`, `get_cloned`, `with`, `contains`: the `Acquire` load of the slot pointer
//!   (or the load of the segment pointer, when the segment does not exist yet).
//! * `insert`: the `Release` store of the slot pointer, where the value becomes visible.
//!   Which slot it fills was decided earlier, by the successful `compare_exchange` on
//!   the bitmap word: from then on the slot is reserved (no other insert takes it), so
//!   it is still free at the store, and every lower slot was in use at some instant
//!   during the call (previous section).
//! * `remove` and `take`: the winning `compare_exchange` of the pointer to null, after
//!   which the key is stale; a losing or stale remove at its load of the pointer. The
//!   slot becomes free for inserts later, at the `Release` clearing of its bit, before
//!   the call returns: this is the window the previous section is about.
//!
//! # Memory ordering
//!
//! * The entry is published by the `Release` store of the slot pointer and read after
//!   an `Acquire` load of it. The test-only `--cfg strata_weaken` makes that store
//!   `Relaxed`, which the loom models catch.
//! * A removal's writes to the slot (the next generation) are handed to the next insert
//!   by the `Release` clearing of the bit and the `AcqRel` claiming `compare_exchange`.
//! * Segments are published by the `AcqRel` exchange of the segment pointer and read
//!   after an `Acquire` load.
//! * The entry's drop is ordered after every reader's access by the epoch scheme.
//!
//! # Costs and limits
//!
//! * A [`Ref`] keeps its thread pinned in the process-wide epoch domain: keep it short.
//!   A long-held `Ref` holds back the reclamation of everything removed meanwhile in
//!   the whole domain.
//! * Removed values are dropped later, possibly on another thread and after the table
//!   itself is gone (at the latest when the domain collects): hence the
//!   `T: Send + 'static` bound on [`remove`](SlotTable::remove).
//! * [`len`](SlotTable::len) is a counter updated after the linearization points, so it
//!   is exact only when no operation is running.
//! * A key is not tied to its table: a key of one table used on another finds
//!   whatever that table holds under the same index and generation.
//!
//! # Send and Sync
//!
//! `SlotTable<T>` is `Send` when `T: Send` and `Sync` when `T: Send + Sync` (values are
//! inserted from one thread and read by reference from others).
//!
//! ```compile_fail
//! fn needs_sync<S: Sync>() {}
//! needs_sync::<strata_sync::slot_table::SlotTable<std::cell::Cell<u8>>>();
//! ```
//!
//! ```compile_fail
//! fn needs_send<S: Send>() {}
//! needs_send::<strata_sync::slot_table::SlotTable<std::rc::Rc<u8>>>();
//! ```

use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr;

use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use strata_reclaim::epoch;

/// log2 of the number of slots in the first segment: 64 (one bitmap word), or 2 under
/// loom so that models cross segments with few slots.
const SEG0_SHIFT: u32 = if cfg!(strata_loom) { 1 } else { 6 };
/// The number of slots in the first segment.
const SEG0: usize = 1 << SEG0_SHIFT;

/// The largest capacity a table can have: every index fits in the `u32` of a
/// [`SlotKey`].
pub const MAX_CAPACITY: usize = u32::MAX as usize;

/// The ordering of the store that publishes a new entry: `Release`, or `Relaxed` under
/// the test-only `--cfg strata_weaken`, which is how the loom models show that they
/// catch an unpublished entry.
const fn publish_ordering() -> Ordering {
    if cfg!(strata_weaken) {
        Ordering::Relaxed
    } else {
        Ordering::Release
    }
}

/// What the table's fallible operations report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SlotTableError {
    /// Every slot up to the maximum capacity is in use (or retired).
    #[error("the slot table is full (maximum capacity {max_capacity})")]
    Full {
        /// The table's maximum capacity.
        max_capacity: usize,
    },
    /// The key does not name a value in the table: it was removed, or never inserted.
    #[error("the key is stale: its value was removed or never inserted")]
    Stale,
    /// [`SlotTable::take`] was called while the calling thread is pinned in the epoch
    /// domain (for example while it holds a [`Ref`]): waiting for a grace period would
    /// wait for itself. Nothing was removed: the value stays in the table.
    #[error(
        "take was called while this thread is pinned (holds a Ref?); it would wait for itself. Nothing was removed"
    )]
    WouldDeadlock,
    /// A maximum capacity of 0 or above [`MAX_CAPACITY`] was asked for.
    #[error("invalid maximum capacity {requested} (must be 1..={max})")]
    InvalidCapacity {
        /// The capacity asked for.
        requested: usize,
        /// The largest allowed, [`MAX_CAPACITY`].
        max: usize,
    },
}

/// What [`SlotTable::insert`] returns when the table is full: the value, handed back.
pub struct Full<T> {
    value: T,
    max_capacity: usize,
}

impl<T> Full<T> {
    /// The value that was not inserted.
    pub fn into_inner(self) -> T {
        self.value
    }

    /// The error without the value.
    pub fn error(&self) -> SlotTableError {
        SlotTableError::Full {
            max_capacity: self.max_capacity,
        }
    }
}

impl<T> fmt::Debug for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Full")
            .field("max_capacity", &self.max_capacity)
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error(), f)
    }
}

impl<T> std::error::Error for Full<T> {}

impl<T> From<Full<T>> for SlotTableError {
    fn from(full: Full<T>) -> Self {
        full.error()
    }
}

/// The name of a value in a [`SlotTable`]: its slot's index and the slot's generation
/// when the value was inserted.
///
/// Keys are plain data: copying, comparing, hashing and forging them is safe. A key
/// that does not name a live value (removed, or made up) finds nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct SlotKey {
    index: u32,
    generation: u32,
}

impl SlotKey {
    /// A key with this index and generation (for keys sent through an integer
    /// channel; a made-up key that names no value finds nothing).
    pub const fn new(index: u32, generation: u32) -> Self {
        SlotKey { index, generation }
    }

    /// The slot's index: the lowest free one when the value was inserted.
    pub const fn index(self) -> usize {
        self.index as usize
    }

    /// The slot's generation when the value was inserted.
    pub const fn generation(self) -> u32 {
        self.generation
    }

    /// The key as one `u64`: the generation in the high half, the index in the low.
    pub const fn to_bits(self) -> u64 {
        ((self.generation as u64) << 32) | self.index as u64
    }

    /// The key [`to_bits`](Self::to_bits) encoded.
    pub const fn from_bits(bits: u64) -> Self {
        SlotKey {
            index: bits as u32,
            generation: (bits >> 32) as u32,
        }
    }
}

/// A boxed value and the generation it was inserted with. Both are immutable after
/// the entry is published; they are loom cells so that loom checks every read against
/// the entry's creation and drop.
struct Entry<T> {
    generation: UnsafeCell<u32>,
    value: UnsafeCell<T>,
}

impl<T> Entry<T> {
    /// The entry's generation.
    ///
    /// # Safety
    /// `this` points to a published entry that is protected (the caller is pinned and
    /// loaded it from a slot while pinned).
    unsafe fn generation(this: *const Self) -> u32 {
        // SAFETY: the entry is live (caller) and only read after its publication.
        unsafe { (*this).generation.with(|g| *g) }
    }
}

struct Slot<T> {
    /// The current entry, or null.
    ptr: AtomicPtr<Entry<T>>,
    /// The generation of the next occupant. Written by the remover that emptied the
    /// slot before it clears the slot's bit, read by the insert that claims the bit
    /// next: the bit orders them.
    next_generation: UnsafeCell<u32>,
}

struct Segment<T> {
    slots: Box<[Slot<T>]>,
    /// One bit per slot, set while the slot is in use; the bits past the end of the
    /// segment (when it is shorter than a multiple of 64) are set forever.
    words: Box<[AtomicU64]>,
}

impl<T> Segment<T> {
    fn new(len: usize) -> Self {
        let slots = (0..len)
            .map(|_| Slot {
                ptr: AtomicPtr::new(ptr::null_mut()),
                next_generation: UnsafeCell::new(0),
            })
            .collect();
        let words = (0..len.div_ceil(64))
            .map(|w| {
                let valid = (len - w * 64).min(64);
                AtomicU64::new(if valid == 64 { 0 } else { !0 << valid })
            })
            .collect();
        Segment { slots, words }
    }
}

/// The segment of `index` and the offset in it.
#[inline]
fn locate(index: usize) -> (usize, usize) {
    let q = (index >> SEG0_SHIFT) + 1;
    let k = q.ilog2() as usize;
    (k, index + SEG0 - (SEG0 << k))
}

/// The first index of segment `k`.
#[inline]
fn segment_start(k: usize) -> usize {
    (SEG0 << k) - SEG0
}

/// A concurrent table of values named by generation-tagged keys; see the
/// [module docs](self).
pub struct SlotTable<T> {
    segments: Box<[AtomicPtr<Segment<T>>]>,
    max_capacity: usize,
    /// The highest generation a slot gives out before it is retired (`u32::MAX`; tests
    /// lower it).
    generation_limit: u32,
    len: AtomicUsize,
    retired: AtomicUsize,
    /// Under loom there is no process-wide domain: each table gets its own.
    #[cfg(strata_loom)]
    domain: epoch::Domain,
    /// The table owns `T`s (for the auto traits, which are implemented by hand below).
    _owns: PhantomData<T>,
}

// SAFETY: moving the table moves its values to another thread: `T: Send`.
unsafe impl<T: Send> Send for SlotTable<T> {}
// SAFETY: a shared table lets any thread insert (send a `T` in), take or remove (send
// a `T` out or drop it elsewhere) and read by reference (share `&T`): `T: Send + Sync`.
unsafe impl<T: Send + Sync> Sync for SlotTable<T> {}

/// A reference to a value of a [`SlotTable`]: derefs to `&T` and keeps the value alive
/// while it lives, even if the value is removed meanwhile.
///
/// It keeps its thread pinned in the epoch domain: keep it short. Not `Send`: the pin
/// belongs to the thread that took it.
#[must_use = "a Ref protects the value only while it lives"]
pub struct Ref<'a, T> {
    entry: *const Entry<T>,
    _pin: epoch::Guard,
    _table: PhantomData<&'a SlotTable<T>>,
}

impl<T> Deref for Ref<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        self.entry_value()
    }
}

impl<T> Ref<'_, T> {
    fn entry_value(&self) -> &T {
        // SAFETY: the entry was loaded from a slot while `_pin` was pinned, so it is not
        // freed before `_pin` drops, which is after this borrow of `self` ends; the
        // value is written only at creation, before its publication.
        unsafe { (*self.entry).value.with(|v| &*v) }
    }
}

impl<T: fmt::Debug> fmt::Debug for Ref<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T> Default for SlotTable<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for SlotTable<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotTable")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("max_capacity", &self.max_capacity)
            .field("retired", &self.retired())
            .finish_non_exhaustive()
    }
}

impl<T> SlotTable<T> {
    /// An empty table that can grow to [`MAX_CAPACITY`] slots. Allocates only the
    /// small array of segment pointers; slots are allocated on first use.
    pub fn new() -> Self {
        Self::build(MAX_CAPACITY, u32::MAX)
    }

    /// An empty table of at most `max_capacity` slots: an insert beyond it fails with
    /// [`Full`]. Fails with [`SlotTableError::InvalidCapacity`] for 0 or more than
    /// [`MAX_CAPACITY`].
    ///
    /// ```
    /// use strata_sync::slot_table::{SlotTable, SlotTableError};
    ///
    /// let t = SlotTable::with_max_capacity(1).unwrap();
    /// t.insert('a').unwrap();
    /// let full = t.insert('b').unwrap_err();
    /// assert_eq!(full.error(), SlotTableError::Full { max_capacity: 1 });
    /// assert_eq!(full.into_inner(), 'b');
    /// assert!(SlotTable::<char>::with_max_capacity(0).is_err());
    /// ```
    pub fn with_max_capacity(max_capacity: usize) -> Result<Self, SlotTableError> {
        if max_capacity == 0 || max_capacity > MAX_CAPACITY {
            return Err(SlotTableError::InvalidCapacity {
                requested: max_capacity,
                max: MAX_CAPACITY,
            });
        }
        Ok(Self::build(max_capacity, u32::MAX))
    }

    fn build(max_capacity: usize, generation_limit: u32) -> Self {
        let (last, _) = locate(max_capacity - 1);
        SlotTable {
            segments: (0..=last)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            max_capacity,
            generation_limit,
            len: AtomicUsize::new(0),
            retired: AtomicUsize::new(0),
            #[cfg(strata_loom)]
            domain: epoch::Domain::new(),
            _owns: PhantomData,
        }
    }

    /// A table whose slots retire after giving out generation `limit` (tests of the
    /// wrap-around, which cannot run 2³² removals).
    #[cfg(test)]
    pub(crate) fn with_generation_limit(max_capacity: usize, limit: u32) -> Self {
        Self::build(max_capacity, limit)
    }

    /// The table's epoch domain, for loom models that drive reclamation.
    #[cfg(strata_loom)]
    pub(crate) fn domain(&self) -> &epoch::Domain {
        &self.domain
    }

    #[inline]
    fn pin(&self) -> epoch::Guard {
        #[cfg(strata_loom)]
        return self.domain.pin();
        #[cfg(not(strata_loom))]
        return epoch::pin();
    }

    /// The number of values in the table. Exact when no operation runs; under
    /// concurrency, a value between the counts before and after the running operations.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// Whether [`len`](Self::len) is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of slots allocated so far (the table grows by segments of doubling
    /// size, never beyond [`max_capacity`](Self::max_capacity)).
    pub fn capacity(&self) -> usize {
        self.segments
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.load(Ordering::Acquire).is_null())
            .map(|(k, _)| self.segment_len(k))
            .sum()
    }

    /// The most slots the table can ever have.
    pub fn max_capacity(&self) -> usize {
        self.max_capacity
    }

    /// The number of slots retired because their generation was exhausted (see the
    /// [module docs](self#generations-and-their-wrap-around)).
    pub fn retired(&self) -> usize {
        self.retired.load(Ordering::Relaxed)
    }

    /// The number of slots of segment `k` (the last one may be cut short by the
    /// maximum capacity).
    fn segment_len(&self, k: usize) -> usize {
        (SEG0 << k).min(self.max_capacity - segment_start(k))
    }

    /// Segment `k`, if allocated.
    #[inline]
    fn segment(&self, k: usize) -> Option<&Segment<T>> {
        // Acquire: pairs with the exchange that published the segment.
        let p = self.segments.get(k)?.load(Ordering::Acquire);
        // SAFETY: a published segment is freed only by `drop`, which has `&mut self`.
        unsafe { p.as_ref() }
    }

    /// Segment `k`, allocated if need be.
    fn segment_or_alloc(&self, k: usize) -> &Segment<T> {
        if let Some(s) = self.segment(k) {
            return s;
        }
        let new = Box::into_raw(Box::new(Segment::new(self.segment_len(k))));
        // AcqRel: Release publishes the new segment's contents; Acquire (also on
        // failure) reads the winner's.
        let p = match self.segments[k].compare_exchange(
            ptr::null_mut(),
            new,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => new,
            Err(winner) => {
                // SAFETY: `new` was never shared.
                drop(unsafe { Box::from_raw(new) });
                winner
            }
        };
        // SAFETY: published, and freed only by `drop` (`&mut self`).
        unsafe { &*p }
    }

    /// The slot of `key`, if its segment exists.
    #[inline]
    fn slot(&self, key: SlotKey) -> Option<&Slot<T>> {
        let index = key.index();
        if index >= self.max_capacity {
            return None;
        }
        let (k, off) = locate(index);
        self.segment(k).map(|s| &s.slots[off])
    }

    /// Loads the entry of `key` under `pin`: non-null only if it is the key's.
    #[inline]
    fn load_entry(&self, key: SlotKey, _pin: &epoch::Guard) -> *mut Entry<T> {
        let Some(slot) = self.slot(key) else {
            return ptr::null_mut();
        };
        // Acquire: pairs with the publishing store of the entry.
        let p = slot.ptr.load(Ordering::Acquire);
        // SAFETY: loaded while pinned: not freed before `_pin` drops.
        if p.is_null() || unsafe { Entry::generation(p) } != key.generation {
            return ptr::null_mut();
        }
        p
    }

    /// A reference to the value of `key`, or `None` if the key is stale. Wait-free
    /// (see the module docs); the [`Ref`] keeps the thread pinned.
    ///
    /// ```
    /// let t = strata_sync::slot_table::SlotTable::new();
    /// let k = t.insert(vec![1, 2]).unwrap();
    /// let r = t.get(k).unwrap();
    /// t.remove(k); // the value stays alive under `r`
    /// assert_eq!(*r, [1, 2]);
    /// ```
    #[inline]
    pub fn get(&self, key: SlotKey) -> Option<Ref<'_, T>> {
        let pin = self.pin();
        let entry = self.load_entry(key, &pin);
        if entry.is_null() {
            return None;
        }
        Some(Ref {
            entry,
            _pin: pin,
            _table: PhantomData,
        })
    }

    /// A clone of the value of `key`, or `None` if the key is stale.
    pub fn get_cloned(&self, key: SlotKey) -> Option<T>
    where
        T: Clone,
    {
        self.get(key).map(|r| T::clone(&r))
    }

    /// Calls `f` with the value of `key` and returns what it returns, or `None` if the
    /// key is stale. The thread stays pinned while `f` runs.
    pub fn with<R>(&self, key: SlotKey, f: impl FnOnce(&T) -> R) -> Option<R> {
        self.get(key).map(|r| f(&r))
    }

    /// Whether `key` names a value in the table.
    pub fn contains(&self, key: SlotKey) -> bool {
        let pin = self.pin();
        !self.load_entry(key, &pin).is_null()
    }

    /// Inserts `value` in the lowest free slot (see the module docs for what "lowest"
    /// means under concurrency) and returns its key, or hands the value back in
    /// [`Full`] when every slot up to the maximum capacity is in use. Lock-free.
    pub fn insert(&self, value: T) -> Result<SlotKey, Full<T>> {
        let Some((index, slot)) = self.claim() else {
            return Err(Full {
                value,
                max_capacity: self.max_capacity,
            });
        };
        // SAFETY: the slot's bit is ours: no one else reads or writes `next_generation`
        // until we publish and someone removes; the remover that wrote it cleared the
        // bit after, and our claim read that clear (AcqRel).
        let generation = slot.next_generation.with(|g| unsafe { *g });
        let entry = Box::into_raw(Box::new(Entry {
            generation: UnsafeCell::new(generation),
            value: UnsafeCell::new(value),
        }));
        self.len.fetch_add(1, Ordering::Relaxed);
        // Release (weakened under `strata_weaken`): publishes the entry's contents to
        // the Acquire loads of readers and removers.
        slot.ptr.store(entry, publish_ordering());
        Ok(SlotKey {
            index: index as u32,
            generation,
        })
    }

    /// Claims the lowest clear bit: its index and slot.
    fn claim(&self) -> Option<(usize, &Slot<T>)> {
        for k in 0..self.segments.len() {
            let seg = self.segment_or_alloc(k);
            for (w, word) in seg.words.iter().enumerate() {
                let mut bits = word.load(Ordering::Relaxed);
                while bits != !0 {
                    let b = (!bits).trailing_zeros() as usize;
                    // AcqRel: Acquire reads the slot as the remover that freed it left
                    // it (its bit clear was Release).
                    match word.compare_exchange_weak(
                        bits,
                        bits | (1 << b),
                        Ordering::AcqRel,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            let off = w * 64 + b;
                            return Some((segment_start(k) + off, &seg.slots[off]));
                        }
                        Err(now) => bits = now,
                    }
                }
            }
        }
        None
    }

    /// Unlinks the entry of `key`: the entry, now the caller's to reclaim, or null if
    /// the key is stale or another remover won. Must run under `pin`.
    fn unlink(&self, key: SlotKey, pin: &epoch::Guard) -> *mut Entry<T> {
        let entry = self.load_entry(key, pin);
        if entry.is_null() {
            return entry;
        }
        let Some(slot) = self.slot(key) else {
            return ptr::null_mut();
        };
        // AcqRel: Acquire orders our reclamation after the entry's publication; the
        // entry's address is not reused while we are pinned, so there is no ABA.
        if slot
            .ptr
            .compare_exchange(entry, ptr::null_mut(), Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return ptr::null_mut(); // another remover of this key won
        }
        self.len.fetch_sub(1, Ordering::Relaxed);
        if key.generation >= self.generation_limit {
            // Retired: the bit stays set, the slot is never reused.
            self.retired.fetch_add(1, Ordering::Relaxed);
            return entry;
        }
        slot.next_generation.with_mut(|g| {
            // SAFETY: we won the slot's pointer and its bit is still set: no insert
            // can claim it and no other remover gets here until we clear the bit.
            unsafe { *g = key.generation + 1 }
        });
        let index = key.index();
        let (k, off) = locate(index);
        // The segment exists: `slot()` found it.
        if let Some(seg) = self.segment(k) {
            // Release: hands `next_generation` and the null pointer to the next claim.
            seg.words[off / 64].fetch_and(!(1u64 << (off % 64)), Ordering::Release);
        }
        entry
    }

    /// Removes the value of `key`: `true` if this call removed it, `false` if the key
    /// was stale (or another call removed it first: exactly one remover of a key wins).
    /// The value is dropped once no reader can still see it, later and possibly on
    /// another thread. Wait-free in the table's steps (see the module docs).
    pub fn remove(&self, key: SlotKey) -> bool
    where
        T: Send + 'static,
    {
        let pin = self.pin();
        let entry = self.unlink(key, &pin);
        if entry.is_null() {
            return false;
        }
        // SAFETY: `entry` came from `Box::into_raw`, is unlinked (no thread that pins
        // from now on can load it), and only the winning remover retires it; `T: Send +
        // 'static` lets it drop on any thread at any later time.
        unsafe { pin.defer_destroy(entry) };
        true
    }

    /// Removes the value of `key` and returns it, after waiting for a grace period so
    /// that no reader still holds a reference to it. Blocking.
    ///
    /// Fails with [`SlotTableError::Stale`] if the key names no value (nothing
    /// happens), and with [`SlotTableError::WouldDeadlock`] if the calling thread is
    /// pinned (it holds a [`Ref`], or is inside [`with`](Self::with), or holds an
    /// epoch guard of its own), in which case nothing happens either: the value stays
    /// in the table.
    ///
    /// ```
    /// let t = strata_sync::slot_table::SlotTable::new();
    /// let k = t.insert(String::from("x")).unwrap();
    /// assert_eq!(t.take(k).unwrap(), "x");
    /// assert!(t.take(k).is_err());
    /// ```
    #[cfg(not(strata_loom))]
    pub fn take(&self, key: SlotKey) -> Result<T, SlotTableError>
    where
        T: Send + 'static,
    {
        if epoch::is_pinned() {
            // Waiting for a grace period would wait for this thread itself.
            return Err(SlotTableError::WouldDeadlock);
        }
        let entry = {
            let pin = self.pin();
            let entry = self.unlink(key, &pin);
            if entry.is_null() {
                return Err(SlotTableError::Stale);
            }
            entry
        };
        if epoch::synchronize().is_err() {
            // Unreachable: the thread was not pinned above and pins nothing since. Should
            // it happen, retire the value like `remove` rather than free it early.
            let pin = self.pin();
            // SAFETY: as in `remove`: unlinked, won by us, retired once.
            unsafe { pin.defer_destroy(entry) };
            return Err(SlotTableError::WouldDeadlock);
        }
        // SAFETY: unlinked before the grace period began, so every critical section
        // that could have loaded it has ended: we own the box.
        let entry = unsafe { Box::from_raw(entry) };
        Ok(entry.value.into_inner())
    }
}

impl<T> Drop for SlotTable<T> {
    fn drop(&mut self) {
        // A failing loom model unwinds outside the model, where loom's objects cannot be
        // touched: leak instead.
        if cfg!(strata_loom) && std::thread::panicking() {
            return;
        }
        for seg in self.segments.iter() {
            let seg = seg.load(Ordering::Acquire);
            if seg.is_null() {
                continue;
            }
            // SAFETY: `&mut self`: no operation runs; the segment came from Box::into_raw
            // and is freed once, here.
            let seg = unsafe { Box::from_raw(seg) };
            for slot in seg.slots.iter() {
                let p = slot.ptr.load(Ordering::Acquire);
                if !p.is_null() {
                    // SAFETY: a published entry, owned by the table (removed ones were
                    // nulled); no reader can hold it since no `Ref` outlives `&self`.
                    drop(unsafe { Box::from_raw(p) });
                }
            }
        }
    }
}

#[cfg(test)]
#[path = "slot_table_tests.rs"]
mod tests;
