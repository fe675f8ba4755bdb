//! An adaptive reader-writer lock with upgradable reads: [`AdaptiveRwLock<T>`].
//!
//! Readers share the lock; one *upgradable* reader may hold it beside plain readers
//! (but beside no writer and no other upgradable reader) and later turn into the
//! writer without letting anyone else write in between; a writer holds it alone. A
//! waiter spins with bounded exponential backoff ([`Backoff`]), then parks through
//! strata-primitives' [`Parker`]. The names, guards and poisoning follow
//! `std::sync::RwLock`; the upgradable reads and the guard functions (`map`,
//! `try_map`, `upgrade`, `downgrade`) follow parking_lot.
//!
//! ```
//! use std::time::Duration;
//! use strata_sync::rwlock::{AdaptiveRwLock, AdaptiveRwLockUpgradableReadGuard};
//!
//! let lock = AdaptiveRwLock::new(vec![1, 2, 3]);
//! {
//!     let a = lock.read().unwrap();
//!     // Readers share. (A second *blocking* `read` on this thread could deadlock
//!     // behind a writer queued in between: writers are preferred.)
//!     let b = lock.try_read().unwrap();
//!     assert_eq!(a.len() + b.len(), 6);
//!     assert!(lock.try_write().is_err()); // WouldBlock
//!     assert!(lock.try_write_for(Duration::from_millis(1)).is_err()); // timed out
//! }
//! lock.write().unwrap().push(4);
//!
//! // Read, decide, then write, with no writer slipping in between.
//! let up = lock.upgradable_read().unwrap();
//! let r = lock.try_read().unwrap(); // plain readers may still come in
//! assert_eq!(up.len(), 4);
//! drop(r);
//! let mut w = AdaptiveRwLockUpgradableReadGuard::upgrade(up); // waits for `r` to leave
//! w.push(5);
//! drop(w);
//! assert_eq!(*lock.read().unwrap(), [1, 2, 3, 4, 5]);
//! ```
//!
//! # Algorithm
//!
//! The lock is one state word and a wait queue.
//!
//! **State word** (`AtomicUsize`), from the low bit:
//! `WRITER` (a writer holds the lock, or has claimed it and waits for the readers
//! already inside to leave), `UPGRADABLE` (an upgradable reader holds it), `PARKED`
//! (the wait queue is not empty), `DRAINING` (the `WRITER` holder is parked waiting
//! for the readers to leave), and above them the number of readers.
//!
//! **Fast paths** (inlined). `read` is one compare-and-swap adding a reader, allowed
//! when neither `WRITER` nor `PARKED` is set; `read` unlock is one `fetch_sub`, which
//! goes out of line only if it was the last reader and `DRAINING` is set (or the
//! reader count was full, an overflow guard that no real program reaches). `write` is
//! one compare-and-swap `0 → WRITER`, its unlock one compare-and-swap `WRITER → 0`,
//! failing (and going out of line) when `PARKED` is set. Everything else is out of
//! line (`#[cold]`).
//!
//! **Writers in two phases.** A writer first claims `WRITER`, which needs only that no
//! other writer and no upgradable reader holds the lock: readers inside do not stop
//! the claim. From then on no new reader enters; the writer waits (spins, then parks
//! with `DRAINING`) until the readers inside have left; the last of them to leave sees
//! `DRAINING` and unparks it. An upgrade is the same second phase: an upgradable
//! reader turns `UPGRADABLE` into `WRITER` in one atomic step (nobody else can hold or
//! claim `WRITER` while `UPGRADABLE` is set) and waits for the plain readers to leave.
//! At most one thread ever waits in this phase, so an upgrade cannot deadlock with
//! another upgrade. Because readers never block the claim, a continuous stream of
//! readers cannot starve a writer; and because a claimed `WRITER` blocks new readers,
//! readers do not barge past a waiting writer.
//!
//! **Wait queue.** A thread that has spun without success takes the queue's mutex
//! (a short critical section of this lock's bookkeeping only; the protected data is
//! never accessed under it), checks the state word again, and either acquires or sets
//! `PARKED` with a compare-and-swap, appends a waiter record (kind, a status word and
//! its [`Unparker`]) and parks until its status changes. A release whose
//! compare-and-swap fails because `PARKED` is set takes the queue's mutex and, in one
//! compare-and-swap on the state word, both releases and *dispatches* the head of the
//! queue:
//!
//! * the readers at the head (and at most one upgradable reader among them) are all
//!   granted together: the releaser adds them to the reader count, so they wake up
//!   already holding the lock;
//! * a writer at the head is handed the `WRITER` claim directly if it has waited
//!   longer than [`FAIRNESS_BOUND`]; otherwise it is woken to retry, competing with
//!   threads that are still spinning (this keeps a running thread from waiting for a
//!   sleeping one to be scheduled). A woken writer that loses goes back to the *head*
//!   of the queue with its original start time, so the first release after it has
//!   waited [`FAIRNESS_BOUND`] hands it the lock: **no waiter starves** (its wait is
//!   bounded by the bound plus the critical sections of the waiters queued ahead of
//!   it). Readers and an upgradable reader behind a woken writer are granted in the
//!   same step (they pass it; it then claims `WRITER` and drains them); dispatch stops
//!   at the next writer.
//!
//! A new reader (or upgradable reader) does not pass a queued writer: it may only
//! enter while the queue holds no writer. The same dispatch runs when a queued waiter
//! times out and leaves, and when a woken writer gives up, so that whoever the
//! departure unblocks is served. Invariant: while the queue is not empty, either its
//! head is blocked by the state word, or a woken writer is on its way (it will take
//! the lock and dispatch on release, go back to the queue's head, or dispatch as it
//! gives up).
//!
//! **No lost wake-up.** A waiter sets `PARKED` by a compare-and-swap on the same word
//! that every release changes, while holding the queue's mutex; a release either
//! happens before (the waiter's re-check sees it and acquires) or fails its fast
//! compare-and-swap (and dispatches under the mutex, after the waiter is queued). A
//! waiter's status is changed only under the mutex, and a parked waiter re-checks its
//! status after every wake-up, so a left-over [`Parker`] token is harmless.
//!
//! # Orderings
//!
//! * Every acquisition's successful compare-and-swap is `Acquire`; every release's is
//!   `Release` (the write unlock and the downgrades: these are the orderings that
//!   publish a writer's data to the next holder); a reader's unlock is `Release` so
//!   that a writer's later writes cannot be seen by the reads of the critical section
//!   it leaves; a writer's drain reads the reader count with `Acquire`.
//! * A dispatch's compare-and-swap is `AcqRel`: it takes over whatever was released
//!   into the word and, by the `Release` store of each granted waiter's status (read
//!   with `Acquire` by the waiter), passes it on to the threads it grants.
//! * Setting `PARKED` and `DRAINING` is `Relaxed`/`Acquire`: the queue's contents are
//!   published by its mutex; what matters about the bits is only the total order of
//!   read-modify-writes on the one word.
//!
//! # Progress and linearization points
//!
//! **Blocking.** `read`, `write`, `upgradable_read` and `upgrade` wait for conflicting
//! holders (spinning, then parked). The `try_*` functions never wait for a holder
//! (they may take the queue's mutex for a few instructions to check for queued
//! writers); the `try_*_for` functions wait at most about their timeout (plus that
//! mutex's delays), then fail with `WouldBlock`. A lock operation takes effect at its
//! successful compare-and-swap on the state word (its own, or the dispatch that
//! granted it); a writer's acquisition at the moment its drain sees no reader; a
//! release at its compare-and-swap or `fetch_sub`. Under contention and with waiters
//! parked, queued waiters are served in queue order (a group of readers at once),
//! except that a writer woken to retry may be passed, by spinning writers and by
//! the readers queued behind it, until it has waited [`FAIRNESS_BOUND`], and that
//! readers pass a queued upgradable reader held back only by another upgradable
//! holder (they can share the lock with that holder; the upgradable reader cannot).
//!
//! # Poisoning
//!
//! As `std`: a write guard (including one obtained by `upgrade`, and a mapped write
//! guard) dropped while its thread panics marks the lock poisoned; every later
//! acquisition then returns its guard inside a [`PoisonError`] (`try_*` inside
//! [`TryLockError::Poisoned`]). [`AdaptiveRwLock::clear_poison`] clears the mark.
//! A reader or upgradable reader that panics does not poison. The lock stays fully
//! usable after a panic: nothing in it panics on its own.
//!
//! # Not provided
//!
//! The lock is not re-entrant: a thread that holds a read guard and asks for another
//! one may wait forever if a writer has claimed the lock in between; a thread that
//! holds any guard and asks for `write` waits for itself forever.

