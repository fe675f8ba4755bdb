//! The rw-lock on real executors: tokio's multi-thread runtime and
//! `futures::executor::block_on` on several std threads. Readers check an invariant a
//! writer keeps (a pair of counters that are equal outside the write lock), and a writer
//! must get in while a continuous stream of overlapping readers holds the lock (writer
//! preference). Watchdogs are generous and only turn a hang into a failure; no test
//! asserts on timing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use strata_async::rwlock::{RwLock, RwLockUpgradableReadGuard, RwLockWriteGuard};

/// Counters that writers keep equal; exclusion is checked with `inside` too.
#[derive(Default)]
struct Pair {
    a: u64,
    b: u64,
}

const WATCHDOG: Duration = Duration::from_secs(120);

#[test]
fn tokio_multi_thread_pair_invariant() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    let tasks = if cfg!(miri) { 4 } else { 32 };
    let iters = if cfg!(miri) { 5 } else { 200 };
    let lock = Arc::new(RwLock::new(Pair::default()));
    let writes = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let hs: Vec<_> = (0..tasks)
            .map(|t| {
                let lock = Arc::clone(&lock);
                let writes = Arc::clone(&writes);
                tokio::spawn(async move {
                    for i in 0..iters {
                        match (t + i) % 5 {
                            0 => {
                                let mut g = lock.write().await;
                                g.a += 1;
                                tokio::task::yield_now().await;
                                g.b += 1;
                                writes.fetch_add(1, Ordering::Relaxed);
                            }
                            1 => {
                                let u = lock.upgradable_read().await;
                                assert_eq!(u.a, u.b);
                                tokio::task::yield_now().await;
                                let mut g = RwLockUpgradableReadGuard::upgrade(u).await;
                                g.a += 1;
                                g.b += 1;
                                writes.fetch_add(1, Ordering::Relaxed);
                                let r = RwLockWriteGuard::downgrade(g);
                                assert_eq!(r.a, r.b);
                            }
                            2 => {
                                let g = Arc::clone(&lock).read_owned().await;
                                tokio::task::yield_now().await;
                                assert_eq!(g.a, g.b, "reader saw a half-done write");
                            }
                            _ => {
                                let g = lock.read().await;
                                tokio::task::yield_now().await;
                                assert_eq!(g.a, g.b, "reader saw a half-done write");
                            }
                        }
                    }
                })
            })
            .collect();
        let all = async {
            for h in hs {
                h.await.unwrap();
            }
        };
        tokio::time::timeout(WATCHDOG, all)
            .await
            .expect("watchdog: tasks hung");
    });
    let g = lock.try_write().expect("all permits back");
    let w = writes.load(Ordering::Relaxed) as u64;
    assert_eq!((g.a, g.b), (w, w));
}

#[test]
fn futures_block_on_threads_pair_invariant() {
    let threads = if cfg!(miri) { 3 } else { 8 };
    let iters = if cfg!(miri) { 10 } else { 500 };
    let lock = Arc::new(RwLock::with_max_readers(Pair::default(), 4));
    let inside_writers = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..threads)
        .map(|t| {
            let lock = Arc::clone(&lock);
            let inside = Arc::clone(&inside_writers);
            std::thread::spawn(move || {
                let mut writes = 0u64;
                for i in 0..iters {
                    futures::executor::block_on(async {
                        if (t + i) % 3 == 0 {
                            let mut g = Arc::clone(&lock).write_owned().await;
                            assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0);
                            g.a += 1;
                            std::thread::yield_now();
                            g.b += 1;
                            inside.fetch_sub(1, Ordering::SeqCst);
                            writes += 1;
                        } else {
                            let g = lock.read().await;
                            assert_eq!(inside.load(Ordering::SeqCst), 0);
                            assert_eq!(g.a, g.b, "reader saw a half-done write");
                        }
                    });
                }
                writes
            })
        })
        .collect();
    let writes: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    let g = lock.try_write().expect("all permits back");
    assert_eq!((g.a, g.b), (writes, writes));
}

/// Overlapping readers on many tasks keep the lock read-held all the time (each
/// re-acquires as soon as it releases, and they hold across a yield, so without writer
/// preference some reader would always be inside). One writer must still get in; the
/// readers then keep going after it.
#[test]
fn writer_not_starved_by_reader_stream() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    let readers = if cfg!(miri) { 3 } else { 16 };
    let lock = Arc::new(RwLock::new(0u64));
    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    rt.block_on(async {
        let hs: Vec<_> = (0..readers)
            .map(|_| {
                let (lock, stop, reads) =
                    (Arc::clone(&lock), Arc::clone(&stop), Arc::clone(&reads));
                tokio::spawn(async move {
                    let mut after_write = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let g = lock.read().await;
                        tokio::task::yield_now().await;
                        after_write += *g;
                        drop(g);
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                    after_write
                })
            })
            .collect();
        // Let the reader stream get going before the writer arrives.
        while reads.load(Ordering::Relaxed) < 100 {
            tokio::task::yield_now().await;
        }
        let writer = {
            let lock = Arc::clone(&lock);
            tokio::spawn(async move {
                *lock.write().await = 1;
            })
        };
        tokio::time::timeout(WATCHDOG, writer)
            .await
            .expect("watchdog: the writer was starved by the readers")
            .unwrap();
        // Readers keep going and see the write.
        let seen = reads.load(Ordering::Relaxed);
        while reads.load(Ordering::Relaxed) < seen + 100 {
            tokio::task::yield_now().await;
        }
        stop.store(true, Ordering::Relaxed);
        let mut saw_write = 0;
        for h in hs {
            saw_write += tokio::time::timeout(WATCHDOG, h)
                .await
                .expect("watchdog")
                .unwrap();
        }
        assert!(saw_write > 0, "no reader saw the write");
    });
    assert_eq!(*lock.try_write().expect("all permits back"), 1);
}

