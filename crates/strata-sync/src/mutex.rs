//! [`AdaptiveMutex`]: a barging mutex that spins briefly, then parks in a per-lock FIFO
//! queue, with eventual fairness (a waiter that has waited too long gets the lock
//! handed to it) and std's poisoning.
//!
//! # Algorithm
//!
//! The lock is one byte of state, a FIFO queue of waiters and a poison flag. The state
//! has three bits:
//!
//! * `LOCKED`: somebody owns the lock.
//! * `PARKED`: the waiter queue is non-empty. It changes only while `QLOCK` is held, so
//!   `PARKED` set ⇔ the queue is non-empty, outside a `QLOCK` critical section.
//! * `QLOCK`: the *queue lock*, a tiny spin lock that protects the queue (its head and
//!   tail pointers and every queued node's fields). It is held for a few instructions
//!   (a push, a pop, an unlink), never while sleeping.
//!
//! **Fast paths** (inlined): `lock` is one `compare_exchange(0 → LOCKED)`; `unlock`
//! is one `compare_exchange(LOCKED → 0)`. Anything else goes out of line.
//!
//! **Contended lock** (`lock_slow`, `#[cold]`): while `LOCKED` is clear, anybody may
//! take the lock by setting it (*barging*: an arriving thread can overtake the queue,
//! which keeps the lock busy while a woken waiter is still being scheduled). While it
//! is set and nobody is parked, the thread spins with bounded exponential backoff
//! ([`SPIN_ROUNDS`] rounds of [`Backoff::spin`], 3 spin hints in all), then yields
//! its core [`YIELD_ROUNDS`] times (under oversubscription the yield often lets the
//! preempted holder run and release; measured, this beat both parking sooner and
//! spinning longer at 2–16 threads on 2 cores). Then it takes `QLOCK` *while `LOCKED` is set*,
//! pushes a node that lives on its own stack (with the [`Unparker`] of a [`Parker`]
//! created for this acquisition), sets `PARKED` and releases `QLOCK` in one store, and
//! parks until its node says it was dequeued.
//!
//! **Contended unlock** (`unlock_slow`, `#[cold]`): the holder takes `QLOCK`, pops the
//! head waiter, takes its unparker out of the node, and then either
//!
//! * **hands the lock off** — if the waiter has waited at least [`FAIR_BOUND`] since it
//!   first queued, or on [`AdaptiveMutexGuard::unlock_fair`]: `LOCKED` stays set and the
//!   node is marked `HANDOFF`, so ownership moves to the waiter and no barger can take
//!   the lock in between; or
//! * **releases and wakes** — the node is marked `WOKEN` and `LOCKED` is cleared; the
//!   woken thread competes like a newcomer. If it loses, it queues again *at the head*
//!   (keeping its first-queued time), so it is the next to be woken and its wait is
//!   bounded: once it is past [`FAIR_BOUND`] the next unlock hands the lock to it.
//!
//! The node's state is the last thing the waker touches in the node; the unparker is
//! owned by the waker by then (and keeps the parker's state word alive), so a waiter
//! that sees its node dequeued may return and free the node at once.
//!
//! **Why no wake-up is lost.** A waiter queues only while `LOCKED` is set, and `LOCKED`
//! cannot be cleared while somebody else holds `QLOCK` (the fast unlock needs the state
//! to be exactly `LOCKED`; the slow unlock takes `QLOCK` first). So when the waiter
//! releases `QLOCK` with `PARKED` set, the lock is still held, and its holder's unlock
//! fails the fast path and wakes the head of the queue. The invariant kept is: *if the
//! queue is non-empty, the lock is held or a woken waiter is on its way to compete*; a
//! woken waiter either takes the lock (and its unlock wakes the next) or queues again
//! behind a holder (whose unlock wakes it).
//!
//! **Timeouts.** A timed waiter whose park times out takes `QLOCK` and looks at its
//! node: still `WAITING` — it unlinks itself (clearing `PARKED` if the queue empties)
//! and reports the timeout; `HANDOFF` — a handoff raced the timeout, it owns the lock
//! and returns it as acquired; `WOKEN` — it was woken to compete, so it makes one last
//! attempt (taking the lock if it is free, in which case it returns it as acquired;
//! if the lock is held, that holder's unlock will wake the next waiter), keeping the
//! invariant above.
//!
//! # Progress
//!
//! Blocking. `try_lock` never waits (it retries its CAS only while the state word
//! changes under it and the lock stays free). `lock` blocks while another thread holds
//! the lock, and no queued waiter starves, provided every holder eventually unlocks:
//! new waiters join the tail, a waiter woken to compete that loses goes back to the
//! *head* keeping its first-queued time, every unlock that finds waiters dequeues the
//! head, and the head is handed the lock once it has waited [`FAIR_BOUND`] since it
//! first queued. The queue is FIFO for first arrivals; two woken waiters that both
//! lose can swap places at the head, but each keeps its first-queued time, so each is
//! handed the lock at its next turn at the head once past the bound. No waiter that
//! queued after a given waiter gets ahead of it for good, and a thread spins and
//! yields at most [`SPIN_ROUNDS`] + [`YIELD_ROUNDS`] rounds before it queues. Between
//! handoffs the lock is unfair (barging), which is what keeps it fast under
//! contention. `try_lock_for`/`try_lock_until` block at most until the
//! deadline, plus the time to take `QLOCK` and unlink (a few instructions of another
//! thread).
//!
//! A contended `lock` that parks allocates one [`Parker`] (one small `Arc`) for the
//! acquisition. The fast paths of `lock`, `try_lock` and unlock, and a contended
//! `lock` won while spinning, allocate nothing and read no clock (`try_lock_for` reads
//! it once for its deadline; an unlock that finds waiters reads it for the fairness
//! bound).
//!
//! # Linearization points
//!
//! An acquisition linearizes at the successful CAS that sets `LOCKED` (fast path,
//! barging, `try_lock`) or, for a handoff, at the unlocker's store that releases
//! `QLOCK` with `LOCKED` still set. A release linearizes at the store or CAS that clears
//! `LOCKED`, or at that handoff store.
//!
//! # Poisoning
//!
//! As std's `Mutex`: a guard dropped while its thread panics (and that was not taken
//! during a panic) poisons the mutex; `lock`, `try_lock`, `into_inner`, `get_mut`
//! report it through [`PoisonError`] (which still gives access to the data), and
//! [`AdaptiveMutex::clear_poison`] clears it. A guard mapped with
//! [`AdaptiveMutexGuard::map`] poisons the same way.
//!
//! ```
//! use std::time::Duration;
//! use strata_sync::mutex::{AdaptiveMutex, AdaptiveMutexGuard};
//!
//! static COUNTER: AdaptiveMutex<u64> = AdaptiveMutex::new(0);
//!
//! let threads: Vec<_> = (0..4)
//!     .map(|_| std::thread::spawn(|| {
//!         for _ in 0..1000 {
//!             *COUNTER.lock().unwrap() += 1;
//!         }
//!     }))
//!     .collect();
//! for t in threads {
//!     t.join().unwrap();
//! }
//! assert_eq!(*COUNTER.lock().unwrap(), 4000);
//!
//! let pair = AdaptiveMutex::new((1u32, String::from("a")));
//! let guard = pair.try_lock_for(Duration::from_millis(10)).unwrap();
//! let mut name = AdaptiveMutexGuard::map(guard, |p| &mut p.1);
//! name.push('b');
//! drop(name);
//! assert_eq!(pair.into_inner().unwrap().1, "ab");
//! ```

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use strata_primitives::sync::{LockResult, PoisonError, TryLockError, TryLockResult};
use strata_primitives::{Backoff, LOOM, Parker, Unparker, thread};

