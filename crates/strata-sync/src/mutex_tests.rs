//! Loom models and unit tests of [`crate::mutex`].
//!
//! The models run under `--cfg strata_loom` (where a contended `lock` parks at once,
//! a timed park times out after one yield, and the fairness bound is "woken once and
//! lost the race") and once as plain tests otherwise. Under `--cfg strata_weaken` the
//! stores that give the lock away are `Relaxed` instead of `Release`
//! (`mutex::release_ordering`); the models marked `should_panic` there report it as a
//! data race on the protected value ("Causality violation").

use std::time::Duration;

use strata_primitives::sync::Arc;
use strata_primitives::sync::atomic::Ordering;
use strata_primitives::{model, thread};

use super::{AdaptiveMutex, AdaptiveMutexGuard, LOCKED, PARKED, QLOCK};

/// Waits (yielding, so loom schedules the others) until a waiter is queued on `m`.
fn wait_for_parked<T>(m: &AdaptiveMutex<T>) {
    while m.raw.state.load(Ordering::Relaxed) & PARKED == 0 {
        thread::yield_now();
    }
}

/// Asserts the lock is free with nobody queued.
fn assert_idle<T>(m: &AdaptiveMutex<T>) {
    assert_eq!(
        m.raw.state.load(Ordering::Relaxed) & (LOCKED | PARKED | QLOCK),
        0,
        "the lock is free and its queue empty"
    );
}

/// (a) No lost wake-up: a waiter parks (at once under loom) while the holder unlocks;
/// it must get the lock (loom reports a deadlock otherwise) and see the holder's write.
/// The holder then locks again, racing the waiter's unlock.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_mutex_no_lost_wakeup() {
    model(|| {
        let m = Arc::new(AdaptiveMutex::new(0u64));
        let g = m.lock().unwrap();
        let m2 = Arc::clone(&m);
        let waiter = thread::spawn(move || {
            let mut g = m2.lock().unwrap();
            assert_eq!(*g, 1, "the waiter sees the holder's write");
            *g = 2;
        });
        let mut g = g;
        *g = 1;
        drop(g);
        waiter.join().unwrap();
        assert_eq!(*m.lock().unwrap(), 2);
        assert_idle(&m);
    });
}

/// Two waiters and a holder: every waiter gets the lock exactly once, each sees the
/// previous owner's write, and the lock ends free. Exercises the woken-but-lost path
/// (the woken waiter requeues at the head) and, under loom's fairness bound, the
/// handoff to a waiter that lost once.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_mutex_two_waiters() {
    model(|| {
        let m = Arc::new(AdaptiveMutex::new(0u64));
        let g = m.lock().unwrap();
        let spawn = |m: Arc<AdaptiveMutex<u64>>| {
            thread::spawn(move || {
                let mut g = m.lock().unwrap();
                *g += 1;
            })
        };
        let a = spawn(Arc::clone(&m));
        let b = spawn(Arc::clone(&m));
        drop(g);
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(*m.lock().unwrap(), 2);
        assert_idle(&m);
    });
}

/// (b) Fair handoff: the holder waits until a waiter is queued, then `unlock_fair`s.
/// Ownership must move to the waiter directly: a third thread's `try_lock` may succeed
/// only after the waiter has had the lock (it sees the waiter's write), never in the
/// window between the handoff and the waiter's entry.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_mutex_fair_handoff() {
    model(|| {
        let m = Arc::new(AdaptiveMutex::new(0u64));
        let mut g = m.lock().unwrap();
        let m2 = Arc::clone(&m);
        let waiter = thread::spawn(move || {
            let mut g = m2.lock().unwrap();
            assert_eq!(*g, 1, "handed the lock with the holder's write");
            *g = 2;
        });
        wait_for_parked(&m);
        let m3 = Arc::clone(&m);
        let intruder = thread::spawn(move || {
            if let Ok(g) = m3.try_lock() {
                assert_eq!(*g, 2, "the lock was stolen between handoff and entry");
            }
        });
        *g = 1;
        AdaptiveMutexGuard::unlock_fair(g);
        waiter.join().unwrap();
        intruder.join().unwrap();
        assert_eq!(*m.lock().unwrap(), 2);
        assert_idle(&m);
    });
}

