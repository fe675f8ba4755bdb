//! Unit tests of the lock-order validator, through a test-local tracked mutex.
//!
//! The graph and the policy are process-wide, so the tests take `SERIAL` and look only
//! at the reports that involve their own (fresh) locks.

use super::*;

/// A mutex tracked by the validator, as Strata's locks are under the `lockdep` feature.
struct Tracked {
    class: LockClass,
    inner: strata_primitives::sync::Mutex<()>,
}

struct TrackedGuard<'a> {
    lock: &'a Tracked,
    _inner: strata_primitives::sync::MutexGuard<'a, ()>,
}

impl Drop for TrackedGuard<'_> {
    fn drop(&mut self) {
        self.lock.class.release();
    }
}

impl Tracked {
    fn new() -> Self {
        Self {
            class: LockClass::new(),
            inner: strata_primitives::sync::Mutex::new(()),
        }
    }

    #[track_caller]
    fn lock(&self) -> TrackedGuard<'_> {
        self.class.before_acquire();
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.class.acquired();
        TrackedGuard {
            lock: self,
            _inner: inner,
        }
    }
}

/// Serializes the tests of this module (std's: it is held around loom models, not in
/// them).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[cfg(not(strata_loom))]
mod threads {
    use super::*;
    use std::sync::Mutex;

    impl Tracked {
        fn id(&self) -> LockId {
            self.class.id()
        }

