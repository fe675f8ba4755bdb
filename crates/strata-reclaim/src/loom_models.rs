//! loom models of both schemes. Run with
//! `RUSTFLAGS="--cfg strata_loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p strata-reclaim --lib`.
//!
//! Each model races at least two threads and asserts a property. The models marked
//! `should_panic` under `--cfg strata_weaken` are the proof that they can fail:
//!
//! * hazard pointers: that cfg removes the `SeqCst` fence in `protect` (an ordering), so
//!   a scan can miss a hazard; loom finds the interleaving in which the protected node
//!   is poisoned under its reader.
//! * epochs: that cfg lets a bag (and a grace period) expire after one epoch step
//!   instead of two; loom finds the reader pinned in the old epoch whose node is
//!   reclaimed, and the `synchronize` that returns while that reader is inside.
//!
//! What loom does not catch here, said plainly: removing the `SeqCst` fence in `pin`
//! (loom does not offer a thread the same stale value again after a yield, so the
//! store-buffering outcome is not reached) or the `Acquire` fence after the advancer's
//! scan (the reader's handle teardown, a `Release` CAS of the epoch, orders it in every
//! schedule these models produce). Those two rest on the argument in the `epoch` docs
//! and on the stress tests.

// Test plumbing uses std's Arc: only the structures under test need loom's types.
use std::sync::Arc;
use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};
use strata_primitives::{model, thread};

use crate::{epoch, hazard};

/// A node whose drop poisons its value through a loom `UnsafeCell` (so a free that is
/// not ordered after a reader's access is a data race loom reports) and marks its id as
/// freed in a side table (so a model can ask "is the object I hold freed?" without
/// touching freed memory).
struct Node {
    id: usize,
    value: UnsafeCell<usize>,
    freed: Arc<[AtomicBool; 2]>,
}

impl Node {
    fn new(id: usize, freed: &Arc<[AtomicBool; 2]>) -> *mut Node {
        Box::into_raw(Box::new(Node {
            id,
            value: UnsafeCell::new(100 + id),
            freed: Arc::clone(freed),
        }))
    }

    /// Reads the value; loom checks this access against the poisoning write in `drop`.
    fn read(&self) -> usize {
        // SAFETY: only `drop` writes, and the property under test is that it does not
        // run concurrently with a protected read.
        self.value.with(|v| unsafe { *v })
    }
}

/// The models' reclaim function: poisons the node and marks it freed, but leaves the
/// memory allocated so that a reader that (wrongly) still uses it reads poison that loom
/// reports as a race, instead of reading freed memory. `free_all` frees it at the end.
///
/// # Safety
/// `p` points to a live `Node`.
unsafe fn poison(p: *mut Node) {
    // SAFETY: `p` is live (the memory is freed only by `free_all`).
    let node = unsafe { &*p };
    // SAFETY: loom checks that no reader access races with this write; that is the
    // property under test.
    node.value.with_mut(|v| unsafe { *v = usize::MAX });
    node.freed[node.id].store(true, Ordering::SeqCst);
}

/// Frees both nodes once the model's threads are done.
fn free_all(nodes: [*mut Node; 2]) {
    for n in nodes {
        // SAFETY: each came from `Node::new` and is freed once, after every thread
        // that could use it has been joined.
        drop(unsafe { Box::from_raw(n) });
    }
}

/// The side table, the shared pointer, and the first node (kept by the model's main
/// thread to free at the end; readers get only its address, to compare).
fn setup() -> (Arc<[AtomicBool; 2]>, Arc<AtomicPtr<Node>>, *mut Node) {
    let freed = Arc::new([AtomicBool::new(false), AtomicBool::new(false)]);
    let first = Node::new(0, &freed);
    (freed, Arc::new(AtomicPtr::new(first)), first)
}

fn id_of(p: *mut Node, first: usize) -> usize {
    usize::from(p as usize != first)
}

