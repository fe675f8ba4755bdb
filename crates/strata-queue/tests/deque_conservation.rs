//! Conservation under contention for the work-stealing deque and the injector: every
//! item pushed is taken exactly once (no loss, no duplicate) or, if still inside when
//! the container is dropped, dropped by it exactly once; no item is dropped while
//! still inside, and nothing is dropped twice.
//!
//! * `Worker` (FIFO and LIFO, over the default epoch scheme and hazard pointers): one
//!   owner thread pushes and pops, in phases that grow the deque well past its initial
//!   64 slots and then drain it, and also steals from its own deque (one item, and
//!   batches into a side worker of the other flavour, and into the deque itself). The
//!   other `threads - 1` threads are thieves: they steal single items and batches of
//!   every kind (`steal_batch`, `_with_limit`, `_and_pop`, `_with_limit_and_pop`) into
//!   their own workers (of alternating flavours) and drain those after each steal.
//!   Thieves stop when the owner is done, so the deque still holds items; the main
//!   thread steals half of them and drops the deque with the rest.
//! * `Injector`: at 1 thread one thread pushes and steals; otherwise half the threads
//!   push (and steal now and then), the others steal, single and in batches into their
//!   own workers, until the pushers are done.
//!
//! * Batch steals racing buffer replacement (`*_racing_buffer_replacement`): an owner
//!   that swings between 140 items and 8, so that its buffer keeps growing and
//!   shrinking and it re-pushes into positions it has just popped, while six thieves
//!   take batches; every value must come out exactly once. This is the regression test
//!   of a bug of commit 43331d0 (a LIFO batch steal claims its items one at a time and
//!   read them all from the buffer it loaded first, so a thief preempted between two
//!   claims took stale copies of items the owner had popped, and the items re-pushed
//!   there were lost): there it fails in nearly every run.
//!
//! Items own heap memory (a boxed payload derived from the tag, checked when the item is
//! taken, and poisoned when it is dropped) and count their creations and drops in a
//! per-test [`Tracker`]. When the container is dropped the tracker records which tags
//! are dropped, so the items left inside are known too: the taken tags and the tags
//! dropped with the container must be every tag exactly once.
//!
//! Order: from a FIFO worker, and from the injector, each consumer (the owner's pops,
//! each thief, the final drain) sees each producer's items in increasing order; that
//! holds for batches too, as they come out of the destination in steal order. For a
//! LIFO worker only conservation is checked (a batch stolen out of a LIFO worker comes
//! out newest first, as in crossbeam, so a thief does not see the items in push order).
//!
//! Thread counts 1, 2, 4 and 8, four rounds each (under miri 1 and 2 threads, one round,
//! much smaller sizes).

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::{iter, thread};

use strata_queue::deque::{Injector, Steal, Stealer, Worker};
use strata_reclaim::{Reclaim, epoch, hazard};

mod common;
use common::{Item, Tracker, producer, seq};

const THREADS: &[usize] = if cfg!(miri) { &[1, 2] } else { &[1, 2, 4, 8] };
/// Items the owner (or each injector pusher) pushes.
const OPS: usize = if cfg!(miri) { 80 } else { 50_000 };
/// Rounds per thread count.
const ROUNDS: usize = if cfg!(miri) { 1 } else { 4 };
/// The owner's phases: push-only runs of these lengths (cycled), each followed by a
/// draining run as long, with two pops per push.
/// (Under miri the second push-only run takes the deque past its initial 64 slots.)
const PHASES: &[usize] = if cfg!(miri) {
    &[4, 66]
} else {
    &[16, 300, 40, 1_000]
};
/// The owner and the pushers yield every this many pushes, so that on a machine with
/// fewer cores than threads the thieves get to run while there is something to steal.
const YIELD_EVERY: usize = 64;

/// Pops everything in `w` into `log`.
fn drain_into<R: Reclaim>(w: &Worker<Item, R>, log: &mut Vec<u64>) {
    while let Some(v) = w.pop() {
        log.push(v.consume());
    }
}

