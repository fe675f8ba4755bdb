//! `strata_async::notify::Notify` on two executors: tokio's multi-thread runtime and
//! `futures::executor::block_on` on plain threads.
//!
//! * Ping-pong: two tasks alternate through two `Notify`s for `ROUNDS` rounds. Each
//!   side sends one `notify_one` per round and waits for one; a lost notification
//!   hangs the test (a stored permit covers a notification sent before the wait).
//! * Producer/consumer: the producer publishes items one at a time and calls
//!   `notify_one` after each; the consumer waits only when it has seen every published
//!   item. A lost wake-up hangs; every item is checked to be seen exactly once, in
//!   order.
//!
//! Sized to run in well under a second normally (and short under ThreadSanitizer).
//! The tokio tests carry a generous timeout only to turn a hang into a failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use strata_async::notify::Notify;

const ROUNDS: usize = if cfg!(miri) { 20 } else { 2_000 };
const ITEMS: usize = if cfg!(miri) { 20 } else { 5_000 };
/// Only a hang guard: never reached unless a notification is lost.
const HANG_GUARD: Duration = Duration::from_secs(60);

/// Counts the rounds each side completed; returns both counts.
async fn ping_pong_side(mine: Arc<Notify>, theirs: Arc<Notify>, first: bool, n: Arc<AtomicUsize>) {
    for _ in 0..ROUNDS {
        if first {
            theirs.notify_one();
            mine.notified().await;
        } else {
            mine.notified().await;
            theirs.notify_one();
        }
        n.fetch_add(1, Ordering::Relaxed);
    }
}

/// Shared state of the producer/consumer test: `published` items are readable.
struct Channel {
    published: AtomicUsize,
    items: Vec<AtomicUsize>,
    notify: Notify,
}

impl Channel {
    fn new() -> Self {
        Channel {
            published: AtomicUsize::new(0),
            items: (0..ITEMS).map(|_| AtomicUsize::new(usize::MAX)).collect(),
            notify: Notify::new(),
        }
    }

    fn produce(&self) {
        for i in 0..ITEMS {
            self.items[i].store(i * 3 + 1, Ordering::Relaxed);
            self.published.store(i + 1, Ordering::Release);
            self.notify.notify_one();
        }
    }

    /// Returns the sum of the items, each read once after it was published.
    async fn consume(&self) -> usize {
        let mut seen = 0;
        let mut sum = 0;
        while seen < ITEMS {
            let available = self.published.load(Ordering::Acquire);
            if available == seen {
                // A notify_one after the load above either finds this waiter queued
                // or leaves the permit it takes at once.
                self.notify.notified().await;
                continue;
            }
            for i in seen..available {
                let v = self.items[i].load(Ordering::Relaxed);
                assert_eq!(v, i * 3 + 1, "item {i} read before it was published");
                sum += v;
            }
            seen = available;
        }
        sum
    }
}

fn expected_sum() -> usize {
    (0..ITEMS).map(|i| i * 3 + 1).sum()
}

#[test]
fn tokio_multi_thread_ping_pong() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
        let (na, nb) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let t1 = tokio::spawn(ping_pong_side(
            Arc::clone(&a),
            Arc::clone(&b),
            true,
            Arc::clone(&na),
        ));
        let t2 = tokio::spawn(ping_pong_side(b, a, false, Arc::clone(&nb)));
        tokio::time::timeout(HANG_GUARD, async {
            t1.await.unwrap();
            t2.await.unwrap();
        })
        .await
        .expect("a notification was lost");
        assert_eq!(na.load(Ordering::Relaxed), ROUNDS);
        assert_eq!(nb.load(Ordering::Relaxed), ROUNDS);
    });
}

