//! Pool workloads: strata-sync's `Pool` beside allocating each time and beside the
//! usual `Mutex<Vec<_>>` free list.
//!
//! * `pool/get-put`: every thread loops: take a 256-byte object (`[u64; 32]`), write
//!   one word and read another, give it back. An op is one get-and-return.
//!   - `strata-pool`: `Pool::get`, the object returns when the handle drops;
//!   - `box`: `Box::new([0; 32])` each time, freed at the end of the op (the global
//!     allocator, glibc malloc, is the pool);
//!   - `mutex-vec`: pop a `Box<[u64; 32]>` from a `std::sync::Mutex<Vec<_>>` (or
//!     allocate one if it is empty), push it back after use.
//!
//! Every implementation also has a fixed-iteration single-thread path for
//! `--callgrind`.

use std::hint::black_box;
use std::sync::{Mutex, PoisonError};

use strata_sync::pool::Pool;

use crate::harness::{BATCH, Impl, Kind, Workload, repeat_until, timed_threads};

/// The pooled object: 256 bytes.
type Object = [u64; 32];

/// Registers the `pool/*` workloads.
pub fn register(v: &mut Vec<Workload>) {
    v.push(Workload {
        name: "pool/get-put",
        help: "Every thread takes a 256-byte object, writes one word and reads another, and gives it back: a pool against allocating a Box each time and against a Mutex<Vec<Box<_>>> free list.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            imp("strata-pool", Kind::Strata, || {
                StrataPool(Pool::new(|| [0u64; 32]))
            }),
            imp("box", Kind::Peer, || Alloc),
            imp("mutex-vec", Kind::Peer, || MutexVec(Mutex::new(Vec::new()))),
        ],
    });
}

/// What `pool/get-put` needs: run `f` on an object taken for the call.
trait Objects: Sync {
    fn with(&self, f: impl FnOnce(&mut Object) -> u64) -> u64;
}

struct StrataPool(Pool<Object>);

impl Objects for StrataPool {
    #[inline]
    fn with(&self, f: impl FnOnce(&mut Object) -> u64) -> u64 {
        f(&mut self.0.get())
    }
}

struct Alloc;

impl Objects for Alloc {
    #[inline]
    fn with(&self, f: impl FnOnce(&mut Object) -> u64) -> u64 {
        let mut b = black_box(Box::new([0u64; 32]));
        f(&mut b)
    }
}

// Boxes on purpose: a pool hands objects out by pointer, as `Pool` does (its objects
// never move); a `Vec<Object>` would copy 256 bytes in and out on every op.
#[allow(clippy::vec_box)]
struct MutexVec(Mutex<Vec<Box<Object>>>);

impl Objects for MutexVec {
    #[inline]
    fn with(&self, f: impl FnOnce(&mut Object) -> u64) -> u64 {
        let taken = self.0.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut b = taken.unwrap_or_else(|| Box::new([0u64; 32]));
        let r = f(&mut b);
        self.0.lock().unwrap_or_else(PoisonError::into_inner).push(b);
        r
    }
}

/// The use of an object: write one word, read another.
#[inline]
fn touch(o: &mut Object) -> u64 {
    o[0] = o[0].wrapping_add(1);
    o[31]
}

fn imp<P: Objects + 'static>(name: &'static str, kind: Kind, make: fn() -> P) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        let p = make();
        timed_threads(threads, duration, |_, stop| {
            repeat_until(stop, BATCH, || {
                black_box(p.with(touch));
            })
        })
    })
    .with_fixed(move |iters| {
        let p = make();
        for _ in 0..iters {
            black_box(p.with(touch));
        }
    })
}
