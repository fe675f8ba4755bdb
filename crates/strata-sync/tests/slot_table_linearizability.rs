//! Linearizability of `SlotTable` against a sequential table, with strata-check.
//!
//! The sequential model is a table of slots, each free (with the generation its next
//! occupant gets) or holding a value and its generation. `get(key)` returns the value
//! iff the key's slot holds the key's generation; `remove(key)` succeeds iff so, frees
//! the slot and advances its generation; `insert` takes a free slot with its next
//! generation.
//!
//! Which free slot `insert` may take is the table's documented guarantee, weaker than
//! "the lowest free slot at one instant": every slot below the one it takes was in use
//! at some instant during the call. Seen from outside, a lower slot `j` may be passed
//! over only if the model holds `j` (it was in use when the insert took effect) or `j`
//! was freed by a removal that had not yet responded when the insert was invoked (so
//! `j` may have been in use when the insert scanned past it). A removal that responded
//! before the insert was invoked freed its slot before the insert began, and a slot
//! never used is free all along: the insert must not pass over either.
//!
//! That is not a deterministic function of the state, so each operation carries what
//! it observed (the key an insert got, the value a get saw, whether a remove won) and
//! the model answers whether that observation is allowed; the recorded answer is always
//! `Allowed`. Inserts carry their invocation time and removals their response time for
//! the rule above.
//!
//! Controls: a mutex-protected reference table run through the same recorded workload
//! passes; the same table with a planted bug (no new generation on removal, so an old
//! key reaches a new occupant; or an insert that passes over the lowest free slot) is
//! reported, and so are hand-made histories that break each rule.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};

use strata_check::{Budget, History, Model, Operation, Violation, check, now};
use strata_sync::slot_table::{SlotKey, SlotTable};

const THREADS: usize = 3;
const OPS_PER_THREAD: usize = 36;
const ROUNDS: usize = 10;
const BUDGET_STEPS: u64 = 5_000_000;

/// An operation and what it observed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Op {
    /// `insert(value)` returned `key`; invoked at `invoke`.
    Insert {
        value: u64,
        key: SlotKey,
        invoke: u64,
    },
    /// `get(key)` returned `saw`.
    Get { key: SlotKey, saw: Option<u64> },
    /// `remove(key)` returned `won`; responded at `response`.
    Remove {
        key: SlotKey,
        won: bool,
        response: u64,
    },
}

/// The model's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Allowed,
    Forbidden,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum SlotState {
    /// Free; the next occupant gets `next_gen`; freed by a removal that responded at
    /// `freed_response` (0 if never used).
    Free {
        next_gen: u32,
        freed_response: u64,
    },
    Live {
        generation: u32,
        value: u64,
    },
}

const NEVER_USED: SlotState = SlotState::Free {
    next_gen: 0,
    freed_response: 0,
};

#[derive(Clone, Copy, Debug)]
struct TableModel;

impl Model for TableModel {
    type Op = Op;
    type Ret = Verdict;
    /// Slots past the end are never used.
    type State = Vec<SlotState>;

    fn init(&self) -> Vec<SlotState> {
        Vec::new()
    }

    fn apply(&self, state: &Vec<SlotState>, op: &Op) -> (Vec<SlotState>, Verdict) {
        let at = |i: usize| state.get(i).copied().unwrap_or(NEVER_USED);
        let verdict = |ok: bool| {
            if ok {
                Verdict::Allowed
            } else {
                Verdict::Forbidden
            }
        };
        match *op {
            Op::Insert { value, key, invoke } => {
                let i = key.index();
                let takes_free = matches!(at(i), SlotState::Free { next_gen, .. } if next_gen == key.generation());
                let passes_allowed = (0..i).all(|j| match at(j) {
                    SlotState::Live { .. } => true,
                    SlotState::Free { freed_response, .. } => freed_response >= invoke,
                });
                if !(takes_free && passes_allowed) {
                    return (state.clone(), Verdict::Forbidden);
                }
                let mut next = state.clone();
                if next.len() <= i {
                    next.resize(i + 1, NEVER_USED);
                }
                next[i] = SlotState::Live {
                    generation: key.generation(),
                    value,
                };
                (next, Verdict::Allowed)
            }
            Op::Get { key, saw } => {
                let holds = match at(key.index()) {
                    SlotState::Live { generation, value } if generation == key.generation() => {
                        Some(value)
                    }
                    _ => None,
                };
                (state.clone(), verdict(holds == saw))
            }
            Op::Remove { key, won, response } => {
                let i = key.index();
                match at(i) {
                    SlotState::Live { generation, .. } if generation == key.generation() => {
                        if !won {
                            return (state.clone(), Verdict::Forbidden);
                        }
                        let mut next = state.clone();
                        next[i] = SlotState::Free {
                            next_gen: generation + 1,
                            freed_response: response,
                        };
                        (next, Verdict::Allowed)
                    }
                    _ => (state.clone(), verdict(!won)),
                }
            }
        }
    }
}