/// One of the five ways to steal, chosen by `k`: the result goes to `log`, and so does
/// whatever the steal moved into `own` (drained at once). Returns the outcome.
fn steal_one_way<R: Reclaim>(
    s: &Stealer<Item, R>,
    own: &Worker<Item, R>,
    k: usize,
    log: &mut Vec<u64>,
) -> Steal<()> {
    let got = match k % 5 {
        0 => s.steal().map_none(),
        1 => s.steal_batch(own).map_none(),
        2 => s.steal_batch_with_limit(own, 1 + k % 7).map_none(),
        3 => s.steal_batch_and_pop(own).map_none(),
        _ => s.steal_batch_with_limit_and_pop(own, 1 + k % 5).map_none(),
    };
    let outcome = match got {
        Steal::Success(Some(v)) => {
            log.push(v.consume());
            Steal::Success(())
        }
        Steal::Success(None) => Steal::Success(()),
        Steal::Empty => Steal::Empty,
        Steal::Retry => Steal::Retry,
    };
    drain_into(own, log);
    outcome
}

/// The batch steals without a popped item, as `Steal<Option<Item>>`.
trait MapNone {
    fn map_none(self) -> Steal<Option<Item>>;
}

impl MapNone for Steal<()> {
    fn map_none(self) -> Steal<Option<Item>> {
        match self {
            Steal::Success(()) => Steal::Success(None),
            Steal::Empty => Steal::Empty,
            Steal::Retry => Steal::Retry,
        }
    }
}

impl MapNone for Steal<Item> {
    fn map_none(self) -> Steal<Option<Item>> {
        match self {
            Steal::Success(v) => Steal::Success(Some(v)),
            Steal::Empty => Steal::Empty,
            Steal::Retry => Steal::Retry,
        }
    }
}

/// Answers of a backed-off loop: what a thread does after a failed steal.
fn back_off(outcome: &Steal<()>) {
    match outcome {
        Steal::Success(()) => {}
        Steal::Retry => std::hint::spin_loop(),
        // Let the producer run (the machine may have fewer cores than threads).
        Steal::Empty => thread::yield_now(),
    }
}

/// Checks that `taken` (every consumer's log) and `left` (the tags dropped with the
/// container) hold every tag of `producers × per_producer` exactly once, and, if
/// `fifo`, that each log sees each producer's items in increasing order.
#[track_caller]
fn check_exactly_once(
    what: &str,
    producers: usize,
    per_producer: usize,
    logs: &[(String, Vec<u64>)],
    left: &[u64],
    fifo: bool,
) {
    let mut seen = vec![0u32; producers * per_producer];
    for &tag in logs.iter().flat_map(|(_, l)| l).chain(left) {
        let (p, s) = (producer(tag), seq(tag));
        assert!(
            p < producers && s < per_producer,
            "{what}: an item that was never pushed: {tag:#x}"
        );
        seen[p * per_producer + s] += 1;
    }
    let lost = seen.iter().filter(|&&n| n == 0).count();
    let dup = seen.iter().filter(|&&n| n > 1).count();
    if lost + dup > 0 {
        let first = seen.iter().position(|&n| n != 1).unwrap();
        panic!(
            "{what}: {lost} items lost, {dup} taken more than once (first: producer {}, \
             item {}, seen {} times)",
            first / per_producer,
            first % per_producer,
            seen[first]
        );
    }
    if !fifo {
        return;
    }
    for (who, log) in logs {
        let mut last: Vec<Option<usize>> = vec![None; producers];
        for &tag in log {
            let (p, s) = (producer(tag), seq(tag));
            if let Some(prev) = last[p] {
                assert!(
                    prev < s,
                    "{what}: {who} took item {s} of producer {p} after its item {prev}: not FIFO"
                );
            }
            last[p] = Some(s);
        }
    }
}

// ---------------------------------------------------------------------------------
// Worker and stealers.

/// The owner: pushes `OPS` items in phases (push-only, then two pops per push), and
/// steals from its own deque now and then. Returns its log and the worker.
fn owner<R: Reclaim>(
    w: Worker<Item, R>,
    side: Worker<Item, R>,
    tracker: &'static Tracker,
    start: &Barrier,
) -> (Vec<u64>, Worker<Item, R>) {
    let s = w.stealer();
    let mut log = Vec::with_capacity(OPS);
    start.wait();
    let mut i = 0;
    let mut phase = 0;
    while i < OPS {
        let len = PHASES[phase % PHASES.len()];
        phase += 1;
        // Push only: the deque grows.
        for _ in 0..len.min(OPS - i) {
            w.push(Item::new(tracker, 0, i));
            i += 1;
            if i.is_multiple_of(YIELD_EVERY) {
                thread::yield_now();
            }
        }
        // Two pops (or steals) per push: it drains.
        for _ in 0..len.min(OPS - i) {
            w.push(Item::new(tracker, 0, i));
            i += 1;
            if i.is_multiple_of(YIELD_EVERY) {
                thread::yield_now();
            }
            for k in 0..2 {
                match (i + k) % 11 {
                    // Steal from one's own deque.
                    3 => {
                        if let Steal::Success(v) = s.steal() {
                            log.push(v.consume());
                        }
                    }
                    // A batch into the side worker (the other flavour), drained at once:
                    // its log is the owner's (in steal order).
                    7 => {
                        let _ = steal_one_way(&s, &side, i, &mut log);
                    }
                    // Into the deque itself: moves nothing, `_and_pop` pops.
                    9 => {
                        if let Steal::Success(v) = s.steal_batch_and_pop(&w) {
                            log.push(v.consume());
                        }
                        let _ = s.steal_batch(&w);
                    }
                    _ => {
                        if let Some(v) = w.pop() {
                            log.push(v.consume());
                        }
                    }
                }
            }
        }
    }
    (log, w)
}

