//! A Chase–Lev work-stealing deque with crossbeam-deque's API, whose thieves never
//! read a slot they have not claimed.
//!
//! D. Chase and Y. Lev, *Dynamic circular work-stealing deque*, SPAA 2005, with the
//! memory orderings of N. M. Lê, A. Pop, A. Cohen and F. Zappa Nardelli, *Correct and
//! efficient work-stealing for weak memory models*, PPoPP 2013.
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
//!   batches into a `Worker` too (see [`injector`](crate::injector)).
//! * [`Steal`]: `Empty`, `Success` or `Retry`.
//!
//! # The algorithm
//!
//! A growable ring buffer of `cap` slots indexed by `u32` positions that wrap. Each
//! slot holds an item and a **stamp**: the position the owner may write into it next.
//! While the slot holds position `p` its stamp is `p`; whoever takes `p` (other than
//! the owner) stores `p + cap` after reading it. `tail` is written only by the owner.
//! `head` is one 64-bit word holding `real`, the next position to claim, and `gen`, the
//! generation of the current buffer (buffers are numbered as the owner replaces them).
//!
//! * **push** writes slot `tail` if its stamp is `tail` (Acquire), and publishes it by
//!   storing `tail + 1` (Release). Any other stamp means that the slot's previous item
//!   has not been taken, or that a thief that claimed it has not finished reading it:
//!   if the buffer is not full the owner re-reads the stamp a bounded number of times
//!   (64), then replaces the buffer by one twice the size. The owner reads stamps 16
//!   at a time, ahead of need (a slot seen free stays free until the owner writes it),
//!   so the line of stamps the thieves write moves to it once per 16 pushes.
//! * **steal** loads `head` then `tail`; if `tail - real <= 0` the deque is empty. It
//!   loads the buffer, checks that its generation is `gen`, claims position `real`
//!   with a CAS of `head` from `(gen, real)` to `(gen, real + 1)` (**the linearization
//!   point**), and only then reads the slot and stamps it `real + cap` (Release).
//!   Batch steals claim several positions.
//! * **pop** (LIFO) takes the newest item: it stores `tail - 1`, loads `head`, and
//!   takes the slot outright if other items remain, leaving the stamp (the owner's next
//!   push writes that same position again); the last item is contested with the
//!   thieves by a CAS of `head`. **pop** (FIFO) claims `real` with one `fetch_add`,
//!   undone with a plain store if thieves emptied the deque meanwhile (while `real` is
//!   past `tail` no thief claims anything). Consecutive FIFO pops that no thief's
//!   claim separates form a *run*: their slots are not stamped, because the owner
//!   knows it is done with them; a thief's claim ends the run, and the slots of its
//!   positions that have not been written again are stamped then.
//! * **Replacing the buffer** (growing, or shrinking below a quarter full): the owner
//!   copies the unclaimed positions `[real, tail)` into a new buffer of generation
//!   `gen + 1` whose stamps start fresh, publishes it, and then moves `head` to
//!   `(gen + 1, real)` with a CAS. A thief that claimed positions from the old buffer
//!   meanwhile makes that CAS fail; the owner then stamps those positions free in the
//!   new buffer and tries again. Once the generation has moved, a claim against the
//!   old buffer cannot succeed, so each buffer's stamps are exact. The old buffer is
//!   retired through strata-reclaim: a thief may still be reading its claimed slot
//!   there.
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
//! * A thief reads only positions it has claimed with a successful CAS, from the
//!   buffer of the generation it claimed in; no one else can claim them. The owner
//!   writes a slot only after an Acquire load found the stamp that the thief stores
//!   with Release after its read, so the read happens before the owner's next write
//!   (or after taking the slot's previous item itself). A slow thief makes the owner
//!   grow the buffer, never wait, and never write under it.
//! * The owner writes a slot before the Release store of `tail` that publishes it, and
//!   a thief claims a position only below a `tail` it loaded (Acquire).
//! * The owner's copy into a new buffer only *reads* the old slots, and the owner never
//!   writes an old buffer again.
//!
//! ThreadSanitizer reports nothing on this module's stress tests (the command is in
//! the README).
//!
//! # Progress
//!
//! * The owner never waits for a thief. `push` is wait-free: at most 64 re-reads of a
//!   stamp before it grows the buffer (then only the allocator can hold it up); `pop`
//!   makes one read-modify-write of `head` at most (a LIFO pop only for the last
//!   item, and a failed CAS there means a thief took it).
//! * Thieves are lock-free: a CAS fails only because another claim, pop or buffer
//!   replacement succeeded. One window makes a thief return `Retry` without anyone
//!   having completed an operation: between the owner's publication of a new buffer
//!   and its CAS of the generation, two consecutive instructions of the owner.
//!
//! # Differences from crossbeam-deque
//!
//! * A `limit` of 0 in the `*_with_limit` methods is treated as 1 (crossbeam panics).
//! * Positions are 32-bit: a deque holds at most 2<sup>30</sup> items, and `push`
//!   panics beyond that (as `Vec` does on capacity overflow).
//! * Each slot has a 32-bit stamp besides the item (in an array of its own: 4 bytes
//!   more per slot).
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

