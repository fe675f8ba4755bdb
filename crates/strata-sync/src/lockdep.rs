//! A runtime lock-order validator (in the spirit of Linux's lockdep), for locks whose
//! order is only known at run time.
//!
//! Each tracked lock owns a [`LockClass`]. The lock calls the class's hooks:
//! [`before_acquire`](LockClass::before_acquire) before a blocking acquisition,
//! [`acquired`](LockClass::acquired) once it holds the lock (also after a successful
//! try-lock), and [`release`](LockClass::release) when it lets go. The validator keeps,
//! for every thread, the stack of tracked locks it holds, and, across all threads, the
//! *acquired-before* graph: an edge `H → N` means "some thread acquired `N` while
//! holding `H`", remembering where `H` had been acquired and where `N` was. When a
//! blocking acquisition would add an edge that closes a cycle in that graph, the
//! validator reports a [`LockOrderViolation`] naming the cycle and, for each edge,
//! both acquisition sites (`file:line:column`, from `#[track_caller]`), **before** the
//! thread blocks.
//!
//! # What it detects
//!
//! Potential deadlocks from lock-order inversion between locks: a thread taking `A`
//! then `B` and another (or the same, later) taking `B` then `A` is reported at the
//! second order's first occurrence, even when the two never overlap in the run and so
//! never actually deadlock. Longer cycles (`A → B → C → A`) too, and a blocking
//! acquisition of a lock the thread already holds (a self-deadlock for a non-reentrant
//! lock). A correct program (one global order) is never reported: releasing and
//! re-acquiring adds no edge that was not there, and a dropped lock takes its edges
//! with it.
//!
//! # What it does not
//!
//! * Classes are per lock *instance*, not per creation site as in Linux's lockdep: two
//!   instances of "the same kind" of lock taken in opposite orders on disjoint data are
//!   distinct nodes, and an inversion is found only between the instances actually
//!   involved.
//! * Reads and writes are not distinguished: a shared (read) acquisition orders like an
//!   exclusive one. This is conservative: two readers taken in opposite orders are
//!   reported although readers alone never block each other (but with a
//!   writer-preferring lock a waiting writer can make them deadlock, so the report is
//!   not idle), and a recursive read acquisition is reported as a self-deadlock.
//! * A try-lock ([`acquired`](LockClass::acquired) without
//!   [`before_acquire`](LockClass::before_acquire)) adds no edge: it cannot block, so it
//!   cannot be the waiting side of a deadlock. The lock it takes is recorded as held,
//!   so later blocking acquisitions do order after it.
//! * Waits that are not tracked locks (condition variables, channels, joins, untracked
//!   locks) are invisible.
//! * The order is checked between locks actually held at the same time: `A` taken and
//!   released before `B` orders nothing.
//!
//! # Cost
//!
//! When a lock uses it: [`LockClass::new`] is `const` and allocates nothing; the id is
//! assigned on first use (one relaxed atomic read afterwards). `acquired`/`release` push
//! and pop a thread-local stack. `before_acquire` with no tracked lock held is one
//! thread-local read; with `k` locks held it looks up `k` edges in a thread-local cache
//! of edges already known, and only an edge not yet seen by this thread takes the global
//! graph's `std::sync::Mutex` (a process-wide serialization point) and a breadth-first
//! search from the new lock, `O(V + E)`. Dropping a class takes the global mutex to
//! remove its node. This is a debugging tool: it allocates, and its hooks are
//! blocking (they may wait for the global mutex, which is never held while user code or
//! a lock acquisition runs, so it cannot take part in a deadlock itself).
//!
//! Strata's own locks call these hooks only when the crate's `lockdep` feature is on;
//! with it off they contain no class and no call, so their cost is exactly the same as
//! without this module.
//!
//! # Reports
//!
//! What happens on a violation is the process-wide [`Policy`], [`Policy::Panic`] by
//! default (the panic is raised at the acquisition site, before blocking).
//! [`Policy::Collect`] stores reports for [`take_violations`]; [`Policy::Handler`]
//! calls a function.
//!
//! # Example
//!
//! ```
//! use std::sync::Mutex;
//! use strata_sync::lockdep::{self, LockClass, Policy};
//!
//! /// A std mutex tracked by the validator.
//! struct Tracked<T> {
//!     class: LockClass,
//!     inner: Mutex<T>,
//! }
//!
//! impl<T> Tracked<T> {
//!     const fn new(value: T) -> Self {
//!         Self { class: LockClass::new(), inner: Mutex::new(value) }
//!     }
//!     #[track_caller]
//!     fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
//!         self.class.before_acquire();
//!         let mut guard = self.inner.lock().unwrap();
//!         self.class.acquired();
//!         let result = f(&mut guard);
//!         drop(guard);
//!         self.class.release();
//!         result
//!     }
//! }
//!
//! lockdep::set_policy(Policy::Collect);
//! let a = Tracked::new(0);
//! let b = Tracked::new(0);
//! a.with(|_| b.with(|_| ())); // a, then b
//! assert!(lockdep::take_violations().is_empty());
//! b.with(|_| a.with(|_| ())); // b, then a: reported, although nothing deadlocked
//! let reports = lockdep::take_violations();
//! assert_eq!(reports.len(), 1);
//! assert_eq!(reports[0].locks(), vec![b.class.id(), a.class.id()]);
//! println!("{}", reports[0]);
//! ```