/// A thief: steals in every way into its own worker until the owner is done.
fn thief<R: Reclaim>(
    s: Stealer<Item, R>,
    own: Worker<Item, R>,
    done: &AtomicBool,
    start: &Barrier,
) -> Vec<u64> {
    let mut log = Vec::new();
    start.wait();
    let mut k = 0;
    while !done.load(SeqCst) {
        k += 1;
        let outcome = steal_one_way(&s, &own, k, &mut log);
        back_off(&outcome);
    }
    assert!(own.is_empty());
    log
}

fn run_worker<R: Reclaim>(
    name: &str,
    lifo: bool,
    tracker: &'static Tracker,
    make: impl Fn(bool) -> Worker<Item, R>,
) {
    for (&threads, round) in THREADS
        .iter()
        .flat_map(|t| iter::repeat_n(t, ROUNDS).zip(0..))
    {
        let what = format!("{name}, {threads} threads, round {round}");
        tracker.reset();
        let w = make(lifo);
        let s = w.stealer();
        let side = make(!lifo);
        let start = Barrier::new(threads);
        let done = AtomicBool::new(false);
        let (owner_log, w, thief_logs) = thread::scope(|scope| {
            let thieves: Vec<_> = (1..threads)
                .map(|t| {
                    let (s, own) = (s.clone(), make(t.is_multiple_of(2)));
                    let (done, start) = (&done, &start);
                    scope.spawn(move || thief(s, own, done, start))
                })
                .collect();
            let (owner_log, w) = owner(w, side, tracker, &start);
            done.store(true, SeqCst);
            let logs: Vec<Vec<u64>> = thieves.into_iter().map(|h| h.join().unwrap()).collect();
            (owner_log, w, logs)
        });
        let mut logs: Vec<(String, Vec<u64>)> = vec![("the owner".into(), owner_log)];
        logs.extend(
            thief_logs
                .into_iter()
                .enumerate()
                .map(|(t, l)| (format!("thief {}", t + 1), l)),
        );
        let taken: usize = logs.iter().map(|(_, l)| l.len()).sum();
        assert_eq!(
            tracker.dropped(),
            taken,
            "{what}: items were dropped while still in the deque (or never)"
        );
        let left = OPS - taken;
        assert_eq!(w.len(), left, "{what}: Worker::len");
        assert_eq!(s.len(), left, "{what}: Stealer::len");
        assert_eq!(w.is_empty(), left == 0, "{what}: Worker::is_empty");
        // Steal half of what is left (one thread: never Retry), drop the rest with the
        // deque.
        let mut last = Vec::new();
        for _ in 0..left / 2 {
            match s.steal() {
                Steal::Success(v) => last.push(v.consume()),
                other => panic!("{what}: {other:?} with items left"),
            }
        }
        assert_eq!(w.len(), left - left / 2, "{what}: Worker::len");
        logs.push(("the final steals".into(), last));
        let dropped_inside = tracker.drops_of(|| {
            drop(w);
            drop(s);
        });
        assert_eq!(
            dropped_inside.len(),
            left - left / 2,
            "{what}: items dropped with the deque"
        );
        check_exactly_once(&what, 1, OPS, &logs, &dropped_inside, !lifo);
        tracker.assert_balanced(&what, OPS);
    }
}

#[test]
fn fifo_worker_conserves_items() {
    static T: Tracker = Tracker::new();
    run_worker("FIFO Worker<Epoch>", false, &T, |lifo| {
        if lifo {
            Worker::new_lifo()
        } else {
            Worker::new_fifo()
        }
    });
}

