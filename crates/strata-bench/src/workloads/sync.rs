//! strata-sync workloads: flat combining beside a lock around the same structure, the
//! read-mostly cells (`RcuCell`, `SeqLock`) beside arc-swap, and the striped map beside
//! dashmap.
//!
//! * `sync/counter`: every thread adds 1 to one shared counter and keeps the previous
//!   value: `CombiningCounter::add` against `parking_lot::Mutex<u64>` and
//!   `std::sync::Mutex<u64>`, with a bare `fetch_add` as the ceiling (`Kind::Limit`).
//! * `sync/fc-queue`: a FIFO queue of `u64` shared by all threads, pre-filled with 8
//!   items per thread; every thread loops push then pop (two ops per iteration), as in
//!   `queue/pairs-unbounded`: `FlatCombining<VecDeque<u64>>` against the same
//!   `VecDeque` behind `parking_lot::Mutex` and `std::sync::Mutex`.
//! * `sync/read-32B`: every thread reads a 32-byte value (`[u64; 4]`) and sums its
//!   words, while one more thread, not counted, writes a new value every millisecond:
//!   `RcuCell::load` and `SeqLock::read` against arc-swap's `ArcSwap::load`.
//! * `sync/read-arc`: the same, but every read takes an owned `Arc` of the value
//!   (`RcuCell::load_full` against `ArcSwap::load_full`).
//! * `sync/map-90r10w`: a map of 10^5 `u64` keys, filled before the clock starts; every
//!   thread draws a key at random (xorshift, seeded per thread) and reads its value
//!   (9 times in 10) or inserts a new one (1 in 10): `StripedMap` against dashmap's
//!   `DashMap`, both with std's default hasher (SipHash, `RandomState`).
//!
//! An op is one call of the operation named (an add, a push or a pop that returned an
//! item, a read, a map access). The writer of the read workloads runs in a scoped
//! thread started before the reader threads and stopped after them; its writes are not
//! counted.
//!
//! Every implementation also has a fixed-iteration single-thread path for
//! `--callgrind`; in the read workloads it runs without the writer.

use std::collections::VecDeque;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use strata_primitives::CachePadded;
use strata_sync::combining::{CombiningCounter, DequeOp, FlatCombining};
use strata_sync::rcu::RcuCell;
use strata_sync::seqlock::SeqLock;
use strata_sync::striped::StripedMap;

use crate::harness::{BATCH, Impl, Kind, Sample, Workload, repeat_until, timed_threads};

/// Items pushed per thread before the clock starts, in `sync/fc-queue`.
const PAIRS_PREFILL: u64 = 8;

/// Keys in the map of `sync/map-90r10w`.
const MAP_KEYS: u64 = 100_000;

/// The writer's period in the read workloads.
const WRITE_PERIOD: Duration = Duration::from_millis(1);

/// Registers the `sync/*` workloads.
pub fn register(v: &mut Vec<Workload>) {
    v.push(Workload {
        name: "sync/counter",
        help: "Every thread adds 1 to one shared counter and keeps the previous value: flat combining against a mutex around a u64 (fetch_add shown as the ceiling).",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            counter_imp("strata-combining", Kind::Strata, || CombiningCounter::new(0)),
            counter_imp("parking_lot-mutex", Kind::Peer, || {
                parking_lot::Mutex::new(0u64)
            }),
            counter_imp("std-mutex", Kind::Peer, || Mutex::new(0u64)),
            counter_imp("fetch_add", Kind::Limit, || {
                CachePadded::new(AtomicU64::new(0))
            }),
        ],
    });
    v.push(Workload {
        name: "sync/fc-queue",
        help: "A FIFO VecDeque of u64 shared by all threads, pre-filled with 8 items per thread; every thread loops push then pop (two ops per iteration): flat combining against a mutex around the same VecDeque.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            deque_imp("strata-combining", Kind::Strata, || {
                FlatCombining::new(VecDeque::<u64>::new())
            }),
            deque_imp("parking_lot-mutex", Kind::Peer, || {
                parking_lot::Mutex::new(VecDeque::<u64>::new())
            }),
            deque_imp("std-mutex", Kind::Peer, || Mutex::new(VecDeque::<u64>::new())),
        ],
    });
    v.push(Workload {
        name: "sync/read-32B",
        help: "Every thread reads a 32-byte value ([u64; 4]) and sums its words while one uncounted thread writes a new value every millisecond.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            read_imp("strata-rcu", Kind::Strata, || RcuCell::new(words(0))),
            read_imp("strata-seqlock", Kind::Strata, || SeqLock::new(words(0))),
            read_imp("arc-swap", Kind::Peer, || ArcSwap::from_pointee(words(0))),
        ],
    });
    v.push(Workload {
        name: "sync/read-arc",
        help: "Every thread takes an owned Arc of a 32-byte value ([u64; 4]) and sums its words while one uncounted thread writes a new value every millisecond.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            read_imp("strata-rcu", Kind::Strata, || FullLoad(RcuCell::new(words(0)))),
            read_imp("arc-swap", Kind::Peer, || {
                FullLoad(ArcSwap::from_pointee(words(0)))
            }),
        ],
    });
    v.push(Workload {
        name: "sync/map-90r10w",
        help: "A map of 10^5 u64 keys (std's SipHash); every thread picks a random key and reads its value 9 times in 10 or inserts a new value 1 time in 10.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            map_imp("strata-striped", Kind::Strata, StripedMap::<u64, u64>::new),
            map_imp("dashmap", Kind::Peer, DashMap::<u64, u64>::new),
        ],
    });
}

