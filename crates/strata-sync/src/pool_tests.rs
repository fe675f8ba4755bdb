//! Loom models and unit tests of the object pool ([`crate::pool`]).
//!
//! Objects in the models carry a plain `in_use` flag that every holder checks and
//! sets through the handle's `deref_mut`, a `with_mut` access of the slot that loom
//! checks for races: an object handed to two holders at once is a race (or, if the two
//! are ordered, a holder finds the flag set). Every model also checks conservation
//! (`created + donated = retained + live + dropped + detached`) and that dropping the
//! pool drops every object it kept.
//!
//! Under `--cfg strata_weaken` the CAS that pushes a slot on a stack is `Relaxed`
//! instead of `Release`: a thread that pops an object another thread returned then
//! races with that thread's last use of it (loom's "Causality violation"), or, when
//! the slot is in a segment the other thread allocated, does not even see the segment
//! (the pool's own assertion). The models marked `should_panic` report it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64 as StdAtomicU64, AtomicUsize as StdAtomicUsize, Ordering};

use strata_primitives::{LOOM, model, thread};

use super::{Pool, PoolError, Pooled, THREAD_CACHE_POOLS};

/// A pooled test object: an id, a flag its holder sets, and a shared drop counter.
#[derive(Debug)]
struct Obj {
    id: u64,
    in_use: bool,
    drops: Arc<StdAtomicUsize>,
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters shared with a pool's `create`.
#[derive(Clone, Default)]
struct Counts {
    next_id: Arc<StdAtomicU64>,
    drops: Arc<StdAtomicUsize>,
}

impl Counts {
    fn make(&self) -> Obj {
        Obj {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            in_use: false,
            drops: Arc::clone(&self.drops),
        }
    }

    fn drops(&self) -> usize {
        self.drops.load(Ordering::Relaxed)
    }
}

/// A pool of `Obj` with these limits.
fn pool(counts: &Counts, max_retained: usize, cache: usize) -> Pool<Obj> {
    let c = counts.clone();
    Pool::builder(move || c.make())
        .max_retained(max_retained)
        .per_thread_cache(cache)
        .build()
        .unwrap()
}

/// Uses an object as its only holder: the flag must be clear, is set, then cleared.
fn hold(o: &mut Pooled<'_, Obj>) -> u64 {
    assert!(!o.in_use, "object {} handed to two holders", o.id);
    o.in_use = true;
    o.in_use = false;
    o.id
}

/// Checks conservation with nothing handed out, drops the pool, and checks that its
/// drop dropped exactly the objects it kept.
fn assert_conserved_and_drop(pool: Pool<Obj>, counts: &Counts) {
    let s = pool.stats();
    assert_eq!(
        s.created + s.donated,
        s.retained as u64 + s.dropped + s.detached,
        "conservation: {s:?}"
    );
    assert!(s.retained <= pool.max_retained());
    let before = counts.drops();
    drop(pool);
    assert_eq!(
        counts.drops() - before,
        s.retained,
        "the pool's drop dropped exactly the objects it kept"
    );
}

/// Two threads get and return objects through the global list (no caches), twice
/// each, so objects pass from one thread to the other.
#[test]
#[cfg_attr(
    strata_weaken,
    should_panic(expected = "used before its segment is visible")
)]
fn loom_pool_get_put_across_threads() {
    model(|| {
        let counts = Counts::default();
        let pool = Arc::new(pool(&counts, 2, 0));
        let p2 = Arc::clone(&pool);
        let t = thread::spawn(move || {
            for _ in 0..2 {
                hold(&mut p2.get());
            }
        });
        for _ in 0..2 {
            hold(&mut pool.get());
        }
        t.join().unwrap();
        let pool = Arc::try_unwrap(pool).unwrap_or_else(|_| unreachable!());
        assert_conserved_and_drop(pool, &counts);
    });
}

