//! A runtime-agnostic async mutex with strict FIFO hand-off.
//!
//! [`Mutex<T>`] guards a value for async tasks on any executor (it uses only
//! `core::task::Waker`). Names and semantics follow `tokio::sync::Mutex`: [`lock`],
//! [`try_lock`], [`lock_owned`] for an `Arc<Mutex<T>>`, [`blocking_lock`] for
//! synchronous code, guards that are `Send` (a guard may be held across an `.await` in
//! a spawned task) and that [`map`](MutexGuard::map) to a part of the value. Like
//! tokio's, the mutex is not poisoned by a panic while it is held.
//!
//! ```
//! use std::sync::Arc;
//! use strata_async::mutex::{Mutex, TryLockError};
//!
//! let m = Arc::new(Mutex::new(vec![1, 2]));
//! futures::executor::block_on(async {
//!     let mut g = m.lock().await;
//!     g.push(3);
//!     assert_eq!(m.try_lock().unwrap_err(), TryLockError::WouldBlock);
//!     drop(g);
//!
//!     let owned = Arc::clone(&m).lock_owned().await; // 'static: can move into a task
//!     let mut first = strata_async::mutex::OwnedMutexGuard::map(owned, |v| &mut v[0]);
//!     *first = 10;
//! });
//! assert_eq!(*m.try_lock().unwrap(), [10, 2, 3]);
//! ```
//!
//! # Algorithm
//!
//! The mutex is this crate's [`Semaphore`] with one permit, and the guard holds that
//! permit (as tokio's mutex is its semaphore with one permit). So it inherits the
//! semaphore's properties, model-checked there and again here through the mutex's own
//! loom models:
//!
//! * **Strict FIFO**: a task that had to wait is served in arrival order, and while
//!   tasks wait, a new [`lock`] or [`try_lock`] never barges past them (the released
//!   permit is handed to the head waiter, not put back). The cost is the one of every
//!   FIFO lock: the next holder must be scheduled before anyone makes progress.
//! * **Progress**: an uncontended [`lock`] (its first poll) and [`try_lock`] are a load
//!   and one compare-and-swap, with no lock taken; unlocking with nobody queued is a
//!   load and one CAS. Queueing, re-polling a queued future, cancelling it, and
//!   unlocking to a queued waiter take the semaphore's short internal lock (never held
//!   across user code; wakers are called after it).
//! * **Linearization points**: a lock takes effect at the CAS that took the permit, or,
//!   for a waiter, at the release that handed the permit to it (under the internal
//!   lock); an unlock at its CAS or that hand-off.
//! * **Cancellation**: dropping a lock future at any point loses no wake-up; if the lock
//!   had already been handed to it, the lock passes to the next waiter.
//! * **Memory ordering**: a guard's acquisition synchronizes with the previous guard's
//!   release (`Release` on the release side, `Acquire` on the acquire side), so
//!   everything the previous holder wrote is visible to the next.
//!
//! [`lock`]: Mutex::lock
//! [`try_lock`]: Mutex::try_lock
//! [`lock_owned`]: Mutex::lock_owned
//! [`blocking_lock`]: Mutex::blocking_lock

use core::cell::Cell;
use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};
use core::pin::Pin;
use core::ptr::NonNull;
use core::task::{Context, Poll, Waker};
use std::sync::Arc;

use strata_primitives::cell::UnsafeCell;
use strata_primitives::{Parker, Unparker};

use crate::semaphore::{AcquireCore, Semaphore};

/// The error of [`Mutex::try_lock`] and [`Mutex::try_lock_owned`], and of the
/// `try_*` methods of [`RwLock`](crate::rwlock::RwLock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TryLockError {
    /// The lock is held (in a conflicting mode, for a rw-lock), or tasks are waiting
    /// for it (it is handed over in FIFO order, so a `try_*` does not pass them).
    #[error("the lock is held or tasks are waiting for it")]
    WouldBlock,
}