use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::ptr::NonNull;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use strata_primitives::sync::{
    Arc, LockResult, Mutex, MutexGuard, PoisonError, TryLockError, TryLockResult,
};
use strata_primitives::{Backoff, LOOM, Parker, Unparker, thread};

/// How long a queued writer may be passed by threads that did not queue before the
/// lock is handed to it directly on the next release (readers and upgradable readers
/// at the head of the queue are always handed the lock). One millisecond: long
/// against a critical section and a wake-up (a few microseconds), short against a
/// scheduler tick. Under the test-only `--cfg strata_loom` the bound is zero (every
/// dispatch hands off), and the models can switch it per lock.
pub const FAIRNESS_BOUND: Duration = Duration::from_millis(1);

/// A writer holds the lock, or has claimed it and waits for the readers inside.
const WRITER: usize = 1;
/// An upgradable reader holds the lock.
const UPGRADABLE: usize = 1 << 1;
/// The wait queue is not empty.
const PARKED: usize = 1 << 2;
/// The `WRITER` holder is parked until the last reader leaves.
const DRAINING: usize = 1 << 3;
/// The reader count lives above the flag bits.
const READER_SHIFT: u32 = 4;
const ONE_READER: usize = 1 << READER_SHIFT;
/// No reader is added when the state is at or above this (the count is full).
const READERS_FULL: usize = usize::MAX & !(ONE_READER - 1);

#[inline]
const fn readers(s: usize) -> usize {
    s >> READER_SHIFT
}

/// The ordering of the compare-and-swaps that release a writer's data (write unlock
/// and the downgrades): `Release`, or `Relaxed` under the test-only
/// `--cfg strata_weaken`, which the loom models must catch.
#[inline(always)]
const fn release_ordering() -> Ordering {
    if cfg!(strata_weaken) {
        Ordering::Relaxed
    } else {
        Ordering::Release
    }
}

/// A waiter's status: still queued.
const WAITING: u8 = 0;
/// The dispatcher granted the lock to it: it holds it on waking.
const GRANTED: u8 = 1;
/// The dispatcher removed it from the queue to retry (a woken writer).
const RETRY: u8 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Read,
    Upgradable,
    Write,
}

struct Waiter {
    kind: Kind,
    status: AtomicU8,
    unparker: Unparker,
    /// When it first queued (for the fairness bound); `None` under loom.
    since: Option<Instant>,
}

struct WaitQueue {
    waiters: VecDeque<Arc<Waiter>>,
    /// How many `Write` waiters `waiters` holds.
    writers: usize,
    /// The unparker of the `WRITER` holder parked in its drain, if any.
    drainer: Option<Unparker>,
    /// [`FAIRNESS_BOUND`], switchable by tests.
    fairness: Duration,
}

impl WaitQueue {
    const fn new() -> Self {
        Self {
            waiters: VecDeque::new(),
            writers: 0,
            drainer: None,
            fairness: if LOOM { Duration::ZERO } else { FAIRNESS_BOUND },
        }
    }

    fn is_due(&self, w: &Waiter) -> bool {
        self.fairness.is_zero()
            || (self.fairness != Duration::MAX
                && w.since.is_some_and(|t| t.elapsed() >= self.fairness))
    }
}

/// How long an acquisition may wait.
#[derive(Clone, Copy)]
enum Wait {
    Forever,
    Until(Instant),
}

impl Wait {
    fn for_timeout(timeout: Duration) -> Self {
        Instant::now()
            .checked_add(timeout)
            .map_or(Wait::Forever, Wait::Until)
    }

    /// Whether the deadline has passed. Under loom there is no time: a timed wait ends
    /// only by a timed park returning without a token.
    fn expired(self) -> bool {
        match self {
            Wait::Forever => false,
            Wait::Until(t) => !LOOM && Instant::now() >= t,
        }
    }

    /// Parks until a token or the deadline; `false` if the deadline passed.
    fn park(self, parker: &Parker) -> bool {
        match self {
            Wait::Forever => {
                parker.park();
                true
            }
            Wait::Until(t) => {
                if LOOM {
                    return parker.park_timeout(Duration::ZERO);
                }
                let now = Instant::now();
                now < t && (parker.park_timeout(t - now) || Instant::now() < t)
            }
        }
    }
}

/// The lock without its data: the state word, the queue and the poison flag. Mapped
/// guards keep a reference to it.
struct RawRwLock {
    state: AtomicUsize,
    queue: Mutex<WaitQueue>,
    poisoned: AtomicBool,
    /// The lock's node in the runtime lock-order validator (feature `lockdep` only).
    #[cfg(feature = "lockdep")]
    class: crate::lockdep::LockClass,
}

impl RawRwLock {
    #[cfg(not(strata_loom))]
    const fn new() -> Self {
        Self {
            state: AtomicUsize::new(0),
            queue: Mutex::new(WaitQueue::new()),
            poisoned: AtomicBool::new(false),
            #[cfg(feature = "lockdep")]
            class: crate::lockdep::LockClass::new(),
        }
    }

    #[cfg(strata_loom)]
    fn new() -> Self {
        Self {
            state: AtomicUsize::new(0),
            queue: Mutex::new(WaitQueue::new()),
            poisoned: AtomicBool::new(false),
            #[cfg(feature = "lockdep")]
            class: crate::lockdep::LockClass::new(),
        }
    }

    fn lock_queue(&self) -> MutexGuard<'_, WaitQueue> {
        // Only this module's bookkeeping runs under the mutex, and none of it panics
        // (short of an allocation failure, which aborts), so a poisoned mutex still
        // guards a consistent queue.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    // ---- acquisitions: one function per kind -------------------------------------

