//! Loom models and unit tests of [`crate::notify`].
//!
//! The `loom_*` models run under `--cfg strata_loom` (every interleaving up to the
//! preemption bound) and once as plain tests otherwise. Each races at least two
//! threads on the operation under test and asserts a property: no lost wake-up, a
//! dropped chosen waiter passes its notification on, `notify_waiters` completes every
//! waiter created before it and stores nothing, and a stored permit is consumed once.
//! Under `--cfg strata_weaken` the lock-free `notify_one` publishes its permit with
//! `Relaxed`; the models that read data written before a notification then report a
//! causality violation.
//!
//! The `unit` tests (not under loom) drive every API path by hand-polling with
//! counting wakers; they are sized for miri.

use core::pin::pin;

use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::Arc;
use strata_primitives::sync::atomic::{AtomicUsize, Ordering};
use strata_primitives::{model, thread};

use crate::notify::Notify;
use crate::test_util::block_on;

/// Data written before a notification and read after it: loom reports a read that is
/// not ordered after the write.
struct Data(UnsafeCell<u32>);

// SAFETY: the tests only read the cell after the notification that follows the
// write; an unordered access is exactly what loom is asked to find.
unsafe impl Sync for Data {}

impl Data {
    fn new() -> Self {
        Data(UnsafeCell::new(0))
    }
    fn write(&self, v: u32) {
        // SAFETY: the single writer runs before the notification the reader waits for.
        self.0.with_mut(|p| unsafe { *p = v });
    }
    fn read(&self) -> u32 {
        // SAFETY: read after the notification that followed the write.
        self.0.with(|p| unsafe { *p })
    }
}

/// `true` if a fresh `Notified` is already notified (a permit is stored).
fn permit_stored(n: &Notify) -> bool {
    pin!(n.notified()).enable()
}

/// `notify_one` races the first poll of a `Notified`: the waiter completes (no lost
/// wake-up: a lost one would leave it parked forever, which loom reports as a
/// deadlock), it sees the data written before the notification, and the one
/// notification is consumed (no permit left).
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_notify_one_vs_notified_no_lost_wakeup() {
    model(|| {
        let n = Arc::new(Notify::new());
        let d = Arc::new(Data::new());
        let (n2, d2) = (Arc::clone(&n), Arc::clone(&d));
        let t = thread::spawn(move || {
            d2.write(7);
            n2.notify_one();
        });
        block_on(n.notified());
        assert_eq!(d.read(), 7);
        t.join().unwrap();
        assert!(!permit_stored(&n), "the notification was consumed");
    });
}

/// A queued `Notified` is dropped while `notify_one` runs and a second waiter waits:
/// if `notify_one` chose the dropped one, the drop passes the notification on (to the
/// second waiter, or to the permit it then takes). Either way the second waiter
/// completes, sees the data, and no permit is left over.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_dropped_chosen_notified_passes_on() {
    model(|| {
        let n = Arc::new(Notify::new());
        let d = Arc::new(Data::new());
        let mut first = Box::pin(n.notified());
        assert!(!first.as_mut().enable(), "no notification yet");
        let (n2, d2) = (Arc::clone(&n), Arc::clone(&d));
        let second = thread::spawn(move || {
            block_on(n2.notified());
            d2.read()
        });
        let (n3, d3) = (Arc::clone(&n), Arc::clone(&d));
        let notifier = thread::spawn(move || {
            d3.write(7);
            n3.notify_one();
        });
        drop(first);
        assert_eq!(second.join().unwrap(), 7);
        notifier.join().unwrap();
        assert!(
            !permit_stored(&n),
            "exactly one notification, consumed once"
        );
    });
}

/// `notify_waiters` completes every `Notified` created before it: one waiter blocks
/// on it, another queues and then drops its future concurrently (under loom batches
/// are of one waker, so the drop can find its node in the draining list). The blocked
/// waiter completes and no permit is stored.
#[test]
fn loom_notify_waiters_wakes_all_created_before() {
    model(|| {
        let n = Arc::new(Notify::new());
        let created = Arc::new(AtomicUsize::new(0));
        let (n2, c2) = (Arc::clone(&n), Arc::clone(&created));
        let blocked = thread::spawn(move || {
            let f = n2.notified();
            c2.fetch_add(1, Ordering::Release);
            block_on(f);
        });
        let (n3, c3) = (Arc::clone(&n), Arc::clone(&created));
        let dropper = thread::spawn(move || {
            let mut f = Box::pin(n3.notified());
            let _ = f.as_mut().enable();
            c3.fetch_add(1, Ordering::Release);
            drop(f);
        });
        while created.load(Ordering::Acquire) < 2 {
            thread::yield_now();
        }
        n.notify_waiters();
        blocked.join().unwrap();
        dropper.join().unwrap();
        assert!(!permit_stored(&n), "notify_waiters stores no permit");
    });
}

