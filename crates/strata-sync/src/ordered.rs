//! Lock levels checked at compile time: [`OrderedMutex<T, L>`] and [`OrderedRwLock<T, L>`]
//! can only be locked in an order that follows a declared DAG of [`Level`]s, so a set of
//! ordered locks cannot deadlock against each other.
//!
//! # The scheme
//!
//! * Levels are types declared with [`lock_levels!`](crate::lock_levels). Each level
//!   names the levels it comes after; the macro computes the transitive closure of that
//!   relation at compile time (a cyclic declaration is a compile error) and implements
//!   [`LockAfter<B>`] for `X` exactly when `B` is a proper ancestor of `X` in the DAG
//!   (transitively: with `A < B < C` declared, `C: LockAfter<A>`). Every level also
//!   comes after the root level [`Unlocked`].
//! * A thread proves what it holds with a [`LockToken<L>`]: "every ordered lock this
//!   thread holds has a level at or below `L`". The root token, `LockToken<Unlocked>`,
//!   comes from [`LockToken::acquire_root`], which fails with
//!   [`OrderError::RootTokenHeld`] if this thread already has one: two root tokens on
//!   one thread would let it take `B` and then `A`. Tokens are neither `Send` nor `Sync`.
//! * [`OrderedMutex::lock`] takes `&'a mut LockToken<H>` with `L: LockAfter<H>` and
//!   returns the guard and a `&'a mut LockToken<L>`. The old token stays mutably
//!   borrowed for `'a`, so it cannot be used while the guard (or the new token) lives,
//!   and the new token cannot outlive that borrow.
//!
//! Hence every acquisition a thread makes is of a level strictly after every level it
//! holds, all threads acquire along one partial order, and no wait-for cycle can form
//! among ordered locks. The misuses are compile errors (see `tests/ui/` for the checked
//! in messages):
//!
//! ```compile_fail
//! strata_sync::lock_levels! {
//!     pub Accounts;
//!     pub Ledger: Accounts;
//! }
//! use strata_sync::ordered::{LockToken, OrderedMutex};
//! let accounts: OrderedMutex<u32, Accounts> = OrderedMutex::new(0);
//! let ledger: OrderedMutex<u32, Ledger> = OrderedMutex::new(0);
//! let mut root = LockToken::acquire_root().unwrap();
//! let (_l, token) = ledger.lock(&mut root).unwrap();
//! // error: lock level `Accounts` cannot be acquired while holding `Ledger`
//! let (_a, _) = accounts.lock(token).unwrap();
//! ```
//!
//! # What it does not cover
//!
//! * Leaked guards: `mem::forget` on a guard keeps its lock held while ending the borrow
//!   of the outer token, so the outer token can be used again. A leaked lock is held
//!   forever, so anything that waits for it hangs regardless of order.
//! * Locks of other types, and waits that are not locks (channels, joins, condition
//!   variables): the levels order only `OrderedMutex`es. For locks whose order is only
//!   known at run time, see the [`lockdep`](crate::lockdep) validator.
//! * A `mem::forget` on the root token keeps this thread's claim for the rest of its
//!   life; [`LockToken::acquire_root`] then keeps failing on that thread.
//!
//! # Cost and progress
//!
//! Levels and tokens are zero-sized; the check is all at compile time. `lock` is the
//! inner mutex's `lock`, an [`AdaptiveMutex`](crate::mutex::AdaptiveMutex) for
//! `OrderedMutex` (blocking; it takes effect, and the guard's critical section
//! begins, when the inner mutex is acquired); [`LockToken::acquire_root`] reads and
//! writes one thread-local flag. Every level also derives `Debug`.
//!
//! # Poisoning
//!
//! As in `std`: if a thread panics while holding an `OrderedMutex`, later `lock`s
//! return `Err(PoisonError)` whose [`into_inner`](std::sync::PoisonError::into_inner)
//! still yields the guard and the new token.
//!
//! # Example
//!
//! ```
//! strata_sync::lock_levels! {
//!     /// The configuration.
//!     pub Config;
//!     /// The connection pool: taken after the configuration.
//!     pub Pool: Config;
//!     /// Statistics: taken after the pool (and so after the configuration).
//!     pub Stats: Pool;
//! }
//! use strata_sync::ordered::{LockToken, OrderedMutex};
//!
//! let config: OrderedMutex<String, Config> = OrderedMutex::new("v1".into());
//! let pool: OrderedMutex<Vec<u32>, Pool> = OrderedMutex::new(vec![]);
//! let stats: OrderedMutex<u64, Stats> = OrderedMutex::new(0);
//!
//! let mut root = LockToken::acquire_root()?;
//! {
//!     let (config, token) = config.lock(&mut root).unwrap();
//!     let (mut pool, token) = pool.lock(token).unwrap();
//!     pool.push(config.len() as u32);
//!     let (mut stats, _) = stats.lock(token).unwrap();
//!     *stats += 1;
//! }
//! // Levels may be skipped: Stats comes after Config transitively.
//! let (_config, token) = config.lock(&mut root).unwrap();
//! let (stats, _) = stats.lock(token).unwrap();
//! assert_eq!(*stats, 1);
//! # Ok::<(), strata_sync::ordered::OrderError>(())
//! ```

