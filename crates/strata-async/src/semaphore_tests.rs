//! Loom models and unit tests of the async semaphore ([`crate::semaphore`]).
//!
//! The models drive futures with a minimal `block_on` over the shim's `Parker` (a lost
//! wake-up leaves a modelled thread parked forever, which loom reports as a deadlock)
//! or with a spinning poll loop (an executor that re-polls without being woken: the
//! owner then reads its completion through the lock-free status load only). Each model
//! asserts a property: mutual exclusion on a cell guarded by the semaphore, no permit
//! leak (the final available count equals the initial one), FIFO assignment, and
//! termination (no lost wake-up). Under loom the wake batch is 2, so the two models
//! with three and four waiters reach the release and `close` paths that drop the lock
//! between batches (a release or a close that skips the rest after the first batch is
//! caught by them).
//!
//! Under `--cfg strata_weaken` the completion store and the fast-path release CAS are
//! `Relaxed`; the four models marked `should_panic` then report a causality violation
//! (the mutual-exclusion cell, or a waiter's `assigned` field read by its owner after
//! the lock-free status load).

use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Waker};

use std::sync::Arc;
use strata_primitives::{model, thread};

use crate::semaphore::{AcquireError, Semaphore, TryAcquireError};
use crate::test_util::{CountWaker, Guarded, block_on, spin_on};

/// Two tasks contend for one permit; each bumps a guarded cell while holding it. Both
/// finish (no lost wake-up: a loser that queued is woken by the winner's release), the
/// cell was never accessed concurrently, and the permit is back at the end.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_two_tasks_one_permit_no_lost_wakeup() {
    model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let cell = Arc::new(Guarded::default());
        let (s2, c2) = (Arc::clone(&sem), Arc::clone(&cell));
        let t = thread::spawn(move || {
            let p = block_on(s2.acquire()).unwrap();
            c2.bump();
            drop(p);
        });
        let p = block_on(sem.acquire()).unwrap();
        cell.bump();
        drop(p);
        t.join().unwrap();
        assert_eq!(cell.get(), 2);
        assert_eq!(sem.available_permits(), 1, "permit leaked");
    });
}

/// Three tasks contend for two permits, one of them asking for both (so it is the
/// head with a partial assignment while single-permit tasks come and go); each holder
/// checks that no more permits are available than the ones it does not hold. All three
/// finish (no lost wake-up, no starved head), and both permits are back.
#[test]
fn loom_three_tasks_mixed_sizes() {
    model(|| {
        let sem = Arc::new(Semaphore::new(2));
        let spawn = |n: usize| {
            let s = Arc::clone(&sem);
            thread::spawn(move || {
                let p = block_on(s.acquire_many(n)).unwrap();
                assert_eq!(p.num_permits(), n);
                assert!(s.available_permits() <= 2 - n);
                drop(p);
            })
        };
        let a = spawn(2);
        let b = spawn(1);
        let p = block_on(sem.acquire()).unwrap();
        drop(p);
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(sem.available_permits(), 2, "permits leaked");
    });
}

/// A waiter that spins (re-polls without being woken) while another thread releases
/// to it: the waiter learns of its completion from the lock-free status load alone, so
/// that load must see the releaser's assignment (the `Release` store of the status).
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_spinning_waiter_sees_its_assignment() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let s2 = Arc::clone(&sem);
        let t = thread::spawn(move || {
            let p = spin_on(s2.acquire_many(2)).unwrap();
            assert_eq!(p.num_permits(), 2);
        });
        sem.add_permits(1).unwrap();
        sem.add_permits(1).unwrap();
        t.join().unwrap();
        assert_eq!(sem.available_permits(), 2, "permits leaked");
    });
}

