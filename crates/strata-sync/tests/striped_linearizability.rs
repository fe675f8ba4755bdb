//! Linearizability of `StripedMap`'s keyed operations (`get_cloned`, `insert`,
//! `remove`), checked with strata-check's `MapModel` (which splits a history key by key)
//! on recorded runs of 2, 3 and 4 threads. A planted non-atomic insert shows that the
//! harness does catch a broken map.

use std::sync::Barrier;
use std::thread;

use strata_check::models::{MapModel, MapOp, MapRet};
use strata_check::{Budget, Recorder, Violation, check};
use strata_sync::striped::StripedMap;

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Runs one round: `threads` threads started together, each doing `ops` random
/// operations on 4 keys (values distinct per operation), each operation yielding first
/// inside its recorded interval so the threads interleave. `apply` runs an operation on
/// the map under test.
fn round(
    threads: usize,
    ops: usize,
    seed: u64,
    apply: &(dyn Fn(MapOp) -> MapRet + Sync),
) -> Result<strata_check::Report, Violation<MapModel>> {
    let recorder = Recorder::<MapModel>::new(threads);
    let start = Barrier::new(threads);
    thread::scope(|s| {
        for t in 0..threads {
            let mut log = recorder.thread(t);
            let start = &start;
            s.spawn(move || {
                let mut rng = Rng::new(seed * 16 + t as u64);
                start.wait();
                for i in 0..ops {
                    let r = rng.next();
                    let key = r % 4;
                    let op = match (r >> 8) % 3 {
                        0 => MapOp::Get(key),
                        1 => MapOp::Insert(key, (t * 1000 + i) as u64 + 1),
                        _ => MapOp::Remove(key),
                    };
                    log.call(op, || {
                        thread::yield_now();
                        apply(op)
                    });
                }
            });
        }
    });
    check(&MapModel, &recorder.into_history(), Budget::default())
}

/// Runs an operation on a `StripedMap`.
fn on_striped(map: &StripedMap<u64, u64>, op: MapOp) -> MapRet {
    match op {
        MapOp::Get(k) => MapRet::Got(map.get_cloned(&k)),
        MapOp::Insert(k, v) => MapRet::Inserted(map.insert(k, v)),
        MapOp::Remove(k) => MapRet::Removed(map.remove(&k).map(|(_, v)| v)),
    }
}

#[test]
#[cfg_attr(miri, ignore)]
fn keyed_operations_are_linearizable() {
    for threads in [2, 3, 4] {
        let (mut checked, mut overlapping) = (0, 0);
        for seed in 0..30 {
            if checked == 10 {
                break;
            }
            // Two shards: the 4 keys share shards, so operations on different keys also
            // contend for one lock.
            let map = StripedMap::<u64, u64>::with_shards(2);
            match round(threads, 40, seed, &|op| on_striped(&map, op)) {
                Ok(report) => {
                    checked += 1;
                    overlapping += report.overlapping;
                }
                Err(Violation::NoOverlap { .. }) => {}
                Err(e) => panic!("{threads} threads, seed {seed}:\n{e}"),
            }
        }
        assert!(
            checked == 10,
            "{threads} threads: only {checked} rounds overlapped"
        );
        assert!(overlapping > 0);
    }
}

/// The harness fails a map whose insert reads the old value and writes the new one under
/// two separate lock acquisitions (two inserts of one key can then both report the same
/// previous value).
#[test]
#[cfg_attr(miri, ignore)]
fn harness_catches_a_non_atomic_insert() {
    let mut caught = false;
    for seed in 0..200 {
        let map = StripedMap::<u64, u64>::with_shards(2);
        let broken = |op| match op {
            MapOp::Insert(k, v) => {
                let old = map.get_cloned(&k);
                thread::yield_now();
                map.insert(k, v);
                MapRet::Inserted(old)
            }
            other => on_striped(&map, other),
        };
        match round(2, 60, seed, &broken) {
            Err(e) if e.is_not_linearizable() => {
                caught = true;
                break;
            }
            Ok(_) | Err(Violation::NoOverlap { .. }) => {}
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    assert!(caught, "the planted race was never detected");
}
