//! The checker on hand-made histories: verdicts, caps, the budget, overlap, shrinking
//! and the display of a violation.

use strata_check::models::{MapModel, MapOp, MapRet, QueueModel, QueueOp, QueueRet};
use strata_check::{
    Budget, History, MAX_OPS_PER_THREAD, MAX_THREADS, Model, Operation, Violation, check,
};

use QueueOp::{Pop, Push};
use QueueRet::{Popped, Pushed};

type Q = QueueModel;

fn op<O, R>(thread: usize, o: O, r: R, invoke: u64, response: u64) -> Operation<O, R> {
    Operation::new(thread, o, r, invoke, response)
}

/// push(1) completes before push(2) starts, then pops return 2 and then 1.
fn lifo_history() -> History<Q> {
    History::from_ops(vec![
        op(0, Push(1), Pushed, 0, 10),
        op(0, Push(2), Pushed, 20, 30),
        op(1, Pop, Popped(Some(2)), 40, 50),
        op(1, Pop, Popped(Some(1)), 60, 70),
    ])
}

#[test]
fn hand_made_non_linearizable_queue_history_is_reported() {
    let err = check(&QueueModel::new(), &lifo_history(), Budget::default()).unwrap_err();
    assert!(err.is_not_linearizable(), "{err:?}");
    let c = err.counterexample().unwrap();
    assert_eq!(c.ops().len() + c.hidden(), 4);
}

#[test]
fn hand_made_non_linearizable_with_overlap_is_reported() {
    // The pops overlap each other but both start after both pushes completed in order.
    let h = History::from_ops(vec![
        op(0, Push(1), Pushed, 0, 10),
        op(0, Push(2), Pushed, 20, 30),
        op(1, Pop, Popped(Some(2)), 40, 60),
        op(2, Pop, Popped(Some(2)), 45, 55),
    ]);
    let err = check(&QueueModel::new(), &h, Budget::default()).unwrap_err();
    assert!(err.is_not_linearizable(), "{err:?}");
}

#[test]
fn hand_made_linearizable_history_with_overlap_passes() {
    // push(1) and push(2) overlap, so popping 2 then 1 is fine: push(2) took effect first.
    let h = History::from_ops(vec![
        op(0, Push(1), Pushed, 0, 30),
        op(1, Push(2), Pushed, 10, 20),
        op(1, Pop, Popped(Some(2)), 40, 50),
        op(0, Pop, Popped(Some(1)), 60, 70),
        op(0, Pop, Popped(None), 80, 90),
    ]);
    let report = check(&QueueModel::new(), &h, Budget::default()).unwrap();
    assert_eq!(report.ops, 5);
    assert_eq!(report.threads, 2);
    assert_eq!(report.partitions, 1);
    assert_eq!(report.overlapping, 2);
    assert!(report.steps >= 5);
    assert!(report.to_string().contains("2 overlapping"));
}

#[test]
fn backtracking_finds_the_one_order_that_works() {
    // Three concurrent pushes; the pops fix their order as 3, 1, 2, which the search
    // only finds after trying the others.
    let h = History::from_ops(vec![
        op(0, Push(1), Pushed, 0, 100),
        op(1, Push(2), Pushed, 1, 100),
        op(2, Push(3), Pushed, 2, 100),
        op(0, Pop, Popped(Some(3)), 200, 210),
        op(1, Pop, Popped(Some(1)), 220, 230),
        op(2, Pop, Popped(Some(2)), 240, 250),
    ]);
    let report = check(&QueueModel::new(), &h, Budget::default()).unwrap();
    assert_eq!(report.overlapping, 3);
}

#[test]
fn equal_timestamps_on_different_threads_count_as_overlapping() {
    // Pop is invoked at the very nanosecond the push responds: either order is possible.
    let h = History::from_ops(vec![
        op(0, Push(1), Pushed, 0, 10),
        op(1, Pop, Popped(None), 10, 20),
    ]);
    let report = check(&QueueModel::new(), &h, Budget::default()).unwrap();
    assert_eq!(report.overlapping, 2);
}