/// `notify_one` races `notify_waiters` (whose batches are of one waker under loom, so
/// the race reaches the draining phase). A waiter queued before both completes; a
/// waiter queued by the notifying thread just before its `notify_one` completes too:
/// if it was created before the `notify_waiters` call, that call completes it; if
/// after, it is the only node in the waiting list (the earlier one was moved to the
/// draining list), so `notify_one` must choose it rather than a node `notify_waiters`
/// already completed.
#[test]
fn loom_notify_one_vs_notify_waiters() {
    model(|| {
        let n = Arc::new(Notify::new());
        let mut first = Box::pin(n.notified());
        assert!(!first.as_mut().enable());
        let n2 = Arc::clone(&n);
        let broadcaster = thread::spawn(move || n2.notify_waiters());
        let n3 = Arc::clone(&n);
        let notifier = thread::spawn(move || {
            let mut mine = Box::pin(n3.notified());
            let _ = mine.as_mut().enable();
            n3.notify_one();
            block_on(mine);
        });
        block_on(first);
        broadcaster.join().unwrap();
        notifier.join().unwrap();
    });
}

/// One stored permit, two racing waiters: exactly one completes; the other keeps
/// waiting until a second `notify_one`, after which both have completed and nothing
/// is left over.
#[test]
fn loom_stored_permit_consumed_once() {
    model(|| {
        let n = Arc::new(Notify::new());
        let done = Arc::new(AtomicUsize::new(0));
        n.notify_one();
        let spawn_waiter = || {
            let (n, done) = (Arc::clone(&n), Arc::clone(&done));
            thread::spawn(move || {
                block_on(n.notified());
                done.fetch_add(1, Ordering::AcqRel);
            })
        };
        let (a, b) = (spawn_waiter(), spawn_waiter());
        while done.load(Ordering::Acquire) == 0 {
            thread::yield_now();
        }
        assert_eq!(
            done.load(Ordering::Acquire),
            1,
            "one permit completed two waiters"
        );
        n.notify_one();
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(done.load(Ordering::Acquire), 2);
        assert!(!permit_stored(&n));
    });
}

#[cfg(not(strata_loom))]
mod unit {
    use super::*;
    use crate::notify::{Notified, OwnedNotified};
    use crate::test_util::CountWaker;
    use core::future::Future;
    use core::pin::Pin;
    use core::task::{Context, Poll, Waker};
    use std::sync::Mutex;

    fn poll<F: Future>(f: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
        f.poll(&mut Context::from_waker(w))
    }

    #[test]
    fn permit_is_stored_and_consumed_once() {
        let n = Notify::new();
        let (_, w) = CountWaker::new_waker();
        n.notify_one();
        n.notify_one(); // still one permit
        assert!(poll(pin!(n.notified()), &w).is_ready());
        assert!(poll(pin!(n.notified()), &w).is_pending());
        n.notify_last();
        assert!(poll(pin!(n.notified()), &w).is_ready());
        assert!(!permit_stored(&n));
    }

    #[test]
    fn notify_one_is_fifo_and_notify_last_is_lifo() {
        let n = Notify::new();
        let cs: Vec<_> = (0..3).map(|_| CountWaker::new_waker()).collect();
        let mut a = pin!(n.notified());
        let mut b = pin!(n.notified());
        let mut c = pin!(n.notified());
        assert!(poll(a.as_mut(), &cs[0].1).is_pending());
        assert!(poll(b.as_mut(), &cs[1].1).is_pending());
        assert!(poll(c.as_mut(), &cs[2].1).is_pending());

        n.notify_last(); // newest: c
        assert_eq!(
            [cs[0].0.count(), cs[1].0.count(), cs[2].0.count()],
            [0, 0, 1]
        );
        n.notify_one(); // oldest: a
        assert_eq!(
            [cs[0].0.count(), cs[1].0.count(), cs[2].0.count()],
            [1, 0, 1]
        );
        assert!(poll(a.as_mut(), &cs[0].1).is_ready());
        assert!(poll(b.as_mut(), &cs[1].1).is_pending());
        assert!(poll(c.as_mut(), &cs[2].1).is_ready());
        n.notify_one();
        assert!(poll(b.as_mut(), &cs[1].1).is_ready());
        assert!(!permit_stored(&n), "every notification went to a waiter");
        // A completed future stays completed.
        assert!(poll(a.as_mut(), &cs[0].1).is_ready());
    }

