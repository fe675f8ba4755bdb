//! [`check`]: validation, partitioning, the search per part, shrinking, and the errors.

use std::collections::HashMap;
use std::fmt;

use crate::search::{Verdict, search};
use crate::{History, MAX_OPS_PER_THREAD, MAX_THREADS, Model, Operation};

/// How much work a check may do.
///
/// `steps` bounds the search: one step is one attempt to place an operation (a call to
/// [`Model::apply`]), summed over the parts of the history. A search that runs out fails
/// the check with [`Violation::BudgetExceeded`]. Shrinking a counterexample runs at most
/// [`Budget::shrink_checks`] re-checks and, in total, at most `steps` more steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Budget {
    steps: u64,
    shrink_checks: u32,
}

impl Budget {
    /// The default step budget. Checking a correct stress round of 4 threads × 50
    /// operations takes a few hundred to a few thousand steps. A step costs about a
    /// microsecond in a release build with a queue of a hundred values as the model
    /// state (less for smaller states; an unoptimized build is ten times slower), and
    /// the search's cache keeps at most one 16-byte fingerprint per step.
    pub const DEFAULT_STEPS: u64 = 500_000;
    /// The default number of re-checks spent shrinking a counterexample.
    pub const DEFAULT_SHRINK_CHECKS: u32 = 100;

    /// A budget of `steps` search steps (and the default shrinking).
    pub const fn steps(steps: u64) -> Self {
        Self {
            steps,
            shrink_checks: Self::DEFAULT_SHRINK_CHECKS,
        }
    }

    /// The same budget, shrinking counterexamples with at most `checks` re-checks
    /// (0: report the failing part as it is).
    #[must_use]
    pub const fn with_shrink_checks(self, checks: u32) -> Self {
        Self {
            shrink_checks: checks,
            ..self
        }
    }

    /// The step budget.
    pub const fn max_steps(&self) -> u64 {
        self.steps
    }

    /// The number of re-checks shrinking may use.
    pub const fn shrink_checks(&self) -> u32 {
        self.shrink_checks
    }
}

impl Default for Budget {
    fn default() -> Self {
        Self::steps(Self::DEFAULT_STEPS)
    }
}

/// What a passing check looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Report {
    /// Operations in the history.
    pub ops: usize,
    /// Threads in the history.
    pub threads: usize,
    /// Independent parts it was split into by [`Model::partition`] (empty ones excluded).
    pub partitions: usize,
    /// Operations whose interval overlaps that of an operation of another thread.
    pub overlapping: usize,
    /// Search steps used.
    pub steps: u64,
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "linearizable: {} operations on {} threads in {} part(s), {} overlapping another thread's, {} search steps",
            self.ops, self.threads, self.partitions, self.overlapping, self.steps
        )
    }
}

/// Why a check failed: the history is not linearizable, or it could not be checked, or
/// it tested nothing.
#[non_exhaustive]
pub enum Violation<M: Model> {
    /// No linearization exists: the object under test has a bug. The counterexample is a
    /// shrunk part of the history; its `Display` shows it lane by lane.
    NotLinearizable(Counterexample<M>),
    /// The search used up its [`Budget`] before finding a linearization or proving there
    /// is none. This is a failure: an unfinished search proves nothing.
    BudgetExceeded {
        /// The step budget.
        budget: u64,
        /// The part (index into the parts of [`Model::partition`]) being searched.
        partition: usize,
        /// The number of parts.
        partitions: usize,
        /// Operations in that part.
        ops: usize,
    },
    /// No operation overlapped in time an operation of another thread: the history is
    /// linearizable but tested only sequential behaviour.
    NoOverlap {
        /// Operations in the history.
        ops: usize,
    },
    /// The history has more threads than [`MAX_THREADS`].
    TooManyThreads {
        /// Threads in the history.
        threads: usize,
        /// The cap.
        max: usize,
    },
    /// A thread has more operations than [`MAX_OPS_PER_THREAD`].
    TooManyOps {
        /// The thread.
        thread: usize,
        /// Its operations.
        ops: usize,
        /// The cap.
        max: usize,
    },
    /// The history is not one a run could have produced (a response before its
    /// invocation, overlapping operations within one thread), or the model's partition
    /// is not a partition of it.
    Malformed {
        /// What is wrong.
        reason: String,
    },
}

