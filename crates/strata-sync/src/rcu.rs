//! [`RcuCell`]: a shared `Arc<T>` that readers load without locks and writers replace
//! by copy-update (read-copy-update).
//!
//! # What it is
//!
//! An `RcuCell<T>` holds one [`Arc<T>`](std::sync::Arc) (std's `Arc`, the one the rest
//! of a program uses). Readers get either a short-lived [`Guard`] that dereferences to
//! `&T` without touching the reference count ([`RcuCell::load`]), or an `Arc<T>` of
//! their own ([`RcuCell::load_full`]). Writers replace the value as a whole
//! ([`store`](RcuCell::store), [`swap`](RcuCell::swap)), build the next value from the
//! current one ([`update`](RcuCell::update), an RCU loop), or replace it only if it is
//! still a given one ([`compare_and_swap`](RcuCell::compare_and_swap)). It fills the
//! place of arc-swap's `ArcSwap`.
//!
//! ```
//! use std::sync::Arc;
//! use strata_sync::rcu::RcuCell;
//!
//! let config = RcuCell::new(vec![1, 2, 3]);
//!
//! // Readers: a guard derefs to the current value; no reference count is touched.
//! assert_eq!(config.load().len(), 3);
//! // A reader that keeps the value beyond a short section takes an Arc of its own.
//! let snapshot: Arc<Vec<i32>> = config.load_full();
//!
//! // Writers: copy, modify, publish. The closure may run more than once.
//! let previous = config.update(|v| {
//!     let mut v = v.clone();
//!     v.push(4);
//!     v
//! });
//! assert!(Arc::ptr_eq(&previous, &snapshot));
//! assert_eq!(*config.load(), [1, 2, 3, 4]);
//! assert_eq!(*snapshot, [1, 2, 3]); // the old snapshot is untouched
//!
//! // Conditional replacement, by identity of the current Arc.
//! let current = config.load_full();
//! assert!(config.compare_and_swap(&current, Arc::new(vec![0])).is_ok());
//! let failed = config.compare_and_swap(&current, Arc::new(vec![9])).unwrap_err();
//! assert_eq!(*failed.current, [0]);
//! ```
//!
//! # The algorithm
//!
//! The cell is one `AtomicPtr<T>` holding `Arc::into_raw` of the current value: the cell
//! owns one strong count of it. This is the RCU pattern of McKenney and Slingwine
//! (*Read-copy update*, OLS 2001) with the grace period supplied by a memory
//! reclamation scheme of `strata-reclaim`, chosen by the type parameter `R`
//! ([`DefaultReclaim`], the process-wide epoch domain, unless told otherwise):
//!
//! * **Reading.** [`load`](RcuCell::load) takes a guard of the scheme and *protects*
//!   the pointer ([`strata_reclaim::Protect::protect`]); the [`Guard`] derefs to the
//!   value through that raw pointer. [`load_full`](RcuCell::load_full) does the same and
//!   then increments the strong count (`Arc::increment_strong_count`) before the
//!   protection ends, which is sound because the count the cell owned is not given up
//!   before the protection ends (next point).
//! * **Replacing.** A writer exchanges the pointer (a `swap` or a `compare_exchange`),
//!   and then *retires* the strong count the cell owned on the old value: the scheme
//!   drops that count (`Arc::from_raw(old)` dropped) only once no reader can still be
//!   between its load of the pointer and the end of its protection. A writer that
//!   returns the old value ([`swap`](RcuCell::swap), [`update`](RcuCell::update)...)
//!   first adds a count for the caller, so the caller's `Arc` and the retired one are
//!   two separate counts.
//!
//! The retirement goes through [`RcuReclaim`], a small sealed extension of
//! [`strata_reclaim::Reclaim`] implemented for the four schemes strata-reclaim offers.
//! It exists because the trait's own `retire` drops a `Box<T>` at the retired address:
//! retiring a `Box<Arc<T>>` holding the old count would be sound under epochs but
//! **not under hazard pointers**, which compare the retired address with the protected
//! ones. A reader protects the `T` inside the Arc's allocation, the box is somewhere
//! else, so a scan would drop the box, the count and the value under the reader. Here
//! the retired address is the protected one: under hazard pointers the old count is
//! retired with `hazard::Domain::retire_with` at the `T` pointer itself, and under
//! epochs it is deferred with `epoch::Guard::defer_unchecked` (no allocation: the
//! deferred closure is one pointer, stored inline).
//!
//! # Progress (stated per operation and per scheme)
//!
//! * [`load`](RcuCell::load), [`load_full`](RcuCell::load_full): under epochs (the
//!   default) the cell adds no loop: a pin of the epoch domain (a store and a fence;
//!   strata-reclaim's pin is wait-free except for its occasional collection pass and a
//!   thread's first registration, which are lock-free) and one `Acquire` load, plus one
//!   `fetch_add` for `load_full`. So **wait-free under epochs** in the cell's own steps.
//!   Under hazard pointers, `protect` re-loads until the pointer is stable, and retries
//!   only when a writer replaced it meanwhile: **lock-free under hazard pointers**.
//! * [`store`](RcuCell::store), [`store_arc`](RcuCell::store_arc),
//!   [`swap`](RcuCell::swap): one atomic `swap`, then a retire: wait-free in the cell's
//!   own steps; the retire may run a collection (epochs) or a scan (hazard pointers),
//!   which run destructors of old values.
//! * [`update`](RcuCell::update), [`compare_and_swap`](RcuCell::compare_and_swap):
//!   lock-free: a `compare_exchange` fails only because another writer replaced the
//!   value meanwhile, that is, because some operation made progress.
//!
//! # Linearization points
//!
//! * `load` / `load_full`: the `Acquire` load of the pointer that the protection
//!   returns (under hazard pointers, the validating re-load).
//! * `store`, `store_arc`, `swap`: the `swap` of the pointer.
//! * `update`: its successful `compare_exchange` (the value `f` saw was current at that
//!   instant, since the pointer was unchanged and a protected value is not reused).
//! * `compare_and_swap`: on success, its `compare_exchange`; on failure, the protected
//!   load that saw a value other than `current`.
//!
//! # Memory ordering
//!
//! Every replacement is an `AcqRel` read-modify-write: `Release` publishes the new
//! value's contents to the readers' `Acquire` load, and `Acquire` orders the writer
//! after the old value's publication before it hands the old count to the scheme (whose
//! own ordering then reaches whichever thread drops it). The test-only
//! `--cfg strata_weaken` turns those read-modify-writes into `Acquire` (no `Release`),
//! which is how the loom models show that they catch an unpublished value.
//!
//! # Costs and limits
//!
//! * A [`Guard`] pins the epoch domain (or holds a hazard slot) while it lives: keep it
//!   short. Under epochs a guard held for long holds back the reclamation of everything
//!   retired in the domain meanwhile; take [`load_full`](RcuCell::load_full) to keep a
//!   value.
//! * Old values are dropped later, on whichever thread runs the reclamation, and
//!   possibly after the cell itself is gone (at the latest when the domain is dropped):
//!   hence the `T: Send + Sync + 'static` bound on the writers.
//! * [`compare_and_swap`](RcuCell::compare_and_swap) compares by identity (the address
//!   of the `Arc`'s allocation), not by value, as arc-swap does.
//!
//! # Send and Sync
//!
//! `RcuCell<T, R>` is `Send` and `Sync` exactly when `T: Send + Sync` (and `R` is, which
//! every scheme is): values are shared between threads and dropped on other threads.
//!
//! ```compile_fail
//! fn needs_sync<S: Sync>() {}
//! needs_sync::<strata_sync::rcu::RcuCell<std::rc::Rc<u8>>>();
//! ```
//!
//! ```compile_fail
//! fn needs_send<S: Send>() {}
//! needs_send::<strata_sync::rcu::RcuCell<std::cell::Cell<u8>>>();
//! ```