/// The eventual-fairness bound: an unlock hands the lock directly to the head waiter
/// once that waiter has been waiting (since it first queued) for at least this long.
///
/// 1 ms: long enough that barging (the fast, unfair mode) serves nearly every handover
/// under ordinary contention, short enough that no thread waits more than about a
/// millisecond per waiter ahead of it. Under loom, which has no clock, the bound is
/// "woken once already and lost the race", so the models explore both modes.
pub const FAIR_BOUND: Duration = Duration::from_millis(1);

/// Rounds of [`Backoff::spin`] (1, then 2 spin hints) a contended `lock` spends while
/// nobody is parked, before it yields. None under loom, so the models reach the
/// parking protocol at once.
///
/// Measured on 2 cores (`lock/counter`, `lock/array64` in strata-bench, quick runs):
/// 6 rounds of spinning and no yield ran 0.59–0.78× parking_lot from 2 threads; 2
/// rounds and 7 yields 0.96–1.35× (5 rounds and 7 yields was slower than both in
/// `lock/counter`). The full run is in the README.
pub const SPIN_ROUNDS: u32 = if LOOM { 0 } else { 2 };

/// Rounds of `yield_now` after the spinning, while nobody is parked, before the thread
/// queues and parks. None under loom.
pub const YIELD_ROUNDS: u32 = if LOOM { 0 } else { 7 };

/// Somebody owns the lock.
const LOCKED: u8 = 1;
/// The waiter queue is non-empty (changed only under `QLOCK`).
const PARKED: u8 = 2;
/// The queue lock, protecting the queue and the queued nodes.
const QLOCK: u8 = 4;

/// A queued node's state: in the queue (or about to be).
const WAITING: u8 = 0;
/// Dequeued by an unlock that released the lock: compete for it.
const WOKEN: u8 = 1;
/// Dequeued by an unlock that handed the lock over: the waiter owns it.
const HANDOFF: u8 = 2;

