//! A linearizability checker: record what concurrent threads did to a shared object,
//! then ask whether some sequential order of those operations explains every result.
//!
//! A concurrent object is *linearizable* (Herlihy & Wing 1990) when every operation
//! appears to take effect atomically at one instant between its invocation and its
//! response. This crate tests that claim on real runs: a stress test records a
//! [`History`] (per thread, for each operation, the invocation time, the operation, its
//! return value and the response time), and [`check`] searches for a sequential order
//! that (a) respects real time — if `a` responded before `b` was invoked, `a` comes
//! first — and (b) is accepted by a sequential specification, a [`Model`]. If no such
//! order exists the run saw a bug, and the error shows a small sub-history that proves
//! it.
//!
//! # Recording
//!
//! A [`Recorder`] is shared by the threads of a run. Each thread takes its
//! [`ThreadLog`] and wraps every operation on the object under test in
//! [`ThreadLog::call`], which reads the clock, runs the operation, reads the clock again
//! and pushes the record onto a `Vec` owned by that thread. Nothing is shared while the
//! threads run, so recording does not serialize the operations under test; each log is
//! handed back to the recorder (one short lock) when it is dropped, and
//! [`Recorder::into_history`] collects them. Times come from one process-wide monotonic
//! clock ([`now`]: nanoseconds since a process-wide [`std::time::Instant`]), so times
//! taken by different threads compare.
//!
//! # The search
//!
//! [`check`] runs the search of Wing & Gong (1993) with the memoization of Lowe (2017),
//! as implemented by porcupine (Athalye's Go checker):
//!
//! - A depth-first search builds a linearization one operation at a time. An operation
//!   may come next if it is the next operation of its thread and no operation still
//!   outside the linearization *responded* before it was *invoked*. The model applies
//!   it to the current state; if the return value it computes differs from the recorded
//!   one, that choice is dead. When no choice is left the search backtracks; when every
//!   operation is placed, the history is linearizable; when the root runs out of
//!   choices, it is not. Choices are tried earliest response first: the operation that
//!   real time forces first is usually the one that took effect first, so a correct
//!   history is mostly linearized without backtracking.
//! - Lowe's memoization: the search keeps a cache of the configurations it has reached,
//!   each the *set of linearized operations* (a bitset) together with the *model
//!   state*. Two different orders of the same operations that end in the same state
//!   have the same future, so a configuration is explored at most once. This turns the
//!   factorial search into one bounded by the number of distinct configurations, which
//!   for the histories of a stress test is usually small. The cache keeps a 128-bit
//!   fingerprint of each configuration (two independently keyed SipHashes), as the
//!   TLC model checker does with its state sets, rather than a copy of it: 16 bytes per
//!   configuration whatever the model's state. A false match needs two configurations
//!   with one fingerprint, a chance below 10^-26 for a million configurations.
//! - P-compositionality (Horn & Kroening 2015): when a history splits into independent
//!   sub-histories — a map's operations, key by key — it is linearizable if and only if
//!   each of them is. [`Model::partition`] gives the split (by default one part) and
//!   each part is searched on its own, which shrinks the search space from a product to
//!   a sum.
//!
//! Equal timestamps on different threads count as overlapping (neither operation is
//! known to have finished first); on one thread, [`ThreadLog::call`] makes every
//! invocation strictly later than the previous response.
//!
//! # Caps, the budget, and what counts as failure
//!
//! A check accepts at most [`MAX_THREADS`] (4) threads and [`MAX_OPS_PER_THREAD`] (200)
//! operations per thread; a larger history is rejected with
//! [`Violation::TooManyThreads`] or [`Violation::TooManyOps`]. Every thread adds a
//! choice at every step of the search, and every operation a level to it; and short
//! rounds are the right shape for this tool anyway: a bug needs a few overlapping
//! operations to show, many short rounds give many different interleavings, and a small
//! failing history is one a person can read. The search is exponential in the worst case, so it also runs under a
//! [`Budget`] of model steps (calls to [`Model::apply`]); a search that runs out fails
//! with [`Violation::BudgetExceeded`], because an unfinished search has proved nothing
//! and a checker that passes what it did not check hides bugs. Finally, a history in
//! which no two operations of different threads overlapped in time has tested only
//! sequential behaviour: it fails with [`Violation::NoOverlap`] (after the search, so a
//! sequential bug is still reported as [`Violation::NotLinearizable`]). [`Report`] says
//! how many operations overlapped another thread's.
//!
//! # Writing a stress test
//!
//! - Start the threads together (a `Barrier`, then a short wait until all are
//!   running), and run many short rounds rather than one long one.
//! - Give every pushed or written value a distinct number, so that a result names the
//!   operation it came from.
//! - Keep the object small: a queue that grows long keeps every reordering of
//!   concurrent pushes alive until the values come out, and the search pays for each.
//!   Alternating pushes and pops, or draining at the end of a round, keeps it cheap.
//! - On a busy or small machine, threads started together may still run one after the
//!   other and test nothing ([`Violation::NoOverlap`]). A `std::thread::yield_now()`
//!   inside the recorded call, before the operation, stands for a preemption there and
//!   makes the threads interleave. (In a structure written for a test, a yield at a
//!   racy point widens the race window the same way; see this crate's tests.)
//!
//! # Counterexamples
//!
//! When a part has no linearization, the checker shrinks it before reporting. It hides
//! operations greedily — first the longest suffix in invocation order it can (by
//! bisection), then whole threads, then chunks of halving size down to single
//! operations — keeping a hiding only if the shown operations still fail, with a
//! bounded number of re-checks ([`Budget::with_shrink_checks`]) and steps.
//!
//! "Still fail" is stronger than "the rest is not linearizable". Deleting the
//! `push(2)` behind a `pop() -> 2` makes any history non-linearizable, for a reason the
//! run never had; a shrinker that only deletes ends at such artefacts. Here a hidden
//! operation stays *optional*: a re-check may place it inside its interval with its
//! recorded result, or leave it out, and a hiding is kept only if the shown operations
//! fail either way — alone, and with any subset of the hidden ones. So the
//! counterexample is a real failure of the run whatever the hidden operations did.
//! (Proving "any subset" can outgrow its share of the budget; the checker then
//! settles for "alone, and with each single hidden operation", and
//! [`Counterexample::proven`] says so.) Last, if the shown results could not come
//! from any order at all (a pop of a value whose push is hidden), the hidden operation
//! that makes them possible is shown again, so that what remains is plainly a failure of
//! timing: `push(1)`, then `push(2)`, then `pop() -> 2`.
//!
//! [`Counterexample`]'s `Display` prints one lane per thread, the operations in time
//! order with their invocation and response times (nanoseconds from the first shown
//! invocation) and their return values:
//!
//! ```text
//! not linearizable: part 0 of 1 (136 operations), shrunk to 3 with 14 re-checks
//! the shown operations have no linearization, alone or with any of the hidden ones (133) added inside their intervals
//! lanes, with times in ns from the first shown invocation: [invoke, response] op -> result
//!   thread 0 | [0, 3125] Push(1002) -> Pushed | [9775, 9825] Pop -> Popped(Some(2002)) |
//!   thread 1 | [5028, 8012] Push(2002) -> Pushed |
//! ```
//!
//! # Example
//!
//! A `Mutex<VecDeque>` queue, exercised by two threads that start together, checked
//! against [`models::QueueModel`]. A round in which the two threads happened not to
//! overlap tested nothing, so it is run again. Each operation yields before it takes
//! the lock, inside its recorded interval, as a preemption there would: on a busy
//! machine the threads then still interleave, and their operations overlap.
//!
//! ```
//! use std::collections::VecDeque;
//! use std::sync::{Barrier, Mutex};
//! use strata_check::models::{QueueModel, QueueOp, QueueRet};
//! use strata_check::{check, Budget, Recorder, Violation};
//!
//! let model = QueueModel::new();
//! let mut overlapping = 0;
//! for _round in 0..100 {
//!     let queue = Mutex::new(VecDeque::new());
//!     let recorder = Recorder::<QueueModel>::new(2);
//!     let start = Barrier::new(2);
//!     std::thread::scope(|s| {
//!         for t in 0..2 {
//!             let mut log = recorder.thread(t);
//!             let (queue, start) = (&queue, &start);
//!             s.spawn(move || {
//!                 start.wait();
//!                 for i in 0..20 {
//!                     let v = (t as u64) * 1000 + i;
//!                     log.call(QueueOp::Push(v), || {
//!                         std::thread::yield_now();
//!                         queue.lock().unwrap().push_back(v);
//!                         QueueRet::Pushed
//!                     });
//!                     log.call(QueueOp::Pop, || {
//!                         std::thread::yield_now();
//!                         QueueRet::Popped(queue.lock().unwrap().pop_front())
//!                     });
//!                 }
//!             });
//!         }
//!     });
//!     let history = recorder.into_history();
//!     match check(&model, &history, Budget::default()) {
//!         Ok(report) => {
//!             overlapping = report.overlapping;
//!             break;
//!         }
//!         Err(Violation::NoOverlap { .. }) => continue, // the threads ran one after the other
//!         Err(e) => panic!("the queue is broken:\n{e}"),
//!     }
//! }
//! assert!(overlapping > 0);
//! ```
//!
//! # References
//!
//! - M. Herlihy and J. Wing, "Linearizability: a correctness condition for concurrent
//!   objects", ACM TOPLAS 12(3), 1990.
//! - J. Wing and C. Gong, "Testing and verifying concurrent objects", Journal of
//!   Parallel and Distributed Computing 17(1–2), 1993.
//! - G. Lowe, "Testing for linearizability", Concurrency and Computation: Practice and
//!   Experience 29(4), 2017.
//! - A. Athalye, porcupine, a fast linearizability checker in Go,
//!   <https://github.com/anishathalye/porcupine>.
//! - A. Horn and D. Kroening, "Faster linearizability checking via
//!   P-compositionality", FORTE 2015, LNCS 9039.
//! - Y. Yu, P. Manolios and L. Lamport, "Model checking TLA+ specifications", CHARME
//!   1999 (TLC's fingerprinted state sets).
#![deny(missing_docs)]

