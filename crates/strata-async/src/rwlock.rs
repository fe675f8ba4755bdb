//! A runtime-agnostic async reader-writer lock: phase-fair between readers and writers
//! (no starvation either way), writers served in FIFO order, with upgradable reads.
//!
//! [`RwLock`] lets many readers or one writer at a time at a value. It uses nothing but
//! `core::task::Waker`, so it works on any executor. Names follow
//! `tokio::sync::RwLock` (`read`, `write`, `try_read`, `try_write`, owned variants,
//! guards with `map` / `try_map` / `downgrade`), plus upgradable reads in the style of
//! async-lock (`upgradable_read`, [`RwLockUpgradableReadGuard::upgrade`],
//! [`RwLockUpgradableReadGuard::try_upgrade`]).
//!
//! ```
//! use strata_async::rwlock::{RwLock, RwLockUpgradableReadGuard, RwLockWriteGuard};
//!
//! let lock = RwLock::new(vec![1, 2]);
//! futures::executor::block_on(async {
//!     {
//!         let a = lock.read().await;
//!         let b = lock.read().await; // many readers at once
//!         assert_eq!(a.len() + b.len(), 4);
//!         assert!(lock.try_write().is_err());
//!     }
//!     let mut w = lock.write().await;
//!     w.push(3);
//!     let r = RwLockWriteGuard::downgrade(w); // atomically: no writer can slip in
//!     assert_eq!(*r, [1, 2, 3]);
//!     drop(r);
//!
//!     let u = lock.upgradable_read().await; // reads alongside plain readers
//!     let reader = lock.read().await;
//!     assert_eq!(u.len(), reader.len());
//!     drop(reader);
//!     let mut w = RwLockUpgradableReadGuard::upgrade(u).await;
//!     w.push(4);
//! });
//! assert_eq!(lock.into_inner(), [1, 2, 3, 4]);
//! ```
//!
//! # Algorithm
//!
//! The lock is two of this crate's strictly FIFO [`Semaphore`]s (the shape of tokio's
//! and async-lock's rw-locks, here over a FIFO semaphore with partial assignment):
//!
//! * `readers`, with `max_readers` permits ([`MAX_READS`] unless set with
//!   [`RwLock::with_max_readers`]). A reader holds 1 permit; a writer holds all
//!   `max_readers`.
//! * `upgrade`, with 1 permit, held by a writer (for its whole life, and while it
//!   collects the reader permits) or by an upgradable reader.
//!
//! `read` acquires 1 `readers` permit. `write` acquires the `upgrade` permit, then
//! `max_readers` `readers` permits. `upgradable_read` acquires the `upgrade` permit,
//! then 1 `readers` permit; [`upgrade`](RwLockUpgradableReadGuard::upgrade) acquires the
//! other `max_readers - 1`. Downgrades release permits: a write guard becomes a read
//! guard by returning `max_readers - 1` reader permits and the `upgrade` permit, and
//! an upgradable guard by returning the `upgrade` permit. Because a writer or upgrader
//! holds the `upgrade` permit while it waits for the reader permits, at most one
//! exclusive request waits on `readers` at a time, and two upgradable readers can never
//! deadlock trying to upgrade together: the second one waits for the `upgrade` permit
//! before it holds any reader permit.
//!
//! # Fairness
//!
//! The semaphore's FIFO rule (while a waiter is queued no permit is available to
//! newcomers, and a large request at the head collects released permits until it is
//! served) gives:
//!
//! * Writers and upgradable readers are served in FIFO order among themselves (on the
//!   `upgrade` permit).
//! * A writer that is next in line (it holds the `upgrade` permit and waits for
//!   reader permits) makes every reader that comes after it queue behind it, including
//!   `try_read`, which then fails: it waits only for the readers already inside and
//!   those queued before it. In that sense the lock is writer-preferring.
//! * A writer that waits behind another writer or an upgradable reader does not hold
//!   readers back yet: readers that arrive meanwhile queue for reader permits (or, if
//!   no writer holds the lock, get in), and when the writer ahead releases, the readers
//!   queued during its hold are served before the next writer. So readers and writers
//!   alternate in phases (phase-fair): no reader waits for more than one writer phase,
//!   and no writer for more than the writers and upgradable readers ahead of it plus
//!   one phase of readers.
//!
//! This differs from `tokio::sync::RwLock`, which is one FIFO queue for readers and
//! writers: there, a reader that arrives after a queued writer is always served after
//! it. Here it can be served before it, as above (the unit test
//! `phase_fair_order_pinned` pins this order down).
//!
//! # Progress
//!
//! Lock-free paths (no lock taken: a load of a semaphore's state word and a CAS loop
//! that retries only when another thread changed the word in between, or spuriously as
//! a weak CAS may):
//!
//! * An uncontended `read` / `try_read`: a load and one CAS on `readers`.
//! * An uncontended `upgradable_read` or `write` (and their `try_*` forms when they
//!   succeed): a load and one CAS on each semaphore. A failing `try_write` or
//!   `try_upgradable_read` that had taken the `upgrade` permit gives it back, and if a
//!   task queued for it meanwhile, that release takes the internal lock and calls the
//!   task's waker.
//! * `try_upgrade`: a load and one CAS on `readers`.
//! * Every release (a guard's drop, a downgrade) while no task is queued on the
//!   semaphore it releases to: a load and one CAS per semaphore touched.
//!
//! Everything else (queueing, waking queued tasks, the re-poll of a queued future, the
//! drop of a queued future) takes the semaphore's short internal lock; see
//! [`crate::semaphore`]. No user code runs under it.
//!
//! # Linearization points
//!
//! Those of the semaphore: a read (or the second stage of an upgradable read) takes
//! effect at the CAS that takes its `readers` permit, or, if it queued, at the
//! release that assigns it its last permit; a write or an upgrade takes effect when
//! its last `readers` permit is taken or assigned (the `upgrade` permit is already
//! held then). A release (guard drop, downgrade) takes effect at its release on
//! `readers`. A failed `try_*` takes effect at the load or CAS that saw too few
//! permits.
//!
//! Two wrinkles make `try_write` and `try_upgradable_read` fail spuriously under
//! contention (the lock is free at some instant of the call, yet they fail); neither
//! can make them succeed wrongly:
//!
//! * They take the `upgrade` permit first and give it back if the `readers` permits
//!   are not there. In that window a concurrent `try_write` or `try_upgradable_read`
//!   fails, and an `upgradable_read` or `write` waits for the give-back. A plain load
//!   of `readers` first makes the window rare, not impossible.
//! * A write or upgradable guard releases its reader permits before its `upgrade`
//!   permit, so between the two a `try_write` can find the reader permits free and the
//!   `upgrade` permit still taken.
//!
//! # Futures
//!
//! The lock futures are `!Unpin` (each holds an intrusive waiter node) and follow the
//! standard `Future` contract: polling one again after it returned `Ready` panics
//! (like an `async fn`'s future). Every one loses no permit and no wake-up when
//! dropped, and all but the upgrade futures are cancel-safe (see each method's
//! `# Cancel safety` section).
//!
//! # Guards
//!
//! `map`, `try_map` and `rwlock` are associated functions (`RwLockReadGuard::map(g,
//! f)`), so they never hide a method of `T`. The conversions (`upgrade`, `try_upgrade`,
//! `downgrade`, `downgrade_to_upgradable`) take `self` and can be called either way
//! (`g.downgrade()` or `RwLockWriteGuard::downgrade(g)`); a method of `T` with one of
//! these names (say `Weak::upgrade`) is reached through `(*g).upgrade()`. Owned guards
//! have no `map` (tokio's carry a second type parameter for it; not provided here).
//!
//! Other differences a tokio user meets: no `blocking_read` / `blocking_write`, no
//! `downgrade_map` / `try_downgrade_map` / `into_mapped`; [`RwLock::with_max_readers`]
//! clamps its limit into range where tokio panics; and [`TryLockError`] is an enum
//! (one variant, `WouldBlock`) where tokio's is a struct.
//!
//! # `Send` and `Sync`
//!
//! `RwLock<T>` is `Send` if `T: Send` and `Sync` if `T: Send + Sync`, as tokio's. Write,
//! mapped write and upgradable guards, owned guards, and the lock futures are `Send`
//! and `Sync` if `T: Send + Sync` (tokio's write guards too). Two differences: a
//! borrowed read guard is `Send` and `Sync` if `T: Sync` (tokio asks `T: Send + Sync`
//! for `Sync`; a shared read guard hands out only `&T`, so `T: Sync` suffices, as in
//! async-lock), and an upgradable guard asks `T: Send + Sync` where async-lock asks
//! only `T: Sync` for `Sync` (stricter, hence sound).