use core::fmt;
use core::num::NonZeroU64;
// The id counters are core atomics, not the shim's: `LockClass::new` must be `const`
// (loom's atomics are not), and an id publishes no data (only its value matters, and a
// single atomic's modification order is enough for that).
use core::sync::atomic::{AtomicU64, Ordering};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashSet, VecDeque};
use std::panic::Location;
// The graph, the policy and the collected reports are process-wide statics behind std's
// mutex, also under `strata_loom`: loom's locks cannot be built in a `static`, and no
// loom operation runs while one of these is held, so they never block a modelled thread
// across a model switch. The per-thread stack below does use the shim's
// `thread_local!`, so that loom's modelled threads (which share one OS thread) each
// have their own.
use std::sync::{Mutex as StdMutex, MutexGuard as StdMutexGuard, PoisonError};

type Site = &'static Location<'static>;

/// The identity of a tracked lock: assigned on the class's first use, never reused in
/// the process (so an edge of a dropped lock can never be mistaken for a new one's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LockId(NonZeroU64);

impl LockId {
    /// The number (1, 2, ...).
    pub fn get(self) -> u64 {
        self.0.get()
    }
}

impl fmt::Display for LockId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lock #{}", self.0)
    }
}

/// The next id to hand out; 0 is "not assigned yet" in [`LockClass`].
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A node of the acquired-before graph: embed one in each tracked lock and call its
/// hooks around acquisitions and releases.
///
/// Dropping the class (with its lock) removes the node and its edges.
#[derive(Debug)]
pub struct LockClass {
    id: AtomicU64,
}

impl Default for LockClass {
    fn default() -> Self {
        Self::new()
    }
}

impl LockClass {
    /// A class with no id yet (one is assigned on first use), so that a lock's
    /// `const fn new` can hold one.
    pub const fn new() -> Self {
        Self {
            id: AtomicU64::new(0),
        }
    }

    /// This lock's id (assigned now if it has none yet).
    pub fn id(&self) -> LockId {
        let id = self.raw_id();
        LockId(NonZeroU64::new(id).unwrap_or(NonZeroU64::MIN))
    }

