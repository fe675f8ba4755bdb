//! Stress test of `Versioned`: writers add 1 to every word of the value, so the value
//! of generation `g` is `g / 2` in every word; readers check each snapshot against its
//! generation and validate versions. Short normally, small under miri, and suitable
//! for ThreadSanitizer.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, Ordering};

use strata_sync::versioned::Versioned;

const WRITERS: u64 = 3;
const READERS: usize = 3;

fn writes_per_writer() -> u64 {
    if cfg!(miri) { 30 } else { 20_000 }
}

fn run(max_tries: u32) {
    let cell = Versioned::with_max_tries([0u64; 4], max_tries);
    let done = AtomicBool::new(false);
    let start = Barrier::new(WRITERS as usize + READERS);
    let n = writes_per_writer();
    std::thread::scope(|s| {
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let (cell, start) = (&cell, &start);
                s.spawn(move || {
                    start.wait();
                    let mut last = 0;
                    for _ in 0..n {
                        let g = cell.write(|x| x.iter_mut().for_each(|w| *w += 1));
                        assert!(g > last && g % 2 == 0, "generation {g} after {last}");
                        last = g;
                    }
                })
            })
            .collect();
        for _ in 0..READERS {
            let (cell, start, done) = (&cell, &start, &done);
            s.spawn(move || {
                start.wait();
                loop {
                    let finished = done.load(Ordering::Acquire);
                    let (v, g) = cell.read_with_version();
                    assert_eq!(v, [g / 2; 4], "snapshot of generation {g}");
                    // OCC: a version read before a copy that still validates after it
                    // means the copy is that generation's value.
                    let g0 = cell.version();
                    let v0 = cell.read();
                    if cell.validate(g0) {
                        assert_eq!(v0, [g0 / 2; 4], "validated generation {g0}");
                    }
                    if finished {
                        break;
                    }
                }
            });
        }
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Release);
    });
    assert_eq!(
        cell.read_with_version(),
        ([WRITERS * n; 4], 2 * WRITERS * n)
    );
}

#[test]
fn snapshots_match_their_generation() {
    run(8);
}

/// One optimistic try: many reads fall back to the lock, and are still consistent.
#[test]
fn snapshots_match_their_generation_with_fallbacks() {
    run(1);
}
