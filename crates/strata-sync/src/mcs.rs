//! An MCS queue spinlock: FIFO, each waiter spinning on its own cache line.
//!
//! [`McsLock<T>`] is the queue lock of Mellor-Crummey and Scott, "Algorithms for
//! scalable synchronization on shared-memory multiprocessors" (ACM TOCS 9(1), 1991).
//! It is meant for short, kernel-style critical sections run by no more threads than
//! there are cores.
//!
//! # The algorithm
//!
//! The lock is one word, `tail`: a pointer to the queue node of the last thread in the
//! queue, or null when the lock is free. Every acquisition brings a *node* (a waiting
//! flag and a `next` link, padded to a cache line with [`CachePadded`]):
//!
//! * **Enqueue.** The acquirer sets its node to `waiting = true, next = null` and
//!   swaps `tail` to point at it (`AcqRel`). If the old tail was null, the lock was
//!   free and it is now held. Otherwise the old tail is the *predecessor*: the acquirer
//!   links itself with `predecessor.next = node` (`Release`) and spins on **its own**
//!   node's flag until it reads `false` (`Acquire`). So every waiter spins on a
//!   different cache line, and a release touches only the successor's line.
//! * **Release.** The holder reads its `next` (`Acquire`). If there is a successor it
//!   hands the lock over with `successor.waiting = false` (`Release`). If there is
//!   none, it tries to swing `tail` from its own node back to null (`Release` CAS); if
//!   that CAS fails, a successor has already swapped `tail` but has not yet linked
//!   itself (the window between its swap and its `next` store), so the holder waits for
//!   the link and then hands over.
//!
//! The order of the swaps on `tail` is the order in which threads get the lock: FIFO,
//! no barging. [`McsLock::try_lock`] succeeds only when the queue is empty (a CAS of
//! `tail` from null), so it never jumps the queue either.
//!
//! # Where the node lives
//!
//! A node must stay valid from the enqueue until the release has handed the lock on
//! (the predecessor writes into it, and the successor is written through it).
//!
//! * [`McsLock::lock`] and [`McsLock::try_lock`] take a node from a small array of
//!   [`LOCAL_NODES`] nodes per thread (allocated on the thread's first use, with a bit
//!   map of those in use), so any number of guards of different locks can be held at
//!   once and dropped in any order. When all of them are in use (more than
//!   `LOCAL_NODES` MCS guards held at once by one thread) the node is a fresh heap
//!   allocation, freed when its guard is dropped. A guard is `!Send`: its node belongs
//!   to its thread's array. If a thread's thread-local is destroyed (at thread exit)
//!   while a guard still uses one of its nodes (a guard dropped by another
//!   thread-local's destructor), the array is freed by the last such guard instead.
//! * [`McsLock::with`] runs a closure under the lock with the node on the caller's
//!   stack: no thread-local lookup, no allocation.
//!
//! # Waiting, and when to pick which lock
//!
//! A waiter spins with [`strata_primitives::hint::spin_loop`] for a bounded
//! number of rounds and then calls `yield_now` on every round, so that with more
//! threads than cores a waiter gives its core to the thread it waits for and nothing
//! livelocks. It never parks.
//!
//! **MCS is a spinlock with a strict queue.** A queue member that is preempted (the
//! holder, or a waiter that is next in line when the lock is handed to it, or a
//! successor preempted between its swap and its link) stalls everyone behind it until
//! the scheduler runs it again. So pick `McsLock` when the threads that contend are no
//! more than the cores and the critical sections are a few hundred nanoseconds at most:
//! its FIFO hand-off is fair and each waiter spins on its own line, so the lock line
//! does not bounce between waiters. With more threads than cores, long or blocking
//! critical sections, or when you need a thread to sleep, pick a parking lock
//! (`AdaptiveMutex`, `std::sync::Mutex`). Uncontended, an MCS acquire is one swap
//! and a release one CAS, plus finding a node (a thread-local lookup, or none with
//! [`McsLock::with`]), where a test-and-set lock such as `std::sync::Mutex` does one
//! CAS each way and nothing else; so at one or two threads MCS is not expected to be
//! faster than those, and what it offers there is FIFO fairness. Its spinning on a
//! private line matters under contention from several cores.
//!
//! Measured on a 2-core VM (`strata-bench --filter lock/`, run of
//! `bench/results/2026-11-24-locks.csv`, `McsLock::lock` with its guard):
//!
//! | section | threads | `McsLock` ÷ `AdaptiveMutex` | `McsLock` ÷ std `Mutex` |
//! |---|---|---:|---:|
//! | add 1 to a `u64` | 1 | 0.51 | 0.47 |
//! | add 1 to a `u64` | 2 | 0.13 | 0.40 |
//! | add to 64 `u64`s | 1 | 0.92 | 0.92 |
//! | add to 64 `u64`s | 2 | 0.27 | 0.99 |
//! | either | 4, 8, 16 (oversubscribed) | ≤ 0.01 | ≤ 0.03 |
//!
//! At one thread the gap is the node lookup (93 instructions a lock and unlock
//! against 29 for `AdaptiveMutex`); at two, every hand-off moves the lock to the other
//! core, where `AdaptiveMutex` lets the thread that holds the line take it again; with
//! more threads than cores a preempted queue member stalls the queue (0.2–0.6 M
//! acquisitions/s). So on this machine `AdaptiveMutex` is the better choice
//! everywhere; `McsLock` is for FIFO order among at most as many threads as cores.
//!
//! # Poisoning
//!
//! None, as with other spinlocks: a panic while a guard is held releases the lock
//! (the guard's `Drop` runs while unwinding) and leaves the data as the panicking code
//! left it.
//!
//! # Progress and linearization
//!
//! **Blocking** (a spinlock). An acquisition takes effect at its swap of `tail` (or at
//! the successful CAS of `try_lock`), which fixes its place in the FIFO order; it owns
//! the lock from the moment it reads its flag `false` (or immediately, if the old tail
//! was null). A release takes effect at its hand-off store or its CAS of `tail` to null.
//!
//! # Example
//!
//! ```
//! use strata_sync::mcs::McsLock;
//!
//! let counter = McsLock::new(0u64);
//! std::thread::scope(|s| {
//!     for _ in 0..2 {
//!         s.spawn(|| {
//!             for _ in 0..1000 {
//!                 *counter.lock() += 1;
//!             }
//!             // The node on the stack: no thread-local lookup.
//!             counter.with(|c| *c += 1);
//!         });
//!     }
//! });
//! assert_eq!(counter.into_inner(), 2002);
//! ```