/// The ABA scenario of the global list: objects A (top) and B are kept; the main
/// thread's pop reads A and A's `next` (B), and may be preempted before its CAS while
/// the other thread pops A and B and pushes A back (the head is A again, with a stale
/// `next`). The tag makes the main thread's CAS fail; without it, the CAS would set
/// the head to B, which the other thread holds, and the main thread's second `get`
/// would hand B out again (a race, and the flag). With the tag left unchanged (a
/// planted bug) this model fails.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_pool_aba_on_the_global_list() {
    model(|| {
        let counts = Counts::default();
        let pool = Arc::new(pool(&counts, 4, 0));
        pool.put(counts.make());
        pool.put(counts.make());
        let p2 = Arc::clone(&pool);
        let t = thread::spawn(move || {
            let mut a = p2.get();
            let mut b = p2.get();
            hold(&mut a);
            drop(a);
            hold(&mut b);
        });
        let mut x = pool.get();
        hold(&mut x);
        // After an ABA'd pop, the list would hold B while the other thread holds it:
        // this second pop would hand B out again.
        let mut y = pool.get();
        hold(&mut y);
        assert_ne!(x.id, y.id);
        drop((x, y));
        t.join().unwrap();
        let pool = Arc::try_unwrap(pool).unwrap_or_else(|_| unreachable!());
        assert_conserved_and_drop(pool, &counts);
    });
}

/// The ABA model with a third thread donating an object meanwhile: its push races
/// the other two threads' pops and pushes on the head.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_pool_aba_with_a_donor() {
    model(|| {
        let counts = Counts::default();
        let pool = Arc::new(pool(&counts, 4, 0));
        pool.put(counts.make());
        pool.put(counts.make());
        let p2 = Arc::clone(&pool);
        let t = thread::spawn(move || {
            let mut a = p2.get();
            let mut b = p2.get();
            hold(&mut a);
            drop(a);
            hold(&mut b);
        });
        let p3 = Arc::clone(&pool);
        let c3 = counts.clone();
        let donor = c3.make();
        let d = thread::spawn(move || p3.put(donor));
        let mut x = pool.get();
        hold(&mut x);
        d.join().unwrap();
        t.join().unwrap();
        drop(x);
        let pool = Arc::try_unwrap(pool).unwrap_or_else(|_| unreachable!());
        assert_conserved_and_drop(pool, &counts);
    });
}

/// Objects pass between threads through the caches: one thread returns three
/// objects into a cache of two (the third return flushes one to the global list)
/// while the other takes objects (refilling its cache from the global list).
#[test]
#[cfg_attr(
    strata_weaken,
    should_panic(expected = "used before its segment is visible")
)]
fn loom_pool_cache_flush_and_refill_across_threads() {
    model(|| {
        let counts = Counts::default();
        let pool = Arc::new(pool(&counts, 4, 2));
        let p2 = Arc::clone(&pool);
        let t = thread::spawn(move || {
            let mut held: Vec<_> = (0..3).map(|_| p2.get()).collect();
            for o in &mut held {
                hold(o);
            }
        });
        for _ in 0..2 {
            hold(&mut pool.get());
        }
        t.join().unwrap();
        let pool = Arc::try_unwrap(pool).unwrap_or_else(|_| unreachable!());
        assert_conserved_and_drop(pool, &counts);
    });
}

/// A thread returns objects to its cache and exits: its cache is abandoned with the
/// objects in it, and they are reused (not created again, not leaked) by the main
/// thread, which also races the other thread's record creation with its own.
#[test]
fn loom_pool_thread_exit_returns_cache() {
    model(|| {
        let counts = Counts::default();
        let pool = Arc::new(pool(&counts, 4, 2));
        let p2 = Arc::clone(&pool);
        let t = thread::spawn(move || {
            let mut a = p2.get();
            let mut b = p2.get();
            hold(&mut a);
            hold(&mut b);
        });
        hold(&mut pool.get());
        t.join().unwrap();
        // loom's `join` returns before the thread's thread-locals are dropped (std's
        // waits for them): wait until the other thread's record is abandoned (or was
        // abandoned and taken over by this thread: then there is one record).
        loop {
            let (mut records, mut abandoned) = (0, 0);
            pool.for_each_record(|r| {
                records += 1;
                abandoned += usize::from(!r.claimed.load(Ordering::Acquire));
            });
            if abandoned > 0 || records == 1 {
                break;
            }
            thread::yield_now();
        }
        // Three objects at once: the exited thread's two and the main thread's one
        // (whichever made them), none created anew.
        let made = counts.next_id.load(Ordering::Relaxed);
        assert!(made <= 3, "made {made}");
        let held: Vec<_> = (0..3).map(|_| pool.get()).collect();
        let mut ids: Vec<u64> = held.iter().map(|o| o.id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 3, "three distinct objects");
        assert_eq!(
            pool.stats().created,
            3,
            "the exited thread's objects were reused"
        );
        drop(held);
        let pool = Arc::try_unwrap(pool).unwrap_or_else(|_| unreachable!());
        assert_conserved_and_drop(pool, &counts);
    });
}

