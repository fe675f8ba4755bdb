//! API compatibility of `strata_queue::deque` with crossbeam-deque 0.8: pop and steal
//! orders, the batch steals (how many items they take and in which order the
//! destination pops them), stealing into the worker's own deque, the `Injector`
//! (across its 63-slot blocks), the `Steal` helpers, `Debug`, growth and shrinking,
//! `len` and `is_empty`.
//!
//! Where crossbeam's answer is specified by its code rather than its docs (batch sizes,
//! the order of a batch in the destination), the expected value is what crossbeam-deque
//! 0.8.8 does, and most tests also run crossbeam side by side and compare. The last
//! tests are differential: long pseudo-random single-threaded sequences of operations
//! (where `Steal::Retry` cannot happen) run against both crates, comparing every result
//! and every length after every operation.
//!
//! The documented differences are honoured: a `limit` of 0 is treated as 1 (crossbeam
//! panics), so the differential tests use limits of at least 1.
//!
//! The order of a batch stolen out of a LIFO worker (crossbeam's: the destination pops
//! it newest first, and `*_and_pop` returns the newest of the batch) is checked by
//! `batches_from_a_lifo_source_keep_crossbeams_order` and by the differential test;
//! both failed on commit 43331d0, whose batches came out oldest first.
//!
//! Under miri the sizes shrink, and the tests that need a crossbeam `Worker` skip its
//! side (or are ignored): crossbeam-epoch casts integers to pointers, which
//! `-Zmiri-strict-provenance` rejects.

use std::fmt::Debug;

use crossbeam_deque as cb;
use strata_queue::deque::{Injector, Steal, Stealer, Worker};
use strata_reclaim::{epoch, hazard};

/// Runs under miri too: the sizes shrink there.
const MIRI: bool = cfg!(miri);

/// crossbeam's `Steal` as Strata's, to compare results.
fn from_cb<T>(s: cb::Steal<T>) -> Steal<T> {
    match s {
        cb::Steal::Empty => Steal::Empty,
        cb::Steal::Success(v) => Steal::Success(v),
        cb::Steal::Retry => Steal::Retry,
    }
}

/// A `Steal<u64>` that shows its value when printed (`Steal`'s `Debug`, like
/// crossbeam's, prints `Success(..)`), for the failure messages.
#[derive(Debug, PartialEq, Eq)]
enum Shown {
    Empty,
    Success(u64),
    Retry,
}

fn shown(s: Steal<u64>) -> Shown {
    match s {
        Steal::Empty => Shown::Empty,
        Steal::Success(v) => Shown::Success(v),
        Steal::Retry => Shown::Retry,
    }
}

/// Pops everything `w` holds, in pop order.
fn drain<T, R: strata_reclaim::Reclaim>(w: &Worker<T, R>) -> Vec<T> {
    std::iter::from_fn(|| w.pop()).collect()
}

fn drain_cb<T>(w: &cb::Worker<T>) -> Vec<T> {
    std::iter::from_fn(|| w.pop()).collect()
}

fn worker(lifo: bool) -> Worker<u64> {
    if lifo {
        Worker::new_lifo()
    } else {
        Worker::new_fifo()
    }
}

fn cb_worker(lifo: bool) -> cb::Worker<u64> {
    if lifo {
        cb::Worker::new_lifo()
    } else {
        cb::Worker::new_fifo()
    }
}

fn flavor(lifo: bool) -> &'static str {
    if lifo { "LIFO" } else { "FIFO" }
}

// ---------------------------------------------------------------------------------
// Pop and steal order, len and is_empty.

#[test]
fn fifo_worker_pops_oldest_first() {
    let w = Worker::new_fifo();
    assert!(w.is_empty());
    assert_eq!(w.len(), 0);
    assert_eq!(w.pop(), None);
    for i in 1..=5 {
        w.push(i);
        assert_eq!(w.len(), i);
        assert!(!w.is_empty());
    }
    assert_eq!(drain(&w), vec![1, 2, 3, 4, 5]);
    assert!(w.is_empty());
    assert_eq!(w.pop(), None);
}

#[test]
fn lifo_worker_pops_newest_first() {
    let w = Worker::new_lifo();
    assert_eq!(w.pop(), None);
    for i in 1..=5 {
        w.push(i);
    }
    assert_eq!(w.pop(), Some(5));
    w.push(6);
    assert_eq!(drain(&w), vec![6, 4, 3, 2, 1]);
    assert_eq!(w.pop(), None);
    assert!(w.is_empty());
}

#[test]
fn stealers_take_the_oldest_from_either_flavour() {
    for lifo in [false, true] {
        let w = worker(lifo);
        let s = w.stealer();
        assert_eq!(s.steal(), Steal::Empty, "{}", flavor(lifo));
        for i in 1..=4 {
            w.push(i);
        }
        let s2 = s.clone();
        assert_eq!(s.steal(), Steal::Success(1), "{}", flavor(lifo));
        assert_eq!(s2.steal(), Steal::Success(2), "{}", flavor(lifo));
        // The owner takes its end, the thieves the other.
        let expected_pop = if lifo { 4 } else { 3 };
        assert_eq!(w.pop(), Some(expected_pop), "{}", flavor(lifo));
        let last = if lifo { 3 } else { 4 };
        assert_eq!(s.steal(), Steal::Success(last), "{}", flavor(lifo));
        assert_eq!(s.steal(), Steal::Empty, "{}", flavor(lifo));
        assert_eq!(w.pop(), None, "{}", flavor(lifo));
    }
}

#[test]
fn len_and_is_empty_of_worker_and_stealer_agree() {
    for lifo in [false, true] {
        let w = worker(lifo);
        let s = w.stealer();
        let mut n = 0usize;
        let mut next = 0u64;
        let check = |n: usize| {
            assert_eq!(w.len(), n, "{} worker len", flavor(lifo));
            assert_eq!(s.len(), n, "{} stealer len", flavor(lifo));
            assert_eq!(w.is_empty(), n == 0, "{} worker is_empty", flavor(lifo));
            assert_eq!(s.is_empty(), n == 0, "{} stealer is_empty", flavor(lifo));
        };
        check(0);
        // Grow past the initial 64 slots and come back, mixing pops and steals.
        for round in 0..if MIRI { 1 } else { 3 } {
            for _ in 0..(if MIRI { 70 } else { 100 } + 37 * round) {
                w.push(next);
                next += 1;
                n += 1;
                check(n);
            }
            while n > 0 {
                if n.is_multiple_of(3) {
                    assert!(s.steal().is_success());
                } else {
                    assert!(w.pop().is_some());
                }
                n -= 1;
                check(n);
            }
            assert!(w.pop().is_none());
            assert!(s.steal().is_empty());
            check(0);
        }
    }
}

