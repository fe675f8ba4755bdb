//! The harness: the types workloads are written against, the thread starter, the
//! runner that interleaves implementations run by run, and the statistics.
//!
//! A workload module registers [`Workload`]s, each with one [`Impl`] per implementation
//! (Strata's, each peer's, or a physical-limit baseline). An implementation's `timed`
//! closure usually builds its structure and then calls [`timed_threads`] with a body
//! that loops over [`repeat_until`]:
//!
//! ```
//! use std::hint::black_box;
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::time::Duration;
//! use strata_bench::harness::{BATCH, Impl, Kind, Workload, repeat_until, timed_threads};
//! use strata_primitives::CachePadded;
//!
//! let w = Workload {
//!     name: "example/load",
//!     help: "Every thread loads one shared counter.",
//!     unit: "ops/s",
//!     min_threads: 1,
//!     max_threads: None,
//!     spread: false,
//!     impls: vec![Impl::new("load", Kind::Limit, |threads, duration| {
//!         let x = CachePadded::new(AtomicU64::new(0));
//!         timed_threads(threads, duration, |_thread, stop| {
//!             repeat_until(stop, BATCH, || {
//!                 black_box(x.load(Ordering::Relaxed));
//!             })
//!         })
//!     })],
//! };
//! let sample = (w.impls[0].timed)(2, Duration::from_millis(2));
//! assert!(sample.ops > 0);
//! ```
//!
//! The harness uses `std`'s atomics and threads directly, not the `strata_primitives`
//! shim: it is measurement machinery and is never built under `--cfg strata_loom`.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Barrier;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use strata_primitives::CachePadded;

/// Which side of a comparison an implementation is on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Strata's own implementation: the numerator of every ratio.
    Strata,
    /// A peer crate's implementation: the denominator of every ratio.
    Peer,
    /// A physical-limit baseline (a bare `fetch_add`): shown in tables and plots, never
    /// part of a ratio.
    Limit,
}

impl Kind {
    /// The lower-case name used in CSV files and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Strata => "strata",
            Kind::Peer => "peer",
            Kind::Limit => "limit",
        }
    }

    /// The inverse of [`Kind::as_str`].
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "strata" => Some(Kind::Strata),
            "peer" => Some(Kind::Peer),
            "limit" => Some(Kind::Limit),
            _ => None,
        }
    }
}

/// One timed measurement: how many operations were done in how long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Operations completed, summed over all threads.
    pub ops: u64,
    /// Wall-clock time from the start barrier's release to the last join.
    pub elapsed: Duration,
    /// The smallest and the largest operation count of one thread, when the sample
    /// comes from [`timed_threads`] with at least two threads; `None` otherwise.
    pub per_thread: Option<(u64, u64)>,
}

impl Sample {
    /// A sample without per-thread counts.
    pub fn new(ops: u64, elapsed: Duration) -> Sample {
        Sample {
            ops,
            elapsed,
            per_thread: None,
        }
    }

    /// The fairness spread: the largest per-thread operation count ÷ the smallest
    /// (1.0 is perfectly even; infinite if some thread did nothing). `None` without
    /// per-thread counts.
    pub fn spread(&self) -> Option<f64> {
        self.per_thread.map(|(min, max)| {
            if min == 0 {
                f64::INFINITY
            } else {
                max as f64 / min as f64
            }
        })
    }

    /// Throughput in operations per second (0 for an empty sample).
    pub fn ops_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ops as f64 / secs
        } else {
            0.0
        }
    }
}

/// The type of [`Impl::timed`].
pub type TimedFn = Box<dyn Fn(usize, Duration) -> Sample + Send + Sync>;
/// The type of [`Impl::fixed`].
pub type FixedFn = Box<dyn Fn(u64) + Send + Sync>;

