//! A Chase–Lev work-stealing deque with crossbeam-deque's API, whose thieves never
//! read a slot they have not claimed.
//!
//! D. Chase and Y. Lev, *Dynamic circular work-stealing deque*, SPAA 2005, with the
//! memory orderings of N. M. Lê, A. Pop, A. Cohen and F. Zappa Nardelli, *Correct and
//! efficient work-stealing for weak memory models*, PPoPP 2013, and the two-part head
//! of tokio's local run queue.
//!
//! ```
//! use strata_queue::deque::{Steal, Worker};
//!
//! let w = Worker::new_lifo();
//! let s = w.stealer();
//! w.push(1);
//! w.push(2);
//! w.push(3);
//! assert_eq!(s.steal(), Steal::Success(1)); // thieves take the oldest
//! assert_eq!(w.pop(), Some(3)); // a LIFO owner takes the newest
//! ```
//!
//! # Types
//!
//! * [`Worker`]: the owner's end; one thread pushes and pops (it is `Send` but not
//!   `Sync`). [`Worker::new_lifo`] pops the newest item, [`Worker::new_fifo`] the
//!   oldest.
//! * [`Stealer`]: any number of thieves (`Clone + Send + Sync`) take the oldest items,
//!   one at a time or in batches moved into their own `Worker`.
//! * [`Injector`]: a shared FIFO queue that any thread pushes into and steals from, in
//!   batches into a `Worker` too.
//! * [`Steal`]: `Empty`, `Success` or `Retry`.
//!
//! # The algorithm
//!
//! A growable ring buffer indexed by `u32` positions that wrap. `tail` is written only
//! by the owner. `head` is one 64-bit word holding two positions, `steal` and `real`:
//! `real` is the next position to claim, and `steal` is the lowest position that a
//! thief may still be reading. `[steal, real)` is the batch of one thief in flight;
//! `steal == real` when no thief is.
//!
//! * **push** writes slot `tail` and publishes it by storing `tail + 1` (Release). The
//!   buffer is full when `tail - steal == cap`: a slot is reused only after every
//!   thief that claimed its previous item has finished reading it. A full buffer is
//!   replaced by one twice the size holding a copy of `[steal, tail)`; the old one is
//!   retired through strata-reclaim, because a thief may still be reading it.
//! * **steal** loads `head` (`steal == real` or it returns `Retry`: another thief is
//!   copying), then `tail`; if `tail - real <= 0` the deque is empty. It then claims
//!   positions with a CAS of `head` from `(s, r)` to `(s, r + n)` (**the linearization
//!   point**), reads the `n` claimed slots, and releases the claim with a CAS that sets
//!   `steal = real` (Release).
//! * **pop** (LIFO) takes the newest item: it stores `tail - 1`, loads `head`, and takes
//!   the slot outright if other items remain; the last item is contested with thieves
//!   by a CAS of `real`. **pop** (FIFO) claims `real` with a CAS, like a thief that
//!   does not need the gate.
//!
//! The LIFO owner and the thieves form a store-buffering (Dekker) pattern: the owner
//! stores `tail` then loads `head`, a thief loads `head` then `tail`. Here the four
//! accesses are `SeqCst` (and so is every claiming CAS), which rules out both missing
//! the other: either the thief sees the decremented `tail`, or the owner sees the
//! `head` the thief claims from. That is the job of the `SeqCst` fences in Lê et al.;
//! C++20's single total order over `SeqCst` accesses gives the same guarantee
//! without them (a thief claims position `t` only from a `head` it loaded, which
//! follows in that order any `head` the owner loaded with `real < t`, so the thief's
//! later load of `tail` sees the owner's store). On x86_64 the owner's `SeqCst`
//! store is one `xchg` and the thief's loads are plain moves: no `mfence` on either
//! side. Loom does not model `SeqCst` accesses (it treats them as `AcqRel`), so under
//! `--cfg strata_loom` a `SeqCst` fence is added between the two accesses of each
//! side, and the models check that fenced formulation.
//!
//! # No data race on the slots
//!
//! In the published algorithm (and in crossbeam-deque) a thief reads the slot *before*
//! its claiming CAS and discards the value if the CAS fails: the owner may be
//! overwriting that slot at the same moment, which is a data race under the Rust
//! memory model, and so undefined behaviour for any `T`, whatever is done with the
//! bytes afterwards. Here every non-atomic access to a slot is made by the one thread
//! that owns it at that moment:
//!
//! * A thief reads only positions it has claimed with a successful CAS; no one else
//!   can claim them, and the owner cannot overwrite them, because `push` treats the
//!   buffer as full until the thief's release CAS moves `steal` past them. That CAS is
//!   Release and the owner's load of `head` is Acquire, so the thief's reads happen
//!   before the owner's next writes to those slots.
//! * The owner writes a slot before the Release store of `tail` that publishes it, and
//!   a thief claims a position only below a `tail` it loaded (Acquire).
//! * The owner's copy of `[steal, tail)` into a new buffer only *reads* the old slots
//!   (a thief may read the same slot at the same time: two reads are not a race), and
//!   the owner never writes an old buffer again. The copies of positions a thief is
//!   still reading are dead and never dropped.
//!
//! ThreadSanitizer reports nothing on this module's stress tests (the command is in
//! the README); it floods with reports on crossbeam-deque's.
//!
//! # Progress
//!
//! * The owner never waits. `push` is wait-free (apart from the allocator when the
//!   buffer grows); `pop` is one CAS at most, and a failed CAS means a thief took the
//!   last item.
//! * A thief's CAS fails only because another operation succeeded. But thieves
//!   exclude one another while one of them copies its claimed items (a handful of
//!   instructions per item): a thief that finds `steal != real` returns
//!   [`Steal::Retry`]. If the copying thief is preempted there, other thieves get
//!   `Retry` until it runs again; the owner is never held up, and grows the buffer
//!   instead of waiting for the slots. This is the price of never reading an
//!   unclaimed slot; crossbeam-deque's thieves are lock-free because they read
//!   before they claim.
//!
//! # Differences from crossbeam-deque
//!
//! * A `limit` of 0 in the `*_with_limit` methods is treated as 1 (crossbeam panics).
//! * `Steal::Retry` also means "another thief is copying its batch".
//! * Positions are 32-bit: a deque holds at most 2<sup>30</sup> items, and `push`
//!   panics beyond that (as `Vec` does on capacity overflow).
//! * Buffers are reclaimed through any [`Reclaim`] scheme (the `*_in` constructors),
//!   the default epoch domain otherwise.

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr;