#[test]
fn growth_past_64_and_shrinking_keep_every_item_in_order() {
    let n: u64 = if MIRI { 100 } else { 5_000 };
    for lifo in [false, true] {
        let w = worker(lifo);
        let s = w.stealer();
        for cycle in 0..if MIRI { 1 } else { 3 } {
            for i in 0..n {
                w.push(i);
            }
            assert_eq!(w.len(), n as usize);
            // The thieves take the oldest quarter, the owner the rest (the buffer shrinks
            // as it empties).
            for i in 0..n / 4 {
                assert_eq!(s.steal(), Steal::Success(i), "cycle {cycle}");
            }
            let rest = drain(&w);
            let expected: Vec<u64> = if lifo {
                (n / 4..n).rev().collect()
            } else {
                (n / 4..n).collect()
            };
            assert_eq!(rest, expected, "{} cycle {cycle}", flavor(lifo));
            assert!(w.is_empty() && s.is_empty());
        }
        // Grow again after the shrink, with a steal between every push.
        for i in 0..n {
            w.push(2 * i);
            w.push(2 * i + 1);
            assert_eq!(s.steal(), Steal::Success(i));
        }
        assert_eq!(w.len(), n as usize);
        let mut rest = drain(&w);
        if lifo {
            rest.reverse();
        }
        assert_eq!(rest, (n..2 * n).collect::<Vec<_>>());
    }
}

#[test]
fn other_reclamation_schemes_work_alike() {
    fn exercise<R: strata_reclaim::Reclaim>(w: Worker<u64, R>, dest: Worker<u64, R>) {
        // (`Stealer::steal_batch_and_pop`'s choice of item is checked elsewhere.)
        // More than 64 (the buffer grows), and enough for a full batch of 32.
        let n = if MIRI { 80 } else { 200 };
        let s = w.stealer();
        for i in 0..n {
            w.push(i);
        }
        assert_eq!(s.steal(), Steal::Success(0));
        // A batch of 32 (1..=32); `_and_pop` returns the oldest out of a FIFO worker,
        // the newest out of a LIFO one.
        let popped = s.steal_batch_and_pop(&dest).success();
        assert!(popped == Some(1) || popped == Some(32), "{popped:?}");
        assert_eq!(dest.len(), 31);
        assert_eq!(s.steal_batch_with_limit(&dest, 5), Steal::Success(()));
        assert_eq!(dest.len(), 36);
        assert_eq!(w.len(), n as usize - 2 - 31 - 5);
        let mut got = drain(&w);
        got.extend(drain(&dest));
        got.extend(popped);
        got.sort_unstable();
        assert_eq!(got, (1..n).collect::<Vec<_>>());
    }
    exercise(
        Worker::new_lifo_in(hazard::Hazard),
        Worker::new_fifo_in(hazard::Hazard),
    );
    exercise(
        Worker::new_fifo_in(epoch::Epoch),
        Worker::new_lifo_in(epoch::Epoch),
    );
    let d = epoch::Domain::new();
    exercise(Worker::new_fifo_in(d.clone()), Worker::new_fifo_in(d));
    // Each worker with its own hazard domain.
    exercise(
        Worker::new_lifo_in(hazard::Domain::new()),
        Worker::new_lifo_in(hazard::Domain::new()),
    );
}

// ---------------------------------------------------------------------------------
// Batch steals: counts.

/// crossbeam's batch size for `steal_batch_with_limit` on `len` items.
fn batch_count(len: usize, limit: usize) -> usize {
    len.div_ceil(2).min(limit)
}

/// crossbeam's total for `steal_batch_with_limit_and_pop` (the popped item included).
fn batch_and_pop_count(len: usize, limit: usize) -> usize {
    if len == 0 {
        0
    } else {
        ((len - 1) / 2).min(limit - 1) + 1
    }
}

/// One batch steal of `kind` from a worker holding `0..len` into an empty one: the
/// answer, what the destination pops (in order), and what the source still holds
/// (sorted), with the lengths checked on the way.
fn batch_case<A: Api>(
    src_lifo: bool,
    dst_lifo: bool,
    len: usize,
    kind: Batch,
) -> (Shown, Vec<u64>, Vec<u64>) {
    let (w, d) = (A::worker(src_lifo), A::worker(dst_lifo));
    for i in 0..len as u64 {
        A::push(&w, i);
    }
    let s = A::stealer(&w);
    let got = shown(A::batch(&s, &d, kind));
    let (d_len, w_len) = (A::len(&d), A::len(&w));
    let moved = A::drain(&d);
    let mut rest = A::drain(&w);
    rest.sort_unstable();
    assert_eq!(d_len, moved.len(), "{}: the destination's len", A::NAME);
    assert_eq!(w_len, rest.len(), "{}: the source's len", A::NAME);
    (got, moved, rest)
}

/// The four batch steals take about half of the items, at most the limit (32 for the
/// plain ones), the oldest ones; the destination pops them, and `*_and_pop` returns
/// one of them, in the source's order (oldest first out of a FIFO worker, newest first
/// out of a LIFO one, as crossbeam does). Expected values from crossbeam's formulas,
/// and checked against crossbeam itself (except under miri).
#[test]
fn batch_steals_take_half_up_to_the_limit() {
    let limits: &[usize] = if MIRI {
        &[1, usize::MAX]
    } else {
        &[1, 2, 3, 7, 32, 33, 100, usize::MAX]
    };
    let lens: Vec<usize> = if MIRI {
        vec![0, 1, 5]
    } else {
        (0..=80).collect()
    };
    let flavours: &[(bool, bool)] = if MIRI {
        &[(false, true), (true, false)]
    } else {
        &[(false, false), (false, true), (true, false), (true, true)]
    };
    for &(src_lifo, dst_lifo) in flavours {
        for &len in &lens {
            for &limit in limits {
                for kind in [
                    Batch::Plain,
                    Batch::Limit(limit),
                    Batch::AndPop,
                    Batch::LimitAndPop(limit),
                ] {
                    let what = format!(
                        "{kind:?}: {} -> {}, {len} items",
                        flavor(src_lifo),
                        flavor(dst_lifo)
                    );
                    let (total, pop) = match kind {
                        Batch::Plain => (batch_count(len, 32), false),
                        Batch::Limit(l) => (batch_count(len, l), false),
                        Batch::AndPop => (batch_and_pop_count(len, 32), true),
                        Batch::LimitAndPop(l) => (batch_and_pop_count(len, l), true),
                    };
                    // The batch is the oldest `total` items, in the source's order.
                    let mut batch: Vec<u64> = (0..total as u64).collect();
                    if src_lifo {
                        batch.reverse();
                    }
                    let answer = match (total, pop) {
                        (0, _) => Shown::Empty,
                        (_, true) => Shown::Success(batch.remove(0)),
                        (_, false) => MOVED,
                    };
                    let expected = (answer, batch, (total as u64..len as u64).collect());
                    if !MIRI {
                        let cb = batch_case::<Crossbeam>(src_lifo, dst_lifo, len, kind);
                        assert_eq!(cb, expected, "crossbeam, {what}");
                    }
                    let got = batch_case::<Strata>(src_lifo, dst_lifo, len, kind);
                    assert_eq!(got, expected, "{what}");
                }
            }
        }
    }
}

