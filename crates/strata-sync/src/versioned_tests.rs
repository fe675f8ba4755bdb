//! Loom models and unit tests of [`crate::versioned`].
//!
//! In the models every write adds 1 to each word of a `[u64; 2]`, so the value of
//! generation `g` is `[g / 2; 2]`: a snapshot can be checked against its generation.
//! Under `--cfg strata_weaken` the store that ends a write is `Relaxed`, and the
//! models that must notice are marked `should_panic`.
//!
//! Planted bugs caught: see the header of the seqlock tests (the two types share the
//! read and publish steps).

use std::sync::atomic::{AtomicBool, Ordering};

use strata_primitives::sync::Arc;
use strata_primitives::{LOOM, model, thread};

use super::{DEFAULT_MAX_TRIES, Stats, Versioned};

/// Spawns `n` writers that each add 1 to both words once.
fn spawn_incrementers(v: &Arc<Versioned<[u64; 2]>>, n: usize) -> Vec<thread::JoinHandle<u64>> {
    (0..n)
        .map(|_| {
            let v = Arc::clone(v);
            thread::spawn(move || {
                v.write(|x| {
                    x[0] += 1;
                    x[1] += 1;
                })
            })
        })
        .collect()
}

/// Two writers race a reader that reads a version, copies the value and validates:
/// a validated version's copy is exactly that generation's value, and so is every
/// `read_with_version` snapshot.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "snapshot of generation"))]
fn loom_versioned_validated_snapshot() {
    model(|| {
        let v = Arc::new(Versioned::new([0u64; 2]));
        let writers = spawn_incrementers(&v, 2);
        let g = v.version();
        let t = v.read();
        if v.validate(g) {
            assert_eq!(t, [g / 2; 2], "snapshot of generation {g}");
        }
        let (t2, g2) = v.read_with_version();
        assert_eq!(t2, [g2 / 2; 2], "snapshot of generation {g2}");
        let mut generations: Vec<u64> = writers.into_iter().map(|w| w.join().unwrap()).collect();
        generations.sort_unstable();
        assert_eq!(generations, [2, 4], "each write returns its own generation");
        assert_eq!(v.read_with_version(), ([2, 2], 4));
    });
}

/// Set when some execution of `loom_versioned_fallback_after_max_tries` fell back.
static FALLBACK_SEEN: AtomicBool = AtomicBool::new(false);

/// With one optimistic attempt, a reader that overlaps a write falls back to the lock
/// and still returns a consistent snapshot; across the model's executions the
/// fallback is taken at least once.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "snapshot of generation"))]
fn loom_versioned_fallback_after_max_tries() {
    model(|| {
        let v = Arc::new(Versioned::with_max_tries([0u64; 2], 1));
        let writers = spawn_incrementers(&v, 1);
        let (t, g) = v.read_with_version();
        assert_eq!(t, [g / 2; 2], "snapshot of generation {g}");
        let s = v.stats();
        assert!(s.fallbacks <= 1 && s.retries <= 1, "{s:?}");
        assert_eq!(s.fallbacks, s.retries, "one attempt, then the lock: {s:?}");
        if s.fallbacks == 1 {
            FALLBACK_SEEN.store(true, Ordering::Relaxed);
        }
        for w in writers {
            assert_eq!(w.join().unwrap(), 2);
        }
    });
    if LOOM {
        assert!(
            FALLBACK_SEEN.load(Ordering::Relaxed),
            "no execution took the fallback path"
        );
    }
}

use crate::seqlock::tests::{Align16, Bytes33};

#[test]
fn api_read_write_store_version_validate() {
    model(|| {
        let v = Versioned::new(1u32);
        assert_eq!(v.max_tries(), DEFAULT_MAX_TRIES);
        assert_eq!(v.version(), 0);
        assert_eq!(v.read(), 1);
        assert_eq!(v.read_with_version(), (1, 0));
        assert!(v.validate(0));
        assert!(!v.validate(1), "an odd version never validates");
        assert!(!v.validate(2), "a future version does not validate");
        assert_eq!(v.write(|x| *x += 1), 2);
        assert_eq!(v.read_with_version(), (2, 2));
        assert!(!v.validate(0));
        assert!(v.validate(2));
        assert_eq!(v.store(10), 4);
        assert_eq!(v.version(), 4);
        assert_eq!(v.into_inner(), 10);
    });
}