use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll};

use strata_primitives::cell::UnsafeCell;
// The owned API takes `self: Arc<Self>`, which only std's `Arc` allows; as in
// `crate::semaphore`, the reference count only keeps the lock alive and is not part of
// the algorithm.
use std::sync::Arc;

use crate::semaphore::{AcquireCore, AcquireError, Semaphore};

/// The default (and largest) number of readers that may hold an [`RwLock`] at once:
/// `u32::MAX as usize >> 3`, as tokio's. A read beyond it waits for a reader to leave.
pub const MAX_READS: usize = u32::MAX as usize >> 3;

/// The error of the non-waiting lock methods ([`RwLock::try_read`],
/// [`RwLock::try_write`], ...): the same type as the mutex's, as in tokio.
pub use crate::mutex::TryLockError;

/// An async reader-writer lock; see the [module documentation](self).
pub struct RwLock<T: ?Sized> {
    /// `max_readers` permits: 1 per reader, all of them for a writer.
    readers: Semaphore,
    /// 1 permit: held by a writer or an upgradable reader.
    upgrade: Semaphore,
    /// The permits of `readers`, in `1..=MAX_READS`.
    max_readers: usize,
    /// The value; accessed through guards only (or `&mut self`).
    data: UnsafeCell<T>,
}

// SAFETY: the semaphores are `Send`; moving the lock moves the value, which needs
// `T: Send`.
unsafe impl<T: ?Sized + Send> Send for RwLock<T> {}
// SAFETY: a shared lock hands out `&T` to several threads at once (needs `T: Sync`) and
// `&mut T` to one thread at a time, which can move values in and out (needs `T: Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLock<T> {}

/// Panics for a lock future polled after completion; the other errors cannot happen
/// (the lock never closes its semaphores and never asks for more than `MAX_READS`,
/// which is below `Semaphore::MAX_PERMITS`).
#[track_caller]
fn permits_or_panic(r: Result<usize, AcquireError>, what: &str) -> usize {
    match r {
        Ok(n) => n,
        Err(AcquireError::PolledAfterCompletion) => {
            panic!("`{what}` future polled after it had completed")
        }
        Err(e) => unreachable!("the rw-lock's semaphores are never closed or over-asked: {e}"),
    }
}

/// Releases `n` permits of a semaphore when dropped, also while unwinding. A guard
/// that releases two semaphores releases the second through it, so that a waker that
/// panics inside the first release does not leak the second's permit (every later
/// writer would hang on it).
struct ReleaseOnDrop<'a>(&'a Semaphore, usize);

impl Drop for ReleaseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.release(self.1);
    }
}

impl<T> RwLock<T> {
    /// A lock around `value`, allowing up to [`MAX_READS`] readers at once.
    pub fn new(value: T) -> Self {
        Self::with_max_readers(value, MAX_READS)
    }

    /// A lock around `value` allowing at most `max_reads` readers at once; `max_reads`
    /// is clamped into `1..=MAX_READS` (so 0 means 1). A read beyond the limit waits
    /// (or, with `try_read`, fails) until a reader leaves. A writer takes all
    /// `max_reads` reader permits in one step, so the limit costs writers nothing.
    pub fn with_max_readers(value: T, max_reads: usize) -> Self {
        let max_readers = max_reads.clamp(1, MAX_READS);
        Self {
            readers: Semaphore::new(max_readers),
            upgrade: Semaphore::new(1),
            max_readers,
            data: UnsafeCell::new(value),
        }
    }

    /// The value, consuming the lock.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> RwLock<T> {
    /// The most readers that may hold the lock at once.
    pub fn max_readers(&self) -> usize {
        self.max_readers
    }

    /// The value, through an exclusive borrow of the lock (no locking needed).
    pub fn get_mut(&mut self) -> &mut T {
        self.data.with_mut(|p| {
            // SAFETY: `&mut self` excludes every guard (they borrow the lock) and every
            // other access.
            unsafe { &mut *p }
        })
    }

    /// The data pointer for a new read or upgradable guard (records a shared access for
    /// loom). The caller holds a `readers` permit.
    fn shared_ptr(&self) -> NonNull<T> {
        self.data.with(|p| {
            // SAFETY: an `UnsafeCell`'s pointer is never null.
            unsafe { NonNull::new_unchecked(p.cast_mut()) }
        })
    }

