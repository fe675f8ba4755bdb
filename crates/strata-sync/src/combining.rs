//! Flat combining: one thread at a time applies everybody's operations to a plain
//! sequential structure.
//!
//! [`FlatCombining<S>`] wraps any [`Sequential`] structure `S` (a `VecDeque`, a
//! counter, a heap...) and makes it shareable between threads. It is a lock with a
//! twist, after Hendler, Incze, Shavit and Tzafrir, "Flat combining and the
//! synchronization-parallelism tradeoff" (SPAA 2010): a thread that finds the lock
//! busy does not queue for it; it *publishes* its operation in its own publication
//! record and waits there, and whichever thread holds the lock (the *combiner*) applies
//! the published operations of every waiting thread in one pass over the records,
//! hands each result back in its record, and only then releases the lock. The
//! structure stays hot in one core's cache and the lock changes hands once per batch
//! instead of once per operation.
//!
//! # The algorithm
//!
//! * **The lock** is one byte, taken with one `compare_exchange` (`Acquire`) and
//!   released with one `compare_exchange` (`Release`), which fails only when a waiter
//!   has parked meanwhile (the `WAKE` bit, below).
//! * **Fast path.** [`FlatCombining::apply`] first tries the lock. If it is free, the
//!   caller applies its own operation directly, then serves any operation already
//!   published by others (one scan of the publication list, empty when there is no
//!   contention), and releases the lock: one CAS, the operation, one load of the list
//!   head, one CAS. Nothing is published, and the caller's own operation runs outside
//!   `catch_unwind` (a panic in it is the caller's; the lock is released on the way
//!   out).
//! * **Publication.** If the lock is busy, the caller writes its operation into its
//!   record's slot and sets the record's state to `PENDING` with a `Release` store.
//!   A record is linked into the *publication list* (a lock-free intrusive singly
//!   linked list, records are pushed at its head with a CAS by their owner) the first
//!   time it is needed, and again whenever the combiner has unlinked it.
//! * **Waiting.** The caller then spins on its own record (with [`Backoff`]: a few
//!   spins, then yields) until the state is `DONE` (an `Acquire` load, after which it
//!   takes the result), or until the lock looks free, when it tries to become the
//!   combiner itself. A thread that becomes the combiner with its own operation still
//!   pending takes it back and applies it directly.
//! * **Parking.** A waiter that has spun and yielded without result parks: it writes
//!   its unparker into its record, CASes the state `PENDING -> PARKED` (`Release`),
//!   and sets the `WAKE` bit of the lock word with a `fetch_or`. If the lock was free
//!   at that `fetch_or` it does not park (nobody would serve it) and tries the lock
//!   instead. If the lock was held, that holder's release comes later in the lock
//!   word's modification order and finds `WAKE`: before releasing, it clears the bit
//!   and serves every published record of the all-records list (a parked record may
//!   have been unlinked from the publication list), storing `DONE` and unparking each
//!   parked owner. A combiner that serves a `PARKED` record clones its unparker before
//!   the `DONE` store (after it, the owner may return and reuse the record). The loom
//!   model `loom_parked_waiter_is_woken` checks that no wake-up is lost.
//! * **Combining.** The lock holder scans the publication list: every `PENDING` record
//!   has its operation taken out of the slot (the slot is left empty), applied, its
//!   result written into the record's result slot, and its state set to `DONE` with a
//!   `Release` store. While a scan finds work, the combiner scans again, at most
//!   [`MAX_SCANS`] times per lock tenure.
//! * **Aging.** Every lock tenure is one *combining pass*. A record that has not had an
//!   operation for more than `aging` passes (default [`DEFAULT_AGING`], tunable with
//!   [`FlatCombining::with_aging`]) is unlinked from the publication list by the
//!   combiner, so that threads that stopped using the structure cost nothing to the
//!   scan. Only the lock holder removes records, so there is a single remover; pushers
//!   only CAS the head, so a record behind another is unlinked with a plain store to
//!   its predecessor, and the head record with a CAS (if that CAS loses against a push,
//!   the record stays until a later pass). The combiner then clears the record's
//!   `active` flag (`Release`); its owner, which checks the flag while it waits,
//!   pushes it again on its next use.
//!
//! # Finding one's record
//!
//! Each record belongs to one owner at a time. [`FlatCombining::handle`] claims a
//! record and returns a [`Handle`] that owns it ([`Handle::apply`] needs no lookup).
//! [`FlatCombining::apply`] finds the calling thread's record through a small
//! per-thread cache that maps the instance's unique id (from a global 64-bit counter,
//! never reused) to the record; a cache miss claims a record. An id that is never
//! reused means that a cache entry of a dropped instance can never match a live one, so
//! its record pointer is never dereferenced; the entries of dropped instances are
//! purged on the next miss, and the cache holds at most [`THREAD_CACHE_ENTRIES`]
//! entries (the least recently claimed one not in use is evicted to make room).
//!
//! # Memory
//!
//! Records are only freed when the `FlatCombining` is dropped: every record is on an
//! *all records* list that is never unlinked (distinct from the publication list).
//! When a [`Handle`] is dropped, or a thread exits (or evicts its cache entry), the
//! record is marked *abandoned* and the next thread that needs a record claims it with
//! a CAS instead of allocating. So the number of records is bounded by the largest
//! number of records owned at one time: the threads whose cache holds an entry for the
//! instance plus the live handles.
//!
//! # Progress and linearization
//!
//! **Blocking.** Flat combining is a lock: a combiner preempted while holding it
//! delays every other operation, as a preempted `Mutex` holder does. Every operation
//! linearizes at the instant the lock holder applies it to the structure; since only
//! the lock holder applies operations and it does so one at a time, the operations
//! are totally ordered, and each is applied between its call and its return.
//!
//! # Panics in `S::apply`
//!
//! Each [`Sequential::apply`] of another thread's operation runs under
//! [`std::panic::catch_unwind`] (the lock holder's own operation does not: its panic
//! is its own, and the lock is released and the parked waiters woken on the way out,
//! by a drop guard). If it panics,
//! the combiner stores the panic payload in the record of the operation's owner, marks
//! it done, carries on with the other records and releases the lock as usual; the
//! owner then resumes the panic (with [`std::panic::resume_unwind`], the original
//! payload) in its own thread, from its call to `apply`. No waiter hangs and no other
//! caller sees the panic. There is no poisoning (as with `parking_lot`'s locks): the
//! structure is left as the panicking `apply` left it, so an `S` whose invariants a
//! panic can break should be rebuilt by the caller that sees the panic.
//!
//! Calling into the same `FlatCombining` from inside `S::apply` deadlocks, as locking a
//! held `Mutex` again does.
//!
//! # Example
//!
//! ```
//! use std::collections::VecDeque;
//! use strata_sync::combining::{CombiningCounter, FlatCombining};
//!
//! let queue = FlatCombining::new(VecDeque::<u64>::new());
//! let counter = CombiningCounter::new(0);
//! std::thread::scope(|s| {
//!     for t in 0..4 {
//!         let (queue, counter) = (&queue, &counter);
//!         s.spawn(move || {
//!             for i in 0..100 {
//!                 queue.push_back(t * 1000 + i);
//!                 counter.increment();
//!             }
//!         });
//!     }
//! });
//! assert_eq!(queue.len(), 400);
//! assert_eq!(counter.get(), 400);
//! let stats = counter.stats();
//! assert_eq!(stats.ops, 401); // the increments and the get
//! assert!(stats.ops_per_pass() >= 1.0);
//! ```

