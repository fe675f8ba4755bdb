//! Memory-reclamation workloads: Strata's epoch domain and hazard pointers beside
//! crossbeam-epoch, seize and haphazard.
//!
//! * `reclaim/pin`: the read-side entry cost (pin + unpin, no outer guard).
//! * `reclaim/hazard-protect`: the per-pointer cost of a hazard pointer (protect + reset).
//! * `reclaim/treiber`: a Treiber stack whose popped nodes are freed through the scheme.
//!
//! The four Treiber stacks run one algorithm: push allocates a node and CASes it onto the
//! head (no guard: push never dereferences the head it reads); pop takes one guard,
//! protects the head, reads `next` through it, CASes the head to `next`, reads the value
//! and retires the node through the scheme. Same orderings, no backoff, a cache-padded
//! head, and one workload loop ([`treiber_timed`]) for all of them.

use std::hint::black_box;
use std::ptr;
use std::sync::atomic::{AtomicPtr as StdAtomicPtr, Ordering};
use std::time::Duration;

use crossbeam_epoch as cbe;
use seize::Guard as _;
use strata_primitives::CachePadded;
use strata_primitives::sync::atomic::AtomicPtr;
use strata_reclaim::epoch::Epoch;
use strata_reclaim::hazard::{Hazard, HazardPointer};
use strata_reclaim::{Protect, Reclaim};

use crate::harness::{BATCH, Impl, Kind, Sample, Workload, repeat_until, timed_threads};

/// Nodes pushed onto every Treiber stack before the clock starts.
const PREFILL: u64 = 1024;

/// Registers `reclaim/pin`, `reclaim/hazard-protect` and `reclaim/treiber`.
pub fn register(v: &mut Vec<Workload>) {
    v.push(Workload {
        name: "reclaim/pin",
        help: "Every thread creates and drops a guard (pin + unpin, seize: enter + leave) in a loop with no outer guard held: the cost of entering and leaving a read-side critical section.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            Impl::new("strata-epoch", Kind::Strata, |threads, duration| {
                timed_threads(threads, duration, |_, stop| {
                    repeat_until(stop, BATCH, || drop(black_box(strata_reclaim::epoch::pin())))
                })
            })
            .with_fixed(|iters| {
                for _ in 0..iters {
                    drop(black_box(strata_reclaim::epoch::pin()));
                }
            }),
            Impl::new("crossbeam-epoch", Kind::Peer, |threads, duration| {
                timed_threads(threads, duration, |_, stop| {
                    repeat_until(stop, BATCH, || drop(black_box(cbe::pin())))
                })
            })
            .with_fixed(|iters| {
                for _ in 0..iters {
                    drop(black_box(cbe::pin()));
                }
            }),
            Impl::new("seize", Kind::Peer, |threads, duration| {
                let collector = seize::Collector::new();
                timed_threads(threads, duration, |_, stop| {
                    repeat_until(stop, BATCH, || drop(black_box(collector.enter())))
                })
            })
            .with_fixed(|iters| {
                let collector = seize::Collector::new();
                for _ in 0..iters {
                    drop(black_box(collector.enter()));
                }
            }),
        ],
    });
    v.push(Workload {
        name: "reclaim/hazard-protect",
        help: "Every thread protects one shared, never-retired pointer with its own hazard pointer (acquired once) and resets it, in a loop: the per-pointer read-side cost of hazard pointers.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            Impl::new("strata-hazard", Kind::Strata, |threads, duration| {
                let shared = AtomicPtr::new(Box::into_raw(Box::new(7u64)));
                let sample = timed_threads(threads, duration, |_, stop| {
                    let mut hp = HazardPointer::new();
                    repeat_until(stop, BATCH, || {
                        black_box(hp.protect(&shared));
                        hp.reset();
                    })
                });
                // SAFETY: the value came from Box::into_raw, was never retired, and every
                // thread that could reach it has been joined.
                drop(unsafe { Box::from_raw(shared.load(Ordering::Relaxed)) });
                sample
            })
            .with_fixed(|iters| {
                let shared = AtomicPtr::new(Box::into_raw(Box::new(7u64)));
                let mut hp = HazardPointer::new();
                for _ in 0..iters {
                    black_box(hp.protect(&shared));
                    hp.reset();
                }
                drop(hp);
                // SAFETY: as above: never retired, and no one else can reach it.
                drop(unsafe { Box::from_raw(shared.load(Ordering::Relaxed)) });
            }),
            Impl::new("haphazard", Kind::Peer, |threads, duration| {
                let shared = StdAtomicPtr::new(Box::into_raw(Box::new(7u64)));
                let sample = timed_threads(threads, duration, |_, stop| {
                    let mut hp = haphazard::HazardPointer::new();
                    repeat_until(stop, BATCH, || {
                        black_box(hp.protect_ptr(&shared).map(|(p, _)| p));
                        hp.reset_protection();
                    })
                });
                // SAFETY: as for strata-hazard.
                drop(unsafe { Box::from_raw(shared.load(Ordering::Relaxed)) });
                sample
            })
            .with_fixed(|iters| {
                let shared = StdAtomicPtr::new(Box::into_raw(Box::new(7u64)));
                let mut hp = haphazard::HazardPointer::new();
                for _ in 0..iters {
                    black_box(hp.protect_ptr(&shared).map(|(p, _)| p));
                    hp.reset_protection();
                }
                drop(hp);
                // SAFETY: as for strata-hazard.
                drop(unsafe { Box::from_raw(shared.load(Ordering::Relaxed)) });
            }),
        ],
    });
    v.push(Workload {
        name: "reclaim/treiber",
        help: "A Treiber stack of u64 shared by all threads, pre-filled with 1024 nodes; every thread loops push then pop (one op = one push plus one pop), popped nodes freed through the scheme.",
        unit: "ops/s",
        min_threads: 1,
        max_threads: None,
        spread: false,
        impls: vec![
            Impl::new("strata-epoch", Kind::Strata, |threads, duration| {
                treiber_timed(TreiberStack::new(Epoch), threads, duration)
            })
            .with_fixed(|iters| treiber_fixed(TreiberStack::new(Epoch), iters)),
            Impl::new("strata-hazard", Kind::Strata, |threads, duration| {
                treiber_timed(TreiberStack::new(Hazard), threads, duration)
            })
            .with_fixed(|iters| treiber_fixed(TreiberStack::new(Hazard), iters)),
            Impl::new("crossbeam-epoch", Kind::Peer, |threads, duration| {
                treiber_timed(CrossbeamStack::new(), threads, duration)
            })
            .with_fixed(|iters| treiber_fixed(CrossbeamStack::new(), iters)),
            Impl::new("seize", Kind::Peer, |threads, duration| {
                treiber_timed(SeizeStack::new(), threads, duration)
            })
            .with_fixed(|iters| treiber_fixed(SeizeStack::new(), iters)),
        ],
    });
}

