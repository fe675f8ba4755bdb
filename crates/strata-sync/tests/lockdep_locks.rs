//! The runtime lock-order validator wired into strata-sync's own locks (feature
//! `lockdep`; CI runs this file in its `test-features` stage): a planted ABBA order
//! between two `AdaptiveMutex`es, two `AdaptiveRwLock`s, two `McsLock`s and a mixed
//! pair is reported at the acquisition that closes the cycle, with the sites of both
//! orders, although the two threads run one after the other and never deadlock; a
//! correct program (a consistent order, and try-locks out of order) is not reported.
#![cfg(feature = "lockdep")]

use std::sync::{Mutex, PoisonError};
use std::thread;

use strata_sync::lockdep::{self, LockOrderViolation, Policy};
use strata_sync::{AdaptiveMutex, AdaptiveRwLock, McsLock};

/// The policy and the collected reports are process-wide: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `first` on one thread, then (after it has finished) `second` on another, under
/// `Policy::Collect`, and returns the violations reported meanwhile. Each closure
/// returns the source line of its second acquisition.
fn run_in_turn(
    first: impl FnOnce() -> u32 + Send,
    second: impl FnOnce() -> u32 + Send,
) -> (u32, u32, Vec<LockOrderViolation>) {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let previous = lockdep::set_policy(Policy::Collect);
    let _ = lockdep::take_violations();
    let (l1, l2) = thread::scope(|s| {
        let l1 = s.spawn(first).join().unwrap();
        let l2 = s.spawn(second).join().unwrap();
        (l1, l2)
    });
    let found = lockdep::take_violations();
    lockdep::set_policy(previous);
    (l1, l2, found)
}

/// The one report of an ABBA whose first order was completed at `first_line` and
/// whose inverted acquisition is at `second_line`.
fn assert_abba(first_line: u32, second_line: u32, found: &[LockOrderViolation]) {
    assert_eq!(found.len(), 1, "{found:#?}");
    let v = &found[0];
    let text = v.to_string();
    let here = file!();
    // The attempt (edge 0) is the inverted acquisition; the recorded order is the
    // other edge, acquired at the first thread's second acquisition.
    assert_eq!(v.edges().len(), 2, "{text}");
    let now = v.attempt();
    assert_eq!((now.acquired_at.file(), now.acquired_at.line()), (here, second_line), "{text}");
    let earlier = &v.edges()[1];
    assert_eq!(
        (earlier.acquired_at.file(), earlier.acquired_at.line()),
        (here, first_line),
        "{text}"
    );
    assert!(text.contains(&format!("{here}:{second_line}")), "{text}");
    assert!(text.contains(&format!("{here}:{first_line}")), "{text}");
}

#[test]
fn abba_between_adaptive_mutexes_is_reported() {
    let (a, b) = (AdaptiveMutex::new(0u32), AdaptiveMutex::new(0u32));
    let (l1, l2, found) = run_in_turn(
        || {
            let _a = a.lock().unwrap();
            let _b = b.lock().unwrap();
            line!() - 1
        },
        || {
            let _b = b.lock().unwrap();
            let _a = a.lock().unwrap();
            line!() - 1
        },
    );
    assert_abba(l1, l2, &found);
}

#[test]
fn abba_between_rwlocks_is_reported_for_every_mode() {
    let (a, b) = (AdaptiveRwLock::new(0u32), AdaptiveRwLock::new(0u32));
    let (l1, l2, found) = run_in_turn(
        || {
            let _a = a.read().unwrap();
            let _b = b.upgradable_read().unwrap();
            line!() - 1
        },
        || {
            let _b = b.write().unwrap();
            let _a = a.read().unwrap();
            line!() - 1
        },
    );
    assert_abba(l1, l2, &found);
}

#[test]
fn abba_between_mcs_locks_is_reported() {
    let (a, b) = (McsLock::new(0u32), McsLock::new(0u32));
    let (l1, l2, found) = run_in_turn(
        || {
            let _a = a.lock();
            b.with(|_| line!())
        },
        || {
            let _b = b.lock();
            let _a = a.lock();
            line!() - 1
        },
    );
    assert_abba(l1, l2, &found);
}

#[test]
fn abba_across_lock_kinds_is_reported() {
    let m = AdaptiveMutex::new(0u32);
    let rw = AdaptiveRwLock::new(0u32);
    let (l1, l2, found) = run_in_turn(
        || {
            let _m = m.lock().unwrap();
            let _r = rw.read().unwrap();
            line!() - 1
        },
        || {
            let _w = rw.write().unwrap();
            let _m = m.lock().unwrap();
            line!() - 1
        },
    );
    assert_abba(l1, l2, &found);
}

#[test]
fn a_correct_program_is_not_reported() {
    let _serial = SERIAL.lock().unwrap_or_else(PoisonError::into_inner);
    let previous = lockdep::set_policy(Policy::Collect);
    let _ = lockdep::take_violations();
    let a = AdaptiveMutex::new(0u64);
    let b = AdaptiveRwLock::new(0u64);
    let c = McsLock::new(0u64);
    thread::scope(|s| {
        for t in 0..4 {
            let (a, b, c) = (&a, &b, &c);
            s.spawn(move || {
                for i in 0..200 {
                    // Always a, then b, then c.
                    let mut ga = a.lock().unwrap();
                    let mut gb = b.write().unwrap();
                    c.with(|x| *x += 1);
                    *gb += 1;
                    *ga += 1;
                    drop(ga); // released out of order: fine
                    drop(gb);
                    // Out of order, but only try-locks and timed locks: they cannot
                    // wait forever, so they add no ordering edge.
                    let _gc = c.lock();
                    if t % 2 == 0 {
                        let _ = b.try_read();
                    }
                    if i % 3 == 0 {
                        let _ = a.try_lock_for(std::time::Duration::from_micros(10));
                    }
                }
            });
        }
    });
    let found = lockdep::take_violations();
    lockdep::set_policy(previous);
    assert!(found.is_empty(), "{found:#?}");
    assert_eq!(a.into_inner().unwrap(), 800);
    assert_eq!(c.into_inner(), 800);
}