use core::cell::Cell;
use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};
use core::ptr;

use strata_primitives::CachePadded;
use strata_primitives::cell::UnsafeCell;
use strata_primitives::hint::spin_loop;
use strata_primitives::sync::atomic::{AtomicBool, AtomicPtr, Ordering};
use strata_primitives::thread;

/// How many queue nodes each thread keeps for [`McsLock::lock`] and
/// [`McsLock::try_lock`]: a thread holding more MCS guards at once than this allocates
/// a node for each further one.
pub const LOCAL_NODES: usize = 4;

/// Rounds of `spin_loop` before a waiter starts yielding its time slice.
const SPINS_BEFORE_YIELD: u32 = 64;

/// The ordering of the store that hands the lock to the successor: `Release`, or
/// `Relaxed` under the test-only `--cfg strata_weaken`, which is how the loom models
/// show that they detect a missing hand-off publication (the models marked
/// `should_panic` under that cfg).
const fn handoff_ordering() -> Ordering {
    if cfg!(strata_weaken) {
        Ordering::Relaxed
    } else {
        Ordering::Release
    }
}

/// A queue node.
struct Node {
    /// `true` while the owner waits for the lock; its predecessor stores `false` to
    /// hand the lock over.
    waiting: AtomicBool,
    /// The successor's node, linked by the successor after it swapped `tail`.
    next: AtomicPtr<QNode>,
}

/// A node on a cache line of its own.
type QNode = CachePadded<Node>;

fn new_node() -> QNode {
    CachePadded::new(Node {
        waiting: AtomicBool::new(false),
        next: AtomicPtr::new(ptr::null_mut()),
    })
}

/// Waits a round: `spin_loop` for the first [`SPINS_BEFORE_YIELD`] rounds, then
/// `yield_now`.
#[inline]
fn wait_round(rounds: &mut u32) {
    if *rounds < SPINS_BEFORE_YIELD {
        *rounds += 1;
        spin_loop();
    } else {
        thread::yield_now();
    }
}

/// A FIFO queue spinlock (MCS) protecting a `T`. See the [module docs](self) for the
/// algorithm, where the queue node lives, and when to pick it over a parking lock.
pub struct McsLock<T: ?Sized> {
    /// The last node of the queue, or null when the lock is free.
    tail: CachePadded<AtomicPtr<QNode>>,
    /// The lock's node in the runtime lock-order validator (feature `lockdep` only).
    #[cfg(feature = "lockdep")]
    class: crate::lockdep::LockClass,
    /// The protected value; accessed only by the holder.
    data: UnsafeCell<T>,
}

