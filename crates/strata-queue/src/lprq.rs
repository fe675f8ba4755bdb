//! The unbounded lock-free MPMC queue to choose: linked rings of fetch-and-add tickets
//! (LPRQ).
//!
//! R. Romanov and N. Koval, *The State-of-the-Art LCRQ Concurrent Queue Algorithm
//! Does NOT Require CAS2*, PPoPP 2023, which makes the ring of A. Morrison and
//! Y. Afek, *Fast concurrent queues for x86 processors*, PPoPP 2013 (LCRQ) work with
//! single-width compare-and-swap.
//!
//! # Why LPRQ
//!
//! Of the two fetch-and-add ring families that need only single-width atomics, LPRQ
//! costs one contended `fetch_add` per operation (on the ring's `tail` for a push, on
//! its `head` for a pop) and works on the ticket's cell alone. LSCQ (Nikolaev 2019)
//! keeps values in a side array whose indices travel through two rings, so a push
//! dequeues a free index and enqueues a full one: two contended `fetch_add`s per
//! operation. The `fetch_add` on one shared counter is the ceiling of either design
//! (strata-bench shows it beside the queue), so LPRQ's ceiling is twice LSCQ's.
//!
//! # The ring (PRQ)
//!
//! A ring of `R` cells with two counters, `head` and `tail`. Ticket `t` maps to cell
//! `t mod R` (spread so that consecutive tickets fall on different cache lines). Each
//! cell has two words and a value slot:
//! * `idx`: an *unsafe* bit, and an index: the cell may take the item of ticket `t`
//!   only if `idx <= t`; once the push of ticket `t` has claimed it, or once the pop
//!   of ticket `t` has given up on it, `idx = t + R`. The word only grows or gains the
//!   unsafe bit, so it never takes the same value twice;
//! * `val`: the cell's state: empty, *reserved* by the push of ticket `t`, full, or
//!   reserved and *cancelled* (see below).
//!
//! A push takes a ticket `t = tail.fetch_add(1)`. If the cell is empty, `idx <= t`,
//! and the cell is safe or no pop has taken ticket `t` yet (`head <= t`), it reserves
//! the cell (CAS `val`: empty → reserved(`t`)), claims the index (CAS `idx` → `t + R`,
//! clearing the unsafe bit), writes the value and commits (CAS `val`: reserved(`t`) →
//! full). Any failure costs the ticket and the push takes another.
//!
//! A pop takes a ticket `h = head.fetch_add(1)` and looks at the cell:
//! * full with `idx == h + R`, both seen in one consistent view (`idx` loaded before
//!   and after `val`): the item of ticket `h`, which only this pop can take: it reads
//!   the value and stores `val = empty` (operations are ordered by their tickets; see
//!   the paper for the linearizability argument);
//! * full with an older item (`idx < h + R`, a slow pop of that older ticket has not
//!   taken it yet): it marks the cell unsafe and gives up its ticket;
//! * empty or reserved: it waits a bounded number of spins for the push of ticket `h`
//!   (only if `tail > h + 1`, so that push has its ticket, and the ring is open and the
//!   cell safe), then gives up: it cancels
//!   a reservation it finds and advances `idx` to `h + R`, so that no push of ticket
//!   `h` can complete there.
//!
//! After giving up a ticket, a pop returns `None` if `tail <= h + 1` (nothing more can
//! be in the ring), first raising `tail` to `head` so that later pushes do not take
//! tickets the pops have already passed ("fixState"). A pop on an empty queue
//! therefore writes (its `fetch_add`, the cell's index, `tail`). The paper's optional
//! "cautious" pre-check (return `None` when `head >= tail`, before any write) was
//! measured and left out: the extra loads of both counters cost 20–25% of the
//! throughput in both queue workloads of strata-bench at 2 and 16 threads, and did
//! not reduce the number of rings opened in the producer–consumer one.
//!
//! A push closes the ring (sets the top bit of `tail`) when the ring is full
//! (`t >= head + R`) or when it has failed `STARVING` times in a row: first with a CAS
//! that succeeds only if nobody has taken a ticket since, and after `FORCE_CLOSE`
//! failed closes with `fetch_or`. A closed ring takes no more pushes.
//!
//! # The list (L)
//!
//! Rings form a Michael–Scott list. A push that finds its ring closed allocates a new
//! ring with its value already in the first cell and links it with one CAS on the
//! closed ring's `next` (the linearization point of that push); if another push linked
//! one first, it takes its value back and pushes into that one. A pop that finds the
//! head ring empty and a next ring present pops the head ring once more (it is closed,
//! so a second `None` is final), then swings `head` to the next ring and retires the
//! old one through the queue's [`Reclaim`] scheme.
//!
//! # The one deviation from the paper: values live in the ring
//!
//! The paper's cells hold a pointer to the item, and a pop that gives up on a cell
//! clears any reservation it finds (`val`: ⊥ₜ → ⊥), so that another push can reserve
//! the cell at once. Here the value itself lives in the cell (no allocation per push,
//! as in crossbeam's `SegQueue`), so the reserving push must own the value slot from
//! its reservation until it commits or lets go: if a pop made the cell reservable
//! again, a second push could write the slot while the first one still does. So a
//! pop turns a reservation into a *cancelled* reservation, which only the push that
//! made it can clear: when its commit CAS fails, it takes its value back, stores
//! `val = empty` and takes another ticket. Pushes treat a cancelled cell as occupied
//! (they lose that ticket) and pops treat it as empty (they advance `idx` past it).
//! A push preempted inside its reservation therefore keeps one cell out of use until
//! it runs again; it blocks no other operation.
//!
//! # Progress
//!
//! Lock-free. No operation waits for another: a pop facing a slow push waits at most a
//! bounded number of spins and then takes that push's ticket away; a push that keeps
//! losing its tickets closes the ring and links a new one holding its value. A pop
//! can make a push fail only by taking a ticket itself, so some operation always
//! advances. The `stalled_push_*` and `stalled_pop_blocks_nobody` unit tests stop one
//! push (at each of its stages) or one pop in the middle, with a test-only hook, and
//! check that another thread's pushes and pops complete meanwhile.
//!
//! # Memory
//!
//! Rings are allocated on the first push, not by [`new`](Queue::new) (which is a
//! `const fn`, as crossbeam's is). A retired ring's cell array goes to a cache of
//! [`CACHE_RINGS`] arrays shared by the queue and its retired rings, then to the
//! allocator; a new ring takes a cached array before it allocates. A cell is the value
//! plus 16 bytes (rounded up to the value's alignment), and a ring holds up to [`Queue::ring_size`] cells (by default 1024,
//! fewer for values over 16 bytes, so that a ring stays near 32 KiB).

