//! The Treiber stack.
//!
//! R. K. Treiber, *Systems programming: coping with parallelism*, IBM Research Report
//! RJ 5118, 1986: a singly linked list whose top is swung with a CAS.
//!
//! * `push` links a new node above the top with a CAS on `top` (**the linearization
//!   point**).
//! * `pop` protects the top, reads its successor, and swings `top` to it with a CAS
//!   (**the linearization point**), or finds `top` null (**the linearization point of an
//!   empty pop is that load**). The popped node is retired through the reclamation
//!   scheme, which is also what rules out ABA: a node cannot be freed and reused while a
//!   popper holds it.
//!
//! Under contention a failed CAS backs off exponentially (bounded, spin only; see
//! [`Backoff::spin`]) before retrying, which keeps the top's cache line from
//! ping-ponging. There is no elimination array: on this project's 2-core machines there
//! are too few simultaneous pushers and poppers for elimination to pair them.
//!
//! # Progress
//!
//! Lock-free: a CAS fails only because another thread's succeeded.

use core::fmt;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ptr;

use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicPtr, Ordering};
use strata_primitives::{Backoff, CachePadded};
use strata_reclaim::{Protect, Reclaim};

use crate::DefaultReclaim;

struct Node<T> {
    /// Taken (with `ptr::read`) only by the popper that unlinked the node.
    value: UnsafeCell<ManuallyDrop<T>>,
    next: *mut Node<T>,
}

/// An unbounded lock-free LIFO stack (Treiber 1986).
///
/// ```
/// use strata_queue::TreiberStack;
///
/// let s = TreiberStack::new();
/// s.push(1);
/// s.push(2);
/// assert_eq!(s.pop(), Some(2));
/// assert_eq!(s.pop(), Some(1));
/// assert_eq!(s.pop(), None);
/// ```
pub struct TreiberStack<T, R: Reclaim = DefaultReclaim> {
    top: CachePadded<AtomicPtr<Node<T>>>,
    reclaim: R,
    _owns: PhantomData<T>,
}

// SAFETY: values move in and out, never shared by reference: `T: Send` suffices.
unsafe impl<T: Send, R: Reclaim> Send for TreiberStack<T, R> {}
// SAFETY: as above.
unsafe impl<T: Send, R: Reclaim> Sync for TreiberStack<T, R> {}

#[cfg(not(strata_loom))]
impl<T> TreiberStack<T> {
    /// An empty stack on the default epoch domain.
    pub fn new() -> Self {
        Self::with_reclaim(DefaultReclaim::default())
    }
}

#[cfg(not(strata_loom))]
impl<T> Default for TreiberStack<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, R: Reclaim> TreiberStack<T, R> {
    /// An empty stack whose nodes are reclaimed through `reclaim`.
    pub fn with_reclaim(reclaim: R) -> Self {
        TreiberStack {
            top: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            reclaim,
            _owns: PhantomData,
        }
    }

    /// Pushes `value` on top. Lock-free; takes no guard (it never dereferences a
    /// shared node).
    pub fn push(&self, value: T) {
        let node = Box::into_raw(Box::new(Node {
            value: UnsafeCell::new(ManuallyDrop::new(value)),
            next: ptr::null_mut(),
        }));
        let backoff = Backoff::new();
        let mut top = self.top.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is ours until the CAS publishes it.
            unsafe { (*node).next = top };
            // Release: publishes the node; pairs with the Acquire protect in `pop`.
            match self.top.compare_exchange_weak(
                top,
                node,
                crate::publish_ordering(),
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(t) => {
                    top = t;
                    backoff.spin();
                }
            }
        }
    }

    /// Pops the top value, or returns `None` if the stack is empty. Lock-free.
    pub fn pop(&self) -> Option<T> {
        let mut g = self.reclaim.guard();
        let backoff = Backoff::new();
        loop {
            let top = g.protect(&self.top);
            if top.is_null() {
                return None;
            }
            // SAFETY: `top` is protected; `next` is immutable once published.
            let next = unsafe { (*top).next };
            // Acquire on failure: the next protect reloads anyway.
            if self
                .top
                .compare_exchange_weak(top, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                // SAFETY: we unlinked `top`, so we alone take its value (initialized by
                // its pusher, published by the Release CAS our protect acquired).
                let node = unsafe { &*top };
                // SAFETY: as above.
                let value = node.value.with(|v| unsafe { ptr::read(v) });
                // SAFETY: unlinked, from Box::into_raw, retired once by the CAS winner;
                // the `ManuallyDrop` keeps the taken value from being dropped again.
                unsafe { g.retire(top) };
                return Some(ManuallyDrop::into_inner(value));
            }
            backoff.spin();
        }
    }

    /// `true` if the stack had no value at the moment of the check.
    pub fn is_empty(&self) -> bool {
        self.top.load(Ordering::Acquire).is_null()
    }

    /// The reclamation scheme this stack uses.
    pub fn reclaim(&self) -> &R {
        &self.reclaim
    }
}

impl<T, R: Reclaim> Drop for TreiberStack<T, R> {
    fn drop(&mut self) {
        let mut p = self.top.load(Ordering::Relaxed);
        while !p.is_null() {
            // SAFETY: exclusive access; every linked node came from Box::into_raw and
            // holds a value nobody took.
            let node = unsafe { Box::from_raw(p) };
            p = node.next;
            node.value.with_mut(|v| {
                // SAFETY: as above.
                unsafe { ManuallyDrop::drop(&mut *v) }
            });
        }
    }
}

impl<T, R: Reclaim> fmt::Debug for TreiberStack<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TreiberStack")
            .field("is_empty", &self.is_empty())
            .finish_non_exhaustive()
    }
}

impl<T, R: Reclaim> Extend<T> for TreiberStack<T, R> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for v in iter {
            self.push(v);
        }
    }
}

/// Pops the values of a stack, top first.
#[derive(Debug)]
pub struct IntoIter<T, R: Reclaim>(TreiberStack<T, R>);

impl<T, R: Reclaim> Iterator for IntoIter<T, R> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.0.pop()
    }
}

impl<T, R: Reclaim> IntoIterator for TreiberStack<T, R> {
    type Item = T;
    type IntoIter = IntoIter<T, R>;
    fn into_iter(self) -> IntoIter<T, R> {
        IntoIter(self)
    }
}
