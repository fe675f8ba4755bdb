//! Linearizability of the work-stealing deque and the injector, on 2 to 4 threads: each
//! round records a concurrent history with `strata-check` and checks it (as
//! `linearizability.rs` does for the other containers).
//!
//! * A LIFO `Worker` against `DequeModel`: the owner thread pushes (`PushBottom`) and
//!   pops (`PopBottom`), 1 to 3 thieves steal (`Steal`), with `steal` and with
//!   `steal_batch_with_limit_and_pop(limit 1)`, which takes exactly one item.
//! * A FIFO `Worker` against `QueueModel`: the owner's pushes are `Push`, its pops and
//!   the thieves' steals are `Pop`.
//! * The `Injector` against `QueueModel`: every thread pushes and steals.
//!
//! A steal that returns `Retry` has no sequential meaning (see `DequeModel`'s docs): it
//! is retried inside the recorded call until it succeeds or reports `Empty`, so one
//! recorded operation is one `Success` or one `Empty`.
//!
//! Before each recorded round the container's positions are moved on by a few
//! unrecorded push-and-take pairs (a different number each round), so that the rounds
//! wrap the worker's ring buffer at different places and cross the injector's block
//! boundaries (every 63 items). In every other worker round the owner first pushes 62
//! items (recorded, before the other threads start), so that the buffer grows past its
//! initial 64 slots while the thieves steal.
//!
//! A round that is not linearizable, or whose search runs over its budget, fails the
//! test; a round with no overlap tested nothing and is run again. The negative control:
//! a LIFO worker's history checked against the FIFO `QueueModel` is reported.

use std::sync::Barrier;

use strata_check::models::{DequeModel, DequeOp, DequeRet, QueueModel, QueueOp, QueueRet};
use strata_check::{Budget, Model, Recorder, Violation, check};
use strata_queue::deque::{Injector, Steal, Worker};

mod common;

/// Operations per thread, as in `linearizability.rs`: 40 at 2 threads, 20 at 3, 8 at 4.
fn ops_per_thread(threads: usize) -> usize {
    if cfg!(miri) {
        6
    } else {
        match threads {
            2 => 40,
            3 => 20,
            _ => 8,
        }
    }
}
/// Search steps per check: the checker's default is 500 000.
const BUDGET_STEPS: u64 = 4_000_000;
/// Rounds per thread count: more than `linearizability.rs`'s 8, as these rounds are
/// cheap (the deque's order is set by one owner thread, so the search rarely branches).
const ROUNDS: usize = if cfg!(miri) { 1 } else { 40 };

/// Calls `f` until it does not answer `Retry`: `Some` for a success, `None` for empty.
fn until_not_retry<T>(mut f: impl FnMut() -> Steal<T>) -> Option<T> {
    loop {
        match f() {
            Steal::Success(v) => return Some(v),
            Steal::Empty => return None,
            // Another claim won the race, or the owner is between publishing a new
            // buffer and moving the generation: try again.
            Steal::Retry => std::thread::yield_now(),
        }
    }
}

/// A distinct value for operation `i` of thread `t`.
fn value(t: usize, i: usize) -> u64 {
    (t as u64 + 1) * 1_000 + i as u64
}

/// How far the positions are moved on before round `round`.
fn skew(round: usize) -> usize {
    (round * 29) % 130
}

/// Items the owner pushes (recorded) before the threads start, in every other round:
/// close to the initial 64 slots, so that the buffer grows while the thieves steal.
fn prefill(round: usize) -> usize {
    if round % 2 == 1 && !cfg!(miri) { 62 } else { 0 }
}

