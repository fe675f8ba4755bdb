//! Sequential specifications ready to use: a FIFO queue, a LIFO stack, a work-stealing
//! deque, a map (or set), a counter and a register.
//!
//! Values and keys are `u64`: give each pushed value a distinct number (e.g.
//! `thread * 1000 + i`) so that the checker can tell them apart.

use std::collections::{BTreeMap, VecDeque};

use crate::{Model, Operation};

/// An operation on a queue or a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueOp {
    /// Adds a value.
    Push(u64),
    /// Removes a value.
    Pop,
}

/// What a queue or stack operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QueueRet {
    /// `Push` added its value.
    Pushed,
    /// `Push` found a bounded container full and added nothing.
    Full,
    /// `Pop` removed this value, or found the container empty.
    Popped(Option<u64>),
}

/// A FIFO queue, unbounded or bounded.
///
/// `Push(v)` returns `Pushed` (or `Full` when a bounded queue holds `capacity` values)
/// and `Pop` returns `Popped(Some(front))`, or `Popped(None)` when empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueueModel {
    capacity: Option<usize>,
}

impl QueueModel {
    /// An unbounded queue.
    pub const fn new() -> Self {
        Self { capacity: None }
    }

    /// A queue that holds at most `capacity` values.
    pub const fn bounded(capacity: usize) -> Self {
        Self {
            capacity: Some(capacity),
        }
    }
}

impl Model for QueueModel {
    type Op = QueueOp;
    type Ret = QueueRet;
    type State = VecDeque<u64>;

    fn init(&self) -> Self::State {
        VecDeque::new()
    }

    fn apply(&self, state: &Self::State, op: &QueueOp) -> (Self::State, QueueRet) {
        let mut s = state.clone();
        match *op {
            QueueOp::Push(_) if self.capacity.is_some_and(|c| s.len() >= c) => (s, QueueRet::Full),
            QueueOp::Push(v) => {
                s.push_back(v);
                (s, QueueRet::Pushed)
            }
            QueueOp::Pop => {
                let v = s.pop_front();
                (s, QueueRet::Popped(v))
            }
        }
    }
}

/// A LIFO stack, unbounded or bounded, with the operations of a queue ([`QueueOp`],
/// [`QueueRet`]): `Pop` returns the value pushed last.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct StackModel {
    capacity: Option<usize>,
}

impl StackModel {
    /// An unbounded stack.
    pub const fn new() -> Self {
        Self { capacity: None }
    }

    /// A stack that holds at most `capacity` values.
    pub const fn bounded(capacity: usize) -> Self {
        Self {
            capacity: Some(capacity),
        }
    }
}

impl Model for StackModel {
    type Op = QueueOp;
    type Ret = QueueRet;
    type State = Vec<u64>;

    fn init(&self) -> Self::State {
        Vec::new()
    }

    fn apply(&self, state: &Self::State, op: &QueueOp) -> (Self::State, QueueRet) {
        let mut s = state.clone();
        match *op {
            QueueOp::Push(_) if self.capacity.is_some_and(|c| s.len() >= c) => (s, QueueRet::Full),
            QueueOp::Push(v) => {
                s.push(v);
                (s, QueueRet::Pushed)
            }
            QueueOp::Pop => {
                let v = s.pop();
                (s, QueueRet::Popped(v))
            }
        }
    }
}

/// An operation on a work-stealing deque.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DequeOp {
    /// The owner adds a value at the bottom.
    PushBottom(u64),
    /// The owner removes the value at the bottom (the one it pushed last).
    PopBottom,
    /// A thief removes the value at the top (the oldest).
    Steal,
}

/// What a deque operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DequeRet {
    /// `PushBottom` added its value.
    Pushed,
    /// `PopBottom` removed this value, or found the deque empty.
    Popped(Option<u64>),
    /// `Steal` removed this value, or found the deque empty.
    Stolen(Option<u64>),
}

/// A work-stealing deque (Chase–Lev): the owner pushes and pops at the bottom, thieves
/// steal from the top.
///
/// A steal that may fail spuriously (crossbeam's `Steal::Retry`) has no sequential
/// meaning: retry inside the recorded call until it succeeds or reports empty.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct DequeModel;

impl Model for DequeModel {
    type Op = DequeOp;
    type Ret = DequeRet;
    type State = VecDeque<u64>;

    fn init(&self) -> Self::State {
        VecDeque::new()
    }

    fn apply(&self, state: &Self::State, op: &DequeOp) -> (Self::State, DequeRet) {
        let mut s = state.clone();
        let ret = match *op {
            DequeOp::PushBottom(v) => {
                s.push_back(v);
                DequeRet::Pushed
            }
            DequeOp::PopBottom => DequeRet::Popped(s.pop_back()),
            DequeOp::Steal => DequeRet::Stolen(s.pop_front()),
        };
        (s, ret)
    }
}