    #[test]
    fn notify_waiters_wakes_created_before_and_stores_nothing() {
        let n = Notify::new();
        let (c1, w1) = CountWaker::new_waker();
        let (c2, w2) = CountWaker::new_waker();
        let mut polled = pin!(n.notified());
        assert!(poll(polled.as_mut(), &w1).is_pending());
        let mut unpolled = pin!(n.notified()); // created before, never polled
        n.notify_waiters();
        assert_eq!(c1.count(), 1);
        let mut after = pin!(n.notified()); // created after: not woken
        assert!(poll(polled.as_mut(), &w1).is_ready());
        assert!(poll(unpolled.as_mut(), &w2).is_ready());
        assert!(poll(after.as_mut(), &w2).is_pending());
        assert_eq!(c2.count(), 0);
        assert!(!permit_stored(&n));
        // A stored permit survives notify_waiters.
        n.notify_one(); // goes to `after`, which is queued
        assert!(poll(after.as_mut(), &w2).is_ready());
        n.notify_one();
        n.notify_waiters();
        assert!(permit_stored(&n));
    }

    #[test]
    fn enable_queues_without_polling() {
        let n = Notify::new();
        let mut f = pin!(n.notified());
        assert!(!f.as_mut().enable());
        assert!(!f.as_mut().enable(), "enable again: still not notified");
        n.notify_one(); // chooses `f`, stores no permit
        assert!(!permit_stored(&n));
        assert!(f.as_mut().enable());
        let (_, w) = CountWaker::new_waker();
        assert!(poll(f.as_mut(), &w).is_ready());

        n.notify_one();
        let mut g = pin!(n.notified());
        assert!(g.as_mut().enable(), "takes the stored permit");
        assert!(!permit_stored(&n));
        // A queued future without a waker is notified by notify_waiters too.
        let mut h = pin!(n.notified());
        assert!(!h.as_mut().enable());
        n.notify_waiters();
        assert!(h.as_mut().enable());
    }

    #[test]
    fn dropped_chosen_notified_passes_on() {
        let n = Notify::new();
        let (c2, w2) = CountWaker::new_waker();
        let mut a = Box::pin(n.notified());
        let mut b = pin!(n.notified());
        assert!(!a.as_mut().enable());
        assert!(poll(b.as_mut(), &w2).is_pending());
        n.notify_one(); // chooses a
        drop(a); // passes to b
        assert_eq!(c2.count(), 1);
        assert!(poll(b.as_mut(), &w2).is_ready());
        assert!(!permit_stored(&n));

        // Alone: the notification becomes the permit.
        let mut a = Box::pin(n.notified());
        assert!(!a.as_mut().enable());
        n.notify_last();
        drop(a);
        assert!(permit_stored(&n));
        assert!(!permit_stored(&n), "consumed by the check above");

        // A notify_last choice passes on LIFO: to the newest remaining waiter.
        let (c1, w1) = CountWaker::new_waker();
        let mut x = pin!(n.notified());
        let mut y = pin!(n.notified());
        let mut z = Box::pin(n.notified());
        assert!(poll(x.as_mut(), &w1).is_pending());
        assert!(poll(y.as_mut(), &w2).is_pending());
        assert!(!z.as_mut().enable());
        n.notify_last(); // chooses z
        drop(z); // passes to y
        assert_eq!((c1.count(), c2.count()), (0, 2));
        assert!(poll(y.as_mut(), &w2).is_ready());
        assert!(poll(x.as_mut(), &w1).is_pending());
        n.notify_one();
        assert!(poll(x.as_mut(), &w1).is_ready());
    }

    #[test]
    fn dropped_unchosen_notified_leaves_the_queue() {
        let n = Notify::new();
        let (c, w) = CountWaker::new_waker();
        let mut a = Box::pin(n.notified());
        let mut b = pin!(n.notified());
        assert!(!a.as_mut().enable());
        assert!(poll(b.as_mut(), &w).is_pending());
        drop(a);
        n.notify_one(); // b, not the dropped a
        assert_eq!(c.count(), 1);
        assert!(poll(b.as_mut(), &w).is_ready());
        // The last waiter leaving empties the queue: notify_one stores a permit.
        let mut d = Box::pin(n.notified());
        assert!(!d.as_mut().enable());
        drop(d);
        n.notify_one();
        assert!(permit_stored(&n));
        // Dropping a completed or never-polled future does nothing.
        n.notify_one();
        let mut e = Box::pin(n.notified());
        assert!(e.as_mut().enable());
        drop(e);
        drop(n.notified());
        assert!(!permit_stored(&n));
    }

    #[test]
    fn repoll_replaces_the_waker() {
        let n = Notify::new();
        let (c1, w1) = CountWaker::new_waker();
        let (c2, w2) = CountWaker::new_waker();
        let mut f = pin!(n.notified());
        assert!(poll(f.as_mut(), &w1).is_pending());
        assert!(poll(f.as_mut(), &w1).is_pending()); // same waker kept
        assert!(poll(f.as_mut(), &w2).is_pending()); // replaced
        n.notify_one();
        assert_eq!((c1.count(), c2.count()), (0, 1));
        assert!(poll(f.as_mut(), &w2).is_ready());
    }

