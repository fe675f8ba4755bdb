//! A lock-free object pool: per-thread caches over a global lock-free free list, RAII
//! handles that return objects on drop, and a bound on the objects kept.
//!
//! [`Pool<T>`] hands out objects made by a `create` function ([`Pool::new`]) through
//! [`Pooled`] handles: [`Pool::get`] reuses a returned object if there is one and
//! creates one otherwise; dropping the handle returns the object, after an optional
//! `reset` ([`PoolBuilder::reset`]). [`Pooled::detach`] takes an object out of the
//! pool for good; [`Pool::put`] donates one.
//!
//! # The algorithm
//!
//! **Slots.** Every object lives in a *slot*, addressed by a 32-bit index. Slots are
//! allocated in append-only segments (segment `k` holds `2^k` slots) that are freed
//! only with the pool, so a slot index stays valid, and a slot's fields may be read
//! by any thread, for the life of the pool. A [`Pooled`] handle is the slot index; the
//! object never moves while it is pooled.
//!
//! **The global free list** is a Treiber stack of slot indices (Treiber, IBM RJ 5118,
//! 1986). Its head is one `AtomicU64` packing the index of the top slot and a 32-bit
//! tag incremented by every successful push and pop; each slot has an atomic `next`
//! index. A pop reads the head, then the top slot's `next`, and CASes the head to
//! `(next, tag + 1)`. The tag guards against ABA: if, between the read and the CAS,
//! the top slot was popped and pushed back (the head index is the same, but `next` is
//! stale), the tag differs and the CAS fails. The tag is 32 bits, so the guard fails
//! only if a thread stalls between its read and its CAS while exactly a multiple of
//! 2^32 pushes and pops of that list happen and the same slot is on top again (at
//! tens of millions of list operations a second, a stall of minutes). Reading the `next` of a slot that another
//! thread has just popped is an atomic load of memory that is never freed, so a stale
//! read is harmless: the CAS rejects it. A second stack of the same kind holds the
//! *empty* slots (those whose object was detached or dropped), which are reused before
//! new slots are taken. Once enough slots exist, `get` and the return of an object
//! allocate nothing.
//!
//! **Per-thread caches.** Each thread that uses a pool owns a cache record of the pool
//! (found through a small thread-local table keyed by the pool's id, which is never
//! reused, so an entry of a dropped pool never matches a live one): a stack of at
//! most `per_thread_cache` slot indices. A returned object goes to the cache; when it
//! is full, half of it is pushed to the global list. `get` pops from the cache; when
//! it is empty, it refills up to half of its capacity from the global list. So while
//! a thread's cache neither overflows nor runs dry, its gets and returns write
//! nothing shared (they read the pool's configuration and segment table). When a
//! thread exits, its record is *abandoned* with its objects in it: the next thread
//! that needs a record takes it over, objects included, and a `get` that would
//! otherwise create an object first moves the objects of abandoned records to the
//! global list. Nothing is leaked; the objects of every record are dropped with the
//! pool. (A thread-local entry of a dropped pool only holds a reference-counted flag,
//! never a pointer it dereferences.)
//!
//! **The bound.** At most `max_retained` objects are kept (in the global list and all
//! the caches), exactly, at every instant: a shared counter of *retention credits*
//! (`retained`) never exceeds `max_retained`, and every kept object holds a credit
//! (objects on the global list hold one each; a cache holds at least as many credits
//! as objects). A cache takes credits in batches (up to half its capacity) when it has
//! no spare one, and gives back spare credits beyond half its capacity, so the counter
//! is touched once per batch, not per operation. An object returned when no credit is
//! left is dropped (counted in [`PoolStats::dropped`]). Because idle caches may hold
//! spare credits, an object can be dropped while fewer than `max_retained` objects are
//! actually kept: by at most `per_thread_cache / 2` per cache record.
//!
//! # Progress and linearization
//!
//! `get` and returning an object (dropping a [`Pooled`], [`Pool::put`]) are
//! **lock-free** (apart from the user's `create`, `reset` and `Drop`, and the memory
//! allocator when a new segment or cache record is needed). Their only loops are the
//! CAS loops of the two stacks and of the credit counter, each of which fails only
//! because another thread's CAS succeeded. The operations linearize at: the pop from
//! the calling thread's cache (a thread-local step), the successful CAS of the global
//! head (pop or push), the allocation of the slot of a new object, and, for an object
//! that is dropped over the bound, the failed credit reservation.
//!
//! # Example
//!
//! ```
//! use strata_sync::pool::Pool;
//!
//! let pool = Pool::builder(|| Vec::<u8>::with_capacity(4096))
//!     .reset(|v| v.clear())
//!     .max_retained(64)
//!     .per_thread_cache(8)
//!     .build()
//!     .unwrap();
//! std::thread::scope(|s| {
//!     for _ in 0..2 {
//!         s.spawn(|| {
//!             for i in 0..100u8 {
//!                 let mut buf = pool.get();
//!                 assert!(buf.is_empty()); // reset when it came back
//!                 buf.push(i);
//!             } // returned to this thread's cache here
//!         });
//!     }
//! });
//! let stats = pool.stats();
//! assert_eq!(stats.created + stats.reused, 200);
//! assert!(stats.created <= 2); // each thread reuses the object in its own cache
//! let owned: Vec<u8> = strata_sync::pool::Pooled::detach(pool.get()); // leaves the pool
//! assert!(owned.capacity() >= 4096);
//! ```

