//! The one shim of Strata.
//!
//! Every other Strata crate takes its atomics, cells, `Arc`, threads, thread-locals,
//! parking and spin hints from here and from nowhere else. Under `--cfg strata_loom`
//! these are [loom]'s model-checked stand-ins; otherwise they are `std`'s, with no
//! wrapper cost. The cfg is deliberately not the plain `loom` so that other crates in
//! the same build (tokio, crossbeam) are not switched.
//!
//! The shim also holds the small pieces every algorithm needs and that must behave
//! differently under the model:
//!
//! * [`Backoff`]: bounded exponential spinning that turns into `yield_now`, and under
//!   loom is a single yield so that a spin loop is a finite number of model branches.
//! * [`Parker`] / [`Unparker`]: a one-token park/unpark over one atomic word. On Linux
//!   it sleeps on a futex on that word; elsewhere, with the `portable-park` feature, and
//!   under loom (which cannot model a futex) it uses thread parking, so the waiter
//!   protocol above it is what loom explores.
//! * [`CachePadded`]: crossbeam-utils' padding to 128 bytes on x86_64 and aarch64.
//! * [`alloc::CountingAlloc`]: a counting global allocator for leak and growth tests.
//!
//! ```
//! use strata_primitives::sync::atomic::{AtomicUsize, Ordering};
//! use strata_primitives::sync::Arc;
//! use strata_primitives::thread;
//!
//! let n = Arc::new(AtomicUsize::new(0));
//! let n2 = Arc::clone(&n);
//! thread::spawn(move || n2.fetch_add(1, Ordering::Relaxed)).join().unwrap();
//! assert_eq!(n.load(Ordering::Relaxed), 1);
//! ```
//!
//! [loom]: https://docs.rs/loom
#![deny(missing_docs)]

pub mod alloc;
mod backoff;
mod parker;

pub use backoff::Backoff;
pub use crossbeam_utils::CachePadded;
pub use parker::{Parker, Unparker};

/// `true` when compiled under `--cfg strata_loom`. Use it to shrink sizes in tests.
pub const LOOM: bool = cfg!(strata_loom);

/// Atomics, `Arc` and the blocking locks: loom's under `strata_loom`, std's otherwise.
pub mod sync {
    #[cfg(strata_loom)]
    pub use loom::sync::Arc;
    #[cfg(not(strata_loom))]
    pub use std::sync::Arc;

    // Blocking locks, for the blocking types of strata-sync (their waits and wake-ups
    // are modelled by loom under `strata_loom`). Both sets report poisoning through
    // `LockResult`.
    #[cfg(strata_loom)]
    pub use loom::sync::{
        Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, WaitTimeoutResult,
    };
    #[cfg(not(strata_loom))]
    pub use std::sync::{
        Condvar, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard, WaitTimeoutResult,
    };
    pub use std::sync::{LockResult, PoisonError, TryLockError, TryLockResult};

    /// Atomic types, orderings and fences.
    pub mod atomic {
        #[cfg(strata_loom)]
        pub use loom::sync::atomic::{
            AtomicBool, AtomicIsize, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize,
            Ordering, fence,
        };
        #[cfg(not(strata_loom))]
        pub use std::sync::atomic::{
            AtomicBool, AtomicIsize, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize,
            Ordering, fence,
        };
        // loom has no compiler-only fence; a compiler fence constrains nothing that loom
        // models, so std's is correct in both builds.
        pub use std::sync::atomic::compiler_fence;
    }
}

/// Threads: loom's under `strata_loom`, std's otherwise.
pub mod thread {
    #[cfg(strata_loom)]
    pub use loom::thread::{JoinHandle, Thread, current, park, spawn, yield_now};
    #[cfg(not(strata_loom))]
    pub use std::thread::{JoinHandle, Thread, current, park, spawn, yield_now};
}

/// Spin-loop hints. Under loom a spin hint is a yield, so spin loops terminate in the
/// model.
pub mod hint {
    #[cfg(strata_loom)]
    pub use loom::hint::spin_loop;
    #[cfg(not(strata_loom))]
    pub use std::hint::spin_loop;
}

/// `thread_local!`: loom's under `strata_loom` (one value per modelled thread), std's
/// otherwise.
#[cfg(strata_loom)]
pub use loom::thread_local;
#[cfg(not(strata_loom))]
pub use std::thread_local;

/// Runs `f` as a loom model under `strata_loom` (every interleaving up to
/// `LOOM_MAX_PREEMPTIONS`), and once as a plain test otherwise, so a model doubles as
/// a unit test (the maitake-sync pattern).
pub fn model<F>(f: F)
where
    F: Fn() + Sync + Send + 'static,
{
    #[cfg(strata_loom)]
    loom::model(f);
    #[cfg(not(strata_loom))]
    f();
}

/// `UnsafeCell` with loom's closure API (`with`, `with_mut`), so that loom can check
/// every access for a data race. In the std build these compile to plain pointer
/// accesses.
pub mod cell {
    #[cfg(strata_loom)]
    pub use loom::cell::UnsafeCell;

    /// `core::cell::UnsafeCell` behind loom's closure API.
    #[cfg(not(strata_loom))]
    #[derive(Debug, Default)]
    #[repr(transparent)]
    pub struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

    #[cfg(not(strata_loom))]
    impl<T> UnsafeCell<T> {
        /// Wraps `data`.
        #[inline(always)]
        pub const fn new(data: T) -> Self {
            Self(core::cell::UnsafeCell::new(data))
        }

        /// Unwraps the value.
        #[inline(always)]
        pub fn into_inner(self) -> T {
            self.0.into_inner()
        }
    }

    #[cfg(not(strata_loom))]
    impl<T: ?Sized> UnsafeCell<T> {
        /// Calls `f` with a shared raw pointer to the contents. Dereferencing it is the
        /// caller's responsibility: no `&mut` to the contents may exist meanwhile.
        #[inline(always)]
        pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        /// Calls `f` with a mutable raw pointer to the contents. Dereferencing it is the
        /// caller's responsibility: no other reference to the contents may exist
        /// meanwhile.
        #[inline(always)]
        pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }
}