impl<M: Model> Violation<M> {
    /// The counterexample, if the history was found not linearizable.
    pub fn counterexample(&self) -> Option<&Counterexample<M>> {
        match self {
            Self::NotLinearizable(c) => Some(c),
            _ => None,
        }
    }

    /// Whether the history was found not linearizable (as opposed to unchecked).
    pub fn is_not_linearizable(&self) -> bool {
        matches!(self, Self::NotLinearizable(_))
    }
}

impl<M: Model> fmt::Display for Violation<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLinearizable(c) => c.fmt(f),
            Self::BudgetExceeded {
                budget,
                partition,
                partitions,
                ops,
            } => write!(
                f,
                "the search exceeded its budget of {budget} steps in part {partition} of {partitions} \
                 ({ops} operations) before deciding; an unfinished search proves nothing, so this \
                 fails: record fewer or shorter rounds, or raise the budget"
            ),
            Self::NoOverlap { ops } => write!(
                f,
                "none of the {ops} operations overlapped an operation of another thread: the \
                 history is linearizable but tested nothing concurrent (start the threads \
                 together, e.g. at a barrier, and give them more operations)"
            ),
            Self::TooManyThreads { threads, max } => write!(
                f,
                "the history has {threads} threads; a check takes at most {max}"
            ),
            Self::TooManyOps { thread, ops, max } => write!(
                f,
                "thread {thread} has {ops} operations; a check takes at most {max} per thread"
            ),
            Self::Malformed { reason } => write!(f, "malformed history: {reason}"),
        }
    }
}

impl<M: Model> fmt::Debug for Violation<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotLinearizable(c) => f.debug_tuple("NotLinearizable").field(c).finish(),
            Self::BudgetExceeded {
                budget,
                partition,
                partitions,
                ops,
            } => f
                .debug_struct("BudgetExceeded")
                .field("budget", budget)
                .field("partition", partition)
                .field("partitions", partitions)
                .field("ops", ops)
                .finish(),
            Self::NoOverlap { ops } => f.debug_struct("NoOverlap").field("ops", ops).finish(),
            Self::TooManyThreads { threads, max } => f
                .debug_struct("TooManyThreads")
                .field("threads", threads)
                .field("max", max)
                .finish(),
            Self::TooManyOps { thread, ops, max } => f
                .debug_struct("TooManyOps")
                .field("thread", thread)
                .field("ops", ops)
                .field("max", max)
                .finish(),
            Self::Malformed { reason } => {
                f.debug_struct("Malformed").field("reason", reason).finish()
            }
        }
    }
}

impl<M: Model> std::error::Error for Violation<M> {}

/// A non-linearizable sub-history, shrunk.
///
/// The shown operations have no linearization on their own, nor with any of the hidden
/// operations of the same part added back inside their intervals (with their recorded
/// results): so they fail whatever the hidden ones did, and no hidden operation is
/// needed to explain a shown one. When [`Counterexample::proven`] is false, that second
/// claim was established for some hidings by a bounded search (all ways of adding one or
/// two hidden operations) rather than an exhaustive one.
pub struct Counterexample<M: Model> {
    shown: Vec<Operation<M::Op, M::Ret>>,
    hidden: usize,
    partition: usize,
    partitions: usize,
    rechecks: u32,
    proven: bool,
}

impl<M: Model> Counterexample<M> {
    /// The operations shown, ordered by invocation time.
    pub fn ops(&self) -> &[Operation<M::Op, M::Ret>] {
        &self.shown
    }

