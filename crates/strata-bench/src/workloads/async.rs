//! strata-async workloads, on tokio's multi-thread runtime with T worker threads (the
//! thread count of the report): strata-async's `Semaphore` and `Notify` beside
//! `tokio::sync` and async-lock.
//!
//! * `async/semaphore-1`: 4·T tasks, each looping acquire → `yield_now` → release on
//!   a semaphore of 1 permit. An op is one acquisition.
//! * `async/semaphore-half`: the same with max(1, T/2) permits.
//! * `async/mutex-counter`: 4·T tasks, each looping lock → increment a plain `u64` →
//!   unlock → `yield_now` (the yield keeps every implementation's tasks interleaved
//!   the same way: tokio's mutex spends coop budget and would otherwise be the only
//!   one forced to yield). An op is one increment.
//! * `async/rwlock-read90`: 4·T tasks, each looping: with probability 1/10 a write
//!   (increment a plain `u64`), else a read of it; then `yield_now`. An op is one read
//!   or write; the final value is checked against the writes counted.
//! * `async/notify-pingpong`: two tasks and two notifies; each round, one task
//!   notifies the other and waits to be notified back. An op is one round trip.
//!
//! The clock runs from before the tasks are spawned until all have been joined.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::harness::{Impl, Kind, Sample, Workload};

/// Registers the `async/*` workloads.
pub fn register(v: &mut Vec<Workload>) {
    for (name, help, permits) in [
        (
            "async/semaphore-1",
            "On tokio's runtime with T workers, 4T tasks loop acquire, yield_now, release on a semaphore of 1 permit.",
            one as fn(usize) -> usize,
        ),
        (
            "async/semaphore-half",
            "On tokio's runtime with T workers, 4T tasks loop acquire, yield_now, release on a semaphore of max(1, T/2) permits.",
            half as fn(usize) -> usize,
        ),
    ] {
        v.push(Workload {
            name,
            help,
            unit: "ops/s",
            min_threads: 1,
            max_threads: None,
            spread: false,
            impls: vec![
                sem_imp::<strata_async::semaphore::Semaphore>("strata", Kind::Strata, permits),
                sem_imp::<tokio::sync::Semaphore>("tokio", Kind::Peer, permits),
                sem_imp::<async_lock::Semaphore>("async-lock", Kind::Peer, permits),
            ],
        });
    }
    v.push(Workload {
        name: "async/mutex-counter",
        help: "On tokio's runtime with T workers, 4T tasks loop lock, increment a shared counter, unlock, yield_now.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            mutex_imp::<strata_async::mutex::Mutex<u64>>("strata", Kind::Strata),
            mutex_imp::<tokio::sync::Mutex<u64>>("tokio", Kind::Peer),
            mutex_imp::<async_lock::Mutex<u64>>("async-lock", Kind::Peer),
        ],
    });
    v.push(Workload {
        name: "async/rwlock-read90",
        help: "On tokio's runtime with T workers, 4T tasks loop a read (90%) or a write (10%) of a shared counter, then yield_now.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            rwlock_imp::<strata_async::rwlock::RwLock<u64>>("strata", Kind::Strata),
            rwlock_imp::<tokio::sync::RwLock<u64>>("tokio", Kind::Peer),
            rwlock_imp::<async_lock::RwLock<u64>>("async-lock", Kind::Peer),
        ],
    });
    v.push(Workload {
        name: "async/notify-pingpong",
        help: "On tokio's runtime with T workers, two tasks notify each other in turn through two notifies (an op is a round trip).",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            pingpong_imp::<strata_async::notify::Notify>("strata", Kind::Strata),
            pingpong_imp::<tokio::sync::Notify>("tokio", Kind::Peer),
        ],
    });
}

fn one(_: usize) -> usize {
    1
}

fn half(threads: usize) -> usize {
    (threads / 2).max(1)
}

