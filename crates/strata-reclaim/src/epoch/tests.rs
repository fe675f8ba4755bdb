//! Unit tests of the epoch internals (std build only; the loom models are in
//! `loom_models.rs`).
#![cfg(not(strata_loom))]

use super::*;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;

fn participants(d: &Domain) -> usize {
    let mut n = 0;
    let mut p = d.global.participants.load(Ordering::Acquire);
    while !p.is_null() {
        n += 1;
        // SAFETY: records live as long as the domain, which `d` holds.
        p = unsafe { (*p).next };
    }
    n
}

#[test]
fn records_are_reused_after_a_handle_drops() {
    let d = Domain::new();
    for _ in 0..10 {
        let h = d.register();
        drop(h.pin());
    }
    assert_eq!(participants(&d), 1);
    let (a, b) = (d.register(), d.register());
    assert_eq!(participants(&d), 2);
    drop((a, b));
    let t = std::thread::spawn({
        let d = d.clone();
        move || drop(d.register().pin())
    });
    t.join().unwrap();
    assert_eq!(participants(&d), 2);
}

#[test]
fn a_full_bag_is_sealed_and_expires_after_two_steps() {
    let d = Domain::new();
    let h = d.register();
    let runs = std::sync::Arc::new(StdAtomicUsize::new(0));
    {
        let g = h.pin();
        for _ in 0..crate::deferred::BAG_CAPACITY + 1 {
            let r = std::sync::Arc::clone(&runs);
            g.defer(move || {
                r.fetch_add(1, Ordering::Relaxed);
            });
        }
        // The full bag was sealed while `g` is pinned: nothing may run yet.
        assert_eq!(runs.load(Ordering::Relaxed), 0);
        assert!(d.pending_bags() >= 1);
    }
    let start = d.epoch();
    // Each flush collects; two epoch steps later the sealed bag runs.
    for _ in 0..3 {
        h.flush();
    }
    assert!(d.epoch().wrapping_sub(start) >= EXPIRY);
    assert_eq!(
        runs.load(Ordering::Relaxed),
        crate::deferred::BAG_CAPACITY + 1
    );
    assert_eq!(d.pending_bags(), 0);
}

#[test]
fn a_pinned_thread_holds_the_epoch_back() {
    let d = Domain::new();
    let reader = d.register();
    let writer = d.register();
    let g = reader.pin();
    let e0 = d.epoch();
    for _ in 0..5 {
        writer.flush();
    }
    // One step is allowed (the reader is pinned in the current epoch), not two.
    assert!(d.epoch().wrapping_sub(e0) <= STEP);
    drop(g);
    for _ in 0..3 {
        writer.flush();
    }
    assert!(d.epoch().wrapping_sub(e0) >= EXPIRY);
}

#[test]
fn nested_pins_count_and_the_outermost_unpins() {
    let d = Domain::new();
    let h = d.register();
    let g1 = h.pin();
    let g2 = h.pin();
    assert!(h.is_pinned());
    drop(g1);
    assert!(h.is_pinned());
    drop(g2);
    assert!(!h.is_pinned());
    assert_eq!(
        // SAFETY: the handle's record; read on its owner thread.
        unsafe { &*h.part }.state.load(Ordering::Relaxed),
        0
    );
}

#[test]
fn a_guard_outliving_its_handle_keeps_the_record() {
    let d = Domain::new();
    let runs = std::sync::Arc::new(StdAtomicUsize::new(0));
    let h = d.register();
    let g = h.pin();
    drop(h);
    let r = std::sync::Arc::clone(&runs);
    g.defer(move || {
        r.fetch_add(1, Ordering::Relaxed);
    });
    drop(g); // finalizes the record: hands over the bag
    drop(d);
    assert_eq!(runs.load(Ordering::Relaxed), 1);
}