    /// lockdep: a blocking acquisition (no deadline) records ordering edges from the
    /// locks this thread holds; a try or timed one adds none (it cannot wait forever).
    /// Shared, upgradable and exclusive acquisitions are ordered alike.
    #[cfg(feature = "lockdep")]
    #[track_caller]
    fn lockdep_before(&self, wait: Option<Wait>) {
        if matches!(wait, Some(Wait::Forever)) {
            self.class.before_acquire();
        }
    }

    /// Acquires a read lock. `None` = try once; otherwise wait as told. (The lockdep
    /// hooks of shared acquisitions go here.)
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    fn acquire_read(&self, wait: Option<Wait>) -> bool {
        #[cfg(feature = "lockdep")]
        self.lockdep_before(wait);
        let taken = self.acquire_read_unhooked(wait);
        #[cfg(feature = "lockdep")]
        if taken {
            self.class.acquired();
        }
        taken
    }

    #[inline]
    fn acquire_read_unhooked(&self, wait: Option<Wait>) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        if s & (WRITER | PARKED) == 0
            && s < READERS_FULL
            && self
                .state
                .compare_exchange_weak(s, s + ONE_READER, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return true;
        }
        self.acquire_slow(Kind::Read, wait)
    }

    /// Acquires the upgradable read lock. (Hook point for upgradable acquisitions.)
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    fn acquire_upgradable(&self, wait: Option<Wait>) -> bool {
        #[cfg(feature = "lockdep")]
        self.lockdep_before(wait);
        let taken = self.acquire_upgradable_unhooked(wait);
        #[cfg(feature = "lockdep")]
        if taken {
            self.class.acquired();
        }
        taken
    }

    #[inline]
    fn acquire_upgradable_unhooked(&self, wait: Option<Wait>) -> bool {
        let s = self.state.load(Ordering::Relaxed);
        if s & (WRITER | UPGRADABLE | PARKED) == 0
            && self
                .state
                .compare_exchange_weak(s, s | UPGRADABLE, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            return true;
        }
        self.acquire_slow(Kind::Upgradable, wait)
    }

    /// Acquires the write lock: claims `WRITER`, then waits for the readers inside to
    /// leave. (Hook point for exclusive acquisitions.)
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    fn acquire_write(&self, wait: Option<Wait>) -> bool {
        #[cfg(feature = "lockdep")]
        self.lockdep_before(wait);
        let taken = self.acquire_write_unhooked(wait);
        #[cfg(feature = "lockdep")]
        if taken {
            self.class.acquired();
        }
        taken
    }

    #[inline]
    fn acquire_write_unhooked(&self, wait: Option<Wait>) -> bool {
        if self
            .state
            .compare_exchange_weak(0, WRITER, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
        {
            return true;
        }
        self.acquire_write_slow(wait)
    }

    #[cold]
    #[inline(never)]
    fn acquire_write_slow(&self, wait: Option<Wait>) -> bool {
        let Some(wait) = wait else {
            // try_write: only a lock that nobody holds.
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                if s & (WRITER | UPGRADABLE) != 0 || readers(s) != 0 {
                    return false;
                }
                match self.state.compare_exchange_weak(
                    s,
                    s | WRITER,
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(now) => s = now,
                }
            }
        };
        if !self.acquire_slow(Kind::Write, Some(wait)) {
            return false;
        }
        if self.drain(wait) {
            return true;
        }
        // Timed out waiting for the readers: give the claim back, and serve whoever
        // queued behind it.
        self.release_with(|s| s & !(WRITER | DRAINING));
        false
    }

    /// Turns the upgradable lock held by the caller into the write lock. `None` = only
    /// if no reader is inside; otherwise waits for them as told. On failure the caller
    /// still holds the upgradable lock. (Hook point for upgrades.)
    fn upgrade(&self, wait: Option<Wait>) -> bool {
        let Some(wait) = wait else {
            let mut s = self.state.load(Ordering::Relaxed);
            loop {
                debug_assert!(s & UPGRADABLE != 0);
                if readers(s) != 0 {
                    return false;
                }
                match self.state.compare_exchange_weak(
                    s,
                    s ^ (WRITER | UPGRADABLE),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return true,
                    Err(now) => s = now,
                }
            }
        };
        // UPGRADABLE is set and WRITER clear (nobody claims WRITER while UPGRADABLE is
        // set), so the xor swaps one for the other in one step. Acquire: the readers
        // drained below released with Release; this only needs to be a claim.
        let prev = self.state.fetch_xor(WRITER | UPGRADABLE, Ordering::Acquire);
        debug_assert_eq!(prev & (WRITER | UPGRADABLE), UPGRADABLE);
        if self.drain(wait) {
            return true;
        }
        // Timed out: back to upgradable; readers that queued behind the claim enter.
        self.release_with(|s| (s & !(WRITER | DRAINING)) | UPGRADABLE);
        false
    }

    /// The common slow path of every acquisition kind: the state-word part only (for a
    /// writer, the `WRITER` claim). Spins, then queues and parks.
    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, kind: Kind, wait: Option<Wait>) -> bool {
        let Some(wait) = wait else {
            return self.try_acquire(kind);
        };
        let backoff = Backoff::new();
        // Set once the dispatcher has woken this (writer) waiter to retry: it is then
        // responsible for serving the queue if it gives up, and goes back to the head.
        let mut woken = false;
        let mut since: Option<Instant> = None;
        loop {
            // Spin phase.
            let s = self.state.load(Ordering::Relaxed);
            if self.try_barge(kind, s) {
                return true;
            }
            if wait.expired() {
                return self.give_up(woken);
            }
            if kind == Kind::Read && s >= READERS_FULL && s & WRITER == 0 {
                // The reader count is full: wait for a reader to leave, without
                // queueing (a reader's unlock does not dispatch the queue).
                thread::yield_now();
                continue;
            }
            let spin = kind == Kind::Write || s & PARKED == 0;
            if !LOOM && spin && !backoff.is_completed() {
                backoff.snooze();
                continue;
            }

            // Park phase.
            let parker = Parker::new();
            let waiter;
            {
                let mut q = self.lock_queue();
                let mut s = self.state.load(Ordering::Relaxed);
                loop {
                    if Self::admits(kind, s, &q) {
                        match self.state.compare_exchange_weak(
                            s,
                            Self::with_acquired(kind, s),
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => return true,
                            Err(now) => s = now,
                        }
                    } else if s & PARKED != 0 {
                        break;
                    } else {
                        // Relaxed: only the order of RMWs on this word matters here;
                        // the queue is published by its mutex.
                        match self.state.compare_exchange_weak(
                            s,
                            s | PARKED,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => break,
                            Err(now) => s = now,
                        }
                    }
                }
                if since.is_none() && !LOOM {
                    since = Some(Instant::now());
                }
                waiter = Arc::new(Waiter {
                    kind,
                    status: AtomicU8::new(WAITING),
                    unparker: parker.unparker(),
                    since,
                });
                if woken {
                    q.waiters.push_front(Arc::clone(&waiter));
                } else {
                    q.waiters.push_back(Arc::clone(&waiter));
                }
                if kind == Kind::Write {
                    q.writers += 1;
                }
            }
            loop {
                // Acquire: pairs with the Release store of the dispatcher.
                match waiter.status.load(Ordering::Acquire) {
                    GRANTED => return true,
                    RETRY => break,
                    _ => {}
                }
                if !wait.park(&parker) {
                    return self.abandon(&waiter);
                }
            }
            // Woken to retry: compete again, from the head of the queue if it loses.
            woken = true;
            backoff.reset();
        }
    }

    /// A non-waiting acquisition of `kind`'s state-word part.
    fn try_acquire(&self, kind: Kind) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            let ok = match kind {
                Kind::Write => s & (WRITER | UPGRADABLE) == 0 && readers(s) == 0,
                _ if s & PARKED == 0 => Self::barges(kind, s),
                // Someone is queued: the queue decides whether a reader may pass.
                _ => {
                    let q = self.lock_queue();
                    loop {
                        if !Self::admits(kind, s, &q) {
                            return false;
                        }
                        match self.state.compare_exchange_weak(
                            s,
                            Self::with_acquired(kind, s),
                            Ordering::Acquire,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => return true,
                            Err(now) => s = now,
                        }
                    }
                }
            };
            if !ok {
                return false;
            }
            match self.state.compare_exchange_weak(
                s,
                Self::with_acquired(kind, s),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Whether a thread that is not queued may take `kind` in state `s` without
    /// looking at the queue. A writer may pass queued threads (the fairness bound
    /// limits that); readers and upgradable readers may not.
    #[inline]
    fn barges(kind: Kind, s: usize) -> bool {
        match kind {
            Kind::Read => s & (WRITER | PARKED) == 0 && s < READERS_FULL,
            Kind::Upgradable => s & (WRITER | UPGRADABLE | PARKED) == 0,
            Kind::Write => s & (WRITER | UPGRADABLE) == 0,
        }
    }

    /// Whether `kind` may be taken in state `s` given the queue (under its mutex): a
    /// reader or upgradable reader may not pass a queued writer.
    fn admits(kind: Kind, s: usize, q: &WaitQueue) -> bool {
        match kind {
            Kind::Read => s & WRITER == 0 && s < READERS_FULL && q.writers == 0,
            Kind::Upgradable => s & (WRITER | UPGRADABLE) == 0 && q.writers == 0,
            Kind::Write => s & (WRITER | UPGRADABLE) == 0,
        }
    }

    #[inline]
    fn with_acquired(kind: Kind, s: usize) -> usize {
        match kind {
            Kind::Read => s + ONE_READER,
            Kind::Upgradable => s | UPGRADABLE,
            Kind::Write => s | WRITER,
        }
    }

    fn try_barge(&self, kind: Kind, mut s: usize) -> bool {
        while Self::barges(kind, s) {
            match self.state.compare_exchange_weak(
                s,
                Self::with_acquired(kind, s),
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
        false
    }

    /// A timed-out queued waiter leaves. `true` if the lock was granted to it in the
    /// meantime (it then holds it).
    #[cold]
    fn abandon(&self, waiter: &Arc<Waiter>) -> bool {
        let mut wake = Vec::new();
        let mut q = self.lock_queue();
        // The status changes only under the mutex: what is read here is final.
        match waiter.status.load(Ordering::Acquire) {
            GRANTED => return true,
            RETRY => {}
            _ => {
                if let Some(i) = q.waiters.iter().position(|w| Arc::ptr_eq(w, waiter)) {
                    q.waiters.remove(i);
                    if waiter.kind == Kind::Write {
                        q.writers -= 1;
                    }
                }
            }
        }
        // Its departure may unblock those behind it (and clears PARKED if it was the
        // last); a woken writer that gives up hands its turn on.
        self.dispatch(&mut q, |s| s, &mut wake);
        drop(q);
        wake.into_iter().for_each(|u| u.unpark());
        false
    }

    /// A thread that is not queued gives up; a woken writer first serves the queue.
    #[cold]
    fn give_up(&self, woken: bool) -> bool {
        if woken {
            self.release_with(|s| s);
        }
        false
    }

    /// The `WRITER` holder waits until no reader is inside. `false` if the deadline
    /// passed first (the caller still holds the claim).
    fn drain(&self, wait: Wait) -> bool {
        // Acquire: pairs with the readers' Release unlocks.
        if readers(self.state.load(Ordering::Acquire)) == 0 {
            return true;
        }
        self.drain_slow(wait)
    }

    #[cold]
    #[inline(never)]
    fn drain_slow(&self, wait: Wait) -> bool {
        let backoff = Backoff::new();
        while !LOOM && !backoff.is_completed() {
            backoff.snooze();
            if readers(self.state.load(Ordering::Acquire)) == 0 {
                return true;
            }
            if wait.expired() {
                return false;
            }
        }
        let parker = Parker::new();
        self.lock_queue().drainer = Some(parker.unparker());
        let mut done = true;
        let mut s = self.state.load(Ordering::Acquire);
        loop {
            if readers(s) == 0 {
                break;
            }
            if s & DRAINING == 0 {
                // Set DRAINING only while readers remain: the last reader's fetch_sub
                // is ordered against this RMW, so it either sees DRAINING (and
                // unparks) or this fails and sees the count at zero.
                // Acquire on failure too: the value it returns may be the last
                // reader's unlock, after which this writer goes on to write.
                match self.state.compare_exchange_weak(
                    s,
                    s | DRAINING,
                    Ordering::Acquire,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {}
                    Err(now) => {
                        s = now;
                        continue;
                    }
                }
            }
            if !wait.park(&parker) {
                s = self.state.load(Ordering::Acquire);
                done = readers(s) == 0;
                break;
            }
            s = self.state.load(Ordering::Acquire);
        }
        self.lock_queue().drainer = None;
        self.state.fetch_and(!DRAINING, Ordering::Relaxed);
        done
    }

    // ---- releases: one function per kind ---------------------------------------

    /// Releases a read lock. (Hook point for shared releases.)
    #[inline]
    fn release_read(&self) {
        #[cfg(feature = "lockdep")]
        self.class.release();
        // Release: the reads of the critical section happen before a writer's writes.
        let prev = self.state.fetch_sub(ONE_READER, Ordering::Release);
        debug_assert!(readers(prev) > 0);
        if prev & DRAINING != 0 || prev >= READERS_FULL {
            self.release_read_slow(prev);
        }
    }

    #[cold]
    #[inline(never)]
    fn release_read_slow(&self, prev: usize) {
        if prev >= READERS_FULL && prev & PARKED != 0 {
            // Readers queued only because the count was full.
            self.release_with(|s| s);
        }
        if prev & DRAINING != 0 && readers(prev) == 1 {
            // The last reader out wakes the drainer. This lock comes after the
            // drainer's registration in the mutex's order: the drainer registered
            // before its DRAINING compare-and-swap, whose value `prev` is, so a lock
            // ordered before the registration would happen before a write it reads
            // (impossible by coherence).
            let u = self.lock_queue().drainer.clone();
            if let Some(u) = u {
                u.unpark();
            }
        }
    }

    /// Releases the write lock. (Hook point for exclusive releases.)
    #[inline]
    fn release_write(&self) {
        #[cfg(feature = "lockdep")]
        self.class.release();
        if self
            .state
            .compare_exchange(WRITER, 0, release_ordering(), Ordering::Relaxed)
            .is_err()
        {
            self.release_with(|s| s & !WRITER);
        }
    }

    /// Releases the upgradable read lock. (Hook point for upgradable releases.)
    #[inline]
    fn release_upgradable(&self) {
        #[cfg(feature = "lockdep")]
        self.class.release();
        self.transition(|s| s & !UPGRADABLE, Ordering::Release);
    }

    /// Write → read. (Hook point for downgrades.)
    fn downgrade_to_read(&self) {
        if self
            .state
            .compare_exchange(WRITER, ONE_READER, release_ordering(), Ordering::Relaxed)
            .is_err()
        {
            self.release_with(|s| (s & !WRITER) + ONE_READER);
        }
    }

    /// Write → upgradable. (Hook point for downgrades.)
    fn downgrade_to_upgradable(&self) {
        if self
            .state
            .compare_exchange(WRITER, UPGRADABLE, release_ordering(), Ordering::Relaxed)
            .is_err()
        {
            self.release_with(|s| (s & !WRITER) | UPGRADABLE);
        }
    }

    /// Upgradable → read. (Hook point for downgrades.)
    fn downgrade_upgradable(&self) {
        // The reader count can be full only if ~2^28 (32-bit) or ~2^60 (64-bit) read
        // guards were leaked; then the added reader would wrap the word to "free", so
        // it panics instead (as std does on too many readers), leaving the state as is.
        self.transition(
            |s| {
                (s & !UPGRADABLE)
                    .checked_add(ONE_READER)
                    .expect("AdaptiveRwLock: too many read locks")
            },
            Ordering::Release,
        );
    }

    /// Applies `f` to the state word with a compare-and-swap while nobody is queued,
    /// otherwise through the queue's dispatch.
    #[inline]
    fn transition(&self, f: impl Fn(usize) -> usize, order: Ordering) {
        let mut s = self.state.load(Ordering::Relaxed);
        while s & PARKED == 0 {
            match self
                .state
                .compare_exchange_weak(s, f(s), order, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(now) => s = now,
            }
        }
        self.release_with(f);
    }

    /// Under the queue's mutex, applies `release` to the state word and dispatches
    /// the queue's head in the same compare-and-swap; unparks the served waiters after
    /// the mutex is released.
    #[cold]
    #[inline(never)]
    fn release_with(&self, release: impl Fn(usize) -> usize) {
        let mut wake = Vec::new();
        let mut q = self.lock_queue();
        self.dispatch(&mut q, release, &mut wake);
        drop(q);
        for u in wake {
            u.unpark();
        }
    }

    /// The dispatch (see the module docs). Grants the readers and at most one
    /// upgradable reader at the head; hands a writer at the head the `WRITER` claim if
    /// it is due, else wakes it to retry and goes on with the readers behind it; stops
    /// at the next writer or at a waiter the state blocks. Keeps `PARKED` equal to
    /// "the queue is not empty".
    fn dispatch(
        &self,
        q: &mut WaitQueue,
        release: impl Fn(usize) -> usize,
        wake: &mut Vec<Unparker>,
    ) {
        let mut s = self.state.load(Ordering::Relaxed);
        // The queue positions served, ascending.
        let mut served: Vec<usize> = Vec::new();
        loop {
            let mut n = release(s);
            served.clear();
            let mut retry_at = None;
            for (i, w) in q.waiters.iter().enumerate() {
                match w.kind {
                    Kind::Read if n & WRITER == 0 && n < READERS_FULL => n += ONE_READER,
                    Kind::Upgradable if n & (WRITER | UPGRADABLE) == 0 => n |= UPGRADABLE,
                    // Held back only by another upgradable reader: the readers queued
                    // behind it may still enter (they coexist with it), so look past it.
                    Kind::Upgradable if n & WRITER == 0 => continue,
                    Kind::Write if n & (WRITER | UPGRADABLE) == 0 && retry_at.is_none() => {
                        if q.is_due(w) {
                            n |= WRITER;
                        } else {
                            retry_at = Some(i);
                        }
                    }
                    _ => break,
                }
                served.push(i);
            }
            if served.len() < q.waiters.len() {
                n |= PARKED;
            } else {
                n &= !PARKED;
            }
            // AcqRel: takes over what was released into the word and passes it on
            // through the statuses below.
            match self
                .state
                .compare_exchange_weak(s, n, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    // From the back, so that the positions still to remove stay valid.
                    for &i in served.iter().rev() {
                        let Some(w) = q.waiters.remove(i) else {
                            break;
                        };
                        if w.kind == Kind::Write {
                            q.writers -= 1;
                        }
                        let status = if retry_at == Some(i) { RETRY } else { GRANTED };
                        // Release: the waiter's Acquire load sees the lock's history.
                        w.status.store(status, Ordering::Release);
                        wake.push(w.unparker.clone());
                    }
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    fn poison_result<G>(&self, guard: G) -> LockResult<G> {
        if self.poisoned.load(Ordering::Relaxed) {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    fn try_poison_result<G>(&self, guard: Option<G>) -> TryLockResult<G> {
        match guard {
            None => Err(TryLockError::WouldBlock),
            Some(g) => self.poison_result(g).map_err(TryLockError::Poisoned),
        }
    }
}

/// Marks the lock poisoned if the thread started panicking while a write guard lived.
struct PoisonOnPanic {
    panicking: bool,
}

impl PoisonOnPanic {
    fn new() -> Self {
        Self {
            // std's `panicking` (not the shim): it reads thread-local panic state only,
            // which loom does not model.
            panicking: std::thread::panicking(),
        }
    }

    fn done(&self, raw: &RawRwLock) {
        if !self.panicking && std::thread::panicking() {
            raw.poisoned.store(true, Ordering::Relaxed);
        }
    }
}

/// A reader-writer lock with upgradable reads that spins briefly, then parks; fair
/// within [`FAIRNESS_BOUND`] and writer-preferring. See the [module docs](self).
pub struct AdaptiveRwLock<T: ?Sized> {
    raw: RawRwLock,
    data: UnsafeCell<T>,
}

// SAFETY: the lock owns a `T`; sending it sends the `T`.
unsafe impl<T: ?Sized + Send> Send for AdaptiveRwLock<T> {}
// SAFETY: through `&AdaptiveRwLock` a thread gets `&T` (shared with other readers:
// `T: Sync`) or `&mut T` under the write lock (a transfer of access: `T: Send`), as
// `std::sync::RwLock`.
unsafe impl<T: ?Sized + Send + Sync> Sync for AdaptiveRwLock<T> {}

impl<T> AdaptiveRwLock<T> {
    /// A new unlocked, unpoisoned lock around `value`. `const` (except under the
    /// test-only loom build).
    #[cfg(not(strata_loom))]
    pub const fn new(value: T) -> Self {
        Self {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// A new unlocked, unpoisoned lock around `value`.
    #[cfg(strata_loom)]
    pub fn new(value: T) -> Self {
        Self {
            raw: RawRwLock::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the value; `Err` (holding the value) if poisoned.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.raw.poisoned.load(Ordering::Relaxed);
        let value = self.data.into_inner();
        if poisoned {
            Err(PoisonError::new(value))
        } else {
            Ok(value)
        }
    }
}

impl<T: ?Sized> AdaptiveRwLock<T> {
    /// Locks for shared reading, waiting while a writer holds or has claimed the
    /// lock, or a writer is queued. `Err` (holding the guard) if poisoned.
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn read(&self) -> LockResult<AdaptiveRwLockReadGuard<'_, T>> {
        self.raw.acquire_read(Some(Wait::Forever));
        self.raw.poison_result(AdaptiveRwLockReadGuard::new(self))
    }

    /// Locks for shared reading if that needs no waiting: `WouldBlock` otherwise.
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_read(&self) -> TryLockResult<AdaptiveRwLockReadGuard<'_, T>> {
        let g = self
            .raw
            .acquire_read(None)
            .then(|| AdaptiveRwLockReadGuard::new(self));
        self.raw.try_poison_result(g)
    }

    /// Locks for shared reading, waiting at most about `timeout`: `WouldBlock` if it
    /// timed out.
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_read_for(&self, timeout: Duration) -> TryLockResult<AdaptiveRwLockReadGuard<'_, T>> {
        let g = self
            .raw
            .acquire_read(Some(Wait::for_timeout(timeout)))
            .then(|| AdaptiveRwLockReadGuard::new(self));
        self.raw.try_poison_result(g)
    }

    /// Locks exclusively, waiting for every other holder. `Err` (holding the guard)
    /// if poisoned.
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn write(&self) -> LockResult<AdaptiveRwLockWriteGuard<'_, T>> {
        self.raw.acquire_write(Some(Wait::Forever));
        self.raw.poison_result(AdaptiveRwLockWriteGuard::new(self))
    }

    /// Locks exclusively if nobody holds the lock: `WouldBlock` otherwise.
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_write(&self) -> TryLockResult<AdaptiveRwLockWriteGuard<'_, T>> {
        let g = self
            .raw
            .acquire_write(None)
            .then(|| AdaptiveRwLockWriteGuard::new(self));
        self.raw.try_poison_result(g)
    }

    /// Locks exclusively, waiting at most about `timeout`: `WouldBlock` if it timed
    /// out (a claim on the lock made while waiting is given back).
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_write_for(
        &self,
        timeout: Duration,
    ) -> TryLockResult<AdaptiveRwLockWriteGuard<'_, T>> {
        let g = self
            .raw
            .acquire_write(Some(Wait::for_timeout(timeout)))
            .then(|| AdaptiveRwLockWriteGuard::new(self));
        self.raw.try_poison_result(g)
    }

    /// Locks for an upgradable read: shared with plain readers, exclusive against
    /// writers and other upgradable readers. `Err` (holding the guard) if poisoned.
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn upgradable_read(&self) -> LockResult<AdaptiveRwLockUpgradableReadGuard<'_, T>> {
        self.raw.acquire_upgradable(Some(Wait::Forever));
        self.raw
            .poison_result(AdaptiveRwLockUpgradableReadGuard::new(self))
    }

    /// An upgradable read if that needs no waiting: `WouldBlock` otherwise.
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_upgradable_read(&self) -> TryLockResult<AdaptiveRwLockUpgradableReadGuard<'_, T>> {
        let g = self
            .raw
            .acquire_upgradable(None)
            .then(|| AdaptiveRwLockUpgradableReadGuard::new(self));
        self.raw.try_poison_result(g)
    }

    /// An upgradable read, waiting at most about `timeout`: `WouldBlock` if it timed
    /// out.
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_upgradable_read_for(
        &self,
        timeout: Duration,
    ) -> TryLockResult<AdaptiveRwLockUpgradableReadGuard<'_, T>> {
        let g = self
            .raw
            .acquire_upgradable(Some(Wait::for_timeout(timeout)))
            .then(|| AdaptiveRwLockUpgradableReadGuard::new(self));
        self.raw.try_poison_result(g)
    }

    /// Whether a writer panicked while holding the lock (and the mark was not
    /// cleared). Another thread may change it at any moment.
    pub fn is_poisoned(&self) -> bool {
        self.raw.poisoned.load(Ordering::Relaxed)
    }

    /// Clears the poison mark.
    pub fn clear_poison(&self) {
        self.raw.poisoned.store(false, Ordering::Relaxed);
    }

    /// The value, through the exclusive borrow (no locking). `Err` (holding the
    /// reference) if poisoned.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.raw.poisoned.load(Ordering::Relaxed);
        // SAFETY: `&mut self` excludes every guard and every other access.
        let r = self.data.with_mut(|p| unsafe { &mut *p });
        if poisoned {
            Err(PoisonError::new(r))
        } else {
            Ok(r)
        }
    }

    /// The data pointer, for guards (which hold the right lock mode).
    fn data_ptr(&self) -> *mut T {
        self.data.with_mut(|p| p)
    }
}

