//! Linearizability of `Pool` on recorded histories, checked with strata-check.
//!
//! The sequential specification (`PoolModel`) tracks each object id: `get` returns an
//! id that is not handed out and was not detached (a new one, or one returned before);
//! dropping the handle (`Put`) returns an id that is handed out; `Detach` takes a
//! handed-out id out for good; `Donate` (`Pool::put`) gives a new id. Since which id a
//! `get` returns is the pool's choice, the id is recorded as part of the operation and
//! the model answers whether that choice was allowed at that point. Ids are
//! independent, so the history is checked id by id (P-compositionality).
//!
//! A negative control runs the same recording over a deliberately broken pool, which
//! can hand out an object that is still held, and requires the checker to report it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Barrier, Mutex};

use strata_check::{Budget, History, Model, Operation, Violation, check, now};
use strata_sync::pool::{Pool, Pooled};

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum PoolOp {
    /// `get` returned this id.
    Get(u64),
    /// The handle of this id was dropped (the object returned).
    Put(u64),
    /// The handle of this id was detached.
    Detach(u64),
    /// `Pool::put` donated a new object of this id.
    Donate(u64),
}

impl PoolOp {
    fn id(&self) -> u64 {
        match *self {
            Self::Get(i) | Self::Put(i) | Self::Detach(i) | Self::Donate(i) => i,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum PoolRet {
    Ok,
    /// The operation was not allowed in that state (never recorded by a run: a model
    /// answer that rules a linearization out).
    Invalid,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum IdState {
    Fresh,
    Free,
    Held,
    Gone,
}

#[derive(Clone, Debug)]
struct PoolModel;

impl Model for PoolModel {
    type Op = PoolOp;
    type Ret = PoolRet;
    /// The state of the one id of a part.
    type State = IdState;

    fn init(&self) -> IdState {
        IdState::Fresh
    }

    fn apply(&self, state: &IdState, op: &PoolOp) -> (IdState, PoolRet) {
        use IdState::*;
        let next = match (op, *state) {
            (PoolOp::Get(_), Fresh | Free) => Held,
            (PoolOp::Put(_), Held) => Free,
            (PoolOp::Detach(_), Held) => Gone,
            (PoolOp::Donate(_), Fresh) => Free,
            _ => return (*state, PoolRet::Invalid),
        };
        (next, PoolRet::Ok)
    }

    fn partition(&self, ops: &[Operation<PoolOp, PoolRet>]) -> Vec<Vec<usize>> {
        let mut parts: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, o) in ops.iter().enumerate() {
            parts.entry(o.op.id()).or_default().push(i);
        }
        let mut parts: Vec<Vec<usize>> = parts.into_values().collect();
        parts.sort();
        parts
    }
}

/// One thread's recording: operations with invocation and response times, each
/// invoked strictly after the previous response (as `strata_check::ThreadLog` does;
/// the op of a `get` is only known once it returns, so this records by hand).
struct Log {
    thread: usize,
    last: u64,
    ops: Vec<Operation<PoolOp, PoolRet>>,
}

impl Log {
    fn new(thread: usize) -> Self {
        Self {
            thread,
            last: 0,
            ops: Vec::new(),
        }
    }

    fn invoke(&self) -> u64 {
        let mut t = now();
        while t <= self.last {
            std::hint::spin_loop();
            t = now();
        }
        t
    }

    fn record(&mut self, op: PoolOp, invoke: u64) {
        let response = now();
        self.last = response;
        self.ops.push(Operation::new(
            self.thread,
            op,
            PoolRet::Ok,
            invoke,
            response,
        ));
    }
}

/// What a recorded run needs from a pool under test.
trait TestPool: Sync {
    type Handle<'a>
    where
        Self: 'a;
    fn get(&self) -> (Self::Handle<'_>, u64);
    fn put_back(&self, h: Self::Handle<'_>);
    fn detach(&self, h: Self::Handle<'_>);
    fn donate(&self, id: u64);
}

static IDS: AtomicU64 = AtomicU64::new(0);

impl TestPool for Pool<u64> {
    type Handle<'a> = Pooled<'a, u64>;
    fn get(&self) -> (Pooled<'_, u64>, u64) {
        let h = Pool::get(self);
        let id = *h;
        (h, id)
    }
    fn put_back(&self, h: Pooled<'_, u64>) {
        drop(h);
    }
    fn detach(&self, h: Pooled<'_, u64>) {
        Pooled::detach(h);
    }
    fn donate(&self, id: u64) {
        Pool::put(self, id);
    }
}

/// A broken pool: `get` hands out the most recently returned id without removing it,
/// so an object can be handed to two holders at once.
struct Broken(Mutex<Vec<u64>>);

impl TestPool for Broken {
    type Handle<'a> = u64;
    fn get(&self) -> (u64, u64) {
        let id = match self.0.lock().unwrap().last() {
            Some(&id) => id,
            None => IDS.fetch_add(1, Ordering::Relaxed),
        };
        (id, id)
    }
    fn put_back(&self, h: u64) {
        let mut v = self.0.lock().unwrap();
        if !v.contains(&h) {
            v.push(h);
        }
    }
    fn detach(&self, h: u64) {
        self.0.lock().unwrap().retain(|&x| x != h);
    }
    fn donate(&self, id: u64) {
        self.0.lock().unwrap().push(id);
    }
}

const THREADS: usize = 3;
/// Iterations per thread and round: up to 3 operations each, under the checker's
/// 200 operations per thread.
const ITERS: usize = 60;

/// One round: `THREADS` threads get an object, sometimes keep a second one across
/// the next get, and return, detach or donate.
fn record_round<P: TestPool>(pool: &P) -> History<PoolModel> {
    let start = Barrier::new(THREADS);
    let logs: Vec<Vec<Operation<PoolOp, PoolRet>>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let start = &start;
                s.spawn(move || {
                    let mut log = Log::new(t);
                    let mut kept: Option<(P::Handle<'_>, u64)> = None;
                    start.wait();
                    for i in 0..ITERS {
                        let inv = log.invoke();
                        std::thread::yield_now();
                        let (h, id) = pool.get();
                        log.record(PoolOp::Get(id), inv);
                        let (h, id) = match kept.take() {
                            // Keep this one across the next iteration, return the old.
                            Some(old) if i % 4 == 1 => {
                                kept = Some((h, id));
                                old
                            }
                            Some(old) => {
                                kept = Some(old);
                                (h, id)
                            }
                            None if i % 4 == 0 => {
                                kept = Some((h, id));
                                continue;
                            }
                            None => (h, id),
                        };
                        let inv = log.invoke();
                        std::thread::yield_now();
                        if i % 9 == 5 {
                            pool.detach(h);
                            log.record(PoolOp::Detach(id), inv);
                        } else {
                            pool.put_back(h);
                            log.record(PoolOp::Put(id), inv);
                        }
                        if i % 11 == 3 {
                            let id = IDS.fetch_add(1, Ordering::Relaxed);
                            let inv = log.invoke();
                            pool.donate(id);
                            log.record(PoolOp::Donate(id), inv);
                        }
                    }
                    if let Some((h, id)) = kept {
                        let inv = log.invoke();
                        pool.put_back(h);
                        log.record(PoolOp::Put(id), inv);
                    }
                    log.ops
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    History::from_ops(logs.into_iter().flatten().collect())
}

#[test]
#[cfg_attr(miri, ignore = "real-time order under miri's weak memory emulation")]
fn pool_is_linearizable() {
    for (max, cache) in [(4, 0), (8, 2), (64, 8)] {
        let mut checked = 0;
        for _round in 0..40 {
            let pool = Pool::builder(|| IDS.fetch_add(1, Ordering::Relaxed))
                .max_retained(max)
                .per_thread_cache(cache)
                .build()
                .unwrap();
            let history = record_round(&pool);
            match check(&PoolModel, &history, Budget::default()) {
                Ok(report) => {
                    assert!(report.overlapping > 0);
                    checked += 1;
                    if checked >= 5 {
                        break;
                    }
                }
                Err(Violation::NoOverlap { .. }) => continue,
                Err(e) => panic!("pool (max {max}, cache {cache}) not linearizable:\n{e}"),
            }
        }
        assert!(
            checked > 0,
            "no round overlapped (max {max}, cache {cache})"
        );
    }
}

/// The negative control: the broken pool's double hand-outs are reported.
#[test]
#[cfg_attr(miri, ignore = "real-time order under miri's weak memory emulation")]
fn double_hand_out_is_reported() {
    for _round in 0..100 {
        let pool = Broken(Mutex::new(Vec::new()));
        let history = record_round(&pool);
        match check(&PoolModel, &history, Budget::default()) {
            Err(Violation::NotLinearizable(c)) => {
                let text = c.to_string();
                assert!(text.contains("Get("), "{text}");
                return;
            }
            Err(Violation::NoOverlap { .. }) | Ok(_) => continue,
            Err(e) => panic!("unexpected: {e}"),
        }
    }
    panic!("the broken pool was never caught");
}