/// (c) A timed waiter races the holder's unlock (plain, or fair when `fair`): it
/// either gets the lock (and sees the holder's write) or times out; either way
/// nothing is lost — the lock ends free and queue-less, and the value says exactly
/// who had it.
fn timed_waiter_races_unlock(fair: bool) {
    model(move || {
        let m = Arc::new(AdaptiveMutex::new(0u64));
        let mut g = m.lock().unwrap();
        let m2 = Arc::clone(&m);
        let waiter = thread::spawn(move || match m2.try_lock_for(Duration::from_millis(1)) {
            Ok(mut g) => {
                assert_eq!(*g, 1);
                *g = 2;
                true
            }
            Err(e) => {
                assert!(matches!(e, std::sync::TryLockError::WouldBlock));
                false
            }
        });
        *g = 1;
        if fair {
            AdaptiveMutexGuard::unlock_fair(g);
        } else {
            drop(g);
        }
        let got = waiter.join().unwrap();
        assert_eq!(*m.lock().unwrap(), if got { 2 } else { 1 });
        assert_idle(&m);
    });
}

#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_mutex_timed_waiter_races_unlock() {
    timed_waiter_races_unlock(false);
}

#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_mutex_timed_waiter_races_fair_unlock() {
    timed_waiter_races_unlock(true);
}

/// A timed waiter and an untimed one queue behind the holder: when the timed one
/// gives up (unlinking itself, possibly after being woken or handed the lock), the
/// untimed one must still get the lock — no lost wake-up, no double owner.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_mutex_timed_and_untimed_waiters() {
    model(|| {
        let m = Arc::new(AdaptiveMutex::new(0u64));
        let g = m.lock().unwrap();
        let m2 = Arc::clone(&m);
        let timed = thread::spawn(move || match m2.try_lock_for(Duration::from_millis(1)) {
            Ok(mut g) => {
                *g += 10;
                true
            }
            Err(_) => false,
        });
        let m3 = Arc::clone(&m);
        let untimed = thread::spawn(move || {
            *m3.lock().unwrap() += 1;
        });
        drop(g);
        let got = timed.join().unwrap();
        untimed.join().unwrap();
        assert_eq!(*m.lock().unwrap(), if got { 11 } else { 1 });
        assert_idle(&m);
    });
}

#[cfg(not(strata_loom))]
mod unit {
    use std::sync::TryLockError;
    use std::time::{Duration, Instant};

    use super::super::{AdaptiveMutex, AdaptiveMutexGuard, MappedAdaptiveMutexGuard};

    fn assert_send<T: Send>() {}
    fn assert_sync<T: Sync>() {}