    /// The data pointer for a new write guard (records an exclusive access for loom).
    /// The caller holds every `readers` permit.
    fn exclusive_ptr(&self) -> NonNull<T> {
        self.data.with_mut(|p| {
            // SAFETY: an `UnsafeCell`'s pointer is never null.
            unsafe { NonNull::new_unchecked(p) }
        })
    }

    /// Locks for reading, waiting while a writer holds the lock or any task is queued
    /// for reader permits ahead of it (a writer next in line makes later readers wait;
    /// see the module's fairness section).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future at any point, queued or already woken, loses
    /// no permit and no wake-up; it gives up its place in the queue.
    pub fn read(&self) -> Read<'_, T> {
        Read {
            lock: self,
            core: AcquireCore::new(1),
        }
    }

    /// Locks for reading without waiting; fails with [`TryLockError::WouldBlock`] if a
    /// writer holds the lock, if [`max_readers`](Self::max_readers) readers hold it, or
    /// if any task is queued for reader permits (a writer next in line blocks new
    /// readers). Lock-free.
    pub fn try_read(&self) -> Result<RwLockReadGuard<'_, T>, TryLockError> {
        match self.readers.try_take(1) {
            Ok(()) => Ok(RwLockReadGuard::new(&self.readers, self.shared_ptr())),
            Err(_) => Err(TryLockError::WouldBlock),
        }
    }

    /// Locks for writing: waits for the `upgrade` permit (behind earlier writers and
    /// upgradable readers), then for every reader to leave. Readers that come after it
    /// queue behind it.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future at any point gives up its places in both
    /// queues; reader permits already assigned to it pass on to the next waiters, and
    /// the `upgrade` permit, if it held it, is released. Nothing is lost.
    pub fn write(&self) -> Write<'_, T> {
        Write {
            lock: self,
            core: ExclusiveCore::new(self.max_readers),
        }
    }

    /// Locks for writing without waiting; fails with [`TryLockError::WouldBlock`] if
    /// the lock is held in any mode or any task is queued. It can also fail spuriously
    /// under contention, and when it fails after taking the `upgrade` permit it gives
    /// the permit back, which may take the internal lock and wake a queued task on
    /// this thread; lock-free otherwise. See the module's linearization section.
    pub fn try_write(&self) -> Result<RwLockWriteGuard<'_, T>, TryLockError> {
        self.try_exclusive(self.max_readers)?;
        Ok(RwLockWriteGuard::new(self, self.exclusive_ptr()))
    }

    /// Locks for an upgradable read: shares the lock with plain readers, excludes
    /// writers and other upgradable readers, and can later be upgraded to a write lock
    /// without letting a writer in between. Waits for the `upgrade` permit (FIFO with
    /// writers), then for a reader slot.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`write`](Self::write).
    pub fn upgradable_read(&self) -> UpgradableRead<'_, T> {
        UpgradableRead {
            lock: self,
            core: ExclusiveCore::new(1),
        }
    }

    /// Locks for an upgradable read without waiting; fails with
    /// [`TryLockError::WouldBlock`] if a writer or upgradable reader holds the lock,
    /// or tasks are queued; like [`try_write`](Self::try_write), it can fail
    /// spuriously under contention and may wake a queued task when it fails.
    pub fn try_upgradable_read(&self) -> Result<RwLockUpgradableReadGuard<'_, T>, TryLockError> {
        self.try_exclusive(1)?;
        Ok(RwLockUpgradableReadGuard {
            lock: self,
            data: self.shared_ptr(),
            _marker: PhantomData,
        })
    }

    /// Takes the `upgrade` permit and `n` reader permits, or nothing.
    fn try_exclusive(&self, n: usize) -> Result<(), TryLockError> {
        // A plain look first: fail without touching `upgrade` when readers are in.
        if self.readers.available_permits() < n {
            return Err(TryLockError::WouldBlock);
        }
        self.upgrade
            .try_take(1)
            .map_err(|_| TryLockError::WouldBlock)?;
        match self.readers.try_take(n) {
            Ok(()) => Ok(()),
            Err(_) => {
                self.upgrade.release(1);
                Err(TryLockError::WouldBlock)
            }
        }
    }

    /// Locks for reading, as [`read`](Self::read), returning a guard that keeps the
    /// `Arc` alive instead of borrowing the lock.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`read`](Self::read).
    pub fn read_owned(self: Arc<Self>) -> ReadOwned<T> {
        ReadOwned {
            lock: Some(self),
            core: AcquireCore::new(1),
        }
    }

    /// Locks for reading without waiting, as [`try_read`](Self::try_read), with an
    /// owned guard.
    pub fn try_read_owned(self: Arc<Self>) -> Result<OwnedRwLockReadGuard<T>, TryLockError> {
        match self.readers.try_take(1) {
            Ok(()) => Ok(OwnedRwLockReadGuard { lock: self }),
            Err(_) => Err(TryLockError::WouldBlock),
        }
    }

    /// Locks for writing, as [`write`](Self::write), with an owned guard.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`write`](Self::write).
    pub fn write_owned(self: Arc<Self>) -> WriteOwned<T> {
        let core = ExclusiveCore::new(self.max_readers);
        WriteOwned {
            lock: Some(self),
            core,
        }
    }

    /// Locks for writing without waiting, as [`try_write`](Self::try_write), with an
    /// owned guard.
    pub fn try_write_owned(self: Arc<Self>) -> Result<OwnedRwLockWriteGuard<T>, TryLockError> {
        self.try_exclusive(self.max_readers)?;
        Ok(OwnedRwLockWriteGuard { lock: self })
    }

    /// Locks for an upgradable read, as [`upgradable_read`](Self::upgradable_read),
    /// with an owned guard.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`write`](Self::write).
    pub fn upgradable_read_owned(self: Arc<Self>) -> UpgradableReadOwned<T> {
        UpgradableReadOwned {
            lock: Some(self),
            core: ExclusiveCore::new(1),
        }
    }

    /// Locks for an upgradable read without waiting, as
    /// [`try_upgradable_read`](Self::try_upgradable_read), with an owned guard.
    pub fn try_upgradable_read_owned(
        self: Arc<Self>,
    ) -> Result<OwnedRwLockUpgradableReadGuard<T>, TryLockError> {
        self.try_exclusive(1)?;
        Ok(OwnedRwLockUpgradableReadGuard { lock: self })
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for RwLock<T> {
    /// Shows the value if a read lock can be taken without waiting, else `<locked>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("RwLock");
        match self.try_read() {
            Ok(g) => d.field("data", &&*g),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.field("max_readers", &self.max_readers).finish()
    }
}

impl<T: Default> Default for RwLock<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for RwLock<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

/// The two-stage acquisition of writers and upgradable readers: the `upgrade` permit,
/// then `n` permits of `readers`.
struct ExclusiveCore {
    upgrade: AcquireCore,
    readers: AcquireCore,
    /// The `upgrade` permit is held by this core (stage 2, not yet handed to a guard).
    holds_upgrade: bool,
}

impl ExclusiveCore {
    fn new(n: usize) -> Self {
        Self {
            upgrade: AcquireCore::new(1),
            readers: AcquireCore::new(n),
            holds_upgrade: false,
        }
    }

    /// `Ready(Ok)` means the caller now owns the `upgrade` permit and the `n` reader
    /// permits.
    ///
    /// # Safety
    ///
    /// As [`AcquireCore::poll`]: `self` is pinned inside the caller's pinned future,
    /// every poll passes the same `lock`, and the future's `Drop` calls
    /// [`cancel`](Self::cancel) with it.
    unsafe fn poll<T: ?Sized>(
        &mut self,
        lock: &RwLock<T>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<usize, AcquireError>> {
        if !self.holds_upgrade {
            // SAFETY: the core is pinned (our contract), always with `lock.upgrade`, and
            // `cancel` cancels it with that semaphore.
            match unsafe { self.upgrade.poll(&lock.upgrade, cx) } {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(_)) => self.holds_upgrade = true,
            }
        }
        // SAFETY: as above, with `lock.readers`.
        match unsafe { self.readers.poll(&lock.readers, cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(n)) => {
                // Both permits now belong to the caller's guard. A later poll finds the
                // `upgrade` core finished and reports `PolledAfterCompletion`.
                self.holds_upgrade = false;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }

    /// Cancellation: gives up both queue places (passing on assigned permits) and
    /// releases the `upgrade` permit if held.
    fn cancel<T: ?Sized>(&mut self, lock: &RwLock<T>) {
        self.upgrade.cancel(&lock.upgrade);
        // Released last, and also if a waker panics in the readers' cancel.
        let _upgrade = self.holds_upgrade.then(|| ReleaseOnDrop(&lock.upgrade, 1));
        self.holds_upgrade = false;
        self.readers.cancel(&lock.readers);
    }
}

/// The future of [`RwLock::read`].
#[must_use = "futures do nothing unless polled"]
pub struct Read<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    core: AcquireCore,
}

/// The future of [`RwLock::write`].
#[must_use = "futures do nothing unless polled"]
pub struct Write<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    core: ExclusiveCore,
}

/// The future of [`RwLock::upgradable_read`].
#[must_use = "futures do nothing unless polled"]
pub struct UpgradableRead<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    core: ExclusiveCore,
}