    /// How many operations of the failing part were hidden by shrinking.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// The failing part (an index into the parts of [`Model::partition`]).
    pub fn partition(&self) -> usize {
        self.partition
    }

    /// The number of parts the history was split into.
    pub fn partitions(&self) -> usize {
        self.partitions
    }

    /// The re-checks spent shrinking.
    pub fn rechecks(&self) -> u32 {
        self.rechecks
    }

    /// Whether every hiding was proven exhaustively (see the type's documentation).
    pub fn proven(&self) -> bool {
        self.proven
    }
}

impl<M: Model> fmt::Display for Counterexample<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "not linearizable: part {} of {} ({} operations), shrunk to {} with {} re-checks",
            self.partition,
            self.partitions,
            self.shown.len() + self.hidden,
            self.shown.len(),
            self.rechecks
        )?;
        if self.hidden > 0 {
            let how = if self.proven { "" } else { " (bounded search)" };
            writeln!(
                f,
                "the shown operations have no linearization, alone or with any of the hidden \
                 ones ({}) added inside their intervals{how}",
                self.hidden
            )?;
        }
        write!(
            f,
            "lanes, with times in ns from the first shown invocation: [invoke, response] op -> result"
        )?;
        let start = self.shown.iter().map(|o| o.invoke).min().unwrap_or(0);
        let mut threads: Vec<usize> = self.shown.iter().map(|o| o.thread).collect();
        threads.sort_unstable();
        threads.dedup();
        let width = threads
            .iter()
            .map(|t| t.to_string().len())
            .max()
            .unwrap_or(1);
        for t in threads {
            write!(f, "\n  thread {t:<width$} |")?;
            for o in self.shown.iter().filter(|o| o.thread == t) {
                write!(
                    f,
                    " [{}, {}] {:?} -> {:?} |",
                    o.invoke - start,
                    o.response - start,
                    o.op,
                    o.ret
                )?;
            }
        }
        Ok(())
    }
}

impl<M: Model> fmt::Debug for Counterexample<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Counterexample")
            .field("shown", &self.shown)
            .field("hidden", &self.hidden)
            .field("partition", &self.partition)
            .field("partitions", &self.partitions)
            .field("rechecks", &self.rechecks)
            .field("proven", &self.proven)
            .finish()
    }
}

impl<M: Model> Clone for Counterexample<M> {
    fn clone(&self) -> Self {
        Self {
            shown: self.shown.clone(),
            hidden: self.hidden,
            partition: self.partition,
            partitions: self.partitions,
            rechecks: self.rechecks,
            proven: self.proven,
        }
    }
}

/// Checks that `history` is linearizable with respect to `model`.
///
/// In order: the caps ([`Violation::TooManyThreads`], [`Violation::TooManyOps`]) and
/// the shape of the history and of the model's partition ([`Violation::Malformed`]);
/// then the search, part by part, within `budget` ([`Violation::NotLinearizable`] with a
/// shrunk counterexample, or [`Violation::BudgetExceeded`]); finally, a linearizable
/// history in which no operation overlapped another thread's fails with
/// [`Violation::NoOverlap`]. On success the [`Report`] says what was checked.
pub fn check<M: Model>(
    model: &M,
    history: &History<M>,
    budget: Budget,
) -> Result<Report, Violation<M>> {
    let ops = history.ops();
    validate::<M>(ops)?;
    let parts = partition(model, ops)?;
    let nparts = parts.len();
    let mut steps = 0u64;
    for (p, part) in parts.iter().enumerate() {
        let sub: Vec<&Operation<M::Op, M::Ret>> = part.iter().map(|&i| &ops[i]).collect();
        let (verdict, used) = search(model, &sub, &vec![false; sub.len()], budget.steps - steps);
        steps += used;
        match verdict {
            Verdict::Linearizable => {}
            Verdict::OutOfSteps => {
                return Err(Violation::BudgetExceeded {
                    budget: budget.steps,
                    partition: p,
                    partitions: nparts,
                    ops: sub.len(),
                });
            }
            Verdict::NotLinearizable => {
                let shrunk = shrink(model, &sub, budget);
                let shown: Vec<_> = sub
                    .iter()
                    .zip(&shrunk.hidden)
                    .filter(|(_, h)| !**h)
                    .map(|(o, _)| (*o).clone())
                    .collect();
                return Err(Violation::NotLinearizable(Counterexample {
                    hidden: sub.len() - shown.len(),
                    shown,
                    partition: p,
                    partitions: nparts,
                    rechecks: shrunk.rechecks,
                    proven: shrunk.proven,
                }));
            }
        }
    }
    let overlapping = history.overlapping();
    if overlapping == 0 {
        return Err(Violation::NoOverlap { ops: ops.len() });
    }
    Ok(Report {
        ops: ops.len(),
        threads: history.threads(),
        partitions: nparts,
        overlapping,
        steps,
    })
}

