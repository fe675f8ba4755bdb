//! Safe memory reclamation for lock-free data structures.
//!
//! A lock-free structure unlinks a node while other threads may still be reading it;
//! the node can be freed only once no thread can reach it any more. This crate gives
//! two ways to know when that is, behind one trait so that a container can take either:
//!
//! | scheme | module | read-side cost | garbage bound | a stalled reader |
//! |---|---|---|---|---|
//! | epochs / RCU (Fraser 2004; McKenney & Slingwine 1998) | [`epoch`] | one store + one fence per outermost pin, nothing per pointer | bags sealed in the last two epochs + one partial bag per thread | blocks all reclamation in its domain |
//! | hazard pointers (Michael 2004) | [`hazard`] | one store + one fence per protected pointer | `threads × max(2·slots, 64)` + the protected ones | holds back only what it protects |
//!
//! # The common trait
//!
//! [`Reclaim`] is implemented by [`epoch::Domain`], the default epoch domain
//! ([`epoch::Epoch`]), [`hazard::Domain`] and the default hazard domain
//! ([`hazard::Hazard`]). A container asks it for a [`Protect`] guard per operation; one
//! guard protects one pointer at a time under hazard pointers, and everything under
//! epochs, so a container written against the trait takes one guard per pointer it must
//! hold at once.
//!
//! ```
//! use strata_primitives::sync::atomic::{AtomicPtr, Ordering};
//! use strata_reclaim::{Protect, Reclaim};
//!
//! /// Replaces the value behind `slot` and retires the old one; works with either scheme.
//! fn replace<R: Reclaim>(r: &R, slot: &AtomicPtr<u64>, v: u64) -> u64 {
//!     let mut g = r.guard();
//!     let old = g.protect(slot);
//!     let new = Box::into_raw(Box::new(v));
//!     match slot.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
//!         Ok(_) => {
//!             // SAFETY: `old` is protected by `g`, and after the CAS it is unlinked.
//!             let prev = unsafe { *old };
//!             // SAFETY: `old` came from Box::into_raw, is unlinked, retired once.
//!             unsafe { g.retire(old) };
//!             prev
//!         }
//!         Err(_) => {
//!             // SAFETY: `new` was never shared.
//!             drop(unsafe { Box::from_raw(new) });
//!             replace(r, slot, v)
//!         }
//!     }
//! }
//!
//! let slot = AtomicPtr::new(Box::into_raw(Box::new(1u64)));
//! assert_eq!(replace(&strata_reclaim::epoch::Epoch, &slot, 2), 1);
//! assert_eq!(replace(&strata_reclaim::hazard::Hazard, &slot, 3), 2);
//! // SAFETY: no other thread can reach `slot` any more.
//! drop(unsafe { Box::from_raw(slot.load(Ordering::Relaxed)) });
//! ```
#![deny(missing_docs)]

use strata_primitives::sync::atomic::AtomicPtr;

mod deferred;
pub mod epoch;
pub mod hazard;

#[cfg(test)]
mod loom_models;

/// A node of one of the crate's intrusive singly linked lists.
trait Linked {
    /// Points the node's link at `next`.
    ///
    /// # Safety
    /// `this` is a live node not yet published, owned by the caller.
    unsafe fn set_next(this: *mut Self, next: *mut Self);
}

/// Pushes the chain `first ..= last` (already linked from `first` to `last`) onto the
/// lock-free list at `head`, Treiber-style. Used for the append-only lists (epoch
/// participants, hazard slots and records) and the stacks of garbage (sealed bags,
/// orphan batches); all of them only ever detach whole lists, so there is no ABA.
///
/// Release on success: publishes the nodes' contents; it pairs with the Acquire load
/// or swap of `head` by whoever walks or detaches the list.
///
/// # Safety
/// The caller owns the chain until this returns, and the nodes stay allocated for as
/// long as the list can reach them.
unsafe fn push_chain<T: Linked>(
    head: &strata_primitives::sync::atomic::AtomicPtr<T>,
    first: *mut T,
    last: *mut T,
) {
    use strata_primitives::sync::atomic::Ordering;
    let mut h = head.load(Ordering::Relaxed);
    loop {
        // SAFETY: the chain is the caller's until the CAS publishes it.
        unsafe { T::set_next(last, h) };
        match head.compare_exchange_weak(h, first, Ordering::Release, Ordering::Relaxed) {
            Ok(_) => return,
            Err(now) => h = now,
        }
    }
}

