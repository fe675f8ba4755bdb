//! Work-stealing deque workloads: Strata's Chase–Lev deque and injector
//! (`strata_queue::deque`) beside crossbeam-deque 0.8, which has the same API.
//!
//! * `deque/owner-lifo`, `deque/owner-fifo`: the owner alone. One thread loops push
//!   then pop on its own LIFO (FIFO) worker, pre-filled with `OWNER_PREFILL` (8) items,
//!   so a pop always finds an item. No stealer exists. The workloads run at 1 thread
//!   only (`max_threads`): with more, every thread would loop on a private deque of its
//!   own (that is what the body does) and the figure would only add up copies of the
//!   1-thread one.
//! * `deque/steal-lifo` (from 2 threads): thread 0 owns a LIFO worker, every other
//!   thread is a thief calling `steal()` on one shared stealer. The owner loops in
//!   rounds: unless the deque holds more than `LEN_LIMIT` (1024) items, it pushes
//!   `PUSH_BURST` (64); then it pops until a pop returns `None` or it has popped
//!   `POP_BURST` (32). It pushes twice as much as it pops, so the surplus is what the
//!   thieves can take; when they take less, the deque fills up to the limit and the
//!   owner then only pops (it never holds more than `LEN_LIMIT + PUSH_BURST` items).
//! * `deque/steal-batch-fifo` (from 2 threads): the same owner over a FIFO worker; each
//!   thief has its own local FIFO worker and calls `steal_batch_and_pop(&local)` (which
//!   moves about half of the items, at most 32, and returns the oldest), then pops its
//!   local worker until it is empty.
//! * `deque/injector` (from 1 thread): one shared injector, initially empty; every
//!   thread has its own local FIFO worker and loops in rounds: it pushes
//!   `INJECT_BURST` (16) items into the injector, then calls
//!   `injector.steal_batch_and_pop(&local)` and pops its local worker until it is
//!   empty, over and over until the injector is empty. Every thread sees the injector
//!   empty once per round, so it never holds more than `INJECT_BURST` items per thread.
//!
//! # Counting
//!
//! In the owner workloads an op is a push or a pop that returned an item: two per
//! iteration. In the two stealing workloads an op is an item a thief took: a `steal()`
//! that succeeded, the item a successful `steal_batch_and_pop` returned, or a pop of
//! the thief's local worker; the owner's pops compete with the thieves for the items
//! but are not counted, so the figure is stealing throughput. In the injector workload
//! an op is an item taken out (returned by a batch steal, or popped locally). Pushes
//! count nothing (every item is counted once, when it is taken), and neither do steals
//! that return `Empty` or `Retry`.
//!
//! A thief whose steal fails (`Empty` or `Retry`) tries again after a
//! [`std::hint::spin_loop`]; after a whole batch of `BATCH` (64) attempts without an
//! item it calls [`std::thread::yield_now`], so that, oversubscribed, a thief spinning
//! on an empty deque does not keep the owner off a core. The owner never waits: it
//! makes a whole round before it first looks at the stop flag, so a run always counts
//! at least one op. A thread of the injector workload that gets `Retry` tries again
//! after a `spin_loop`.
//!
//! # Single-thread paths
//!
//! Every implementation has a fixed-iteration path for `--callgrind`; one iteration is
//! one push plus one item taken (two ops in the owner workloads' terms).
//!
//! * Owner: push then pop on a worker holding `OWNER_PREFILL` items.
//! * `steal-lifo`: bursts of `POP_BURST` pushes into a LIFO worker, then as many
//!   `steal()`s through its stealer, so the deque goes from empty to 32 deep and back.
//! * `steal-batch-fifo`: bursts of `POP_BURST` pushes into a FIFO worker, then
//!   `steal_batch_and_pop` into a local FIFO worker and pops of that local worker until
//!   all `POP_BURST` items are out.
//! * `injector`: rounds of the timed body with one thread: `INJECT_BURST` pushes, then
//!   batch steals and local pops until the injector is empty.
//!
//! Both implementations run the same workload code through one small trait, `Deque`,
//! over the deque's three handles (worker, stealer, injector).

