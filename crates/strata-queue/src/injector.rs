//! The injector: an unbounded MPMC FIFO queue of linked blocks that any thread pushes
//! into and steals from, one item at a time or in batches into a [`Worker`].
//!
//! # The algorithm
//!
//! A linked list of blocks of `BLOCK_CAP` slots (63). `head` and `tail` are each a
//! position and the block it lies in; positions run over laps of `LAP = BLOCK_CAP + 1`
//! per block, the extra position of each lap marking "this block is full, the next one
//! is being linked". Each slot has a state word with three bits: `WRITE` (the value is
//! in), `READ` (the value was taken), `DESTROY` (the block is being freed and waits for
//! this slot's reader).
//!
//! * `push` claims a position with a CAS of the tail position (**the linearization
//!   point**), writes the value, and sets `WRITE` (Release). The pusher that claims
//!   a block's last slot links the next block (allocated before its CAS, so the
//!   window in which the tail sits on the marker position has no allocation in it).
//! * `steal` reads the head position; unless the head is known to lie in an earlier
//!   block than the tail (a flag bit of the head position), it loads the tail after a
//!   `SeqCst` fence and returns `Empty` if they are equal (**that load is the
//!   linearization point of an empty steal**). It claims one position, or a batch of
//!   up to half of the items (never past the block's end), with a CAS of the head
//!   position (**the linearization point**), waits for each claimed slot's `WRITE`
//!   bit, and moves the values out.
//! * Blocks are freed without an epoch: the thread that takes a block's last slot
//!   walks its slots and frees the block once every one is `READ`; when it meets a slot
//!   whose reader has not finished, it sets `DESTROY` there and leaves, and that reader,
//!   seeing `DESTROY` when it sets `READ`, continues the walk from the next slot. The
//!   last access to a block is therefore its last read.
//!
//! # Progress
//!
//! Blocking in two short windows, as crossbeam's injector: a stealer that claimed a
//! position waits until the pusher that claimed it has written it, and an operation
//! that finds its position on a block's marker waits until the next block is linked.
//! Waiters spin briefly, then yield ([`Backoff::wait`]), so a preempted pusher gets the
//! core back when threads outnumber cores. A CAS fails only because another operation
//! succeeded. Strata's queue with no such window is the fetch-and-add ring queue.
//!
//! # No data race on the slots
//!
//! A slot's value is written by the one pusher that claimed its position and read by
//! the one stealer that claimed it, after an Acquire load of `WRITE` that pairs with
//! the pusher's Release. Nothing reads a slot speculatively.

use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr;

use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicPtr, AtomicUsize, Ordering, fence};
use strata_primitives::{Backoff, CachePadded};
use strata_reclaim::Reclaim;

use crate::deque::{MAX_BATCH, Steal, Worker};

/// Slots per block (small under loom, so that models cross block boundaries).
const BLOCK_CAP: usize = if cfg!(strata_loom) { 2 } else { 63 };
/// Positions per block: the extra one is the "next block is being linked" marker.
const LAP: usize = BLOCK_CAP + 1;
/// Position `p` is stored as `p << SHIFT`; the low bit of the head is `HAS_NEXT`.
const SHIFT: usize = 1;
/// Set in the head position when the head's block is known not to be the tail's.
const HAS_NEXT: usize = 1;

const WRITE: usize = 1;
const READ: usize = 2;
const DESTROY: usize = 4;

struct Slot<T> {
    value: UnsafeCell<MaybeUninit<T>>,
    state: AtomicUsize,
}

impl<T> Slot<T> {
    /// Waits until the pusher of this slot has written it.
    fn wait_write(&self) {
        let backoff = Backoff::new();
        // Acquire: pairs with the pusher's Release `fetch_or(WRITE)`.
        while self.state.load(Ordering::Acquire) & WRITE == 0 {
            backoff.wait();
        }
    }
}

struct Block<T> {
    next: AtomicPtr<Block<T>>,
    slots: [Slot<T>; BLOCK_CAP],
}

