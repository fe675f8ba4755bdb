//! How much flat combining combines: operations applied per combining pass of a
//! `CombiningCounter` and a `FlatCombining<VecDeque<u64>>`, at 1 to 16 threads.
//!
//! ```sh
//! cargo run --release -p strata-sync --example combining_stats [MILLISECONDS]
//! ```
//!
//! Every thread loops on the structure for the given time (default 300 ms); the
//! counters are those of `FlatCombining::stats` (`passes`: lock tenures; `ops`:
//! operations applied in them, the holder's own included).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use strata_sync::combining::{CombiningCounter, CombiningStats, FlatCombining};

fn run(threads: usize, time: Duration, op: impl Fn() + Sync) {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..64 {
                        op();
                    }
                }
            });
        }
        thread::sleep(time);
        stop.store(true, Ordering::Relaxed);
    });
}

fn row(name: &str, threads: usize, s: CombiningStats) {
    println!(
        "{name:<14} {threads:>7} {:>12} {:>12} {:>12.3}",
        s.passes,
        s.ops,
        s.ops_per_pass()
    );
}

fn main() {
    let ms = match std::env::args().nth(1).map(|a| a.parse::<u64>()) {
        None => 300,
        Some(Ok(ms)) if ms > 0 => ms,
        Some(_) => {
            eprintln!("usage: combining_stats [MILLISECONDS > 0]");
            std::process::exit(2);
        }
    };
    let time = Duration::from_millis(ms);
    println!(
        "{:<14} {:>7} {:>12} {:>12} {:>12}",
        "structure", "threads", "passes", "ops", "ops/pass"
    );
    for threads in [1, 2, 4, 8, 16] {
        let c = CombiningCounter::new(0);
        run(threads, time, || {
            std::hint::black_box(c.add(1));
        });
        row("counter", threads, c.stats());

        let q = FlatCombining::new(VecDeque::<u64>::new());
        run(threads, time, || {
            q.push_back(1);
            std::hint::black_box(q.pop_front());
        });
        row("vecdeque", threads, q.stats());
    }
}
