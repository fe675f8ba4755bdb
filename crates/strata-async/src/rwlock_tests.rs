//! Loom models and unit tests of the async reader-writer lock ([`crate::rwlock`]).
//!
//! The models drive the lock futures with the crate's parking `block_on` (a lost
//! wake-up leaves a modelled thread parked forever, which loom reports as a deadlock)
//! or poll them by hand and drop them (cancellation). Each model asserts mutual
//! exclusion on a [`Guarded`] cell (written only under the write lock, read under a
//! read lock), that every task finishes, and that both semaphores are back to full.
//!
//! The rw-lock adds no atomic orderings of its own: all its synchronization is the
//! semaphore's, so it adds no weakening of its own either. Under `--cfg strata_weaken`
//! the semaphore's completion store and fast-path release CAS become `Relaxed` (see
//! [`crate::semaphore`]); the models marked `should_panic` under that cfg then report
//! a causality violation on the guarded cell or on the lock's own data cell, which
//! shows that they would catch a release that does not publish the writer's (or
//! reader's) accesses.

use std::sync::Arc;
use std::task::{Context, Poll};

use strata_primitives::{model, thread};

use crate::rwlock::{RwLock, RwLockUpgradableReadGuard};
use crate::test_util::{CountWaker, Guarded, block_on};

/// Both semaphores of `lock` are back to their full counts.
fn assert_all_free<T: ?Sized>(lock: &RwLock<T>) {
    assert_eq!(
        lock.readers.available_permits(),
        lock.max_readers,
        "reader permits leaked"
    );
    assert_eq!(lock.upgrade.available_permits(), 1, "upgrade permit leaked");
}

/// A writer and a reader race: the writer bumps a guarded cell and the value, the
/// reader reads both and sees them agree (both 0 or both 1). Both finish (a queued one
/// is woken by the other's release) and the lock is free at the end.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_writer_vs_reader() {
    model(|| {
        let lock = Arc::new(RwLock::new(0usize));
        let cell = Arc::new(Guarded::default());
        let (l2, c2) = (Arc::clone(&lock), Arc::clone(&cell));
        let t = thread::spawn(move || {
            let g = block_on(l2.read());
            let seen = c2.get();
            assert_eq!(*g, seen, "reader saw a half-done write");
            drop(g);
        });
        let mut g = block_on(lock.write());
        cell.bump();
        *g += 1;
        drop(g);
        t.join().unwrap();
        assert_eq!(cell.get(), 1);
        assert_all_free(&lock);
    });
}

/// Two writers wait while the main thread holds a read lock (and reads the cell under
/// it); one writer is cancelled after a single poll (it may be waiting for the
/// `upgrade` permit or, holding it, for the reader permits). The other writer still
/// gets in, writes are exclusive, and both semaphores are full at the end: the
/// cancelled writer's `upgrade` permit and partial reader assignment were passed on.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_cancelled_writer_passes_on() {
    model(|| {
        let lock = Arc::new(RwLock::with_max_readers((), 2));
        let cell = Arc::new(Guarded::default());
        let r = lock.try_read().unwrap();
        let (l1, c1) = (Arc::clone(&lock), Arc::clone(&cell));
        let canceller = thread::spawn(move || {
            let (_, waker) = CountWaker::new_waker();
            let mut fut = Box::pin(l1.write());
            if let Poll::Ready(g) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
                c1.bump();
                drop(g);
            }
            drop(fut);
        });
        let (l2, c2) = (Arc::clone(&lock), Arc::clone(&cell));
        let writer = thread::spawn(move || {
            let g = block_on(l2.write());
            c2.bump();
            drop(g);
        });
        assert_eq!(
            cell.get(),
            0,
            "a writer got in while a reader held the lock"
        );
        drop(r);
        canceller.join().unwrap();
        writer.join().unwrap();
        assert!(cell.get() >= 1);
        assert_all_free(&lock);
    });
}

/// An upgradable reader upgrades while a plain reader (the main thread) holds the lock
/// and then releases it, and a writer waits meanwhile (it queues for the `upgrade`
/// permit behind the upgradable reader, or gets in first). Both writes are exclusive,
/// everyone finishes (no deadlock, no lost wake-up), and the lock is free at the end.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_upgrade_with_reader_and_writer() {
    model(|| {
        let lock = Arc::new(RwLock::with_max_readers(0usize, 2));
        let cell = Arc::new(Guarded::default());
        let r = lock.try_read().unwrap();
        let (l1, c1) = (Arc::clone(&lock), Arc::clone(&cell));
        let upgrader = thread::spawn(move || {
            let u = block_on(l1.upgradable_read());
            let mut w = block_on(RwLockUpgradableReadGuard::upgrade(u));
            c1.bump();
            *w += 1;
        });
        let (l2, c2) = (Arc::clone(&lock), Arc::clone(&cell));
        let writer = thread::spawn(move || {
            let mut w = block_on(l2.write());
            c2.bump();
            *w += 1;
        });
        assert_eq!(
            cell.get(),
            0,
            "a writer got in while a reader held the lock"
        );
        drop(r);
        upgrader.join().unwrap();
        writer.join().unwrap();
        assert_eq!(cell.get(), 2);
        assert_eq!(*lock.try_read().unwrap(), 2);
        assert_all_free(&lock);
    });
}

