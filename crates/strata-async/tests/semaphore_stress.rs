//! Stress: many tasks acquire and release with random cancellation, by
//! `tokio::time::timeout` and by dropping futures after one poll. At the end the
//! available permits equal the initial count (no permit leaked or duplicated) and the
//! high-water mark of permits held at once never exceeded it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use strata_async::semaphore::Semaphore;

const PERMITS: usize = 4;

#[derive(Default)]
struct HighWater {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl HighWater {
    fn enter(&self, n: usize) {
        let now = self.now.fetch_add(n, Ordering::SeqCst) + n;
        self.max.fetch_max(now, Ordering::SeqCst);
    }
    fn leave(&self, n: usize) {
        self.now.fetch_sub(n, Ordering::SeqCst);
    }
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
fn tokio_random_timeouts_and_drops() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .enable_time()
        .build()
        .unwrap();
    let sem = Arc::new(Semaphore::new(PERMITS));
    let hw = Arc::new(HighWater::default());
    let acquired = Arc::new(AtomicUsize::new(0));
    let cancelled = Arc::new(AtomicUsize::new(0));
    let timed_out = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let hs: Vec<_> = (0..64u64)
            .map(|id| {
                let (sem, hw) = (Arc::clone(&sem), Arc::clone(&hw));
                let (acquired, cancelled) = (Arc::clone(&acquired), Arc::clone(&cancelled));
                let timed_out = Arc::clone(&timed_out);
                tokio::spawn(async move {
                    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id + 1).wrapping_mul(0x2545_F491));
                    for _ in 0..300 {
                        let r = rng.next();
                        let n = 1 + (r % 3) as usize;
                        let fut = sem.acquire_many(n);
                        let permit = match r % 4 {
                            // Cancelled by a timeout, possibly while queued with a
                            // partial assignment or just after being assigned.
                            0 => match tokio::time::timeout(Duration::from_micros(r % 1500), fut)
                                .await
                            {
                                Ok(p) => Some(p.unwrap()),
                                Err(_) => {
                                    timed_out.fetch_add(1, Ordering::Relaxed);
                                    None
                                }
                            },
                            // Polled once, then dropped.
                            1 => fut.now_or_never().map(|p| p.unwrap()),
                            _ => Some(fut.await.unwrap()),
                        };
                        match permit {
                            Some(p) => {
                                acquired.fetch_add(1, Ordering::Relaxed);
                                hw.enter(n);
                                if r.is_multiple_of(5) {
                                    tokio::task::yield_now().await;
                                }
                                if r.is_multiple_of(61) {
                                    // Hold long enough for queued timeouts to fire.
                                    tokio::time::sleep(Duration::from_millis(1)).await;
                                }
                                hw.leave(n);
                                drop(p);
                            }
                            None => {
                                cancelled.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        if r.is_multiple_of(7) {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            })
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    assert!(hw.max.load(Ordering::SeqCst) <= PERMITS);
    assert_eq!(
        sem.available_permits(),
        PERMITS,
        "permits leaked or duplicated"
    );
    assert!(acquired.load(Ordering::Relaxed) > 0);
    assert!(
        cancelled.load(Ordering::Relaxed) > 0,
        "no cancellation exercised"
    );
    assert!(timed_out.load(Ordering::Relaxed) > 0, "no timeout fired");
}

/// Plain threads, each driving futures by hand: poll once and drop, or run to the end
/// with `futures::executor::block_on`; another thread adds and forgets permits.
#[test]
fn threads_poll_once_and_drop() {
    let threads = if cfg!(miri) { 3 } else { 6 };
    let iters = if cfg!(miri) { 30 } else { 2000 };
    let sem = Arc::new(Semaphore::new(PERMITS));
    let hw = Arc::new(HighWater::default());
    let hs: Vec<_> = (0..threads as u64)
        .map(|id| {
            let (sem, hw) = (Arc::clone(&sem), Arc::clone(&hw));
            std::thread::spawn(move || {
                let mut rng = Rng(0xD1B5_4A32_D192_ED03 ^ (id + 1).wrapping_mul(0x9E37_79B9));
                for _ in 0..iters {
                    let r = rng.next();
                    let n = 1 + (r % 2) as usize;
                    let p = if r.is_multiple_of(3) {
                        Arc::clone(&sem)
                            .acquire_many_owned(n)
                            .now_or_never()
                            .map(|p| p.unwrap().num_permits())
                            .map(|k| (k, None))
                    } else {
                        let p = futures::executor::block_on(sem.acquire_many(n)).unwrap();
                        Some((p.num_permits(), Some(p)))
                    };
                    if let Some((k, p)) = p {
                        // A `now_or_never` permit was already dropped; count only held ones.
                        if p.is_some() {
                            hw.enter(k);
                            hw.leave(k);
                        }
                    }
                }
            })
        })
        .collect();
    for h in hs {
        h.join().unwrap();
    }
    assert!(hw.max.load(Ordering::SeqCst) <= PERMITS);
    assert_eq!(
        sem.available_permits(),
        PERMITS,
        "permits leaked or duplicated"
    );
}