use core::fmt;
use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

use strata_primitives::sync::{LockResult, PoisonError};

/// The lock inside an [`OrderedMutex`] (one alias so that the implementation can be
/// switched in one place).
type Inner<T> = crate::mutex::AdaptiveMutex<T>;
/// The guard of [`Inner`].
type InnerGuard<'a, T> = crate::mutex::AdaptiveMutexGuard<'a, T>;

/// A lock level: a node of the DAG declared with [`lock_levels!`](crate::lock_levels).
///
/// Declare levels with the macro; implementing this trait by hand means filling in a
/// hidden descriptor and is not supported.
pub trait Level: 'static {
    #[doc(hidden)]
    const INFO: __private::LevelInfo;
}

/// The root level: a [`LockToken<Unlocked>`] means "this thread holds no ordered lock".
/// Every declared level comes after it. No lock has this level.
#[derive(Debug)]
pub enum Unlocked {}

impl Level for Unlocked {
    const INFO: __private::LevelInfo = __private::LevelInfo {
        name: "Unlocked",
        root: true,
    };
}

/// `Self: LockAfter<Before>`: a lock of level `Self` may be acquired while holding a
/// token at level `Before`, because `Before` is a proper ancestor of `Self` in the
/// declared DAG (or `Before` is [`Unlocked`]).
///
/// Implemented by [`lock_levels!`](crate::lock_levels) (through a hidden helper trait);
/// do not implement it yourself.
#[diagnostic::on_unimplemented(
    message = "lock level `{Self}` cannot be acquired while holding `{Before}`: `{Self}` is not declared after `{Before}`",
    label = "acquiring `{Self}` here would break the lock order",
    note = "lock levels must be acquired along the order declared in `lock_levels!`; release the `{Before}` lock first or declare `{Self}` after `{Before}`"
)]
pub trait LockAfter<Before: Level>: Level {}

impl<X: Level, B: Level> LockAfter<B> for X where X: __private::Order<B, true> {}

/// Misuse of the lock-order tokens.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// This thread already holds a root token; drop it (and everything locked through
    /// it) before asking for another.
    #[error("this thread already holds the root lock token (`LockToken<Unlocked>`)")]
    RootTokenHeld,
}

// The shim's thread-local: under loom, one per modelled thread. (Not a `const {}`
// initializer: loom's `thread_local!` does not accept one.)
#[cfg(not(strata_weaken))]
strata_primitives::thread_local! {
    #[allow(clippy::missing_const_for_thread_local)]
    static ROOT_CLAIMED: core::cell::Cell<bool> = core::cell::Cell::new(false);
}