// ---- unit tests (single-threaded ones run as one-thread models under loom) ----

#[test]
fn invalid_limits_are_errors() {
    model(|| {
        let e = Pool::builder(|| 0u8)
            .max_retained(usize::MAX)
            .build()
            .unwrap_err();
        assert_eq!(e, PoolError::MaxRetainedTooLarge(usize::MAX));
        let e = Pool::builder(|| 0u8)
            .max_retained(1 << 20)
            .per_thread_cache(1 << 20)
            .build()
            .unwrap_err();
        assert_eq!(e, PoolError::CacheTooLarge(1 << 20));
        let e = Pool::builder(|| 0u8)
            .max_retained(3)
            .per_thread_cache(4)
            .build()
            .unwrap_err();
        assert_eq!(
            e,
            PoolError::CacheLargerThanBound {
                cache: 4,
                max_retained: 3
            }
        );
        assert_eq!(
            e.to_string(),
            "per_thread_cache 4 is larger than max_retained 3"
        );
        // The defaults are valid.
        let p = Pool::new(|| 1u8);
        assert_eq!(*p.get(), 1);
        assert!(format!("{p:?}").starts_with("Pool {"));
    });
}

#[test]
fn bound_without_cache_is_exact() {
    model(|| {
        let counts = Counts::default();
        let p = pool(&counts, 3, 0);
        let held: Vec<_> = (0..5).map(|_| p.get()).collect();
        assert_eq!(p.stats().created, 5);
        drop(held);
        let s = p.stats();
        assert_eq!(s.retained, 3);
        assert_eq!(s.dropped, 2);
        assert_eq!(counts.drops(), 2);
        let held: Vec<_> = (0..5).map(|_| p.get()).collect();
        let s = p.stats();
        assert_eq!((s.created, s.reused), (7, 3));
        drop(held);
        assert_conserved_and_drop(p, &counts);
    });
}

#[test]
fn bound_with_cache_flush_and_refill() {
    model(|| {
        let counts = Counts::default();
        let p = pool(&counts, 6, 4);
        let held: Vec<_> = (0..10).map(|_| p.get()).collect();
        drop(held);
        let s = p.stats();
        assert!(s.retained <= 6, "{s:?}");
        assert_eq!(s.retained as u64 + s.dropped, 10);
        // Everything kept comes back (from the cache, then refilled from the global
        // list) before anything is created.
        let kept = s.retained;
        let held: Vec<_> = (0..kept).map(|_| p.get()).collect();
        assert_eq!(p.stats().created, 10);
        assert_eq!(p.stats().reused, kept as u64);
        drop(held);
        assert_conserved_and_drop(p, &counts);
    });
}

#[test]
fn zero_retained_drops_everything() {
    model(|| {
        let counts = Counts::default();
        let p = pool(&counts, 0, 0);
        drop(p.get());
        p.put(counts.make());
        let s = p.stats();
        assert_eq!((s.retained, s.dropped, s.donated), (0, 2, 1));
        assert_conserved_and_drop(p, &counts);
    });
}

