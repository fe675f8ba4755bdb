//! Epoch-based reclamation (EBR) with an RCU-style grace period and a QSBR mode.
//!
//! # The algorithm
//!
//! This is Fraser's epoch scheme (K. Fraser, *Practical lock-freedom*, PhD thesis,
//! Cambridge 2004, §5.2.3), in the form McKenney and Slingwine's RCU gives a name to:
//! a *read-side critical section* is the lifetime of a [`Guard`], and a *grace period*
//! has elapsed once every critical section that was running when it started has ended
//! (P. McKenney, J. Slingwine, *Read-copy update*, OLS 2001; McKenney et al.,
//! *RCU usage in the Linux kernel: one decade later*, 2013).
//!
//! * A [`Domain`] holds a global epoch (a counter that moves in steps of two), an
//!   append-only list of participants (one per registered thread, reused after a
//!   thread leaves), and a lock-free stack of sealed bags of garbage.
//! * [`LocalHandle::pin`] publishes "pinned in epoch *e*" in the thread's participant
//!   record, where *e* is the global epoch it read, followed by a `SeqCst` fence.
//! * [`Guard::defer`] puts a function into the thread's local bag. A full bag is
//!   *sealed* with the current global epoch and pushed onto the domain's stack, and the
//!   thread then collects.
//! * *Collecting* first tries to advance the global epoch: that succeeds when every
//!   pinned participant is pinned in the current epoch. Then every sealed bag whose
//!   epoch is at least two steps behind the global epoch is run: no thread can still
//!   be inside a critical section that began before the bag's functions' objects were
//!   unlinked, because such a thread would have held the epoch back.
//!
//! # What is different from crossbeam-epoch, and why
//!
//! * **Bounded garbage without `flush`.** crossbeam-epoch frees at most eight bags per
//!   collection and collects once per 128 pins, so a thread that defers more than a few
//!   objects per pin grows the garbage queue without bound until someone calls `flush`.
//!   Here every sealed bag triggers a collection, and a collection takes *all* expired
//!   bags at once (the stack is detached in one swap), so under steady load with no
//!   long-held guard the garbage stays bounded by what is deferred while the epoch
//!   takes two steps, plus one partial bag per thread. `tests/epoch_memory.rs` counts
//!   live allocations during such a run to show it. Note that a thread *preempted*
//!   while pinned is a long-held guard for as long as it is off the CPU: with more
//!   threads than cores, what is deferred during one time slice (tens of thousands of
//!   objects at millions of operations per second) is the realistic bound, and only
//!   hazard pointers bound garbage independently of scheduling.
//! * **At most one collector per epoch.** A collection first claims the epoch it saw
//!   (`last_collect`); a second thread that finds nothing new to expire returns at
//!   once instead of walking the same bags.
//! * **A real grace period.** [`LocalHandle::synchronize`] returns once every critical
//!   section that was open when it was called has closed (it drives the epoch forward
//!   two steps), and refuses to run from inside a critical section, where it could only
//!   deadlock.
//! * **QSBR.** A thread can go [`online`](LocalHandle::online) once and then only
//!   announce [`quiescent`](LocalHandle::quiescent) states at points where it holds no
//!   references; its pins are then free of fences.
//!
//! # Progress and limits
//!
//! [`pin`], [`Guard::defer`] and dropping a guard are lock-free (wait-free except for
//! the occasional collection, which is a bounded walk of the participant list plus
//! running expired garbage). [`LocalHandle::synchronize`] is blocking by definition.
//! **A thread stalled while pinned blocks all reclamation in its domain**: the epoch
//! cannot advance past it, so garbage grows for as long as it stays pinned. This is
//! inherent to epochs (hazard pointers, in [`crate::hazard`], do not have this
//! weakness), and `tests/stalled_reader.rs` shows it.
//!
//! # Memory ordering
//!
//! * `pin`: the participant store is followed by a `SeqCst` fence (on x86_64, one
//!   `xchg`, which is a full barrier, as crossbeam does). It pairs with the `SeqCst`
//!   fence in `try_advance` before the participant scan: either the advancer sees the
//!   pin, or the pinned thread sees every unlink that preceded the advancer's fence.
//! * unpin: `Release` store of 0, paired with the `Acquire` loads of the scan, so
//!   every access made inside the critical section happens before the frees. The
//!   epoch CAS is `Release` (`Acquire` on failure) and the epoch load that starts a
//!   scan is `Acquire`, so the edge reaches every thread that frees on the strength
//!   of an epoch it read, whoever advanced it. No fence is needed for this edge,
//!   which is what lets ThreadSanitizer check it.
//! * sealing a bag: a `SeqCst` fence, then a `Relaxed` load of the epoch the bag is
//!   stamped with (crossbeam-epoch's `push_bag` does the same).
//! * the garbage stack: `Release` push, `Acquire` detach.

