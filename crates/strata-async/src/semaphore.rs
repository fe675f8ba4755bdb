//! A runtime-agnostic async counting semaphore with strict FIFO order.
//!
//! [`Semaphore`] hands out permits to async tasks. It uses nothing but
//! `core::task::Waker`, so it works on any executor: tokio, smol / async-executor,
//! `futures::executor::block_on`, or a hand-written poll loop. Names and semantics
//! follow `tokio::sync::Semaphore` (`acquire`, `acquire_many`, `try_acquire`,
//! `acquire_owned`, `add_permits`, `forget_permits`, `close`, RAII permits with
//! `forget` / `split` / `merge`), with these differences: permit counts are `usize`
//! everywhere, and misuse returns an error instead of panicking (see
//! [`Semaphore::MAX_PERMITS`], [`AddPermitsError`], [`MergeError`],
//! [`AcquireError::PolledAfterCompletion`]).
//!
//! ```
//! use std::sync::Arc;
//! use strata_async::semaphore::{Semaphore, TryAcquireError};
//!
//! let sem = Arc::new(Semaphore::new(2));
//! futures::executor::block_on(async {
//!     let a = sem.acquire().await.unwrap();
//!     let b = Arc::clone(&sem).acquire_owned().await.unwrap();
//!     assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
//!     drop(a);
//!     let c = sem.acquire().await.unwrap();
//!     assert_eq!(sem.available_permits(), 0);
//!     drop((b, c));
//! });
//! assert_eq!(sem.available_permits(), 2);
//! ```
//!
//! # Algorithm
//!
//! One atomic word, `state`, holds the available permit count (shifted left by two)
//! and two flags: `CLOSED` and `QUEUED` (the waiter list is not empty). The waiter
//! list is an intrusive doubly-linked list guarded by a short internal [`Mutex`] (the
//! shim's, so loom models it); its nodes live inside the pinned acquire futures, so
//! waiting allocates nothing (waking allocates nothing either: the wakers to call are
//! collected in a fixed array on the stack).
//!
//! The invariant that gives strict FIFO order is: **while `QUEUED` is set, the
//! available count is 0.** Every permit released while waiters are queued is assigned
//! straight to the waiters, head first, under the lock; the head may receive a partial
//! assignment (it keeps what it got and waits for the rest), so a large request at the
//! head is never starved by small requests behind it, and a new acquirer can never
//! barge past queued waiters because it finds no available permits. The flag and the
//! count change together in one compare-and-swap, so a release cannot slip permits
//! into the counter while an acquirer is queueing:
//!
//! * **`try_acquire_many(n)` / the first poll of `acquire_many(n)`**: a load of the
//!   word and one CAS that subtracts `n` when `count >= n` and the semaphore is open
//!   (the CAS is retried only when the word changed meanwhile). Linearization point:
//!   that successful CAS (or, for a failure, the load or failed CAS that saw too few
//!   permits or `CLOSED`).
//! * **Release** (dropping a permit, `add_permits`): a load and one CAS that adds to
//!   the count when `QUEUED` is clear (linearization point: that CAS). It is a CAS
//!   rather than a `fetch_add` because it must not add while `QUEUED` is set, and
//!   because the count saturates instead of wrapping. When `QUEUED` is set it takes
//!   the lock and assigns the permits to waiters in FIFO order; a waiter that becomes
//!   complete is unlinked, its status is published with a `Release` store (the point at
//!   which it holds its permits), and its waker is called after the lock is released
//!   (in batches of 16, re-taking the lock between batches). When the list becomes
//!   empty, the same critical section clears `QUEUED` and adds the remaining permits in
//!   one CAS.
//! * **Queueing** (an acquire that found too few permits): under the lock, one CAS
//!   takes all available permits as a partial assignment, sets `QUEUED` and leaves
//!   the count at 0; the node is appended to the tail with the task's waker.
//! * **Re-poll**: a lock-free `Acquire` load of the node's status; only if the node is
//!   still queued is the lock taken to re-check and to replace the waker (if the task's
//!   waker changed).
//! * **Cancellation** (dropping an acquire future): if the node is still queued it is
//!   unlinked under the lock and the permits already assigned to it are released
//!   through the same FIFO assignment (so they go to the next waiters, or back to the
//!   count), in the same critical section; if it had already been completed but the
//!   permit was not yet returned by `poll`, the permits are released. Permits are
//!   never lost and a wake-up is never lost: a wake-up belongs to a waiter only once
//!   it holds all its permits, and those permits pass on if the waiter goes away.
//!   (This assumes wakers do not panic. Wakers are called in batches of 16 with the
//!   lock released in between; a panicking waker loses the rest of that release, as
//!   in tokio: the permits not yet handed out and the waiters of later batches. A
//!   second panic while the batch's remaining wakers are woken during unwinding
//!   aborts the process.)
//! * **Close**: under the lock, sets `CLOSED`, unlinks every waiter, returns their
//!   partial assignments to the count, marks them closed and wakes them (they complete
//!   with [`AcquireError::Closed`]). Later acquires fail; permits still held stay valid
//!   and return to the count when dropped.
//!
//! # Progress
//!
//! * Lock-free (no lock taken; a load and a CAS loop that fails only when another
//!   thread changed the word in between, or spuriously as a weak CAS may):
//!   `try_acquire*`, an `acquire*` that finds enough permits on its first poll, a
//!   release (permit drop, `add_permits`) when no waiter is queued, `forget_permits`,
//!   `available_permits`, `is_closed`, and the re-poll of a future that has completed.
//! * Blocking on the short internal lock (never held across user code: wakers are
//!   cloned before or called after it, and old wakers are dropped after it): queueing,
//!   the re-poll of a still-queued future, a release while waiters are queued, the drop
//!   of a queued future, and `close`. The critical sections are O(1) per waiter they
//!   complete. Whether this lock matters next to tokio's and async-lock's semaphores is
//!   for the benchmark to say; it is not measured here.
//!
//! # Maximum and overflow rules
//!
//! [`Semaphore::MAX_PERMITS`] is `usize::MAX >> 3`. Asking to acquire more is an error
//! ([`AcquireError::TooManyPermits`], [`TryAcquireError::TooManyPermits`]), never a
//! hang. [`Semaphore::try_new`] rejects a larger initial count and [`Semaphore::new`]
//! clamps it. [`Semaphore::add_permits`] fails, adding nothing, when the available
//! count would exceed the maximum. Permits that come back (a dropped permit, a
//! cancelled waiter) when the count is already at the maximum, which can only happen
//! after `add_permits` raised the total while permits were held, are discarded: the
//! available count saturates at `MAX_PERMITS` and never wraps.
//!
//! An `acquire_many(n)` with `n <= MAX_PERMITS` but more than the semaphore will ever
//! hold waits forever, as with every semaphore: no one can know that more permits will
//! not be added later. Acquiring 0 permits succeeds at once unless the semaphore is
//! closed.