/// A queued 2-permit waiter is cancelled (its future dropped after one poll) while the
/// holder releases its two permits one at a time and a third task waits for one: a
/// permit already assigned to the cancelled waiter (a partial assignment) passes on,
/// the third task finishes (no lost wake-up), and nothing leaks.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_cancelled_waiter_passes_permits_on() {
    model(|| {
        let sem = Arc::new(Semaphore::new(2));
        let mut held = sem.try_acquire_many(2).unwrap();
        let s1 = Arc::clone(&sem);
        let canceller = thread::spawn(move || {
            let waker = Waker::from(StdArc::new(CountWaker::default()));
            let mut cx = Context::from_waker(&waker);
            let mut fut = Box::pin(s1.acquire_many(2));
            // Ready if both releases came first; the permits then go back on drop.
            let _ = fut.as_mut().poll(&mut cx);
            drop(fut);
        });
        let s2 = Arc::clone(&sem);
        let waiter = thread::spawn(move || {
            let p = block_on(s2.acquire()).unwrap();
            drop(p);
        });
        drop(held.split(1).unwrap());
        drop(held);
        canceller.join().unwrap();
        waiter.join().unwrap();
        assert_eq!(sem.available_permits(), 2, "permits leaked");
    });
}

/// FIFO with partial assignment: a 2-permit request queued before a 1-permit request
/// is served first while two threads add one permit each, and a concurrent
/// `try_acquire` never barges past the queue.
#[test]
fn loom_fifo_big_request_first() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let wa = StdArc::new(CountWaker::default());
        let wb = StdArc::new(CountWaker::default());
        let waker_a = Waker::from(StdArc::clone(&wa));
        let waker_b = Waker::from(StdArc::clone(&wb));
        let mut a = Box::pin(sem.acquire_many(2));
        let mut b = Box::pin(sem.acquire());
        assert!(
            a.as_mut()
                .poll(&mut Context::from_waker(&waker_a))
                .is_pending()
        );
        assert!(
            b.as_mut()
                .poll(&mut Context::from_waker(&waker_b))
                .is_pending()
        );
        let s1 = Arc::clone(&sem);
        let t1 = thread::spawn(move || s1.add_permits(1).unwrap());
        let s2 = Arc::clone(&sem);
        let t2 = thread::spawn(move || {
            s2.add_permits(1).unwrap();
            // B is queued throughout: nothing is ever available to a newcomer.
            assert_eq!(s2.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        });
        t1.join().unwrap();
        t2.join().unwrap();
        assert_eq!(wa.count(), 1, "A woken once");
        assert_eq!(wb.count(), 0, "B not woken before A is served");
        let pa = match a.as_mut().poll(&mut Context::from_waker(&waker_a)) {
            Poll::Ready(r) => r.unwrap(),
            Poll::Pending => panic!("A not served after two permits"),
        };
        assert_eq!(pa.num_permits(), 2);
        assert!(
            b.as_mut()
                .poll(&mut Context::from_waker(&waker_b))
                .is_pending()
        );
        drop(pa);
        let pb = match b.as_mut().poll(&mut Context::from_waker(&waker_b)) {
            Poll::Ready(r) => r.unwrap(),
            Poll::Pending => panic!("B not served"),
        };
        drop(pb);
        drop((a, b));
        assert_eq!(sem.available_permits(), 2);
    });
}

/// Close races an acquire that may be queued: the acquire finishes either way (with a
/// permit if the added one reached it first, else `Closed`), and the permit is back.
#[test]
fn loom_close_vs_acquire() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let s2 = Arc::clone(&sem);
        let t = thread::spawn(move || match block_on(s2.acquire()) {
            Ok(p) => p.num_permits(),
            Err(AcquireError::Closed) => 0,
            Err(e) => panic!("unexpected {e}"),
        });
        sem.add_permits(1).unwrap();
        sem.close();
        let got = t.join().unwrap();
        assert!(got <= 1);
        assert!(sem.is_closed());
        assert_eq!(sem.available_permits(), 1, "permit leaked");
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
    });
}