use core::cell::RefCell;
use core::marker::PhantomData;
use core::ptr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::SharedArc as Arc;
use strata_primitives::cell::UnsafeCell;
use strata_primitives::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, fence};
use strata_primitives::{Backoff, CachePadded};

use crate::deferred::{Bag, Deferred};
use crate::{Linked, Protect, Reclaim, ReclaimError, push_chain};

/// How many pins between two collections (crossbeam-epoch uses 128 too). Under loom
/// the models collect explicitly (`flush`), so that a seal and a reader's pin can share
/// an epoch.
const PINS_BETWEEN_COLLECT: usize = if cfg!(strata_loom) { usize::MAX } else { 128 };
/// The epoch moves in steps of two; the low bit of a participant's state is "pinned".
const STEP: usize = 2;
/// A bag sealed in epoch `e` is run once the global epoch is `e + EXPIRY`. The
/// test-only `strata_weaken` cfg makes it one step, the classic off-by-one of epoch
/// schemes, to show that the loom model catches it.
const EXPIRY: usize = if cfg!(strata_weaken) { STEP } else { 2 * STEP };

/// `a - b` for epochs, signed, so that wrap-around and stale readings compare right.
#[inline]
fn epoch_diff(a: usize, b: usize) -> isize {
    a.wrapping_sub(b) as isize
}

struct Global {
    epoch: CachePadded<AtomicUsize>,
    /// The last epoch in which a collection ran (claimed with a CAS).
    last_collect: CachePadded<AtomicUsize>,
    participants: AtomicPtr<Participant>,
    garbage: CachePadded<AtomicPtr<SealedBag>>,
    /// Number of sealed bags on the stack (approximate; for [`Domain::pending_bags`]).
    sealed: AtomicUsize,
}

struct SealedBag {
    epoch: usize,
    bag: Bag,
    next: *mut SealedBag,
}

impl Linked for SealedBag {
    unsafe fn set_next(this: *mut Self, next: *mut Self) {
        // SAFETY: the caller owns the unpublished node.
        unsafe { (*this).next = next };
    }
}

impl Linked for Participant {
    unsafe fn set_next(this: *mut Self, next: *mut Self) {
        // SAFETY: the caller owns the unpublished record.
        unsafe { (*this).next = next };
    }
}

/// One thread's record in a domain. Records are never freed before the domain and are
/// reused by later threads (`active` is the ownership flag).
struct Participant {
    /// 0 when not pinned, else `epoch | 1`. Written only by the owner.
    state: CachePadded<AtomicUsize>,
    /// Owned by a live handle. Claimed with an Acquire CAS, released with a Release
    /// store, so the owner-only `local` passes between owners without a race.
    active: AtomicBool,
    global: *const Global,
    /// Immutable after the record is published.
    next: *mut Participant,
    local: UnsafeCell<Local>,
}

/// Owner-only state of a participant.
struct Local {
    guard_count: usize,
    handle_count: usize,
    pin_count: usize,
    online: bool,
    bag: Bag,
    /// Keeps the domain alive while a handle or a guard of this participant lives.
    keep_alive: Option<Arc<Global>>,
}

/// An epoch domain: a global epoch, its participants and its garbage.
///
/// Most programs use the default domain through [`pin`]; a separate domain isolates
/// one structure's garbage and stalls from everything else. Cloning a `Domain` gives
/// another handle to the same domain.
///
/// ```
/// use strata_reclaim::epoch::Domain;
///
/// let domain = Domain::new();
/// let handle = domain.register();
/// let guard = handle.pin();
/// guard.defer(|| println!("runs after a grace period"));
/// drop(guard);
/// handle.synchronize().unwrap(); // a full grace period has now elapsed
/// ```
#[derive(Clone)]
pub struct Domain {
    global: Arc<Global>,
}

/// A thread's registration in a [`Domain`]. Not `Send`: it stands for one thread.
///
/// Dropping the handle hands its partial bag of garbage to the domain.
pub struct LocalHandle {
    part: *const Participant,
    _not_send: PhantomData<*mut ()>,
}

/// A pinned read-side critical section. While it lives, nothing deferred after it was
/// created, and nothing that was reachable when it was created, is freed.
///
/// Not `Send` nor `Sync`: a guard belongs to the thread that pinned.
#[must_use = "a guard protects only while it is alive"]
pub struct Guard {
    part: *const Participant,
    _not_send: PhantomData<*mut ()>,
}

impl core::fmt::Debug for Domain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Domain")
            .field("epoch", &self.global.epoch.load(Ordering::Relaxed))
            .field("pending_bags", &self.pending_bags())
            .finish()
    }
}

impl core::fmt::Debug for LocalHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("LocalHandle")
            .field("pinned", &self.is_pinned())
            .finish()
    }
}