use std::fmt::{self, Debug};
use std::hash::Hash;

mod check;
pub mod models;
mod record;
mod search;

pub use check::{Budget, Counterexample, Report, Violation, check};
pub use record::{Recorder, ThreadLog, now};

/// The most threads a history may have ([`check`] rejects more with
/// [`Violation::TooManyThreads`]).
pub const MAX_THREADS: usize = 4;

/// The most operations one thread may have in a history ([`check`] rejects more with
/// [`Violation::TooManyOps`]).
pub const MAX_OPS_PER_THREAD: usize = 200;

/// A sequential specification: what the object under test should do, one operation at a
/// time.
///
/// `apply` must be deterministic: the same state and operation always give the same new
/// state and return value. The state is hashed and compared by the search's cache, so it
/// should be a small value (a `VecDeque<u64>`, a number).
pub trait Model: Clone {
    /// An operation with its arguments, e.g. `Push(7)` or `Pop`.
    type Op: Clone + Debug;
    /// What an operation returned, e.g. `Pushed` or `Popped(Some(7))`.
    type Ret: Clone + Debug + PartialEq;
    /// The state of the sequential object.
    type State: Clone + Eq + Hash + Debug;

    /// The state before any operation.
    fn init(&self) -> Self::State;

    /// Applies `op` to `state`: the state after it and the value it returns.
    fn apply(&self, state: &Self::State, op: &Self::Op) -> (Self::State, Self::Ret);