#[test]
fn lifo_worker_conserves_items() {
    static T: Tracker = Tracker::new();
    run_worker("LIFO Worker<Epoch>", true, &T, |lifo| {
        if lifo {
            Worker::new_lifo()
        } else {
            Worker::new_fifo()
        }
    });
}

#[test]
fn fifo_worker_hazard_conserves_items() {
    static T: Tracker = Tracker::new();
    run_worker("FIFO Worker<Hazard>", false, &T, |lifo| {
        if lifo {
            Worker::new_lifo_in(hazard::Hazard)
        } else {
            Worker::new_fifo_in(hazard::Hazard)
        }
    });
}

#[test]
fn lifo_worker_hazard_conserves_items() {
    static T: Tracker = Tracker::new();
    run_worker("LIFO Worker<Hazard>", true, &T, |lifo| {
        if lifo {
            Worker::new_lifo_in(hazard::Hazard)
        } else {
            Worker::new_fifo_in(hazard::Hazard)
        }
    });
}

#[test]
fn lifo_worker_epoch_domain_conserves_items() {
    static T: Tracker = Tracker::new();
    let domain = epoch::Domain::new();
    run_worker("LIFO Worker<epoch::Domain>", true, &T, |lifo| {
        if lifo {
            Worker::new_lifo_in(domain.clone())
        } else {
            Worker::new_fifo_in(domain.clone())
        }
    });
}

// ---------------------------------------------------------------------------------
// Injector.

/// A pusher: pushes `OPS` items tagged `p`, stealing one item every 8 pushes.
fn pusher(
    q: &Injector<Item>,
    p: usize,
    tracker: &'static Tracker,
    pushers_left: &AtomicUsize,
    start: &Barrier,
) -> Vec<u64> {
    let own = if p.is_multiple_of(2) {
        Worker::new_fifo()
    } else {
        Worker::new_lifo()
    };
    let mut log = Vec::new();
    start.wait();
    for i in 0..OPS {
        q.push(Item::new(tracker, p, i));
        if i.is_multiple_of(YIELD_EVERY) {
            thread::yield_now();
        }
        if i % 8 == 7 {
            let _ = injector_steal_one_way(q, &own, i / 8, &mut log);
        }
    }
    pushers_left.fetch_sub(1, SeqCst);
    log
}

/// One of the five ways to take from the injector, chosen by `k`.
fn injector_steal_one_way(
    q: &Injector<Item>,
    own: &Worker<Item>,
    k: usize,
    log: &mut Vec<u64>,
) -> Steal<()> {
    let got = match k % 5 {
        0 => q.steal().map_none(),
        1 => q.steal_batch(own).map_none(),
        2 => q.steal_batch_with_limit(own, 1 + k % 9).map_none(),
        3 => q.steal_batch_and_pop(own).map_none(),
        _ => q.steal_batch_with_limit_and_pop(own, 1 + k % 6).map_none(),
    };
    let outcome = match got {
        Steal::Success(Some(v)) => {
            log.push(v.consume());
            Steal::Success(())
        }
        Steal::Success(None) => Steal::Success(()),
        Steal::Empty => Steal::Empty,
        Steal::Retry => Steal::Retry,
    };
    drain_into(own, log);
    outcome
}

fn stealer(q: &Injector<Item>, t: usize, pushers_left: &AtomicUsize, start: &Barrier) -> Vec<u64> {
    let own = if t.is_multiple_of(2) {
        Worker::new_lifo()
    } else {
        Worker::new_fifo()
    };
    let mut log = Vec::new();
    start.wait();
    let mut k = t;
    while pushers_left.load(SeqCst) > 0 {
        k += 1;
        let outcome = injector_steal_one_way(q, &own, k, &mut log);
        back_off(&outcome);
    }
    log
}