use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::Duration;

use crate::harness::{BATCH, Impl, Kind, Sample, Workload, repeat_until, timed_threads};

/// Items in the owner's deque before the clock starts, in the owner workloads.
const OWNER_PREFILL: u64 = 8;

/// Items the owner pushes per round in the stealing workloads.
const PUSH_BURST: u64 = 64;

/// Items the owner pops per round at most in the stealing workloads; also the burst of
/// the stealing workloads' single-thread paths.
const POP_BURST: u64 = 32;

/// The deque length above which the owner pops without pushing.
const LEN_LIMIT: usize = 1024;

/// Items each thread pushes into the injector per round.
const INJECT_BURST: u64 = 16;

/// Registers `deque/owner-lifo`, `deque/owner-fifo`, `deque/steal-lifo`,
/// `deque/steal-batch-fifo` and `deque/injector`.
pub fn register(v: &mut Vec<Workload>) {
    v.push(Workload {
        name: "deque/owner-lifo",
        help: "One thread alone loops push then pop on its own LIFO work-stealing deque of u64 pre-filled with 8 items, no thief (two ops per iteration; measured at 1 thread only).",
        unit: "ops/s",
        min_threads: 1,
        max_threads: Some(1),
        spread: false,
        impls: impls(Shape::Owner(Flavor::Lifo)),
    });
    v.push(Workload {
        name: "deque/owner-fifo",
        help: "One thread alone loops push then pop on its own FIFO work-stealing deque of u64 pre-filled with 8 items, no thief (two ops per iteration; measured at 1 thread only).",
        unit: "ops/s",
        min_threads: 1,
        max_threads: Some(1),
        spread: false,
        impls: impls(Shape::Owner(Flavor::Fifo)),
    });
    v.push(Workload {
        name: "deque/steal-lifo",
        help: "Thread 0 owns a LIFO deque of u64 and loops pushing 64 items (unless it holds more than 1024) then popping up to 32, while every other thread loops steal(); ops = items stolen (successful steals; the owner's pops are not counted).",
        unit: "ops/s",
        min_threads: 2,
        max_threads: None,
        spread: false,
        impls: impls(Shape::Steal),
    });
    v.push(Workload {
        name: "deque/steal-batch-fifo",
        help: "Thread 0 owns a FIFO deque of u64 and loops pushing 64 items (unless it holds more than 1024) then popping up to 32, while every other thread loops steal_batch_and_pop into its own local worker and pops that worker empty; ops = items the thieves took (items returned by the batch steals + local pops; the owner's pops are not counted).",
        unit: "ops/s",
        min_threads: 2,
        max_threads: None,
        spread: false,
        impls: impls(Shape::StealBatch),
    });
    v.push(Workload {
        name: "deque/injector",
        help: "Every thread loops pushing 16 u64 into one shared injector, then steal_batch_and_pop into its own local FIFO worker and popping that worker empty, until the injector is empty; ops = items taken out (items returned by the batch steals + local pops).",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: impls(Shape::Injector),
    });
}

/// Strata's deque and crossbeam-deque's, running `shape`.
fn impls(shape: Shape) -> Vec<Impl> {
    vec![
        imp::<StrataDeque>("strata", Kind::Strata, shape),
        imp::<CrossbeamDeque>("crossbeam-deque", Kind::Peer, shape),
    ]
}

/// One implementation of a deque workload: fresh deques for every timed run and every
/// fixed run.
fn imp<D: Deque>(name: &'static str, kind: Kind, shape: Shape) -> Impl {
    Impl::new(name, kind, move |threads, duration| {
        shape.timed::<D>(threads, duration)
    })
    .with_fixed(move |iters| shape.fixed::<D>(iters))
}

// ---------------------------------------------------------------------------------
// The workloads, shared by both deques.

/// Which end a worker's owner pops from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    /// The newest item (a stack).
    Lifo,
    /// The oldest item (a queue).
    Fifo,
}