/// The operations a run exercises, so that the workload can drive the real table and
/// the buggy one.
trait Table: Sync {
    fn insert(&self, v: u64) -> SlotKey;
    fn get(&self, k: SlotKey) -> Option<u64>;
    fn remove(&self, k: SlotKey) -> bool;
}

impl Table for SlotTable<u64> {
    fn insert(&self, v: u64) -> SlotKey {
        SlotTable::insert(self, v).expect("not full")
    }
    fn get(&self, k: SlotKey) -> Option<u64> {
        self.get_cloned(k)
    }
    fn remove(&self, k: SlotKey) -> bool {
        SlotTable::remove(self, k)
    }
}

/// A mutex-protected reference table with a switchable bug: `generations: false`
/// never advances generations (an old key reaches the next occupant of its index),
/// `pass_lowest: true` takes the second-lowest free slot when there are two.
struct MutexTable {
    /// Per slot: the current generation and value.
    slots: Mutex<Vec<(u32, Option<u64>)>>,
    generations: bool,
    pass_lowest: bool,
}

impl MutexTable {
    fn new(generations: bool, pass_lowest: bool) -> Self {
        MutexTable {
            slots: Mutex::new(Vec::new()),
            generations,
            pass_lowest,
        }
    }
}

impl Table for MutexTable {
    fn insert(&self, v: u64) -> SlotKey {
        let mut slots = self.slots.lock().unwrap();
        let mut free = slots.iter().enumerate().filter(|(_, s)| s.1.is_none());
        let first = free.next().map(|(i, _)| i);
        let second = free.next().map(|(i, _)| i);
        let i = match (first, second) {
            (Some(_), Some(j)) if self.pass_lowest => j,
            (Some(i), _) => i,
            _ => {
                slots.push((0, None));
                slots.len() - 1
            }
        };
        slots[i].1 = Some(v);
        SlotKey::new(i as u32, slots[i].0)
    }
    fn get(&self, k: SlotKey) -> Option<u64> {
        let slots = self.slots.lock().unwrap();
        match slots.get(k.index()) {
            Some(&(g, v)) if g == k.generation() => v,
            _ => None,
        }
    }
    fn remove(&self, k: SlotKey) -> bool {
        let mut slots = self.slots.lock().unwrap();
        match slots.get_mut(k.index()) {
            Some(s) if s.0 == k.generation() && s.1.is_some() => {
                s.1 = None;
                if self.generations {
                    s.0 += 1;
                }
                true
            }
            _ => false,
        }
    }
}

/// A per-thread log of operations with their real times; each invocation is strictly
/// after the thread's previous response.
struct Log {
    thread: usize,
    last: u64,
    ops: Vec<Operation<Op, Verdict>>,
}

impl Log {
    fn invoke(&mut self) -> u64 {
        let t = now().max(self.last + 1);
        std::thread::yield_now(); // stands for a preemption inside the call
        t
    }
    fn respond(&mut self, invoke: u64, op: Op) {
        let response = match op {
            Op::Remove { response, .. } => response,
            _ => now().max(invoke),
        };
        self.last = response;
        self.ops.push(Operation::new(
            self.thread,
            op,
            Verdict::Allowed,
            invoke,
            response,
        ));
    }
}