/// An operation on a map.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapOp {
    /// Sets the value of a key: `Insert(key, value)`.
    Insert(u64, u64),
    /// Reads the value of a key.
    Get(u64),
    /// Removes a key.
    Remove(u64),
}

impl MapOp {
    /// The key the operation is about.
    pub const fn key(&self) -> u64 {
        match *self {
            Self::Insert(k, _) | Self::Get(k) | Self::Remove(k) => k,
        }
    }
}

/// What a map operation returned: in each case the key's value before the operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapRet {
    /// `Insert` replaced this value, or the key was absent.
    Inserted(Option<u64>),
    /// `Get` read this value, or the key was absent.
    Got(Option<u64>),
    /// `Remove` removed this value, or the key was absent.
    Removed(Option<u64>),
}

/// A map from `u64` keys to `u64` values, checked key by key: operations on different
/// keys are independent, so [`Model::partition`] splits the history per key
/// (P-compositionality). For a set, insert a constant value: `Inserted(Some(_))` then
/// means "was already present".
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MapModel;

impl Model for MapModel {
    type Op = MapOp;
    type Ret = MapRet;
    type State = BTreeMap<u64, u64>;

    fn init(&self) -> Self::State {
        BTreeMap::new()
    }

    fn apply(&self, state: &Self::State, op: &MapOp) -> (Self::State, MapRet) {
        let mut s = state.clone();
        let ret = match *op {
            MapOp::Insert(k, v) => MapRet::Inserted(s.insert(k, v)),
            MapOp::Get(k) => MapRet::Got(s.get(&k).copied()),
            MapOp::Remove(k) => MapRet::Removed(s.remove(&k)),
        };
        (s, ret)
    }

    fn partition(&self, ops: &[Operation<MapOp, MapRet>]) -> Vec<Vec<usize>> {
        let mut by_key: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        for (i, o) in ops.iter().enumerate() {
            by_key.entry(o.op.key()).or_default().push(i);
        }
        by_key.into_values().collect()
    }
}

/// An operation on a counter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CounterOp {
    /// Adds `n` (wrapping), like `fetch_add`.
    Add(u64),
    /// Reads the value.
    Get,
}

/// What a counter operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CounterRet {
    /// `Add` returns the value before the addition.
    Added(u64),
    /// `Get` returns the value.
    Value(u64),
}

/// A counter starting at zero: `Add(n)` returns the previous value (`fetch_add`), `Get`
/// the current one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct CounterModel;

impl Model for CounterModel {
    type Op = CounterOp;
    type Ret = CounterRet;
    type State = u64;

    fn init(&self) -> u64 {
        0
    }

    fn apply(&self, state: &u64, op: &CounterOp) -> (u64, CounterRet) {
        match *op {
            CounterOp::Add(n) => (state.wrapping_add(n), CounterRet::Added(*state)),
            CounterOp::Get => (*state, CounterRet::Value(*state)),
        }
    }
}

/// An operation on a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterOp {
    /// Reads the value.
    Read,
    /// Writes a value.
    Write(u64),
    /// `Cas(current, new)`: writes `new` if the value is `current`, like a strong
    /// `compare_exchange`.
    Cas(u64, u64),
}

/// What a register operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RegisterRet {
    /// `Read` returns the value.
    Value(u64),
    /// `Write` returns nothing.
    Written,
    /// `Cas` returns what `compare_exchange` does: `Ok(previous)` if it wrote, else
    /// `Err(actual)`.
    CasResult(Result<u64, u64>),
}

/// A register (one atomic `u64` cell) with read, write and compare-and-swap.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RegisterModel {
    initial: u64,
}

impl RegisterModel {
    /// A register that starts at `initial`.
    pub const fn new(initial: u64) -> Self {
        Self { initial }
    }
}

impl Model for RegisterModel {
    type Op = RegisterOp;
    type Ret = RegisterRet;
    type State = u64;

    fn init(&self) -> u64 {
        self.initial
    }

    fn apply(&self, state: &u64, op: &RegisterOp) -> (u64, RegisterRet) {
        match *op {
            RegisterOp::Read => (*state, RegisterRet::Value(*state)),
            RegisterOp::Write(v) => (v, RegisterRet::Written),
            RegisterOp::Cas(current, new) if *state == current => {
                (new, RegisterRet::CasResult(Ok(current)))
            }
            RegisterOp::Cas(..) => (*state, RegisterRet::CasResult(Err(*state))),
        }
    }
}