impl core::fmt::Debug for Guard {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Guard { .. }")
    }
}

impl Default for Domain {
    fn default() -> Self {
        Self::new()
    }
}

impl Domain {
    /// A new, empty domain.
    pub fn new() -> Self {
        Domain {
            global: Arc::new(Global {
                epoch: CachePadded::new(AtomicUsize::new(0)),
                last_collect: CachePadded::new(AtomicUsize::new(0)),
                participants: AtomicPtr::new(ptr::null_mut()),
                garbage: CachePadded::new(AtomicPtr::new(ptr::null_mut())),
                sealed: AtomicUsize::new(0),
            }),
        }
    }

    /// Registers the calling thread, reusing a record a departed thread left if there
    /// is one. Lock-free.
    pub fn register(&self) -> LocalHandle {
        let g = &*self.global;
        // Acquire: pairs with the Release CAS in `push_chain`, so published nodes are
        // seen initialized.
        let mut p = g.participants.load(Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: participants are freed only when the Global drops, and we hold
            // an Arc to it.
            let part = unsafe { &*p };
            // Acquire: pairs with the Release store of `false` by the record's previous
            // owner, so its writes to `local` happen before ours.
            if !part.active.load(Ordering::Relaxed)
                && part
                    .active
                    .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                    .is_ok()
            {
                part.local.with_mut(|l| {
                    // SAFETY: we own the record now (the CAS above).
                    let l = unsafe { &mut *l };
                    debug_assert_eq!(l.guard_count, 0);
                    l.handle_count = 1;
                    l.online = false;
                    l.keep_alive = Some(self.global.clone());
                });
                return LocalHandle {
                    part: p,
                    _not_send: PhantomData,
                };
            }
            p = part.next;
        }
        let new = Box::into_raw(Box::new(Participant {
            state: CachePadded::new(AtomicUsize::new(0)),
            active: AtomicBool::new(true),
            global: Arc::as_ptr(&self.global),
            next: ptr::null_mut(),
            local: UnsafeCell::new(Local {
                guard_count: 0,
                handle_count: 1,
                pin_count: 0,
                online: false,
                bag: Bag::new(),
                keep_alive: Some(self.global.clone()),
            }),
        }));
        // SAFETY: `new` is ours; records live as long as the Global.
        unsafe { push_chain(&g.participants, new, new) };
        LocalHandle {
            part: new,
            _not_send: PhantomData,
        }
    }

    /// The number of sealed bags of garbage waiting for their grace period
    /// (approximate under concurrency).
    pub fn pending_bags(&self) -> usize {
        self.global.sealed.load(Ordering::Relaxed)
    }

    /// The current global epoch (it moves in steps of two). For diagnostics and tests.
    pub fn epoch(&self) -> usize {
        self.global.epoch.load(Ordering::Relaxed)
    }

    /// `true` if `a` and `b` are handles to the same domain.
    pub fn ptr_eq(a: &Domain, b: &Domain) -> bool {
        Arc::ptr_eq(&a.global, &b.global)
    }
}

impl Global {
    /// Tries to move the epoch one step. Returns the global epoch afterwards.
    #[cold]
    fn try_advance(&self) -> usize {
        // Acquire: pairs with the Release CAS that set `e`, so the critical sections
        // that advancer saw ended happen before anything freed on the strength of `e`
        // (our caller may free bags stamped two steps before it).
        let e = self.epoch.load(Ordering::Acquire);
        // SeqCst: pairs with the fence in `pin`; either we see that thread's pin, or it
        // sees every unlink made before this fence.
        fence(Ordering::SeqCst);
        // Acquire: pairs with the Release CAS in `push_chain`, so published nodes are
        // seen initialized.
        let mut p = self.participants.load(Ordering::Acquire);
        while !p.is_null() {
            // SAFETY: participants live as long as the Global, which `self` is.
            let part = unsafe { &*p };
            // Acquire: pairs with the Release unpin store (or the later pin, an RMW
            // or a store after it on the same thread) that we read, so the critical
            // sections that ended happen before anything freed in the new epoch.
            // Acquire loads rather than Relaxed loads and one Acquire fence: the same
            // instructions on x86_64, a cold path elsewhere, and an edge that
            // ThreadSanitizer (which does not model fences) can see.
            let s = part.state.load(Ordering::Acquire);
            if s & 1 == 1 && s & !1 != e {
                return e;
            }
            p = part.next;
        }
        let new = e.wrapping_add(STEP);
        // Release: the thread that reads the new epoch (a collector, or a loser of this
        // CAS) inherits our view. Acquire on failure: a loser returns the winner's
        // epoch and may free bags on its strength, so it must see what the winner saw.
        match self
            .epoch
            .compare_exchange(e, new, Ordering::Release, Ordering::Acquire)
        {
            Ok(_) => new,
            Err(cur) => cur,
        }
    }