/// The outcome of a steal, the same for both deques.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stolen {
    /// There was nothing to steal.
    Empty,
    /// This item was taken (and, for a batch steal, others moved into the local worker).
    Item(u64),
    /// The steal lost a race; try again.
    Retry,
}

/// What the deque workloads need of a work-stealing deque: its three handles and the
/// operations on them, as associated functions of a marker type.
trait Deque: 'static {
    /// The owner's end (`Send`, not `Sync`).
    type Worker: Send;
    /// The thieves' end.
    type Stealer: Sync;
    /// The shared FIFO queue.
    type Injector: Sync;

    fn new_worker(flavor: Flavor) -> Self::Worker;
    fn stealer(worker: &Self::Worker) -> Self::Stealer;
    fn push(worker: &Self::Worker, value: u64);
    fn pop(worker: &Self::Worker) -> Option<u64>;
    fn len(worker: &Self::Worker) -> usize;
    fn steal(stealer: &Self::Stealer) -> Stolen;
    fn steal_batch_and_pop(stealer: &Self::Stealer, dest: &Self::Worker) -> Stolen;
    fn new_injector() -> Self::Injector;
    fn inject(injector: &Self::Injector, value: u64);
    fn steal_injected(injector: &Self::Injector, dest: &Self::Worker) -> Stolen;
}

/// Which workload body to run.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// The owner alone, push then pop.
    Owner(Flavor),
    /// A LIFO owner and thieves calling `steal`.
    Steal,
    /// A FIFO owner and thieves calling `steal_batch_and_pop`.
    StealBatch,
    /// Every thread pushes into and batch-steals from one injector.
    Injector,
}

impl Shape {
    fn timed<D: Deque>(self, threads: usize, duration: Duration) -> Sample {
        match self {
            Shape::Owner(flavor) => owner_timed::<D>(flavor, threads, duration),
            Shape::Steal | Shape::StealBatch => {
                let flavor = self.victim_flavor();
                let worker = D::new_worker(flavor);
                let stealer = D::stealer(&worker);
                steal_timed::<D>(
                    &Mutex::new(worker),
                    &stealer,
                    matches!(self, Shape::StealBatch),
                    threads,
                    duration,
                )
            }
            Shape::Injector => injector_timed::<D>(threads, duration),
        }
    }

    fn fixed<D: Deque>(self, iters: u64) {
        match self {
            Shape::Owner(flavor) => owner_fixed::<D>(flavor, iters),
            Shape::Steal => steal_fixed::<D>(iters),
            Shape::StealBatch => steal_batch_fixed::<D>(iters),
            Shape::Injector => injector_fixed::<D>(iters),
        }
    }

    /// The flavor of the deque the thieves steal from.
    fn victim_flavor(self) -> Flavor {
        match self {
            Shape::StealBatch => Flavor::Fifo,
            _ => Flavor::Lifo,
        }
    }
}

/// A worker held by one thread for a whole run: `Worker` is not `Sync`, so the thread
/// body (shared by every thread) reaches it through a mutex that only its thread locks.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding the lock except a failing workload, whose panic the
    // harness reports; the worker would still be usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One local FIFO worker per thread.
fn local_workers<D: Deque>(threads: usize) -> Vec<Mutex<D::Worker>> {
    (0..threads)
        .map(|_| Mutex::new(D::new_worker(Flavor::Fifo)))
        .collect()
}

/// Pops `worker` until it is empty; returns the items popped.
#[inline]
fn drain<D: Deque>(worker: &D::Worker) -> u64 {
    let mut n = 0u64;
    while let Some(v) = D::pop(worker) {
        black_box(v);
        n += 1;
    }
    n
}

/// One owner iteration: a push then a pop. Returns the ops done (the push, and the pop
/// if it returned an item).
#[inline]
fn owner_op<D: Deque>(worker: &D::Worker, next: &mut u64) -> u64 {
    D::push(worker, *next);
    *next = next.wrapping_add(1);
    let popped = D::pop(worker);
    let ops = 1 + u64::from(popped.is_some());
    black_box(popped);
    ops
}

