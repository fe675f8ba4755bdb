//! The public API's contracts: QSBR and its error paths, grace periods, `repin`,
//! hazard-slot reuse, several domains on one thread, what dropping a domain runs, and
//! the adoption of an exited thread's protected garbage.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::Duration;

use common::{Counters, Obj};
use strata_primitives::sync::atomic::{AtomicPtr, Ordering};
use strata_reclaim::hazard::HazardPointer;
use strata_reclaim::{Protect, Reclaim, ReclaimError, epoch, hazard};

/// Runs `f` on a new thread and joins it, so that the thread-local handles it caches
/// (`Domain::pin`, hazard registrations) are dropped before this returns.
fn on_thread<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    thread::scope(|s| s.spawn(f).join().unwrap())
}

/// Defers, on its own thread, dropping a new object; returns the object's id.
fn defer_one_elsewhere(domain: &epoch::Domain, c: &'static Counters) -> u64 {
    on_thread(|| {
        let handle = domain.register();
        let guard = handle.pin();
        let p = Obj::new(c);
        // SAFETY: `p` was never shared.
        let id = unsafe { Obj::check(p) };
        // SAFETY: from Box::into_raw, never shared, Obj: Send.
        unsafe { guard.defer_destroy(p) };
        drop(guard);
        handle.flush();
        id
    })
}

// ---------------------------------------------------------------------------------
// QSBR and error paths.

#[test]
fn online_twice_is_refused() {
    let domain = epoch::Domain::new();
    let h = domain.register();
    assert!(!h.is_pinned());
    assert_eq!(h.online(), Ok(()));
    assert!(h.is_pinned(), "an online thread counts as pinned");
    assert_eq!(h.online(), Err(ReclaimError::AlreadyOnline));
    assert_eq!(h.offline(), Ok(()));
    assert!(!h.is_pinned());
    // Online again after going offline is fine.
    assert_eq!(h.online(), Ok(()));
    assert_eq!(h.offline(), Ok(()));
}

#[test]
fn offline_or_quiescent_when_not_online_is_refused() {
    let domain = epoch::Domain::new();
    let h = domain.register();
    assert_eq!(h.offline(), Err(ReclaimError::NotOnline));
    assert_eq!(h.quiescent(), Err(ReclaimError::NotOnline));
    // A plain guard does not make the thread online.
    let g = h.pin();
    assert_eq!(h.offline(), Err(ReclaimError::NotOnline));
    assert_eq!(h.quiescent(), Err(ReclaimError::NotOnline));
    drop(g);
    h.online().unwrap();
    h.offline().unwrap();
    assert_eq!(h.offline(), Err(ReclaimError::NotOnline));
}

#[test]
fn quiescent_while_a_guard_is_alive_is_refused() {
    let domain = epoch::Domain::new();
    let h = domain.register();
    h.online().unwrap();
    assert_eq!(h.quiescent(), Ok(()));
    let g = h.pin();
    assert_eq!(h.quiescent(), Err(ReclaimError::GuardHeld));
    let g2 = h.pin();
    assert_eq!(h.quiescent(), Err(ReclaimError::GuardHeld));
    drop(g2);
    assert_eq!(h.quiescent(), Err(ReclaimError::GuardHeld));
    drop(g);
    assert_eq!(h.quiescent(), Ok(()));
    // Still online after the guards: quiescent keeps the thread online.
    assert!(h.is_pinned());
    h.offline().unwrap();
}

#[test]
fn synchronize_from_inside_a_critical_section_is_refused() {
    let domain = epoch::Domain::new();
    let h = domain.register();
    let g = h.pin();
    assert_eq!(h.synchronize(), Err(ReclaimError::WouldDeadlock));
    assert_eq!(
        h.synchronize_timeout(Duration::from_millis(10)),
        Err(ReclaimError::WouldDeadlock)
    );
    drop(g);
    h.online().unwrap();
    assert_eq!(h.synchronize(), Err(ReclaimError::WouldDeadlock));
    h.offline().unwrap();
    // Unpinned and offline, with no other participant, a grace period elapses at once.
    assert_eq!(h.synchronize(), Ok(()));
    assert_eq!(h.synchronize_timeout(Duration::from_secs(60)), Ok(()));
    // A grace period moves the epoch at least two steps (the epoch steps by two).
    let before = domain.epoch();
    h.synchronize().unwrap();
    assert!(domain.epoch().wrapping_sub(before) >= 4);
}