// ---------------------------------------------------------------------------------
// The Treiber workload, shared by every stack.

/// What the Treiber workload needs of a stack.
trait Stack: Sync {
    fn push(&self, value: u64);
    fn pop(&self) -> Option<u64>;
}

fn prefill(stack: &impl Stack) {
    for v in 0..PREFILL {
        stack.push(v);
    }
}

/// One operation: a push then a pop. Each thread pushes its own distinct values.
#[inline]
fn treiber_op(stack: &impl Stack, next: &mut u64) {
    stack.push(*next);
    *next = next.wrapping_add(1);
    black_box(stack.pop());
}

fn treiber_timed(stack: impl Stack, threads: usize, duration: Duration) -> Sample {
    prefill(&stack);
    timed_threads(threads, duration, |i, stop| {
        let mut next = (i as u64 + 1) << 40;
        repeat_until(stop, BATCH, || treiber_op(&stack, &mut next))
    })
}

fn treiber_fixed(stack: impl Stack, iters: u64) {
    prefill(&stack);
    let mut next = 1u64 << 40;
    for _ in 0..iters {
        treiber_op(&stack, &mut next);
    }
}

// ---------------------------------------------------------------------------------
// Strata: one stack written against the `Reclaim` trait.

struct Node {
    value: u64,
    next: AtomicPtr<Node>,
}

/// A Treiber stack over any Strata reclamation scheme.
struct TreiberStack<R: Reclaim> {
    head: CachePadded<AtomicPtr<Node>>,
    reclaim: R,
}

impl<R: Reclaim> TreiberStack<R> {
    fn new(reclaim: R) -> Self {
        TreiberStack {
            head: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            reclaim,
        }
    }
}

