//! Loom models and unit tests of [`crate::rwlock`].
//!
//! The models run under `--cfg strata_loom` (every interleaving up to the preemption
//! bound; a waiter parks at once there, since spinning is skipped) and once as plain
//! tests otherwise. The protected value lives in loom's `UnsafeCell` (through the
//! shim), so a critical section that is not ordered after the previous writer's is
//! reported by loom as a "Causality violation". Under `--cfg strata_weaken` the
//! compare-and-swaps that release a writer's data (write unlock, downgrades) are
//! `Relaxed`, and the models that must notice are `should_panic`.
//!
//! Planted bugs tried by hand and reverted (each caught by the models named):
//! * the drain's compare-and-swap with a `Relaxed` failure ordering (a real bug of the
//!   first version: the writer could go on to write after reading the last reader's
//!   unlock through that failure): "Causality violation" in
//!   `loom_rwlock_writer_vs_reader` and `loom_rwlock_downgrade_publishes`;
//! * the last reader not waking the drainer (`release_read` ignoring `DRAINING`):
//!   deadlock in `loom_rwlock_writer_vs_reader`, `loom_rwlock_downgrade_publishes`
//!   and `loom_rwlock_upgrade_waits_for_reader`;
//! * dispatch not clearing `PARKED` when it empties the queue: 7 of the 9 models fail
//!   their final "the lock ends free" check;
//! * `upgrade` claiming `WRITER` with `fetch_or` and leaving `UPGRADABLE` set: deadlock
//!   in `loom_rwlock_upgrade_waits_for_reader`, `loom_rwlock_two_upgraders_serialize`
//!   and `loom_rwlock_timed_upgrade_races_reader`;
//! * a timed writer that was woken to retry and times out leaving without dispatching:
//!   deadlock in `loom_rwlock_woken_timed_writer_passes_turn_on`.

use core::time::Duration;
use std::sync::atomic::AtomicBool;

use strata_primitives::sync::Arc;
use strata_primitives::{model, thread};

use super::{
    AdaptiveRwLock, AdaptiveRwLockUpgradableReadGuard, AdaptiveRwLockWriteGuard, TryLockError,
};

/// (a) A writer and a reader race: the reader sees the value before or after the
/// write, never a racing access (loom checks the cell), and whichever of them parks
/// is woken (loom reports a deadlock otherwise). The reader may hold the lock when
/// the writer claims it (the writer then parks in its drain and the last reader
/// wakes it), or the writer may hold it (the reader queues and is granted).
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rwlock_writer_vs_reader() {
    model(|| {
        let lock = Arc::new(AdaptiveRwLock::new(0usize));
        let l2 = Arc::clone(&lock);
        let writer = thread::spawn(move || {
            let mut g = l2.write().unwrap();
            *g += 1;
        });
        let seen = *lock.read().unwrap();
        assert!(seen <= 1);
        let again = *lock.read().unwrap();
        assert!(again >= seen, "a later read saw an older value");
        writer.join().unwrap();
        assert_eq!(*lock.read().unwrap(), 1, "the write is visible after join");
        assert_eq!(lock.debug_state(), (0, 0), "the lock ends free");
    });
}

/// (b) An upgradable reader upgrades while a plain reader (the main thread) holds the
/// lock and then releases it: the upgrade completes, and no writer gets in between
/// the upgradable read and the write: the value read under the upgradable guard is
/// still there after the upgrade, although a third thread tries to write meanwhile
/// (its `try_write` may only succeed before or after the upgradable holder, and its
/// `try_upgradable_read` never beside it).
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rwlock_upgrade_waits_for_reader() {
    model(|| {
        let lock = Arc::new(AdaptiveRwLock::new(0usize));
        let r = lock.read().unwrap();
        let l2 = Arc::clone(&lock);
        let upgrader = thread::spawn(move || {
            let u = l2.upgradable_read().unwrap();
            let v = *u;
            let mut w = AdaptiveRwLockUpgradableReadGuard::upgrade(u);
            assert_eq!(
                *w, v,
                "a writer got in between the upgradable read and the write"
            );
            *w = v + 1;
        });
        let l3 = Arc::clone(&lock);
        let other = thread::spawn(move || {
            if let Ok(mut g) = l3.try_write() {
                *g += 10;
            }
        });
        drop(r);
        upgrader.join().unwrap();
        other.join().unwrap();
        let v = *lock.read().unwrap();
        assert!(v == 1 || v == 11, "lost update: {v}");
        assert_eq!(lock.debug_state(), (0, 0));
    });
}