#[test]
fn errors_have_messages() {
    for e in [
        ReclaimError::WouldDeadlock,
        ReclaimError::Timeout,
        ReclaimError::GuardHeld,
        ReclaimError::AlreadyOnline,
        ReclaimError::NotOnline,
    ] {
        assert!(!e.to_string().is_empty());
        let _: &dyn std::error::Error = &e;
    }
}

/// An online thread is inside one long critical section until it announces a
/// quiescent state: nothing deferred meanwhile is freed, however often anyone collects.
#[test]
fn online_thread_blocks_reclamation_until_quiescent() {
    static C: Counters = Counters::new();
    let domain = epoch::Domain::new();
    let h = domain.register();
    h.online().unwrap();
    let id = defer_one_elsewhere(&domain, &C);
    C.watch(id);
    for _ in 0..10 {
        h.flush();
        on_thread(|| domain.register().flush());
    }
    assert_eq!(
        C.live(),
        1,
        "freed while an online thread had not been quiescent"
    );
    assert!(!C.violation());
    C.allow_free();
    // Each quiescent state lets the epoch move one step past this thread; a bag needs
    // two, so a few rounds free it.
    for _ in 0..10 {
        if C.live() == 0 {
            break;
        }
        h.quiescent().unwrap();
        h.flush();
    }
    assert_eq!(
        C.live(),
        0,
        "quiescent states must let the grace period end"
    );
    assert!(C.watched_freed());
    h.offline().unwrap();
    drop(h);
    drop(domain);
    C.assert_balanced(0);
}

/// The same, with the thread going offline instead.
#[test]
fn offline_thread_does_not_block_reclamation() {
    static C: Counters = Counters::new();
    let domain = epoch::Domain::new();
    let h = domain.register();
    h.online().unwrap();
    h.offline().unwrap();
    defer_one_elsewhere(&domain, &C);
    h.synchronize().unwrap();
    h.flush();
    assert_eq!(C.live(), 0);
    drop(h);
    drop(domain);
    C.assert_balanced(0);
}

// ---------------------------------------------------------------------------------
// Guards.

/// `repin` moves a long-running reader to the current epoch, so it stops holding back
/// what was retired before; only the thread's outermost guard can do that.
#[test]
fn repin_lets_reclamation_proceed() {
    static C: Counters = Counters::new();
    let domain = epoch::Domain::new();
    let reader = domain.register();
    let collector = domain.register(); // a second participant on the same thread
    let mut g = reader.pin();
    let id = defer_one_elsewhere(&domain, &C);
    C.watch(id);
    for _ in 0..10 {
        collector.flush();
    }
    assert_eq!(
        C.live(),
        1,
        "a pinned guard must hold back what was deferred after it"
    );

    // A nested guard cannot repin: the outer guard's references must stay valid.
    let mut inner = reader.pin();
    inner.repin();
    for _ in 0..10 {
        collector.flush();
    }
    assert_eq!(C.live(), 1, "repin of a nested guard must be a no-op");
    drop(inner);
    assert!(!C.violation());
    C.allow_free();

    for _ in 0..10 {
        if C.live() == 0 {
            break;
        }
        g.repin();
        collector.flush();
    }
    assert_eq!(C.live(), 0, "repinned guard still holds back reclamation");
    assert!(reader.is_pinned(), "the guard is still alive");
    drop(g);
    assert!(!reader.is_pinned());
    drop((reader, collector));
    drop(domain);
    C.assert_balanced(0);
}

#[test]
fn nested_guards_and_pin_count() {
    let domain = epoch::Domain::new();
    let h = domain.register();
    let a = h.pin();
    let b = h.pin();
    drop(a);
    assert!(h.is_pinned(), "b is still alive");
    drop(b);
    assert!(!h.is_pinned());
}