        /// A try-lock: only `acquired`, no ordering edge.
        #[track_caller]
        fn try_lock(&self) -> Option<TrackedGuard<'_>> {
            let inner = self.inner.try_lock().ok()?;
            self.class.acquired();
            Some(TrackedGuard {
                lock: self,
                _inner: inner,
            })
        }
    }

    /// Runs `f` alone among these tests, with reports collected; returns the reports
    /// that involve any of `ids()` (computed after `f`).
    fn collecting<R>(f: impl FnOnce() -> R) -> R {
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        set_policy(Policy::Collect);
        let _ = take_violations();
        f()
    }

    fn reports_for(ids: &[LockId]) -> Vec<LockOrderViolation> {
        take_violations()
            .into_iter()
            .filter(|v| ids.iter().any(|&id| v.involves(id)))
            .collect()
    }

    fn line_of(site: &Location<'_>) -> (String, u32) {
        (site.file().to_owned(), site.line())
    }

    fn here(line: u32) -> (String, u32) {
        (file!().to_owned(), line)
    }

    #[test]
    fn planted_abba_in_two_threads_that_never_overlap() {
        collecting(|| {
            let a = std::sync::Arc::new(Tracked::new());
            let b = std::sync::Arc::new(Tracked::new());
            let (a1, b1) = (a.clone(), b.clone());
            // First thread: a then b. It finishes before the second starts, so nothing
            // can deadlock in this run.
            let first = std::thread::spawn(move || {
                let _ga = a1.lock();
                let line_a = line!() - 1;
                let _gb = b1.lock();
                let line_b = line!() - 1;
                (line_a, line_b)
            })
            .join()
            .unwrap();
            assert!(reports_for(&[a.id(), b.id()]).is_empty());
            let (a2, b2) = (a.clone(), b.clone());
            let second = std::thread::spawn(move || {
                let _gb = b2.lock();
                let line_b = line!() - 1;
                let _ga = a2.lock();
                let line_a = line!() - 1;
                (line_b, line_a)
            })
            .join()
            .unwrap();
            let reports = reports_for(&[a.id(), b.id()]);
            assert_eq!(reports.len(), 1, "{reports:?}");
            let report = &reports[0];
            assert_eq!(report.locks(), vec![b.id(), a.id()]);
            // Now: holding b (taken on the second thread's first line), acquiring a.
            let now = report.attempt();
            assert_eq!((now.held, now.acquired), (b.id(), a.id()));
            assert_eq!(line_of(now.held_at), here(second.0));
            assert_eq!(line_of(now.acquired_at), here(second.1));
            // Earlier: the first thread held a and acquired b.
            let earlier = &report.edges()[1];
            assert_eq!((earlier.held, earlier.acquired), (a.id(), b.id()));
            assert_eq!(line_of(earlier.held_at), here(first.0));
            assert_eq!(line_of(earlier.acquired_at), here(first.1));
            // The message names both sites.
            let text = report.to_string();
            assert!(
                text.contains(&format!("{}:{}:", file!(), second.1)),
                "{text}"
            );
            assert!(
                text.contains(&format!("{}:{}:", file!(), first.1)),
                "{text}"
            );
        });
    }

    #[test]
    fn three_lock_cycle() {
        collecting(|| {
            let (a, b, c) = (Tracked::new(), Tracked::new(), Tracked::new());
            {
                let _ga = a.lock();
                let _gb = b.lock();
            }
            {
                let _gb = b.lock();
                let _gc = c.lock();
            }
            assert!(reports_for(&[a.id(), b.id(), c.id()]).is_empty());
            {
                let _gc = c.lock();
                let _ga = a.lock();
            }
            let reports = reports_for(&[a.id(), b.id(), c.id()]);
            assert_eq!(reports.len(), 1, "{reports:?}");
            assert_eq!(reports[0].locks(), vec![c.id(), a.id(), b.id()]);
            let edges: Vec<_> = reports[0]
                .edges()
                .iter()
                .map(|e| (e.held, e.acquired))
                .collect();
            assert_eq!(
                edges,
                vec![(c.id(), a.id()), (a.id(), b.id()), (b.id(), c.id())]
            );
        });
    }

    #[test]
    fn consistent_order_across_threads_is_not_reported() {
        collecting(|| {
            let locks: std::sync::Arc<Vec<Tracked>> =
                std::sync::Arc::new((0..4).map(|_| Tracked::new()).collect());
            let workers: Vec<_> = (0..3)
                .map(|t| {
                    let locks = locks.clone();
                    std::thread::spawn(move || {
                        for round in 0..if cfg!(miri) { 3 } else { 50 } {
                            // Always ascending, with varying subsets and re-acquisition.
                            let first = (t + round) % 3;
                            let _g1 = locks[first].lock();
                            let _g2 = locks[3].lock();
                        }
                        let _g0 = locks[0].lock();
                        let _g1 = locks[1].lock();
                        let _g2 = locks[2].lock();
                        let _g3 = locks[3].lock();
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
            let ids: Vec<_> = locks.iter().map(Tracked::id).collect();
            assert!(reports_for(&ids).is_empty());
        });
    }

    #[test]
    fn dropped_lock_takes_its_edges_along() {
        collecting(|| {
            let a = Tracked::new();
            let old_b_id;
            {
                let b = Tracked::new();
                old_b_id = b.id();
                let _ga = a.lock();
                let _gb = b.lock();
                drop(_gb);
                drop(_ga);
                assert!(graph_contains(b.id()));
            }
            assert!(!graph_contains(old_b_id));
            // A new lock, possibly at the same address, gets a new id and no edge.
            let b = Tracked::new();
            assert_ne!(b.id(), old_b_id);
            {
                let _gb = b.lock();
                let _ga = a.lock();
            }
            assert!(reports_for(&[a.id(), b.id(), old_b_id]).is_empty());
        });
    }

    #[test]
    fn release_out_of_order_and_reacquire() {
        collecting(|| {
            let (a, b, c) = (Tracked::new(), Tracked::new(), Tracked::new());
            let ga = a.lock();
            let gb = b.lock();
            // a released first: b stays held.
            drop(ga);
            assert!(!a.class.is_held_by_current_thread());
            assert!(b.class.is_held_by_current_thread());
            // Only b is held now, so this records b -> c and not a -> c.
            let gc = c.lock();
            drop(gb);
            drop(gc);
            assert!(graph_has_edge(a.id(), b.id()));
            assert!(graph_has_edge(b.id(), c.id()));
            assert!(!graph_has_edge(a.id(), c.id()));
            // Re-acquiring in the recorded orders, any number of times, adds nothing.
            for _ in 0..3 {
                let _ga = a.lock();
                let _gb = b.lock();
                drop(_ga);
                let _gc = c.lock();
            }
            assert!(!graph_has_edge(a.id(), c.id()));
            assert!(reports_for(&[a.id(), b.id(), c.id()]).is_empty());
            // c then a closes a -> b -> c -> a: three threads (a then b; b then c; c then
            // a) can deadlock, so it is reported although a was released before c.
            {
                let _gc = c.lock();
                let _ga = a.lock();
            }
            let reports = reports_for(&[a.id(), b.id(), c.id()]);
            assert_eq!(reports.len(), 1, "{reports:?}");
            assert_eq!(reports[0].locks(), vec![c.id(), a.id(), b.id()]);
        });
    }

    #[test]
    fn try_lock_adds_no_edge_but_counts_as_held() {
        collecting(|| {
            let (a, b, c) = (Tracked::new(), Tracked::new(), Tracked::new());
            {
                let _ga = a.lock();
                let _gb = b.try_lock().unwrap();
            }
            // a -> b was not recorded by the try-lock: b then a is fine.
            {
                let _gb = b.lock();
                let _ga = a.lock();
            }
            assert!(reports_for(&[a.id(), b.id()]).is_empty());
            // A lock taken by try-lock is held: blocking on c after it records b -> c.
            {
                let _gb = b.try_lock().unwrap();
                let _gc = c.lock();
            }
            {
                let _gc = c.lock();
                let _gb = b.lock();
            }
            let reports = reports_for(&[b.id(), c.id()]);
            assert_eq!(reports.len(), 1, "{reports:?}");
            assert_eq!(reports[0].locks(), vec![c.id(), b.id()]);
        });
    }

    #[test]
    fn blocking_on_a_held_lock_is_a_self_cycle() {
        collecting(|| {
            let a = Tracked::new();
            let _ga = a.lock();
            let line = line!() - 1;
            // Only the hook: actually locking would deadlock.
            a.class.before_acquire();
            let again = line!() - 1;
            let reports = reports_for(&[a.id()]);
            assert_eq!(reports.len(), 1);
            let edge = reports[0].attempt();
            assert_eq!((edge.held, edge.acquired), (a.id(), a.id()));
            assert_eq!(line_of(edge.held_at), here(line));
            assert_eq!(line_of(edge.acquired_at), here(again));
            assert!(reports[0].to_string().contains("already holds it"));
        });
    }

    #[test]
    fn policies_panic_and_handler() {
        static SEEN: Mutex<Vec<LockId>> = Mutex::new(Vec::new());
        fn note(v: &LockOrderViolation) {
            SEEN.lock().unwrap().push(v.attempt().acquired);
        }
        let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
        let (a, b) = (Tracked::new(), Tracked::new());
        set_policy(Policy::Collect);
        {
            let _ga = a.lock();
            let _gb = b.lock();
        }
        assert!(matches!(set_policy(Policy::Handler(note)), Policy::Collect));
        {
            let _gb = b.lock();
            let _ga = a.lock();
        }
        assert_eq!(SEEN.lock().unwrap().as_slice(), &[a.id()]);
        set_policy(Policy::Panic);
        assert!(matches!(policy(), Policy::Panic));
        let gb = b.lock();
        // The panic comes from the hook, before the thread would block on `a`.
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            a.class.before_acquire();
        }));
        drop(gb);
        set_policy(Policy::Collect);
        let message = caught.unwrap_err();
        let text = message
            .downcast_ref::<String>()
            .expect("a formatted panic message");
        assert!(text.starts_with("lock order violation"), "{text}");
        // The rejected edge was not added: a then b still is the recorded order.
        {
            let _ga = a.lock();
            let _gb = b.lock();
        }
        assert!(reports_for(&[a.id(), b.id()]).is_empty());
    }

    #[test]
    fn class_ids_are_unique_and_lazy() {
        const fn in_a_const() -> LockClass {
            LockClass::new()
        }
        let (x, y) = (in_a_const(), LockClass::default());
        assert!(!graph_contains(x.id()));
        assert_ne!(x.id(), y.id());
        assert_eq!(x.id(), x.id());
        // Release of a lock that is not held is ignored.
        x.release();
        LockClass::new().release();
        assert!(!x.is_held_by_current_thread());
        assert_eq!(format!("{}", x.id()), format!("lock #{}", x.id().get()));
    }
}

