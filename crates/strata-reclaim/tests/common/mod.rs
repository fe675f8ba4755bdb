//! Test objects shared by the integration tests: heap objects that count themselves,
//! carry a magic word and a boxed canary, and poison both when dropped.
//!
//! Each test owns a `static` [`Counters`], so tests that run in parallel threads of one
//! binary never see each other's objects (the process-wide allocation counter would).
#![allow(dead_code)] // each test binary uses a different part of this module

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};

/// Written when an object is created.
pub const MAGIC: u64 = 0x5EED_CAFE_F00D_BEEF;
/// Written over the magic word and the canary when an object is dropped.
pub const POISON: u64 = 0xDEAD_DEAD_DEAD_DEAD;
/// The canary's value while the object lives.
pub const CANARY: u64 = 0x0123_4567_89AB_CDEF;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Counts one test's objects. All accesses are `SeqCst`, so `live` read in one load is
/// exact at a point of the total order.
pub struct Counters {
    created: AtomicUsize,
    dropped: AtomicUsize,
    live: AtomicUsize,
    /// Objects whose magic word was not intact when they were dropped (a double drop,
    /// or a drop of memory that was reused).
    bad_drops: AtomicUsize,
    /// The id of one object the test follows (0: none).
    watched: AtomicU64,
    /// While set, dropping the watched object is a violation.
    watched_forbidden: AtomicBool,
    /// Set when the watched object is dropped.
    watched_freed: AtomicBool,
    /// Set when the watched object is dropped while forbidden.
    violation: AtomicBool,
    /// Ids of objects that reader `i` holds (0: none); dropping one is an early free.
    holds: [AtomicU64; HOLD_SLOTS],
    /// Objects dropped while a reader held them.
    early_frees: AtomicUsize,
}

/// How many readers can [`Counters::hold`] objects at once.
pub const HOLD_SLOTS: usize = 16;

impl Counters {
    pub const fn new() -> Self {
        Counters {
            created: AtomicUsize::new(0),
            dropped: AtomicUsize::new(0),
            live: AtomicUsize::new(0),
            bad_drops: AtomicUsize::new(0),
            watched: AtomicU64::new(0),
            watched_forbidden: AtomicBool::new(false),
            watched_freed: AtomicBool::new(false),
            violation: AtomicBool::new(false),
            holds: [const { AtomicU64::new(0) }; HOLD_SLOTS],
            early_frees: AtomicUsize::new(0),
        }
    }

    pub fn created(&self) -> usize {
        self.created.load(SeqCst)
    }

    pub fn dropped(&self) -> usize {
        self.dropped.load(SeqCst)
    }

    /// Objects created and not yet dropped, in one load.
    pub fn live(&self) -> usize {
        self.live.load(SeqCst)
    }

    pub fn bad_drops(&self) -> usize {
        self.bad_drops.load(SeqCst)
    }

    /// Follows the object `id`: from now until [`allow_free`](Self::allow_free),
    /// dropping it is a violation that [`violation`](Self::violation) reports.
    pub fn watch(&self, id: u64) {
        self.watched_forbidden.store(true, SeqCst);
        self.watched_freed.store(false, SeqCst);
        self.watched.store(id, SeqCst);
    }

    /// The watched object may now be dropped.
    pub fn allow_free(&self) {
        self.watched_forbidden.store(false, SeqCst);
    }

    /// `true` once the watched object has been dropped.
    pub fn watched_freed(&self) -> bool {
        self.watched_freed.load(SeqCst)
    }

    /// `true` if the watched object was dropped while that was forbidden.
    pub fn violation(&self) -> bool {
        self.violation.load(SeqCst)
    }

    /// Reader `slot` holds object `id` (read from the object while it is protected):
    /// until [`release`](Self::release), dropping it counts as an early free. Unlike a
    /// use-after-free read, this is detected whether or not the memory was reused.
    pub fn hold(&self, slot: usize, id: u64) {
        self.holds[slot].store(id, SeqCst);
    }

    pub fn release(&self, slot: usize) {
        self.holds[slot].store(0, SeqCst);
    }

    /// Objects dropped while a reader held them.
    pub fn early_frees(&self) -> usize {
        self.early_frees.load(SeqCst)
    }

    /// Asserts that every object but `extra` was dropped, each exactly once and intact.
    #[track_caller]
    pub fn assert_balanced(&self, extra: usize) {
        assert_eq!(
            self.bad_drops(),
            0,
            "an object was dropped twice or corrupted"
        );
        assert_eq!(
            self.early_frees(),
            0,
            "an object was freed while a reader held it"
        );
        assert_eq!(
            self.created(),
            self.dropped() + extra,
            "created {} objects, dropped {}, expected {} still alive",
            self.created(),
            self.dropped(),
            extra
        );
        assert_eq!(self.live(), extra);
    }
}

