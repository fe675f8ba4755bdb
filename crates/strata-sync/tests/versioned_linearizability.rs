//! Linearizability of `Versioned<u64>` as a register (strata-check's `RegisterModel`):
//! `read` and `read_with_version` are Reads, `store` a Write, and a `write` closure that compares and replaces
//! is a compare-and-swap. Ignored under miri (its weak-memory emulation lets a
//! `Release`-published store stay invisible to a later read in real time, which the
//! real-time oracle would report).

use std::sync::Barrier;

use strata_check::models::{RegisterModel, RegisterOp, RegisterRet};
use strata_check::{Budget, Recorder, Violation, check};
use strata_sync::versioned::Versioned;

const ROUNDS: usize = 30;
const OPS_PER_THREAD: u64 = 40;

/// One round on `threads` threads with `max_tries` optimistic attempts per read: the
/// number of overlapping operations, or the violation.
fn round(threads: usize, max_tries: u32) -> Result<usize, Violation<RegisterModel>> {
    let lock = Versioned::with_max_tries(0u64, max_tries);
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
                        1 => log.call(RegisterOp::Read, || {
                            std::thread::yield_now();
                            RegisterRet::Value(lock.read())
                        }),
                        _ => log.call(RegisterOp::Read, || {
                            std::thread::yield_now();
                            RegisterRet::Value(lock.read_with_version().0)
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
fn versioned_is_a_linearizable_register() {
    run(8);
}

/// One optimistic attempt per read: many reads take the lock.
#[test]
#[cfg_attr(miri, ignore)]
fn versioned_with_fallbacks_is_a_linearizable_register() {
    run(1);
}

fn run(max_tries: u32) {
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
            match round(threads, max_tries) {
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
