//! An async notification primitive that works on any executor: [`Notify`].
//!
//! A task waits with `notify.notified().await`; another wakes it with
//! [`Notify::notify_one`] (the waiter that started waiting first),
//! [`Notify::notify_last`] (the one that started waiting last) or
//! [`Notify::notify_waiters`] (every waiter whose [`Notified`] future was created
//! before the call). Only `core::task`'s [`Waker`] is used, never a runtime's
//! internals, so the same `Notify` serves tokio, smol, or `futures::executor`.
//!
//! The semantics follow `tokio::sync::Notify`:
//!
//! * `notify_one` with no waiter stores **one permit** (several calls store just one);
//!   the next `notified().await` consumes it and completes at once.
//! * `notify_waiters` stores no permit; it completes every `Notified` created before
//!   it, whether or not that future has been polled yet.
//! * A `Notified` chosen by `notify_one`/`notify_last` that is dropped before it
//!   observed the notification **passes it on**: to the next waiter (by the same
//!   FIFO/LIFO rule), or back into the stored permit if no one waits. A wake-up is
//!   never lost to cancellation.
//!
//! # Algorithm
//!
//! One state word holds the kind (`EMPTY`, `WAITING`, `NOTIFIED`) in its two low bits
//! and a generation counter of `notify_waiters` calls in the other bits. A `Notified`
//! snapshots the generation when it is created; if it later sees another generation,
//! a `notify_waiters` call happened since and it completes.
//!
//! The waiters form an intrusive doubly-linked list whose nodes live inside the pinned
//! `Notified` futures (a `PhantomPinned` field keeps them in place), so waiting
//! allocates nothing. The list is guarded by a short internal mutex; `WAITING` is set
//! exactly when the list is non-empty, and changes only under that mutex.
//!
//! * `notify_one`/`notify_last`: if the kind is not `WAITING`, one compare-and-swap
//!   sets `NOTIFIED` (the permit) and returns, without the mutex. Otherwise, under the
//!   mutex, the front (FIFO) or back (LIFO) node is unlinked and marked notified, its
//!   waker taken out, and the waker woken after the mutex is released.
//! * First poll of a `Notified`: a stored permit is taken by one compare-and-swap
//!   `NOTIFIED → EMPTY`, without the mutex. Otherwise, under the mutex, the state is
//!   re-read (a permit or a new generation completes the future), the kind moves to
//!   `WAITING` and the node is linked at the back with a clone of the waker.
//! * `notify_waiters`: under the mutex, the generation is bumped and every queued node
//!   is marked notified and moved to a *draining* list (so no later `notify_one` can
//!   pick a node that this call already completed); their wakers are then taken out in
//!   batches of 32 and woken with the mutex released between batches.
//! * A waiting `Notified` that is polled again or dropped takes the mutex, checks its
//!   node's mark, and unlinks itself if still linked; a dropped node that was chosen by
//!   `notify_one`/`notify_last` re-runs that notification under the same lock hold.
//!
//! Wakers are never woken or dropped while the mutex is held, so a waker's `wake` and
//! `drop` may call back into the same `Notify`. (Its `clone` may not: a re-poll of a
//! queued future with a new waker clones it under the mutex.) A panicking waker in
//! `notify_waiters` leaves the rest of the waiters of that call unwoken, as tokio's
//! does for its batch; the generation counter wraps after 2^62 `notify_waiters` calls
//! (2^30 on 32-bit targets), as tokio's.
//!
//! # Progress
//!
//! * **Lock-free** (a load and a compare-and-swap, retried only when another thread
//!   changed the word): `notify_one`/`notify_last` when no task waits; the first poll
//!   (or `enable`) of a `Notified` that finds a stored permit or a newer generation;
//!   [`Notify::notified`] itself (one load).
//! * **Blocking on the short internal mutex**: `notify_one`/`notify_last` when tasks
//!   wait, `notify_waiters` (always), a first poll that has to queue, every poll of a
//!   queued `Notified`, and the drop of a queued `Notified`. The critical sections
//!   are a few pointer updates (plus one `Waker::clone` when a waiter changes its
//!   waker), except that `notify_waiters` marks every queued node: O(waiters).
//!
//! # Linearization points
//!
//! * `notify_one`/`notify_last`: the successful compare-and-swap to `NOTIFIED`, or the
//!   unlink of the chosen node under the mutex.
//! * `notify_waiters`: the generation bump (under the mutex).
//! * A `Notified` completes at the compare-and-swap that takes the permit, at the load
//!   that sees a newer generation, or (for a queued one) at the unlink that marked it.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use strata_async::notify::Notify;
//!
//! let notify = Arc::new(Notify::new());
//! let n2 = Arc::clone(&notify);
//! let waiter = std::thread::spawn(move || {
//!     futures::executor::block_on(n2.notified()); // completes once notified
//! });
//! notify.notify_one(); // wakes the waiter, or stores a permit it will take
//! waiter.join().unwrap();
//! ```

