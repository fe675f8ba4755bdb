//! The mutex on two executors: tokio's multi-thread runtime and
//! `futures::executor::block_on` on several std threads, plus random cancellation.
//!
//! The guarded value is a plain (non-atomic) counter updated by a read, a yield while
//! the lock is held, and a write: a broken exclusion loses updates, so the final count
//! must be exact. An atomic "inside" counter must never exceed 1. At the end the lock
//! is free (`try_lock` succeeds), so no cancellation leaked it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use strata_async::mutex::{Mutex, MutexGuard, OwnedMutexGuard};

/// A future that returns `Pending` once (after waking itself): a yield that works on
/// any executor.
async fn yield_once() {
    let mut yielded = false;
    core::future::poll_fn(|cx| {
        if yielded {
            core::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            core::task::Poll::Pending
        }
    })
    .await
}

/// Counts the holders inside the critical section at once and keeps the maximum.
#[derive(Default)]
struct Inside {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Inside {
    fn enter(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// `iters` increments through the borrowed, owned and mapped guards in turn.
async fn worker(m: Arc<Mutex<(u64, u64)>>, inside: Arc<Inside>, id: usize, iters: usize) {
    for i in 0..iters {
        match (id + i) % 3 {
            0 => {
                let mut g = m.lock().await;
                inside.enter();
                let v = g.0;
                yield_once().await;
                g.0 = v + 1;
                inside.leave();
            }
            1 => {
                let g = Arc::clone(&m).lock_owned().await;
                inside.enter();
                let mut g = OwnedMutexGuard::map(g, |p| &mut p.0);
                let v = *g;
                yield_once().await;
                *g = v + 1;
                inside.leave();
            }
            _ => {
                let g = m.lock().await;
                inside.enter();
                let mut g = MutexGuard::map(g, |p| &mut p.0);
                let v = *g;
                yield_once().await;
                *g = v + 1;
                inside.leave();
            }
        }
    }
}

fn sizes() -> (usize, usize) {
    if cfg!(miri) { (4, 5) } else { (64, 100) }
}

#[test]
#[cfg_attr(miri, ignore)] // tokio's runtime under miri is too slow
fn tokio_multi_thread_exact_count() {
    let (tasks, iters) = sizes();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .build()
        .unwrap();
    let m = Arc::new(Mutex::new((0u64, 0u64)));
    let inside = Arc::new(Inside::default());
    rt.block_on(async {
        let hs: Vec<_> = (0..tasks)
            .map(|id| tokio::spawn(worker(Arc::clone(&m), Arc::clone(&inside), id, iters)))
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    assert_eq!(inside.max.load(Ordering::SeqCst), 1, "two holders at once");
    assert_eq!(m.try_lock().expect("lock leaked").0, (tasks * iters) as u64);
}

#[test]
fn futures_block_on_threads_exact_count() {
    let (tasks, iters) = sizes();
    let threads = if cfg!(miri) { 3 } else { 8 };
    let m = Arc::new(Mutex::new((0u64, 0u64)));
    let inside = Arc::new(Inside::default());
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let (m, inside) = (Arc::clone(&m), Arc::clone(&inside));
            std::thread::spawn(move || {
                for id in (t..tasks).step_by(threads) {
                    futures::executor::block_on(worker(
                        Arc::clone(&m),
                        Arc::clone(&inside),
                        id,
                        iters,
                    ));
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(
        inside.max.load(Ordering::SeqCst) <= 1,
        "two holders at once"
    );
    assert_eq!(m.try_lock().expect("lock leaked").0, (tasks * iters) as u64);
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

/// Random cancellation on tokio: lock futures cut off by timeouts (while queued, or
/// just after the lock was handed to them) and polled once then dropped. Completed
/// critical sections are counted exactly; the lock is free at the end.
#[test]
#[cfg_attr(miri, ignore)]
fn tokio_random_timeouts_and_drops() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_time()
        .build()
        .unwrap();
    let m = Arc::new(Mutex::new((0u64, 0u64)));
    let inside = Arc::new(Inside::default());
    let done = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let timed_out = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let hs: Vec<_> = (0..64u64)
            .map(|id| {
                let (m, inside) = (Arc::clone(&m), Arc::clone(&inside));
                let (done, cancelled) = (Arc::clone(&done), Arc::clone(&cancelled));
                let timed_out = Arc::clone(&timed_out);
                tokio::spawn(async move {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id + 1).wrapping_mul(0x2545_F491));
                    for _ in 0..300 {
                        let r = rng.next();
                        let guard = match r % 4 {
                            0 => match tokio::time::timeout(
                                Duration::from_micros(r % 1500),
                                Arc::clone(&m).lock_owned(),
                            )
                            .await
                            {
                                Ok(g) => Some(g),
                                Err(_) => {
                                    timed_out.fetch_add(1, Ordering::Relaxed);
                                    None
                                }
                            },
                            1 => Arc::clone(&m).lock_owned().now_or_never(),
                            _ => Some(Arc::clone(&m).lock_owned().await),
                        };
                        match guard {
                            Some(mut g) => {
                                inside.enter();
                                let v = g.0;
                                if r.is_multiple_of(5) {
                                    tokio::task::yield_now().await;
                                }
                                if r.is_multiple_of(61) {
                                    // Hold long enough for queued timeouts to fire.
                                    tokio::time::sleep(Duration::from_millis(1)).await;
                                }
                                g.0 = v + 1;
                                inside.leave();
                                done.fetch_add(1, Ordering::Relaxed);
                            }
                            None => {
                                cancelled.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    assert_eq!(inside.max.load(Ordering::SeqCst), 1, "two holders at once");
    let done = done.load(Ordering::Relaxed);
    assert_eq!(m.try_lock().expect("lock leaked").0, done as u64);
    assert!(done > 0);
    assert!(
        cancelled.load(Ordering::Relaxed) > 0,
        "no cancellation exercised"
    );
    assert!(timed_out.load(Ordering::Relaxed) > 0, "no timeout fired");
}

/// Plain threads poll lock futures once and drop them, or block on them, mixed with
/// `blocking_lock`: the count is exact and the lock is free at the end.
#[test]
fn threads_poll_once_drop_and_block() {
    let threads = if cfg!(miri) { 3 } else { 6 };
    let iters = if cfg!(miri) { 30 } else { 2000 };
    let m = Arc::new(Mutex::new((0u64, 0u64)));
    let done = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..threads as u64)
        .map(|id| {
            let (m, done) = (Arc::clone(&m), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (id + 1).wrapping_mul(0x9E37_79B9));
                for _ in 0..iters {
                    let r = rng.next();
                    let g = match r % 3 {
                        0 => m.lock().now_or_never(),
                        1 => Some(m.blocking_lock()),
                        _ => Some(futures::executor::block_on(m.lock())),
                    };
                    if let Some(mut g) = g {
                        g.0 += 1;
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(
        m.try_lock().expect("lock leaked").0,
        done.load(Ordering::Relaxed) as u64
    );
}
