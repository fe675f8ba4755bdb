//! Stress: many tasks read, write, take upgradable reads and upgrade, with random
//! cancellation by `tokio::time::timeout` and by dropping lock futures after one poll.
//! Throughout, a writer is alone (no reader and no other writer inside) and readers see
//! the pair of counters equal; at the end `try_write` succeeds (every permit is back)
//! and the counters equal the number of completed writes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use strata_async::rwlock::{RwLock, RwLockUpgradableReadGuard, RwLockWriteGuard};

/// Who is inside the lock, checked on every entry.
#[derive(Default)]
struct Inside {
    readers: AtomicUsize,
    writers: AtomicUsize,
}

impl Inside {
    fn enter_read(&self) {
        self.readers.fetch_add(1, Ordering::SeqCst);
        assert_eq!(
            self.writers.load(Ordering::SeqCst),
            0,
            "reader inside with a writer"
        );
    }
    fn leave_read(&self) {
        self.readers.fetch_sub(1, Ordering::SeqCst);
    }
    fn enter_write(&self) {
        assert_eq!(
            self.writers.fetch_add(1, Ordering::SeqCst),
            0,
            "two writers inside"
        );
        assert_eq!(
            self.readers.load(Ordering::SeqCst),
            0,
            "writer inside with readers"
        );
    }
    fn leave_write(&self) {
        self.writers.fetch_sub(1, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Pair {
    a: u64,
    b: u64,
}

/// A small xorshift generator, seeded per task.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn tokio_random_cancellation() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_time()
        .build()
        .unwrap();
    let lock = Arc::new(RwLock::with_max_readers(Pair::default(), 6));
    let inside = Arc::new(Inside::default());
    let writes = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let completed = Arc::new(AtomicUsize::new(0));
    let timed_out = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let hs: Vec<_> = (0..48u64)
            .map(|id| {
                let (lock, inside) = (Arc::clone(&lock), Arc::clone(&inside));
                let (writes, cancelled, completed) = (
                    Arc::clone(&writes),
                    Arc::clone(&cancelled),
                    Arc::clone(&completed),
                );
                let timed_out = Arc::clone(&timed_out);
                tokio::spawn(async move {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id + 1).wrapping_mul(0x2545_F491));
                    let short = Duration::from_micros(50);
                    for _ in 0..1000 {
                        let r = rng.next();
                        let cancel = r % 3; // 0: run, 1: timeout, 2: drop after one poll
                        match (r >> 8) % 4 {
                            0 => {
                                let fut = lock.read();
                                let g = match cancel {
                                    0 => Some(fut.await),
                                    1 => tokio::time::timeout(short, fut).await.ok(),
                                    _ => fut.now_or_never(),
                                };
                                let Some(g) = g else {
                                    cancelled.fetch_add(1, Ordering::Relaxed);
                                    timed_out
                                        .fetch_add(usize::from(cancel == 1), Ordering::Relaxed);
                                    continue;
                                };
                                inside.enter_read();
                                assert_eq!(g.a, g.b, "reader saw a half-done write");
                                tokio::task::yield_now().await;
                                inside.leave_read();
                            }
                            1 => {
                                let fut = lock.write();
                                let g = match cancel {
                                    0 => Some(fut.await),
                                    1 => tokio::time::timeout(short, fut).await.ok(),
                                    _ => fut.now_or_never(),
                                };
                                let Some(mut g) = g else {
                                    cancelled.fetch_add(1, Ordering::Relaxed);
                                    timed_out
                                        .fetch_add(usize::from(cancel == 1), Ordering::Relaxed);
                                    continue;
                                };
                                inside.enter_write();
                                g.a += 1;
                                tokio::task::yield_now().await;
                                g.b += 1;
                                writes.fetch_add(1, Ordering::Relaxed);
                                inside.leave_write();
                                if r & (1 << 20) != 0 {
                                    let d = RwLockWriteGuard::downgrade(g);
                                    inside.enter_read();
                                    assert_eq!(d.a, d.b);
                                    inside.leave_read();
                                }
                            }
                            2 => {
                                let fut = lock.upgradable_read();
                                let u = match cancel {
                                    0 => Some(fut.await),
                                    1 => tokio::time::timeout(short, fut).await.ok(),
                                    _ => fut.now_or_never(),
                                };
                                let Some(u) = u else {
                                    cancelled.fetch_add(1, Ordering::Relaxed);
                                    timed_out
                                        .fetch_add(usize::from(cancel == 1), Ordering::Relaxed);
                                    continue;
                                };
                                inside.enter_read();
                                assert_eq!(u.a, u.b);
                                inside.leave_read();
                                // Upgrade, with its own random cancellation (which
                                // releases the upgradable read too).
                                let up = RwLockUpgradableReadGuard::upgrade(u);
                                let g = match (r >> 16) % 3 {
                                    0 => Some(up.await),
                                    1 => tokio::time::timeout(short, up).await.ok(),
                                    _ => up.now_or_never(),
                                };
                                let Some(mut g) = g else {
                                    cancelled.fetch_add(1, Ordering::Relaxed);
                                    timed_out.fetch_add(
                                        usize::from((r >> 16) % 3 == 1),
                                        Ordering::Relaxed,
                                    );
                                    continue;
                                };
                                inside.enter_write();
                                g.a += 1;
                                g.b += 1;
                                writes.fetch_add(1, Ordering::Relaxed);
                                inside.leave_write();
                            }
                            _ => {
                                // try_* paths mixed in.
                                if r & (1 << 24) != 0 {
                                    if let Ok(mut g) = lock.try_write() {
                                        inside.enter_write();
                                        g.a += 1;
                                        g.b += 1;
                                        writes.fetch_add(1, Ordering::Relaxed);
                                        inside.leave_write();
                                    }
                                } else if let Ok(g) = lock.try_read() {
                                    inside.enter_read();
                                    assert_eq!(g.a, g.b);
                                    inside.leave_read();
                                } else if let Ok(u) = lock.try_upgradable_read() {
                                    match u.try_upgrade() {
                                        Ok(mut g) => {
                                            inside.enter_write();
                                            g.a += 1;
                                            g.b += 1;
                                            writes.fetch_add(1, Ordering::Relaxed);
                                            inside.leave_write();
                                        }
                                        Err(u) => {
                                            inside.enter_read();
                                            assert_eq!(u.a, u.b);
                                            inside.leave_read();
                                        }
                                    }
                                }
                            }
                        }
                        completed.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        let all = async {
            for h in hs {
                h.await.unwrap();
            }
        };
        tokio::time::timeout(Duration::from_secs(120), all)
            .await
            .expect("watchdog: tasks hung (lost wake-up or leaked permit)");
    });
    let g = lock.try_write().expect("every permit is back");
    let w = writes.load(Ordering::Relaxed) as u64;
    assert_eq!((g.a, g.b), (w, w));
    eprintln!(
        "completed {}, cancelled {} (of which timed out {}), writes {w}",
        completed.load(Ordering::Relaxed),
        cancelled.load(Ordering::Relaxed),
        timed_out.load(Ordering::Relaxed)
    );
    assert!(
        cancelled.load(Ordering::Relaxed) > 0,
        "no cancellation exercised"
    );
    assert!(completed.load(Ordering::Relaxed) > 0);
}