use core::fmt;
use core::future::Future;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};

use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use strata_primitives::sync::{Mutex, MutexGuard, PoisonError};
// The owned API takes `self: Arc<Self>`, which only std's `Arc` allows (loom's cannot be
// a method receiver), and users hold their semaphores in std's `Arc`. The reference
// count is not part of the algorithm (it only keeps the semaphore alive), so there is
// nothing for loom to model in it.
use std::sync::Arc;

/// The `CLOSED` flag of the state word.
const CLOSED: usize = 0b01;
/// The `QUEUED` flag of the state word: the waiter list is not empty. While it is set
/// the available count is 0.
const QUEUED: usize = 0b10;
/// The available count is stored shifted left by this many bits.
const SHIFT: u32 = 2;

/// Status of a waiter node: linked in the list.
const W_QUEUED: u8 = 0;
/// Status of a waiter node: unlinked, holds all its permits.
const W_DONE: u8 = 1;
/// Status of a waiter node: unlinked by `close`, holds nothing.
const W_CLOSED: u8 = 2;

/// Wakers collected under the lock and called after it, at most this many per batch.
/// Under loom it is 2, so that models with three waiters reach the path that releases
/// the lock between batches and re-takes it.
const WAKE_BATCH: usize = if cfg!(strata_loom) { 2 } else { 16 };

/// The ordering of the stores that publish a waiter's completion (its status) and of
/// the fast-path release CAS: `Release`, or `Relaxed` under the test-only
/// `--cfg strata_weaken`, which is how the loom models show that they detect a missing
/// publication (the models marked `should_panic` under that cfg).
const fn publish_ordering() -> Ordering {
    if cfg!(strata_weaken) {
        Ordering::Relaxed
    } else {
        Ordering::Release
    }
}

/// The ordering of a successful CAS that both takes and publishes (acquire side of a
/// permit plus the release side of the state change).
const fn acq_publish_ordering() -> Ordering {
    if cfg!(strata_weaken) {
        Ordering::Acquire
    } else {
        Ordering::AcqRel
    }
}

/// The available count of a state word.
#[inline]
const fn count(state: usize) -> usize {
    state >> SHIFT
}

/// `state` with `n` more available permits, saturating at [`Semaphore::MAX_PERMITS`].
#[inline]
fn with_added(state: usize, n: usize) -> usize {
    let c = count(state).saturating_add(n).min(Semaphore::MAX_PERMITS);
    (c << SHIFT) | (state & (CLOSED | QUEUED))
}

/// The error of [`Semaphore::acquire`] and the other awaitable acquires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AcquireError {
    /// The semaphore was closed before the permits could be acquired.
    #[error("the semaphore is closed")]
    Closed,
    /// More permits were requested than [`Semaphore::MAX_PERMITS`].
    #[error(
        "requested {requested} permits, more than the maximum of {}",
        Semaphore::MAX_PERMITS
    )]
    TooManyPermits {
        /// The number requested.
        requested: usize,
    },
    /// The future was polled again after it had returned `Poll::Ready`; nothing was
    /// acquired by that poll.
    #[error("the acquire future was polled after it had completed")]
    PolledAfterCompletion,
}

/// The error of [`Semaphore::try_acquire`] and the other non-waiting acquires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryAcquireError {
    /// The semaphore is closed.
    #[error("the semaphore is closed")]
    Closed,
    /// Not enough permits are available now (or waiters are queued ahead: strict FIFO).
    #[error("not enough permits are available")]
    NoPermits,
    /// More permits were requested than [`Semaphore::MAX_PERMITS`].
    #[error(
        "requested {requested} permits, more than the maximum of {}",
        Semaphore::MAX_PERMITS
    )]
    TooManyPermits {
        /// The number requested.
        requested: usize,
    },
}

