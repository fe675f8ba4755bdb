//! Hazard pointers (M. Michael, *Hazard pointers: safe memory reclamation for
//! lock-free objects*, IEEE TPDS 15(6), 2004).
//!
//! # The algorithm
//!
//! * A [`Domain`] holds an append-only list of hazard *slots* (one pointer each,
//!   padded to its own cache line, reused after release) and an append-only list of
//!   per-thread records, each owning that thread's list of retired objects.
//! * [`HazardPointer::protect`] loads the source pointer, publishes it in its slot,
//!   issues a full fence, and loads the source again; if it still holds the same
//!   pointer, the object is protected (Michael's load-validate loop).
//! * [`Domain::retire`] appends the object to the calling thread's retired list. When
//!   the list reaches the threshold `R = max(2·H, 64)`, with `H` the number of slots in
//!   the domain, the thread *scans*: it reads every slot after a full fence, and frees
//!   each retired object that no slot holds. At most `H` objects survive a scan, so a
//!   scan frees at least `R − H ≥ R/2` objects: the amortized cost per retire is
//!   constant (Michael's argument).
//! * A thread that exits scans once and leaves what is still protected to the domain
//!   as an *orphan* batch, which the next scan by any thread adopts.
//!
//! # Bound on unreclaimed objects
//!
//! Each thread holds fewer than `R` retired objects between its scans, and a scan
//! leaves at most `H`. So at any moment the objects retired but not yet freed number at
//! most `T·R + H`, with `T` the number of threads that have retired into the domain
//! (orphans included in the `H`, since an orphan is protected by some slot when it is
//! left). Unlike epochs, a reader stalled while holding a hazard pointer holds back
//! only the one object it protects. `tests/stalled_reader.rs` samples the number of live
//! objects during a run with a stalled reader and checks this bound.
//!
//! # Progress
//!
//! `protect` is lock-free (it retries only when the source changed, that is, when
//! another thread made progress); `retire`, `reclaim` and acquiring or releasing a
//! hazard pointer are wait-free apart from the bounded scan and the list pushes, which
//! are lock-free.
//!
//! # Memory ordering
//!
//! * `protect`: the slot store is followed by a `SeqCst` fence (one `xchg` on x86_64),
//!   which pairs with the `SeqCst` fence at the start of a scan: either the scanner sees
//!   the hazard, or the protecting thread's re-load sees the unlink that preceded the
//!   retire, and retries.
//! * clearing a slot: `Release` store of null, paired with the `Acquire` loads of the
//!   slots in a scan, so the reader's accesses happen before the free.

use core::cell::{Cell, RefCell};
use core::marker::PhantomData;
use core::ptr;
use std::rc::Rc;

use crate::SharedArc as Arc;
use strata_primitives::CachePadded;
use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};

use crate::{Linked, Protect, Reclaim, push_chain};

/// The smallest scan threshold. Small under loom and miri so scans are exercised.
const MIN_THRESHOLD: usize = if cfg!(strata_loom) {
    1
} else if cfg!(miri) {
    4
} else {
    64
};

struct Slot {
    ptr: CachePadded<AtomicPtr<u8>>,
    active: AtomicBool,
    next: *mut Slot,
}

struct Retired {
    ptr: *mut u8,
    drop: unsafe fn(*mut u8),
}

struct Orphan {
    items: Vec<Retired>,
    next: *mut Orphan,
}

impl Linked for Slot {
    unsafe fn set_next(this: *mut Self, next: *mut Self) {
        // SAFETY: the caller owns the unpublished slot.
        unsafe { (*this).next = next };
    }
}

impl Linked for Orphan {
    unsafe fn set_next(this: *mut Self, next: *mut Self) {
        // SAFETY: the caller owns the unpublished batch.
        unsafe { (*this).next = next };
    }
}

impl Linked for ThreadRec {
    unsafe fn set_next(this: *mut Self, next: *mut Self) {
        // SAFETY: the caller owns the unpublished record.
        unsafe { (*this).next = next };
    }
}

/// A thread's record: its retired list and its cache of free slots.
struct ThreadRec {
    active: AtomicBool,
    next: *mut ThreadRec,
    local: UnsafeCell<RecLocal>,
}

struct RecLocal {
    retired: Vec<Retired>,
    /// Slots this thread acquired and then released: reused without a list walk.
    free_slots: Vec<*const Slot>,
    scratch: Vec<*mut u8>,
    /// Reused by `scan` for the objects it frees.
    freed: Vec<Retired>,
}