use core::cell::RefCell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::{ManuallyDrop, MaybeUninit};
use core::ops::{Deref, DerefMut};
use core::ptr;

use strata_primitives::CachePadded;
use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::Arc;
use strata_primitives::sync::atomic::{
    AtomicBool, AtomicIsize, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};

/// The default of [`PoolBuilder::max_retained`].
pub const DEFAULT_MAX_RETAINED: usize = 1024;

/// The default of [`PoolBuilder::per_thread_cache`].
pub const DEFAULT_PER_THREAD_CACHE: usize = 16;

/// The largest accepted [`PoolBuilder::max_retained`] (slot indices are 31 bits).
pub const MAX_RETAINED_LIMIT: usize = 1 << 30;

/// The largest accepted [`PoolBuilder::per_thread_cache`].
pub const MAX_PER_THREAD_CACHE: usize = 1 << 12;

/// The most pools whose cache one thread keeps at once; using more evicts (abandons)
/// the least recently added cache.
pub const THREAD_CACHE_POOLS: usize = 8;

/// Slot indices are below this (31 bits); `NIL` is the empty stack.
const MAX_SLOTS: u64 = 1 << 31;
/// The index of no slot: the end of a stack.
const NIL: u32 = u32::MAX;
/// Segments of `2^k` slots, `k < SEGMENTS`: `2^SEGMENTS - 1 >= MAX_SLOTS`.
const SEGMENTS: usize = 32;

/// An invalid pool configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PoolError {
    /// `max_retained` is above [`MAX_RETAINED_LIMIT`].
    #[error("max_retained {0} is above the limit {MAX_RETAINED_LIMIT}")]
    MaxRetainedTooLarge(usize),
    /// `per_thread_cache` is above [`MAX_PER_THREAD_CACHE`].
    #[error("per_thread_cache {0} is above the limit {MAX_PER_THREAD_CACHE}")]
    CacheTooLarge(usize),
    /// `per_thread_cache` is larger than `max_retained`: a cache could never fill.
    #[error("per_thread_cache {cache} is larger than max_retained {max_retained}")]
    CacheLargerThanBound {
        /// The requested per-thread cache size.
        cache: usize,
        /// The requested bound.
        max_retained: usize,
    },
}

/// Counters of a [`Pool`], read with [`Pool::stats`]. Each is exact once the threads
/// using the pool have stopped; while they run, the sum is a snapshot of counters read
/// one after the other.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub struct PoolStats {
    /// Objects made by the `create` function.
    pub created: u64,
    /// `get`s served with a returned object.
    pub reused: u64,
    /// Objects given to [`Pool::put`].
    pub donated: u64,
    /// Objects dropped on return because `max_retained` objects were kept.
    pub dropped: u64,
    /// Objects taken out of the pool with [`Pooled::detach`].
    pub detached: u64,
    /// Objects kept right now (see [`Pool::retained`]).
    pub retained: usize,
}

/// The ordering of the CAS that publishes a slot (and the object in it) on a stack:
/// `Release`, or `Relaxed` under the test-only `--cfg strata_weaken`, which is how the
/// loom models show that they detect a missing publication (the models marked
/// `should_panic` under that cfg).
const fn publish_ordering() -> Ordering {
    if cfg!(strata_weaken) {
        Ordering::Relaxed
    } else {
        Ordering::Release
    }
}

/// A slot: room for one object and the link of the stack it is on.
struct Slot<T> {
    /// The object: initialized while the slot is handed out, in a cache or on the free
    /// list; uninitialized while it is on the empty list or not yet used.
    value: UnsafeCell<MaybeUninit<T>>,
    /// The next slot of the stack this slot is on (`NIL` at the bottom). Atomic: a
    /// popping thread may read it while another thread has popped and reuses the slot.
    next: AtomicU32,
}

