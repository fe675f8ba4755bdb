//! Loom models and unit tests of the MCS lock ([`crate::mcs`]).
//!
//! The models check mutual exclusion through loom's race detection on the lock's
//! `UnsafeCell` (the guard's `deref_mut` and `with` are `with_mut` accesses, which loom
//! tracks), FIFO order against the recorded order of the `tail` swaps, `try_lock`
//! against `lock`, and the release of a holder whose successor has swapped `tail` but
//! not yet linked itself.
//!
//! Under `--cfg strata_weaken` the hand-off store to the successor's flag is `Relaxed`
//! instead of `Release`: the successor's critical section then races with its
//! predecessor's, and the models that hand the lock over through the flag report it
//! (`should_panic`).

use std::sync::Arc;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;

use strata_primitives::sync::atomic::Ordering;
use strata_primitives::{LOOM, model, thread};

use super::{LOCAL_NODES, McsLock, QNode, new_node};

/// One acquisition in the FIFO model: who, with which node, behind which predecessor.
#[derive(Clone, Copy, Debug)]
struct Acq {
    who: usize,
    node: usize,
    pred: usize,
}

/// Acquires `lock` with a fresh heap node, logs the acquisition inside the critical
/// section (a write to the lock's cell, which loom checks for races), releases it, and
/// returns the node (kept alive so that node addresses are unique within a run).
fn logged_acquire(lock: &McsLock<Vec<Acq>>, who: usize) -> Box<QNode> {
    let node = Box::new(new_node());
    // SAFETY: the node is new and outlives the release below.
    let pred = unsafe { lock.acquire(&*node) };
    let acq = Acq {
        who,
        node: &*node as *const QNode as usize,
        pred: pred as usize,
    };
    // SAFETY: we hold the lock.
    lock.data.with_mut(|v| unsafe { (*v).push(acq) });
    // SAFETY: we hold the lock with this node.
    unsafe { lock.release(&*node) };
    node
}

/// Checks FIFO: an acquisition whose predecessor was a node of this run took the lock
/// right after that node's acquisition; one with no predecessor found the lock free.
fn assert_fifo(log: &[Acq]) {
    for (i, a) in log.iter().enumerate() {
        if a.pred != 0 {
            assert!(i > 0, "the first holder had a predecessor: {log:?}");
            assert_eq!(
                log[i - 1].node,
                a.pred,
                "acquisition {} of thread {} did not follow its predecessor in the queue: {log:?}",
                i,
                a.who
            );
        }
    }
}

/// The main thread holds the lock; two threads queue behind it and the main thread
/// releases. Every holder logs into the lock's cell (races are loom's to find), and
/// the log order must be the order of the `tail` swaps.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_mcs_handoff_fifo() {
    model(|| {
        let lock = Arc::new(McsLock::new(Vec::new()));
        let n0 = Box::new(new_node());
        // SAFETY: the node is new and outlives the release below.
        let pred = unsafe { lock.acquire(&*n0) };
        assert!(pred.is_null(), "the lock was free");
        let first = Acq {
            who: 0,
            node: &*n0 as *const QNode as usize,
            pred: 0,
        };
        // SAFETY: we hold the lock.
        lock.data.with_mut(|v| unsafe { (*v).push(first) });
        let handles: Vec<_> = (1..=2)
            .map(|who| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || logged_acquire(&lock, who))
            })
            .collect();
        // SAFETY: we hold the lock with `n0`.
        unsafe { lock.release(&*n0) };
        let nodes: Vec<Box<QNode>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(!lock.is_locked());
        // SAFETY: every thread has released the lock.
        let log = lock.data.with(|v| unsafe { (*v).clone() });
        assert_eq!(log.len(), 3);
        assert_fifo(&log);
        drop(nodes);
    });
}

/// Three threads take the lock through the public API (a guard and `with`) and
/// increment a plain counter in it: no race (loom) and no lost update.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_mcs_guard_exclusion() {
    model(|| {
        let lock = Arc::new(McsLock::new(0u64));
        let l1 = Arc::clone(&lock);
        let t1 = thread::spawn(move || *l1.lock() += 1);
        let l2 = Arc::clone(&lock);
        let t2 = thread::spawn(move || l2.with(|c| *c += 1));
        {
            let mut g = lock.lock();
            let v = *g;
            *g = v + 1;
        }
        t1.join().unwrap();
        t2.join().unwrap();
        assert!(!lock.is_locked());
        assert_eq!(*lock.lock(), 3);
    });
}