fn prefill<D: Deque>(worker: &D::Worker, items: u64) {
    for v in 0..items {
        D::push(worker, v);
    }
}

fn owner_timed<D: Deque>(flavor: Flavor, threads: usize, duration: Duration) -> Sample {
    let workers: Vec<Mutex<D::Worker>> = (0..threads)
        .map(|_| {
            let w = D::new_worker(flavor);
            prefill::<D>(&w, OWNER_PREFILL);
            Mutex::new(w)
        })
        .collect();
    timed_threads(threads, duration, |i, stop| {
        let worker = lock(&workers[i]);
        let mut next = (i as u64 + 1) << 40;
        let mut ops = 0u64;
        repeat_until(stop, BATCH, || ops += owner_op::<D>(&worker, &mut next));
        ops
    })
}

fn owner_fixed<D: Deque>(flavor: Flavor, iters: u64) {
    let worker = D::new_worker(flavor);
    prefill::<D>(&worker, OWNER_PREFILL);
    let mut next = 1u64 << 40;
    for _ in 0..iters {
        black_box(owner_op::<D>(&worker, &mut next));
    }
}

/// The stealing workloads over `owner` (held by thread 0) and `stealer` (shared by the
/// others), which must be `owner`'s. With `batch`, thieves use `steal_batch_and_pop`
/// into their own local workers, otherwise `steal`.
fn steal_timed<D: Deque>(
    owner: &Mutex<D::Worker>,
    stealer: &D::Stealer,
    batch: bool,
    threads: usize,
    duration: Duration,
) -> Sample {
    let locals = if batch {
        local_workers::<D>(threads)
    } else {
        Vec::new()
    };
    timed_threads(threads, duration, |i, stop| {
        if i == 0 {
            // The owner's pops are the competition, not the figure: only what the
            // thieves take counts.
            black_box(own::<D>(&lock(owner), stop));
            0
        } else if batch {
            steal_batches::<D>(stealer, &lock(&locals[i]), stop)
        } else {
            steal_items::<D>(stealer, stop)
        }
    })
}

/// The owner of the stealing workloads: rounds of [`PUSH_BURST`] pushes (skipped while
/// the deque holds more than [`LEN_LIMIT`] items) and up to [`POP_BURST`] pops, then a
/// look at the stop flag. Returns the pops that returned an item.
fn own<D: Deque>(worker: &D::Worker, stop: &AtomicBool) -> u64 {
    let mut next = 1u64 << 40;
    let mut popped = 0u64;
    loop {
        if D::len(worker) <= LEN_LIMIT {
            for _ in 0..PUSH_BURST {
                D::push(worker, next);
                next = next.wrapping_add(1);
            }
        }
        for _ in 0..POP_BURST {
            match D::pop(worker) {
                Some(v) => {
                    black_box(v);
                    popped += 1;
                }
                None => break,
            }
        }
        if stop.load(Ordering::Relaxed) {
            return popped;
        }
    }
}

/// A thief calling `steal`: batches of [`BATCH`] attempts, a yield after a batch that
/// took nothing. Returns the items stolen.
fn steal_items<D: Deque>(stealer: &D::Stealer, stop: &AtomicBool) -> u64 {
    let mut taken = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let before = taken;
        for _ in 0..BATCH {
            match D::steal(stealer) {
                Stolen::Item(v) => {
                    black_box(v);
                    taken += 1;
                }
                Stolen::Empty | Stolen::Retry => spin_loop(),
            }
        }
        if taken == before {
            // A whole batch found nothing: let the owner have the core.
            thread::yield_now();
        }
    }
    taken
}

/// A thief calling `steal_batch_and_pop` into `local`, then popping `local` empty:
/// batches of [`BATCH`] attempts, a yield after a batch that took nothing. Returns the
/// items taken (returned by the steal or popped from `local`).
fn steal_batches<D: Deque>(stealer: &D::Stealer, local: &D::Worker, stop: &AtomicBool) -> u64 {
    let mut taken = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let before = taken;
        for _ in 0..BATCH {
            match D::steal_batch_and_pop(stealer, local) {
                Stolen::Item(v) => {
                    black_box(v);
                    taken += 1 + drain::<D>(local);
                }
                Stolen::Empty | Stolen::Retry => spin_loop(),
            }
        }
        if taken == before {
            // A whole batch found nothing: let the owner have the core.
            thread::yield_now();
        }
    }
    taken
}