use core::fmt;
use core::marker::PhantomData;
use core::mem::MaybeUninit;
use core::panic::{RefUnwindSafe, UnwindSafe};
use core::ptr;
use std::sync::Arc;

use strata_primitives::CachePadded;
use strata_primitives::cell::UnsafeCell;
use strata_primitives::hint::spin_loop;
use strata_primitives::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use strata_reclaim::{Protect, Reclaim};

use crate::DefaultReclaim;

/// The top bit of a ring's `tail`: the ring is closed.
const CLOSED: u64 = 1 << 63;
/// The top bit of a cell's `idx`: the cell is unsafe (a pop passed it while it held an
/// older item).
const UNSAFE: u64 = 1 << 63;

/// `val`: no value, and nobody owns the slot.
const EMPTY: u64 = 0;
/// `val`: the slot holds a committed value.
const FULL: u64 = 1;
/// The low two bits of a reservation: `reserved(t) = t << 2 | RESERVED`.
const RESERVED: u64 = 2;
/// The low two bits of a cancelled reservation (`reserved(t) | 1`).
const CANCELLED: u64 = 3;

/// The reservation of the push holding ticket `t`. Tickets of one ring are unique, so
/// two reservations of one cell never compare equal (the paper's thread-local ⊥).
#[inline]
fn reserved(t: u64) -> u64 {
    (t << 2) | RESERVED
}

/// Failed attempts after which a push closes its ring (the paper's "starving").
const STARVING: u32 = if cfg!(strata_loom) { 2 } else { 16 };
/// Failed soft closes after which a push closes its ring with `fetch_or`.
const FORCE_CLOSE: u32 = if cfg!(strata_loom) { 1 } else { 10 };
/// Spins a pop waits for the push of its ticket before it gives the ticket up.
const POP_SPINS: u32 = if cfg!(strata_loom) { 0 } else { 128 };
/// The number of cell arrays a queue keeps for reuse.
pub const CACHE_RINGS: usize = 2;
/// The largest ring size accepted by [`Queue::with_ring_size`].
pub const MAX_RING_SIZE: usize = 1 << 20;

/// The ring size a queue of `T` gets by default: 1024 cells, fewer if that would make
/// a ring larger than 32 KiB, and at least 32 (2 under loom).
const fn default_ring_size<T>() -> usize {
    if cfg!(strata_loom) {
        return 2;
    }
    let cell = core::mem::size_of::<Cell<T>>();
    let mut n = 1024;
    while n > 32 && n * cell > 32 * 1024 {
        n /= 2;
    }
    n
}

/// One cell of a ring.
struct Cell<T> {
    /// The unsafe bit and the index (see the module docs).
    idx: AtomicU64,
    /// `EMPTY`, `FULL`, `reserved(t)` or `reserved(t) | 1` (cancelled).
    val: AtomicU64,
    /// Initialized exactly while `val == FULL`, and while the push that reserved the
    /// cell holds its value there (between its write and its commit or take-back).
    data: UnsafeCell<MaybeUninit<T>>,
}

/// Arrays of cells kept for reuse, shared by a queue and its rings (a retired ring
/// gives its array back after the queue may be gone, hence the `Arc`).
pub(crate) struct Cache<T> {
    slots: [AtomicPtr<Cell<T>>; CACHE_RINGS],
    /// The length of every array of this queue.
    ring_size: usize,
}

impl<T> Cache<T> {
    pub(crate) fn new(ring_size: usize) -> Self {
        Cache {
            slots: core::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
            ring_size,
        }
    }