impl<T: Default> Default for AdaptiveRwLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for AdaptiveRwLock<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for AdaptiveRwLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AdaptiveRwLock");
        match self.try_read() {
            Ok(g) => d.field("data", &&*g),
            Err(TryLockError::Poisoned(e)) => d.field("data", &&*e.into_inner()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned());
        d.finish_non_exhaustive()
    }
}

/// `!Send` marker of the guards: a lock must be released by the thread that took it
/// (the lockdep hooks keep per-thread state).
type NotSend = PhantomData<*const ()>;

/// Shared read access; releases the read lock when dropped.
#[must_use = "if unused the lock is released at once"]
pub struct AdaptiveRwLockReadGuard<'a, T: ?Sized> {
    lock: &'a AdaptiveRwLock<T>,
    _not_send: NotSend,
}

// SAFETY: sharing the guard shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for AdaptiveRwLockReadGuard<'_, T> {}

impl<'a, T: ?Sized> AdaptiveRwLockReadGuard<'a, T> {
    /// The caller holds a read lock of `lock`.
    fn new(lock: &'a AdaptiveRwLock<T>) -> Self {
        Self {
            lock,
            _not_send: PhantomData,
        }
    }

    /// The guarded value for the guard's whole lifetime `'a`.
    fn get(&self) -> &'a T {
        // SAFETY: a read lock is held for `'a` (until this guard, or a mapped guard it
        // becomes, is dropped): no `&mut T` exists meanwhile.
        self.lock.data.with(|p| unsafe { &*p })
    }

    /// A guard of a part of the value (the read lock moves into it).
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedAdaptiveRwLockReadGuard<'a, U>
    where
        F: FnOnce(&T) -> &U,
    {
        let data = NonNull::from(f(s.get()));
        let s = ManuallyDrop::new(s);
        MappedAdaptiveRwLockReadGuard {
            raw: &s.lock.raw,
            data,
            _marker: PhantomData,
        }
    }

    /// Like [`map`](Self::map) when `f` may find no part: `Err` gives the guard back.
    pub fn try_map<U: ?Sized, F>(
        s: Self,
        f: F,
    ) -> Result<MappedAdaptiveRwLockReadGuard<'a, U>, Self>
    where
        F: FnOnce(&T) -> Option<&U>,
    {
        match f(s.get()) {
            Some(u) => {
                let data = NonNull::from(u);
                let s = ManuallyDrop::new(s);
                Ok(MappedAdaptiveRwLockReadGuard {
                    raw: &s.lock.raw,
                    data,
                    _marker: PhantomData,
                })
            }
            None => Err(s),
        }
    }
}