use strata_primitives::CachePadded;
use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::Arc;
use strata_primitives::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};
use strata_reclaim::{Protect, Reclaim};

use crate::DefaultReclaim;

pub use crate::injector::Injector;

/// The initial (and smallest) buffer size. Small under loom so that models reach a
/// growth.
const MIN_CAP: usize = if cfg!(strata_loom) { 2 } else { 64 };

/// The largest buffer: positions are `u32`, and lengths must stay below 2^31 for the
/// wrapping differences to be read correctly.
const MAX_CAP: usize = 1 << 30;

/// The default number of items a batch steal takes at most (crossbeam's value).
pub(crate) const MAX_BATCH: usize = 32;

#[inline]
fn pack(steal: u32, real: u32) -> u64 {
    (u64::from(steal) << 32) | u64::from(real)
}

#[inline]
fn unpack(head: u64) -> (u32, u32) {
    ((head >> 32) as u32, head as u32)
}

/// Under loom only, a `SeqCst` fence between the two accesses of each side of the
/// Dekker pattern (module docs). Loom treats `SeqCst` accesses as `AcqRel` (its
/// README, "Unsupported features"), so without the fences it would report the
/// executions that C++20's total order on `SeqCst` accesses rules out; with them it
/// checks Lê et al.'s fenced formulation, which is at least as strong.
#[inline(always)]
fn loom_dekker_fence() {
    #[cfg(strata_loom)]
    strata_primitives::sync::atomic::fence(Ordering::SeqCst);
}

/// `a - b` between wrapping positions, as a signed distance.
#[inline]
fn distance(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

/// Which end the owner pops from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    Fifo,
    Lifo,
}

/// A power-of-two ring of slots. Position `i` lives in slot `i & mask`.
struct Buffer<T> {
    slots: Box<[UnsafeCell<MaybeUninit<T>>]>,
    mask: u32,
}

impl<T> Buffer<T> {
    fn alloc(cap: usize) -> *mut Buffer<T> {
        debug_assert!(cap.is_power_of_two() && cap <= MAX_CAP);
        let slots = (0..cap)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect();
        Box::into_raw(Box::new(Buffer {
            slots,
            mask: (cap - 1) as u32,
        }))
    }

    #[inline]
    fn cap(&self) -> usize {
        self.mask as usize + 1
    }

    #[inline]
    fn slot(&self, pos: u32) -> &UnsafeCell<MaybeUninit<T>> {
        // SAFETY: `pos & mask < slots.len()`, because `mask == slots.len() - 1`.
        unsafe { self.slots.get_unchecked((pos & self.mask) as usize) }
    }

    /// Moves the item out of position `pos`.
    ///
    /// # Safety
    /// The slot holds an item and the caller owns it (it claimed the position, or it is
    /// the owner and no thief can claim it); nobody writes the slot concurrently.
    #[inline]
    unsafe fn read(&self, pos: u32) -> T {
        // SAFETY: the caller's preconditions.
        self.slot(pos).with(|p| unsafe { p.read().assume_init() })
    }