/// An async mutex with strict FIFO hand-off; see the [module documentation](self).
///
/// `Send` if `T: Send`, and `Sync` if `T: Send` (as `std::sync::Mutex`: only one
/// thread at a time reaches the value).
pub struct Mutex<T: ?Sized> {
    sem: Semaphore,
    data: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a guard, and a guard exists only while the
// semaphore's single permit is held, so at most one thread accesses it at a time; that
// thread may be any thread, hence `T: Send`.
unsafe impl<T: ?Sized + Send> Sync for Mutex<T> {}

impl<T> Mutex<T> {
    /// A new, unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Self {
            sem: Semaphore::new(1),
            data: UnsafeCell::new(value),
        }
    }

    /// Consumes the mutex and returns the value.
    pub fn into_inner(self) -> T {
        self.data.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Waits for the lock and returns a guard that releases it when dropped.
    ///
    /// Waiters are served in FIFO order. The first poll takes the lock with one CAS if
    /// it is free and nobody waits.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: dropping the future at any point gives up its place in the queue
    /// and loses no wake-up; if the lock had already been handed to it, the lock
    /// passes to the next waiter (or is released).
    ///
    /// # Panics
    ///
    /// The future panics if it is polled again after it returned the guard (the
    /// `Future` contract, as for an `async fn`).
    pub fn lock(&self) -> Lock<'_, T> {
        Lock {
            mutex: self,
            core: AcquireCore::new(1),
        }
    }

    /// Takes the lock if it is free and nobody waits for it; lock-free (a load and a
    /// CAS).
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        match self.sem.try_take(1) {
            Ok(()) => Ok(MutexGuard::new(self)),
            Err(_) => Err(TryLockError::WouldBlock),
        }
    }

    /// Waits for the lock, as [`lock`](Self::lock), and returns a guard that keeps the
    /// mutex alive (it is `'static` if `T` is, so it can move into a spawned task).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, as [`lock`](Self::lock).
    ///
    /// # Panics
    ///
    /// As [`lock`](Self::lock): if polled again after completion.
    pub fn lock_owned(self: Arc<Self>) -> LockOwned<T> {
        LockOwned {
            mutex: Some(self),
            core: AcquireCore::new(1),
        }
    }

    /// Takes the lock without waiting, as [`try_lock`](Self::try_lock), returning an
    /// owned guard.
    pub fn try_lock_owned(self: Arc<Self>) -> Result<OwnedMutexGuard<T>, TryLockError> {
        match self.sem.try_take(1) {
            Ok(()) => Ok(OwnedMutexGuard::new(self)),
            Err(_) => Err(TryLockError::WouldBlock),
        }
    }

    /// Blocks the current thread until the lock is taken: for synchronous code that
    /// shares the mutex with async tasks. It waits in the same FIFO queue.
    ///
    /// Unlike tokio's, it does not detect being called on an executor thread; doing so
    /// blocks that thread, and if the holder needs it to make progress, deadlocks.
    pub fn blocking_lock(&self) -> MutexGuard<'_, T> {
        block_on(self.lock())
    }

    /// As [`blocking_lock`](Self::blocking_lock), returning an owned guard.
    pub fn blocking_lock_owned(self: Arc<Self>) -> OwnedMutexGuard<T> {
        block_on(self.lock_owned())
    }

    /// A mutable reference to the value; no locking is needed, since `&mut self`
    /// proves nobody else holds the mutex.
    pub fn get_mut(&mut self) -> &mut T {
        // SAFETY: `&mut self` excludes every guard and every other reference.
        self.data.with_mut(|p| unsafe { &mut *p })
    }

    /// Releases the permit held by a guard.
    fn unlock(&self) {
        self.sem.release(1);
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T> From<T> for Mutex<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    /// Shows the value if the lock can be taken at once, else `<locked>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(g) => d.field("data", &&*g),
            Err(_) => d.field("data", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// Runs `fut` on this thread, parking between polls (through the shim's `Parker`, so
/// under loom a lost wake-up leaves the modelled thread parked: a reported deadlock).
/// Used by the `blocking_*` methods, and by the crate's tests and loom models.
pub(crate) fn block_on<F: Future>(fut: F) -> F::Output {
    struct UnparkWaker(Unparker);
    impl std::task::Wake for UnparkWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let parker = Parker::new();
    let waker = Waker::from(Arc::new(UnparkWaker(parker.unparker())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = core::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        parker.park();
    }
}

/// The message of a lock future polled after it completed.
const POLLED_AFTER_COMPLETION: &str =
    "a strata_async::mutex lock future was polled after it had completed";

/// The future of [`Mutex::lock`].
///
/// `Send` and `Sync` if `T: Send`; `!Unpin` (its waiter node is linked into the
/// mutex's queue while it waits). Dropping it is always safe; see the `# Cancel
/// safety` section of [`Mutex::lock`].
#[must_use = "futures do nothing unless polled"]
pub struct Lock<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    core: AcquireCore,
}

// SAFETY: the waiter node inside `core` is accessed by other threads only under the
// semaphore's lock (or after the `Release`/`Acquire` status hand-over), so the future
// may move between threads as `semaphore::Acquire` does; the reference to the mutex is
// `Send` when `Mutex<T>: Sync`, that is when `T: Send`.
unsafe impl<T: ?Sized + Send> Send for Lock<'_, T> {}
// SAFETY: no `&self` method of the future touches the node; a shared reference gives
// access to nothing but the `&Mutex<T>`, which is `Sync` when `T: Send`.
unsafe impl<T: ?Sized + Send> Sync for Lock<'_, T> {}

impl<T: ?Sized> fmt::Debug for Lock<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

impl<'a, T: ?Sized> Future for Lock<'a, T> {
    type Output = MutexGuard<'a, T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this`; `core` (and its node) stays where it is.
        let this = unsafe { self.get_unchecked_mut() };
        let mutex = this.mutex;
        // SAFETY: `core` is pinned inside this pinned future, the semaphore is always
        // `mutex.sem`, and `Drop` cancels with it.
        match unsafe { this.core.poll(&mutex.sem, cx) } {
            Poll::Pending => Poll::Pending,
            // The semaphore is never closed and 1 <= MAX_PERMITS, so the only error is
            // a poll after completion.
            Poll::Ready(Ok(_)) => Poll::Ready(MutexGuard::new(mutex)),
            Poll::Ready(Err(_)) => panic!("{POLLED_AFTER_COMPLETION}"),
        }
    }
}

impl<T: ?Sized> Drop for Lock<'_, T> {
    fn drop(&mut self) {
        self.core.cancel(&self.mutex.sem);
    }
}