// SAFETY: the value is only reached by the lock holder (one thread at a time, with the
// `Acquire`/`Release` hand-offs of the module docs), so sharing the lock only moves
// the `T` between threads: `T: Send` suffices, as for `std::sync::Mutex`.
unsafe impl<T: ?Sized + Send> Sync for McsLock<T> {}

impl<T> McsLock<T> {
    /// A free lock around `value`.
    #[cfg(not(strata_loom))]
    pub const fn new(value: T) -> Self {
        Self {
            tail: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            #[cfg(feature = "lockdep")]
            class: crate::lockdep::LockClass::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// A free lock around `value` (not `const` under loom, whose atomics are not).
    #[cfg(strata_loom)]
    pub fn new(value: T) -> Self {
        Self {
            tail: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            #[cfg(feature = "lockdep")]
            class: crate::lockdep::LockClass::new(),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the lock and returns the value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> McsLock<T> {
    /// Acquires the lock, spinning (and then yielding) in FIFO order behind the threads
    /// already queued. The guard releases it when dropped. The queue node comes from
    /// the thread's [`LOCAL_NODES`] nodes (see the [module docs](self#where-the-node-lives)).
    ///
    /// Locking a lock this thread already holds deadlocks.
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock(&self) -> McsGuard<'_, T> {
        let node = NodeHandle::take();
        // SAFETY: the node is not in any queue (fresh from `take`) and stays valid
        // until the guard's `drop` has released it.
        unsafe { self.acquire(node.ptr()) };
        McsGuard {
            lock: self,
            node,
            _not_send: PhantomData,
        }
    }

    /// Acquires the lock only if it is free and nobody is queued (one CAS; it never
    /// waits and never jumps the queue).
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn try_lock(&self) -> Option<McsGuard<'_, T>> {
        if self.tail.load(Ordering::Relaxed).is_null() {
            let node = NodeHandle::take();
            // SAFETY: as in `lock`; on failure the node was never published.
            if unsafe { self.try_acquire(node.ptr()) } {
                return Some(McsGuard {
                    lock: self,
                    node,
                    _not_send: PhantomData,
                });
            }
        }
        None
    }

    /// Runs `f` on the value under the lock, with the queue node on this stack frame
    /// (no thread-local lookup and never an allocation). The lock is released when
    /// `f` returns or panics.
    ///
    /// ```
    /// let lock = strata_sync::mcs::McsLock::new(vec![1, 2]);
    /// let len = lock.with(|v| {
    ///     v.push(3);
    ///     v.len()
    /// });
    /// assert_eq!(len, 3);
    /// ```
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        /// Releases the lock when dropped, also while unwinding.
        struct Release<'a, T: ?Sized> {
            lock: &'a McsLock<T>,
            node: *const QNode,
        }
        impl<T: ?Sized> Drop for Release<'_, T> {
            fn drop(&mut self) {
                // SAFETY: this lock was acquired with this node, which lives in the
                // frame of `with` below, past this drop.
                unsafe { self.lock.release(self.node) };
            }
        }
        let node = new_node();
        // SAFETY: the node is new, and `with` does not return before `Release` has
        // released it (also on unwinding), so it outlives its time in the queue.
        unsafe { self.acquire(&node) };
        let release = Release {
            lock: self,
            node: &node,
        };
        // SAFETY: we hold the lock, so no other reference to the value exists; the
        // reference does not outlive `f`.
        let r = self.data.with_mut(|p| f(unsafe { &mut *p }));
        drop(release);
        r
    }

    /// Whether the lock is held (or waited for) right now. A snapshot: it may have
    /// changed by the time the caller looks at it.
    #[inline]
    pub fn is_locked(&self) -> bool {
        !self.tail.load(Ordering::Relaxed).is_null()
    }

