//! Stress tests of `RcuCell` over an explicit epoch domain and an explicit hazard
//! domain (and content-only runs over the default schemes): readers `load` and
//! `load_full` while writers `update`, `compare_and_swap`, `store` and `swap`, with
//! heap-owning values whose contents are checked on every read. At the end, with the
//! cell, its domain and every thread that registered with it gone, every value created
//! has been dropped exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use strata_reclaim::epoch::{self, Epoch};
use strata_reclaim::hazard::{self, Hazard};
use strata_sync::rcu::{RcuCell, RcuReclaim};

/// Mixed into the payload so that one value's payload cannot pass for another's.
const MAGIC: u64 = 0x5EED_CAFE_F00D_BEEF;

/// Iterations per writer.
const WRITES: u64 = if cfg!(miri) { 15 } else { 20_000 };

/// Counts one test's values (each test owns its own `static`).
struct Tracker {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

impl Tracker {
    const fn new() -> Self {
        Tracker {
            created: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
        }
    }
}

/// A heap-owning value: `version` and a payload whose length and contents derive
/// from it, checked by `check`.
struct Value {
    version: u64,
    payload: Vec<u64>,
    name: String,
    tracker: &'static Tracker,
}

impl Value {
    fn new(version: u64, tracker: &'static Tracker) -> Value {
        tracker.created.fetch_add(1, SeqCst);
        Value {
            version,
            payload: vec![version ^ MAGIC; 1 + (version % 7) as usize],
            name: format!("v{version}"),
            tracker,
        }
    }

    /// Checks the contents and returns the version.
    fn check(&self) -> u64 {
        let v = self.version;
        assert_eq!(self.payload.len(), 1 + (v % 7) as usize, "torn value {v}");
        assert!(
            self.payload.iter().all(|&x| x == v ^ MAGIC),
            "torn value {v}"
        );
        assert_eq!(self.name, format!("v{v}"), "torn value {v}");
        v
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        self.check();
        self.version = u64::MAX;
        self.tracker.dropped.fetch_add(1, SeqCst);
    }
}

/// Runs `f` on a fresh thread and joins it: the thread-local handles it registered
/// with an explicit domain are gone afterwards, so the domain can be dropped for good.
fn on_thread(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(f).join().unwrap();
}

/// Readers (one `load`, one `load_full`) check every value and that versions never go
/// back, while one writer increments with `update` and one with `compare_and_swap`:
/// the final version counts every increment (none lost).
fn increments<R: RcuReclaim + 'static>(reclaim: R, tracker: &'static Tracker) {
    let cell = Arc::new(RcuCell::with_reclaim(Value::new(0, tracker), reclaim));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let (cell, stop) = (Arc::clone(&cell), Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut last = 0;
                let mut reads = 0u64;
                let mut held = Vec::new();
                while !stop.load(SeqCst) || reads == 0 {
                    let v = if r == 0 {
                        cell.load().check()
                    } else {
                        let a = cell.load_full();
                        // Keep a few Arcs alive across later replacements.
                        if held.len() < 8 {
                            held.push(a.clone());
                        }
                        a.check()
                    };
                    assert!(v >= last, "version went back: {last} then {v}");
                    last = v;
                    reads += 1;
                }
                for a in &held {
                    a.check();
                }
                reads
            })
        })
        .collect();
    let updater = {
        let cell = Arc::clone(&cell);
        std::thread::spawn(move || {
            for _ in 0..WRITES {
                let prev = cell.update(|v| Value::new(v.check() + 1, tracker));
                prev.check();
            }
        })
    };
    let casser = {
        let cell = Arc::clone(&cell);
        std::thread::spawn(move || {
            let mut done = 0;
            while done < WRITES {
                let cur = cell.load_full();
                let next = Arc::new(Value::new(cur.check() + 1, tracker));
                match cell.compare_and_swap(&cur, next) {
                    Ok(prev) => {
                        assert!(Arc::ptr_eq(&prev, &cur));
                        done += 1;
                    }
                    Err(e) => {
                        assert!(e.current.check() > cur.version);
                        assert_eq!(e.new.check(), cur.version + 1);
                    }
                }
            }
        })
    };
    updater.join().unwrap();
    casser.join().unwrap();
    stop.store(true, SeqCst);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert_eq!(cell.load().check(), 2 * WRITES, "no increment lost");
}

/// Readers check contents while writers replace the value with `store` and `swap`
/// (each `swap` checks the value it got back).
fn replacements<R: RcuReclaim + 'static>(reclaim: R, tracker: &'static Tracker) {
    let cell = Arc::new(RcuCell::with_reclaim(Value::new(0, tracker), reclaim));
    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (cell, stop) = (Arc::clone(&cell), Arc::clone(&stop));
            std::thread::spawn(move || {
                while !stop.load(SeqCst) {
                    let g = cell.load();
                    g.check();
                    let a = cell.load_full();
                    a.check();
                    g.check();
                }
            })
        })
        .collect();
    let writers: Vec<_> = (0..2u64)
        .map(|w| {
            let cell = Arc::clone(&cell);
            std::thread::spawn(move || {
                for i in 0..WRITES {
                    let version = (w + 1) * 1_000_000 + i;
                    if i % 2 == 0 {
                        cell.store(Value::new(version, tracker));
                    } else {
                        cell.swap(Arc::new(Value::new(version, tracker))).check();
                    }
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, SeqCst);
    for r in readers {
        r.join().unwrap();
    }
    cell.load().check();
}

fn assert_all_dropped(tracker: &Tracker) {
    let created = tracker.created.load(SeqCst);
    assert!(created as u64 > 2 * WRITES);
    assert_eq!(
        tracker.dropped.load(SeqCst),
        created,
        "every value created is dropped exactly once"
    );
}

#[test]
fn increments_epoch_domain_drop_all() {
    static T: Tracker = Tracker::new();
    on_thread(|| increments(epoch::Domain::new(), &T));
    assert_all_dropped(&T);
}

#[test]
fn increments_hazard_domain_drop_all() {
    static T: Tracker = Tracker::new();
    on_thread(|| increments(hazard::Domain::new(), &T));
    assert_all_dropped(&T);
}

#[test]
fn replacements_epoch_domain_drop_all() {
    static T: Tracker = Tracker::new();
    on_thread(|| replacements(epoch::Domain::new(), &T));
    assert_all_dropped(&T);
}

#[test]
fn replacements_hazard_domain_drop_all() {
    static T: Tracker = Tracker::new();
    on_thread(|| replacements(hazard::Domain::new(), &T));
    assert_all_dropped(&T);
}

/// The default schemes: contents checked; the process-wide domains are never
/// dropped, so only "never dropped twice" is checked at the end.
#[test]
fn default_schemes_contents() {
    static T: Tracker = Tracker::new();
    increments(Epoch, &T);
    replacements(Hazard, &T);
    assert!(T.dropped.load(SeqCst) <= T.created.load(SeqCst));
}
