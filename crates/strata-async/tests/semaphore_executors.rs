//! The semaphore on two executors: tokio's multi-thread runtime, and
//! `futures::executor::block_on` on several std threads. Many tasks acquire (1 or 2
//! permits), yield while holding them, and release; an atomic high-water mark of the
//! permits held at once must never exceed the semaphore's permits, and every permit is
//! back at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use strata_async::semaphore::Semaphore;

const PERMITS: usize = 3;

/// Counts the permits held at once and keeps the maximum.
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

async fn worker(sem: Arc<Semaphore>, hw: Arc<HighWater>, id: usize, iters: usize) {
    for i in 0..iters {
        let n = 1 + (id + i) % 2;
        if i % 3 == 0 {
            let p = Arc::clone(&sem).acquire_many_owned(n).await.unwrap();
            hw.enter(n);
            yield_once().await;
            hw.leave(n);
            drop(p);
        } else {
            let p = sem.acquire_many(n).await.unwrap();
            hw.enter(n);
            yield_once().await;
            hw.leave(n);
            drop(p);
        }
    }
}

fn iters() -> (usize, usize) {
    if cfg!(miri) { (4, 5) } else { (64, 50) }
}

#[test]
#[cfg_attr(miri, ignore)] // tokio's runtime under miri is too slow
fn tokio_multi_thread_bounded() {
    let (tasks, iters) = iters();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .build()
        .unwrap();
    let sem = Arc::new(Semaphore::new(PERMITS));
    let hw = Arc::new(HighWater::default());
    rt.block_on(async {
        let hs: Vec<_> = (0..tasks)
            .map(|id| tokio::spawn(worker(Arc::clone(&sem), Arc::clone(&hw), id, iters)))
            .collect();
        for h in hs {
            h.await.unwrap();
        }
    });
    assert!(
        hw.max.load(Ordering::SeqCst) <= PERMITS,
        "more holders than permits"
    );
    assert!(hw.max.load(Ordering::SeqCst) >= 1);
    assert_eq!(sem.available_permits(), PERMITS);
}

#[test]
fn futures_block_on_threads_bounded() {
    let (tasks, iters) = iters();
    let threads = if cfg!(miri) { 3 } else { 8 };
    let sem = Arc::new(Semaphore::new(PERMITS));
    let hw = Arc::new(HighWater::default());
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let (sem, hw) = (Arc::clone(&sem), Arc::clone(&hw));
            std::thread::spawn(move || {
                for id in (t..tasks).step_by(threads) {
                    futures::executor::block_on(worker(
                        Arc::clone(&sem),
                        Arc::clone(&hw),
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
        hw.max.load(Ordering::SeqCst) <= PERMITS,
        "more holders than permits"
    );
    assert_eq!(sem.available_permits(), PERMITS);
}

/// Close while tasks wait on the tokio runtime: every waiter finishes (with a permit
/// or `Closed`), and every permit is back.
#[test]
#[cfg_attr(miri, ignore)]
fn tokio_close_wakes_everyone() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    let sem = Arc::new(Semaphore::new(1));
    rt.block_on(async {
        let hs: Vec<_> = (0..32)
            .map(|_| {
                let sem = Arc::clone(&sem);
                tokio::spawn(async move {
                    let mut got = 0;
                    while let Ok(p) = sem.acquire_many(1).await {
                        got += 1;
                        tokio::task::yield_now().await;
                        drop(p);
                    }
                    got
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        sem.close();
        let mut total = 0;
        for h in hs {
            total += h.await.unwrap();
        }
        assert!(total >= 1);
    });
    assert_eq!(sem.available_permits(), 1);
}