/// The error of [`Semaphore::add_permits`] and [`Semaphore::try_new`]; nothing was
/// added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddPermitsError {
    /// The available count would exceed [`Semaphore::MAX_PERMITS`].
    #[error(
        "adding {requested} permits to {available} available would exceed the maximum of {}",
        Semaphore::MAX_PERMITS
    )]
    Overflow {
        /// The number of permits to add.
        requested: usize,
        /// The available count seen when the addition was refused.
        available: usize,
    },
}

/// The error of `merge` on [`SemaphorePermit`] and [`OwnedSemaphorePermit`]; it gives
/// the other permit back unchanged.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MergeError<P: fmt::Debug> {
    /// The two permits belong to different semaphores.
    #[error("cannot merge permits of different semaphores")]
    DifferentSemaphores(P),
    /// The merged count would not fit in a `usize`.
    #[error("the merged permit count would overflow usize")]
    Overflow(P),
}

/// The intrusive waiter list. Every field of every linked node other than `status`
/// and `needed` is accessed only while this list's mutex is held.
struct WaitList {
    head: Option<NonNull<Waiter>>,
    tail: Option<NonNull<Waiter>>,
}

// SAFETY: the list only holds pointers to nodes that are pinned inside acquire futures
// and that unlink themselves (under the same mutex) before they are dropped; all
// accesses through these pointers happen with the mutex held, whichever thread holds
// it, so moving the list between threads (it lives inside a `Mutex`) is sound.
unsafe impl Send for WaitList {}

impl WaitList {
    /// Appends `node`.
    ///
    /// # Safety
    ///
    /// The caller holds the list's mutex, `node` is valid, pinned, not linked, and stays
    /// valid until it is unlinked.
    unsafe fn push_back(&mut self, node: NonNull<Waiter>) {
        // SAFETY: `node` is valid (caller), and its links are ours under the lock.
        let n = unsafe { node.as_ref() };
        n.prev.with_mut(|p| {
            // SAFETY: the links of a node are accessed only under the lock, which we hold.
            unsafe { *p = self.tail }
        });
        n.next.with_mut(|p| {
            // SAFETY: as above.
            unsafe { *p = None }
        });
        match self.tail {
            Some(t) => {
                // SAFETY: linked nodes are valid while linked; we hold the lock.
                unsafe { t.as_ref() }.next.with_mut(|p| {
                    // SAFETY: links are accessed only under the lock.
                    unsafe { *p = Some(node) }
                });
            }
            None => self.head = Some(node),
        }
        self.tail = Some(node);
    }

    /// Unlinks `node`.
    ///
    /// # Safety
    ///
    /// The caller holds the list's mutex and `node` is linked in this list.
    unsafe fn remove(&mut self, node: NonNull<Waiter>) {
        // SAFETY: linked nodes are valid; we hold the lock.
        let n = unsafe { node.as_ref() };
        // SAFETY: links are accessed only under the lock.
        let prev = n.prev.with(|p| unsafe { *p });
        // SAFETY: as above.
        let next = n.next.with(|p| unsafe { *p });
        match prev {
            Some(p) => {
                // SAFETY: `p` is linked, hence valid; we hold the lock.
                unsafe { p.as_ref() }.next.with_mut(|x| {
                    // SAFETY: links are accessed only under the lock.
                    unsafe { *x = next }
                });
            }
            None => self.head = next,
        }
        match next {
            Some(nx) => {
                // SAFETY: `nx` is linked, hence valid; we hold the lock.
                unsafe { nx.as_ref() }.prev.with_mut(|x| {
                    // SAFETY: links are accessed only under the lock.
                    unsafe { *x = prev }
                });
            }
            None => self.tail = prev,
        }
    }
}

/// A waiter node. It lives inside a pinned acquire future.
struct Waiter {
    /// Permits requested; immutable.
    needed: usize,
    /// Permits assigned so far. Written under the lock while linked; read by the owner
    /// after it observes `W_DONE` (published by the `Release` status store).
    assigned: UnsafeCell<usize>,
    /// The task to wake. Accessed under the lock while linked.
    waker: UnsafeCell<Option<Waker>>,
    /// List links, accessed under the lock.
    prev: UnsafeCell<Option<NonNull<Waiter>>>,
    /// List links, accessed under the lock.
    next: UnsafeCell<Option<NonNull<Waiter>>>,
    /// `W_QUEUED`, `W_DONE` or `W_CLOSED`. Changed only under the lock; the store that
    /// unlinks the node is the last access of the semaphore to it.
    status: AtomicU8,
    /// The list points into the node: it must not move.
    _pin: PhantomPinned,
}

impl Waiter {
    fn new(needed: usize) -> Self {
        Self {
            needed,
            assigned: UnsafeCell::new(0),
            waker: UnsafeCell::new(None),
            prev: UnsafeCell::new(None),
            next: UnsafeCell::new(None),
            status: AtomicU8::new(W_QUEUED),
            _pin: PhantomPinned,
        }
    }
}

