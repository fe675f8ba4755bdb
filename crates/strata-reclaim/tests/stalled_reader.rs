//! A reader that stalls inside its read-side protection, under each scheme.
//!
//! Epochs: a reader stalled while pinned blocks all reclamation in its domain (the
//! documented weakness of the scheme); a grace period cannot complete until it unpins,
//! and then everything is reclaimed. Hazard pointers: a stalled reader holds back only
//! the one object it protects, and the number of retired-but-unfreed objects stays
//! within the documented `T·R + H` throughout.

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{Counters, Obj};
use strata_primitives::sync::atomic::{AtomicPtr, Ordering};
use strata_reclaim::hazard::HazardPointer;
use strata_reclaim::{ReclaimError, epoch, hazard};

/// Objects retired while the reader is stalled, in total over the writers.
const RETIRES: usize = if cfg!(miri) { 100 } else { 20_000 };
const WRITERS: usize = 2;

#[test]
fn epoch_stalled_reader_blocks_reclamation_until_it_unpins() {
    static C: Counters = Counters::new();
    let domain = epoch::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    let (domain_ref, shared_ref) = (&domain, &shared);
    thread::scope(|s| {
        // Created inside the scope's closure, so that a panic here drops `stop` and the
        // reader does not wait forever.
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let reader = s.spawn(move || {
            let handle = domain_ref.register();
            let guard = handle.pin();
            let p = shared_ref.load(Ordering::Acquire);
            // SAFETY: `p` was reachable after we pinned; `guard` keeps it allocated.
            let id = unsafe { Obj::check(p) };
            C.watch(id);
            ready_tx.send(()).unwrap();
            let _ = stop_rx.recv(); // stalled, pinned
            // SAFETY: still pinned.
            assert_eq!(unsafe { Obj::check(p) }, id);
            C.allow_free();
            drop(guard);
        });
        ready_rx.recv().unwrap();

        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                s.spawn(move || {
                    for _ in 0..RETIRES / WRITERS {
                        let guard = domain_ref.pin();
                        let old = shared_ref.swap(Obj::new(&C), Ordering::AcqRel);
                        // SAFETY: unlinked by our swap, from Box::into_raw, Obj: Send.
                        unsafe { guard.defer_destroy(old) };
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        // Every object retired after the reader pinned is still allocated (the writers
        // sealed many bags and collected at each one, and exited, handing over their
        // partial bags): reclamation is blocked.
        let retired = RETIRES / WRITERS * WRITERS;
        assert_eq!(C.created(), retired + 1);
        assert!(
            C.live() >= retired * 9 / 10,
            "a pinned reader must block reclamation: only {} of {} retired objects alive",
            C.live() - 1,
            retired
        );
        assert!(
            !C.violation(),
            "the object the stalled reader holds was freed"
        );

        let handle = domain.register();
        assert_eq!(
            handle.synchronize_timeout(Duration::from_millis(50)),
            Err(ReclaimError::Timeout),
            "a grace period cannot elapse while a reader is pinned"
        );
        handle.flush();
        assert!(C.live() >= retired * 9 / 10);

        stop.send(()).unwrap();
        reader.join().unwrap();
        assert!(!C.violation());
        assert_eq!(handle.synchronize(), Ok(()));
        // Each flush collects every bag whose grace period has elapsed; a few suffice.
        for _ in 0..10 {
            if C.live() == 1 {
                break;
            }
            handle.flush();
        }
        assert_eq!(C.live(), 1, "only the object in the shared pointer is left");
        assert!(C.watched_freed());
    });
    drop(domain);
    C.assert_balanced(1);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

#[test]
fn hazard_stalled_reader_holds_back_only_its_object() {
    static C: Counters = Counters::new();
    let domain = hazard::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    let done = AtomicBool::new(false);
    let (domain_ref, shared_ref) = (&domain, &shared);
    thread::scope(|s| {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let reader = s.spawn(move || {
            let mut hp = HazardPointer::new_in(domain_ref);
            let p = hp.protect(shared_ref);
            // SAFETY: `p` is protected by `hp`.
            let id = unsafe { Obj::check(p) };
            C.watch(id);
            ready_tx.send(()).unwrap();
            let _ = stop_rx.recv(); // stalled, protecting `p`
            // SAFETY: still protected, though it was retired long ago.
            assert_eq!(unsafe { Obj::check(p) }, id);
            C.allow_free();
            hp.reset();
            // Adopts the batch the writer that retired `p` left when it exited.
            domain_ref.eager_reclaim()
        });
        ready_rx.recv().unwrap();

        // The bound's parameters, fixed from here on: no other hazard pointer is made.
        let h = domain.slot_count();
        let r = domain.threshold();
        assert_eq!(h, 1);
        assert!(r >= 2 * h);
        // Retired-but-unfreed objects number at most T·R + H (module docs, with T the
        // threads that retired); on top of those, the test's own objects: the one in the
        // shared pointer, and one per writer made but not yet swapped in.
        let bound = WRITERS * r + h + 1 + WRITERS;

        let sampler = s.spawn(|| {
            let mut max = 0;
            loop {
                max = C.live().max(max);
                if done.load(std::sync::atomic::Ordering::SeqCst) {
                    return max;
                }
                thread::sleep(Duration::from_millis(1));
            }
        });
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                s.spawn(move || {
                    let mut max = 0;
                    for i in 0..RETIRES / WRITERS {
                        let old = shared_ref.swap(Obj::new(&C), Ordering::AcqRel);
                        // SAFETY: unlinked by our swap, from Box::into_raw, Obj: Send.
                        unsafe { domain_ref.retire(old) };
                        if i % 16 == 0 {
                            max = C.live().max(max);
                        }
                    }
                    max
                })
            })
            .collect();
        let maxes: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        let max = sampler.join().unwrap();
        let max = maxes.into_iter().map(|m| m.unwrap()).fold(max, usize::max);
        assert!(
            max <= bound,
            "{max} objects alive at once, above T·R + H + {} = {bound} (T = {WRITERS}, R = {r}, H = {h})",
            1 + WRITERS
        );
        // The writers have exited, leaving only the protected object behind.
        assert_eq!(C.live(), 2, "the shared object and the protected one");
        assert!(
            !C.violation(),
            "the protected object was freed while protected"
        );
        assert!(!C.watched_freed());

        stop.send(()).unwrap();
        let freed = reader.join().unwrap();
        assert_eq!(freed, 1, "the reset made the orphaned object reclaimable");
        assert!(C.watched_freed());
        assert!(!C.violation());
        assert_eq!(C.live(), 1);
    });
    drop(domain);
    C.assert_balanced(1);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}