/// An `Arc` that a failing loom model leaks instead of dropping: loom's `Arc` cannot be
/// dropped once its model has ended, and a failing model unwinds through thread-local
/// destructors that would drop it. Outside loom it is a plain `Arc`.
struct SharedArc<T>(core::mem::ManuallyDrop<strata_primitives::sync::Arc<T>>);

impl<T> SharedArc<T> {
    fn new(v: T) -> Self {
        SharedArc(core::mem::ManuallyDrop::new(
            strata_primitives::sync::Arc::new(v),
        ))
    }
    fn ptr_eq(a: &Self, b: &Self) -> bool {
        strata_primitives::sync::Arc::ptr_eq(&a.0, &b.0)
    }
    fn as_ptr(this: &Self) -> *const T {
        strata_primitives::sync::Arc::as_ptr(&this.0)
    }
    fn strong_count(this: &Self) -> usize {
        strata_primitives::sync::Arc::strong_count(&this.0)
    }
}

impl<T> Clone for SharedArc<T> {
    fn clone(&self) -> Self {
        SharedArc(core::mem::ManuallyDrop::new(
            strata_primitives::sync::Arc::clone(&self.0),
        ))
    }
}

impl<T> core::ops::Deref for SharedArc<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> Drop for SharedArc<T> {
    fn drop(&mut self) {
        if cfg!(strata_loom) && std::thread::panicking() {
            return;
        }
        // SAFETY: dropped once, here; the field is not used afterwards.
        unsafe { core::mem::ManuallyDrop::drop(&mut self.0) }
    }
}

/// Misuse of a reclamation API that Strata reports instead of deadlocking or
/// corrupting memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReclaimError {
    /// `synchronize` was called from inside a critical section of the same domain: it
    /// would wait for itself forever.
    #[error(
        "synchronize called while this thread is pinned in the same domain; it would wait for itself"
    )]
    WouldDeadlock,
    /// A grace period did not elapse before the timeout (a reader is stalled while
    /// pinned).
    #[error("the grace period did not elapse before the timeout")]
    Timeout,
    /// `quiescent` was called while a guard is alive; its references would lose their
    /// protection.
    #[error("quiescent state announced while a guard of this thread is alive")]
    GuardHeld,
    /// `online` was called on a thread that is already online.
    #[error("the thread is already online")]
    AlreadyOnline,
    /// `offline` or `quiescent` was called on a thread that is not online.
    #[error("the thread is not online (call `online` first)")]
    NotOnline,
}

/// A reclamation scheme a container can be generic over.
///
/// # Safety
/// An implementation must guarantee that a pointer returned by
/// [`Protect::protect`] stays allocated until that guard protects another pointer, is
/// cleared, or is dropped, even if another thread retires it meanwhile.
pub unsafe trait Reclaim: Send + Sync {
    /// A guard: a pinned section under epochs, one hazard slot under hazard pointers.
    type Guard<'r>: Protect
    where
        Self: 'r;

    /// Takes a guard on the calling thread.
    fn guard(&self) -> Self::Guard<'_>;
}

/// What a [`Reclaim`] guard can do.
///
/// # Safety
/// Implementations uphold the contract stated on [`Reclaim`].
pub unsafe trait Protect {
    /// Loads `src` (with at least `Acquire`) and protects the pointer it returns for as
    /// long as this guard is alive and not reused. The pointer may be null.
    fn protect<T>(&mut self, src: &AtomicPtr<T>) -> *mut T;

    /// Gives up the protection of the last pointer (a no-op under epochs, where the
    /// guard's whole lifetime is protected).
    fn clear(&mut self);

    /// Retires `ptr`: drops the `Box<T>` behind it once no guard protects it.
    ///
    /// # Safety
    /// - `ptr` came from `Box::into_raw`, and is retired exactly once,
    /// - it is unlinked: no thread that starts protecting after this call can reach it,
    /// - dropping a `T` on another thread is sound (`T: Send` in practice), and whatever
    ///   `T`'s drop borrows outlives the domain.
    unsafe fn retire<T>(&self, ptr: *mut T);
}