    /// Stamps `bag` with the current epoch and pushes it onto the garbage stack.
    fn push_bag(&self, bag: Bag) {
        // SeqCst: orders the unlinks of everything in the bag before the epoch load,
        // as in crossbeam-epoch's `push_bag`.
        fence(Ordering::SeqCst);
        let epoch = self.epoch.load(Ordering::Relaxed);
        let node = Box::into_raw(Box::new(SealedBag {
            epoch,
            bag,
            next: ptr::null_mut(),
        }));
        self.sealed.fetch_add(1, Ordering::Relaxed);
        // SAFETY: `node` is ours; bags are freed only after being detached.
        unsafe { push_chain(&self.garbage, node, node) };
    }

    /// Advances the epoch if it can and runs every expired bag.
    #[cold]
    /// The periodic collection of `pin` (and of QSBR's `quiescent`): only when sealed
    /// garbage waits. With none, advancing the epoch frees nothing, and it would write
    /// the shared epoch line (and `last_collect`) every [`PINS_BETWEEN_COLLECT`] pins of
    /// every thread, which costs read-mostly users (an `RcuCell` read by two cores ran
    /// at half speed). Garbage still in local bags is sealed (and collected) when a bag
    /// fills or is flushed, which then makes the periodic collections resume.
    #[inline]
    fn collect_if_garbage(&self) {
        if self.sealed.load(Ordering::Relaxed) != 0 {
            self.collect();
        }
    }

    fn collect(&self) {
        // `now` may be stale (a blocked `try_advance` returns the epoch it first read,
        // and others may have advanced since), so every comparison of epochs is signed
        // and `last_collect` only moves forward.
        let now = self.try_advance();
        let last = self.last_collect.load(Ordering::Relaxed);
        if epoch_diff(now, last) <= 0
            || self
                .last_collect
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return; // nothing newly expired, or another thread collects this epoch
        }
        self.collect_expired(now);
    }

    fn collect_expired(&self, now: usize) {
        // Acquire: pairs with the Release pushes, so the bags' contents are visible.
        let mut p = self.garbage.swap(ptr::null_mut(), Ordering::Acquire);
        let mut keep_first: *mut SealedBag = ptr::null_mut();
        let mut keep_last: *mut SealedBag = ptr::null_mut();
        while !p.is_null() {
            // SAFETY: the detached chain is exclusively ours.
            let next = unsafe { (*p).next };
            // SAFETY: as above.
            // Signed: a bag sealed in an epoch newer than a stale `now` is not expired.
            let expired = epoch_diff(now, unsafe { (*p).epoch }) >= EXPIRY as isize;
            if expired {
                self.sealed.fetch_sub(1, Ordering::Relaxed);
                // SAFETY: every node was made by `Box::into_raw` in `push_bag`.
                let mut node = unsafe { Box::from_raw(p) };
                node.bag.call_all();
            } else {
                if keep_first.is_null() {
                    keep_first = p;
                } else {
                    // SAFETY: `keep_last` is a node of our chain.
                    unsafe { (*keep_last).next = p };
                }
                keep_last = p;
            }
            p = next;
        }
        if !keep_first.is_null() {
            // SAFETY: the kept chain is ours (detached above), linked first to last.
            unsafe { push_chain(&self.garbage, keep_first, keep_last) };
        }
    }
}

impl Drop for Global {
    fn drop(&mut self) {
        // Under loom, a failing model unwinds outside the model: leak instead of abort.
        if cfg!(strata_loom) && std::thread::panicking() {
            return;
        }
        // No handle or guard is alive (each holds an Arc), so everything is expired.
        let mut g = self.garbage.load(Ordering::Relaxed);
        while !g.is_null() {
            // SAFETY: nodes come from `Box::into_raw`; we are the last owner.
            let mut node = unsafe { Box::from_raw(g) };
            g = node.next;
            node.bag.call_all();
        }
        let mut p = self.participants.load(Ordering::Relaxed);
        while !p.is_null() {
            // SAFETY: records come from `Box::into_raw` in `register`; no handle is left.
            let part = unsafe { Box::from_raw(p) };
            p = part.next;
            drop(part);
        }
    }
}

impl Participant {
    #[inline]
    fn global(&self) -> &Global {
        // SAFETY: `keep_alive` holds an Arc to this Global while any handle or guard of
        // this participant exists, and only those call this.
        unsafe { &*self.global }
    }

    /// Calls `f` with the owner-only local state.
    ///
    /// # Safety
    /// - the caller is the owning thread (it holds a handle or guard of this record),
    /// - `f` does not call back into a method that also takes the local state.
    #[inline(always)]
    unsafe fn local<R>(&self, f: impl FnOnce(&mut Local) -> R) -> R {
        // SAFETY: owner-only access, per the preconditions.
        self.local.with_mut(|l| f(unsafe { &mut *l }))
    }