/// An upgrade is cancelled (its future dropped after one poll, which also drops the
/// upgradable read it consumed) while the main thread's read lock goes away and a
/// writer waits for the `upgrade` permit: the writer still gets in, and both semaphores
/// are full at the end (the upgrade's partial assignment and its `upgrade` permit
/// passed on).
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_cancelled_upgrade_passes_on() {
    model(|| {
        let lock = Arc::new(RwLock::with_max_readers((), 2));
        let cell = Arc::new(Guarded::default());
        let r = lock.try_read().unwrap();
        let u = Arc::clone(&lock).try_upgradable_read_owned().unwrap();
        let c1 = Arc::clone(&cell);
        let upgrader = thread::spawn(move || {
            let (_, waker) = CountWaker::new_waker();
            let mut fut = Box::pin(u.upgrade());
            if let Poll::Ready(g) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
                c1.bump();
                drop(g);
            }
            drop(fut);
        });
        let (l2, c2) = (Arc::clone(&lock), Arc::clone(&cell));
        let writer = thread::spawn(move || {
            let g = block_on(l2.write());
            c2.bump();
            drop(g);
        });
        assert_eq!(
            cell.get(),
            0,
            "a writer got in while a reader held the lock"
        );
        drop(r);
        upgrader.join().unwrap();
        writer.join().unwrap();
        assert!(cell.get() >= 1);
        assert_all_free(&lock);
    });
}

/// A reader and a `try_write` race with a writer holding the lock and downgrading to a
/// read lock: the downgrade lets the reader in while `try_write` can only succeed after
/// both readers left; reads under the read locks never overlap a write.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_downgrade_vs_reader_and_try_write() {
    model(|| {
        let lock = Arc::new(RwLock::with_max_readers((), 2));
        let cell = Arc::new(Guarded::default());
        let w = lock.try_write().unwrap();
        let (l1, c1) = (Arc::clone(&lock), Arc::clone(&cell));
        let reader = thread::spawn(move || {
            let g = block_on(l1.read());
            assert!(c1.get() >= 1, "reader got in before the write was done");
            drop(g);
        });
        let (l2, c2) = (Arc::clone(&lock), Arc::clone(&cell));
        let try_writer = thread::spawn(move || {
            if let Ok(g) = l2.try_write() {
                c2.bump();
                drop(g);
            }
        });
        cell.bump();
        let r = w.downgrade();
        assert!(cell.get() >= 1);
        drop(r);
        reader.join().unwrap();
        try_writer.join().unwrap();
        assert_all_free(&lock);
    });
}

/// Writer preference, deterministically: with a reader holding, a queued writer makes
/// a later `try_read` fail and a later `read` queue; releasing the reader wakes the
/// writer, and releasing the writer wakes the reader.
/// A `try_write` races a reader and a `write()`: it can take the `upgrade` permit,
/// find the reader in, and give the permit back while the `write()` is queued for it;
/// the give-back then hands the permit to the queued writer (waking it), which waits
/// for the reader and finishes. Exclusion holds and the lock is free at the end.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_failed_try_write_hands_upgrade_to_queued_writer() {
    model(|| {
        let lock = Arc::new(RwLock::new(0usize));
        let cell = Arc::new(Guarded::default());
        let (l1, c1) = (Arc::clone(&lock), Arc::clone(&cell));
        let writer = thread::spawn(move || {
            let mut g = block_on(l1.write());
            c1.bump();
            *g += 1;
        });
        let (l2, c2) = (Arc::clone(&lock), Arc::clone(&cell));
        let trier = thread::spawn(move || match l2.try_write() {
            Ok(mut g) => {
                c2.bump();
                *g += 1;
                1
            }
            Err(_) => 0,
        });
        if let Ok(r) = lock.try_read() {
            assert_eq!(*r, cell.get(), "a reader saw a half-done write");
        }
        writer.join().unwrap();
        let tried = trier.join().unwrap();
        assert_eq!(cell.get(), 1 + tried);
        assert_eq!(*lock.try_read().unwrap(), 1 + tried);
        assert_all_free(&lock);
    });
}

#[test]
fn writer_preference_single_thread() {
    model(|| {
        let lock = RwLock::new(1u32);
        let r = lock.try_read().unwrap();
        let (cw, ww) = CountWaker::new_waker();
        let (cr, wr) = CountWaker::new_waker();
        let mut write = Box::pin(lock.write());
        assert!(
            write
                .as_mut()
                .poll(&mut Context::from_waker(&ww))
                .is_pending()
        );
        assert!(
            lock.try_read().is_err(),
            "a reader barged past a queued writer"
        );
        let mut read = Box::pin(lock.read());
        assert!(
            read.as_mut()
                .poll(&mut Context::from_waker(&wr))
                .is_pending()
        );
        drop(r);
        assert_eq!(cw.count(), 1, "writer woken by the last reader's release");
        assert_eq!(cr.count(), 0);
        let Poll::Ready(mut g) = write.as_mut().poll(&mut Context::from_waker(&ww)) else {
            panic!("writer not served");
        };
        *g = 2;
        assert!(
            read.as_mut()
                .poll(&mut Context::from_waker(&wr))
                .is_pending()
        );
        drop(g);
        assert_eq!(cr.count(), 1, "reader woken by the writer's release");
        let Poll::Ready(g) = read.as_mut().poll(&mut Context::from_waker(&wr)) else {
            panic!("reader not served");
        };
        assert_eq!(*g, 2);
        drop(g);
        drop((write, read));
        assert_all_free(&lock);
    });
}

