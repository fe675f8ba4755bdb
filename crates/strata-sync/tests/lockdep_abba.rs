//! The runtime lock-order validator through its public API: a planted ABBA order is
//! reported (with both acquisition sites) even though the run never deadlocks, and a
//! correct program is not reported.

use std::panic::Location;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;

use strata_sync::lockdep::{self, LockClass, LockId, LockOrderViolation, Policy};

/// A std mutex tracked by the validator.
struct Tracked<T> {
    class: LockClass,
    inner: Mutex<T>,
}

struct Guard<'a, T> {
    class: &'a LockClass,
    _inner: MutexGuard<'a, T>,
}

impl<T> Drop for Guard<'_, T> {
    fn drop(&mut self) {
        self.class.release();
    }
}

impl<T> Tracked<T> {
    const fn new(value: T) -> Self {
        Self {
            class: LockClass::new(),
            inner: Mutex::new(value),
        }
    }

    fn id(&self) -> LockId {
        self.class.id()
    }

    #[track_caller]
    fn lock(&self) -> Guard<'_, T> {
        self.class.before_acquire();
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.class.acquired();
        Guard {
            class: &self.class,
            _inner: inner,
        }
    }
}

static SERIAL: Mutex<()> = Mutex::new(());

fn reports_for(ids: &[LockId]) -> Vec<LockOrderViolation> {
    lockdep::take_violations()
        .into_iter()
        .filter(|v| ids.iter().any(|&id| v.involves(id)))
        .collect()
}

fn at(site: &Location<'_>) -> (String, u32) {
    (site.file().to_owned(), site.line())
}

#[test]
fn planted_abba_is_reported_without_deadlocking() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    assert!(matches!(Policy::default(), Policy::Panic));
    lockdep::set_policy(Policy::Collect);
    let a = Arc::new(Tracked::new(0u32));
    let b = Arc::new(Tracked::new(0u32));

    // Two threads, one after the other: they never hold a lock at the same time.
    let (a1, b1) = (Arc::clone(&a), Arc::clone(&b));
    let ab = thread::spawn(move || {
        let _a = a1.lock();
        let _b = b1.lock();
        line!() - 1
    })
    .join()
    .unwrap();
    let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
    let ba = thread::spawn(move || {
        let _b = b2.lock();
        let _a = a2.lock();
        line!() - 1
    })
    .join()
    .unwrap();

    let reports = reports_for(&[a.id(), b.id()]);
    assert_eq!(reports.len(), 1, "{reports:?}");
    let report = &reports[0];
    assert_eq!(report.locks(), vec![b.id(), a.id()]);
    // Both acquisition sites: this one (a while holding b) and the earlier reverse one.
    assert_eq!(at(report.attempt().acquired_at), (file!().to_owned(), ba));
    assert_eq!(at(report.edges()[1].acquired_at), (file!().to_owned(), ab));
    let text = report.to_string();
    assert!(text.contains(&format!("{}:{ba}:", file!())), "{text}");
    assert!(text.contains(&format!("{}:{ab}:", file!())), "{text}");
}

#[test]
fn correct_program_is_not_reported() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    lockdep::set_policy(Policy::Collect);
    let _ = lockdep::take_violations();
    // A bank of accounts always locked in ascending index order by every thread.
    let accounts: Arc<Vec<Tracked<i64>>> = Arc::new((0..4).map(|_| Tracked::new(100)).collect());
    let threads: Vec<_> = (0..4usize)
        .map(|t| {
            let accounts = Arc::clone(&accounts);
            thread::spawn(move || {
                for i in 0..if cfg!(miri) { 20 } else { 200usize } {
                    let (x, y) = ((t + i) % 4, (t + 2 * i + 1) % 4);
                    if x == y {
                        continue;
                    }
                    let (lo, hi) = (x.min(y), x.max(y));
                    let first = accounts[lo].lock();
                    let second = accounts[hi].lock();
                    drop(first);
                    drop(second);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let ids: Vec<_> = accounts.iter().map(Tracked::id).collect();
    assert!(reports_for(&ids).is_empty());
}
