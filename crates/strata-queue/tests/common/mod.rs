//! What the conservation tests share: tagged items that own heap memory and count
//! themselves in a per-test [`Tracker`]. Each test file uses part of it.
#![allow(dead_code)]

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

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