/// Under loom, modelled threads share one OS thread: the held stack must be the shim's
/// thread-local (one per modelled thread), or a lock held by one thread would look held
/// by the other and produce a false cycle. Both threads take `a` then `b`: a correct
/// program, so no report in any interleaving. Under `strata_weaken` the stack is std's
/// thread-local, and the model finds the interleaving with a false report.
#[test]
#[cfg_attr(
    all(strata_loom, strata_weaken),
    should_panic(expected = "lock order violation")
)]
fn per_thread_stacks_under_loom() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    strata_primitives::model(|| {
        use strata_primitives::sync::Arc;
        set_policy(Policy::Panic);
        let locks = Arc::new((Tracked::new(), Tracked::new()));
        let other = locks.clone();
        let t = strata_primitives::thread::spawn(move || {
            let _ga = other.0.lock();
            let _gb = other.1.lock();
        });
        {
            let _ga = locks.0.lock();
            let _gb = locks.1.lock();
        }
        t.join().unwrap();
        assert!(!locks.0.class.is_held_by_current_thread());
    });
}

/// A violation found while the thread is already unwinding does not panic again (which
/// would abort the process): it is printed.
#[test]
#[cfg(not(strata_loom))]
fn violation_during_unwinding_does_not_abort() {
    struct InversionOnDrop<'a>(&'a Tracked, &'a Tracked);
    impl Drop for InversionOnDrop<'_> {
        fn drop(&mut self) {
            let _gb = self.1.lock();
            let _ga = self.0.lock();
        }
    }
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    set_policy(Policy::Panic);
    let (a, b) = (Tracked::new(), Tracked::new());
    {
        let _ga = a.lock();
        let _gb = b.lock();
    }
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _on_drop = InversionOnDrop(&a, &b);
        panic!("first panic");
    }));
    set_policy(Policy::Collect);
    let payload = caught.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"first panic"));
    assert!(!a.class.is_held_by_current_thread());
    assert!(!b.class.is_held_by_current_thread());
}