use core::fmt;
use core::future::Future;
use core::marker::PhantomPinned;
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};

use strata_primitives::cell::UnsafeCell;
#[cfg(not(strata_loom))]
use strata_primitives::sync::Arc;
use strata_primitives::sync::atomic::{AtomicUsize, Ordering};
use strata_primitives::sync::{Mutex, MutexGuard, PoisonError};

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;

/// Kind: no permit, no waiter.
const EMPTY: usize = 0;
/// Kind: the waiter list is non-empty (set and cleared only under the mutex).
const WAITING: usize = 1;
/// Kind: one permit is stored.
const NOTIFIED: usize = 2;
/// The bits of the state word that hold the kind.
const KIND_MASK: usize = 3;
/// One step of the `notify_waiters` generation (the bits above the kind).
const GEN_ONE: usize = 4;
/// How many wakers `notify_waiters` takes out per lock hold (1 under loom, so that a
/// model with two waiters crosses a batch boundary).
const BATCH: usize = if cfg!(strata_loom) { 1 } else { 32 };

const fn kind(s: usize) -> usize {
    s & KIND_MASK
}

const fn generation(s: usize) -> usize {
    s & !KIND_MASK
}

const fn with_kind(s: usize, k: usize) -> usize {
    generation(s) | k
}

/// The ordering with which a lock-free `notify_one`/`notify_last` publishes its
/// permit: `Release`, or `Relaxed` under the test-only `--cfg strata_weaken`, which the
/// loom models must catch (a waiter taking the permit would then not see the writes
/// made before the notification).
const fn publish_ordering() -> Ordering {
    if cfg!(strata_weaken) {
        Ordering::Relaxed
    } else {
        Ordering::Release
    }
}

/// Notifies one task, or all waiting tasks, that an event happened.
///
/// See the [module docs](self) for the semantics, the algorithm and which paths are
/// lock-free. `Notify` is `Send + Sync`; share it by reference or in an `Arc`.
///
/// ```
/// use strata_async::notify::Notify;
///
/// let notify = Notify::new();
/// notify.notify_one(); // no waiter: stores the permit
/// futures::executor::block_on(notify.notified()); // takes it at once
/// ```
pub struct Notify {
    /// Kind in the low two bits, `notify_waiters` generation above.
    state: AtomicUsize,
    /// The waiter lists; every node's fields are accessed only under this mutex.
    lists: Mutex<Lists>,
}

/// Which notification marked a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Notification {
    /// Chosen by `notify_one` (`false`) or `notify_last` (`true`).
    One { lifo: bool },
    /// Completed by `notify_waiters`.
    All,
}

/// A waiter node, inside a pinned [`Notified`].
struct Node {
    /// Guarded by the owning `Notify`'s mutex.
    fields: UnsafeCell<Fields>,
    /// The node's address is in the lists while it is linked.
    _pin: PhantomPinned,
}

struct Fields {
    prev: Option<NonNull<Node>>,
    next: Option<NonNull<Node>>,
    /// In the waiting list (`notified == None`) or the draining list (`All`).
    linked: bool,
    waker: Option<Waker>,
    notified: Option<Notification>,
}

impl Node {
    fn new() -> Self {
        Node {
            fields: UnsafeCell::new(Fields {
                prev: None,
                next: None,
                linked: false,
                waker: None,
                notified: None,
            }),
            _pin: PhantomPinned,
        }
    }
}

/// Runs `f` on the fields of `node`.
///
/// # Safety
///
/// `node` points to a live node (linked nodes are live: a `Notified` unlinks its node
/// before its memory goes away), and the caller holds the mutex of the `Notify` whose
/// lists it is in or will be in, so no other access to the fields runs meanwhile.
unsafe fn with_node<R>(node: NonNull<Node>, f: impl FnOnce(&mut Fields) -> R) -> R {
    // SAFETY: `node` is live (caller's contract).
    let node = unsafe { node.as_ref() };
    node.fields.with_mut(|p| {
        // SAFETY: the caller holds the mutex, so this is the only access to the fields.
        f(unsafe { &mut *p })
    })
}

