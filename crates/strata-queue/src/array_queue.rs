//! A bounded MPMC ring with per-slot sequence numbers.
//!
//! D. Vyukov, *Bounded MPMC queue* (1024cores.net, 2010), with the empty and full
//! checks made linearizable as crossbeam-queue's `ArrayQueue` does, and a waiting
//! policy built for machines with more threads than cores.
//!
//! # The algorithm
//!
//! `cap` slots, each a value cell and a `stamp`. `head` and `tail` are positions: a
//! lap number in the high bits and a slot index in the low bits (a lap is
//! `one_lap`, the smallest power of two above `cap`, so incrementing an index past
//! `cap - 1` carries into the lap). A slot's stamp says which operation it waits for:
//!
//! | stamp of slot `i` | meaning |
//! |---|---|
//! | `p` (position of index `i`) | empty, ready for the push at position `p` |
//! | `p + 1` | full with the value pushed at `p`, ready for the pop at position `p` |
//!
//! * `push` reads `tail = p`; if slot `i`'s stamp is `p` it claims the position with a
//!   CAS of `tail` to the next position (**the linearization point**), writes the
//!   value and publishes it by storing stamp `p + 1`.
//! * `pop` reads `head = p`; if the stamp is `p + 1` it claims the position with a CAS
//!   of `head` (**the linearization point**), reads the value and frees the slot for
//!   the next lap by storing stamp `p + one_lap`.
//! * A `pop` that finds stamp `p` (nothing published at `p` yet) re-reads `tail` after
//!   a `SeqCst` fence: if `tail == head` the queue is empty (**that load is the
//!   linearization point of a `pop` returning `None`**). A `push` that finds the slot
//!   still holding the previous lap's value checks `head` the same way: if
//!   `head + one_lap == tail` the queue is full (**the linearization point of a `push`
//!   returning `Err`**).
//! * `force_push` on a full queue claims the oldest position with one CAS of `head`
//!   (**its linearization point**: the oldest value leaves and the new one enters at
//!   once); the slot it frees is the one at `tail`, which no other push can claim
//!   while its stamp still holds the old value, so it then stores `tail` and the
//!   value without a race.
//!
//! # Progress
//!
//! **Blocking in one place, lock-free otherwise.** A CAS on `head` or `tail` fails
//! only because another operation succeeded. But between its CAS and its stamp
//! store, an operation owns its slot: a `pop` that reaches a slot whose push was
//! claimed but not yet published must wait for it (returning `None` would not be
//! linearizable, because later positions may already hold completed pushes), and a
//! `push` that reaches a slot whose pop is in flight must wait likewise. If the
//! owner is preempted in that window of a few instructions, the waiters wait for the
//! scheduler to run it again.
//!
//! That wait is where bounded rings collapse when threads outnumber cores: crossbeam
//! spins on it without yielding, so each waiter burns its whole time slice while the
//! owner it waits for cannot run. Here a waiter spins for well under a microsecond
//! ([`Backoff::wait`]) and then yields its time slice on every retry, handing the
//! core to the preempted owner. A CAS that fails because another thread made
//! progress only spins. Strata's fully lock-free alternative, where a waiter never
//! depends on a preempted thread, is the unbounded fetch-and-add ring queue.
//!
//! # Memory
//!
//! One allocation of `cap` slots, each a `usize` stamp beside a `T`, made in the
//! constructor; `push` and `pop` never allocate.

use core::fmt;
use core::mem::MaybeUninit;

use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicUsize, Ordering, fence};
use strata_primitives::{Backoff, CachePadded};

/// Why [`ArrayQueue::try_new`] refused a capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CapacityError {
    /// A queue needs at least one slot.
    #[error("an ArrayQueue needs a capacity of at least 1")]
    Zero,
    /// The capacity does not fit the position encoding (more than `usize::MAX / 4`
    /// slots).
    #[error("capacity {0} is too large for an ArrayQueue (at most usize::MAX / 4)")]
    TooLarge(usize),
}

struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded lock-free-in-the-common-case MPMC FIFO queue (Vyukov's ring).
///
/// The names and semantics are those of crossbeam-queue's `ArrayQueue`: [`push`]
/// hands the value back when the queue is full, [`force_push`] overwrites the
/// oldest value and returns it, [`len`] is a snapshot. See the
/// [module docs](self) for the algorithm, the linearization points and the progress
/// guarantee.
///
/// ```
/// use strata_queue::ArrayQueue;
///
/// let q = ArrayQueue::new(2);
/// assert_eq!(q.push('a'), Ok(()));
/// assert_eq!(q.push('b'), Ok(()));
/// assert_eq!(q.push('c'), Err('c')); // full: the value comes back
/// assert_eq!(q.force_push('c'), Some('a')); // the oldest is overwritten
/// assert_eq!(q.pop(), Some('b'));
/// assert_eq!(q.pop(), Some('c'));
/// assert_eq!(q.pop(), None);
/// ```
///
/// [`push`]: ArrayQueue::push
/// [`force_push`]: ArrayQueue::force_push
/// [`len`]: ArrayQueue::len
pub struct ArrayQueue<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    cap: usize,
    /// The smallest power of two above `cap`: the position increment of one lap.
    one_lap: usize,
}

// SAFETY: the queue moves `T` values between threads (a value pushed on one thread
// is popped and dropped on another) but never shares a `&T`: every slot's value is
// accessed by exactly one thread at a time, the one whose CAS claimed its position.
// So `T: Send` suffices for both.
unsafe impl<T: Send> Send for ArrayQueue<T> {}
// SAFETY: as above; `&ArrayQueue<T>` only lets a thread move values in and out.
unsafe impl<T: Send> Sync for ArrayQueue<T> {}

impl<T> ArrayQueue<T> {
    /// A queue holding at most `cap` values.
    ///
    /// # Panics
    ///
    /// If `cap` is 0 or larger than `usize::MAX / 4`, as crossbeam's `ArrayQueue::new`
    /// does; [`try_new`](Self::try_new) returns an error instead.
    pub fn new(cap: usize) -> Self {
        match Self::try_new(cap) {
            Ok(q) => q,
            Err(e) => panic!("{e}"),
        }
    }