/// The future of [`Mutex::lock_owned`]. `Send` and `Sync` if `T: Send`; `!Unpin`.
#[must_use = "futures do nothing unless polled"]
pub struct LockOwned<T: ?Sized> {
    /// `Some` until `Ready` moves it into the guard.
    mutex: Option<Arc<Mutex<T>>>,
    core: AcquireCore,
}

// SAFETY: as for `Lock`; `Arc<Mutex<T>>` is `Send` when `Mutex<T>` is `Send + Sync`,
// that is when `T: Send`.
unsafe impl<T: ?Sized + Send> Send for LockOwned<T> {}
// SAFETY: as for `Lock`.
unsafe impl<T: ?Sized + Send> Sync for LockOwned<T> {}

impl<T: ?Sized> fmt::Debug for LockOwned<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockOwned").finish_non_exhaustive()
    }
}

impl<T: ?Sized> Future for LockOwned<T> {
    type Output = OwnedMutexGuard<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: we never move out of `this` except the `Arc` (not pinned data).
        let this = unsafe { self.get_unchecked_mut() };
        let Some(mutex) = this.mutex.as_deref() else {
            panic!("{POLLED_AFTER_COMPLETION}");
        };
        // SAFETY: `core` is pinned inside this pinned future; the semaphore is the
        // `Arc`'s, the same at every poll, and `Drop` cancels with it while it is
        // `Some` (after `Ready` took it, the core is finished and owns nothing).
        match unsafe { this.core.poll(&mutex.sem, cx) } {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(_)) => match this.mutex.take() {
                Some(m) => Poll::Ready(OwnedMutexGuard::new(m)),
                None => panic!("{POLLED_AFTER_COMPLETION}"),
            },
            Poll::Ready(Err(_)) => panic!("{POLLED_AFTER_COMPLETION}"),
        }
    }
}