/// A waiter holding a partial assignment is cancelled while the semaphore is closed:
/// whichever of the two unlinks it, its permit returns to the count exactly once.
#[test]
fn loom_cancel_vs_close() {
    model(|| {
        let sem = Arc::new(Semaphore::new(1));
        let s1 = Arc::clone(&sem);
        let t = thread::spawn(move || {
            let waker = Waker::from(StdArc::new(CountWaker::default()));
            let mut fut = Box::pin(s1.acquire_many(2));
            // Queued holding 1 of 2, or `Closed` if the close came first.
            let first = fut.as_mut().poll(&mut Context::from_waker(&waker));
            assert!(matches!(
                first,
                Poll::Pending | Poll::Ready(Err(AcquireError::Closed))
            ));
            drop(fut);
        });
        sem.close();
        t.join().unwrap();
        assert_eq!(sem.available_permits(), 1, "permit leaked or duplicated");
    });
}

/// Three queued waiters and a release of 3 permits, which (the wake batch being 2
/// under loom) completes two waiters, drops the lock to wake them, re-takes it and
/// completes the third, while another thread cancels the third waiter. Each completed
/// waiter is woken exactly once and every permit is accounted for at the end.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_release_between_batches_races_cancel() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let counters: Vec<_> = (0..3).map(|_| StdArc::new(CountWaker::default())).collect();
        let wakers: Vec<_> = counters
            .iter()
            .map(|c| Waker::from(StdArc::clone(c)))
            .collect();
        let mut futs: Vec<_> = (0..3)
            .map(|_| Box::pin(Arc::clone(&sem).acquire_owned()))
            .collect();
        for (f, w) in futs.iter_mut().zip(&wakers) {
            assert!(f.as_mut().poll(&mut Context::from_waker(w)).is_pending());
        }
        let third = futs.pop().unwrap();
        let canceller = thread::spawn(move || drop(third));
        let s1 = Arc::clone(&sem);
        let releaser = thread::spawn(move || s1.add_permits(3).unwrap());
        canceller.join().unwrap();
        releaser.join().unwrap();
        for (i, (f, w)) in futs.iter_mut().zip(&wakers).enumerate() {
            assert_eq!(counters[i].count(), 1, "waiter {i} woken once");
            match f.as_mut().poll(&mut Context::from_waker(w)) {
                Poll::Ready(Ok(p)) => drop(p),
                other => panic!("waiter {i} not served: {other:?}"),
            }
        }
        assert!(counters[2].count() <= 1);
        drop(futs);
        assert_eq!(sem.available_permits(), 3, "permits leaked or duplicated");
    });
}

/// `close` reaches four waiters in two batches while another thread releases a
/// permit: every waiter finishes once (with the permit, if the release reached it
/// before `close` did, else `Closed`), and the permit is back at the end.
#[test]
fn loom_close_between_batches_races_release() {
    model(|| {
        let sem = Arc::new(Semaphore::new(0));
        let counters: Vec<_> = (0..4).map(|_| StdArc::new(CountWaker::default())).collect();
        let wakers: Vec<_> = counters
            .iter()
            .map(|c| Waker::from(StdArc::clone(c)))
            .collect();
        // The first waiter asks for 2 (more than will ever exist), so the released
        // permit can reach it as a partial assignment that `close` must return.
        let mut futs: Vec<_> = (0..4)
            .map(|i| Box::pin(sem.acquire_many(if i == 0 { 2 } else { 1 })))
            .collect();
        for (f, w) in futs.iter_mut().zip(&wakers) {
            assert!(f.as_mut().poll(&mut Context::from_waker(w)).is_pending());
        }
        let s1 = Arc::clone(&sem);
        let releaser = thread::spawn(move || s1.add_permits(1).unwrap());
        sem.close();
        releaser.join().unwrap();
        let mut served = 0;
        for (i, (f, w)) in futs.iter_mut().zip(&wakers).enumerate() {
            assert_eq!(counters[i].count(), 1, "waiter {i} woken once");
            match f.as_mut().poll(&mut Context::from_waker(w)) {
                Poll::Ready(Ok(p)) => {
                    served += 1;
                    drop(p);
                }
                Poll::Ready(Err(AcquireError::Closed)) => {}
                other => panic!("waiter {i}: {other:?}"),
            }
        }
        assert!(served <= 1);
        drop(futs);
        assert_eq!(sem.available_permits(), 1, "permit leaked or duplicated");
    });
}