    /// P-compositionality: splits a history into independent sub-histories, each a list
    /// of indices into `ops`, to be checked one by one (for a map, one per key). Every
    /// index must appear in exactly one part. The default is a single part holding
    /// everything.
    fn partition(&self, ops: &[Operation<Self::Op, Self::Ret>]) -> Vec<Vec<usize>> {
        vec![(0..ops.len()).collect()]
    }
}

/// One completed operation of a history: who ran it, what it was, what it returned, and
/// when it was invoked and when it responded (nanoseconds on one clock, see [`now`]).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Operation<Op, Ret> {
    /// The thread (lane) that ran it.
    pub thread: usize,
    /// The operation and its arguments.
    pub op: Op,
    /// Its return value.
    pub ret: Ret,
    /// The time read just before the operation was called.
    pub invoke: u64,
    /// The time read just after it returned.
    pub response: u64,
}

impl<Op, Ret> Operation<Op, Ret> {
    /// An operation of `thread`, invoked at `invoke` and responding at `response`.
    pub fn new(thread: usize, op: Op, ret: Ret, invoke: u64, response: u64) -> Self {
        Self {
            thread,
            op,
            ret,
            invoke,
            response,
        }
    }

    /// Whether the intervals of `self` and `other` share a point (equal times count).
    pub fn overlaps(&self, other: &Self) -> bool {
        self.invoke <= other.response && other.invoke <= self.response
    }
}

