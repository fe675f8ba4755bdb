//! Linearizability of `SeqLock<u64>` as a register (strata-check's `RegisterModel`):
//! `read` is a Read, `store` a Write, and a `write` closure that compares and replaces
//! is a compare-and-swap. Ignored under miri (its weak-memory emulation lets a
//! `Release`-published store stay invisible to a later read in real time, which the
//! real-time oracle would report).

use std::sync::Barrier;

use strata_check::models::{RegisterModel, RegisterOp, RegisterRet};
use strata_check::{Budget, Recorder, Violation, check};
use strata_sync::seqlock::SeqLock;

const ROUNDS: usize = 30;
const OPS_PER_THREAD: u64 = 40;

/// One round on `threads` threads: the number of overlapping operations, or the
/// violation.
fn round(threads: usize) -> Result<usize, Violation<RegisterModel>> {
    let lock = SeqLock::new(0u64);
    let recorder = Recorder::<RegisterModel>::new(threads);
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let mut log = recorder.thread(t);
            let (lock, start) = (&lock, &start);
            s.spawn(move || {
                start.wait();
                for i in 0..OPS_PER_THREAD {
                    // Distinct values: thread and step.
                    let v = (t as u64 + 1) * 1000 + i;
                    let _ = match i % 4 {
                        0 => log.call(RegisterOp::Write(v), || {
                            std::thread::yield_now();
                            lock.store(v);
                            RegisterRet::Written
                        }),
                        2 => {
                            // Compare against what this thread saw last, so that
                            // some compare-and-swaps succeed.
                            let seen = lock.read();
                            log.call(RegisterOp::Cas(seen, v), || {
                                std::thread::yield_now();
                                let mut result = Ok(seen);
                                lock.write(|x| {
                                    if *x == seen {
                                        *x = v;
                                    } else {
                                        result = Err(*x);
                                    }
                                });
                                RegisterRet::CasResult(result)
                            })
                        }
                        _ => log.call(RegisterOp::Read, || {
                            std::thread::yield_now();
                            RegisterRet::Value(lock.read())
                        }),
                    };
                }
            });
        }
    });
    check(
        &RegisterModel::new(0),
        &recorder.into_history(),
        Budget::default(),
    )
    .map(|report| report.overlapping)
}

#[test]
#[cfg_attr(miri, ignore)]
fn seqlock_is_a_linearizable_register() {
    let mut overlapping = 0;
    for threads in 2..=4 {
        let mut done = 0;
        let mut tries = 0;
        while done < ROUNDS {
            tries += 1;
            assert!(
                tries <= 4 * ROUNDS,
                "{threads} threads: too many rounds without overlap"
            );
            match round(threads) {
                Ok(n) => {
                    overlapping += n;
                    done += 1;
                }
                Err(Violation::NoOverlap { .. }) => {}
                Err(e) => panic!("{threads} threads, round {tries}: {e}"),
            }
        }
    }
    assert!(overlapping > 0, "no round had overlapping operations");
}