    /// Publishes "pinned in the current epoch" and the fence that goes with it.
    #[inline(always)]
    fn publish_pin(&self) {
        let e = self.global().epoch.load(Ordering::Relaxed);
        #[cfg(all(target_arch = "x86_64", not(strata_loom), not(miri)))]
        {
            // SeqCst swap: `xchg` is a full barrier on x86_64 and cheaper than `mfence`;
            // it pairs with the SeqCst fence in `try_advance`.
            self.state.swap(e | 1, Ordering::SeqCst);
        }
        #[cfg(not(all(target_arch = "x86_64", not(strata_loom), not(miri))))]
        {
            // Release: when this re-pins (`repin`, `quiescent`), the accesses of the
            // section that ends here must happen before a free by an advancer that sees
            // the new state (pairs with its Acquire loads of the participant states in
            // `try_advance`), as in crossbeam's `repin`.
            self.state.store(e | 1, Ordering::Release);
            // SeqCst: pairs with the fence in `try_advance` (see the module docs).
            fence(Ordering::SeqCst);
        }
    }

    #[inline(always)]
    fn pin(&self) {
        // SAFETY: called by the owner (through a handle); `local` is not re-entered.
        let first = unsafe {
            self.local(|l| {
                l.guard_count = l.guard_count.checked_add(1).expect("guard count overflow");
                l.guard_count == 1
            })
        };
        if first {
            self.publish_pin();
            // SAFETY: owner; not re-entered.
            let collect = unsafe {
                self.local(|l| {
                    l.pin_count = l.pin_count.wrapping_add(1);
                    l.pin_count % PINS_BETWEEN_COLLECT == 0
                })
            };
            if collect {
                self.global().collect_if_garbage();
            }
        }
    }

    /// Ends one guard; the outermost unpins, and if the handle is gone too, finalizes.
    ///
    /// A raw pointer, not `&self`: finalizing may free the record (when it drops the
    /// last reference to the domain), which must not happen under a reference that is
    /// a function argument.
    ///
    /// # Safety
    /// `this` is a live record owned by the calling thread, with a guard to end.
    #[inline(always)]
    unsafe fn unpin(this: *const Participant) {
        let finalize = {
            // SAFETY: live and owned (the caller's guard keeps it so).
            let part = unsafe { &*this };
            // SAFETY: owner; not re-entered.
            let (last, finalize) = unsafe {
                part.local(|l| {
                    l.guard_count -= 1;
                    (
                        l.guard_count == 0,
                        l.guard_count == 0 && l.handle_count == 0,
                    )
                })
            };
            if !last {
                return;
            }
            // Release: pairs with the Acquire state loads in `try_advance`; everything this
            // critical section did happens before any free it could block.
            part.state.store(0, Ordering::Release);
            finalize
        };
        if finalize {
            // SAFETY: the last guard and the handle are gone; we still own the record.
            unsafe { Participant::finalize(this) };
        }
    }

    fn defer(&self, d: Deferred) {
        // SAFETY: owner; not re-entered (the closure only touches the bag).
        let rejected = unsafe { self.local(|l| l.bag.try_push(d)) };
        if let Err(d) = rejected {
            self.seal_and_collect();
            // SAFETY: owner; the bag was just emptied, so this push succeeds.
            let r = unsafe { self.local(|l| l.bag.try_push(d)) };
            debug_assert!(r.is_ok());
            if let Err(d) = r {
                self.push_single(d);
            }
        }
    }

    #[cold]
    fn push_single(&self, d: Deferred) {
        let mut bag = Bag::new();
        let _ = bag.try_push(d);
        self.global().push_bag(bag);
    }

    /// Seals the local bag (if not empty), hands it to the domain and collects.
    #[cold]
    fn seal_and_collect(&self) {
        // SAFETY: owner; not re-entered.
        let bag = unsafe { self.local(|l| core::mem::replace(&mut l.bag, Bag::new())) };
        if !bag.is_empty() {
            self.global().push_bag(bag);
        }
        self.global().collect();
    }

    /// The last handle and the last guard are gone: give the garbage to the domain and
    /// the record back to the list.
    ///
    /// # Safety
    /// `this` is a live record owned by the calling thread, with no guard and no
    /// handle left. The record may be freed before this returns.
    #[cold]
    unsafe fn finalize(this: *const Participant) {
        let keep_alive = {
            // SAFETY: live and owned until `active` is released below; this reference
            // is not used after that.
            let part = unsafe { &*this };
            // SAFETY: owner; not re-entered.
            let bag = unsafe {
                part.local(|l| {
                    debug_assert_eq!(l.guard_count, 0);
                    l.online = false;
                    core::mem::replace(&mut l.bag, Bag::new())
                })
            };
            if !bag.is_empty() {
                part.global().push_bag(bag);
            }
            part.global().collect();
            // SAFETY: owner; take the keep-alive before giving up the record.
            let keep_alive = unsafe { part.local(|l| l.keep_alive.take()) };
            // Release: pairs with the Acquire CAS in `register`; the next owner sees
            // our writes to `local`. The record is not touched after this store.
            part.active.store(false, Ordering::Release);
            keep_alive
        };
        // May drop the Global, and this record with it: no reference to it is live.
        drop(keep_alive);
    }
}