use core::cell::RefCell;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr;
use std::any::Any;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::Arc;
use strata_primitives::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, Ordering};
use strata_primitives::{Backoff, CachePadded, LOOM, Parker, Unparker};

/// A sequential data structure: anything with one `apply` entry point that takes an
/// operation and returns its result. [`FlatCombining`] makes it concurrent.
pub trait Sequential {
    /// An operation with its arguments.
    type Op: Send;
    /// What an operation returns.
    type Output: Send;

    /// Applies `op` and returns its result.
    fn apply(&mut self, op: Self::Op) -> Self::Output;
}

/// An operation on a `VecDeque` (see the [`Sequential`] impl for `VecDeque<T>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DequeOp<T> {
    /// `push_back(v)`; returns [`DequeOutput::Pushed`].
    PushBack(T),
    /// `pop_front()`; returns [`DequeOutput::Popped`].
    PopFront,
    /// `push_front(v)`; returns [`DequeOutput::Pushed`].
    PushFront(T),
    /// `pop_back()`; returns [`DequeOutput::Popped`].
    PopBack,
    /// `len()`; returns [`DequeOutput::Len`].
    Len,
}

/// What a [`DequeOp`] returned: each operation returns exactly one variant, named in
/// [`DequeOp`]'s docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DequeOutput<T> {
    /// A push added its value.
    Pushed,
    /// A pop removed this value, or `None` if the deque was empty.
    Popped(Option<T>),
    /// The number of values.
    Len(usize),
}

impl<T> DequeOutput<T> {
    /// The popped value: `Some` for a `Popped(Some(v))`, `None` for anything else.
    pub fn into_popped(self) -> Option<T> {
        match self {
            Self::Popped(v) => v,
            Self::Pushed | Self::Len(_) => None,
        }
    }

    /// The length for a `Len(n)`, `None` for anything else.
    pub fn as_len(&self) -> Option<usize> {
        match *self {
            Self::Len(n) => Some(n),
            Self::Pushed | Self::Popped(_) => None,
        }
    }
}

/// A double-ended queue; as `FlatCombining<VecDeque<T>>` a FIFO queue (push back, pop
/// front) out of the box, with the shortcuts [`FlatCombining::push_back`],
/// [`FlatCombining::pop_front`] and friends.
impl<T: Send> Sequential for VecDeque<T> {
    type Op = DequeOp<T>;
    type Output = DequeOutput<T>;

    #[inline]
    fn apply(&mut self, op: DequeOp<T>) -> DequeOutput<T> {
        match op {
            DequeOp::PushBack(v) => {
                self.push_back(v);
                DequeOutput::Pushed
            }
            DequeOp::PushFront(v) => {
                self.push_front(v);
                DequeOutput::Pushed
            }
            DequeOp::PopFront => DequeOutput::Popped(self.pop_front()),
            DequeOp::PopBack => DequeOutput::Popped(self.pop_back()),
            DequeOp::Len => DequeOutput::Len(self.len()),
        }
    }
}

/// Statistics of a [`FlatCombining`]: how many combining passes (lock tenures) there
/// were and how many operations they applied in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CombiningStats {
    /// Combining passes: one per tenure of the combiner lock, whether it was taken on
    /// the fast path or by a waiting thread.
    pub passes: u64,
    /// Operations applied, the combiners' own and those they applied for others.
    pub ops: u64,
}

impl CombiningStats {
    /// Operations applied per combining pass (0 before the first pass): 1 when there
    /// is no contention, more when combiners serve waiting threads.
    pub fn ops_per_pass(&self) -> f64 {
        if self.passes == 0 {
            0.0
        } else {
            self.ops as f64 / self.passes as f64
        }
    }
}

/// Records unused for more than this many combining passes are unlinked from the
/// publication list (see [`FlatCombining::with_aging`]).
pub const DEFAULT_AGING: u32 = 64;

/// The most scans of the publication list in one lock tenure: the combiner scans again
/// while a scan found published operations, at most this many times.
pub const MAX_SCANS: u32 = 3;

/// The most entries of a thread's cache of records (one per `FlatCombining` instance
/// the thread used through [`FlatCombining::apply`]).
pub const THREAD_CACHE_ENTRIES: usize = 8;

/// A record's state: no operation.
const IDLE: u8 = 0;
/// A record's state: an operation is published in the slot.
const PENDING: u8 = 1;
/// A record's state: the result is in the result slot.
const DONE: u8 = 2;
/// A record's state: an operation is published, and its owner is parked (or about to
/// park) until the state is `DONE`; its unparker is in the record's `unparker` slot.
const PARKED: u8 = 3;

/// Rounds of waiting on its own record (spinning 1, 2, 4... hints, see [`Backoff`])
/// before a waiter starts looking at the lock.
const LOOKS_BEFORE_LOCK: u32 = 4;

/// The lock word's bit: the combiner lock is held.
const LOCKED: u8 = 1;
/// The lock word's bit: a waiter parked while the lock was held; the holder serves every
/// published record (of the all-records list) before it releases the lock.
const WAKE: u8 = 2;