impl<T> Block<T> {
    /// A new empty block, built in place on the heap (a block of large `T`s would not
    /// fit on the stack).
    fn alloc() -> *mut Block<T> {
        let mut b = Box::<Block<T>>::new_uninit();
        let p = b.as_mut_ptr();
        // SAFETY: `p` points to memory for a `Block<T>`; every field is initialized
        // below before `assume_init`.
        unsafe {
            ptr::addr_of_mut!((*p).next).write(AtomicPtr::new(ptr::null_mut()));
            let slots = ptr::addr_of_mut!((*p).slots) as *mut Slot<T>;
            for i in 0..BLOCK_CAP {
                slots.add(i).write(Slot {
                    value: UnsafeCell::new(MaybeUninit::uninit()),
                    state: AtomicUsize::new(0),
                });
            }
            Box::into_raw(b.assume_init())
        }
    }

    /// Waits until the next block is linked, and returns it.
    fn wait_next(&self) -> *mut Block<T> {
        let backoff = Backoff::new();
        loop {
            // Acquire: pairs with the Release store that linked it.
            let next = self.next.load(Ordering::Acquire);
            if !next.is_null() {
                return next;
            }
            backoff.wait();
        }
    }

    /// Continues freeing `this` from slot `start`: frees it if every slot up to the
    /// last is `READ`, or hands the walk to the first reader that has not finished.
    ///
    /// # Safety
    /// Called once by the taker of the block's last slot (after its own reads, with
    /// `start == 0` and its other claimed slots already marked `READ`), then by each
    /// reader that found `DESTROY` on its slot, from the slot after it.
    unsafe fn destroy(this: *mut Block<T>, start: usize) {
        // The last slot is not checked: its taker started the walk.
        for i in start..BLOCK_CAP - 1 {
            // SAFETY: the block is alive: slot `i` has not been marked `READ` yet, or
            // we are the ones walking.
            let slot = unsafe { &(*this).slots[i] };
            // Acquire: the reader's accesses to the slot happen before the free.
            if slot.state.load(Ordering::Acquire) & READ == 0
                && slot.state.fetch_or(DESTROY, Ordering::AcqRel) & READ == 0
            {
                // The reader will continue the walk.
                return;
            }
        }
        // SAFETY: every slot was read, every pusher and stealer is done with it.
        drop(unsafe { Box::from_raw(this) });
    }
}

/// A position and the block it lies in.
struct Position<T> {
    index: AtomicUsize,
    block: AtomicPtr<Block<T>>,
}

/// An unbounded MPMC FIFO queue for work distribution: any thread pushes, any thread
/// steals one item or a batch into its own [`Worker`].
///
/// ```
/// use strata_queue::deque::{Injector, Steal, Worker};
///
/// let q = Injector::new();
/// for i in 1..=4 {
///     q.push(i);
/// }
/// assert_eq!(q.steal(), Steal::Success(1));
/// let w = Worker::new_fifo();
/// assert_eq!(q.steal_batch_and_pop(&w), Steal::Success(2));
/// assert_eq!(w.pop(), Some(3));
/// ```
pub struct Injector<T> {
    head: CachePadded<Position<T>>,
    tail: CachePadded<Position<T>>,
    _owns: PhantomData<T>,
}

// SAFETY: values move between threads (`T: Send`); all shared state is atomic and each
// slot is accessed by its claimer only.
unsafe impl<T: Send> Send for Injector<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Injector<T> {}

impl<T> Default for Injector<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// The usable positions before position `p` of any lap-aligned range (the marker
/// positions hold no item).
#[inline]
fn items_before(p: usize) -> usize {
    (p / LAP) * BLOCK_CAP + (p % LAP).min(BLOCK_CAP)
}

impl<T> Injector<T> {
    /// An empty injector (one block allocated).
    pub fn new() -> Self {
        let block = Block::<T>::alloc();
        Injector {
            head: CachePadded::new(Position {
                index: AtomicUsize::new(0),
                block: AtomicPtr::new(block),
            }),
            tail: CachePadded::new(Position {
                index: AtomicUsize::new(0),
                block: AtomicPtr::new(block),
            }),
            _owns: PhantomData,
        }
    }