/// A thread's cache of one pool. Owned by one thread at a time (`claimed`); freed with
/// the pool.
struct Record {
    /// `true` while a thread owns the record. Shared with the owner's thread-local
    /// entry, which may outlive the pool and then only drops its reference.
    claimed: Arc<AtomicBool>,
    /// The cached slot indices (capacity `per_thread_cache`). Owner only.
    items: UnsafeCell<Vec<u32>>,
    /// Retention credits held, `>= items.len()`. Owner only.
    credits: UnsafeCell<usize>,
    /// `items.len()`, for [`Pool::retained`] (written by the owner only).
    len: AtomicUsize,
    /// `get`s served from this cache (written by the owner only).
    reused: AtomicU64,
    /// The next record of the all-records list, fixed before the record is published.
    next_all: *mut CachePadded<Record>,
}

type Rec = CachePadded<Record>;

/// The source of pool ids: unique, never reused (64 bits). Not part of the modelled
/// algorithm, so a plain std atomic even under loom.
static NEXT_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

type CreateFn<T> = Box<dyn Fn() -> T + Send + Sync>;
type ResetFn<T> = Box<dyn Fn(&mut T) + Send + Sync>;

/// A lock-free object pool. See the [module docs](self) for the algorithm, the bound
/// and the progress guarantee.
pub struct Pool<T> {
    /// The global free list: slots holding objects. `(tag << 32) | index`.
    free: CachePadded<AtomicU64>,
    /// Slots without an object, reused before new slots are taken.
    empty: CachePadded<AtomicU64>,
    /// Retention credits taken (objects on `free` plus the caches' credits).
    credits: CachePadded<AtomicUsize>,
    /// Objects on `free` (approximate, and possibly negative for a moment, while
    /// pushes and pops run: it is updated after each CAS).
    free_len: AtomicIsize,
    /// The next never-used slot index.
    fresh: AtomicU64,
    /// Segment `k`: `2^k` slots, allocated on first use, freed with the pool.
    segments: [AtomicPtr<Slot<T>>; SEGMENTS],
    /// Every cache record ever made (pushes only).
    records: AtomicPtr<Rec>,
    created: AtomicU64,
    reused: AtomicU64,
    donated: AtomicU64,
    dropped: AtomicU64,
    detached: AtomicU64,
    create: CreateFn<T>,
    reset: Option<ResetFn<T>>,
    max_retained: usize,
    cache_cap: usize,
    id: u64,
    _owns: PhantomData<T>,
}

// SAFETY: objects move between threads (a `T` made on one thread is used and dropped
// on others), hence `T: Send`; the functions are `Send + Sync`; the records' raw
// pointers point into memory owned by the pool.
unsafe impl<T: Send> Send for Pool<T> {}
// SAFETY: a `&Pool` gives out `&mut T` to one holder at a time (a slot is handed out
// to one handle, by the exclusive pop or cache discipline of the module docs), and
// objects cross threads with the `Release`/`Acquire` pairs of the stacks, so
// `T: Send` suffices (as for `Mutex<T>`).
unsafe impl<T: Send> Sync for Pool<T> {}

/// Configures a [`Pool`]: from [`Pool::builder`].
pub struct PoolBuilder<T> {
    create: CreateFn<T>,
    reset: Option<ResetFn<T>>,
    max_retained: usize,
    cache: usize,
}

