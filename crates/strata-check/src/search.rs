//! The search: Wing & Gong's depth-first search for a linearization, with Lowe's cache
//! of (linearized set, model state) configurations.
//!
//! It also supports *optional* operations, used while shrinking a counterexample: an
//! optional operation may be linearized (inside its interval, with its recorded result)
//! or dropped. With no optional operation this is the plain search.
//!
//! The cache holds a 128-bit fingerprint of each configuration rather than the
//! configuration itself, as TLC does with its state sets: a configuration can be a
//! long queue, and a million of them would take gigabytes. Two configurations share a
//! fingerprint with probability 2^-128 per pair — below 10^-26 over a million
//! configurations — and only that could make the search skip a branch it had not seen.

use std::collections::HashSet;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher, RandomState};

use crate::{Model, Operation};

/// The answer of one search.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A linearization was found.
    Linearizable,
    /// The search space was exhausted: there is none.
    NotLinearizable,
    /// The step limit was reached first: nothing is known.
    OutOfSteps,
}

/// A set of operation indices.
#[derive(Hash)]
struct BitSet(Box<[u64]>);

impl BitSet {
    fn new(n: usize) -> Self {
        Self(vec![0; n.div_ceil(64)].into_boxed_slice())
    }
    fn set(&mut self, i: usize) {
        self.0[i / 64] |= 1 << (i % 64);
    }
    fn clear(&mut self, i: usize) {
        self.0[i / 64] &= !(1 << (i % 64));
    }
}

/// The hasher of the fingerprint set: fingerprints are already uniformly random, so it
/// keeps 64 of their bits.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v >> 64) as u64 ^ v as u64;
    }
}

/// Fingerprints of configurations: two independently keyed SipHashes.
struct Fingerprints {
    keys: (RandomState, RandomState),
    seen: HashSet<u128, BuildHasherDefault<PassThrough>>,
}

impl Fingerprints {
    fn new() -> Self {
        Self {
            keys: (RandomState::new(), RandomState::new()),
            seen: HashSet::default(),
        }
    }

    /// Records the configuration; false if it was recorded before.
    fn insert<S: Hash>(&mut self, done: &BitSet, state: &S) -> bool {
        let a = self.keys.0.hash_one((done, state));
        let b = self.keys.1.hash_one((done, state));
        self.seen.insert(u128::from(a) << 64 | u128::from(b))
    }
}

