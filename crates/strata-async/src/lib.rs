//! Async synchronization that works on any executor (it uses only `core::task`'s
//! `Waker`): a FIFO semaphore and a notify, with intrusive waiter lists.
#![deny(missing_docs)]

pub mod notify;
pub mod semaphore;