impl<R: Reclaim> Stack for TreiberStack<R> {
    #[inline]
    fn push(&self, value: u64) {
        let node = Box::into_raw(Box::new(Node {
            value,
            next: AtomicPtr::new(ptr::null_mut()),
        }));
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is not shared until the CAS below succeeds.
            unsafe { (*node).next.store(head, Ordering::Relaxed) };
            // Release: publishes the node's fields to the poppers' Acquire loads.
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    #[inline]
    fn pop(&self) -> Option<u64> {
        let mut g = self.reclaim.guard();
        loop {
            let head = g.protect(&self.head);
            if head.is_null() {
                return None;
            }
            // SAFETY: `head` is protected by `g`, so it is still allocated.
            let next = unsafe { (*head).next.load(Ordering::Relaxed) };
            if self
                .head
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // SAFETY: still protected by `g`; `value` is never written after push.
                let value = unsafe { (*head).value };
                // SAFETY: `head` came from Box::into_raw in `push`; our CAS unlinked it,
                // so only this thread retires it, once; `Node` is Send.
                unsafe { g.retire(head) };
                return Some(value);
            }
        }
    }
}

impl<R: Reclaim> Drop for TreiberStack<R> {
    fn drop(&mut self) {
        let mut p = self.head.load(Ordering::Relaxed);
        while !p.is_null() {
            // SAFETY: `&mut self`: no other thread can reach the linked nodes, which
            // came from Box::into_raw and were never retired.
            let node = unsafe { Box::from_raw(p) };
            p = node.next.load(Ordering::Relaxed);
        }
    }
}

// ---------------------------------------------------------------------------------
// crossbeam-epoch.

struct CbNode {
    value: u64,
    next: cbe::Atomic<CbNode>,
}

/// The same Treiber stack on crossbeam-epoch's default collector.
struct CrossbeamStack {
    head: CachePadded<cbe::Atomic<CbNode>>,
}

impl CrossbeamStack {
    fn new() -> Self {
        CrossbeamStack {
            head: CachePadded::new(cbe::Atomic::null()),
        }
    }
}

impl Stack for CrossbeamStack {
    #[inline]
    fn push(&self, value: u64) {
        let mut node = cbe::Owned::new(CbNode {
            value,
            next: cbe::Atomic::null(),
        });
        // SAFETY: push never dereferences the head it loads: it only stores it in the
        // new node and compares it in the CAS, so no pin is needed (as in the others).
        let guard = unsafe { cbe::unprotected() };
        let mut head = self.head.load(Ordering::Relaxed, guard);
        loop {
            node.next.store(head, Ordering::Relaxed);
            match self.head.compare_exchange_weak(
                head,
                node,
                Ordering::Release,
                Ordering::Relaxed,
                guard,
            ) {
                Ok(_) => return,
                Err(e) => {
                    head = e.current;
                    node = e.new;
                }
            }
        }
    }

    #[inline]
    fn pop(&self) -> Option<u64> {
        let guard = cbe::pin();
        loop {
            let head = self.head.load(Ordering::Acquire, &guard);
            // SAFETY: `guard` is pinned and nodes are freed only by `defer_destroy`
            // after they are unlinked, so a loaded node is still allocated.
            let h = unsafe { head.as_ref() }?;
            let next = h.next.load(Ordering::Relaxed, &guard);
            if self
                .head
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Acquire, &guard)
                .is_ok()
            {
                let value = h.value;
                // SAFETY: our CAS unlinked `head`, so only this thread destroys it, once,
                // and threads that pin from now on cannot reach it.
                unsafe { guard.defer_destroy(head) };
                return Some(value);
            }
        }
    }
}

impl Drop for CrossbeamStack {
    fn drop(&mut self) {
        // SAFETY: `&mut self`: no other thread can reach the nodes.
        let guard = unsafe { cbe::unprotected() };
        let mut p = self.head.load(Ordering::Relaxed, guard);
        while !p.is_null() {
            // SAFETY: as above; the linked nodes were never retired.
            let node = unsafe { p.into_owned() };
            p = node.next.load(Ordering::Relaxed, guard);
        }
    }
}

// ---------------------------------------------------------------------------------
// seize.

struct SeizeNode {
    value: u64,
    next: StdAtomicPtr<SeizeNode>,
}

/// The same Treiber stack on a seize collector owned by the stack.
struct SeizeStack {
    head: CachePadded<StdAtomicPtr<SeizeNode>>,
    collector: seize::Collector,
}