    /// Writes `value` into position `pos`.
    ///
    /// # Safety
    /// Only the owner writes, and no thread reads or writes the slot concurrently (the
    /// previous item there has been taken and every thief that claimed it has finished
    /// reading it).
    #[inline]
    unsafe fn write(&self, pos: u32, value: T) {
        // SAFETY: the caller's preconditions.
        self.slot(pos)
            .with_mut(|p| unsafe { p.write(MaybeUninit::new(value)) })
    }

    /// Copies the bits of position `pos` into position `pos` of `dst`.
    ///
    /// # Safety
    /// Only the owner calls this; the source slot is initialized and nobody writes it
    /// concurrently; `dst` is not yet shared.
    unsafe fn copy_to(&self, dst: &Buffer<T>, pos: u32) {
        self.slot(pos).with(|src| {
            dst.slot(pos).with_mut(|d| {
                // SAFETY: distinct allocations; the caller's preconditions.
                unsafe { ptr::copy_nonoverlapping(src, d, 1) }
            })
        })
    }
}

/// The state shared by a worker and its stealers.
struct Inner<T, R: Reclaim> {
    /// `(steal, real)`, see the module docs.
    head: CachePadded<AtomicU64>,
    /// The next position the owner pushes to.
    tail: CachePadded<AtomicU32>,
    /// The current buffer; replaced only by the owner.
    buffer: CachePadded<AtomicPtr<Buffer<T>>>,
    reclaim: R,
    _owns: PhantomData<T>,
}

impl<T, R: Reclaim> Drop for Inner<T, R> {
    fn drop(&mut self) {
        // No other handle exists: no thief is in flight, so `steal == real`, and the
        // live items are `[real, tail)`.
        let (_, real) = unpack(self.head.load(Ordering::Relaxed));
        let tail = self.tail.load(Ordering::Relaxed);
        let buf = self.buffer.load(Ordering::Relaxed);
        // SAFETY: the buffer is the current one, owned by this last handle.
        let buffer = unsafe { &*buf };
        let mut pos = real;
        while pos != tail {
            // SAFETY: `[real, tail)` holds items that nobody took.
            drop(unsafe { buffer.read(pos) });
            pos = pos.wrapping_add(1);
        }
        // SAFETY: allocated by `Buffer::alloc`; no reference to it remains.
        drop(unsafe { Box::from_raw(buf) });
    }
}

/// The owner's end of a work-stealing deque.
///
/// One thread pushes and pops; it can be sent to another thread but not shared
/// (`Send`, not `Sync`). [`stealer`](Self::stealer) makes handles for the thieves.
///
/// ```
/// use strata_queue::deque::Worker;
///
/// let w = Worker::new_fifo();
/// w.push(1);
/// w.push(2);
/// assert_eq!(w.pop(), Some(1));
/// assert_eq!(w.len(), 1);
/// ```
pub struct Worker<T, R: Reclaim = DefaultReclaim> {
    inner: Arc<Inner<T, R>>,
    /// The current buffer (the owner is the only thread that replaces it).
    buffer: Cell<*mut Buffer<T>>,
    /// A lower bound of `steal` (it only grows): `push` reloads `head` only when this
    /// bound says the buffer is full.
    steal_bound: Cell<u32>,
    flavor: Flavor,
}

// SAFETY: the worker can move to another thread with its items (`T: Send`); the `Cell`s
// are only used by whichever thread holds the worker. It is not `Sync`: two threads
// must not push concurrently.
unsafe impl<T: Send, R: Reclaim> Send for Worker<T, R> {}

/// A thief's handle to a [`Worker`]'s deque: takes the oldest items.
///
/// ```
/// use strata_queue::deque::{Steal, Worker};
///
/// let w = Worker::new_lifo();
/// w.push(1);
/// let s = w.stealer();
/// let s2 = s.clone();
/// assert_eq!(s2.steal(), Steal::Success(1));
/// assert_eq!(s.steal(), Steal::Empty);
/// ```
pub struct Stealer<T, R: Reclaim = DefaultReclaim> {
    inner: Arc<Inner<T, R>>,
    flavor: Flavor,
}

// SAFETY: stealers only move items out through claimed positions (`T: Send`), and all
// shared state is atomic.
unsafe impl<T: Send, R: Reclaim> Send for Stealer<T, R> {}
// SAFETY: as above; `steal` takes `&self` and is safe to call from many threads.
unsafe impl<T: Send, R: Reclaim> Sync for Stealer<T, R> {}