/// One implementation of a workload.
///
/// Building an `Impl` must be cheap (the whole registry is built even for `--list`):
/// allocate the structure under test inside the closures, not outside them.
pub struct Impl {
    /// The implementation's name, e.g. `"strata-epoch"`, `"crossbeam-epoch"`.
    pub name: &'static str,
    /// Strata, a peer or a physical limit.
    pub kind: Kind,
    /// Run the workload on `threads` threads for about `duration`.
    pub timed: TimedFn,
    /// Run exactly `iters` operations on the calling thread (single-thread path, for
    /// callgrind); `None` if not applicable.
    pub fixed: Option<FixedFn>,
}

impl Impl {
    /// An implementation with a timed path and no fixed path.
    pub fn new(
        name: &'static str,
        kind: Kind,
        timed: impl Fn(usize, Duration) -> Sample + Send + Sync + 'static,
    ) -> Impl {
        Impl {
            name,
            kind,
            timed: Box::new(timed),
            fixed: None,
        }
    }

    /// Adds the fixed-iteration single-thread path used by `--callgrind`.
    pub fn with_fixed(mut self, fixed: impl Fn(u64) + Send + Sync + 'static) -> Impl {
        self.fixed = Some(Box::new(fixed));
        self
    }
}

/// A workload: one operation mix, run by every implementation.
pub struct Workload {
    /// `"group/name"`, e.g. `"baseline/fetch_add-shared"`, `"reclaim/pin"`.
    pub name: &'static str,
    /// One sentence, shown by `--help` and `--list`.
    pub help: &'static str,
    /// The unit of throughput, e.g. `"ops/s"`.
    pub unit: &'static str,
    /// 1, or 2 for two-role workloads (producer and consumer, owner and thief).
    pub min_threads: usize,
    /// `None`, or `Some(1)` for a workload that measures something only on one thread
    /// (a deque's owner alone): thread counts above it are skipped, as those below
    /// `min_threads` are.
    pub max_threads: Option<usize>,
    /// Whether to report the fairness spread ([`Sample::spread`]) beside throughput
    /// (for locks: how evenly the threads got the lock).
    pub spread: bool,
    /// The implementations, in the order they appear in tables and plots.
    pub impls: Vec<Impl>,
}

impl Workload {
    /// Whether the workload runs at `threads` threads: at least `min_threads` and at
    /// most `max_threads`, if set.
    pub fn runs_at(&self, threads: usize) -> bool {
        threads >= self.min_threads && self.max_threads.is_none_or(|max| threads <= max)
    }

    /// The implementation called `name`, if any.
    pub fn find_impl(&self, name: &str) -> Option<&Impl> {
        self.impls.iter().find(|i| i.name == name)
    }
}

/// How many operations a thread body does between two looks at the stop flag, for
/// operations of tens of nanoseconds.
pub const BATCH: u64 = 64;

/// Calls `op` in batches of `batch` until `stop` is set; returns the number of calls.
///
/// The stop flag is read after each batch, so a slow operation should use a small batch
/// (a batch of 0 is taken as 1). At least one batch always runs: on an oversubscribed
/// machine a thread can be scheduled only after a short measurement's stop flag was
/// set, and a thread that did nothing would make the sample report 0 operations (its
/// batch still falls inside the measured time, which runs to the last join). `op` must
/// pass its results through [`std::hint::black_box`].
#[inline]
pub fn repeat_until(stop: &AtomicBool, batch: u64, mut op: impl FnMut()) -> u64 {
    let batch = batch.max(1);
    let mut ops = 0u64;
    loop {
        for _ in 0..batch {
            op();
        }
        ops += batch;
        if stop.load(Ordering::Relaxed) {
            return ops;
        }
    }
}