/// A batch steal's `Steal<()>` as a `Steal<u64>`, with `v` for the success.
trait MapTo {
    fn map_to(self, v: u64) -> Steal<u64>;
}

impl MapTo for Steal<()> {
    fn map_to(self, v: u64) -> Steal<u64> {
        match self {
            Steal::Empty => Steal::Empty,
            Steal::Success(()) => Steal::Success(v),
            Steal::Retry => Steal::Retry,
        }
    }
}

/// The documented difference: a limit of 0 counts as 1 (crossbeam panics).
#[test]
fn a_zero_limit_counts_as_one() {
    for lifo in [false, true] {
        let w = worker(lifo);
        let d = Worker::new_fifo();
        for i in 0..10 {
            w.push(i);
        }
        let s = w.stealer();
        assert_eq!(s.steal_batch_with_limit(&d, 0), Steal::Success(()));
        assert_eq!(drain(&d), vec![0]);
        assert_eq!(s.steal_batch_with_limit_and_pop(&d, 0), Steal::Success(1));
        assert!(d.is_empty());
        let q = Injector::new();
        for i in 0..10 {
            q.push(i);
        }
        assert_eq!(q.steal_batch_with_limit(&d, 0), Steal::Success(()));
        assert_eq!(drain(&d), vec![0]);
        assert_eq!(q.steal_batch_with_limit_and_pop(&d, 0), Steal::Success(1));
        assert!(d.is_empty());
    }
}

// ---------------------------------------------------------------------------------
// Scripted tests, run on both crates.

/// The API of either crate, so that one script runs on both: on Strata always, on
/// crossbeam-deque too except under miri (crossbeam-epoch casts integers to pointers,
/// which `-Zmiri-strict-provenance` rejects). The scripts assert fixed expected values,
/// so crossbeam passing them shows the values are crossbeam's.
trait Api {
    const NAME: &'static str;
    type W;
    type S;
    type Q;
    fn worker(lifo: bool) -> Self::W;
    fn push(w: &Self::W, v: u64);
    fn pop(w: &Self::W) -> Option<u64>;
    fn len(w: &Self::W) -> usize;
    fn stealer(w: &Self::W) -> Self::S;
    fn steal(s: &Self::S) -> Steal<u64>;
    /// A batch steal; the batch kinds without a popped item answer `Success(u64::MAX)`.
    fn batch(s: &Self::S, d: &Self::W, kind: Batch) -> Steal<u64>;
    fn injector() -> Self::Q;
    fn inj_push(q: &Self::Q, v: u64);
    fn inj_steal(q: &Self::Q) -> Steal<u64>;
    fn inj_batch(q: &Self::Q, d: &Self::W, kind: Batch) -> Steal<u64>;
    fn inj_len(q: &Self::Q) -> usize;
    fn inj_is_empty(q: &Self::Q) -> bool;

    fn drain(w: &Self::W) -> Vec<u64> {
        std::iter::from_fn(|| Self::pop(w)).collect()
    }
}

struct Strata;
struct Crossbeam;

impl Api for Strata {
    const NAME: &'static str = "Strata";
    type W = Worker<u64>;
    type S = Stealer<u64>;
    type Q = Injector<u64>;
    fn worker(lifo: bool) -> Self::W {
        worker(lifo)
    }
    fn push(w: &Self::W, v: u64) {
        w.push(v)
    }
    fn pop(w: &Self::W) -> Option<u64> {
        w.pop()
    }
    fn len(w: &Self::W) -> usize {
        w.len()
    }
    fn stealer(w: &Self::W) -> Self::S {
        w.stealer()
    }
    fn steal(s: &Self::S) -> Steal<u64> {
        s.steal()
    }
    fn batch(s: &Self::S, d: &Self::W, kind: Batch) -> Steal<u64> {
        kind.strata(s, d)
    }
    fn injector() -> Self::Q {
        Injector::new()
    }
    fn inj_push(q: &Self::Q, v: u64) {
        q.push(v)
    }
    fn inj_steal(q: &Self::Q) -> Steal<u64> {
        q.steal()
    }
    fn inj_batch(q: &Self::Q, d: &Self::W, kind: Batch) -> Steal<u64> {
        kind.injector(q, d)
    }
    fn inj_len(q: &Self::Q) -> usize {
        q.len()
    }
    fn inj_is_empty(q: &Self::Q) -> bool {
        q.is_empty()
    }
}

impl Api for Crossbeam {
    const NAME: &'static str = "crossbeam";
    type W = cb::Worker<u64>;
    type S = cb::Stealer<u64>;
    type Q = cb::Injector<u64>;
    fn worker(lifo: bool) -> Self::W {
        cb_worker(lifo)
    }
    fn push(w: &Self::W, v: u64) {
        w.push(v)
    }
    fn pop(w: &Self::W) -> Option<u64> {
        w.pop()
    }
    fn len(w: &Self::W) -> usize {
        w.len()
    }
    fn stealer(w: &Self::W) -> Self::S {
        w.stealer()
    }
    fn steal(s: &Self::S) -> Steal<u64> {
        from_cb(s.steal())
    }
    fn batch(s: &Self::S, d: &Self::W, kind: Batch) -> Steal<u64> {
        kind.crossbeam(s, d)
    }
    fn injector() -> Self::Q {
        cb::Injector::new()
    }
    fn inj_push(q: &Self::Q, v: u64) {
        q.push(v)
    }
    fn inj_steal(q: &Self::Q) -> Steal<u64> {
        from_cb(q.steal())
    }
    fn inj_batch(q: &Self::Q, d: &Self::W, kind: Batch) -> Steal<u64> {
        kind.cb_injector(q, d)
    }
    fn inj_len(q: &Self::Q) -> usize {
        q.len()
    }
    fn inj_is_empty(q: &Self::Q) -> bool {
        q.is_empty()
    }
}

/// Runs a script on crossbeam (first, so that its expected values are checked against
/// crossbeam before Strata is) and on Strata.
macro_rules! on_both {
    ($script:ident) => {{
        if !MIRI {
            $script::<Crossbeam>();
        }
        $script::<Strata>();
    }};
}

/// `Success(u64::MAX)`: a batch steal without a popped item succeeded.
const MOVED: Shown = Shown::Success(u64::MAX);

