//! Loom models and unit tests of flat combining ([`crate::combining`]).
//!
//! The models run under `--cfg strata_loom` (and once as plain tests otherwise). Some
//! force the combining hand-off: the main thread takes the combiner lock by hand,
//! waits until the other thread has published its operation and linked its record,
//! and then combines, so that the other thread's operation is certainly applied by
//! the main thread. Under `--cfg strata_weaken` the `PENDING` and `DONE` stores are
//! `Relaxed`, and the models that read a result across threads report the race.
//!
//! Planted bugs these models caught (tried by hand, then reverted): a thread that
//! becomes the combiner while its own op is pending and relies on the scan to serve
//! it (its record may be unlinked or not yet linked) ends with a `DONE` record without
//! a result (caught by `loom_counter_two_adds`, `loom_handles_claim_and_reuse` and
//! `loom_aging_unlink_relink_race`); a combiner that stores `DONE` before it writes the
//! result is a race on the result slot (caught by the three forced models).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};

use strata_primitives::sync::Arc;
use strata_primitives::sync::atomic::Ordering;
use strata_primitives::{model, thread};

use super::*;

/// A test structure: an accumulator whose ops add and return the previous value, and
/// one op that panics.
#[derive(Debug, Default)]
struct Acc(u64);

#[derive(Debug)]
enum AccOp {
    Add(u64),
    Boom,
}

impl Sequential for Acc {
    type Op = AccOp;
    type Output = u64;

    fn apply(&mut self, op: AccOp) -> u64 {
        match op {
            AccOp::Add(n) => {
                let prev = self.0;
                self.0 += n;
                prev
            }
            AccOp::Boom => panic!("boom"),
        }
    }
}

/// Asserts that the `(amount, previous value)` pairs of additions applied to a counter
/// starting at 0 come from one sequential order, and that it ends at `total`.
fn assert_sequential_adds(results: &[(u64, u64)], total: u64) {
    let mut cur = 0;
    let mut left: Vec<(u64, u64)> = results.to_vec();
    while let Some(i) = left.iter().position(|&(_, prev)| prev == cur) {
        let (amount, _) = left.swap_remove(i);
        cur += amount;
    }
    assert!(left.is_empty(), "no sequential order explains {results:?}");
    assert_eq!(cur, total);
}

/// Spins until the publication list's head is a published (`PENDING` or `PARKED`)
/// record (the other thread has published its op and linked its record) and returns
/// that record.
fn wait_for_published<S: Sequential>(fc: &FlatCombining<S>) -> *mut Rec<S> {
    loop {
        let head = fc.head.load(Ordering::Acquire);
        // SAFETY: records live as long as `fc`.
        if !head.is_null() {
            // SAFETY: records live as long as `fc`.
            let state = unsafe { (&*head).state.load(Ordering::Acquire) };
            if state == PENDING || state == PARKED {
                return head;
            }
        }
        thread::yield_now();
    }
}

/// Two threads add 1 and 2 through the thread-cache path: the results are distinct
/// previous values of one sequential order, the final value is 3, and the statistics
/// count every operation once. (Not forced: loom explores few interleavings here, and
/// none in which a weakened publication is read, so it is not marked for
/// `strata_weaken`; the forced models below are.)
#[test]
fn loom_counter_two_adds() {
    model(|| {
        let c = Arc::new(CombiningCounter::new(0));
        let c2 = Arc::clone(&c);
        let other = thread::spawn(move || c2.add(2));
        let mine = c.add(1);
        let theirs = other.join().unwrap();
        assert_sequential_adds(&[(1, mine), (2, theirs)], 3);
        assert_eq!(c.get(), 3);
        assert_eq!(c.stats().ops, 3);
    });
}