struct Global {
    slots: AtomicPtr<Slot>,
    slot_count: AtomicUsize,
    records: AtomicPtr<ThreadRec>,
    orphans: AtomicPtr<Orphan>,
}

/// A hazard-pointer domain.
///
/// ```
/// use strata_primitives::sync::atomic::{AtomicPtr, Ordering};
/// use strata_reclaim::hazard::{Domain, HazardPointer};
///
/// let domain = Domain::new();
/// let shared = AtomicPtr::new(Box::into_raw(Box::new(41u32)));
///
/// let mut hp = HazardPointer::new_in(&domain);
/// let p = hp.protect(&shared);
/// // SAFETY: `p` is protected by `hp`, so it stays allocated.
/// assert_eq!(unsafe { *p }, 41);
///
/// let old = shared.swap(Box::into_raw(Box::new(42)), Ordering::AcqRel);
/// // SAFETY: `old` is unlinked and came from Box::into_raw.
/// unsafe { domain.retire(old) };
/// assert_eq!(unsafe { *p }, 41); // still protected
/// hp.reset();
/// domain.eager_reclaim(); // now it can be freed
/// # drop(unsafe { Box::from_raw(shared.load(Ordering::Relaxed)) });
/// ```
pub struct Domain {
    global: Arc<Global>,
}

/// One hazard slot of a [`Domain`]: protects one pointer at a time.
///
/// Not `Send`: a hazard pointer is used by the thread that acquired it.
pub struct HazardPointer<'d> {
    slot: &'d Slot,
    domain: &'d Domain,
    _not_send: PhantomData<*mut ()>,
}

impl core::fmt::Debug for Domain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("hazard::Domain")
            .field("slots", &self.slot_count())
            .finish()
    }
}

impl core::fmt::Debug for HazardPointer<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HazardPointer")
            .field("protecting", &self.slot.ptr.load(Ordering::Relaxed))
            .finish()
    }
}

impl Default for Domain {
    fn default() -> Self {
        Self::new()
    }
}

/// The calling thread's registration in one domain, cached in a thread-local.
struct Registration {
    global: Arc<Global>,
    rec: *const ThreadRec,
}

/// This thread's registrations, and a one-entry cache of the last one used.
struct Regs {
    /// `(Global, record)` of the domain used last on this thread. Valid while that
    /// domain's registration is in `list`: it is cleared before `list` loses an entry,
    /// so an address reused by a later domain can never match a stale record.
    last: Cell<(*const Global, *const ThreadRec)>,
    list: RefCell<Vec<Rc<Registration>>>,
}

strata_primitives::thread_local! {
    // Not `const`-initialized: loom's `thread_local!` has no `const` form.
    #[allow(clippy::missing_const_for_thread_local)]
    static REGS: Regs = Regs {
        last: Cell::new((ptr::null(), ptr::null())),
        list: RefCell::new(Vec::new()),
    };
}

impl Domain {
    /// A new, empty domain.
    pub fn new() -> Self {
        Domain {
            global: Arc::new(Global {
                slots: AtomicPtr::new(ptr::null_mut()),
                slot_count: AtomicUsize::new(0),
                records: AtomicPtr::new(ptr::null_mut()),
                orphans: AtomicPtr::new(ptr::null_mut()),
            }),
        }
    }

    /// The number of hazard slots ever created in this domain (`H` in the bound).
    pub fn slot_count(&self) -> usize {
        self.global.slot_count.load(Ordering::Relaxed)
    }

    /// The scan threshold `R = max(2·H, 64)` at the current slot count.
    pub fn threshold(&self) -> usize {
        (2 * self.slot_count()).max(MIN_THRESHOLD)
    }

    /// Runs `f` with the calling thread's record in this domain.
    #[inline]
    fn with_rec<R>(&self, f: impl FnOnce(&ThreadRec) -> R) -> R {
        let me = Arc::as_ptr(&self.global);
        let fast = REGS.try_with(|r| {
            let (g, rec) = r.last.get();
            if g == me { Some(rec) } else { None }
        });
        if let Ok(Some(rec)) = fast {
            // SAFETY: `last` matches only while this domain's registration is in the
            // thread's list (see `Regs::last`), and that registration keeps the Global
            // and its record alive; it is not pruned while `self` holds the Global.
            return f(unsafe { &*rec });
        }
        self.with_rec_slow(f)
    }