/// The caps, and that each thread's operations are well-formed and sequential.
fn validate<M: Model>(ops: &[Operation<M::Op, M::Ret>]) -> Result<(), Violation<M>> {
    // Per thread: (operations, last response).
    let mut lanes: HashMap<usize, (usize, u64)> = HashMap::new();
    for (i, o) in ops.iter().enumerate() {
        if o.response < o.invoke {
            return Err(Violation::Malformed {
                reason: format!(
                    "operation {i} ({:?} on thread {}) responds at {} before its invocation at {}",
                    o.op, o.thread, o.response, o.invoke
                ),
            });
        }
        match lanes.get_mut(&o.thread) {
            Some((n, last)) => {
                if o.invoke <= *last {
                    return Err(Violation::Malformed {
                        reason: format!(
                            "operation {i} ({:?} on thread {}) is invoked at {}, not after the \
                             thread's previous operation responded at {last}",
                            o.op, o.thread, o.invoke
                        ),
                    });
                }
                *n += 1;
                *last = o.response;
            }
            None => {
                lanes.insert(o.thread, (1, o.response));
            }
        }
    }
    if lanes.len() > MAX_THREADS {
        return Err(Violation::TooManyThreads {
            threads: lanes.len(),
            max: MAX_THREADS,
        });
    }
    if let Some((&thread, &(n, _))) = lanes
        .iter()
        .filter(|(_, l)| l.0 > MAX_OPS_PER_THREAD)
        .min_by_key(|(t, _)| **t)
    {
        return Err(Violation::TooManyOps {
            thread,
            ops: n,
            max: MAX_OPS_PER_THREAD,
        });
    }
    Ok(())
}

/// The model's partition, checked to be one, each part in invocation order, empty parts
/// dropped.
fn partition<M: Model>(
    model: &M,
    ops: &[Operation<M::Op, M::Ret>],
) -> Result<Vec<Vec<usize>>, Violation<M>> {
    let mut parts = model.partition(ops);
    let mut seen = vec![false; ops.len()];
    for part in &mut parts {
        for &i in part.iter() {
            if i >= ops.len() {
                return Err(Violation::Malformed {
                    reason: format!(
                        "the model's partition names operation {i} of a history of {}",
                        ops.len()
                    ),
                });
            }
            if std::mem::replace(&mut seen[i], true) {
                return Err(Violation::Malformed {
                    reason: format!("the model's partition puts operation {i} in two parts"),
                });
            }
        }
        part.sort_unstable();
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        return Err(Violation::Malformed {
            reason: format!("the model's partition leaves out operation {i}"),
        });
    }
    parts.retain(|p| !p.is_empty());
    Ok(parts)
}

/// The outcome of shrinking: which operations to hide, the re-checks used, and whether
/// every hiding was proven exhaustively.
struct Shrunk {
    hidden: Vec<bool>,
    rechecks: u32,
    proven: bool,
}