/// The ordering of the stores that publish an operation to the combiner (`PENDING`)
/// and a result to its owner (`DONE`): `Release`, or `Relaxed` under the test-only
/// `--cfg strata_weaken`, which is how the loom models show that they detect a missing
/// publication (the models marked `should_panic` under that cfg).
const fn publish_ordering() -> Ordering {
    if cfg!(strata_weaken) {
        Ordering::Relaxed
    } else {
        Ordering::Release
    }
}

/// What an `apply` produced: its output, or the payload of its panic.
type Outcome<T> = Result<T, Box<dyn Any + Send + 'static>>;

/// Runs one operation, catching a panic.
#[inline]
fn run<S: Sequential>(data: &mut S, op: S::Op) -> Outcome<S::Output> {
    catch_unwind(AssertUnwindSafe(|| data.apply(op)))
}

/// Returns the output, or resumes the panic of the `apply` that produced it.
#[inline]
fn finish<T>(outcome: Outcome<T>) -> T {
    match outcome {
        Ok(v) => v,
        Err(payload) => resume_unwind(payload),
    }
}

/// A publication record. Owned by one thread (or [`Handle`]) at a time; read and
/// written by the combiner while it is `PENDING`.
struct Record<S: Sequential> {
    /// `IDLE`, `PENDING`, `PARKED` or `DONE`. The owner moves `IDLE -> PENDING`
    /// (publishing the op), `PENDING -> PARKED` (by CAS, after writing its unparker)
    /// and `DONE -> IDLE` (after taking the result); the lock holder moves `PENDING` or
    /// `PARKED -> DONE` (publishing the result, then unparking a `PARKED` owner), or,
    /// when it is the owner, `PENDING` or `PARKED -> IDLE` (taking its op back).
    state: AtomicU8,
    /// `true` while the record is in the publication list. Only the owner sets it
    /// (before pushing the record), only the lock holder clears it (after unlinking).
    active: AtomicBool,
    /// The next record of the publication list. Written by the owner before it pushes
    /// the record, and by the lock holder when it unlinks the next record.
    next: AtomicPtr<Rec<S>>,
    /// The published operation: written by the owner while `IDLE`, taken by the lock
    /// holder after it read `PENDING` with `Acquire`.
    op: UnsafeCell<Option<S::Op>>,
    /// The result: written by the lock holder before its `DONE` store, taken by the
    /// owner after it read `DONE` with `Acquire`.
    result: UnsafeCell<Option<Outcome<S::Output>>>,
    /// The combining pass in which the record last had an operation. Lock holder only.
    last_used: UnsafeCell<u64>,
    /// The owner's unparker: written by the owner while the state is `PENDING`, before
    /// its `Release` CAS to `PARKED`; read by the lock holder after it reads `PARKED`.
    unparker: UnsafeCell<Option<Unparker>>,
    /// `true` while an owner holds the record, `false` once abandoned. Shared with the
    /// owning thread's cache entry, which may outlive the `FlatCombining` and then
    /// stores `false` into it without touching the (freed) record.
    claimed: Arc<AtomicBool>,
    /// The next record of the all-records list: written once before the record is
    /// pushed there, never changed after.
    next_all: *mut Rec<S>,
}

/// Records are padded to a cache line each, so that a waiter spinning on its record
/// does not share a line with another one.
type Rec<S> = CachePadded<Record<S>>;

/// The counters of [`CombiningStats`], written by the lock holder only.
struct Counters {
    passes: AtomicU64,
    ops: AtomicU64,
}

/// A sequential structure `S` made concurrent by flat combining. See the
/// [module docs](self) for the algorithm, the progress guarantee and the handling of
/// panics.
pub struct FlatCombining<S: Sequential> {
    /// The combiner lock word: [`LOCKED`] and [`WAKE`].
    lock: CachePadded<AtomicU8>,
    /// The head of the publication list.
    head: CachePadded<AtomicPtr<Rec<S>>>,
    /// Statistics, written by the lock holder.
    counters: CachePadded<Counters>,
    /// The structure, accessed by the lock holder only.
    data: CachePadded<UnsafeCell<S>>,
    /// The head of the all-records list (pushes only, never unlinked).
    all: AtomicPtr<Rec<S>>,
    /// This instance's unique id, the key of the per-thread record caches.
    id: u64,
    /// Records idle for more than this many passes are unlinked.
    aging: u64,
}

// SAFETY: the structure `S` is moved with the `FlatCombining`; the records hold only
// `S::Op` and `S::Output` values (both `Send`) and atomics; nothing is tied to a
// thread (thread caches point to records, never the other way).
unsafe impl<S: Sequential + Send> Send for FlatCombining<S> {}
// SAFETY: `S` is only accessed by the holder of the combiner lock (one thread at a
// time, `Acquire`/`Release` on the lock), so `S: Send` suffices; operations and
// results cross threads through the records (`S::Op: Send`, `S::Output: Send`) with
// the `Release`/`Acquire` pairs on the record state described on `Record`.
unsafe impl<S: Sequential + Send> Sync for FlatCombining<S> {}

/// The source of instance ids. Not part of the modelled algorithm (ids only need to be
/// unique, which one atomic RMW gives), so it is a plain std atomic even under loom,
/// where a static loom atomic cannot live across model executions.
static NEXT_ID: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);

impl<S: Sequential> FlatCombining<S> {
    /// Wraps `data`, with records aged out after [`DEFAULT_AGING`] passes.
    pub fn new(data: S) -> Self {
        Self::with_aging(data, DEFAULT_AGING)
    }

    /// Wraps `data`; a record that has had no operation for more than `aging` combining
    /// passes is unlinked from the publication list (its owner links it again on its
    /// next operation that finds the lock busy). `0` unlinks every idle record at each
    /// pass; larger values keep the records of occasional users linked longer, at the
    /// cost of longer scans.
    pub fn with_aging(data: S, aging: u32) -> Self {
        Self {
            lock: CachePadded::new(AtomicU8::new(0)),
            head: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            counters: CachePadded::new(Counters {
                passes: AtomicU64::new(0),
                ops: AtomicU64::new(0),
            }),
            data: CachePadded::new(UnsafeCell::new(data)),
            all: AtomicPtr::new(ptr::null_mut()),
            id: NEXT_ID.fetch_add(1, core::sync::atomic::Ordering::Relaxed),
            aging: u64::from(aging),
        }
    }