/// The future of [`RwLock::read_owned`].
#[must_use = "futures do nothing unless polled"]
pub struct ReadOwned<T: ?Sized> {
    /// `Some` until `Ready` moves it into the guard.
    lock: Option<Arc<RwLock<T>>>,
    core: AcquireCore,
}

/// The future of [`RwLock::write_owned`].
#[must_use = "futures do nothing unless polled"]
pub struct WriteOwned<T: ?Sized> {
    /// `Some` until `Ready` moves it into the guard.
    lock: Option<Arc<RwLock<T>>>,
    core: ExclusiveCore,
}

/// The future of [`RwLock::upgradable_read_owned`].
#[must_use = "futures do nothing unless polled"]
pub struct UpgradableReadOwned<T: ?Sized> {
    /// `Some` until `Ready` moves it into the guard.
    lock: Option<Arc<RwLock<T>>>,
    core: ExclusiveCore,
}

/// The future of [`OwnedRwLockUpgradableReadGuard::upgrade`].
#[must_use = "futures do nothing unless polled"]
pub struct UpgradeOwned<T: ?Sized> {
    /// `Some` until `Ready` turns it into the write guard.
    guard: Option<OwnedRwLockUpgradableReadGuard<T>>,
    /// The other `max_readers - 1` reader permits.
    core: AcquireCore,
}

/// The future of [`RwLockUpgradableReadGuard::upgrade`].
#[must_use = "futures do nothing unless polled"]
pub struct Upgrade<'a, T: ?Sized> {
    /// `Some` until `Ready` turns it into the write guard.
    guard: Option<RwLockUpgradableReadGuard<'a, T>>,
    /// The other `max_readers - 1` reader permits.
    core: AcquireCore,
}

// The `Send` / `Sync` impls of the futures share one argument: a future's waiter nodes
// are touched only under the semaphores' locks or by the owner after the semaphore
// ordered the last other access (see `crate::semaphore::Acquire`), and a shared
// reference to a future gives access to nothing. What remains is the reference to the
// lock (or the `Arc`, or the upgradable guard), which may cross threads when
// `RwLock<T>` is `Sync`, i.e. `T: Send + Sync`.

// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Send for Read<'_, T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Sync for Read<'_, T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Send for Write<'_, T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Sync for Write<'_, T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Send for UpgradableRead<'_, T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Sync for UpgradableRead<'_, T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Send for ReadOwned<T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Sync for ReadOwned<T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Send for WriteOwned<T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Sync for WriteOwned<T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Send for Upgrade<'_, T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Sync for Upgrade<'_, T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Send for UpgradableReadOwned<T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Sync for UpgradableReadOwned<T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Send for UpgradeOwned<T> {}
// SAFETY: see above.
unsafe impl<T: ?Sized + Send + Sync> Sync for UpgradeOwned<T> {}

impl<'a, T: ?Sized> Future for Read<'a, T> {
    type Output = RwLockReadGuard<'a, T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this`; `core` stays where it is.
        let this = unsafe { self.get_unchecked_mut() };
        let lock = this.lock;
        // SAFETY: `core` is pinned inside this pinned future, always polled with
        // `lock.readers`, and `Drop` cancels it with that semaphore.
        match unsafe { this.core.poll(&lock.readers, cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                permits_or_panic(r, "RwLock::read");
                Poll::Ready(RwLockReadGuard::new(&lock.readers, lock.shared_ptr()))
            }
        }
    }
}

impl<T: ?Sized> Drop for Read<'_, T> {
    fn drop(&mut self) {
        self.core.cancel(&self.lock.readers);
    }
}

