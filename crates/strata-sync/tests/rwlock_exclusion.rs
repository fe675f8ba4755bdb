//! Mutual exclusion, writer progress and timed waits of `AdaptiveRwLock` with real
//! threads. Short enough for ThreadSanitizer; shrunk under miri.
//!
//! The protected value is two plain (non-atomic) counters that every writer increments
//! one after the other: a reader that ever sees them differ has overlapped a writer,
//! and a final count that is not exact means two writers overlapped (a lost update).

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use strata_sync::rwlock::{
    AdaptiveRwLock, AdaptiveRwLockUpgradableReadGuard, AdaptiveRwLockWriteGuard,
};

#[derive(Debug, Default)]
struct Pair {
    a: u64,
    b: u64,
}

impl Pair {
    fn bump(&mut self) {
        self.a += 1;
        // Keep the two writes apart so that an overlapping reader can see them differ.
        std::hint::black_box(&mut *self);
        self.b += 1;
    }

    fn check(&self) -> u64 {
        assert_eq!(self.a, self.b, "a reader overlapped a writer");
        self.a
    }
}

fn iterations(normal: u64) -> u64 {
    if cfg!(miri) {
        normal / 2_000 + 2
    } else {
        normal
    }
}

/// Runs `f` on its own thread and fails the test if it does not finish within 30 s
/// (instead of hanging).
fn with_watchdog(name: &str, f: impl FnOnce() + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        f();
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(()) => h.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            // The body panicked: propagate its message.
            if let Err(e) = h.join() {
                std::panic::resume_unwind(e);
            }
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{name}: no progress in 30 s"),
    }
}

/// Writers, readers and upgraders (read, then upgrade, then increment) on 2, 4 and 8
/// threads: readers always see the pair equal, and the final count is exact.
#[test]
fn exclusion_mixed_roles() {
    for threads in [2u64, 4, 8] {
        with_watchdog("exclusion_mixed_roles", move || {
            let n = iterations(20_000);
            let lock = Arc::new(AdaptiveRwLock::new(Pair::default()));
            let barrier = Arc::new(Barrier::new(threads as usize));
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let lock = Arc::clone(&lock);
                    let barrier = Arc::clone(&barrier);
                    thread::spawn(move || {
                        barrier.wait();
                        let mut writes = 0;
                        for i in 0..n {
                            match (t + i) % 5 {
                                0 => {
                                    lock.write().unwrap().bump();
                                    writes += 1;
                                }
                                1 => {
                                    let u = lock.upgradable_read().unwrap();
                                    let before = u.check();
                                    let mut w = AdaptiveRwLockUpgradableReadGuard::upgrade(u);
                                    assert_eq!(
                                        w.check(),
                                        before,
                                        "a writer got in during the upgrade"
                                    );
                                    w.bump();
                                    writes += 1;
                                }
                                2 => {
                                    // Write, then downgrade: the reader part sees the write.
                                    let mut w = lock.write().unwrap();
                                    w.bump();
                                    let v = w.check();
                                    let r = AdaptiveRwLockWriteGuard::downgrade(w);
                                    assert_eq!(r.check(), v);
                                    writes += 1;
                                }
                                _ => {
                                    lock.read().unwrap().check();
                                }
                            }
                        }
                        writes
                    })
                })
                .collect();
            let writes: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            assert_eq!(lock.read().unwrap().check(), writes, "lost update");
            assert!(lock.try_write().is_ok(), "the lock ends free");
        });
    }
}