// ---------------------------------------------------------------------------------
// sync/counter

/// What `sync/counter` needs of a counter.
trait Counter: Sync {
    /// Adds `n`, returning the previous value.
    fn add(&self, n: u64) -> u64;
}

impl Counter for CombiningCounter {
    #[inline]
    fn add(&self, n: u64) -> u64 {
        CombiningCounter::add(self, n)
    }
}

impl Counter for parking_lot::Mutex<u64> {
    #[inline]
    fn add(&self, n: u64) -> u64 {
        let mut g = self.lock();
        let old = *g;
        *g = old.wrapping_add(n);
        old
    }
}

impl Counter for Mutex<u64> {
    #[inline]
    fn add(&self, n: u64) -> u64 {
        let mut g = self.lock().unwrap_or_else(PoisonError::into_inner);
        let old = *g;
        *g = old.wrapping_add(n);
        old
    }
}

impl Counter for CachePadded<AtomicU64> {
    #[inline]
    fn add(&self, n: u64) -> u64 {
        self.fetch_add(n, Ordering::Relaxed)
    }
}

fn counter_imp<C: Counter + 'static>(name: &'static str, kind: Kind, make: fn() -> C) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        let c = make();
        timed_threads(threads, duration, |_, stop| {
            repeat_until(stop, BATCH, || {
                black_box(c.add(1));
            })
        })
    })
    .with_fixed(move |iters| {
        let c = make();
        for _ in 0..iters {
            black_box(c.add(1));
        }
    })
}

// ---------------------------------------------------------------------------------
// sync/fc-queue

/// What `sync/fc-queue` needs of a FIFO queue.
trait Fifo: Sync {
    fn push(&self, v: u64);
    fn pop(&self) -> Option<u64>;
}

impl Fifo for FlatCombining<VecDeque<u64>> {
    #[inline]
    fn push(&self, v: u64) {
        black_box(self.apply(DequeOp::PushBack(v)));
    }
    #[inline]
    fn pop(&self) -> Option<u64> {
        self.apply(DequeOp::PopFront).into_popped()
    }
}

impl Fifo for parking_lot::Mutex<VecDeque<u64>> {
    #[inline]
    fn push(&self, v: u64) {
        self.lock().push_back(v);
    }
    #[inline]
    fn pop(&self) -> Option<u64> {
        self.lock().pop_front()
    }
}

impl Fifo for Mutex<VecDeque<u64>> {
    #[inline]
    fn push(&self, v: u64) {
        self.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(v);
    }
    #[inline]
    fn pop(&self) -> Option<u64> {
        self.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }
}

/// One iteration: a push then a pop; returns the ops done.
#[inline]
fn fifo_pair(q: &impl Fifo, next: &mut u64) -> u64 {
    q.push(*next);
    *next = next.wrapping_add(1);
    let popped = q.pop();
    let ops = 1 + u64::from(popped.is_some());
    black_box(popped);
    ops
}

fn deque_imp<Q: Fifo + 'static>(name: &'static str, kind: Kind, make: fn() -> Q) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        let q = make();
        for v in 0..threads as u64 * PAIRS_PREFILL {
            q.push(v);
        }
        timed_threads(threads, duration, |i, stop| {
            let mut next = (i as u64 + 1) << 40;
            let mut ops = 0u64;
            repeat_until(stop, BATCH, || ops += fifo_pair(&q, &mut next));
            ops
        })
    })
    .with_fixed(move |iters| {
        let q = make();
        for v in 0..PAIRS_PREFILL {
            q.push(v);
        }
        let mut next = 1u64 << 40;
        for _ in 0..iters {
            black_box(fifo_pair(&q, &mut next));
        }
    })
}

// ---------------------------------------------------------------------------------
// sync/read-32B, sync/read-arc

/// The value of the read workloads: four equal words.
fn words(v: u64) -> [u64; 4] {
    [v; 4]
}