/// `try_lock` races `lock`: it succeeds only when the queue is empty, never while the
/// other thread holds or waits for the lock; both increments are exclusive.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_mcs_try_lock_vs_lock() {
    model(|| {
        let lock = Arc::new(McsLock::new(0u64));
        let l1 = Arc::clone(&lock);
        let t = thread::spawn(move || {
            let mut g = l1.lock();
            *g += 10;
        });
        let tried = match lock.try_lock() {
            Some(mut g) => {
                *g += 1;
                1
            }
            None => 0,
        };
        t.join().unwrap();
        assert_eq!(*lock.lock(), 10 + tried);
        // Free and unqueued again: `try_lock` must succeed.
        assert!(lock.try_lock().is_some());
    });
}

/// The window MCS must handle: the holder releases after its successor has swapped
/// `tail` but before it has linked itself into the holder's `next`. The release must
/// wait for the link and hand over (not leave the successor spinning forever, which
/// loom would report as a model that does not terminate). The model also checks that
/// loom really reached that state in some execution.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_mcs_release_before_link() {
    let window_seen = Arc::new(StdAtomicUsize::new(0));
    let seen = Arc::clone(&window_seen);
    model(move || {
        let lock = Arc::new(McsLock::new(0u64));
        let n0 = Box::new(new_node());
        // SAFETY: the node is new and outlives the release below.
        unsafe { lock.acquire(&*n0) };
        let l1 = Arc::clone(&lock);
        let t = thread::spawn(move || *l1.lock() += 1);
        // SAFETY: we hold the lock.
        lock.data.with_mut(|c| unsafe { *c += 1 });
        let n0_ptr = (&*n0 as *const QNode).cast_mut();
        let tail = lock.tail.load(Ordering::Relaxed);
        if tail != n0_ptr && n0.next.load(Ordering::Relaxed).is_null() {
            // The successor has swapped `tail` and not linked itself yet.
            seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        // SAFETY: we hold the lock with `n0`.
        unsafe { lock.release(&*n0) };
        t.join().unwrap();
        assert_eq!(*lock.lock(), 2);
        assert!(!lock.is_locked());
    });
    if LOOM {
        assert!(
            window_seen.load(std::sync::atomic::Ordering::Relaxed) > 0,
            "no execution released in the swap-to-link window"
        );
    }
}

// ---- unit tests (single-threaded ones run as one-thread models under loom) ----

#[test]
fn nested_locks_beyond_local_nodes_and_out_of_order_drop() {
    model(|| {
        let locks: Vec<McsLock<usize>> = (0..LOCAL_NODES + 3).map(McsLock::new).collect();
        let mut guards: Vec<_> = locks.iter().map(|l| Some(l.lock())).collect();
        assert!(locks.iter().all(|l| l.is_locked()));
        // The guards beyond LOCAL_NODES use heap nodes; all are independent.
        for (i, g) in guards.iter_mut().enumerate() {
            let g = g.as_mut().unwrap();
            assert_eq!(**g, i);
            **g += 100;
        }
        // Drop in a scrambled order: every lock is released by its own guard.
        for i in [3, 0, 5, 1, 6, 2, 4] {
            drop(guards[i].take());
            assert!(!locks[i].is_locked(), "lock {i} not released by its guard");
        }
        assert!(guards.iter().all(Option::is_none));
        for (i, l) in locks.iter().enumerate() {
            assert!(!l.is_locked(), "lock {i} still held");
            assert_eq!(*l.try_lock().expect("free"), i + 100);
        }
        // The thread's nodes are all free again: LOCAL_NODES guards at once, and
        // `with` nested inside them.
        let held: Vec<_> = locks[..LOCAL_NODES].iter().map(|l| l.lock()).collect();
        locks[LOCAL_NODES].with(|v| *v += 1);
        drop(held);
        assert_eq!(*locks[LOCAL_NODES].lock(), LOCAL_NODES + 101);
    });
}

#[test]
fn try_lock_fails_while_held() {
    model(|| {
        let lock = McsLock::new(1);
        let g = lock.lock();
        assert!(lock.try_lock().is_none());
        drop(g);
        let g = lock.try_lock().expect("free");
        assert!(lock.try_lock().is_none());
        drop(g);
        assert!(!lock.is_locked());
    });
}