    /// A queue holding at most `cap` values, or an error if `cap` is 0 or larger
    /// than `usize::MAX / 4`.
    ///
    /// ```
    /// use strata_queue::array_queue::{ArrayQueue, CapacityError};
    ///
    /// assert_eq!(ArrayQueue::<u8>::try_new(0).unwrap_err(), CapacityError::Zero);
    /// assert_eq!(ArrayQueue::<u8>::try_new(3).unwrap().capacity(), 3);
    /// ```
    pub fn try_new(cap: usize) -> Result<Self, CapacityError> {
        if cap == 0 {
            return Err(CapacityError::Zero);
        }
        // A position is lap * one_lap + index with one_lap <= 2 * cap; keeping
        // one_lap well inside usize leaves room for many laps before positions wrap
        // (and wrapping is handled: all position arithmetic is wrapping).
        if cap > usize::MAX / 4 {
            return Err(CapacityError::TooLarge(cap));
        }
        let one_lap = (cap + 1).next_power_of_two();
        let slots = (0..cap)
            .map(|i| Slot {
                // Slot i first waits for the push at position { lap 0, index i }.
                stamp: AtomicUsize::new(i),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Ok(Self {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots,
            cap,
            one_lap,
        })
    }

    /// The position after `pos`: the next index, or index 0 of the next lap.
    #[inline]
    fn next(&self, pos: usize) -> usize {
        let index = pos & (self.one_lap - 1);
        if index + 1 < self.cap {
            pos + 1
        } else {
            (pos & !(self.one_lap - 1)).wrapping_add(self.one_lap)
        }
    }

    #[inline]
    fn slot(&self, pos: usize) -> &Slot<T> {
        let index = pos & (self.one_lap - 1);
        debug_assert!(index < self.cap);
        // SAFETY: every position's index is below `cap`: positions start at index 0
        // and `next` carries into the lap instead of reaching `cap`.
        unsafe { self.slots.get_unchecked(index) }
    }

    /// Pushes `value`, or hands it back in `Err` if the queue is full.
    ///
    /// ```
    /// use strata_queue::ArrayQueue;
    ///
    /// let q = ArrayQueue::new(1);
    /// assert_eq!(q.push(10), Ok(()));
    /// assert_eq!(q.push(20), Err(20));
    /// ```
    #[inline]
    pub fn push(&self, value: T) -> Result<(), T> {
        // The uncontended path, inlined; everything else is in the out-of-line loop
        // (which starts over with a fresh read of `tail`). If the CAS here fails,
        // that loop backs off before its first retry: retrying at once takes the cache line back from
        // the thread that just won it, which on 2 cores cut `pairs` throughput at 2
        // threads from about 230 to about 60 M ops/s.
        let tail = self.tail.load(Ordering::Relaxed);
        let slot = self.slot(tail);
        let mut contended = false;
        if slot.stamp.load(Ordering::Acquire) == tail {
            if self
                .tail
                .compare_exchange_weak(tail, self.next(tail), Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: our CAS claimed position `tail`, whose slot is empty (the
                // orderings are those of `push_or_evict`, which documents them).
                unsafe { self.publish(slot, tail, value) };
                return Ok(());
            }
            contended = true;
        }
        match self.push_or_evict(value, false, contended) {
            Pushed::Done => Ok(()),
            Pushed::Full(v) => Err(v),
            Pushed::Evicted(_) => unreachable!("push never evicts"),
        }
    }

    /// Writes `value` into `slot` and publishes it for the pop at position `pos`.
    ///
    /// # Safety
    ///
    /// The caller's CAS of `tail` claimed position `pos`, and `slot` is its slot,
    /// empty (its stamp was `pos`).
    #[inline]
    unsafe fn publish(&self, slot: &Slot<T>, pos: usize, value: T) {
        slot.value.with_mut(|p| {
            // SAFETY: the caller claimed the empty slot: no other thread touches its
            // value until the stamp store below.
            unsafe { p.write(MaybeUninit::new(value)) }
        });
        // Release: the value written above is visible to the pop that acquires this
        // stamp.
        slot.stamp
            .store(pos.wrapping_add(1), crate::publish_ordering());
    }

    /// Moves the value out of `slot` and frees the slot for the push one lap after
    /// `pos`.
    ///
    /// # Safety
    ///
    /// The caller's CAS of `head` claimed position `pos`, and `slot` is its slot,
    /// full (its stamp was `pos + 1`).
    #[inline]
    unsafe fn take(&self, slot: &Slot<T>, pos: usize) -> T {
        // SAFETY: the caller claimed the full slot: no other thread touches its value
        // until the stamp store below, and it holds the value pushed at `pos`.
        let value = slot.value.with(|p| unsafe { p.read().assume_init() });
        // Release: our read happens before the next lap's write.
        slot.stamp
            .store(pos.wrapping_add(self.one_lap), Ordering::Release);
        value
    }

    /// Pushes `value`; if the queue is full, the oldest value is removed to make room
    /// and returned.
    ///
    /// Removing the oldest and inserting `value` is one atomic step: no push or pop
    /// sees the queue between the two (the size queries can, for a moment: see
    /// [`len`](Self::len)).
    ///
    /// ```
    /// use strata_queue::ArrayQueue;
    ///
    /// let q = ArrayQueue::new(2);
    /// assert_eq!(q.force_push(1), None);
    /// assert_eq!(q.force_push(2), None);
    /// assert_eq!(q.force_push(3), Some(1));
    /// assert_eq!(q.pop(), Some(2));
    /// ```
    pub fn force_push(&self, value: T) -> Option<T> {
        match self.push_or_evict(value, true, false) {
            Pushed::Done => None,
            Pushed::Evicted(old) => Some(old),
            Pushed::Full(_) => unreachable!("force_push never reports full"),
        }
    }

    #[cold]
    #[inline(never)]
    fn push_or_evict(&self, value: T, evict: bool, contended: bool) -> Pushed<T> {
        let backoff = Backoff::new();
        if contended {
            backoff.spin();
        }
        let mut tail = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(tail);
            // Acquire: pairs with the Release stamp store of the pop that emptied the
            // slot, so its read of the old value happens before our write.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == tail {
                let next = self.next(tail);
                // SeqCst: ordered with the fence in `pop`'s empty check (a pop that
                // runs its fence after this CAS must see the new tail).
                match self.tail.compare_exchange_weak(
                    tail,
                    next,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: our CAS claimed position `tail`; its slot is empty
                        // (stamp == tail).
                        unsafe { self.publish(slot, tail, value) };
                        return Pushed::Done;
                    }
                    Err(current) => {
                        tail = current;
                        backoff.spin();
                    }
                }
            } else if stamp.wrapping_add(self.one_lap) == tail.wrapping_add(1) {
                // The slot still holds the value pushed one lap ago. Pairs with the
                // SeqCst CAS on `head` in `pop`.
                fence(Ordering::SeqCst);
                let head = self.head.load(Ordering::Relaxed);
                if head.wrapping_add(self.one_lap) == tail {
                    // Full.
                    if !evict {
                        return Pushed::Full(value);
                    }
                    let next = self.next(tail);
                    if self
                        .head
                        .compare_exchange_weak(
                            head,
                            next.wrapping_sub(self.one_lap),
                            Ordering::SeqCst,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        // We took the oldest position (`head`), whose slot is the one
                        // at `tail`. No push can claim `tail` while the slot's stamp
                        // holds the old lap, and no other eviction can succeed with
                        // `head` moved, so we own both until the stamp store.
                        self.tail.store(next, Ordering::SeqCst);
                        // SAFETY: we own the slot (above); it holds the value pushed
                        // at `head` (stamp == head + 1), which we move out while
                        // putting ours in.
                        let old = slot.value.with_mut(|p| unsafe {
                            p.replace(MaybeUninit::new(value)).assume_init()
                        });
                        // Release: publishes our value (see `publish`).
                        slot.stamp
                            .store(tail.wrapping_add(1), crate::publish_ordering());
                        return Pushed::Evicted(old);
                    }
                    backoff.spin();
                    tail = self.tail.load(Ordering::Relaxed);
                } else {
                    tail = self.reload_or_wait(&self.tail, tail, &backoff);
                }
            } else {
                tail = self.reload_or_wait(&self.tail, tail, &backoff);
            }
        }
    }