/// Starts `threads` threads (in a [`std::thread::scope`]) that wait at a [`Barrier`];
/// the clock starts when the barrier releases (the earliest time any thread, the caller
/// included, is seen past it); each thread runs
/// `body(thread_index, &stop)`, which loops until `stop` is set (checking it every small
/// batch of operations, see [`repeat_until`]) and returns its operation count; the
/// calling thread sleeps `duration`, sets `stop` and joins, and the elapsed time runs
/// from the barrier release to the last join. Returns the total operations and the
/// elapsed time.
///
/// If a thread panics, the others are still stopped and joined and then the panic is
/// resumed on the calling thread. With `threads == 0` nothing runs and the sample is
/// empty.
pub fn timed_threads<F: Fn(usize, &AtomicBool) -> u64 + Sync>(
    threads: usize,
    duration: Duration,
    body: F,
) -> Sample {
    if threads == 0 {
        return Sample::new(0, Duration::ZERO);
    }
    // Padded so that polling the flag never shares a line with the structure under test.
    let stop = CachePadded::new(AtomicBool::new(false));
    let barrier = Barrier::new(threads + 1);
    // The clock starts at the barrier's release, as seen by the first thread through it
    // (nanoseconds after `base`). The calling thread cannot take that time itself: once
    // oversubscribed it may be scheduled milliseconds after the workers start.
    let base = Instant::now();
    let released = AtomicU64::new(u64::MAX);
    let pass_barrier = || {
        barrier.wait();
        let ns = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        released.fetch_min(ns, Ordering::Relaxed);
    };
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let (body, stop, pass_barrier) = (&body, &*stop, &pass_barrier);
                s.spawn(move || {
                    pass_barrier();
                    body(i, stop)
                })
            })
            .collect();
        pass_barrier();
        let start = base + Duration::from_nanos(released.load(Ordering::Relaxed));
        thread::sleep(duration.saturating_sub(start.elapsed()));
        stop.store(true, Ordering::Relaxed);
        let mut ops = 0u64;
        let (mut min, mut max) = (u64::MAX, 0u64);
        let mut panicked: Option<Box<dyn Any + Send>> = None;
        for h in handles {
            match h.join() {
                Ok(n) => {
                    ops = ops.saturating_add(n);
                    min = min.min(n);
                    max = max.max(n);
                }
                Err(payload) => {
                    panicked.get_or_insert(payload);
                }
            }
        }
        // Every thread has passed the barrier now, so `released` is final.
        let start = base + Duration::from_nanos(released.load(Ordering::Relaxed));
        let elapsed = start.elapsed();
        if let Some(payload) = panicked {
            panic::resume_unwind(payload);
        }
        Sample {
            ops,
            elapsed,
            per_thread: (threads >= 2).then_some((min, max)),
        }
    })
}

/// Median, minimum and maximum of a set of runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    /// Number of runs the figures are taken over.
    pub runs: usize,
    /// The median (mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

/// The statistics of `values`; `None` when empty.
pub fn stats(values: &[f64]) -> Option<Stats> {
    if values.is_empty() {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some(Stats {
        runs: n,
        median,
        min: v[0],
        max: v[n - 1],
    })
}

/// The result for one (workload, implementation, thread count).
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Workload name.
    pub workload: String,
    /// Implementation name.
    pub impl_name: String,
    /// Implementation kind.
    pub kind: Kind,
    /// Thread count.
    pub threads: usize,
    /// More threads than available cores.
    pub oversubscribed: bool,
    /// Throughput statistics over the runs, in `unit`.
    pub stats: Stats,
    /// Unit of the throughput figures.
    pub unit: String,
    /// The median fairness spread over the runs ([`Sample::spread`]), for workloads
    /// that report it.
    pub spread: Option<f64>,
}

/// Strata ÷ peer median throughput at one thread count.
#[derive(Clone, Debug, PartialEq)]
pub struct Ratio {
    /// Workload name.
    pub workload: String,
    /// Thread count.
    pub threads: usize,
    /// More threads than available cores.
    pub oversubscribed: bool,
    /// The Strata implementation (numerator).
    pub strata_impl: String,
    /// The peer implementation (denominator).
    pub peer_impl: String,
    /// Strata's median ÷ the peer's median (higher is better).
    pub ratio: f64,
}

/// A median ratio of at least this much is parity.
pub const PARITY: f64 = 0.95;

impl Ratio {
    /// Whether this ratio is at parity or better.
    pub fn is_parity(&self) -> bool {
        self.ratio >= PARITY
    }
}