/// Runs `tasks` copies of `body(i, stop)` on a fresh runtime of `workers` threads for
/// about `duration`; each returns its operation count.
fn run_tasks<Fut>(
    workers: usize,
    tasks: usize,
    duration: Duration,
    body: impl Fn(usize, Arc<AtomicBool>) -> Fut,
) -> Sample
where
    Fut: Future<Output = u64> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .enable_time()
        .build()
        .expect("a tokio runtime");
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|i| tokio::spawn(body(i, Arc::clone(&stop))))
            .collect();
        tokio::time::sleep(duration).await;
        stop.store(true, Ordering::Relaxed);
        let mut ops = 0u64;
        for h in handles {
            ops += h.await.expect("a benchmark task panicked");
        }
        Sample::new(ops, start.elapsed())
    })
}

// ---------------------------------------------------------------------------------
// semaphores

/// What the semaphore workloads need: a semaphore of `n` permits, and one acquire →
/// yield → release.
trait AsyncSemaphore: Send + Sync + 'static {
    fn with_permits(n: usize) -> Self;
    fn cycle(&self) -> impl Future<Output = ()> + Send + '_;
}

impl AsyncSemaphore for strata_async::semaphore::Semaphore {
    fn with_permits(n: usize) -> Self {
        Self::new(n)
    }
    async fn cycle(&self) {
        let _p = self.acquire().await.expect("never closed");
        tokio::task::yield_now().await;
    }
}

impl AsyncSemaphore for tokio::sync::Semaphore {
    fn with_permits(n: usize) -> Self {
        Self::new(n)
    }
    async fn cycle(&self) {
        let _p = self.acquire().await.expect("never closed");
        tokio::task::yield_now().await;
    }
}

impl AsyncSemaphore for async_lock::Semaphore {
    fn with_permits(n: usize) -> Self {
        Self::new(n)
    }
    async fn cycle(&self) {
        let _p = self.acquire().await;
        tokio::task::yield_now().await;
    }
}

fn sem_imp<S: AsyncSemaphore>(
    name: &'static str,
    kind: Kind,
    permits: fn(usize) -> usize,
) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        let sem = Arc::new(S::with_permits(permits(threads)));
        run_tasks(threads, 4 * threads, duration, |_, stop| {
            let sem = Arc::clone(&sem);
            async move {
                let mut ops = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    sem.cycle().await;
                    ops += 1;
                }
                ops
            }
        })
    })
}

// ---------------------------------------------------------------------------------
// mutexes

/// What the mutex workload needs: a mutex around a counter, and one increment.
trait AsyncCounter: Send + Sync + 'static {
    fn make() -> Self;
    fn incr(&self) -> impl Future<Output = ()> + Send + '_;
    fn total(&self) -> u64;
}

impl AsyncCounter for strata_async::mutex::Mutex<u64> {
    fn make() -> Self {
        Self::new(0)
    }
    async fn incr(&self) {
        *self.lock().await += 1;
    }
    fn total(&self) -> u64 {
        *self.try_lock().expect("all tasks joined")
    }
}

impl AsyncCounter for tokio::sync::Mutex<u64> {
    fn make() -> Self {
        Self::new(0)
    }
    async fn incr(&self) {
        *self.lock().await += 1;
    }
    fn total(&self) -> u64 {
        *self.try_lock().expect("all tasks joined")
    }
}

impl AsyncCounter for async_lock::Mutex<u64> {
    fn make() -> Self {
        Self::new(0)
    }
    async fn incr(&self) {
        *self.lock().await += 1;
    }
    fn total(&self) -> u64 {
        *self.try_lock().expect("all tasks joined")
    }
}

fn mutex_imp<M: AsyncCounter>(name: &'static str, kind: Kind) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        let m = Arc::new(M::make());
        let sample = run_tasks(threads, 4 * threads, duration, |_, stop| {
            let m = Arc::clone(&m);
            async move {
                let mut ops = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    m.incr().await;
                    tokio::task::yield_now().await;
                    ops += 1;
                }
                ops
            }
        });
        // The counter is the mutex's proof of work: every counted op incremented it.
        assert_eq!(m.total(), sample.ops, "{name}: lost or extra increments");
        sample
    })
}

// ---------------------------------------------------------------------------------
// rw-locks