impl<T: ?Sized> Drop for LockOwned<T> {
    fn drop(&mut self) {
        if let Some(m) = self.mutex.as_deref() {
            self.core.cancel(&m.sem);
        }
    }
}

/// Holds the lock of a [`Mutex`]; releases it when dropped.
///
/// `Send` if `T: Send` (unlike std's guard: it may be held across an `.await` in a task
/// that moves between threads), `Sync` if `T: Send + Sync`.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct MutexGuard<'a, T: ?Sized> {
    lock: &'a Mutex<T>,
    /// Makes the guard `Sync` only if `T: Sync` (it hands out `&T`).
    _marker: PhantomData<&'a mut T>,
}

impl<'a, T: ?Sized> MutexGuard<'a, T> {
    /// A guard for `lock`, whose permit the caller holds.
    fn new(lock: &'a Mutex<T>) -> Self {
        Self {
            lock,
            _marker: PhantomData,
        }
    }

    /// The mutex this guard locks.
    pub fn mutex(this: &Self) -> &'a Mutex<T> {
        this.lock
    }

    /// Narrows the guard to a part of the value; the lock stays held until the mapped
    /// guard is dropped. If `f` panics, the lock is released.
    ///
    /// An associated function (`MutexGuard::map(guard, f)`), so it never shadows a
    /// method of `T`.
    pub fn map<U: ?Sized, F>(mut this: Self, f: F) -> MappedMutexGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let data = NonNull::from(f(&mut *this));
        let this = ManuallyDrop::new(this);
        MappedMutexGuard {
            sem: &this.lock.sem,
            data,
            _marker: PhantomData,
        }
    }

    /// As [`map`](Self::map), but `f` may decline by returning `None`, which gives the
    /// guard back unchanged.
    pub fn try_map<U: ?Sized, F>(mut this: Self, f: F) -> Result<MappedMutexGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        match f(&mut *this) {
            Some(u) => {
                let data = NonNull::from(u);
                let this = ManuallyDrop::new(this);
                Ok(MappedMutexGuard {
                    sem: &this.lock.sem,
                    data,
                    _marker: PhantomData,
                })
            }
            None => Err(this),
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the mutex's only permit, so no `&mut` to the value
        // exists elsewhere.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the only permit, and `&mut self` excludes every other
        // use of this guard.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T: ?Sized> Drop for MutexGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// A [`MutexGuard`] narrowed by [`MutexGuard::map`] to a part of the value; it holds
/// the lock until dropped. `Send` if `T: Send`, `Sync` if `T: Sync`.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct MappedMutexGuard<'a, T: ?Sized> {
    sem: &'a Semaphore,
    /// Points into the locked value (valid while the permit is held).
    data: NonNull<T>,
    _marker: PhantomData<&'a mut T>,
}

// SAFETY: the guard is a unique reference into the locked value (the permit is held):
// moving it to another thread moves a `&mut T`.
unsafe impl<T: ?Sized + Send> Send for MappedMutexGuard<'_, T> {}
// SAFETY: sharing the guard shares only `&T`.
unsafe impl<T: ?Sized + Sync> Sync for MappedMutexGuard<'_, T> {}

