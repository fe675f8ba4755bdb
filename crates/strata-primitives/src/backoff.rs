use core::cell::Cell;

use crate::{hint, thread};

/// Spins up to `2^SPIN_LIMIT` hints in one step.
const SPIN_LIMIT: u32 = 6;
/// [`Backoff::wait`] spins for this many steps (`2^0 + ... + 2^(n-1)` hints) before
/// it yields.
const WAIT_SPIN_LIMIT: u32 = 4;
/// After this many steps [`Backoff::is_completed`] advises parking.
const YIELD_LIMIT: u32 = 10;

/// Bounded exponential backoff for spin loops.
///
/// [`spin`](Self::spin) doubles the number of spin hints each step up to
/// `2^6`; [`snooze`](Self::snooze) does the same and then yields the time slice;
/// [`is_completed`](Self::is_completed) says when it is time to park instead. Under
/// `strata_loom` every step is a single `yield_now`, so that a loop that waits for
/// another thread is a finite number of model branches.
///
/// ```
/// use strata_primitives::Backoff;
/// use strata_primitives::sync::atomic::{AtomicBool, Ordering};
///
/// let ready = AtomicBool::new(true);
/// let backoff = Backoff::new();
/// while !ready.load(Ordering::Acquire) {
///     backoff.snooze();
/// }
/// ```
#[derive(Debug, Default)]
pub struct Backoff {
    step: Cell<u32>,
}

impl Backoff {
    /// A fresh backoff at step 0.
    #[inline]
    pub const fn new() -> Self {
        Self { step: Cell::new(0) }
    }

    /// Back to step 0.
    #[inline]
    pub fn reset(&self) {
        self.step.set(0);
    }

    /// Backs off in a lock-free loop whose CAS failed because another thread made
    /// progress: spins only, never yields.
    #[inline]
    pub fn spin(&self) {
        if cfg!(strata_loom) {
            thread::yield_now();
            return;
        }
        let step = self.step.get().min(SPIN_LIMIT);
        for _ in 0..1u32 << step {
            hint::spin_loop();
        }
        if self.step.get() <= SPIN_LIMIT {
            self.step.set(self.step.get() + 1);
        }
    }

    /// Backs off while waiting for another thread to act: spins, then yields.
    #[inline]
    pub fn snooze(&self) {
        self.spin_then_yield(SPIN_LIMIT + 1);
    }

    /// Backs off while waiting for another thread that may have been preempted in a
    /// window of a few instructions: a few short spins (fewer than `2^WAIT_SPIN_LIMIT`
    /// hints in all, well under a microsecond), then a yield of the time slice on every
    /// call, so that when threads outnumber cores the waited-for thread gets a core.
    /// Counts towards [`is_completed`](Self::is_completed) like `snooze`.
    #[inline]
    pub fn wait(&self) {
        self.spin_then_yield(WAIT_SPIN_LIMIT);
    }

    /// Spins `2^step` hints while `step < spin_steps`, yields after that; counts the
    /// step up to `YIELD_LIMIT + 1`.
    #[inline]
    fn spin_then_yield(&self, spin_steps: u32) {
        if cfg!(strata_loom) {
            thread::yield_now();
            self.step.set(self.step.get().saturating_add(1));
            return;
        }
        if self.step.get() < spin_steps {
            for _ in 0..1u32 << self.step.get() {
                hint::spin_loop();
            }
        } else {
            thread::yield_now();
        }
        if self.step.get() <= YIELD_LIMIT {
            self.step.set(self.step.get() + 1);
        }
    }

    /// `true` once backing off has gone on long enough that the caller should park.
    #[inline]
    pub fn is_completed(&self) -> bool {
        self.step.get() > YIELD_LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_after_yield_limit() {
        crate::model(completes);
    }

    fn completes() {
        let b = Backoff::new();
        let mut n = 0;
        while !b.is_completed() {
            b.snooze();
            n += 1;
            assert!(n <= 64, "backoff never completed");
        }
        assert_eq!(n as u32, YIELD_LIMIT + 1);
        b.reset();
        assert!(!b.is_completed());
        b.spin();
        // `wait` counts the same steps as `snooze` (it only yields sooner).
        b.reset();
        let mut n = 0;
        while !b.is_completed() {
            b.wait();
            n += 1;
            assert!(n <= 64, "backoff never completed");
        }
        assert_eq!(n as u32, YIELD_LIMIT + 1);
    }
}
