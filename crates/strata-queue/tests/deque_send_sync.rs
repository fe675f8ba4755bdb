//! Compile-time checks of the deque's auto traits, with crossbeam-deque's bounds:
//!
//! * `Worker<T>` is `Send` when `T: Send`, and never `Sync` (one thread pushes and
//!   pops);
//! * `Stealer<T>` and `Injector<T>` are `Send + Sync` when `T: Send` (values are moved
//!   out, never shared by reference, so `T: Sync` is not needed), and neither
//!   otherwise;
//! * `Steal<T>` is `Copy` (and `Clone`) when `T` is, not otherwise, and `Send`/`Sync`
//!   as `T`.
//!
//! Over every reclamation scheme for `Worker` and `Stealer`. The value types are those
//! of `send_sync.rs`: `String` (`Send + Sync`), `Cell<u8>` (`Send`, not `Sync`),
//! `Rc<u8>` (neither), `MutexGuard<u8>` (`Sync`, not `Send`).
//!
//! The negative checks use the ambiguity trick of `send_sync.rs` (from the
//! `static_assertions` crate): `AmbiguousIfSend<_>` has a blanket impl for every type
//! and a second one for `Send` types, so naming `some_item` with the parameter inferred
//! compiles only if exactly one impl applies, that is, only if the type is *not*
//! `Send`. A type that is `Send` would make this file fail to compile.

#![allow(dead_code)]

use std::cell::Cell;
use std::rc::Rc;
use std::sync::MutexGuard;

use strata_queue::deque::{Injector, Steal, Stealer, Worker};
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

macro_rules! assert_not_copy {
    ($t:ty) => {
        let _ = <$t as AmbiguousIfCopy<_>>::some_item;
    };
}

/// The value types are what the module docs say, and the negative macros can tell.
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

/// `Stealer<T, R>` (or `Injector<T>`): `Send + Sync` iff `T: Send`.
macro_rules! check_shared {
    ($c:ident $(, $r:ty)?) => {
        send::<$c<String $(, $r)?>>();
        sync::<$c<String $(, $r)?>>();
        send::<$c<Cell<u8> $(, $r)?>>();
        sync::<$c<Cell<u8> $(, $r)?>>();
        assert_not_send!($c<Rc<u8> $(, $r)?>);
        assert_not_sync!($c<Rc<u8> $(, $r)?>);
        assert_not_send!($c<MutexGuard<'static, u8> $(, $r)?>);
        assert_not_sync!($c<MutexGuard<'static, u8> $(, $r)?>);
    };
}

#[test]
fn worker_is_send_but_not_sync() {
    check_worker!();
    check_worker!(epoch::Epoch);
    check_worker!(epoch::Domain);
    check_worker!(hazard::Hazard);
    check_worker!(hazard::Domain);
}

#[test]
fn stealer_is_send_and_sync_iff_t_is_send() {
    check_shared!(Stealer);
    check_shared!(Stealer, epoch::Epoch);
    check_shared!(Stealer, epoch::Domain);
    check_shared!(Stealer, hazard::Hazard);
    check_shared!(Stealer, hazard::Domain);
}

#[test]
fn injector_is_send_and_sync_iff_t_is_send() {
    check_shared!(Injector);
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

/// The same shapes hold for crossbeam-deque (so the checks above are its bounds).
#[test]
fn crossbeam_has_the_same_bounds() {
    use crossbeam_deque as cb;
    send::<cb::Worker<Cell<u8>>>();
    assert_not_sync!(cb::Worker<String>);
    assert_not_send!(cb::Worker<Rc<u8>>);
    check_shared!(CbStealer);
    check_shared!(CbInjector);
    copy::<cb::Steal<u8>>();
    assert_not_copy!(cb::Steal<String>);
}

type CbStealer<T> = crossbeam_deque::Stealer<T>;
type CbInjector<T> = crossbeam_deque::Injector<T>;
