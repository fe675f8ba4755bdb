//! Physical-limit baselines: what the hardware allows for one atomic read-modify-write
//! per operation, contended and uncontended. They take part in no ratio; they show the
//! ceiling beside the structures in tables and plots.
//!
//! They use `std`'s atomics directly: they measure the machine, not the shim.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use strata_primitives::CachePadded;

use crate::harness::{BATCH, Impl, Kind, Workload, repeat_until, timed_threads};

/// Registers `baseline/fetch_add-shared` and `baseline/fetch_add-uncontended`.
pub fn register(v: &mut Vec<Workload>) {
    v.push(Workload {
        name: "baseline/fetch_add-shared",
        help: "Every thread does fetch_add(1) on one shared counter: the ceiling of any structure whose every operation is one contended atomic read-modify-write.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            Impl::new("fetch_add", Kind::Limit, |threads, duration| {
                let counter = CachePadded::new(AtomicU64::new(0));
                timed_threads(threads, duration, |_, stop| {
                    repeat_until(stop, BATCH, || {
                        black_box(counter.fetch_add(1, Ordering::Relaxed));
                    })
                })
            })
            .with_fixed(fetch_add_fixed),
        ],
    });
    v.push(Workload {
        name: "baseline/fetch_add-uncontended",
        help: "Every thread does fetch_add(1) on its own cache-padded counter: the ceiling of an operation with one uncontended atomic read-modify-write.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            Impl::new("fetch_add", Kind::Limit, |threads, duration| {
                let counters: Vec<CachePadded<AtomicU64>> =
                    (0..threads).map(|_| CachePadded::new(AtomicU64::new(0))).collect();
                timed_threads(threads, duration, |i, stop| {
                    let counter = &counters[i];
                    repeat_until(stop, BATCH, || {
                        black_box(counter.fetch_add(1, Ordering::Relaxed));
                    })
                })
            })
            .with_fixed(fetch_add_fixed),
        ],
    });
}

/// The single-thread path of both baselines (alone, a shared counter is uncontended).
fn fetch_add_fixed(iters: u64) {
    let counter = CachePadded::new(AtomicU64::new(0));
    for _ in 0..iters {
        black_box(counter.fetch_add(1, Ordering::Relaxed));
    }
}