/// Every Strata ÷ peer ratio in `rows`, per (workload, thread count), in the order the
/// rows come. Limit implementations take no part; a peer with a zero median is skipped.
pub fn ratios(rows: &[Row]) -> Vec<Ratio> {
    let mut groups: Vec<(&str, usize)> = Vec::new();
    for r in rows {
        let key = (r.workload.as_str(), r.threads);
        if !groups.contains(&key) {
            groups.push(key);
        }
    }
    let mut out = Vec::new();
    for (workload, threads) in groups {
        let group: Vec<&Row> = rows
            .iter()
            .filter(|r| r.workload == workload && r.threads == threads)
            .collect();
        for s in group.iter().filter(|r| r.kind == Kind::Strata) {
            for p in group.iter().filter(|r| r.kind == Kind::Peer) {
                if p.stats.median > 0.0 {
                    out.push(Ratio {
                        workload: workload.to_owned(),
                        threads,
                        oversubscribed: s.oversubscribed || p.oversubscribed,
                        strata_impl: s.impl_name.clone(),
                        peer_impl: p.impl_name.clone(),
                        ratio: s.stats.median / p.stats.median,
                    });
                }
            }
        }
    }
    out
}

/// What the runner does and how long.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Thread counts, ascending.
    pub threads: Vec<usize>,
    /// Duration of one measurement.
    pub duration: Duration,
    /// Measured rounds (each runs every implementation once).
    pub runs: usize,
    /// Whether to run every implementation once, discarded, before the rounds.
    pub warmup: bool,
    /// Available cores: thread counts above this are oversubscribed.
    pub cores: usize,
}

/// The number of cores this process may run on (1 if unknown).
pub fn available_cores() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// The workloads whose name contains `filter`, or one of its comma-separated parts
/// (all of them without a filter).
pub fn select<'a>(workloads: &'a [Workload], filter: Option<&str>) -> Vec<&'a Workload> {
    workloads
        .iter()
        .filter(|w| filter.is_none_or(|f| f.split(',').any(|part| w.name.contains(part))))
        .collect()
}

/// How much a run will do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Timed measurements, warm-ups included.
    pub measurements: usize,
    /// Estimated wall-clock time.
    pub estimated: Duration,
}

/// The measurement count and an estimate of the wall-clock time of [`run`].
pub fn plan(workloads: &[&Workload], cfg: &RunConfig) -> Plan {
    let per_impl = cfg.runs + usize::from(cfg.warmup);
    let mut measurements = 0usize;
    let mut estimated = Duration::ZERO;
    for w in workloads {
        for &t in cfg.threads.iter().filter(|&&t| w.runs_at(t)) {
            let n = w.impls.len() * per_impl;
            measurements += n;
            // Thread start-up, the barrier and the joins: about 1 ms plus 50 µs a thread.
            let overhead = Duration::from_micros(1000 + 50 * t as u64);
            estimated += (cfg.duration + overhead) * n as u32;
        }
    }
    Plan {
        measurements,
        estimated,
    }
}

/// Progress reports from [`run`].
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A measurement is about to start.
    Start {
        /// Workload name.
        workload: &'a str,
        /// Implementation name.
        impl_name: &'a str,
        /// Thread count.
        threads: usize,
        /// `None` for the warm-up, else the round (from 0).
        round: Option<usize>,
    },
    /// The measurement just started has finished.
    Done,
}

/// A measurement that panicked or did no operations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Workload name.
    pub workload: String,
    /// Implementation name.
    pub impl_name: String,
    /// Thread count.
    pub threads: usize,
    /// What went wrong.
    pub what: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} / {} at {} thread(s): {}",
            self.workload, self.impl_name, self.threads, self.what
        )
    }
}