impl SeizeStack {
    fn new() -> Self {
        SeizeStack {
            head: CachePadded::new(StdAtomicPtr::new(ptr::null_mut())),
            collector: seize::Collector::new(),
        }
    }
}

impl Stack for SeizeStack {
    #[inline]
    fn push(&self, value: u64) {
        let node = Box::into_raw(Box::new(SeizeNode {
            value,
            next: StdAtomicPtr::new(ptr::null_mut()),
        }));
        let mut head = self.head.load(Ordering::Relaxed);
        loop {
            // SAFETY: `node` is not shared until the CAS below succeeds.
            unsafe { (*node).next.store(head, Ordering::Relaxed) };
            match self
                .head
                .compare_exchange_weak(head, node, Ordering::Release, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(h) => head = h,
            }
        }
    }

    #[inline]
    fn pop(&self) -> Option<u64> {
        let guard = self.collector.enter();
        loop {
            let head = guard.protect(&self.head, Ordering::Acquire);
            if head.is_null() {
                return None;
            }
            // SAFETY: `head` was loaded through `guard`, so it stays allocated.
            let next = unsafe { (*head).next.load(Ordering::Relaxed) };
            if self
                .head
                .compare_exchange(head, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // SAFETY: still protected by `guard`; `value` is never written after push.
                let value = unsafe { (*head).value };
                // SAFETY: our CAS unlinked `head`, which came from Box::into_raw, so
                // `reclaim::boxed` frees it correctly and it is retired only once.
                unsafe { guard.defer_retire(head, seize::reclaim::boxed) };
                return Some(value);
            }
        }
    }
}

impl Drop for SeizeStack {
    fn drop(&mut self) {
        let mut p = self.head.load(Ordering::Relaxed);
        while !p.is_null() {
            // SAFETY: `&mut self`: no other thread can reach the linked nodes, which
            // came from Box::into_raw and were never retired. (The retired ones are
            // freed when `collector` drops, after this.)
            let node = unsafe { Box::from_raw(p) };
            p = node.next.load(Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    fn lifo(stack: impl Stack) {
        assert_eq!(stack.pop(), None);
        for v in 1..=100 {
            stack.push(v);
        }
        for v in (1..=100).rev() {
            assert_eq!(stack.pop(), Some(v));
        }
        assert_eq!(stack.pop(), None);
        stack.push(7);
        assert_eq!(stack.pop(), Some(7));
        // Leaves nodes behind for Drop to free.
        for v in 0..10 {
            stack.push(v);
        }
    }

    /// 4 threads push distinct values and pop concurrently; every value pushed is
    /// popped exactly once.
    fn conserves(stack: impl Stack) {
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = if cfg!(miri) { 200 } else { 20_000 };
        let mut popped: Vec<u64> = thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let stack = &stack;
                    s.spawn(move || {
                        let mut got = Vec::new();
                        for k in 0..PER_THREAD {
                            stack.push(t * PER_THREAD + k);
                            if k % 2 == 1 {
                                got.extend(stack.pop());
                                got.extend(stack.pop());
                            }
                        }
                        while let Some(v) = stack.pop() {
                            got.push(v);
                        }
                        got
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("worker panicked"))
                .collect()
        });
        while let Some(v) = stack.pop() {
            popped.push(v);
        }
        popped.sort_unstable();
        let expected: Vec<u64> = (0..THREADS * PER_THREAD).collect();
        assert_eq!(popped.len(), expected.len());
        assert!(popped == expected, "values lost or duplicated");
    }

    #[test]
    fn strata_epoch_stack() {
        lifo(TreiberStack::new(Epoch));
        conserves(TreiberStack::new(Epoch));
    }

    #[test]
    fn strata_hazard_stack() {
        lifo(TreiberStack::new(Hazard));
        conserves(TreiberStack::new(Hazard));
    }

    #[test]
    fn crossbeam_stack() {
        lifo(CrossbeamStack::new());
        conserves(CrossbeamStack::new());
    }

    #[test]
    fn seize_stack() {
        lifo(SeizeStack::new());
        conserves(SeizeStack::new());
    }

    #[test]
    fn timed_paths_run() {
        let mut v = Vec::new();
        register(&mut v);
        for w in &v {
            for i in &w.impls {
                let s = (i.timed)(2, Duration::from_millis(2));
                assert!(s.ops > 0, "{} / {}", w.name, i.name);
            }
        }
    }
}