impl<T: ?Sized> Deref for AdaptiveRwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.get()
    }
}

impl<T: ?Sized> Drop for AdaptiveRwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.raw.release_read();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for AdaptiveRwLockReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access; releases the write lock when dropped (poisoning the lock if the
/// thread is panicking).
#[must_use = "if unused the lock is released at once"]
pub struct AdaptiveRwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a AdaptiveRwLock<T>,
    poison: PoisonOnPanic,
    _not_send: NotSend,
}

// SAFETY: sharing the guard shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for AdaptiveRwLockWriteGuard<'_, T> {}

impl<'a, T: ?Sized> AdaptiveRwLockWriteGuard<'a, T> {
    /// The caller holds the write lock of `lock`.
    fn new(lock: &'a AdaptiveRwLock<T>) -> Self {
        Self {
            lock,
            poison: PoisonOnPanic::new(),
            _not_send: PhantomData,
        }
    }

    /// Moves the write lock out of the guard without releasing it.
    fn into_parts(s: Self) -> (&'a AdaptiveRwLock<T>, PoisonOnPanic) {
        let s = ManuallyDrop::new(s);
        (
            s.lock,
            PoisonOnPanic {
                panicking: s.poison.panicking,
            },
        )
    }

    /// A guard of a part of the value (the write lock moves into it).
    pub fn map<U: ?Sized, F>(s: Self, f: F) -> MappedAdaptiveRwLockWriteGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        // SAFETY: the write lock is held for `'a`; `s` is not used again while the
        // reference lives (on a panic in `f` it is dropped, which only releases).
        let data = NonNull::from(f(unsafe { &mut *s.lock.data_ptr() }));
        let (lock, poison) = Self::into_parts(s);
        MappedAdaptiveRwLockWriteGuard {
            raw: &lock.raw,
            data,
            poison,
            _marker: PhantomData,
        }
    }

    /// Like [`map`](Self::map) when `f` may find no part: `Err` gives the guard back.
    pub fn try_map<U: ?Sized, F>(
        s: Self,
        f: F,
    ) -> Result<MappedAdaptiveRwLockWriteGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        // SAFETY: as in `map`; on `None` the reference is gone before `s` is returned.
        match f(unsafe { &mut *s.lock.data_ptr() }) {
            Some(u) => {
                let data = NonNull::from(u);
                let (lock, poison) = Self::into_parts(s);
                Ok(MappedAdaptiveRwLockWriteGuard {
                    raw: &lock.raw,
                    data,
                    poison,
                    _marker: PhantomData,
                })
            }
            None => Err(s),
        }
    }

    /// Turns the write lock into a read lock without letting a writer in between;
    /// queued readers enter at once.
    pub fn downgrade(s: Self) -> AdaptiveRwLockReadGuard<'a, T> {
        let (lock, poison) = Self::into_parts(s);
        poison.done(&lock.raw);
        lock.raw.downgrade_to_read();
        AdaptiveRwLockReadGuard::new(lock)
    }

    /// Turns the write lock into an upgradable read lock; queued readers enter at once.
    pub fn downgrade_to_upgradable(s: Self) -> AdaptiveRwLockUpgradableReadGuard<'a, T> {
        let (lock, poison) = Self::into_parts(s);
        poison.done(&lock.raw);
        lock.raw.downgrade_to_upgradable();
        AdaptiveRwLockUpgradableReadGuard::new(lock)
    }
}