#[cfg(not(strata_loom))]
impl<T> Worker<T> {
    /// A deque whose owner pops the oldest item (a queue), buffers reclaimed through
    /// the default epoch domain.
    ///
    /// ```
    /// use strata_queue::deque::Worker;
    ///
    /// let w = Worker::new_fifo();
    /// w.push('a');
    /// w.push('b');
    /// assert_eq!(w.pop(), Some('a'));
    /// ```
    pub fn new_fifo() -> Self {
        Self::new_fifo_in(DefaultReclaim::default())
    }

    /// A deque whose owner pops the newest item (a stack), buffers reclaimed through
    /// the default epoch domain.
    ///
    /// ```
    /// use strata_queue::deque::Worker;
    ///
    /// let w = Worker::new_lifo();
    /// w.push('a');
    /// w.push('b');
    /// assert_eq!(w.pop(), Some('b'));
    /// ```
    pub fn new_lifo() -> Self {
        Self::new_lifo_in(DefaultReclaim::default())
    }
}

impl<T, R: Reclaim> Worker<T, R> {
    /// [`new_fifo`](Worker::new_fifo) with buffers reclaimed through `reclaim`.
    pub fn new_fifo_in(reclaim: R) -> Self {
        Self::with_flavor(Flavor::Fifo, reclaim)
    }

    /// [`new_lifo`](Worker::new_lifo) with buffers reclaimed through `reclaim`.
    pub fn new_lifo_in(reclaim: R) -> Self {
        Self::with_flavor(Flavor::Lifo, reclaim)
    }

    fn with_flavor(flavor: Flavor, reclaim: R) -> Self {
        let buffer = Buffer::alloc(MIN_CAP);
        Worker {
            inner: Arc::new(Inner {
                head: CachePadded::new(AtomicU64::new(0)),
                tail: CachePadded::new(AtomicU32::new(0)),
                buffer: CachePadded::new(AtomicPtr::new(buffer)),
                reclaim,
                _owns: PhantomData,
            }),
            buffer: Cell::new(buffer),
            steal_bound: Cell::new(0),
            flavor,
        }
    }

    /// A new handle for thieves.
    pub fn stealer(&self) -> Stealer<T, R> {
        Stealer {
            inner: Arc::clone(&self.inner),
            flavor: self.flavor,
        }
    }

    /// `true` if the deque holds no item (exact from the owner's point of view, though
    /// thieves may take items at any moment).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of items not yet claimed by anyone (thieves may change it at any
    /// moment).
    pub fn len(&self) -> usize {
        let tail = self.inner.tail.load(Ordering::Relaxed);
        let (_, real) = unpack(self.inner.head.load(Ordering::SeqCst));
        distance(tail, real).max(0) as usize
    }

    /// Adds `value` at the tail. Wait-free, except when the buffer is full and grows.
    ///
    /// # Panics
    /// If the deque already holds 2<sup>30</sup> items (positions are 32-bit), or if
    /// the allocator fails.
    #[inline]
    pub fn push(&self, value: T) {
        let tail = self.inner.tail.load(Ordering::Relaxed);
        // SAFETY: the owner's buffer is live (only the owner retires buffers).
        let mut buffer = unsafe { &*self.buffer.get() };
        if distance(tail, self.steal_bound.get()) as usize >= buffer.cap() {
            buffer = self.make_room(tail, 1);
        }
        // SAFETY: owner; `tail - steal < cap`, so every thief that claimed the item
        // this slot held last has finished reading it (`make_room`'s Acquire load).
        unsafe { buffer.write(tail, value) };
        // Release: publishes the slot to the thief whose Acquire (SeqCst) load of
        // `tail` sees it.
        self.inner
            .tail
            .store(tail.wrapping_add(1), crate::publish_ordering());
    }

    /// Ensures room for `extra` more items (the owner's thread only).
    pub(crate) fn reserve(&self, extra: usize) {
        let tail = self.inner.tail.load(Ordering::Relaxed);
        // SAFETY: the owner's buffer is live.
        let cap = unsafe { (*self.buffer.get()).cap() };
        if distance(tail, self.steal_bound.get()) as usize + extra > cap {
            self.make_room(tail, extra);
        }
    }

    /// Ensures the buffer has room for `extra` more items at `tail`, growing it if
    /// needed, and returns it.
    #[cold]
    #[inline(never)]
    fn make_room(&self, tail: u32, extra: usize) -> &Buffer<T> {
        // Acquire: pairs with the Release CAS by which a thief moved `steal` past the
        // positions it read, so its reads happen before our writes to those slots.
        let (steal, _) = unpack(self.inner.head.load(Ordering::Acquire));
        self.steal_bound.set(steal);
        let len = distance(tail, steal) as usize;
        // SAFETY: the owner's buffer is live.
        let cap = unsafe { (*self.buffer.get()).cap() };
        let need = len
            .checked_add(extra)
            .filter(|&n| n <= MAX_CAP)
            .unwrap_or_else(|| {
                panic!("strata_queue::deque::Worker: more than {MAX_CAP} items (capacity overflow)")
            });
        if need > cap {
            self.resize(
                need.next_power_of_two().max(2 * cap).min(MAX_CAP),
                steal,
                tail,
            );
        }
        // SAFETY: as above.
        unsafe { &*self.buffer.get() }
    }