    fn raw_id(&self) -> u64 {
        let id = self.id.load(Ordering::Relaxed);
        if id != 0 {
            return id;
        }
        // A wrap of a 64-bit counter (2^64 classes) is not reachable in practice.
        let fresh = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => fresh,
            // Another thread assigned one first: use it (`fresh` is simply never used).
            Err(winner) => winner,
        }
    }

    /// Call before a **blocking** acquisition of this lock. For every tracked lock the
    /// current thread holds, records the edge "held, then this", with the caller's
    /// location as this acquisition's site; if an edge closes a cycle in the graph of
    /// all threads, reports it (per the [`Policy`]) before returning, so before the
    /// caller blocks. An edge that closes a cycle is not added, so later checks still
    /// see an acyclic graph.
    ///
    /// # Panics
    ///
    /// Under [`Policy::Panic`] (the default), on a violation, with the report as the
    /// message and the caller's location.
    #[track_caller]
    pub fn before_acquire(&self) {
        let site = Location::caller();
        let id = self.raw_id();
        let candidates = THREAD
            .try_with(|state| {
                let state = state.borrow();
                let mut out: Vec<(u64, Site)> = Vec::new();
                for &(held, held_at) in &state.held {
                    let seen = out.iter().any(|&(h, _)| h == held);
                    if !seen && !state.known.contains(&(held, id)) {
                        out.push((held, held_at));
                    }
                }
                out
            })
            // During thread teardown the stack is gone: nothing to check against.
            .unwrap_or_default();
        if candidates.is_empty() {
            return;
        }
        let mut violations = Vec::new();
        let mut added = Vec::new();
        {
            let mut graph = lock_ignoring_poison(&GRAPH);
            for (held, held_at) in candidates {
                let attempt = OrderEdge {
                    held: to_id(held),
                    held_at,
                    acquired: to_id(id),
                    acquired_at: site,
                };
                if held == id {
                    // Blocking on a lock this thread holds: a cycle of one.
                    violations.push(LockOrderViolation {
                        edges: vec![attempt],
                    });
                } else if graph.has_edge(held, id) {
                    added.push((held, id));
                } else if let Some(path) = graph.path(id, held) {
                    let mut edges = Vec::with_capacity(path.len() + 1);
                    edges.push(attempt);
                    edges.extend(path);
                    violations.push(LockOrderViolation { edges });
                } else {
                    graph.add_edge(held, id, held_at, site);
                    added.push((held, id));
                }
            }
        }
        if !added.is_empty() {
            let _ = THREAD.try_with(|state| state.borrow_mut().known.extend(added));
        }
        for violation in violations {
            report(violation);
        }
    }

    /// Call once this thread holds the lock, after a blocking acquisition (preceded by
    /// [`before_acquire`](Self::before_acquire)) or a successful try-lock (alone: a
    /// try-lock cannot block, so it adds no ordering edge, but the lock is now held and
    /// later blocking acquisitions order after it). Records the caller's location as
    /// where the lock was taken.
    #[track_caller]
    pub fn acquired(&self) {
        let site = Location::caller();
        let id = self.raw_id();
        let _ = THREAD.try_with(|state| state.borrow_mut().held.push((id, site)));
    }

    /// [`before_acquire`](Self::before_acquire) then [`acquired`](Self::acquired), both
    /// at the caller's location: for a lock that takes its lock between the two, prefer
    /// the two calls (the report then comes before blocking).
    ///
    /// # Panics
    ///
    /// As [`before_acquire`](Self::before_acquire).
    #[track_caller]
    pub fn acquire(&self) {
        self.before_acquire();
        self.acquired();
    }

    /// Call when this thread releases the lock. Releases may come in any order: the most
    /// recent acquisition of this lock by this thread is the one forgotten. A release of
    /// a lock this thread does not hold is ignored, so a lock released by another thread
    /// than the one that acquired it (a guard that is `Send`) would stay on the
    /// acquirer's stack and order its later acquisitions after it: such locks should not
    /// use these hooks.
    pub fn release(&self) {
        let id = self.id.load(Ordering::Relaxed);
        if id == 0 {
            return;
        }
        let _ = THREAD.try_with(|state| {
            let mut state = state.borrow_mut();
            if let Some(at) = state.held.iter().rposition(|&(held, _)| held == id) {
                state.held.remove(at);
            }
        });
    }

    /// Whether the current thread holds this lock (as far as the hooks were told).
    pub fn is_held_by_current_thread(&self) -> bool {
        let id = self.id.load(Ordering::Relaxed);
        id != 0
            && THREAD
                .try_with(|state| state.borrow().held.iter().any(|&(held, _)| held == id))
                .unwrap_or(false)
    }
}

impl Drop for LockClass {
    fn drop(&mut self) {
        let id = *self.id.get_mut();
        if id != 0 {
            lock_ignoring_poison(&GRAPH).remove(id);
        }
    }
}

fn to_id(raw: u64) -> LockId {
    LockId(NonZeroU64::new(raw).unwrap_or(NonZeroU64::MIN))
}

