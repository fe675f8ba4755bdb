//! Recording histories: the clock, the shared [`Recorder`] and the per-thread
//! [`ThreadLog`].

use std::marker::PhantomData;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::Instant;

use crate::{History, Model, Operation};

fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

/// The clock of every history: nanoseconds since a process-wide base [`Instant`]
/// (taken the first time the clock is read). Monotonic, so times read by different
/// threads compare.
pub fn now() -> u64 {
    u64::try_from(base().elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// Collects the operations of one run, from all its threads.
///
/// Shared by reference between the threads of a run (it is `Sync` when the model's
/// operations and return values are `Send`); each thread records into its own
/// [`ThreadLog`] without touching shared state, and the log is handed back here when it
/// is dropped.
pub struct Recorder<M: Model> {
    done: Mutex<Vec<Operation<M::Op, M::Ret>>>,
    _model: PhantomData<fn() -> M>,
}

impl<M: Model> Recorder<M> {
    /// A recorder for a run of `threads` threads (a capacity hint: any thread id may be
    /// used, and [`crate::check`] enforces the caps).
    pub fn new(threads: usize) -> Self {
        // Fix the clock's base before the run, so that the first reading is not late.
        let _ = now();
        Self {
            done: Mutex::new(Vec::with_capacity(threads.saturating_mul(64))),
            _model: PhantomData,
        }
    }

    /// The log of thread `id`: move it into the thread, record with
    /// [`ThreadLog::call`], and let it drop (or call [`ThreadLog::finish`]) when the
    /// thread is done. Take one log per thread id per run: two logs of one id used at
    /// once would make that thread's operations overlap, which [`crate::check`] rejects
    /// as malformed.
    pub fn thread(&self, id: usize) -> ThreadLog<'_, M> {
        ThreadLog {
            recorder: self,
            id,
            ops: Vec::with_capacity(256),
            last_response: None,
        }
    }

    /// The history of the run: every operation recorded by the logs dropped so far.
    pub fn into_history(self) -> History<M> {
        History::from_ops(
            self.done
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

impl<M: Model> std::fmt::Debug for Recorder<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        f.debug_struct("Recorder")
            .field("operations", &n)
            .finish_non_exhaustive()
    }
}

/// One thread's log: records operations into a `Vec` owned by the thread, handed back to
/// its [`Recorder`] on drop.
pub struct ThreadLog<'r, M: Model> {
    recorder: &'r Recorder<M>,
    id: usize,
    ops: Vec<Operation<M::Op, M::Ret>>,
    last_response: Option<u64>,
}

impl<M: Model> ThreadLog<'_, M> {
    /// Runs `f`, the operation `op` on the object under test, and records it: the clock
    /// is read just before `f` (the invocation) and just after it (the response), and
    /// `f`'s result is the operation's return value. Returns that value.
    ///
    /// If `f` panics nothing is recorded for it (the operation has no response).
    pub fn call<F: FnOnce() -> M::Ret>(&mut self, op: M::Op, f: F) -> M::Ret {
        let mut invoke = now();
        if let Some(last) = self.last_response {
            // Within a thread, an operation must start strictly after the previous one
            // ended; with a coarse clock the two readings could be equal.
            while invoke <= last {
                std::hint::spin_loop();
                invoke = now();
            }
        }
        let ret = f();
        let response = now();
        self.last_response = Some(response);
        self.ops.push(Operation {
            thread: self.id,
            op,
            ret: ret.clone(),
            invoke,
            response,
        });
        ret
    }

    /// The thread id this log records for.
    pub fn id(&self) -> usize {
        self.id
    }

    /// The number of operations recorded in this log so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether nothing has been recorded in this log yet.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Hands the recorded operations back to the recorder (what dropping the log does).
    pub fn finish(self) {}
}

impl<M: Model> Drop for ThreadLog<'_, M> {
    fn drop(&mut self) {
        if self.ops.is_empty() {
            return;
        }
        let mut done = self
            .recorder
            .done
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        done.append(&mut self.ops);
    }
}

impl<M: Model> std::fmt::Debug for ThreadLog<'_, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadLog")
            .field("id", &self.id)
            .field("operations", &self.ops.len())
            .finish_non_exhaustive()
    }
}