/// `iters` pushes into a LIFO worker and `iters` steals through its stealer, in bursts
/// of [`POP_BURST`].
fn steal_fixed<D: Deque>(iters: u64) {
    let worker = D::new_worker(Flavor::Lifo);
    let stealer = D::stealer(&worker);
    let mut next = 1u64 << 40;
    let mut left = iters;
    while left > 0 {
        let n = left.min(POP_BURST);
        for _ in 0..n {
            D::push(&worker, next);
            next = next.wrapping_add(1);
        }
        for _ in 0..n {
            black_box(D::steal(&stealer));
        }
        left -= n;
    }
}

/// `iters` pushes into a FIFO worker and `iters` items taken out by a thief with
/// `steal_batch_and_pop` into its local worker and local pops, in bursts of
/// [`POP_BURST`].
fn steal_batch_fixed<D: Deque>(iters: u64) {
    let worker = D::new_worker(Flavor::Fifo);
    let stealer = D::stealer(&worker);
    let local = D::new_worker(Flavor::Fifo);
    let mut next = 1u64 << 40;
    let mut left = iters;
    while left > 0 {
        let n = left.min(POP_BURST);
        for _ in 0..n {
            D::push(&worker, next);
            next = next.wrapping_add(1);
        }
        let mut taken = 0u64;
        while taken < n {
            match D::steal_batch_and_pop(&stealer, &local) {
                Stolen::Item(v) => {
                    black_box(v);
                    taken += 1 + drain::<D>(&local);
                }
                // Alone, a steal neither loses a race nor finds the deque empty early.
                Stolen::Empty => break,
                Stolen::Retry => spin_loop(),
            }
        }
        left -= n;
    }
}

/// One round of the injector workload: `n` pushes into `injector`, then batch steals
/// into `local`, each followed by popping `local` empty, until the injector is empty.
/// Returns the items taken (returned by a steal or popped from `local`).
#[inline]
fn inject_round<D: Deque>(
    injector: &D::Injector,
    local: &D::Worker,
    next: &mut u64,
    n: u64,
) -> u64 {
    for _ in 0..n {
        D::inject(injector, *next);
        *next = next.wrapping_add(1);
    }
    let mut taken = 0u64;
    loop {
        match D::steal_injected(injector, local) {
            Stolen::Item(v) => {
                black_box(v);
                taken += 1 + drain::<D>(local);
            }
            Stolen::Empty => return taken,
            Stolen::Retry => spin_loop(),
        }
    }
}

fn injector_timed<D: Deque>(threads: usize, duration: Duration) -> Sample {
    let injector = D::new_injector();
    let locals = local_workers::<D>(threads);
    timed_threads(threads, duration, |i, stop| {
        let local = lock(&locals[i]);
        let mut next = (i as u64 + 1) << 40;
        let mut taken = 0u64;
        loop {
            taken += inject_round::<D>(&injector, &local, &mut next, INJECT_BURST);
            if stop.load(Ordering::Relaxed) {
                return taken;
            }
        }
    })
}

/// `iters` pushes into an injector and `iters` items taken out, in rounds of
/// [`INJECT_BURST`].
fn injector_fixed<D: Deque>(iters: u64) {
    let injector = D::new_injector();
    let local = D::new_worker(Flavor::Fifo);
    let mut next = 1u64 << 40;
    let mut left = iters;
    while left > 0 {
        let n = left.min(INJECT_BURST);
        black_box(inject_round::<D>(&injector, &local, &mut next, n));
        left -= n;
    }
}

// ---------------------------------------------------------------------------------
// The deques.

/// Strata's deque (`strata_queue::deque`), buffers reclaimed through the default epoch
/// domain.
struct StrataDeque;