use core::fmt;
use core::marker::PhantomData;
use core::ops::Deref;
use core::ptr;
use std::sync::Arc;

use strata_primitives::sync::atomic::{AtomicPtr, Ordering};
use strata_reclaim::{Protect, Reclaim, epoch, hazard};

/// The default reclamation scheme: the process-wide epoch domain.
#[cfg(not(strata_loom))]
pub type DefaultReclaim = epoch::Epoch;
/// Under loom there is no process-wide domain: each cell gets a fresh epoch domain.
#[cfg(strata_loom)]
pub type DefaultReclaim = epoch::Domain;

/// The ordering of the read-modify-writes that publish a new value: `AcqRel`, or
/// `Acquire` (no `Release`) under the test-only `--cfg strata_weaken`, which is how the
/// loom models show that they detect an unpublished value.
const fn publish_rmw() -> Ordering {
    if cfg!(strata_weaken) {
        Ordering::Acquire
    } else {
        Ordering::AcqRel
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for strata_reclaim::epoch::Domain {}
    impl Sealed for strata_reclaim::hazard::Domain {}
    #[cfg(not(strata_loom))]
    impl Sealed for strata_reclaim::epoch::Epoch {}
    #[cfg(not(strata_loom))]
    impl Sealed for strata_reclaim::hazard::Hazard {}
}

/// A [`Reclaim`] scheme that can retire one strong count of an `Arc` at the address
/// readers protect. Implemented for the schemes of strata-reclaim: the default epoch
/// domain [`epoch::Epoch`], an explicit [`epoch::Domain`], the default hazard domain
/// [`hazard::Hazard`] and an explicit [`hazard::Domain`]. Sealed: see the
/// [module docs](self) for why the plain [`Reclaim::Guard`]'s `retire` (which drops a
/// `Box` at the retired address) is not enough under hazard pointers.
pub trait RcuReclaim: Reclaim + sealed::Sealed {
    /// Retires the strong count behind `ptr`: `Arc::from_raw(ptr)` is dropped once no
    /// guard of this scheme protects `ptr` (hazard pointers) or once every critical
    /// section open now has ended (epochs).
    ///
    /// # Safety
    /// - `ptr` came from `Arc::<T>::into_raw` and the caller gives up the one count it
    ///   stands for, once;
    /// - that count is unlinked: the cell no longer holds it. The address itself may be
    ///   linked again, or retired again, through other counts of the same `Arc` (a
    ///   `store_arc` of a clone of an earlier value): a reader that reaches it then
    ///   reads an object kept alive by the cell's own count, and under hazard pointers
    ///   its protection of the address delays every retired count of it (see
    ///   `strata_reclaim::hazard::Domain::retire_with`).
    #[doc(hidden)]
    unsafe fn retire_arc<'r, T: Send + Sync + 'static>(guard: &Self::Guard<'r>, ptr: *const T)
    where
        Self: 'r;
}

/// Drops the strong count behind `p`.
///
/// # Safety
/// `p` came from `Arc::<T>::into_raw` and its count is given up here, once.
unsafe fn drop_arc<T>(p: *mut T) {
    // SAFETY: the caller's contract.
    drop(unsafe { Arc::from_raw(p.cast_const()) });
}

/// Under epochs: defer dropping the count.
///
/// # Safety
/// As [`RcuReclaim::retire_arc`].
unsafe fn defer_arc<T: Send + Sync + 'static>(guard: &epoch::Guard, ptr: *const T) {
    // SAFETY: the closure drops an `Arc<T>` with `T: Send + Sync`, sound on any thread;
    // it borrows nothing (`T: 'static`); the count is given up once (the caller's
    // contract) and is unlinked, so no critical section that begins later can reach
    // it (one that reaches the same address through another count reads an object
    // that count keeps alive), and the ones open now end before the domain runs the
    // closure.
    unsafe { guard.defer_unchecked(move || drop_arc(ptr.cast_mut())) };
}

/// Under hazard pointers: retire the count at the `T` pointer itself, the address a
/// reader's hazard slot holds.
///
/// # Safety
/// As [`RcuReclaim::retire_arc`].
unsafe fn retire_arc_hp<T: Send + Sync + 'static>(domain: &hazard::Domain, ptr: *const T) {
    // SAFETY: the count `ptr` stands for is unlinked and retired once (the caller's
    // contract; the address may be retired or linked again through other counts, which
    // `retire_with` allows for reference-counted objects); `drop_arc` gives up exactly
    // that count, and dropping an `Arc<T>` with `T: Send + Sync + 'static` is sound on
    // any thread at any later time.
    unsafe { domain.retire_with(ptr.cast_mut(), drop_arc::<T>) };
}