impl LocalHandle {
    #[inline(always)]
    fn part(&self) -> &Participant {
        // SAFETY: the handle keeps the domain (and so the record) alive.
        unsafe { &*self.part }
    }

    /// Enters a read-side critical section. Nested pins are a counter increment; the
    /// outermost costs one store and one full fence (one `xchg` on x86_64).
    #[inline]
    pub fn pin(&self) -> Guard {
        self.part().pin();
        Guard {
            part: self.part,
            _not_send: PhantomData,
        }
    }

    /// `true` while a guard of this handle lives (or the thread is online in QSBR mode).
    pub fn is_pinned(&self) -> bool {
        // SAFETY: owner thread (the handle is not Send); not re-entered.
        unsafe { self.part().local(|l| l.guard_count > 0) }
    }

    /// Seals this thread's partial bag, hands it to the domain and collects what has
    /// expired. Never needed for boundedness; useful before a thread idles.
    pub fn flush(&self) {
        let g = self.pin();
        g.flush();
    }

    /// QSBR: goes online. Until [`offline`](Self::offline), the thread counts as being
    /// inside one long critical section, interrupted only at the points where it calls
    /// [`quiescent`](Self::quiescent); meanwhile its own pins cost a counter increment.
    ///
    /// Returns [`ReclaimError::AlreadyOnline`] if it is already online.
    pub fn online(&self) -> Result<(), ReclaimError> {
        // SAFETY: owner; not re-entered.
        let was = unsafe {
            self.part()
                .local(|l| core::mem::replace(&mut l.online, true))
        };
        if was {
            return Err(ReclaimError::AlreadyOnline);
        }
        self.part().pin();
        Ok(())
    }

    /// QSBR: goes offline (ends the implicit critical section of [`online`](Self::online)).
    pub fn offline(&self) -> Result<(), ReclaimError> {
        // SAFETY: owner; not re-entered.
        let was = unsafe {
            self.part()
                .local(|l| core::mem::replace(&mut l.online, false))
        };
        if !was {
            return Err(ReclaimError::NotOnline);
        }
        // SAFETY: our record; the QSBR section is the guard being ended. The handle
        // still counts, so this does not finalize.
        unsafe { Participant::unpin(self.part) };
        Ok(())
    }

    /// QSBR: announces a quiescent state, a point where this thread holds no reference
    /// into any structure of the domain. Moves the thread to the current epoch and
    /// collects now and then. Refused while a [`Guard`] of this handle is alive (its
    /// references would lose their protection) or when the thread is not online.
    pub fn quiescent(&self) -> Result<(), ReclaimError> {
        let part = self.part();
        // SAFETY: owner; not re-entered.
        let (online, guards) = unsafe { part.local(|l| (l.online, l.guard_count)) };
        if !online {
            return Err(ReclaimError::NotOnline);
        }
        if guards != 1 {
            return Err(ReclaimError::GuardHeld);
        }
        part.publish_pin();
        // SAFETY: owner; not re-entered.
        let collect = unsafe {
            part.local(|l| {
                l.pin_count = l.pin_count.wrapping_add(1);
                l.pin_count % PINS_BETWEEN_COLLECT == 0
            })
        };
        if collect {
            part.global().collect_if_garbage();
        }
        Ok(())
    }

    /// Waits for a grace period: returns once every read-side critical section of this
    /// domain that was open when it was called has ended. Blocking.
    ///
    /// Refused with [`ReclaimError::WouldDeadlock`] if this thread is itself pinned or
    /// online: it would wait for itself. A reader stalled while pinned makes this wait
    /// as long as it stalls; see [`synchronize_timeout`](Self::synchronize_timeout).
    pub fn synchronize(&self) -> Result<(), ReclaimError> {
        self.synchronize_inner(None)
    }

    /// [`synchronize`](Self::synchronize) that gives up after `timeout` with
    /// [`ReclaimError::Timeout`].
    pub fn synchronize_timeout(&self, timeout: Duration) -> Result<(), ReclaimError> {
        self.synchronize_inner(Some(timeout))
    }