    #[test]
    fn send_sync_bounds() {
        assert_send::<AdaptiveMutex<u32>>();
        assert_sync::<AdaptiveMutex<u32>>();
        // `Cell` is Send but not Sync: the mutex is still Sync, as std's.
        assert_sync::<AdaptiveMutex<std::cell::Cell<u32>>>();
        assert_sync::<AdaptiveMutexGuard<'static, u32>>();
        assert_sync::<MappedAdaptiveMutexGuard<'static, u32>>();
        fn assert_unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
        assert_unwind_safe::<AdaptiveMutex<std::cell::Cell<u32>>>();
        // The guards are !Send: checked by this trait trick (a blanket impl for
        // every type and a second one for Send types would be ambiguous).
        trait AmbiguousIfSend<A> {
            fn some_item() {}
        }
        impl<T: ?Sized> AmbiguousIfSend<()> for T {}
        impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}
        <AdaptiveMutexGuard<'static, u32> as AmbiguousIfSend<_>>::some_item();
        <MappedAdaptiveMutexGuard<'static, u32> as AmbiguousIfSend<_>>::some_item();
        <AdaptiveMutex<std::rc::Rc<u32>> as AmbiguousIfSend<_>>::some_item();
    }

    static GLOBAL: AdaptiveMutex<Vec<u32>> = AdaptiveMutex::new(Vec::new());

    /// A holder that panics on another thread poisons the mutex for everyone.
    #[test]
    fn poison_on_panic_in_another_thread() {
        let m = std::sync::Arc::new(AdaptiveMutex::new(5u32));
        let m2 = std::sync::Arc::clone(&m);
        let r = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(r.is_err());
        assert!(m.is_poisoned());
        let e = m.lock().unwrap_err();
        assert_eq!(**e.get_ref(), 5);
        drop(e);
        match m.try_lock() {
            Err(std::sync::TryLockError::Poisoned(e)) => assert_eq!(*e.into_inner(), 5),
            _ => panic!("try_lock must report the poison"),
        }
        m.clear_poison();
        assert!(!m.is_poisoned());
        assert_eq!(*m.lock().unwrap(), 5);
    }

    #[test]
    fn const_new_in_static() {
        GLOBAL.lock().unwrap().push(1);
        assert_eq!(GLOBAL.lock().unwrap().as_slice(), &[1]);
    }

    #[test]
    fn poisoning_into_inner_get_mut() {
        let mut m = AdaptiveMutex::new(1u32);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut g = m.lock().unwrap();
            *g = 2;
            panic!("boom");
        }));
        assert!(r.is_err());
        assert!(m.is_poisoned());
        assert_eq!(*m.get_mut().unwrap_err().into_inner(), 2);
        m.clear_poison();
        assert_eq!(*m.get_mut().unwrap(), 2);
        // A guard taken while already panicking does not poison on its own.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            struct LockOnDrop<'a>(&'a AdaptiveMutex<u32>);
            impl Drop for LockOnDrop<'_> {
                fn drop(&mut self) {
                    *self.0.lock().unwrap() = 3;
                }
            }
            let _l = LockOnDrop(&m);
            panic!("unwinding");
        }));
        assert!(r.is_err());
        assert!(!m.is_poisoned());
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = m.lock();
            panic!("boom");
        }));
        assert_eq!(m.into_inner().unwrap_err().into_inner(), 3);
    }

    #[test]
    fn try_lock_and_timeouts() {
        let m = AdaptiveMutex::new(0u8);
        let g = m.lock().unwrap();
        assert!(m.is_locked());
        assert!(matches!(m.try_lock(), Err(TryLockError::WouldBlock)));
        let start = Instant::now();
        assert!(matches!(
            m.try_lock_for(Duration::from_millis(5)),
            Err(TryLockError::WouldBlock)
        ));
        assert!(start.elapsed() >= Duration::from_millis(5));
        assert!(matches!(
            m.try_lock_until(Instant::now()),
            Err(TryLockError::WouldBlock)
        ));
        drop(g);
        assert!(!m.is_locked());
        drop(m.try_lock_for(Duration::ZERO).unwrap());
        drop(
            m.try_lock_until(Instant::now() - Duration::from_millis(1))
                .unwrap(),
        );
        // A timeout too large for `Instant` waits forever (here: takes the free lock).
        drop(m.try_lock_for(Duration::MAX).unwrap());
    }

    /// A timed lock succeeds when the holder lets go before the deadline.
    #[test]
    fn try_lock_for_succeeds_when_released() {
        let m = AdaptiveMutex::new(0u32);
        std::thread::scope(|s| {
            let g = m.lock().unwrap();
            let (tx, rx) = std::sync::mpsc::channel();
            let m = &m;
            let t = s.spawn(move || {
                tx.send(()).unwrap();
                let mut g = m.try_lock_for(Duration::from_secs(60)).unwrap();
                *g += 1;
            });
            rx.recv().unwrap();
            std::thread::sleep(Duration::from_millis(if cfg!(miri) { 1 } else { 10 }));
            drop(g);
            t.join().unwrap();
        });
        assert_eq!(m.into_inner().unwrap(), 1);
    }

    #[test]
    fn map_and_try_map() {
        let m = AdaptiveMutex::new((1u32, String::from("x")));
        let g = m.lock().unwrap();
        let mut s = AdaptiveMutexGuard::map(g, |p| &mut p.1);
        s.push('y');
        let mut first = MappedAdaptiveMutexGuard::map(s, |s| &mut s[..1]);
        first.make_ascii_uppercase();
        assert_eq!(format!("{first:?} {first}"), "\"X\" X");
        assert!(m.is_locked());
        drop(first);
        assert!(!m.is_locked());
        let g = m.lock().unwrap();
        let g = AdaptiveMutexGuard::try_map(g, |_| None::<&mut u32>).unwrap_err();
        let mut n = AdaptiveMutexGuard::try_map(g, |p| Some(&mut p.0)).unwrap();
        *n += 1;
        drop(n);
        assert_eq!(m.into_inner().unwrap(), (2, String::from("Xy")));
    }

    #[test]
    fn mapped_guard_poisons_and_panicking_map_unlocks() {
        let m = AdaptiveMutex::new([0u8; 4]);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut g = AdaptiveMutexGuard::map(m.lock().unwrap(), |a| &mut a[1]);
            *g = 9;
            panic!("boom");
        }));
        assert!(r.is_err());
        assert!(m.is_poisoned() && !m.is_locked());
        m.clear_poison();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = AdaptiveMutexGuard::map(m.lock().unwrap(), |_| -> &mut u8 {
                panic!("in the mapping closure")
            });
        }));
        assert!(r.is_err());
        assert!(m.is_poisoned() && !m.is_locked());
        assert_eq!(m.into_inner().unwrap_err().into_inner(), [0, 9, 0, 0]);
    }

    #[test]
    fn unsized_values() {
        let boxed: Box<AdaptiveMutex<[u8]>> = Box::new(AdaptiveMutex::new([1u8, 2, 3]));
        boxed.lock().unwrap()[2] = 7;
        assert_eq!(&*boxed.lock().unwrap(), &[1, 2, 7]);
        let arr = AdaptiveMutex::new([0u32; 3]);
        let r: &AdaptiveMutex<[u32]> = &arr;
        r.lock().unwrap().fill(4);
        let dynm: &AdaptiveMutex<dyn std::fmt::Debug> = &AdaptiveMutex::new(5u8);
        assert_eq!(format!("{:?}", &*dynm.lock().unwrap()), "5");
        assert_eq!(arr.into_inner().unwrap(), [4; 3]);
    }

    #[test]
    fn debug_default_from_display() {
        let m: AdaptiveMutex<u32> = AdaptiveMutex::default();
        assert_eq!(
            format!("{m:?}"),
            "AdaptiveMutex { data: 0, poisoned: false, .. }"
        );
        let g = m.lock().unwrap();
        assert_eq!(
            format!("{m:?}"),
            "AdaptiveMutex { data: <locked>, poisoned: false, .. }"
        );
        assert_eq!(format!("{g} {g:?}"), "0 0");
        drop(g);
        let m = AdaptiveMutex::from(String::from("s"));
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _g = m.lock();
            panic!("boom");
        }));
        assert_eq!(
            format!("{m:?}"),
            "AdaptiveMutex { data: \"s\", poisoned: true, .. }"
        );
    }

    /// `unlock_fair` without waiters is a plain unlock.
    #[test]
    fn unlock_fair_without_waiters() {
        let m = AdaptiveMutex::new(1u8);
        AdaptiveMutexGuard::unlock_fair(m.lock().unwrap());
        assert!(!m.is_locked());
        assert!(m.try_lock().is_ok());
    }
}