impl RcuReclaim for epoch::Domain {
    unsafe fn retire_arc<'r, T: Send + Sync + 'static>(guard: &epoch::Guard, ptr: *const T)
    where
        Self: 'r,
    {
        // SAFETY: forwarded from our caller.
        unsafe { defer_arc(guard, ptr) }
    }
}

#[cfg(not(strata_loom))]
impl RcuReclaim for epoch::Epoch {
    unsafe fn retire_arc<'r, T: Send + Sync + 'static>(guard: &epoch::Guard, ptr: *const T)
    where
        Self: 'r,
    {
        // SAFETY: forwarded from our caller.
        unsafe { defer_arc(guard, ptr) }
    }
}

impl RcuReclaim for hazard::Domain {
    unsafe fn retire_arc<'r, T: Send + Sync + 'static>(
        guard: &hazard::HazardPointer<'r>,
        ptr: *const T,
    ) where
        Self: 'r,
    {
        // SAFETY: forwarded from our caller.
        unsafe { retire_arc_hp(guard.domain(), ptr) }
    }
}

#[cfg(not(strata_loom))]
impl RcuReclaim for hazard::Hazard {
    unsafe fn retire_arc<'r, T: Send + Sync + 'static>(
        guard: &hazard::HazardPointer<'static>,
        ptr: *const T,
    ) where
        Self: 'r,
    {
        // SAFETY: forwarded from our caller.
        unsafe { retire_arc_hp(guard.domain(), ptr) }
    }
}

