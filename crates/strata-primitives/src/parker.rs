//! A one-token parker built on the shim's atomics and thread parking.
//!
//! Protocol. `state` is one of `EMPTY`, `PARKED`, `NOTIFIED`.
//! * `unpark` swaps in `NOTIFIED`; if it replaced `PARKED` it also unparks the thread.
//! * `park` consumes a `NOTIFIED` token and returns at once; otherwise it moves
//!   `EMPTY → PARKED` and sleeps in the thread's own park until it sees `NOTIFIED`.
//!   A token given between the `PARKED` store and the thread's sleep is not lost,
//!   because the thread's own park token (std's, or loom's stand-in) is set by
//!   `Thread::unpark` and makes the sleep return at once.

use core::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::sync::Arc;
use crate::sync::atomic::{AtomicUsize, Ordering};
use crate::thread::{self, Thread};

const EMPTY: usize = 0;
const PARKED: usize = 1;
const NOTIFIED: usize = 2;

#[derive(Debug)]
struct Inner {
    state: AtomicUsize,
    thread: Thread,
}

/// Parks the thread that created it until an [`Unparker`] gives it a token.
///
/// At most one token is stored: two `unpark`s before a `park` wake one `park`.
/// A `Parker` belongs to the thread that created it (it is `Send` but not `Sync`, and
/// it must be parked only by its creating thread).
///
/// ```
/// use strata_primitives::{Parker, thread};
///
/// let p = Parker::new();
/// let u = p.unparker();
/// thread::spawn(move || u.unpark());
/// p.park(); // returns once the token arrives (or at once if it already has)
/// ```
#[derive(Debug)]
pub struct Parker {
    inner: Arc<Inner>,
    _not_sync: PhantomData<core::cell::Cell<()>>,
}

/// Gives a [`Parker`] its token. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Unparker {
    inner: Arc<Inner>,
}

impl Default for Parker {
    fn default() -> Self {
        Self::new()
    }
}

impl Parker {
    /// A parker for the current thread, with no token.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                state: AtomicUsize::new(EMPTY),
                thread: thread::current(),
            }),
            _not_sync: PhantomData,
        }
    }

    /// A handle that unparks this parker.
    pub fn unparker(&self) -> Unparker {
        Unparker {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Blocks until a token is available, then consumes it.
    pub fn park(&self) {
        if self.try_consume() {
            return;
        }
        // Relaxed on success: nothing is published by going to sleep; Acquire on
        // failure: the only other value is NOTIFIED, whose Release swap in `unpark`
        // this pairs with.
        if let Err(actual) =
            self.inner
                .state
                .compare_exchange(EMPTY, PARKED, Ordering::Relaxed, Ordering::Acquire)
        {
            debug_assert_eq!(actual, NOTIFIED);
            // Relaxed: the Acquire failure load above already synchronized.
            self.inner.state.store(EMPTY, Ordering::Relaxed);
            return;
        }
        loop {
            thread::park();
            if self.try_consume() {
                return;
            }
        }
    }

    /// Blocks until a token is available or `timeout` has passed. Returns `true` if
    /// a token was consumed. Under loom, where there is no time, a timed park yields
    /// once and then times out, so a model explores both outcomes.
    pub fn park_timeout(&self, timeout: Duration) -> bool {
        if self.try_consume() {
            return true;
        }
        if let Err(actual) =
            self.inner
                .state
                .compare_exchange(EMPTY, PARKED, Ordering::Relaxed, Ordering::Acquire)
        {
            debug_assert_eq!(actual, NOTIFIED);
            self.inner.state.store(EMPTY, Ordering::Relaxed);
            return true;
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            #[cfg(strata_loom)]
            {
                let _ = deadline;
                thread::yield_now();
            }
            #[cfg(not(strata_loom))]
            match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now < d {
                        std::thread::park_timeout(d - now);
                    }
                }
                None => thread::park(),
            }
            if self.try_consume() {
                return true;
            }
            let timed_out = match deadline {
                Some(d) => cfg!(strata_loom) || Instant::now() >= d,
                None => false,
            };
            if timed_out {
                // Acquire: if a token raced in, pairs with the Release swap in
                // `unpark` and we take it.
                return self.inner.state.swap(EMPTY, Ordering::Acquire) == NOTIFIED;
            }
        }
    }

    #[inline]
    fn try_consume(&self) -> bool {
        // Acquire: pairs with the Release swap in `unpark`, so what the unparker wrote
        // before unparking is visible after `park` returns.
        self.inner
            .state
            .compare_exchange(NOTIFIED, EMPTY, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }
}

impl Unparker {
    /// Stores a token, waking the parked thread if it sleeps.
    pub fn unpark(&self) {
        // Release: pairs with the Acquire in `Parker::try_consume` / `park_timeout`.
        if self.inner.state.swap(NOTIFIED, Ordering::Release) == PARKED {
            self.inner.thread.unpark();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::atomic::AtomicBool;

    #[test]
    fn token_before_park_is_kept() {
        crate::model(|| {
            let p = Parker::new();
            p.unparker().unpark();
            p.unparker().unpark();
            p.park();
            assert!(!p.park_timeout(Duration::from_millis(1)));
        });
    }

    #[test]
    fn no_lost_wakeup() {
        crate::model(|| {
            let p = Parker::new();
            let u = p.unparker();
            let flag = Arc::new(AtomicBool::new(false));
            let f2 = Arc::clone(&flag);
            let t = thread::spawn(move || {
                f2.store(true, Ordering::Relaxed);
                u.unpark();
            });
            p.park();
            // The token's Release/Acquire makes the flag visible.
            assert!(flag.load(Ordering::Relaxed));
            t.join().unwrap();
        });
    }
}
