//! Readers protect and read a shared object while writers replace it and retire the old
//! one, under each scheme, directly and through the `Reclaim` trait.
//!
//! Every object carries a magic word and a boxed canary that its `Drop` poisons, so a
//! reader that reads a freed object fails its check (or, under miri, is reported as a
//! use-after-free; a double free frees the canary twice). At the end every object but
//! the one still in the shared pointer has been dropped exactly once.

mod common;

use std::sync::atomic::AtomicBool;
use std::thread;
use std::time::{Duration, Instant};

use common::{Counters, Obj, keep_going, read_and_hold};
use strata_primitives::sync::atomic::{AtomicPtr, Ordering};
use strata_reclaim::hazard::HazardPointer;
use strata_reclaim::{Protect, Reclaim, epoch, hazard};

const READERS: usize = if cfg!(miri) { 2 } else { 4 };
const WRITERS: usize = if cfg!(miri) { 1 } else { 2 };
/// Replacements per writer (an upper bound; the time budget usually ends the run).
const WRITES: usize = if cfg!(miri) { 50 } else { 2_000_000 };
/// Ten tests, two at a time (libtest runs one per core): about one second in all.
const BUDGET: Duration = Duration::from_millis(200);

/// Runs `READERS` threads of `reader` until every writer has finished, and `WRITERS`
/// threads each calling `write` up to `WRITES` times or until the budget is spent.
/// Every thread is joined explicitly, so its thread-locals (epoch handles, hazard
/// registrations) have been dropped when this returns. Returns (reads, writes).
fn drive<RD, WR>(reader: RD, write: WR) -> (usize, usize)
where
    RD: Fn(usize, &AtomicBool) -> usize + Sync,
    WR: Fn() + Sync,
{
    drive_n(WRITES, reader, write)
}