/// A shared, replaceable `Arc<T>` with lock-free reads; see the [module docs](self).
///
/// `R` is the reclamation scheme that decides when a replaced value's count may be
/// dropped: [`DefaultReclaim`] (the process-wide epoch domain), an explicit
/// [`epoch::Domain`], or hazard pointers ([`hazard::Hazard`], [`hazard::Domain`]).
pub struct RcuCell<T, R = DefaultReclaim> {
    /// `Arc::into_raw` of the current value; the cell owns that strong count. Never null
    /// except after [`RcuCell::into_inner`] took it.
    ptr: AtomicPtr<T>,
    reclaim: R,
    /// The cell owns an `Arc<T>`: `Send`/`Sync` iff `T: Send + Sync`.
    _owns: PhantomData<Arc<T>>,
}

/// A protected reference to the value an [`RcuCell`] held when it was loaded. Derefs to
/// `&T`; the value stays alive while the guard lives, even if the cell is updated
/// meanwhile.
///
/// Under epochs a guard keeps its thread pinned, under hazard pointers it holds a
/// hazard slot: keep it short, and take an `Arc` ([`Guard::to_arc`],
/// [`RcuCell::load_full`]) to keep the value longer. Not `Send`: the protection belongs
/// to the thread that took it.
#[must_use = "a guard protects the value only while it lives"]
pub struct Guard<'a, T, R: Reclaim + 'a> {
    ptr: *const T,
    _protection: R::Guard<'a>,
    _cell: PhantomData<&'a Arc<T>>,
}

/// What [`RcuCell::compare_and_swap`] returns when the cell did not hold `current`.
pub struct CasFailure<T> {
    /// The value the cell held when the comparison failed.
    pub current: Arc<T>,
    /// The value that was to be stored, handed back.
    pub new: Arc<T>,
}

impl<T: fmt::Debug> fmt::Debug for CasFailure<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CasFailure")
            .field("current", &self.current)
            .field("new", &self.new)
            .finish()
    }
}