#[cfg(not(strata_loom))]
mod unit {
    use super::*;
    use crate::semaphore::{
        Acquire, AcquireOwned, AddPermitsError, MergeError, OwnedSemaphorePermit, SemaphorePermit,
    };
    use core::pin::Pin;
    use std::sync::atomic::Ordering;
    use std::task::Wake;

    fn cx_of(w: &Waker) -> Context<'_> {
        Context::from_waker(w)
    }

    fn counting() -> (StdArc<CountWaker>, Waker) {
        let c = StdArc::new(CountWaker::default());
        let w = Waker::from(StdArc::clone(&c));
        (c, w)
    }

    fn poll<F: Future>(f: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
        f.poll(&mut cx_of(w))
    }

    #[test]
    fn acquire_try_acquire_and_release() {
        let sem = Semaphore::new(2);
        let a = sem.try_acquire().unwrap();
        let b = futures::executor::block_on(sem.acquire()).unwrap();
        assert_eq!((a.num_permits(), b.num_permits()), (1, 1));
        assert_eq!(sem.available_permits(), 0);
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        drop(a);
        assert_eq!(sem.available_permits(), 1);
        let c = sem.try_acquire_many(1).unwrap();
        drop((b, c));
        assert_eq!(sem.available_permits(), 2);
        assert!(format!("{sem:?}").contains("available_permits: 2"));
    }

    #[test]
    fn zero_permits() {
        let sem = Semaphore::new(0);
        let p = sem.try_acquire_many(0).unwrap();
        assert_eq!(p.num_permits(), 0);
        let q = futures::executor::block_on(sem.acquire_many(0)).unwrap();
        drop((p, q));
        assert_eq!(sem.available_permits(), 0);
        sem.close();
        assert_eq!(
            sem.try_acquire_many(0).unwrap_err(),
            TryAcquireError::Closed
        );
    }

    #[test]
    fn max_permits_errors_not_hangs() {
        let max = Semaphore::MAX_PERMITS;
        assert_eq!(max, usize::MAX >> 3);
        let sem = Semaphore::new(0);
        let (_, w) = counting();
        let mut f = Box::pin(sem.acquire_many(max + 1));
        match poll(f.as_mut(), &w) {
            Poll::Ready(Err(AcquireError::TooManyPermits { requested })) => {
                assert_eq!(requested, max + 1)
            }
            other => panic!(
                "expected TooManyPermits, got {:?}",
                other.map(|r| r.map(|_| ()))
            ),
        }
        assert_eq!(
            sem.try_acquire_many(usize::MAX).unwrap_err(),
            TryAcquireError::TooManyPermits {
                requested: usize::MAX
            }
        );
        assert!(Semaphore::try_new(max + 1).is_err());
        assert_eq!(Semaphore::new(usize::MAX).available_permits(), max);
        assert_eq!(
            Semaphore::try_new(max).unwrap().add_permits(1),
            Err(AddPermitsError::Overflow {
                requested: 1,
                available: max
            })
        );
        assert!(sem.add_permits(max + 1).is_err());
        sem.add_permits(max).unwrap();
        let all = futures::executor::block_on(sem.acquire_many(max)).unwrap();
        assert_eq!(sem.available_permits(), 0);
        // Raise the total above the maximum while permits are held: returns saturate.
        sem.add_permits(max).unwrap();
        drop(all);
        assert_eq!(sem.available_permits(), max);
        let msg = AcquireError::TooManyPermits { requested: 7 }.to_string();
        assert!(msg.contains('7') && msg.contains(&max.to_string()), "{msg}");
    }

    #[test]
    fn split_merge_forget() {
        let sem = Semaphore::new(5);
        let mut p = sem.try_acquire_many(4).unwrap();
        assert!(p.split(5).is_none());
        assert_eq!(p.num_permits(), 4);
        let q = p.split(3).unwrap();
        assert_eq!((p.num_permits(), q.num_permits()), (1, 3));
        p.merge(q).unwrap();
        assert_eq!(p.num_permits(), 4);
        let other = Semaphore::new(1);
        let o = other.try_acquire().unwrap();
        match p.merge(o) {
            Err(MergeError::DifferentSemaphores(o)) => drop(o),
            r => panic!("expected DifferentSemaphores, got {r:?}"),
        }
        assert_eq!(other.available_permits(), 1);
        let f = p.split(2).unwrap();
        f.forget();
        drop(p);
        assert_eq!(sem.available_permits(), 3, "forgotten permits stay gone");
        assert_eq!(sem.forget_permits(2), 2);
        assert_eq!(sem.forget_permits(9), 1);
        assert_eq!(sem.forget_permits(1), 0);
        assert_eq!(sem.available_permits(), 0);
    }

    #[test]
    fn owned_permits() {
        let sem = StdArc::new(Semaphore::new(3));
        let mut a = StdArc::clone(&sem).try_acquire_owned().unwrap();
        let b = futures::executor::block_on(StdArc::clone(&sem).acquire_many_owned(2)).unwrap();
        assert!(StdArc::ptr_eq(a.semaphore(), &sem));
        assert_eq!(
            StdArc::clone(&sem).try_acquire_many_owned(1).unwrap_err(),
            TryAcquireError::NoPermits
        );
        a.merge(b).unwrap();
        assert_eq!(a.num_permits(), 3);
        let c = a.split(1).unwrap();
        let other = StdArc::new(Semaphore::new(1));
        let o = StdArc::clone(&other).try_acquire_owned().unwrap();
        assert!(matches!(
            a.merge(o),
            Err(MergeError::DifferentSemaphores(_))
        ));
        assert_eq!(other.available_permits(), 1);
        drop(c);
        assert_eq!(sem.available_permits(), 1);
        let d = futures::executor::block_on(StdArc::clone(&sem).acquire_owned()).unwrap();
        drop((a, d));
        assert_eq!(sem.available_permits(), 3);
        assert!(format!("{:?}", StdArc::clone(&sem).acquire_owned()).contains("AcquireOwned"));
    }

    #[test]
    fn fifo_partial_assignment_and_no_barging() {
        let sem = Semaphore::new(1);
        let (ca, wa) = counting();
        let (cb, wb) = counting();
        let mut a = Box::pin(sem.acquire_many(3));
        let mut b = Box::pin(sem.acquire());
        assert!(poll(a.as_mut(), &wa).is_pending());
        assert_eq!(sem.available_permits(), 0, "the head took the 1 available");
        assert!(poll(b.as_mut(), &wb).is_pending());
        sem.add_permits(1).unwrap();
        assert_eq!((ca.count(), cb.count()), (0, 0));
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::NoPermits);
        sem.add_permits(1).unwrap();
        assert_eq!((ca.count(), cb.count()), (1, 0));
        let pa = match poll(a.as_mut(), &wa) {
            Poll::Ready(r) => r.unwrap(),
            Poll::Pending => panic!("A not served"),
        };
        assert_eq!(pa.num_permits(), 3);
        assert!(poll(b.as_mut(), &wb).is_pending());
        drop(pa);
        assert_eq!(cb.count(), 1);
        assert!(matches!(poll(b.as_mut(), &wb), Poll::Ready(Ok(_))));
        assert_eq!(sem.available_permits(), 3);
        // Polled after completion: an error, nothing acquired.
        assert!(matches!(
            poll(b.as_mut(), &wb),
            Poll::Ready(Err(AcquireError::PolledAfterCompletion))
        ));
        assert_eq!(sem.available_permits(), 3);
    }

    #[test]
    fn cancel_queued_with_partial_assignment_passes_on() {
        let sem = Semaphore::new(2);
        let (_, wa) = counting();
        let (cb, wb) = counting();
        let mut a = Box::pin(sem.acquire_many(3));
        let mut b = Box::pin(sem.acquire_many(2));
        assert!(poll(a.as_mut(), &wa).is_pending()); // holds 2 of 3
        assert!(poll(b.as_mut(), &wb).is_pending());
        drop(a);
        assert_eq!(cb.count(), 1, "A's 2 permits went to B");
        assert!(matches!(poll(b.as_mut(), &wb), Poll::Ready(Ok(ref p)) if p.num_permits() == 2));
        drop(b);
        assert_eq!(sem.available_permits(), 2);
    }

    #[test]
    fn cancel_last_waiter_returns_to_count() {
        let sem = Semaphore::new(1);
        let (_, w) = counting();
        let mut a = Box::pin(sem.acquire_many(2));
        assert!(poll(a.as_mut(), &w).is_pending());
        drop(a);
        assert_eq!(sem.available_permits(), 1);
        // The queue is empty again: the fast path works.
        drop(sem.try_acquire().unwrap());
    }

    #[test]
    fn cancel_after_completion_before_poll_returns_permits() {
        let sem = Semaphore::new(0);
        let (c, w) = counting();
        let mut a = Box::pin(sem.acquire_many(2));
        assert!(poll(a.as_mut(), &w).is_pending());
        sem.add_permits(2).unwrap();
        assert_eq!(c.count(), 1);
        assert_eq!(sem.available_permits(), 0);
        drop(a);
        assert_eq!(sem.available_permits(), 2);
        // The same for the owned future.
        let sem = StdArc::new(Semaphore::new(0));
        let mut o = Box::pin(StdArc::clone(&sem).acquire_owned());
        assert!(poll(o.as_mut(), &w).is_pending());
        sem.add_permits(1).unwrap();
        drop(o);
        assert_eq!(sem.available_permits(), 1);
    }

    #[test]
    fn waker_is_updated_on_repoll() {
        let sem = Semaphore::new(0);
        let (c1, w1) = counting();
        let (c2, w2) = counting();
        let mut a = Box::pin(sem.acquire());
        assert!(poll(a.as_mut(), &w1).is_pending());
        assert!(poll(a.as_mut(), &w1).is_pending());
        assert!(poll(a.as_mut(), &w2).is_pending());
        sem.add_permits(1).unwrap();
        assert_eq!((c1.count(), c2.count()), (0, 1));
        assert!(matches!(poll(a.as_mut(), &w2), Poll::Ready(Ok(_))));
    }

    /// A waker that panics when woken.
    struct PanicWaker;

    impl Wake for PanicWaker {
        fn wake(self: StdArc<Self>) {
            panic!("waker panicked");
        }
    }

    #[test]
    fn panicking_waker_does_not_lose_other_wakeups() {
        let sem = Semaphore::new(0);
        let bad = Waker::from(StdArc::new(PanicWaker));
        let (c, good) = counting();
        let mut a = Box::pin(sem.acquire());
        let mut b = Box::pin(sem.acquire());
        assert!(poll(a.as_mut(), &bad).is_pending());
        assert!(poll(b.as_mut(), &good).is_pending());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sem.add_permits(2)));
        assert!(r.is_err(), "the waker's panic propagates");
        assert_eq!(c.count(), 1, "the second waiter was still woken");
        assert!(matches!(poll(a.as_mut(), &good), Poll::Ready(Ok(_))));
        assert!(matches!(poll(b.as_mut(), &good), Poll::Ready(Ok(_))));
        drop((a, b));
        assert_eq!(sem.available_permits(), 2);
        // The lock is not poisoned (no user code ran under it): the semaphore still works.
        let mut w = Box::pin(sem.acquire_many(3));
        assert!(poll(w.as_mut(), &good).is_pending());
        sem.add_permits(1).unwrap();
        assert!(matches!(poll(w.as_mut(), &good), Poll::Ready(Ok(_))));
    }

    #[test]
    fn many_waiters_woken_in_batches() {
        let n = 40; // more than one wake batch
        let sem = Semaphore::new(0);
        let counters: Vec<_> = (0..n).map(|_| counting()).collect();
        let mut futs: Vec<Pin<Box<Acquire<'_>>>> =
            (0..n).map(|_| Box::pin(sem.acquire())).collect();
        for (f, (_, w)) in futs.iter_mut().zip(&counters) {
            assert!(poll(f.as_mut(), w).is_pending());
        }
        sem.add_permits(n + 1).unwrap();
        assert!(counters.iter().all(|(c, _)| c.count() == 1));
        assert_eq!(sem.available_permits(), 1);
        let permits: Vec<SemaphorePermit<'_>> = futs
            .iter_mut()
            .zip(&counters)
            .map(|(f, (_, w))| match poll(f.as_mut(), w) {
                Poll::Ready(r) => r.unwrap(),
                Poll::Pending => panic!("not served"),
            })
            .collect();
        drop(permits);
        assert_eq!(sem.available_permits(), n + 1);
    }

    #[test]
    fn close_wakes_all_waiters_with_error() {
        let n = 40;
        let sem = Semaphore::new(1);
        let held = sem.try_acquire().unwrap();
        let counters: Vec<_> = (0..n).map(|_| counting()).collect();
        let mut futs: Vec<_> = (0..n).map(|_| Box::pin(sem.acquire_many(2))).collect();
        for (f, (_, w)) in futs.iter_mut().zip(&counters) {
            assert!(poll(f.as_mut(), w).is_pending());
        }
        sem.add_permits(1).unwrap(); // a partial assignment to the head
        assert_eq!(sem.available_permits(), 0);
        sem.close();
        sem.close(); // idempotent
        assert!(sem.is_closed());
        assert!(counters.iter().all(|(c, _)| c.count() == 1));
        for (f, (_, w)) in futs.iter_mut().zip(&counters) {
            assert!(matches!(
                poll(f.as_mut(), w),
                Poll::Ready(Err(AcquireError::Closed))
            ));
        }
        assert_eq!(
            sem.available_permits(),
            1,
            "the head's partial permit came back"
        );
        drop(held);
        assert_eq!(sem.available_permits(), 2);
        assert_eq!(sem.try_acquire().unwrap_err(), TryAcquireError::Closed);
        assert_eq!(
            futures::executor::block_on(sem.acquire()).unwrap_err(),
            AcquireError::Closed
        );
        sem.add_permits(1).unwrap();
        assert_eq!(sem.available_permits(), 3);
        assert_eq!(AcquireError::Closed.to_string(), "the semaphore is closed");
    }

    #[test]
    fn threads_contend_bounded() {
        let threads = if cfg!(miri) { 3 } else { 8 };
        let iters = if cfg!(miri) { 20 } else { 500 };
        let sem = StdArc::new(Semaphore::new(2));
        let holders = StdArc::new(std::sync::atomic::AtomicUsize::new(0));
        let high = StdArc::new(std::sync::atomic::AtomicUsize::new(0));
        let hs: Vec<_> = (0..threads)
            .map(|i| {
                let (sem, holders, high) = (
                    StdArc::clone(&sem),
                    StdArc::clone(&holders),
                    StdArc::clone(&high),
                );
                std::thread::spawn(move || {
                    for _ in 0..iters {
                        let p = futures::executor::block_on(sem.acquire_many(1 + i % 2)).unwrap();
                        let now =
                            holders.fetch_add(p.num_permits(), Ordering::SeqCst) + p.num_permits();
                        high.fetch_max(now, Ordering::SeqCst);
                        holders.fetch_sub(p.num_permits(), Ordering::SeqCst);
                        drop(p);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert!(high.load(Ordering::SeqCst) <= 2);
        assert_eq!(sem.available_permits(), 2);
    }

    /// Compile-time checks: the futures and permits are `Send + Sync`, the semaphore
    /// too, and the futures are `!Unpin` (their node is linked while they wait).
    #[test]
    fn auto_traits() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Semaphore>();
        send_sync::<Acquire<'static>>();
        send_sync::<AcquireOwned>();
        send_sync::<SemaphorePermit<'static>>();
        send_sync::<OwnedSemaphorePermit>();
        send_sync::<AcquireError>();
        send_sync::<TryAcquireError>();

        // Ambiguous (a compile error) if the type is `Unpin`.
        use crate::test_util::AmbiguousIfUnpin;
        <Acquire<'static> as AmbiguousIfUnpin<_>>::some_item();
        <AcquireOwned as AmbiguousIfUnpin<_>>::some_item();
    }
}