impl<T: ?Sized> Deref for AdaptiveRwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the write lock is held while `self` lives; the `&T` borrows `self`.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T: ?Sized> DerefMut for AdaptiveRwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the write lock is held while `self` lives; the `&mut T` borrows
        // `self` mutably, so it is the only reference.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T: ?Sized> Drop for AdaptiveRwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        self.poison.done(&self.lock.raw);
        self.lock.raw.release_write();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for AdaptiveRwLockWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// An upgradable read: shared access that excludes writers and other upgradable
/// readers, and that can become the write lock
/// ([`upgrade`](Self::upgrade)) with no writer in between. Released when dropped.
#[must_use = "if unused the lock is released at once"]
pub struct AdaptiveRwLockUpgradableReadGuard<'a, T: ?Sized> {
    lock: &'a AdaptiveRwLock<T>,
    _not_send: NotSend,
}

// SAFETY: sharing the guard shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for AdaptiveRwLockUpgradableReadGuard<'_, T> {}

impl<'a, T: ?Sized> AdaptiveRwLockUpgradableReadGuard<'a, T> {
    /// The caller holds the upgradable lock of `lock`.
    fn new(lock: &'a AdaptiveRwLock<T>) -> Self {
        Self {
            lock,
            _not_send: PhantomData,
        }
    }