    /// An array from the cache, or a new one (contents unspecified: [`Ring::alloc`]
    /// writes every cell's words; no slot holds a value).
    fn take(&self) -> *mut Cell<T> {
        for slot in &self.slots {
            if !slot.load(Ordering::Relaxed).is_null() {
                // Acquire: pairs with the Release in `give`, so the giver's last
                // accesses to the array happen before ours.
                let p = slot.swap(ptr::null_mut(), Ordering::Acquire);
                if !p.is_null() {
                    return p;
                }
            }
        }
        let cells: Box<[Cell<T>]> = (0..self.ring_size)
            .map(|_| Cell {
                idx: AtomicU64::new(0),
                val: AtomicU64::new(EMPTY),
                data: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Box::into_raw(cells).cast::<Cell<T>>()
    }

    /// Keeps `cells` for reuse, or frees it if the cache is full.
    ///
    /// # Safety
    /// `cells` came from [`take`](Self::take) of this cache, no value is initialized in
    /// it, and nobody else can reach it.
    unsafe fn give(&self, cells: *mut Cell<T>) {
        for slot in &self.slots {
            if slot.load(Ordering::Relaxed).is_null()
                && slot
                    .compare_exchange(ptr::null_mut(), cells, Ordering::Release, Ordering::Relaxed)
                    .is_ok()
            {
                return;
            }
        }
        // SAFETY: by the caller, an unreachable array of `ring_size` cells from
        // `Box::into_raw`; its slots hold no value, so freeing it drops no `T`.
        drop(unsafe { free_cells(cells, self.ring_size) });
    }
}

impl<T> Drop for Cache<T> {
    fn drop(&mut self) {
        for slot in &self.slots {
            let p = slot.load(Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: a cached array: unreachable, no value initialized.
                drop(unsafe { free_cells(p, self.ring_size) });
            }
        }
    }
}

/// Re-boxes an array of cells so that dropping it frees it.
///
/// # Safety
/// `cells` came from `Box::into_raw` of a boxed slice of length `len`, and is not used
/// afterwards. Dropping the box drops no `T` (the slots are `MaybeUninit`).
unsafe fn free_cells<T>(cells: *mut Cell<T>, len: usize) -> Box<[Cell<T>]> {
    // SAFETY: by the caller.
    unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(cells, len)) }
}

/// One ring of the list.
#[repr(C)]
pub(crate) struct Ring<T> {
    /// The next pop ticket.
    head: CachePadded<AtomicU64>,
    /// The next push ticket, and [`CLOSED`].
    tail: CachePadded<AtomicU64>,
    /// The next ring, set once, after this one closed.
    next: AtomicPtr<Ring<T>>,
    /// `ring_size` cells.
    cells: *mut Cell<T>,
    /// `ring_size - 1`.
    mask: u64,
    /// An odd multiplier mapping consecutive tickets to cells at least 128 bytes apart
    /// (in rings large enough to have them).
    stride: u64,
    /// Where `cells` goes when the ring is freed.
    cache: Arc<Cache<T>>,
}

impl<T> Ring<T> {
    /// The cell of ticket `t`.
    #[inline]
    fn cell(&self, t: u64) -> &Cell<T> {
        let i = (t.wrapping_mul(self.stride) & self.mask) as usize;
        // SAFETY: `i <= mask < ring_size`, and `cells` stays allocated as long as the
        // ring.
        unsafe { &*self.cells.add(i) }
    }

    #[inline]
    fn size(&self) -> u64 {
        self.mask + 1
    }

    /// A new ring from `cache`, holding `first` at ticket 0 if given.
    pub(crate) fn alloc(cache: Arc<Cache<T>>, first: Option<T>) -> *mut Ring<T> {
        let size = cache.ring_size as u64;
        let cell = core::mem::size_of::<Cell<T>>().max(1) as u64;
        let ring = Ring {
            head: CachePadded::new(AtomicU64::new(0)),
            tail: CachePadded::new(AtomicU64::new(0)),
            next: AtomicPtr::new(ptr::null_mut()),
            cells: cache.take(),
            mask: size - 1,
            stride: (128_u64.div_ceil(cell)) | 1,
            cache,
        };
        // Not shared yet: the words are written with plain stores and published by the
        // Release CAS that links the ring.
        for t in 0..size {
            let c = ring.cell(t);
            c.idx.store(t, Ordering::Relaxed);
            c.val.store(EMPTY, Ordering::Relaxed);
        }
        if let Some(v) = first {
            ring.put_first(v);
        }
        Box::into_raw(Box::new(ring))
    }

    /// Puts `v` at ticket 0 of a ring nobody else can reach, which holds no value.
    fn put_first(&self, v: T) {
        let c = self.cell(0);
        c.data.with_mut(|p| {
            // SAFETY: the ring is not shared and the slot holds no value.
            unsafe { p.write(MaybeUninit::new(v)) }
        });
        c.idx.store(self.size(), Ordering::Relaxed);
        c.val.store(FULL, Ordering::Relaxed);
        self.tail.store(1, Ordering::Relaxed);
    }

    /// Takes back the value [`put_first`](Self::put_first) put, leaving the ring empty.
    fn take_first(&self) -> T {
        let c = self.cell(0);
        // SAFETY: the ring is not shared and `put_first` initialized the slot.
        let v = c.data.with(|p| unsafe { ptr::read(p).assume_init() });
        c.idx.store(0, Ordering::Relaxed);
        c.val.store(EMPTY, Ordering::Relaxed);
        self.tail.store(0, Ordering::Relaxed);
        v
    }