// The planted bug of the test-only `--cfg strata_weaken`: std's thread-local. Under loom
// the modelled threads share one OS thread, so they would share one claim and the second
// thread's `acquire_root` would fail: the loom models catch it.
#[cfg(strata_weaken)]
std::thread_local! {
    static ROOT_CLAIMED: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Proof that every ordered lock this thread holds has a level at or below `L`.
///
/// Zero-sized, neither `Send` nor `Sync`. The root token comes from
/// [`LockToken::acquire_root`]; the others come out of [`OrderedMutex::lock`] as
/// `&mut LockToken<L>` borrowing the token they were made from.
pub struct LockToken<L: Level> {
    _level: PhantomData<fn() -> L>,
    // Neither Send nor Sync: the token speaks for one thread's held locks.
    _not_send: PhantomData<*const ()>,
}

impl LockToken<Unlocked> {
    /// Claims this thread's root token.
    ///
    /// # Errors
    ///
    /// [`OrderError::RootTokenHeld`] if this thread already holds one (it is released
    /// when that token is dropped).
    pub fn acquire_root() -> Result<Self, OrderError> {
        let claimed = ROOT_CLAIMED.with(|c| c.replace(true));
        if claimed {
            return Err(OrderError::RootTokenHeld);
        }
        Ok(Self::make())
    }
}

impl<L: Level> LockToken<L> {
    const fn make() -> Self {
        Self {
            _level: PhantomData,
            _not_send: PhantomData,
        }
    }

    /// Name of the level (the identifier given in `lock_levels!`).
    pub fn level_name(&self) -> &'static str {
        L::INFO.name
    }
}

impl<L: Level> Drop for LockToken<L> {
    fn drop(&mut self) {
        // Only the root token is ever owned by value (the others are leaked zero-sized
        // values reached through `&mut`), so only it releases a claim. The thread-local
        // may already be gone if the token is dropped during thread teardown: then there
        // is nothing left to release.
        if L::INFO.root {
            let _ = ROOT_CLAIMED.try_with(|c| c.set(false));
        }
    }
}

impl<L: Level> fmt::Debug for LockToken<L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LockToken").field(&L::INFO.name).finish()
    }
}

/// A blocking mutex at lock level `L`, locked with a [`LockToken`] whose level comes
/// before `L`.
pub struct OrderedMutex<T: ?Sized, L: Level> {
    _level: PhantomData<fn() -> L>,
    inner: Inner<T>,
}

/// What [`OrderedMutex::lock`] returns: the guard and the token at the mutex's level.
pub type OrderedLock<'a, T, L> = (OrderedMutexGuard<'a, T>, &'a mut LockToken<L>);

impl<T, L: Level> OrderedMutex<T, L> {
    /// A new unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        Self {
            _level: PhantomData,
            inner: Inner::new(value),
        }
    }

    /// Consumes the mutex and returns the value.
    ///
    /// # Errors
    ///
    /// `Err(PoisonError)` (still holding the value) if a thread panicked while holding
    /// the lock.
    pub fn into_inner(self) -> LockResult<T> {
        self.inner.into_inner()
    }
}

impl<T: ?Sized, L: Level> OrderedMutex<T, L> {
    /// Blocks until the mutex is acquired. `token` proves that every ordered lock this
    /// thread holds comes before `L`; it stays mutably borrowed while the guard and the
    /// returned token at level `L` live.
    ///
    /// Locking in the wrong order does not compile:
    /// `lock level `A` cannot be acquired while holding `B``.
    ///
    /// # Errors
    ///
    /// `Err(PoisonError)` if a thread panicked while holding this mutex; its
    /// `into_inner` still gives the guard and the token.
    #[cfg_attr(feature = "lockdep", track_caller)]
    pub fn lock<'a, H: Level>(
        &'a self,
        token: &'a mut LockToken<H>,
    ) -> LockResult<OrderedLock<'a, T, L>>
    where
        L: LockAfter<H>,
    {
        let _ = token;
        let next = next_token::<L>();
        match self.inner.lock() {
            Ok(guard) => Ok((OrderedMutexGuard { inner: guard }, next)),
            Err(poison) => Err(PoisonError::new((
                OrderedMutexGuard {
                    inner: poison.into_inner(),
                },
                next,
            ))),
        }
    }

    /// Mutable access without locking (the `&mut self` proves no one else holds it).
    ///
    /// # Errors
    ///
    /// `Err(PoisonError)` (still holding the reference) if a thread panicked while
    /// holding the lock.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.inner.get_mut()
    }

    /// Name of this mutex's level.
    pub fn level_name(&self) -> &'static str {
        L::INFO.name
    }
}