impl<T> fmt::Debug for PoolBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("max_retained", &self.max_retained)
            .field("per_thread_cache", &self.cache)
            .field("reset", &self.reset.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Send> PoolBuilder<T> {
    /// Called on every object that comes back (a dropped [`Pooled`], an object given to
    /// [`Pool::put`]) before it is kept or dropped. If it panics, the object is dropped
    /// and the panic goes on.
    pub fn reset(mut self, reset: impl Fn(&mut T) + Send + Sync + 'static) -> Self {
        self.reset = Some(Box::new(reset));
        self
    }

    /// At most this many objects are kept (in the global list and the caches); more
    /// returned objects are dropped. Default [`DEFAULT_MAX_RETAINED`]; 0 keeps none.
    pub fn max_retained(mut self, n: usize) -> Self {
        self.max_retained = n;
        self
    }

    /// The capacity of each thread's cache. Default [`DEFAULT_PER_THREAD_CACHE`]; 0
    /// makes every operation go to the global list.
    pub fn per_thread_cache(mut self, n: usize) -> Self {
        self.cache = n;
        self
    }

    /// The pool, or the reason the configuration is invalid.
    pub fn build(self) -> Result<Pool<T>, PoolError> {
        if self.max_retained > MAX_RETAINED_LIMIT {
            return Err(PoolError::MaxRetainedTooLarge(self.max_retained));
        }
        if self.cache > MAX_PER_THREAD_CACHE {
            return Err(PoolError::CacheTooLarge(self.cache));
        }
        if self.cache > self.max_retained {
            return Err(PoolError::CacheLargerThanBound {
                cache: self.cache,
                max_retained: self.max_retained,
            });
        }
        Ok(Pool {
            free: CachePadded::new(AtomicU64::new(u64::from(NIL))),
            empty: CachePadded::new(AtomicU64::new(u64::from(NIL))),
            credits: CachePadded::new(AtomicUsize::new(0)),
            free_len: AtomicIsize::new(0),
            fresh: AtomicU64::new(0),
            segments: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            records: AtomicPtr::new(ptr::null_mut()),
            created: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            donated: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            detached: AtomicU64::new(0),
            create: self.create,
            reset: self.reset,
            max_retained: self.max_retained,
            cache_cap: self.cache,
            id: NEXT_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
            _owns: PhantomData,
        })
    }
}

/// The index of a stack head word.
#[inline]
fn index_of(head: u64) -> u32 {
    head as u32
}

/// A head word of `index` with the tag after `old`'s.
#[inline]
fn next_head(old: u64, index: u32) -> u64 {
    ((old >> 32).wrapping_add(1) << 32) | u64::from(index)
}

/// Whether the calling thread is unwinding in a failing loom model (whose state is
/// gone: touching a loom object would abort instead of reporting the failure).
#[inline]
fn loom_unwinding() -> bool {
    cfg!(strata_loom) && std::thread::panicking()
}

impl<T: Send> Pool<T> {
    /// A pool of objects made by `create`, with the default limits
    /// ([`DEFAULT_MAX_RETAINED`], [`DEFAULT_PER_THREAD_CACHE`]) and no reset.
    pub fn new(create: impl Fn() -> T + Send + Sync + 'static) -> Self {
        match Self::builder(create).build() {
            Ok(pool) => pool,
            // The defaults are valid (checked by a unit test).
            Err(e) => unreachable!("default pool limits rejected: {e}"),
        }
    }

    /// A builder for a pool of objects made by `create`.
    pub fn builder(create: impl Fn() -> T + Send + Sync + 'static) -> PoolBuilder<T> {
        PoolBuilder {
            create: Box::new(create),
            reset: None,
            max_retained: DEFAULT_MAX_RETAINED,
            cache: DEFAULT_PER_THREAD_CACHE,
        }
    }

    /// An object: a returned one if there is one (from this thread's cache, else the
    /// global list, else the caches of exited threads), a new one from `create`
    /// otherwise. It comes back to the pool when the handle is dropped.
    ///
    /// # Panics
    ///
    /// If `create` panics, or if more than 2^31 objects are pooled (handed out or
    /// kept) at once, which exhausts memory long before.
    pub fn get(&self) -> Pooled<'_, T> {
        let index = match self.take_retained() {
            Some(i) => i,
            None => {
                if self.reclaim_abandoned()
                    && let Some(i) = self.take_retained()
                {
                    i
                } else {
                    let value = (self.create)();
                    let i = self.slot_for(value);
                    self.created.fetch_add(1, Ordering::Relaxed);
                    i
                }
            }
        };
        Pooled {
            pool: self,
            index,
            _not_sync: PhantomData,
        }
    }

    /// Gives `value` to the pool (after `reset`): it is kept for later `get`s, or
    /// dropped if `max_retained` objects are kept already.
    ///
    /// # Panics
    ///
    /// If `reset` panics (then `value` is dropped), or, as for [`get`](Self::get), if
    /// more than 2^31 objects are pooled at once.
    pub fn put(&self, mut value: T) {
        if let Some(reset) = &self.reset {
            reset(&mut value);
        }
        self.donated.fetch_add(1, Ordering::Relaxed);
        let index = self.slot_for(value);
        self.give_back(index);
    }

    /// How many objects the pool keeps right now (global list and caches). Approximate
    /// while other threads use the pool: the counts are read one after the other, so
    /// an object moving between the global list and a cache meanwhile can be counted
    /// twice or not at all. (The bound itself is exact, on the retention credits; this
    /// snapshot is clamped to `max_retained`.)
    pub fn retained(&self) -> usize {
        let mut n = self.free_len.load(Ordering::Relaxed).max(0) as usize;
        self.for_each_record(|r| n += r.len.load(Ordering::Relaxed));
        n.min(self.max_retained())
    }

    /// The pool's counters (see [`PoolStats`]).
    pub fn stats(&self) -> PoolStats {
        let mut reused = self.reused.load(Ordering::Relaxed);
        self.for_each_record(|r| reused += r.reused.load(Ordering::Relaxed));
        PoolStats {
            created: self.created.load(Ordering::Relaxed),
            reused,
            donated: self.donated.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            detached: self.detached.load(Ordering::Relaxed),
            retained: self.retained(),
        }
    }

    /// The configured bound on kept objects.
    pub fn max_retained(&self) -> usize {
        self.max_retained
    }

    /// The configured capacity of each thread's cache.
    pub fn per_thread_cache(&self) -> usize {
        self.cache_cap
    }

    // ---- slots ----

    /// The slot of `index`.
    #[inline]
    fn slot(&self, index: u32) -> &Slot<T> {
        let n = u64::from(index) + 1;
        let k = 63 - n.leading_zeros() as usize;
        let offset = (n - (1 << k)) as usize;
        // `Acquire`: pairs with the `Release` CAS that published the segment. An index
        // is only used after its slot was made (by `slot_for`, which stored or found
        // the segment), and it reaches other threads through the stacks'
        // `Release`/`Acquire` pairs, so the segment pointer is non-null here.
        let seg = self.segments[k].load(Ordering::Acquire);
        assert!(
            !seg.is_null(),
            "pool slot {index} used before its segment is visible"
        );
        // SAFETY: segment `k` holds `2^k` slots and `offset < 2^k`; segments are freed
        // only with the pool.
        unsafe { &*seg.add(offset) }
    }

    /// A slot holding `value`: an empty one, or a new one.
    fn slot_for(&self, value: T) -> u32 {
        let index = match self.pop(&self.empty) {
            Some(i) => i,
            None => self.fresh_slot(),
        };
        self.slot(index).value.with_mut(|p| {
            // SAFETY: the slot is ours (popped from the empty list, or new): nobody
            // else accesses its value, which is uninitialized.
            unsafe { (*p).write(value) }
        });
        index
    }

    /// A never-used slot index (allocating its segment if needed).
    #[cold]
    fn fresh_slot(&self) -> u32 {
        let n = self.fresh.fetch_add(1, Ordering::Relaxed);
        // More than 2^31 slots means as many objects alive or kept at once: the
        // memory is exhausted long before (the bound on kept ones is at most 2^30).
        assert!(n < MAX_SLOTS, "more than 2^31 pooled objects at once");
        let index = n as u32;
        let k = 63 - (n + 1).leading_zeros() as usize;
        if self.segments[k].load(Ordering::Acquire).is_null() {
            let len = 1usize << k;
            let seg: Box<[Slot<T>]> = (0..len)
                .map(|_| Slot {
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                    next: AtomicU32::new(NIL),
                })
                .collect();
            let raw = Box::into_raw(seg).cast::<Slot<T>>();
            if self.segments[k]
                .compare_exchange(ptr::null_mut(), raw, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                // SAFETY: we made `raw` from a boxed slice of `len` slots just above
                // and lost the race to publish it: nobody else has seen it.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(raw, len)) });
            }
        }
        index
    }

    // ---- the two Treiber stacks ----

    /// Pushes `index` onto `stack`. The slot is ours until the CAS publishes it.
    #[inline]
    fn push(&self, stack: &AtomicU64, index: u32) {
        let slot = self.slot(index);
        let mut head = stack.load(Ordering::Relaxed);
        loop {
            slot.next.store(index_of(head), Ordering::Relaxed);
            // `Release` (see `publish_ordering`): the object written into the slot
            // and `next` happen before the pop that takes the slot.
            match stack.compare_exchange_weak(
                head,
                next_head(head, index),
                publish_ordering(),
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Pops a slot index from `stack`; the slot is then ours.
    #[inline]
    fn pop(&self, stack: &AtomicU64) -> Option<u32> {
        // `Acquire`: pairs with the `Release` CAS of the push (or of any later RMW of
        // the head, all of which are in its release sequence) that published the
        // top slot, so its `next` and its object are visible.
        let mut head = stack.load(Ordering::Acquire);
        loop {
            let top = index_of(head);
            if top == NIL {
                return None;
            }
            // Possibly stale (the slot may have been popped and pushed back since we
            // read `head`): then the tag in `head` is out of date and the CAS fails.
            let next = self.slot(top).next.load(Ordering::Relaxed);
            match stack.compare_exchange_weak(
                head,
                next_head(head, next),
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => return Some(top),
                Err(h) => head = h,
            }
        }
    }

    // ---- retention credits ----

    /// Takes up to `want` credits (fewer if the bound is near); returns how many.
    #[inline]
    fn reserve(&self, want: usize) -> usize {
        let mut cur = self.credits.load(Ordering::Relaxed);
        loop {
            let got = want.min(self.max_retained.saturating_sub(cur));
            if got == 0 {
                return 0;
            }
            match self.credits.compare_exchange_weak(
                cur,
                cur + got,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return got,
                Err(c) => cur = c,
            }
        }
    }

    /// Gives back `n` credits.
    #[inline]
    fn unreserve(&self, n: usize) {
        if n > 0 {
            self.credits.fetch_sub(n, Ordering::Relaxed);
        }
    }

    // ---- the paths ----

    /// A kept object's slot, from this thread's cache or the global list.
    #[inline]
    fn take_retained(&self) -> Option<u32> {
        if let Some(got) = self.with_cache(|rec| self.cache_take(rec)) {
            return got;
        }
        let index = self.pop(&self.free)?;
        self.free_len.fetch_sub(1, Ordering::Relaxed);
        self.unreserve(1);
        self.reused.fetch_add(1, Ordering::Relaxed);
        Some(index)
    }

    /// `take_retained` through the cache record `rec`, owned by this thread.
    #[inline]
    fn cache_take(&self, rec: &Record) -> Option<u32> {
        // SAFETY: this thread owns the record (claimed), so nobody else touches its
        // items and credits; no user code runs while these references live.
        let (items, credits) = unsafe {
            (
                &mut *rec.items.with_mut(|p| p),
                &mut *rec.credits.with_mut(|p| p),
            )
        };
        if items.is_empty() {
            // Refill up to half the capacity; the objects bring their credits along.
            let want = (self.cache_cap / 2).max(1);
            while items.len() < want {
                match self.pop(&self.free) {
                    Some(i) => items.push(i),
                    None => break,
                }
            }
            self.free_len
                .fetch_sub(items.len() as isize, Ordering::Relaxed);
            *credits += items.len();
        }
        let index = items.pop()?;
        rec.len.store(items.len(), Ordering::Relaxed);
        rec.reused
            .store(rec.reused.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        // Keep at most half a cache of spare credits.
        let spare = *credits - items.len();
        let keep = self.cache_cap / 2;
        if spare > keep {
            self.unreserve(spare - keep);
            *credits -= spare - keep;
        }
        Some(index)
    }

    /// Keeps the object in slot `index` (reset already), or drops it if the bound is
    /// reached.
    #[inline]
    fn give_back(&self, index: u32) {
        let kept = match self.with_cache(|rec| self.cache_give(rec, index)) {
            Some(kept) => kept,
            None => {
                if self.reserve(1) == 1 {
                    self.push(&self.free, index);
                    self.free_len.fetch_add(1, Ordering::Relaxed);
                    true
                } else {
                    false
                }
            }
        };
        if !kept {
            // Over the bound: drop the object (user code, so outside the cache) and
            // recycle the slot.
            self.slot(index).value.with_mut(|p| {
                // SAFETY: the slot is ours and holds an object, which we drop once;
                // the slot goes to the empty list (uninitialized) right after.
                unsafe { (*p).assume_init_drop() }
            });
            self.push(&self.empty, index);
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `give_back` through the cache record `rec`; `false` if the object must be
    /// dropped.
    #[inline]
    fn cache_give(&self, rec: &Record, index: u32) -> bool {
        // SAFETY: as in `cache_take`.
        let (items, credits) = unsafe {
            (
                &mut *rec.items.with_mut(|p| p),
                &mut *rec.credits.with_mut(|p| p),
            )
        };
        if items.len() >= self.cache_cap {
            // Full: move the older half to the global list, credits included.
            let half = (self.cache_cap / 2).max(1);
            for i in items.drain(..half) {
                self.push(&self.free, i);
            }
            self.free_len.fetch_add(half as isize, Ordering::Relaxed);
            *credits -= half;
        }
        if *credits == items.len() {
            let want = (self.cache_cap / 2)
                .max(1)
                .min(self.cache_cap - items.len());
            let got = self.reserve(want);
            if got == 0 {
                rec.len.store(items.len(), Ordering::Relaxed);
                return false;
            }
            *credits += got;
        }
        items.push(index);
        rec.len.store(items.len(), Ordering::Relaxed);
        true
    }

    // ---- per-thread caches ----

    /// Runs `f` on this thread's cache record of this pool; `None` if the pool has no
    /// caches, or the thread-local table is unavailable (thread exit) or in use (a
    /// reentrant call from inside the pool, which cannot happen: no user code runs
    /// under it).
    #[inline]
    fn with_cache<R>(&self, f: impl FnOnce(&Record) -> R) -> Option<R> {
        if self.cache_cap == 0 {
            return None;
        }
        CACHES
            .try_with(|cell| {
                let mut cache = cell.try_borrow_mut().ok()?;
                let rec = match cache.iter().find(|e| e.id == self.id) {
                    Some(e) => e.rec,
                    None => {
                        // Purge the entries of dropped pools (whose record, holding
                        // the other reference to the flag, is gone), evict the oldest
                        // if the table is full, and claim a record.
                        cache.retain(|e| Arc::strong_count(&e.claimed) > 1);
                        if cache.len() >= THREAD_CACHE_POOLS {
                            cache.remove(0);
                        }
                        let rec = self.claim_record();
                        cache.push(CacheEntry {
                            id: self.id,
                            rec: ptr::from_ref(rec).cast(),
                            claimed: ManuallyDrop::new(Arc::clone(&rec.claimed)),
                        });
                        ptr::from_ref(rec).cast()
                    }
                };
                // SAFETY: an entry with this pool's id was made by this pool (ids are
                // never reused), which is alive (`&self`) and frees records only when
                // dropped; this thread owns the record.
                let rec = unsafe { &*rec.cast::<Rec>() };
                Some(f(rec))
            })
            .ok()
            .flatten()
    }

    /// A record for this thread: an abandoned one (with its objects), or a new one.
    fn claim_record(&self) -> &Rec {
        let mut found = None;
        self.for_each_record(|r| {
            // `Acquire`: the previous owner's accesses happen before ours.
            if found.is_none()
                && r.claimed
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                found = Some(ptr::from_ref(r));
            }
        });
        if let Some(r) = found {
            // SAFETY: a record of this pool, freed only with it.
            return unsafe { &*r };
        }
        let rec = Box::into_raw(Box::new(CachePadded::new(Record {
            claimed: Arc::new(AtomicBool::new(true)),
            items: UnsafeCell::new(Vec::with_capacity(self.cache_cap)),
            credits: UnsafeCell::new(0),
            len: AtomicUsize::new(0),
            reused: AtomicU64::new(0),
            next_all: ptr::null_mut(),
        })));
        let mut head = self.records.load(Ordering::Relaxed);
        loop {
            // SAFETY: `rec` is ours until the CAS publishes it.
            unsafe { (&mut *rec).next_all = head };
            // `Release`: the record's initialization happens before other threads
            // read it through the list.
            match self.records.compare_exchange_weak(
                head,
                rec,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(h) => head = h,
            }
        }
        // SAFETY: published just above; freed only with the pool.
        unsafe { &*rec }
    }

    /// Moves the objects of abandoned records to the global list; `true` if it moved
    /// any.
    #[cold]
    fn reclaim_abandoned(&self) -> bool {
        if self.cache_cap == 0 {
            return false;
        }
        let mut moved = false;
        self.for_each_record(|r| {
            if r.len.load(Ordering::Relaxed) == 0 {
                return;
            }
            // `Acquire`/`Release`: as for a claim; we own the record in between.
            if r.claimed
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: we own the record until the store below; no user code runs.
                let (items, credits) = unsafe {
                    (
                        &mut *r.items.with_mut(|p| p),
                        &mut *r.credits.with_mut(|p| p),
                    )
                };
                let n = items.len();
                for i in items.drain(..) {
                    self.push(&self.free, i);
                }
                self.free_len.fetch_add(n as isize, Ordering::Relaxed);
                self.unreserve(*credits - n);
                *credits = 0;
                r.len.store(0, Ordering::Relaxed);
                moved |= n > 0;
                r.claimed.store(false, Ordering::Release);
            }
        });
        moved
    }

    /// Calls `f` on every record.
    fn for_each_record(&self, mut f: impl FnMut(&Rec)) {
        // `Acquire`: pairs with the `Release` CAS that published each record.
        let mut cur = self.records.load(Ordering::Acquire);
        while !cur.is_null() {
            // SAFETY: records are freed only with the pool.
            let r = unsafe { &*cur };
            f(r);
            cur = r.next_all;
        }
    }
}

impl<T> Drop for Pool<T> {
    fn drop(&mut self) {
        if loom_unwinding() {
            return;
        }
        // Nothing is handed out (handles borrow the pool). Drop the objects on the
        // free list and in every record, then free the records and the segments.
        let slot = |index: u32| -> *const Slot<T> {
            let n = u64::from(index) + 1;
            let k = 63 - n.leading_zeros() as usize;
            let seg = self.segments[k].load(Ordering::Acquire);
            // SAFETY: as in `Pool::slot`.
            unsafe { seg.add((n - (1 << k)) as usize) }
        };
        let drop_value = |index: u32| {
            // SAFETY: a slot of this pool: its segment lives until the end of this
            // `drop`.
            let s = unsafe { &*slot(index) };
            s.value.with_mut(|p| {
                // SAFETY: a slot on the free list or in a cache holds an object,
                // dropped exactly once here.
                unsafe { (*p).assume_init_drop() }
            });
        };
        let mut top = index_of(self.free.load(Ordering::Acquire));
        while top != NIL {
            // SAFETY: a slot of this pool.
            let next = unsafe { &*slot(top) }.next.load(Ordering::Relaxed);
            drop_value(top);
            top = next;
        }
        let mut cur = self.records.load(Ordering::Acquire);
        while !cur.is_null() {
            // SAFETY: records come from `Box::into_raw` in `claim_record` and are
            // freed only here, once each.
            let rec = unsafe { Box::from_raw(cur) };
            // SAFETY: `&mut self`: no thread owns the record any more in a way that
            // could access it (their entries only hold the flag).
            let items = rec.items.with_mut(|p| unsafe { core::mem::take(&mut *p) });
            for i in items {
                drop_value(i);
            }
            cur = rec.next_all;
        }
        for (k, seg) in self.segments.iter().enumerate() {
            let p = seg.load(Ordering::Acquire);
            if !p.is_null() {
                // SAFETY: made from a boxed slice of `2^k` slots in `fresh_slot`,
                // freed once here. `MaybeUninit` values are not dropped.
                drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(p, 1 << k)) });
            }
        }
    }
}

impl<T> fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("max_retained", &self.max_retained)
            .field("per_thread_cache", &self.cache_cap)
            .field("created", &self.created.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// A thread's entry for one pool: the pool's id, its record, and the record's
/// ownership flag. Dropping it abandons the record.
struct CacheEntry {
    id: u64,
    /// A `*const Rec` of the pool of this id, dereferenced only through that pool.
    rec: *const (),
    /// The record's ownership flag (reference counted: safe after the pool is gone).
    /// Manually dropped only so that a failing loom model can leak it.
    claimed: ManuallyDrop<Arc<AtomicBool>>,
}

impl Drop for CacheEntry {
    fn drop(&mut self) {
        if loom_unwinding() {
            return;
        }
        // `Release`: our accesses to the record happen before the next owner's claim.
        self.claimed.store(false, Ordering::Release);
        // SAFETY: not used again (we are in `drop`).
        drop(unsafe { ManuallyDrop::take(&mut self.claimed) });
    }
}

#[cfg(not(strata_loom))]
strata_primitives::thread_local! {
    /// The calling thread's cache records, by pool id.
    static CACHES: RefCell<Vec<CacheEntry>> = const { RefCell::new(Vec::new()) };
}

// loom's `thread_local!` takes no `const` initializer.
#[cfg(strata_loom)]
strata_primitives::thread_local! {
    /// The calling thread's cache records, by pool id.
    static CACHES: RefCell<Vec<CacheEntry>> = RefCell::new(Vec::new());
}

/// An object of a [`Pool`]; returned to the pool when dropped. It may be sent to
/// another thread (and then returns to that thread's cache).
pub struct Pooled<'a, T: Send> {
    pool: &'a Pool<T>,
    index: u32,
    /// Restored below: `Send`/`Sync` as `&mut T`.
    _not_sync: PhantomData<*mut T>,
}

// SAFETY: the handle is the exclusive owner of its object (like a `&mut T` or a
// `Box<T>`); it only needs `&Pool<T>`, which is `Sync` for `T: Send`.
unsafe impl<T: Send> Send for Pooled<'_, T> {}
// SAFETY: a shared handle gives only `&T`.
unsafe impl<T: Send + Sync> Sync for Pooled<'_, T> {}

impl<T: Send> Pooled<'_, T> {
    /// Takes the object out of the pool: it is not returned (and not reset) and the
    /// caller owns it.
    pub fn detach(this: Self) -> T {
        let this = ManuallyDrop::new(this);
        let pool = this.pool;
        let value = pool.slot(this.index).value.with_mut(|p| {
            // SAFETY: the handle owns the slot's object; we move it out once and the
            // slot goes to the empty list (uninitialized) right after; the handle's
            // drop does not run.
            unsafe { (*p).assume_init_read() }
        });
        pool.push(&pool.empty, this.index);
        pool.detached.fetch_add(1, Ordering::Relaxed);
        value
    }
}

