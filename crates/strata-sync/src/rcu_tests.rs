//! Unit tests and loom models of [`crate::rcu`].
//!
//! The loom models (every `loom_*` test) run under `--cfg strata_loom` with an explicit
//! epoch or hazard domain, and once as plain tests otherwise. Their values are
//! [`Probe`]s: a probe's drop poisons its payload through a loom `UnsafeCell` and counts
//! itself in a side table, so loom reports a drop that is not ordered after a reader's
//! access (a use after free) as a causality violation, and a model can ask whether the
//! value it holds was dropped without touching it (readers look a probe up by address).
//! A probe's payload is written when it is created, so a reader that sees a probe whose
//! publication did not synchronize with it is reported too: that is what the models
//! marked `should_panic` under `--cfg strata_weaken` catch (the publishing `AcqRel`
//! becomes `Acquire`; the same cfg also weakens strata-reclaim's schemes).
//!
//! What each model was shown to catch (planted one at a time, in the normal loom run):
//! - the publishing read-modify-writes weakened to `Acquire` (this module's
//!   `strata_weaken` alone): `loom_rcu_update_vs_update` and
//!   `loom_rcu_compare_and_swap_race` report a causality violation. The two
//!   load-vs-store models read values created before the writer's next pin, whose fence
//!   loom treats as synchronizing, so they catch it only together with the reclaim
//!   schemes' own weakening (which they do catch);
//! - the old count dropped at once instead of retired: both load-vs-store models and
//!   the `load_full` model fail (and miri reports a use after free in
//!   `default_schemes_guard_survives_replacements`);
//! - under hazard pointers, the old count retired as a `Box<Arc<T>>` (at an address
//!   other than the protected one): `loom_rcu_hazard_load_vs_store_and_reclaim` reports
//!   a causality violation, and miri a use after free in
//!   `hazard_guard_survives_replacements_and_drops_all`.

use std::sync::Arc;

use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use strata_primitives::{model, thread};
use strata_reclaim::{epoch, hazard};

use crate::rcu::{Guard, RcuCell, RcuReclaim};

/// How many probes a model may create.
const PROBES: usize = 4;

/// The side table: drops per probe id.
struct Log {
    drops: [AtomicUsize; PROBES],
}

impl Log {
    fn new() -> Arc<Log> {
        Arc::new(Log {
            drops: core::array::from_fn(|_| AtomicUsize::new(0)),
        })
    }

    fn drops(&self, id: usize) -> usize {
        self.drops[id].load(SeqCst)
    }
}

/// A value whose drop is visible to loom (see the module docs).
struct Probe {
    id: usize,
    payload: UnsafeCell<usize>,
    log: Arc<Log>,
}

// SAFETY: the payload is written only at creation and in `drop` (with `&mut self`);
// shared access only reads it. Whether those are ordered is what loom checks.
unsafe impl Sync for Probe {}

impl Probe {
    fn new(id: usize, log: &Arc<Log>) -> Arc<Probe> {
        Arc::new(Probe {
            id,
            payload: UnsafeCell::new(100 + id),
            log: Arc::clone(log),
        })
    }

    /// Reads the payload; loom checks this access against the creation and the
    /// poisoning write in `drop`.
    fn read(&self) -> usize {
        // SAFETY: only `drop` writes after creation; the property under test is that it
        // does not run concurrently with a read.
        self.payload.with(|p| unsafe { *p })
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        // SAFETY: `&mut self`; loom checks that no read races with this write.
        self.payload.with_mut(|p| unsafe { *p = usize::MAX });
        self.log.drops[self.id].fetch_add(1, SeqCst);
    }
}

/// The id of the probe at `addr` among `addrs` (found without touching it).
fn id_at(addrs: &[usize], addr: *const Probe) -> usize {
    addrs
        .iter()
        .position(|&a| a == addr as usize)
        .expect("the cell holds a probe of this model")
}

/// Checks, through a guard, that the guarded probe is not dropped and reads right.
fn check_guard<R: RcuReclaim>(g: &Guard<'_, Probe, R>, addrs: &[usize], log: &Log) -> usize {
    let id = id_at(addrs, Guard::as_ptr(g));
    assert_eq!(
        log.drops(id),
        0,
        "use after free: probe {id} dropped while a guard holds it"
    );
    assert_eq!(g.read(), 100 + id, "probe {id} read wrong");
    id
}