/// A heap object for the shared pointer of a test.
pub struct Obj {
    magic: u64,
    id: u64,
    canary: Box<u64>,
    counters: &'static Counters,
}

impl Obj {
    /// Allocates a new object and returns it as a raw `Box` pointer.
    pub fn new(counters: &'static Counters) -> *mut Obj {
        counters.created.fetch_add(1, SeqCst);
        counters.live.fetch_add(1, SeqCst);
        Box::into_raw(Box::new(Obj {
            magic: MAGIC,
            id: NEXT_ID.fetch_add(1, SeqCst),
            canary: Box::new(CANARY),
            counters,
        }))
    }

    /// Reads the object behind `p` and panics if it is not intact; returns its id.
    ///
    /// # Safety
    /// `p` is a pointer from [`Obj::new`] that the caller claims is still allocated
    /// (protected by a guard or hazard pointer). If the claim is wrong, the read is a
    /// use-after-free: miri reports it, and a native run most likely sees the poison.
    #[track_caller]
    pub unsafe fn check(p: *const Obj) -> u64 {
        assert!(
            !p.is_null(),
            "the shared pointer is never null in these tests"
        );
        // SAFETY: the caller guarantees `p` is allocated. A volatile read so that the
        // compiler cannot reuse an earlier read of the same object.
        let magic = unsafe { core::ptr::read_volatile(&raw const (*p).magic) };
        assert_eq!(
            magic, MAGIC,
            "read a freed (poisoned) object: use after free"
        );
        // SAFETY: as above; the canary box lives as long as the object.
        let canary = unsafe { core::ptr::read_volatile(&raw const *(*p).canary) };
        assert_eq!(canary, CANARY, "read a freed canary: use after free");
        // SAFETY: as above.
        unsafe { (*p).id }
    }

    /// Drops an object that was never shared, or that the test owns again.
    ///
    /// # Safety
    /// `p` came from [`Obj::new`], is not reachable by any other thread, and is not
    /// freed by anyone else.
    pub unsafe fn free(p: *mut Obj) {
        // SAFETY: per the preconditions, we own the box.
        drop(unsafe { Box::from_raw(p) });
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        // SAFETY: `self.magic` is a valid place; volatile so the poisoning below is not
        // optimized away as a dead store before the free.
        let magic = unsafe { core::ptr::read_volatile(&self.magic) };
        if magic != MAGIC || *self.canary != CANARY {
            self.counters.bad_drops.fetch_add(1, SeqCst);
        }
        for h in &self.counters.holds {
            if h.load(SeqCst) == self.id {
                self.counters.early_frees.fetch_add(1, SeqCst);
            }
        }
        if self.counters.watched.load(SeqCst) == self.id {
            if self.counters.watched_forbidden.load(SeqCst) {
                self.counters.violation.store(true, SeqCst);
            }
            self.counters.watched_freed.store(true, SeqCst);
        }
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(&mut self.magic, POISON) };
        // SAFETY: the canary box is still allocated (it is freed after this function).
        unsafe { core::ptr::write_volatile(&mut *self.canary, POISON) };
        self.counters.dropped.fetch_add(1, SeqCst);
        self.counters.live.fetch_sub(1, SeqCst);
    }
}

/// `true` while fewer than `max` iterations ran and the time budget is not spent
/// (the clock is read every 64 iterations; it only bounds how long a loop runs).
pub fn keep_going(i: usize, max: usize, start: Instant, budget: Duration) -> bool {
    i < max && (!i.is_multiple_of(64) || start.elapsed() < budget)
}

/// Reads the object behind `p`, holds it (as reader `slot`), reads it again, and
/// releases it; returns its id. (Holding it longer, by spinning, makes the readers pin
/// longer and the epoch move less often, and so catches fewer early frees.)
///
/// Under miri it only reads: the `SeqCst` hold and release would synchronize the
/// reader with every later `Drop` (which loads them), and so hide from the race
/// detector a missing release ordering in the scheme, which miri reports directly.
///
/// # Safety
/// As for [`Obj::check`]: the caller claims `p` stays allocated throughout.
#[track_caller]
pub unsafe fn read_and_hold(c: &Counters, slot: usize, p: *const Obj) -> u64 {
    // SAFETY: forwarded to our caller.
    let id = unsafe { Obj::check(p) };
    if cfg!(miri) {
        return id;
    }
    c.hold(slot, id);
    // SAFETY: as above.
    assert_eq!(unsafe { Obj::check(p) }, id);
    c.release(slot);
    id
}