fn fifo_source_batch_order<A: Api>() {
    for dst_lifo in [false, true] {
        let what = format!("{}: FIFO -> {}", A::NAME, flavor(dst_lifo));
        let (w, d) = (A::worker(false), A::worker(dst_lifo));
        for i in 0..10 {
            A::push(&w, i);
        }
        let s = A::stealer(&w);
        assert_eq!(shown(A::batch(&s, &d, Batch::Plain)), MOVED, "{what}");
        assert_eq!(A::drain(&d), vec![0, 1, 2, 3, 4], "{what}");

        let got = A::batch(&s, &d, Batch::LimitAndPop(2));
        assert_eq!(shown(got), Shown::Success(5), "{what}");
        assert_eq!(A::drain(&d), vec![6], "{what}");

        // Into a destination that already holds items: the batch goes to the end the
        // destination pops from last (FIFO) or first (LIFO), in steal order.
        A::push(&d, 100);
        assert_eq!(shown(A::batch(&s, &d, Batch::Plain)), MOVED, "{what}");
        let expected = if dst_lifo {
            vec![7, 8, 100]
        } else {
            vec![100, 7, 8]
        };
        assert_eq!(A::drain(&d), expected, "{what}");
        assert_eq!(shown(A::steal(&s)), Shown::Success(9), "{what}");
        assert_eq!(shown(A::steal(&s)), Shown::Empty, "{what}");
    }
}

/// From a FIFO source, the destination (either flavour) pops the stolen items in the
/// order they were stolen, oldest first; `*_and_pop` returns the oldest.
#[test]
fn batches_from_a_fifo_source_pop_in_steal_order() {
    on_both!(fifo_source_batch_order);
}

/// crossbeam's order for a batch out of a LIFO worker: the destination pops it newest
/// first whatever its flavour, and `*_and_pop` returns the newest of the batch.
fn lifo_source_batch_order<A: Api>() {
    for dst_lifo in [false, true] {
        let what = format!("{}: LIFO -> {}", A::NAME, flavor(dst_lifo));
        let (w, d) = (A::worker(true), A::worker(dst_lifo));
        for i in 0..10 {
            A::push(&w, i);
        }
        let s = A::stealer(&w);
        assert_eq!(shown(A::batch(&s, &d, Batch::Plain)), MOVED, "{what}");
        let first = A::drain(&d);
        // 5 items left (5..10): `*_and_pop` with limit 3 takes 5, 6, 7.
        let popped = shown(A::batch(&s, &d, Batch::LimitAndPop(3)));
        let rest = A::drain(&d);
        assert_eq!(
            (first, popped, rest),
            (vec![4, 3, 2, 1, 0], Shown::Success(7), vec![6, 5]),
            "{what}: the batches' order (left) is not crossbeam's (right)"
        );
    }
}

/// From a LIFO source, the destination (either flavour) pops the batch newest first,
/// and `*_and_pop` returns the newest item of the batch, as crossbeam does. (Commit
/// 43331d0 failed this: `([0, 1, 2, 3, 4], Success(5), [6, 7])`.)
#[test]
fn batches_from_a_lifo_source_keep_crossbeams_order() {
    on_both!(lifo_source_batch_order);
}

fn self_steal<A: Api>() {
    for lifo in [false, true] {
        let what = format!("{}: {}", A::NAME, flavor(lifo));
        let w = A::worker(lifo);
        let s = A::stealer(&w);
        assert_eq!(shown(A::steal(&s)), Shown::Empty, "{what}");
        assert_eq!(
            shown(A::batch(&s, &w, Batch::Plain)),
            Shown::Empty,
            "{what}"
        );
        assert_eq!(
            shown(A::batch(&s, &w, Batch::AndPop)),
            Shown::Empty,
            "{what}"
        );
        for i in 0..6 {
            A::push(&w, i);
        }
        assert_eq!(shown(A::batch(&s, &w, Batch::Plain)), MOVED, "{what}");
        assert_eq!(shown(A::batch(&s, &w, Batch::Limit(3))), MOVED, "{what}");
        assert_eq!(A::len(&w), 6, "{what}");
        // `_and_pop` pops the worker's own end.
        let expected = if lifo { 5 } else { 0 };
        let got = A::batch(&s, &w, Batch::AndPop);
        assert_eq!(shown(got), Shown::Success(expected), "{what}");
        let expected = if lifo { 4 } else { 1 };
        let got = A::batch(&s, &w, Batch::LimitAndPop(1));
        assert_eq!(shown(got), Shown::Success(expected), "{what}");
        let rest = if lifo {
            vec![3, 2, 1, 0]
        } else {
            vec![2, 3, 4, 5]
        };
        assert_eq!(A::drain(&w), rest, "{what}");
    }
}

/// Stealing from a worker into itself moves nothing: `steal_batch*` answers whether it
/// is empty, `steal_batch*_and_pop` pops (its own end).
#[test]
fn stealing_into_the_workers_own_deque() {
    on_both!(self_steal);
}

// ---------------------------------------------------------------------------------
// The injector.

fn injector_fifo_and_len<A: Api>() {
    use std::collections::VecDeque;
    let q = A::injector();
    assert!(A::inj_is_empty(&q));
    assert_eq!(A::inj_len(&q), 0);
    assert_eq!(shown(A::inj_steal(&q)), Shown::Empty);
    let mut model: VecDeque<u64> = VecDeque::new();
    let mut next = 0u64;
    let n = if MIRI { 70 } else { 1_000 };
    // Each round fills to `n` and drains back to 0; round `r` also takes (pushes) one
    // item back after every `r + 1` pushes (`r + 2` takes), so the head and the tail
    // cross the block boundaries (every 63 items) at many different offsets.
    // (Under miri only round 1.)
    for round in if MIRI { 1..2 } else { 0..4 } {
        let what = |step: &str| format!("{}: round {round}, {step}", A::NAME);
        let check = |model: &VecDeque<u64>, step: &str| {
            assert_eq!(A::inj_len(&q), model.len(), "{}: len", what(step));
            assert_eq!(A::inj_is_empty(&q), model.is_empty(), "{}", what(step));
        };
        let mut i = 0usize;
        while model.len() < n {
            A::inj_push(&q, next);
            model.push_back(next);
            next += 1;
            check(&model, "push");
            i += 1;
            if round > 0 && i.is_multiple_of(round + 1) {
                let v = model.pop_front();
                assert_eq!(A::inj_steal(&q).success(), v, "{}", what("steal"));
                check(&model, "steal while filling");
            }
        }
        while !model.is_empty() {
            let v = model.pop_front();
            assert_eq!(A::inj_steal(&q).success(), v, "{}", what("steal"));
            check(&model, "steal");
            i += 1;
            if round > 0 && i.is_multiple_of(round + 2) {
                A::inj_push(&q, next);
                model.push_back(next);
                next += 1;
                check(&model, "push while draining");
            }
        }
        assert_eq!(shown(A::inj_steal(&q)), Shown::Empty, "{}", what("drained"));
        check(&model, "drained");
    }
}