/// Everything a run produced.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// One row per (workload, implementation, thread count) with at least one good run.
    pub rows: Vec<Row>,
    /// Measurements that panicked or returned 0 operations (at most one per
    /// (workload, implementation, thread count): a failed implementation is skipped for
    /// the rest of that thread count).
    pub failures: Vec<Failure>,
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Runs one measurement, turning a panic or a zero count into an error.
pub fn measure(imp: &Impl, threads: usize, duration: Duration) -> Result<Sample, String> {
    match panic::catch_unwind(AssertUnwindSafe(|| (imp.timed)(threads, duration))) {
        Ok(s) if s.ops == 0 => Err("returned 0 operations".to_owned()),
        Ok(s) => Ok(s),
        Err(payload) => Err(format!("panicked: {}", panic_message(&*payload))),
    }
}

/// Runs the workloads following the method of DESIGN.md: for each workload and each
/// thread count it runs at ([`Workload::runs_at`]), every implementation once as a
/// discarded warm-up, then `runs` rounds that each run every implementation once,
/// interleaved, the start order rotating by one each round.
pub fn run(
    workloads: &[&Workload],
    cfg: &RunConfig,
    mut on_event: impl FnMut(Event<'_>),
) -> Results {
    let mut results = Results::default();
    for w in workloads {
        for &threads in cfg.threads.iter().filter(|&&t| w.runs_at(t)) {
            let n = w.impls.len();
            let mut samples: Vec<Vec<f64>> = vec![Vec::new(); n];
            let mut spreads: Vec<Vec<f64>> = vec![Vec::new(); n];
            let mut failed = vec![false; n];
            let rounds = (0..n)
                .map(|i| (None, i))
                .filter(|_| cfg.warmup)
                .chain((0..cfg.runs).flat_map(|r| (0..n).map(move |k| (Some(r), (r + k) % n))));
            for (round, i) in rounds {
                let imp = &w.impls[i];
                on_event(Event::Start {
                    workload: w.name,
                    impl_name: imp.name,
                    threads,
                    round,
                });
                if !failed[i] {
                    match measure(imp, threads, cfg.duration) {
                        Ok(s) => {
                            if round.is_some() {
                                samples[i].push(s.ops_per_sec());
                                if let Some(spread) = s.spread().filter(|_| w.spread) {
                                    spreads[i].push(spread);
                                }
                            }
                        }
                        Err(what) => {
                            failed[i] = true;
                            results.failures.push(Failure {
                                workload: w.name.to_owned(),
                                impl_name: imp.name.to_owned(),
                                threads,
                                what,
                            });
                        }
                    }
                }
                on_event(Event::Done);
            }
            for ((imp, s), sp) in w.impls.iter().zip(&samples).zip(&spreads) {
                if let Some(stats) = stats(s) {
                    results.rows.push(Row {
                        workload: w.name.to_owned(),
                        impl_name: imp.name.to_owned(),
                        kind: imp.kind,
                        threads,
                        oversubscribed: threads > cfg.cores,
                        stats,
                        unit: w.unit.to_owned(),
                        spread: self::stats(sp).map(|s| s.median),
                    });
                }
            }
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn stats_odd_even_and_empty() {
        let s = stats(&[5.0, 1.0, 3.0]).unwrap();
        assert_eq!((s.runs, s.median, s.min, s.max), (3, 3.0, 1.0, 5.0));
        let s = stats(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.runs, s.median, s.min, s.max), (4, 2.5, 1.0, 4.0));
        let s = stats(&[7.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (7.0, 7.0, 7.0));
        assert!(stats(&[]).is_none());
    }

    fn row(workload: &str, name: &str, kind: Kind, threads: usize, median: f64) -> Row {
        Row {
            workload: workload.into(),
            impl_name: name.into(),
            kind,
            threads,
            oversubscribed: threads > 2,
            stats: Stats {
                runs: 5,
                median,
                min: median,
                max: median,
            },
            unit: "ops/s".into(),
            spread: None,
        }
    }

    #[test]
    fn ratio_is_strata_over_each_peer_and_skips_limits() {
        let rows = vec![
            row("g/w", "s", Kind::Strata, 1, 90.0),
            row("g/w", "p1", Kind::Peer, 1, 100.0),
            row("g/w", "p2", Kind::Peer, 1, 45.0),
            row("g/w", "lim", Kind::Limit, 1, 1000.0),
            row("g/w", "zero", Kind::Peer, 1, 0.0),
            row("g/w", "s", Kind::Strata, 4, 50.0),
            row("g/w", "p1", Kind::Peer, 4, 100.0),
            row("g/x", "lim", Kind::Limit, 1, 1.0),
        ];
        let r = ratios(&rows);
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].peer_impl.as_str(), r[0].ratio), ("p1", 0.9));
        assert!(!r[0].is_parity());
        assert_eq!((r[1].peer_impl.as_str(), r[1].ratio), ("p2", 2.0));
        assert!(r[1].is_parity());
        assert_eq!(
            (r[2].threads, r[2].oversubscribed, r[2].ratio),
            (4, true, 0.5)
        );
        let exact = Ratio {
            ratio: PARITY,
            ..r[0].clone()
        };
        assert!(exact.is_parity());
    }

    #[test]
    fn timed_threads_counts_every_thread() {
        let seen = AtomicU64::new(0);
        let s = timed_threads(3, Duration::from_millis(5), |i, stop| {
            seen.fetch_or(1 << i, Ordering::Relaxed);
            repeat_until(stop, 4, || {
                std::hint::black_box(i);
            })
        });
        assert_eq!(seen.load(Ordering::Relaxed), 0b111);
        assert!(s.ops > 0 && s.ops % 4 == 0);
        assert!(s.elapsed >= Duration::from_millis(5));
    }

    #[test]
    fn runner_interleaves_rotates_and_computes_the_ratio() {
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let fake = |name: &'static str, kind, ops: u64| {
            let order = order.clone();
            Impl::new(name, kind, move |threads, duration| {
                order.lock().unwrap().push(name);
                // A real (tiny) timed run, then a deterministic figure.
                let s = timed_threads(threads, duration, |_, stop| repeat_until(stop, 1, || {}));
                assert!(s.ops > 0);
                Sample::new(ops * threads as u64, Duration::from_secs(1))
            })
        };
        let w = Workload {
            name: "fake/two",
            help: "Two fake implementations.",
            unit: "ops/s",
            min_threads: 1,
            max_threads: None,
            spread: false,
            impls: vec![
                fake("strata-x", Kind::Strata, 300),
                fake("peer-y", Kind::Peer, 200),
            ],
        };
        let cfg = RunConfig {
            threads: vec![1, 4],
            duration: Duration::from_millis(1),
            runs: 3,
            warmup: true,
            cores: 2,
        };
        let ws = [&w];
        let p = plan(&ws, &cfg);
        assert_eq!(p.measurements, 2 * 2 * 4);
        let mut events = 0;
        let res = run(&ws, &cfg, |e| {
            if let Event::Done = e {
                events += 1;
            }
        });
        assert_eq!(events, p.measurements);
        assert!(res.failures.is_empty());
        let per_threads: Vec<&str> = order.lock().unwrap()[..8].to_vec();
        // Warm-up, then rounds rotating the start.
        assert_eq!(
            per_threads,
            [
                "strata-x", "peer-y", "strata-x", "peer-y", "peer-y", "strata-x", "strata-x",
                "peer-y"
            ]
        );
        assert_eq!(res.rows.len(), 4);
        assert_eq!(res.rows[0].stats.median, 300.0);
        assert_eq!(res.rows[0].stats.runs, 3);
        assert!(!res.rows[0].oversubscribed && res.rows[2].oversubscribed);
        let r = ratios(&res.rows);
        assert_eq!(r.len(), 2);
        assert_eq!(
            (r[0].strata_impl.as_str(), r[0].peer_impl.as_str()),
            ("strata-x", "peer-y")
        );
        assert!((r[0].ratio - 1.5).abs() < 1e-12);
        assert_eq!((r[1].threads, r[1].oversubscribed), (4, true));
    }

    #[test]
    fn select_takes_comma_separated_substrings() {
        let w = |name| Workload {
            name,
            help: "x",
            unit: "ops/s",
            min_threads: 1,
            max_threads: None,
            spread: false,
            impls: Vec::new(),
        };
        let all = [w("lock/counter"), w("pool/get-put"), w("sync/counter")];
        let names = |f| select(&all, f).iter().map(|w| w.name).collect::<Vec<_>>();
        assert_eq!(names(Some("lock/,pool/")), ["lock/counter", "pool/get-put"]);
        assert_eq!(names(Some("counter")), ["lock/counter", "sync/counter"]);
        assert_eq!(names(None).len(), 3);
    }

    #[test]
    fn timed_threads_reports_the_per_thread_spread() {
        // Thread 0 does 3 operations per look at the flag, thread 1 does 1, and each
        // stops after 40 looks: the spread is exactly 3.
        let s = timed_threads(2, Duration::from_millis(1), |i, _stop| {
            let per = if i == 0 { 3 } else { 1 };
            (0..40).map(|_| per).sum()
        });
        assert_eq!(s.per_thread, Some((40, 120)));
        assert_eq!(s.spread(), Some(3.0));
        let one = timed_threads(1, Duration::from_millis(1), |_, _| 5);
        assert_eq!((one.per_thread, one.spread()), (None, None));
        let starved = Sample {
            per_thread: Some((0, 7)),
            ..Sample::new(7, Duration::from_millis(1))
        };
        assert_eq!(starved.spread(), Some(f64::INFINITY));
    }

    #[test]
    fn runner_keeps_to_the_thread_range() {
        let counted = |max_threads| Workload {
            name: "fake/range",
            help: "A workload with a thread range.",
            unit: "ops/s",
            min_threads: 2,
            max_threads,
            spread: false,
            impls: vec![Impl::new("one", Kind::Peer, |threads, duration| {
                timed_threads(threads, duration, |_, stop| repeat_until(stop, 1, || {}))
            })],
        };
        let cfg = RunConfig {
            threads: vec![1, 2, 4, 8],
            duration: Duration::from_millis(1),
            runs: 1,
            warmup: false,
            cores: 2,
        };
        for (max, expected) in [
            (None, vec![2, 4, 8]),
            (Some(4), vec![2, 4]),
            (Some(2), vec![2]),
        ] {
            let w = counted(max);
            let ran: Vec<usize> = cfg
                .threads
                .iter()
                .copied()
                .filter(|&t| w.runs_at(t))
                .collect();
            assert_eq!(ran, expected, "max {max:?}");
            assert_eq!(plan(&[&w], &cfg).measurements, expected.len());
            let res = run(&[&w], &cfg, |_| {});
            let rows: Vec<usize> = res.rows.iter().map(|r| r.threads).collect();
            assert_eq!(rows, expected, "max {max:?}");
        }
        let single = Workload {
            min_threads: 1,
            ..counted(Some(1))
        };
        assert!(single.runs_at(1) && !single.runs_at(2));
    }

    #[test]
    fn runner_reports_panics_and_zero_counts_once() {
        let w = Workload {
            name: "fake/bad",
            help: "Broken implementations.",
            unit: "ops/s",
            min_threads: 2,
            max_threads: None,
            spread: false,
            impls: vec![
                Impl::new("zero", Kind::Peer, |_, _| Sample::new(0, Duration::from_millis(1))),
                Impl::new("boom", Kind::Strata, |threads, duration| {
                    timed_threads(threads, duration, |i, _| {
                        if i == 1 {
                            panic!("deliberate test panic");
                        }
                        1
                    })
                }),
            ],
        };
        let cfg = RunConfig {
            threads: vec![1, 2],
            duration: Duration::from_millis(1),
            runs: 2,
            warmup: false,
            cores: 2,
        };
        let res = run(&[&w], &cfg, |_| {});
        assert!(res.rows.is_empty());
        assert_eq!(res.failures.len(), 2);
        assert_eq!(res.failures[0].what, "returned 0 operations");
        assert_eq!(res.failures[0].threads, 2);
        assert!(
            res.failures[1].what.contains("deliberate test panic"),
            "{:?}",
            res.failures[1]
        );
    }
}
