//! Loom models and unit tests of the async mutex ([`crate::mutex`]).
//!
//! The mutex is the crate's semaphore with one permit; these models check what the
//! mutex adds on top (the guards, the hand-off to a waiter, cancellation, the owned
//! and mapped guards) and assert, each: mutual exclusion on a loom-tracked cell inside
//! the mutex, termination (no lost wake-up: `block_on` parks, so a lost wake-up is a
//! loom deadlock), no leaked lock (`try_lock` succeeds at the end), and no barging past
//! a waiter the lock was handed to.
//!
//! The mutex adds no atomic of its own, so under `--cfg strata_weaken` it is the
//! semaphore's weakened publication (a `Relaxed` release CAS and completion store)
//! that the models marked `should_panic` detect, as a causality violation on the cell.

use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Waker};

use std::sync::Arc;
use strata_primitives::{model, thread};

use crate::mutex::{Mutex, MutexGuard, OwnedMutexGuard, TryLockError};
use crate::test_util::{CountWaker, Guarded, block_on, spin_on};

/// Two threads lock and bump the guarded cell; both finish and the bumps are ordered.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_two_tasks_exclusion_no_lost_wakeup() {
    model(|| {
        let m = Arc::new(Mutex::new(Guarded::default()));
        let m2 = Arc::clone(&m);
        let t = thread::spawn(move || block_on(m2.lock()).bump());
        block_on(m.lock()).bump();
        t.join().unwrap();
        assert_eq!(m.try_lock().expect("lock leaked").get(), 2);
    });
}

/// The holder unlocks while one waiter cancels (drops its future after one poll) and
/// another waits: the waiter finishes whether or not the lock was first handed to the
/// cancelled one, sees the holder's write, and the lock is free at the end.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_cancelled_lock_passes_on() {
    model(|| {
        let m = Arc::new(Mutex::new(Guarded::default()));
        let held = m.try_lock().unwrap();
        let m1 = Arc::clone(&m);
        let canceller = thread::spawn(move || {
            let waker = Waker::from(StdArc::new(CountWaker::default()));
            let mut fut = Box::pin(m1.lock());
            // Ready if the unlock came first; the guard is then dropped at once.
            let _ = fut.as_mut().poll(&mut Context::from_waker(&waker));
            drop(fut);
        });
        let m2 = Arc::clone(&m);
        let waiter = thread::spawn(move || block_on(m2.lock()).bump());
        held.bump();
        drop(held);
        canceller.join().unwrap();
        waiter.join().unwrap();
        assert_eq!(m.try_lock().expect("lock leaked").get(), 2);
    });
}

/// An owned guard mapped to its value on a spinning executor (no wake-ups: it sees the
/// hand-off through the lock-free status load) against a borrowed mapped guard.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_owned_and_mapped_guards_exclude() {
    model(|| {
        let m = Arc::new(Mutex::new((0u8, Guarded::default())));
        let m2 = Arc::clone(&m);
        let t = thread::spawn(move || {
            let g = spin_on(m2.lock_owned());
            let cell = OwnedMutexGuard::map(g, |v| &mut v.1);
            cell.bump();
        });
        let g = block_on(m.lock());
        let cell = MutexGuard::map(g, |v| &mut v.1);
        cell.bump();
        drop(cell);
        t.join().unwrap();
        assert_eq!(m.try_lock().expect("lock leaked").1.get(), 2);
    });
}

/// A queued waiter is handed the lock while another thread tries to take it: the
/// `try_lock` never succeeds (the lock is held, then handed over, never free), and the
/// waiter is woken exactly once.
#[test]
fn loom_handoff_no_barging() {
    model(|| {
        let m = Arc::new(Mutex::new(()));
        let held = Arc::clone(&m).try_lock_owned().unwrap();
        let w = StdArc::new(CountWaker::default());
        let waker = Waker::from(StdArc::clone(&w));
        let mut fut = Box::pin(m.lock());
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let t = thread::spawn(move || drop(held));
        assert_eq!(m.try_lock().unwrap_err(), TryLockError::WouldBlock);
        t.join().unwrap();
        assert_eq!(w.count(), 1, "the waiter is woken once");
        assert_eq!(m.try_lock().unwrap_err(), TryLockError::WouldBlock);
        let g = match fut.as_mut().poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(g) => g,
            Poll::Pending => panic!("the lock was not handed to the waiter"),
        };
        drop(g);
        drop(fut);
        assert!(m.try_lock().is_ok(), "lock leaked");
    });
}