#[test]
fn injector_is_fifo_and_counts_across_blocks() {
    on_both!(injector_fifo_and_len);
}

fn injector_block_end<A: Api>() {
    // 100 items: the first block holds 0..63.
    let flavours: &[bool] = if MIRI { &[true] } else { &[false, true] };
    for &dst_lifo in flavours {
        let what = format!("{} -> {}", A::NAME, flavor(dst_lifo));
        let q = A::injector();
        for i in 0..100 {
            A::inj_push(&q, i);
        }
        let d = A::worker(dst_lifo);
        for i in 0..40 {
            assert_eq!(shown(A::inj_steal(&q)), Shown::Success(i), "{what}");
        }
        // Head and tail in different blocks: up to the end of the block (40..63), even
        // with a higher limit. The destination pops in queue order, whatever its
        // flavour.
        let got = A::inj_batch(&q, &d, Batch::Limit(50));
        assert_eq!(shown(got), MOVED, "{what}");
        assert_eq!(A::drain(&d), (40..63).collect::<Vec<_>>(), "{what}");
        // Now both in the second block, 37 items: half of them, rounded up.
        assert_eq!(A::inj_len(&q), 37, "{what}");
        assert_eq!(shown(A::inj_batch(&q, &d, Batch::Plain)), MOVED, "{what}");
        assert_eq!(A::drain(&d), (63..82).collect::<Vec<_>>(), "{what}");
        // steal_batch_and_pop: at most 33 in all; 18 left, so 9.
        let got = A::inj_batch(&q, &d, Batch::AndPop);
        assert_eq!(shown(got), Shown::Success(82), "{what}");
        assert_eq!(A::drain(&d), (83..91).collect::<Vec<_>>(), "{what}");
        assert_eq!(A::inj_len(&q), 9, "{what}");
        // Into a destination that holds items: after them (FIFO) or before them (LIFO).
        A::push(&d, 1_000);
        assert_eq!(
            shown(A::inj_batch(&q, &d, Batch::Limit(2))),
            MOVED,
            "{what}"
        );
        let expected = if dst_lifo {
            vec![91, 92, 1_000]
        } else {
            vec![1_000, 91, 92]
        };
        assert_eq!(A::drain(&d), expected, "{what}");
    }
}

#[test]
fn injector_batches_stop_at_a_block_end() {
    on_both!(injector_block_end);
}

/// crossbeam's number of items an injector batch takes, with the head at `offset` in
/// its block and `len` items queued: up to the end of the head's block if the tail is
/// in a later one, else half of the items rounded up; at most `limit`.
fn injector_batch_size(offset: usize, len: usize, limit: usize) -> usize {
    if offset + len >= 63 {
        (63 - offset).min(limit)
    } else {
        len.div_ceil(2).min(limit)
    }
}

/// What one injector batch steal did: its answer, the destination's contents, and the
/// injector's length.
fn injector_batch_case<A: Api>(
    skew: usize,
    len: usize,
    limit: usize,
    pop: bool,
    dst_lifo: bool,
) -> (Shown, Vec<u64>, usize) {
    let q = A::injector();
    // Move the head `skew` slots into the first block.
    for i in 0..skew as u64 {
        A::inj_push(&q, 10_000 + i);
        assert!(A::inj_steal(&q).is_success());
    }
    for i in 0..len as u64 {
        A::inj_push(&q, i);
    }
    let d = A::worker(dst_lifo);
    let kind = if pop {
        Batch::LimitAndPop(limit)
    } else {
        Batch::Limit(limit)
    };
    let got = shown(A::inj_batch(&q, &d, kind));
    (got, A::drain(&d), A::inj_len(&q))
}

#[test]
fn injector_batch_counts_match_crossbeam() {
    // (destination LIFO, skew, items, limit, pop)
    let cases: Vec<(bool, usize, usize, usize, bool)> = if MIRI {
        // A few cases: in one block, up to its end, across it.
        vec![
            (false, 0, 0, 2, false),
            (true, 0, 5, 2, true),
            (false, 0, 5, 33, false),
            (true, 0, 63, 33, false),
            (true, 60, 3, 33, false),
            (false, 60, 10, 2, true),
            (true, 60, 10, 33, true),
        ]
    } else {
        let mut v = Vec::new();
        for dst_lifo in [false, true] {
            for skew in [0, 1, 30, 62] {
                for len in 0..=140 {
                    for limit in [1, 2, 5, 32, 33, 64, usize::MAX] {
                        for pop in [false, true] {
                            v.push((dst_lifo, skew, len, limit, pop));
                        }
                    }
                }
            }
        }
        v
    };
    for (dst_lifo, skew, len, limit, pop) in cases {
        let what = format!(
            "skew {skew}, {len} items, limit {limit}, pop {pop}, {}",
            flavor(dst_lifo)
        );
        let got = injector_batch_case::<Strata>(skew, len, limit, pop, dst_lifo);
        // The expected outcome, from crossbeam's formula.
        let n = if len == 0 {
            0
        } else {
            injector_batch_size(skew, len, limit)
        };
        let answer = match (n, pop) {
            (0, _) => Shown::Empty,
            (_, true) => Shown::Success(0),
            (_, false) => MOVED,
        };
        // Either flavour of destination pops the batch in queue order.
        let moved: Vec<u64> = (u64::from(pop)..n as u64).collect();
        assert_eq!(got, (answer, moved, len - n), "{what}");
        if !MIRI {
            let cb = injector_batch_case::<Crossbeam>(skew, len, limit, pop, dst_lifo);
            assert_eq!(got, cb, "{what}: Strata (left), crossbeam (right)");
        }
    }
}

#[test]
fn injector_default_and_drop_with_items() {
    let (n, taken) = if MIRI { (70, 64) } else { (200, 70) };
    let q: Injector<String> = Injector::default();
    for i in 0..n {
        q.push(i.to_string());
    }
    for i in 0..taken {
        assert_eq!(q.steal().success(), Some(i.to_string()));
    }
    assert_eq!(q.len(), n - taken);
    // Dropped with items in two or more blocks (miri checks for leaks).
    drop(q);
}

// ---------------------------------------------------------------------------------
// Steal, Debug.

fn all_steals(v: u64) -> [Steal<u64>; 3] {
    [Steal::Empty, Steal::Success(v), Steal::Retry]
}

fn to_cb<T>(s: Steal<T>) -> cb::Steal<T> {
    match s {
        Steal::Empty => cb::Steal::Empty,
        Steal::Success(v) => cb::Steal::Success(v),
        Steal::Retry => cb::Steal::Retry,
    }
}