/// Shrinks the non-linearizable `ops`: hides operations greedily, as long as the shown
/// ones still have no linearization, alone or with hidden ones added back inside their
/// intervals.
fn shrink<M: Model>(model: &M, ops: &[&Operation<M::Op, M::Ret>], budget: Budget) -> Shrunk {
    let n = ops.len();
    let mut s = Shrinker {
        model,
        ops,
        checks_left: budget.shrink_checks,
        steps_left: budget.steps,
        // The search over every subset of the hidden operations may be costly: it gets
        // a fiftieth of the budget per trial, so that one costly trial does not starve
        // the others.
        per_search: (budget.steps / 50).max(1),
        proven: true,
    };

    // 1. The shortest failing prefix in invocation order, the rest hidden. Failure is
    //    monotone in the prefix (showing more only constrains more), so bisect.
    let (mut lo, mut hi) = (1, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        let hidden: Vec<bool> = (0..n).map(|i| i >= mid).collect();
        if s.still_fails(&hidden) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    let mut hidden: Vec<bool> = (0..n).map(|i| i >= hi).collect();

    // 2. Whole threads.
    let mut threads: Vec<usize> = ops.iter().map(|o| o.thread).collect();
    threads.sort_unstable();
    threads.dedup();
    for t in threads {
        let mut trial = hidden.clone();
        let mut changed = false;
        for (i, o) in ops.iter().enumerate() {
            if o.thread == t && !trial[i] {
                trial[i] = true;
                changed = true;
            }
        }
        if changed && s.still_fails(&trial) {
            hidden = trial;
        }
    }

    // 3. Chunks of the shown operations, halving down to single operations.
    let mut chunk = (n - hidden.iter().filter(|&&h| h).count()) / 2;
    while chunk >= 1 {
        let shown: Vec<usize> = (0..n).filter(|&i| !hidden[i]).collect();
        for group in shown.chunks(chunk) {
            let mut trial = hidden.clone();
            for &i in group {
                trial[i] = true;
            }
            if s.still_fails(&trial) {
                hidden = trial;
            }
        }
        chunk /= 2;
    }

    // 4. Context. If no order at all, timing aside, gives the shown operations their
    //    results (a pop of a value whose push is hidden), show a hidden operation that
    //    makes one possible: then the failure is plainly one of timing. Showing a hidden
    //    operation keeps the guarantee (the others still may or may not be added).
    for _ in 0..MAX_CONTEXT {
        if hidden.iter().all(|&h| h) || s.untimed_fits(&hidden, None) {
            break;
        }
        let Some(h) = (0..n).find(|&h| hidden[h] && s.untimed_fits(&hidden, Some(h))) else {
            break;
        };
        hidden[h] = false;
    }
    Shrunk {
        hidden,
        rechecks: budget.shrink_checks - s.checks_left,
        proven: s.proven,
    }
}

/// The most hidden operations shown again as context.
const MAX_CONTEXT: usize = 4;

/// The state of a shrinking: what is left of its budget.
struct Shrinker<'a, M: Model> {
    model: &'a M,
    ops: &'a [&'a Operation<M::Op, M::Ret>],
    checks_left: u32,
    steps_left: u64,
    per_search: u64,
    proven: bool,
}