/// One round of a LIFO worker against the deque model: thread 0 owns the worker, the
/// others steal.
fn lifo_deque_round(threads: usize, round: usize) -> Result<usize, Violation<DequeModel>> {
    let w = Worker::new_lifo();
    for i in 0..skew(round) {
        w.push(u64::MAX - i as u64);
        assert!(w.stealer().steal().is_success());
    }
    let s = w.stealer();
    let recorder = Recorder::<DequeModel>::new(threads);
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        for t in 1..threads {
            let mut log = recorder.thread(t);
            let (s, start) = (s.clone(), &start);
            scope.spawn(move || {
                let own = Worker::new_fifo();
                start.wait();
                for i in 0..ops_per_thread(threads) {
                    log.call(DequeOp::Steal, || {
                        std::thread::yield_now();
                        DequeRet::Stolen(if i.is_multiple_of(2) {
                            until_not_retry(|| s.steal())
                        } else {
                            // Limit 1: exactly one item, nothing moved into `own`.
                            until_not_retry(|| s.steal_batch_with_limit_and_pop(&own, 1))
                        })
                    });
                }
                assert!(own.is_empty(), "a limit-1 batch moved items");
            });
        }
        let mut log = recorder.thread(0);
        let start = &start;
        scope.spawn(move || {
            for i in 0..prefill(round) {
                let v = value(0, 500 + i);
                log.call(DequeOp::PushBottom(v), || {
                    w.push(v);
                    DequeRet::Pushed
                });
            }
            start.wait();
            for i in 0..ops_per_thread(threads) {
                if i % 3 == 2 {
                    log.call(DequeOp::PopBottom, || {
                        std::thread::yield_now();
                        DequeRet::Popped(w.pop())
                    });
                } else {
                    let v = value(0, i);
                    log.call(DequeOp::PushBottom(v), || {
                        std::thread::yield_now();
                        w.push(v);
                        DequeRet::Pushed
                    });
                }
            }
        });
    });
    check(
        &DequeModel,
        &recorder.into_history(),
        Budget::steps(BUDGET_STEPS),
    )
    .map(|r| r.overlapping)
}

/// One round of a worker of either flavour recorded as a queue: the owner's pushes are
/// `Push`, its pops and the thieves' steals are `Pop`. A FIFO worker must pass; a LIFO
/// one is the negative control.
fn worker_queue_round(
    lifo: bool,
    threads: usize,
    round: usize,
    budget: Budget,
) -> Result<usize, Violation<QueueModel>> {
    let w = if lifo {
        Worker::new_lifo()
    } else {
        Worker::new_fifo()
    };
    for i in 0..skew(round) {
        w.push(u64::MAX - i as u64);
        assert!(w.pop().is_some());
    }
    let s = w.stealer();
    let recorder = Recorder::<QueueModel>::new(threads);
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        for t in 1..threads {
            let mut log = recorder.thread(t);
            let (s, start) = (s.clone(), &start);
            scope.spawn(move || {
                let own = Worker::new_lifo();
                start.wait();
                for i in 0..ops_per_thread(threads) {
                    log.call(QueueOp::Pop, || {
                        std::thread::yield_now();
                        QueueRet::Popped(if i.is_multiple_of(2) {
                            until_not_retry(|| s.steal())
                        } else {
                            until_not_retry(|| s.steal_batch_with_limit_and_pop(&own, 1))
                        })
                    });
                }
                assert!(own.is_empty(), "a limit-1 batch moved items");
            });
        }
        let mut log = recorder.thread(0);
        let start = &start;
        scope.spawn(move || {
            for i in 0..prefill(round) {
                let v = value(0, 500 + i);
                log.call(QueueOp::Push(v), || {
                    w.push(v);
                    QueueRet::Pushed
                });
            }
            start.wait();
            for i in 0..ops_per_thread(threads) {
                if i % 3 == 2 {
                    log.call(QueueOp::Pop, || {
                        std::thread::yield_now();
                        QueueRet::Popped(w.pop())
                    });
                } else {
                    let v = value(0, i);
                    log.call(QueueOp::Push(v), || {
                        std::thread::yield_now();
                        w.push(v);
                        QueueRet::Pushed
                    });
                }
            }
        });
    });
    check(&QueueModel::new(), &recorder.into_history(), budget).map(|r| r.overlapping)
}