    /// Re-reads `index`. If it moved, another operation made progress and we retry at
    /// once (after a short spin); if it did not, we are waiting for the operation
    /// that owns the slot at `seen` to publish its stamp, and [`Backoff::wait`]: spin
    /// for well under a microsecond, then yield the time slice on every retry so a
    /// preempted owner can run.
    #[inline]
    fn reload_or_wait(&self, index: &AtomicUsize, seen: usize, backoff: &Backoff) -> usize {
        let now = index.load(Ordering::Relaxed);
        if now != seen {
            backoff.spin();
        } else {
            backoff.wait();
        }
        index.load(Ordering::Relaxed)
    }

    /// Pops the oldest value, or `None` if the queue is empty.
    ///
    /// ```
    /// use strata_queue::ArrayQueue;
    ///
    /// let q = ArrayQueue::new(4);
    /// q.push(1).unwrap();
    /// assert_eq!(q.pop(), Some(1));
    /// assert_eq!(q.pop(), None);
    /// ```
    #[inline]
    pub fn pop(&self) -> Option<T> {
        // The uncontended path, inlined (see `push`).
        let head = self.head.load(Ordering::Relaxed);
        let slot = self.slot(head);
        let mut contended = false;
        if slot.stamp.load(Ordering::Acquire) == head.wrapping_add(1) {
            if self
                .head
                .compare_exchange_weak(head, self.next(head), Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: our CAS claimed position `head`, whose slot is full.
                return Some(unsafe { self.take(slot, head) });
            }
            contended = true;
        }
        self.pop_slow(contended)
    }

