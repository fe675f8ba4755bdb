//! Linearizability of `CombiningCounter` (strata-check's `CounterModel`: adds return
//! the previous value, gets the current one) and of `FlatCombining<VecDeque<u64>>` as
//! a FIFO queue (`QueueModel`), on 2 to 4 threads. Each round records a concurrent
//! history and checks it; a round that is not linearizable, or whose search runs over
//! its budget, fails the test; a round with no overlap tested nothing and is run again.
//! Ignored under miri (its weak-memory emulation and slowness make the real-time
//! order of a run meaningless for the check).

use std::collections::VecDeque;
use std::sync::Barrier;

use strata_check::models::{CounterModel, CounterOp, CounterRet, QueueModel, QueueOp, QueueRet};
use strata_check::{Budget, Model, Recorder, ThreadLog, Violation, check};
use strata_sync::combining::{CombiningCounter, FlatCombining};

const ROUNDS: usize = 8;
const BUDGET_STEPS: u64 = 4_000_000;

/// Operations per thread, smaller with more threads (the search's cost grows with the
/// overlap).
fn ops_per_thread(threads: usize) -> usize {
    match threads {
        2 => 40,
        3 => 20,
        _ => 8,
    }
}

/// Runs `ROUNDS` checked rounds of `threads` threads, each doing `body` on a fresh
/// object from `make`; retries a round whose threads did not overlap (at most 100
/// times in all).
fn rounds<M, O, F, B>(model: &M, threads: usize, make: F, body: B)
where
    M: Model,
    M::Op: Send,
    M::Ret: Send,
    O: Sync,
    F: Fn() -> O,
    B: Fn(&O, &mut ThreadLog<'_, M>, usize, usize) + Sync,
{
    let mut checked = 0;
    let mut retries = 0;
    while checked < ROUNDS {
        let object = make();
        let recorder = Recorder::<M>::new(threads);
        let start = Barrier::new(threads);
        std::thread::scope(|s| {
            for t in 0..threads {
                let mut log = recorder.thread(t);
                let (object, start, body) = (&object, &start, &body);
                s.spawn(move || {
                    start.wait();
                    for i in 0..ops_per_thread(threads) {
                        body(object, &mut log, t, i);
                    }
                });
            }
        });
        match check(model, &recorder.into_history(), Budget::steps(BUDGET_STEPS)) {
            Ok(_) => checked += 1,
            Err(Violation::NoOverlap { .. }) if retries < 100 => retries += 1,
            Err(e) => panic!("{threads} threads: {e}"),
        }
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn combining_counter_is_linearizable() {
    for threads in 2..=4 {
        rounds(
            &CounterModel,
            threads,
            || CombiningCounter::new(0),
            |c, log, t, i| {
                if i % 3 == 2 {
                    log.call(CounterOp::Get, || {
                        std::thread::yield_now();
                        CounterRet::Value(c.get())
                    });
                } else {
                    // Distinct amounts per thread, so results tell the adds apart.
                    let n = 1 << (t * 4);
                    log.call(CounterOp::Add(n), || {
                        std::thread::yield_now();
                        CounterRet::Added(c.add(n))
                    });
                }
            },
        );
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn flat_combining_queue_is_linearizable() {
    for threads in 2..=4 {
        rounds(
            &QueueModel::new(),
            threads,
            || FlatCombining::new(VecDeque::<u64>::new()),
            |q, log, t, i| {
                if i % 2 == 0 {
                    let v = (t as u64) * 1000 + i as u64;
                    log.call(QueueOp::Push(v), || {
                        std::thread::yield_now();
                        q.push_back(v);
                        QueueRet::Pushed
                    });
                } else {
                    log.call(QueueOp::Pop, || {
                        std::thread::yield_now();
                        QueueRet::Popped(q.pop_front())
                    });
                }
            },
        );
    }
}