/// (b') Two upgradable readers: only one holds at a time, and each one's read-then-
/// write is atomic, so both increments land.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rwlock_two_upgraders_serialize() {
    model(|| {
        let lock = Arc::new(AdaptiveRwLock::new(0usize));
        let l2 = Arc::clone(&lock);
        let bump = move |l: &AdaptiveRwLock<usize>| {
            let u = l.upgradable_read().unwrap();
            let v = *u;
            let mut w = AdaptiveRwLockUpgradableReadGuard::upgrade(u);
            *w = v + 1;
        };
        let t = thread::spawn(move || bump(&l2));
        bump(&lock);
        t.join().unwrap();
        assert_eq!(*lock.read().unwrap(), 2);
    });
}

/// (c) A writer downgrades to a read lock: a reader that gets in after the downgrade
/// (beside the downgraded holder) must see the written value; one that got in
/// before the write sees the old one.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rwlock_downgrade_publishes() {
    model(|| {
        let lock = Arc::new(AdaptiveRwLock::new(0usize));
        let l2 = Arc::clone(&lock);
        let writer = thread::spawn(move || {
            let mut w = l2.write().unwrap();
            *w = 1;
            let r = AdaptiveRwLockWriteGuard::downgrade(w);
            assert_eq!(*r, 1);
        });
        let seen = *lock.read().unwrap();
        assert!(seen <= 1);
        writer.join().unwrap();
        assert_eq!(lock.debug_state(), (0, 0));
    });
}

/// (d) Fair handoff: with a fairness bound of zero, a writer queued when the holder
/// releases is handed the lock, so the releasing thread cannot take it back before the
/// waiter has written.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rwlock_fair_handoff_to_parked_writer() {
    model(|| {
        let lock = Arc::new(AdaptiveRwLock::new(0usize));
        lock.set_fairness_bound(Duration::ZERO);
        let g = lock.write().unwrap();
        let l2 = Arc::clone(&lock);
        let waiter = thread::spawn(move || *l2.write().unwrap() += 1);
        let queued = lock.debug_state().1 == 1;
        drop(g);
        if queued {
            // The waiter was queued at the release: it holds the lock or has used it.
            match lock.try_write() {
                Ok(g) => assert_eq!(*g, 1, "the releaser barged past a queued writer"),
                Err(e) => assert!(matches!(e, TryLockError::WouldBlock)),
            }
        }
        waiter.join().unwrap();
        assert_eq!(*lock.read().unwrap(), 1);
        assert_eq!(lock.debug_state(), (0, 0));
    });
}

/// (d') Without fairness (bound `MAX`), a woken writer retries and may lose to the
/// releasing thread; it then goes back to the queue's head and still completes. The
/// model also records that the barging interleaving exists (so (d) is meaningful).
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rwlock_unfair_wake_retries() {
    static BARGED: AtomicBool = AtomicBool::new(false);
    model(|| {
        let lock = Arc::new(AdaptiveRwLock::new(0usize));
        lock.set_fairness_bound(Duration::MAX);
        let g = lock.write().unwrap();
        let l2 = Arc::clone(&lock);
        let waiter = thread::spawn(move || *l2.write().unwrap() += 1);
        let queued = lock.debug_state().1 == 1;
        drop(g);
        if let Ok(mut g) = lock.try_write() {
            if queued && *g == 0 {
                BARGED.store(true, std::sync::atomic::Ordering::Relaxed);
            }
            *g += 10;
        }
        waiter.join().unwrap();
        let v = *lock.read().unwrap();
        assert!(v == 1 || v == 11);
        assert_eq!(lock.debug_state(), (0, 0));
    });
    if strata_primitives::LOOM {
        assert!(BARGED.load(std::sync::atomic::Ordering::Relaxed));
    }
}

/// (d'') Readers queued behind a writer are granted together when it releases.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rwlock_queued_readers_granted_together() {
    model(|| {
        let lock = Arc::new(AdaptiveRwLock::new(0usize));
        let mut g = lock.write().unwrap();
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let l = Arc::clone(&lock);
                thread::spawn(move || *l.read().unwrap())
            })
            .collect();
        *g = 7;
        drop(g);
        for r in readers {
            assert_eq!(r.join().unwrap(), 7);
        }
        assert_eq!(lock.debug_state(), (0, 0));
    });
}