impl<T: Default, L: Level> Default for OrderedMutex<T, L> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug, L: Level> fmt::Debug for OrderedMutex<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderedMutex")
            .field("level", &L::INFO.name)
            .field("inner", &&self.inner)
            .finish()
    }
}

/// The guard of an [`OrderedMutex`]: unlocks on drop. Not `Send`.
#[must_use = "the mutex is unlocked as soon as the guard is dropped"]
pub struct OrderedMutexGuard<'a, T: ?Sized> {
    inner: InnerGuard<'a, T>,
}

impl<T: ?Sized> Deref for OrderedMutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for OrderedMutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for OrderedMutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The reader-writer lock inside an [`OrderedRwLock`].
type InnerRw<T> = strata_primitives::sync::RwLock<T>;
type InnerReadGuard<'a, T> = strata_primitives::sync::RwLockReadGuard<'a, T>;
type InnerWriteGuard<'a, T> = strata_primitives::sync::RwLockWriteGuard<'a, T>;

/// A blocking reader-writer lock at lock level `L`.
///
/// Both [`read`](Self::read) and [`write`](Self::write) follow the order exactly as
/// [`OrderedMutex::lock`] does: shared acquisitions are ordered like exclusive ones.
/// This is conservative (two read locks of one level cannot be held together, although
/// readers alone do not block each other), and it is what keeps the guarantee with a
/// writer-preferring lock, where a queued writer makes a second reader wait.
///
/// ```
/// strata_sync::lock_levels! {
///     pub Routes;
///     pub Stats: Routes;
/// }
/// use strata_sync::ordered::{LockToken, OrderedMutex, OrderedRwLock};
///
/// let routes: OrderedRwLock<Vec<&str>, Routes> = OrderedRwLock::new(vec!["/"]);
/// let hits: OrderedMutex<u64, Stats> = OrderedMutex::new(0);
/// let mut root = LockToken::acquire_root()?;
/// {
///     let (mut table, _) = routes.write(&mut root).unwrap();
///     table.push("/health");
/// }
/// let (table, token) = routes.read(&mut root).unwrap();
/// let (mut hits, _) = hits.lock(token).unwrap();
/// *hits += table.len() as u64;
/// assert_eq!(*hits, 2);
/// # Ok::<(), strata_sync::ordered::OrderError>(())
/// ```
pub struct OrderedRwLock<T: ?Sized, L: Level> {
    _level: PhantomData<fn() -> L>,
    inner: InnerRw<T>,
}

/// What [`OrderedRwLock::read`] returns: the guard and the token at the lock's level.
pub type OrderedRead<'a, T, L> = (OrderedReadGuard<'a, T>, &'a mut LockToken<L>);
/// What [`OrderedRwLock::write`] returns: the guard and the token at the lock's level.
pub type OrderedWrite<'a, T, L> = (OrderedWriteGuard<'a, T>, &'a mut LockToken<L>);

impl<T, L: Level> OrderedRwLock<T, L> {
    /// A new unlocked lock holding `value`.
    pub fn new(value: T) -> Self {
        Self {
            _level: PhantomData,
            inner: InnerRw::new(value),
        }
    }