/// Runs `flush` on the main thread's handle of `domain` a few times, so that what was
/// retired expires (the epoch takes two steps) when no reader holds it back. Used
/// while other threads run, to race reclamation with them.
fn drive(domain: &epoch::Domain) {
    for _ in 0..3 {
        domain.pin().flush();
    }
}

/// After the other threads are joined: waits for a grace period and collects until
/// `done()`. A loop, because loom's `join` returns before the joined thread's
/// thread-local handle is dropped (that drop hands the thread's partial bag of garbage
/// to the domain and collects, racing with this thread).
fn settle(domain: &epoch::Domain, done: impl Fn() -> bool) {
    let h = domain.register();
    while !done() {
        h.synchronize().unwrap();
        domain.pin().flush();
        thread::yield_now();
    }
}

/// Epochs: a reader holding a guard reads a value that a concurrent `store` replaces
/// and the writer then drives to reclamation: the value is never dropped under the
/// guard, and every value is dropped exactly once by the end.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rcu_epoch_load_vs_store_and_reclaim() {
    model(|| {
        let log = Log::new();
        let domain = epoch::Domain::new();
        let (p0, p1) = (Probe::new(0, &log), Probe::new(1, &log));
        let addrs = [Arc::as_ptr(&p0) as usize, Arc::as_ptr(&p1) as usize];
        let cell = Arc::new(RcuCell::from_arc_with_reclaim(p0, domain.clone()));

        let reader = {
            let (cell, log) = (Arc::clone(&cell), Arc::clone(&log));
            thread::spawn(move || {
                let g = cell.load();
                check_guard(&g, &addrs, &log);
                thread::yield_now();
                check_guard(&g, &addrs, &log)
            })
        };
        cell.store_arc(p1);
        drive(&domain);
        let seen = reader.join().unwrap();
        assert!(seen <= 1);
        settle(&domain, || log.drops(0) > 0);
        assert_eq!(log.drops(0), 1, "the replaced value is reclaimed once");
        assert_eq!(log.drops(1), 0, "the current value is alive");
        drop(cell);
        assert_eq!(log.drops(1), 1, "dropping the cell drops its value");
    });
}

/// Hazard pointers: the same, with the reader's protection a hazard slot and the
/// writer scanning. This is the model that catches retiring the old count at an
/// address other than the protected one (a `Box<Arc<T>>`): the scan would not see the
/// hazard and would drop the value under the reader.
#[test]
#[cfg_attr(strata_weaken, should_panic)]
fn loom_rcu_hazard_load_vs_store_and_reclaim() {
    model(|| {
        let log = Log::new();
        let (p0, p1) = (Probe::new(0, &log), Probe::new(1, &log));
        let addrs = [Arc::as_ptr(&p0) as usize, Arc::as_ptr(&p1) as usize];
        let cell = Arc::new(RcuCell::from_arc_with_reclaim(p0, hazard::Domain::new()));

        let reader = {
            let (cell, log) = (Arc::clone(&cell), Arc::clone(&log));
            thread::spawn(move || {
                let g = cell.load();
                check_guard(&g, &addrs, &log);
                thread::yield_now();
                check_guard(&g, &addrs, &log)
            })
        };
        cell.store_arc(p1);
        cell.reclaim().eager_reclaim();
        let seen = reader.join().unwrap();
        assert!(seen <= 1);
        cell.reclaim().eager_reclaim();
        assert_eq!(log.drops(0), 1, "the replaced value is reclaimed once");
        assert_eq!(log.drops(1), 0, "the current value is alive");
        drop(cell);
        assert_eq!(log.drops(1), 1, "dropping the cell drops its value");
    });
}