#[test]
fn steal_predicates_and_success() {
    for s in all_steals(7) {
        let c = to_cb(s);
        assert_eq!(s.is_empty(), c.is_empty(), "{s:?}");
        assert_eq!(s.is_success(), c.is_success(), "{s:?}");
        assert_eq!(s.is_retry(), c.is_retry(), "{s:?}");
        assert_eq!(s.success(), c.success(), "{s:?}");
    }
    assert!(Steal::<u8>::Empty.is_empty());
    assert!(Steal::Success(1).is_success());
    assert!(Steal::<u8>::Retry.is_retry());
    assert_eq!(Steal::Success(3).success(), Some(3));
    assert_eq!(Steal::<u8>::Retry.success(), None);
    // Copy and Clone for Copy values, Eq.
    let s = Steal::Success(5u8);
    let t = s;
    assert_eq!(s, t);
    #[allow(clippy::clone_on_copy)]
    let u = s.clone();
    assert_eq!(u, Steal::Success(5));
    assert_ne!(Steal::Success(1), Steal::Success(2));
    assert_ne!(Steal::<u8>::Empty, Steal::Retry);
}

#[test]
fn steal_or_else_matches_crossbeam() {
    for a in all_steals(1) {
        for b in all_steals(2) {
            let mut called = false;
            let got = a.or_else(|| {
                called = true;
                b
            });
            let mut cb_called = false;
            let expected = from_cb(to_cb(a).or_else(|| {
                cb_called = true;
                to_cb(b)
            }));
            assert_eq!(got, expected, "{a:?}.or_else(|| {b:?})");
            assert_eq!(called, cb_called, "{a:?}.or_else(|| {b:?}): closure called");
        }
    }
    assert_eq!(
        Steal::Retry.or_else(|| Steal::Success(2)),
        Steal::Success(2)
    );
    assert_eq!(Steal::<u8>::Retry.or_else(|| Steal::Empty), Steal::Retry);
}

#[test]
fn steal_from_iterator_matches_crossbeam() {
    // Every sequence of up to 4 outcomes.
    let mut seqs: Vec<Vec<Steal<u64>>> = vec![vec![]];
    for _ in 0..4 {
        let longer: Vec<Vec<Steal<u64>>> = seqs
            .iter()
            .filter(|s| s.len() == seqs.last().unwrap().len())
            .flat_map(|s| {
                all_steals(s.len() as u64).into_iter().map(move |x| {
                    let mut t = s.clone();
                    t.push(x);
                    t
                })
            })
            .collect();
        seqs.extend(longer);
    }
    assert_eq!(seqs.len(), 1 + 3 + 9 + 27 + 81);
    for seq in seqs {
        let got: Steal<u64> = seq.iter().copied().collect();
        let expected: cb::Steal<u64> = seq.iter().copied().map(to_cb).collect();
        assert_eq!(got, from_cb(expected), "{seq:?}");
    }
    // It stops at the first success.
    let mut pulled = 0;
    let s: Steal<u8> = [Steal::Retry, Steal::Success(1), Steal::Success(2)]
        .into_iter()
        .inspect(|_| pulled += 1)
        .collect();
    assert_eq!(s, Steal::Success(1));
    assert_eq!(pulled, 2);
}

#[test]
fn debug_output_matches_crossbeam() {
    fn same<A: Debug, B: Debug>(a: &A, b: &B) {
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        assert_eq!(format!("{a:>30?}"), format!("{b:>30?}"));
        assert_eq!(format!("{a:-<30?}"), format!("{b:-<30?}"));
        assert_eq!(format!("{a:#?}"), format!("{b:#?}"));
    }
    // A value type without Debug: Steal's Debug does not need it.
    struct NoDebug;
    same(&Steal::<NoDebug>::Empty, &cb::Steal::<NoDebug>::Empty);
    same(&Steal::Success(NoDebug), &cb::Steal::Success(NoDebug));
    same(&Steal::<NoDebug>::Retry, &cb::Steal::<NoDebug>::Retry);
    assert_eq!(format!("{:?}", Steal::Success(NoDebug)), "Success(..)");
    let w = Worker::<NoDebug>::new_lifo();
    let q = Injector::<NoDebug>::new();
    assert_eq!(format!("{w:?}"), "Worker { .. }");
    assert_eq!(format!("{:?}", w.stealer()), "Stealer { .. }");
    assert_eq!(format!("{q:?}"), "Injector { .. }");
    // (Not under miri: crossbeam's worker uses crossbeam-epoch, see `Api`.)
    if !MIRI {
        let cw = cb::Worker::<NoDebug>::new_lifo();
        same(&w, &cw);
        same(&w.stealer(), &cw.stealer());
        same(&q, &cb::Injector::<NoDebug>::new());
    }
}

/// The public paths of crossbeam-deque exist: `Stealer` is `Clone`, `Injector` is
/// `Default`, the constructors and methods have crossbeam's signatures (a function
/// pointer of each compiles with the same shape).
#[test]
fn signatures_match_crossbeam() {
    let _: fn() -> Worker<u8> = Worker::new_fifo;
    let _: fn() -> Worker<u8> = Worker::new_lifo;
    let _: fn(&Worker<u8>) -> Stealer<u8> = Worker::stealer;
    let _: fn(&Worker<u8>, u8) = Worker::push;
    let _: fn(&Worker<u8>) -> Option<u8> = Worker::pop;
    let _: fn(&Worker<u8>) -> usize = Worker::len;
    let _: fn(&Worker<u8>) -> bool = Worker::is_empty;
    let _: fn(&Stealer<u8>) -> Steal<u8> = Stealer::steal;
    let _: fn(&Stealer<u8>, &Worker<u8>) -> Steal<()> = Stealer::steal_batch;
    let _: fn(&Stealer<u8>, &Worker<u8>, usize) -> Steal<()> = Stealer::steal_batch_with_limit;
    let _: fn(&Stealer<u8>, &Worker<u8>) -> Steal<u8> = Stealer::steal_batch_and_pop;
    let _: fn(&Stealer<u8>, &Worker<u8>, usize) -> Steal<u8> =
        Stealer::steal_batch_with_limit_and_pop;
    let _: fn(&Stealer<u8>) -> usize = Stealer::len;
    let _: fn(&Stealer<u8>) -> bool = Stealer::is_empty;
    let _: fn(&Stealer<u8>) -> Stealer<u8> = Stealer::clone;
    let _: fn() -> Injector<u8> = Injector::new;
    let _: fn() -> Injector<u8> = Injector::default;
    let _: fn(&Injector<u8>, u8) = Injector::push;
    let _: fn(&Injector<u8>) -> Steal<u8> = Injector::steal;
    let _: fn(&Injector<u8>, &Worker<u8>) -> Steal<()> = Injector::steal_batch;
    let _: fn(&Injector<u8>, &Worker<u8>, usize) -> Steal<()> = Injector::steal_batch_with_limit;
    let _: fn(&Injector<u8>, &Worker<u8>) -> Steal<u8> = Injector::steal_batch_and_pop;
    let _: fn(&Injector<u8>, &Worker<u8>, usize) -> Steal<u8> =
        Injector::steal_batch_with_limit_and_pop;
    let _: fn(&Injector<u8>) -> usize = Injector::len;
    let _: fn(&Injector<u8>) -> bool = Injector::is_empty;
    // The crate-root re-exports are the same types.
    let _: strata_queue::Worker<u8> = Worker::new_fifo();
    let _: strata_queue::Injector<u8> = strata_queue::injector::Injector::new();
    let _: strata_queue::Steal<u8> = Steal::Empty;
}