    #[cold]
    fn with_rec_slow<R>(&self, f: impl FnOnce(&ThreadRec) -> R) -> R {
        let reg = REGS.try_with(|regs| {
            let found = regs
                .list
                .borrow()
                .iter()
                .find(|r| Arc::ptr_eq(&r.global, &self.global))
                .cloned();
            let r = match found {
                Some(r) => r,
                None => {
                    // Prune registrations of domains nobody else holds any more. The
                    // cache is cleared first: it may point into one of them.
                    regs.last.set((ptr::null(), ptr::null()));
                    let stale: Vec<_> = {
                        let mut list = regs.list.borrow_mut();
                        let (keep, stale) = core::mem::take(&mut *list)
                            .into_iter()
                            .partition(|r| Arc::strong_count(&r.global) > 1);
                        *list = keep;
                        stale
                    };
                    // Dropped after the borrow ends: dropping one runs destructors.
                    drop(stale);
                    let r = Rc::new(self.register());
                    regs.list.borrow_mut().push(Rc::clone(&r));
                    r
                }
            };
            regs.last.set((Arc::as_ptr(&r.global), r.rec));
            r
        });
        match reg {
            // SAFETY: the registration keeps the Global and so the record alive.
            Ok(r) => f(unsafe { &*r.rec }),
            Err(_) => {
                // Thread-local gone (thread exit): a temporary registration.
                let r = self.register();
                // SAFETY: as above.
                f(unsafe { &*r.rec })
            }
        }
    }

    fn register(&self) -> Registration {
        let g = &*self.global;
        // Acquire: pairs with the Release CAS in `push_chain`, so published nodes are
        // seen initialized.
        let mut p = g.records.load(Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: records live as long as the Global.
            let rec = unsafe { &*p };
            // Acquire: pairs with the Release in `Registration::drop`.
            if !rec.active.load(Ordering::Relaxed)
                && rec
                    .active
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return Registration {
                    global: self.global.clone(),
                    rec: p,
                };
            }
            p = rec.next;
        }
        let new = Box::into_raw(Box::new(ThreadRec {
            active: AtomicBool::new(true),
            next: ptr::null_mut(),
            local: UnsafeCell::new(RecLocal {
                retired: Vec::new(),
                free_slots: Vec::new(),
                scratch: Vec::new(),
                freed: Vec::new(),
            }),
        }));
        // SAFETY: `new` is ours; records live as long as the Global.
        unsafe { push_chain(&g.records, new, new) };
        Registration {
            global: self.global.clone(),
            rec: new,
        }
    }

    fn acquire_slot(&self) -> &Slot {
        let cached = self.with_rec(|rec| {
            // SAFETY: the record is owned by this thread; not re-entered.
            rec.local.with_mut(|l| unsafe { (*l).free_slots.pop() })
        });
        if let Some(s) = cached {
            // SAFETY: slots live as long as the Global, which `self` holds.
            return unsafe { &*s };
        }
        let g = &*self.global;
        // Acquire: pairs with the Release CAS in `push_chain`, so published nodes are
        // seen initialized.
        let mut p = g.slots.load(Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: slots live as long as the Global.
            let s = unsafe { &*p };
            // Acquire: pairs with the Release store of `false` in `release_slot` or
            // `Registration::drop`, so the previous owner's use of the slot is over.
            if !s.active.load(Ordering::Relaxed)
                && s.active
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                return s;
            }
            p = s.next;
        }
        let new = Box::into_raw(Box::new(Slot {
            ptr: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
            active: AtomicBool::new(true),
            next: ptr::null_mut(),
        }));
        g.slot_count.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `new` is ours; slots live as long as the Global.
        unsafe { push_chain(&g.slots, new, new) };
        // SAFETY: published slots live as long as the Global.
        unsafe { &*new }
    }

    fn release_slot(&self, slot: &Slot) {
        let ptr = slot as *const Slot;
        let kept = self.with_rec(|rec| {
            rec.local.with_mut(|l| {
                // SAFETY: owner-only record; not re-entered.
                let l = unsafe { &mut *l };
                if l.free_slots.len() < 8 {
                    l.free_slots.push(ptr);
                    true
                } else {
                    false
                }
            })
        });
        if !kept {
            // Release: the next owner's Acquire CAS sees the slot cleared.
            slot.active.store(false, Ordering::Release);
        }
    }

    /// Retires `ptr`: the `Box<T>` behind it is dropped once no hazard pointer of this
    /// domain protects it. Scans when this thread's list reaches the threshold.
    ///
    /// # Safety
    /// - `ptr` came from `Box::into_raw` and is retired exactly once,
    /// - it is unlinked: a `protect` that starts after this call cannot return it, and
    /// - dropping a `T` on another thread is sound (`T: Send` in practice), and whatever
    ///   `T`'s drop borrows outlives this domain.
    pub unsafe fn retire<T>(&self, ptr: *mut T) {
        unsafe fn drop_box<T>(p: *mut T) {
            // SAFETY: `p` is the `Box<T>` pointer passed to `retire::<T>`.
            drop(unsafe { Box::from_raw(p) });
        }
        // SAFETY: forwarded; `drop_box` reclaims exactly a `Box<T>`.
        unsafe { self.retire_with(ptr, drop_box::<T>) }
    }

    /// Retires `ptr` with a custom reclaim function, called once no hazard pointer of
    /// this domain protects it (for objects not allocated as a `Box`, or pools).
    ///
    /// # Safety
    /// - `ptr` is retired exactly once and is unlinked (as for [`retire`](Self::retire)),
    /// - calling `reclaim(ptr)` on any thread, once, is sound, and whatever it borrows
    ///   outlives this domain.
    ///
    /// One relaxation, for reference-counted objects: the same address may be retired
    /// more than once, and may be linked again after a retirement, when each retirement
    /// gives up a reference of its own (an `Arc` count) and the object stays alive
    /// through the others. Each retired entry is reclaimed independently, once no hazard
    /// pointer holds the address, so a reader protecting the address (through any link)
    /// delays every retirement of it.
    pub unsafe fn retire_with<T>(&self, ptr: *mut T, reclaim: unsafe fn(*mut T)) {
        // SAFETY: `*mut T` and `*mut u8` are ABI-compatible for sized `T` (same size,
        // no metadata), so calling `reclaim` through this type with the pointer cast
        // back from `*mut u8` is calling it with its own argument.
        let drop: unsafe fn(*mut u8) = unsafe { core::mem::transmute(reclaim) };
        let threshold = self.threshold();
        let scan = self.with_rec(|rec| {
            rec.local.with_mut(|l| {
                // SAFETY: owner-only record; not re-entered.
                let l = unsafe { &mut *l };
                l.retired.push(Retired {
                    ptr: ptr.cast(),
                    drop,
                });
                l.retired.len() >= threshold
            })
        });
        if scan {
            self.with_rec(|rec| self.global.scan(rec));
        }
    }

    /// Scans now: frees every object this thread retired that no hazard pointer
    /// protects, and adopts the orphans of exited threads. Returns how many were freed.
    pub fn eager_reclaim(&self) -> usize {
        self.with_rec(|rec| self.global.scan(rec))
    }
}