    fn into_lock(s: Self) -> &'a AdaptiveRwLock<T> {
        ManuallyDrop::new(s).lock
    }

    /// Becomes the write lock: blocks new readers at once, then waits for the readers
    /// inside to leave. Cannot deadlock against another upgrade (there is only one
    /// upgradable holder). It can deadlock against a reader of this lock that waits
    /// for a lock this thread took after its upgradable read; the `lockdep` feature
    /// does not see that case (an upgrade records no ordering edge).
    pub fn upgrade(s: Self) -> AdaptiveRwLockWriteGuard<'a, T> {
        let lock = Self::into_lock(s);
        lock.raw.upgrade(Some(Wait::Forever));
        AdaptiveRwLockWriteGuard::new(lock)
    }

    /// Becomes the write lock if no plain reader is inside; `Err` gives the guard back.
    pub fn try_upgrade(s: Self) -> Result<AdaptiveRwLockWriteGuard<'a, T>, Self> {
        if s.lock.raw.upgrade(None) {
            Ok(AdaptiveRwLockWriteGuard::new(Self::into_lock(s)))
        } else {
            Err(s)
        }
    }

    /// Like [`upgrade`](Self::upgrade), waiting at most about `timeout` for the
    /// readers to leave; `Err` gives the upgradable guard back (readers held back
    /// meanwhile are let in).
    pub fn try_upgrade_for(
        s: Self,
        timeout: Duration,
    ) -> Result<AdaptiveRwLockWriteGuard<'a, T>, Self> {
        if s.lock.raw.upgrade(Some(Wait::for_timeout(timeout))) {
            Ok(AdaptiveRwLockWriteGuard::new(Self::into_lock(s)))
        } else {
            Err(s)
        }
    }

    /// Becomes a plain read lock (letting another upgradable reader or a writer queue
    /// behind it).
    pub fn downgrade(s: Self) -> AdaptiveRwLockReadGuard<'a, T> {
        let lock = Self::into_lock(s);
        lock.raw.downgrade_upgradable();
        AdaptiveRwLockReadGuard::new(lock)
    }
}