    /// Consumes the lock and returns the value.
    ///
    /// # Errors
    ///
    /// `Err(PoisonError)` (still holding the value) if a writer panicked.
    pub fn into_inner(self) -> LockResult<T> {
        self.inner.into_inner()
    }
}

impl<T: ?Sized, L: Level> OrderedRwLock<T, L> {
    /// Blocks until shared access is acquired; the token rules are those of
    /// [`OrderedMutex::lock`].
    ///
    /// # Errors
    ///
    /// `Err(PoisonError)` if a writer panicked while holding the lock; its `into_inner`
    /// still gives the guard and the token.
    pub fn read<'a, H: Level>(
        &'a self,
        token: &'a mut LockToken<H>,
    ) -> LockResult<OrderedRead<'a, T, L>>
    where
        L: LockAfter<H>,
    {
        let _ = token;
        let next = next_token::<L>();
        match self.inner.read() {
            Ok(guard) => Ok((OrderedReadGuard { inner: guard }, next)),
            Err(poison) => Err(PoisonError::new((
                OrderedReadGuard {
                    inner: poison.into_inner(),
                },
                next,
            ))),
        }
    }

    /// Blocks until exclusive access is acquired; the token rules are those of
    /// [`OrderedMutex::lock`].
    ///
    /// # Errors
    ///
    /// `Err(PoisonError)` if a writer panicked while holding the lock; its `into_inner`
    /// still gives the guard and the token.
    pub fn write<'a, H: Level>(
        &'a self,
        token: &'a mut LockToken<H>,
    ) -> LockResult<OrderedWrite<'a, T, L>>
    where
        L: LockAfter<H>,
    {
        let _ = token;
        let next = next_token::<L>();
        match self.inner.write() {
            Ok(guard) => Ok((OrderedWriteGuard { inner: guard }, next)),
            Err(poison) => Err(PoisonError::new((
                OrderedWriteGuard {
                    inner: poison.into_inner(),
                },
                next,
            ))),
        }
    }

    /// Mutable access without locking.
    ///
    /// # Errors
    ///
    /// `Err(PoisonError)` (still holding the reference) if a writer panicked.
    pub fn get_mut(&mut self) -> LockResult<&mut T> {
        self.inner.get_mut()
    }

    /// Name of this lock's level.
    pub fn level_name(&self) -> &'static str {
        L::INFO.name
    }
}

impl<T: Default, L: Level> Default for OrderedRwLock<T, L> {
    fn default() -> Self {
        Self::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug, L: Level> fmt::Debug for OrderedRwLock<T, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrderedRwLock")
            .field("level", &L::INFO.name)
            .field("inner", &&self.inner)
            .finish()
    }
}

/// Shared access to an [`OrderedRwLock`]: released on drop. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct OrderedReadGuard<'a, T: ?Sized> {
    inner: InnerReadGuard<'a, T>,
}

impl<T: ?Sized> Deref for OrderedReadGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for OrderedReadGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// Exclusive access to an [`OrderedRwLock`]: released on drop. Not `Send`.
#[must_use = "the lock is released as soon as the guard is dropped"]
pub struct OrderedWriteGuard<'a, T: ?Sized> {
    inner: InnerWriteGuard<'a, T>,
}

impl<T: ?Sized> Deref for OrderedWriteGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.inner
    }
}

impl<T: ?Sized> DerefMut for OrderedWriteGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.inner
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for OrderedWriteGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

/// The token at level `L` handed out with a guard. It is a zero-sized value: boxing it
/// allocates nothing, and leaking it yields a unique `&mut` that the caller narrows to
/// the guard's lifetime. Its `Drop` would be a no-op (only the root releases a claim,
/// and `L` is never `Unlocked`, which implements no `LockAfter`).
fn next_token<'a, L: Level>() -> &'a mut LockToken<L> {
    Box::leak(Box::new(LockToken::make()))
}