    /// Applies `op` and returns its result. Linearizes when the lock holder applies it.
    ///
    /// If the lock is free the caller applies `op` itself; otherwise it publishes `op`
    /// in its thread's record (found through the thread's cache, see the
    /// [module docs](self#finding-ones-record)) and waits for a combiner to apply it,
    /// or becomes the combiner.
    ///
    /// # Panics
    ///
    /// Resumes the panic of `S::apply` if it panicked on this `op` (whichever thread
    /// ran it); see the [module docs](self#panics-in-sapply).
    #[inline]
    pub fn apply(&self, op: S::Op) -> S::Output {
        // Test and test-and-set: a busy lock is only read, so that a waiter does not
        // take the line from the combiner.
        if self.lock.load(Ordering::Relaxed) & LOCKED == 0 && self.try_lock() {
            return self.combine_own(op);
        }
        self.apply_contended(op)
    }

    /// The lock was busy: publish `op` in the thread's record. Out of line, so that the
    /// fast path of [`apply`](Self::apply) stays small enough to inline.
    #[cold]
    #[inline(never)]
    fn apply_contended(&self, op: S::Op) -> S::Output {
        self.with_thread_record(|rec| self.apply_published(rec, op))
    }

    /// Claims a record and returns a handle that owns it, for callers that keep one per
    /// thread rather than going through the thread cache of [`apply`](Self::apply).
    /// Dropping the handle abandons the record for reuse.
    pub fn handle(&self) -> Handle<'_, S> {
        let rec = self.claim_record();
        Handle {
            fc: self,
            // SAFETY: records live until `self` is dropped, and the handle borrows
            // `self`.
            rec: unsafe { &*rec },
            _not_sync: PhantomData,
        }
    }

    /// The combining statistics so far (relaxed reads; exact once the threads that
    /// used the structure have been joined).
    pub fn stats(&self) -> CombiningStats {
        CombiningStats {
            passes: self.counters.passes.load(Ordering::Relaxed),
            ops: self.counters.ops.load(Ordering::Relaxed),
        }
    }

    /// The structure, for exclusive access without combining.
    pub fn get_mut(&mut self) -> &mut S {
        // SAFETY: `&mut self` excludes every other access to the structure.
        self.data.with_mut(|p| unsafe { &mut *p })
    }

    /// How many publication records this instance has allocated (bounded as explained
    /// in the [module docs](self#memory)).
    pub fn records(&self) -> usize {
        let mut n = 0;
        let mut cur = self.all.load(Ordering::Acquire);
        while !cur.is_null() {
            n += 1;
            // SAFETY: records on the all-records list live until `self` is dropped;
            // `next_all` was written before the record was published with `Release`
            // (and read after the `Acquire` above).
            cur = unsafe { (&*cur).next_all };
        }
        n
    }

    /// Takes the combiner lock if it is free: one CAS (two if a `WAKE` bit is left
    /// over from a waiter that found the lock free).
    #[inline]
    fn try_lock(&self) -> bool {
        match self
            .lock
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
        {
            Ok(_) => true,
            Err(cur) => cur & LOCKED == 0 && self.try_lock_flagged(cur),
        }
    }

    #[cold]
    fn try_lock_flagged(&self, mut cur: u8) -> bool {
        while cur & LOCKED == 0 {
            match self.lock.compare_exchange_weak(
                cur,
                cur | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(c) => cur = c,
            }
        }
        false
    }

    /// Holding the lock: applies `op`, serves the published operations, releases the
    /// lock (also if something unwinds).
    ///
    /// The caller's own `op` runs without `catch_unwind`: if it panics, the panic is
    /// the caller's, and `Unlock`'s drop releases the lock and wakes the parked
    /// waiters on the way out.
    #[inline]
    fn combine_own(&self, op: S::Op) -> S::Output {
        let unlock = Unlock(self);
        let out = self.data.with_mut(|data| {
            // SAFETY: the caller holds the lock, so this is the only access to the
            // structure until `unlock` releases it (after this closure returns).
            let data = unsafe { &mut *data };
            let out = data.apply(op);
            // SAFETY: the caller holds the lock.
            unsafe { self.serve(data, 1) };
            out
        });
        unlock.release();
        out
    }

    /// Holding the lock: serves the published operations, releases the lock.
    fn combine_others(&self) {
        let unlock = Unlock(self);
        self.data.with_mut(|data| {
            // SAFETY: the caller holds the lock (see `combine_own`).
            let data = unsafe { &mut *data };
            // SAFETY: the caller holds the lock.
            unsafe { self.serve(data, 0) };
        });
        unlock.release();
    }

    /// Releases the lock after serving the parked waiters: while `WAKE` is set, clears
    /// it and serves every published record of the all-records list (a parked record
    /// may have been unlinked from the publication list), then tries to release again.
    #[cold]
    fn unlock_parked(&self) {
        loop {
            // `Acquire`: pairs with the waiter's `AcqRel` `fetch_or` of `WAKE`, which
            // follows its `Release` CAS to `PARKED` (and its unparker's write).
            self.lock.fetch_and(!WAKE, Ordering::Acquire);
            self.data.with_mut(|data| {
                // SAFETY: we hold the lock (see `combine_own`).
                let data = unsafe { &mut *data };
                let pass = self.counters.passes.load(Ordering::Relaxed);
                let mut served = 0;
                let mut cur = self.all.load(Ordering::Acquire);
                while !cur.is_null() {
                    // SAFETY: records on the all-records list live until `self` is
                    // dropped.
                    let rec = unsafe { &*cur };
                    // SAFETY: we hold the lock.
                    served += unsafe { self.serve_record(data, rec, pass) };
                    cur = rec.next_all;
                }
                let total = self.counters.ops.load(Ordering::Relaxed).wrapping_add(served);
                self.counters.ops.store(total, Ordering::Relaxed);
            });
            if self
                .lock
                .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Holding the lock: applies the operation of `rec` if it is published (`PENDING`
    /// or `PARKED`), hands the result back and unparks a parked owner. Returns 1 if an
    /// operation was applied, else 0.
    ///
    /// # Safety
    ///
    /// The caller holds the lock, and `data` is the structure.
    #[inline]
    unsafe fn serve_record(&self, data: &mut S, rec: &Rec<S>, pass: u64) -> u64 {
        let state = rec.state.load(Ordering::Acquire);
        if state != PENDING && state != PARKED {
            return 0;
        }
        // SAFETY: the owner wrote the op before its `Release` store of `PENDING`,
        // which our `Acquire` load read (or before its CAS to `PARKED`, which
        // follows it); it touches neither slot again until it reads `DONE` (or holds
        // the lock, which we hold), and no other thread serves records while we hold
        // the lock.
        let op = rec.op.with_mut(|p| unsafe { (*p).take() });
        let mut served = 0;
        if let Some(op) = op {
            let out = run(data, op);
            // SAFETY: as above: the owner reads the result slot only after our `DONE`
            // store below.
            rec.result.with_mut(|p| unsafe { *p = Some(out) });
            served = 1;
        }
        // SAFETY: `last_used` is only accessed by the lock holder.
        rec.last_used.with_mut(|p| unsafe { *p = pass });
        if let Err(actual) =
            rec.state
                .compare_exchange(PENDING, DONE, publish_ordering(), Ordering::Acquire)
        {
            // Only the owner changes the state of a published record, and only
            // `PENDING -> PARKED`: it is `PARKED`, with the owner's unparker written
            // before its CAS, which our `Acquire` read. Take a clone before `DONE`: after
            // it the owner may return and reuse the slot.
            debug_assert_eq!(actual, PARKED);
            // SAFETY: the owner does not touch the slot while the state is `PARKED`.
            let unparker = rec.unparker.with(|p| unsafe { (*p).clone() });
            rec.state.store(DONE, publish_ordering());
            if let Some(u) = unparker {
                u.unpark();
            }
        }
        served
    }

    /// One combining pass: scans the publication list while a scan finds work (at most
    /// [`MAX_SCANS`] times), then counts the pass and `applied + served` operations.
    ///
    /// # Safety
    ///
    /// The caller holds the lock, and `data` is the structure.
    #[inline]
    unsafe fn serve(&self, data: &mut S, applied: u64) {
        // The counters are written only under the lock: a load and a store each, no
        // read-modify-write.
        let pass = self.counters.passes.load(Ordering::Relaxed).wrapping_add(1);
        let mut ops = applied;
        for _ in 0..MAX_SCANS {
            // SAFETY: the caller holds the lock.
            let n = unsafe { self.scan(data, pass) };
            ops += n;
            if n == 0 {
                break;
            }
        }
        self.counters.passes.store(pass, Ordering::Relaxed);
        let total = self.counters.ops.load(Ordering::Relaxed).wrapping_add(ops);
        self.counters.ops.store(total, Ordering::Relaxed);
    }

    /// One scan of the publication list: applies the operation of every `PENDING`
    /// record and unlinks the records idle for more than `aging` passes. Returns the
    /// number of operations applied.
    ///
    /// # Safety
    ///
    /// The caller holds the lock, and `data` is the structure.
    #[cold]
    unsafe fn scan_slow(&self, data: &mut S, pass: u64, first: *mut Rec<S>) -> u64 {
        let mut served = 0;
        // The last record kept in the list (null: the head pointer itself).
        let mut pred: *const Rec<S> = ptr::null();
        let mut cur = first;
        while !cur.is_null() {
            // SAFETY: records live until `self` is dropped.
            let rec = unsafe { &*cur };
            // The record's link was written by its owner before the `Release` CAS that
            // pushed it (our `Acquire` load of the head synchronizes with that CAS and,
            // through the release sequence of later pushes, with every earlier one), or
            // by an earlier lock holder (ordered before us by the lock).
            let next = rec.next.load(Ordering::Relaxed);
            let state = rec.state.load(Ordering::Relaxed);
            if state == PENDING || state == PARKED {
                // SAFETY: the caller holds the lock, and `data` is the structure.
                served += unsafe { self.serve_record(data, rec, pass) };
                pred = cur;
                cur = next;
                continue;
            }
            // SAFETY: `last_used` is only accessed by the lock holder.
            let last = rec.last_used.with(|p| unsafe { *p });
            if pass.wrapping_sub(last) <= self.aging {
                pred = cur;
                cur = next;
                continue;
            }
            // Aged out: unlink it. We are the only remover; pushers only CAS the head.
            let unlinked = if pred.is_null() {
                self.head
                    .compare_exchange(cur, next, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
            } else {
                // SAFETY: `pred` is a live record (see above).
                unsafe { (&*pred).next.store(next, Ordering::Relaxed) };
                true
            };
            if unlinked {
                // The owner, which reads this with `Acquire`, may push the record again
                // only after this store, hence after the unlink.
                rec.active.store(false, Ordering::Release);
            } else {
                // A push got in first: the record is no longer the head; it stays
                // linked until a later pass.
                pred = cur;
            }
            cur = next;
        }
        served
    }

    /// [`scan_slow`](Self::scan_slow) behind the check of an empty list, the common
    /// case without contention.
    ///
    /// # Safety
    ///
    /// The caller holds the lock, and `data` is the structure.
    #[inline]
    unsafe fn scan(&self, data: &mut S, pass: u64) -> u64 {
        let first = self.head.load(Ordering::Acquire);
        if first.is_null() {
            return 0;
        }
        // SAFETY: the caller's guarantees.
        unsafe { self.scan_slow(data, pass, first) }
    }

    /// The contended path: publishes `op` in `rec` and waits until a combiner has
    /// applied it, or becomes the combiner.
    ///
    /// `rec` must be owned by the caller (a handle's, or the thread's cache entry's,
    /// marked in use), so that no other thread publishes in it.
    #[cold]
    fn apply_published(&self, rec: &Rec<S>, op: S::Op) -> S::Output {
        // SAFETY: the record is `IDLE` (its owner, us, left it so), so no combiner
        // reads the slot; the `PENDING` store below publishes the write.
        rec.op.with_mut(|p| unsafe { *p = Some(op) });
        rec.state.store(PENDING, publish_ordering());
        // Link at once, before looking at the lock again: the combiner serves only the
        // records it finds in the list, so a record linked later would make the next
        // free lock this thread's own, and short operations would never be combined.
        if !rec.active.load(Ordering::Acquire) {
            self.link(rec);
        }
        let backoff = Backoff::new();
        let mut parker = None;
        let mut looks = 0u32;
        loop {
            if rec.state.load(Ordering::Acquire) == DONE {
                return Self::take_result(rec);
            }
            // Look at the lock only after a few rounds on our own record: every look
            // takes a copy of the lock's line from the combiner, whose next CAS must
            // then take it back.
            looks = looks.saturating_add(1);
            if (LOOM || looks > LOOKS_BEFORE_LOCK)
                && self.lock.load(Ordering::Relaxed) & LOCKED == 0
                && self.try_lock()
            {
                // We are the combiner. Our op is still published (take it back and
                // apply it directly: the record may have been unlinked), or a previous
                // combiner applied it between our check and our lock (`DONE`).
                let state = rec.state.load(Ordering::Acquire);
                if state == PENDING || state == PARKED {
                    rec.state.store(IDLE, Ordering::Relaxed);
                    let pass = self.counters.passes.load(Ordering::Relaxed);
                    // SAFETY: `last_used` is only accessed by the lock holder (us). Set
                    // so that aging does not unlink a record its owner is using.
                    rec.last_used.with_mut(|p| unsafe { *p = pass });
                    // SAFETY: we own the record and hold the lock, so no other thread
                    // reads or writes the slot.
                    let op = rec.op.with_mut(|p| unsafe { (*p).take() });
                    if let Some(op) = op {
                        return self.combine_own(op);
                    }
                }
                self.combine_others();
                return Self::take_result(rec);
            }
            if !rec.active.load(Ordering::Acquire) {
                // Not in the publication list (never linked, or unlinked by a combiner
                // after the `Release` store that we just read): push it.
                self.link(rec);
            }
            // Under loom, park at once, so that the models explore the parking
            // protocol (a spin there is only a yield).
            if LOOM || backoff.is_completed() {
                self.park(rec, &mut parker);
            } else {
                backoff.snooze();
            }
        }
    }

    /// The waiter has spun and yielded long enough: parks until a lock holder has
    /// served its record. Returns without parking if the operation is done or the lock
    /// is free (the caller looks again).
    ///
    /// The protocol: the owner writes its unparker, CASes its state `PENDING ->
    /// PARKED` (`Release`), then sets `WAKE` in the lock word with a `fetch_or`. If the
    /// lock was held at that `fetch_or`, the holder's release comes later in the lock
    /// word's modification order, sees `WAKE`, and serves every published record
    /// before it releases (see `unlock_parked`): this record is served and its owner
    /// unparked. If the lock was free, nobody may serve the record, so the owner does
    /// not park: it goes back to trying the lock.
    #[cold]
    fn park(&self, rec: &Rec<S>, parker: &mut Option<Parker>) {
        let parker = match parker {
            Some(p) => p,
            None => {
                let p = Parker::new();
                let u = p.unparker();
                // The state is `PENDING` or `PARKED` (from an earlier call of this
                // `apply`, with this same unparker): only the first call writes.
                if rec.state.load(Ordering::Relaxed) == PENDING {
                    // SAFETY: the state is `PENDING`: the lock holder reads the slot
                    // only after it reads `PARKED`, which our CAS below publishes.
                    rec.unparker.with_mut(|s| unsafe { *s = Some(u) });
                }
                parker.insert(p)
            }
        };
        match rec
            .state
            .compare_exchange(PENDING, PARKED, Ordering::Release, Ordering::Relaxed)
        {
            Ok(_) | Err(PARKED) => {}
            // `DONE`: the caller's next look takes the result.
            Err(_) => return,
        }
        let old = self.lock.fetch_or(WAKE, Ordering::AcqRel);
        if old & LOCKED == 0 {
            return;
        }
        // The holder serves us, stores `DONE`, then unparks us; a token left by a
        // release that could not serve (see `Unlock`) also wakes us. Either way the
        // caller looks again.
        parker.park();
    }

    /// Takes the result of `rec` after its `DONE` was read with `Acquire` (by the
    /// caller, its owner), and makes the record `IDLE` again.
    fn take_result(rec: &Rec<S>) -> S::Output {
        // SAFETY: the combiner wrote the result before its `Release` store of `DONE`,
        // which the caller read with `Acquire`; nobody else touches the slot of a
        // `DONE` record.
        let out = rec.result.with_mut(|p| unsafe { (*p).take() });
        rec.state.store(IDLE, Ordering::Relaxed);
        match out {
            Some(out) => finish(out),
            // A `DONE` record always has a result: the lock holder writes it before
            // the store of `DONE`, and only the owner takes it.
            None => unreachable!("flat combining: a DONE record without a result"),
        }
    }

    /// Pushes the caller's own record, which is not in the publication list, at its
    /// head.
    fn link(&self, rec: &Rec<S>) {
        rec.active.store(true, Ordering::Relaxed);
        let me = ptr::from_ref(rec).cast_mut();
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            rec.next.store(head, Ordering::Relaxed);
            // `Release`: the combiner that reads the head with `Acquire` sees the link
            // and the op published before it.
            match self
                .head
                .compare_exchange_weak(head, me, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    /// Claims an abandoned record, or allocates one.
    fn claim_record(&self) -> *mut Rec<S> {
        let mut cur = self.all.load(Ordering::Acquire);
        while !cur.is_null() {
            // SAFETY: records on the all-records list live until `self` is dropped.
            let rec = unsafe { &*cur };
            // `Acquire`: the previous owner's last accesses to the record (its
            // `Release` store of `false`) happen before ours.
            if rec
                .claimed
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return cur;
            }
            cur = rec.next_all;
        }
        let rec = Box::into_raw(Box::new(CachePadded::new(Record {
            state: AtomicU8::new(IDLE),
            active: AtomicBool::new(false),
            next: AtomicPtr::new(ptr::null_mut()),
            op: UnsafeCell::new(None),
            result: UnsafeCell::new(None),
            last_used: UnsafeCell::new(0),
            unparker: UnsafeCell::new(None),
            claimed: Arc::new(AtomicBool::new(true)),
            next_all: ptr::null_mut(),
        })));
        let mut head = self.all.load(Ordering::Relaxed);
        loop {
            // SAFETY: the record is not shared yet.
            unsafe { (&mut *rec).next_all = head };
            match self
                .all
                .compare_exchange_weak(head, rec, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return rec,
                Err(h) => head = h,
            }
        }
    }

    /// Runs `f` with the calling thread's record for this instance, from the thread
    /// cache (claiming one on a miss), marked in use meanwhile. Falls back to a
    /// temporary handle when the cache is unavailable (thread exit) or full of records
    /// in use (nested calls of `apply` from inside other instances' `S::apply`).
    fn with_thread_record<R>(&self, f: impl FnOnce(&Rec<S>) -> R) -> R {
        let found = RECORDS
            .try_with(|cache| {
                let mut cache = cache.try_borrow_mut().ok()?;
                if let Some(e) = cache.iter_mut().find(|e| e.id == self.id) {
                    if e.in_use {
                        return None;
                    }
                    e.in_use = true;
                    return Some(e.rec);
                }
                // A miss. Purge entries of dropped instances: the instance holds one
                // reference to the record's flag for as long as it lives.
                cache.retain(|e| e.in_use || Arc::strong_count(&e.claimed) > 1);
                if cache.len() >= THREAD_CACHE_ENTRIES {
                    let victim = cache.iter().position(|e| !e.in_use)?;
                    // Dropping the entry abandons its record.
                    cache.remove(victim);
                }
                let rec = self.claim_record();
                // SAFETY: the record is live (we hold `&self`).
                let claimed = Arc::clone(unsafe { &(&*rec).claimed });
                cache.push(CacheEntry {
                    id: self.id,
                    rec: rec.cast_const().cast(),
                    claimed: ManuallyDrop::new(claimed),
                    in_use: true,
                });
                Some(rec.cast_const().cast::<()>())
            })
            .ok()
            .flatten();
        match found {
            Some(rec) => {
                let _in_use = InUse(self.id);
                // SAFETY: the entry's id is this live instance's (ids are never
                // reused), so the record is one of ours and lives until `self` is
                // dropped; `in_use` keeps the entry (and the record's ownership) in
                // this thread until `_in_use` is dropped.
                f(unsafe { &*rec.cast::<Rec<S>>() })
            }
            None => {
                let handle = self.handle();
                f(handle.rec)
            }
        }
    }
}

impl<S: Sequential> Drop for FlatCombining<S> {
    fn drop(&mut self) {
        let mut cur = self.all.load(Ordering::Relaxed);
        while !cur.is_null() {
            // SAFETY: `&mut self`: no thread uses the records any more (handles borrow
            // `self`; thread caches never dereference the record of a dropped
            // instance). Each record was allocated with `Box` and is on the list once.
            let rec = unsafe { Box::from_raw(cur) };
            cur = rec.next_all;
        }
    }
}

impl<S: Sequential> core::fmt::Debug for FlatCombining<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FlatCombining")
            .field("id", &self.id)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<S: Sequential + Default> Default for FlatCombining<S> {
    fn default() -> Self {
        Self::new(S::default())
    }
}

/// Queue shortcuts for `FlatCombining<VecDeque<T>>`.
impl<T: Send> FlatCombining<VecDeque<T>> {
    /// Adds `v` at the back.
    pub fn push_back(&self, v: T) {
        self.apply(DequeOp::PushBack(v));
    }

    /// Adds `v` at the front.
    pub fn push_front(&self, v: T) {
        self.apply(DequeOp::PushFront(v));
    }

    /// Removes the value at the front (FIFO with [`push_back`](Self::push_back)).
    pub fn pop_front(&self) -> Option<T> {
        self.apply(DequeOp::PopFront).into_popped()
    }

    /// Removes the value at the back.
    pub fn pop_back(&self) -> Option<T> {
        self.apply(DequeOp::PopBack).into_popped()
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.apply(DequeOp::Len).as_len().unwrap_or(0)
    }

    /// `true` if there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Releases the combiner lock when dropped (also when unwinding).
struct Unlock<'a, S: Sequential>(&'a FlatCombining<S>);

impl<S: Sequential> Unlock<'_, S> {
    /// Releases the lock: one CAS, unless a waiter parked meanwhile (`WAKE`): then
    /// the parked waiters are served first (see `unlock_parked`).
    #[inline]
    fn release(self) {
        let fc = self.0;
        if fc
            .lock
            .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
            .is_err()
        {
            // Still guarded: if serving the parked waiters unwinds, the drop below
            // releases the lock and unparks them.
            fc.unlock_parked();
        }
        core::mem::forget(self);
    }
}

impl<S: Sequential> Drop for Unlock<'_, S> {
    /// Runs only if something unwinds while the lock is held: the lock holder's own
    /// operation panicked (others' run under `catch_unwind`), or, as a safety net,
    /// anything else did. Releases the lock without serving, and unparks every parked
    /// owner, which then tries the lock itself.
    fn drop(&mut self) {
        let fc = self.0;
        // The panicking operation counts as applied, in a pass of its own (we still
        // hold the lock: the counters are ours to write).
        let c = &fc.counters;
        c.passes
            .store(c.passes.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        c.ops
            .store(c.ops.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
        let mut unparkers = Vec::new();
        loop {
            // As in `unlock_parked`: clear `WAKE` first, so that a waiter that parks
            // after our walk sets it again and fails our release below.
            fc.lock.fetch_and(!WAKE, Ordering::Acquire);
            unparkers.clear();
            let mut cur = fc.all.load(Ordering::Acquire);
            while !cur.is_null() {
                // SAFETY: records on the all-records list live until `fc` is dropped.
                let rec = unsafe { &*cur };
                if rec.state.load(Ordering::Acquire) == PARKED {
                    // SAFETY: we hold the lock and the state is `PARKED`: the owner
                    // does not touch the slot.
                    if let Some(u) = rec.unparker.with(|p| unsafe { (*p).clone() }) {
                        unparkers.push(u);
                    }
                }
                cur = rec.next_all;
            }
            if fc
                .lock
                .compare_exchange(LOCKED, 0, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
        for u in unparkers {
            u.unpark();
        }
    }
}

/// A thread's cache entry: its record of one instance.
struct CacheEntry {
    /// The instance's id.
    id: u64,
    /// The record (a `*const Rec<S>` of the instance's `S`), dereferenced only through
    /// the live instance of this id.
    rec: *const (),
    /// The record's ownership flag; dropping the entry abandons the record. (Manually
    /// dropped only so that a failing loom model can leak it, see `drop`.)
    claimed: ManuallyDrop<Arc<AtomicBool>>,
    /// An `apply` of this thread is using the record (it must not be evicted).
    in_use: bool,
}

impl Drop for CacheEntry {
    fn drop(&mut self) {
        if cfg!(strata_loom) && std::thread::panicking() {
            // A failing loom model is unwinding: loom's state is gone, and touching a
            // loom atomic or `Arc` here would abort the test binary instead of
            // reporting the failure. Leak the flag (loom builds only).
            return;
        }
        // `Release`: our accesses to the record happen before the next owner's claim.
        // Safe even after the instance is dropped: the flag is reference counted.
        self.claimed.store(false, Ordering::Release);
        // SAFETY: `claimed` is not used again (we are in `drop`).
        drop(unsafe { ManuallyDrop::take(&mut self.claimed) });
    }
}

#[cfg(not(strata_loom))]
strata_primitives::thread_local! {
    /// The calling thread's records, by instance id.
    static RECORDS: RefCell<Vec<CacheEntry>> = const { RefCell::new(Vec::new()) };
}

// loom's `thread_local!` takes no `const` initializer.
#[cfg(strata_loom)]
strata_primitives::thread_local! {
    /// The calling thread's records, by instance id.
    static RECORDS: RefCell<Vec<CacheEntry>> = RefCell::new(Vec::new());
}

/// Clears the `in_use` mark of the cache entry of instance `.0` when dropped.
struct InUse(u64);

impl Drop for InUse {
    fn drop(&mut self) {
        let _ = RECORDS.try_with(|cache| {
            if let Ok(mut cache) = cache.try_borrow_mut()
                && let Some(e) = cache.iter_mut().find(|e| e.id == self.0)
            {
                e.in_use = false;
            }
        });
    }
}

/// A claimed publication record of a [`FlatCombining`], for one thread at a time
/// (`!Sync`; it may be sent to another thread). Dropping it abandons the record, which
/// the next handle or thread reuses.
///
/// ```
/// use strata_sync::combining::{DequeOp, DequeOutput, FlatCombining};
/// use std::collections::VecDeque;
///
/// let fc = FlatCombining::new(VecDeque::new());
/// let mut h = fc.handle();
/// assert_eq!(h.apply(DequeOp::PushBack(7)), DequeOutput::Pushed);
/// assert_eq!(h.apply(DequeOp::PopFront), DequeOutput::Popped(Some(7)));
/// ```
pub struct Handle<'a, S: Sequential> {
    fc: &'a FlatCombining<S>,
    rec: &'a Rec<S>,
    _not_sync: PhantomData<*const ()>,
}

// SAFETY: the handle owns its record exclusively, wherever it is; moving it to another
// thread moves that ownership (`S::Op`/`S::Output` are `Send`), and it only needs
// `&FlatCombining`, which is `Sync` when `S: Send`.
unsafe impl<S: Sequential + Send> Send for Handle<'_, S> {}

impl<S: Sequential> Handle<'_, S> {
    /// Applies `op` (as [`FlatCombining::apply`], without the thread-cache lookup).
    ///
    /// # Panics
    ///
    /// Resumes the panic of `S::apply` if it panicked on this `op`.
    #[inline]
    pub fn apply(&mut self, op: S::Op) -> S::Output {
        if self.fc.try_lock() {
            return self.fc.combine_own(op);
        }
        self.fc.apply_published(self.rec, op)
    }
}

impl<S: Sequential> Drop for Handle<'_, S> {
    fn drop(&mut self) {
        // `Release`: our accesses to the record happen before the next owner's claim.
        self.rec.claimed.store(false, Ordering::Release);
    }
}

impl<S: Sequential> core::fmt::Debug for Handle<'_, S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Handle").field("fc", &self.fc).finish_non_exhaustive()
    }
}

/// The counter behind [`CombiningCounter`].
#[derive(Debug)]
struct CounterCell(u64);

/// An operation of [`CounterCell`].
#[derive(Debug)]
enum CounterOp {
    Add(u64),
    Get,
}

impl Sequential for CounterCell {
    type Op = CounterOp;
    type Output = u64;

    #[inline]
    fn apply(&mut self, op: CounterOp) -> u64 {
        match op {
            CounterOp::Add(n) => {
                let prev = self.0;
                self.0 = prev.wrapping_add(n);
                prev
            }
            CounterOp::Get => self.0,
        }
    }
}

/// A `u64` counter on [`FlatCombining`]: every operation, reads included, goes through
/// the combiner, so reads linearize with the additions. Blocking (see the
/// [module docs](self#progress-and-linearization)).
///
/// ```
/// use strata_sync::combining::CombiningCounter;
///
/// let c = CombiningCounter::new(u64::MAX);
/// assert_eq!(c.increment(), u64::MAX);
/// assert_eq!(c.add(5), 0); // wrapping
/// assert_eq!(c.get(), 5);
/// ```
#[derive(Debug)]
pub struct CombiningCounter {
    fc: FlatCombining<CounterCell>,
}

impl CombiningCounter {
    /// A counter starting at `value`.
    pub fn new(value: u64) -> Self {
        Self {
            fc: FlatCombining::new(CounterCell(value)),
        }
    }

    /// Adds `n` (wrapping) and returns the previous value, like `fetch_add`.
    #[inline]
    pub fn add(&self, n: u64) -> u64 {
        self.fc.apply(CounterOp::Add(n))
    }

    /// Adds 1 (wrapping) and returns the previous value.
    #[inline]
    pub fn increment(&self) -> u64 {
        self.add(1)
    }

    /// The current value.
    #[inline]
    pub fn get(&self) -> u64 {
        self.fc.apply(CounterOp::Get)
    }

    /// The combining statistics of the counter.
    pub fn stats(&self) -> CombiningStats {
        self.fc.stats()
    }
}

impl Default for CombiningCounter {
    fn default() -> Self {
        Self::new(0)
    }
}

#[cfg(test)]
#[path = "combining_tests.rs"]
mod tests;