/// `Domain::pin` on two domains from one thread: independent handles and garbage.
#[test]
fn pin_two_domains_from_one_thread() {
    let ran1 = Arc::new(AtomicUsize::new(0));
    let ran2 = Arc::new(AtomicUsize::new(0));
    let d1 = epoch::Domain::new();
    let d2 = epoch::Domain::new();
    assert!(!epoch::Domain::ptr_eq(&d1, &d2));
    assert!(epoch::Domain::ptr_eq(&d1, &d1.clone()));
    on_thread(|| {
        let g1 = d1.pin();
        let g2 = d2.pin();
        let g1b = d1.pin(); // nested, through the cached handle
        for _ in 0..100 {
            let r = Arc::clone(&ran1);
            g1.defer(move || {
                r.fetch_add(1, SeqCst);
            });
            let r = Arc::clone(&ran2);
            g2.defer(move || {
                r.fetch_add(1, SeqCst);
            });
        }
        drop((g1b, g2, g1));
    });
    // The thread's cached handles were dropped with it; the domains are now held only
    // by these clones, and dropping each runs whatever is still deferred in it.
    drop(d1);
    assert_eq!(ran1.load(SeqCst), 100);
    drop(d2);
    assert_eq!(ran2.load(SeqCst), 100);
}

/// Dropping a domain runs every deferred function, including those a pinned reader
/// was still holding back, and the partial bags of handles dropped meanwhile.
#[test]
fn dropping_a_domain_runs_all_deferred_functions() {
    const N: usize = if cfg!(miri) { 40 } else { 1000 };
    let ran = Arc::new(AtomicUsize::new(0));
    let domain = epoch::Domain::new();
    let blocker = domain.register();
    let pinned = blocker.pin();
    let worker = domain.register();
    for i in 0..N {
        let g = worker.pin();
        if i % 2 == 0 {
            let r = Arc::clone(&ran);
            g.defer(move || {
                r.fetch_add(1, SeqCst);
            });
        } else {
            // A closure too big to be stored inline: the boxed path.
            let r = Arc::clone(&ran);
            let big = [1usize; 16];
            g.defer(move || {
                r.fetch_add(big[15], SeqCst);
            });
        }
    }
    worker.flush();
    assert_eq!(
        ran.load(SeqCst),
        0,
        "ran while a reader pinned before them was pinned"
    );
    assert!(domain.pending_bags() > 0);
    drop(pinned);
    drop(blocker);
    drop(worker);
    drop(domain);
    assert_eq!(ran.load(SeqCst), N);
    assert_eq!(Arc::strong_count(&ran), 1, "every closure was dropped");
}

/// A guard outlives the handle that made it, and keeps the domain alive.
#[test]
fn guard_outlives_its_handle_and_domain_handle() {
    let ran = Arc::new(AtomicUsize::new(0));
    let domain = epoch::Domain::new();
    let h = domain.register();
    let g = h.pin();
    drop(h);
    drop(domain);
    let r = Arc::clone(&ran);
    g.defer(move || {
        r.fetch_add(1, SeqCst);
    });
    assert_eq!(ran.load(SeqCst), 0);
    drop(g); // the last reference: the domain is dropped and runs the function
    assert_eq!(ran.load(SeqCst), 1);
}

/// A handle may outlive every clone of its domain: dropping it then drops the domain,
/// which runs what the handle's thread deferred.
#[test]
fn handle_outlives_its_domain() {
    let ran = Arc::new(AtomicUsize::new(0));
    let domain = epoch::Domain::new();
    let h = domain.register();
    drop(domain);
    let r = Arc::clone(&ran);
    h.pin().defer(move || {
        r.fetch_add(1, SeqCst);
    });
    assert_eq!(ran.load(SeqCst), 0);
    drop(h); // the last reference: the domain is dropped and runs the function
    assert_eq!(ran.load(SeqCst), 1);
}

/// A cached handle of a domain nobody else references is released the next time the
/// thread registers with a new domain (documented on `Domain::pin`).
#[test]
fn stale_cached_handle_is_released_on_next_registration() {
    let ran = Arc::new(AtomicUsize::new(0));
    on_thread(|| {
        let d1 = epoch::Domain::new();
        let g = d1.pin();
        let r = Arc::clone(&ran);
        g.defer(move || {
            r.fetch_add(1, SeqCst);
        });
        drop(g);
        drop(d1);
        // Still cached by this thread: nothing ran yet (one pin, no grace period).
        assert_eq!(ran.load(SeqCst), 0);
        let d2 = epoch::Domain::new();
        drop(d2.pin());
        assert_eq!(
            ran.load(SeqCst),
            1,
            "the stale domain's garbage should have run"
        );
    });
}