/// Epochs: a pinned reader never sees the object it loaded freed, while a writer
/// unlinks it, defers its destruction and drives the epoch forward.
#[test]
#[cfg_attr(strata_weaken, should_panic)]
fn epoch_guard_vs_deferred_free() {
    model(|| {
        let domain = epoch::Domain::new();
        let (freed, shared, first_node) = setup();
        let first = first_node as usize;

        let reader = {
            let (domain, freed, shared) = (domain.clone(), Arc::clone(&freed), Arc::clone(&shared));
            thread::spawn(move || {
                let h = domain.register();
                let g = h.pin();
                let p = shared.load(Ordering::Acquire);
                let id = id_of(p, first);
                assert!(
                    !freed[id].load(Ordering::SeqCst),
                    "use after free: node {id} freed while a guard that loaded it is alive"
                );
                // SAFETY: protected by `g` (the property under test).
                assert_eq!(unsafe { (*p).read() }, 100 + id);
                drop(g);
            })
        };

        let h = domain.register();
        let new = Node::new(1, &freed);
        let old = shared.swap(new, Ordering::AcqRel);
        {
            let g = h.pin();
            // SAFETY: `old` is unlinked and poisoned once; the memory outlives the domain
            // (freed by `free_all` after it is dropped).
            unsafe { g.defer_unchecked(move || poison(old)) };
        }
        for _ in 0..3 {
            h.flush();
        }
        reader.join().unwrap();
        drop(h);
        drop(domain);
        // Conservation: the old node was reclaimed (by the domain's drop at the latest),
        // and the new one was not.
        assert!(freed[0].load(Ordering::SeqCst));
        assert!(!freed[1].load(Ordering::SeqCst));
        free_all([first_node, new]);
    });
}

/// Epochs: `synchronize` does not return while a reader that may have seen the old
/// state is still inside its critical section.
#[test]
#[cfg_attr(strata_weaken, should_panic)]
fn epoch_synchronize_waits_for_reader() {
    model(|| {
        let domain = epoch::Domain::new();
        let unlinked = Arc::new(AtomicUsize::new(0));
        let reclaimed = Arc::new(AtomicUsize::new(0));

        let reader = {
            let (domain, unlinked, reclaimed) = (
                domain.clone(),
                Arc::clone(&unlinked),
                Arc::clone(&reclaimed),
            );
            thread::spawn(move || {
                let h = domain.register();
                let g = h.pin();
                let saw_old = unlinked.load(Ordering::Relaxed) == 0;
                let saw_reclaimed = reclaimed.load(Ordering::Relaxed) == 1;
                drop(g);
                assert!(
                    !(saw_old && saw_reclaimed),
                    "a critical section saw the old state and its reclamation"
                );
            })
        };

        let h = domain.register();
        unlinked.store(1, Ordering::Relaxed);
        h.synchronize().unwrap();
        reclaimed.store(1, Ordering::Relaxed);
        reader.join().unwrap();
    });
}

/// Epochs: garbage deferred by a thread that then exits is handed to the domain and
/// run exactly once; nothing is run twice or lost.
#[test]
fn epoch_exiting_thread_hands_over_garbage() {
    model(|| {
        let domain = epoch::Domain::new();
        let runs = Arc::new(AtomicUsize::new(0));
        let t = {
            let (domain, runs) = (domain.clone(), Arc::clone(&runs));
            thread::spawn(move || {
                let h = domain.register();
                let g = h.pin();
                let r = Arc::clone(&runs);
                g.defer(move || {
                    r.fetch_add(1, Ordering::SeqCst);
                });
            })
        };
        let h = domain.register();
        {
            let g = h.pin();
            let r = Arc::clone(&runs);
            g.defer(move || {
                r.fetch_add(1, Ordering::SeqCst);
            });
        }
        h.flush();
        t.join().unwrap();
        drop(h);
        drop(domain);
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    });
}

/// Hazard pointers: a protected object is never freed, while a writer unlinks it,
/// retires it and scans.
#[test]
#[cfg_attr(strata_weaken, should_panic)]
fn hazard_protect_vs_retire() {
    model(|| {
        let domain = Arc::new(hazard::Domain::new());
        let (freed, shared, first_node) = setup();
        let first = first_node as usize;

        let reader = {
            let (domain, freed, shared) =
                (Arc::clone(&domain), Arc::clone(&freed), Arc::clone(&shared));
            thread::spawn(move || {
                let mut hp = hazard::HazardPointer::new_in(&domain);
                let p = hp.protect(&shared);
                let id = id_of(p, first);
                assert!(
                    !freed[id].load(Ordering::SeqCst),
                    "use after free: node {id} freed while a hazard pointer protects it"
                );
                // SAFETY: protected by `hp` (the property under test).
                assert_eq!(unsafe { (*p).read() }, 100 + id);
                hp.reset();
            })
        };

        let new = Node::new(1, &freed);
        let old = shared.swap(new, Ordering::AcqRel);
        // SAFETY: `old` is unlinked and poisoned once; the memory outlives the domain.
        unsafe { domain.retire_with(old, poison) };
        domain.eager_reclaim();
        reader.join().unwrap();
        domain.eager_reclaim();
        // Conservation: with no hazard left, the retired node is reclaimed; the live one not.
        assert!(freed[0].load(Ordering::SeqCst));
        assert!(!freed[1].load(Ordering::SeqCst));
        drop(domain);
        free_all([first_node, new]);
    });
}
