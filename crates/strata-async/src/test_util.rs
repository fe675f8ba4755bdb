//! Executors and wakers shared by the unit tests and loom models of this crate.
//!
//! [`block_on`] parks the modelled thread between polls (so a lost wake-up leaves it
//! parked forever, which loom reports as a deadlock); [`spin_on`] re-polls without
//! being woken (the owner then sees its completion through lock-free loads only);
//! [`CountWaker`] counts wake-ups for hand-polled unit tests.

use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

use strata_primitives::cell::UnsafeCell;
use strata_primitives::thread;

/// Runs a future to completion on this thread, parking between polls: the same
/// executor as the mutex's `blocking_lock`.
pub(crate) use crate::mutex::block_on;

/// Runs `fut` to completion by polling it again and again (yielding between polls)
/// with a waker that does nothing.
#[allow(dead_code)] // not every test module uses every helper
pub(crate) fn spin_on<F: Future>(fut: F) -> F::Output {
    let mut cx = Context::from_waker(Waker::noop());
    let mut fut = core::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        thread::yield_now();
    }
}

/// A waker that counts its wake-ups.
#[derive(Default)]
pub(crate) struct CountWaker(std::sync::atomic::AtomicUsize);

impl Wake for CountWaker {
    fn wake(self: StdArc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn wake_by_ref(self: &StdArc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[allow(dead_code)] // not every test module uses every helper
impl CountWaker {
    /// The wake-ups so far.
    pub(crate) fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A fresh counting waker and its `Waker`.
    pub(crate) fn new_waker() -> (StdArc<Self>, Waker) {
        let c = StdArc::new(Self::default());
        let w = Waker::from(StdArc::clone(&c));
        (c, w)
    }
}

/// A cell that only the holder of an exclusive permit or lock touches: loom reports a
/// causality violation if two holders are not ordered by the primitive under test.
pub(crate) struct Guarded(UnsafeCell<usize>);

impl Default for Guarded {
    fn default() -> Self {
        Self(UnsafeCell::new(0))
    }
}

// SAFETY: written only by the holder of the exclusive permit or lock, read under the
// primitive or after the joins (what the models check).
unsafe impl Sync for Guarded {}

impl Guarded {
    pub(crate) fn bump(&self) {
        self.0.with_mut(|p| {
            // SAFETY: the caller holds the exclusive permit or lock.
            unsafe { *p += 1 }
        });
    }
    pub(crate) fn get(&self) -> usize {
        // SAFETY: the caller holds the primitive (shared or exclusive), or every other
        // user has been joined; an unordered read is what loom is asked to find.
        self.0.with(|p| unsafe { *p })
    }
}

// Negative auto-trait checks without a dependency: `<T as AmbiguousIfSend<_>>::some_item()`
// compiles only if `T` is not `Send` (if it is, both impls apply and the call is
// ambiguous, a compile error). Likewise for `Sync` and `Unpin`.

/// See the comment above: ambiguous (a compile error) for a `Send` type.
#[allow(dead_code)]
pub(crate) trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}

/// Ambiguous (a compile error) for a `Sync` type.
#[allow(dead_code)]
pub(crate) trait AmbiguousIfSync<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}

/// Ambiguous (a compile error) for an `Unpin` type.
#[allow(dead_code)]
pub(crate) trait AmbiguousIfUnpin<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfUnpin<()> for T {}
impl<T: ?Sized + Unpin> AmbiguousIfUnpin<u8> for T {}