/// [`drive`] with `writes` replacements per writer.
fn drive_n<RD, WR>(writes: usize, reader: RD, write: WR) -> (usize, usize)
where
    RD: Fn(usize, &AtomicBool) -> usize + Sync,
    WR: Fn() + Sync,
{
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    thread::scope(|s| {
        let (reader, stop) = (&reader, &stop);
        let readers: Vec<_> = (0..READERS)
            .map(|slot| s.spawn(move || reader(slot, stop)))
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                s.spawn(|| {
                    let mut i = 0;
                    while keep_going(i, writes, start, BUDGET) {
                        write();
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        // Join the writers before propagating a panic, so the readers always stop.
        let writes: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let reads: Vec<_> = readers.into_iter().map(|r| r.join()).collect();
        let writes: usize = writes.into_iter().map(|w| w.unwrap()).sum();
        let reads: usize = reads.into_iter().map(|r| r.unwrap()).sum();
        (reads, writes)
    })
}

/// Loops `read_once` until `stop`, at least once.
fn read_until(stop: &AtomicBool, mut read_once: impl FnMut()) -> usize {
    let mut n = 0;
    loop {
        read_once();
        n += 1;
        if stop.load(std::sync::atomic::Ordering::Relaxed) {
            return n;
        }
    }
}

#[test]
fn epoch_readers_and_writers() {
    static C: Counters = Counters::new();
    let domain = epoch::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    let (reads, writes) = drive(
        |slot, stop| {
            read_until(stop, || {
                let guard = domain.pin();
                let p = shared.load(Ordering::Acquire);
                // SAFETY: `p` was reachable after we pinned, so it is not freed before
                // `guard` drops.
                unsafe { read_and_hold(&C, slot, p) };
                // A nested pin and a second read through it.
                let inner = domain.pin();
                let q = shared.load(Ordering::Acquire);
                // SAFETY: as above; both guards are alive.
                unsafe { Obj::check(q) };
                // SAFETY: `p` is still protected by `guard`.
                unsafe { Obj::check(p) };
                drop(inner);
                drop(guard);
            })
        },
        || {
            let guard = domain.pin();
            let old = shared.swap(Obj::new(&C), Ordering::AcqRel);
            // SAFETY: `old` came from Box::into_raw, the swap unlinked it and only we
            // got it back, and `Obj` is Send.
            unsafe { guard.defer_destroy(old) };
        },
    );
    assert!(reads >= READERS && writes >= WRITERS);
    assert_eq!(C.created(), writes + 1);
    // The writers' threads handed their partial bags to the domain when they exited;
    // dropping the last handle to the domain runs everything left.
    drop(domain);
    C.assert_balanced(1);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

/// Writers for the epoch tests: replace the shared object, defer destroying the old.
/// With `flush`, the writer also collects at every write, so that collections meet the
/// readers' moves (repin, quiescent) often.
fn epoch_write(domain: &epoch::Domain, c: &'static Counters, shared: &AtomicPtr<Obj>, flush: bool) {
    let guard = domain.pin();
    let old = shared.swap(Obj::new(c), Ordering::AcqRel);
    // SAFETY: `old` came from Box::into_raw, the swap unlinked it and only we got it
    // back, and `Obj` is Send.
    unsafe { guard.defer_destroy(old) };
    if flush {
        guard.flush();
    }
}

/// Readers keep one guard for their whole run and `repin` it after each read: what
/// they read before a repin must still be read before it is freed.
#[test]
fn epoch_readers_that_repin() {
    static C: Counters = Counters::new();
    let domain = epoch::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    let (reads, writes) = drive(
        |slot, stop| {
            let handle = domain.register();
            let mut guard = handle.pin();
            read_until(stop, || {
                let p = shared.load(Ordering::Acquire);
                // SAFETY: loaded after the last repin, so protected until the next.
                unsafe { read_and_hold(&C, slot, p) };
                guard.repin();
            })
        },
        || epoch_write(&domain, &C, &shared, cfg!(miri)),
    );
    assert!(reads >= READERS);
    assert_eq!(C.created(), writes + 1);
    drop(domain);
    C.assert_balanced(1);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

/// QSBR readers: online for their whole run, announcing a quiescent state after each
/// read (no guards at all).
#[test]
fn qsbr_readers_announce_quiescent_states() {
    static C: Counters = Counters::new();
    let domain = epoch::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    let (reads, writes) = drive(
        |slot, stop| {
            let handle = domain.register();
            handle.online().unwrap();
            let n = read_until(stop, || {
                let p = shared.load(Ordering::Acquire);
                // SAFETY: loaded after the last quiescent state, while online.
                unsafe { read_and_hold(&C, slot, p) };
                handle.quiescent().unwrap();
            });
            handle.offline().unwrap();
            n
        },
        || epoch_write(&domain, &C, &shared, cfg!(miri)),
    );
    assert!(reads >= READERS);
    assert_eq!(C.created(), writes + 1);
    drop(domain);
    C.assert_balanced(1);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

/// Many registered but idle participants make every collection's scan of the
/// participants long, so collections overlap and a collector's view of the epoch is
/// often out of date by the time it runs the expired bags: it must still leave alone
/// the bags sealed in newer epochs. The busy threads register first, so that the scans
/// reach them last. Writers collect at every write.
#[test]
fn epoch_overlapping_collections_with_idle_participants() {
    static C: Counters = Counters::new();
    const IDLE: usize = if cfg!(miri) { 16 } else { 1000 };
    const READERS: usize = if cfg!(miri) { 2 } else { 3 };
    const WRITERS: usize = if cfg!(miri) { 1 } else { 3 };
    let domain = epoch::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    let (stop, go) = (AtomicBool::new(false), AtomicBool::new(false));
    let (registered, wait_registered) = std::sync::mpsc::channel::<()>();
    let (domain_ref, shared_ref, stop_ref, go_ref) = (&domain, &shared, &stop, &go);
    let wait_go = move || {
        while !go_ref.load(std::sync::atomic::Ordering::SeqCst) {
            thread::yield_now();
        }
    };
    let (reads, writes) = thread::scope(|s| {
        let readers: Vec<_> = (0..READERS)
            .map(|slot| {
                let registered = registered.clone();
                s.spawn(move || {
                    let handle = domain_ref.register();
                    registered.send(()).unwrap();
                    wait_go();
                    read_until(stop_ref, || {
                        let guard = handle.pin();
                        let p = shared_ref.load(Ordering::Acquire);
                        // SAFETY: `p` was reachable after we pinned.
                        unsafe { read_and_hold(&C, slot, p) };
                        drop(guard);
                    })
                })
            })
            .collect();
        let writers: Vec<_> = (0..WRITERS)
            .map(|_| {
                let registered = registered.clone();
                s.spawn(move || {
                    let handle = domain_ref.register();
                    registered.send(()).unwrap();
                    wait_go();
                    let start = Instant::now();
                    let mut i = 0;
                    while keep_going(i, WRITES, start, BUDGET) {
                        let guard = handle.pin();
                        let old = shared_ref.swap(Obj::new(&C), Ordering::AcqRel);
                        // SAFETY: `old` came from Box::into_raw, the swap unlinked it and
                        // only we got it back, and `Obj` is Send.
                        unsafe { guard.defer_destroy(old) };
                        guard.flush();
                        i += 1;
                    }
                    i
                })
            })
            .collect();
        drop(registered);
        for _ in 0..READERS + WRITERS {
            wait_registered.recv().unwrap();
        }
        let idle: Vec<_> = (0..IDLE).map(|_| domain.register()).collect();
        go.store(true, std::sync::atomic::Ordering::SeqCst);
        let writes: Vec<_> = writers.into_iter().map(|w| w.join()).collect();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let reads: Vec<_> = readers.into_iter().map(|r| r.join()).collect();
        drop(idle);
        let writes: usize = writes.into_iter().map(|w| w.unwrap()).sum();
        let reads: usize = reads.into_iter().map(|r| r.unwrap()).sum();
        (reads, writes)
    });
    assert!(reads >= READERS);
    assert_eq!(
        C.early_frees(),
        0,
        "an object was freed while a pinned reader held it"
    );
    assert_eq!(C.created(), writes + 1);
    drop(domain);
    C.assert_balanced(1);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

/// Frees what the exited threads left in `domain` (their orphans), from a fresh thread
/// so that the test thread never registers with the domain.
fn hazard_reclaim_all(domain: &hazard::Domain) -> usize {
    thread::scope(|s| s.spawn(|| domain.eager_reclaim()).join().unwrap())
}

#[test]
fn hazard_readers_and_writers() {
    static C: Counters = Counters::new();
    let domain = hazard::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    let (reads, writes) = drive(
        |slot, stop| {
            let mut hp = HazardPointer::new_in(&domain);
            let mut second = HazardPointer::new_in(&domain);
            read_until(stop, || {
                let p = hp.protect(&shared);
                // SAFETY: `p` is protected by `hp`.
                unsafe { read_and_hold(&C, slot, p) };
                let q = second.protect(&shared);
                // SAFETY: `q` is protected by `second`, `p` still by `hp`.
                unsafe { Obj::check(q) };
                // SAFETY: as above.
                unsafe { Obj::check(p) };
                hp.reset();
                second.reset();
            })
        },
        || {
            let old = shared.swap(Obj::new(&C), Ordering::AcqRel);
            // SAFETY: `old` came from Box::into_raw, the swap unlinked it and only we
            // got it back, and `Obj` is Send.
            unsafe { domain.retire(old) };
        },
    );
    assert!(reads >= READERS && writes >= WRITERS);
    assert_eq!(C.created(), writes + 1);
    // Exited writers scanned and left only what was still protected then; nothing is
    // protected now, so one scan frees every remaining retired object.
    hazard_reclaim_all(&domain);
    C.assert_balanced(1);
    drop(domain);
    C.assert_balanced(1);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

/// Readers move one hazard pointer from object to object with `protect` alone, with
/// no `reset` in between: a scan that sees the slot's new value may free the previous
/// object at once, so the reads of it must happen before that free. (Under miri, the
/// race detector reports a missing release ordering here.)
#[test]
fn hazard_readers_move_protection_without_reset() {
    static C: Counters = Counters::new();
    let domain = hazard::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    // More writes under miri: the race needs a scan to fall between two moves.
    let (reads, writes) = drive_n(
        if cfg!(miri) { 4 * WRITES } else { WRITES },
        |slot, stop| {
            let mut hp = HazardPointer::new_in(&domain);
            read_until(stop, || {
                let p = hp.protect(&shared);
                // SAFETY: `p` is protected by `hp` until its next `protect`.
                unsafe { read_and_hold(&C, slot, p) };
            })
        },
        || {
            let old = shared.swap(Obj::new(&C), Ordering::AcqRel);
            // SAFETY: `old` came from Box::into_raw, the swap unlinked it and only we
            // got it back, and `Obj` is Send.
            unsafe { domain.retire(old) };
            // Scan at every retire, so that scans meet the readers' moves often.
            domain.eager_reclaim();
        },
    );
    assert!(reads >= READERS);
    assert_eq!(C.created(), writes + 1);
    hazard_reclaim_all(&domain);
    C.assert_balanced(1);
    drop(domain);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

/// The same workload written once against the trait: readers take a guard per read;
/// writers protect the current object, CAS a new one in and retire the old one through
/// the guard that protects it.
fn generic_stress<R: Reclaim>(r: &R, c: &'static Counters, shared: &AtomicPtr<Obj>) -> usize {
    let (reads, writes) = drive(
        |slot, stop| {
            read_until(stop, || {
                let mut g = r.guard();
                let p = g.protect(shared);
                // SAFETY: `p` is protected by `g`.
                unsafe { read_and_hold(c, slot, p) };
                g.clear();
            })
        },
        || {
            let mut g = r.guard();
            loop {
                let old = g.protect(shared);
                let new = Obj::new(c);
                match shared.compare_exchange(old, new, Ordering::AcqRel, Ordering::Acquire) {
                    Ok(_) => {
                        // SAFETY: `old` is still protected by `g`.
                        unsafe { Obj::check(old) };
                        // SAFETY: `old` came from Box::into_raw, our CAS unlinked it, it
                        // is retired once (only the winner of the CAS retires), and
                        // `Obj` is Send.
                        unsafe { g.retire(old) };
                        return;
                    }
                    // SAFETY: `new` was never shared.
                    Err(_) => unsafe { Obj::free(new) },
                }
            }
        },
    );
    assert!(reads >= READERS && writes >= WRITERS);
    writes
}

#[test]
fn generic_epoch_domain() {
    static C: Counters = Counters::new();
    let domain = epoch::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    let writes = generic_stress(&domain, &C, &shared);
    assert!(C.created() > writes);
    drop(domain);
    C.assert_balanced(1);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

#[test]
fn generic_hazard_domain() {
    static C: Counters = Counters::new();
    let domain = hazard::Domain::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    let writes = generic_stress(&domain, &C, &shared);
    assert!(C.created() > writes);
    hazard_reclaim_all(&domain);
    C.assert_balanced(1);
    drop(domain);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

/// The default domains live for the whole process, so their garbage is drained
/// explicitly: a grace period then a collection (epochs), a scan (hazard pointers).
#[test]
fn generic_default_epoch() {
    static C: Counters = Counters::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    generic_stress(&epoch::Epoch, &C, &shared);
    // Each round is a full grace period followed by a collection that runs every bag
    // sealed before it; one round suffices unless another test pins meanwhile.
    for _ in 0..100 {
        if C.dropped() + 1 == C.created() {
            break;
        }
        epoch::synchronize().expect("the test thread is not pinned");
        epoch::flush();
    }
    C.assert_balanced(1);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}

#[test]
fn generic_default_hazard() {
    static C: Counters = Counters::new();
    let shared = AtomicPtr::new(Obj::new(&C));
    generic_stress(&hazard::Hazard, &C, &shared);
    // Orphans of the exited threads may be adopted by another test's scan; retry a
    // bounded number of times until they are all freed.
    for _ in 0..100 {
        if C.dropped() + 1 == C.created() {
            break;
        }
        hazard::default_domain().eager_reclaim();
    }
    C.assert_balanced(1);
    // SAFETY: no thread can reach `shared` any more.
    unsafe { Obj::free(shared.load(Ordering::Relaxed)) };
    C.assert_balanced(0);
}
