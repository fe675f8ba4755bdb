//! `lock_many` from many threads with random overlapping key sets and modes never
//! deadlocks (a watchdog fails the test after a generous bound instead of hanging),
//! and keeps mutual exclusion on every key of a set.

use std::cell::UnsafeCell;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use strata_sync::keylock::{KeyLockError, KeyLockManager, LockMode};

const KEYS: usize = 6;

/// One plain counter per key, written only under that key's write lock.
struct Counters([UnsafeCell<u64>; KEYS]);

// SAFETY: counter `k` is written only by a thread holding key `k` for writing and read
// only by a thread holding key `k` (read or write), which the manager's mutual
// exclusion makes race-free; that is what the test checks.
unsafe impl Sync for Counters {}

/// A xorshift generator: the test needs varied key sets, not good randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A random set of 1..=4 keys (possibly repeated) with random modes.
fn random_set(rng: &mut Rng) -> Vec<(u32, LockMode)> {
    let n = 1 + (rng.next() % 4) as usize;
    (0..n)
        .map(|_| {
            let k = (rng.next() % KEYS as u64) as u32;
            let mode = if rng.next().is_multiple_of(3) {
                LockMode::Read
            } else {
                LockMode::Write
            };
            (k, mode)
        })
        .collect()
}

#[test]
fn random_overlapping_sets_never_deadlock() {
    let (threads, rounds) = if cfg!(miri) { (3, 15) } else { (8, 1500) };
    let m = Arc::new(KeyLockManager::<u32>::with_shards(4).unwrap());
    let c = Arc::new(Counters(std::array::from_fn(|_| UnsafeCell::new(0))));
    let (done, finished) = mpsc::channel();
    for t in 0..threads {
        let (m, c, done) = (Arc::clone(&m), Arc::clone(&c), done.clone());
        std::thread::spawn(move || {
            let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ ((t as u64 + 1) * 0x1234_5678_9ABC_DEF1));
            let mut writes = [0u64; KEYS];
            for i in 0..rounds {
                let set = random_set(&mut rng);
                let g = if i % 5 == 4 {
                    match m.try_lock_many_for(set, Duration::from_micros(100)) {
                        Ok(g) => g,
                        Err(e) => {
                            assert_eq!(e, KeyLockError::Timeout);
                            continue;
                        }
                    }
                } else {
                    m.lock_many(set)
                };
                let held: Vec<(u32, LockMode)> = g.iter().map(|(k, md)| (*k, md)).collect();
                assert!(
                    held.windows(2).all(|w| w[0].0 < w[1].0),
                    "sorted, deduplicated"
                );
                for (k, mode) in held {
                    let cell = &c.0[k as usize];
                    if mode == LockMode::Write {
                        // SAFETY: this thread holds key `k` for writing.
                        unsafe { *cell.get() += 1 };
                        writes[k as usize] += 1;
                    } else {
                        // SAFETY: this thread holds key `k` for reading: no writer.
                        std::hint::black_box(unsafe { *cell.get() });
                    }
                }
                drop(g);
            }
            done.send(writes).unwrap();
        });
    }
    drop(done);
    let mut expected = [0u64; KEYS];
    for _ in 0..threads {
        // Not a timing assertion: a bound far beyond any run, so that a deadlock fails
        // the test instead of hanging it.
        let w = finished
            .recv_timeout(Duration::from_secs(120))
            .expect("lock_many deadlocked (no progress for 120 s)");
        for (e, n) in expected.iter_mut().zip(w) {
            *e += n;
        }
    }
    let all = m.lock_many((0..KEYS as u32).map(|k| (k, LockMode::Read)));
    for (k, (cell, want)) in c.0.iter().zip(expected).enumerate() {
        // SAFETY: `all` holds every key for reading.
        let got = unsafe { *cell.get() };
        assert_eq!(got, want, "key {k}: a write was lost");
    }
    drop(all);
    assert_eq!(m.live_keys(), 0);
}