/// A fixed batch of wakers to call after the lock is released.
struct WakeBatch {
    wakers: [Option<Waker>; WAKE_BATCH],
    len: usize,
}

impl WakeBatch {
    fn new() -> Self {
        Self {
            wakers: [const { None }; WAKE_BATCH],
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == WAKE_BATCH
    }

    /// Adds a waker; the caller checks `is_full` first.
    fn push(&mut self, w: Option<Waker>) {
        if let Some(w) = w {
            self.wakers[self.len] = Some(w);
            self.len += 1;
        }
    }

    /// Calls every collected waker. Each is taken out before it is called, so if one
    /// panics, `Drop` still wakes the rest (those waiters hold their permits and must
    /// not be left unwoken).
    fn wake_all(&mut self) {
        for w in &mut self.wakers[..self.len] {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
        self.len = 0;
    }
}

impl Drop for WakeBatch {
    fn drop(&mut self) {
        self.wake_all();
    }
}

/// An async counting semaphore with strict FIFO order. See the [module
/// documentation](self) for the algorithm and which paths are lock-free.
pub struct Semaphore {
    /// Available count (shifted by `SHIFT`) | `QUEUED` | `CLOSED`.
    state: AtomicUsize,
    /// The waiter list.
    waiters: Mutex<WaitList>,
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("Semaphore")
            .field("available_permits", &count(s))
            .field("waiters_queued", &(s & QUEUED != 0))
            .field("closed", &(s & CLOSED != 0))
            .finish()
    }
}

impl Semaphore {
    /// The largest number of permits a semaphore can hold available, and the largest
    /// number one acquire may ask for: `usize::MAX >> 3`.
    pub const MAX_PERMITS: usize = usize::MAX >> 3;

    /// A semaphore with `permits` available permits; a count above
    /// [`MAX_PERMITS`](Self::MAX_PERMITS) is clamped to it (use
    /// [`try_new`](Self::try_new) to get an error instead).
    pub fn new(permits: usize) -> Self {
        Self {
            state: AtomicUsize::new(permits.min(Self::MAX_PERMITS) << SHIFT),
            waiters: Mutex::new(WaitList {
                head: None,
                tail: None,
            }),
        }
    }

    /// A semaphore with `permits` available permits, or an error if `permits` exceeds
    /// [`MAX_PERMITS`](Self::MAX_PERMITS).
    pub fn try_new(permits: usize) -> Result<Self, AddPermitsError> {
        if permits > Self::MAX_PERMITS {
            return Err(AddPermitsError::Overflow {
                requested: permits,
                available: 0,
            });
        }
        Ok(Self::new(permits))
    }

    /// The number of permits available now (0 whenever waiters are queued).
    pub fn available_permits(&self) -> usize {
        count(self.state.load(Ordering::Acquire))
    }

