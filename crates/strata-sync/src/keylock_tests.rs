//! Loom models and unit tests of the per-key lock manager ([`crate::keylock`]).
//!
//! The models run under `--cfg strata_loom` on managers of 1 shard (so that different
//! keys also race on one shard's mutex) or 2 (the `lock_many` model, whose keys are on
//! different shards), and once as plain tests otherwise.
//! Under `--cfg strata_weaken` a release wakes waiters before it updates the entry (a
//! lost wake-up): every model in which a thread has to wait for a release then
//! deadlocks, and loom reports it (`should_panic(expected = "deadlock")`).
//!
//! Planted bugs caught (tried by hand, then reverted): a writer admitted while readers
//! hold the key (a causality violation in `loom_keylock_writer_woken_after_reader`, an
//! assertion in `loom_keylock_readers_share`), and an entry removed while waiters
//! exist (three models deadlock). Not caught by loom (it has no time): a timed-out
//! waiter that leaves without passing on the wake-up; the plain test
//! `timed_out_writer_wakes_readers` covers it.

// `std`'s `Arc` shares the test's objects with the model's threads: loom's `Arc` would
// also be fine, but dropping it while a model unwinds from a reported deadlock aborts
// the process instead of failing the test.
use std::sync::Arc;

use strata_primitives::cell::UnsafeCell;
use strata_primitives::{model, thread};

use crate::keylock::{KeyLockError, KeyLockManager, LockMode};

/// A counter that is read and written only by holders of a key lock: a data race on
/// it (two writers, or a writer and a reader, at once) is reported by loom's
/// `UnsafeCell` and by miri.
struct Guarded(UnsafeCell<u64>);

// SAFETY: `Guarded` is shared between threads only in these tests, where every access
// happens while the accessing thread holds the key lock that guards the counter:
// `bump` under the write lock, `get` under the read or the write lock. The key lock's
// mutual exclusion is what the tests check.
unsafe impl Sync for Guarded {}

impl Guarded {
    fn new() -> Self {
        Self(UnsafeCell::new(0))
    }

    /// Adds one with a separate read and write (a lost update if two writers overlap).
    /// The caller holds the guarding key's write lock.
    fn bump(&self) {
        // SAFETY: the caller holds the guarding key's write lock, so no other thread
        // reads or writes the counter meanwhile.
        let v = self.0.with(|p| unsafe { *p });
        // SAFETY: as above.
        self.0.with_mut(|p| unsafe { *p = v + 1 });
    }

    /// The value. The caller holds the guarding key's read or write lock.
    fn get(&self) -> u64 {
        // SAFETY: the caller holds the guarding key's read or write lock, so no thread
        // writes the counter meanwhile.
        self.0.with(|p| unsafe { *p })
    }
}

/// Creation vs removal: two threads take and release the write lock of one key while
/// a third takes another key of the same shard. Each writer's entry may be created by
/// either thread and removed by either; the counter shows the writers excluded each
/// other (a race would be reported by loom), and at the end the table is empty.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "deadlock"))]
fn loom_keylock_create_remove_exclusion() {
    model(|| {
        let m = Arc::new(KeyLockManager::<u32>::with_shards(1).unwrap());
        let c = Arc::new(Guarded::new());
        let (m1, c1) = (Arc::clone(&m), Arc::clone(&c));
        let same = thread::spawn(move || {
            let g = m1.write(&1);
            c1.bump();
            drop(g);
        });
        let m2 = Arc::clone(&m);
        let other = thread::spawn(move || {
            let g = m2.write(&2);
            assert_eq!(*g.key(), 2);
        });
        {
            let g = m.write(&1);
            c.bump();
            drop(g);
        }
        same.join().unwrap();
        other.join().unwrap();
        let g = m.read(&1);
        assert_eq!(c.get(), 2, "a writer's update was lost");
        drop(g);
        assert_eq!(m.live_keys(), 0, "entries must be removed once unused");
        assert_eq!(m.stats().acquisitions, 4);
    });
}