/// A recorded history: completed operations of all threads, ordered by invocation time.
///
/// Built by [`Recorder::into_history`] or, for hand-made histories, by
/// [`History::from_ops`].
pub struct History<M: Model> {
    ops: Vec<Operation<M::Op, M::Ret>>,
}

impl<M: Model> History<M> {
    /// A history of these operations (in any order: they are sorted by invocation time).
    pub fn from_ops(mut ops: Vec<Operation<M::Op, M::Ret>>) -> Self {
        ops.sort_by_key(|o| (o.invoke, o.response, o.thread));
        Self { ops }
    }

    /// The operations, ordered by invocation time.
    pub fn ops(&self) -> &[Operation<M::Op, M::Ret>] {
        &self.ops
    }

    /// The number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether there are no operations.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The number of distinct threads that ran operations.
    pub fn threads(&self) -> usize {
        let mut ids: Vec<usize> = self.ops.iter().map(|o| o.thread).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.len()
    }

    /// How many operations overlap in time (see [`Operation::overlaps`]) at least one
    /// operation of another thread.
    pub fn overlapping(&self) -> usize {
        let mut marked = vec![false; self.ops.len()];
        for (i, a) in self.ops.iter().enumerate() {
            // Sorted by invocation: every later operation invoked after `a` responded
            // cannot overlap `a`, and neither can any after it.
            for (j, b) in self.ops.iter().enumerate().skip(i + 1) {
                if b.invoke > a.response {
                    break;
                }
                if a.thread != b.thread {
                    marked[i] = true;
                    marked[j] = true;
                }
            }
        }
        marked.iter().filter(|&&m| m).count()
    }
}

impl<M: Model> Clone for History<M> {
    fn clone(&self) -> Self {
        Self {
            ops: self.ops.clone(),
        }
    }
}

impl<M: Model> Debug for History<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("History").field("ops", &self.ops).finish()
    }
}

impl<M: Model> Default for History<M> {
    fn default() -> Self {
        Self { ops: Vec::new() }
    }
}

impl<M: Model> FromIterator<Operation<M::Op, M::Ret>> for History<M> {
    fn from_iter<I: IntoIterator<Item = Operation<M::Op, M::Ret>>>(iter: I) -> Self {
        Self::from_ops(iter.into_iter().collect())
    }
}