/// Something that names one `Arc<T>` allocation by its address: an `Arc<T>` or a
/// [`Guard`]. Used by [`RcuCell::compare_and_swap`] and [`Guard::ptr_eq`]. Sealed.
pub trait AsArcPtr<T>: as_arc_ptr::Sealed {
    /// The address of the value (what `Arc::as_ptr` returns).
    fn as_arc_ptr(&self) -> *const T;
}

mod as_arc_ptr {
    pub trait Sealed {}
    impl<T> Sealed for std::sync::Arc<T> {}
    impl<T, R: strata_reclaim::Reclaim> Sealed for super::Guard<'_, T, R> {}
}

impl<T> AsArcPtr<T> for Arc<T> {
    fn as_arc_ptr(&self) -> *const T {
        Arc::as_ptr(self)
    }
}

impl<T, R: Reclaim> AsArcPtr<T> for Guard<'_, T, R> {
    fn as_arc_ptr(&self) -> *const T {
        self.ptr
    }
}

impl<T> RcuCell<T, DefaultReclaim> {
    /// A cell holding `value`, on the default scheme.
    pub fn new(value: T) -> Self {
        Self::from_arc(Arc::new(value))
    }

    /// A cell holding `value` (the cell takes over this strong count), on the default
    /// scheme.
    pub fn from_arc(value: Arc<T>) -> Self {
        Self::from_arc_with_reclaim(value, DefaultReclaim::default())
    }
}

impl<T, R> RcuCell<T, R> {
    /// A cell holding `value`, on the scheme `reclaim`.
    ///
    /// ```
    /// use strata_reclaim::hazard::Hazard;
    /// use strata_sync::rcu::RcuCell;
    ///
    /// let cell = RcuCell::with_reclaim(String::from("a"), Hazard);
    /// cell.store(String::from("b"));
    /// assert_eq!(*cell.load(), "b");
    /// ```
    pub fn with_reclaim(value: T, reclaim: R) -> Self {
        Self::from_arc_with_reclaim(Arc::new(value), reclaim)
    }

    /// A cell holding `value` (the cell takes over this strong count), on the scheme
    /// `reclaim`.
    pub fn from_arc_with_reclaim(value: Arc<T>, reclaim: R) -> Self {
        RcuCell {
            ptr: AtomicPtr::new(Arc::into_raw(value).cast_mut()),
            reclaim,
            _owns: PhantomData,
        }
    }

    /// The cell's reclamation scheme (for example to flush an explicit domain).
    pub fn reclaim(&self) -> &R {
        &self.reclaim
    }

    /// Consumes the cell and returns its value. The values it replaced earlier are
    /// dropped by the scheme, as usual.
    pub fn into_inner(self) -> Arc<T> {
        // Null tells `drop` that the count was taken. Acquire: pairs with the publishing
        // Release of the value (with `self` owned, the cell was handed to us with a
        // synchronizing transfer anyway).
        let p = self.ptr.swap(ptr::null_mut(), Ordering::Acquire);
        // SAFETY: `p` is the cell's own count (never null before this call), taken over
        // here once; `drop` skips the null left behind.
        unsafe { Arc::from_raw(p.cast_const()) }
    }
}

impl<T, R: RcuReclaim> RcuCell<T, R> {
    /// Loads the current value: a guard that derefs to it, without touching its
    /// reference count. Wait-free under epochs, lock-free under hazard pointers (see the
    /// module docs).
    #[inline]
    pub fn load(&self) -> Guard<'_, T, R> {
        let mut protection = self.reclaim.guard();
        let ptr = protection.protect(&self.ptr);
        Guard {
            ptr: ptr.cast_const(),
            _protection: protection,
            _cell: PhantomData,
        }
    }

    /// Loads the current value as an `Arc` of the caller's own (one `fetch_add` more
    /// than [`load`](Self::load)).
    #[inline]
    pub fn load_full(&self) -> Arc<T> {
        let g = self.load();
        Guard::to_arc(&g)
    }

    /// `true` if the cell currently holds the allocation `other` names.
    pub fn is<P: AsArcPtr<T>>(&self, other: &P) -> bool {
        Guard::ptr_eq(&self.load(), other)
    }
}