/// Read-read sharing: while the main thread holds a read lock, another thread's
/// `try_read` succeeds and its `try_write` fails, and the main thread's second
/// `try_read` races with them and succeeds too.
#[test]
fn loom_keylock_readers_share() {
    model(|| {
        let m = Arc::new(KeyLockManager::<u32>::with_shards(2).unwrap());
        let held = m.read(&7);
        let m1 = Arc::clone(&m);
        let t = thread::spawn(move || {
            let g = m1.try_read(&7).expect("a reader must not exclude a reader");
            assert_eq!(m1.try_write(&7).unwrap_err(), KeyLockError::WouldBlock);
            drop(g);
        });
        let again = m.try_read(&7).expect("a reader must not exclude a reader");
        drop(again);
        t.join().unwrap();
        assert_eq!(m.live_keys(), 1);
        drop(held);
        assert_eq!(m.live_keys(), 0);
        let s = m.stats();
        assert_eq!((s.acquisitions, s.would_block), (3, 1));
    });
}

/// No lost wake-up: a writer blocked behind a reader, and a reader blocked behind the
/// waiting writer (writer preference), both complete after the first reader leaves.
/// A lost wake-up leaves a thread asleep forever, which loom reports as a deadlock.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "deadlock"))]
fn loom_keylock_writer_woken_after_reader() {
    model(|| {
        let m = Arc::new(KeyLockManager::<u32>::with_shards(1).unwrap());
        let c = Arc::new(Guarded::new());
        let first = m.read(&1);
        let (m1, c1) = (Arc::clone(&m), Arc::clone(&c));
        let writer = thread::spawn(move || {
            let g = m1.write(&1);
            c1.bump();
            drop(g);
        });
        let (m2, c2) = (Arc::clone(&m), Arc::clone(&c));
        let reader = thread::spawn(move || {
            let g = m2.read(&1);
            let v = c2.get();
            drop(g);
            v
        });
        drop(first);
        writer.join().unwrap();
        let seen = reader.join().unwrap();
        assert!(seen <= 1);
        assert_eq!(m.live_keys(), 0);
    });
}

/// `lock_many` in opposite orders: one thread asks for (1 W, 2 W), the other for
/// (2 W, 1 R); both sort to key 1 first, so neither can hold 2 while waiting for 1.
/// Loom reports a deadlock if there is one; the counters show exclusion.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "deadlock"))]
fn loom_keylock_lock_many_opposite_orders() {
    model(|| {
        let m = Arc::new(KeyLockManager::<u32>::with_shards(2).unwrap());
        if strata_primitives::LOOM {
            // Under loom the shard hasher is fixed: the two keys are on different
            // shards, so the model crosses shard mutexes.
            assert_ne!(m.shard_of(&1), m.shard_of(&2));
        }
        let c = Arc::new(Guarded::new());
        let (m1, c1) = (Arc::clone(&m), Arc::clone(&c));
        let t = thread::spawn(move || {
            let g = m1.lock_many([(1, LockMode::Write), (2, LockMode::Write)]);
            c1.bump();
            drop(g);
        });
        {
            let g = m.lock_many([(2, LockMode::Write), (1, LockMode::Read)]);
            assert_eq!(g.mode(&1), Some(LockMode::Read));
            // Key 2 held for writing guards `c` here.
            c.bump();
            drop(g);
        }
        t.join().unwrap();
        let g = m.read(&2);
        assert_eq!(c.get(), 2);
        drop(g);
        assert_eq!(m.live_keys(), 0);
    });
}

/// Plain tests: real threads, timeouts and panics. They do not run under loom (loom's
/// primitives only work inside a model).
#[cfg(not(strata_loom))]
mod plain {
    use std::cell::Cell;
    use std::hash::{Hash, Hasher};
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::time::Duration;

    use super::*;
    use crate::keylock::{DEFAULT_SHARDS, MAX_SHARDS, ShardCountError};

    fn waiting(m: &KeyLockManager<u32>, key: u32) -> (usize, usize) {
        let map = m.shards[m.shard_of(&key)].lock();
        map.map
            .get(&key)
            .map_or((0, 0), |e| (e.waiting_readers, e.waiting_writers))
    }