#[test]
fn unsized_values() {
    model(|| {
        let boxed: Box<McsLock<[u8]>> = Box::new(McsLock::new([1, 2, 3]));
        boxed.lock()[1] = 7;
        assert_eq!(&*boxed.lock(), &[1, 7, 3]);
        let dynamic: &McsLock<dyn core::fmt::Debug> = &McsLock::new(5u8);
        assert_eq!(format!("{:?}", &*dynamic.lock()), "5");
        assert_eq!(boxed.with(|s| s.len()), 3);
    });
}

#[test]
fn debug_default_get_mut_into_inner() {
    model(|| {
        let mut lock: McsLock<Vec<u8>> = McsLock::default();
        lock.get_mut().push(4);
        assert_eq!(format!("{lock:?}"), "McsLock { data: [4] }");
        {
            let g = lock.lock();
            assert_eq!(format!("{lock:?}"), "McsLock { data: <locked> }");
            assert_eq!(format!("{g:?}"), "[4]");
        }
        let from: McsLock<u8> = 3.into();
        assert_eq!(from.into_inner(), 3);
        assert_eq!(lock.into_inner(), vec![4]);
    });
}

#[test]
#[cfg(not(strata_loom))]
fn panic_in_with_releases_the_lock() {
    let lock = McsLock::new(0);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lock.with(|v| {
            *v = 1;
            panic!("boom");
        })
    }));
    assert!(r.is_err());
    assert!(!lock.is_locked());
    // No poisoning: the value is as the panicking closure left it.
    assert_eq!(*lock.lock(), 1);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut g = lock.lock();
        *g = 2;
        panic!("boom");
    }));
    assert!(r.is_err());
    assert_eq!(
        *lock.try_lock().expect("released by the unwinding guard"),
        2
    );
}

#[test]
#[cfg(not(strata_loom))]
fn guards_held_across_thread_exit_of_other_threads() {
    // Threads that used their local nodes and exited: their arrays are freed with no
    // guard outstanding, and the lock keeps working for the others.
    let lock = std::sync::Arc::new(McsLock::new(0u64));
    for _ in 0..4 {
        let l = std::sync::Arc::clone(&lock);
        std::thread::spawn(move || {
            for _ in 0..10 {
                *l.lock() += 1;
            }
        })
        .join()
        .unwrap();
    }
    assert_eq!(*lock.lock(), 40);
}

/// A guard dropped by another thread-local's destructor after this thread's node array
/// was destroyed: the array is leaked, not freed, so the release touches live memory
/// (miri checks it).
#[test]
#[cfg(not(strata_loom))]
fn guard_outliving_the_node_array() {
    static LOCK: McsLock<u32> = McsLock::new(0);
    struct Holder(Option<super::McsGuard<'static, u32>>);
    impl Drop for Holder {
        fn drop(&mut self) {
            if let Some(mut g) = self.0.take() {
                *g += 1;
            }
        }
    }
    std::thread_local! {
        static HOLDER: core::cell::RefCell<Holder> = const { core::cell::RefCell::new(Holder(None)) };
    }
    std::thread::spawn(|| {
        // Register HOLDER's destructor first, then take a node (registering NODES'
        // destructor): thread-local destructors run in reverse order of registration
        // on most platforms, so NODES may go first; either order must be sound.
        HOLDER.with(|_| {});
        let g = LOCK.lock();
        HOLDER.with(|h| h.borrow_mut().0 = Some(g));
    })
    .join()
    .unwrap();
    assert!(!LOCK.is_locked());
    assert_eq!(*LOCK.lock(), 1);
}

/// `McsGuard` is `!Send` (its node belongs to its thread's array), `Sync` for a `Sync`
/// value; `McsLock` is `Send + Sync` for a `Send` value. (The `!Send` check is the
/// usual ambiguity trick: the call resolves only if the second impl does not apply.)
#[test]
fn auto_traits() {
    trait AmbiguousIfSend<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}
    <super::McsGuard<'static, u64> as AmbiguousIfSend<_>>::check();

    fn send_sync<T: Send + Sync + ?Sized>() {}
    send_sync::<McsLock<std::cell::Cell<u8>>>();
    send_sync::<McsLock<[u8]>>();
    fn sync<T: Sync + ?Sized>() {}
    sync::<super::McsGuard<'static, u64>>();
}