/// One edge of a reported cycle: `acquired` was acquired at `acquired_at` while the
/// same thread held `held`, which it had acquired at `held_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct OrderEdge {
    /// The lock that was held.
    pub held: LockId,
    /// Where the held lock had been acquired.
    pub held_at: &'static Location<'static>,
    /// The lock acquired while holding `held`.
    pub acquired: LockId,
    /// Where it was acquired.
    pub acquired_at: &'static Location<'static>,
}

impl fmt::Display for OrderEdge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} acquired at {} while holding {} (acquired at {})",
            self.acquired, self.acquired_at, self.held, self.held_at
        )
    }
}

/// A cycle in the acquired-before graph: a potential deadlock.
///
/// [`edges`](Self::edges)`[0]` is the acquisition being attempted (held `H`, acquiring
/// `N`); the following edges are the order recorded earlier, from `N` back to `H`, each
/// with the sites where it was first seen. For a blocking acquisition of a lock the
/// thread already holds, the cycle is that single edge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockOrderViolation {
    edges: Vec<OrderEdge>,
}

impl LockOrderViolation {
    /// The edges of the cycle, the attempted acquisition first.
    pub fn edges(&self) -> &[OrderEdge] {
        &self.edges
    }

    /// The attempted acquisition that closed the cycle.
    pub fn attempt(&self) -> &OrderEdge {
        &self.edges[0]
    }

    /// The locks of the cycle in order, starting with the held lock of the attempt:
    /// `[H, N, ...]` for `H → N → ... → H`.
    pub fn locks(&self) -> Vec<LockId> {
        self.edges.iter().map(|e| e.held).collect()
    }

    /// Whether `id` is on the cycle.
    pub fn involves(&self, id: LockId) -> bool {
        self.edges.iter().any(|e| e.held == id)
    }
}

impl fmt::Display for LockOrderViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let attempt = self.attempt();
        if self.edges.len() == 1 {
            return write!(
                f,
                "lock order violation: {} is acquired at {} while this thread already holds it (acquired at {})",
                attempt.acquired, attempt.acquired_at, attempt.held_at
            );
        }
        write!(
            f,
            "lock order violation: a cycle of {} locks in the acquired-before graph",
            self.edges.len()
        )?;
        write!(f, "\n  now:     {attempt}")?;
        for edge in &self.edges[1..] {
            write!(f, "\n  earlier: {edge}")?;
        }
        Ok(())
    }
}

impl std::error::Error for LockOrderViolation {}

/// What the validator does with a [`LockOrderViolation`] (process-wide).
#[derive(Debug, Clone, Copy, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Panic at the acquisition site, before blocking, with the report as the message
    /// (the default). On a thread that is already panicking (a lock taken in a `Drop`
    /// during unwinding), the report is printed to standard error instead, since a
    /// second panic would abort.
    #[default]
    Panic,
    /// Store the report, to be read with [`take_violations`], and go on.
    Collect,
    /// Call this function with the report, and go on (unless it panics).
    Handler(fn(&LockOrderViolation)),
}

static POLICY: StdMutex<Policy> = StdMutex::new(Policy::Panic);
static COLLECTED: StdMutex<Vec<LockOrderViolation>> = StdMutex::new(Vec::new());

/// Sets the process-wide policy; returns the previous one.
pub fn set_policy(policy: Policy) -> Policy {
    core::mem::replace(&mut *lock_ignoring_poison(&POLICY), policy)
}

/// The process-wide policy.
pub fn policy() -> Policy {
    *lock_ignoring_poison(&POLICY)
}

/// Takes the reports stored under [`Policy::Collect`] so far (they are kept until
/// taken).
pub fn take_violations() -> Vec<LockOrderViolation> {
    core::mem::take(&mut *lock_ignoring_poison(&COLLECTED))
}

#[track_caller]
fn report(violation: LockOrderViolation) {
    match policy() {
        // A second panic while unwinding would abort the process: print instead.
        Policy::Panic if std::thread::panicking() => {
            eprintln!("{violation} (not raised: this thread is already panicking)");
        }
        Policy::Panic => panic!("{violation}"),
        Policy::Collect => lock_ignoring_poison(&COLLECTED).push(violation),
        Policy::Handler(handler) => handler(&violation),
    }
}