#[test]
fn tokio_multi_thread_producer_consumer() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let ch = Arc::new(Channel::new());
        let c2 = Arc::clone(&ch);
        let consumer = tokio::spawn(async move { c2.consume().await });
        let c3 = Arc::clone(&ch);
        let producer = tokio::task::spawn_blocking(move || c3.produce());
        let sum = tokio::time::timeout(HANG_GUARD, consumer)
            .await
            .expect("a notification was lost")
            .unwrap();
        producer.await.unwrap();
        assert_eq!(sum, expected_sum());
    });
}

/// `notify_waiters` on tokio: every task that created its `Notified` before the call
/// completes.
#[test]
fn tokio_multi_thread_notify_waiters() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let n = Arc::new(Notify::new());
        let created = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (n, created) = (Arc::clone(&n), Arc::clone(&created));
                tokio::spawn(async move {
                    let f = n.notified();
                    created.fetch_add(1, Ordering::Release);
                    f.await;
                })
            })
            .collect();
        while created.load(Ordering::Acquire) < 8 {
            tokio::task::yield_now().await;
        }
        n.notify_waiters();
        tokio::time::timeout(HANG_GUARD, async {
            for t in tasks {
                t.await.unwrap();
            }
        })
        .await
        .expect("notify_waiters missed a waiter");
    });
}

#[test]
fn block_on_threads_ping_pong() {
    let (a, b) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let (na, nb) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let side1 = ping_pong_side(Arc::clone(&a), Arc::clone(&b), true, Arc::clone(&na));
    let side2 = ping_pong_side(b, a, false, Arc::clone(&nb));
    let t1 = std::thread::spawn(move || futures::executor::block_on(side1));
    let t2 = std::thread::spawn(move || futures::executor::block_on(side2));
    t1.join().unwrap();
    t2.join().unwrap();
    assert_eq!(na.load(Ordering::Relaxed), ROUNDS);
    assert_eq!(nb.load(Ordering::Relaxed), ROUNDS);
}

#[test]
fn block_on_threads_producer_consumer() {
    let ch = Arc::new(Channel::new());
    let c2 = Arc::clone(&ch);
    let consumer = std::thread::spawn(move || futures::executor::block_on(c2.consume()));
    let c3 = Arc::clone(&ch);
    let producer = std::thread::spawn(move || c3.produce());
    producer.join().unwrap();
    assert_eq!(consumer.join().unwrap(), expected_sum());
}

/// Two consumers, `notify_one` per item, owned futures moved into threads: every
/// item is taken exactly once and both consumers finish (the producer wakes the
/// remaining ones at the end with `notify_waiters`).
#[test]
fn block_on_threads_two_consumers_owned() {
    let n = Arc::new(Notify::new());
    let next = Arc::new(AtomicUsize::new(0)); // next item to take
    let published = Arc::new(AtomicUsize::new(0));
    let taken = Arc::new(AtomicUsize::new(0));
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let (n, next, published, taken) = (
                Arc::clone(&n),
                Arc::clone(&next),
                Arc::clone(&published),
                Arc::clone(&taken),
            );
            std::thread::spawn(move || {
                futures::executor::block_on(async move {
                    loop {
                        // Queue first, then check: no notification slips in between.
                        let mut f = std::pin::pin!(Arc::clone(&n).notified_owned());
                        f.as_mut().enable();
                        let i = next.load(Ordering::Acquire);
                        if i == ITEMS {
                            return;
                        }
                        if i < published.load(Ordering::Acquire) {
                            if next
                                .compare_exchange(i, i + 1, Ordering::AcqRel, Ordering::Acquire)
                                .is_ok()
                            {
                                taken.fetch_add(1, Ordering::Relaxed);
                                if i + 1 == ITEMS {
                                    n.notify_waiters();
                                }
                            }
                            continue;
                        }
                        f.await;
                    }
                })
            })
        })
        .collect();
    for i in 0..ITEMS {
        published.store(i + 1, Ordering::Release);
        n.notify_one();
    }
    for c in consumers {
        c.join().unwrap();
    }
    assert_eq!(taken.load(Ordering::Relaxed), ITEMS);
}
