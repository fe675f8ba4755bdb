//! Unit tests of the hazard-pointer internals (std build only; the loom model is in
//! `loom_models.rs`).
#![cfg(not(strata_loom))]

use super::*;
use std::sync::atomic::AtomicUsize as StdAtomicUsize;

static DROPS_SCAN: StdAtomicUsize = StdAtomicUsize::new(0);
static DROPS_DOMAIN: StdAtomicUsize = StdAtomicUsize::new(0);

struct Counted(&'static StdAtomicUsize);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn retired_len(d: &Domain) -> usize {
    // SAFETY: this thread's own record, not re-entered.
    d.with_rec(|rec| rec.local.with_mut(|l| unsafe { (*l).retired.len() }))
}

#[test]
fn retire_scans_at_the_threshold_and_keeps_only_the_protected() {
    let d = Domain::new();
    let protected = AtomicPtr::new(Box::into_raw(Box::new(Counted(&DROPS_SCAN))));
    let mut hp = HazardPointer::new_in(&d);
    let p = hp.protect(&protected);
    // SAFETY: `p` is from Box::into_raw; unlinked below by swapping null in; once.
    protected.store(ptr::null_mut(), Ordering::Relaxed);
    // SAFETY: as above.
    unsafe { d.retire(p) };
    let threshold = d.threshold();
    for _ in 1..threshold {
        // SAFETY: never shared, retired once.
        unsafe { d.retire(Box::into_raw(Box::new(Counted(&DROPS_SCAN)))) };
    }
    // The list reached the threshold once: everything but the protected object was
    // freed.
    assert_eq!(retired_len(&d), 1);
    assert_eq!(DROPS_SCAN.load(Ordering::Relaxed), threshold - 1);
    hp.reset();
    assert_eq!(d.eager_reclaim(), 1);
    assert_eq!(retired_len(&d), 0);
}

#[test]
fn threshold_scales_with_slots() {
    let d = Domain::new();
    let hps: Vec<_> = (0..100).map(|_| HazardPointer::new_in(&d)).collect();
    assert_eq!(d.slot_count(), 100);
    assert_eq!(d.threshold(), 200);
    drop(hps);
    // Released slots are reused, from this thread's cache first.
    let again: Vec<_> = (0..100).map(|_| HazardPointer::new_in(&d)).collect();
    assert_eq!(d.slot_count(), 100);
    drop(again);
}

#[test]
fn dropping_the_domain_frees_what_is_left() {
    let d = Domain::new();
    for _ in 0..5 {
        // SAFETY: never shared, retired once.
        unsafe { d.retire(Box::into_raw(Box::new(Counted(&DROPS_DOMAIN)))) };
    }
    // Drop the thread's cached registration first, then the domain.
    REGS.with(|r| {
        r.last.set((ptr::null(), ptr::null()));
        r.list.borrow_mut().clear();
    });
    drop(d);
    assert_eq!(DROPS_DOMAIN.load(Ordering::Relaxed), 5);
}