/// The hand-off, forced: the main thread holds the lock while the other publishes;
/// then the main thread combines and must apply the other's op, whose owner must get
/// the result the main thread computed (a `Relaxed` `DONE` makes that read a race).
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_waiter_served_by_combiner() {
    model(|| {
        let fc = Arc::new(FlatCombining::new(Acc(0)));
        assert!(fc.try_lock());
        let fc2 = Arc::clone(&fc);
        let waiter = thread::spawn(move || fc2.handle().apply(AccOp::Add(2)));
        let rec = wait_for_published(&fc);
        let mine = fc.combine_own(AccOp::Add(1));
        // SAFETY: records live as long as `fc`.
        let state = unsafe { (&*rec).state.load(Ordering::Relaxed) };
        assert!(state != PENDING && state != PARKED, "our pass served the waiter's op");
        let theirs = waiter.join().unwrap();
        assert_eq!((mine, theirs), (0, 1), "the waiter's op is applied after ours");
        // The waiter may have run a pass of its own (empty) if it saw the lock free
        // before it saw `DONE`.
        let stats = fc.stats();
        assert_eq!(stats.ops, 2);
        assert!((1..=2).contains(&stats.passes));
        assert_eq!(fc.handle().apply(AccOp::Add(0)), 3);
    });
}

/// Record aging (threshold 0, so an idle record is unlinked at every pass): the other
/// thread's record is linked (forced, as above), served, and then the other thread
/// publishes again while the main thread runs passes that may unlink the record. Its
/// owner must notice and push it again (or combine itself): every op is applied exactly
/// once, in one sequential order.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_aging_unlink_relink_race() {
    model(|| {
        let fc = Arc::new(FlatCombining::with_aging(Acc(0), 0));
        assert!(fc.try_lock());
        let fc2 = Arc::clone(&fc);
        let other = thread::spawn(move || {
            let mut h = fc2.handle();
            let a = h.apply(AccOp::Add(2));
            let b = h.apply(AccOp::Add(4));
            (a, b)
        });
        wait_for_published(&fc);
        let first = fc.combine_own(AccOp::Add(1));
        // The other's record is linked and now idle: this op's pass unlinks it unless
        // the other has published again.
        let second = fc.handle().apply(AccOp::Add(8));
        let (a, b) = other.join().unwrap();
        assert!(a < b, "the other thread's ops in program order");
        assert_sequential_adds(&[(1, first), (8, second), (2, a), (4, b)], 15);
        assert_eq!(fc.stats().ops, 4);
    });
}

/// The parking protocol: the main thread holds the lock while the other thread
/// publishes and parks (under loom a waiter parks at its first wait), then the main
/// thread combines and releases without waiting for it, so its scan may or may not see
/// the record. Whether the record is served by the scan, by the release's serving of
/// parked records (`WAKE`), or by the waiter itself once the lock is free, the waiter
/// must wake up with its result: a lost wake-up leaves it parked, which loom reports as
/// a deadlock. Planted bugs caught: a release that ignores `WAKE` (a plain store of
/// 0), and a waiter that parks without looking at the lock word.
///
/// Not marked `should_panic` under `strata_weaken`: the unpark's own `Release`/`Acquire`
/// pair orders a `Relaxed` `DONE` of a parked record, so the weakening goes unseen here.
#[test]
fn loom_parked_waiter_is_woken() {
    model(|| {
        let fc = Arc::new(FlatCombining::new(Acc(0)));
        assert!(fc.try_lock());
        let fc2 = Arc::clone(&fc);
        let waiter = thread::spawn(move || fc2.handle().apply(AccOp::Add(2)));
        let mine = fc.combine_own(AccOp::Add(1));
        let theirs = waiter.join().unwrap();
        assert_eq!((mine, theirs), (0, 1), "the waiter's op is applied after ours");
        assert_eq!(fc.lock.load(Ordering::Relaxed) & LOCKED, 0, "the lock is released");
        assert_eq!(fc.apply(AccOp::Add(0)), 3);
    });
}