#[test]
fn injector_conserves_items() {
    static T: Tracker = Tracker::new();
    for (&threads, round) in THREADS
        .iter()
        .flat_map(|t| iter::repeat_n(t, ROUNDS).zip(0..))
    {
        let what = format!("Injector, {threads} threads, round {round}");
        T.reset();
        let q = Injector::new();
        let pushers = threads.div_ceil(2);
        let stealers = threads - pushers;
        let pushers_left = AtomicUsize::new(pushers);
        let start = Barrier::new(threads);
        let mut logs: Vec<(String, Vec<u64>)> = thread::scope(|scope| {
            let hp: Vec<_> = (0..pushers)
                .map(|p| {
                    let (q, left, start) = (&q, &pushers_left, &start);
                    scope.spawn(move || pusher(q, p, &T, left, start))
                })
                .collect();
            let hs: Vec<_> = (0..stealers)
                .map(|t| {
                    let (q, left, start) = (&q, &pushers_left, &start);
                    scope.spawn(move || stealer(q, t, left, start))
                })
                .collect();
            hp.into_iter()
                .enumerate()
                .map(|(p, h)| (format!("pusher {p}"), h.join().unwrap()))
                .chain(
                    hs.into_iter()
                        .enumerate()
                        .map(|(t, h)| (format!("stealer {t}"), h.join().unwrap())),
                )
                .collect()
        });
        let total = pushers * OPS;
        let taken: usize = logs.iter().map(|(_, l)| l.len()).sum();
        assert_eq!(
            T.dropped(),
            taken,
            "{what}: items were dropped while still in the injector (or never)"
        );
        let left = total - taken;
        assert_eq!(q.len(), left, "{what}: len");
        assert_eq!(q.is_empty(), left == 0, "{what}: is_empty");
        // Take half of what is left, drop the rest with the injector.
        let mut last = Vec::new();
        for _ in 0..left / 2 {
            match q.steal() {
                Steal::Success(v) => last.push(v.consume()),
                other => panic!("{what}: {other:?} with items left"),
            }
        }
        assert_eq!(q.len(), left - left / 2, "{what}: len");
        logs.push(("the final steals".into(), last));
        let dropped_inside = T.drops_of(|| drop(q));
        assert_eq!(
            dropped_inside.len(),
            left - left / 2,
            "{what}: items dropped with the injector"
        );
        check_exactly_once(&what, pushers, OPS, &logs, &dropped_inside, true);
        T.assert_balanced(&what, total);
    }
}

/// Dropping a deque (and an injector) right after use, with no thread left: every item
/// dropped once, at many lengths (around the buffer and block sizes).
#[test]
fn containers_dropped_with_items_drop_each_once() {
    static T: Tracker = Tracker::new();
    let lens: &[usize] = if cfg!(miri) {
        &[0, 1, 63, 64, 65, 130]
    } else {
        &[0, 1, 2, 62, 63, 64, 65, 126, 127, 128, 129, 500, 4_097]
    };
    for &len in lens {
        for lifo in [false, true] {
            T.reset();
            let w = if lifo {
                Worker::new_lifo()
            } else {
                Worker::new_fifo()
            };
            // Move the positions on first, so the held items wrap around the buffer.
            for i in 0..37 {
                w.push(Item::new(&T, 1, i));
                let _ = w.stealer().steal().success().map(Item::consume);
            }
            for i in 0..len {
                w.push(Item::new(&T, 0, i));
            }
            let s = w.stealer();
            let dropped = T.drops_of(|| {
                drop(w);
                // The stealer keeps the deque alive: nothing dropped yet.
                assert_eq!(T.logged_drops(), 0);
                drop(s);
            });
            let what = format!("{} worker of {len}", if lifo { "LIFO" } else { "FIFO" });
            let mut sorted = dropped.clone();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..len as u64).collect::<Vec<_>>(), "{what}");
            T.assert_balanced(&what, len + 37);
        }
        T.reset();
        let q = Injector::new();
        for i in 0..37 {
            q.push(Item::new(&T, 1, i));
            let _ = q.steal().success().map(Item::consume);
        }
        for i in 0..len {
            q.push(Item::new(&T, 0, i));
        }
        let mut dropped = T.drops_of(|| drop(q));
        dropped.sort_unstable();
        assert_eq!(
            dropped,
            (0..len as u64).collect::<Vec<_>>(),
            "injector of {len}"
        );
        T.assert_balanced(&format!("injector of {len}"), len + 37);
    }
}

/// The harness can fail: a duplicated item, a lost one, and an out-of-order log are
/// each reported.
#[test]
fn the_checks_catch_loss_duplicates_and_disorder() {
    let fails = |logs: Vec<(String, Vec<u64>)>, left: Vec<u64>, fifo: bool| {
        std::panic::catch_unwind(|| check_exactly_once("control", 1, 4, &logs, &left, fifo))
            .is_err()
    };
    let ok = vec![("a".to_string(), vec![0, 1]), ("b".to_string(), vec![2])];
    assert!(!fails(ok.clone(), vec![3], true));
    assert!(fails(ok.clone(), vec![], true), "a lost item passed");
    assert!(fails(ok.clone(), vec![3, 2], true), "a duplicate passed");
    let disordered = vec![("a".to_string(), vec![1, 0]), ("b".to_string(), vec![2])];
    assert!(fails(disordered.clone(), vec![3], true), "disorder passed");
    assert!(!fails(disordered, vec![3], false));
}