/// The other direction: a continuous stream of writers does not starve a reader.
#[test]
fn reader_not_starved_by_writer_stream() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_time()
        .build()
        .unwrap();
    let writers = if cfg!(miri) { 2 } else { 8 };
    let lock = Arc::new(RwLock::new(0u64));
    let stop = Arc::new(AtomicBool::new(false));
    rt.block_on(async {
        let hs: Vec<_> = (0..writers)
            .map(|_| {
                let (lock, stop) = (Arc::clone(&lock), Arc::clone(&stop));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let mut g = lock.write().await;
                        tokio::task::yield_now().await;
                        *g += 1;
                    }
                })
            })
            .collect();
        while *lock.read().await < 50 {
            tokio::task::yield_now().await;
        }
        let reader = {
            let lock = Arc::clone(&lock);
            tokio::spawn(async move { *lock.read().await })
        };
        let seen = tokio::time::timeout(WATCHDOG, reader)
            .await
            .expect("watchdog: the reader was starved by the writers")
            .unwrap();
        assert!(seen >= 50);
        stop.store(true, Ordering::Relaxed);
        for h in hs {
            tokio::time::timeout(WATCHDOG, h)
                .await
                .expect("watchdog")
                .unwrap();
        }
    });
    assert!(lock.try_write().is_ok(), "all permits back");
}

/// Linearizability against a register: threads write distinct values (`write`), read
/// (`read`, or `try_read` when it succeeds), and compare-and-swap through an upgradable
/// read that upgrades only when the value matches (so the check covers the upgrade's
/// atomicity: no writer between the read and the write). Checked with strata-check's
/// `RegisterModel`.
#[test]
#[cfg_attr(miri, ignore)]
fn linearizable_as_register() {
    use futures::executor::block_on;
    use std::sync::Barrier;
    use strata_check::models::{RegisterModel, RegisterOp, RegisterRet};
    use strata_check::{Budget, Recorder, Violation, check};

    let model = RegisterModel::new(0);
    let mut checked = 0;
    for round in 0..200u64 {
        let lock = RwLock::with_max_readers(0u64, 2);
        let recorder = Recorder::<RegisterModel>::new(3);
        let start = Barrier::new(3);
        std::thread::scope(|s| {
            for t in 0..3u64 {
                let mut log = recorder.thread(t as usize);
                let (lock, start) = (&lock, &start);
                s.spawn(move || {
                    start.wait();
                    let mut last = 0u64;
                    for i in 0..30u64 {
                        let v = round * 100_000 + (t + 1) * 1000 + i + 1;
                        match (t + i) % 3 {
                            0 => {
                                log.call(RegisterOp::Write(v), || {
                                    std::thread::yield_now();
                                    *block_on(lock.write()) = v;
                                    RegisterRet::Written
                                });
                            }
                            1 => {
                                log.call(RegisterOp::Read, || {
                                    std::thread::yield_now();
                                    let seen = match lock.try_read() {
                                        Ok(g) => *g,
                                        Err(_) => *block_on(lock.read()),
                                    };
                                    last = seen;
                                    RegisterRet::Value(seen)
                                });
                            }
                            _ => {
                                let expect = last;
                                log.call(RegisterOp::Cas(expect, v), || {
                                    std::thread::yield_now();
                                    let u = block_on(lock.upgradable_read());
                                    if *u != expect {
                                        return RegisterRet::CasResult(Err(*u));
                                    }
                                    std::thread::yield_now();
                                    let mut w = block_on(RwLockUpgradableReadGuard::upgrade(u));
                                    *w = v;
                                    RegisterRet::CasResult(Ok(expect))
                                });
                            }
                        }
                    }
                });
            }
        });
        match check(&model, &recorder.into_history(), Budget::default()) {
            Ok(_) => {
                checked += 1;
                if checked == 20 {
                    break;
                }
            }
            Err(Violation::NoOverlap { .. }) => continue,
            Err(e) => panic!("the rw-lock is not linearizable as a register:\n{e}"),
        }
    }
    assert!(checked > 0, "no round had overlapping operations");
}
