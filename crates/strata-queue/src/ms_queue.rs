//! The Michael–Scott unbounded MPMC queue.
//!
//! M. Michael and M. Scott, *Simple, fast, and practical non-blocking and blocking
//! concurrent queue algorithms*, PODC 1996, with the hazard-pointer discipline of
//! M. Michael, *Hazard pointers*, IEEE TPDS 2004 (§4, the queue example).
//!
//! # The algorithm
//!
//! A singly linked list with a dummy node at its head. `head` points to the dummy,
//! `tail` to the last node or, transiently, the one before it.
//! * `push` links a new node after the last one with a CAS on that node's `next`
//!   (**the linearization point**), then swings `tail` forward (any thread that finds
//!   `tail` lagging helps swing it).
//! * `pop` reads the dummy's successor; if there is none the queue is empty (**the
//!   linearization point is the load of the dummy's `next` that returned null**);
//!   otherwise it swings `head` to the successor with a CAS (**the linearization point**),
//!   takes the value out of it (the successor becomes the new dummy) and retires the old
//!   dummy through the reclamation scheme.
//!
//! # Progress
//!
//! Lock-free: a CAS fails only because another thread's CAS succeeded. No operation
//! waits for another thread: a preempted pusher leaves `tail` lagging by one node, and
//! the next thread to see it swings it.
//!
//! # Reclamation
//!
//! Nodes are retired through any [`Reclaim`] scheme: epochs (the default, one pin per
//! operation) or hazard pointers (two per `pop`: the dummy, and its successor whose
//! value is read; one per `push`). With hazard pointers, `pop` protects the successor
//! and then re-checks that the dummy is still the head, which is what makes the
//! successor safe to read (Michael 2004, Fig. 7).

use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::ptr;

use strata_primitives::CachePadded;
use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicPtr, Ordering};
use strata_reclaim::{Protect, Reclaim};

use crate::DefaultReclaim;

struct Node<T> {
    /// Initialized in every node except the current dummy (whose value was taken, or
    /// which is the initial dummy).
    value: UnsafeCell<MaybeUninit<T>>,
    next: AtomicPtr<Node<T>>,
}

impl<T> Node<T> {
    fn boxed(value: MaybeUninit<T>) -> *mut Node<T> {
        Box::into_raw(Box::new(Node {
            value: UnsafeCell::new(value),
            next: AtomicPtr::new(ptr::null_mut()),
        }))
    }
}

/// An unbounded lock-free MPMC FIFO queue (Michael & Scott 1996).
///
/// `R` chooses the memory reclamation scheme (see [`strata_reclaim`]); the default is
/// the process-wide epoch domain.
///
/// ```
/// use strata_queue::MsQueue;
///
/// let q = MsQueue::new();
/// q.push(1);
/// q.push(2);
/// assert_eq!(q.pop(), Some(1));
/// assert_eq!(q.pop(), Some(2));
/// assert_eq!(q.pop(), None);
/// ```
pub struct MsQueue<T, R: Reclaim = DefaultReclaim> {
    head: CachePadded<AtomicPtr<Node<T>>>,
    tail: CachePadded<AtomicPtr<Node<T>>>,
    reclaim: R,
    _owns: PhantomData<T>,
}

// SAFETY: values are moved in by `push` and out by `pop`, never shared by reference,
// so sending or sharing the queue needs only `T: Send`; the scheme is `Send + Sync` by
// the `Reclaim` bound.
unsafe impl<T: Send, R: Reclaim> Send for MsQueue<T, R> {}
// SAFETY: as above.
unsafe impl<T: Send, R: Reclaim> Sync for MsQueue<T, R> {}

#[cfg(not(strata_loom))]
impl<T> MsQueue<T> {
    /// An empty queue on the default epoch domain.
    pub fn new() -> Self {
        Self::with_reclaim(DefaultReclaim::default())
    }
}

#[cfg(not(strata_loom))]
impl<T> Default for MsQueue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, R: Reclaim> MsQueue<T, R> {
    /// An empty queue whose nodes are reclaimed through `reclaim`.
    pub fn with_reclaim(reclaim: R) -> Self {
        let dummy = Node::boxed(MaybeUninit::uninit());
        MsQueue {
            head: CachePadded::new(AtomicPtr::new(dummy)),
            tail: CachePadded::new(AtomicPtr::new(dummy)),
            reclaim,
            _owns: PhantomData,
        }
    }