/// The ordering of the stores that give the lock away (the unlock CAS and store, and
/// the handoff mark): `Release`, so the next owner's `Acquire` sees the critical
/// section. `Relaxed` under the test-only `--cfg strata_weaken`, which the loom models
/// of `mutex_tests.rs` detect as a data race on the protected value.
const fn release_ordering() -> Ordering {
    if cfg!(strata_weaken) {
        Ordering::Relaxed
    } else {
        Ordering::Release
    }
}

/// A waiter's node, on the waiting thread's stack while it is queued.
///
/// `next` and `unparker` are read and written only under `QLOCK`, or by the owning
/// thread while the node is not queued. `state` is written by the waker under `QLOCK`
/// (its last access to the node) and read by the owner.
struct Waiter {
    next: UnsafeCell<*const Waiter>,
    unparker: UnsafeCell<Option<Unparker>>,
    /// How many times this thread was woken to compete and lost the race.
    rounds: UnsafeCell<u32>,
    /// When the thread first queued in this acquisition (for [`FAIR_BOUND`]).
    #[cfg(not(strata_loom))]
    since: UnsafeCell<Option<Instant>>,
    state: AtomicU8,
}

impl Waiter {
    fn new() -> Self {
        Self {
            next: UnsafeCell::new(ptr::null()),
            unparker: UnsafeCell::new(None),
            rounds: UnsafeCell::new(0),
            #[cfg(not(strata_loom))]
            since: UnsafeCell::new(None),
            state: AtomicU8::new(WAITING),
        }
    }
}

/// The FIFO queue of waiters, protected by `QLOCK`.
struct Queue {
    head: *const Waiter,
    tail: *const Waiter,
}

/// The lock itself, without the data (a mapped guard keeps only this).
struct RawMutex {
    state: AtomicU8,
    poisoned: AtomicBool,
    queue: UnsafeCell<Queue>,
    /// The lock's node in the runtime lock-order validator (feature `lockdep` only).
    #[cfg(feature = "lockdep")]
    class: crate::lockdep::LockClass,
}

impl RawMutex {
    #[cfg(not(strata_loom))]
    const fn new() -> Self {
        Self {
            state: AtomicU8::new(0),
            poisoned: AtomicBool::new(false),
            queue: UnsafeCell::new(Queue {
                head: ptr::null(),
                tail: ptr::null(),
            }),
            #[cfg(feature = "lockdep")]
            class: crate::lockdep::LockClass::new(),
        }
    }

    #[cfg(strata_loom)]
    fn new() -> Self {
        Self {
            state: AtomicU8::new(0),
            poisoned: AtomicBool::new(false),
            queue: UnsafeCell::new(Queue {
                head: ptr::null(),
                tail: ptr::null(),
            }),
            #[cfg(feature = "lockdep")]
            class: crate::lockdep::LockClass::new(),
        }
    }