    fn synchronize_inner(&self, timeout: Option<Duration>) -> Result<(), ReclaimError> {
        if self.is_pinned() {
            return Err(ReclaimError::WouldDeadlock);
        }
        let g = self.part().global();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // SeqCst: orders the caller's earlier unlinks before the epoch we start from.
        fence(Ordering::SeqCst);
        let start = g.epoch.load(Ordering::Relaxed);
        let backoff = Backoff::new();
        let mut sleep = Duration::from_micros(10);
        // Two steps past `start`: every section pinned at or before `start` has ended.
        while epoch_diff(g.try_advance(), start) < EXPIRY as isize {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ReclaimError::Timeout);
            }
            if backoff.is_completed() && !cfg!(strata_loom) {
                std::thread::sleep(sleep);
                sleep = (sleep * 2).min(Duration::from_millis(1));
            } else {
                backoff.snooze();
            }
        }
        Ok(())
    }
}

impl Drop for LocalHandle {
    fn drop(&mut self) {
        // Under loom, a model that fails unwinds outside the model, where loom's atomics
        // cannot be touched: leak instead of aborting the test binary.
        if cfg!(strata_loom) && std::thread::panicking() {
            return;
        }
        // Going offline first ends the implicit QSBR critical section while the handle
        // still counts, so `unpin` cannot finalize under our feet.
        let _ = self.offline();
        // SAFETY: owner; not re-entered.
        let finalize = unsafe {
            self.part().local(|l| {
                l.handle_count -= 1;
                l.handle_count == 0 && l.guard_count == 0
            })
        };
        if finalize {
            // SAFETY: no guard and no handle left; the record is ours.
            unsafe { Participant::finalize(self.part) };
        }
    }
}

impl Guard {
    #[inline(always)]
    fn part(&self) -> &Participant {
        // SAFETY: the guard keeps its record alive (guard_count > 0 blocks finalize).
        unsafe { &*self.part }
    }

    /// Defers `f` until every critical section that may still see what it frees has
    /// ended.
    pub fn defer<F: FnOnce() + Send + 'static>(&self, f: F) {
        // SAFETY: `F: Send + 'static` meets both preconditions of `Deferred::new`.
        self.part().defer(unsafe { Deferred::new(f) });
    }

    /// [`defer`](Self::defer) without the `Send + 'static` bounds.
    ///
    /// # Safety
    /// - `f` must be sound to run on another thread, and
    /// - everything it borrows must live until the domain runs it (at the latest when
    ///   the domain is dropped).
    pub unsafe fn defer_unchecked<F: FnOnce()>(&self, f: F) {
        // SAFETY: forwarded to our caller.
        self.part().defer(unsafe { Deferred::new(f) });
    }

    /// Defers dropping the `Box<T>` behind `ptr`.
    ///
    /// # Safety
    /// - `ptr` came from `Box::into_raw` and is retired exactly once,
    /// - it is no longer reachable for threads that pin after this call, and
    /// - dropping a `T` on another thread is sound (`T: Send` in practice).
    pub unsafe fn defer_destroy<T>(&self, ptr: *mut T) {
        // SAFETY: the caller's preconditions are `defer_unchecked`'s plus the Box
        // provenance that `Box::from_raw` needs.
        unsafe { self.defer_unchecked(move || drop(Box::from_raw(ptr))) };
    }

    /// Seals this thread's bag, hands it to the domain and collects what has expired.
    pub fn flush(&self) {
        self.part().seal_and_collect();
    }

    /// Moves this critical section to the current epoch, if it is the thread's only
    /// guard: references obtained before the call must not be used after it. Lets a
    /// long-running reader stop holding back reclamation.
    pub fn repin(&mut self) {
        // SAFETY: owner; not re-entered.
        let only = unsafe { self.part().local(|l| l.guard_count == 1 && !l.online) };
        if only {
            self.part().publish_pin();
        }
    }
}

impl Drop for Guard {
    #[inline]
    fn drop(&mut self) {
        if cfg!(strata_loom) && std::thread::panicking() {
            return; // see `LocalHandle::drop`
        }
        // SAFETY: the guard's record, owned by this thread; this ends the guard.
        unsafe { Participant::unpin(self.part) };
    }
}

// ---------------------------------------------------------------------------------
// The default domain.

#[cfg(not(strata_loom))]
mod default {
    use super::{Domain, Guard, LocalHandle};
    use crate::ReclaimError;
    use std::sync::OnceLock;

    static DEFAULT: OnceLock<Domain> = OnceLock::new();

    std::thread_local! {
        static HANDLE: LocalHandle = default_domain().register();
    }