#[test]
fn a_sequential_history_fails_with_no_overlap() {
    let h = History::from_ops(vec![
        op(0, Push(1), Pushed, 0, 10),
        op(1, Pop, Popped(Some(1)), 20, 30),
    ]);
    let err = check(&QueueModel::new(), &h, Budget::default()).unwrap_err();
    assert!(matches!(err, Violation::NoOverlap { ops: 2 }), "{err:?}");
    assert!(err.to_string().contains("tested nothing concurrent"));
    // The empty history tested nothing either.
    let err = check(&QueueModel::new(), &History::default(), Budget::default()).unwrap_err();
    assert!(matches!(err, Violation::NoOverlap { ops: 0 }), "{err:?}");
}

#[test]
fn more_threads_than_the_cap_are_rejected() {
    let ops = (0..=MAX_THREADS)
        .map(|t| op(t, Push(t as u64), Pushed, 0, 10))
        .collect();
    let err = check(
        &QueueModel::new(),
        &History::<Q>::from_ops(ops),
        Budget::default(),
    )
    .unwrap_err();
    assert!(
        matches!(err, Violation::TooManyThreads { threads: 5, max: 4 }),
        "{err:?}"
    );
    assert!(err.to_string().contains("at most 4"));
}

#[test]
fn more_operations_per_thread_than_the_cap_are_rejected() {
    let mut ops: Vec<_> = (0..=MAX_OPS_PER_THREAD as u64)
        .map(|i| op(1, Push(i), Pushed, 10 * i, 10 * i + 5))
        .collect();
    ops.push(op(0, Pop, Popped(None), 0, 100_000));
    let err = check(
        &QueueModel::new(),
        &History::<Q>::from_ops(ops),
        Budget::default(),
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            Violation::TooManyOps {
                thread: 1,
                ops: 201,
                max: 200
            }
        ),
        "{err:?}"
    );
    // Exactly at the cap is fine.
    let mut ops: Vec<_> = (0..MAX_OPS_PER_THREAD as u64)
        .map(|i| op(1, Push(i), Pushed, 10 * i, 10 * i + 5))
        .collect();
    ops.push(op(0, Pop, Popped(Some(0)), 0, 100_000));
    check(
        &QueueModel::new(),
        &History::<Q>::from_ops(ops),
        Budget::default(),
    )
    .unwrap();
}

