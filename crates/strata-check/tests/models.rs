//! Each model: sequential behaviour, and hand-made concurrent histories that pass and
//! that fail.

use strata_check::models::*;
use strata_check::{Budget, History, Model, Operation, Violation, check};

fn op<O, R>(thread: usize, o: O, r: R, invoke: u64, response: u64) -> Operation<O, R> {
    Operation::new(thread, o, r, invoke, response)
}

/// Applies `ops` in sequence and returns what they returned.
fn run<M: Model>(model: &M, ops: &[M::Op]) -> Vec<M::Ret> {
    let mut s = model.init();
    ops.iter()
        .map(|o| {
            let (next, r) = model.apply(&s, o);
            s = next;
            r
        })
        .collect()
}

fn passes<M: Model>(model: &M, ops: Vec<Operation<M::Op, M::Ret>>) {
    let h = History::<M>::from_ops(ops);
    if let Err(e) = check(model, &h, Budget::default()) {
        panic!("expected linearizable:\n{e}");
    }
}

fn fails<M: Model>(model: &M, ops: Vec<Operation<M::Op, M::Ret>>) {
    match check(model, &History::<M>::from_ops(ops), Budget::default()) {
        Err(Violation::NotLinearizable(_)) => {}
        other => panic!("expected not linearizable, got {other:?}"),
    }
}

#[test]
fn queue_sequential() {
    use QueueOp::*;
    use QueueRet::*;
    let r = run(&QueueModel::new(), &[Push(1), Push(2), Pop, Pop, Pop]);
    assert_eq!(
        r,
        [
            Pushed,
            Pushed,
            Popped(Some(1)),
            Popped(Some(2)),
            Popped(None)
        ]
    );
    let r = run(&QueueModel::bounded(1), &[Push(1), Push(2), Pop, Push(3)]);
    assert_eq!(r, [Pushed, Full, Popped(Some(1)), Pushed]);
}

#[test]
fn queue_concurrent() {
    use QueueOp::*;
    use QueueRet::*;
    let m = QueueModel::new();
    // The pop overlaps both pushes and may take either value... as long as FIFO holds
    // for the value left behind.
    passes(
        &m,
        vec![
            op(0, Push(1), Pushed, 0, 10),
            op(0, Push(2), Pushed, 20, 30),
            op(1, Pop, Popped(Some(1)), 5, 40),
            op(1, Pop, Popped(Some(2)), 50, 60),
        ],
    );
    // A pop that returns empty while a completed push's value is unclaimed.
    fails(
        &m,
        vec![
            op(0, Push(1), Pushed, 0, 10),
            op(1, Pop, Popped(None), 20, 30),
            op(0, Push(2), Pushed, 25, 35),
        ],
    );
    // The same value popped twice.
    fails(
        &m,
        vec![
            op(0, Push(1), Pushed, 0, 10),
            op(1, Pop, Popped(Some(1)), 20, 30),
            op(2, Pop, Popped(Some(1)), 25, 35),
        ],
    );
    // Bounded: "full" while the queue had room.
    fails(
        &QueueModel::bounded(2),
        vec![op(0, Push(1), Pushed, 0, 10), op(1, Push(2), Full, 5, 15)],
    );
}

#[test]
fn stack_sequential() {
    use QueueOp::*;
    use QueueRet::*;
    let r = run(&StackModel::new(), &[Push(1), Push(2), Pop, Pop, Pop]);
    assert_eq!(
        r,
        [
            Pushed,
            Pushed,
            Popped(Some(2)),
            Popped(Some(1)),
            Popped(None)
        ]
    );
    let r = run(&StackModel::bounded(1), &[Push(1), Push(2)]);
    assert_eq!(r, [Pushed, Full]);
}

#[test]
fn stack_concurrent() {
    use QueueOp::*;
    use QueueRet::*;
    let m = StackModel::new();
    // Overlapping pushes: either order.
    passes(
        &m,
        vec![
            op(0, Push(1), Pushed, 0, 20),
            op(1, Push(2), Pushed, 5, 15),
            op(0, Pop, Popped(Some(1)), 30, 40),
            op(1, Pop, Popped(Some(2)), 45, 55),
        ],
    );
    // FIFO order out of a stack whose pushes did not overlap.
    fails(
        &m,
        vec![
            op(0, Push(1), Pushed, 0, 10),
            op(0, Push(2), Pushed, 20, 30),
            op(1, Pop, Popped(Some(1)), 40, 50),
            op(2, Pop, Popped(Some(2)), 55, 60),
        ],
    );
}

#[test]
fn deque_sequential() {
    use DequeOp::*;
    use DequeRet::*;
    let r = run(
        &DequeModel,
        &[
            PushBottom(1),
            PushBottom(2),
            PushBottom(3),
            Steal,
            PopBottom,
            PopBottom,
            Steal,
        ],
    );
    assert_eq!(
        r,
        [
            Pushed,
            Pushed,
            Pushed,
            Stolen(Some(1)),
            Popped(Some(3)),
            Popped(Some(2)),
            Stolen(None)
        ]
    );
}