    /// Replaces the buffer with one of `new_cap` slots holding `[steal, tail)`, and
    /// retires the old one.
    #[cold]
    fn resize(&self, new_cap: usize, steal: u32, tail: u32) {
        debug_assert!(distance(tail, steal) as usize <= new_cap);
        let old = self.buffer.get();
        let new = Buffer::alloc(new_cap);
        // SAFETY: the owner's buffer is live; `new` is not shared yet.
        let (old_ref, new_ref) = unsafe { (&*old, &*new) };
        let mut pos = steal;
        while pos != tail {
            // SAFETY: `[steal, tail)` is initialized (positions a thief is still
            // reading are copied too: both are reads). Only the owner writes slots.
            unsafe { old_ref.copy_to(new_ref, pos) };
            pos = pos.wrapping_add(1);
        }
        self.buffer.set(new);
        let guard = self.inner.reclaim.guard();
        // Release: publishes the copies to the thieves that load the new buffer
        // (Acquire, in `Protect::protect`).
        self.inner.buffer.store(new, Ordering::Release);
        // SAFETY: `old` came from `Box::into_raw` in `Buffer::alloc`, is unlinked (the
        // store above), and is retired once; dropping a `Buffer` frees its slots
        // without dropping items (`MaybeUninit`).
        unsafe { guard.retire(old) };
    }

    /// Removes an item: the newest for a LIFO worker, the oldest for a FIFO worker.
    /// `None` if the deque is empty (or a thief took the last item first).
    #[inline]
    pub fn pop(&self) -> Option<T> {
        match self.flavor {
            Flavor::Lifo => self.pop_lifo(),
            Flavor::Fifo => self.pop_fifo(),
        }
    }

    #[inline]
    fn pop_lifo(&self) -> Option<T> {
        let inner = &*self.inner;
        let tail = inner.tail.load(Ordering::Relaxed);
        let (_, real) = unpack(inner.head.load(Ordering::Relaxed));
        if distance(tail, real) <= 0 {
            return None;
        }
        let new_tail = tail.wrapping_sub(1);
        // SeqCst store, then SeqCst load of `head`: the owner's half of the Dekker
        // pattern (module docs).
        inner.tail.store(new_tail, Ordering::SeqCst);
        loom_dekker_fence();
        let head = inner.head.load(Ordering::SeqCst);
        let (steal, real) = unpack(head);
        let len = distance(new_tail, real);
        if len < 0 {
            // A thief took the last item meanwhile.
            inner.tail.store(tail, Ordering::Relaxed);
            return None;
        }
        // SAFETY: the owner's buffer is live.
        let buffer = unsafe { &*self.buffer.get() };
        if len > 0 {
            // SAFETY: position `new_tail` holds an item, and no thief can claim it: a
            // thief claims only below a `tail` it loaded after our store, or claims
            // `real < new_tail` (module docs).
            let value = unsafe { buffer.read(new_tail) };
            if buffer.cap() > MIN_CAP && (distance(new_tail, steal) as usize) < buffer.cap() / 4 {
                self.resize(buffer.cap() / 2, steal, new_tail);
            }
            return Some(value);
        }
        // The last item: contest it with the thieves through `real`.
        let mut current = head;
        let won = loop {
            let (steal, real) = unpack(current);
            if real != new_tail {
                break false;
            }
            let next_steal = if steal == real {
                real.wrapping_add(1)
            } else {
                steal
            };
            match inner.head.compare_exchange_weak(
                current,
                pack(next_steal, real.wrapping_add(1)),
                Ordering::SeqCst,
                Ordering::Relaxed,
            ) {
                Ok(_) => break true,
                // A thief released its batch (`steal` moved), or claimed the item.
                Err(now) => current = now,
            }
        };
        inner.tail.store(tail, Ordering::Relaxed);
        if won {
            // SAFETY: we claimed position `new_tail` with the CAS.
            Some(unsafe { buffer.read(new_tail) })
        } else {
            None
        }
    }