/// One round: every thread inserts, reads its own key and a key another thread
/// published, and removes its own key or (every third time) the other thread's.
fn round<T: Table>(table: &T) -> History<TableModel> {
    let published: Vec<AtomicU64> = (0..THREADS).map(|_| AtomicU64::new(u64::MAX)).collect();
    let start = Barrier::new(THREADS);
    let logs: Vec<Vec<Operation<Op, Verdict>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (published, start) = (&published, &start);
                s.spawn(move || {
                    let mut log = Log {
                        thread: t,
                        last: 0,
                        ops: Vec::new(),
                    };
                    start.wait();
                    let mut i = 0u64;
                    while log.ops.len() + 4 <= OPS_PER_THREAD {
                        let value = (t as u64 + 1) * 1_000 + i;
                        i += 1;
                        let inv = log.invoke();
                        let key = table.insert(value);
                        log.respond(
                            inv,
                            Op::Insert {
                                value,
                                key,
                                invoke: inv,
                            },
                        );
                        published[t].store(key.to_bits(), Ordering::SeqCst);

                        let other = published[(t + 1) % THREADS].load(Ordering::SeqCst);
                        let theirs = (other != u64::MAX).then(|| SlotKey::from_bits(other));
                        for k in [Some(key), theirs].into_iter().flatten() {
                            let inv = log.invoke();
                            let saw = table.get(k);
                            log.respond(inv, Op::Get { key: k, saw });
                        }
                        let victim = match theirs {
                            Some(k) if i.is_multiple_of(3) => k,
                            _ => key,
                        };
                        let inv = log.invoke();
                        let won = table.remove(victim);
                        let response = now().max(inv);
                        log.respond(
                            inv,
                            Op::Remove {
                                key: victim,
                                won,
                                response,
                            },
                        );
                    }
                    log.ops
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    History::from_ops(logs.into_iter().flatten().collect())
}

#[test]
#[cfg_attr(miri, ignore = "compares real-time order (miri emulates weak memory)")]
fn slot_table_is_linearizable_with_lowest_free_inserts() {
    let (mut done, mut tries, mut overlapping) = (0, 0, 0);
    while done < ROUNDS {
        tries += 1;
        assert!(tries < ROUNDS * 20, "too few overlapping rounds");
        let table = SlotTable::new();
        match check(&TableModel, &round(&table), Budget::steps(BUDGET_STEPS)) {
            Ok(report) => {
                overlapping += report.overlapping;
                done += 1;
            }
            Err(Violation::NoOverlap { .. }) => continue,
            Err(e) => panic!("SlotTable is not linearizable:\n{e}"),
        }
    }
    assert!(overlapping > 0);
}

/// Runs up to `rounds` rounds on fresh tables until one is reported.
fn reported(rounds: usize, make: impl Fn() -> MutexTable) -> bool {
    for _ in 0..rounds {
        match check(&TableModel, &round(&make()), Budget::steps(BUDGET_STEPS)) {
            Err(e) if e.is_not_linearizable() => return true,
            Ok(_) | Err(Violation::NoOverlap { .. }) => continue,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    false
}

#[test]
#[cfg_attr(miri, ignore = "compares real-time order (miri emulates weak memory)")]
fn the_reference_table_passes_and_its_bugs_are_reported() {
    assert!(
        !reported(ROUNDS, || MutexTable::new(true, false)),
        "a correct table was reported"
    );
    assert!(
        reported(200, || MutexTable::new(false, false)),
        "an old key reaching a new occupant"
    );
    assert!(
        reported(200, || MutexTable::new(true, true)),
        "an insert passing over a free slot"
    );
}

fn op(thread: usize, op: Op, invoke: u64, response: u64) -> Operation<Op, Verdict> {
    Operation::new(thread, op, Verdict::Allowed, invoke, response)
}

fn key(index: u32, generation: u32) -> SlotKey {
    SlotKey::new(index, generation)
}

#[test]
fn planted_histories_are_judged_right() {
    let judge = |ops: Vec<Operation<Op, Verdict>>| {
        check(&TableModel, &History::from_ops(ops), Budget::steps(100_000))
    };
    let ins = |value, k, invoke| Op::Insert {
        value,
        key: k,
        invoke,
    };
    let rem = |k, won, response| Op::Remove {
        key: k,
        won,
        response,
    };

    // Passing over slot 0, freed by a removal that responded before the insert began.
    let skipped = judge(vec![
        op(0, ins(1, key(0, 0), 10), 10, 20),
        op(0, ins(2, key(1, 0), 30), 30, 40),
        op(0, rem(key(0, 0), true, 60), 50, 60),
        op(1, ins(3, key(2, 0), 70), 70, 80),
    ]);
    assert!(skipped.is_err_and(|e| e.is_not_linearizable()));

    // The same, but the removal still runs when the insert begins: allowed (the insert
    // may have scanned past slot 0 before it was freed). Overlapping, so not NoOverlap.
    let overlapped = judge(vec![
        op(0, ins(1, key(0, 0), 10), 10, 20),
        op(0, ins(2, key(1, 0), 30), 30, 40),
        op(0, rem(key(0, 0), true, 90), 50, 90),
        op(1, ins(3, key(2, 0), 70), 70, 80),
    ]);
    assert!(overlapped.is_ok(), "{overlapped:?}");

    // An old key that reaches the new occupant of its index.
    let aba = judge(vec![
        op(0, ins(1, key(0, 0), 10), 10, 20),
        op(0, rem(key(0, 0), true, 40), 30, 40),
        op(0, ins(2, key(0, 1), 50), 50, 60),
        op(
            1,
            Op::Get {
                key: key(0, 0),
                saw: Some(2),
            },
            55,
            70,
        ),
    ]);
    assert!(aba.is_err_and(|e| e.is_not_linearizable()));

    // Two removers of one key that both win.
    let both = judge(vec![
        op(0, ins(1, key(0, 0), 10), 10, 20),
        op(0, rem(key(0, 0), true, 40), 30, 40),
        op(1, rem(key(0, 0), true, 45), 35, 45),
    ]);
    assert!(both.is_err_and(|e| e.is_not_linearizable()));

    // A reused index without a new generation.
    let same_gen = judge(vec![
        op(0, ins(1, key(0, 0), 10), 10, 20),
        op(0, rem(key(0, 0), true, 40), 30, 40),
        op(1, ins(2, key(0, 0), 35), 35, 50),
    ]);
    assert!(same_gen.is_err_and(|e| e.is_not_linearizable()));
}