    /// Appends `value` at the back. Lock-free.
    pub fn push(&self, value: T) {
        let node = Node::boxed(MaybeUninit::new(value));
        let mut g = self.reclaim.guard();
        loop {
            let tail = g.protect(&self.tail);
            // SAFETY: `tail` is never null (there is always a dummy) and is protected.
            let next = unsafe { &(*tail).next }.load(Ordering::Acquire);
            // Acquire: re-validate that `tail` is still the tail, so `next` belongs to it.
            if tail != self.tail.load(Ordering::Acquire) {
                continue;
            }
            if next.is_null() {
                // Release: publishes the node's value; pairs with the Acquire loads of
                // `next` in `pop` and here. The linearization point of `push`.
                // SAFETY: `tail` is protected.
                if unsafe { &(*tail).next }
                    .compare_exchange(
                        ptr::null_mut(),
                        node,
                        crate::publish_ordering(),
                        Ordering::Relaxed,
                    )
                    .is_ok()
                {
                    // Release: pairs with the Acquire load of `tail` above; failure is
                    // fine, someone helped.
                    let _ = self.tail.compare_exchange(
                        tail,
                        node,
                        Ordering::Release,
                        Ordering::Relaxed,
                    );
                    return;
                }
            } else {
                // Help a lagging pusher swing `tail`.
                let _ =
                    self.tail
                        .compare_exchange(tail, next, Ordering::Release, Ordering::Relaxed);
            }
        }
    }

    /// Removes the value at the front, or returns `None` if the queue is empty.
    /// Lock-free.
    pub fn pop(&self) -> Option<T> {
        let mut gh = self.reclaim.guard();
        let mut gn = self.reclaim.guard();
        loop {
            let head = gh.protect(&self.head);
            // SAFETY: `head` is never null and is protected.
            let next = gn.protect(unsafe { &(*head).next });
            // Acquire: `head` still the head means `next` was not dequeued (and so not
            // retired) before `gn` protected it.
            if head != self.head.load(Ordering::Acquire) {
                continue;
            }
            if next.is_null() {
                return None; // linearization point of an empty pop: the load of `next`
            }
            let tail = self.tail.load(Ordering::Acquire);
            if head == tail {
                // `tail` lags behind a completed link: help, then retry.
                let _ =
                    self.tail
                        .compare_exchange(tail, next, Ordering::Release, Ordering::Relaxed);
                continue;
            }
            // AcqRel: the linearization point of a successful pop.
            if self
                .head
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // SAFETY: `next` is protected by `gn`; winning the CAS made us the only
                // thread that takes its value, which its pusher initialized and
                // published with the Release CAS our protect load acquired. It is now
                // the dummy: nobody reads its value again.
                let next_ref = unsafe { &*next };
                let value = next_ref.value.with(|v| {
                    // SAFETY: as above: initialized, published, and taken only by us.
                    unsafe { ptr::read(v).assume_init() }
                });
                // SAFETY: the old dummy is unlinked (head moved past it), came from
                // Box::into_raw, and only the CAS winner retires it. Its value is either
                // uninitialized or already taken, and `MaybeUninit` does not drop it.
                unsafe { gh.retire(head) };
                return Some(value);
            }
        }
    }

    /// `true` if the queue had no value at the moment of the check.
    pub fn is_empty(&self) -> bool {
        let mut gh = self.reclaim.guard();
        let head = gh.protect(&self.head);
        // SAFETY: `head` is never null and is protected.
        unsafe { &(*head).next }.load(Ordering::Acquire).is_null()
    }

    /// The reclamation scheme this queue uses.
    pub fn reclaim(&self) -> &R {
        &self.reclaim
    }
}

impl<T, R: Reclaim> Drop for MsQueue<T, R> {
    fn drop(&mut self) {
        // Exclusive access: no other thread can reach the nodes still linked. Nodes
        // retired earlier belong to the reclamation scheme.
        let dummy = self.head.load(Ordering::Relaxed);
        // SAFETY: the dummy came from Box::into_raw; its value is not initialized.
        let mut next = unsafe { &(*dummy).next }.load(Ordering::Relaxed);
        // SAFETY: as above; dropping a Node does not drop its MaybeUninit value.
        drop(unsafe { Box::from_raw(dummy) });
        while !next.is_null() {
            // SAFETY: every linked node after the dummy came from Box::into_raw and
            // holds an initialized value that nobody took.
            let node = unsafe { Box::from_raw(next) };
            next = node.next.load(Ordering::Relaxed);
            node.value.with(|v| {
                // SAFETY: see above: initialized and not taken.
                drop(unsafe { ptr::read(v).assume_init() })
            });
        }
    }
}

impl<T, R: Reclaim> fmt::Debug for MsQueue<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsQueue")
            .field("is_empty", &self.is_empty())
            .finish_non_exhaustive()
    }
}

impl<T, R: Reclaim> Extend<T> for MsQueue<T, R> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for v in iter {
            self.push(v);
        }
    }
}

/// Pops the values of a queue in order.
#[derive(Debug)]
pub struct IntoIter<T, R: Reclaim>(MsQueue<T, R>);

impl<T, R: Reclaim> Iterator for IntoIter<T, R> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.0.pop()
    }
}

impl<T, R: Reclaim> IntoIterator for MsQueue<T, R> {
    type Item = T;
    type IntoIter = IntoIter<T, R>;
    fn into_iter(self) -> IntoIter<T, R> {
        IntoIter(self)
    }
}

#[cfg(not(strata_loom))]
impl<T> FromIterator<T> for MsQueue<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut q = MsQueue::new();
        q.extend(iter);
        q
    }
}