    #[cold]
    #[inline(never)]
    fn pop_slow(&self, contended: bool) -> Option<T> {
        let backoff = Backoff::new();
        if contended {
            backoff.spin();
        }
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            let slot = self.slot(head);
            // Acquire: pairs with the Release stamp store of the push that filled the
            // slot, so its write of the value happens before our read.
            let stamp = slot.stamp.load(Ordering::Acquire);
            if stamp == head.wrapping_add(1) {
                let next = self.next(head);
                match self.head.compare_exchange_weak(
                    head,
                    next,
                    Ordering::SeqCst,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: our CAS claimed position `head`; the slot holds the
                        // value pushed there (stamp == head + 1).
                        return Some(unsafe { self.take(slot, head) });
                    }
                    Err(current) => {
                        head = current;
                        backoff.spin();
                    }
                }
            } else if stamp == head {
                // Nothing published at `head`. Pairs with the SeqCst CAS on `tail` in
                // `push`: a push whose CAS precedes this fence is seen below.
                fence(Ordering::SeqCst);
                let tail = self.tail.load(Ordering::Relaxed);
                if tail == head {
                    return None;
                }
                // A push claimed `head` and has not published it yet, or our `head`
                // is stale.
                head = self.reload_or_wait(&self.head, head, &backoff);
            } else {
                head = self.reload_or_wait(&self.head, head, &backoff);
            }
        }
    }

    /// The maximum number of values the queue holds.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// `true` if the queue held no value at the moment of the check.
    ///
    /// Under concurrent pushes and pops the answer may be stale by the time it is
    /// returned. A concurrent [`force_push`](Self::force_push) that evicts makes it
    /// briefly wrong, not only stale: see [`len`](Self::len).
    pub fn is_empty(&self) -> bool {
        let head = self.head.load(Ordering::SeqCst);
        let tail = self.tail.load(Ordering::SeqCst);
        // Positions claimed by pushes minus positions claimed by pops: a claimed
        // push counts as in the queue (it is linearized at its CAS).
        head == tail
    }

    /// `true` if the queue held `capacity()` values at the moment of the check.
    ///
    /// Under concurrent pushes and pops the answer may be stale by the time it is
    /// returned. A concurrent [`force_push`](Self::force_push) that evicts makes it
    /// briefly wrong, not only stale: see [`len`](Self::len).
    pub fn is_full(&self) -> bool {
        let tail = self.tail.load(Ordering::SeqCst);
        let head = self.head.load(Ordering::SeqCst);
        head.wrapping_add(self.one_lap) == tail
    }

    /// The number of values in the queue: **approximate** under concurrency.
    ///
    /// The count is exact for one consistent pair of `head` and `tail` (read until
    /// `tail` is unchanged around the read of `head`), but other threads may push or
    /// pop before the caller looks at it. With no concurrent operation it is exact.
    ///
    /// **One known inexactness:** a [`force_push`](Self::force_push) on a full queue
    /// moves `head` (its linearization point) and then `tail`; a size query that reads
    /// between the two sees one value fewer than the queue holds, so a full queue
    /// reads as `capacity() - 1` (and, at capacity 1, as empty: `is_empty` true,
    /// `is_full` false). Pushes and pops are not affected, only these three queries.
    /// A thread polling a full queue of capacity 1 while another ran `force_push` in
    /// a loop saw `is_empty` in about 5% of its polls. crossbeam's `ArrayQueue` has
    /// the same window.
    pub fn len(&self) -> usize {
        loop {
            let tail = self.tail.load(Ordering::SeqCst);
            let head = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) == tail {
                return self.distance(head, tail);
            }
        }
    }

    /// The number of positions from `head` to `tail` (both valid positions with
    /// `tail` at most one lap ahead).
    fn distance(&self, head: usize, tail: usize) -> usize {
        let mask = self.one_lap - 1;
        let (h, t) = (head & mask, tail & mask);
        if h < t {
            t - h
        } else if h > t {
            self.cap - h + t
        } else if head == tail {
            0
        } else {
            self.cap
        }
    }
}

enum Pushed<T> {
    Done,
    Full(T),
    Evicted(T),
}

impl<T> Drop for ArrayQueue<T> {
    fn drop(&mut self) {
        if cfg!(strata_loom) && std::thread::panicking() {
            // A failed loom model unwinds with slots whose stamps may not match a
            // quiescent queue; leak rather than read them.
            return;
        }
        // `&mut self`: no operation is in flight, so every position from head to
        // tail holds a published value.
        let mut pos = self.head.load(Ordering::Relaxed);
        let tail = self.tail.load(Ordering::Relaxed);
        while pos != tail {
            let slot = self.slot(pos);
            // SAFETY: positions head..tail hold values pushed and not popped; we own
            // the queue and drop each once.
            slot.value.with_mut(|p| unsafe { (*p).assume_init_drop() });
            pos = self.next(pos);
        }
    }
}

impl<T> fmt::Debug for ArrayQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayQueue")
            .field("len", &self.len())
            .field("capacity", &self.cap)
            .finish_non_exhaustive()
    }
}

/// An owning iterator over the values left in an [`ArrayQueue`], oldest first.
pub struct IntoIter<T> {
    queue: ArrayQueue<T>,
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.queue.pop()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.queue.len();
        (n, Some(n))
    }
}

impl<T> ExactSizeIterator for IntoIter<T> {}

impl<T> fmt::Debug for IntoIter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter")
            .field("queue", &self.queue)
            .finish()
    }
}

impl<T> IntoIterator for ArrayQueue<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;

    fn into_iter(self) -> IntoIter<T> {
        IntoIter { queue: self }
    }
}