/// `Reclaim` through the default epoch domain, single-threaded: `retire` is deferred
/// until a grace period.
#[test]
fn reclaim_trait_single_thread() {
    static C: Counters = Counters::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    let domain = epoch::Domain::new();
    on_thread(|| {
        let mut g = domain.guard();
        let old = g.protect(&shared);
        shared.store(Obj::new(&C), Ordering::Release);
        // SAFETY: unlinked above, from Box::into_raw, retired once, Obj: Send.
        unsafe { g.retire(old) };
        // SAFETY: still protected by `g`.
        unsafe { Obj::check(old) };
        drop(g);
    });
    drop(domain);
    let hz = hazard::Domain::new();
    on_thread(|| {
        let mut g = hz.guard();
        let old = g.protect(&shared);
        shared.store(Obj::new(&C), Ordering::Release);
        // SAFETY: as above.
        unsafe { g.retire(old) };
        hz.eager_reclaim();
        // SAFETY: still protected by `g`.
        unsafe { Obj::check(old) };
        assert_eq!(C.live(), 2);
        g.clear();
        assert_eq!(hz.eager_reclaim(), 1);
        assert_eq!(C.live(), 1);
    });
    drop(hz);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

// ---------------------------------------------------------------------------------
// Hazard pointers.

#[test]
fn hazard_slots_are_reused_on_one_thread() {
    const N: usize = if cfg!(miri) { 50 } else { 1000 };
    let domain = hazard::Domain::new();
    on_thread(|| {
        for _ in 0..N {
            let hp = HazardPointer::new_in(&domain);
            drop(hp);
        }
        assert!(domain.slot_count() <= 2, "{} slots", domain.slot_count());
        // Three at once need three slots; afterwards they are reused.
        for _ in 0..N {
            let a = HazardPointer::new_in(&domain);
            let b = HazardPointer::new_in(&domain);
            let c = HazardPointer::new_in(&domain);
            drop((a, b, c));
        }
        assert_eq!(domain.slot_count(), 3);
    });
}

/// Slots a thread released (more than its cache keeps, or all of them when it exits)
/// are reused by other threads.
#[test]
fn hazard_slots_are_reused_across_threads() {
    let domain = hazard::Domain::new();
    on_thread(|| {
        let hps: Vec<_> = (0..20).map(|_| HazardPointer::new_in(&domain)).collect();
        drop(hps);
    });
    assert_eq!(domain.slot_count(), 20);
    for _ in 0..if cfg!(miri) { 3 } else { 10 } {
        on_thread(|| {
            let hps: Vec<_> = (0..20).map(|_| HazardPointer::new_in(&domain)).collect();
            drop(hps);
        });
    }
    assert_eq!(domain.slot_count(), 20);
    // Two threads at once need two sets.
    thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let (tx2, rx2) = std::sync::mpsc::channel::<()>();
        let domain = &domain;
        let t = s.spawn(move || {
            let hps: Vec<_> = (0..20).map(|_| HazardPointer::new_in(domain)).collect();
            tx.send(()).unwrap();
            let _ = rx2.recv();
            drop(hps);
        });
        rx.recv().unwrap();
        let hps: Vec<_> = (0..5).map(|_| HazardPointer::new_in(domain)).collect();
        tx2.send(()).unwrap();
        drop(hps);
        t.join().unwrap();
    });
    assert_eq!(domain.slot_count(), 25);
}

#[test]
fn try_protect_validates() {
    static C: Counters = Counters::new();
    let domain = hazard::Domain::new();
    let a = Obj::new(&C);
    let b = Obj::new(&C);
    let src = AtomicPtr::new(a);
    let mut hp = HazardPointer::new_in(&domain);
    assert!(std::ptr::eq(hp.domain(), &domain));
    assert_eq!(hp.try_protect(a, &src), Ok(a));
    assert_eq!(hp.try_protect(b, &src), Err(a), "src holds a, not b");
    src.store(b, Ordering::Release);
    assert_eq!(hp.protect(&src), b);
    let null = AtomicPtr::new(std::ptr::null_mut::<Obj>());
    assert!(hp.protect(&null).is_null());
    drop(hp);
    drop(domain);
    // SAFETY: never retired; nothing else can reach them.
    unsafe {
        Obj::free(a);
        Obj::free(b);
    }
    C.assert_balanced(0);
}