impl Global {
    /// The scan. Runs the destructors outside the owner-only borrow of the record, so a
    /// destructor may retire into this domain again.
    fn scan(&self, rec: &ThreadRec) -> usize {
        // Adopt orphans. Acquire: pairs with the Release push in `Registration::drop`.
        let mut orphans = if self.orphans.load(Ordering::Relaxed).is_null() {
            ptr::null_mut()
        } else {
            self.orphans.swap(ptr::null_mut(), Ordering::Acquire)
        };
        let (mut retired, mut hazards, mut freed) = rec.local.with_mut(|l| {
            // SAFETY: owner-only record; not re-entered.
            let l = unsafe { &mut *l };
            (
                core::mem::take(&mut l.retired),
                core::mem::take(&mut l.scratch),
                core::mem::take(&mut l.freed),
            )
        });
        while !orphans.is_null() {
            // SAFETY: the detached orphan chain is ours; nodes come from Box::into_raw.
            let o = unsafe { Box::from_raw(orphans) };
            orphans = o.next;
            retired.extend(o.items);
        }
        // SeqCst: pairs with the fence in `protect` (see the module docs).
        fence(Ordering::SeqCst);
        hazards.clear();
        // Acquire: pairs with the Release CAS in `push_chain`, so published nodes are
        // seen initialized.
        let mut p = self.slots.load(Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: slots live as long as the Global.
            let s = unsafe { &*p };
            // Acquire: pairs with the Release clear in `reset`, so the reader's accesses
            // happen before our free.
            let h = s.ptr.load(Ordering::Acquire);
            if !h.is_null() {
                hazards.push(h);
            }
            p = s.next;
        }
        hazards.sort_unstable();
        freed.clear();
        let mut kept = 0;
        for i in 0..retired.len() {
            if hazards.binary_search(&retired[i].ptr).is_ok() {
                retired.swap(kept, i);
                kept += 1;
            }
        }
        freed.extend(retired.drain(kept..));
        let n = freed.len();
        rec.local.with_mut(|l| {
            // SAFETY: owner-only record; not re-entered.
            let l = unsafe { &mut *l };
            // Anything retired meanwhile (by a destructor) is kept too.
            retired.append(&mut l.retired);
            l.retired = retired;
            l.scratch = hazards;
        });
        for r in freed.drain(..) {
            // SAFETY: `r.ptr` was retired with its matching `drop` and no slot holds it
            // after the fence, so no thread can still reach it.
            unsafe { (r.drop)(r.ptr) };
        }
        rec.local.with_mut(|l| {
            // SAFETY: owner-only record; not re-entered. Keep the larger buffer (a
            // destructor may have scanned meanwhile).
            let l = unsafe { &mut *l };
            if l.freed.capacity() < freed.capacity() {
                l.freed = freed;
            }
        });
        n
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        // Under loom, a model that fails unwinds outside the model, where loom's atomics
        // cannot be touched: leak instead of aborting the test binary.
        if cfg!(strata_loom) && std::thread::panicking() {
            return;
        }
        let g = &*self.global;
        // SAFETY: the record is ours until `active` is released below.
        let rec = unsafe { &*self.rec };
        g.scan(rec);
        let (leftover, slots) = rec.local.with_mut(|l| {
            // SAFETY: owner-only record; not re-entered.
            let l = unsafe { &mut *l };
            (
                core::mem::take(&mut l.retired),
                core::mem::take(&mut l.free_slots),
            )
        });
        for s in slots {
            // SAFETY: slots live as long as the Global. Release: the next owner's
            // Acquire CAS sees the slot cleared.
            unsafe { (*s).active.store(false, Ordering::Release) };
        }
        if !leftover.is_empty() {
            let node = Box::into_raw(Box::new(Orphan {
                items: leftover,
                next: ptr::null_mut(),
            }));
            // SAFETY: `node` is ours; batches are freed only after being detached.
            unsafe { push_chain(&g.orphans, node, node) };
        }
        // Release: pairs with the Acquire CAS in `register`.
        rec.active.store(false, Ordering::Release);
    }
}