/// Declares lock levels as a DAG and implements the order between them.
///
/// Each entry is `visibility Name: Parent, Parent, ...;` (the parents may be omitted:
/// the level then comes right after [`Unlocked`]), optionally with doc comments and
/// attributes. Each level becomes an uninhabited `enum`. Parents must be declared in the
/// same invocation, before or after. Every level gets [`LockAfter<P>`] for each proper
/// ancestor `P` (transitively: with `A < B < C`, `C: LockAfter<A>`) and for
/// [`Unlocked`]; two levels that are not ordered (siblings) cannot be held together.
///
/// The order is computed at compile time (a transitive closure over the names of the
/// invocation). Compile errors:
///
/// * a cycle among the declarations (`A: C; B: A; C: B;`): "lock level `A` is declared
///   after itself" (naming the first declared level on the cycle; see
///   `tests/ui/cyclic_levels.rs`);
/// * a parent that is not declared in the invocation: "lock level `X` (a parent of `Y`)
///   is not declared in this `lock_levels!`":
///
/// ```compile_fail
/// strata_sync::lock_levels! {
///     pub Table;
///     pub Row: Tabel; // typo
/// }
/// ```
///
/// Levels from two invocations are never ordered against each other: declare a
/// hierarchy in one invocation.
///
/// ```
/// strata_sync::lock_levels! {
///     pub A;
///     pub B: A;
///     pub C: A;
///     /// Comes after both branches of the diamond.
///     pub D: B, C;
/// }
/// use strata_sync::ordered::{Level, LockAfter, Unlocked};
/// fn after<X: LockAfter<Y>, Y: Level>() {}
/// after::<D, A>();
/// after::<D, B>();
/// after::<C, A>();
/// after::<A, Unlocked>();
/// ```
#[macro_export]
macro_rules! lock_levels {
    ($($(#[$meta:meta])* $vis:vis $name:ident $(: $($parent:ident),+ $(,)?)?;)+) => {
        $(
            $(#[$meta])*
            #[derive(Debug)]
            $vis enum $name {}
        )+

        const _: () = {
            const __STRATA_LEVELS: &[(&str, &[&str])] = &[
                $((::core::stringify!($name), &[$($(::core::stringify!($parent)),+)?]),)+
            ];
            const __STRATA_LEVEL_COUNT: usize = __STRATA_LEVELS.len();
            const __STRATA_LEVELS_AFTER: [[bool; __STRATA_LEVEL_COUNT]; __STRATA_LEVEL_COUNT] =
                $crate::ordered::__private::closure(__STRATA_LEVELS);

            $(
                $($(
                    ::core::assert!(
                        $crate::ordered::__private::index_of(
                            __STRATA_LEVELS,
                            ::core::stringify!($parent),
                        ) < __STRATA_LEVEL_COUNT,
                        ::core::concat!(
                            "lock level `", ::core::stringify!($parent), "` (a parent of `",
                            ::core::stringify!($name), "`) is not declared in this `lock_levels!`"
                        ),
                    );
                )+)?
                ::core::assert!(
                    !$crate::ordered::__private::after(
                        &__STRATA_LEVELS_AFTER,
                        __STRATA_LEVELS,
                        ::core::stringify!($name),
                        ::core::stringify!($name),
                    ),
                    ::core::concat!(
                        "lock level `", ::core::stringify!($name),
                        "` is declared after itself: the levels of this `lock_levels!` form a cycle"
                    ),
                );

                impl $crate::ordered::Level for $name {
                    const INFO: $crate::ordered::__private::LevelInfo =
                        $crate::ordered::__private::LevelInfo {
                            name: ::core::stringify!($name),
                            root: false,
                        };
                }

                impl $crate::ordered::__private::Order<$crate::ordered::Unlocked, true> for $name {}
            )+

            $crate::lock_levels!(@rows [$($name)+] $($name)+);
        };
    };
    (@rows [$($all:ident)+]) => {};
    (@rows [$($all:ident)+] $x:ident $($rest:ident)*) => {
        $(
            impl $crate::ordered::__private::Order<
                $all,
                {
                    $crate::ordered::__private::after(
                        &__STRATA_LEVELS_AFTER,
                        __STRATA_LEVELS,
                        ::core::stringify!($x),
                        ::core::stringify!($all),
                    )
                },
            > for $x {}
        )+
        $crate::lock_levels!(@rows [$($all)+] $($rest)*);
    };
}

#[doc(hidden)]
pub mod __private {
    //! Support for `lock_levels!`; not a public API.

    /// The descriptor of a level.
    #[derive(Debug)]
    pub struct LevelInfo {
        /// The identifier.
        pub name: &'static str,
        /// Whether this is [`Unlocked`](super::Unlocked).
        pub root: bool,
    }

    /// `Self: Order<B, true>` iff `B` is a proper ancestor of `Self`; `lock_levels!`
    /// implements it for every pair of levels of one invocation.
    #[diagnostic::on_unimplemented(
        message = "lock level `{Self}` cannot be acquired while holding `{B}`: `{Self}` is not declared after `{B}`",
        label = "acquiring `{Self}` here would break the lock order",
        note = "lock levels must be acquired along the order declared in `lock_levels!`; release the `{B}` lock first or declare `{Self}` after `{B}`"
    )]
    pub trait Order<B: ?Sized, const AFTER: bool> {}

    /// Not a level. Every type is `Order<Ambiguous, true>`, so that for a level `X`
    /// the bound `X: Order<?H, true>` never has a single candidate: without it, the
    /// compiler would infer the held level from `X`'s only `true` impl (`Unlocked`, for
    /// a level right below the root) before looking at the token passed in, and report
    /// a type mismatch instead of the lock-order error. `Ambiguous` implements no
    /// [`Level`](super::Level), so `LockAfter<Ambiguous>` never holds.
    #[derive(Debug)]
    pub enum Ambiguous {}

    impl<X: ?Sized> Order<Ambiguous, true> for X {}

    const fn str_eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// The index of `name` in `levels`, or `levels.len()` if absent.
    pub const fn index_of(levels: &[(&str, &[&str])], name: &str) -> usize {
        let mut i = 0;
        while i < levels.len() {
            if str_eq(levels[i].0, name) {
                return i;
            }
            i += 1;
        }
        levels.len()
    }

    /// `m[i][j]`: level `j` is a proper ancestor of level `i` (reachable through one or
    /// more parents). The transitive closure of the parent relation (Warshall); on a
    /// cycle, the levels on it are their own ancestors (`m[i][i]`). Parents that are not
    /// in `levels` are skipped (`lock_levels!` rejects them separately).
    pub const fn closure<const N: usize>(levels: &[(&str, &[&str])]) -> [[bool; N]; N] {
        let mut m = [[false; N]; N];
        let mut i = 0;
        while i < N {
            let parents = levels[i].1;
            let mut p = 0;
            while p < parents.len() {
                let j = index_of(levels, parents[p]);
                if j < N {
                    m[i][j] = true;
                }
                p += 1;
            }
            i += 1;
        }
        let mut k = 0;
        while k < N {
            let mut i = 0;
            while i < N {
                if m[i][k] {
                    let mut j = 0;
                    while j < N {
                        if m[k][j] {
                            m[i][j] = true;
                        }
                        j += 1;
                    }
                }
                i += 1;
            }
            k += 1;
        }
        m
    }

    /// Whether `ancestor` is a proper ancestor of `level` according to `closure`.
    pub const fn after<const N: usize>(
        closure: &[[bool; N]; N],
        levels: &[(&str, &[&str])],
        level: &str,
        ancestor: &str,
    ) -> bool {
        let (i, j) = (index_of(levels, level), index_of(levels, ancestor));
        i < N && j < N && closure[i][j]
    }
}

#[cfg(test)]
#[path = "ordered_tests.rs"]
mod tests;