impl<'a, T: ?Sized> Future for Write<'a, T> {
    type Output = RwLockWriteGuard<'a, T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this`; `core` stays where it is.
        let this = unsafe { self.get_unchecked_mut() };
        let lock = this.lock;
        // SAFETY: `core` is pinned inside this pinned future, always polled with
        // `lock`, and `Drop` cancels it with `lock`.
        match unsafe { this.core.poll(lock, cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                permits_or_panic(r, "RwLock::write");
                Poll::Ready(RwLockWriteGuard::new(lock, lock.exclusive_ptr()))
            }
        }
    }
}

impl<T: ?Sized> Drop for Write<'_, T> {
    fn drop(&mut self) {
        self.core.cancel(self.lock);
    }
}

impl<'a, T: ?Sized> Future for UpgradableRead<'a, T> {
    type Output = RwLockUpgradableReadGuard<'a, T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this`; `core` stays where it is.
        let this = unsafe { self.get_unchecked_mut() };
        let lock = this.lock;
        // SAFETY: `core` is pinned inside this pinned future, always polled with
        // `lock`, and `Drop` cancels it with `lock`.
        match unsafe { this.core.poll(lock, cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                permits_or_panic(r, "RwLock::upgradable_read");
                Poll::Ready(RwLockUpgradableReadGuard {
                    lock,
                    data: lock.shared_ptr(),
                    _marker: PhantomData,
                })
            }
        }
    }
}

impl<T: ?Sized> Drop for UpgradableRead<'_, T> {
    fn drop(&mut self) {
        self.core.cancel(self.lock);
    }
}

impl<T: ?Sized> Future for ReadOwned<T> {
    type Output = OwnedRwLockReadGuard<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this` except the `Arc` (not pinned data).
        let this = unsafe { self.get_unchecked_mut() };
        let Some(lock) = this.lock.as_deref() else {
            panic!("`RwLock::read_owned` future polled after it had completed");
        };
        // SAFETY: `core` is pinned inside this pinned future, always polled with the
        // `Arc`'s `readers`, and `Drop` cancels with it while the `Arc` is there (after
        // `Ready` took it, the core is finished and owns nothing).
        match unsafe { this.core.poll(&lock.readers, cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                permits_or_panic(r, "RwLock::read_owned");
                match this.lock.take() {
                    Some(lock) => Poll::Ready(OwnedRwLockReadGuard { lock }),
                    None => unreachable!("checked above"),
                }
            }
        }
    }
}

impl<T: ?Sized> Drop for ReadOwned<T> {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.as_deref() {
            self.core.cancel(&lock.readers);
        }
    }
}

impl<T: ?Sized> Future for WriteOwned<T> {
    type Output = OwnedRwLockWriteGuard<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this` except the `Arc` (not pinned data).
        let this = unsafe { self.get_unchecked_mut() };
        let Some(lock) = this.lock.as_deref() else {
            panic!("`RwLock::write_owned` future polled after it had completed");
        };
        // SAFETY: `core` is pinned inside this pinned future, always polled with the
        // `Arc`'s lock, and `Drop` cancels with it while the `Arc` is there.
        match unsafe { this.core.poll(lock, cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                permits_or_panic(r, "RwLock::write_owned");
                match this.lock.take() {
                    Some(lock) => {
                        // Records the exclusive access for loom, as the borrowed guard.
                        lock.exclusive_ptr();
                        Poll::Ready(OwnedRwLockWriteGuard { lock })
                    }
                    None => unreachable!("checked above"),
                }
            }
        }
    }
}

impl<T: ?Sized> Drop for WriteOwned<T> {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.as_deref() {
            self.core.cancel(lock);
        }
    }
}

impl<'a, T: ?Sized> Future for Upgrade<'a, T> {
    type Output = RwLockWriteGuard<'a, T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this` except the guard (not pinned data).
        let this = unsafe { self.get_unchecked_mut() };
        let Some(lock) = this.guard.as_ref().map(|g| g.lock) else {
            panic!("`RwLockUpgradableReadGuard::upgrade` future polled after it had completed");
        };
        // SAFETY: `core` is pinned inside this pinned future, always polled with
        // `lock.readers`, and `Drop` cancels with it while the guard is there.
        match unsafe { this.core.poll(&lock.readers, cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                permits_or_panic(r, "RwLockUpgradableReadGuard::upgrade");
                // The upgradable guard's permits (1 reader + `upgrade`) become the write
                // guard's, with the ones just acquired: it must not release them.
                let g = ManuallyDrop::new(this.guard.take());
                debug_assert!(g.is_some());
                Poll::Ready(RwLockWriteGuard::new(lock, lock.exclusive_ptr()))
            }
        }
    }
}

impl<T: ?Sized> Drop for Upgrade<'_, T> {
    fn drop(&mut self) {
        if let Some(g) = &self.guard {
            self.core.cancel(&g.lock.readers);
        }
        // Then the guard (a field) drops, releasing its reader and `upgrade` permits.
    }
}

impl<T: ?Sized> Future for UpgradableReadOwned<T> {
    type Output = OwnedRwLockUpgradableReadGuard<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this` except the `Arc` (not pinned data).
        let this = unsafe { self.get_unchecked_mut() };
        let Some(lock) = this.lock.as_deref() else {
            panic!("`RwLock::upgradable_read_owned` future polled after it had completed");
        };
        // SAFETY: `core` is pinned inside this pinned future, always polled with the
        // `Arc`'s lock, and `Drop` cancels with it while the `Arc` is there.
        match unsafe { this.core.poll(lock, cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                permits_or_panic(r, "RwLock::upgradable_read_owned");
                match this.lock.take() {
                    Some(lock) => Poll::Ready(OwnedRwLockUpgradableReadGuard { lock }),
                    None => unreachable!("checked above"),
                }
            }
        }
    }
}

impl<T: ?Sized> Drop for UpgradableReadOwned<T> {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.as_deref() {
            self.core.cancel(lock);
        }
    }
}

impl<T: ?Sized> Future for UpgradeOwned<T> {
    type Output = OwnedRwLockWriteGuard<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this` except the guard (not pinned data).
        let this = unsafe { self.get_unchecked_mut() };
        let Some(guard) = this.guard.as_ref() else {
            panic!(
                "`OwnedRwLockUpgradableReadGuard::upgrade` future polled after it had completed"
            );
        };
        // SAFETY: `core` is pinned inside this pinned future, always polled with the
        // guard's `readers`, and `Drop` cancels with it while the guard is there.
        match unsafe { this.core.poll(&guard.lock.readers, cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                permits_or_panic(r, "OwnedRwLockUpgradableReadGuard::upgrade");
                match this.guard.take() {
                    Some(g) => {
                        // The guard's permits pass to the write guard with the new ones.
                        let lock = g.into_lock();
                        lock.exclusive_ptr();
                        Poll::Ready(OwnedRwLockWriteGuard { lock })
                    }
                    None => unreachable!("checked above"),
                }
            }
        }
    }
}