#[cfg(not(strata_loom))]
mod unit {
    use super::*;
    use crate::rwlock::{
        MAX_READS, OwnedRwLockReadGuard, OwnedRwLockUpgradableReadGuard, OwnedRwLockWriteGuard,
        Read, ReadOwned, RwLockMappedWriteGuard, RwLockReadGuard, RwLockWriteGuard, TryLockError,
        UpgradableRead, UpgradableReadOwned, Upgrade, UpgradeOwned, Write, WriteOwned,
    };
    use core::pin::Pin;
    use futures::executor::block_on as fblock_on;
    use std::task::Waker;

    fn poll<F: Future>(f: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(w))
    }

    fn ready<T>(p: Poll<T>) -> T {
        match p {
            Poll::Ready(v) => v,
            Poll::Pending => panic!("expected Ready"),
        }
    }

    /// A waker that panics when woken.
    struct PanicWaker;
    impl std::task::Wake for PanicWaker {
        fn wake(self: Arc<Self>) {
            panic!("waker panicked");
        }
    }

    /// A waker of a queued reader panics inside the first release of a write guard's
    /// drop or downgrade: the guard's other permits (the `upgrade` permit, the guard a
    /// downgrade was making) are still released while unwinding, so the lock is free
    /// afterwards and no later writer hangs.
    #[test]
    fn panicking_waker_in_a_release_leaks_nothing_else() {
        fn case(name: &str, step: impl for<'a> FnOnce(RwLockWriteGuard<'a, u8>)) {
            let lock = RwLock::new(0u8);
            let waker = Waker::from(Arc::new(PanicWaker));
            let held = lock.try_write().unwrap();
            let mut r = Box::pin(lock.read());
            assert!(poll(r.as_mut(), &waker).is_pending());
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| step(held)));
            assert!(outcome.is_err(), "{name}: the waker did not run");
            // The reader was handed its permit before its waker panicked; dropping
            // its future gives the permit back.
            drop(r);
            assert_all_free(&lock);
            assert!(lock.try_write().is_ok(), "{name}: a writer would hang");
        }
        case("write guard drop", |g| drop(g));
        case("mapped write guard drop", |g| {
            drop(RwLockWriteGuard::map(g, |v| v))
        });
        case("downgrade", |g| drop(g.downgrade()));
        case("downgrade_to_upgradable", |g| {
            drop(g.downgrade_to_upgradable())
        });
    }

    /// The order the module docs state, pinned down: a writer next in line blocks new
    /// readers; a writer queued behind another writer (or an upgradable reader) does
    /// not, and the readers queued during a write phase go before the next writer
    /// (phase-fair; tokio would serve that writer first).
    #[test]
    fn phase_fair_order_pinned() {
        let (cw, ww) = CountWaker::new_waker();
        let (cr, wr) = CountWaker::new_waker();
        // A writer next in line (waiting for a reader to leave) blocks new readers.
        let lock = RwLock::new(0);
        let r1 = lock.try_read().unwrap();
        let mut w = Box::pin(lock.write());
        assert!(poll(w.as_mut(), &ww).is_pending());
        assert_eq!(lock.try_read().unwrap_err(), TryLockError::WouldBlock);
        let mut r2 = Box::pin(lock.read());
        assert!(poll(r2.as_mut(), &wr).is_pending());
        drop(r1);
        assert_eq!((cw.count(), cr.count()), (1, 0), "the writer goes first");
        let g = ready(poll(w.as_mut(), &ww));
        assert!(poll(r2.as_mut(), &wr).is_pending());
        drop(g);
        assert_eq!(cr.count(), 1);
        drop(ready(poll(r2.as_mut(), &wr)));
        drop((w, r2));
        assert_all_free(&lock);

        // A writer behind another writer: a reader that came after it goes first.
        let (cw, ww) = CountWaker::new_waker();
        let (cr, wr) = CountWaker::new_waker();
        let w1 = lock.try_write().unwrap();
        let mut w2 = Box::pin(lock.write());
        assert!(poll(w2.as_mut(), &ww).is_pending());
        let mut r = Box::pin(lock.read());
        assert!(poll(r.as_mut(), &wr).is_pending());
        drop(w1);
        assert_eq!(
            cr.count(),
            1,
            "the reader queued during the write phase is served"
        );
        let rg = ready(poll(r.as_mut(), &wr));
        // W2 got the `upgrade` permit and now waits for the reader to leave.
        assert!(poll(w2.as_mut(), &ww).is_pending());
        assert_eq!(lock.try_read().unwrap_err(), TryLockError::WouldBlock);
        drop(rg);
        assert!(cw.count() >= 1);
        drop(ready(poll(w2.as_mut(), &ww)));
        drop((w2, r));
        assert_all_free(&lock);

        // A writer behind an upgradable reader does not hold readers back.
        let (_, ww) = CountWaker::new_waker();
        let u = lock.try_upgradable_read().unwrap();
        let mut w = Box::pin(lock.write());
        assert!(poll(w.as_mut(), &ww).is_pending());
        let r = lock
            .try_read()
            .expect("a reader shares with the upgradable read");
        drop((r, u));
        drop(ready(poll(w.as_mut(), &ww)));
        drop(w);
        assert_all_free(&lock);
    }

    #[test]
    fn read_write_and_try_variants() {
        let lock = RwLock::new(5);
        let a = fblock_on(lock.read());
        let b = lock.try_read().unwrap();
        assert_eq!(*a + *b, 10);
        assert_eq!(lock.try_write().unwrap_err(), TryLockError::WouldBlock);
        let u = lock.try_upgradable_read().unwrap();
        assert_eq!(*u, 5);
        assert!(
            lock.try_upgradable_read().is_err(),
            "two upgradable readers"
        );
        drop((a, b, u));
        assert_all_free(&lock);
        let mut w = fblock_on(lock.write());
        *w = 6;
        assert!(lock.try_read().is_err());
        assert!(lock.try_upgradable_read().is_err());
        assert!(lock.try_write().is_err());
        drop(w);
        let mut w = lock.try_write().unwrap();
        *w += 1;
        drop(w);
        assert_eq!(*fblock_on(lock.upgradable_read()), 7);
        assert_all_free(&lock);
        assert!(!TryLockError::WouldBlock.to_string().is_empty());
    }

    /// Readers queued while a writer holds go in before the next writer, who queued
    /// after them: alternation, no starvation either way.
    #[test]
    fn readers_and_writers_alternate() {
        let lock = RwLock::new(0);
        let w1 = lock.try_write().unwrap();
        let (cr, wr) = CountWaker::new_waker();
        let (cw, ww) = CountWaker::new_waker();
        let mut r = Box::pin(lock.read());
        assert!(poll(r.as_mut(), &wr).is_pending());
        let mut w2 = Box::pin(lock.write());
        assert!(poll(w2.as_mut(), &ww).is_pending());
        drop(w1);
        assert_eq!(cr.count(), 1);
        let g = ready(poll(r.as_mut(), &wr));
        // w2 holds the `upgrade` permit now and waits behind the reader.
        assert_eq!(cw.count(), 1, "w2 woken for the upgrade permit");
        assert!(poll(w2.as_mut(), &ww).is_pending());
        assert!(lock.try_read().is_err(), "w2 is queued: no new reader");
        drop(g);
        assert_eq!(cw.count(), 2);
        let g2 = ready(poll(w2.as_mut(), &ww));
        drop(g2);
        drop((r, w2));
        assert_all_free(&lock);
    }

    #[test]
    fn read_guard_map_and_try_map() {
        let lock = RwLock::new((1u8, [2u8, 3]));
        let g = lock.try_read().unwrap();
        let m = RwLockReadGuard::map(g, |v| &v.1);
        assert_eq!(*m, [2, 3]);
        let m = RwLockReadGuard::try_map(m, |a| a.get(1)).unwrap();
        assert_eq!(*m, 3);
        let back = RwLockReadGuard::try_map(m, |_| None::<&u8>).unwrap_err();
        assert_eq!(*back, 3);
        assert!(
            lock.try_write().is_err(),
            "mapped guard still holds the slot"
        );
        drop(back);
        assert_all_free(&lock);
        // A panicking map releases the slot.
        let g = lock.try_read().unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            RwLockReadGuard::map(g, |_| -> &u8 { panic!("boom") })
        }));
        assert!(r.is_err());
        assert_all_free(&lock);
    }

    #[test]
    fn write_guard_map_and_try_map() {
        let lock = RwLock::new((1u8, [2u8, 3]));
        let g = lock.try_write().unwrap();
        let mut m: RwLockMappedWriteGuard<'_, [u8; 2]> = RwLockWriteGuard::map(g, |v| &mut v.1);
        m[0] = 20;
        let mut m = RwLockMappedWriteGuard::map(m, |a| &mut a[1]);
        *m = 30;
        let m = RwLockMappedWriteGuard::try_map(m, |_| None::<&mut u8>).unwrap_err();
        let mut m = RwLockMappedWriteGuard::try_map(m, |v| Some(v)).unwrap();
        *m += 1;
        assert!(lock.try_read().is_err());
        drop(m);
        assert_all_free(&lock);
        let g = lock.try_write().unwrap();
        let g = RwLockWriteGuard::try_map(g, |_| None::<&mut u8>).unwrap_err();
        let mut m = RwLockWriteGuard::try_map(g, |v| Some(&mut v.0)).unwrap();
        *m = 10;
        drop(m);
        assert_eq!(lock.into_inner(), (10, [20, 31]));
    }

    #[test]
    fn write_downgrade_lets_readers_not_writers() {
        let lock = RwLock::with_max_readers(0, 3);
        let mut w = lock.try_write().unwrap();
        *w = 1;
        let (cr, wr) = CountWaker::new_waker();
        let mut r = Box::pin(lock.read());
        assert!(poll(r.as_mut(), &wr).is_pending());
        let g = w.downgrade();
        assert_eq!(cr.count(), 1, "queued reader woken by the downgrade");
        let g2 = ready(poll(r.as_mut(), &wr));
        assert_eq!((*g, *g2), (1, 1));
        assert!(lock.try_write().is_err());
        let g3 = lock.try_read().unwrap();
        assert!(lock.try_read().is_err(), "max_readers is 3");
        drop((g, g2, g3, r));
        assert_all_free(&lock);
        // The associated-function form works too.
        let w = lock.try_write().unwrap();
        drop(RwLockWriteGuard::downgrade(w));
        assert_all_free(&lock);
    }

    #[test]
    fn downgrade_to_upgradable_and_back() {
        let lock = RwLock::new(String::from("a"));
        let mut w = lock.try_write().unwrap();
        w.push('b');
        let u = w.downgrade_to_upgradable();
        let r = lock.try_read().unwrap();
        assert_eq!(*r, "ab");
        assert!(lock.try_write().is_err());
        assert!(lock.try_upgradable_read().is_err());
        let u = u.try_upgrade().unwrap_err();
        drop(r);
        let mut w = u.try_upgrade().unwrap();
        w.push('c');
        let u = RwLockWriteGuard::downgrade_to_upgradable(w);
        let r = u.downgrade();
        assert!(
            lock.try_upgradable_read().is_ok(),
            "downgrade released upgrade"
        );
        assert_eq!(*r, "abc");
        drop(r);
        assert_all_free(&lock);
    }

    #[test]
    fn upgrade_waits_for_readers_and_blocks_new_ones() {
        let lock = RwLock::new(1);
        let u = lock.try_upgradable_read().unwrap();
        let r = lock.try_read().unwrap();
        let (cu, wu) = CountWaker::new_waker();
        let mut up = Box::pin(RwLockUpgradableReadGuard::upgrade(u));
        assert!(poll(up.as_mut(), &wu).is_pending());
        assert!(lock.try_read().is_err(), "upgrader queued: no new reader");
        assert!(lock.try_write().is_err());
        drop(r);
        assert_eq!(cu.count(), 1);
        let mut w = ready(poll(up.as_mut(), &wu));
        *w = 2;
        drop(w);
        drop(up);
        assert_all_free(&lock);
        // Uncontended: ready at the first poll.
        let u = lock.try_upgradable_read().unwrap();
        assert_eq!(*fblock_on(u.upgrade()), 2);
        assert_all_free(&lock);
    }

    #[test]
    fn cancelled_upgrade_releases_everything() {
        let lock = RwLock::with_max_readers((), 4);
        let r = lock.try_read().unwrap();
        let u = lock.try_upgradable_read().unwrap();
        let (_, wu) = CountWaker::new_waker();
        let mut up = Box::pin(u.upgrade());
        assert!(poll(up.as_mut(), &wu).is_pending());
        drop(up);
        // Only `r` remains: a new upgradable read and 2 more readers fit.
        let u2 = lock.try_upgradable_read().unwrap();
        let extra = (lock.try_read().unwrap(), lock.try_read().unwrap());
        drop((u2, extra, r));
        assert_all_free(&lock);
    }

    #[test]
    fn cancelled_write_returns_upgrade_permit() {
        let lock = RwLock::with_max_readers((), 2);
        // Stage 2: holds `upgrade`, waits for reader permits (and has taken 1 of them).
        let r = lock.try_read().unwrap();
        let (_, w) = CountWaker::new_waker();
        let mut fut = Box::pin(lock.write());
        assert!(poll(fut.as_mut(), &w).is_pending());
        assert_eq!(lock.upgrade.available_permits(), 0);
        assert!(lock.try_upgradable_read().is_err());
        drop(fut);
        assert_eq!(lock.upgrade.available_permits(), 1);
        assert_eq!(lock.readers.available_permits(), 1);
        drop(r);
        assert_all_free(&lock);
        // Stage 1: waits for `upgrade` behind an upgradable reader.
        let u = lock.try_upgradable_read().unwrap();
        let mut fut = Box::pin(lock.write());
        assert!(poll(fut.as_mut(), &w).is_pending());
        drop(fut);
        drop(u);
        assert_all_free(&lock);
        // Stage 2 after being woken but before re-polling: the assignment passes on.
        let r = lock.try_read().unwrap();
        let mut fut = Box::pin(lock.write());
        assert!(poll(fut.as_mut(), &w).is_pending());
        drop(r);
        drop(fut);
        assert_all_free(&lock);
        // Cancelled upgradable read in stage 2 (at the reader limit).
        let lock1 = RwLock::with_max_readers((), 1);
        let r = lock1.try_read().unwrap();
        let mut fut = Box::pin(lock1.upgradable_read());
        assert!(poll(fut.as_mut(), &w).is_pending());
        drop(fut);
        drop(r);
        assert_all_free(&lock1);
    }

    #[test]
    fn max_readers_limits_and_clamps() {
        let lock = RwLock::with_max_readers(0u8, 2);
        assert_eq!(lock.max_readers(), 2);
        let a = lock.try_read().unwrap();
        let b = lock.try_read().unwrap();
        assert!(lock.try_read().is_err());
        let (c, w) = CountWaker::new_waker();
        let mut third = Box::pin(lock.read());
        assert!(poll(third.as_mut(), &w).is_pending());
        drop(a);
        assert_eq!(c.count(), 1);
        let g = ready(poll(third.as_mut(), &w));
        drop((b, g, third));
        assert_all_free(&lock);
        assert_eq!(RwLock::with_max_readers((), 0).max_readers(), 1);
        assert_eq!(
            RwLock::with_max_readers((), usize::MAX).max_readers(),
            MAX_READS
        );
        assert_eq!(RwLock::new(()).max_readers(), MAX_READS);
        // With a single reader slot, an upgradable read upgrades with 0 more permits.
        let one = RwLock::with_max_readers(1, 1);
        let u = one.try_upgradable_read().unwrap();
        assert!(one.try_read().is_err());
        let mut wg = u.try_upgrade().unwrap();
        *wg = 2;
        let r = wg.downgrade();
        assert_eq!(*r, 2);
        drop(r);
        assert_all_free(&one);
    }

    #[test]
    fn owned_variants() {
        let lock = Arc::new(RwLock::new(vec![1]));
        let r1 = fblock_on(Arc::clone(&lock).read_owned());
        let r2 = Arc::clone(&lock).try_read_owned().unwrap();
        assert_eq!(r1.len() + r2.len(), 2);
        assert!(Arc::ptr_eq(OwnedRwLockReadGuard::rwlock(&r1), &lock));
        assert!(Arc::clone(&lock).try_write_owned().is_err());
        let (cw, ww) = CountWaker::new_waker();
        let mut wf = Box::pin(Arc::clone(&lock).write_owned());
        assert!(poll(wf.as_mut(), &ww).is_pending());
        drop((r1, r2));
        assert_eq!(cw.count(), 1);
        let mut w: OwnedRwLockWriteGuard<Vec<i32>> = ready(poll(wf.as_mut(), &ww));
        w.push(2);
        assert!(Arc::ptr_eq(OwnedRwLockWriteGuard::rwlock(&w), &lock));
        let r = w.downgrade();
        assert_eq!(*r, [1, 2]);
        assert!(lock.try_write().is_err());
        drop(r);
        drop(wf);
        let mut w = Arc::clone(&lock).try_write_owned().unwrap();
        w.push(3);
        drop(w);
        // A cancelled owned read and write return everything.
        let hold = lock.try_write().unwrap();
        let mut rf = Box::pin(Arc::clone(&lock).read_owned());
        let mut wf = Box::pin(Arc::clone(&lock).write_owned());
        assert!(poll(rf.as_mut(), &ww).is_pending());
        assert!(poll(wf.as_mut(), &ww).is_pending());
        drop(hold);
        drop((rf, wf));
        assert_all_free(&lock);
        assert_eq!(
            Arc::strong_count(&lock),
            1,
            "guards and futures released the Arc"
        );
        assert_eq!(Arc::try_unwrap(lock).unwrap().into_inner(), [1, 2, 3]);
    }

    #[test]
    fn owned_upgradable_read_and_upgrade() {
        let lock = Arc::new(RwLock::with_max_readers(0u32, 3));
        let u = fblock_on(Arc::clone(&lock).upgradable_read_owned());
        assert!(Arc::ptr_eq(
            OwnedRwLockUpgradableReadGuard::rwlock(&u),
            &lock
        ));
        assert!(Arc::clone(&lock).try_upgradable_read_owned().is_err());
        let r = Arc::clone(&lock).try_read_owned().unwrap();
        // try_upgrade fails while `r` is in, and gives the guard back.
        let u = u.try_upgrade().unwrap_err();
        let (cu, wu) = CountWaker::new_waker();
        let mut up = Box::pin(OwnedRwLockUpgradableReadGuard::upgrade(u));
        assert!(poll(up.as_mut(), &wu).is_pending());
        assert!(lock.try_read().is_err(), "upgrader queued: no new reader");
        drop(r);
        assert_eq!(cu.count(), 1);
        let mut w = ready(poll(up.as_mut(), &wu));
        *w = 1;
        let u = w.downgrade_to_upgradable();
        assert_eq!(*u, 1);
        let r2 = lock.try_read().unwrap();
        drop(r2);
        let mut w = u.try_upgrade().unwrap();
        *w = 2;
        let r = w.downgrade();
        assert_eq!(*r, 2);
        drop(r);
        drop(up);
        assert_all_free(&lock);
        // Downgrade to a read, then cancelled owned futures return everything.
        let u = Arc::clone(&lock).try_upgradable_read_owned().unwrap();
        let r = u.downgrade();
        assert!(
            lock.try_upgradable_read().is_ok(),
            "downgrade released upgrade"
        );
        let mut uf = Box::pin(Arc::clone(&lock).upgradable_read_owned());
        let hold = lock.try_upgradable_read().unwrap();
        assert!(poll(uf.as_mut(), &wu).is_pending());
        drop(uf);
        drop(hold);
        let u = Arc::clone(&lock).try_upgradable_read_owned().unwrap();
        let mut up = Box::pin(u.upgrade());
        assert!(poll(up.as_mut(), &wu).is_pending());
        drop(up);
        drop(r);
        assert_all_free(&lock);
        // Uncontended upgrade completes at once.
        let u = Arc::clone(&lock).try_upgradable_read_owned().unwrap();
        assert_eq!(format!("{u:?}"), "2");
        *fblock_on(u.upgrade()) = 3;
        assert_all_free(&lock);
        assert_eq!(
            Arc::strong_count(&lock),
            1,
            "guards and futures released the Arc"
        );
    }

    #[test]
    #[should_panic(expected = "`OwnedRwLockUpgradableReadGuard::upgrade` future polled after")]
    fn owned_upgrade_polled_after_completion_panics() {
        let lock = Arc::new(RwLock::new(()));
        let u = lock.try_upgradable_read_owned().unwrap();
        let mut fut = Box::pin(u.upgrade());
        drop(ready(poll(fut.as_mut(), Waker::noop())));
        let _ = poll(fut.as_mut(), Waker::noop());
    }

    #[test]
    fn into_inner_get_mut_default_from() {
        let mut lock = RwLock::from(3);
        *lock.get_mut() += 1;
        assert_eq!(lock.into_inner(), 4);
        let d: RwLock<Vec<u8>> = RwLock::default();
        assert!(d.try_read().unwrap().is_empty());
        assert_eq!(d.max_readers(), MAX_READS);
    }

    #[test]
    fn unsized_values() {
        let lock: Box<RwLock<[u8]>> = Box::new(RwLock::new([1u8, 2, 3]));
        {
            let mut w = lock.try_write().unwrap();
            w[0] = 9;
            let m = RwLockWriteGuard::map(w, |s| &mut s[1..]);
            assert_eq!(&*m, &[2, 3]);
        }
        assert_eq!(&*fblock_on(lock.read()), &[9, 2, 3]);
        let dynlock: &RwLock<dyn core::fmt::Debug> = &RwLock::new(5u8);
        assert_eq!(format!("{:?}", dynlock.try_read().unwrap()), "5");
        assert_all_free(&*lock);
    }

    #[test]
    fn debug_and_display() {
        let lock = RwLock::with_max_readers(7, 4);
        assert_eq!(format!("{lock:?}"), "RwLock { data: 7, max_readers: 4 }");
        let w = lock.try_write().unwrap();
        assert_eq!(format!("{w:?} {w}"), "7 7");
        assert_eq!(
            format!("{lock:?}"),
            "RwLock { data: <locked>, max_readers: 4 }"
        );
        drop(w);
        let r = lock.try_read().unwrap();
        let u = lock.try_upgradable_read().unwrap();
        assert_eq!(format!("{r:?} {u}"), "7 7");
        assert_eq!(format!("{lock:?}"), "RwLock { data: 7, max_readers: 4 }");
        let fut = lock.write();
        assert!(format!("{fut:?}").starts_with("Write"));
        drop((r, u, fut));
        assert_all_free(&lock);
    }

    #[test]
    #[should_panic(expected = "`RwLock::write` future polled after it had completed")]
    fn write_polled_after_completion_panics() {
        let lock = RwLock::new(());
        let mut fut = Box::pin(lock.write());
        drop(ready(poll(fut.as_mut(), Waker::noop())));
        let _ = poll(fut.as_mut(), Waker::noop());
    }

    #[test]
    #[should_panic(expected = "`RwLock::read` future polled after it had completed")]
    fn read_polled_after_completion_panics() {
        let lock = RwLock::new(());
        let mut fut = Box::pin(lock.read());
        drop(ready(poll(fut.as_mut(), Waker::noop())));
        let _ = poll(fut.as_mut(), Waker::noop());
    }

    #[test]
    #[should_panic(expected = "`RwLockUpgradableReadGuard::upgrade` future polled after")]
    fn upgrade_polled_after_completion_panics() {
        let lock = RwLock::new(());
        let u = lock.try_upgradable_read().unwrap();
        let mut fut = Box::pin(u.upgrade());
        drop(ready(poll(fut.as_mut(), Waker::noop())));
        let _ = poll(fut.as_mut(), Waker::noop());
    }

    /// Threads contend with reads, writes and upgrades on a pair a writer keeps equal.
    #[test]
    fn threads_contend_pair_invariant() {
        let threads = if cfg!(miri) { 3 } else { 6 };
        let iters = if cfg!(miri) { 15 } else { 300 };
        let lock = Arc::new(RwLock::with_max_readers((0u64, 0u64), 3));
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                let lock = Arc::clone(&lock);
                std::thread::spawn(move || {
                    for i in 0..iters {
                        match (t + i) % 4 {
                            0 => {
                                let mut g = fblock_on(lock.write());
                                g.0 += 1;
                                std::thread::yield_now();
                                g.1 += 1;
                            }
                            1 => {
                                let u = fblock_on(lock.upgradable_read());
                                assert_eq!(u.0, u.1);
                                let mut g = fblock_on(u.upgrade());
                                g.0 += 1;
                                g.1 += 1;
                            }
                            _ => {
                                let g = fblock_on(lock.read());
                                assert_eq!(g.0, g.1, "reader saw a half-done write");
                            }
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        let writes = (0..threads)
            .map(|t| (0..iters).filter(|i| (t + i) % 4 < 2).count() as u64)
            .sum::<u64>();
        assert_eq!(*lock.try_read().unwrap(), (writes, writes));
        assert_all_free(&lock);
    }

    /// Compile-time checks of the auto traits (tokio's rules), positive and negative.
    #[test]
    fn auto_traits() {
        use core::cell::Cell;
        use std::rc::Rc;
        use std::sync::MutexGuard;

        fn send<T: ?Sized + Send>() {}
        fn sync<T: ?Sized + Sync>() {}
        fn send_sync<T: ?Sized + Send + Sync>() {}
        send_sync::<RwLock<u8>>();
        send_sync::<RwLockReadGuard<'static, u8>>();
        send_sync::<RwLockWriteGuard<'static, u8>>();
        send_sync::<RwLockMappedWriteGuard<'static, u8>>();
        send_sync::<RwLockUpgradableReadGuard<'static, u8>>();
        send_sync::<OwnedRwLockReadGuard<u8>>();
        send_sync::<OwnedRwLockWriteGuard<u8>>();
        send_sync::<Read<'static, u8>>();
        send_sync::<Write<'static, u8>>();
        send_sync::<UpgradableRead<'static, u8>>();
        send_sync::<Upgrade<'static, u8>>();
        send_sync::<ReadOwned<u8>>();
        send_sync::<WriteOwned<u8>>();
        send_sync::<UpgradableReadOwned<u8>>();
        send_sync::<UpgradeOwned<u8>>();
        send_sync::<OwnedRwLockUpgradableReadGuard<u8>>();
        send_sync::<TryLockError>();
        // `Cell` is `Send + !Sync`: the lock can move, not be shared.
        send::<RwLock<Cell<u8>>>();
        // `MutexGuard` is `Sync + !Send`: read guards may cross threads.
        send_sync::<RwLockReadGuard<'static, MutexGuard<'static, u8>>>();
        sync::<RwLock<Vec<u8>>>();

        // A call through these traits is ambiguous (a compile error) exactly when the
        // type implements the trait: each line below would stop compiling if a bound
        // were too loose.
        use crate::test_util::{AmbiguousIfSend, AmbiguousIfSync, AmbiguousIfUnpin};

        type Mg = MutexGuard<'static, u8>;
        <RwLock<Rc<u8>> as AmbiguousIfSend<_>>::some_item();
        <RwLock<Cell<u8>> as AmbiguousIfSync<_>>::some_item();
        <RwLock<Mg> as AmbiguousIfSync<_>>::some_item(); // needs T: Send too
        <RwLockReadGuard<'static, Cell<u8>> as AmbiguousIfSend<_>>::some_item();
        <RwLockReadGuard<'static, Cell<u8>> as AmbiguousIfSync<_>>::some_item();
        <RwLockWriteGuard<'static, Mg> as AmbiguousIfSend<_>>::some_item();
        <RwLockWriteGuard<'static, Cell<u8>> as AmbiguousIfSync<_>>::some_item();
        <RwLockMappedWriteGuard<'static, Mg> as AmbiguousIfSend<_>>::some_item();
        <RwLockUpgradableReadGuard<'static, Mg> as AmbiguousIfSend<_>>::some_item();
        <RwLockUpgradableReadGuard<'static, Cell<u8>> as AmbiguousIfSync<_>>::some_item();
        <OwnedRwLockReadGuard<Cell<u8>> as AmbiguousIfSend<_>>::some_item();
        <OwnedRwLockWriteGuard<Mg> as AmbiguousIfSend<_>>::some_item();
        <Read<'static, Cell<u8>> as AmbiguousIfSend<_>>::some_item();
        <Write<'static, Mg> as AmbiguousIfSend<_>>::some_item();
        <WriteOwned<Cell<u8>> as AmbiguousIfSync<_>>::some_item();
        <Read<'static, u8> as AmbiguousIfUnpin<_>>::some_item();
        <Write<'static, u8> as AmbiguousIfUnpin<_>>::some_item();
        <UpgradableRead<'static, u8> as AmbiguousIfUnpin<_>>::some_item();
        <Upgrade<'static, u8> as AmbiguousIfUnpin<_>>::some_item();
        <ReadOwned<u8> as AmbiguousIfUnpin<_>>::some_item();
        <WriteOwned<u8> as AmbiguousIfUnpin<_>>::some_item();
        <UpgradableReadOwned<u8> as AmbiguousIfUnpin<_>>::some_item();
        <UpgradeOwned<u8> as AmbiguousIfUnpin<_>>::some_item();
        <OwnedRwLockUpgradableReadGuard<Mg> as AmbiguousIfSend<_>>::some_item();
        <UpgradeOwned<Cell<u8>> as AmbiguousIfSync<_>>::some_item();
    }
}
