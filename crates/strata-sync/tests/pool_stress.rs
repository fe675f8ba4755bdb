//! Stress test of `Pool`: many threads get, hold, return, detach and donate objects,
//! each object counting its drops and flagging its holder. At the end every object is
//! accounted for: `created + donated = retained + dropped + detached`, and once the
//! pool is dropped every object ever made has been dropped exactly once. Runs under
//! ThreadSanitizer too.

use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use strata_sync::pool::{Pool, Pooled};

/// A pooled object: a holder flag and a drop count (one per object, must end at 1).
struct Obj {
    held: AtomicBool,
    drops: &'static AtomicUsize,
    made: &'static AtomicU64,
}

impl Obj {
    fn new(drops: &'static AtomicUsize, made: &'static AtomicU64) -> Self {
        made.fetch_add(1, Ordering::Relaxed);
        Self {
            held: AtomicBool::new(false),
            drops,
            made,
        }
    }

    fn take(&self) {
        assert!(
            !self.held.swap(true, Ordering::Relaxed),
            "object handed to two holders"
        );
    }

    fn release(&self) {
        self.held.store(false, Ordering::Relaxed);
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        let _ = self.made;
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

const ITERS: usize = if cfg!(miri) { 30 } else { 20_000 };

fn run(
    threads: usize,
    max_retained: usize,
    cache: usize,
    drops: &'static AtomicUsize,
    made: &'static AtomicU64,
) {
    let pool = Pool::builder(move || Obj::new(drops, made))
        .max_retained(max_retained)
        .per_thread_cache(cache)
        .reset(|o: &mut Obj| assert!(!o.held.load(Ordering::Relaxed), "returned while held"))
        .build()
        .unwrap();
    let start = Barrier::new(threads);
    let detached_dropped = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..threads {
            let (pool, start, detached_dropped) = (&pool, &start, &detached_dropped);
            s.spawn(move || {
                start.wait();
                let mut held: Vec<Pooled<'_, Obj>> = Vec::new();
                for i in 0..ITERS {
                    let o = pool.get();
                    o.take();
                    held.push(o);
                    if held.len() > 1 + (i + t) % 5 {
                        let o = held.swap_remove(i % held.len());
                        o.release();
                        match i % 16 {
                            3 => {
                                drop(Pooled::detach(o));
                                detached_dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            7 => {
                                drop(o);
                                pool.put(Obj::new(drops, made));
                            }
                            _ => drop(o),
                        }
                    }
                    if i % 97 == 0 {
                        std::thread::yield_now();
                    }
                }
                for o in held {
                    o.release();
                }
            });
        }
    });
    let s = pool.stats();
    assert!(s.retained <= max_retained, "{s:?}");
    assert_eq!(
        s.created + s.donated,
        s.retained as u64 + s.dropped + s.detached,
        "{s:?}"
    );
    assert_eq!(made.load(Ordering::Relaxed), s.created + s.donated);
    assert_eq!(
        s.detached as usize,
        detached_dropped.load(Ordering::Relaxed)
    );
    assert_eq!(
        drops.load(Ordering::Relaxed) as u64,
        s.dropped + s.detached,
        "only over-bound and detached objects dropped while the pool lives"
    );
    drop(pool);
    assert_eq!(
        drops.load(Ordering::Relaxed) as u64,
        made.load(Ordering::Relaxed),
        "every object dropped once the pool is gone"
    );
}

#[test]
fn stress_global_list_only() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static MADE: AtomicU64 = AtomicU64::new(0);
    run(8, 16, 0, &DROPS, &MADE);
}

#[test]
fn stress_with_caches() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static MADE: AtomicU64 = AtomicU64::new(0);
    run(8, 32, 4, &DROPS, &MADE);
}

#[test]
fn stress_tight_bound() {
    static DROPS: AtomicUsize = AtomicUsize::new(0);
    static MADE: AtomicU64 = AtomicU64::new(0);
    run(4, 3, 2, &DROPS, &MADE);
}
