//! A one-token parker built on the shim's atomics and a sleep primitive.
//!
//! Protocol. `state` (an `AtomicU32`) is one of `EMPTY`, `PARKED`, `NOTIFIED`.
//! * `unpark` swaps in `NOTIFIED`; if it replaced `PARKED` it also wakes the sleeper.
//! * `park` consumes a `NOTIFIED` token and returns at once; otherwise it moves
//!   `EMPTY → PARKED` and sleeps until it sees `NOTIFIED`. Every return from the sleep
//!   (a wake-up, a signal, a spurious return, a timeout) re-checks the state word, so
//!   only a token (or, for `park_timeout`, the deadline) ends the wait.
//!
//! # Which sleep primitive is selected
//!
//! * **Futex** — on Linux, outside `--cfg strata_loom` and without the `portable-park`
//!   feature: the parked thread sleeps in `futex(FUTEX_WAIT_PRIVATE)` on the state word
//!   itself, expecting `PARKED`, and `unpark` calls `futex(FUTEX_WAKE_PRIVATE, 1)` on it.
//!   A token stored between the `PARKED` store and the sleep is not lost: the kernel
//!   compares the word with `PARKED` atomically with queueing the sleeper, and finds
//!   `NOTIFIED` (the wait returns `EAGAIN`). `EINTR`, `EAGAIN`, `ETIMEDOUT` and spurious
//!   returns all lead back to the re-check. The word lives in the `Arc` shared with the
//!   unparkers, so a wake on it never touches freed memory. miri emulates these futex
//!   calls, so the miri run exercises this path.
//! * **Thread park** — everywhere else (other systems, the `portable-park` feature,
//!   and under loom, which cannot model a futex): the thread sleeps in its own
//!   `thread::park` (std's, or loom's stand-in) and `unpark` calls `Thread::unpark`. A
//!   token given between the `PARKED` store and the sleep is not lost, because the
//!   thread's own park token is set by `Thread::unpark` and makes the sleep return at
//!   once.
//!
//! [`Parker::uses_futex`] says which one this build uses.

use core::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::sync::Arc;
use crate::sync::atomic::{AtomicU32, Ordering};
#[cfg(not(all(target_os = "linux", not(strata_loom), not(feature = "portable-park"))))]
use crate::thread::{self, Thread};

const EMPTY: u32 = 0;
const PARKED: u32 = 1;
const NOTIFIED: u32 = 2;

/// `true` when this build sleeps on a futex (see the module docs).
const FUTEX: bool = cfg!(all(
    target_os = "linux",
    not(strata_loom),
    not(feature = "portable-park")
));

#[derive(Debug)]
struct Inner {
    state: AtomicU32,
    /// The thread to wake (thread-park implementation only).
    #[cfg(not(all(target_os = "linux", not(strata_loom), not(feature = "portable-park"))))]
    thread: Thread,
}

/// Parks the thread that created it until an [`Unparker`] gives it a token.
///
/// At most one token is stored: two `unpark`s before a `park` wake one `park`.
/// A `Parker` belongs to the thread that created it: it is neither `Send` nor `Sync`,
/// so only that thread can park on it (the portable implementation wakes the thread
/// it captured at creation). On Linux it sleeps on a futex, else
/// in the thread's own park (see the module docs and [`Parker::uses_futex`]).
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
    /// Neither `Send` nor `Sync`: parked only by its creating thread.
    _not_send: PhantomData<*const ()>,
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
                state: AtomicU32::new(EMPTY),
                #[cfg(not(all(
                    target_os = "linux",
                    not(strata_loom),
                    not(feature = "portable-park")
                )))]
                thread: thread::current(),
            }),
            _not_send: PhantomData,
        }
    }

    /// `true` if this build parks on a Linux futex, `false` if it parks through the
    /// thread's own park (other systems, the `portable-park` feature, loom).
    pub const fn uses_futex() -> bool {
        FUTEX
    }

    /// A handle that unparks this parker.
    pub fn unparker(&self) -> Unparker {
        Unparker {
            inner: Arc::clone(&self.inner),
        }
    }

    /// Blocks until a token is available, then consumes it.
    pub fn park(&self) {
        if self.try_consume() || self.announce() {
            return;
        }
        loop {
            self.inner.sleep(None);
            if self.try_consume() {
                return;
            }
        }
    }

    /// Blocks until a token is available or `timeout` has passed. Returns `true` if
    /// a token was consumed. Under loom, where there is no time, a timed park yields
    /// once and then times out, so a model explores both outcomes.
    pub fn park_timeout(&self, timeout: Duration) -> bool {
        if self.try_consume() || self.announce() {
            return true;
        }
        let deadline = Instant::now().checked_add(timeout);
        loop {
            #[cfg(strata_loom)]
            {
                let _ = deadline;
                crate::thread::yield_now();
            }
            #[cfg(not(strata_loom))]
            match deadline {
                Some(d) => {
                    let now = Instant::now();
                    if now < d {
                        self.inner.sleep(Some(d - now));
                    }
                }
                None => self.inner.sleep(None),
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

    /// Moves `EMPTY → PARKED` before sleeping. Returns `true` if a token arrived
    /// meanwhile (it is consumed).
    #[inline]
    fn announce(&self) -> bool {
        // Relaxed on success: nothing is published by going to sleep; Acquire on
        // failure: the only other value is NOTIFIED, whose Release swap in `unpark`
        // this pairs with.
        match self
            .inner
            .state
            .compare_exchange(EMPTY, PARKED, Ordering::Relaxed, Ordering::Acquire)
        {
            Ok(_) => false,
            Err(actual) => {
                debug_assert_eq!(actual, NOTIFIED);
                // Relaxed: the Acquire failure load above already synchronized, and
                // only this thread moves the state away from NOTIFIED.
                self.inner.state.store(EMPTY, Ordering::Relaxed);
                true
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
            self.inner.wake();
        }
    }
}

#[cfg(all(target_os = "linux", not(strata_loom), not(feature = "portable-park")))]
impl Inner {
    /// Sleeps while the state word is `PARKED`, at most `timeout`. May return early
    /// (a wake-up, a signal, `EAGAIN` because the word changed, a spurious return):
    /// the caller re-checks the word.
    fn sleep(&self, timeout: Option<Duration>) {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            // < 1e9, fits every `c_long`.
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts
            .as_ref()
            .map_or(core::ptr::null(), |t| t as *const libc::timespec);
        // SAFETY: FUTEX_WAIT reads the aligned u32 at `as_ptr()` (the live state word
        // of this `Inner`, which `&self` keeps alive for the call) and compares it
        // with PARKED; `ts_ptr` is null or points to a timespec that outlives the
        // call (a relative timeout, as FUTEX_WAIT takes). The result is ignored on
        // purpose: 0, EINTR, EAGAIN and ETIMEDOUT all mean "re-check the word".
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.state.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                PARKED,
                ts_ptr,
            );
        }
    }

    /// Wakes the thread sleeping on the state word, if any.
    fn wake(&self) {
        // SAFETY: FUTEX_WAKE only uses the address of the live state word (kept alive
        // by the `Arc` the caller holds) as a key; it reads and writes no memory.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.state.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                1,
            );
        }
    }
}