    /// Pushes `value` into this ring; gives it back if the ring is closed.
    #[inline]
    pub(crate) fn push(&self, value: T, hook: &mut impl FnMut(Stage)) -> Result<(), T> {
        // SeqCst: the ticket order is the paper's linearization order, and the check
        // of `head` in `try_ticket` must not pass a pop's ticket it should see (see
        // `Ring::visit`).
        let t = self.tail.fetch_add(1, Ordering::SeqCst);
        if t & CLOSED != 0 {
            return Err(value);
        }
        match self.try_ticket(t, value, hook) {
            Ok(()) => Ok(()),
            Err(value) => self.push_slow(value, t, hook),
        }
    }

    /// Retries a push whose ticket `failed` did not take its value: new tickets, and
    /// the ring's close when it is full or the push is starving.
    #[cold]
    #[inline(never)]
    fn push_slow(&self, mut value: T, failed: u64, hook: &mut impl FnMut(Stage)) -> Result<(), T> {
        let size = self.size();
        let mut t = failed;
        let mut failures = 0u32;
        let mut closes = 0u32;
        loop {
            failures += 1;
            loom_fence();
            if t >= self.head.load(Ordering::SeqCst).wrapping_add(size) || failures >= STARVING {
                closes += 1;
                if self.close(t, closes > FORCE_CLOSE) {
                    return Err(value);
                }
            }
            t = self.tail.fetch_add(1, Ordering::SeqCst);
            if t & CLOSED != 0 {
                return Err(value);
            }
            match self.try_ticket(t, value, hook) {
                Ok(()) => return Ok(()),
                Err(v) => value = v,
            }
        }
    }

    /// One attempt to place `value` with ticket `t` (see the module docs); gives the
    /// value back if the cell cannot take it.
    #[inline(always)]
    fn try_ticket(&self, t: u64, value: T, hook: &mut impl FnMut(Stage)) -> Result<(), T> {
        hook(Stage::Ticket);
        loom_fence();
        let size = self.size();
        let cell = self.cell(t);
        let idx = cell.idx.load(Ordering::SeqCst);
        let val = cell.val.load(Ordering::SeqCst);
        if val != EMPTY
            || idx & !UNSAFE > t
            || (idx & UNSAFE != 0 && {
                loom_fence();
                self.head.load(Ordering::SeqCst) > t
            })
        {
            return Err(value);
        }
        let mine = reserved(t);
        // SeqCst, and Acquire in particular: the last pop of this slot read it before
        // its Release store of EMPTY.
        if cell
            .val
            .compare_exchange(EMPTY, mine, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            return Err(value);
        }
        if cell
            .idx
            .compare_exchange(idx, t + size, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            // Let go of the slot (ours: reserved, or cancelled by a pop; nobody else
            // writes `val` in either state). Release: pairs with the next reservation.
            cell.val.store(EMPTY, crate::publish_ordering());
            return Err(value);
        }
        hook(Stage::Reserved);
        cell.data.with_mut(|p| {
            // SAFETY: `val == reserved(t)` (or its cancelled form, which only we
            // clear): the slot is ours alone until we commit or store EMPTY, and it
            // holds no value (a full cell is never reserved).
            unsafe { p.write(MaybeUninit::new(value)) }
        });
        hook(Stage::Written);
        // Release (within SeqCst): publishes the value to the pop that reads FULL with
        // Acquire.
        match cell
            .val
            .compare_exchange(mine, FULL, Ordering::SeqCst, Ordering::Relaxed)
        {
            Ok(_) => Ok(()),
            Err(now) => Err(Self::take_back(cell, now, mine)),
        }
    }

    /// A pop cancelled our reservation after we wrote the value: take it back and let
    /// go of the slot.
    #[cold]
    #[inline(never)]
    fn take_back(cell: &Cell<T>, now: u64, mine: u64) -> T {
        debug_assert_eq!(now, mine | CANCELLED, "only a pop cancels");
        let value = cell.data.with(|p| {
            // SAFETY: the slot is still ours (cancelled, not committed) and we wrote
            // it.
            unsafe { ptr::read(p).assume_init() }
        });
        // Release: our accesses to the slot happen before the next reservation.
        cell.val.store(EMPTY, crate::publish_ordering());
        value
    }

