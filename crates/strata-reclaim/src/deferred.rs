//! Deferred functions and the bags that hold them.
//!
//! A [`Deferred`] is a type-erased `FnOnce()`: closures of up to three words are stored
//! inline (no allocation, so `defer_destroy` of a pointer allocates nothing); larger
//! ones are boxed. A [`Bag`] is a fixed array of them, the unit the epoch domain seals
//! with an epoch and hands to the domain.

use core::mem::{self, MaybeUninit};
use core::ptr;

const INLINE_WORDS: usize = 3;
type Data = MaybeUninit<[usize; INLINE_WORDS]>;

/// A type-erased `FnOnce()`, called exactly once or dropped uncalled only by leaking.
pub(crate) struct Deferred {
    call: unsafe fn(*mut Data),
    data: Data,
}

// SAFETY: a `Deferred` is only built from closures the caller promised may run on any
// thread (`defer` requires `Send`; `defer_unchecked` puts the burden on its caller).
unsafe impl Send for Deferred {}

impl Deferred {
    /// Erases `f`.
    ///
    /// # Safety
    /// - `f` must be sound to call on any thread (in practice `F: Send`), and
    /// - everything `f` borrows must outlive the moment the domain calls it.
    pub(crate) unsafe fn new<F: FnOnce()>(f: F) -> Self {
        let mut data: Data = MaybeUninit::uninit();
        if mem::size_of::<F>() <= mem::size_of::<Data>()
            && mem::align_of::<F>() <= mem::align_of::<Data>()
        {
            unsafe fn call<F: FnOnce()>(raw: *mut Data) {
                // SAFETY: `raw` holds an `F` written by `Deferred::new` (inline branch),
                // read exactly once because `Deferred::call` consumes `self`.
                let f: F = unsafe { ptr::read(raw.cast::<F>()) };
                f();
            }
            // SAFETY: `F` fits in `data` in size and alignment (checked just above).
            unsafe { ptr::write(data.as_mut_ptr().cast::<F>(), f) };
            Deferred {
                call: call::<F>,
                data,
            }
        } else {
            unsafe fn call<F: FnOnce()>(raw: *mut Data) {
                // SAFETY: `raw` holds a `Box<F>` written by `Deferred::new` (boxed
                // branch), read exactly once because `Deferred::call` consumes `self`.
                let b: Box<F> = unsafe { ptr::read(raw.cast::<Box<F>>()) };
                (*b)();
            }
            let b = Box::new(f);
            // SAFETY: a `Box<F>` is one pointer, which fits in `data`.
            unsafe { ptr::write(data.as_mut_ptr().cast::<Box<F>>(), b) };
            Deferred {
                call: call::<F>,
                data,
            }
        }
    }

    /// Calls the function.
    #[inline]
    pub(crate) fn call(mut self) {
        // SAFETY: `call` was built for exactly the value stored in `data`, and `self` is
        // consumed, so the value is read once.
        unsafe { (self.call)(&mut self.data) }
    }
}

/// How many deferred functions a bag holds before it is sealed. Small under loom and
/// miri so that sealing and collection are exercised.
pub(crate) const BAG_CAPACITY: usize = if cfg!(strata_loom) {
    2
} else if cfg!(miri) {
    4
} else {
    64
};

/// A bag of deferred functions.
pub(crate) struct Bag {
    len: usize,
    items: [MaybeUninit<Deferred>; BAG_CAPACITY],
}

impl Bag {
    pub(crate) const fn new() -> Self {
        Bag {
            len: 0,
            items: [const { MaybeUninit::uninit() }; BAG_CAPACITY],
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[cfg(all(test, not(strata_loom)))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Adds `d`, or gives it back if the bag is full.
    #[inline]
    pub(crate) fn try_push(&mut self, d: Deferred) -> Result<(), Deferred> {
        if self.len == BAG_CAPACITY {
            return Err(d);
        }
        self.items[self.len].write(d);
        self.len += 1;
        Ok(())
    }

    /// Calls every function in the bag, leaving it empty.
    pub(crate) fn call_all(&mut self) {
        let len = mem::replace(&mut self.len, 0);
        for slot in &mut self.items[..len] {
            // SAFETY: slots `..len` were initialized by `try_push`; `len` was reset to 0
            // first, so each is read exactly once even if a call panics.
            let d = unsafe { slot.assume_init_read() };
            d.call();
        }
    }
}

impl Drop for Bag {
    fn drop(&mut self) {
        self.call_all();
    }
}

#[cfg(all(test, not(strata_loom)))]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn inline_and_boxed_closures_run_once() {
        let hits = Rc::new(Cell::new(0));
        let h1 = Rc::clone(&hits);
        let big = [7u64; 16];
        let h2 = Rc::clone(&hits);
        let mut bag = Bag::new();
        // SAFETY: the test runs the closures on this thread while `hits` lives.
        unsafe {
            assert!(
                bag.try_push(Deferred::new(move || h1.set(h1.get() + 1)))
                    .is_ok()
            );
            assert!(
                bag.try_push(Deferred::new(move || h2.set(h2.get() + big[3] as usize)))
                    .is_ok()
            );
        }
        assert_eq!(bag.len(), 2);
        bag.call_all();
        assert_eq!(hits.get(), 8);
        assert!(bag.is_empty());
        drop(bag);
        assert_eq!(hits.get(), 8);
    }

    #[test]
    fn full_bag_gives_back_and_drop_runs_all() {
        let hits = Rc::new(Cell::new(0));
        let mut bag = Bag::new();
        for _ in 0..BAG_CAPACITY {
            let h = Rc::clone(&hits);
            // SAFETY: run on this thread while `hits` lives.
            let d = unsafe { Deferred::new(move || h.set(h.get() + 1)) };
            assert!(bag.try_push(d).is_ok());
        }
        let h = Rc::clone(&hits);
        // SAFETY: as above.
        let back = bag.try_push(unsafe { Deferred::new(move || h.set(h.get() + 100)) });
        let Err(d) = back else {
            panic!("a full bag must refuse")
        };
        drop(bag);
        assert_eq!(hits.get(), BAG_CAPACITY);
        d.call();
        assert_eq!(hits.get(), BAG_CAPACITY + 100);
    }
}