/// One round of the injector: every thread alternates pushes of distinct values with
/// steals (`steal`, or a limit-1 `steal_batch_with_limit_and_pop` into its own worker).
fn injector_round(threads: usize, round: usize) -> Result<usize, Violation<QueueModel>> {
    let q = Injector::new();
    for i in 0..skew(round) {
        q.push(u64::MAX - i as u64);
        assert!(q.steal().is_success());
    }
    let recorder = Recorder::<QueueModel>::new(threads);
    let start = Barrier::new(threads);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let mut log = recorder.thread(t);
            let (q, start) = (&q, &start);
            scope.spawn(move || {
                let own = Worker::new_fifo();
                start.wait();
                for i in 0..ops_per_thread(threads) {
                    if i % 3 == 2 {
                        log.call(QueueOp::Pop, || {
                            std::thread::yield_now();
                            QueueRet::Popped(if (i / 3 + t).is_multiple_of(2) {
                                until_not_retry(|| q.steal())
                            } else {
                                until_not_retry(|| q.steal_batch_with_limit_and_pop(&own, 1))
                            })
                        });
                    } else {
                        let v = value(t, i);
                        log.call(QueueOp::Push(v), || {
                            std::thread::yield_now();
                            q.push(v);
                            QueueRet::Pushed
                        });
                    }
                }
                assert!(own.is_empty(), "a limit-1 batch moved items");
            });
        }
    });
    check(
        &QueueModel::new(),
        &recorder.into_history(),
        Budget::steps(BUDGET_STEPS),
    )
    .map(|r| r.overlapping)
}

/// Runs `ROUNDS` checked rounds at each thread count from 2 to 4 (2 only under miri),
/// re-running rounds without overlap.
fn run<M: Model>(name: &str, round: impl Fn(usize, usize) -> Result<usize, Violation<M>>) {
    common::run_rounds(name, ROUNDS, round);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn lifo_worker_is_a_linearizable_deque() {
    run("LIFO Worker / DequeModel", lifo_deque_round);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn fifo_worker_is_a_linearizable_queue() {
    run("FIFO Worker / QueueModel", |threads, round| {
        worker_queue_round(false, threads, round, Budget::steps(BUDGET_STEPS))
    });
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn injector_is_a_linearizable_queue() {
    run("Injector / QueueModel", injector_round);
}

/// The harness can fail: a LIFO worker checked against the FIFO queue model is
/// reported (its owner pops the newest of two or more items in some round).
#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn a_lifo_worker_is_not_a_queue() {
    // Under miri a round is short and its interleaving may never pop past a
    // newer item, so it gets more rounds.
    let rounds = if cfg!(miri) { 16 } else { 4 * ROUNDS };
    let caught = (0..rounds).any(|round| {
        matches!(
            // Only the verdict matters here: no shrinking of the counterexample (which
            // can take seconds in a debug build).
            worker_queue_round(
                true,
                2,
                round,
                Budget::steps(BUDGET_STEPS).with_shrink_checks(0)
            ),
            Err(Violation::NotLinearizable(_))
        )
    });
    assert!(
        caught,
        "the checker did not report a LIFO worker against the FIFO model"
    );
}

/// And the deque model tells the ends apart: a FIFO worker's owner pops the oldest,
/// which `PopBottom` (the newest) does not allow once two items are in.
#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn a_fifo_worker_is_not_a_lifo_deque() {
    let w = Worker::new_fifo();
    let recorder = Recorder::<DequeModel>::new(1);
    {
        let mut log = recorder.thread(0);
        for v in [1, 2] {
            log.call(DequeOp::PushBottom(v), || {
                w.push(v);
                DequeRet::Pushed
            });
        }
        log.call(DequeOp::PopBottom, || DequeRet::Popped(w.pop()));
    }
    let result = check(
        &DequeModel,
        &recorder.into_history(),
        Budget::steps(BUDGET_STEPS),
    );
    assert!(
        matches!(result, Err(Violation::NotLinearizable(_))),
        "a FIFO pop passed as PopBottom"
    );
}