impl<T: Send> Deref for Pooled<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        self.pool.slot(self.index).value.with(|p| {
            // SAFETY: the handle owns the slot, which holds an object.
            unsafe { (*p).assume_init_ref() }
        })
    }
}

impl<T: Send> DerefMut for Pooled<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        self.pool.slot(self.index).value.with_mut(|p| {
            // SAFETY: the handle owns the slot, which holds an object, and is
            // borrowed mutably.
            unsafe { (*p).assume_init_mut() }
        })
    }
}

impl<T: Send> Drop for Pooled<'_, T> {
    fn drop(&mut self) {
        if loom_unwinding() {
            return;
        }
        let pool = self.pool;
        if let Some(reset) = &pool.reset {
            /// Drops the object and recycles its slot if `reset` panics.
            struct OnUnwind<'a, T: Send>(&'a Pool<T>, u32);
            impl<T: Send> Drop for OnUnwind<'_, T> {
                fn drop(&mut self) {
                    self.0.slot(self.1).value.with_mut(|p| {
                        // SAFETY: the slot holds the object, dropped once here; the
                        // slot then goes to the empty list.
                        unsafe { (*p).assume_init_drop() }
                    });
                    self.0.push(&self.0.empty, self.1);
                    self.0.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            let guard = OnUnwind(pool, self.index);
            reset(&mut **self);
            core::mem::forget(guard);
        }
        pool.give_back(self.index);
    }
}

impl<T: Send + fmt::Debug> fmt::Debug for Pooled<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
#[path = "pool_tests.rs"]
mod tests;