#[cfg(not(all(target_os = "linux", not(strata_loom), not(feature = "portable-park"))))]
impl Inner {
    /// Sleeps in the thread's own park, at most `timeout`. May return early; the
    /// caller re-checks the word.
    fn sleep(&self, timeout: Option<Duration>) {
        match timeout {
            #[cfg(not(strata_loom))]
            Some(d) => std::thread::park_timeout(d),
            #[cfg(strata_loom)]
            Some(_) => thread::yield_now(),
            None => thread::park(),
        }
    }

    /// Unparks the thread.
    fn wake(&self) {
        self.thread.unpark();
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
            let t = crate::thread::spawn(move || {
                f2.store(true, Ordering::Relaxed);
                u.unpark();
            });
            p.park();
            // The token's Release/Acquire makes the flag visible.
            assert!(flag.load(Ordering::Relaxed));
            t.join().unwrap();
        });
    }

    /// A timed park that races an unpark either takes the token or times out and
    /// leaves it for the next park: the token is never lost.
    #[test]
    fn timed_park_racing_unpark_keeps_the_token() {
        crate::model(|| {
            let p = Parker::new();
            let u = p.unparker();
            let t = crate::thread::spawn(move || u.unpark());
            if !p.park_timeout(Duration::from_millis(1)) {
                p.park();
            }
            t.join().unwrap();
            assert!(!p.park_timeout(Duration::ZERO));
        });
    }

    #[test]
    fn selected_implementation() {
        assert_eq!(
            Parker::uses_futex(),
            cfg!(target_os = "linux") && !crate::LOOM && !cfg!(feature = "portable-park")
        );
    }

    /// Real sleeps: a timed park with no token times out after (at least) its timeout.
    #[cfg(not(strata_loom))]
    #[test]
    fn park_timeout_times_out() {
        let p = Parker::new();
        let start = Instant::now();
        assert!(!p.park_timeout(Duration::from_millis(5)));
        assert!(start.elapsed() >= Duration::from_millis(5));
        assert!(!p.park_timeout(Duration::ZERO));
    }

    /// Two threads hand a token back and forth; each round also publishes a plain
    /// write through the token.
    #[cfg(not(strata_loom))]
    #[test]
    fn ping_pong_real_threads() {
        use std::sync::atomic::AtomicU64;
        let rounds: u64 = if cfg!(miri) { 20 } else { 2_000 };
        let a = Parker::new();
        let ua = a.unparker();
        let value = std::sync::Arc::new(AtomicU64::new(0));
        let v2 = std::sync::Arc::clone(&value);
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let b = Parker::new();
            tx.send(b.unparker()).unwrap();
            for i in 0..rounds {
                b.park();
                assert_eq!(v2.load(Ordering::Relaxed), 2 * i + 1);
                v2.store(2 * i + 2, Ordering::Relaxed);
                ua.unpark();
            }
        });
        let ub = rx.recv().unwrap();
        for i in 0..rounds {
            value.store(2 * i + 1, Ordering::Relaxed);
            ub.unpark();
            // Alternate untimed and (long) timed parks so both sleep paths run.
            if i % 2 == 0 {
                a.park();
            } else {
                assert!(a.park_timeout(Duration::from_secs(60)));
            }
            assert_eq!(value.load(Ordering::Relaxed), 2 * i + 2);
        }
        t.join().unwrap();
    }

    /// A parked thread is woken from another thread after it has (very likely) gone
    /// to sleep, not only by a token stored before the sleep.
    #[cfg(not(strata_loom))]
    #[test]
    fn wakes_a_sleeping_thread() {
        let p = Parker::new();
        let u = p.unparker();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 20 }));
            u.unpark();
        });
        p.park();
        t.join().unwrap();
    }
}