// ---------------------------------------------------------------------------------
// Differential tests against crossbeam-deque.

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0; the bias is negligible for small n).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A batch limit of at least 1: mostly small, sometimes around the defaults,
    /// sometimes huge.
    fn limit(&mut self) -> usize {
        match self.below(10) {
            0 => 1,
            1 => usize::MAX,
            2 => 31 + self.below(4) as usize,
            3 => 60 + self.below(10) as usize,
            _ => 1 + self.below(20) as usize,
        }
    }
}

/// A worker of each crate, same flavour, with their stealers.
struct Pair {
    lifo: bool,
    w: Worker<u64>,
    s: Stealer<u64>,
    cw: cb::Worker<u64>,
    cs: cb::Stealer<u64>,
}

impl Pair {
    fn new(lifo: bool) -> Self {
        let w = worker(lifo);
        let cw = cb_worker(lifo);
        Pair {
            lifo,
            s: w.stealer(),
            cs: cw.stealer(),
            w,
            cw,
        }
    }

    #[track_caller]
    fn check_len(&self, ctx: &dyn Fn() -> String) {
        assert_eq!(self.w.len(), self.cw.len(), "{}: Worker::len", ctx());
        assert_eq!(self.s.len(), self.cs.len(), "{}: Stealer::len", ctx());
        assert_eq!(
            self.w.is_empty(),
            self.cw.is_empty(),
            "{}: Worker::is_empty",
            ctx()
        );
        assert_eq!(
            self.s.is_empty(),
            self.cs.is_empty(),
            "{}: Stealer::is_empty",
            ctx()
        );
    }
}

#[derive(Clone, Copy, Debug)]
enum Batch {
    Plain,
    Limit(usize),
    AndPop,
    LimitAndPop(usize),
}

impl Batch {
    fn random(rng: &mut Rng) -> Self {
        match rng.below(4) {
            0 => Batch::Plain,
            1 => Batch::Limit(rng.limit()),
            2 => Batch::AndPop,
            _ => Batch::LimitAndPop(rng.limit()),
        }
    }

    fn strata(self, s: &Stealer<u64>, d: &Worker<u64>) -> Steal<u64> {
        match self {
            Batch::Plain => s.steal_batch(d).map_to(u64::MAX),
            Batch::Limit(l) => s.steal_batch_with_limit(d, l).map_to(u64::MAX),
            Batch::AndPop => s.steal_batch_and_pop(d),
            Batch::LimitAndPop(l) => s.steal_batch_with_limit_and_pop(d, l),
        }
    }

    fn crossbeam(self, s: &cb::Stealer<u64>, d: &cb::Worker<u64>) -> Steal<u64> {
        from_cb(match self {
            Batch::Plain => s.steal_batch(d).map(u64::MAX),
            Batch::Limit(l) => s.steal_batch_with_limit(d, l).map(u64::MAX),
            Batch::AndPop => s.steal_batch_and_pop(d),
            Batch::LimitAndPop(l) => s.steal_batch_with_limit_and_pop(d, l),
        })
    }

    fn injector(self, q: &Injector<u64>, d: &Worker<u64>) -> Steal<u64> {
        match self {
            Batch::Plain => q.steal_batch(d).map_to(u64::MAX),
            Batch::Limit(l) => q.steal_batch_with_limit(d, l).map_to(u64::MAX),
            Batch::AndPop => q.steal_batch_and_pop(d),
            Batch::LimitAndPop(l) => q.steal_batch_with_limit_and_pop(d, l),
        }
    }

    fn cb_injector(self, q: &cb::Injector<u64>, d: &cb::Worker<u64>) -> Steal<u64> {
        from_cb(match self {
            Batch::Plain => q.steal_batch(d).map(u64::MAX),
            Batch::Limit(l) => q.steal_batch_with_limit(d, l).map(u64::MAX),
            Batch::AndPop => q.steal_batch_and_pop(d),
            Batch::LimitAndPop(l) => q.steal_batch_with_limit_and_pop(d, l),
        })
    }
}

trait CbMap {
    fn map(self, v: u64) -> cb::Steal<u64>;
}