impl From<strata_queue::deque::Steal<u64>> for Stolen {
    #[inline]
    fn from(s: strata_queue::deque::Steal<u64>) -> Stolen {
        match s {
            strata_queue::deque::Steal::Empty => Stolen::Empty,
            strata_queue::deque::Steal::Success(v) => Stolen::Item(v),
            strata_queue::deque::Steal::Retry => Stolen::Retry,
        }
    }
}

impl Deque for StrataDeque {
    type Worker = strata_queue::deque::Worker<u64>;
    type Stealer = strata_queue::deque::Stealer<u64>;
    type Injector = strata_queue::deque::Injector<u64>;

    fn new_worker(flavor: Flavor) -> Self::Worker {
        match flavor {
            Flavor::Lifo => strata_queue::deque::Worker::new_lifo(),
            Flavor::Fifo => strata_queue::deque::Worker::new_fifo(),
        }
    }

    fn stealer(worker: &Self::Worker) -> Self::Stealer {
        worker.stealer()
    }

    #[inline]
    fn push(worker: &Self::Worker, value: u64) {
        worker.push(value);
    }

    #[inline]
    fn pop(worker: &Self::Worker) -> Option<u64> {
        worker.pop()
    }

    #[inline]
    fn len(worker: &Self::Worker) -> usize {
        worker.len()
    }

    #[inline]
    fn steal(stealer: &Self::Stealer) -> Stolen {
        stealer.steal().into()
    }

    #[inline]
    fn steal_batch_and_pop(stealer: &Self::Stealer, dest: &Self::Worker) -> Stolen {
        stealer.steal_batch_and_pop(dest).into()
    }

    fn new_injector() -> Self::Injector {
        strata_queue::deque::Injector::new()
    }

    #[inline]
    fn inject(injector: &Self::Injector, value: u64) {
        injector.push(value);
    }

    #[inline]
    fn steal_injected(injector: &Self::Injector, dest: &Self::Worker) -> Stolen {
        injector.steal_batch_and_pop(dest).into()
    }
}

/// crossbeam-deque 0.8.
struct CrossbeamDeque;

impl From<crossbeam_deque::Steal<u64>> for Stolen {
    #[inline]
    fn from(s: crossbeam_deque::Steal<u64>) -> Stolen {
        match s {
            crossbeam_deque::Steal::Empty => Stolen::Empty,
            crossbeam_deque::Steal::Success(v) => Stolen::Item(v),
            crossbeam_deque::Steal::Retry => Stolen::Retry,
        }
    }
}

impl Deque for CrossbeamDeque {
    type Worker = crossbeam_deque::Worker<u64>;
    type Stealer = crossbeam_deque::Stealer<u64>;
    type Injector = crossbeam_deque::Injector<u64>;

    fn new_worker(flavor: Flavor) -> Self::Worker {
        match flavor {
            Flavor::Lifo => crossbeam_deque::Worker::new_lifo(),
            Flavor::Fifo => crossbeam_deque::Worker::new_fifo(),
        }
    }

    fn stealer(worker: &Self::Worker) -> Self::Stealer {
        worker.stealer()
    }

    #[inline]
    fn push(worker: &Self::Worker, value: u64) {
        worker.push(value);
    }

    #[inline]
    fn pop(worker: &Self::Worker) -> Option<u64> {
        worker.pop()
    }

    #[inline]
    fn len(worker: &Self::Worker) -> usize {
        worker.len()
    }

    #[inline]
    fn steal(stealer: &Self::Stealer) -> Stolen {
        stealer.steal().into()
    }

    #[inline]
    fn steal_batch_and_pop(stealer: &Self::Stealer, dest: &Self::Worker) -> Stolen {
        stealer.steal_batch_and_pop(dest).into()
    }

    fn new_injector() -> Self::Injector {
        crossbeam_deque::Injector::new()
    }

    #[inline]
    fn inject(injector: &Self::Injector, value: u64) {
        injector.push(value);
    }

