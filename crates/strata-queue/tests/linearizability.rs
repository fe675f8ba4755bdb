//! Linearizability of `Queue` (LPRQ, FIFO model, rings of 2 and 1024 cells), `MsQueue`
//! (FIFO model) and `TreiberStack` (LIFO model), over
//! both reclamation schemes, and of `ArrayQueue` (bounded FIFO model, with `Full`
//! answers, at capacities small enough to wrap and fill), on 2 to 4 threads: each round records a concurrent
//! history with `strata-check` and checks it. A round that is not linearizable, or
//! whose search runs over its budget, fails the test; a round with no overlap tested
//! nothing and is run again.

use std::sync::Barrier;

use strata_check::models::{QueueModel, QueueOp, QueueRet, StackModel};
use strata_check::{Budget, Model, Recorder, Violation, check};
use strata_queue::{ArrayQueue, MsQueue, Queue, TreiberStack};
use strata_reclaim::Reclaim;
use strata_reclaim::epoch::Epoch;
use strata_reclaim::hazard::Hazard;

mod common;

/// Operations per thread: 40 at 2 threads, 20 at 3, 8 at 4. With a yield inside
/// every recorded call the operations overlap heavily, and a FIFO state depends on
/// the order of the linearized pushes, not only on their set, so the search has a
/// long tail: at 4 threads × 12 about one round in 500 ran past 4 000 000 steps (a
/// budget overrun fails the test, as it must); at 4 × 8, 2 239 rounds needed at most
/// 628 089 steps (median 32), and 3 × 20 at most 32 661.
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
const ROUNDS: usize = if cfg!(miri) { 1 } else { 8 };

trait Container: Sync {
    /// `false` if a bounded container was full.
    fn push(&self, v: u64) -> bool;
    fn pop(&self) -> Option<u64>;
}

impl<R: Reclaim> Container for Queue<u64, R> {
    fn push(&self, v: u64) -> bool {
        Queue::push(self, v);
        true
    }
    fn pop(&self) -> Option<u64> {
        Queue::pop(self)
    }
}

impl<R: Reclaim> Container for MsQueue<u64, R> {
    fn push(&self, v: u64) -> bool {
        MsQueue::push(self, v);
        true
    }
    fn pop(&self) -> Option<u64> {
        MsQueue::pop(self)
    }
}

impl<R: Reclaim> Container for TreiberStack<u64, R> {
    fn push(&self, v: u64) -> bool {
        TreiberStack::push(self, v);
        true
    }
    fn pop(&self) -> Option<u64> {
        TreiberStack::pop(self)
    }
}

impl Container for ArrayQueue<u64> {
    fn push(&self, v: u64) -> bool {
        ArrayQueue::push(self, v).is_ok()
    }
    fn pop(&self) -> Option<u64> {
        ArrayQueue::pop(self)
    }
}

/// One round: `threads` threads start at a barrier and alternate pushes of distinct
/// values with pops; a yield inside each recorded call makes the operations overlap
/// even on a busy 2-core machine.
fn round<C, M>(c: &C, model: &M, threads: usize) -> Result<usize, Violation<M>>
where
    C: Container,
    M: Model<Op = QueueOp, Ret = QueueRet>,
{
    let recorder = Recorder::<M>::new(threads);
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let mut log = recorder.thread(t);
            let start = &start;
            s.spawn(move || {
                start.wait();
                for i in 0..ops_per_thread(threads) {
                    if i % 3 == 2 {
                        log.call(QueueOp::Pop, || {
                            std::thread::yield_now();
                            QueueRet::Popped(c.pop())
                        });
                    } else {
                        let v = (t as u64 + 1) * 1_000 + i as u64;
                        log.call(QueueOp::Push(v), || {
                            std::thread::yield_now();
                            if c.push(v) {
                                QueueRet::Pushed
                            } else {
                                QueueRet::Full
                            }
                        });
                    }
                }
            });
        }
    });
    check(model, &recorder.into_history(), Budget::steps(BUDGET_STEPS)).map(|r| r.overlapping)
}

fn run<C, M>(name: &str, make: impl Fn() -> C, model: M)
where
    C: Container,
    M: Model<Op = QueueOp, Ret = QueueRet>,
{
    common::run_rounds(name, ROUNDS, |threads, _| round(&make(), &model, threads));
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn lprq_small_rings_is_linearizable() {
    run(
        "Queue<Epoch>, rings of 2",
        || Queue::with_reclaim_and_ring_size(Epoch, 2),
        QueueModel::new(),
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn lprq_hazard_is_linearizable() {
    run(
        "Queue<Hazard>",
        || Queue::with_reclaim(Hazard),
        QueueModel::new(),
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn ms_queue_epoch_is_linearizable() {
    run(
        "MsQueue<Epoch>",
        || MsQueue::with_reclaim(Epoch),
        QueueModel::new(),
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn ms_queue_hazard_is_linearizable() {
    run(
        "MsQueue<Hazard>",
        || MsQueue::with_reclaim(Hazard),
        QueueModel::new(),
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn treiber_epoch_is_linearizable() {
    run(
        "TreiberStack<Epoch>",
        || TreiberStack::with_reclaim(Epoch),
        StackModel::new(),
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn treiber_hazard_is_linearizable() {
    run(
        "TreiberStack<Hazard>",
        || TreiberStack::with_reclaim(Hazard),
        StackModel::new(),
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn array_queue_is_linearizable() {
    for cap in [1, 2, 4] {
        run(
            "ArrayQueue",
            || ArrayQueue::new(cap),
            QueueModel::bounded(cap),
        );
    }
}

/// The harness can fail: a stack checked against the FIFO model is reported (pushes
/// of two values then pops come out in the wrong order in some round).
#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order: run by the miri-linearizability CI stage with weak-memory emulation off"
)]
fn a_stack_is_not_a_queue() {
    let caught = (0..4 * ROUNDS).any(|_| {
        matches!(
            round(&TreiberStack::with_reclaim(Epoch), &QueueModel::new(), 2),
            Err(Violation::NotLinearizable(_))
        )
    });
    assert!(
        caught,
        "the checker did not report a LIFO container against the FIFO model"
    );
}