/// Readers hammer the lock continuously (each re-acquires at once); a writer must
/// still complete K writes. Fails after 30 s rather than hanging.
#[test]
fn writer_not_starved_by_readers() {
    with_watchdog("writer_not_starved_by_readers", || {
        let k = iterations(2_000);
        let lock = Arc::new(AdaptiveRwLock::new(Pair::default()));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let lock = Arc::clone(&lock);
                let stop = Arc::clone(&stop);
                thread::spawn(move || {
                    let mut reads = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let g = lock.read().unwrap();
                        g.check();
                        // Hold it a moment so that readers overlap continuously.
                        for _ in 0..50 {
                            std::hint::spin_loop();
                        }
                        drop(g);
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();
        for _ in 0..k {
            lock.write().unwrap().bump();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(lock.read().unwrap().check(), k);
    });
}

/// Timed writers, readers and upgradable readers with random timeouts (0 to 200 µs)
/// against plain writers: every timed acquisition either succeeds (and its write
/// counts) or times out cleanly; at the end the lock is free and the count exact.
#[test]
fn timed_waiters_with_random_timeouts() {
    with_watchdog("timed_waiters_with_random_timeouts", || {
        let n = iterations(10_000);
        let threads = 4u64;
        let lock = Arc::new(AdaptiveRwLock::new(Pair::default()));
        let barrier = Arc::new(Barrier::new(threads as usize));
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let lock = Arc::clone(&lock);
                let barrier = Arc::clone(&barrier);
                thread::spawn(move || {
                    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (t + 1);
                    let mut next = move || {
                        rng ^= rng << 13;
                        rng ^= rng >> 7;
                        rng ^= rng << 17;
                        rng
                    };
                    barrier.wait();
                    let mut writes = 0;
                    for _ in 0..n {
                        let r = next();
                        let timeout = Duration::from_micros(r % 200);
                        match (r >> 32) % 4 {
                            0 => {
                                if let Ok(mut w) = lock.try_write_for(timeout) {
                                    w.bump();
                                    writes += 1;
                                }
                            }
                            1 => {
                                if let Ok(g) = lock.try_read_for(timeout) {
                                    g.check();
                                }
                            }
                            2 => {
                                if let Ok(u) = lock.try_upgradable_read_for(timeout) {
                                    u.check();
                                    match AdaptiveRwLockUpgradableReadGuard::try_upgrade_for(
                                        u, timeout,
                                    ) {
                                        Ok(mut w) => {
                                            w.bump();
                                            writes += 1;
                                        }
                                        Err(u) => {
                                            u.check();
                                        }
                                    }
                                }
                            }
                            _ => {
                                lock.write().unwrap().bump();
                                writes += 1;
                            }
                        }
                    }
                    writes
                })
            })
            .collect();
        let writes: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        let w = lock.try_write().expect("the lock ends free");
        assert_eq!(w.check(), writes);
        drop(w);
        let r1 = lock.try_read().expect("readers admitted");
        let r2 = lock.try_upgradable_read().expect("upgradable admitted");
        drop((r1, r2));
    });
}

/// A queued reader is not held back by a queued upgradable reader that waits only for
/// another upgradable holder (a review found dispatch stopping at the first waiter it
/// could not serve): this thread holds an upgradable read and a read, fails a timed
/// upgrade while an upgradable reader and a reader queue behind its write claim; when
/// the claim is withdrawn, the reader must get in while the upgradable read is held.
#[test]
#[cfg_attr(miri, ignore = "sleeps to let the other threads queue")]
fn queued_reader_passes_a_blocked_upgradable_waiter() {
    let lock = Arc::new(AdaptiveRwLock::new(0u32));
    let up = lock.upgradable_read().unwrap();
    let held = lock.try_read().unwrap();
    let (tx, rx) = mpsc::channel();
    let queue = |upgradable: bool| {
        let (lock, tx) = (Arc::clone(&lock), tx.clone());
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(50));
            if upgradable {
                let _u = lock.upgradable_read().unwrap();
                tx.send("upgradable").unwrap();
            } else {
                let _r = lock.read().unwrap();
                tx.send("reader").unwrap();
            }
        })
    };
    let u = queue(true);
    thread::sleep(Duration::from_millis(10));
    let r = queue(false);
    // Claims the write lock (the two threads queue behind the claim), cannot drain
    // `held`, times out and withdraws the claim.
    let up = AdaptiveRwLockUpgradableReadGuard::try_upgrade_for(up, Duration::from_millis(300))
        .expect_err("our own read guard keeps the upgrade from completing");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)),
        Ok("reader"),
        "the queued reader stayed parked behind the upgradable waiter"
    );
    drop(held);
    drop(up);
    assert_eq!(rx.recv_timeout(Duration::from_secs(20)), Ok("upgradable"));
    u.join().unwrap();
    r.join().unwrap();
}