#[test]
fn reset_runs_on_return_and_put() {
    model(|| {
        let p = Pool::builder(Vec::<u32>::new)
            .reset(|v| v.clear())
            .per_thread_cache(2)
            .max_retained(4)
            .build()
            .unwrap();
        p.get().push(1);
        assert!(p.get().is_empty());
        p.put(vec![5, 6]);
        let a = p.get();
        let b = p.get();
        assert!(a.is_empty() && b.is_empty());
        assert_eq!(p.stats().donated, 1);
        assert_eq!(format!("{a:?}"), "[]");
    });
}

#[test]
#[cfg(not(strata_loom))]
fn panicking_reset_drops_the_object() {
    let counts = Counts::default();
    let c = counts.clone();
    let p = Pool::builder(move || c.make())
        .reset(|o: &mut Obj| assert!(o.id != 0, "reset refuses object 0"))
        .build()
        .unwrap();
    let first = p.get();
    assert_eq!(first.id, 0);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(first)));
    assert!(r.is_err());
    assert_eq!(counts.drops(), 1);
    assert_eq!(p.stats().dropped, 1);
    // The pool goes on; the slot is reused.
    drop(p.get());
    assert_eq!(p.stats().retained, 1);
    assert_conserved_and_drop(p, &counts);
}

#[test]
fn detach_takes_the_object_out() {
    model(|| {
        let counts = Counts::default();
        let p = pool(&counts, 4, 2);
        let mut o = p.get();
        o.in_use = true;
        let owned = Pooled::detach(o);
        assert!(owned.in_use);
        assert_eq!(p.stats().detached, 1);
        assert_eq!(p.stats().retained, 0);
        // The slot is reused for the next object.
        drop(p.get());
        assert_eq!(counts.drops(), 0);
        drop(owned);
        assert_eq!(counts.drops(), 1);
        assert_conserved_and_drop(p, &counts);
    });
}

#[test]
fn pool_drop_drops_kept_objects_in_caches_and_global_list() {
    model(|| {
        let counts = Counts::default();
        let p = pool(&counts, 32, 4);
        let held: Vec<_> = (0..20).map(|_| p.get()).collect();
        drop(held);
        let s = p.stats();
        assert_eq!(s.retained, 20);
        assert!(
            s.retained > p.per_thread_cache(),
            "some are on the global list"
        );
        assert_conserved_and_drop(p, &counts);
    });
}

#[test]
fn many_pools_in_one_thread() {
    model(|| {
        let counts = Counts::default();
        let n = if LOOM { 3 } else { THREAD_CACHE_POOLS + 3 };
        let pools: Vec<_> = (0..n).map(|_| pool(&counts, 4, 2)).collect();
        for _ in 0..2 {
            for p in &pools {
                drop(p.get());
            }
        }
        // Evicted caches were abandoned with their object and are reclaimed.
        for p in &pools {
            assert_eq!(p.stats().created, 1);
        }
        for p in pools {
            assert_conserved_and_drop(p, &counts);
        }
        // A new pool after the others were dropped: the stale entries are purged and
        // never dereferenced.
        let p = pool(&counts, 4, 2);
        drop(p.get());
        assert_conserved_and_drop(p, &counts);
    });
}

#[test]
#[cfg(not(strata_loom))]
fn handles_cross_threads_and_exited_caches_are_reused() {
    let counts = Counts::default();
    let p = pool(&counts, 64, 8);
    std::thread::scope(|s| {
        let held: Vec<_> = (0..8).map(|_| p.get()).collect();
        // Returned by another thread, into its cache, which it abandons on exit.
        s.spawn(move || drop(held)).join().unwrap();
    });
    let held: Vec<_> = (0..8).map(|_| p.get()).collect();
    assert_eq!(p.stats().created, 8);
    assert_eq!(p.stats().reused, 8);
    drop(held);
    assert_conserved_and_drop(p, &counts);
}

/// `Pool` and `Pooled` are `Send + Sync` for `Send` (and, for `Pooled`'s `Sync`,
/// `Sync`) objects.
#[test]
fn auto_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Pool<std::cell::Cell<u8>>>();
    send::<Pooled<'static, std::cell::Cell<u8>>>();
    send_sync::<Pooled<'static, u64>>();
}