    /// Spins (yielding) until `key` has `readers` waiting readers and `writers` waiting
    /// writers.
    fn await_waiting(m: &KeyLockManager<u32>, key: u32, want: (usize, usize)) {
        while waiting(m, key) != want {
            std::thread::yield_now();
        }
    }

    #[test]
    fn shard_counts() {
        assert_eq!(KeyLockManager::<u8>::new().shards(), DEFAULT_SHARDS);
        // 65536 shards take minutes under miri; the bound itself is checked below.
        let largest = if cfg!(miri) { 1024 } else { MAX_SHARDS };
        for ok in [1, 2, 64, largest] {
            assert_eq!(KeyLockManager::<u8>::with_shards(ok).unwrap().shards(), ok);
        }
        for bad in [0, 3, 100, MAX_SHARDS * 2, usize::MAX] {
            let e: ShardCountError = KeyLockManager::<u8>::with_shards(bad).unwrap_err();
            assert_eq!(e.requested(), bad);
            assert!(e.to_string().contains("power of two"));
        }
    }

    /// After a burst of many keys, the shard's map gives its memory back.
    #[test]
    fn table_shrinks_after_a_burst() {
        let n = if cfg!(miri) { 300 } else { 5000 };
        let m = KeyLockManager::<u32>::with_shards(1).unwrap();
        let guards: Vec<_> = (0..n).map(|k| m.write(&k)).collect();
        assert!(m.shards[0].lock().map.capacity() >= n as usize);
        assert_eq!(m.live_keys(), n as usize);
        drop(guards);
        assert_eq!(m.live_keys(), 0);
        let cap = m.shards[0].lock().map.capacity();
        assert!(cap <= 128, "capacity {cap} kept after the burst");
    }

    #[test]
    fn try_matrix() {
        let m = KeyLockManager::<u32>::with_shards(4).unwrap();
        let r = m.try_read(&1).unwrap();
        let r2 = m.try_read(&1).unwrap();
        assert_eq!(m.try_write(&1).unwrap_err(), KeyLockError::WouldBlock);
        drop((r, r2));
        let w = m.try_write(&1).unwrap();
        assert_eq!(*w.key(), 1);
        assert_eq!(m.try_read(&1).unwrap_err(), KeyLockError::WouldBlock);
        assert_eq!(m.try_write(&1).unwrap_err(), KeyLockError::WouldBlock);
        let other = m.try_write(&2).unwrap();
        assert_eq!(m.live_keys(), 2);
        drop((w, other));
        assert_eq!(m.live_keys(), 0);
        let s = m.stats();
        assert_eq!(
            (
                s.acquisitions,
                s.contended,
                s.would_block,
                s.timeouts,
                s.live_keys
            ),
            (4, 0, 3, 0, 0)
        );
        assert_eq!(s.contention_ratio(), 0.0);
        assert_eq!(KeyLockStats::default().contention_ratio(), 0.0);
    }

    use crate::keylock::KeyLockStats;

    #[test]
    fn timeouts_report_and_clean_up() {
        let m = KeyLockManager::<u32>::with_shards(1).unwrap();
        let w = m.write(&5);
        assert_eq!(
            m.try_read_for(&5, Duration::from_millis(5)).unwrap_err(),
            KeyLockError::Timeout
        );
        assert_eq!(
            m.try_write_for(&5, Duration::ZERO).unwrap_err(),
            KeyLockError::Timeout
        );
        assert_eq!(m.live_keys(), 1);
        assert_eq!(waiting(&m, 5), (0, 0), "timed-out waiters deregister");
        drop(w);
        assert_eq!(m.live_keys(), 0);
        assert_eq!(m.stats().timeouts, 2);
        // A timeout too long to represent on a free key does not panic.
        let g = m.try_write_for(&5, Duration::MAX).unwrap();
        drop(g);
        assert_eq!(m.live_keys(), 0);
    }