impl<'a, T: ?Sized> MappedMutexGuard<'a, T> {
    /// Narrows the guard further; see [`MutexGuard::map`].
    pub fn map<U: ?Sized, F>(mut this: Self, f: F) -> MappedMutexGuard<'a, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let data = NonNull::from(f(&mut *this));
        let this = ManuallyDrop::new(this);
        MappedMutexGuard {
            sem: this.sem,
            data,
            _marker: PhantomData,
        }
    }

    /// Narrows the guard further, or gives it back if `f` returns `None`.
    pub fn try_map<U: ?Sized, F>(mut this: Self, f: F) -> Result<MappedMutexGuard<'a, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        match f(&mut *this) {
            Some(u) => {
                let data = NonNull::from(u);
                let this = ManuallyDrop::new(this);
                Ok(MappedMutexGuard {
                    sem: this.sem,
                    data,
                    _marker: PhantomData,
                })
            }
            None => Err(this),
        }
    }
}

impl<T: ?Sized> Deref for MappedMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: `data` points into the locked value and the permit is held.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized> DerefMut for MappedMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as above, and `&mut self` excludes other uses of the guard.
        unsafe { self.data.as_mut() }
    }
}

impl<T: ?Sized> Drop for MappedMutexGuard<'_, T> {
    fn drop(&mut self) {
        self.sem.release(1);
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MappedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MappedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// Holds the lock of an `Arc<Mutex<T>>` and keeps the mutex alive; releases the lock
/// when dropped. `Send` if `T: Send`, `Sync` if `T: Send + Sync`.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct OwnedMutexGuard<T: ?Sized> {
    lock: Arc<Mutex<T>>,
    /// `!Sync` by default; `Sync` is implemented below when `T: Send + Sync`.
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: sharing the guard shares only `&T` (and the `Arc`, which is `Sync` because
// `Mutex<T>` is `Send + Sync` when `T: Send`).
unsafe impl<T: ?Sized + Send + Sync> Sync for OwnedMutexGuard<T> {}

impl<T: ?Sized> OwnedMutexGuard<T> {
    /// A guard for `lock`, whose permit the caller holds.
    fn new(lock: Arc<Mutex<T>>) -> Self {
        Self {
            lock,
            _not_sync: PhantomData,
        }
    }

    /// The mutex this guard locks.
    pub fn mutex(this: &Self) -> &Arc<Mutex<T>> {
        &this.lock
    }

    /// Takes the `Arc` out without running `Drop` (the permit stays held).
    fn into_arc(this: Self) -> Arc<Mutex<T>> {
        let this = ManuallyDrop::new(this);
        // SAFETY: `this` is never used or dropped again, so the `Arc` is moved out
        // exactly once.
        unsafe { core::ptr::read(&this.lock) }
    }

    /// Narrows the guard to a part of the value; see [`MutexGuard::map`].
    pub fn map<U: ?Sized, F>(mut this: Self, f: F) -> OwnedMappedMutexGuard<T, U>
    where
        F: FnOnce(&mut T) -> &mut U,
    {
        let data = NonNull::from(f(&mut *this));
        OwnedMappedMutexGuard {
            lock: Self::into_arc(this),
            data,
        }
    }

    /// As [`map`](Self::map), or gives the guard back if `f` returns `None`.
    pub fn try_map<U: ?Sized, F>(mut this: Self, f: F) -> Result<OwnedMappedMutexGuard<T, U>, Self>
    where
        F: FnOnce(&mut T) -> Option<&mut U>,
    {
        match f(&mut *this) {
            Some(u) => {
                let data = NonNull::from(u);
                Ok(OwnedMappedMutexGuard {
                    lock: Self::into_arc(this),
                    data,
                })
            }
            None => Err(this),
        }
    }
}

impl<T: ?Sized> Deref for OwnedMutexGuard<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: the guard holds the only permit.
        self.lock.data.with(|p| unsafe { &*p })
    }
}

impl<T: ?Sized> DerefMut for OwnedMutexGuard<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard holds the only permit and `&mut self` excludes other uses.
        self.lock.data.with_mut(|p| unsafe { &mut *p })
    }
}

