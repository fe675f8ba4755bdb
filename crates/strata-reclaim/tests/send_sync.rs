//! Compile-time checks of the auto traits of every public type: the domains are shared
//! between threads, while guards, handles and hazard pointers stand for one thread.
//!
//! A negative check uses an ambiguity: `AmbiguousIfSend<_>` has one blanket impl for
//! every type and a second one for `Send` types, so naming `some_item` on a type with
//! the inferred parameter compiles only if exactly one impl applies, that is, only if
//! the type is *not* `Send` (the trick of the `static_assertions` crate).

#![allow(dead_code)]

use strata_reclaim::hazard::HazardPointer;
use strata_reclaim::{ReclaimError, epoch, hazard};

fn send<T: ?Sized + Send>() {}
fn sync<T: ?Sized + Sync>() {}
fn unpin<T: ?Sized + Unpin>() {}

trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
impl<T: ?Sized + Send> AmbiguousIfSend<u8> for T {}

trait AmbiguousIfSync<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
impl<T: ?Sized + Sync> AmbiguousIfSync<u8> for T {}

macro_rules! assert_not_send {
    ($t:ty) => {
        let _ = <$t as AmbiguousIfSend<_>>::some_item;
    };
}

macro_rules! assert_not_sync {
    ($t:ty) => {
        let _ = <$t as AmbiguousIfSync<_>>::some_item;
    };
}

#[test]
fn domains_are_send_and_sync() {
    send::<epoch::Domain>();
    sync::<epoch::Domain>();
    send::<hazard::Domain>();
    sync::<hazard::Domain>();
    send::<epoch::Epoch>();
    sync::<epoch::Epoch>();
    send::<hazard::Hazard>();
    sync::<hazard::Hazard>();
    send::<ReclaimError>();
    sync::<ReclaimError>();
    unpin::<epoch::Domain>();
    unpin::<hazard::Domain>();
}

#[test]
fn per_thread_types_are_neither_send_nor_sync() {
    assert_not_send!(epoch::Guard);
    assert_not_sync!(epoch::Guard);
    assert_not_send!(epoch::LocalHandle);
    assert_not_sync!(epoch::LocalHandle);
    assert_not_send!(HazardPointer<'static>);
    assert_not_sync!(HazardPointer<'static>);
    unpin::<epoch::Guard>();
    unpin::<epoch::LocalHandle>();
    unpin::<HazardPointer<'static>>();
}