    /// Whether [`close`](Self::close) has been called.
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) & CLOSED != 0
    }

    fn lock(&self) -> MutexGuard<'_, WaitList> {
        // No user code runs under this lock, so it is never poisoned in practice; if it
        // were, the list is consistent at every unlock point.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock-free fast path: take `n` permits if the semaphore is open and at least
    /// `n` are available.
    pub(crate) fn try_take(&self, n: usize) -> Result<(), TryAcquireError> {
        if n > Self::MAX_PERMITS {
            return Err(TryAcquireError::TooManyPermits { requested: n });
        }
        let mut cur = self.state.load(Ordering::Acquire);
        loop {
            if cur & CLOSED != 0 {
                return Err(TryAcquireError::Closed);
            }
            if n == 0 {
                return Ok(());
            }
            // While waiters are queued the count is 0, so this also refuses to barge.
            if count(cur) < n {
                return Err(TryAcquireError::NoPermits);
            }
            match self.state.compare_exchange_weak(
                cur,
                cur - (n << SHIFT),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Returns `n` permits: one CAS when no waiter is queued, else FIFO assignment under
    /// the lock.
    pub(crate) fn release(&self, n: usize) {
        if n == 0 {
            return;
        }
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            if cur & QUEUED != 0 {
                return self.release_locked(self.lock(), n);
            }
            match self.state.compare_exchange_weak(
                cur,
                with_added(cur, n),
                publish_ordering(),
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Assigns `n` permits to the queued waiters in FIFO order, the rest to the count;
    /// clears `QUEUED` if the list is (or becomes) empty. Wakes completed waiters after
    /// releasing the lock.
    fn release_locked<'a>(&'a self, mut list: MutexGuard<'a, WaitList>, mut n: usize) {
        let mut batch = WakeBatch::new();
        loop {
            while n > 0 && !batch.is_full() {
                let Some(head) = list.head else { break };
                // SAFETY: linked nodes are valid until unlinked, and we hold the lock.
                let node = unsafe { head.as_ref() };
                // SAFETY: `assigned` of a linked node is accessed only under the lock.
                let had = node.assigned.with(|p| unsafe { *p });
                let give = n.min(node.needed - had);
                n -= give;
                node.assigned.with_mut(|p| {
                    // SAFETY: as above.
                    unsafe { *p = had + give }
                });
                if had + give < node.needed {
                    break; // n == 0: a partial assignment to the head
                }
                // SAFETY: we hold the lock and `head` is linked in `list`.
                unsafe { list.remove(head) };
                // SAFETY: the waker of a linked node is accessed only under the lock.
                let w = node.waker.with_mut(|p| unsafe { (*p).take() });
                batch.push(w);
                // Publish the completion; after this store the owner may free the node.
                node.status.store(W_DONE, publish_ordering());
            }
            if batch.is_full() && n > 0 {
                drop(list);
                batch.wake_all();
                list = self.lock();
                continue;
            }
            if list.head.is_none() {
                let mut cur = self.state.load(Ordering::Relaxed);
                loop {
                    let new = with_added(cur, n) & !QUEUED;
                    match self.state.compare_exchange_weak(
                        cur,
                        new,
                        acq_publish_ordering(),
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break,
                        Err(actual) => cur = actual,
                    }
                }
            }
            drop(list);
            batch.wake_all();
            return;
        }
    }

    /// Takes one permit without waiting.
    ///
    /// Fails with [`TryAcquireError::NoPermits`] if none is available, including when
    /// waiters are queued (strict FIFO: it never barges past them), and with
    /// [`TryAcquireError::Closed`] if the semaphore is closed. Lock-free.
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// Takes `n` permits without waiting; as [`try_acquire`](Self::try_acquire), and
    /// [`TryAcquireError::TooManyPermits`] if `n > MAX_PERMITS`.
    pub fn try_acquire_many(&self, n: usize) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_take(n)?;
        Ok(SemaphorePermit {
            sem: self,
            permits: n,
        })
    }

    /// Takes one permit without waiting, as an owned permit; see
    /// [`try_acquire`](Self::try_acquire).
    pub fn try_acquire_owned(self: Arc<Self>) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_acquire_many_owned(1)
    }

    /// Takes `n` permits without waiting, as an owned permit; see
    /// [`try_acquire_many`](Self::try_acquire_many).
    pub fn try_acquire_many_owned(
        self: Arc<Self>,
        n: usize,
    ) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_take(n)?;
        Ok(OwnedSemaphorePermit {
            sem: self,
            permits: n,
        })
    }

    /// Waits for one permit.
    ///
    /// Waiters are served in strict FIFO order. Fails with [`AcquireError::Closed`] if
    /// the semaphore is (or becomes) closed before the permit is acquired.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future at any point, before or after it was woken,
    /// loses no permit and no wake-up. It gives up its place in the queue; permits
    /// already assigned to it go to the next waiters (or back to the semaphore).
    pub fn acquire(&self) -> Acquire<'_> {
        self.acquire_many(1)
    }

    /// Waits for `n` permits, acquired all together.
    ///
    /// A request at the head of the queue collects permits as they are released, so it
    /// is not starved by smaller requests behind it. Fails at once with
    /// [`AcquireError::TooManyPermits`] if `n > MAX_PERMITS`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire): a partial assignment held by a
    /// dropped future is released to the next waiters.
    pub fn acquire_many(&self, n: usize) -> Acquire<'_> {
        Acquire {
            sem: self,
            core: AcquireCore::new(n),
        }
    }

    /// Waits for one permit, as an owned permit that keeps the semaphore alive.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire`](Self::acquire).
    pub fn acquire_owned(self: Arc<Self>) -> AcquireOwned {
        self.acquire_many_owned(1)
    }

    /// Waits for `n` permits, as an owned permit; see
    /// [`acquire_many`](Self::acquire_many).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`acquire_many`](Self::acquire_many).
    pub fn acquire_many_owned(self: Arc<Self>, n: usize) -> AcquireOwned {
        AcquireOwned {
            sem: Some(self),
            core: AcquireCore::new(n),
        }
    }

    /// Adds `n` permits: they go to queued waiters first, in FIFO order.
    ///
    /// Fails, adding nothing, if the available count would exceed
    /// [`MAX_PERMITS`](Self::MAX_PERMITS) when it looks. When waiters are queued the
    /// check is of `n` alone, and the count the permits are added to is capped at the
    /// maximum: under concurrency (the queue emptying meanwhile) permits beyond the
    /// maximum can then be discarded with `Ok`. Works on a closed semaphore too (the permits
    /// become available but no acquire can take them). Lock-free when no waiter is
    /// queued.
    pub fn add_permits(&self, n: usize) -> Result<(), AddPermitsError> {
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            if n == 0 {
                return Ok(());
            }
            if cur & QUEUED != 0 {
                // The count is 0; whatever the waiters do not take goes to the count,
                // which `n <= MAX_PERMITS` keeps in range (concurrent returns saturate).
                if n > Self::MAX_PERMITS {
                    return Err(AddPermitsError::Overflow {
                        requested: n,
                        available: 0,
                    });
                }
                self.release_locked(self.lock(), n);
                return Ok(());
            }
            if n > Self::MAX_PERMITS - count(cur) {
                return Err(AddPermitsError::Overflow {
                    requested: n,
                    available: count(cur),
                });
            }
            match self.state.compare_exchange_weak(
                cur,
                cur + (n << SHIFT),
                publish_ordering(),
                Ordering::Relaxed,
            ) {
                Ok(_) => return Ok(()),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Removes up to `n` of the available permits and returns how many were removed
    /// (permits held or assigned to waiters are not touched). Lock-free.
    pub fn forget_permits(&self, n: usize) -> usize {
        let mut cur = self.state.load(Ordering::Relaxed);
        loop {
            let take = n.min(count(cur));
            if take == 0 {
                return 0;
            }
            match self.state.compare_exchange_weak(
                cur,
                cur - (take << SHIFT),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return take,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Closes the semaphore: every waiter still queued when `close` reaches it
    /// completes with [`AcquireError::Closed`] (its partial assignment returns to the
    /// count), and every later acquire fails. With more than 16 waiters the lock is
    /// released between batches of wake-ups, as in tokio, and a permit released in
    /// that window can still complete a waiter not yet reached with `Ok`. Permits already held stay valid and return to the count
    /// when dropped. Idempotent.
    pub fn close(&self) {
        let mut list = self.lock();
        self.state.fetch_or(CLOSED, Ordering::AcqRel);
        let mut back = 0usize;
        let mut batch = WakeBatch::new();
        loop {
            while !batch.is_full() {
                let Some(head) = list.head else { break };
                // SAFETY: linked nodes are valid until unlinked, and we hold the lock.
                let node = unsafe { head.as_ref() };
                // SAFETY: we hold the lock and `head` is linked in `list`.
                unsafe { list.remove(head) };
                // SAFETY: `assigned` of a linked node is accessed only under the lock.
                back = back.saturating_add(node.assigned.with(|p| unsafe { *p }));
                // SAFETY: the waker of a linked node is accessed only under the lock.
                batch.push(node.waker.with_mut(|p| unsafe { (*p).take() }));
                // After this store the owner may free the node.
                node.status.store(W_CLOSED, publish_ordering());
            }
            if list.head.is_some() {
                drop(list);
                batch.wake_all();
                list = self.lock();
                continue;
            }
            let mut cur = self.state.load(Ordering::Relaxed);
            loop {
                let new = with_added(cur, back) & !QUEUED;
                match self.state.compare_exchange_weak(
                    cur,
                    new,
                    acq_publish_ordering(),
                    Ordering::Relaxed,
                ) {
                    Ok(_) => break,
                    Err(actual) => cur = actual,
                }
            }
            drop(list);
            batch.wake_all();
            return;
        }
    }
}

/// Where an acquire future is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not polled yet.
    Init,
    /// The node is (or was, until a releaser or `close` unlinked it) in the list.
    Queued,
    /// `Ready` was returned; the node is not linked and owns nothing.
    Finished,
}

/// The part of an acquire future shared by the borrowed and owned variants (and by
/// the futures of [`crate::mutex`] and [`crate::rwlock`], which are built on this
/// semaphore).
pub(crate) struct AcquireCore {
    node: Waiter,
    stage: Stage,
}

impl AcquireCore {
    /// A core that will ask for `n` permits when first polled.
    pub(crate) fn new(n: usize) -> Self {
        Self {
            node: Waiter::new(n),
            stage: Stage::Init,
        }
    }

    /// Polls for the permits; `Ok(n)` means the caller now owns `n` permits.
    ///
    /// # Safety
    ///
    /// `self` is pinned: it is a field of a pinned future that never moves it, every
    /// poll passes the same `sem`, and the future's `Drop` calls
    /// [`cancel`](Self::cancel) with that `sem` (the list may point into `self.node`
    /// until then).
    pub(crate) unsafe fn poll(
        &mut self,
        sem: &Semaphore,
        cx: &mut Context<'_>,
    ) -> Poll<Result<usize, AcquireError>> {
        match self.stage {
            Stage::Finished => Poll::Ready(Err(AcquireError::PolledAfterCompletion)),
            Stage::Init => {
                let n = self.node.needed;
                match sem.try_take(n) {
                    Ok(()) => return self.finish(Ok(n)),
                    Err(TryAcquireError::Closed) => return self.finish(Err(AcquireError::Closed)),
                    Err(TryAcquireError::TooManyPermits { requested }) => {
                        return self.finish(Err(AcquireError::TooManyPermits { requested }));
                    }
                    Err(TryAcquireError::NoPermits) => {}
                }
                // Slow path: queue (or take the permits if they came back meanwhile).
                let waker = cx.waker().clone();
                let mut list = sem.lock();
                let mut cur = sem.state.load(Ordering::Acquire);
                loop {
                    if cur & CLOSED != 0 {
                        drop(list);
                        return self.finish(Err(AcquireError::Closed));
                    }
                    let avail = count(cur);
                    if avail >= n {
                        match sem.state.compare_exchange(
                            cur,
                            cur - (n << SHIFT),
                            Ordering::AcqRel,
                            Ordering::Acquire,
                        ) {
                            Ok(_) => {
                                drop(list);
                                return self.finish(Ok(n));
                            }
                            Err(actual) => {
                                cur = actual;
                                continue;
                            }
                        }
                    }
                    // Take what is there as a partial assignment, leave the count at 0,
                    // and set QUEUED in the same CAS: no release can slip past.
                    match sem.state.compare_exchange(
                        cur,
                        QUEUED,
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => break,
                        Err(actual) => cur = actual,
                    }
                }
                let avail = count(cur);
                self.node.assigned.with_mut(|p| {
                    // SAFETY: the node is not linked yet: only we access it.
                    unsafe { *p = avail }
                });
                self.node.waker.with_mut(|p| {
                    // SAFETY: as above.
                    unsafe { *p = Some(waker) }
                });
                // SAFETY: we hold the lock; the node is pinned inside this future (the
                // caller's contract), not linked, and the future's `Drop` unlinks it
                // under the lock before its memory goes away.
                unsafe { list.push_back(NonNull::from(&self.node)) };
                self.stage = Stage::Queued;
                drop(list);
                Poll::Pending
            }
            Stage::Queued => {
                if let Some(r) = self.check_unlinked(self.node.status.load(Ordering::Acquire)) {
                    return r;
                }
                // Cloned before the lock so that no waker code runs under it.
                let new = cx.waker().clone();
                let list = sem.lock();
                // Status changes only under the lock: this read is definitive.
                if let Some(r) = self.check_unlinked(self.node.status.load(Ordering::Acquire)) {
                    drop(list);
                    return r;
                }
                let unused = self.node.waker.with_mut(|p| {
                    // SAFETY: the node is linked and we hold the lock.
                    let slot = unsafe { &mut *p };
                    match slot {
                        Some(w) if w.will_wake(&new) => Some(new),
                        _ => slot.replace(new),
                    }
                });
                drop(list);
                // The old waker (or the unneeded clone) is dropped outside the lock.
                drop(unused);
                Poll::Pending
            }
        }
    }

    /// The outcome if the node was unlinked (`W_DONE` / `W_CLOSED`), else `None`.
    fn check_unlinked(&mut self, status: u8) -> Option<Poll<Result<usize, AcquireError>>> {
        match status {
            W_DONE => {
                // Finished first: from here on `Drop` leaves the node alone.
                self.stage = Stage::Finished;
                // SAFETY: the node is unlinked and its completion was published by the
                // `Release` status store we just read with `Acquire`: only we access it.
                let n = self.node.assigned.with(|p| unsafe { *p });
                Some(Poll::Ready(Ok(n)))
            }
            W_CLOSED => Some(self.finish(Err(AcquireError::Closed))),
            _ => None,
        }
    }

    fn finish(&mut self, r: Result<usize, AcquireError>) -> Poll<Result<usize, AcquireError>> {
        self.stage = Stage::Finished;
        Poll::Ready(r)
    }

    /// Cancellation: unlinks a queued node and passes its permits on, or releases the
    /// permits of a completed node whose permit was never returned.
    ///
    /// Must be called (from the owning future's `Drop`) with the same semaphore that
    /// `poll` was given, before the core's memory goes away.
    pub(crate) fn cancel(&mut self, sem: &Semaphore) {
        if self.stage != Stage::Queued {
            return;
        }
        self.stage = Stage::Finished;
        match self.node.status.load(Ordering::Acquire) {
            W_CLOSED => return,
            W_DONE => {
                // SAFETY: unlinked and published (see `check_unlinked`).
                let n = self.node.assigned.with(|p| unsafe { *p });
                return sem.release(n);
            }
            _ => {}
        }
        let mut list = sem.lock();
        match self.node.status.load(Ordering::Acquire) {
            W_CLOSED => {}
            W_DONE => {
                // SAFETY: unlinked, and we hold the lock that ordered its completion.
                let n = self.node.assigned.with(|p| unsafe { *p });
                sem.release_locked(list, n);
            }
            _ => {
                let me = NonNull::from(&self.node);
                // SAFETY: we hold the lock and the node is linked (status W_QUEUED).
                unsafe { list.remove(me) };
                // SAFETY: the node is now unlinked; we hold the lock anyway.
                let n = self.node.assigned.with(|p| unsafe { *p });
                // SAFETY: as above.
                let w = self.node.waker.with_mut(|p| unsafe { (*p).take() });
                // Passes the partial assignment on (or back), and clears QUEUED if the
                // list became empty, in this same critical section.
                sem.release_locked(list, n);
                drop(w);
            }
        }
    }
}

/// The future of [`Semaphore::acquire`] and [`Semaphore::acquire_many`].
///
/// It is `Send` and `Sync`, and `!Unpin` (its waiter node is linked into the
/// semaphore's list while it waits). Dropping it is always safe; see the `# Cancel
/// safety` section of [`Semaphore::acquire`].
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a> {
    sem: &'a Semaphore,
    core: AcquireCore,
}

// SAFETY: the node's cells are accessed only under the semaphore's lock while linked,
// or by the owner after the lock (or the `Release`/`Acquire` status pair) has ordered
// the last access by another thread; the waker is `Send`. So the future may move to
// another thread between polls.
unsafe impl Send for Acquire<'_> {}
// SAFETY: `Acquire` has no `&self` methods that touch the node; a shared reference
// gives no access to anything.
unsafe impl Sync for Acquire<'_> {}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("permits", &self.core.node.needed)
            .field("stage", &self.core.stage)
            .finish_non_exhaustive()
    }
}

impl<'a> Future for Acquire<'a> {
    type Output = Result<SemaphorePermit<'a>, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this`; `core` (and its node) stays where it is.
        let this = unsafe { self.get_unchecked_mut() };
        let sem = this.sem;
        // SAFETY: `core` is pinned inside this pinned future, `sem` is always
        // `self.sem`, and `Drop` cancels with it.
        unsafe { this.core.poll(sem, cx) }
            .map(|r| r.map(|permits| SemaphorePermit { sem, permits }))
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.core.cancel(self.sem);
    }
}