#[test]
fn malformed_histories_are_rejected() {
    let backwards = History::<Q>::from_ops(vec![op(0, Push(1), Pushed, 10, 5)]);
    let err = check(&QueueModel::new(), &backwards, Budget::default()).unwrap_err();
    assert!(matches!(err, Violation::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("before its invocation"), "{err}");

    let overlapping_in_thread = History::<Q>::from_ops(vec![
        op(0, Push(1), Pushed, 0, 10),
        op(0, Push(2), Pushed, 5, 15),
        op(1, Pop, Popped(Some(1)), 0, 20),
    ]);
    let err = check(
        &QueueModel::new(),
        &overlapping_in_thread,
        Budget::default(),
    )
    .unwrap_err();
    assert!(matches!(err, Violation::Malformed { .. }), "{err:?}");
    assert!(err.to_string().contains("previous operation"), "{err}");
}

/// Makes a partition of `n` operations.
type Split = fn(usize) -> Vec<Vec<usize>>;

/// A queue model whose partition is wrong in a chosen way.
#[derive(Clone)]
struct BadPartition(Split);

impl Model for BadPartition {
    type Op = QueueOp;
    type Ret = QueueRet;
    type State = <QueueModel as Model>::State;
    fn init(&self) -> Self::State {
        QueueModel::new().init()
    }
    fn apply(&self, s: &Self::State, o: &QueueOp) -> (Self::State, QueueRet) {
        QueueModel::new().apply(s, o)
    }
    fn partition(&self, ops: &[Operation<QueueOp, QueueRet>]) -> Vec<Vec<usize>> {
        (self.0)(ops.len())
    }
}

#[test]
fn a_partition_that_is_not_one_is_rejected() {
    let ops = vec![
        op(0, Push(1), Pushed, 0, 10),
        op(1, Pop, Popped(Some(1)), 5, 20),
    ];
    let cases: [(Split, &str); 3] = [
        (|n| vec![(0..n + 1).collect()], "names operation 2"),
        (|n| vec![(0..n).collect(), vec![0]], "in two parts"),
        (|_| vec![vec![1]], "leaves out operation 0"),
    ];
    for (f, expect) in cases {
        let h = History::<BadPartition>::from_ops(ops.clone());
        let err = check(&BadPartition(f), &h, Budget::default()).unwrap_err();
        assert!(matches!(err, Violation::Malformed { .. }), "{err:?}");
        assert!(err.to_string().contains(expect), "{err}");
    }
}

/// Four threads, each pushing its own values in lock step with the others (round `i`
/// of every thread overlaps round `i` of the others only), then one pop that returns a
/// value never pushed. Every interleaving of every round gives a different queue, so the
/// search must try them all before it can say no.
fn pathological() -> History<Q> {
    let mut ops = Vec::new();
    for t in 0..4u64 {
        for i in 0..12u64 {
            ops.push(op(
                t as usize,
                Push(t * 100 + i),
                Pushed,
                10 * i,
                10 * i + 9,
            ));
        }
    }
    ops.push(op(0, Pop, Popped(Some(999)), 1000, 1010));
    History::from_ops(ops)
}

#[test]
fn a_search_over_budget_fails() {
    let err = check(&QueueModel::new(), &pathological(), Budget::steps(2_000)).unwrap_err();
    match &err {
        Violation::BudgetExceeded {
            budget,
            partition,
            partitions,
            ops,
        } => {
            assert_eq!((*budget, *partition, *partitions, *ops), (2_000, 0, 1, 49));
        }
        other => panic!("expected BudgetExceeded, got {other:?}"),
    }
    assert!(err.to_string().contains("proves nothing"));
    // A zero budget decides nothing either.
    let err = check(&QueueModel::new(), &lifo_history(), Budget::steps(0)).unwrap_err();
    assert!(matches!(err, Violation::BudgetExceeded { .. }), "{err:?}");
}

#[test]
fn the_display_of_a_violation_shows_lanes() {
    let unshrunk = Budget::default().with_shrink_checks(0);
    let err = check(&QueueModel::new(), &lifo_history(), unshrunk).unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("not linearizable"), "{text}");
    let lanes: Vec<&str> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("thread "))
        .collect();
    assert_eq!(lanes.len(), 2, "{text}");
    assert!(lanes[0].contains("thread 0 |"), "{text}");
    assert!(lanes[0].contains("[0, 10] Push(1) -> Pushed"), "{text}");
    assert!(lanes[0].contains("[20, 30] Push(2) -> Pushed"), "{text}");
    assert!(lanes[1].contains("thread 1 |"), "{text}");
    // Pops in time order, with their return values.
    let first = lanes[1]
        .find("[40, 50] Pop -> Popped(Some(2))")
        .expect(&text);
    let second = lanes[1]
        .find("[60, 70] Pop -> Popped(Some(1))")
        .expect(&text);
    assert!(first < second, "{text}");
}

#[test]
fn the_display_of_a_shrunk_violation_shows_what_matters() {
    let err = check(&QueueModel::new(), &lifo_history(), Budget::default()).unwrap_err();
    let text = err.to_string();
    // pop() -> 1 is not needed: push(1) before push(2), then pop() -> 2, already fails.
    let expect = "\
not linearizable: part 0 of 1 (4 operations), shrunk to 3 with 7 re-checks
the shown operations have no linearization, alone or with any of the hidden ones (1) added inside their intervals
lanes, with times in ns from the first shown invocation: [invoke, response] op -> result
  thread 0 | [0, 10] Push(1) -> Pushed | [20, 30] Push(2) -> Pushed |
  thread 1 | [40, 50] Pop -> Popped(Some(2)) |";
    assert_eq!(text, expect);
    assert!(err.counterexample().unwrap().proven());
}