#[cfg(not(strata_loom))]
mod unit {
    use super::*;
    use crate::mutex::{Lock, LockOwned, MappedMutexGuard, OwnedMappedMutexGuard};
    use core::pin::Pin;

    fn poll<F: Future>(f: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(w))
    }

    #[test]
    fn lock_try_lock_unlock() {
        let m = Mutex::new(5);
        {
            let mut g = block_on(m.lock());
            *g += 1;
            assert_eq!(m.try_lock().unwrap_err(), TryLockError::WouldBlock);
            assert!(core::ptr::eq(MutexGuard::mutex(&g), &m));
        }
        assert_eq!(*m.try_lock().unwrap(), 6);
        assert_eq!(m.into_inner(), 6);
    }

    #[test]
    fn fifo_order_and_no_barging() {
        let m = Mutex::new(Vec::new());
        let (cb, wb) = CountWaker::new_waker();
        let (cc, wc) = CountWaker::new_waker();
        let held = m.try_lock().unwrap();
        let mut b = Box::pin(m.lock());
        let mut c = Box::pin(m.lock());
        assert!(poll(b.as_mut(), &wb).is_pending());
        assert!(poll(c.as_mut(), &wc).is_pending());
        drop(held);
        assert_eq!(
            (cb.count(), cc.count()),
            (1, 0),
            "the head is woken, only it"
        );
        // Handed to B, not free: a newcomer cannot take it.
        assert_eq!(m.try_lock().unwrap_err(), TryLockError::WouldBlock);
        let Poll::Ready(mut gb) = poll(b.as_mut(), &wb) else {
            panic!("B not served")
        };
        gb.push('b');
        assert!(poll(c.as_mut(), &wc).is_pending());
        drop(gb);
        assert_eq!(cc.count(), 1);
        let Poll::Ready(mut gc) = poll(c.as_mut(), &wc) else {
            panic!("C not served")
        };
        gc.push('c');
        drop(gc);
        assert_eq!(*m.try_lock().unwrap(), ['b', 'c']);
    }

    #[test]
    fn cancel_queued_waiter_loses_nothing() {
        let m = Mutex::new(0);
        let (cb, wb) = CountWaker::new_waker();
        let (cc, wc) = CountWaker::new_waker();
        let held = m.try_lock().unwrap();
        let mut b = Box::pin(m.lock());
        let mut c = Box::pin(m.lock());
        assert!(poll(b.as_mut(), &wb).is_pending());
        assert!(poll(c.as_mut(), &wc).is_pending());
        drop(b);
        drop(held);
        assert_eq!(
            (cb.count(), cc.count()),
            (0, 1),
            "C is the head once B is gone"
        );
        assert!(matches!(poll(c.as_mut(), &wc), Poll::Ready(_)));
        drop(c);
        assert!(m.try_lock().is_ok());
    }

    #[test]
    fn cancel_after_handoff_passes_the_lock_on() {
        let m = Mutex::new(0);
        let (cb, wb) = CountWaker::new_waker();
        let (cc, wc) = CountWaker::new_waker();
        let held = m.try_lock().unwrap();
        let mut b = Box::pin(m.lock());
        let mut c = Box::pin(m.lock());
        assert!(poll(b.as_mut(), &wb).is_pending());
        assert!(poll(c.as_mut(), &wc).is_pending());
        drop(held);
        assert_eq!(cb.count(), 1);
        // B was handed the lock but is dropped before it is polled: C gets it.
        drop(b);
        assert_eq!(cc.count(), 1);
        assert!(matches!(poll(c.as_mut(), &wc), Poll::Ready(_)));
        drop(c);
        assert!(m.try_lock().is_ok());
    }

    #[test]
    #[should_panic(expected = "polled after it had completed")]
    fn polled_after_completion_panics() {
        let m = Mutex::new(0);
        let (_, w) = CountWaker::new_waker();
        let mut f = Box::pin(m.lock());
        let Poll::Ready(g) = poll(f.as_mut(), &w) else {
            panic!("free lock not taken")
        };
        drop(g);
        let _ = poll(f.as_mut(), &w);
    }

    #[test]
    #[should_panic(expected = "polled after it had completed")]
    fn owned_polled_after_completion_panics() {
        let m = Arc::new(Mutex::new(0));
        let (_, w) = CountWaker::new_waker();
        let mut f = Box::pin(Arc::clone(&m).lock_owned());
        let Poll::Ready(g) = poll(f.as_mut(), &w) else {
            panic!("free lock not taken")
        };
        drop(g);
        let _ = poll(f.as_mut(), &w);
    }

    #[test]
    fn map_and_try_map() {
        let m = Mutex::new((1, vec![b'a']));
        let g = m.try_lock().unwrap();
        let g = match MutexGuard::try_map(g, |_| None::<&mut u8>) {
            Err(g) => g,
            Ok(_) => panic!("declined map returned a mapped guard"),
        };
        let mut s = MutexGuard::map(g, |v| &mut v.1);
        s.push(b'b');
        assert_eq!(format!("{s:?}"), "[97, 98]");
        assert!(m.try_lock().is_err(), "a mapped guard holds the lock");
        let s = match MappedMutexGuard::try_map(s, |_| None::<&mut u8>) {
            Err(s) => s,
            Ok(_) => panic!("declined map returned a mapped guard"),
        };
        let mut first = MappedMutexGuard::map(s, |s| &mut s[0]);
        *first = b'x';
        assert_eq!(format!("{first}"), "120");
        drop(first);
        assert_eq!(m.try_lock().unwrap().1, b"xb");
        let g = m.try_lock().unwrap();
        let mut n = MutexGuard::try_map(g, |v| Some(&mut v.0)).unwrap();
        *n += 1;
        let n = MappedMutexGuard::try_map(n, |n| Some(n)).unwrap();
        assert_eq!(*n, 2);
        drop(n);
        assert!(m.try_lock().is_ok());
    }

    #[test]
    fn panic_in_map_releases_the_lock() {
        let m = Mutex::new(0);
        let g = m.try_lock().unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            MutexGuard::map(g, |_: &mut i32| -> &mut i32 { panic!("in map") })
        }));
        assert!(r.is_err());
        assert!(
            m.try_lock().is_ok(),
            "the guard was dropped during unwinding"
        );
    }

    #[test]
    fn owned_guards() {
        let m = Arc::new(Mutex::new(vec![1, 2, 3]));
        let g = block_on(Arc::clone(&m).lock_owned());
        assert!(Arc::ptr_eq(OwnedMutexGuard::mutex(&g), &m));
        assert_eq!(
            Arc::clone(&m).try_lock_owned().unwrap_err(),
            TryLockError::WouldBlock
        );
        let g = match OwnedMutexGuard::try_map(g, |v| v.get_mut(7)) {
            Err(g) => g,
            Ok(_) => panic!("declined map"),
        };
        let mut last = OwnedMutexGuard::map(g, |v| v.last_mut().unwrap());
        *last = 30;
        assert!(Arc::ptr_eq(OwnedMappedMutexGuard::mutex(&last), &m));
        let last = match OwnedMappedMutexGuard::try_map(last, |_| None::<&mut u8>) {
            Err(l) => l,
            Ok(_) => panic!("declined map"),
        };
        let doubled = OwnedMappedMutexGuard::map(last, |x| x);
        assert_eq!(format!("{doubled} {doubled:?}"), "30 30");
        assert_eq!(Arc::strong_count(&m), 2);
        drop(doubled);
        assert_eq!(
            Arc::strong_count(&m),
            1,
            "the mapped guard kept one reference"
        );
        let g = Arc::clone(&m).try_lock_owned().unwrap();
        let g = OwnedMutexGuard::try_map(g, |v| v.first_mut()).unwrap();
        assert_eq!(*g, 1);
        drop(g);
        assert_eq!(*m.try_lock().unwrap(), [1, 2, 30]);
    }

    #[test]
    fn get_mut_default_from_debug() {
        let mut m: Mutex<Vec<u8>> = Mutex::default();
        m.get_mut().push(1);
        assert_eq!(format!("{m:?}"), "Mutex { data: [1] }");
        let g = m.try_lock().unwrap();
        assert_eq!(format!("{m:?}"), "Mutex { data: <locked> }");
        assert_eq!(format!("{g:?}"), "[1]");
        drop(g);
        let m = Mutex::from(7u8);
        assert_eq!(m.into_inner(), 7);
        let unsized_: &Mutex<[u8]> = &Mutex::new([1u8, 2]);
        assert_eq!(unsized_.try_lock().unwrap().len(), 2);
    }

    #[test]
    fn blocking_lock_across_threads() {
        let m = Arc::new(Mutex::new(0u32));
        let iters = if cfg!(miri) { 20 } else { 1000 };
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for i in 0..iters {
                        if i % 2 == 0 {
                            *m.blocking_lock() += 1;
                        } else {
                            *Arc::clone(&m).blocking_lock_owned() += 1;
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*m.try_lock().unwrap(), 3 * iters);
    }

    /// Threads contend through `lock().await` with a read-modify-write split by a
    /// yield (a lost update would show in the count).
    #[test]
    fn threads_contend_exact_count() {
        let threads = if cfg!(miri) { 3 } else { 6 };
        let iters = if cfg!(miri) { 20 } else { 500 };
        let m = Arc::new(Mutex::new(0usize));
        let hs: Vec<_> = (0..threads)
            .map(|_| {
                let m = Arc::clone(&m);
                std::thread::spawn(move || {
                    for _ in 0..iters {
                        block_on(async {
                            let mut g = m.lock().await;
                            let v = *g;
                            std::thread::yield_now();
                            *g = v + 1;
                        });
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(*m.try_lock().unwrap(), threads * iters);
    }

    #[test]
    fn auto_traits() {
        use std::cell::Cell;
        use std::rc::Rc;
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<Mutex<Cell<u8>>>();
        sync::<Mutex<Cell<u8>>>();
        send::<Lock<'static, Cell<u8>>>();
        sync::<Lock<'static, Cell<u8>>>();
        send::<LockOwned<Cell<u8>>>();
        send::<MutexGuard<'static, Cell<u8>>>();
        sync::<MutexGuard<'static, u8>>();
        send::<MappedMutexGuard<'static, Cell<u8>>>();
        sync::<MappedMutexGuard<'static, u8>>();
        send::<OwnedMutexGuard<Cell<u8>>>();
        sync::<OwnedMutexGuard<u8>>();
        send::<OwnedMappedMutexGuard<Cell<u8>, Cell<u8>>>();
        sync::<OwnedMappedMutexGuard<u8, u8>>();
        send::<TryLockError>();
        sync::<TryLockError>();

        // Each line compiles only if the type lacks the trait (two impls apply
        // otherwise, and the call is ambiguous).
        use crate::test_util::{AmbiguousIfSend, AmbiguousIfSync, AmbiguousIfUnpin};

        <Mutex<Rc<u8>> as AmbiguousIfSend<_>>::some_item();
        <Mutex<Rc<u8>> as AmbiguousIfSync<_>>::some_item();
        <Lock<'static, Rc<u8>> as AmbiguousIfSend<_>>::some_item();
        <MutexGuard<'static, Rc<u8>> as AmbiguousIfSend<_>>::some_item();
        // A guard hands out `&T`: not `Sync` for a `Send + !Sync` value.
        <MutexGuard<'static, Cell<u8>> as AmbiguousIfSync<_>>::some_item();
        <MappedMutexGuard<'static, Cell<u8>> as AmbiguousIfSync<_>>::some_item();
        <OwnedMutexGuard<Cell<u8>> as AmbiguousIfSync<_>>::some_item();
        <OwnedMappedMutexGuard<u8, Cell<u8>> as AmbiguousIfSync<_>>::some_item();
        <Lock<'static, u8> as AmbiguousIfUnpin<_>>::some_item();
        <LockOwned<u8> as AmbiguousIfUnpin<_>>::some_item();
    }
}