/// An intrusive doubly-linked list of nodes. Every method requires the mutex.
#[derive(Default)]
struct List {
    head: Option<NonNull<Node>>,
    tail: Option<NonNull<Node>>,
}

impl List {
    const fn new() -> Self {
        List {
            head: None,
            tail: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.head.is_none()
    }

    /// Links `node` at the back.
    ///
    /// # Safety
    ///
    /// As [`with_node`], and `node` is in no list.
    unsafe fn push_back(&mut self, node: NonNull<Node>) {
        let tail = self.tail;
        // SAFETY: caller's contract.
        unsafe {
            with_node(node, |f| {
                f.prev = tail;
                f.next = None;
                f.linked = true;
            })
        };
        match tail {
            // SAFETY: the tail is linked, hence live; the mutex is held.
            Some(t) => unsafe { with_node(t, |f| f.next = Some(node)) },
            None => self.head = Some(node),
        }
        self.tail = Some(node);
    }

    /// Unlinks `node` from this list.
    ///
    /// # Safety
    ///
    /// As [`with_node`], and `node` is linked in this list.
    unsafe fn remove(&mut self, node: NonNull<Node>) {
        // SAFETY: caller's contract.
        let (prev, next) = unsafe {
            with_node(node, |f| {
                f.linked = false;
                (f.prev.take(), f.next.take())
            })
        };
        match prev {
            // SAFETY: a neighbour in the list is linked, hence live.
            Some(p) => unsafe { with_node(p, |f| f.next = next) },
            None => self.head = next,
        }
        match next {
            // SAFETY: as above.
            Some(n) => unsafe { with_node(n, |f| f.prev = prev) },
            None => self.tail = prev,
        }
    }

    /// Unlinks and returns the front (`lifo == false`) or back node.
    fn pop(&mut self, lifo: bool) -> Option<NonNull<Node>> {
        let node = if lifo { self.tail } else { self.head }?;
        // SAFETY: `node` is linked in this list; every `List` method runs under the
        // mutex (the lists are only reachable through it).
        unsafe { self.remove(node) };
        Some(node)
    }

    /// Moves every node of `other` to the back of `self`.
    fn append(&mut self, other: &mut List) {
        let Some(first) = other.head.take() else {
            return;
        };
        match self.tail {
            Some(t) => {
                // SAFETY: both nodes are linked (hence live) and the mutex is held.
                unsafe { with_node(t, |f| f.next = Some(first)) };
                // SAFETY: as above.
                unsafe { with_node(first, |f| f.prev = Some(t)) };
            }
            None => self.head = Some(first),
        }
        self.tail = other.tail.take();
    }
}

/// The two lists behind the mutex.
struct Lists {
    /// Queued waiters, oldest first. Non-empty exactly when the kind is `WAITING`.
    waiting: List,
    /// Nodes completed by a `notify_waiters` call whose wakers are not yet taken.
    draining: List,
}

// SAFETY: the raw pointers in `Lists` point to nodes inside `Notified` futures that
// are `Send`; the nodes are only accessed under the `Notify`'s mutex, whichever
// thread holds it.
unsafe impl Send for Lists {}

/// Wakers taken out under the mutex, woken after it is released.
struct WakeBatch {
    wakers: [Option<Waker>; BATCH],
    len: usize,
}

impl WakeBatch {
    fn new() -> Self {
        WakeBatch {
            wakers: [const { None }; BATCH],
            len: 0,
        }
    }

    fn is_full(&self) -> bool {
        self.len == BATCH
    }

    fn push(&mut self, w: Waker) {
        if let Some(slot) = self.wakers.get_mut(self.len) {
            *slot = Some(w);
            self.len += 1;
        }
    }

    fn wake_all(mut self) {
        for w in self.wakers.iter_mut().take(self.len) {
            if let Some(w) = w.take() {
                w.wake();
            }
        }
    }
}

impl Notify {
    /// Creates a `Notify` with no permit and no waiter.
    ///
    /// ```
    /// use strata_async::notify::Notify;
    /// static NOTIFY: Notify = Notify::new();
    /// NOTIFY.notify_one();
    /// ```
    #[cfg(not(strata_loom))]
    pub const fn new() -> Self {
        Notify {
            state: AtomicUsize::new(EMPTY),
            lists: Mutex::new(Lists {
                waiting: List::new(),
                draining: List::new(),
            }),
        }
    }