    /// Takes the lock if it is free. Returns `true` if taken.
    #[inline]
    fn try_acquire(&self) -> bool {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & LOCKED != 0 {
                return false;
            }
            // Acquire: pairs with the Release of the unlock that cleared LOCKED, so
            // the previous critical section happens-before ours.
            match self.state.compare_exchange_weak(
                s,
                s | LOCKED,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => s = now,
            }
        }
    }

    /// Takes the lock, waiting until `deadline` (forever if `None`). Returns `true` if
    /// taken.
    #[inline]
    fn acquire(&self, deadline: Option<Instant>) -> bool {
        // Acquire: as in `try_acquire`.
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            || self.acquire_slow(deadline)
    }

    /// Releases the lock; with `fair`, hands it to the head waiter if there is one.
    #[inline]
    fn release(&self, fair: bool) {
        #[cfg(feature = "lockdep")]
        self.class.release();
        // release_ordering() (Release): publishes the critical section to the next
        // owner's Acquire CAS.
        if fair
            || self
                .state
                .compare_exchange(LOCKED, 0, release_ordering(), Ordering::Relaxed)
                .is_err()
        {
            self.release_slow(fair);
        }
    }

    /// Takes `QLOCK` (whatever the other bits are) and returns the state it set.
    fn lock_queue(&self) -> u8 {
        let backoff = Backoff::new();
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if s & QLOCK != 0 {
                backoff.snooze();
                s = self.state.load(Ordering::Relaxed);
                continue;
            }
            // Acquire: pairs with the Release that released QLOCK last, so the queue
            // and the nodes as the last QLOCK holder left them are visible.
            match self.state.compare_exchange_weak(
                s,
                s | QLOCK,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => return s | QLOCK,
                Err(now) => s = now,
            }
        }
    }

    /// Runs `f` on the queue.
    ///
    /// # Safety
    ///
    /// The caller holds `QLOCK`.
    unsafe fn with_queue<R>(&self, f: impl FnOnce(&mut Queue) -> R) -> R {
        // SAFETY: QLOCK is held (caller contract), so no other thread accesses the
        // queue; the `&mut` does not escape `f`.
        self.queue.with_mut(|q| f(unsafe { &mut *q }))
    }

    #[cold]
    #[inline(never)]
    fn acquire_slow(&self, deadline: Option<Instant>) -> bool {
        // Created on the first park only: a thread that wins while spinning allocates
        // nothing.
        let mut parker: Option<Parker> = None;
        // This round's unparker for the node, made before QLOCK is taken.
        let mut unparker: Option<Unparker> = None;
        let node = Waiter::new();
        let mut requeue = false;
        loop {
            // Phase 1: barge if the lock is free; spin while it is held and nobody
            // parks; then take QLOCK while LOCKED is set.
            let backoff = Backoff::new();
            let mut spins = 0;
            let s = loop {
                let s = self.state.load(Ordering::Relaxed);
                if s & LOCKED == 0 {
                    // Acquire: as in `try_acquire`.
                    if self
                        .state
                        .compare_exchange_weak(s, s | LOCKED, Ordering::Acquire, Ordering::Relaxed)
                        .is_ok()
                    {
                        return true;
                    }
                    continue;
                }
                if s & PARKED == 0 && !requeue && spins < SPIN_ROUNDS + YIELD_ROUNDS {
                    spins += 1;
                    if spins <= SPIN_ROUNDS {
                        backoff.spin();
                    } else {
                        thread::yield_now();
                    }
                    continue;
                }
                if let Some(d) = deadline
                    && !LOOM
                    && Instant::now() >= d
                {
                    return false;
                }
                if s & QLOCK != 0 {
                    backoff.snooze();
                    continue;
                }
                // Everything that can allocate, read the clock or fail happens before
                // QLOCK is taken, so that QLOCK is held for a few instructions.
                if unparker.is_none() {
                    unparker = Some(parker.get_or_insert_with(Parker::new).unparker());
                }
                #[cfg(not(strata_loom))]
                // SAFETY: the node is not queued (fresh, or dequeued and marked, after
                // which the waker no longer touches it): only this thread accesses it.
                unsafe {
                    node.since.with_mut(|t| {
                        if (*t).is_none() {
                            *t = Some(Instant::now());
                        }
                    });
                }
                // Acquire: as in `lock_queue`.
                if self
                    .state
                    .compare_exchange_weak(s, s | QLOCK, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
                {
                    break s;
                }
            };
            // Phase 2: queue. We hold QLOCK and LOCKED is set; nobody else can change
            // the state until we release QLOCK (bargers need LOCKED clear, the fast
            // unlock needs the state to be exactly LOCKED, everyone else needs QLOCK).
            let Some(parker) = parker.as_ref() else {
                unreachable!("the parker is created before QLOCK is taken")
            };
            let me: *const Waiter = &node;
            // SAFETY: the node is not queued (a fresh node, or one that a waker
            // dequeued and marked, after which the waker no longer touches it), so
            // this thread is the only one accessing its fields.
            unsafe { node.unparker.with_mut(|u| *u = unparker.take()) };
            // Relaxed: the node is published to wakers by the Release store that
            // releases QLOCK below.
            node.state.store(WAITING, Ordering::Relaxed);
            // SAFETY: we hold QLOCK; the queued nodes are live (a node's owner stays
            // in `acquire_slow` until its node is dequeued); `me` outlives its time in
            // the queue because this function does not return while it is queued.
            unsafe {
                self.with_queue(|q| {
                    if requeue {
                        // Lost the race after being woken: back to the head.
                        node.next.with_mut(|n| *n = q.head);
                        if q.tail.is_null() {
                            q.tail = me;
                        }
                        q.head = me;
                    } else {
                        node.next.with_mut(|n| *n = ptr::null());
                        if q.tail.is_null() {
                            q.head = me;
                        } else {
                            (*q.tail).next.with_mut(|n| *n = me);
                        }
                        q.tail = me;
                    }
                });
            }
            // Release: publishes the node and the queue to the next QLOCK holder.
            self.state.store(s | PARKED, Ordering::Release);

            // Phase 3: park until dequeued.
            loop {
                // Acquire: pairs with the waker's store of the mark (see
                // `release_slow`); the parker's token also orders it.
                match node.state.load(Ordering::Acquire) {
                    WAITING => {}
                    HANDOFF => return true,
                    _woken => break,
                }
                match deadline {
                    None => parker.park(),
                    Some(d) => {
                        let left = d.saturating_duration_since(Instant::now());
                        if !parker.park_timeout(left)
                            && node.state.load(Ordering::Acquire) == WAITING
                        {
                            return self.cancel(&node);
                        }
                    }
                }
            }
            // Woken to compete.
            // SAFETY: the node is dequeued; only this thread accesses it now.
            unsafe { node.rounds.with_mut(|r| *r += 1) };
            requeue = true;
        }
    }

    /// A timed waiter gives up: unlinks its node if it is still queued. Returns `true`
    /// if the waiter owns the lock after all (a handoff raced the timeout, or it was
    /// woken and the lock was still free).
    #[cold]
    fn cancel(&self, node: &Waiter) -> bool {
        self.lock_queue();
        // Relaxed: wakers write the mark under QLOCK, which we now hold (Acquire).
        match node.state.load(Ordering::Relaxed) {
            WAITING => {
                let me: *const Waiter = node;
                // SAFETY: we hold QLOCK and every queued node is live (see
                // `acquire_slow`).
                let empty = unsafe {
                    self.with_queue(|q| {
                        let next = node.next.with(|n| *n);
                        if q.head == me {
                            q.head = next;
                        } else {
                            let mut prev = q.head;
                            loop {
                                debug_assert!(!prev.is_null(), "a WAITING node is queued");
                                let pn = (*prev).next.with(|n| *n);
                                if pn == me {
                                    (*prev).next.with_mut(|n| *n = next);
                                    break;
                                }
                                prev = pn;
                            }
                            if q.tail == me {
                                q.tail = prev;
                            }
                        }
                        if q.head.is_null() {
                            q.tail = ptr::null();
                        }
                        // Drop our unparker now, under QLOCK like every access.
                        node.unparker.with_mut(|u| *u = None);
                        q.head.is_null()
                    })
                };
                // Release: publishes the queue to the next QLOCK holder. While we held
                // QLOCK only bargers could change the state (setting LOCKED), hence
                // fetch_and rather than a store.
                let clear = if empty { QLOCK | PARKED } else { QLOCK };
                self.state.fetch_and(!clear, Ordering::Release);
                false
            }
            HANDOFF => {
                // Release: as above (nothing to publish but the QLOCK hand-back).
                self.state.fetch_and(!QLOCK, Ordering::Release);
                true
            }
            _woken => {
                self.state.fetch_and(!QLOCK, Ordering::Release);
                // One last attempt, so the wake-up is not dropped: if the lock is
                // held, its holder's unlock wakes the next waiter.
                self.try_acquire()
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn release_slow(&self, fair: bool) {
        // The clock is read before QLOCK is taken, to keep QLOCK's critical section
        // to a few instructions (only the fairness check needs it).
        #[cfg(not(strata_loom))]
        let now = (!fair).then(Instant::now);
        #[cfg(strata_loom)]
        let now: Option<Instant> = None;
        let backoff = Backoff::new();
        let mut s = self.state.load(Ordering::Relaxed);
        let s = loop {
            debug_assert!(s & LOCKED != 0, "unlock of an unlocked AdaptiveMutex");
            if s == LOCKED {
                // Nobody parked: a plain release (see `release`).
                match self.state.compare_exchange_weak(
                    LOCKED,
                    0,
                    release_ordering(),
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return,
                    Err(now) => s = now,
                }
                continue;
            }
            if s & QLOCK != 0 {
                backoff.snooze();
                s = self.state.load(Ordering::Relaxed);
                continue;
            }
            // Acquire: as in `lock_queue`.
            match self.state.compare_exchange_weak(
                s,
                s | QLOCK,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => break s,
                Err(now) => s = now,
            }
        };
        debug_assert_eq!(s, LOCKED | PARKED);
        // We hold LOCKED and QLOCK: the state is ours until we store it.
        // SAFETY: we hold QLOCK; PARKED was set, so the queue is non-empty, and its
        // nodes are live (their owners wait in `acquire_slow` until dequeued).
        let (head, unparker, rest) = unsafe {
            self.with_queue(|q| {
                let head = q.head;
                debug_assert!(!head.is_null());
                q.head = (*head).next.with(|n| *n);
                if q.head.is_null() {
                    q.tail = ptr::null();
                }
                let unparker = (*head).unparker.with_mut(|u| (*u).take());
                let rest = if q.head.is_null() { 0 } else { PARKED };
                (head, unparker, rest)
            })
        };
        // SAFETY: `head` is live until we store its mark (its owner does not return
        // before it sees a mark other than WAITING), and we hold QLOCK.
        let handoff = fair || unsafe { Self::waited_past_bound(&*head, now) };
        if handoff {
            // The last access to the node: once the mark is visible its owner may
            // return. release_ordering() (Release): publishes the critical section
            // to the new owner, which reads the mark with Acquire.
            // SAFETY: as above.
            unsafe { (*head).state.store(HANDOFF, release_ordering()) };
            // LOCKED stays set: ownership moved. Release: publishes the queue.
            self.state.store(LOCKED | rest, Ordering::Release);
        } else {
            // SAFETY: as above. Release: the woken thread reads the mark with Acquire
            // (it carries nothing but the mark itself).
            unsafe { (*head).state.store(WOKEN, Ordering::Release) };
            // Releases the lock and QLOCK at once. release_ordering() (Release):
            // publishes the critical section and the queue to the next owner or QLOCK
            // holder.
            self.state.store(rest, release_ordering());
        }
        if let Some(u) = unparker {
            u.unpark();
        }
    }

    /// Had the waiter waited past [`FAIR_BOUND`] at `now` (read before `QLOCK` was
    /// taken; `None` counts as not yet)? (Under loom: has it lost a race after being
    /// woken?)
    ///
    /// # Safety
    ///
    /// The caller holds `QLOCK` and `w` is a live node it just dequeued.
    unsafe fn waited_past_bound(w: &Waiter, now: Option<Instant>) -> bool {
        #[cfg(strata_loom)]
        {
            let _ = now;
            // SAFETY: caller contract (the owner writes `rounds` only while its node
            // is not queued, before queueing under QLOCK).
            unsafe { w.rounds.with(|r| *r) >= 1 }
        }
        #[cfg(not(strata_loom))]
        {
            // SAFETY: as above, for `since`.
            unsafe {
                w.since.with(|t| match (*t, now) {
                    (Some(since), Some(now)) => now.saturating_duration_since(since) >= FAIR_BOUND,
                    _ => false,
                })
            }
        }
    }

    #[inline]
    fn is_poisoned(&self) -> bool {
        // Relaxed: the flag is a hint about other threads' past panics; data is
        // ordered by the lock itself.
        self.poisoned.load(Ordering::Relaxed)
    }
}

/// A poison check taken at acquisition: was the thread already panicking?
#[derive(Clone, Copy)]
struct PoisonOnPanic {
    panicking: bool,
}

impl PoisonOnPanic {
    #[inline]
    fn new() -> Self {
        Self {
            panicking: std::thread::panicking(),
        }
    }

    /// Poisons `raw` if the thread started panicking while the guard was held.
    #[inline]
    fn done(self, raw: &RawMutex) {
        if !self.panicking && std::thread::panicking() {
            raw.poisoned.store(true, Ordering::Relaxed);
        }
    }
}

/// A mutual-exclusion lock that spins briefly, then parks its waiters in a FIFO queue,
/// with eventual fairness and std's poisoning. See the [module docs](self) for the
/// algorithm.
///
/// The API is std's `Mutex`'s, plus [`try_lock_for`](Self::try_lock_for) /
/// [`try_lock_until`](Self::try_lock_until), guard mapping
/// ([`AdaptiveMutexGuard::map`]) and [`AdaptiveMutexGuard::unlock_fair`].
///
/// ```
/// use strata_sync::mutex::AdaptiveMutex;
/// use std::sync::TryLockError;
///
/// let m = AdaptiveMutex::new(vec![1, 2]);
/// let mut g = m.lock().unwrap();
/// g.push(3);
/// assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
/// drop(g);
/// assert_eq!(m.lock().unwrap().len(), 3);
/// ```
pub struct AdaptiveMutex<T: ?Sized> {
    raw: RawMutex,
    data: UnsafeCell<T>,
}

// SAFETY: the mutex owns a `T` and gives it to one thread at a time, so it can move
// between threads when `T` can; the queue's raw pointers are only followed under
// QLOCK while the nodes' owners wait (same bounds as std's `Mutex`).
unsafe impl<T: ?Sized + Send> Send for AdaptiveMutex<T> {}
// SAFETY: shared access hands out `&mut T` to one thread at a time (mutual exclusion),
// so `T: Send` suffices, as for std's `Mutex`.
unsafe impl<T: ?Sized + Send> Sync for AdaptiveMutex<T> {}

// Poisoning reports a panic that interrupted a critical section, so (as std's
// `Mutex`) the lock can be used across `catch_unwind`.
impl<T: ?Sized> std::panic::UnwindSafe for AdaptiveMutex<T> {}
impl<T: ?Sized> std::panic::RefUnwindSafe for AdaptiveMutex<T> {}

impl<T> AdaptiveMutex<T> {
    /// An unlocked, unpoisoned mutex holding `value`.
    #[cfg(not(strata_loom))]
    pub const fn new(value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// An unlocked, unpoisoned mutex holding `value` (not `const` under loom, whose
    /// atomics are not).
    #[cfg(strata_loom)]
    pub fn new(value: T) -> Self {
        Self {
            raw: RawMutex::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the value; `Err` (still holding the value) if
    /// it is poisoned.
    pub fn into_inner(self) -> LockResult<T> {
        let poisoned = self.raw.is_poisoned();
        let value = self.data.into_inner();
        if poisoned {
            Err(PoisonError::new(value))
        } else {
            Ok(value)
        }
    }
}

impl<T: ?Sized> AdaptiveMutex<T> {
    /// Blocks until the lock is acquired. `Err` (still holding the guard) if the
    /// mutex is poisoned.
    ///
    /// Locking a mutex the current thread already holds deadlocks (as std's may).
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock(&self) -> LockResult<AdaptiveMutexGuard<'_, T>> {
        #[cfg(feature = "lockdep")]
        self.raw.class.before_acquire();
        let taken = self.raw.acquire(None);
        debug_assert!(taken);
        self.acquired()
    }

    /// Takes the lock if it is free, without waiting. `Err(WouldBlock)` if it is held,
    /// `Err(Poisoned)` (holding the guard) if it was taken but is poisoned.
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_lock(&self) -> TryLockResult<AdaptiveMutexGuard<'_, T>> {
        if self.raw.try_acquire() {
            Ok(self.acquired()?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Like [`lock`](Self::lock), but gives up after `timeout`: `Err(WouldBlock)` on
    /// timeout. A timeout too large to represent waits forever.
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_lock_for(&self, timeout: Duration) -> TryLockResult<AdaptiveMutexGuard<'_, T>> {
        self.try_lock_deadline(Instant::now().checked_add(timeout))
    }

    /// Like [`lock`](Self::lock), but gives up at `deadline`: `Err(WouldBlock)` if the
    /// lock was not acquired by then. A deadline in the past still takes a free lock.
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_lock_until(&self, deadline: Instant) -> TryLockResult<AdaptiveMutexGuard<'_, T>> {
        self.try_lock_deadline(Some(deadline))
    }

    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    fn try_lock_deadline(
        &self,
        deadline: Option<Instant>,
    ) -> TryLockResult<AdaptiveMutexGuard<'_, T>> {
        // lockdep: a timed wait adds no ordering edge, as a try-lock: it cannot wait
        // forever, and programs use timeouts precisely to back out of an inversion.
        // A deadline too far to represent waits forever, so it is ordered.
        #[cfg(feature = "lockdep")]
        if deadline.is_none() {
            self.raw.class.before_acquire();
        }
        if self.raw.acquire(deadline) {
            Ok(self.acquired()?)
        } else {
            Err(TryLockError::WouldBlock)
        }
    }

    /// Every acquisition ends here (the one place for acquisition hooks): builds the
    /// guard and reports poisoning.
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    fn acquired(&self) -> LockResult<AdaptiveMutexGuard<'_, T>> {
        #[cfg(feature = "lockdep")]
        self.raw.class.acquired();
        let guard = AdaptiveMutexGuard {
            lock: self,
            poison: PoisonOnPanic::new(),
            _not_send: PhantomData,
        };
        if self.raw.is_poisoned() {
            Err(PoisonError::new(guard))
        } else {
            Ok(guard)
        }
    }

    /// `true` if some thread holds the lock at this instant (a racy snapshot).
    #[inline]
    pub fn is_locked(&self) -> bool {
        self.raw.state.load(Ordering::Relaxed) & LOCKED != 0
    }

    /// `true` if a thread panicked while holding the lock (and the poison was not
    /// cleared since).
    #[inline]
    pub fn is_poisoned(&self) -> bool {
        self.raw.is_poisoned()
    }

    /// Clears the poison flag.
    #[inline]
    pub fn clear_poison(&self) {
        self.raw.poisoned.store(false, Ordering::Relaxed);
    }

    /// A mutable reference to the value, without locking (the `&mut self` proves no
    /// guard exists). `Err` (still holding the reference) if poisoned.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        let poisoned = self.raw.is_poisoned();
        // SAFETY: `&mut self` excludes every other access to the data for the
        // returned lifetime.
        let data = self.data.with_mut(|p| unsafe { &mut *p });
        if poisoned {
            Err(PoisonError::new(data))
        } else {
            Ok(data)
        }
    }
}

impl<T: Default> Default for AdaptiveMutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for AdaptiveMutex<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for AdaptiveMutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("AdaptiveMutex");
        match self.try_lock() {
            Ok(guard) => d.field("data", &&*guard),
            Err(TryLockError::Poisoned(err)) => d.field("data", &&**err.get_ref()),
            Err(TryLockError::WouldBlock) => d.field("data", &format_args!("<locked>")),
        };
        d.field("poisoned", &self.is_poisoned());
        d.finish_non_exhaustive()
    }
}

