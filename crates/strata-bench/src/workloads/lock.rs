//! Lock workloads: strata-sync's `AdaptiveMutex`, `McsLock` and `AdaptiveRwLock` beside
//! parking_lot's and std's locks, on the same critical sections.
//!
//! * `lock/counter`: every thread locks, adds 1 to a shared `u64`, unlocks (a short
//!   critical section). An op is one acquisition.
//! * `lock/array64`: the same with a medium critical section: every acquisition adds
//!   to each of 64 `u64` entries (one 512-byte array).
//! * `lock/rw-read99`: a reader-writer lock around four `u64`s; every thread draws
//!   (xorshift, seeded per thread) a write 1 time in 100 (adds 1 to each word) and
//!   otherwise a read (sums the words). An op is one acquisition of either kind.
//!
//! The two mutex workloads report the fairness spread beside throughput: the most
//! acquisitions of one thread ÷ the fewest, after the fixed time (1.00 is even).
//!
//! Every implementation also has a fixed-iteration single-thread path for
//! `--callgrind` (uncontended lock and unlock around the same section).

use std::hint::black_box;
use std::sync::{Mutex, PoisonError, RwLock};

use strata_sync::mcs::McsLock;
use strata_sync::mutex::AdaptiveMutex;
use strata_sync::rwlock::AdaptiveRwLock;

use crate::harness::{BATCH, Impl, Kind, Workload, repeat_until, timed_threads};

/// Entries of the array in `lock/array64`.
const ARRAY: usize = 64;

/// Registers the `lock/*` workloads.
pub fn register(v: &mut Vec<Workload>) {
    v.push(Workload {
        name: "lock/counter",
        help: "Every thread locks, adds 1 to a shared u64 and unlocks (a short critical section); fairness spread reported.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: true,
        impls: vec![
            mutex_imp("strata-adaptive", Kind::Strata, || AdaptiveMutex::new(0u64), bump),
            mutex_imp("strata-mcs", Kind::Strata, || McsLock::new(0u64), bump),
            mutex_imp(
                "parking_lot-mutex",
                Kind::Peer,
                || parking_lot::Mutex::new(0u64),
                bump,
            ),
            mutex_imp("std-mutex", Kind::Peer, || Mutex::new(0u64), bump),
        ],
    });
    v.push(Workload {
        name: "lock/array64",
        help: "Every thread locks, adds to each of 64 shared u64 entries and unlocks (a medium critical section); fairness spread reported.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: true,
        impls: vec![
            mutex_imp(
                "strata-adaptive",
                Kind::Strata,
                || AdaptiveMutex::new([0u64; ARRAY]),
                sweep,
            ),
            mutex_imp(
                "strata-mcs",
                Kind::Strata,
                || McsLock::new([0u64; ARRAY]),
                sweep,
            ),
            mutex_imp(
                "parking_lot-mutex",
                Kind::Peer,
                || parking_lot::Mutex::new([0u64; ARRAY]),
                sweep,
            ),
            mutex_imp("std-mutex", Kind::Peer, || Mutex::new([0u64; ARRAY]), sweep),
        ],
    });
    v.push(Workload {
        name: "lock/rw-read99",
        help: "A reader-writer lock around four u64s; every thread reads (sums them) 99 times in 100 and writes (adds 1 to each) once, at random.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            rw_imp("strata-adaptive-rw", Kind::Strata, || {
                AdaptiveRwLock::new([0u64; 4])
            }),
            rw_imp("parking_lot-rwlock", Kind::Peer, || {
                parking_lot::RwLock::new([0u64; 4])
            }),
            rw_imp("std-rwlock", Kind::Peer, || RwLock::new([0u64; 4])),
        ],
    });
}

// ---------------------------------------------------------------------------------
// mutexes

/// What the mutex workloads need of a lock: run `f` on the data while holding it.
trait Lock<T>: Sync {
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R;
}

impl<T: Send> Lock<T> for AdaptiveMutex<T> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl<T: Send> Lock<T> for McsLock<T> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock())
    }
}

impl<T: Send> Lock<T> for parking_lot::Mutex<T> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock())
    }
}

impl<T: Send> Lock<T> for Mutex<T> {
    #[inline]
    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut self.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The short critical section: add 1, keep the old value.
#[inline]
fn bump(x: &mut u64) -> u64 {
    let old = *x;
    *x = old.wrapping_add(1);
    old
}

/// The medium critical section: add to each of the 64 entries.
#[inline]
fn sweep(a: &mut [u64; ARRAY]) -> u64 {
    for (i, x) in a.iter_mut().enumerate() {
        *x = x.wrapping_add(i as u64 + 1);
    }
    a[ARRAY - 1]
}

fn mutex_imp<T: 'static, L: Lock<T> + 'static>(
    name: &'static str,
    kind: Kind,
    make: fn() -> L,
    section: fn(&mut T) -> u64,
) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        let l = make();
        timed_threads(threads, duration, |_, stop| {
            repeat_until(stop, BATCH, || {
                black_box(l.with(section));
            })
        })
    })
    .with_fixed(move |iters| {
        let l = make();
        for _ in 0..iters {
            black_box(l.with(section));
        }
    })
}

// ---------------------------------------------------------------------------------
// reader-writer locks

/// What `lock/rw-read99` needs of a reader-writer lock.
trait RwWords: Sync {
    fn read_sum(&self) -> u64;
    fn write_add(&self);
}

#[inline]
fn sum(w: &[u64; 4]) -> u64 {
    w.iter().fold(0u64, |a, &x| a.wrapping_add(x))
}

#[inline]
fn add_all(w: &mut [u64; 4]) {
    for x in w {
        *x = x.wrapping_add(1);
    }
}

impl RwWords for AdaptiveRwLock<[u64; 4]> {
    #[inline]
    fn read_sum(&self) -> u64 {
        sum(&self.read().unwrap_or_else(PoisonError::into_inner))
    }
    #[inline]
    fn write_add(&self) {
        add_all(&mut self.write().unwrap_or_else(PoisonError::into_inner));
    }
}

impl RwWords for parking_lot::RwLock<[u64; 4]> {
    #[inline]
    fn read_sum(&self) -> u64 {
        sum(&self.read())
    }
    #[inline]
    fn write_add(&self) {
        add_all(&mut self.write());
    }
}

impl RwWords for RwLock<[u64; 4]> {
    #[inline]
    fn read_sum(&self) -> u64 {
        sum(&self.read().unwrap_or_else(PoisonError::into_inner))
    }
    #[inline]
    fn write_add(&self) {
        add_all(&mut self.write().unwrap_or_else(PoisonError::into_inner));
    }
}

/// One step of the 99%-read mix, drawing from the thread's xorshift state.
#[inline]
fn rw_step(l: &impl RwWords, rng: &mut u64) {
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    if rng.is_multiple_of(100) {
        l.write_add();
    } else {
        black_box(l.read_sum());
    }
}

fn rw_imp<L: RwWords + 'static>(name: &'static str, kind: Kind, make: fn() -> L) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        let l = make();
        timed_threads(threads, duration, |i, stop| {
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
            repeat_until(stop, BATCH, || rw_step(&l, &mut rng))
        })
    })
    .with_fixed(move |iters| {
        let l = make();
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..iters {
            rw_step(&l, &mut rng);
        }
    })
}
