//! Stress tests of `KeyLockManager`'s mutual exclusion and of its table clean-up, with
//! real threads (short enough for ThreadSanitizer and, shrunk, for miri).

use std::cell::UnsafeCell;
use std::sync::Barrier;
use std::time::Duration;

use strata_sync::keylock::{KeyLockError, KeyLockManager};

/// A plain (non-atomic) counter per key, guarded only by the key locks under test: if
/// two writers (or a writer and a reader) ever overlapped, updates would be lost or a
/// reader would see a value change, and ThreadSanitizer and miri would report a race.
struct Counters(Vec<UnsafeCell<u64>>);

// SAFETY: counter `k` is accessed only by a thread that holds key `k`'s lock: written
// under the write lock, read under the read or the write lock. The manager's mutual
// exclusion, which these tests check, makes the accesses race-free.
unsafe impl Sync for Counters {}

impl Counters {
    fn new(n: usize) -> Self {
        Self((0..n).map(|_| UnsafeCell::new(0)).collect())
    }

    /// The caller holds key `k`'s read or write lock.
    fn get(&self, k: usize) -> u64 {
        // SAFETY: the caller holds key `k`'s lock, so no thread writes counter `k`.
        unsafe { *self.0[k].get() }
    }

    /// A separate read and write. The caller holds key `k`'s write lock.
    fn bump(&self, k: usize) {
        let v = self.get(k);
        std::hint::black_box(v);
        // SAFETY: the caller holds key `k`'s write lock: no other thread reads or
        // writes counter `k`.
        unsafe { *self.0[k].get() = v + 1 };
    }
}

fn small() -> bool {
    cfg!(miri)
}

/// Many threads bump per-key counters under `write` for a few keys (on few shards, so
/// keys share shard mutexes), readers under `read` check the value does not change
/// while they hold it; totals are exact and the table ends empty.
#[test]
fn writers_exclude_and_readers_see_stable_values() {
    let (threads, rounds, keys) = if small() { (3, 30, 3) } else { (8, 4000, 5) };
    let m = KeyLockManager::<u64>::with_shards(2).unwrap();
    let c = Counters::new(keys);
    let start = Barrier::new(threads);
    let writes_per_thread = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (m, c, start) = (&m, &c, &start);
                s.spawn(move || {
                    start.wait();
                    let mut writes = 0u64;
                    for i in 0..rounds {
                        let k = (i * 7 + t) % keys;
                        if i % 3 == 0 {
                            let g = m.read(&(k as u64));
                            let before = c.get(k);
                            std::thread::yield_now();
                            assert_eq!(before, c.get(k), "a value changed under a read lock");
                            drop(g);
                        } else {
                            let _g = m.write(&(k as u64));
                            c.bump(k);
                            writes += 1;
                        }
                    }
                    writes
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
    });
    let total: u64 = (0..keys)
        .map(|k| {
            let _g = m.read(&(k as u64));
            c.get(k)
        })
        .sum();
    assert_eq!(
        total, writes_per_thread,
        "a write was lost: writers overlapped"
    );
    assert_eq!(m.live_keys(), 0);
    let s = m.stats();
    assert_eq!(s.acquisitions, (threads * rounds + keys) as u64);
    assert!(s.contention_ratio() <= 1.0);
}

/// Entries are removed whatever the way out: after `try_` failures and timeouts that
/// raced with holders, the table is empty once every guard is dropped.
#[test]
fn table_empties_after_failures_and_timeouts() {
    let (threads, rounds) = if small() { (3, 20) } else { (6, 1500) };
    let m = KeyLockManager::<u64>::with_shards(1).unwrap();
    let c = Counters::new(2);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (m, c) = (&m, &c);
            s.spawn(move || {
                for i in 0..rounds {
                    let k = ((i + t) % 2) as u64;
                    match (i + t) % 4 {
                        0 => {
                            if let Ok(_g) = m.try_write(&k) {
                                c.bump(k as usize);
                            }
                        }
                        1 => match m.try_read_for(&k, Duration::from_micros(50)) {
                            Ok(g) => drop(g),
                            Err(e) => assert_eq!(e, KeyLockError::Timeout),
                        },
                        2 => match m.try_write_for(&k, Duration::from_micros(50)) {
                            Ok(_g) => c.bump(k as usize),
                            Err(e) => assert_eq!(e, KeyLockError::Timeout),
                        },
                        _ => {
                            let _g = m.write(&k);
                            c.bump(k as usize);
                            std::thread::yield_now();
                        }
                    }
                }
            });
        }
    });
    assert_eq!(
        m.live_keys(),
        0,
        "an entry outlived its last holder and waiter"
    );
    let s = m.stats();
    assert_eq!(s.live_keys, 0);
    let g = m.lock_many([
        (0, strata_sync::keylock::LockMode::Read),
        (1, strata_sync::keylock::LockMode::Read),
    ]);
    let bumps = c.get(0) + c.get(1);
    drop(g);
    assert!(bumps <= s.acquisitions);
}