impl Drop for Global {
    fn drop(&mut self) {
        // Under loom, a failing model unwinds outside the model: leak instead of abort.
        if cfg!(strata_loom) && std::thread::panicking() {
            return;
        }
        // No hazard pointer or registration is left (each holds a borrow or an Arc), so
        // nothing is protected: free everything.
        let mut r = self.records.load(Ordering::Relaxed);
        while !r.is_null() {
            // SAFETY: records come from Box::into_raw; we are the last owner.
            let rec = unsafe { Box::from_raw(r) };
            r = rec.next;
            for item in rec.local.into_inner().retired {
                // SAFETY: retired with its matching drop; nothing protects it.
                unsafe { (item.drop)(item.ptr) };
            }
        }
        let mut o = self.orphans.load(Ordering::Relaxed);
        while !o.is_null() {
            // SAFETY: as above.
            let orphan = unsafe { Box::from_raw(o) };
            o = orphan.next;
            for item in orphan.items {
                // SAFETY: as above.
                unsafe { (item.drop)(item.ptr) };
            }
        }
        let mut s = self.slots.load(Ordering::Relaxed);
        while !s.is_null() {
            // SAFETY: slots come from Box::into_raw; we are the last owner.
            let slot = unsafe { Box::from_raw(s) };
            s = slot.next;
        }
    }
}

impl<'d> HazardPointer<'d> {
    /// Acquires a hazard slot in `domain` (from this thread's cache, a released slot,
    /// or a new one).
    pub fn new_in(domain: &'d Domain) -> Self {
        HazardPointer {
            slot: domain.acquire_slot(),
            domain,
            _not_send: PhantomData,
        }
    }

    /// Loads `src` and protects the loaded pointer until the next `protect`, `reset`
    /// or drop. May return null.
    #[inline]
    pub fn protect<T>(&mut self, src: &AtomicPtr<T>) -> *mut T {
        let mut p = src.load(Ordering::Relaxed);
        loop {
            match self.try_protect(p, src) {
                Ok(p) => return p,
                Err(q) => p = q,
            }
        }
    }

