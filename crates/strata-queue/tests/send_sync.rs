//! Compile-time checks of the containers' auto traits, over every reclamation scheme.
//!
//! Values are moved in and out, never shared by reference, so a container is `Send`
//! and `Sync` exactly when its values are `Send` (the bounds of crossbeam's `SegQueue`
//! and `ArrayQueue`):
//!
//! * `String` (`Send + Sync`): the container is `Send + Sync`;
//! * `Cell<u8>` (`Send`, not `Sync`): still `Send + Sync`, since no `&T` is ever
//!   handed out to a thread that shares the container;
//! * `Rc<u8>` (neither): neither;
//! * `MutexGuard<u8>` (`Sync`, not `Send`): neither, since sharing the container lets
//!   another thread pop the value and so move it.
//!
//! A negative check uses an ambiguity (as in `strata-reclaim/tests/send_sync.rs`):
//! `AmbiguousIfSend<_>` has one blanket impl for every type and a second one for `Send`
//! types, so naming `some_item` on a type with the inferred parameter compiles only if
//! exactly one impl applies, that is, only if the type is *not* `Send` (the trick of
//! the `static_assertions` crate).

#![allow(dead_code)]

use std::cell::Cell;
use std::rc::Rc;
use std::sync::MutexGuard;

use strata_queue::{ArrayQueue, MsQueue, TreiberStack, array_queue, ms_queue, treiber};
use strata_reclaim::{epoch, hazard};

fn send<T: ?Sized + Send>() {}
fn sync<T: ?Sized + Sync>() {}

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

/// The value types themselves are what the module docs say (so that the container
/// checks below test what they claim to).
#[test]
fn value_types_are_what_the_checks_assume() {
    send::<String>();
    sync::<String>();
    send::<Cell<u8>>();
    assert_not_sync!(Cell<u8>);
    assert_not_send!(Rc<u8>);
    assert_not_sync!(Rc<u8>);
    assert_not_send!(MutexGuard<'static, u8>);
    sync::<MutexGuard<'static, u8>>();
}

/// Checks one container type constructor, `$c<T, $r>` (or `$c<T>` without a scheme),
/// at the four value types of the module docs.
macro_rules! check_container {
    ($c:ident $(, $r:ty)?) => {
        // T: Send + Sync.
        send::<$c<String $(, $r)?>>();
        sync::<$c<String $(, $r)?>>();
        // T: Send, not Sync: values are moved, never shared.
        send::<$c<Cell<u8> $(, $r)?>>();
        sync::<$c<Cell<u8> $(, $r)?>>();
        // T: neither.
        assert_not_send!($c<Rc<u8> $(, $r)?>);
        assert_not_sync!($c<Rc<u8> $(, $r)?>);
        // T: Sync, not Send.
        assert_not_send!($c<MutexGuard<'static, u8> $(, $r)?>);
        assert_not_sync!($c<MutexGuard<'static, u8> $(, $r)?>);
    };
}

#[test]
fn ms_queue_is_send_and_sync_iff_t_is_send() {
    // The default scheme.
    send::<MsQueue<String>>();
    sync::<MsQueue<String>>();
    assert_not_send!(MsQueue<Rc<u8>>);
    assert_not_sync!(MsQueue<Rc<u8>>);
    check_container!(MsQueue, epoch::Epoch);
    check_container!(MsQueue, hazard::Hazard);
    check_container!(MsQueue, epoch::Domain);
    check_container!(MsQueue, hazard::Domain);
}

#[test]
fn treiber_stack_is_send_and_sync_iff_t_is_send() {
    send::<TreiberStack<String>>();
    sync::<TreiberStack<String>>();
    assert_not_send!(TreiberStack<Rc<u8>>);
    assert_not_sync!(TreiberStack<Rc<u8>>);
    check_container!(TreiberStack, epoch::Epoch);
    check_container!(TreiberStack, hazard::Hazard);
    check_container!(TreiberStack, epoch::Domain);
    check_container!(TreiberStack, hazard::Domain);
}

#[test]
fn array_queue_is_send_and_sync_iff_t_is_send() {
    check_container!(ArrayQueue);
    // The error type of `try_new` is plain data.
    send::<array_queue::CapacityError>();
    sync::<array_queue::CapacityError>();
}

/// The owning iterators follow their container.
#[test]
fn into_iters_follow_their_container() {
    use array_queue::IntoIter as RingIter;
    use ms_queue::IntoIter as QueueIter;
    use treiber::IntoIter as StackIter;
    check_container!(QueueIter, epoch::Epoch);
    check_container!(QueueIter, hazard::Hazard);
    check_container!(StackIter, epoch::Epoch);
    check_container!(StackIter, hazard::Hazard);
    check_container!(RingIter);
}