    /// The process-wide default domain.
    pub fn default_domain() -> &'static Domain {
        DEFAULT.get_or_init(Domain::new)
    }

    #[inline]
    pub(super) fn with_handle<R>(mut f: impl FnMut(&LocalHandle) -> R) -> R {
        HANDLE
            .try_with(|h| f(h))
            .unwrap_or_else(|_| f(&default_domain().register()))
    }

    /// Pins the current thread in the default domain.
    ///
    /// ```
    /// let guard = strata_reclaim::epoch::pin();
    /// guard.defer(|| ());
    /// ```
    #[inline]
    pub fn pin() -> Guard {
        with_handle(|h| h.pin())
    }

    /// Waits for a grace period of the default domain (see
    /// [`LocalHandle::synchronize`]).
    pub fn synchronize() -> Result<(), ReclaimError> {
        with_handle(|h| h.synchronize())
    }

    /// `true` while the current thread holds a guard of the default domain (so that
    /// [`synchronize`] would fail instead of waiting for itself).
    ///
    /// ```
    /// assert!(!strata_reclaim::epoch::is_pinned());
    /// let guard = strata_reclaim::epoch::pin();
    /// assert!(strata_reclaim::epoch::is_pinned());
    /// drop(guard);
    /// assert!(!strata_reclaim::epoch::is_pinned());
    /// ```
    pub fn is_pinned() -> bool {
        with_handle(|h| h.is_pinned())
    }

    /// Seals and hands over this thread's garbage in the default domain, and collects.
    pub fn flush() {
        with_handle(|h| h.flush())
    }
}

#[cfg(not(strata_loom))]
pub use default::{default_domain, flush, is_pinned, pin, synchronize};

// ---------------------------------------------------------------------------------
// Per-thread handles to any domain, for the `Reclaim` trait.

strata_primitives::thread_local! {
    // Not `const`-initialized: loom's `thread_local!` has no `const` form.
    #[allow(clippy::missing_const_for_thread_local)]
    static HANDLES: RefCell<Vec<(Domain, Rc<LocalHandle>)>> = RefCell::new(Vec::new());
}

impl Domain {
    /// Pins the calling thread in this domain, registering it on first use (one handle
    /// per thread and domain is cached in a thread-local; a cached handle of a domain
    /// that only other threads' handles still reference is released the next time
    /// this thread registers with a new domain).
    pub fn pin(&self) -> Guard {
        let handle = HANDLES.try_with(|hs| {
            let found = hs
                .borrow()
                .iter()
                .find(|(d, _)| Domain::ptr_eq(d, self))
                .map(|(_, h)| Rc::clone(h));
            if let Some(h) = found {
                return h;
            }
            // Drop handles of domains nobody else holds any more (the cache's clone
            // and the handle's keep-alive are the only references left). They are
            // dropped after the borrow ends: dropping one may run deferred functions.
            let stale: Vec<_> = {
                let mut hs = hs.borrow_mut();
                let (keep, stale) = core::mem::take(&mut *hs)
                    .into_iter()
                    .partition(|(d, _)| Arc::strong_count(&d.global) > 2);
                *hs = keep;
                stale
            };
            drop(stale);
            let h = Rc::new(self.register());
            hs.borrow_mut().push((self.clone(), Rc::clone(&h)));
            h
        });
        match handle {
            // The RefCell is not borrowed while pinning, so deferred functions that a
            // collection runs may pin again.
            Ok(h) => h.pin(),
            // The thread-local is gone (thread exit): a temporary handle; the guard
            // keeps the record alive until it drops.
            Err(_) => self.register().pin(),
        }
    }
}

// SAFETY: a guard's whole lifetime is a pinned critical section: nothing retired
// after it pinned, and nothing reachable when it pinned, is freed before it drops
// (the module docs give the argument).
unsafe impl Reclaim for Domain {
    type Guard<'r> = Guard;

    #[inline]
    fn guard(&self) -> Guard {
        self.pin()
    }
}

// SAFETY: see the `Reclaim` impl for `Domain`.
unsafe impl Protect for Guard {
    #[inline]
    fn protect<T>(&mut self, src: &AtomicPtr<T>) -> *mut T {
        // Acquire: pairs with the Release store or CAS that published the pointee.
        src.load(Ordering::Acquire)
    }

    #[inline]
    fn clear(&mut self) {}

    #[inline]
    unsafe fn retire<T>(&self, ptr: *mut T) {
        // SAFETY: the caller's preconditions are `defer_destroy`'s.
        unsafe { self.defer_destroy(ptr) }
    }
}

/// The default epoch domain as a [`Reclaim`] scheme (zero-sized; pins through the
/// thread's cached handle, the fastest path).
#[cfg(not(strata_loom))]
#[derive(Debug, Clone, Copy, Default)]
pub struct Epoch;

// SAFETY: delegates to the default domain's guards.
#[cfg(not(strata_loom))]
unsafe impl Reclaim for Epoch {
    type Guard<'r> = Guard;

    #[inline]
    fn guard(&self) -> Guard {
        pin()
    }
}

#[cfg(test)]
#[path = "epoch/tests.rs"]
mod tests;