    /// Appends `value` at the back.
    pub fn push(&self, value: T) {
        let backoff = Backoff::new();
        let mut tail = self.tail.index.load(Ordering::Acquire);
        let mut block = self.tail.block.load(Ordering::Acquire);
        let mut next_block: Option<*mut Block<T>> = None;
        loop {
            let offset = (tail >> SHIFT) % LAP;
            if offset == BLOCK_CAP {
                // The pusher of the last slot is linking the next block.
                backoff.wait();
                tail = self.tail.index.load(Ordering::Acquire);
                block = self.tail.block.load(Ordering::Acquire);
                continue;
            }
            if offset + 1 == BLOCK_CAP && next_block.is_none() {
                next_block = Some(Block::alloc());
            }
            let new_tail = tail + (1 << SHIFT);
            match self.tail.index.compare_exchange_weak(
                tail,
                new_tail,
                Ordering::SeqCst,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    if offset + 1 == BLOCK_CAP {
                        let next = next_block.take().expect("allocated above");
                        // Release: publishes the new block's initialization.
                        self.tail.block.store(next, Ordering::Release);
                        self.tail
                            .index
                            .store(new_tail.wrapping_add(1 << SHIFT), Ordering::Release);
                        // SAFETY: `block` is alive: our slot in it is not yet written.
                        unsafe { (*block).next.store(next, Ordering::Release) };
                    }
                    // SAFETY: we claimed `offset` of `block` with the CAS (the block
                    // is the one of `tail`: it was loaded after the index, and a
                    // later block would have come with a later index, failing the
                    // CAS). It stays allocated until its slots are all read.
                    let slot = unsafe { &(*block).slots[offset] };
                    slot.value.with_mut(|p| {
                        // SAFETY: our claimed slot, not yet written or read.
                        unsafe { p.write(MaybeUninit::new(value)) }
                    });
                    // Release: publishes the value to the stealer of this slot.
                    slot.state.fetch_or(WRITE, crate::publish_ordering());
                    break;
                }
                Err(now) => {
                    tail = now;
                    block = self.tail.block.load(Ordering::Acquire);
                    backoff.spin();
                }
            }
        }
        if let Some(unused) = next_block {
            // SAFETY: allocated above and never shared.
            drop(unsafe { Box::from_raw(unused) });
        }
    }

    /// Reads the head position and block, waiting while the head sits on a marker.
    fn load_head(&self) -> (usize, *mut Block<T>, usize) {
        let backoff = Backoff::new();
        loop {
            let head = self.head.index.load(Ordering::Acquire);
            let block = self.head.block.load(Ordering::Acquire);
            let offset = (head >> SHIFT) % LAP;
            if offset != BLOCK_CAP {
                return (head, block, offset);
            }
            // The taker of the last slot is moving the head to the next block.
            backoff.wait();
        }
    }

    /// Claims up to `limit` positions from the head (about half of the items, never
    /// past the end of the head's block), calling `prepare` with the number it is about
    /// to claim first (a batch steal makes room for them in its worker, so that nothing
    /// can fail once they are claimed). Returns the block, the first offset and the
    /// number claimed.
    fn claim(
        &self,
        limit: usize,
        prepare: impl FnOnce(usize),
    ) -> Result<(*mut Block<T>, usize, usize), Steal<()>> {
        let (head, block, offset) = self.load_head();
        let mut new_head = head;
        let advance;
        if head & HAS_NEXT == 0 {
            fence(Ordering::SeqCst);
            let tail = self.tail.index.load(Ordering::Relaxed);
            if head >> SHIFT == tail >> SHIFT {
                return Err(Steal::Empty);
            }
            if (head >> SHIFT) / LAP != (tail >> SHIFT) / LAP {
                new_head |= HAS_NEXT;
                advance = (BLOCK_CAP - offset).min(limit);
            } else {
                let len = (tail - head) >> SHIFT;
                advance = len.div_ceil(2).min(limit);
            }
        } else {
            advance = (BLOCK_CAP - offset).min(limit);
        }
        prepare(advance);
        new_head += advance << SHIFT;
        if self
            .head
            .index
            .compare_exchange(head, new_head, Ordering::SeqCst, Ordering::Acquire)
            .is_err()
        {
            return Err(Steal::Retry);
        }
        if offset + advance == BLOCK_CAP {
            // We took the block's last slot: move the head to the next block.
            // SAFETY: `block` is alive (our slots in it are unread).
            let next = unsafe { (*block).wait_next() };
            let mut next_index = (new_head & !HAS_NEXT).wrapping_add(1 << SHIFT);
            // SAFETY: `next` is alive: nothing in it can be read before the head
            // moves there, which is what we are doing.
            if !unsafe { (*next).next.load(Ordering::Relaxed) }.is_null() {
                next_index |= HAS_NEXT;
            }
            // Release: the block pointer before the index (readers load the index
            // first, Acquire).
            self.head.block.store(next, Ordering::Release);
            self.head.index.store(next_index, Ordering::Release);
        }
        Ok((block, offset, advance))
    }

    /// Marks the claimed slots `[offset, offset + count)` of `block` as read and
    /// continues (or starts) freeing the block if that falls to us.
    ///
    /// # Safety
    /// The caller claimed those slots and has moved their values out.
    unsafe fn finish(block: *mut Block<T>, offset: usize, count: usize) {
        let end = offset + count;
        let mut handoff = None;
        for i in offset..end.min(BLOCK_CAP - 1) {
            // SAFETY: the block is alive until our slots are marked.
            let slot = unsafe { &(*block).slots[i] };
            // Release: our read of the slot happens before the block's free.
            if slot.state.fetch_or(READ, Ordering::AcqRel) & DESTROY != 0 {
                handoff = Some(i);
            }
        }
        if end == BLOCK_CAP {
            // SAFETY: we took the last slot and marked our other slots.
            unsafe { Block::destroy(block, 0) };
        } else if let Some(i) = handoff {
            // SAFETY: the walk stopped at our slot `i`; ours are all marked.
            unsafe { Block::destroy(block, i + 1) };
        }
    }

    /// Takes the oldest item. `Retry` if another stealer won the race for it.
    pub fn steal(&self) -> Steal<T> {
        let (block, offset, _) = match self.claim(1, |_| ()) {
            Ok(c) => c,
            Err(Steal::Empty) => return Steal::Empty,
            Err(_) => return Steal::Retry,
        };
        // SAFETY: we claimed the slot; the block is alive until we mark it read.
        let slot = unsafe { &(*block).slots[offset] };
        slot.wait_write();
        // SAFETY: written (WRITE seen with Acquire) and ours.
        let value = slot.value.with(|p| unsafe { p.read().assume_init() });
        // SAFETY: claimed and moved out.
        unsafe { Self::finish(block, offset, 1) };
        Steal::Success(value)
    }

    fn steal_into<R: Reclaim>(
        &self,
        dest: &Worker<T, R>,
        limit: usize,
        pop: bool,
    ) -> Steal<Option<T>> {
        let limit = limit.max(1);
        let (block, offset, count) = match self.claim(limit, |n| dest.reserve(n)) {
            Ok(c) => c,
            Err(Steal::Empty) => return Steal::Empty,
            Err(_) => return Steal::Retry,
        };
        let mut i = offset;
        let mut take = || {
            // SAFETY: slots `[offset, offset + count)` are ours and the block is alive
            // until `finish`.
            let slot = unsafe { &(*block).slots[i] };
            slot.wait_write();
            i += 1;
            // SAFETY: written (WRITE seen with Acquire) and ours.
            slot.value.with(|p| unsafe { p.read().assume_init() })
        };
        let first = if pop { Some(take()) } else { None };
        // SAFETY: this thread owns `dest` (`Worker` is not `Sync`); `reserve` made room
        // for `count` items; `take` yields exactly the remaining ones.
        unsafe { dest.push_batch((count - usize::from(pop)) as u32, take) };
        // SAFETY: claimed and moved out.
        unsafe { Self::finish(block, offset, count) };
        Steal::Success(first)
    }

    /// Steals a batch (about half of the items, at most 32, never past a block's end)
    /// into `dest`, which pops them in queue order.
    ///
    /// ```
    /// use strata_queue::deque::{Injector, Worker};
    ///
    /// let q = Injector::new();
    /// for i in 1..=4 {
    ///     q.push(i);
    /// }
    /// let w = Worker::new_lifo();
    /// let _ = q.steal_batch(&w);
    /// assert_eq!(w.pop(), Some(1));
    /// assert_eq!(w.pop(), Some(2));
    /// ```
    pub fn steal_batch<R: Reclaim>(&self, dest: &Worker<T, R>) -> Steal<()> {
        self.steal_batch_with_limit(dest, MAX_BATCH)
    }

    /// [`steal_batch`](Self::steal_batch) taking at most `limit` items (0 counts as 1).
    pub fn steal_batch_with_limit<R: Reclaim>(
        &self,
        dest: &Worker<T, R>,
        limit: usize,
    ) -> Steal<()> {
        match self.steal_into(dest, limit, false) {
            Steal::Success(_) => Steal::Success(()),
            Steal::Empty => Steal::Empty,
            Steal::Retry => Steal::Retry,
        }
    }

    /// Steals a batch (at most 33 items) and returns the oldest, moving the rest into
    /// `dest`.
    pub fn steal_batch_and_pop<R: Reclaim>(&self, dest: &Worker<T, R>) -> Steal<T> {
        self.steal_batch_with_limit_and_pop(dest, MAX_BATCH + 1)
    }

    /// [`steal_batch_and_pop`](Self::steal_batch_and_pop) taking at most `limit` items
    /// in all (0 counts as 1).
    pub fn steal_batch_with_limit_and_pop<R: Reclaim>(
        &self,
        dest: &Worker<T, R>,
        limit: usize,
    ) -> Steal<T> {
        match self.steal_into(dest, limit, true) {
            Steal::Success(Some(v)) => Steal::Success(v),
            Steal::Success(None) | Steal::Empty => Steal::Empty,
            Steal::Retry => Steal::Retry,
        }
    }

    /// `true` if the injector holds no item (a snapshot).
    pub fn is_empty(&self) -> bool {
        let head = self.head.index.load(Ordering::SeqCst);
        let tail = self.tail.index.load(Ordering::SeqCst);
        head >> SHIFT == tail >> SHIFT
    }

    /// The number of items (a consistent snapshot of both ends: it retries until the
    /// tail did not move while the head was read).
    pub fn len(&self) -> usize {
        loop {
            let tail = self.tail.index.load(Ordering::SeqCst);
            let head = self.head.index.load(Ordering::SeqCst);
            if self.tail.index.load(Ordering::SeqCst) == tail {
                let (head, tail) = (head >> SHIFT, tail >> SHIFT);
                // Measure from the start of the head's lap so nothing overflows.
                let base = (head / LAP) * LAP;
                let (h, t) = (head - base, tail.wrapping_sub(base));
                return items_before(t).saturating_sub(items_before(h));
            }
        }
    }
}

impl<T> Drop for Injector<T> {
    fn drop(&mut self) {
        let mut head = self.head.index.load(Ordering::Relaxed) & !HAS_NEXT;
        let tail = self.tail.index.load(Ordering::Relaxed) & !HAS_NEXT;
        let mut block = self.head.block.load(Ordering::Relaxed);
        while head != tail {
            let offset = (head >> SHIFT) % LAP;
            if offset < BLOCK_CAP {
                // SAFETY: no other handle exists; every position in `[head, tail)` was
                // written and not taken.
                unsafe {
                    (*block).slots[offset]
                        .value
                        .with_mut(|p| (*p).assume_init_drop())
                };
            } else {
                // SAFETY: the marker: move to the next block and free this one.
                unsafe {
                    let next = (*block).next.load(Ordering::Relaxed);
                    drop(Box::from_raw(block));
                    block = next;
                }
            }
            head = head.wrapping_add(1 << SHIFT);
        }
        // SAFETY: the last block, allocated by `Block::alloc` and no longer shared.
        drop(unsafe { Box::from_raw(block) });
    }
}

impl<T> fmt::Debug for Injector<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad("Injector { .. }")
    }
}