impl<T: ?Sized> Drop for UpgradeOwned<T> {
    fn drop(&mut self) {
        if let Some(g) = &self.guard {
            self.core.cancel(&g.lock.readers);
        }
        // Then the guard (a field) drops, releasing its reader and `upgrade` permits.
    }
}

macro_rules! future_debug {
    ($($name:ident),*) => {$(
        impl<T: ?Sized> fmt::Debug for $name<'_, T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name)).finish_non_exhaustive()
            }
        }
    )*};
}
future_debug!(Read, Write, UpgradableRead, Upgrade);

impl<T: ?Sized> fmt::Debug for ReadOwned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadOwned").finish_non_exhaustive()
    }
}

impl<T: ?Sized> fmt::Debug for WriteOwned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteOwned").finish_non_exhaustive()
    }
}

impl<T: ?Sized> fmt::Debug for UpgradableReadOwned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradableReadOwned")
            .finish_non_exhaustive()
    }
}

impl<T: ?Sized> fmt::Debug for UpgradeOwned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeOwned").finish_non_exhaustive()
    }
}

/// Shared access to a value (or a part of it, after [`map`](Self::map)) of an
/// [`RwLock`]; releases its reader slot when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct RwLockReadGuard<'a, T: ?Sized> {
    readers: &'a Semaphore,
    data: NonNull<T>,
    _marker: PhantomData<&'a T>,
}

// SAFETY: the guard gives `&T` only, to whichever thread holds or shares it; releasing
// its permit from another thread is fine (the semaphore is `Sync`).
unsafe impl<T: ?Sized + Sync> Send for RwLockReadGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Sync> Sync for RwLockReadGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockReadGuard<'a, T> {
    fn new(readers: &'a Semaphore, data: NonNull<T>) -> Self {
        Self {
            readers,
            data,
            _marker: PhantomData,
        }
    }

    /// A read guard for a part of the value, keeping the same reader slot. An
    /// associated function (`RwLockReadGuard::map(guard, f)`) so it does not shadow a
    /// method of `T`. If `f` panics the slot is released.
    pub fn map<U: ?Sized, F: FnOnce(&T) -> &U>(this: Self, f: F) -> RwLockReadGuard<'a, U> {
        let data = NonNull::from(f(&*this));
        let this = ManuallyDrop::new(this);
        RwLockReadGuard::new(this.readers, data)
    }

    /// As [`map`](Self::map), but `f` may decline (`None`), which gives the guard back.
    pub fn try_map<U: ?Sized, F: FnOnce(&T) -> Option<&U>>(
        this: Self,
        f: F,
    ) -> Result<RwLockReadGuard<'a, U>, Self> {
        let Some(data) = f(&*this).map(NonNull::from) else {
            return Err(this);
        };
        let this = ManuallyDrop::new(this);
        Ok(RwLockReadGuard::new(this.readers, data))
    }
}

impl<T: ?Sized> Deref for RwLockReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds a reader permit, so no writer exists, and `data`
        // points into the lock (or a part of its value), which outlives `'a`.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> Drop for RwLockReadGuard<'_, T> {
    fn drop(&mut self) {
        self.readers.release(1);
    }
}

/// Exclusive access to the value of an [`RwLock`]; releases the lock when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct RwLockWriteGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    data: NonNull<T>,
    _marker: PhantomData<&'a mut T>,
}

// SAFETY: the guard gives `&mut T` to the thread holding it (moving values across
// threads: `T: Send`) and `&T` through a shared guard (`T: Sync`).
unsafe impl<T: ?Sized + Send + Sync> Send for RwLockWriteGuard<'_, T> {}
// SAFETY: as above.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLockWriteGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockWriteGuard<'a, T> {
    fn new(lock: &'a RwLock<T>, data: NonNull<T>) -> Self {
        Self {
            lock,
            data,
            _marker: PhantomData,
        }
    }

    /// Turns the write lock into a read lock atomically: no writer can get in between.
    /// Readers queued behind this writer are let in. Lock-free (a CAS per semaphore)
    /// when no task is queued.
    pub fn downgrade(self) -> RwLockReadGuard<'a, T> {
        let this = ManuallyDrop::new(self);
        let lock = this.lock;
        // The read guard first: if a waker panics in a release below, unwinding drops
        // it and `_upgrade`, so only what that release had not handed out is lost.
        let read = RwLockReadGuard::new(&lock.readers, this.data);
        let _upgrade = ReleaseOnDrop(&lock.upgrade, 1);
        lock.readers.release(lock.max_readers - 1);
        read
    }

    /// Turns the write lock into an upgradable read atomically: readers may come in,
    /// writers still wait.
    pub fn downgrade_to_upgradable(self) -> RwLockUpgradableReadGuard<'a, T> {
        let this = ManuallyDrop::new(self);
        let lock = this.lock;
        // The new guard first, so that a panicking waker below does not leak its
        // permits (see `downgrade`).
        let upgradable = RwLockUpgradableReadGuard {
            lock,
            data: this.data,
            _marker: PhantomData,
        };
        lock.readers.release(lock.max_readers - 1);
        upgradable
    }

    /// A write guard for a part of the value (`RwLockWriteGuard::map(guard, |v| &mut
    /// v.field)`). The mapped guard cannot downgrade. If `f` panics the lock is
    /// released.
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(
        mut this: Self,
        f: F,
    ) -> RwLockMappedWriteGuard<'a, U> {
        let data = NonNull::from(f(&mut *this));
        let this = ManuallyDrop::new(this);
        RwLockMappedWriteGuard::new(this.lock, data)
    }

    /// As [`map`](Self::map), but `f` may decline (`None`), which gives the guard back.
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        mut this: Self,
        f: F,
    ) -> Result<RwLockMappedWriteGuard<'a, U>, Self> {
        let Some(data) = f(&mut *this).map(NonNull::from) else {
            return Err(this);
        };
        let this = ManuallyDrop::new(this);
        Ok(RwLockMappedWriteGuard::new(this.lock, data))
    }
}