/// Two threads claim records with handles at the same time and use them; the claims
/// are exclusive (two owners of one record would race on its slots) and dropped
/// handles' records are reused rather than new ones allocated.
#[test]
fn loom_handles_claim_and_reuse() {
    model(|| {
        let fc = Arc::new(FlatCombining::new(Acc(0)));
        let fc2 = Arc::clone(&fc);
        let other = thread::spawn(move || {
            let mut h = fc2.handle();
            h.apply(AccOp::Add(2))
        });
        let mine = {
            let mut h = fc.handle();
            h.apply(AccOp::Add(1))
        };
        let theirs = other.join().unwrap();
        assert_sequential_adds(&[(1, mine), (2, theirs)], 3);
        let records = fc.records();
        assert!((1..=2).contains(&records));
        // Both handles are gone: two new ones reuse their records.
        let (mut h1, mut h2) = (fc.handle(), fc.handle());
        assert_eq!(fc.records(), 2);
        assert_eq!(h1.apply(AccOp::Add(0)) + h2.apply(AccOp::Add(0)), 6);
    });
}

/// A thread publishes through its thread cache (forced: the main thread holds the
/// lock), gets its result, and exits: its cache entry's destructor abandons the
/// record, which the main thread then claims instead of allocating one.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_thread_exit_abandons_record() {
    model(|| {
        let fc = Arc::new(FlatCombining::new(Acc(0)));
        assert!(fc.try_lock());
        let fc2 = Arc::clone(&fc);
        let other = thread::spawn(move || fc2.apply(AccOp::Add(2)));
        let rec = wait_for_published(&fc);
        fc.combine_others();
        assert_eq!(other.join().unwrap(), 0);
        assert_eq!(fc.records(), 1);
        // Under loom a thread's locals are dropped after `join` returns (std drops them
        // before): wait for the abandonment.
        // SAFETY: records live as long as `fc`.
        while unsafe { (&*rec).claimed.load(Ordering::Acquire) } {
            thread::yield_now();
        }
        assert_eq!(fc.claim_record(), rec, "the exited thread's record is reused");
        assert_eq!(fc.records(), 1);
    });
}

/// A panicking op applied by another thread as combiner: the combiner is unaffected,
/// the lock is released, and the op's owner gets the panic.
#[test]
#[cfg(not(strata_loom))]
fn panic_in_combiner_reaches_the_owner() {
    let fc = Arc::new(FlatCombining::new(Acc(0)));
    assert!(fc.try_lock());
    let fc2 = Arc::clone(&fc);
    let waiter = std::thread::spawn(move || {
        catch_unwind(AssertUnwindSafe(|| fc2.apply(AccOp::Boom)))
            .map_err(|p| p.downcast_ref::<&str>().copied())
    });
    wait_for_published(&fc);
    let mine = fc.combine_own(AccOp::Add(1));
    assert_eq!(mine, 0);
    assert_eq!(waiter.join().unwrap(), Err(Some("boom")));
    assert_eq!(fc.lock.load(Ordering::Relaxed) & LOCKED, 0, "the lock is released");
    assert_eq!(fc.apply(AccOp::Add(1)), 1, "still usable");
    assert_eq!(fc.stats().ops, 3);
}

/// A panicking op of the lock holder itself (fast path): the panic reaches the caller
/// and the lock is released.
#[test]
#[cfg(not(strata_loom))]
fn panic_on_fast_path_releases_the_lock() {
    let fc = FlatCombining::new(Acc(5));
    let r = catch_unwind(AssertUnwindSafe(|| fc.apply(AccOp::Boom)));
    assert!(r.is_err());
    assert_eq!(fc.lock.load(Ordering::Relaxed) & LOCKED, 0);
    assert_eq!(fc.apply(AccOp::Add(1)), 5);
}

