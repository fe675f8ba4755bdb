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
//! The work-stealing deque has crossbeam-deque's bounds: `Stealer<T>` and
//! `Injector<T>` follow the rule above, `Worker<T>` is `Send` when `T: Send` and never
//! `Sync` (one thread pushes and pops), and `Steal<T>` is `Copy` when `T` is.
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

use strata_queue::deque::{Injector, Steal, Stealer, Worker};
use strata_queue::{
    ArrayQueue, MsQueue, Queue, SegQueue, TreiberStack, array_queue, lprq, ms_queue, treiber,
};
use strata_reclaim::{epoch, hazard};

fn send<T: ?Sized + Send>() {}
fn sync<T: ?Sized + Sync>() {}
fn copy<T: Copy>() {}

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

trait AmbiguousIfCopy<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfCopy<()> for T {}
impl<T: Copy> AmbiguousIfCopy<u8> for T {}

macro_rules! assert_not_copy {
    ($t:ty) => {
        let _ = <$t as AmbiguousIfCopy<_>>::some_item;
    };
}

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
    copy::<u8>();
    assert_not_copy!(String);
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
fn lprq_queue_is_send_and_sync_iff_t_is_send() {
    send::<Queue<String>>();
    sync::<Queue<String>>();
    assert_not_send!(Queue<Rc<u8>>);
    assert_not_sync!(Queue<Rc<u8>>);
    check_container!(SegQueue);
    check_container!(Queue, epoch::Epoch);
    check_container!(Queue, hazard::Hazard);
    check_container!(Queue, epoch::Domain);
    check_container!(Queue, hazard::Domain);
    // As crossbeam's `SegQueue`: usable across `catch_unwind`.
    fn unwind_safe<T: std::panic::UnwindSafe + std::panic::RefUnwindSafe>() {}
    unwind_safe::<Queue<Rc<u8>>>();
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
    use lprq::IntoIter as LprqIter;
    use ms_queue::IntoIter as QueueIter;
    use treiber::IntoIter as StackIter;
    check_container!(LprqIter, epoch::Epoch);
    check_container!(LprqIter, hazard::Hazard);
    check_container!(QueueIter, epoch::Epoch);
    check_container!(QueueIter, hazard::Hazard);
    check_container!(StackIter, epoch::Epoch);
    check_container!(StackIter, hazard::Hazard);
    check_container!(RingIter);
}

/// `Worker<T, R>`: `Send` iff `T: Send`, never `Sync`.
macro_rules! check_worker {
    ($($r:ty)?) => {
        send::<Worker<String $(, $r)?>>();
        assert_not_sync!(Worker<String $(, $r)?>);
        send::<Worker<Cell<u8> $(, $r)?>>();
        assert_not_sync!(Worker<Cell<u8> $(, $r)?>);
        assert_not_send!(Worker<Rc<u8> $(, $r)?>);
        assert_not_sync!(Worker<Rc<u8> $(, $r)?>);
        assert_not_send!(Worker<MutexGuard<'static, u8> $(, $r)?>);
        assert_not_sync!(Worker<MutexGuard<'static, u8> $(, $r)?>);
    };
}

#[test]
fn deque_worker_is_send_but_not_sync() {
    check_worker!();
    check_worker!(epoch::Epoch);
    check_worker!(epoch::Domain);
    check_worker!(hazard::Hazard);
    check_worker!(hazard::Domain);
}

#[test]
fn deque_stealer_is_send_and_sync_iff_t_is_send() {
    check_container!(Stealer);
    check_container!(Stealer, epoch::Epoch);
    check_container!(Stealer, epoch::Domain);
    check_container!(Stealer, hazard::Hazard);
    check_container!(Stealer, hazard::Domain);
}

#[test]
fn injector_is_send_and_sync_iff_t_is_send() {
    check_container!(Injector);
}

#[test]
fn steal_is_copy_iff_t_is_copy() {
    copy::<Steal<u8>>();
    copy::<Steal<()>>();
    copy::<Steal<&'static str>>();
    assert_not_copy!(Steal<String>);
    assert_not_copy!(Steal<Box<u8>>);
    // And it carries `T`'s `Send` and `Sync`.
    send::<Steal<Cell<u8>>>();
    assert_not_sync!(Steal<Cell<u8>>);
    assert_not_send!(Steal<Rc<u8>>);
}

/// The same shapes hold for crossbeam-deque (so the deque checks above are its bounds).
#[test]
fn crossbeam_deque_has_the_same_bounds() {
    use crossbeam_deque as cb;
    send::<cb::Worker<Cell<u8>>>();
    assert_not_sync!(cb::Worker<String>);
    assert_not_send!(cb::Worker<Rc<u8>>);
    check_container!(CbStealer);
    check_container!(CbInjector);
    copy::<cb::Steal<u8>>();
    assert_not_copy!(cb::Steal<String>);
}

type CbStealer<T> = crossbeam_deque::Stealer<T>;
type CbInjector<T> = crossbeam_deque::Injector<T>;
