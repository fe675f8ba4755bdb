//! Linearizability of `SeqLock<u64>` and `Versioned<u64>` as registers (strata-check's
//! `RegisterModel`): reads are Reads, `store` a Write, and a `write` closure that
//! compares and replaces is a compare-and-swap. `Versioned` also reads through
//! `read_with_version`, and runs once with one optimistic attempt per read, so that
//! many reads take the lock. Ignored under miri (its weak-memory emulation lets a
//! `Release`-published store stay invisible to a later read in real time, which the
//! real-time oracle would report).

use std::sync::Barrier;

use strata_check::models::{RegisterModel, RegisterOp, RegisterRet};
use strata_check::{Budget, Recorder, Violation, check};
use strata_sync::seqlock::SeqLock;
use strata_sync::versioned::Versioned;

const ROUNDS: usize = 30;
const OPS_PER_THREAD: u64 = 40;

/// The two cells, as the registers the rounds drive.
trait Register: Sync {
    fn store(&self, v: u64);
    /// Replaces the value with `new` if it is `current`, in one `write`.
    fn cas(&self, current: u64, new: u64) -> Result<u64, u64>;
    /// The `step`-th read of a thread (a type may read in more than one way).
    fn read(&self, step: u64) -> u64;
}

/// A compare-and-swap through a `write` closure.
fn cas_in(
    write: impl FnOnce(&mut dyn FnMut(&mut u64)),
    current: u64,
    new: u64,
) -> Result<u64, u64> {
    let mut result = Ok(current);
    write(&mut |x: &mut u64| {
        if *x == current {
            *x = new;
        } else {
            result = Err(*x);
        }
    });
    result
}

impl Register for SeqLock<u64> {
    fn store(&self, v: u64) {
        SeqLock::store(self, v);
    }
    fn cas(&self, current: u64, new: u64) -> Result<u64, u64> {
        cas_in(|f| self.write(f), current, new)
    }
    fn read(&self, _step: u64) -> u64 {
        SeqLock::read(self)
    }
}

impl Register for Versioned<u64> {
    fn store(&self, v: u64) {
        Versioned::store(self, v);
    }
    fn cas(&self, current: u64, new: u64) -> Result<u64, u64> {
        cas_in(
            |f| {
                self.write(f);
            },
            current,
            new,
        )
    }
    fn read(&self, step: u64) -> u64 {
        if step % 2 == 1 {
            Versioned::read(self)
        } else {
            self.read_with_version().0
        }
    }
}

/// One round on `threads` threads over a fresh register from `make`: the number of
/// overlapping operations, or the violation.
fn round<R: Register>(
    threads: usize,
    make: &impl Fn() -> R,
) -> Result<usize, Violation<RegisterModel>> {
    let reg = make();
    let recorder = Recorder::<RegisterModel>::new(threads);
    let start = Barrier::new(threads);
    std::thread::scope(|s| {
        for t in 0..threads {
            let mut log = recorder.thread(t);
            let (reg, start) = (&reg, &start);
            s.spawn(move || {
                start.wait();
                for i in 0..OPS_PER_THREAD {
                    // Distinct values: thread and step.
                    let v = (t as u64 + 1) * 1000 + i;
                    let _ = match i % 4 {
                        0 => log.call(RegisterOp::Write(v), || {
                            std::thread::yield_now();
                            reg.store(v);
                            RegisterRet::Written
                        }),
                        2 => {
                            // Compare against what this thread saw last, so that
                            // some compare-and-swaps succeed.
                            let seen = reg.read(i);
                            log.call(RegisterOp::Cas(seen, v), || {
                                std::thread::yield_now();
                                RegisterRet::CasResult(reg.cas(seen, v))
                            })
                        }
                        _ => log.call(RegisterOp::Read, || {
                            std::thread::yield_now();
                            RegisterRet::Value(reg.read(i))
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

/// `ROUNDS` rounds with overlapping operations at each of 2, 3 and 4 threads.
fn run<R: Register>(make: impl Fn() -> R) {
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
            match round(threads, &make) {
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

#[test]
#[cfg_attr(miri, ignore)]
fn seqlock_is_a_linearizable_register() {
    run(|| SeqLock::new(0u64));
}

#[test]
#[cfg_attr(miri, ignore)]
fn versioned_is_a_linearizable_register() {
    run(|| Versioned::with_max_tries(0u64, 8));
}

/// One optimistic attempt per read: many reads take the lock.
#[test]
#[cfg_attr(miri, ignore)]
fn versioned_with_fallbacks_is_a_linearizable_register() {
    run(|| Versioned::with_max_tries(0u64, 1));
}