    /// Publishes `ptr` and checks that `src` still holds it. `Ok(ptr)` if it is now
    /// protected, `Err(current)` with what `src` holds now otherwise.
    #[inline]
    pub fn try_protect<T>(&mut self, ptr: *mut T, src: &AtomicPtr<T>) -> Result<*mut T, *mut T> {
        self.publish(ptr.cast());
        // Acquire: pairs with the Release store that published the object.
        let now = src.load(Ordering::Acquire);
        if now == ptr { Ok(ptr) } else { Err(now) }
    }

    #[inline(always)]
    fn publish(&self, p: *mut u8) {
        #[cfg(all(target_arch = "x86_64", not(strata_loom), not(miri)))]
        {
            // SeqCst swap: `xchg` is a full barrier on x86_64 (cheaper than `mfence`);
            // it pairs with the SeqCst fence in `scan`.
            self.slot.ptr.swap(p, Ordering::SeqCst);
        }
        #[cfg(not(all(target_arch = "x86_64", not(strata_loom), not(miri))))]
        {
            // Release: when this slot protected another object before, the reads of
            // that object must happen before a scan that sees the new value frees it
            // (pairs with the scan's Acquire load of the slot).
            self.slot.ptr.store(p, Ordering::Release);
            // SeqCst: pairs with the fence in `scan`. The test-only `strata_weaken` cfg
            // removes it to show the loom model fails.
            #[cfg(not(strata_weaken))]
            fence(Ordering::SeqCst);
        }
    }

    /// Gives up the protection.
    #[inline]
    pub fn reset(&mut self) {
        // Release: pairs with the Acquire slot loads in `scan`.
        self.slot.ptr.store(ptr::null_mut(), Ordering::Release);
    }

    /// The domain this hazard pointer belongs to.
    pub fn domain(&self) -> &'d Domain {
        self.domain
    }
}

impl Drop for HazardPointer<'_> {
    fn drop(&mut self) {
        if cfg!(strata_loom) && std::thread::panicking() {
            return; // see `Registration::drop`
        }
        self.reset();
        self.domain.release_slot(self.slot);
    }
}

// SAFETY: a protected pointer stays allocated until reset, reprotect or drop: a scan
// frees only what no slot holds after its SeqCst fence, and `protect` validates after
// its own fence (Michael 2004, and the module docs).
unsafe impl Reclaim for Domain {
    type Guard<'r> = HazardPointer<'r>;

    #[inline]
    fn guard(&self) -> HazardPointer<'_> {
        HazardPointer::new_in(self)
    }
}

// SAFETY: see the `Reclaim` impl.
unsafe impl Protect for HazardPointer<'_> {
    #[inline]
    fn protect<T>(&mut self, src: &AtomicPtr<T>) -> *mut T {
        HazardPointer::protect(self, src)
    }

    #[inline]
    fn clear(&mut self) {
        self.reset();
    }

    #[inline]
    unsafe fn retire<T>(&self, ptr: *mut T) {
        // SAFETY: forwarded to our caller.
        unsafe { self.domain.retire(ptr) }
    }
}

#[cfg(not(strata_loom))]
mod default {
    use super::{Domain, HazardPointer};
    use crate::Reclaim;
    use std::sync::OnceLock;

    static DEFAULT: OnceLock<Domain> = OnceLock::new();

    /// The process-wide default hazard-pointer domain.
    pub fn default_domain() -> &'static Domain {
        DEFAULT.get_or_init(Domain::new)
    }

    /// The default hazard-pointer domain as a [`Reclaim`] scheme.
    #[derive(Debug, Clone, Copy, Default)]
    pub struct Hazard;

    // SAFETY: delegates to the default `Domain`'s impl.
    unsafe impl Reclaim for Hazard {
        type Guard<'r> = HazardPointer<'static>;

        #[inline]
        fn guard(&self) -> HazardPointer<'static> {
            HazardPointer::new_in(default_domain())
        }
    }

    impl HazardPointer<'static> {
        /// Acquires a hazard pointer in the default domain.
        pub fn new() -> Self {
            HazardPointer::new_in(default_domain())
        }
    }

    impl Default for HazardPointer<'static> {
        fn default() -> Self {
            Self::new()
        }
    }
}

#[cfg(not(strata_loom))]
pub use default::{Hazard, default_domain};

#[cfg(test)]
#[path = "hazard/tests.rs"]
mod tests;
