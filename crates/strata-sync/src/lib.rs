//! Blocking and read-mostly synchronization.
#![deny(missing_docs)]

pub mod combining;
pub mod keylock;
pub mod rcu;
pub mod seqlock;
pub mod striped;
pub mod versioned;