/// (e) Timed waiters (a writer and a reader) race the release of the write lock:
/// each either gets the lock (and sees the holder's write) or times out; either way
/// the lock ends free with an empty queue and the value counts exactly the writes.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rwlock_timed_waiters_race_release() {
    static OUTCOMES: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
    model(|| {
        let lock = Arc::new(AdaptiveRwLock::new(0usize));
        let mut g = lock.write().unwrap();
        let l2 = Arc::clone(&lock);
        let timed_writer =
            thread::spawn(move || match l2.try_write_for(Duration::from_millis(5)) {
                Ok(mut w) => {
                    assert!(*w >= 1, "the holder's write is visible");
                    *w += 1;
                    true
                }
                Err(e) => {
                    assert!(matches!(e, TryLockError::WouldBlock));
                    false
                }
            });
        *g = 1;
        drop(g);
        let wrote = timed_writer.join().unwrap();
        OUTCOMES[usize::from(wrote)].store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(*lock.read().unwrap(), 1 + usize::from(wrote));
        assert_eq!(
            lock.debug_state(),
            (0, 0),
            "the lock ends free, nobody queued"
        );
    });
    if strata_primitives::LOOM {
        // Both outcomes were explored: the race is real in the model.
        assert!(
            OUTCOMES
                .iter()
                .all(|o| o.load(std::sync::atomic::Ordering::Relaxed))
        );
    }
}

/// (e'') Without fairness, a timed writer woken to retry may time out instead: it must
/// then pass its turn on, or a second writer queued behind it (dispatch wakes one
/// writer at a time) would sleep forever (loom would report a deadlock).
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rwlock_woken_timed_writer_passes_turn_on() {
    model(|| {
        let lock = Arc::new(AdaptiveRwLock::new(0usize));
        lock.set_fairness_bound(Duration::MAX);
        let g = lock.write().unwrap();
        let l2 = Arc::clone(&lock);
        let timed = thread::spawn(move || match l2.try_write_for(Duration::from_millis(5)) {
            Ok(mut w) => {
                *w += 1;
                1
            }
            Err(_) => 0,
        });
        let l3 = Arc::clone(&lock);
        let plain = thread::spawn(move || *l3.write().unwrap() += 10);
        drop(g);
        let n = timed.join().unwrap();
        plain.join().unwrap();
        assert_eq!(*lock.read().unwrap(), 10 + n);
        assert_eq!(lock.debug_state(), (0, 0));
    });
}

/// (e') A timed upgrade races a reader's release: it either completes (and writes) or
/// gives the claim back and keeps its upgradable read (and the value is unchanged);
/// either way the lock ends free. Both outcomes are explored.
#[test]
fn loom_rwlock_timed_upgrade_races_reader() {
    static OUTCOMES: [AtomicBool; 2] = [AtomicBool::new(false), AtomicBool::new(false)];
    model(|| {
        let lock = Arc::new(AdaptiveRwLock::new(0usize));
        let r = lock.read().unwrap();
        let l2 = Arc::clone(&lock);
        let upgrader = thread::spawn(move || {
            let u = l2.upgradable_read().unwrap();
            match AdaptiveRwLockUpgradableReadGuard::try_upgrade_for(u, Duration::from_millis(5)) {
                Ok(mut w) => {
                    *w += 1;
                    true
                }
                Err(u) => {
                    assert_eq!(*u, 0);
                    false
                }
            }
        });
        // The reader stays a while (each step lets the upgrader's timed park run out).
        for _ in 0..2 {
            assert!(lock.try_write().is_err(), "a writer beside a reader");
        }
        drop(r);
        let upgraded = upgrader.join().unwrap();
        OUTCOMES[usize::from(upgraded)].store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(*lock.read().unwrap(), usize::from(upgraded));
        assert_eq!(lock.debug_state(), (0, 0));
    });
    if strata_primitives::LOOM {
        assert!(
            OUTCOMES
                .iter()
                .all(|o| o.load(std::sync::atomic::Ordering::Relaxed))
        );
    }
}