impl<T: Send + Sync + 'static, R: RcuReclaim> RcuCell<T, R> {
    /// Replaces the value with `value`; the old one is dropped once no reader can still
    /// see it. Wait-free in the cell's own steps (one `swap`).
    pub fn store(&self, value: T) {
        self.store_arc(Arc::new(value));
    }

    /// Replaces the value with the `Arc` `value` (the cell takes over this count).
    pub fn store_arc(&self, value: Arc<T>) {
        let protection = self.reclaim.guard();
        let old = self
            .ptr
            .swap(Arc::into_raw(value).cast_mut(), publish_rmw());
        // SAFETY: `old` is the count the cell owned, just unlinked by the swap, retired
        // once here.
        unsafe { R::retire_arc(&protection, old.cast_const()) };
    }

    /// Replaces the value with `value` and returns the previous one.
    pub fn swap(&self, value: Arc<T>) -> Arc<T> {
        let protection = self.reclaim.guard();
        let old = self
            .ptr
            .swap(Arc::into_raw(value).cast_mut(), publish_rmw())
            .cast_const();
        // SAFETY: the cell's count on `old` is still alive (retired below, after this),
        // so the allocation is live and adding a count for the caller is sound; the
        // retire then gives up the cell's count, unlinked by the swap, once.
        unsafe {
            Arc::increment_strong_count(old);
            R::retire_arc(&protection, old);
            Arc::from_raw(old)
        }
    }

    /// Read-copy-update: replaces the value with `f(&current)` and returns the value it
    /// replaced. If another writer replaces the value between the load and the
    /// publication, the new value is dropped and `f` runs again on the newer one: **`f`
    /// may run more than once** (keep it free of side effects). Lock-free: a retry means
    /// another writer succeeded.
    ///
    /// ```
    /// use strata_sync::rcu::RcuCell;
    ///
    /// let counter = RcuCell::new(0u64);
    /// let previous = counter.update(|n| n + 1);
    /// assert_eq!((*previous, *counter.load()), (0, 1));
    /// ```
    pub fn update(&self, mut f: impl FnMut(&T) -> T) -> Arc<T> {
        let mut protection = self.reclaim.guard();
        loop {
            let cur = protection.protect(&self.ptr).cast_const();
            // SAFETY: `cur` is protected by `protection` and came from `Arc::into_raw`.
            let next = Arc::into_raw(Arc::new(f(unsafe { &*cur }))).cast_mut();
            match self
                .ptr
                .compare_exchange(cur.cast_mut(), next, publish_rmw(), Ordering::Relaxed)
            {
                // SAFETY: as in `swap`: the cell's count on `cur` is alive until the
                // retire, which gives it up once after the CAS unlinked it.
                Ok(_) => unsafe {
                    Arc::increment_strong_count(cur);
                    R::retire_arc(&protection, cur);
                    return Arc::from_raw(cur);
                },
                // SAFETY: `next` was never shared; this is its only count.
                Err(_) => drop(unsafe { Arc::from_raw(next) }),
            }
        }
    }

    /// Stores `new` if the cell holds the allocation `current` names (compared by
    /// address, as `Arc::ptr_eq` does), and returns the value it replaced; otherwise
    /// returns the value the cell holds and `new`, in a [`CasFailure`]. Lock-free.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use strata_sync::rcu::RcuCell;
    ///
    /// let cell = RcuCell::new(1);
    /// let one = cell.load_full();
    /// assert_eq!(*cell.compare_and_swap(&one, Arc::new(2)).unwrap(), 1);
    /// let err = cell.compare_and_swap(&one, Arc::new(3)).unwrap_err();
    /// assert_eq!((*err.current, *err.new), (2, 3));
    /// ```
    pub fn compare_and_swap<P: AsArcPtr<T>>(
        &self,
        current: &P,
        new: Arc<T>,
    ) -> Result<Arc<T>, CasFailure<T>> {
        let expected = current.as_arc_ptr().cast_mut();
        let new = Arc::into_raw(new).cast_mut();
        let mut protection = self.reclaim.guard();
        loop {
            let cur = protection.protect(&self.ptr);
            if cur != expected {
                // SAFETY: `cur` is protected, so the cell's count keeps it alive while
                // we add one for the caller; `new` was never shared.
                return Err(unsafe {
                    Arc::increment_strong_count(cur.cast_const());
                    CasFailure {
                        current: Arc::from_raw(cur.cast_const()),
                        new: Arc::from_raw(new.cast_const()),
                    }
                });
            }
            if self
                .ptr
                .compare_exchange(cur, new, publish_rmw(), Ordering::Relaxed)
                .is_ok()
            {
                let cur = cur.cast_const();
                // SAFETY: as in `swap`.
                return Ok(unsafe {
                    Arc::increment_strong_count(cur);
                    R::retire_arc(&protection, cur);
                    Arc::from_raw(cur)
                });
            }
        }
    }
}