// ---------------------------------------------------------------------------------
// Batch steals racing buffer replacement.

/// A LIFO owner swings between a high and a low level (`HIGH` items, then `LOW`), so
/// that its buffer keeps growing past 64 slots and shrinking back, and re-pushes into
/// positions it has just popped; thieves meanwhile take batches (of up to 32) out of
/// it. A batch steal out of a LIFO worker claims its items one at a time: a thief
/// paused between two claims while the owner pops above it, replaces the buffer, and
/// pushes new items into those positions must take the new items (from the new
/// buffer), not the popped ones (from the buffer it started with). Plain `u64` items,
/// so that a stale copy shows as a duplicate rather than a double free.
///
/// Runs for a fixed time (the race needs a thief to be preempted in a window of a few
/// hundred nanoseconds), with more thieves than cores on small machines.
fn batch_steals_racing_resizes(lifo: bool) {
    use std::time::{Duration, Instant};
    const HIGH: usize = if cfg!(miri) { 70 } else { 140 };
    const LOW: usize = 8;
    let duration = if cfg!(miri) {
        Duration::ZERO
    } else {
        Duration::from_millis(1_200)
    };
    let thieves = if cfg!(miri) { 1 } else { 6 };
    let w: Worker<u64> = if lifo {
        Worker::new_lifo()
    } else {
        Worker::new_fifo()
    };
    let s = w.stealer();
    let done = AtomicBool::new(false);
    let start = Barrier::new(thieves + 1);
    let (mut logs, pushed) = thread::scope(|scope| {
        let handles: Vec<_> = (0..thieves)
            .map(|t| {
                let (s, done, start) = (s.clone(), &done, &start);
                scope.spawn(move || {
                    let own = if t % 2 == 0 {
                        Worker::new_fifo()
                    } else {
                        Worker::new_lifo()
                    };
                    let mut log = Vec::new();
                    start.wait();
                    let mut k = 0usize;
                    while !done.load(SeqCst) {
                        k += 1;
                        if k.is_multiple_of(2) {
                            let _ = s.steal_batch(&own);
                        } else if let Steal::Success(v) = s.steal_batch_and_pop(&own) {
                            log.push(v);
                        }
                        while let Some(v) = own.pop() {
                            log.push(v);
                        }
                    }
                    log
                })
            })
            .collect();
        let mut log = Vec::new();
        let mut next = 0u64;
        start.wait();
        let begin = Instant::now();
        let mut cycles = 0;
        while cycles < 2 || begin.elapsed() < duration {
            cycles += 1;
            while w.len() < HIGH {
                w.push(next);
                next += 1;
            }
            while w.len() > LOW {
                match w.pop() {
                    Some(v) => log.push(v),
                    None => break,
                }
            }
        }
        done.store(true, SeqCst);
        let mut logs: Vec<Vec<u64>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        while let Some(v) = w.pop() {
            log.push(v);
        }
        logs.push(log);
        (logs, next)
    });
    assert!(w.is_empty() && s.steal().is_empty());
    let mut seen = vec![0u32; pushed as usize];
    for &v in logs.iter().flatten() {
        assert!(v < pushed, "a value that was never pushed: {v}");
        seen[v as usize] += 1;
    }
    let dup: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] > 1).collect();
    let lost: Vec<usize> = (0..seen.len()).filter(|&i| seen[i] == 0).collect();
    logs.clear();
    assert!(
        dup.is_empty() && lost.is_empty(),
        "{} worker: of {pushed} values, {} taken twice (first {:?}) and {} lost (first {:?})",
        if lifo { "LIFO" } else { "FIFO" },
        dup.len(),
        &dup[..dup.len().min(5)],
        lost.len(),
        &lost[..lost.len().min(5)],
    );
}

#[test]
fn lifo_batch_steals_racing_buffer_replacement() {
    batch_steals_racing_resizes(true);
}

#[test]
fn fifo_batch_steals_racing_buffer_replacement() {
    batch_steals_racing_resizes(false);
}