/// Two concurrent `update(+1)`s: no update is lost (the value ends at +2), each
/// returns a distinct previous value, and the replaced values are each dropped once.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rcu_update_vs_update() {
    model(|| {
        let log = Log::new();
        let domain = epoch::Domain::new();
        let cell = Arc::new(RcuCell::from_arc_with_reclaim(
            Probe::new(0, &log),
            domain.clone(),
        ));
        let incr = {
            let log = Arc::clone(&log);
            move |p: &Probe| {
                let n = p.read() - 100;
                Probe {
                    id: n + 1,
                    payload: UnsafeCell::new(100 + n + 1),
                    log: Arc::clone(&log),
                }
            }
        };
        let other = {
            let (cell, incr) = (Arc::clone(&cell), incr.clone());
            thread::spawn(move || cell.update(incr).read())
        };
        let mine = cell.update(incr).read();
        let theirs = other.join().unwrap();
        let mut prev = [mine, theirs];
        prev.sort_unstable();
        assert_eq!(
            prev,
            [100, 101],
            "each update saw a distinct previous value"
        );
        assert_eq!(cell.load().read(), 102, "no update was lost");
        settle(&domain, || log.drops(0) > 0 && log.drops(1) > 0);
        // A failed attempt's value has the id of a value that also got published
        // (1); so ids 0 and 1 are dropped at least once, 2 never.
        assert_eq!(log.drops(0), 1);
        assert!(log.drops(1) >= 1);
        assert_eq!(log.drops(2), 0);
        drop(cell);
        assert_eq!(log.drops(2), 1);
    });
}

/// `load_full` taken by a reader outlives two replacements and their reclamation:
/// the reader's Arc keeps its value alive and intact; it is dropped exactly once, when
/// the reader's Arc goes.
#[test]
#[cfg_attr(
    strata_weaken,
    ignore = "the weakened epoch scheme frees the value under load_full's count increment: a heap corruption, not a report"
)]
fn loom_rcu_load_full_outlives_replacement() {
    model(|| {
        let log = Log::new();
        let domain = epoch::Domain::new();
        let probes: Vec<Arc<Probe>> = (0..3).map(|i| Probe::new(i, &log)).collect();
        let addrs: Vec<usize> = probes.iter().map(|p| Arc::as_ptr(p) as usize).collect();
        let mut probes = probes.into_iter();
        let cell = Arc::new(RcuCell::from_arc_with_reclaim(
            probes.next().unwrap(),
            domain.clone(),
        ));

        let reader = {
            let cell = Arc::clone(&cell);
            thread::spawn(move || {
                let full = cell.load_full();
                assert!(full.read() >= 100, "a loaded value reads as published");
                full
            })
        };
        let previous = cell.swap(probes.next().unwrap());
        assert_eq!(previous.read(), 100);
        drop(previous);
        cell.store_arc(probes.next().unwrap());
        drive(&domain);
        let full = reader.join().unwrap();
        let id = id_at(&addrs, Arc::as_ptr(&full));
        // Every replaced value other than the reader's is reclaimed; the reader's (if it
        // is a replaced one) lost the cell's count but keeps its own.
        settle(&domain, || (0..2).all(|i| i == id || log.drops(i) > 0));
        assert_eq!(
            log.drops(id),
            0,
            "a load_full value was dropped under its Arc"
        );
        assert_eq!(full.read(), 100 + id);
        drop(full);
        // Whichever the reader got, the two replaced values are now dropped, once.
        for i in 0..2 {
            assert_eq!(
                log.drops(i),
                1,
                "replaced value {i} is dropped exactly once"
            );
        }
        assert_eq!(log.drops(2), 0);
        drop(cell);
        assert_eq!(log.drops(2), 1);
    });
}

/// Two `compare_and_swap`s from the same expected value: exactly one wins and returns
/// the expected value; the other fails, and reports the winner's value as current
/// and its own value handed back.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_rcu_compare_and_swap_race() {
    model(|| {
        let log = Log::new();
        let domain = epoch::Domain::new();
        let cell = Arc::new(RcuCell::from_arc_with_reclaim(
            Probe::new(0, &log),
            domain.clone(),
        ));
        let expected = cell.load_full();
        // Each attempt holds a guard while it builds its value, so the value is created
        // inside the pinned section (after the pin's fence, which loom treats as
        // synchronizing): only the publishing read-modify-write can order its creation
        // before the other thread's read of it.
        let attempt = {
            let log = Arc::clone(&log);
            move |cell: &RcuCell<Probe, epoch::Domain>, expected: &Arc<Probe>, id: usize| {
                let pinned = cell.load();
                let result = match cell.compare_and_swap(expected, Probe::new(id, &log)) {
                    Ok(prev) => {
                        assert!(Arc::ptr_eq(&prev, expected));
                        (true, prev.read())
                    }
                    Err(e) => {
                        assert_eq!(e.new.id, id, "the new value is handed back");
                        (false, e.current.read())
                    }
                };
                drop(pinned);
                result
            }
        };
        let other = {
            let (cell, expected, attempt) =
                (Arc::clone(&cell), Arc::clone(&expected), attempt.clone());
            thread::spawn(move || attempt(&cell, &expected, 2))
        };
        let mine = attempt(&cell, &expected, 1);
        let theirs = other.join().unwrap();
        assert!(mine.0 ^ theirs.0, "exactly one compare_and_swap wins");
        let (winner, loser) = if mine.0 { (1, theirs) } else { (2, mine) };
        assert_eq!(loser.1, 100 + winner, "the loser sees the winner's value");
        assert_eq!(cell.load().read(), 100 + winner);
        drop(expected);
        settle(&domain, || log.drops(0) > 0);
        assert_eq!(log.drops(0), 1);
        assert_eq!(log.drops(3 - winner), 1, "the loser's value is dropped");
        drop(cell);
        assert_eq!(log.drops(winner), 1);
    });
}