impl<T: ?Sized> Deref for AdaptiveRwLockUpgradableReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the upgradable lock excludes writers while `self` lives.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T: ?Sized> Drop for AdaptiveRwLockUpgradableReadGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.raw.release_upgradable();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for AdaptiveRwLockUpgradableReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A read guard of a part of the locked value, from
/// [`AdaptiveRwLockReadGuard::map`]; releases the read lock when dropped.
#[must_use = "if unused the lock is released at once"]
pub struct MappedAdaptiveRwLockReadGuard<'a, U: ?Sized> {
    raw: &'a RawRwLock,
    data: NonNull<U>,
    _marker: PhantomData<(&'a U, NotSend)>,
}

// SAFETY: sharing the guard shares `&U`.
unsafe impl<U: ?Sized + Sync> Sync for MappedAdaptiveRwLockReadGuard<'_, U> {}

impl<'a, U: ?Sized> MappedAdaptiveRwLockReadGuard<'a, U> {
    /// Maps further.
    pub fn map<V: ?Sized, F>(s: Self, f: F) -> MappedAdaptiveRwLockReadGuard<'a, V>
    where
        F: FnOnce(&U) -> &V,
    {
        // SAFETY: the read lock is held for `'a` and `data` points into the value.
        let data = NonNull::from(f(unsafe { s.data.as_ref() }));
        let s = ManuallyDrop::new(s);
        MappedAdaptiveRwLockReadGuard {
            raw: s.raw,
            data,
            _marker: PhantomData,
        }
    }

    /// Maps further if `f` finds a part; `Err` gives the guard back.
    pub fn try_map<V: ?Sized, F>(
        s: Self,
        f: F,
    ) -> Result<MappedAdaptiveRwLockReadGuard<'a, V>, Self>
    where
        F: FnOnce(&U) -> Option<&V>,
    {
        // SAFETY: as in `map`.
        match f(unsafe { s.data.as_ref() }) {
            Some(v) => {
                let data = NonNull::from(v);
                let s = ManuallyDrop::new(s);
                Ok(MappedAdaptiveRwLockReadGuard {
                    raw: s.raw,
                    data,
                    _marker: PhantomData,
                })
            }
            None => Err(s),
        }
    }
}

impl<U: ?Sized> Deref for MappedAdaptiveRwLockReadGuard<'_, U> {
    type Target = U;
    fn deref(&self) -> &U {
        // SAFETY: the read lock is held while `self` lives; `data` points into the
        // locked value.
        unsafe { self.data.as_ref() }
    }
}

impl<U: ?Sized> Drop for MappedAdaptiveRwLockReadGuard<'_, U> {
    fn drop(&mut self) {
        self.raw.release_read();
    }
}

impl<U: ?Sized + fmt::Debug> fmt::Debug for MappedAdaptiveRwLockReadGuard<'_, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// A write guard of a part of the locked value, from
/// [`AdaptiveRwLockWriteGuard::map`]; releases the write lock when dropped (poisoning
/// the lock if the thread is panicking).
#[must_use = "if unused the lock is released at once"]
pub struct MappedAdaptiveRwLockWriteGuard<'a, U: ?Sized> {
    raw: &'a RawRwLock,
    data: NonNull<U>,
    poison: PoisonOnPanic,
    _marker: PhantomData<(&'a mut U, NotSend)>,
}

// SAFETY: sharing the guard shares `&U`.
unsafe impl<U: ?Sized + Sync> Sync for MappedAdaptiveRwLockWriteGuard<'_, U> {}

impl<'a, U: ?Sized> MappedAdaptiveRwLockWriteGuard<'a, U> {
    fn into_parts(s: Self) -> (&'a RawRwLock, NonNull<U>, PoisonOnPanic) {
        let s = ManuallyDrop::new(s);
        (
            s.raw,
            s.data,
            PoisonOnPanic {
                panicking: s.poison.panicking,
            },
        )
    }

    /// Maps further.
    pub fn map<V: ?Sized, F>(mut s: Self, f: F) -> MappedAdaptiveRwLockWriteGuard<'a, V>
    where
        F: FnOnce(&mut U) -> &mut V,
    {
        // SAFETY: the write lock is held for `'a`; `s` is not used while the reference
        // lives.
        let data = NonNull::from(f(unsafe { s.data.as_mut() }));
        let (raw, _, poison) = Self::into_parts(s);
        MappedAdaptiveRwLockWriteGuard {
            raw,
            data,
            poison,
            _marker: PhantomData,
        }
    }

    /// Maps further if `f` finds a part; `Err` gives the guard back.
    pub fn try_map<V: ?Sized, F>(
        mut s: Self,
        f: F,
    ) -> Result<MappedAdaptiveRwLockWriteGuard<'a, V>, Self>
    where
        F: FnOnce(&mut U) -> Option<&mut V>,
    {
        // SAFETY: as in `map`; the reference is gone before `s` is returned.
        let data = f(unsafe { s.data.as_mut() }).map(NonNull::from);
        match data {
            Some(data) => {
                let (raw, _, poison) = Self::into_parts(s);
                Ok(MappedAdaptiveRwLockWriteGuard {
                    raw,
                    data,
                    poison,
                    _marker: PhantomData,
                })
            }
            None => Err(s),
        }
    }
}

impl<U: ?Sized> Deref for MappedAdaptiveRwLockWriteGuard<'_, U> {
    type Target = U;
    fn deref(&self) -> &U {
        // SAFETY: the write lock is held while `self` lives.
        unsafe { self.data.as_ref() }
    }
}

impl<U: ?Sized> DerefMut for MappedAdaptiveRwLockWriteGuard<'_, U> {
    fn deref_mut(&mut self) -> &mut U {
        // SAFETY: the write lock is held while `self` lives; `&mut self` makes this
        // the only reference.
        unsafe { self.data.as_mut() }
    }
}

impl<U: ?Sized> Drop for MappedAdaptiveRwLockWriteGuard<'_, U> {
    fn drop(&mut self) {
        self.poison.done(self.raw);
        self.raw.release_write();
    }
}

impl<U: ?Sized + fmt::Debug> fmt::Debug for MappedAdaptiveRwLockWriteGuard<'_, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
impl<T: ?Sized> AdaptiveRwLock<T> {
    /// Test-only: sets the fairness bound of this lock (`Duration::ZERO`: every
    /// dispatch hands a writer the lock; `Duration::MAX`: never).
    pub(crate) fn set_fairness_bound(&self, bound: Duration) {
        self.raw.lock_queue().fairness = bound;
    }

    /// Test-only: the raw state word and the queue length.
    pub(crate) fn debug_state(&self) -> (usize, usize) {
        let q = self.raw.lock_queue();
        (self.raw.state.load(Ordering::SeqCst), q.waiters.len())
    }
}

#[cfg(test)]
#[path = "rwlock_tests.rs"]
mod tests;
