//! Stress of `SlotTable`: threads insert, read and remove at once, on their own keys
//! and on keys other threads published. Every value carries the key it was stored
//! under, so a read that reached another slot's value, or a later occupant of the same
//! index, is caught at once; every value is dropped exactly once by the end. Short
//! enough for ThreadSanitizer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use strata_sync::slot_table::{SlotKey, SlotTable};

const THREADS: usize = 4;
const ITERS: usize = if cfg!(miri) { 60 } else { 20_000 };

/// A value that knows its key (set right after the insert through a cell, since the
/// key is known only then) and counts its drops.
struct Tagged {
    key: AtomicU64,
    owner: usize,
    drops: Arc<AtomicUsize>,
}

impl Drop for Tagged {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::Relaxed);
    }
}

const UNSET: u64 = u64::MAX;

/// Checks what `get(key)` found for a published key: the value stored under `key`.
/// (Its owner wrote the key into the value before it published the key, so any other
/// value, even a fresh one whose key is not written yet, is a wrong one.)
fn check(key: SlotKey, v: &Tagged) {
    let stored = v.key.load(Ordering::Acquire);
    assert!(
        stored == key.to_bits(),
        "get({key:?}) returned the value of {:?}",
        SlotKey::from_bits(stored)
    );
}

#[test]
fn concurrent_insert_get_remove_keep_keys_apart() {
    let drops = Arc::new(AtomicUsize::new(0));
    let inserted = AtomicUsize::new(0);
    let table: SlotTable<Tagged> = SlotTable::with_max_capacity(256).unwrap();
    let published: Vec<AtomicU64> = (0..THREADS).map(|_| AtomicU64::new(UNSET)).collect();
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (table, published, drops, inserted) = (&table, &published, &drops, &inserted);
            s.spawn(move || {
                let mut mine: Vec<SlotKey> = Vec::new();
                for i in 0..ITERS {
                    let value = Tagged {
                        key: AtomicU64::new(UNSET),
                        owner: t,
                        drops: Arc::clone(drops),
                    };
                    if let Ok(k) = table.insert(value) {
                        inserted.fetch_add(1, Ordering::Relaxed);
                        let r = table.get(k).expect("own fresh key");
                        assert_eq!(r.owner, t);
                        r.key.store(k.to_bits(), Ordering::Release);
                        drop(r);
                        published[t].store(k.to_bits(), Ordering::Release);
                        mine.push(k);
                    }
                    // Read another thread's key: its value or nothing, never another's.
                    let other =
                        published[(t + 1 + i % (THREADS - 1)) % THREADS].load(Ordering::Acquire);
                    if other != UNSET {
                        let k = SlotKey::from_bits(other);
                        if let Some(r) = table.get(k) {
                            check(k, &r);
                        }
                        if i.is_multiple_of(7) {
                            // Steal it now and then: the owner's remove then fails.
                            table.remove(k);
                        }
                    }
                    for k in &mine {
                        if let Some(r) = table.get(*k) {
                            assert_eq!(r.key.load(Ordering::Acquire), k.to_bits());
                            assert_eq!(r.owner, t);
                        }
                    }
                    if (mine.len() > 8 || i.is_multiple_of(3))
                        && let Some(k) = mine.pop()
                    {
                        table.remove(k);
                        assert!(!table.contains(k), "a removed key is stale");
                    }
                }
                for k in mine {
                    table.remove(k);
                }
            });
        }
    });
    assert_eq!(table.len(), 0);
    drop(table);
    let total = inserted.load(Ordering::Relaxed);
    for _ in 0..10_000 {
        if drops.load(Ordering::Relaxed) == total {
            break;
        }
        strata_reclaim::epoch::synchronize().unwrap();
        strata_reclaim::epoch::flush();
    }
    assert_eq!(
        drops.load(Ordering::Relaxed),
        total,
        "every value dropped once"
    );
}

#[test]
fn racing_removers_of_one_key_win_once() {
    let rounds = if cfg!(miri) { 20 } else { 2_000 };
    let table: SlotTable<u64> = SlotTable::new();
    let wins = AtomicUsize::new(0);
    for r in 0..rounds {
        let k = table.insert(r).unwrap();
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    if table.remove(k) {
                        wins.fetch_add(1, Ordering::Relaxed);
                    }
                });
            }
        });
        assert_eq!(wins.swap(0, Ordering::Relaxed), 1, "round {r}");
        // The freed slot is reused, with the next generation.
        assert_eq!(k.index(), 0);
        assert_eq!(k.generation() as u64, r);
    }
}

#[test]
fn concurrent_inserts_fill_the_lowest_slots_exactly() {
    let per = if cfg!(miri) { 20 } else { 500 };
    let table: SlotTable<usize> = SlotTable::new();
    let keys: Vec<SlotKey> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..THREADS)
            .map(|t| {
                let table = &table;
                s.spawn(move || {
                    (0..per)
                        .map(|i| table.insert(t * per + i).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    // With no removal, the inserts took exactly the indices 0..n.
    let mut idx: Vec<usize> = keys.iter().map(|k| k.index()).collect();
    idx.sort_unstable();
    assert_eq!(idx, (0..THREADS * per).collect::<Vec<_>>());
    for k in &keys {
        assert_eq!(k.generation(), 0);
        assert!(table.contains(*k));
    }
}