    #[inline]
    fn steal_injected(injector: &Self::Injector, dest: &Self::Worker) -> Stolen {
        injector.steal_batch_and_pop(dest).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    /// The adapters keep each deque's semantics: the owner's end per flavor, thieves
    /// take the oldest, a batch steal returns the oldest and moves more into `dest`,
    /// the injector is FIFO.
    fn semantics<D: Deque>() {
        let lifo = D::new_worker(Flavor::Lifo);
        let fifo = D::new_worker(Flavor::Fifo);
        assert_eq!(D::pop(&lifo), None);
        for v in 1..=4 {
            D::push(&lifo, v);
            D::push(&fifo, v);
        }
        assert_eq!((D::len(&lifo), D::len(&fifo)), (4, 4));
        assert_eq!(D::pop(&lifo), Some(4));
        assert_eq!(D::pop(&fifo), Some(1));
        let (sl, sf) = (D::stealer(&lifo), D::stealer(&fifo));
        assert_eq!(D::steal(&sl), Stolen::Item(1));
        assert_eq!(D::steal(&sf), Stolen::Item(2));
        assert_eq!(D::len(&lifo), 2);

        let victim = D::new_worker(Flavor::Fifo);
        let local = D::new_worker(Flavor::Fifo);
        let thief = D::stealer(&victim);
        assert_eq!(D::steal_batch_and_pop(&thief, &local), Stolen::Empty);
        for v in 10..20 {
            D::push(&victim, v);
        }
        assert_eq!(D::steal_batch_and_pop(&thief, &local), Stolen::Item(10));
        let moved = D::len(&local);
        assert!(moved >= 1, "a batch steal of 10 items moved nothing");
        assert_eq!(D::pop(&local), Some(11));
        assert_eq!(D::len(&victim) + moved, 9);

        let injector = D::new_injector();
        let dest = D::new_worker(Flavor::Fifo);
        assert_eq!(D::steal_injected(&injector, &dest), Stolen::Empty);
        for v in 100..110 {
            D::inject(&injector, v);
        }
        let mut out = Vec::new();
        loop {
            match D::steal_injected(&injector, &dest) {
                Stolen::Item(v) => {
                    out.push(v);
                    out.extend(std::iter::from_fn(|| D::pop(&dest)));
                }
                Stolen::Empty => break,
                Stolen::Retry => {}
            }
        }
        assert_eq!(out, (100..110).collect::<Vec<_>>());
        // Leaves items behind for Drop to free.
        D::push(&lifo, 7);
        D::inject(&injector, 8);
    }

    /// An owner pushes distinct values and pops some while one thief steals single
    /// items and another steals batches: every value comes out exactly once.
    fn conserves<D: Deque>(flavor: Flavor) {
        const TOTAL: u64 = if cfg!(miri) { 500 } else { 50_000 };
        let worker = D::new_worker(flavor);
        let stealer = D::stealer(&worker);
        let owner = Mutex::new(worker);
        let pushed_all = AtomicBool::new(false);
        let taken = AtomicU64::new(0);
        let locals = local_workers::<D>(3);
        let got: Vec<Vec<u64>> = thread::scope(|s| {
            let (owner, stealer, pushed_all, taken, locals) =
                (&owner, &stealer, &pushed_all, &taken, &locals);
            let threads: Vec<_> = (0..3)
                .map(|i| {
                    s.spawn(move || {
                        let mut got = Vec::new();
                        if i == 0 {
                            let w = lock(owner);
                            for v in 0..TOTAL {
                                D::push(&w, v);
                                if v % 3 == 0 {
                                    got.extend(D::pop(&w));
                                }
                            }
                            pushed_all.store(true, Ordering::Release);
                            got.extend(std::iter::from_fn(|| D::pop(&w)));
                            taken.fetch_add(got.len() as u64, Ordering::Relaxed);
                            return got;
                        }
                        let local = lock(&locals[i]);
                        loop {
                            let done = pushed_all.load(Ordering::Acquire);
                            let s = if i == 1 {
                                D::steal(stealer)
                            } else {
                                D::steal_batch_and_pop(stealer, &local)
                            };
                            match s {
                                Stolen::Item(v) => {
                                    let before = got.len();
                                    got.push(v);
                                    got.extend(std::iter::from_fn(|| D::pop(&local)));
                                    taken.fetch_add((got.len() - before) as u64, Ordering::Relaxed);
                                }
                                Stolen::Empty if done => return got,
                                Stolen::Empty | Stolen::Retry => thread::yield_now(),
                            }
                        }
                    })
                })
                .collect();
            threads
                .into_iter()
                .map(|h| h.join().expect("thread panicked"))
                .collect()
        });
        assert_eq!(taken.load(Ordering::Relaxed), TOTAL);
        let mut all: Vec<u64> = got.into_iter().flatten().collect();
        all.sort_unstable();
        assert!(
            all == (0..TOTAL).collect::<Vec<_>>(),
            "values lost or duplicated"
        );
    }

    #[test]
    fn strata() {
        semantics::<StrataDeque>();
        conserves::<StrataDeque>(Flavor::Lifo);
        conserves::<StrataDeque>(Flavor::Fifo);
    }

    #[test]
    fn crossbeam_deque() {
        semantics::<CrossbeamDeque>();
        conserves::<CrossbeamDeque>(Flavor::Lifo);
        conserves::<CrossbeamDeque>(Flavor::Fifo);
    }

    /// The owner never lets its deque grow past `LEN_LIMIT + PUSH_BURST`: alone (no
    /// thief, so it fills up to the limit) and with thieves.
    #[test]
    fn steal_owner_is_bounded() {
        for (threads, batch) in [(1, false), (3, false), (3, true)] {
            let flavor = if batch { Flavor::Fifo } else { Flavor::Lifo };
            let worker = StrataDeque::new_worker(flavor);
            let stealer = StrataDeque::stealer(&worker);
            let owner = Mutex::new(worker);
            let s = steal_timed::<StrataDeque>(
                &owner,
                &stealer,
                batch,
                threads,
                Duration::from_millis(20),
            );
            // Only the thieves' items count: alone, the owner counts nothing.
            assert!(threads > 1 || s.ops == 0);
            let len = StrataDeque::len(&lock(&owner));
            assert!(
                len <= LEN_LIMIT + PUSH_BURST as usize,
                "{threads} threads, batch {batch}: {len} items left"
            );
            if threads == 1 {
                assert!(
                    len > LEN_LIMIT - POP_BURST as usize,
                    "alone, {len} items left"
                );
            }
        }
    }

    #[test]
    fn help_matches_the_constants() {
        let mut v = Vec::new();
        register(&mut v);
        for w in &v {
            if w.name.starts_with("deque/owner") {
                assert!(
                    w.help
                        .contains(&format!("pre-filled with {OWNER_PREFILL} items"))
                );
                assert!(w.help.contains("1 thread only") && w.max_threads == Some(1));
            } else if w.name.starts_with("deque/steal") {
                assert!(w.help.contains(&format!("pushing {PUSH_BURST} items")));
                assert!(w.help.contains(&format!("more than {LEN_LIMIT}")));
                assert!(w.help.contains(&format!("popping up to {POP_BURST}")));
                assert_eq!(w.min_threads, 2, "{}", w.name);
            } else {
                assert!(w.help.contains(&format!("pushing {INJECT_BURST} u64")));
            }
        }
    }

    #[test]
    fn timed_paths_run() {
        let mut v = Vec::new();
        register(&mut v);
        for w in &v {
            for threads in [1, 2, 3].into_iter().filter(|&t| w.runs_at(t)) {
                for i in &w.impls {
                    // The stealing workloads count only what thieves take: give them
                    // long enough to take something even on a loaded machine.
                    let ms = if w.name.starts_with("deque/steal") { 100 } else { 2 };
                    let s = (i.timed)(threads, Duration::from_millis(ms));
                    assert!(s.ops > 0, "{} / {} at {threads}", w.name, i.name);
                }
            }
        }
    }
}