/// How many rounds `push` spins on a slot whose previous item a thief is still
/// reading before it grows the buffer instead (one under loom, to keep the models
/// small while still running the path).
const PUSH_SPINS: usize = if cfg!(strata_loom) { 1 } else { 64 };

/// The default number of items a batch steal takes at most (crossbeam's value).
pub(crate) const MAX_BATCH: usize = 32;

#[inline]
fn pack(generation: u32, real: u32) -> u64 {
    (u64::from(generation) << 32) | u64::from(real)
}

/// `(gen, real)`.
#[inline]
fn unpack(head: u64) -> (u32, u32) {
    ((head >> 32) as u32, head as u32)
}

/// `head` with `real` moved on by `n` (wrapping within its half: a wrap of `real` must
/// not carry into the generation).
#[inline]
fn advance(head: u64, n: u32) -> u64 {
    let (generation, real) = unpack(head);
    pack(generation, real.wrapping_add(n))
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

/// A power-of-two ring of slots. Position `i` lives in slot `i & mask`: its item in
/// `values[i & mask]`, and its stamp in `stamps[i & mask]`.
///
/// A stamp is the position the owner may write into its slot next. While the slot
/// holds position `p` (or `p` was taken back by the LIFO owner's own pop) it is `p`;
/// whoever else takes `p` stores `p + cap` after reading it. Only the owner reads
/// stamps. They live in an array of their own, not beside the items: a thief's stamp
/// store then dirties a line of 16 stamps that it mostly writes again on its next
/// steals, instead of the line of the items the owner and the other thieves are
/// reading.
struct Buffer<T> {
    values: Box<[UnsafeCell<MaybeUninit<T>>]>,
    stamps: Box<[AtomicU32]>,
    /// The generation under which thieves claim from this buffer.
    generation: u32,
}

/// A buffer's arrays as pointers and a mask: what the owner caches, so that its fast
/// paths reach a slot without going through the buffer header.
struct Ring<T> {
    values: *const UnsafeCell<MaybeUninit<T>>,
    stamps: *const AtomicU32,
    mask: u32,
}

impl<T> Clone for Ring<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Ring<T> {}

impl<T> Buffer<T> {
    /// A buffer of `cap` slots whose positions start at `first`: the slot of
    /// position `q` in `[first, first + cap)` is stamped `q`.
    fn alloc(cap: usize, generation: u32, first: u32) -> *mut Buffer<T> {
        debug_assert!(cap.is_power_of_two() && cap <= MAX_CAP);
        let mask = (cap - 1) as u32;
        let values = (0..cap)
            .map(|_| UnsafeCell::new(MaybeUninit::uninit()))
            .collect();
        let stamps = (0..cap as u32)
            // The position in `[first, first + cap)` that maps to slot `i`.
            .map(|i| AtomicU32::new(first.wrapping_add(i.wrapping_sub(first) & mask)))
            .collect();
        Box::into_raw(Box::new(Buffer {
            values,
            stamps,
            generation,
        }))
    }

    #[inline]
    fn ring(&self) -> Ring<T> {
        Ring {
            values: self.values.as_ptr(),
            stamps: self.stamps.as_ptr(),
            mask: (self.values.len() - 1) as u32,
        }
    }
}

/// The slot operations. A `Ring` is used only while its buffer is alive: the owner's
/// current buffer (only the owner retires buffers), or one a thief protects.
impl<T> Ring<T> {
    #[inline]
    fn cap(self) -> usize {
        self.mask as usize + 1
    }

    #[inline]
    fn value<'a>(self, pos: u32) -> &'a UnsafeCell<MaybeUninit<T>> {
        // SAFETY: `pos & mask < len`, because `mask == len - 1`; the buffer is alive
        // while its ring is used (see the impl's comment).
        unsafe { &*self.values.add((pos & self.mask) as usize) }
    }

    #[inline]
    fn stamp<'a>(self, pos: u32) -> &'a AtomicU32 {
        // SAFETY: as in `value`.
        unsafe { &*self.stamps.add((pos & self.mask) as usize) }
    }

    /// Moves the item out of position `pos`, leaving the stamp at `pos`: the LIFO
    /// owner's pop, after which the next write to the slot is the owner's own push at
    /// `pos` (its tail comes back through `pos` before it can reach `pos + cap`).
    ///
    /// # Safety
    /// As for [`take`](Self::take).
    #[inline]
    unsafe fn take_back(self, pos: u32) -> T {
        self.value(pos).with(|p| {
            // SAFETY: the caller's preconditions.
            unsafe { p.read().assume_init() }
        })
    }

    /// Moves the item out of position `pos` and stamps the slot free for the next lap.
    ///
    /// # Safety
    /// The slot holds an item and the caller owns it (it claimed the position in this
    /// buffer's generation, or it is the owner and no thief can claim it); nobody
    /// writes the slot concurrently.
    #[inline]
    unsafe fn take(self, pos: u32) -> T {
        let value = self.value(pos).with(|p| {
            // SAFETY: the caller's preconditions.
            unsafe { p.read().assume_init() }
        });
        // Release: our read happens before the owner's next write to this slot (it
        // loads the stamp with Acquire).
        self.stamp(pos).store(
            pos.wrapping_add(self.mask).wrapping_add(1),
            crate::publish_ordering(),
        );
        value
    }

    /// Writes `value` into position `pos` (the stamp already says `pos`, and keeps
    /// saying it while the item is there).
    ///
    /// # Safety
    /// Only the owner writes, and the slot's stamp was seen at `pos` with an Acquire
    /// load (so no thread reads or writes the slot any more).
    #[inline]
    unsafe fn put(self, pos: u32, value: T) {
        self.value(pos).with_mut(|p| {
            // SAFETY: the caller's preconditions.
            unsafe { p.write(MaybeUninit::new(value)) }
        });
    }

    /// `true` if the owner may write position `pos`.
    #[inline]
    fn is_free(self, pos: u32) -> bool {
        // Acquire: pairs with the Release store in `take` of the thread that took the
        // slot's previous item.
        self.stamp(pos).load(Ordering::Acquire) == pos
    }

    /// Copies the item of position `pos` into position `pos` of `dst` (whose stamp
    /// there is `pos` from `Buffer::alloc`).
    ///
    /// # Safety
    /// Only the owner calls this; the source slot holds an unclaimed item; `dst` is
    /// not yet shared.
    unsafe fn copy_to(self, dst: Ring<T>, pos: u32) {
        let to = dst.value(pos);
        self.value(pos).with(|src| {
            to.with_mut(|d| {
                // SAFETY: distinct allocations; the caller's preconditions.
                unsafe { ptr::copy_nonoverlapping(src, d, 1) }
            })
        });
    }
}

/// The state shared by a worker and its stealers.
///
/// `head` and `tail` share a cache line (the whole `Inner` is cache-padded): a steal
/// reads `tail` and writes `head`, a pop writes `tail` and reads `head`, so one line
/// moves between the owner and a thief per steal instead of two.
#[repr(C)]
struct Inner<T, R: Reclaim> {
    /// `(gen, real)`, see the module docs.
    head: AtomicU64,
    /// The next position the owner pushes to.
    tail: AtomicU32,
    /// The current buffer; replaced only by the owner.
    buffer: CachePadded<AtomicPtr<Buffer<T>>>,
    reclaim: R,
    _owns: PhantomData<T>,
}

impl<T, R: Reclaim> Drop for Inner<T, R> {
    fn drop(&mut self) {
        // No other handle exists: the live items are `[real, tail)`.
        let (_, real) = unpack(self.head.load(Ordering::Relaxed));
        let tail = self.tail.load(Ordering::Relaxed);
        let buf = self.buffer.load(Ordering::Relaxed);
        // SAFETY: the buffer is the current one, owned by this last handle.
        let buffer = unsafe { (*buf).ring() };
        let mut pos = real;
        while pos != tail {
            // SAFETY: `[real, tail)` holds items that nobody took.
            drop(unsafe { buffer.take(pos) });
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
    inner: Arc<CachePadded<Inner<T, R>>>,
    /// The current buffer (the owner is the only thread that replaces it).
    buffer: Cell<*mut Buffer<T>>,
    /// Its slots.
    ring: Cell<Ring<T>>,
    /// Positions in `[tail, free_to)` are known writable: `push` reads stamps a line
    /// (16 positions) at a time, ahead of need, instead of one per push, so the line of
    /// stamps the thieves are writing moves to the owner once per 16 pushes rather than
    /// on each. A slot seen free stays free until the owner writes it (only the taker
    /// of a slot's item writes its stamp), and the LIFO owner's own pops leave their
    /// slots free.
    free_to: Cell<u32>,
    /// `[run.0, run.1)`: positions the FIFO owner's own pops took one after another,
    /// with no thief claiming in between. Those pops do not stamp their slots (a store
    /// saved on the hot path): the owner knows it has finished with them, so `push`
    /// writes there without reading the stamp. When a thief's claim breaks the run, the
    /// stamps its slots still need are written then (`end_run`). Empty for a LIFO
    /// owner.
    run: Cell<(u32, u32)>,
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
    inner: Arc<CachePadded<Inner<T, R>>>,
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
        let buffer = Buffer::alloc(MIN_CAP, 0, 0);
        Worker {
            inner: Arc::new(CachePadded::new(Inner {
                head: AtomicU64::new(pack(0, 0)),
                tail: AtomicU32::new(0),
                buffer: CachePadded::new(AtomicPtr::new(buffer)),
                reclaim,
                _owns: PhantomData,
            })),
            buffer: Cell::new(buffer),
            // SAFETY: just allocated.
            ring: Cell::new(unsafe { (*buffer).ring() }),
            run: Cell::new((0, 0)),
            free_to: Cell::new(0),
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

    /// The owner's current buffer's slots.
    #[inline]
    fn buffer(&self) -> Ring<T> {
        self.ring.get()
    }

    /// Adds `value` at the tail. Wait-free, except when the buffer grows.
    ///
    /// # Panics
    /// If the deque already holds 2<sup>30</sup> items (positions are 32-bit), or if
    /// the allocator fails.
    #[inline]
    pub fn push(&self, value: T) {
        let tail = self.inner.tail.load(Ordering::Relaxed);
        if distance(self.free_to.get(), tail) <= 0 && !self.extend_free(tail, 1) {
            self.make_room(tail, 1);
        }
        // SAFETY: owner; `tail` is below `free_to`: the slot's previous item was taken
        // by our own pop, or its stamp said `tail` (Acquire, in `is_free`), or the
        // buffer is fresh.
        unsafe { self.buffer().put(tail, value) };
        // Release: publishes the slot to the thief whose Acquire (SeqCst) load of
        // `tail` sees it.
        self.inner
            .tail
            .store(tail.wrapping_add(1), crate::publish_ordering());
    }

    /// `true` if the owner may write position `pos` of its buffer: the slot's
    /// previous item (`pos - cap`) was taken by the owner's current run of FIFO pops,
    /// or its stamp says `pos`.
    #[inline]
    fn writable(&self, ring: Ring<T>, pos: u32) -> bool {
        let (start, end) = self.run.get();
        let prev = pos.wrapping_sub(ring.cap() as u32);
        (distance(prev, start) >= 0 && distance(end, prev) > 0) || ring.is_free(pos)
    }

    /// Ends the current run of FIFO pops (a thief claimed after it, or the buffer is
    /// being replaced): stamps the slots of its positions that have not been written
    /// again, and starts an empty run at `next`.
    #[cold]
    fn end_run(&self, next: u32) {
        let (start, end) = self.run.get();
        let ring = self.buffer();
        let cap = ring.cap() as u32;
        let tail = self.inner.tail.load(Ordering::Relaxed);
        // Only the last `cap` positions can still own their slots.
        let first = if distance(end, start) as u32 > cap {
            end.wrapping_sub(cap)
        } else {
            start
        };
        let mut p = first;
        while p != end {
            let again = p.wrapping_add(cap);
            if distance(again, tail) >= 0 {
                // Not written again yet: free for the next lap. Relaxed: only the
                // owner reads stamps, and it took the item itself.
                ring.stamp(p).store(again, Ordering::Relaxed);
            }
            p = p.wrapping_add(1);
        }
        self.run.set((next, next));
    }

    /// Ensures that the `extra` positions from `tail` on are free, growing the buffer
    /// if needed (the owner's thread only).
    pub(crate) fn reserve(&self, extra: usize) {
        let tail = self.inner.tail.load(Ordering::Relaxed);
        if (distance(self.free_to.get(), tail).max(0) as usize) < extra
            && (extra > self.buffer().cap() || !self.extend_free(tail, extra as u32))
        {
            self.make_room(tail, extra);
        }
    }

    /// Moves `free_to` on from `max(tail, free_to)` over writable positions, at
    /// least to `tail + need` and on to the end of that line of stamps if it can.
    /// Returns whether `[tail, tail + need)` is writable.
    #[inline]
    fn extend_free(&self, tail: u32, need: u32) -> bool {
        let ring = self.buffer();
        let mut end = self.free_to.get();
        if distance(end, tail) < 0 {
            end = tail;
        }
        let wanted = tail.wrapping_add(need);
        // To the end of the line of 16 stamps holding the last position wanted, and
        // never more than one lap ahead of `tail`.
        let line_end = (wanted.wrapping_sub(1) | 15).wrapping_add(1);
        let lap_end = tail.wrapping_add(ring.cap() as u32);
        let limit = if distance(lap_end, line_end) < 0 {
            lap_end
        } else {
            line_end
        };
        while end != limit && self.writable(ring, end) {
            end = end.wrapping_add(1);
        }
        self.free_to.set(end);
        distance(end, wanted) >= 0
    }

    /// The slow path of `push` and `reserve`: makes `[tail, tail + need)` writable.
    /// If the stamps do not say so but the buffer is not full, a thief claimed a slot's
    /// previous item and is still reading it, which takes a few instructions unless it
    /// was preempted: the owner re-reads the stamps for a bounded number of rounds (it
    /// never waits for a thief, only delays its decision), then grows the buffer.
    /// Growing on every such encounter would double a buffer that is not full, and the
    /// shrink after it would make every thief retry on the new generation.
    #[cold]
    #[inline(never)]
    fn make_room(&self, tail: u32, need: usize) {
        if need <= self.buffer().cap() {
            let (_, real) = unpack(self.inner.head.load(Ordering::Relaxed));
            let len = distance(tail, real).max(0) as usize;
            if len + need <= self.buffer().cap() {
                for _ in 0..PUSH_SPINS {
                    strata_primitives::hint::spin_loop();
                    if self.extend_free(tail, need as u32) {
                        return;
                    }
                }
            }
        }
        self.grow(need);
    }

    /// Replaces the buffer with one large enough for the current items plus `extra`
    /// (at least twice the current size).
    #[cold]
    #[inline(never)]
    fn grow(&self, extra: usize) {
        let tail = self.inner.tail.load(Ordering::Relaxed);
        let (_, real) = unpack(self.inner.head.load(Ordering::Relaxed));
        let len = distance(tail, real).max(0) as usize;
        let need = len
            .checked_add(extra)
            .filter(|&n| n <= MAX_CAP)
            .unwrap_or_else(|| {
                panic!("strata_queue::deque::Worker: more than {MAX_CAP} items (capacity overflow)")
            });
        let cap = need
            .next_power_of_two()
            .max(2 * self.buffer().cap())
            .min(MAX_CAP);
        self.replace_buffer(cap);
    }

    /// Replaces the buffer with one of `new_cap` slots holding the unclaimed items,
    /// moves the generation on, and retires the old buffer (module docs).
    #[cold]
    fn replace_buffer(&self, new_cap: usize) {
        let inner = &*self.inner;
        let tail = inner.tail.load(Ordering::Relaxed);
        let mut head = inner.head.load(Ordering::Relaxed);
        let (generation, mut real) = unpack(head);
        let old = self.buffer.get();
        let new = Buffer::alloc(new_cap, generation.wrapping_add(1), real);
        // SAFETY: `new` was just allocated and is not shared yet.
        let (old_ref, new_ref) = (self.ring.get(), unsafe { (*new).ring() });
        debug_assert!(distance(tail, real).max(0) as usize <= new_cap);
        let mut pos = real;
        while distance(tail, pos) > 0 {
            // SAFETY: `[real, tail)` is initialized; thieves only ever read claimed
            // slots (two reads are no race); only the owner writes.
            unsafe { old_ref.copy_to(new_ref, pos) };
            pos = pos.wrapping_add(1);
        }
        self.buffer.set(new);
        self.ring.set(new_ref);
        // The new buffer's stamps are fresh: the run's positions need none, and every
        // position from `tail` to `real + new_cap` is free.
        self.run.set((real, real));
        self.free_to.set(real.wrapping_add(new_cap as u32));
        let guard = inner.reclaim.guard();
        // Release: publishes the copies to the thieves that load the new buffer
        // (Acquire, in `Protect::protect`).
        inner.buffer.store(new, Ordering::Release);
        loop {
            let next = pack(generation.wrapping_add(1), real);
            match inner
                .head
                .compare_exchange(head, next, Ordering::SeqCst, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(now) => {
                    // Thieves claimed `[real, now.real)` from the old buffer: their
                    // copies in the new one are dead, free for the next lap. Only the
                    // owner reads the stamps, and nobody can claim in the new
                    // generation yet.
                    let (_, now_real) = unpack(now);
                    while real != now_real {
                        new_ref
                            .stamp(real)
                            .store(real.wrapping_add(new_cap as u32), Ordering::Relaxed);
                        real = real.wrapping_add(1);
                    }
                    head = now;
                }
            }
        }
        // SAFETY: `old` came from `Box::into_raw` in `Buffer::alloc`, is unlinked (the
        // store above), and is retired once; dropping a `Buffer` frees its slots
        // without dropping items (`MaybeUninit`).
        unsafe { guard.retire(old) };
    }

    /// Halves the buffer if it is less than a quarter full (and above the minimum).
    #[inline]
    fn maybe_shrink(&self, tail: u32, real: u32) {
        let cap = self.buffer().cap();
        if cap > MIN_CAP && (distance(tail, real).max(0) as usize) < cap / 4 {
            self.replace_buffer(cap / 2);
        }
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
        let (_, real) = unpack(head);
        let len = distance(new_tail, real);
        if len < 0 {
            // A thief took the last item meanwhile.
            inner.tail.store(tail, Ordering::Relaxed);
            return None;
        }
        let buffer = self.buffer();
        if len > 0 {
            // SAFETY: position `new_tail` holds an item, and no thief can claim it: a
            // thief claims only below a `tail` it loaded after our store, or claims
            // `real < new_tail` (module docs). The next write to the slot is our own
            // push at `new_tail`, so its stamp stays.
            let value = unsafe { buffer.take_back(new_tail) };
            self.maybe_shrink(new_tail, real);
            return Some(value);
        }
        // The last item: contest it with the thieves.
        let won = inner
            .head
            .compare_exchange(head, advance(head, 1), Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        inner.tail.store(tail, Ordering::Relaxed);
        if won {
            // SAFETY: we claimed position `new_tail` with the CAS.
            Some(unsafe { buffer.take(new_tail) })
        } else {
            None
        }
    }

    #[inline]
    fn pop_fifo(&self) -> Option<T> {
        let inner = &*self.inner;
        let tail = inner.tail.load(Ordering::Relaxed);
        // The run's end is a lower bound of `real`: if it has reached `tail`, the
        // deque is empty, with no load of `head`.
        if distance(tail, self.run.get().1) <= 0 {
            return None;
        }
        // One `fetch_add` claims the position (no CAS loop, and nothing to load
        // first); the claim is undone below if thieves emptied the deque meanwhile.
        // Relaxed: the owner takes a slot it wrote itself.
        let old = inner.head.fetch_add(1, Ordering::Relaxed);
        let (_, real) = unpack(old);
        if real == u32::MAX {
            // `real` wrapped and carried into the generation: take the carry back.
            // Meanwhile no thief can claim: none sees its buffer's generation.
            inner.head.fetch_sub(1 << 32, Ordering::Relaxed);
        }
        if distance(tail, real) <= 0 {
            // Thieves took everything since our run. While `real` is past `tail`
            // every thief sees an empty deque and claims nothing, so the owner can
            // put `head` back with a plain store. Ending the run here moves its end
            // up to `real`, so that further pops of the empty deque return at the
            // check above without touching `head`.
            inner.head.store(old, Ordering::Relaxed);
            self.end_run(real);
            return None;
        }
        let (start, end) = self.run.get();
        if end != real {
            // Thieves claimed `[end, real)` since our last pop.
            self.end_run(real);
            self.run.set((real, real.wrapping_add(1)));
        } else {
            self.run.set((start, real.wrapping_add(1)));
        }
        // SAFETY: we claimed position `real`; the owner wrote it into its current
        // buffer (thieves claim only in that buffer's generation). No stamp: the slot
        // is in our run.
        let value = unsafe { self.buffer().take_back(real) };
        self.maybe_shrink(tail, real.wrapping_add(1));
        Some(value)
    }

    /// Writes `count` items (taken from positions in this order) at the tail, so that
    /// this worker pops them in the same order, and publishes them with one store.
    ///
    /// # Safety
    /// Called by the thread that owns this worker, after `reserve(count)`; `next`
    /// yields exactly `count` items.
    pub(crate) unsafe fn push_batch(&self, count: u32, mut next: impl FnMut() -> T) {
        if count == 0 {
            return;
        }
        let tail = self.inner.tail.load(Ordering::Relaxed);
        let buffer = self.buffer();
        for i in 0..count {
            let pos = match self.flavor {
                Flavor::Fifo => tail.wrapping_add(i),
                // The first stolen item must be popped first: it goes on top.
                Flavor::Lifo => tail.wrapping_add(count - 1 - i),
            };
            // SAFETY: `reserve` saw the stamps of `[tail, tail + count)` at their
            // positions, or made a fresh buffer; only this thread writes this
            // worker's slots.
            unsafe { buffer.put(pos, next()) };
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
    /// `Retry` when another thread won the race for it (or, rarely, when the owner is
    /// between publishing a new buffer and moving the generation); calling again is
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
        let Some((head, _)) = self.snapshot() else {
            return Steal::Empty;
        };
        let real = unpack(head).1;
        let mut guard = inner.reclaim.guard();
        let Some(ring) = self.buffer_of(head, &mut guard) else {
            return Steal::Retry;
        };
        if inner
            .head
            .compare_exchange(head, advance(head, 1), Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return Steal::Retry;
        }
        // SAFETY: we claimed position `real` in `buffer`'s generation; the owner does
        // not write the slot until we stamp it. `guard` protects the buffer.
        let value = unsafe { ring.take(real) };
        drop(guard);
        Steal::Success(value)
    }

    /// Loads `head` then `tail`, the thief's half of the Dekker pattern with `pop`
    /// (module docs): `(head, len)`, or `None` if the deque is empty. The `SeqCst` load
    /// of `tail` is also Acquire: it pairs with the Release store of `tail` that
    /// published the items.
    #[inline]
    fn snapshot(&self) -> Option<(u64, usize)> {
        let head = self.inner.head.load(Ordering::SeqCst);
        loom_dekker_fence();
        let tail = self.inner.tail.load(Ordering::SeqCst);
        let len = distance(tail, unpack(head).1);
        (len > 0).then_some((head, len as usize))
    }

    /// The slots of the buffer of `head`'s generation, protected by `guard`; `None` if
    /// the owner is replacing the buffer (its CAS of the generation is about to
    /// follow). Loaded after `tail`, the buffer is the one the items were written to or
    /// a later one holding copies of them.
    #[inline]
    fn buffer_of(&self, head: u64, guard: &mut R::Guard<'_>) -> Option<Ring<T>> {
        let buffer = guard.protect(&self.inner.buffer);
        // SAFETY: protected by `guard`, which the caller keeps until it is done with
        // the ring.
        let buffer = unsafe { &*buffer };
        (buffer.generation == unpack(head).0).then(|| buffer.ring())
    }

    /// Claims up to `want` of the oldest items, starting at `head` (whose generation
    /// is the buffer's). FIFO deques claim them with one CAS; a LIFO owner pops from
    /// the same end at the bottom, so there the items are claimed one at a time, each
    /// after re-reading `tail` (the Dekker argument holds per claim). Returns the
    /// number claimed, from `real` on.
    fn claim(&self, head: u64, want: u32) -> Option<u32> {
        let inner = &*self.inner;
        let (_, real) = unpack(head);
        match self.flavor {
            Flavor::Fifo => inner
                .head
                .compare_exchange(
                    head,
                    advance(head, want),
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                )
                .ok()
                .map(|_| want),
            Flavor::Lifo => {
                let mut current = head;
                let mut count = 0;
                while count < want {
                    if count > 0 {
                        // SeqCst: after our SeqCst CAS of `head`, as in `steal`.
                        loom_dekker_fence();
                        let tail = inner.tail.load(Ordering::SeqCst);
                        if distance(tail, real.wrapping_add(count)) <= 0 {
                            break;
                        }
                    }
                    match inner.head.compare_exchange(
                        current,
                        advance(current, 1),
                        Ordering::SeqCst,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => {
                            current = advance(current, 1);
                            count += 1;
                        }
                        // Another thief, or the owner taking the last item: keep
                        // what we have.
                        Err(_) => break,
                    }
                }
                (count > 0).then_some(count)
            }
        }
    }

    /// The shared body of the batch steals: claims up to `limit` items (about half of
    /// those present), moves them into `dest` in the source owner's order, and returns
    /// the first one instead if `pop` is set.
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
        let Some((head, len)) = self.snapshot() else {
            return Steal::Empty;
        };
        let real = unpack(head).1;
        let want = if pop {
            ((len - 1) / 2).min(limit - 1) + 1
        } else {
            len.div_ceil(2).min(limit)
        };
        // Room for the batch in `dest` first, so nothing can fail once items are
        // claimed. (We own `dest`: `Worker` is not `Sync`, and this thread borrows it.)
        dest.reserve(want);
        let mut guard = inner.reclaim.guard();
        let Some(ring) = self.buffer_of(head, &mut guard) else {
            return Steal::Retry;
        };
        let Some(count) = self.claim(head, want as u32) else {
            return Steal::Retry;
        };
        // The order the batch is handed over in (crossbeam's): from a FIFO source
        // oldest first, from a LIFO source newest first, as its owner would have
        // popped them. `dest` pops them in that order, and `*_and_pop` returns the
        // first.
        let (mut pos, step) = match self.flavor {
            Flavor::Fifo => (real, 1u32),
            Flavor::Lifo => (real.wrapping_add(count - 1), u32::MAX),
        };
        let mut take = || {
            // SAFETY: positions `[real, real + count)` were claimed by us in
            // `buffer`'s generation, and each is taken once.
            let v = unsafe { ring.take(pos) };
            pos = pos.wrapping_add(step);
            v
        };
        let first = if pop { Some(take()) } else { None };
        // SAFETY: this thread owns `dest`, `reserve` made room for `want >= count`
        // items, and `take` yields exactly the remaining ones.
        unsafe { dest.push_batch(count - u32::from(pop), take) };
        drop(guard);
        Steal::Success(first)
    }

    /// Steals about half of the items (at most 32) into `dest`, which pops them in the
    /// order the source's owner would have (oldest first from a FIFO worker, newest
    /// first from a LIFO one, as in crossbeam).
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

    /// Steals about half of the items (at most 32) and returns the first of them in
    /// the source's order (the oldest from a FIFO worker, the newest of the batch from
    /// a LIFO one, as in crossbeam), moving the rest into `dest`.
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