// ---------------------------------------------------------------------------------
// Unit tests (single-threaded semantics, over every scheme).

#[cfg(not(strata_loom))]
mod unit {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

    use strata_reclaim::epoch::{self, Epoch};
    use strata_reclaim::hazard::{self, Hazard};

    use crate::rcu::{Guard, RcuCell, RcuReclaim};

    /// A heap-owning value that counts its drops in a per-test counter.
    #[derive(Debug)]
    struct Counted {
        data: Vec<u64>,
        drops: &'static AtomicUsize,
    }

    impl Counted {
        fn new(n: u64, drops: &'static AtomicUsize) -> Counted {
            Counted {
                data: vec![n; 1 + (n % 5) as usize],
                drops,
            }
        }
        fn value(&self) -> u64 {
            assert!(self.data.iter().all(|&x| x == self.data[0]), "torn value");
            assert_eq!(self.data.len(), 1 + (self.data[0] % 5) as usize);
            self.data[0]
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.drops.fetch_add(1, SeqCst);
        }
    }

    /// The operations' results, on one scheme.
    fn semantics<R: RcuReclaim>(reclaim: R) {
        let cell = RcuCell::with_reclaim(1u64, reclaim);
        assert_eq!(*cell.load(), 1);
        let one = cell.load_full();
        assert_eq!(*one, 1);
        assert!(cell.is(&one));
        {
            let g = cell.load();
            assert!(Guard::ptr_eq(&g, &one));
            assert_eq!(Guard::as_ptr(&g), Arc::as_ptr(&one));
            assert!(Arc::ptr_eq(&Guard::to_arc(&g), &one));
            assert_eq!(format!("{g:?} {g}"), "1 1");
        }
        cell.store(2);
        assert_eq!(*cell.load(), 2);
        assert!(!cell.is(&one));
        assert_eq!(*one, 1, "a loaded Arc is unaffected by a store");

        let three = Arc::new(3);
        let prev = cell.swap(Arc::clone(&three));
        assert_eq!(*prev, 2);
        assert!(cell.is(&three));

        let prev = cell.update(|v| v * 10);
        assert!(Arc::ptr_eq(&prev, &three));
        assert_eq!(*cell.load(), 30);

        // compare_and_swap: a stale Arc fails and hands back the new value; a guard of
        // the current value succeeds.
        let err = cell.compare_and_swap(&three, Arc::new(4)).unwrap_err();
        assert_eq!((*err.current, *err.new), (30, 4));
        let g = cell.load();
        let prev = cell.compare_and_swap(&g, Arc::new(5)).unwrap();
        assert!(Guard::ptr_eq(&g, &prev));
        assert_eq!(*g, 30, "the guard still reads the replaced value");
        drop(g);
        assert_eq!(*cell.load(), 5);
        cell.store_arc(Arc::clone(&three));
        assert!(Arc::ptr_eq(&cell.into_inner(), &three));
    }

    #[test]
    fn semantics_default_epoch() {
        semantics(Epoch);
    }

    #[test]
    fn semantics_epoch_domain() {
        semantics(epoch::Domain::new());
    }

    #[test]
    fn semantics_default_hazard() {
        semantics(Hazard);
    }

    #[test]
    fn semantics_hazard_domain() {
        semantics(hazard::Domain::new());
    }