/// Exclusive access to the data of an [`AdaptiveMutex`]; unlocks when dropped.
///
/// `!Send` (it must be dropped on the thread that locked, as std's guard), `Sync` when
/// `T: Sync`.
#[must_use = "if unused the AdaptiveMutex will immediately unlock"]
pub struct AdaptiveMutexGuard<'a, T: ?Sized> {
    lock: &'a AdaptiveMutex<T>,
    poison: PoisonOnPanic,
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard only gives `&T`, so sharing it between threads is sharing
// `&T`, sound when `T: Sync`.
unsafe impl<T: ?Sized + Sync> Sync for AdaptiveMutexGuard<'_, T> {}

impl<'a, T: ?Sized> AdaptiveMutexGuard<'a, T> {
    /// Unlocks, handing the lock directly to the longest-waiting queued thread if
    /// there is one (it owns the lock when it wakes; no other thread can take it in
    /// between). Without waiters it is a plain unlock.
    pub fn unlock_fair(guard: Self) {
        let lock = guard.lock;
        let poison = guard.poison;
        core::mem::forget(guard);
        poison.done(&lock.raw);
        lock.raw.release(true);
    }

    /// A guard for a part of the data, chosen by `f`. The mapped guard unlocks (and
    /// poisons on panic) like the original; if `f` panics, the mutex is unlocked and
    /// poisoned.
    pub fn map<U: ?Sized, F>(guard: Self, f: F) -> MappedAdaptiveMutexGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        // SAFETY: the guard proves exclusive access to the data while it lives; the
        // mapped guard takes over the lock (the original is forgotten below), so the
        // pointer stays exclusive for `'a` and until the mapped guard unlocks.
        let data = NonNull::from(f(guard.lock.data.with_mut(|p| unsafe { &mut *p })));
        let (raw, poison) = (&guard.lock.raw, guard.poison);
        core::mem::forget(guard);
        MappedAdaptiveMutexGuard {
            raw,
            data,
            poison,
            _marker: PhantomData,
        }
    }

    /// Like [`map`](Self::map), but `f` may decline (`None`), giving the original guard
    /// back.
    pub fn try_map<U: ?Sized, F>(guard: Self, f: F) -> Result<MappedAdaptiveMutexGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        // SAFETY: as in `map`; on `None` no reference escapes and the guard is kept.
        let data = match f(guard.lock.data.with_mut(|p| unsafe { &mut *p })) {
            Some(d) => NonNull::from(d),
            None => return Err(guard),
        };
        let (raw, poison) = (&guard.lock.raw, guard.poison);
        core::mem::forget(guard);
        Ok(MappedAdaptiveMutexGuard {
            raw,
            data,
            poison,
            _marker: PhantomData,
        })
    }
}