impl<T, R> Drop for RcuCell<T, R> {
    fn drop(&mut self) {
        // With `&mut self` no guard of this cell exists (a guard borrows the cell), so
        // no reader can be using the current value through the cell: drop the count now.
        let p = self.ptr.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: the cell's own count, given up once.
            drop(unsafe { Arc::from_raw(p.cast_const()) });
        }
    }
}

impl<T, R: Reclaim> Guard<'_, T, R> {
    /// An `Arc` of the caller's own to the guarded value (one `fetch_add`).
    pub fn to_arc(this: &Self) -> Arc<T> {
        // SAFETY: the value is protected, so the count the cell owned (or its retired
        // count, which the scheme keeps until the protection ends) is at least one, and
        // `ptr` came from `Arc::into_raw`.
        unsafe {
            Arc::increment_strong_count(this.ptr);
            Arc::from_raw(this.ptr)
        }
    }

    /// `true` if `this` guards the allocation `other` names (an `Arc` or a guard).
    pub fn ptr_eq<P: AsArcPtr<T>>(this: &Self, other: &P) -> bool {
        ptr::eq(this.ptr, other.as_arc_ptr())
    }

    /// The address of the guarded value (what `Arc::as_ptr` gives for it).
    pub fn as_ptr(this: &Self) -> *const T {
        this.ptr
    }
}

impl<T, R: Reclaim> Deref for Guard<'_, T, R> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: `ptr` came from `Arc::into_raw` and is protected by `_protection` for
        // the guard's whole life, so a strong count keeps it allocated.
        unsafe { &*self.ptr }
    }
}

impl<T: fmt::Debug, R: Reclaim> fmt::Debug for Guard<'_, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: fmt::Display, R: Reclaim> fmt::Display for Guard<'_, T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

impl<T: fmt::Debug, R: RcuReclaim> fmt::Debug for RcuCell<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RcuCell")
            .field("value", &&*self.load())
            .finish()
    }
}

impl<T: Default, R: Default> Default for RcuCell<T, R> {
    fn default() -> Self {
        Self::with_reclaim(T::default(), R::default())
    }
}

impl<T, R: Default> From<T> for RcuCell<T, R> {
    fn from(value: T) -> Self {
        Self::with_reclaim(value, R::default())
    }
}

impl<T, R: Default> From<Arc<T>> for RcuCell<T, R> {
    fn from(value: Arc<T>) -> Self {
        Self::from_arc_with_reclaim(value, R::default())
    }
}

// Compile-time checks of the auto traits: shared and dropped across threads needs
// `T: Send + Sync`, and that is all it needs.
const _: () = {
    const fn send_sync<S: Send + Sync>() {}
    send_sync::<RcuCell<String>>();
    send_sync::<RcuCell<Vec<u8>, epoch::Domain>>();
    send_sync::<RcuCell<u64, hazard::Domain>>();
    send_sync::<CasFailure<String>>();
};

#[cfg(test)]
#[path = "rcu_tests.rs"]
mod tests;