    #[inline]
    fn pop_fifo(&self) -> Option<T> {
        let inner = &*self.inner;
        let tail = inner.tail.load(Ordering::Relaxed);
        let mut current = inner.head.load(Ordering::Relaxed);
        loop {
            let (steal, real) = unpack(current);
            if distance(tail, real) <= 0 {
                return None;
            }
            let next_steal = if steal == real {
                real.wrapping_add(1)
            } else {
                steal
            };
            match inner.head.compare_exchange_weak(
                current,
                pack(next_steal, real.wrapping_add(1)),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    // SAFETY: the owner's buffer is live.
                    let buffer = unsafe { &*self.buffer.get() };
                    // SAFETY: we claimed position `real` with the CAS; the owner wrote it.
                    let value = unsafe { buffer.read(real) };
                    let len = distance(tail, steal) as usize;
                    if buffer.cap() > MIN_CAP && len < buffer.cap() / 4 {
                        self.resize(buffer.cap() / 2, steal, tail);
                    }
                    return Some(value);
                }
                Err(now) => current = now,
            }
        }
    }

    /// Writes `items` (taken from positions in this order) at the tail, so that this
    /// worker pops them in the same order, and publishes them with one store.
    ///
    /// # Safety
    /// Called by the thread that owns this worker, after `make_room` for at least
    /// `count` items; `next` yields exactly `count` items.
    pub(crate) unsafe fn push_batch(&self, count: u32, mut next: impl FnMut() -> T) {
        if count == 0 {
            return;
        }
        let tail = self.inner.tail.load(Ordering::Relaxed);
        // SAFETY: the owner's buffer is live.
        let buffer = unsafe { &*self.buffer.get() };
        for i in 0..count {
            let pos = match self.flavor {
                Flavor::Fifo => tail.wrapping_add(i),
                // The first stolen item must be popped first: it goes on top.
                Flavor::Lifo => tail.wrapping_add(count - 1 - i),
            };
            // SAFETY: `make_room` made `[tail, tail + count)` writable by the owner.
            unsafe { buffer.write(pos, next()) };
        }
        // Release: publishes the items to thieves (see `push`).
        self.inner
            .tail
            .store(tail.wrapping_add(count), crate::publish_ordering());
    }
}

impl<T, R: Reclaim> fmt::Debug for Worker<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Worker { .. }")
    }
}

/// Outcome of a claim by a thief: the first claimed position and how many.
struct Claim {
    first: u32,
    count: u32,
}

impl<T, R: Reclaim> Stealer<T, R> {
    /// `true` if the deque holds no item that could be stolen (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of items not yet claimed (a snapshot).
    pub fn len(&self) -> usize {
        let (_, real) = unpack(self.inner.head.load(Ordering::SeqCst));
        let tail = self.inner.tail.load(Ordering::SeqCst);
        distance(tail, real).max(0) as usize
    }

    /// Takes the oldest item.
    ///
    /// `Retry` when another thread won the race for it, or when another thief is
    /// copying a batch it claimed (see the module docs on progress); calling again is
    /// the usual answer.
    ///
    /// ```
    /// use strata_queue::deque::{Steal, Worker};
    ///
    /// let w = Worker::new_lifo();
    /// w.push(1);
    /// w.push(2);
    /// assert_eq!(w.stealer().steal(), Steal::Success(1));
    /// ```
    pub fn steal(&self) -> Steal<T> {
        let inner = &*self.inner;
        let head = inner.head.load(Ordering::SeqCst);
        let (steal, real) = unpack(head);
        if steal != real {
            return Steal::Retry;
        }
        loom_dekker_fence();
        // SeqCst: the thief's half of the Dekker pattern with `pop` (module docs);
        // Acquire: pairs with the Release store of `tail` that published the slot.
        let tail = inner.tail.load(Ordering::SeqCst);
        if distance(tail, real) <= 0 {
            return Steal::Empty;
        }
        let mut guard = inner.reclaim.guard();
        // Loaded after `tail`: it is the buffer the item was written to or a later
        // one, which holds a copy of it unless someone claimed it (then the CAS below
        // fails).
        let buffer = guard.protect(&inner.buffer);
        let claimed = pack(steal, real.wrapping_add(1));
        if inner
            .head
            .compare_exchange(head, claimed, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return Steal::Retry;
        }
        // SAFETY: `buffer` is protected by `guard`; we claimed position `real`, which
        // the owner cannot overwrite until we release the claim.
        let value = unsafe { (*buffer).read(real) };
        self.release(claimed);
        Steal::Success(value)
    }

    /// Ends this thief's claim: `steal = real` (Release: our reads of the claimed
    /// slots happen before the owner's next writes to them; see `make_room`).
    fn release(&self, mut current: u64) {
        loop {
            let (_, real) = unpack(current);
            match self.inner.head.compare_exchange_weak(
                current,
                pack(real, real),
                crate::publish_ordering(),
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                // The owner moved `real` (it popped the last item, or a FIFO pop).
                Err(now) => current = now,
            }
        }
    }