    /// The value, through the exclusive borrow of the lock (no locking needed).
    #[inline]
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` excludes every guard and every other access.
        self.data.with_mut(|p| unsafe { &mut *p })
    }

    /// Enqueues `node` and waits until this thread holds the lock; returns the
    /// predecessor's node (null if the lock was free). Every acquisition path but
    /// `try_lock` goes through here.
    ///
    /// # Safety
    ///
    /// `node` points to a node that is in no queue and stays valid until
    /// [`release`](Self::release) with it has returned.
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    unsafe fn acquire(&self, node: *const QNode) -> *mut QNode {
        #[cfg(feature = "lockdep")]
        self.class.before_acquire();
        // SAFETY: the caller guarantees that `node` is valid.
        let n = unsafe { &*node };
        n.waiting.store(true, Ordering::Relaxed);
        n.next.store(ptr::null_mut(), Ordering::Relaxed);
        // `AcqRel`: `Release` publishes the initialization above to the next
        // acquirer, which links into `next`; `Acquire` takes the last holder's
        // release CAS when the lock was free.
        let pred = self.tail.swap(node.cast_mut(), Ordering::AcqRel);
        if !pred.is_null() {
            // SAFETY: `pred` is in the queue ahead of us; its owner cannot release
            // (and so free or reuse it) before it has read this link, which it waits
            // for when its CAS of `tail` fails because of our swap.
            unsafe { (&*pred).next.store(node.cast_mut(), Ordering::Release) };
            let mut rounds = 0;
            // `Acquire`: pairs with the predecessor's hand-off store.
            while n.waiting.load(Ordering::Acquire) {
                wait_round(&mut rounds);
            }
        }
        self.acquired();
        pred
    }

    /// Takes the lock with `node` if the queue is empty.
    ///
    /// # Safety
    ///
    /// As for [`acquire`](Self::acquire), if it returns `true`.
    #[inline]
    #[cfg_attr(feature = "lockdep", track_caller)]
    unsafe fn try_acquire(&self, node: *const QNode) -> bool {
        // SAFETY: the caller guarantees that `node` is valid.
        let n = unsafe { &*node };
        n.next.store(ptr::null_mut(), Ordering::Relaxed);
        // `Acquire` as the swap of `acquire`; `Release` publishes `next = null`.
        let ok = self
            .tail
            .compare_exchange(
                ptr::null_mut(),
                node.cast_mut(),
                Ordering::AcqRel,
                Ordering::Relaxed,
            )
            .is_ok();
        if ok {
            self.acquired();
        }
        ok
    }

    /// Called once the lock is held, by every acquisition path (the place for a
    /// lock-order validator's hook).
    #[inline(always)]
    #[cfg_attr(feature = "lockdep", track_caller)]
    fn acquired(&self) {
        #[cfg(feature = "lockdep")]
        self.class.acquired();
    }

    /// Called before the lock is released, by every release path (the place for a
    /// lock-order validator's hook).
    #[inline(always)]
    fn releasing(&self) {
        #[cfg(feature = "lockdep")]
        self.class.release();
    }

    /// Releases the lock held with `node`: hands it to the successor, or empties the
    /// queue.
    ///
    /// # Safety
    ///
    /// This thread holds the lock, acquired with `node`.
    #[inline]
    unsafe fn release(&self, node: *const QNode) {
        self.releasing();
        // SAFETY: the caller holds the lock with this node, which is valid.
        let n = unsafe { &*node };
        // `Acquire`: the successor's initialization of its node (`waiting = true`)
        // happens before our hand-off store to it.
        let mut next = n.next.load(Ordering::Acquire);
        if next.is_null() {
            // `Release`: our critical section happens before the next acquirer's swap
            // (`Acquire`) that finds the lock free.
            if self
                .tail
                .compare_exchange(
                    node.cast_mut(),
                    ptr::null_mut(),
                    Ordering::Release,
                    Ordering::Relaxed,
                )
                .is_ok()
            {
                return;
            }
            // A successor has swapped `tail` but not linked itself yet: wait for it.
            let mut rounds = 0;
            loop {
                next = n.next.load(Ordering::Acquire);
                if !next.is_null() {
                    break;
                }
                wait_round(&mut rounds);
            }
        }
        // SAFETY: the successor's node stays valid until it has the lock and releases
        // it, which cannot happen before this store. It is our last access to it.
        unsafe { (&*next).waiting.store(false, handoff_ordering()) };
    }
}

impl<T: Default> Default for McsLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for McsLock<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for McsLock<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("McsLock");
        match self.try_lock() {
            Some(guard) => d.field("data", &&*guard),
            None => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Holds an [`McsLock`]; releases it (handing it to the next waiter in line) when
/// dropped. `!Send`: its queue node belongs to the thread that locked.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct McsGuard<'a, T: ?Sized> {
    lock: &'a McsLock<T>,
    node: NodeHandle,
    /// `!Send` (the node may be in this thread's array) and `!Sync` (restored below
    /// for `T: Sync`).
    _not_send: PhantomData<*const ()>,
}

// SAFETY: a shared guard gives only `&T`, so sharing it between threads is sharing a
// `&T`, which `T: Sync` allows. The node is only used by `drop`, on the owner thread.
unsafe impl<T: ?Sized + Sync> Sync for McsGuard<'_, T> {}

impl<T: ?Sized> Deref for McsGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the lock, so nothing writes the value while the
        // guard (and so this borrow of it) lives.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T: ?Sized> DerefMut for McsGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the lock and is borrowed mutably, so this is the
        // only reference to the value while it lives.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T: ?Sized> Drop for McsGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // SAFETY: the guard holds the lock, acquired with this node, which stays valid
        // until the handle is dropped after this.
        unsafe { self.lock.release(self.node.ptr()) };
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for McsGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for McsGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A thread's queue nodes for `lock`/`try_lock`, with the bit map of those in use.
/// Only its thread touches the map (guards are `!Send`).
struct NodeArray {
    nodes: [QNode; LOCAL_NODES],
    used: Cell<u32>,
    /// The thread-local that owned the array is gone: the last node to be freed frees
    /// the array.
    orphaned: Cell<bool>,
}

/// The thread-local owner of this thread's [`NodeArray`], allocated on first use and
/// held as a raw pointer (never a `Box`: freeing it must not assert uniqueness over
/// nodes still in use).
struct LocalNodes {
    array: Cell<*const NodeArray>,
}

impl Drop for LocalNodes {
    fn drop(&mut self) {
        let array = self.array.get();
        if array.is_null() || (cfg!(strata_loom) && std::thread::panicking()) {
            // (Under a failing loom model, loom's state is gone: leak.)
            return;
        }
        // SAFETY: made by `Box::into_raw` in `NodeHandle::take`; freed either here or
        // by the last `NodeHandle` after this, never both (the `orphaned` flag).
        let a = unsafe { &*array };
        if a.used.get() == 0 {
            // SAFETY: as above, and no node is in use.
            drop(unsafe { Box::from_raw(array.cast_mut()) });
        } else {
            // A guard still uses a node (a guard dropped after this thread-local, from
            // another thread-local's destructor): its handle frees the array.
            a.orphaned.set(true);
        }
    }
}

#[cfg(not(strata_loom))]
strata_primitives::thread_local! {
    /// This thread's queue nodes.
    static NODES: LocalNodes = const { LocalNodes { array: Cell::new(ptr::null()) } };
}

#[cfg(strata_loom)]
strata_primitives::thread_local! {
    /// This thread's queue nodes.
    static NODES: LocalNodes = LocalNodes { array: Cell::new(ptr::null()) };
}

/// A node of this thread's array (`array` non-null), or a heap node (`array` null,
/// freed on drop).
struct NodeHandle {
    node: *const QNode,
    array: *const NodeArray,
    slot: u32,
}

impl NodeHandle {
    /// A free node of this thread's array, or a new heap node if all are in use (or
    /// the thread's array is gone, during thread exit).
    #[inline]
    fn take() -> Self {
        let local = NODES.try_with(|local| {
            let mut array = local.array.get();
            if array.is_null() {
                array = Box::into_raw(Box::new(NodeArray {
                    nodes: core::array::from_fn(|_| new_node()),
                    used: Cell::new(0),
                    orphaned: Cell::new(false),
                }));
                local.array.set(array);
            }
            // SAFETY: a live array (freed only when no node is in use and its owner
            // is gone, neither of which holds while the thread-local is alive).
            let a = unsafe { &*array };
            let used = a.used.get();
            let free = (!used).trailing_zeros();
            if free as usize >= LOCAL_NODES {
                return None;
            }
            a.used.set(used | 1 << free);
            Some(Self {
                node: &a.nodes[free as usize],
                array,
                slot: free,
            })
        });
        match local {
            Ok(Some(h)) => h,
            _ => Self {
                node: Box::into_raw(Box::new(new_node())),
                array: ptr::null(),
                slot: 0,
            },
        }
    }

    #[inline]
    fn ptr(&self) -> *const QNode {
        self.node
    }
}

impl Drop for NodeHandle {
    #[inline]
    fn drop(&mut self) {
        if self.array.is_null() {
            // SAFETY: a heap node comes from `Box::into_raw` in `take`, and its lock
            // has been released (the guard's drop runs first), so nobody uses it.
            drop(unsafe { Box::from_raw(self.node.cast_mut()) });
            return;
        }
        // SAFETY: the array stays allocated while one of its nodes is in use (ours).
        let a = unsafe { &*self.array };
        let used = a.used.get() & !(1 << self.slot);
        a.used.set(used);
        if used == 0 && a.orphaned.get() {
            // SAFETY: the owner is gone and no node is in use: we are the last user.
            drop(unsafe { Box::from_raw(self.array.cast_mut()) });
        }
    }
}

#[cfg(test)]
#[path = "mcs_tests.rs"]
mod tests;