#[test]
fn a_long_failing_history_is_shrunk_to_the_few_operations_that_matter() {
    // Three threads push and pop correctly for a while, overlapping; then a pop returns a
    // value out of order. Only a handful of operations explain the failure.
    let mut ops = Vec::new();
    let mut time = 0;
    for i in 0..30u64 {
        // Thread 0 pushes i; thread 1 pops it concurrently-but-after; thread 2 reads empty.
        ops.push(op(0, Push(i), Pushed, time, time + 10));
        ops.push(op(1, Pop, Popped(Some(i)), time + 5, time + 20));
        ops.push(op(2, Pop, Popped(None), time + 21, time + 25));
        time += 30;
    }
    ops.push(op(0, Push(100), Pushed, time, time + 10));
    ops.push(op(0, Push(101), Pushed, time + 20, time + 30));
    ops.push(op(1, Pop, Popped(Some(101)), time + 40, time + 50));
    let h = History::<Q>::from_ops(ops);
    let err = check(&QueueModel::new(), &h, Budget::default()).unwrap_err();
    let c = err.counterexample().expect("not linearizable");
    assert_eq!(c.ops().len() + c.hidden(), 93);
    assert!(c.rechecks() <= Budget::DEFAULT_SHRINK_CHECKS);
    let shown: Vec<_> = c.ops().iter().map(|o| (o.op, o.ret)).collect();
    assert_eq!(
        shown,
        [
            (Push(100), Pushed),
            (Push(101), Pushed),
            (Pop, Popped(Some(101)))
        ],
        "{err}"
    );
    assert!(err.to_string().contains("hidden ones (90) added"), "{err}");
}

#[test]
fn shrinking_never_hides_what_explains_a_result() {
    // The bug is push(2), push(3), pop() -> 3. Deleting operations blindly could end at a
    // lone pop() -> 1 (its push deleted), which "fails" for a reason the run never had.
    // A hidden operation may still take effect, so that is not a counterexample.
    let h = History::<Q>::from_ops(vec![
        op(0, Push(1), Pushed, 0, 10),
        op(1, Pop, Popped(Some(1)), 20, 30),
        op(0, Push(2), Pushed, 40, 50),
        op(0, Push(3), Pushed, 60, 70),
        op(1, Pop, Popped(Some(3)), 80, 90),
    ]);
    let err = check(&QueueModel::new(), &h, Budget::default()).unwrap_err();
    let c = err.counterexample().unwrap();
    let shown: Vec<_> = c.ops().iter().map(|o| (o.op, o.ret)).collect();
    assert_eq!(
        shown,
        [(Push(2), Pushed), (Push(3), Pushed), (Pop, Popped(Some(3)))],
        "{err}"
    );
    assert!(c.proven());
}

#[test]
fn no_shrinking_when_asked() {
    let budget = Budget::default().with_shrink_checks(0);
    let err = check(&QueueModel::new(), &lifo_history(), budget).unwrap_err();
    let c = err.counterexample().unwrap();
    assert_eq!((c.ops().len(), c.hidden(), c.rechecks()), (4, 0, 0));
}

#[test]
fn parts_are_checked_independently_and_the_failing_one_named() {
    use MapOp::{Get, Insert};
    use MapRet::{Got, Inserted};
    let ok = vec![
        op(0, Insert(1, 10), Inserted(None), 0, 20),
        op(1, Insert(2, 20), Inserted(None), 5, 15),
        op(1, Get(1), Got(Some(10)), 30, 40),
        op(0, Get(2), Got(Some(20)), 30, 40),
    ];
    let report = check(&MapModel, &History::from_ops(ok.clone()), Budget::default()).unwrap();
    assert_eq!(report.partitions, 2);
    let mut bad = ok;
    // Key 2 was written at 5..15; a read at 50..60 must see it.
    bad.push(op(1, Get(2), Got(None), 50, 60));
    let err = check(&MapModel, &History::from_ops(bad), Budget::default()).unwrap_err();
    let c = err.counterexample().expect("not linearizable");
    assert_eq!((c.partition(), c.partitions()), (1, 2));
    assert!(c.ops().iter().all(|o| o.op.key() == 2), "{err}");
}

#[test]
fn overlap_counts_operations_of_other_threads_only() {
    let h = History::<Q>::from_ops(vec![
        op(0, Push(1), Pushed, 0, 10),
        op(0, Push(2), Pushed, 11, 20),
        op(1, Pop, Popped(Some(1)), 15, 30),
        op(2, Pop, Popped(None), 100, 110),
    ]);
    assert_eq!(h.overlapping(), 2);
    assert_eq!(h.threads(), 3);
    assert_eq!(h.len(), 4);
}