    /// A waker that calls `notify_one` on the same `Notify`: wakers run outside the
    /// internal mutex, so this does not deadlock.
    struct Reenter(std::sync::Arc<Notify>, AtomicUsize);

    impl std::task::Wake for Reenter {
        fn wake(self: std::sync::Arc<Self>) {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.notify_one();
        }
    }

    #[test]
    fn waker_may_reenter_the_notify() {
        let n = std::sync::Arc::new(Notify::new());
        let r = std::sync::Arc::new(Reenter(std::sync::Arc::clone(&n), AtomicUsize::new(0)));
        let w = Waker::from(std::sync::Arc::clone(&r));
        let mut f = pin!(n.notified());
        assert!(poll(f.as_mut(), &w).is_pending());
        n.notify_one(); // wakes f, whose waker stores a permit
        assert_eq!(r.1.load(Ordering::SeqCst), 1);
        assert!(poll(f.as_mut(), &w).is_ready());
        assert!(permit_stored(&n));
        let mut g = pin!(n.notified());
        assert!(poll(g.as_mut(), &w).is_pending());
        n.notify_waiters(); // the waker's notify_one stores a permit
        assert!(permit_stored(&n));
    }

    /// More waiters than a batch of `notify_waiters`: the first woken waker drops one
    /// still-undrained future and polls another, both found in the draining list
    /// between two batches.
    #[test]
    fn notify_waiters_batches_with_cancel_and_repoll_between() {
        static N: Notify = Notify::new();
        const K: usize = 40;
        type Slots = Mutex<Vec<Option<Pin<Box<Notified<'static>>>>>>;
        static SLOTS: Slots = Mutex::new(Vec::new());

        struct Meddler(AtomicUsize);
        impl std::task::Wake for Meddler {
            fn wake(self: std::sync::Arc<Self>) {
                if self.0.fetch_add(1, Ordering::SeqCst) == 0 {
                    let mut slots = SLOTS.lock().unwrap();
                    slots[K - 1] = None; // cancelled while in the draining list
                    let (_, w) = CountWaker::new_waker();
                    let f = slots[K - 2].as_mut().unwrap();
                    assert!(poll(f.as_mut(), &w).is_ready(), "leaves the draining list");
                }
            }
        }
        let meddler = std::sync::Arc::new(Meddler(AtomicUsize::new(0)));
        let mw = Waker::from(std::sync::Arc::clone(&meddler));
        let (c, w) = CountWaker::new_waker();
        {
            let mut slots = SLOTS.lock().unwrap();
            for i in 0..K {
                let mut f = Box::pin(N.notified());
                assert!(poll(f.as_mut(), if i == 0 { &mw } else { &w }).is_pending());
                slots.push(Some(f));
            }
        }
        N.notify_waiters();
        assert_eq!(meddler.0.load(Ordering::SeqCst), 1);
        assert_eq!(
            c.count(),
            K - 3,
            "all but the meddler and the two it handled"
        );
        let mut slots = SLOTS.lock().unwrap();
        for f in slots.iter_mut().flatten() {
            assert!(poll(f.as_mut(), &w).is_ready());
        }
        slots.clear();
        assert!(!permit_stored(&N));
    }

    #[test]
    fn owned_notified_works_across_threads() {
        let n = std::sync::Arc::new(Notify::new());
        let f = std::sync::Arc::clone(&n).notified_owned();
        let t = std::thread::spawn(move || block_on(f));
        n.notify_one();
        t.join().unwrap();
        // Owned: enable, drop-pass-on, notify_waiters.
        let mut a = Box::pin(std::sync::Arc::clone(&n).notified_owned());
        assert!(!a.as_mut().enable());
        n.notify_one();
        drop(a);
        assert!(permit_stored(&n));
        let mut b = pin!(std::sync::Arc::clone(&n).notified_owned());
        assert!(!b.as_mut().enable());
        n.notify_waiters();
        let (_, w) = CountWaker::new_waker();
        assert!(poll(b.as_mut(), &w).is_ready());
        assert!(format!("{:?}", b).contains("OwnedNotified"));
    }

    #[test]
    fn send_sync_and_debug() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        let n = Notify::default();
        send_sync(&n);
        send_sync(&n.notified());
        let owned: OwnedNotified = std::sync::Arc::new(Notify::new()).notified_owned();
        send_sync(&owned);
        // An async block awaiting a Notified can be spawned on a multi-thread runtime.
        fn send<T: Send>(_: T) {}
        send(async { n.notified().await });
        n.notify_one();
        assert_eq!(format!("{n:?}"), "Notify { waiting: false, permit: true }");
        assert!(format!("{:?}", n.notified()).starts_with("Notified"));
    }
}