    #[test]
    fn constructors_and_traits() {
        let c: RcuCell<String> = RcuCell::default();
        assert_eq!(*c.load(), "");
        assert_eq!(format!("{c:?}"), "RcuCell { value: \"\" }");
        let c: RcuCell<u8, Hazard> = RcuCell::from(7);
        assert_eq!(*c.load(), 7);
        let a = Arc::new(8u8);
        let c: RcuCell<u8> = RcuCell::from(Arc::clone(&a));
        assert!(c.is(&a));
        assert_eq!(Arc::strong_count(&a), 2, "the cell owns one count");
        drop(c);
        assert_eq!(Arc::strong_count(&a), 1, "dropping the cell gives it back");
        let c = RcuCell::from_arc(Arc::clone(&a));
        assert!(Arc::ptr_eq(&c.into_inner(), &a));
        assert_eq!(Arc::strong_count(&a), 1, "into_inner moves the count out");
        assert_eq!(*RcuCell::new(9).into_inner(), 9);
    }

    /// The count the cell owns is given up through the scheme, not at once: a guard
    /// on this thread keeps reading a replaced value across many replacements and
    /// scans, and every value is dropped exactly once in the end. Under hazard pointers
    /// this is what fails (a use after free under miri) if the old count is retired at
    /// an address other than the protected one.
    fn guard_survives_replacements<R: RcuReclaim>(
        reclaim: R,
        drops: &'static AtomicUsize,
        flush: impl Fn(&R),
    ) {
        let cell = RcuCell::with_reclaim(Counted::new(0, drops), reclaim);
        let g = cell.load();
        let n = if cfg!(miri) { 20 } else { 300 };
        for i in 1..=n {
            cell.store(Counted::new(i, drops));
            flush(cell.reclaim());
            assert_eq!(g.value(), 0, "the guarded value is intact after {i} stores");
        }
        let full = cell.load_full();
        drop(g);
        for _ in 0..n {
            cell.update(|c| Counted::new(c.value() + 1, drops));
            flush(cell.reclaim());
        }
        assert_eq!(full.value(), n);
        assert_eq!(cell.load().value(), 2 * n);
        drop(cell);
        drop(full);
    }

    /// Runs `f` on a fresh thread and joins it, so that the thread-local handles it
    /// registered (which keep explicit domains alive) are gone afterwards.
    fn on_thread(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(f).join().unwrap();
    }

    #[test]
    fn hazard_guard_survives_replacements_and_drops_all() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        on_thread(|| {
            guard_survives_replacements(hazard::Domain::new(), &DROPS, |d| {
                d.eager_reclaim();
            })
        });
        let n = if cfg!(miri) { 20 } else { 300 };
        assert_eq!(
            DROPS.load(SeqCst),
            2 * n as usize + 1,
            "every value dropped once"
        );
    }

    #[test]
    fn epoch_guard_survives_replacements_and_drops_all() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        on_thread(|| {
            guard_survives_replacements(epoch::Domain::new(), &DROPS, |d| d.pin().flush())
        });
        let n = if cfg!(miri) { 20 } else { 300 };
        assert_eq!(
            DROPS.load(SeqCst),
            2 * n as usize + 1,
            "every value dropped once"
        );
    }

    #[test]
    fn default_schemes_guard_survives_replacements() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        guard_survives_replacements(Hazard, &DROPS, |_| {
            hazard::default_domain().eager_reclaim();
        });
        guard_survives_replacements(Epoch, &DROPS, |_| epoch::flush());
    }

    /// `update`'s closure runs again when another writer got in between, and the value
    /// it built for the failed attempt is dropped (not leaked, not published).
    #[test]
    fn update_retries_after_interference() {
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        on_thread(|| {
            let cell = RcuCell::with_reclaim(Counted::new(0, &DROPS), hazard::Domain::new());
            let mut runs = 0;
            let prev = cell.update(|c| {
                runs += 1;
                if runs == 1 {
                    // Another writer replaces the value under this update.
                    cell.store(Counted::new(10, &DROPS));
                }
                Counted::new(c.value() + 1, &DROPS)
            });
            assert_eq!(runs, 2, "the closure ran again on the newer value");
            assert_eq!(prev.value(), 10);
            assert_eq!(cell.load().value(), 11);
            // Dropped so far: the failed attempt's value (1) only; 0 is retired.
            drop(prev);
            drop(cell);
        });
        // 0, 10, the failed 1, and 11: each dropped once.
        assert_eq!(DROPS.load(SeqCst), 4);
    }
}
