//! Linearizability of `RcuCell` as a register (strata-check's `RegisterModel`): `load`
//! is a read, `store` a write, and `compare_and_swap` a compare-and-swap, over the
//! default epoch scheme and hazard pointers, on 2 and 3 threads. Every written value
//! is distinct, so comparing the cell's `Arc` by identity (what `compare_and_swap`
//! does) is comparing values. A round that is not linearizable, or whose search runs
//! over its budget, fails the test; a round with no overlap tested nothing and is run
//! again.

use std::sync::{Arc, Barrier};

use strata_check::models::{RegisterModel, RegisterOp, RegisterRet};
use strata_check::{Budget, Recorder, Violation, check};
use strata_reclaim::epoch::Epoch;
use strata_reclaim::hazard::Hazard;
use strata_sync::rcu::{RcuCell, RcuReclaim};

const OPS_PER_THREAD: usize = 30;
const ROUNDS: usize = 8;
const BUDGET_STEPS: u64 = 2_000_000;

/// One round: each thread alternates loads, stores of distinct values, and
/// compare-and-swaps from a value it loaded earlier (often stale by then).
fn round<R: RcuReclaim + Default>(threads: usize) -> Result<usize, Violation<RegisterModel>> {
    let cell = RcuCell::<u64, R>::with_reclaim(0, R::default());
    let recorder = Recorder::<RegisterModel>::new(threads);
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let mut log = recorder.thread(t);
            let (start, cell) = (&start, &cell);
            s.spawn(move || {
                start.wait();
                let mut seen: Arc<u64> = cell.load_full();
                for i in 0..OPS_PER_THREAD {
                    let fresh = (t as u64 + 1) * 1_000 + i as u64;
                    match i % 3 {
                        0 => {
                            log.call(RegisterOp::Read, || {
                                std::thread::yield_now();
                                RegisterRet::Value(*cell.load())
                            });
                            seen = cell.load_full();
                        }
                        1 => {
                            log.call(RegisterOp::Write(fresh), || {
                                std::thread::yield_now();
                                cell.store(fresh);
                                RegisterRet::Written
                            });
                        }
                        _ => {
                            log.call(RegisterOp::Cas(*seen, fresh), || {
                                std::thread::yield_now();
                                RegisterRet::CasResult(
                                    match cell.compare_and_swap(&seen, Arc::new(fresh)) {
                                        Ok(prev) => Ok(*prev),
                                        Err(e) => Err(*e.current),
                                    },
                                )
                            });
                        }
                    }
                }
            });
        }
    });
    check(
        &RegisterModel::new(0),
        &recorder.into_history(),
        Budget::steps(BUDGET_STEPS),
    )
    .map(|r| r.overlapping)
}

fn run<R: RcuReclaim + Default>(name: &str) {
    let mut overlapping = 0;
    for threads in 2..=3 {
        let (mut done, mut tries) = (0, 0);
        while done < ROUNDS {
            tries += 1;
            assert!(
                tries <= 4 * ROUNDS,
                "{name}, {threads} threads: too many rounds without overlap"
            );
            match round::<R>(threads) {
                Ok(n) => {
                    overlapping += n;
                    done += 1;
                }
                Err(Violation::NoOverlap { .. }) => {}
                Err(e) => panic!("{name}, {threads} threads, round {tries}: {e}"),
            }
        }
    }
    assert!(
        overlapping > 0,
        "{name}: no round had overlapping operations"
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order, which miri's weak-memory emulation does not respect"
)]
fn rcu_cell_epoch_is_linearizable() {
    run::<Epoch>("RcuCell<u64, Epoch>");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "checked against real-time order, which miri's weak-memory emulation does not respect"
)]
fn rcu_cell_hazard_is_linearizable() {
    run::<Hazard>("RcuCell<u64, Hazard>");
}
