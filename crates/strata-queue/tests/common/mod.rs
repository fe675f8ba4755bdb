//! What the integration tests share: tagged items that own heap memory and count
//! themselves in a per-test [`Tracker`] (the conservation tests), and the loop that
//! runs checked rounds of a linearizability test. Each test file uses part of it.
#![allow(dead_code)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

use strata_check::{Model, Violation};

/// Mixed into an item's payload, so that a payload cannot pass for another item's.
pub const MAGIC: u64 = 0x5EED_CAFE_F00D_BEEF;

/// Counts one test's items. Each test owns its own `static` tracker, so tests that run
/// in parallel never see each other's items; a test resets it before each round.
pub struct Tracker {
    pub created: AtomicUsize,
    pub dropped: AtomicUsize,
    /// Items whose payload did not match their tag when dropped (a double drop, or a
    /// drop of memory that is not an item).
    pub bad_drops: AtomicUsize,
    /// While set, drops record their tags in `drop_log`.
    logging: AtomicBool,
    drop_log: Mutex<Vec<u64>>,
}

impl Tracker {
    pub const fn new() -> Self {
        Tracker {
            created: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            bad_drops: AtomicUsize::new(0),
            logging: AtomicBool::new(false),
            drop_log: Mutex::new(Vec::new()),
        }
    }

    pub fn reset(&self) {
        self.created.store(0, SeqCst);
        self.dropped.store(0, SeqCst);
        self.bad_drops.store(0, SeqCst);
        self.logging.store(false, SeqCst);
        self.drop_log.lock().unwrap().clear();
    }

    pub fn created(&self) -> usize {
        self.created.load(SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(SeqCst)
    }

    /// Runs `what` with drop logging on; returns the tags dropped meanwhile.
    pub fn drops_of(&self, what: impl FnOnce()) -> Vec<u64> {
        self.logging.store(true, SeqCst);
        what();
        self.logging.store(false, SeqCst);
        std::mem::take(&mut *self.drop_log.lock().unwrap())
    }

    /// How many drops `drops_of` has logged so far (while it runs).
    pub fn logged_drops(&self) -> usize {
        self.drop_log.lock().unwrap().len()
    }

    /// No bad drop, `expected` items created, and as many dropped.
    #[track_caller]
    pub fn assert_balanced(&self, what: &str, expected: usize) {
        assert_eq!(
            self.bad_drops.load(SeqCst),
            0,
            "{what}: an item was dropped twice or corrupted"
        );
        assert_eq!(self.created(), expected, "{what}: items created");
        assert_eq!(
            self.dropped(),
            expected,
            "{what}: created {expected} items, dropped {}",
            self.dropped()
        );
    }
}

/// An item that owns heap memory and counts itself.
pub struct Item {
    /// `producer << 32 | sequence number`.
    pub tag: u64,
    /// `tag ^ MAGIC`, on the heap.
    payload: Box<u64>,
    tracker: &'static Tracker,
}

impl Item {
    pub fn new(tracker: &'static Tracker, producer: usize, seq: usize) -> Self {
        tracker.created.fetch_add(1, SeqCst);
        let tag = (producer as u64) << 32 | seq as u64;
        Item {
            tag,
            payload: Box::new(tag ^ MAGIC),
            tracker,
        }
    }

    /// Checks the item is intact, drops it and returns its tag.
    #[track_caller]
    pub fn consume(self) -> u64 {
        assert_eq!(
            *self.payload,
            self.tag ^ MAGIC,
            "item {:#x} came out with a payload that is not its own",
            self.tag
        );
        self.tag
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        if *self.payload != self.tag ^ MAGIC {
            self.tracker.bad_drops.fetch_add(1, SeqCst);
        }
        // Poison, so that a second drop of the same memory is counted as bad.
        *self.payload = !(self.tag ^ MAGIC);
        if self.tracker.logging.load(SeqCst) {
            self.tracker.drop_log.lock().unwrap().push(self.tag);
        }
        self.tracker.dropped.fetch_add(1, SeqCst);
    }
}

/// The producer of a tag.
pub fn producer(tag: u64) -> usize {
    (tag >> 32) as usize
}

/// The sequence number of a tag.
pub fn seq(tag: u64) -> usize {
    (tag & 0xFFFF_FFFF) as usize
}

/// Runs `rounds` checked rounds at each thread count from 2 to 4 (2 only under miri,
/// where the checker's search is interpreted too). `round(threads, attempt)` records
/// and checks one history, returning how many operations overlapped. A round with no
/// overlap tested nothing and is run again (up to `4 * rounds` attempts per thread
/// count); any other violation fails the test, and so does a test in which no round
/// overlapped at all.
pub fn run_rounds<M: Model>(
    name: &str,
    rounds: usize,
    mut round: impl FnMut(usize, usize) -> Result<usize, Violation<M>>,
) {
    let mut overlapping = 0;
    let max_threads = if cfg!(miri) { 2 } else { 4 };
    for threads in 2..=max_threads {
        let mut done = 0;
        let mut tries = 0;
        while done < rounds {
            tries += 1;
            assert!(
                tries <= 4 * rounds,
                "{name}, {threads} threads: too many rounds without overlap"
            );
            match round(threads, tries) {
                Ok(n) => {
                    overlapping += n;
                    done += 1;
                }
                Err(Violation::NoOverlap { .. }) => {}
                Err(e) => panic!("{name}, {threads} threads, round {tries}: {e}"),
            }
        }
    }
    assert!(
        overlapping > 0,
        "{name}: no round had overlapping operations"
    );
}