    /// Creates a `Notify` with no permit and no waiter (loom's atomics are not
    /// `const`, so under the model this is a plain `fn`).
    #[cfg(strata_loom)]
    pub fn new() -> Self {
        Notify {
            state: AtomicUsize::new(EMPTY),
            lists: Mutex::new(Lists {
                waiting: List::new(),
                draining: List::new(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Lists> {
        // A panic while the mutex is held can only come from a `Waker::clone`, which
        // runs before the lists are touched, so they are consistent after poisoning.
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Returns a future that completes when this `Notify` is notified.
    ///
    /// The future is lazy: it joins the waiter queue on its first poll (or on
    /// [`Notified::enable`]). It does, however, snapshot the `notify_waiters`
    /// generation now, so a [`notify_waiters`](Self::notify_waiters) call made after
    /// this returns completes it even if it was never polled before that call.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe. Dropping the future at any point loses no notification: if
    /// `notify_one`/`notify_last` had chosen it, the notification passes to the next
    /// waiter, or becomes the stored permit if no one waits. A future that completed
    /// has consumed its notification; one that never received one consumes nothing.
    ///
    /// ```
    /// use strata_async::notify::Notify;
    ///
    /// let notify = Notify::new();
    /// let fut = notify.notified(); // created before the call below
    /// notify.notify_waiters();
    /// futures::executor::block_on(fut); // completes
    /// ```
    pub fn notified(&self) -> Notified<'_> {
        Notified {
            notify: self,
            waiter: Waiter::new(self.state.load(Ordering::SeqCst)),
        }
    }

    /// Like [`notified`](Self::notified), but the future owns an `Arc` of the
    /// `Notify`, so it is `'static` (it can be moved into a spawned task).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, exactly as [`notified`](Self::notified).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use strata_async::notify::Notify;
    ///
    /// let notify = Arc::new(Notify::new());
    /// let fut = Arc::clone(&notify).notified_owned();
    /// let t = std::thread::spawn(move || futures::executor::block_on(fut));
    /// notify.notify_one();
    /// t.join().unwrap();
    /// ```
    #[cfg(not(strata_loom))]
    pub fn notified_owned(self: Arc<Self>) -> OwnedNotified {
        let generation = self.state.load(Ordering::SeqCst);
        OwnedNotified {
            notify: self,
            waiter: Waiter::new(generation),
        }
    }

    /// Wakes the task that has waited longest, or stores a permit if no task waits.
    ///
    /// At most one permit is stored: calling this several times with no waiter lets
    /// only the next `notified().await` complete at once. Lock-free when no task waits.
    ///
    /// ```
    /// use strata_async::notify::Notify;
    ///
    /// let notify = Notify::new();
    /// notify.notify_one();
    /// notify.notify_one(); // still one permit
    /// futures::executor::block_on(notify.notified());
    /// ```
    pub fn notify_one(&self) {
        self.notify(false);
    }

    /// Like [`notify_one`](Self::notify_one), but wakes the task that started waiting
    /// most recently (LIFO).
    ///
    /// ```
    /// use strata_async::notify::Notify;
    ///
    /// let notify = Notify::new();
    /// notify.notify_last(); // no waiter: stores the permit
    /// futures::executor::block_on(notify.notified());
    /// ```
    pub fn notify_last(&self) {
        self.notify(true);
    }

    /// Wakes every task whose [`Notified`] future was created before this call (polled
    /// or not). Stores no permit, and leaves a stored permit in place.
    ///
    /// Takes the internal mutex; the wakers are woken outside it, in batches of 32.
    ///
    /// ```
    /// use strata_async::notify::Notify;
    ///
    /// let notify = Notify::new();
    /// notify.notify_waiters(); // no waiter: nothing is stored
    /// let mut fut = std::pin::pin!(notify.notified());
    /// assert!(!fut.as_mut().enable()); // not notified
    /// ```
    pub fn notify_waiters(&self) {
        let mut lists = self.lock();
        let s = self.state.load(Ordering::Relaxed);
        if kind(s) == WAITING {
            // Only lock holders change a `WAITING` word, so a plain store is exact.
            let mut cur = lists.waiting.head;
            while let Some(node) = cur {
                // SAFETY: `node` is linked (hence live) and the mutex is held.
                cur = unsafe {
                    with_node(node, |f| {
                        f.notified = Some(Notification::All);
                        f.next
                    })
                };
            }
            let Lists { waiting, draining } = &mut *lists;
            draining.append(waiting);
            self.state.store(
                generation(s).wrapping_add(GEN_ONE) | EMPTY,
                Ordering::Release,
            );
        } else {
            // The kind may be flipped EMPTY <-> NOTIFIED concurrently; the add leaves
            // the kind bits alone (and wraps the generation on overflow).
            self.state.fetch_add(GEN_ONE, Ordering::Release);
        }
        loop {
            let mut batch = WakeBatch::new();
            while !batch.is_full() {
                let Some(node) = lists.draining.pop(false) else {
                    break;
                };
                // SAFETY: `node` was linked until the pop above, so it is live (its
                // owner needs the mutex to go away) and the mutex is held.
                if let Some(w) = unsafe { with_node(node, |f| f.waker.take()) } {
                    batch.push(w);
                }
            }
            let more = !lists.draining.is_empty();
            drop(lists);
            batch.wake_all();
            if !more {
                return;
            }
            lists = self.lock();
        }
    }

    fn notify(&self, lifo: bool) {
        let mut s = self.state.load(Ordering::Relaxed);
        while kind(s) != WAITING {
            match self.state.compare_exchange(
                s,
                with_kind(s, NOTIFIED),
                publish_ordering(),
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => s = actual,
            }
        }
        let mut lists = self.lock();
        let waker = self.notify_locked(&mut lists, lifo);
        drop(lists);
        if let Some(w) = waker {
            w.wake();
        }
    }

    /// With the mutex held: chooses a waiter (front, or back if `lifo`) and returns its
    /// waker, or stores the permit if no one waits.
    fn notify_locked(&self, lists: &mut Lists, lifo: bool) -> Option<Waker> {
        let mut s = self.state.load(Ordering::Relaxed);
        loop {
            if kind(s) == WAITING {
                if let Some(node) = lists.waiting.pop(lifo) {
                    // SAFETY: `node` was linked until the pop, so it is live, and the
                    // mutex is held.
                    let waker = unsafe {
                        with_node(node, |f| {
                            f.notified = Some(Notification::One { lifo });
                            f.waker.take()
                        })
                    };
                    if lists.waiting.is_empty() {
                        self.state.store(with_kind(s, EMPTY), Ordering::Release);
                    }
                    return waker;
                }
                // `WAITING` with an empty list breaks an invariant; recover by
                // treating the word as `EMPTY` rather than losing the notification.
                debug_assert!(false, "WAITING with no waiter");
                s = with_kind(s, EMPTY);
                self.state.store(s, Ordering::Release);
                continue;
            }
            match self.state.compare_exchange(
                s,
                with_kind(s, NOTIFIED),
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => return None,
                Err(actual) => s = actual,
            }
        }
    }
}

impl Default for Notify {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.state.load(Ordering::Relaxed);
        f.debug_struct("Notify")
            .field("waiting", &(kind(s) == WAITING))
            .field("permit", &(kind(s) == NOTIFIED))
            .finish()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not queued yet.
    Init,
    /// The node is (or was, until a notifier unlinked it) in a list.
    Waiting,
    /// Completed (or cancelled): the node is in no list.
    Done,
}

/// The part of a `Notified` shared by the borrowed and owned forms.
struct Waiter {
    phase: Phase,
    /// The state word when the future was created (only its generation is used).
    snapshot: usize,
    node: Node,
}

impl Waiter {
    fn new(snapshot: usize) -> Self {
        Waiter {
            phase: Phase::Init,
            snapshot,
            node: Node::new(),
        }
    }

    /// Polls for the notification; `waker == None` registers interest only.
    ///
    /// The caller guarantees `self` is pinned (its node never moves after this) and
    /// that `notify` is the `Notify` this waiter was created from.
    fn poll(&mut self, notify: &Notify, waker: Option<&Waker>) -> Poll<()> {
        match self.phase {
            Phase::Done => Poll::Ready(()),
            Phase::Init => self.poll_first(notify, waker),
            Phase::Waiting => self.poll_again(notify, waker),
        }
    }

    fn poll_first(&mut self, notify: &Notify, waker: Option<&Waker>) -> Poll<()> {
        // Lock-free: a newer generation, or one CAS taking a stored permit.
        let s = notify.state.load(Ordering::Acquire);
        if generation(s) != generation(self.snapshot)
            || (kind(s) == NOTIFIED
                && notify
                    .state
                    .compare_exchange(s, with_kind(s, EMPTY), Ordering::Acquire, Ordering::Relaxed)
                    .is_ok())
        {
            self.phase = Phase::Done;
            return Poll::Ready(());
        }
        // Cloned before the lock so no foreign code runs under it.
        let new_waker = waker.cloned();
        let mut lists = notify.lock();
        let mut s = notify.state.load(Ordering::Acquire);
        loop {
            if generation(s) != generation(self.snapshot) {
                drop(lists);
                self.phase = Phase::Done;
                return Poll::Ready(());
            }
            let (new, ready) = match kind(s) {
                NOTIFIED => (with_kind(s, EMPTY), true),
                EMPTY => (with_kind(s, WAITING), false),
                _ => break,
            };
            match notify
                .state
                .compare_exchange(s, new, Ordering::Acquire, Ordering::Acquire)
            {
                Ok(_) if ready => {
                    drop(lists);
                    self.phase = Phase::Done;
                    return Poll::Ready(());
                }
                Ok(_) => break,
                Err(actual) => s = actual,
            }
        }
        let node = NonNull::from(&self.node);
        // SAFETY: the node is ours (live), in no list, and the mutex is held.
        unsafe {
            with_node(node, |f| {
                f.waker = new_waker;
                f.notified = None;
            });
            lists.waiting.push_back(node);
        }
        drop(lists);
        self.phase = Phase::Waiting;
        Poll::Pending
    }

    fn poll_again(&mut self, notify: &Notify, waker: Option<&Waker>) -> Poll<()> {
        let node = NonNull::from(&self.node);
        let mut lists = notify.lock();
        // SAFETY: the node is ours (live) and the mutex is held.
        let (notified, linked) = unsafe { with_node(node, |f| (f.notified, f.linked)) };
        if notified.is_some() {
            if linked {
                // Marked by `notify_waiters`, waker not yet taken: leave the draining
                // list ourselves.
                // SAFETY: a marked, linked node is in the draining list.
                unsafe { lists.draining.remove(node) };
            }
            // SAFETY: as above.
            let old = unsafe { with_node(node, |f| f.waker.take()) };
            drop(lists);
            drop(old);
            self.phase = Phase::Done;
            return Poll::Ready(());
        }
        let old = match waker {
            // SAFETY: as above.
            Some(w) => unsafe {
                with_node(node, |f| match &f.waker {
                    Some(cur) if cur.will_wake(w) => None,
                    _ => f.waker.replace(w.clone()),
                })
            },
            None => None,
        };
        drop(lists);
        drop(old);
        Poll::Pending
    }

    /// Leaves the queue; passes on a notification chosen for this waiter and not
    /// observed.
    fn cancel(&mut self, notify: &Notify) {
        if self.phase != Phase::Waiting {
            return;
        }
        self.phase = Phase::Done;
        let node = NonNull::from(&self.node);
        let mut lists = notify.lock();
        // SAFETY: the node is ours (live) and the mutex is held.
        let (notified, linked) = unsafe { with_node(node, |f| (f.notified, f.linked)) };
        let pass_on = match notified {
            None => {
                // SAFETY: an unmarked node of a waiting future is in the waiting list.
                unsafe { lists.waiting.remove(node) };
                if lists.waiting.is_empty() {
                    let s = notify.state.load(Ordering::Relaxed);
                    notify.state.store(with_kind(s, EMPTY), Ordering::Release);
                }
                None
            }
            Some(Notification::All) => {
                if linked {
                    // SAFETY: a marked, linked node is in the draining list.
                    unsafe { lists.draining.remove(node) };
                }
                None
            }
            Some(Notification::One { lifo }) => notify.notify_locked(&mut lists, lifo),
        };
        // SAFETY: as above.
        let old = unsafe { with_node(node, |f| f.waker.take()) };
        drop(lists);
        drop(old);
        if let Some(w) = pass_on {
            w.wake();
        }
    }
}

/// The future returned by [`Notify::notified`].
///
/// # Cancel safety
///
/// Cancel-safe: dropping it at any point loses no notification (a notification that
/// `notify_one`/`notify_last` gave it and that it did not observe passes to the next
/// waiter or becomes the stored permit). It is `Send + Sync`.
#[must_use = "futures do nothing unless polled or `.await`ed"]
pub struct Notified<'a> {
    notify: &'a Notify,
    waiter: Waiter,
}

// SAFETY: the node's fields (the only non-`Send` part: raw list pointers and the
// waker) are accessed only under the `Notify`'s mutex, from whichever thread; a
// `Waker` is `Send + Sync`, and `&Notify` is `Send` since `Notify` is `Sync`.
unsafe impl Send for Notified<'_> {}
// SAFETY: `&Notified` gives access to nothing (every method takes `Pin<&mut Self>`).
unsafe impl Sync for Notified<'_> {}

impl Notified<'_> {
    /// Joins the waiter queue without polling, so that a later `notify_one` or
    /// `notify_last` chooses this future instead of storing a permit. Returns `true`
    /// if the future is already notified (it then completes at its next poll).
    ///
    /// Call it before checking the condition you wait for, then `.await` the same
    /// future: a notification sent in between is not missed.
    ///
    /// ```
    /// use strata_async::notify::Notify;
    ///
    /// let notify = Notify::new();
    /// let mut fut = std::pin::pin!(notify.notified());
    /// assert!(!fut.as_mut().enable()); // queued, not notified
    /// notify.notify_one(); // chooses the queued future (stores no permit)
    /// assert!(fut.as_mut().enable());
    /// futures::executor::block_on(fut);
    /// ```
    pub fn enable(self: Pin<&mut Self>) -> bool {
        // SAFETY: nothing is moved out of `self`; the waiter stays pinned in place.
        let this = unsafe { self.get_unchecked_mut() };
        this.waiter.poll(this.notify, None).is_ready()
    }
}

impl Future for Notified<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: nothing is moved out of `self`; the waiter stays pinned in place.
        let this = unsafe { self.get_unchecked_mut() };
        this.waiter.poll(this.notify, Some(cx.waker()))
    }
}

impl Drop for Notified<'_> {
    fn drop(&mut self) {
        self.waiter.cancel(self.notify);
    }
}

impl fmt::Debug for Notified<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notified")
            .field("phase", &self.waiter.phase)
            .finish_non_exhaustive()
    }
}