/// What the rw-lock workload needs: a lock around a counter, a read and a write.
trait AsyncRwCounter: Send + Sync + 'static {
    fn make() -> Self;
    fn read_value(&self) -> impl Future<Output = u64> + Send + '_;
    fn incr(&self) -> impl Future<Output = ()> + Send + '_;
}

impl AsyncRwCounter for strata_async::rwlock::RwLock<u64> {
    fn make() -> Self {
        Self::new(0)
    }
    async fn read_value(&self) -> u64 {
        *self.read().await
    }
    async fn incr(&self) {
        *self.write().await += 1;
    }
}

impl AsyncRwCounter for tokio::sync::RwLock<u64> {
    fn make() -> Self {
        Self::new(0)
    }
    async fn read_value(&self) -> u64 {
        *self.read().await
    }
    async fn incr(&self) {
        *self.write().await += 1;
    }
}

impl AsyncRwCounter for async_lock::RwLock<u64> {
    fn make() -> Self {
        Self::new(0)
    }
    async fn read_value(&self) -> u64 {
        *self.read().await
    }
    async fn incr(&self) {
        *self.write().await += 1;
    }
}

fn rwlock_imp<L: AsyncRwCounter>(name: &'static str, kind: Kind) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        let lock = Arc::new(L::make());
        let writes = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let sample = run_tasks(threads, 4 * threads, duration, |i, stop| {
            let lock = Arc::clone(&lock);
            let writes = Arc::clone(&writes);
            async move {
                // xorshift64, seeded per task: the same sequence for every implementation.
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1).wrapping_mul(0x2545_F491);
                let (mut ops, mut mine) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    if x.is_multiple_of(10) {
                        lock.incr().await;
                        mine += 1;
                    } else {
                        std::hint::black_box(lock.read_value().await);
                    }
                    tokio::task::yield_now().await;
                    ops += 1;
                }
                writes.fetch_add(mine, Ordering::Relaxed);
                ops
            }
        });
        let expected = writes.load(Ordering::Relaxed);
        let got = poll_ready_now(lock.read_value());
        assert_eq!(got, expected, "{name}: lost or extra writes");
        sample
    })
}

/// Polls a future that is ready at once (every task has been joined, so the lock is
/// free) without a runtime.
fn poll_ready_now<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    match f
        .as_mut()
        .poll(&mut std::task::Context::from_waker(std::task::Waker::noop()))
    {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => panic!("the lock is still held after every task was joined"),
    }
}

// ---------------------------------------------------------------------------------
// notify

/// What the ping-pong needs of a notify.
trait AsyncNotify: Send + Sync + 'static {
    fn make() -> Self;
    fn wake_one(&self);
    fn wait(&self) -> impl Future<Output = ()> + Send + '_;
}

impl AsyncNotify for strata_async::notify::Notify {
    fn make() -> Self {
        Self::new()
    }
    fn wake_one(&self) {
        self.notify_one();
    }
    async fn wait(&self) {
        self.notified().await;
    }
}

impl AsyncNotify for tokio::sync::Notify {
    fn make() -> Self {
        Self::new()
    }
    fn wake_one(&self) {
        self.notify_one();
    }
    async fn wait(&self) {
        self.notified().await;
    }
}

fn pingpong_imp<N: AsyncNotify>(name: &'static str, kind: Kind) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        let pair = Arc::new((N::make(), N::make()));
        run_tasks(threads, 2, duration, |i, stop| {
            let pair = Arc::clone(&pair);
            async move {
                let (mine, theirs) = if i == 0 {
                    (&pair.0, &pair.1)
                } else {
                    (&pair.1, &pair.0)
                };
                let mut ops = 0u64;
                if i == 0 {
                    theirs.wake_one();
                }
                // Stored permits make the last round safe: a notify with nobody
                // waiting is kept for the next wait, so neither task can hang once
                // the other has stopped (each gives one more notify on leaving).
                while !stop.load(Ordering::Relaxed) {
                    mine.wait().await;
                    theirs.wake_one();
                    ops += 1;
                }
                theirs.wake_one();
                // One round trip per round of task 0.
                if i == 0 { ops } else { 0 }
            }
        })
    })
}