impl<T: ?Sized> Deref for RwLockWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds every reader permit: it is the only access.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for RwLockWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` excludes other borrows of the guard.
        unsafe { self.data.as_mut() }
    }
}

impl<T: ?Sized> Drop for RwLockWriteGuard<'_, T> {
    fn drop(&mut self) {
        let _upgrade = ReleaseOnDrop(&self.lock.upgrade, 1);
        self.lock.readers.release(self.lock.max_readers);
    }
}

/// Exclusive access to a part of the value of an [`RwLock`], from
/// [`RwLockWriteGuard::map`]; releases the lock when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct RwLockMappedWriteGuard<'a, T: ?Sized> {
    readers: &'a Semaphore,
    upgrade: &'a Semaphore,
    permits: usize,
    data: NonNull<T>,
    _marker: PhantomData<&'a mut T>,
}

// SAFETY: as for `RwLockWriteGuard`.
unsafe impl<T: ?Sized + Send + Sync> Send for RwLockMappedWriteGuard<'_, T> {}
// SAFETY: as for `RwLockWriteGuard`.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLockMappedWriteGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockMappedWriteGuard<'a, T> {
    fn new<L: ?Sized>(lock: &'a RwLock<L>, data: NonNull<T>) -> Self {
        Self {
            readers: &lock.readers,
            upgrade: &lock.upgrade,
            permits: lock.max_readers,
            data,
            _marker: PhantomData,
        }
    }

    /// Maps further, as [`RwLockWriteGuard::map`].
    pub fn map<U: ?Sized, F: FnOnce(&mut T) -> &mut U>(
        mut this: Self,
        f: F,
    ) -> RwLockMappedWriteGuard<'a, U> {
        let data = NonNull::from(f(&mut *this));
        let this = ManuallyDrop::new(this);
        RwLockMappedWriteGuard {
            readers: this.readers,
            upgrade: this.upgrade,
            permits: this.permits,
            data,
            _marker: PhantomData,
        }
    }

    /// Maps further, as [`RwLockWriteGuard::try_map`].
    pub fn try_map<U: ?Sized, F: FnOnce(&mut T) -> Option<&mut U>>(
        mut this: Self,
        f: F,
    ) -> Result<RwLockMappedWriteGuard<'a, U>, Self> {
        let Some(data) = f(&mut *this).map(NonNull::from) else {
            return Err(this);
        };
        let this = ManuallyDrop::new(this);
        Ok(RwLockMappedWriteGuard {
            readers: this.readers,
            upgrade: this.upgrade,
            permits: this.permits,
            data,
            _marker: PhantomData,
        })
    }
}

impl<T: ?Sized> Deref for RwLockMappedWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds every reader permit: it is the only access.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for RwLockMappedWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` excludes other borrows of the guard.
        unsafe { self.data.as_mut() }
    }
}

impl<T: ?Sized> Drop for RwLockMappedWriteGuard<'_, T> {
    fn drop(&mut self) {
        let _upgrade = ReleaseOnDrop(self.upgrade, 1);
        self.readers.release(self.permits);
    }
}

/// Shared access to the value of an [`RwLock`] that excludes writers and other
/// upgradable readers, so it can become a write lock with nothing in between
/// ([`upgrade`](Self::upgrade)). Releases its permits when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct RwLockUpgradableReadGuard<'a, T: ?Sized> {
    lock: &'a RwLock<T>,
    data: NonNull<T>,
    _marker: PhantomData<&'a T>,
}

// SAFETY: it gives `&T`, and can become a write guard on whichever thread holds it
// (needs `T: Send + Sync`, as a write guard).
unsafe impl<T: ?Sized + Send + Sync> Send for RwLockUpgradableReadGuard<'_, T> {}
// SAFETY: a shared guard gives `&T` only.
unsafe impl<T: ?Sized + Send + Sync> Sync for RwLockUpgradableReadGuard<'_, T> {}

impl<'a, T: ?Sized> RwLockUpgradableReadGuard<'a, T> {
    /// The lock this guard holds.
    pub fn rwlock(this: &Self) -> &'a RwLock<T> {
        this.lock
    }

    /// Waits until every other reader has left, then turns this into a write guard.
    /// Readers already queued may go first; readers that come later wait behind it, and
    /// no writer can get in between (this guard holds the `upgrade` permit).
    ///
    /// # Cancel safety
    ///
    /// Not cancel-safe in `select!`'s sense: the guard moves into the future, so
    /// dropping the future before it completes also gives up the upgradable read the
    /// caller held (to keep it, use [`try_upgrade`](Self::try_upgrade), or take an
    /// upgradable read again). Nothing leaks: the reader permits it collected pass on
    /// to the next waiters and the upgradable read's permits are released.
    pub fn upgrade(self) -> Upgrade<'a, T> {
        let n = self.lock.max_readers - 1;
        Upgrade {
            guard: Some(self),
            core: AcquireCore::new(n),
        }
    }

    /// Turns this into a write guard if no other reader holds the lock and nobody is
    /// queued for a reader slot; otherwise gives the guard back. Lock-free.
    pub fn try_upgrade(self) -> Result<RwLockWriteGuard<'a, T>, Self> {
        let lock = self.lock;
        match lock.readers.try_take(lock.max_readers - 1) {
            Ok(()) => {
                let _ = ManuallyDrop::new(self);
                Ok(RwLockWriteGuard::new(lock, lock.exclusive_ptr()))
            }
            Err(_) => Err(self),
        }
    }

    /// Turns this into a plain read guard, letting writers and upgradable readers in
    /// (after this and the other readers leave). Lock-free when nobody is queued.
    pub fn downgrade(self) -> RwLockReadGuard<'a, T> {
        let this = ManuallyDrop::new(self);
        // The read guard first, so that a panicking waker below does not leak it.
        let read = RwLockReadGuard::new(&this.lock.readers, this.data);
        this.lock.upgrade.release(1);
        read
    }
}

impl<T: ?Sized> Deref for RwLockUpgradableReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds a reader permit (no writer exists) and the `upgrade`
        // permit; `data` points into the lock, which outlives `'a`.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> Drop for RwLockUpgradableReadGuard<'_, T> {
    fn drop(&mut self) {
        let _upgrade = ReleaseOnDrop(&self.lock.upgrade, 1);
        self.lock.readers.release(1);
    }
}

/// Shared access to the value of an `Arc<RwLock<T>>`, from [`RwLock::read_owned`];
/// keeps the lock alive and releases its reader slot when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct OwnedRwLockReadGuard<T: ?Sized> {
    lock: Arc<RwLock<T>>,
}

impl<T: ?Sized> OwnedRwLockReadGuard<T> {
    /// The lock this guard holds.
    pub fn rwlock(this: &Self) -> &Arc<RwLock<T>> {
        &this.lock
    }
}