// ---- unit tests (real threads, timeouts) ------------------------------------------

#[cfg(not(strata_loom))]
mod unit {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Barrier;
    use std::time::Duration;

    use super::*;
    use crate::rwlock::{
        AdaptiveRwLockReadGuard, MappedAdaptiveRwLockReadGuard, MappedAdaptiveRwLockWriteGuard,
    };

    const SHORT: Duration = Duration::from_millis(10);

    fn assert_send<T: ?Sized + Send>() {}
    fn assert_sync<T: ?Sized + Sync>() {}

    /// Compiles only if `T` is not `Send` (two impls become ambiguous otherwise).
    trait AmbiguousIfSend<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}

    #[test]
    fn send_sync() {
        assert_send::<AdaptiveRwLock<Vec<u8>>>();
        assert_sync::<AdaptiveRwLock<Vec<u8>>>();
        assert_send::<AdaptiveRwLock<std::cell::Cell<u8>>>();
        assert_sync::<AdaptiveRwLockReadGuard<'static, u8>>();
        assert_sync::<AdaptiveRwLockWriteGuard<'static, u8>>();
        assert_sync::<AdaptiveRwLockUpgradableReadGuard<'static, u8>>();
        assert_sync::<MappedAdaptiveRwLockReadGuard<'static, u8>>();
        assert_sync::<MappedAdaptiveRwLockWriteGuard<'static, u8>>();
        <AdaptiveRwLockReadGuard<'static, u8> as AmbiguousIfSend<_>>::check();
        <AdaptiveRwLockWriteGuard<'static, u8> as AmbiguousIfSend<_>>::check();
        <AdaptiveRwLockUpgradableReadGuard<'static, u8> as AmbiguousIfSend<_>>::check();
        <MappedAdaptiveRwLockReadGuard<'static, u8> as AmbiguousIfSend<_>>::check();
        <MappedAdaptiveRwLockWriteGuard<'static, u8> as AmbiguousIfSend<_>>::check();
    }

    #[test]
    fn const_new_in_static() {
        static LOCK: AdaptiveRwLock<u32> = AdaptiveRwLock::new(3);
        *LOCK.write().unwrap() += 1;
        assert_eq!(*LOCK.read().unwrap(), 4);
    }

    #[test]
    fn readers_share_writers_exclude() {
        let lock = AdaptiveRwLock::new(1);
        let a = lock.read().unwrap();
        let b = lock.try_read().unwrap();
        assert_eq!(*a + *b, 2);
        assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
        let u = lock.try_upgradable_read().unwrap();
        assert!(matches!(
            lock.try_upgradable_read(),
            Err(TryLockError::WouldBlock)
        ));
        assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
        drop((a, b, u));
        let w = lock.try_write().unwrap();
        assert!(matches!(lock.try_read(), Err(TryLockError::WouldBlock)));
        assert!(matches!(
            lock.try_upgradable_read(),
            Err(TryLockError::WouldBlock)
        ));
        drop(w);
        assert_eq!(lock.debug_state(), (0, 0));
    }

    #[test]
    fn timeouts_expire_and_leave_lock_clean() {
        let lock = AdaptiveRwLock::new(0);
        let w = lock.write().unwrap();
        assert!(matches!(
            lock.try_read_for(SHORT),
            Err(TryLockError::WouldBlock)
        ));
        assert!(matches!(
            lock.try_write_for(SHORT),
            Err(TryLockError::WouldBlock)
        ));
        assert!(matches!(
            lock.try_upgradable_read_for(SHORT),
            Err(TryLockError::WouldBlock)
        ));
        assert!(matches!(
            lock.try_write_for(Duration::ZERO),
            Err(TryLockError::WouldBlock)
        ));
        drop(w);
        assert_eq!(lock.debug_state(), (0, 0));
        // A timed writer that claimed WRITER while a reader stays gives the claim back.
        let r = lock.read().unwrap();
        assert!(matches!(
            lock.try_write_for(SHORT),
            Err(TryLockError::WouldBlock)
        ));
        let r2 = lock.try_read().unwrap();
        drop((r, r2));
        assert_eq!(lock.debug_state(), (0, 0));
        // Huge timeouts do not overflow.
        drop(lock.try_read_for(Duration::MAX).unwrap());
        drop(lock.try_write_for(Duration::MAX).unwrap());
    }

    #[test]
    fn timed_acquire_succeeds_when_released() {
        let lock = Arc::new(AdaptiveRwLock::new(0));
        let w = lock.write().unwrap();
        let l2 = Arc::clone(&lock);
        let t = std::thread::spawn(move || {
            *l2.try_write_for(Duration::from_secs(30)).unwrap() += 1;
            *l2.try_read_for(Duration::from_secs(30)).unwrap()
        });
        std::thread::sleep(SHORT);
        drop(w);
        assert_eq!(t.join().unwrap(), 1);
    }

    #[test]
    fn poisoning() {
        let lock = Arc::new(AdaptiveRwLock::new(5));
        // A panicking reader does not poison.
        let l2 = Arc::clone(&lock);
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _g = l2.read().unwrap();
            panic!("reader");
        }));
        assert!(r.is_err());
        assert!(!lock.is_poisoned());
        // A panicking upgradable reader does not poison.
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _g = l2.upgradable_read().unwrap();
            panic!("upgradable");
        }));
        assert!(r.is_err());
        assert!(!lock.is_poisoned());
        // A panicking writer does.
        let r = catch_unwind(AssertUnwindSafe(|| {
            let mut g = l2.write().unwrap();
            *g = 6;
            panic!("writer");
        }));
        assert!(r.is_err());
        assert!(lock.is_poisoned());
        assert_eq!(lock.debug_state(), (0, 0), "released despite the panic");
        let e = lock.read().unwrap_err();
        assert_eq!(**e.get_ref(), 6);
        drop(e);
        assert!(matches!(lock.try_write(), Err(TryLockError::Poisoned(_))));
        assert!(lock.upgradable_read().is_err());
        assert!(matches!(
            lock.try_read_for(SHORT),
            Err(TryLockError::Poisoned(_))
        ));
        lock.clear_poison();
        assert!(!lock.is_poisoned());
        assert_eq!(*lock.read().unwrap(), 6);
        // An upgraded guard poisons too; so does a mapped write guard.
        let r = catch_unwind(AssertUnwindSafe(|| {
            let u = l2.upgradable_read().unwrap();
            let _w = AdaptiveRwLockUpgradableReadGuard::upgrade(u);
            panic!("upgraded");
        }));
        assert!(r.is_err());
        assert!(lock.is_poisoned());
        lock.clear_poison();
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _m = AdaptiveRwLockWriteGuard::map(l2.write().unwrap(), |v| v);
            panic!("mapped");
        }));
        assert!(r.is_err());
        assert!(lock.is_poisoned());
        drop(l2);
        let mut lock = Arc::try_unwrap(lock).unwrap();
        assert_eq!(*lock.get_mut().unwrap_err().into_inner(), 6);
        assert_eq!(lock.into_inner().unwrap_err().into_inner(), 6);
        // A guard taken while already panicking does not poison on drop.
        let lock = AdaptiveRwLock::new(0);
        struct Bomb<'a>(&'a AdaptiveRwLock<i32>);
        impl Drop for Bomb<'_> {
            fn drop(&mut self) {
                *self.0.write().unwrap() += 1;
            }
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _b = Bomb(&lock);
            panic!("outer");
        }));
        assert!(r.is_err());
        assert!(!lock.is_poisoned());
        assert_eq!(lock.into_inner().unwrap(), 1);
    }

    #[test]
    fn map_and_try_map() {
        let lock = AdaptiveRwLock::new((1, String::from("ab")));
        {
            let r = AdaptiveRwLockReadGuard::map(lock.read().unwrap(), |t| &t.1);
            let r = MappedAdaptiveRwLockReadGuard::map(r, |s| s.as_str());
            assert_eq!(&*r, "ab");
            assert!(matches!(lock.try_write(), Err(TryLockError::WouldBlock)));
            let r = MappedAdaptiveRwLockReadGuard::try_map(r, |s| s.get(5..)).unwrap_err();
            let r = MappedAdaptiveRwLockReadGuard::try_map(r, |s| s.get(1..)).unwrap();
            assert_eq!(&*r, "b");
        }
        {
            let g = lock.read().unwrap();
            let g =
                AdaptiveRwLockReadGuard::try_map(g, |t| (t.0 == 2).then_some(&t.0)).unwrap_err();
            let m = AdaptiveRwLockReadGuard::try_map(g, |t| Some(&t.0)).unwrap();
            assert_eq!(*m, 1);
        }
        {
            let mut w = AdaptiveRwLockWriteGuard::map(lock.write().unwrap(), |t| &mut t.1);
            w.push('c');
            assert!(matches!(lock.try_read(), Err(TryLockError::WouldBlock)));
            let w = MappedAdaptiveRwLockWriteGuard::try_map(w, |s| s.get_mut(9..)).unwrap_err();
            let mut w = MappedAdaptiveRwLockWriteGuard::map(w, |s| s.as_mut_str());
            w.make_ascii_uppercase();
        }
        {
            let w = lock.write().unwrap();
            let w = AdaptiveRwLockWriteGuard::try_map(w, |_| None::<&mut i32>).unwrap_err();
            let mut m = AdaptiveRwLockWriteGuard::try_map(w, |t| Some(&mut t.0)).unwrap();
            *m += 1;
        }
        assert_eq!(*lock.read().unwrap(), (2, String::from("ABC")));
        assert_eq!(lock.debug_state(), (0, 0));
        // A panic inside `map` releases the lock.
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _m =
                AdaptiveRwLockReadGuard::map(lock.read().unwrap(), |_| -> &i32 { panic!("f") });
        }));
        assert!(r.is_err());
        assert_eq!(lock.debug_state(), (0, 0));
    }

    #[test]
    fn upgrade_try_upgrade_downgrade() {
        let lock = AdaptiveRwLock::new(0);
        let u = lock.upgradable_read().unwrap();
        // `try_read`: see `debug_default_from`.
        let r = lock.try_read().unwrap();
        let u = AdaptiveRwLockUpgradableReadGuard::try_upgrade(u).unwrap_err();
        let u = AdaptiveRwLockUpgradableReadGuard::try_upgrade_for(u, SHORT).unwrap_err();
        // The failed timed upgrade let readers in again.
        drop(lock.try_read().unwrap());
        drop(r);
        let mut w = AdaptiveRwLockUpgradableReadGuard::try_upgrade(u).unwrap();
        *w = 1;
        let u = AdaptiveRwLockWriteGuard::downgrade_to_upgradable(w);
        assert_eq!(*u, 1);
        assert!(lock.try_read().is_ok());
        assert!(lock.try_write().is_err());
        let r = AdaptiveRwLockUpgradableReadGuard::downgrade(u);
        // Another upgradable reader can come in beside the downgraded one.
        let u2 = lock.try_upgradable_read().unwrap();
        drop(r);
        let mut w = AdaptiveRwLockUpgradableReadGuard::upgrade(u2);
        *w += 1;
        let r = AdaptiveRwLockWriteGuard::downgrade(w);
        assert_eq!(*r, 2);
        assert!(lock.try_read().is_ok());
        drop(r);
        assert_eq!(lock.debug_state(), (0, 0));
    }

    #[test]
    fn upgrade_waits_for_reader_thread() {
        let lock = Arc::new(AdaptiveRwLock::new(0));
        let r = lock.read().unwrap();
        let l2 = Arc::clone(&lock);
        let t = std::thread::spawn(move || {
            let u = l2.upgradable_read().unwrap();
            let mut w = AdaptiveRwLockUpgradableReadGuard::upgrade(u);
            *w += 1;
        });
        // Wait until the upgrade has claimed the lock: new readers are then refused.
        while lock.try_read().is_ok() {
            std::thread::yield_now();
        }
        assert_eq!(*r, 0);
        drop(r);
        t.join().unwrap();
        assert_eq!(*lock.read().unwrap(), 1);
    }

    #[test]
    fn readers_do_not_pass_queued_writer() {
        let lock = Arc::new(AdaptiveRwLock::new(0));
        let u = lock.upgradable_read().unwrap();
        let l2 = Arc::clone(&lock);
        // The writer is blocked by the upgradable holder and queues.
        let t = std::thread::spawn(move || *l2.write().unwrap() += 1);
        while lock.debug_state().1 == 0 {
            std::thread::yield_now();
        }
        assert!(matches!(lock.try_read(), Err(TryLockError::WouldBlock)));
        assert!(matches!(
            lock.try_read_for(SHORT),
            Err(TryLockError::WouldBlock)
        ));
        drop(u);
        t.join().unwrap();
        assert_eq!(*lock.read().unwrap(), 1);
        assert_eq!(lock.debug_state(), (0, 0));
    }

    #[test]
    fn unsized_values() {
        let lock: &AdaptiveRwLock<[u8]> = &AdaptiveRwLock::new([1, 2, 3]);
        assert_eq!(lock.read().unwrap().len(), 3);
        lock.write().unwrap()[0] = 9;
        let m = AdaptiveRwLockReadGuard::map(lock.read().unwrap(), |s| &s[..1]);
        assert_eq!(&*m, [9]);
        drop(m);
        let boxed: Box<AdaptiveRwLock<dyn core::fmt::Debug + Send + Sync>> =
            Box::new(AdaptiveRwLock::new(5u8));
        assert_eq!(format!("{:?}", &*boxed.read().unwrap()), "5");
    }

    #[test]
    fn debug_default_from() {
        let lock = AdaptiveRwLock::<Vec<i32>>::default();
        assert!(lock.read().unwrap().is_empty());
        let lock = AdaptiveRwLock::from(7);
        assert_eq!(
            format!("{lock:?}"),
            "AdaptiveRwLock { data: 7, poisoned: false, .. }"
        );
        let w = lock.write().unwrap();
        assert_eq!(format!("{w:?}"), "7");
        assert_eq!(
            format!("{lock:?}"),
            "AdaptiveRwLock { data: <locked>, poisoned: false, .. }"
        );
        drop(w);
        let u = lock.upgradable_read().unwrap();
        assert_eq!(format!("{u:?}"), "7");
        // `try_read`: a blocking read under our own upgradable read could deadlock
        // behind a queued writer (and the lockdep feature reports it).
        assert_eq!(format!("{:?}", lock.try_read().unwrap()), "7");
    }

    /// Reader-writer exclusion with real threads: writers keep two fields equal under
    /// the write lock; readers (plain and upgradable) never see them differ.
    #[test]
    fn reader_writer_exclusion() {
        let n = if cfg!(miri) { 20 } else { 2_000 };
        let lock = Arc::new(AdaptiveRwLock::new((0u64, 0u64)));
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let lock = Arc::clone(&lock);
                let barrier = Arc::clone(&barrier);
                std::thread::spawn(move || {
                    barrier.wait();
                    for i in 0..n {
                        match (t + i) % 4 {
                            0 => {
                                let mut g = lock.write().unwrap();
                                g.0 += 1;
                                std::hint::black_box(&mut *g);
                                g.1 += 1;
                            }
                            1 => {
                                let u = lock.upgradable_read().unwrap();
                                assert_eq!(u.0, u.1);
                                let mut g = AdaptiveRwLockUpgradableReadGuard::upgrade(u);
                                g.0 += 1;
                                g.1 += 1;
                            }
                            _ => {
                                let g = lock.read().unwrap();
                                assert_eq!(g.0, g.1);
                            }
                        }
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let (a, b) = *lock.read().unwrap();
        assert_eq!(a, b);
        assert_eq!(a, (n as u64) * 2);
        assert_eq!(lock.debug_state(), (0, 0));
    }

    /// Unfair mode (woken writers retry) under real contention stays correct.
    #[test]
    fn unfair_and_always_fair_modes() {
        for bound in [Duration::ZERO, Duration::MAX] {
            let n = if cfg!(miri) { 10 } else { 1_000 };
            let lock = Arc::new(AdaptiveRwLock::new(0u64));
            lock.set_fairness_bound(bound);
            let handles: Vec<_> = (0..3)
                .map(|t| {
                    let lock = Arc::clone(&lock);
                    std::thread::spawn(move || {
                        for i in 0..n {
                            if (t + i) % 3 == 0 {
                                let _ = *lock.read().unwrap();
                            } else {
                                *lock.write().unwrap() += 1;
                            }
                        }
                    })
                })
                .collect();
            let mut writes = 0;
            for t in 0..3 {
                writes += (0..n).filter(|i| (t + i) % 3 != 0).count() as u64;
            }
            for h in handles {
                h.join().unwrap();
            }
            assert_eq!(*lock.read().unwrap(), writes);
            assert_eq!(lock.debug_state(), (0, 0));
        }
    }
}