/// The future returned by [`Notify::notified_owned`]: a [`Notified`] that owns an
/// `Arc` of its `Notify`.
///
/// # Cancel safety
///
/// Cancel-safe, exactly as [`Notified`].
#[cfg(not(strata_loom))]
#[must_use = "futures do nothing unless polled or `.await`ed"]
pub struct OwnedNotified {
    notify: Arc<Notify>,
    waiter: Waiter,
}

// SAFETY: as for `Notified`; `Arc<Notify>` is `Send + Sync`.
#[cfg(not(strata_loom))]
unsafe impl Send for OwnedNotified {}
// SAFETY: as for `Notified`.
#[cfg(not(strata_loom))]
unsafe impl Sync for OwnedNotified {}

#[cfg(not(strata_loom))]
impl OwnedNotified {
    /// As [`Notified::enable`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use strata_async::notify::Notify;
    ///
    /// let notify = Arc::new(Notify::new());
    /// let mut fut = std::pin::pin!(Arc::clone(&notify).notified_owned());
    /// assert!(!fut.as_mut().enable());
    /// ```
    pub fn enable(self: Pin<&mut Self>) -> bool {
        // SAFETY: nothing is moved out of `self`; the waiter stays pinned in place.
        let this = unsafe { self.get_unchecked_mut() };
        this.waiter.poll(&this.notify, None).is_ready()
    }
}

#[cfg(not(strata_loom))]
impl Future for OwnedNotified {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: nothing is moved out of `self`; the waiter stays pinned in place.
        let this = unsafe { self.get_unchecked_mut() };
        this.waiter.poll(&this.notify, Some(cx.waker()))
    }
}

#[cfg(not(strata_loom))]
impl Drop for OwnedNotified {
    fn drop(&mut self) {
        self.waiter.cancel(&self.notify);
    }
}

#[cfg(not(strata_loom))]
impl fmt::Debug for OwnedNotified {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedNotified")
            .field("phase", &self.waiter.phase)
            .finish_non_exhaustive()
    }
}