impl<T: ?Sized> Drop for OwnedMutexGuard<T> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for OwnedMutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for OwnedMutexGuard<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

/// An [`OwnedMutexGuard`] narrowed to a part `U` of the value; it keeps the mutex
/// alive and holds the lock until dropped. `Send` if `T: Send` and `U: Send`, `Sync`
/// if both are `Send + Sync`.
#[must_use = "the lock is released at once if the guard is not kept"]
pub struct OwnedMappedMutexGuard<T: ?Sized, U: ?Sized = T> {
    lock: Arc<Mutex<T>>,
    /// Points into the locked value (valid while the permit is held and the `Arc`
    /// keeps the mutex alive).
    data: NonNull<U>,
}

// SAFETY: the guard is a unique reference to `U` inside the locked value plus an
// `Arc<Mutex<T>>` (`Send` when `T: Send`).
unsafe impl<T: ?Sized + Send, U: ?Sized + Send> Send for OwnedMappedMutexGuard<T, U> {}
// SAFETY: sharing the guard shares `&U` and the `Arc`.
unsafe impl<T: ?Sized + Send + Sync, U: ?Sized + Send + Sync> Sync for OwnedMappedMutexGuard<T, U> {}

impl<T: ?Sized, U: ?Sized> OwnedMappedMutexGuard<T, U> {
    /// The mutex this guard locks.
    pub fn mutex(this: &Self) -> &Arc<Mutex<T>> {
        &this.lock
    }

    /// Takes the `Arc` out without running `Drop` (the permit stays held).
    fn into_arc(this: Self) -> Arc<Mutex<T>> {
        let this = ManuallyDrop::new(this);
        // SAFETY: `this` is never used or dropped again, so the `Arc` is moved out
        // exactly once.
        unsafe { core::ptr::read(&this.lock) }
    }

    /// Narrows the guard further; see [`MutexGuard::map`].
    pub fn map<V: ?Sized, F>(mut this: Self, f: F) -> OwnedMappedMutexGuard<T, V>
    where
        F: FnOnce(&mut U) -> &mut V,
    {
        let data = NonNull::from(f(&mut *this));
        OwnedMappedMutexGuard {
            lock: Self::into_arc(this),
            data,
        }
    }

    /// Narrows the guard further, or gives it back if `f` returns `None`.
    pub fn try_map<V: ?Sized, F>(mut this: Self, f: F) -> Result<OwnedMappedMutexGuard<T, V>, Self>
    where
        F: FnOnce(&mut U) -> Option<&mut V>,
    {
        match f(&mut *this) {
            Some(v) => {
                let data = NonNull::from(v);
                Ok(OwnedMappedMutexGuard {
                    lock: Self::into_arc(this),
                    data,
                })
            }
            None => Err(this),
        }
    }
}

impl<T: ?Sized, U: ?Sized> Deref for OwnedMappedMutexGuard<T, U> {
    type Target = U;
    fn deref(&self) -> &U {
        // SAFETY: `data` points into the locked value, kept alive by the `Arc`; the
        // permit is held.
        unsafe { self.data.as_ref() }
    }
}

impl<T: ?Sized, U: ?Sized> DerefMut for OwnedMappedMutexGuard<T, U> {
    fn deref_mut(&mut self) -> &mut U {
        // SAFETY: as above, and `&mut self` excludes other uses of the guard.
        unsafe { self.data.as_mut() }
    }
}

impl<T: ?Sized, U: ?Sized> Drop for OwnedMappedMutexGuard<T, U> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

impl<T: ?Sized, U: ?Sized + fmt::Debug> fmt::Debug for OwnedMappedMutexGuard<T, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl<T: ?Sized, U: ?Sized + fmt::Display> fmt::Display for OwnedMappedMutexGuard<T, U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&**self, f)
    }
}

#[cfg(test)]
#[path = "mutex_tests.rs"]
mod tests;