    /// Closes the ring: only if no ticket was taken after `t` (a CAS), or in any case
    /// if `force`. `true` if the ring is closed.
    ///
    /// The CAS also hands ticket `t` back (`tail` becomes `t`, closed): the push of
    /// `t` failed, so no value has a ticket at or above `t`, and [`len`](Self::len)
    /// stays exact when a lone thread fills a ring.
    fn close(&self, t: u64, force: bool) -> bool {
        if force {
            self.tail.fetch_or(CLOSED, Ordering::SeqCst);
            true
        } else {
            self.tail
                .compare_exchange(t + 1, t | CLOSED, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
        }
    }

    /// Pops the oldest value of this ring, or `None` if the ring had none (the
    /// ring-level loom models use it; the queue calls [`pop_with`](Self::pop_with)).
    #[cfg(test)]
    pub(crate) fn pop(&self) -> Option<T> {
        self.pop_with(&mut |_| {})
    }

    /// Pops the oldest value of this ring, or `None` if the ring had none, calling
    /// `hook` at [`Stage::PopSawIndex`] (the test-only hook; [`Queue::pop`] passes a
    /// no-op, which compiles away).
    #[inline]
    pub(crate) fn pop_with(&self, hook: &mut impl FnMut(Stage)) -> Option<T> {
        let size = self.size();
        let h = self.head.fetch_add(1, Ordering::SeqCst);
        loom_fence();
        let cell = self.cell(h);
        // The common case: the item of ticket `h` is there. A consistent view of
        // `idx == h + size` and FULL is that item: `idx` is re-read after `val`, and an
        // `idx` word never takes the same value twice (it only gains the unsafe bit or
        // grows), so both loads saw one state. Without the re-read, `val` could be
        // FULL with a later push's item: the push of `h` claims the cell, a pop of
        // `h + size` cancels it and moves `idx` on, a push of `h + 2 * size` fills
        // the cell, and only then would this pop read `val`.
        let idx = cell.idx.load(Ordering::SeqCst);
        hook(Stage::PopSawIndex);
        if idx & !UNSAFE == h + size
            && cell.val.load(Ordering::SeqCst) == FULL
            && cell.idx.load(Ordering::SeqCst) == idx
        {
            return Some(Self::take(cell));
        }
        self.pop_slow(h)
    }

    /// Takes the item of a cell whose ticket is ours and which holds it.
    #[inline(always)]
    fn take(cell: &Cell<T>) -> T {
        let v = cell.data.with(|p| {
            // SAFETY: the caller saw FULL and `idx == h + size` in one consistent view
            // (`idx` loaded before and after `val`, unchanged): the item pushed with
            // ticket `h`, committed (Release) before our Acquire load of FULL; no other
            // pop has ticket `h`, and no push touches a FULL cell.
            unsafe { ptr::read(p).assume_init() }
        });
        // Release: our read of the slot happens before the next push's reservation
        // (its Acquire CAS from EMPTY).
        cell.val.store(EMPTY, crate::publish_ordering());
        v
    }

    /// The rest of a pop that took ticket `h`: the cell's other cases, then more
    /// tickets until a value or the ring's end.
    #[cold]
    #[inline(never)]
    fn pop_slow(&self, mut h: u64) -> Option<T> {
        loop {
            if let Some(v) = self.visit(h) {
                return Some(v);
            }
            // Ticket `h` is given up. Nothing more to take if no push has a ticket
            // above it.
            loom_fence();
            if self.tail.load(Ordering::SeqCst) & !CLOSED <= h + 1 {
                self.fix_state();
                return None;
            }
            h = self.head.fetch_add(1, Ordering::SeqCst);
            loom_fence();
        }
    }

    /// The cell of ticket `h`: its item if it holds it (or gets it while we wait a
    /// little), otherwise gives the ticket up (see the module docs).
    fn visit(&self, h: u64) -> Option<T> {
        let size = self.size();
        let cell = self.cell(h);
        let mut spins = 0u32;
        let mut tail = 0u64;
        loop {
            let idx_word = cell.idx.load(Ordering::SeqCst);
            let unsafe_bit = idx_word & UNSAFE;
            let idx = idx_word & !UNSAFE;
            // Acquire (within SeqCst): pairs with the commit CAS, so a FULL read here
            // makes the value visible.
            let val = cell.val.load(Ordering::SeqCst);
            if idx_word != cell.idx.load(Ordering::SeqCst) {
                continue; // `idx` changed around the read of `val`
            }
            if idx > h + size {
                return None; // the cell is past this ticket
            }
            if val == FULL {
                if idx == h + size {
                    return Some(Self::take(cell));
                }
                // An older item whose pop has not come yet: make sure no push of a
                // ticket we pass uses this cell unless no pop has passed it.
                if unsafe_bit != 0 {
                    if cell.idx.load(Ordering::SeqCst) == idx_word {
                        return None;
                    }
                } else if cell
                    .idx
                    .compare_exchange(idx_word, idx | UNSAFE, Ordering::SeqCst, Ordering::Relaxed)
                    .is_ok()
                {
                    return None;
                }
            } else {
                // EMPTY, reserved or cancelled: wait a little for the push of ticket
                // `h` if it has its ticket, then take the ticket away.
                if spins == 0 {
                    loom_fence();
                    tail = self.tail.load(Ordering::SeqCst);
                }
                if unsafe_bit != 0
                    || tail & !CLOSED <= h + 1
                    || tail & CLOSED != 0
                    || spins >= POP_SPINS
                {
                    if val & 3 == RESERVED
                        && cell
                            .val
                            .compare_exchange(
                                val,
                                val | CANCELLED,
                                Ordering::SeqCst,
                                Ordering::Relaxed,
                            )
                            .is_err()
                    {
                        continue;
                    }
                    if cell
                        .idx
                        .compare_exchange(
                            idx_word,
                            unsafe_bit | (h + size),
                            Ordering::SeqCst,
                            Ordering::Relaxed,
                        )
                        .is_ok()
                    {
                        return None;
                    }
                } else {
                    spins += 1;
                    spin_loop();
                }
            }
        }
    }

    /// Raises `tail` to `head` after pops ran past it, so that later pushes do not
    /// take tickets the pops already gave up (the paper's `fixState`).
    fn fix_state(&self) {
        loop {
            let t = self.tail.load(Ordering::SeqCst);
            let h = self.head.load(Ordering::SeqCst);
            if self.tail.load(Ordering::SeqCst) != t {
                continue;
            }
            // A closed `t` compares above any `h`: a closed ring is left alone.
            if h <= t {
                return;
            }
            if self
                .tail
                .compare_exchange(t, h, Ordering::SeqCst, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
    }

    /// Approximate number of values in the ring.
    fn len(&self) -> u64 {
        let t = self.tail.load(Ordering::SeqCst) & !CLOSED;
        let h = self.head.load(Ordering::SeqCst);
        t.saturating_sub(h).min(self.size())
    }
}

impl<T> Drop for Ring<T> {
    fn drop(&mut self) {
        // SAFETY: the ring is being freed, so nobody else reaches its cells, and it
        // holds no value: `Queue::drop` drops the values of the rings it frees, a
        // never-shared spare is emptied by `take_first`, and a retired ring was
        // drained (every ticket below its closed `tail` belongs to a pop that protected
        // the ring until it took its value; see `Queue::pop`).
        unsafe { self.cache.give(self.cells) }
    }
}

/// Where a push or a pop is, for the test-only hook that stops it there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// It has a ticket and has not looked at the cell.
    Ticket,
    /// It reserved the cell and claimed its index, and has not written the value.
    Reserved,
    /// It wrote the value and has not committed it.
    Written,
    /// A pop has its ticket and has read its cell's `idx`, not yet `val`.
    PopSawIndex,
}

/// Under loom only: a SeqCst fence where the algorithm relies on the single total order
/// of SeqCst accesses, which loom models as acquire/release (see `deque`).
#[inline(always)]
fn loom_fence() {
    #[cfg(strata_loom)]
    strata_primitives::sync::atomic::fence(Ordering::SeqCst);
}

/// An unbounded lock-free MPMC FIFO queue: LPRQ (Romanov & Koval 2023), a linked list
/// of fetch-and-add rings. See the [module docs](self) for the algorithm and its one
/// deviation from the paper.
///
/// It has the surface of crossbeam's `SegQueue` (`new` is a `const fn`, `push`,
/// `pop`, `is_empty`, `len`, `IntoIterator`), so switching is an import change; the
/// alias [`SegQueue`] makes it a one-word change. Unlike `SegQueue`, a thread
/// preempted in the middle of a push or a pop delays nobody.
///
/// `R` chooses the memory reclamation scheme for retired rings (see
/// [`strata_reclaim`]); the default is the process-wide epoch domain.
///
/// ```
/// use strata_queue::Queue;
///
/// let q = Queue::new();
/// q.push(1);
/// q.push(2);
/// assert_eq!(q.len(), 2);
/// assert_eq!(q.pop(), Some(1));
/// assert_eq!(q.pop(), Some(2));
/// assert_eq!(q.pop(), None);
/// assert!(q.is_empty());
/// ```
pub struct Queue<T, R: Reclaim = DefaultReclaim> {
    /// The ring pops take from; null until the first push.
    head: CachePadded<AtomicPtr<Ring<T>>>,
    /// The ring pushes go to; null until the first push.
    tail: CachePadded<AtomicPtr<Ring<T>>>,
    /// The cache of cell arrays, from `Arc::into_raw`; null until the first push.
    cache: AtomicPtr<Cache<T>>,
    ring_size: usize,
    reclaim: R,
    _owns: PhantomData<T>,
}

/// crossbeam's name for its unbounded queue, for code that switches by changing an
/// import: `use strata_queue::SegQueue;`.
pub type SegQueue<T> = Queue<T>;

// SAFETY: values are moved in by `push` and out by `pop`, never shared by reference,
// so sending or sharing the queue needs only `T: Send`; the scheme is `Send + Sync` by
// the `Reclaim` bound.
unsafe impl<T: Send, R: Reclaim> Send for Queue<T, R> {}
// SAFETY: as above.
unsafe impl<T: Send, R: Reclaim> Sync for Queue<T, R> {}

// As crossbeam's `SegQueue`: a panic cannot leave the queue in a state that breaks
// its invariants (a push that panics has not touched it; values are moved, not
// borrowed).
impl<T, R: Reclaim + UnwindSafe> UnwindSafe for Queue<T, R> {}
impl<T, R: Reclaim + RefUnwindSafe> RefUnwindSafe for Queue<T, R> {}

#[cfg(not(strata_loom))]
impl<T> Queue<T> {
    /// An empty queue on the default epoch domain. Allocates nothing until the first
    /// push.
    pub const fn new() -> Self {
        Queue {
            head: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            tail: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            cache: AtomicPtr::new(ptr::null_mut()),
            ring_size: default_ring_size::<T>(),
            reclaim: strata_reclaim::epoch::Epoch,
            _owns: PhantomData,
        }
    }

    /// An empty queue on the default epoch domain whose rings have `ring_size` cells,
    /// rounded up to a power of two and clamped to `2 ..= MAX_RING_SIZE`.
    ///
    /// ```
    /// let q = strata_queue::Queue::<u8>::with_ring_size(100);
    /// assert_eq!(q.ring_size(), 128);
    /// ```
    pub fn with_ring_size(ring_size: usize) -> Self {
        Self::with_reclaim_and_ring_size(DefaultReclaim::default(), ring_size)
    }
}

#[cfg(not(strata_loom))]
impl<T> Default for Queue<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, R: Reclaim> Queue<T, R> {
    /// An empty queue whose rings are reclaimed through `reclaim`.
    pub fn with_reclaim(reclaim: R) -> Self {
        Self::with_reclaim_and_ring_size(reclaim, default_ring_size::<T>())
    }

    /// An empty queue whose rings have `ring_size` cells (rounded up to a power of two
    /// and clamped to `2 ..= MAX_RING_SIZE`) and are reclaimed through `reclaim`.
    pub fn with_reclaim_and_ring_size(reclaim: R, ring_size: usize) -> Self {
        Queue {
            head: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            tail: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            cache: AtomicPtr::new(ptr::null_mut()),
            ring_size: ring_size.clamp(2, MAX_RING_SIZE).next_power_of_two(),
            reclaim,
            _owns: PhantomData,
        }
    }

    /// The number of cells per ring.
    pub fn ring_size(&self) -> usize {
        self.ring_size
    }

    /// The reclamation scheme this queue uses.
    pub fn reclaim(&self) -> &R {
        &self.reclaim
    }

    /// The queue's cache, created on first use.
    fn cache(&self) -> Arc<Cache<T>> {
        let mut p = self.cache.load(Ordering::Acquire);
        if p.is_null() {
            let new = Arc::into_raw(Arc::new(Cache::new(self.ring_size))).cast_mut();
            // AcqRel: publishes our cache, or acquires the winner's.
            match self.cache.compare_exchange(
                ptr::null_mut(),
                new,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => p = new,
                Err(winner) => {
                    // SAFETY: `new` came from `Arc::into_raw` and was never shared.
                    drop(unsafe { Arc::from_raw(new) });
                    p = winner;
                }
            }
        }
        // SAFETY: `p` came from `Arc::into_raw`, and the queue holds that reference
        // until it is dropped; we add one for the caller.
        unsafe {
            Arc::increment_strong_count(p);
            Arc::from_raw(p)
        }
    }

    /// Appends `value` at the back. Lock-free; allocates only when it opens a ring (a
    /// cached cell array first).
    pub fn push(&self, value: T) {
        self.push_with(value, &mut |_| {});
    }

    /// [`push`](Self::push), calling `hook` at each [`Stage`] of a push into a ring
    /// (the test-only hook; `push` passes a no-op, which compiles away).
    #[inline]
    pub(crate) fn push_with(&self, mut value: T, hook: &mut impl FnMut(Stage)) {
        let mut g = self.reclaim.guard();
        let mut spare: *mut Ring<T> = ptr::null_mut();
        loop {
            let ring = g.protect(&self.tail);
            if ring.is_null() {
                self.open_first(&mut g);
                continue;
            }
            // SAFETY: `ring` is protected, and rings stay allocated while protected.
            let r = unsafe { &*ring };
            let next = r.next.load(Ordering::Acquire);
            if !next.is_null() {
                // The tail lags behind a linked ring: help, then retry.
                let _ =
                    self.tail
                        .compare_exchange(ring, next, Ordering::Release, Ordering::Relaxed);
                continue;
            }
            match r.push(value, hook) {
                Ok(()) => break,
                Err(v) => value = v,
            }
            // The ring is closed: link a new one holding the value.
            let new = if spare.is_null() {
                Ring::alloc(self.cache(), Some(value))
            } else {
                // SAFETY: our spare ring, never shared and empty.
                unsafe { &*spare }.put_first(value);
                core::mem::replace(&mut spare, ptr::null_mut())
            };
            // Release: publishes the new ring's cells and value to whoever acquires
            // `next` (or `tail`, below). The linearization point of this push.
            match r.next.compare_exchange(
                ptr::null_mut(),
                new,
                crate::publish_ordering(),
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let _ =
                        self.tail
                            .compare_exchange(ring, new, Ordering::Release, Ordering::Relaxed);
                    break;
                }
                Err(_) => {
                    // SAFETY: `new` lost the race and was never shared.
                    value = unsafe { &*new }.take_first();
                    spare = new;
                }
            }
        }
        if !spare.is_null() {
            // SAFETY: never shared, and empty: freeing it gives its cells to the cache.
            drop(unsafe { Box::from_raw(spare) });
        }
    }

    /// Installs the first ring (the queue allocates nothing before its first push).
    #[cold]
    fn open_first(&self, g: &mut R::Guard<'_>) {
        let mut head = g.protect(&self.head);
        if head.is_null() {
            let new = Ring::alloc(self.cache(), None);
            // Release: publishes the ring's cells.
            match self.head.compare_exchange(
                ptr::null_mut(),
                new,
                crate::publish_ordering(),
                Ordering::Acquire,
            ) {
                Ok(_) => head = new,
                Err(_) => {
                    // SAFETY: never shared.
                    drop(unsafe { Box::from_raw(new) });
                    head = g.protect(&self.head);
                }
            }
        }
        // The head ring cannot have been retired: that needs a ring after it, which
        // needs a push into it through `tail`, which is still null.
        let _ = self.tail.compare_exchange(
            ptr::null_mut(),
            head,
            crate::publish_ordering(),
            Ordering::Relaxed,
        );
    }

    /// Removes the value at the front, or returns `None` if the queue is empty.
    /// Lock-free.
    pub fn pop(&self) -> Option<T> {
        self.pop_with(&mut |_| {})
    }

    /// [`pop`](Self::pop), passing `hook` to the pops of the head ring (the test-only
    /// hook).
    #[inline]
    pub(crate) fn pop_with(&self, hook: &mut impl FnMut(Stage)) -> Option<T> {
        let mut g = self.reclaim.guard();
        loop {
            let ring = g.protect(&self.head);
            if ring.is_null() {
                return None;
            }
            // SAFETY: protected.
            let r = unsafe { &*ring };
            if let Some(v) = r.pop_with(hook) {
                return Some(v);
            }
            let next = r.next.load(Ordering::Acquire);
            if next.is_null() {
                return None;
            }
            // `next` is set only after the ring closed, so this pop's `None` may have
            // raced with the last pushes into it; one more pop settles it.
            if let Some(v) = r.pop_with(hook) {
                return Some(v);
            }
            // `tail` must not point at the ring we unlink: move it on if it lags (it
            // only ever moves forward, so once past `ring` it stays past).
            let _ = self
                .tail
                .compare_exchange(ring, next, Ordering::Release, Ordering::Relaxed);
            // AcqRel: pairs with the other pops' CAS; the old ring is unlinked by it.
            if self
                .head
                .compare_exchange(ring, next, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
            {
                // SAFETY: `ring` is unlinked: `head` and `tail` are past it, and a
                // thread still holding it reaches rings only through `next`
                // (forward). It came from Box::into_raw, and only the CAS winner
                // retires it. Every value still in it has a pop holding its ticket
                // (the ring is closed and this pop found it drained), which takes the
                // value while it protects the ring, before the ring can be freed.
                // Dropping a `Ring<T>` on another thread touches no `T` (its slots
                // are `MaybeUninit` and empty): it gives the cell array to the cache.
                unsafe { g.retire(ring) };
            }
        }
    }

    /// `true` if the queue looked empty (see [`len`](Self::len)).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of values in the queue, approximately: the sum over its rings of
    /// `tail - head` (at most the ring size), read without stopping the other threads.
    /// With no operation in flight it is never below the true count, and it is exact
    /// unless a push lost a ticket to a race (or took one on a ring already closed):
    /// such a ticket counts one until a pop passes it. After a pop has returned `None`
    /// (and nothing ran since), it is 0.
    pub fn len(&self) -> usize {
        // Three guards: `gf` keeps the first ring protected for the whole walk (so
        // that `head == first` below compares against a ring that cannot have been
        // freed and its address reused), `g` and `gn` go hand over hand.
        let mut gf = self.reclaim.guard();
        let mut g = self.reclaim.guard();
        let mut gn = self.reclaim.guard();
        'retry: loop {
            let first = gf.protect(&self.head);
            let mut ring = first;
            let mut total = 0u64;
            while !ring.is_null() {
                // SAFETY: `ring` is protected by `gf` (the first) or `g`, and was
                // validated as still linked (below).
                let r = unsafe { &*ring };
                total += r.len();
                let next = gn.protect(&r.next);
                // Acquire: rings are retired in list order, each by the CAS that
                // moves `head` off it, so while `head` is still `first` (protected,
                // so not a reused address), none of its successors is retired and
                // `next` was protected in time.
                if self.head.load(Ordering::Acquire) != first {
                    continue 'retry;
                }
                core::mem::swap(&mut g, &mut gn);
                ring = next;
            }
            return usize::try_from(total).unwrap_or(usize::MAX);
        }
    }

    /// [`push`](Self::push) with exclusive access (crossbeam's `push_mut`).
    pub fn push_mut(&mut self, value: T) {
        self.push(value)
    }

    /// [`pop`](Self::pop) with exclusive access (crossbeam's `pop_mut`).
    pub fn pop_mut(&mut self) -> Option<T> {
        self.pop()
    }
}

impl<T, R: Reclaim> Drop for Queue<T, R> {
    fn drop(&mut self) {
        // Exclusive access: nobody else reaches the linked rings. Rings retired earlier
        // belong to the reclamation scheme (and hold no values).
        let mut ring = self.head.load(Ordering::Relaxed);
        while !ring.is_null() {
            // SAFETY: a linked ring, from Box::into_raw, unreachable by anyone else.
            let r = unsafe { Box::from_raw(ring) };
            for t in 0..r.size() {
                let c = r.cell(t);
                if c.val.load(Ordering::Relaxed) == FULL {
                    c.data.with_mut(|p| {
                        // SAFETY: FULL: initialized and not taken.
                        unsafe { ptr::drop_in_place(p.cast::<T>()) }
                    });
                }
            }
            ring = r.next.load(Ordering::Relaxed);
            // Dropping `r` gives its (now value-free) cells to the cache.
        }
        let cache = self.cache.load(Ordering::Relaxed);
        if !cache.is_null() {
            // SAFETY: the queue's reference, from `Arc::into_raw`.
            drop(unsafe { Arc::from_raw(cache) });
        }
    }
}

impl<T, R: Reclaim> fmt::Debug for Queue<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("ring_size", &self.ring_size)
            .finish_non_exhaustive()
    }
}

impl<T, R: Reclaim> Extend<T> for Queue<T, R> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, iter: I) {
        for v in iter {
            self.push(v);
        }
    }
}

#[cfg(not(strata_loom))]
impl<T> FromIterator<T> for Queue<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> Self {
        let mut q = Queue::new();
        q.extend(iter);
        q
    }
}

/// Pops the values of a queue in order.
#[derive(Debug)]
pub struct IntoIter<T, R: Reclaim = DefaultReclaim>(Queue<T, R>);

impl<T, R: Reclaim> Iterator for IntoIter<T, R> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.0.pop()
    }
}

impl<T, R: Reclaim> IntoIterator for Queue<T, R> {
    type Item = T;
    type IntoIter = IntoIter<T, R>;
    fn into_iter(self) -> IntoIter<T, R> {
        IntoIter(self)
    }
}
