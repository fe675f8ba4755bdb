//! Stress test of `SeqLock`: writers store values whose words are all equal, readers
//! check that no copy mixes two writes. Short (well under a second normally), small
//! under miri, and suitable for ThreadSanitizer.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use strata_sync::seqlock::SeqLock;

const WRITERS: u64 = 3;
const READERS: usize = 3;

fn writes_per_writer() -> u64 {
    if cfg!(miri) { 30 } else { 20_000 }
}

#[test]
fn readers_never_see_a_torn_value() {
    let lock = SeqLock::new([0u64; 4]);
    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let start = Barrier::new(WRITERS as usize + READERS);
    let n = writes_per_writer();
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (lock, start) = (&lock, &start);
                s.spawn(move || {
                    start.wait();
                    for i in 1..=n {
                        let v = w * 1_000_000 + i;
                        if i % 2 == 0 {
                            lock.store([v; 4]);
                        } else {
                            // A read-modify-write that sets every word from word 0.
                            lock.write(|x| *x = [v; 4]);
                        }
                    }
                })
            })
            .collect();
        for _ in 0..READERS {
            let (lock, start, done, reads) = (&lock, &start, &done, &reads);
            s.spawn(move || {
                start.wait();
                let mut local = 0u64;
                loop {
                    // Sample `done` before reading: the last round still reads.
                    let finished = done.load(Ordering::Acquire);
                    let v = lock.read();
                    assert!(v.iter().all(|&x| x == v[0]), "torn read: {v:?}");
                    if let Some(v) = lock.try_read() {
                        assert!(v.iter().all(|&x| x == v[0]), "torn try_read: {v:?}");
                    }
                    local += 1;
                    if finished {
                        break;
                    }
                }
                reads.fetch_add(local, Ordering::Relaxed);
            });
        }
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
    });
    assert_eq!(lock.sequence(), 2 * WRITERS * n, "two steps per write");
    let last = lock.into_inner();
    assert!(last.iter().all(|&x| x == last[0]));
    assert_eq!(
        last[0] % 1_000_000,
        n,
        "the last value is some writer's last write"
    );
    assert!(reads.load(Ordering::Relaxed) >= READERS as u64);
}

/// Writers increment every word of the value in place: with writers serialized and
/// every update applied, the final value is the number of writes in each word.
#[test]
fn concurrent_writes_are_all_applied() {
    let lock = SeqLock::new([0u32; 5]);
    let n = writes_per_writer();
    std::thread::scope(|s| {
        for _ in 0..WRITERS {
            s.spawn(|| {
                for _ in 0..n {
                    lock.write(|x| x.iter_mut().for_each(|w| *w += 1));
                }
            });
        }
        s.spawn(|| {
            for _ in 0..n {
                let v = lock.read();
                assert!(v.iter().all(|&x| x == v[0]), "torn read: {v:?}");
            }
        });
    });
    assert_eq!(lock.read(), [(WRITERS * n) as u32; 5]);
}