    /// A timed-out waiting writer passes the wake-up on: the main thread holds a read
    /// lock throughout; a reader that arrived while a writer waited is blocked only by
    /// that writer, and must be woken when the writer gives up. (Not a loom model: loom's
    /// timed waits never time out, and a zero timeout gives up without ever releasing
    /// the shard mutex, so no other thread could see the waiting writer.)
    #[test]
    fn timed_out_writer_wakes_readers() {
        let m = KeyLockManager::<u32>::with_shards(1).unwrap();
        let held = m.read(&1);
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|s| {
            let w = s.spawn(|| m.try_write_for(&1, Duration::from_secs(2)).map(drop));
            await_waiting(&m, 1, (0, 1));
            s.spawn(|| {
                drop(m.read(&1));
                tx.send(()).unwrap();
            });
            // The reader completes while `held` is still held: only the writer's
            // timeout can have woken it. (A generous bound that fails instead of
            // hanging, not a timing assertion.)
            rx.recv_timeout(Duration::from_secs(60))
                .expect("the reader was not woken when the writer gave up");
            assert_eq!(w.join().unwrap().unwrap_err(), KeyLockError::Timeout);
        });
        assert_eq!(m.live_keys(), 1);
        drop(held);
        assert_eq!(m.live_keys(), 0);
        let s = m.stats();
        assert_eq!((s.timeouts, s.acquisitions), (1, 2));
    }

    #[test]
    fn timed_wait_succeeds_when_released() {
        let m = KeyLockManager::<u32>::with_shards(1).unwrap();
        let w = m.write(&1);
        std::thread::scope(|s| {
            let t = s.spawn(|| m.try_read_for(&1, Duration::from_secs(60)).map(drop));
            await_waiting(&m, 1, (1, 0));
            drop(w);
            t.join().unwrap().unwrap();
        });
        assert_eq!(m.live_keys(), 0);
        let s = m.stats();
        assert_eq!((s.acquisitions, s.contended), (2, 1));
        assert_eq!(s.contention_ratio(), 0.5);
    }

    /// Writer preference: once a writer waits, new readers wait too (and `try_read`
    /// fails); the writer goes first when the reader leaves, then the reader.
    #[test]
    fn writer_preferred() {
        let m = KeyLockManager::<u32>::with_shards(1).unwrap();
        let order = std::sync::Mutex::new(Vec::new());
        let r = m.read(&1);
        std::thread::scope(|s| {
            s.spawn(|| {
                let _g = m.write(&1);
                order.lock().unwrap().push("writer");
            });
            await_waiting(&m, 1, (0, 1));
            assert_eq!(m.try_read(&1).unwrap_err(), KeyLockError::WouldBlock);
            s.spawn(|| {
                let _g = m.read(&1);
                order.lock().unwrap().push("reader");
            });
            await_waiting(&m, 1, (1, 1));
            drop(r);
        });
        assert_eq!(*order.lock().unwrap(), ["writer", "reader"]);
        assert_eq!(m.live_keys(), 0);
    }

    #[test]
    fn lock_many_merges_and_orders() {
        let m = KeyLockManager::<u32>::new();
        let g = m.lock_many([
            (9, LockMode::Read),
            (3, LockMode::Read),
            (9, LockMode::Write),
            (3, LockMode::Read),
            (1, LockMode::Write),
        ]);
        let held: Vec<(u32, LockMode)> = g.iter().map(|(k, md)| (*k, md)).collect();
        assert_eq!(
            held,
            [
                (1, LockMode::Write),
                (3, LockMode::Read),
                (9, LockMode::Write)
            ]
        );
        assert_eq!(g.mode(&4), None);
        assert!(m.try_read(&3).is_ok());
        assert_eq!(m.try_read(&9).unwrap_err(), KeyLockError::WouldBlock);
        assert_eq!(m.live_keys(), 3);
        drop(g);
        assert_eq!(m.live_keys(), 0);
        let empty = m.lock_many(std::iter::empty());
        assert!(empty.is_empty());
        assert_eq!(format!("{empty:?}"), "[]");
    }

    #[test]
    fn try_lock_many_releases_on_failure() {
        let m = KeyLockManager::<u32>::with_shards(2).unwrap();
        let blocker = m.write(&5);
        let keys = [
            (1, LockMode::Write),
            (5, LockMode::Read),
            (3, LockMode::Write),
        ];
        assert_eq!(m.try_lock_many(keys).unwrap_err(), KeyLockError::WouldBlock);
        assert_eq!(
            m.try_lock_many_for(keys, Duration::from_millis(5))
                .unwrap_err(),
            KeyLockError::Timeout
        );
        // Keys 1 and 3 (taken before 5 failed) were released.
        assert_eq!(m.live_keys(), 1);
        assert!(m.try_write(&1).is_ok() && m.try_write(&3).is_ok());
        drop(blocker);
        let g = m.try_lock_many_for(keys, Duration::from_secs(1)).unwrap();
        assert_eq!(g.len(), 3);
        drop(g);
        assert_eq!(m.live_keys(), 0);
    }

    /// Many threads bump per-key counters under the write lock and readers check that
    /// a value is stable while they hold the read lock.
    #[test]
    fn exclusion_counter() {
        let (threads, rounds) = if cfg!(miri) { (3, 20) } else { (4, 2000) };
        let m = KeyLockManager::<u32>::with_shards(2).unwrap();
        let counters: Vec<Guarded> = (0..3).map(|_| Guarded::new()).collect();
        std::thread::scope(|s| {
            for t in 0..threads {
                let (m, counters) = (&m, &counters);
                s.spawn(move || {
                    for i in 0..rounds {
                        let k = (i + t) % 3;
                        if i % 4 == 3 {
                            let _g = m.read(&k);
                            let a = counters[k as usize].get();
                            std::thread::yield_now();
                            assert_eq!(a, counters[k as usize].get(), "changed under a read lock");
                        } else {
                            let _g = m.write(&k);
                            counters[k as usize].bump();
                        }
                    }
                });
            }
        });
        let total: u64 = (0..3u32)
            .map(|k| {
                let _g = m.read(&k);
                counters[k as usize].get()
            })
            .sum();
        assert_eq!(total, threads as u64 * (rounds as u64 - rounds as u64 / 4));
        assert_eq!(m.live_keys(), 0);
    }

    thread_local! {
        /// Hash calls left before a `Bomb` key's hash panics (`None`: never).
        static FUSE: Cell<Option<u32>> = const { Cell::new(None) };
    }

    /// A key whose `Hash` panics when the thread's fuse runs out.
    #[derive(Clone, PartialEq, Eq, Debug)]
    struct Bomb(u32);

    impl Hash for Bomb {
        fn hash<H: Hasher>(&self, h: &mut H) {
            FUSE.with(|f| match f.get() {
                Some(0) => {
                    f.set(None);
                    panic!("boom");
                }
                Some(n) => f.set(Some(n - 1)),
                None => {}
            });
            self.0.hash(h);
        }
    }

    /// A panic in the key's `Hash` while a shard mutex is held poisons it; the manager
    /// goes on working (the table is consistent) instead of failing or panicking.
    #[test]
    fn poisoned_shard_keeps_working() {
        let m = KeyLockManager::<Bomb>::with_shards(1).unwrap();
        let held = m.write(&Bomb(1));
        // The first hash selects the shard (no lock held); the second is the map's
        // lookup, with the shard mutex held.
        FUSE.with(|f| f.set(Some(1)));
        let r = catch_unwind(AssertUnwindSafe(|| drop(m.try_read(&Bomb(2)))));
        assert!(r.is_err());
        assert!(m.shards[0].table.is_poisoned());
        assert_eq!(m.try_read(&Bomb(1)).unwrap_err(), KeyLockError::WouldBlock);
        drop(held);
        let g = m.try_write(&Bomb(2)).unwrap();
        assert_eq!(m.live_keys(), 1);
        drop(g);
        assert_eq!(m.live_keys(), 0);
    }

    #[test]
    fn debug_output() {
        let m = KeyLockManager::<u32>::with_shards(1).unwrap();
        let r = m.read(&1);
        let w = m.write(&2);
        assert_eq!(format!("{r:?}"), "KeyReadGuard { key: 1 }");
        assert_eq!(format!("{w:?}"), "KeyWriteGuard { key: 2 }");
        assert!(format!("{m:?}").contains("live_keys: 2"));
        drop((r, w));
        assert_eq!(
            KeyLockError::WouldBlock.to_string(),
            "the key is held in a conflicting mode"
        );
    }
}