#[test]
fn deque_concurrent() {
    use DequeOp::*;
    use DequeRet::*;
    let m = DequeModel;
    // The owner pops the last element while a thief steals it: exactly one wins.
    passes(
        &m,
        vec![
            op(0, PushBottom(1), Pushed, 0, 10),
            op(0, PopBottom, Popped(None), 20, 40),
            op(1, Steal, Stolen(Some(1)), 25, 35),
        ],
    );
    // Both win: the element was taken twice.
    fails(
        &m,
        vec![
            op(0, PushBottom(1), Pushed, 0, 10),
            op(0, PopBottom, Popped(Some(1)), 20, 40),
            op(1, Steal, Stolen(Some(1)), 25, 35),
        ],
    );
    // A thief steals from the wrong end.
    fails(
        &m,
        vec![
            op(0, PushBottom(1), Pushed, 0, 10),
            op(0, PushBottom(2), Pushed, 20, 30),
            op(1, Steal, Stolen(Some(2)), 40, 50),
            op(0, PopBottom, Popped(Some(1)), 45, 55),
        ],
    );
}

#[test]
fn map_sequential_and_partition() {
    use MapOp::*;
    use MapRet::*;
    let r = run(
        &MapModel,
        &[
            Insert(1, 10),
            Insert(1, 11),
            Get(1),
            Get(2),
            Remove(1),
            Remove(1),
        ],
    );
    assert_eq!(
        r,
        [
            Inserted(None),
            Inserted(Some(10)),
            Got(Some(11)),
            Got(None),
            Removed(Some(11)),
            Removed(None)
        ]
    );
    let ops = vec![
        op(0, Insert(1, 1), Inserted(None), 0, 1),
        op(0, Get(2), Got(None), 2, 3),
        op(1, Remove(1), Removed(Some(1)), 4, 5),
    ];
    assert_eq!(MapModel.partition(&ops), vec![vec![0, 2], vec![1]]);
}

#[test]
fn map_concurrent() {
    use MapOp::*;
    use MapRet::*;
    passes(
        &MapModel,
        vec![
            op(0, Insert(1, 10), Inserted(None), 0, 20),
            op(1, Get(1), Got(None), 5, 10),
            op(1, Get(1), Got(Some(10)), 12, 30),
            op(2, Insert(2, 5), Inserted(None), 0, 30),
            op(2, Remove(2), Removed(Some(5)), 31, 40),
        ],
    );
    // A read goes back in time: it saw the new value, then a later read the old one.
    fails(
        &MapModel,
        vec![
            op(0, Insert(1, 10), Inserted(None), 0, 10),
            op(0, Insert(1, 20), Inserted(Some(10)), 15, 50),
            op(1, Get(1), Got(Some(20)), 20, 25),
            op(1, Get(1), Got(Some(10)), 30, 35),
        ],
    );
}

#[test]
fn counter_sequential() {
    use CounterOp::*;
    use CounterRet::*;
    let r = run(&CounterModel, &[Add(2), Add(3), Get, Add(u64::MAX)]);
    assert_eq!(r, [Added(0), Added(2), Value(5), Added(5)]);
}

#[test]
fn counter_concurrent() {
    use CounterOp::*;
    use CounterRet::*;
    passes(
        &CounterModel,
        vec![
            op(0, Add(1), Added(1), 0, 10),
            op(1, Add(1), Added(0), 2, 12),
            op(0, Get, Value(2), 20, 30),
        ],
    );
    // A lost update: two adds both saw 0.
    fails(
        &CounterModel,
        vec![
            op(0, Add(1), Added(0), 0, 10),
            op(1, Add(1), Added(0), 2, 12),
        ],
    );
}

#[test]
fn register_sequential() {
    use RegisterOp::*;
    use RegisterRet::*;
    let r = run(
        &RegisterModel::new(7),
        &[Read, Cas(7, 8), Cas(7, 9), Write(1), Read],
    );
    assert_eq!(
        r,
        [
            Value(7),
            CasResult(Ok(7)),
            CasResult(Err(8)),
            Written,
            Value(1)
        ]
    );
    assert_eq!(RegisterModel::default().init(), 0);
}

#[test]
fn register_concurrent() {
    use RegisterOp::*;
    use RegisterRet::*;
    let m = RegisterModel::new(0);
    passes(
        &m,
        vec![
            op(0, Cas(0, 1), CasResult(Ok(0)), 0, 10),
            op(1, Cas(0, 2), CasResult(Err(1)), 2, 12),
            op(1, Read, Value(1), 15, 20),
            op(0, Write(3), Written, 16, 18),
        ],
    );
    // Both CASes from 0 succeeded.
    fails(
        &m,
        vec![
            op(0, Cas(0, 1), CasResult(Ok(0)), 0, 10),
            op(1, Cas(0, 2), CasResult(Ok(0)), 2, 12),
        ],
    );
}