/// The future of [`Semaphore::acquire_owned`] and [`Semaphore::acquire_many_owned`].
///
/// `Send`, `Sync` and `!Unpin`, as [`Acquire`].
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned {
    /// `Some` until `Ready(Ok)` moves it into the permit.
    sem: Option<Arc<Semaphore>>,
    core: AcquireCore,
}

// SAFETY: as for `Acquire`; `Arc<Semaphore>` is `Send`.
unsafe impl Send for AcquireOwned {}
// SAFETY: as for `Acquire`.
unsafe impl Sync for AcquireOwned {}

impl fmt::Debug for AcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("permits", &self.core.node.needed)
            .field("stage", &self.core.stage)
            .finish_non_exhaustive()
    }
}

impl Future for AcquireOwned {
    type Output = Result<OwnedSemaphorePermit, AcquireError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this` except the `Arc` (not pinned data).
        let this = unsafe { self.get_unchecked_mut() };
        let Some(sem) = this.sem.as_deref() else {
            return Poll::Ready(Err(AcquireError::PolledAfterCompletion));
        };
        // SAFETY: `core` is pinned inside this pinned future; `sem` is the `Arc`'s
        // semaphore, the same at every poll, and `Drop` cancels with it while it is
        // `Some` (after `Ready(Ok)` took it, the core is finished and owns nothing).
        match unsafe { this.core.poll(sem, cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Ready(Ok(permits)) => match this.sem.take() {
                Some(sem) => Poll::Ready(Ok(OwnedSemaphorePermit { sem, permits })),
                None => Poll::Ready(Err(AcquireError::PolledAfterCompletion)),
            },
        }
    }
}

impl Drop for AcquireOwned {
    fn drop(&mut self) {
        if let Some(sem) = self.sem.as_deref() {
            self.core.cancel(sem);
        }
    }
}

/// Permits borrowed from a [`Semaphore`]; they return to it when this is dropped.
#[must_use = "the permits are released at once if the permit is not kept"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    permits: usize,
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}

impl<'a> SemaphorePermit<'a> {
    /// The number of permits held.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// Drops the permit without returning its permits: the semaphore has that many
    /// fewer permits for good.
    pub fn forget(mut self) {
        self.permits = 0;
    }

    /// Splits `n` permits off into a new permit; `None` (and no change) if this holds
    /// fewer than `n`.
    pub fn split(&mut self, n: usize) -> Option<Self> {
        self.permits = self.permits.checked_sub(n)?;
        Some(Self {
            sem: self.sem,
            permits: n,
        })
    }

    /// Moves the permits of `other` into this one; fails, giving `other` back, if it
    /// belongs to another semaphore or the count would overflow.
    pub fn merge(&mut self, mut other: Self) -> Result<(), MergeError<Self>> {
        if !core::ptr::eq(self.sem, other.sem) {
            return Err(MergeError::DifferentSemaphores(other));
        }
        match self.permits.checked_add(other.permits) {
            Some(sum) => {
                self.permits = sum;
                other.permits = 0;
                Ok(())
            }
            None => Err(MergeError::Overflow(other)),
        }
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

/// Permits of an `Arc<Semaphore>`; they return to it when this is dropped.
#[must_use = "the permits are released at once if the permit is not kept"]
pub struct OwnedSemaphorePermit {
    sem: Arc<Semaphore>,
    permits: usize,
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.permits)
            .finish_non_exhaustive()
    }
}

impl OwnedSemaphorePermit {
    /// The number of permits held.
    pub fn num_permits(&self) -> usize {
        self.permits
    }

    /// The semaphore these permits belong to.
    pub fn semaphore(&self) -> &Arc<Semaphore> {
        &self.sem
    }

    /// Drops the permit without returning its permits.
    pub fn forget(mut self) {
        self.permits = 0;
    }

    /// Splits `n` permits off into a new permit; `None` (and no change) if this holds
    /// fewer than `n`.
    pub fn split(&mut self, n: usize) -> Option<Self> {
        self.permits = self.permits.checked_sub(n)?;
        Some(Self {
            sem: Arc::clone(&self.sem),
            permits: n,
        })
    }

    /// Moves the permits of `other` into this one; fails, giving `other` back, if it
    /// belongs to another semaphore or the count would overflow.
    pub fn merge(&mut self, mut other: Self) -> Result<(), MergeError<Self>> {
        if !core::ptr::eq(&*self.sem, &*other.sem) {
            return Err(MergeError::DifferentSemaphores(other));
        }
        match self.permits.checked_add(other.permits) {
            Some(sum) => {
                self.permits = sum;
                other.permits = 0;
                Ok(())
            }
            None => Err(MergeError::Overflow(other)),
        }
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.release(self.permits);
    }
}

#[cfg(test)]
#[path = "semaphore_tests.rs"]
mod tests;