    /// Claims up to `want` of the oldest items, starting at `head` (which has
    /// `steal == real`). FIFO deques claim them with one CAS; a LIFO owner pops from
    /// the same end at the bottom, so there the items are claimed one at a time, each
    /// after re-reading `tail` (the Dekker argument holds per claim).
    fn claim(&self, head: u64, want: u32) -> Result<(Claim, u64), Steal<()>> {
        let inner = &*self.inner;
        let (steal, real) = unpack(head);
        match self.flavor {
            Flavor::Fifo => {
                let claimed = pack(steal, real.wrapping_add(want));
                inner
                    .head
                    .compare_exchange(head, claimed, Ordering::SeqCst, Ordering::Relaxed)
                    .map_err(|_| Steal::Retry)?;
                Ok((
                    Claim {
                        first: real,
                        count: want,
                    },
                    claimed,
                ))
            }
            Flavor::Lifo => {
                let mut current = pack(steal, real.wrapping_add(1));
                inner
                    .head
                    .compare_exchange(head, current, Ordering::SeqCst, Ordering::Relaxed)
                    .map_err(|_| Steal::Retry)?;
                let mut count = 1;
                while count < want {
                    let next = real.wrapping_add(count);
                    // SeqCst: after our SeqCst CAS of `head`, as in `steal`.
                    loom_dekker_fence();
                    let tail = inner.tail.load(Ordering::SeqCst);
                    if distance(tail, next) <= 0 {
                        break;
                    }
                    let claimed = pack(steal, next.wrapping_add(1));
                    match inner.head.compare_exchange(
                        current,
                        claimed,
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            current = claimed;
                            count += 1;
                        }
                        // The owner took the last item: keep what we have.
                        Err(_) => break,
                    }
                }
                Ok((Claim { first: real, count }, current))
            }
        }
    }

    /// The shared body of the batch steals: claims up to `limit` items (about half of
    /// those present), moves them into `dest` in steal order, and returns the first
    /// one instead if `pop` is set.
    fn steal_into(&self, dest: &Worker<T, R>, limit: usize, pop: bool) -> Steal<Option<T>> {
        let limit = limit.max(1);
        if Arc::ptr_eq(&self.inner, &dest.inner) {
            // Stealing from oneself moves nothing (as in crossbeam).
            return match (pop, dest.is_empty()) {
                (true, _) => match dest.pop() {
                    Some(v) => Steal::Success(Some(v)),
                    None => Steal::Empty,
                },
                (false, true) => Steal::Empty,
                (false, false) => Steal::Success(None),
            };
        }
        let inner = &*self.inner;
        let head = inner.head.load(Ordering::SeqCst);
        let (steal, real) = unpack(head);
        if steal != real {
            return Steal::Retry;
        }
        loom_dekker_fence();
        let tail = inner.tail.load(Ordering::SeqCst);
        let len = distance(tail, real);
        if len <= 0 {
            return Steal::Empty;
        }
        let len = len as usize;
        let want = if pop {
            ((len - 1) / 2).min(limit - 1) + 1
        } else {
            len.div_ceil(2).min(limit)
        };
        // Room for the batch in `dest` first, so nothing can fail once items are
        // claimed.
        // (We own `dest`: `Worker` is not `Sync`, and this thread borrows it.)
        dest.reserve(want);
        let mut guard = inner.reclaim.guard();
        let buffer = guard.protect(&inner.buffer);
        let (claim, claimed) = match self.claim(head, want as u32) {
            Ok(c) => c,
            Err(_) => return Steal::Retry,
        };
        let mut pos = claim.first;
        let mut take = || {
            // SAFETY: `buffer` is protected by `guard`; positions
            // `[claim.first, claim.first + claim.count)` are ours until `release`.
            let v = unsafe { (*buffer).read(pos) };
            pos = pos.wrapping_add(1);
            v
        };
        let first = if pop { Some(take()) } else { None };
        let to_dest = claim.count - u32::from(pop);
        // SAFETY: this thread owns `dest`, `make_room` reserved `want >= to_dest`
        // slots, and `take` yields exactly `to_dest` more items.
        unsafe { dest.push_batch(to_dest, take) };
        self.release(claimed);
        drop(guard);
        Steal::Success(first)
    }

    /// Steals about half of the items (at most 32) into `dest`, in the order they
    /// would have been stolen.
    ///
    /// ```
    /// use strata_queue::deque::Worker;
    ///
    /// let w1 = Worker::new_fifo();
    /// for i in 1..=4 {
    ///     w1.push(i);
    /// }
    /// let w2 = Worker::new_fifo();
    /// let _ = w1.stealer().steal_batch(&w2);
    /// assert_eq!(w2.pop(), Some(1));
    /// assert_eq!(w2.pop(), Some(2));
    /// assert_eq!(w2.pop(), None);
    /// ```
    pub fn steal_batch(&self, dest: &Worker<T, R>) -> Steal<()> {
        self.steal_batch_with_limit(dest, MAX_BATCH)
    }

    /// Steals about half of the items, at most `limit` (0 counts as 1), into `dest`.
    pub fn steal_batch_with_limit(&self, dest: &Worker<T, R>, limit: usize) -> Steal<()> {
        match self.steal_into(dest, limit, false) {
            Steal::Success(_) => Steal::Success(()),
            Steal::Empty => Steal::Empty,
            Steal::Retry => Steal::Retry,
        }
    }

    /// Steals about half of the items (at most 32) and returns the oldest of them,
    /// moving the rest into `dest`.
    ///
    /// ```
    /// use strata_queue::deque::{Steal, Worker};
    ///
    /// let w1 = Worker::new_fifo();
    /// for i in 1..=4 {
    ///     w1.push(i);
    /// }
    /// let w2 = Worker::new_fifo();
    /// assert_eq!(w1.stealer().steal_batch_and_pop(&w2), Steal::Success(1));
    /// assert_eq!(w2.pop(), Some(2));
    /// ```
    pub fn steal_batch_and_pop(&self, dest: &Worker<T, R>) -> Steal<T> {
        self.steal_batch_with_limit_and_pop(dest, MAX_BATCH)
    }

    /// Like [`steal_batch_and_pop`](Self::steal_batch_and_pop), taking at most `limit`
    /// items in all (0 counts as 1).
    pub fn steal_batch_with_limit_and_pop(&self, dest: &Worker<T, R>, limit: usize) -> Steal<T> {
        match self.steal_into(dest, limit, true) {
            Steal::Success(Some(v)) => Steal::Success(v),
            // `pop` always yields the first item.
            Steal::Success(None) | Steal::Empty => Steal::Empty,
            Steal::Retry => Steal::Retry,
        }
    }
}