impl<T: ?Sized> Deref for OwnedRwLockReadGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.lock.data.with(|p| {
            // SAFETY: the guard holds a reader permit, so no writer exists; the `Arc`
            // keeps the value alive.
            unsafe { &*p }
        })
    }
}

impl<T: ?Sized> Drop for OwnedRwLockReadGuard<T> {
    fn drop(&mut self) {
        self.lock.readers.release(1);
    }
}

/// Exclusive access to the value of an `Arc<RwLock<T>>`, from
/// [`RwLock::write_owned`]; keeps the lock alive and releases it when dropped.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct OwnedRwLockWriteGuard<T: ?Sized> {
    lock: Arc<RwLock<T>>,
}

impl<T: ?Sized> OwnedRwLockWriteGuard<T> {
    /// The lock this guard holds.
    pub fn rwlock(this: &Self) -> &Arc<RwLock<T>> {
        &this.lock
    }

    /// Turns the write lock into a read lock atomically, as
    /// [`RwLockWriteGuard::downgrade`].
    pub fn downgrade(self) -> OwnedRwLockReadGuard<T> {
        // The read guard first, so that a panicking waker below does not leak it (see
        // `RwLockWriteGuard::downgrade`).
        let read = OwnedRwLockReadGuard {
            lock: self.into_lock(),
        };
        {
            let lock = &read.lock;
            let _upgrade = ReleaseOnDrop(&lock.upgrade, 1);
            lock.readers.release(lock.max_readers - 1);
        }
        read
    }

    /// Turns the write lock into an upgradable read atomically, as
    /// [`RwLockWriteGuard::downgrade_to_upgradable`].
    pub fn downgrade_to_upgradable(self) -> OwnedRwLockUpgradableReadGuard<T> {
        let upgradable = OwnedRwLockUpgradableReadGuard {
            lock: self.into_lock(),
        };
        let lock = &upgradable.lock;
        lock.readers.release(lock.max_readers - 1);
        upgradable
    }

    /// The `Arc`, without releasing anything (the caller takes over the permits).
    fn into_lock(self) -> Arc<RwLock<T>> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the `Arc` is moved out once.
        unsafe { core::ptr::read(&this.lock) }
    }
}

impl<T: ?Sized> Deref for OwnedRwLockWriteGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.lock.data.with(|p| {
            // SAFETY: the guard holds every reader permit: it is the only access.
            unsafe { &*p }
        })
    }
}

impl<T: ?Sized> DerefMut for OwnedRwLockWriteGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.lock.data.with_mut(|p| {
            // SAFETY: as above, and `&mut self` excludes other borrows of the guard.
            unsafe { &mut *p }
        })
    }
}

impl<T: ?Sized> Drop for OwnedRwLockWriteGuard<T> {
    fn drop(&mut self) {
        let _upgrade = ReleaseOnDrop(&self.lock.upgrade, 1);
        self.lock.readers.release(self.lock.max_readers);
    }
}

/// An upgradable read of an `Arc<RwLock<T>>`, from
/// [`RwLock::upgradable_read_owned`]; as [`RwLockUpgradableReadGuard`], keeping the lock
/// alive.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct OwnedRwLockUpgradableReadGuard<T: ?Sized> {
    lock: Arc<RwLock<T>>,
}

impl<T: ?Sized> OwnedRwLockUpgradableReadGuard<T> {
    /// The lock this guard holds.
    pub fn rwlock(this: &Self) -> &Arc<RwLock<T>> {
        &this.lock
    }

    /// Waits until every other reader has left, then turns this into a write guard;
    /// see [`RwLockUpgradableReadGuard::upgrade`].
    ///
    /// # Cancel safety
    ///
    /// As [`RwLockUpgradableReadGuard::upgrade`]: not cancel-safe in `select!`'s
    /// sense, since dropping the future releases the upgradable read too; nothing
    /// leaks.
    pub fn upgrade(self) -> UpgradeOwned<T> {
        let n = self.lock.max_readers - 1;
        UpgradeOwned {
            guard: Some(self),
            core: AcquireCore::new(n),
        }
    }

    /// Turns this into a write guard if no other reader holds the lock and nobody is
    /// queued for a reader slot; otherwise gives the guard back. Lock-free.
    pub fn try_upgrade(self) -> Result<OwnedRwLockWriteGuard<T>, Self> {
        match self.lock.readers.try_take(self.lock.max_readers - 1) {
            Ok(()) => {
                let lock = self.into_lock();
                lock.exclusive_ptr();
                Ok(OwnedRwLockWriteGuard { lock })
            }
            Err(_) => Err(self),
        }
    }

    /// Turns this into a plain read guard, as [`RwLockUpgradableReadGuard::downgrade`].
    pub fn downgrade(self) -> OwnedRwLockReadGuard<T> {
        let read = OwnedRwLockReadGuard {
            lock: self.into_lock(),
        };
        read.lock.upgrade.release(1);
        read
    }

    /// The `Arc`, without releasing anything (the caller takes over the permits).
    fn into_lock(self) -> Arc<RwLock<T>> {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used or dropped again, so the `Arc` is moved out once.
        unsafe { core::ptr::read(&this.lock) }
    }
}

impl<T: ?Sized> Deref for OwnedRwLockUpgradableReadGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.lock.data.with(|p| {
            // SAFETY: the guard holds a reader permit, so no writer exists; the `Arc`
            // keeps the value alive.
            unsafe { &*p }
        })
    }
}

impl<T: ?Sized> Drop for OwnedRwLockUpgradableReadGuard<T> {
    fn drop(&mut self) {
        let _upgrade = ReleaseOnDrop(&self.lock.upgrade, 1);
        self.lock.readers.release(1);
    }
}

macro_rules! guard_fmt {
    ($($name:ident $(<$lt:lifetime>)?),*) => {$(
        impl<T: ?Sized + fmt::Debug> fmt::Debug for $name<$($lt,)? T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&**self, f)
            }
        }
        impl<T: ?Sized + fmt::Display> fmt::Display for $name<$($lt,)? T> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&**self, f)
            }
        }
    )*};
}
guard_fmt!(
    RwLockReadGuard<'_>,
    RwLockWriteGuard<'_>,
    RwLockMappedWriteGuard<'_>,
    RwLockUpgradableReadGuard<'_>,
    OwnedRwLockReadGuard,
    OwnedRwLockWriteGuard,
    OwnedRwLockUpgradableReadGuard
);

#[cfg(test)]
#[path = "rwlock_tests.rs"]
mod tests;