/// Searches for a linearization of `ops` (ordered by invocation; each thread's
/// operations sequential) in which the operations with `optional[i]` may be left out.
/// Counts one step per attempted move (applying an operation, or dropping an optional
/// one) and stops after `max_steps`. Returns the verdict and the steps taken.
pub(crate) fn search<M: Model>(
    model: &M,
    ops: &[&Operation<M::Op, M::Ret>],
    optional: &[bool],
    max_steps: u64,
) -> (Verdict, u64) {
    debug_assert_eq!(ops.len(), optional.len());
    // Lanes: each thread's operations, in order (indices into `ops`).
    let mut ids: Vec<usize> = Vec::new();
    let mut lanes: Vec<Vec<usize>> = Vec::new();
    for (i, o) in ops.iter().enumerate() {
        match ids.iter().position(|&t| t == o.thread) {
            Some(l) => lanes[l].push(i),
            None => {
                ids.push(o.thread);
                lanes.push(vec![i]);
            }
        }
    }
    let mut pos = vec![0usize; lanes.len()];
    let mut done = BitSet::new(ops.len());
    let mut mandatory_left = optional.iter().filter(|&&o| !o).count();
    let mut state = model.init();
    let mut cache = Fingerprints::new();
    // Each frame: the choice made at that level (an index into that level's candidate
    // order, times two, plus one if it dropped the operation), its lane, and for an
    // applied operation the state before it.
    let mut stack: Vec<(usize, usize, Option<M::State>)> = Vec::new();
    let mut resume = 0usize;
    let mut steps = 0u64;
    let mut order: Vec<usize> = Vec::with_capacity(lanes.len());

    loop {
        if mandatory_left == 0 {
            return (Verdict::Linearizable, steps);
        }
        // The lanes that still have operations, the earliest response first: the
        // operation that must come first in real time is usually the one that did. The
        // order depends only on the configuration, so it is the same when the search
        // comes back to this level.
        order.clear();
        order.extend((0..lanes.len()).filter(|&l| pos[l] < lanes[l].len()));
        order.sort_by_key(|&l| (ops[lanes[l][pos[l]]].response, l));
        // No operation outside the linearization may have responded before the next one
        // is invoked; the earliest response among them is at the head of the first lane.
        let min_response = order
            .first()
            .map_or(u64::MAX, |&l| ops[lanes[l][pos[l]]].response);
        let mut moved = false;
        for choice in resume..2 * order.len() {
            let (l, drop_it) = (order[choice / 2], choice % 2 == 1);
            let i = lanes[l][pos[l]];
            if drop_it && !optional[i] {
                continue;
            }
            if !drop_it && ops[i].invoke > min_response {
                continue;
            }
            if steps >= max_steps {
                return (Verdict::OutOfSteps, steps);
            }
            steps += 1;
            let next = if drop_it {
                None
            } else {
                let (next, ret) = model.apply(&state, &ops[i].op);
                if ret != ops[i].ret {
                    continue;
                }
                Some(next)
            };
            done.set(i);
            let fresh = cache.insert(&done, next.as_ref().unwrap_or(&state));
            if !fresh {
                // Reached before, by another order: its future is already known to fail.
                done.clear(i);
                continue;
            }
            let before = next.map(|next| std::mem::replace(&mut state, next));
            stack.push((choice, l, before));
            pos[l] += 1;
            if !optional[i] {
                mandatory_left -= 1;
            }
            moved = true;
            break;
        }
        if moved {
            resume = 0;
            continue;
        }
        // Dead end: undo the last move and try the next choice at that level.
        let Some((choice, l, before)) = stack.pop() else {
            return (Verdict::NotLinearizable, steps);
        };
        pos[l] -= 1;
        let i = lanes[l][pos[l]];
        done.clear(i);
        if !optional[i] {
            mandatory_left += 1;
        }
        if let Some(before) = before {
            state = before;
        }
        resume = choice + 1;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::models::{QueueModel, QueueOp, QueueRet, RegisterModel, RegisterOp, RegisterRet};

    /// A small deterministic generator (xorshift64*).
    pub(crate) struct Rng(pub(crate) u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Whether some subset of the optional operations plus all mandatory ones has an
    /// order respecting real time that the model accepts: by trying every permutation.
    pub(crate) fn brute_force<M: Model>(
        model: &M,
        ops: &[&Operation<M::Op, M::Ret>],
        optional: &[bool],
    ) -> bool {
        fn extend<M: Model>(
            model: &M,
            ops: &[&Operation<M::Op, M::Ret>],
            chosen: &[usize],
            used: &mut Vec<bool>,
            state: &M::State,
            left: usize,
        ) -> bool {
            if left == 0 {
                return true;
            }
            for &i in chosen {
                if used[i] {
                    continue;
                }
                // Every chosen operation that responded before `i` was invoked must be
                // placed already.
                if chosen
                    .iter()
                    .any(|&j| !used[j] && j != i && ops[j].response < ops[i].invoke)
                {
                    continue;
                }
                let (next, ret) = model.apply(state, &ops[i].op);
                if ret != ops[i].ret {
                    continue;
                }
                used[i] = true;
                let ok = extend(model, ops, chosen, used, &next, left - 1);
                used[i] = false;
                if ok {
                    return true;
                }
            }
            false
        }
        let opt: Vec<usize> = (0..ops.len()).filter(|&i| optional[i]).collect();
        (0u32..1 << opt.len()).any(|mask| {
            let chosen: Vec<usize> = (0..ops.len())
                .filter(|&i| {
                    !optional[i] || mask & (1 << opt.iter().position(|&o| o == i).unwrap()) != 0
                })
                .collect();
            extend(
                model,
                ops,
                &chosen,
                &mut vec![false; ops.len()],
                &model.init(),
                chosen.len(),
            )
        })
    }

    /// Random histories of up to 3 threads and 7 operations; times on a coarse grid so
    /// that ties and overlaps are common.
    pub(crate) fn random_ops<O, R>(
        rng: &mut Rng,
        mut make: impl FnMut(&mut Rng) -> (O, R),
    ) -> Vec<Operation<O, R>> {
        let threads = 1 + rng.below(3) as usize;
        let mut ops = Vec::new();
        for t in 0..threads {
            let mut time = rng.below(4);
            for _ in 0..1 + rng.below(3) {
                let invoke = time;
                let response = invoke + rng.below(6);
                let (o, r) = make(rng);
                ops.push(Operation::new(t, o, r, invoke, response));
                time = response + 1 + rng.below(3);
            }
        }
        ops.sort_by_key(|o| (o.invoke, o.response, o.thread));
        ops
    }

    fn agree<M: Model>(model: &M, ops: &[Operation<M::Op, M::Ret>], rng: &mut Rng) -> bool {
        let refs: Vec<_> = ops.iter().collect();
        let none = vec![false; ops.len()];
        let (verdict, _) = search(model, &refs, &none, u64::MAX);
        let expect = brute_force(model, &refs, &none);
        assert_eq!(verdict == Verdict::Linearizable, expect, "{ops:?}");
        let optional: Vec<bool> = (0..ops.len()).map(|_| rng.below(3) == 0).collect();
        let (verdict, _) = search(model, &refs, &optional, u64::MAX);
        assert_eq!(
            verdict == Verdict::Linearizable,
            brute_force(model, &refs, &optional),
            "{ops:?} {optional:?}"
        );
        expect
    }

    #[test]
    fn the_search_agrees_with_brute_force_on_queues() {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut linearizable = 0;
        for _ in 0..1500 {
            let ops = random_ops(&mut rng, |rng| {
                if rng.below(2) == 0 {
                    (QueueOp::Push(1 + rng.below(3)), QueueRet::Pushed)
                } else {
                    let v = rng.below(4);
                    (QueueOp::Pop, QueueRet::Popped((v > 0).then_some(v)))
                }
            });
            linearizable += usize::from(agree(&QueueModel::new(), &ops, &mut rng));
        }
        // Both answers were exercised.
        assert!(linearizable > 100 && linearizable < 1400, "{linearizable}");
    }

    #[test]
    fn the_search_agrees_with_brute_force_on_registers() {
        let mut rng = Rng(0xD1B5_4A32_D192_ED03);
        let mut linearizable = 0;
        for _ in 0..1500 {
            let ops = random_ops(&mut rng, |rng| match rng.below(3) {
                0 => (RegisterOp::Write(rng.below(3)), RegisterRet::Written),
                1 => (RegisterOp::Read, RegisterRet::Value(rng.below(3))),
                _ => {
                    let (a, b) = (rng.below(3), rng.below(3));
                    let r = if rng.below(2) == 0 {
                        Ok(a)
                    } else {
                        Err(rng.below(3))
                    };
                    (RegisterOp::Cas(a, b), RegisterRet::CasResult(r))
                }
            });
            linearizable += usize::from(agree(&RegisterModel::new(0), &ops, &mut rng));
        }
        assert!(linearizable > 100 && linearizable < 1400, "{linearizable}");
    }

    #[test]
    fn the_step_limit_is_respected() {
        let ops: Vec<Operation<QueueOp, QueueRet>> = (0..4)
            .map(|t| Operation::new(t, QueueOp::Push(t as u64), QueueRet::Pushed, 0, 10))
            .chain([Operation::new(
                4,
                QueueOp::Pop,
                QueueRet::Popped(Some(9)),
                20,
                30,
            )])
            .collect();
        let refs: Vec<_> = ops.iter().collect();
        let none = vec![false; ops.len()];
        let (verdict, steps) = search(&QueueModel::new(), &refs, &none, 7);
        assert_eq!((verdict, steps), (Verdict::OutOfSteps, 7));
        let (verdict, steps) = search(&QueueModel::new(), &refs, &none, u64::MAX);
        assert_eq!(verdict, Verdict::NotLinearizable);
        assert!(steps > 7);
    }
}
