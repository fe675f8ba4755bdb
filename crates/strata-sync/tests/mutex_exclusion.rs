//! Stress tests of `AdaptiveMutex`: mutual exclusion checked with a plain (non-atomic)
//! counter, progress of every thread under contention (eventual fairness), and timed
//! waiters with random timeouts. Short enough for ThreadSanitizer; miri-sized under
//! `cfg!(miri)`. No assertion depends on timing except the watchdogs, which only turn
//! a hang into a failure after a generous delay.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, TryLockError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use strata_sync::mutex::{AdaptiveMutex, AdaptiveMutexGuard};

/// Fails the test instead of hanging if `rx` does not report within the watchdog.
const WATCHDOG: Duration = Duration::from_secs(30);

/// A counter incremented non-atomically in two steps (a read, a pause, a write), so a
/// lost exclusion shows up as a lost update (and as a data race under TSan and miri).
struct Plain {
    value: u64,
}

/// Takes the lock by the `i`-th acquisition kind, so every path is exercised.
fn acquire(m: &AdaptiveMutex<Plain>, i: u64) -> AdaptiveMutexGuard<'_, Plain> {
    match i % 4 {
        0 | 1 => m.lock().unwrap(),
        2 => loop {
            match m.try_lock_for(Duration::from_secs(1)) {
                Ok(g) => break g,
                Err(TryLockError::WouldBlock) => continue,
                Err(TryLockError::Poisoned(_)) => panic!("not poisoned"),
            }
        },
        _ => loop {
            match m.try_lock() {
                Ok(g) => break g,
                Err(TryLockError::WouldBlock) => std::hint::spin_loop(),
                Err(TryLockError::Poisoned(_)) => panic!("not poisoned"),
            }
        },
    }
}

fn exclusion(threads: u64) {
    let per_thread: u64 = if cfg!(miri) { 30 } else { 20_000 };
    let m = Arc::new(AdaptiveMutex::new(Plain { value: 0 }));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let m = Arc::clone(&m);
            thread::spawn(move || {
                for i in 0..per_thread {
                    let mut g = acquire(&m, i + t);
                    let v = g.value;
                    std::hint::spin_loop();
                    g.value = std::hint::black_box(v) + 1;
                    if i % 4 == 1 {
                        AdaptiveMutexGuard::unlock_fair(g);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(!m.is_locked());
    assert_eq!(m.lock().unwrap().value, threads * per_thread);
}

#[test]
fn exclusion_2_threads() {
    exclusion(2);
}

#[test]
fn exclusion_4_threads() {
    exclusion(4);
}

#[test]
fn exclusion_8_threads() {
    exclusion(8);
}

/// Every one of N threads hammering the lock (short critical sections, re-locking at
/// once) completes K acquisitions while the others keep hammering: nobody starves.
/// The fairness spread (max/min acquisitions) is printed, not asserted.
#[test]
fn no_thread_starves() {
    let threads: usize = if cfg!(miri) { 3 } else { 8 };
    let k: u64 = if cfg!(miri) { 5 } else { 200 };
    let m = Arc::new(AdaptiveMutex::new(0u64));
    let stop = Arc::new(AtomicBool::new(false));
    let counts: Arc<Vec<AtomicU64>> = Arc::new((0..threads).map(|_| AtomicU64::new(0)).collect());
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (m, stop, counts) = (Arc::clone(&m), Arc::clone(&stop), Arc::clone(&counts));
            thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let mut g = m.lock().unwrap();
                    *g += 1;
                    // Hold it a little, so the lock is nearly always contended.
                    for _ in 0..50 {
                        std::hint::spin_loop();
                    }
                    drop(g);
                    counts[t].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let start = Instant::now();
    loop {
        if counts.iter().all(|c| c.load(Ordering::Relaxed) >= k) {
            break;
        }
        assert!(
            start.elapsed() < WATCHDOG,
            "a thread starved: {:?}",
            counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect::<Vec<_>>()
        );
        thread::sleep(Duration::from_millis(1));
    }
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().unwrap();
    }
    let per: Vec<u64> = counts.iter().map(|c| c.load(Ordering::Relaxed)).collect();
    let total: u64 = per.iter().sum();
    assert_eq!(*m.lock().unwrap(), total);
    let (min, max) = (per.iter().min().unwrap(), per.iter().max().unwrap());
    println!(
        "acquisitions per thread {per:?}, spread max/min {:.2}",
        *max as f64 / *min as f64
    );
}

/// xorshift64: a tiny deterministic generator for the timeouts.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Timed waiters with random (often expiring) timeouts contend with untimed lockers
/// and with each other: the counter equals the number of successful acquisitions, and
/// the lock ends free with nobody queued (a later `try_lock` succeeds at once).
#[test]
fn timed_waiters_with_random_timeouts() {
    let threads: u64 = if cfg!(miri) { 3 } else { 6 };
    let per_thread: u64 = if cfg!(miri) { 20 } else { 3_000 };
    let m = Arc::new(AdaptiveMutex::new(Plain { value: 0 }));
    let (tx, rx) = mpsc::channel();
    for t in 0..threads {
        let (m, tx) = (Arc::clone(&m), tx.clone());
        thread::spawn(move || {
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (t + 1);
            let mut got = 0u64;
            for _ in 0..per_thread {
                let r = next(&mut rng);
                let guard = if t == 0 {
                    // One untimed locker keeps the others' timeouts racing unlocks.
                    Some(m.lock().unwrap())
                } else {
                    match m.try_lock_for(Duration::from_micros(r % 200)) {
                        Ok(g) => Some(g),
                        Err(TryLockError::WouldBlock) => None,
                        Err(TryLockError::Poisoned(_)) => panic!("not poisoned"),
                    }
                };
                if let Some(mut g) = guard {
                    let v = g.value;
                    for _ in 0..(r >> 60) {
                        std::hint::spin_loop();
                    }
                    g.value = std::hint::black_box(v) + 1;
                    got += 1;
                    if r & 1 == 0 {
                        AdaptiveMutexGuard::unlock_fair(g);
                    }
                }
            }
            tx.send(got).unwrap();
        });
    }
    drop(tx);
    let mut total = 0;
    for _ in 0..threads {
        total += rx
            .recv_timeout(WATCHDOG)
            .expect("a timed or untimed waiter hung (lost wake-up?)");
    }
    assert!(!m.is_locked());
    let g = m.try_lock().expect("the lock ends free");
    assert_eq!(g.value, total);
}