impl<M: Model> Shrinker<'_, M> {
    /// Searches the shown operations plus `extra`, all mandatory.
    fn shown_plus(&mut self, hidden: &[bool], extra: Option<usize>) -> Verdict {
        let sub: Vec<_> = (0..self.ops.len())
            .filter(|&i| !hidden[i] || Some(i) == extra)
            .map(|i| self.ops[i])
            .collect();
        let limit = self.steps_left.min(self.per_search);
        let (verdict, used) = search(self.model, &sub, &vec![false; sub.len()], limit);
        self.steps_left -= used;
        verdict
    }

    /// Whether some order of the shown operations plus `extra`, ignoring when they ran
    /// (and which thread ran them), gives every one its recorded result.
    fn untimed_fits(&mut self, hidden: &[bool], extra: Option<usize>) -> bool {
        let untimed: Vec<Operation<M::Op, M::Ret>> = (0..self.ops.len())
            .filter(|&i| !hidden[i] || Some(i) == extra)
            .enumerate()
            .map(|(lane, i)| Operation {
                thread: lane,
                invoke: 0,
                response: u64::MAX,
                ..self.ops[i].clone()
            })
            .collect();
        let refs: Vec<_> = untimed.iter().collect();
        let limit = self.steps_left.min(self.per_search);
        let (verdict, used) = search(self.model, &refs, &vec![false; refs.len()], limit);
        self.steps_left -= used;
        verdict == Verdict::Linearizable
    }

    /// Whether the shown operations still fail, alone or with hidden ones added.
    fn still_fails(&mut self, hidden: &[bool]) -> bool {
        if self.checks_left == 0 || self.steps_left == 0 {
            return false;
        }
        self.checks_left -= 1;
        // The shown operations alone: necessary, and cheap.
        if self.shown_plus(hidden, None) != Verdict::NotLinearizable {
            return false;
        }
        // With any subset of the hidden ones added. The search includes hidden
        // operations before it tries without them, so an explanation (the push behind a
        // shown pop) is found early.
        let limit = self.steps_left.min(self.per_search);
        let (verdict, used) = search(self.model, self.ops, hidden, limit);
        self.steps_left -= used;
        match verdict {
            Verdict::Linearizable => return false,
            Verdict::NotLinearizable => return true,
            Verdict::OutOfSteps => {}
        }
        // Proving there is none took too long: settle for exactness on every single
        // hidden operation added. Only one invoked before some shown operation
        // responded can come before it, and so matter.
        let last_response = (0..self.ops.len())
            .filter(|&i| !hidden[i])
            .map(|i| self.ops[i].response)
            .max()
            .unwrap_or(0);
        for h in (0..self.ops.len()).filter(|&i| hidden[i] && self.ops[i].invoke <= last_response) {
            if self.shown_plus(hidden, Some(h)) != Verdict::NotLinearizable {
                return false;
            }
        }
        self.proven = false;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{QueueModel, QueueOp, QueueRet};
    use crate::search::tests::{Rng, brute_force, random_ops};

    #[test]
    fn a_counterexample_fails_alone_and_with_any_hidden_operations_added() {
        let model = QueueModel::new();
        let mut rng = Rng(0x0123_4567_89AB_CDEF);
        let (mut seen, mut shrunk) = (0, 0);
        for _ in 0..1500 {
            let ops = random_ops(&mut rng, |rng| {
                if rng.below(2) == 0 {
                    (QueueOp::Push(1 + rng.below(3)), QueueRet::Pushed)
                } else {
                    let v = rng.below(4);
                    (QueueOp::Pop, QueueRet::Popped((v > 0).then_some(v)))
                }
            });
            let history = History::<QueueModel>::from_ops(ops);
            let Err(Violation::NotLinearizable(c)) = check(&model, &history, Budget::default())
            else {
                continue;
            };
            seen += 1;
            let all: Vec<_> = history.ops().iter().collect();
            let hidden: Vec<bool> = all.iter().map(|o| !c.ops().contains(o)).collect();
            assert_eq!(hidden.iter().filter(|&&h| h).count(), c.hidden());
            shrunk += usize::from(c.hidden() > 0);
            let shown: Vec<_> = c.ops().iter().collect();
            assert!(
                !brute_force(&model, &shown, &vec![false; shown.len()]),
                "{c}"
            );
            assert!(c.proven(), "{c}");
            assert!(!brute_force(&model, &all, &hidden), "{c}");
        }
        assert!(seen > 100 && shrunk > 50, "{seen} {shrunk}");
    }
}