#[test]
fn retire_with_calls_the_custom_reclaimer_once() {
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    /// # Safety
    /// `p` is a `Box<u64>` pointer.
    unsafe fn reclaim(p: *mut u64) {
        CALLS.fetch_add(1, SeqCst);
        // SAFETY: per the contract, `p` is a `Box<u64>`.
        drop(unsafe { Box::from_raw(p) });
    }
    let domain = hazard::Domain::new();
    on_thread(|| {
        for i in 0..10u64 {
            let p = Box::into_raw(Box::new(i));
            // SAFETY: never shared; `reclaim` frees exactly a Box<u64>, on any thread.
            unsafe { domain.retire_with(p, reclaim) };
        }
        // Below the threshold nothing was scanned yet, except under miri where the
        // threshold is 4; the scan frees all the rest.
        let before = CALLS.load(SeqCst);
        assert!(before < 10);
        assert_eq!(domain.eager_reclaim(), 10 - before);
        assert_eq!(domain.eager_reclaim(), 0);
    });
    assert_eq!(CALLS.load(SeqCst), 10);
}

/// A thread retires an object the main thread protects and exits: the object is left
/// to the domain as an orphan, and freed by the main thread's scan once it resets.
#[test]
fn orphan_is_adopted_after_the_protector_resets() {
    static C: Counters = Counters::new();
    let domain = hazard::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    let mut hp = HazardPointer::new_in(&domain);
    let p = hp.protect(&shared);
    // SAFETY: protected by `hp`.
    let id = unsafe { Obj::check(p) };
    C.watch(id);
    let p_addr = p.addr();
    on_thread(|| {
        let old = shared.swap(Obj::new(&C), Ordering::AcqRel);
        assert_eq!(old.addr(), p_addr);
        // SAFETY: unlinked by our swap, from Box::into_raw, Obj: Send.
        unsafe { domain.retire(old) };
        assert_eq!(
            domain.eager_reclaim(),
            0,
            "the only retired object is protected"
        );
        // Exits with `old` still protected: it becomes an orphan.
    });
    assert!(!C.watched_freed());
    assert_eq!(domain.eager_reclaim(), 0, "adopted, but still protected");
    // SAFETY: still protected by `hp`.
    assert_eq!(unsafe { Obj::check(p) }, id);
    C.allow_free();
    hp.reset();
    assert_eq!(domain.eager_reclaim(), 1);
    assert!(C.watched_freed());
    assert!(!C.violation());
    assert_eq!(C.live(), 1);
    drop(hp);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

/// A leaked hazard pointer protects its object for as long as the domain lives (every
/// scan, including the exiting thread's, keeps it); dropping the domain frees it.
#[test]
fn leaked_hazard_pointer_holds_until_the_domain_drops() {
    static C: Counters = Counters::new();
    let domain = hazard::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    on_thread(|| {
        let mut hp = HazardPointer::new_in(&domain);
        let p = hp.protect(&shared);
        // SAFETY: protected by `hp`.
        let id = unsafe { Obj::check(p) };
        C.watch(id);
        std::mem::forget(hp);
        let old = shared.swap(Obj::new(&C), Ordering::AcqRel);
        // SAFETY: unlinked by our swap, from Box::into_raw, Obj: Send.
        unsafe { domain.retire(old) };
        assert_eq!(domain.eager_reclaim(), 0);
    });
    // The exited thread scanned and left the still-protected object as an orphan.
    assert_eq!(C.live(), 2);
    on_thread(|| assert_eq!(domain.eager_reclaim(), 0));
    assert_eq!(C.live(), 2);
    assert!(!C.violation());
    C.allow_free();
    drop(domain);
    assert_eq!(C.live(), 1, "dropping the domain frees its orphans");
    assert!(C.watched_freed());
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}