impl CbMap for cb::Steal<()> {
    fn map(self, v: u64) -> cb::Steal<u64> {
        match self {
            cb::Steal::Empty => cb::Steal::Empty,
            cb::Steal::Success(()) => cb::Steal::Success(v),
            cb::Steal::Retry => cb::Steal::Retry,
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum WorkerOp {
    Push(usize, u64),
    Pop(usize),
    Steal(usize),
    /// A batch steal from pair `.0` into the worker of pair `.1` (the same pair:
    /// stealing into one's own deque).
    Batch(usize, usize, Batch),
}

/// Rounds and steps of the differential tests.
/// (Small under miri, for a run without `-Zmiri-strict-provenance`.)
const ROUNDS: u64 = if MIRI { 3 } else { 300 };
const STEPS: usize = if MIRI { 150 } else { 600 };

/// Runs `ROUNDS` random sequences on two workers of random flavours, on both crates,
/// comparing every answer and every length.
fn differential_workers(seed: u64) {
    let mut rng = Rng::new(seed);
    let mut next = 0u64;
    let mut max_len = 0;
    let mut batches = 0;
    for round in 0..ROUNDS {
        let pairs = [Pair::new(rng.chance(50)), Pair::new(rng.chance(50))];
        let mut push_percent = 40;
        let mut trace: Vec<WorkerOp> = Vec::new();
        for step in 0..STEPS {
            // Phases: mostly pushing (grows past 64 and beyond), mostly taking (shrinks).
            if step.is_multiple_of(80) {
                push_percent = [15, 40, 75][rng.below(3) as usize];
            }
            let a = if rng.chance(80) { 0 } else { 1 };
            let op = if rng.chance(push_percent) {
                let n = if rng.chance(10) { 1 + rng.below(40) } else { 1 };
                for _ in 0..n - 1 {
                    pairs[a].w.push(next);
                    pairs[a].cw.push(next);
                    next += 1;
                }
                next += 1;
                WorkerOp::Push(a, next - 1)
            } else {
                match rng.below(10) {
                    0..=2 => WorkerOp::Pop(a),
                    3..=4 => WorkerOp::Steal(a),
                    _ => {
                        let to = if rng.chance(10) { a } else { 1 - a };
                        WorkerOp::Batch(a, to, Batch::random(&mut rng))
                    }
                }
            };
            trace.push(op);
            let ctx = || {
                let from = trace.len().saturating_sub(8);
                format!(
                    "seed {seed}, round {round} ({} / {}), step {step}: {op:?}; last ops: {:?}",
                    flavor(pairs[0].lifo),
                    flavor(pairs[1].lifo),
                    &trace[from..]
                )
            };
            match op {
                WorkerOp::Push(i, v) => {
                    pairs[i].w.push(v);
                    pairs[i].cw.push(v);
                }
                WorkerOp::Pop(i) => {
                    assert_eq!(pairs[i].w.pop(), pairs[i].cw.pop(), "{}", ctx());
                }
                WorkerOp::Steal(i) => {
                    let got = pairs[i].s.steal();
                    assert!(!got.is_retry(), "{}: Retry on one thread", ctx());
                    assert_eq!(shown(got), shown(from_cb(pairs[i].cs.steal())), "{}", ctx());
                }
                WorkerOp::Batch(from, to, kind) => {
                    batches += 1;
                    let got = kind.strata(&pairs[from].s, &pairs[to].w);
                    assert!(!got.is_retry(), "{}: Retry on one thread", ctx());
                    let expected = kind.crossbeam(&pairs[from].cs, &pairs[to].cw);
                    assert_eq!(shown(got), shown(expected), "{}", ctx());
                }
            }
            pairs[0].check_len(&ctx);
            pairs[1].check_len(&ctx);
            max_len = max_len.max(pairs[0].w.len()).max(pairs[1].w.len());
        }
        // Whatever is left comes out in the same order.
        for (i, p) in pairs.iter().enumerate() {
            assert_eq!(
                drain(&p.w),
                drain_cb(&p.cw),
                "seed {seed}, round {round}: final drain of worker {i}"
            );
        }
    }
    // The sequences did grow the buffers (64 slots at first) and steal in batches.
    if !MIRI {
        assert!(
            max_len > 256,
            "seed {seed}: the workers held at most {max_len} items"
        );
    }
    assert!(batches > 0, "seed {seed}: no batch steal");
}

/// Every operation on FIFO and LIFO workers: pushes, pops, steals, and the four batch
/// steals into the other worker (of either flavour) and into the source itself.
#[test]
#[cfg_attr(
    miri,
    ignore = "crossbeam-epoch casts integers to pointers, which -Zmiri-strict-provenance rejects"
)]
fn differential_workers_match_crossbeam() {
    for seed in 1..=8 {
        differential_workers(seed);
    }
}

#[derive(Clone, Copy, Debug)]
enum InjectorOp {
    Push(u64),
    Steal,
    Batch(Batch),
    DestPop,
    DestPush(u64),
    DestSteal,
}

/// The injector and a destination worker of random flavour.
#[test]
#[cfg_attr(
    miri,
    ignore = "crossbeam-epoch casts integers to pointers, which -Zmiri-strict-provenance rejects"
)]
fn differential_injector_matches_crossbeam() {
    let rounds = if MIRI { 2 } else { 400 };
    let steps: usize = if MIRI { 250 } else { 1_500 };
    let mut rng = Rng::new(99);
    let mut next = 0u64;
    let mut max_len = 0;
    for round in 0..rounds {
        let q = Injector::new();
        let cq = cb::Injector::new();
        let dest = Pair::new(rng.chance(50));
        let mut push_percent = 50;
        let mut trace: Vec<InjectorOp> = Vec::new();
        for step in 0..steps {
            if step.is_multiple_of(100) {
                push_percent = [20, 50, 80][rng.below(3) as usize];
            }
            let op = if rng.chance(push_percent) {
                // Sometimes a burst, to fill several blocks.
                let n = if rng.chance(5) { 1 + rng.below(130) } else { 1 };
                for _ in 0..n - 1 {
                    q.push(next);
                    cq.push(next);
                    next += 1;
                }
                next += 1;
                InjectorOp::Push(next - 1)
            } else {
                match rng.below(12) {
                    0..=2 => InjectorOp::Steal,
                    3..=7 => InjectorOp::Batch(Batch::random(&mut rng)),
                    8..=9 => InjectorOp::DestPop,
                    10 => {
                        next += 1;
                        InjectorOp::DestPush(next - 1)
                    }
                    _ => InjectorOp::DestSteal,
                }
            };
            trace.push(op);
            let ctx = || {
                let from = trace.len().saturating_sub(8);
                format!(
                    "round {round} (dest {}), step {step}: {op:?}; last ops: {:?}",
                    flavor(dest.lifo),
                    &trace[from..]
                )
            };
            match op {
                InjectorOp::Push(v) => {
                    q.push(v);
                    cq.push(v);
                }
                InjectorOp::Steal => {
                    let got = q.steal();
                    assert!(!got.is_retry(), "{}: Retry on one thread", ctx());
                    assert_eq!(shown(got), shown(from_cb(cq.steal())), "{}", ctx());
                }
                InjectorOp::Batch(kind) => {
                    let got = kind.injector(&q, &dest.w);
                    assert!(!got.is_retry(), "{}: Retry on one thread", ctx());
                    let expected = kind.cb_injector(&cq, &dest.cw);
                    assert_eq!(shown(got), shown(expected), "{}", ctx());
                }
                InjectorOp::DestPop => {
                    assert_eq!(dest.w.pop(), dest.cw.pop(), "{}", ctx());
                }
                InjectorOp::DestPush(v) => {
                    dest.w.push(v);
                    dest.cw.push(v);
                }
                InjectorOp::DestSteal => {
                    let (got, expected) = (dest.s.steal(), from_cb(dest.cs.steal()));
                    assert_eq!(shown(got), shown(expected), "{}", ctx());
                }
            }
            assert_eq!(q.len(), cq.len(), "{}: Injector::len", ctx());
            assert_eq!(q.is_empty(), cq.is_empty(), "{}: Injector::is_empty", ctx());
            dest.check_len(&ctx);
            max_len = max_len.max(q.len());
        }
        assert_eq!(drain(&dest.w), drain_cb(&dest.cw), "round {round}: drain");
        loop {
            let got = q.steal();
            assert_eq!(
                shown(got),
                shown(from_cb(cq.steal())),
                "round {round}: drain"
            );
            if got.is_empty() {
                break;
            }
        }
    }
    // The injector spanned several blocks of 63 at once.
    assert!(
        max_len > 3 * 63,
        "the injector held at most {max_len} items"
    );
}
