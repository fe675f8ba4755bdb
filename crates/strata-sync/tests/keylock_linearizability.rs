//! Linearizability of critical sections under `KeyLockManager` (strata-check).
//!
//! Each recorded operation is a whole critical section on one key: `Inc(k)` takes `k`'s
//! write lock, reads a plain per-key counter, yields, writes it plus one and returns
//! what it read; `Get(k)` takes `k`'s read lock and returns the counter. The model is a
//! counter per key (checked key by key, P-compositionality). If two writers' critical
//! sections ever overlapped, both would read the same value and return it, which no
//! sequential order explains; a reader overlapping a writer could see a value outside
//! the writer's interval. So a linearizable history is evidence of mutual exclusion
//! and of the ordering of critical sections in real time.

use std::cell::UnsafeCell;
use std::collections::BTreeMap;
use std::sync::Barrier;

use strata_check::{Budget, Model, Operation, Recorder, Violation, check};
use strata_sync::keylock::KeyLockManager;

/// A critical section on one key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Op {
    Inc(u64),
    Get(u64),
}

impl Op {
    fn key(self) -> u64 {
        match self {
            Op::Inc(k) | Op::Get(k) => k,
        }
    }
}

/// A counter per key, starting at 0: `Inc` returns the value before, `Get` the value.
#[derive(Clone, Copy, Debug, Default)]
struct KeyCounters;

impl Model for KeyCounters {
    type Op = Op;
    type Ret = u64;
    type State = BTreeMap<u64, u64>;

    fn init(&self) -> Self::State {
        BTreeMap::new()
    }

    fn apply(&self, state: &Self::State, op: &Op) -> (Self::State, u64) {
        let mut s = state.clone();
        let v = s.get(&op.key()).copied().unwrap_or(0);
        if let Op::Inc(k) = *op {
            s.insert(k, v + 1);
        }
        (s, v)
    }

    fn partition(&self, ops: &[Operation<Op, u64>]) -> Vec<Vec<usize>> {
        let mut by_key: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, o) in ops.iter().enumerate() {
            by_key.entry(o.op.key()).or_default().push(i);
        }
        by_key.into_values().collect()
    }
}

const KEYS: usize = 2;

/// The per-key counters, guarded only by the key locks under test.
struct Cells([UnsafeCell<u64>; KEYS]);

// SAFETY: cell `k` is written only under key `k`'s write lock and read only under key
// `k`'s read or write lock, which the manager's mutual exclusion makes race-free.
unsafe impl Sync for Cells {}

#[test]
#[cfg_attr(
    miri,
    ignore = "real-time order under miri's scheduler proves nothing and is slow"
)]
fn critical_sections_are_linearizable() {
    const THREADS: usize = 3;
    const OPS: u64 = 60;
    let mut checked = 0;
    let mut overlapping = 0;
    for round in 0..200 {
        let m = KeyLockManager::<u64>::with_shards(1).unwrap();
        let cells = Cells(std::array::from_fn(|_| UnsafeCell::new(0)));
        let recorder = Recorder::<KeyCounters>::new(THREADS);
        let start = Barrier::new(THREADS);
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let mut log = recorder.thread(t);
                let (m, cells, start) = (&m, &cells, &start);
                s.spawn(move || {
                    start.wait();
                    for i in 0..OPS {
                        let k = (i + t as u64 + round) % KEYS as u64;
                        let cell = &cells.0[k as usize];
                        if (i + t as u64).is_multiple_of(3) {
                            log.call(Op::Get(k), || {
                                let _g = m.read(&k);
                                std::thread::yield_now();
                                // SAFETY: key `k`'s read lock is held: no writer.
                                unsafe { *cell.get() }
                            });
                        } else {
                            log.call(Op::Inc(k), || {
                                std::thread::yield_now();
                                let _g = m.write(&k);
                                // SAFETY: key `k`'s write lock is held: nobody else
                                // reads or writes the cell.
                                let v = unsafe { *cell.get() };
                                std::thread::yield_now();
                                // SAFETY: as above.
                                unsafe { *cell.get() = v + 1 };
                                v
                            });
                        }
                    }
                });
            }
        });
        assert_eq!(m.live_keys(), 0);
        match check(&KeyCounters, &recorder.into_history(), Budget::default()) {
            Ok(report) => {
                checked += 1;
                overlapping += report.overlapping;
                if checked == 10 {
                    break;
                }
            }
            // The threads ran one after the other: the round tested nothing.
            Err(Violation::NoOverlap { .. }) => continue,
            Err(e) => panic!("critical sections are not linearizable:\n{e}"),
        }
    }
    assert!(checked > 0, "no round had overlapping operations");
    assert!(overlapping > 0);
}