/// The validator's mutexes guard plain bookkeeping that a panic cannot leave half
/// updated (no panic happens while they are held), so poisoning is ignored.
fn lock_ignoring_poison<T>(mutex: &StdMutex<T>) -> StdMutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Per-thread state: the tracked locks held, with where each was acquired, and the
/// edges this thread already knows to be in the graph.
#[derive(Default)]
struct ThreadState {
    held: Vec<(u64, Site)>,
    // An edge stays valid while both its locks live; once one is dropped its id never
    // comes back, so a stale entry can never match again.
    known: HashSet<(u64, u64)>,
}

#[cfg(not(strata_weaken))]
strata_primitives::thread_local! {
    static THREAD: RefCell<ThreadState> = RefCell::new(ThreadState::default());
}

// The planted bug of the test-only `--cfg strata_weaken`: std's thread-local instead of
// the shim's. Under loom every modelled thread runs on one OS thread, so they would share
// one held stack, and a lock held by one would seem held by the other: the loom model
// `per_thread_stacks_under_loom` then sees a false cycle.
#[cfg(strata_weaken)]
std::thread_local! {
    static THREAD: RefCell<ThreadState> = RefCell::new(ThreadState::default());
}

struct EdgeSites {
    held_at: Site,
    acquired_at: Site,
}

#[derive(Default)]
struct Node {
    out: BTreeMap<u64, EdgeSites>,
    into: BTreeSet<u64>,
}

struct Graph {
    nodes: BTreeMap<u64, Node>,
}

static GRAPH: StdMutex<Graph> = StdMutex::new(Graph {
    nodes: BTreeMap::new(),
});

impl Graph {
    fn has_edge(&self, from: u64, to: u64) -> bool {
        self.nodes
            .get(&from)
            .is_some_and(|node| node.out.contains_key(&to))
    }

    fn add_edge(&mut self, from: u64, to: u64, held_at: Site, acquired_at: Site) {
        self.nodes.entry(from).or_default().out.insert(
            to,
            EdgeSites {
                held_at,
                acquired_at,
            },
        );
        self.nodes.entry(to).or_default().into.insert(from);
    }

    /// A path `from → ... → to` (breadth-first, so a shortest one), as edges.
    fn path(&self, from: u64, to: u64) -> Option<Vec<OrderEdge>> {
        let mut parent: BTreeMap<u64, u64> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        parent.insert(from, from);
        while let Some(at) = queue.pop_front() {
            if at == to {
                let mut edges = Vec::new();
                let mut node = to;
                while node != from {
                    let prev = parent[&node];
                    let sites = &self.nodes[&prev].out[&node];
                    edges.push(OrderEdge {
                        held: to_id(prev),
                        held_at: sites.held_at,
                        acquired: to_id(node),
                        acquired_at: sites.acquired_at,
                    });
                    node = prev;
                }
                edges.reverse();
                return Some(edges);
            }
            if let Some(node) = self.nodes.get(&at) {
                for &next in node.out.keys() {
                    if let std::collections::btree_map::Entry::Vacant(slot) = parent.entry(next) {
                        slot.insert(at);
                        queue.push_back(next);
                    }
                }
            }
        }
        None
    }

    fn remove(&mut self, id: u64) {
        if let Some(node) = self.nodes.remove(&id) {
            for to in node.out.keys() {
                if let Some(n) = self.nodes.get_mut(to) {
                    n.into.remove(&id);
                }
            }
            for from in &node.into {
                if let Some(n) = self.nodes.get_mut(from) {
                    n.out.remove(&id);
                }
            }
        }
    }

    #[cfg(all(test, not(strata_loom)))]
    fn contains(&self, id: u64) -> bool {
        self.nodes.contains_key(&id)
    }
}

#[cfg(all(test, not(strata_loom)))]
fn graph_contains(id: LockId) -> bool {
    lock_ignoring_poison(&GRAPH).contains(id.get())
}

#[cfg(all(test, not(strata_loom)))]
fn graph_has_edge(from: LockId, to: LockId) -> bool {
    lock_ignoring_poison(&GRAPH).has_edge(from.get(), to.get())
}

#[cfg(test)]
#[path = "lockdep_tests.rs"]
mod tests;