impl<T: ?Sized> Deref for AdaptiveMutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so no `&mut` to the data exists elsewhere.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T: ?Sized> DerefMut for AdaptiveMutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock and `&mut self` excludes other uses of it.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T: ?Sized> Drop for AdaptiveMutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.poison.done(&self.lock.raw);
        self.lock.raw.release(false);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for AdaptiveMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for AdaptiveMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A guard for a part of an [`AdaptiveMutex`]'s data, made by
/// [`AdaptiveMutexGuard::map`]; unlocks (and poisons on panic) when dropped.
#[must_use = "if unused the AdaptiveMutex will immediately unlock"]
pub struct MappedAdaptiveMutexGuard<'a, T: ?Sized> {
    raw: &'a RawMutex,
    data: NonNull<T>,
    poison: PoisonOnPanic,
    /// Borrows the data mutably for `'a`; `!Send` through the pointer.
    _marker: PhantomData<&'a mut T>,
}

// SAFETY: as for `AdaptiveMutexGuard`: sharing the guard shares `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MappedAdaptiveMutexGuard<'_, T> {}

impl<'a, T: ?Sized> MappedAdaptiveMutexGuard<'a, T> {
    /// Maps again to a part of this part.
    pub fn map<U: ?Sized, F>(guard: Self, f: F) -> MappedAdaptiveMutexGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        // SAFETY: the guard holds the lock, so `data` is exclusive while it lives; the
        // new guard takes the lock over (this one is forgotten below). If `f` panics,
        // this guard is dropped normally: it poisons and unlocks.
        let data = NonNull::from(f(unsafe { &mut *guard.data.as_ptr() }));
        let (raw, poison) = (guard.raw, guard.poison);
        core::mem::forget(guard);
        MappedAdaptiveMutexGuard {
            raw,
            data,
            poison,
            _marker: PhantomData,
        }
    }
}

impl<T: ?Sized> Deref for MappedAdaptiveMutexGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock; `data` points into the locked value.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for MappedAdaptiveMutexGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`, and `&mut self` excludes other uses of the guard.
        unsafe { self.data.as_mut() }
    }
}

impl<T: ?Sized> Drop for MappedAdaptiveMutexGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        self.poison.done(self.raw);
        self.raw.release(false);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MappedAdaptiveMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MappedAdaptiveMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(test)]
#[path = "mutex_tests.rs"]
mod tests;