impl<T, R: Reclaim> Clone for Stealer<T, R> {
    fn clone(&self) -> Self {
        Stealer {
            inner: Arc::clone(&self.inner),
            flavor: self.flavor,
        }
    }
}

impl<T, R: Reclaim> fmt::Debug for Stealer<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Stealer { .. }")
    }
}

/// The outcome of a steal.
///
/// ```
/// use strata_queue::deque::Steal;
///
/// let s: Steal<i32> = [Steal::Retry, Steal::Success(7), Steal::Empty].into_iter().collect();
/// assert_eq!(s, Steal::Success(7));
/// assert_eq!(Steal::Empty.or_else(|| Steal::Success(1)), Steal::Success(1));
/// ```
#[must_use]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Steal<T> {
    /// There was nothing to steal.
    Empty,
    /// An item (or, for the batch steals, a batch) was stolen.
    Success(T),
    /// The steal lost a race and should be tried again.
    Retry,
}

impl<T> Steal<T> {
    /// `true` for `Empty`.
    pub fn is_empty(&self) -> bool {
        matches!(self, Steal::Empty)
    }

    /// `true` for `Success`.
    pub fn is_success(&self) -> bool {
        matches!(self, Steal::Success(_))
    }

    /// `true` for `Retry`.
    pub fn is_retry(&self) -> bool {
        matches!(self, Steal::Retry)
    }

    /// The stolen item, if any.
    pub fn success(self) -> Option<T> {
        match self {
            Steal::Success(v) => Some(v),
            _ => None,
        }
    }

    /// If this is `Empty`, the result of `f`; if `Retry`, `f`'s success or else
    /// `Retry`; a `Success` is kept.
    ///
    /// ```
    /// use strata_queue::deque::Steal;
    ///
    /// assert_eq!(Steal::Retry.or_else(|| Steal::<i32>::Empty), Steal::Retry);
    /// assert_eq!(Steal::Success(1).or_else(|| Steal::Success(2)), Steal::Success(1));
    /// ```
    pub fn or_else<F: FnOnce() -> Steal<T>>(self, f: F) -> Steal<T> {
        match self {
            Steal::Empty => f(),
            Steal::Success(_) => self,
            Steal::Retry => match f() {
                Steal::Success(v) => Steal::Success(v),
                _ => Steal::Retry,
            },
        }
    }
}

impl<T> fmt::Debug for Steal<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Steal::Empty => f.pad("Empty"),
            Steal::Success(_) => f.pad("Success(..)"),
            Steal::Retry => f.pad("Retry"),
        }
    }
}

/// The first `Success`; otherwise `Retry` if any was `Retry`, else `Empty`.
impl<T> FromIterator<Steal<T>> for Steal<T> {
    fn from_iter<I: IntoIterator<Item = Steal<T>>>(iter: I) -> Steal<T> {
        let mut retry = false;
        for s in iter {
            match s {
                Steal::Success(_) => return s,
                Steal::Retry => retry = true,
                Steal::Empty => {}
            }
        }
        if retry { Steal::Retry } else { Steal::Empty }
    }
}