#[test]
fn api_stats_count_reads() {
    model(|| {
        let v = Versioned::new(0u64);
        assert_eq!(v.stats(), Stats::default());
        v.read();
        v.read_with_version();
        let s = v.stats();
        assert_eq!((s.retries, s.fallbacks), (0, 0));

        // No optimistic attempt at all: every read takes the lock.
        let locked = Versioned::with_max_tries([1u8; 5], 0);
        assert_eq!(locked.read(), [1; 5]);
        locked.store([2; 5]);
        assert_eq!(locked.read_with_version(), ([2; 5], 2));
        let s = locked.stats();
        assert_eq!((s.retries, s.fallbacks), (0, 2));
    });
}

#[test]
fn api_default_from_clone_debug() {
    model(|| {
        let d: Versioned<[i32; 2]> = Versioned::default();
        assert_eq!(d.read(), [0, 0]);
        let f = Versioned::from(3u16);
        f.store(4);
        assert_eq!(
            format!("{f:?}"),
            "Versioned { value: 4, version: 2, max_tries: 8 }"
        );
        let c = Versioned::with_max_tries(5u8, 3).clone();
        assert_eq!((c.read(), c.version(), c.max_tries()), (5, 0, 3));
        // Inside a write's closure the generation is still even: reads and Debug work.
        let mut inside = (String::new(), 0);
        f.write(|x| {
            inside = (format!("{f:?}"), f.read());
            *x = 5;
        });
        assert_eq!(
            inside,
            (
                "Versioned { value: 4, version: 2, max_tries: 8 }".to_string(),
                4
            )
        );
    });
}

#[test]
fn odd_sizes_and_alignments_round_trip() {
    model(|| {
        let zst = Versioned::new(());
        assert_eq!(zst.store(()), 2);
        assert_eq!(zst.read_with_version(), ((), 2));

        let one = Versioned::new(1u8);
        one.write(|x| *x = 255);
        assert_eq!(one.read(), 255);

        let seven = Versioned::new([9u8; 7]);
        seven.write(|x| x[6] = 1);
        assert_eq!(seven.read(), [9, 9, 9, 9, 9, 9, 1]);

        let big = Versioned::new(Bytes33 {
            head: [3; 32],
            last: 3,
        });
        big.write(|x| x.last = 4);
        let expected = Bytes33 {
            head: [3; 32],
            last: 4,
        };
        assert_eq!(big.read(), expected);

        let a = Versioned::new(Align16 { a: 1, b: 2 });
        a.store(Align16 { a: 5, b: 6 });
        assert_eq!(a.into_inner(), Align16 { a: 5, b: 6 });
    });
}

#[test]
fn send_sync_when_t_send() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Versioned<u64>>();
    assert_send_sync::<Versioned<Align16>>();
}

/// A panic in the writer's closure stores nothing, leaves the generation and
/// releases (poisons, ignored) the lock; fallback reads still take the lock.
#[cfg(not(strata_loom))]
#[test]
fn panic_in_writer_leaves_value_and_generation() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let v = Versioned::with_max_tries([1u64; 3], 0);
    v.store([2; 3]);
    let r = catch_unwind(AssertUnwindSafe(|| {
        v.write(|x| {
            x[0] = 99;
            panic!("boom");
        })
    }));
    assert!(r.is_err());
    assert_eq!(v.version(), 2);
    assert!(v.validate(2));
    assert_eq!(
        v.read_with_version(),
        ([2; 3], 2),
        "a fallback read after the panic"
    );
    assert_eq!(v.write(|x| x[2] = 0), 4);
    assert_eq!(v.read(), [2, 2, 0]);
}

/// Real threads: writers and readers on an odd-sized value, with one optimistic try
/// so that some reads fall back; under miri this checks the racy copies.
#[cfg(not(strata_loom))]
#[test]
fn concurrent_snapshots_match_their_generation() {
    let rounds: u64 = if cfg!(miri) { 20 } else { 500 };
    let v = Versioned::with_max_tries([0u8; 11], 1);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..rounds {
                    v.write(|x| {
                        for b in x.iter_mut() {
                            *b = b.wrapping_add(1);
                        }
                    });
                }
            });
        }
        s.spawn(|| {
            for _ in 0..rounds {
                let (x, g) = v.read_with_version();
                assert_eq!(x, [(g / 2) as u8; 11], "snapshot of generation {g}");
            }
        });
    });
    assert_eq!(v.version(), 4 * rounds);
    let s = v.stats();
    assert!(s.fallbacks <= rounds, "{s:?}");
}