#[test]
#[cfg(not(strata_loom))]
fn deque_ops() {
    let fc = FlatCombining::new(VecDeque::new());
    assert!(fc.is_empty());
    fc.push_back(1u64);
    fc.push_back(2);
    fc.push_front(0);
    assert_eq!(fc.len(), 3);
    assert_eq!(fc.pop_front(), Some(0));
    assert_eq!(fc.pop_back(), Some(2));
    assert_eq!(fc.apply(DequeOp::Len), DequeOutput::Len(1));
    assert_eq!(fc.apply(DequeOp::PopFront), DequeOutput::Popped(Some(1)));
    assert_eq!(fc.pop_front(), None);
    assert_eq!(fc.pop_back(), None);
    assert_eq!(DequeOutput::<u64>::Pushed.into_popped(), None);
    assert_eq!(DequeOutput::<u64>::Pushed.as_len(), None);
    let stats = fc.stats();
    assert_eq!(stats.ops, 11);
    assert_eq!(stats.passes, 11, "uncontended: one op per pass");
    assert_eq!(stats.ops_per_pass(), 1.0);
    assert_eq!(CombiningStats::default().ops_per_pass(), 0.0);
}

#[test]
#[cfg(not(strata_loom))]
fn counter_wraps_and_reads() {
    let c = CombiningCounter::default();
    assert_eq!(c.add(u64::MAX), 0);
    assert_eq!(c.increment(), u64::MAX);
    assert_eq!(c.get(), 0);
    assert_eq!(c.add(7), 0);
    assert_eq!(c.get(), 7);
}

#[test]
#[cfg(not(strata_loom))]
fn get_mut_and_default() {
    let mut fc: FlatCombining<VecDeque<u64>> = FlatCombining::default();
    fc.push_back(3);
    fc.get_mut().push_back(4);
    assert_eq!(fc.get_mut().len(), 2);
    assert!(format!("{fc:?}").contains("FlatCombining"));
    assert!(format!("{:?}", fc.handle()).contains("Handle"));
}

#[cfg(not(strata_loom))]
/// Number of entries in the calling thread's record cache.
fn cache_len() -> usize {
    RECORDS.with(|c| c.borrow().len())
}

/// The thread cache: one record per instance, reused on the next call; at most
/// `THREAD_CACHE_ENTRIES` entries (evicted records are abandoned, so they are claimed
/// again); entries of dropped instances are purged and never dereferenced.
#[test]
#[cfg(not(strata_loom))]
fn thread_cache_bounds_and_purges() {
    let addr = |fc: &FlatCombining<Acc>| fc.with_thread_record(|r| ptr::from_ref(r) as usize);
    std::thread::spawn(move || {
        let a = FlatCombining::new(Acc(0));
        assert_eq!(addr(&a), addr(&a), "the cached record is reused");
        assert_eq!(a.records(), 1);
        assert_eq!(cache_len(), 1);
        let many: Vec<_> = (0..THREAD_CACHE_ENTRIES + 3)
            .map(|_| FlatCombining::new(Acc(0)))
            .collect();
        for fc in &many {
            addr(fc);
            assert!(cache_len() <= THREAD_CACHE_ENTRIES);
        }
        // `a`'s entry was evicted and its record abandoned: it is claimed again.
        addr(&a);
        assert_eq!(a.records(), 1);
        drop(many);
        // The next miss purges the entries of the dropped instances.
        let b = FlatCombining::new(Acc(0));
        addr(&b);
        assert_eq!(cache_len(), 2);
        // A nested use of the same instance (the entry is in use) gets another record.
        let (outer, inner) = b.with_thread_record(|r| (ptr::from_ref(r) as usize, addr(&b)));
        assert_ne!(outer, inner);
        assert_eq!(b.records(), 2);
    })
    .join()
    .unwrap();
}

/// A thread that exits abandons its cached records: another thread reuses them.
#[test]
#[cfg(not(strata_loom))]
fn exited_threads_records_are_reused() {
    let fc = Arc::new(FlatCombining::new(Acc(0)));
    for _ in 0..4 {
        let fc = Arc::clone(&fc);
        std::thread::spawn(move || fc.with_thread_record(|_| ()))
            .join()
            .unwrap();
    }
    assert_eq!(fc.records(), 1);
}