/// What the read workloads need of a cell holding a `[u64; 4]`.
trait ReadCell: Sync {
    /// Reads the value and returns the sum of its words.
    fn read_sum(&self) -> u64;
    /// Replaces the value.
    fn write(&self, value: [u64; 4]);
}

impl ReadCell for RcuCell<[u64; 4]> {
    #[inline]
    fn read_sum(&self) -> u64 {
        self.load().iter().sum()
    }
    fn write(&self, value: [u64; 4]) {
        self.store(value);
    }
}

impl ReadCell for SeqLock<[u64; 4]> {
    #[inline]
    fn read_sum(&self) -> u64 {
        self.read().iter().sum()
    }
    fn write(&self, value: [u64; 4]) {
        self.store(value);
    }
}

impl ReadCell for ArcSwap<[u64; 4]> {
    #[inline]
    fn read_sum(&self) -> u64 {
        self.load().iter().sum()
    }
    fn write(&self, value: [u64; 4]) {
        self.store(Arc::new(value));
    }
}

/// A cell read through an owned `Arc` (`load_full`) instead of a guard.
struct FullLoad<C>(C);

impl ReadCell for FullLoad<RcuCell<[u64; 4]>> {
    #[inline]
    fn read_sum(&self) -> u64 {
        self.0.load_full().iter().sum()
    }
    fn write(&self, value: [u64; 4]) {
        self.0.store(value);
    }
}

impl ReadCell for FullLoad<ArcSwap<[u64; 4]>> {
    #[inline]
    fn read_sum(&self) -> u64 {
        self.0.load_full().iter().sum()
    }
    fn write(&self, value: [u64; 4]) {
        self.0.store(Arc::new(value));
    }
}

fn read_imp<C: ReadCell + 'static>(name: &'static str, kind: Kind, make: fn() -> C) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        let cell = make();
        with_writer(&cell, || {
            timed_threads(threads, duration, |_, stop| {
                repeat_until(stop, BATCH, || {
                    black_box(cell.read_sum());
                })
            })
        })
    })
    .with_fixed(move |iters| {
        let cell = make();
        for _ in 0..iters {
            black_box(cell.read_sum());
        }
    })
}

/// Runs `readers` while a scoped thread writes a new value into `cell` every
/// [`WRITE_PERIOD`]; stops the writer when `readers` returns.
fn with_writer<C: ReadCell>(cell: &C, readers: impl FnOnce() -> Sample) -> Sample {
    let stop = AtomicBool::new(false);
    thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut v = 1u64;
            while !stop.load(Ordering::Relaxed) {
                cell.write(words(v));
                v = v.wrapping_add(1);
                thread::sleep(WRITE_PERIOD);
            }
        });
        let sample = readers();
        stop.store(true, Ordering::Relaxed);
        writer.join().expect("the writer thread panicked");
        sample
    })
}

// ---------------------------------------------------------------------------------
// sync/map-90r10w

/// What `sync/map-90r10w` needs of a concurrent map.
trait Map: Sync {
    fn read(&self, key: u64) -> Option<u64>;
    fn insert(&self, key: u64, value: u64);
}

impl Map for StripedMap<u64, u64> {
    #[inline]
    fn read(&self, key: u64) -> Option<u64> {
        self.get(&key).map(|r| *r)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        black_box(StripedMap::insert(self, key, value));
    }
}

impl Map for DashMap<u64, u64> {
    #[inline]
    fn read(&self, key: u64) -> Option<u64> {
        self.get(&key).map(|r| *r)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        black_box(DashMap::insert(self, key, value));
    }
}

/// xorshift64: the same key sequence for every map.
#[inline]
fn next_random(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    x
}

/// One map access: a read 9 times in 10, an insert 1 time in 10.
#[inline]
fn map_op(m: &impl Map, rng: &mut u64) {
    let r = next_random(rng);
    let key = r % MAP_KEYS;
    if (r >> 32).is_multiple_of(10) {
        m.insert(key, r);
    } else {
        black_box(m.read(key));
    }
}

fn filled<M: Map>(make: fn() -> M) -> M {
    let m = make();
    for k in 0..MAP_KEYS {
        m.insert(k, k);
    }
    m
}

fn map_imp<M: Map + 'static>(name: &'static str, kind: Kind, make: fn() -> M) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        let m = filled(make);
        timed_threads(threads, duration, |i, stop| {
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ ((i as u64 + 1) << 17);
            repeat_until(stop, BATCH, || map_op(&m, &mut rng))
        })
    })
    .with_fixed(move |iters| {
        let m = filled(make);
        let mut rng = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..iters {
            map_op(&m, &mut rng);
        }
    })
}
