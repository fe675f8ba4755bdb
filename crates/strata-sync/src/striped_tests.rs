//! Unit tests and loom models of [`crate::striped::StripedMap`].
//!
//! Every test runs inside [`model`], so under `--cfg strata_loom` (where the shard locks
//! are loom's and can only be created inside a model) the single-threaded tests are
//! one-execution models and the `loom_*` tests explore their threads' interleavings.
//! Tests that need real panics on a held lock or huge shard counts are
//! `#[cfg(not(strata_loom))]`.
//!
//! Planted bugs caught (tried by hand, then reverted): `loom_ref_blocks_only_writers_of_its_shard`
//! pointed at a key of the same shard (loom reports the deadlock);
//! `keyed_operations_hash_once` caught a second hash in `get`. Under
//! `--cfg strata_weaken` `upsert` checks and inserts under two lock acquisitions, and
//! `loom_upsert_counts_every_update` reports the lost update.

use std::collections::BTreeMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

use strata_primitives::sync::Arc;
use strata_primitives::{model, thread};

use crate::striped::{StripedMap, default_shards};

/// A deterministic hasher, so that tests can pick keys by shard.
type Fixed = BuildHasherDefault<DefaultHasher>;

/// A map of `n` shards with the deterministic hasher.
fn fixed<V>(n: usize) -> StripedMap<u64, V, Fixed> {
    StripedMap::with_hasher_and_shards(Fixed::default(), n)
}

/// The first key `>= from` that lands in `shard`.
fn key_in<V>(map: &StripedMap<u64, V, Fixed>, shard: usize, from: u64) -> u64 {
    (from..).find(|k| map.shard_index(k) == shard).unwrap()
}

/// The entries as a sorted map.
fn contents(map: &StripedMap<u64, u64, Fixed>) -> BTreeMap<u64, u64> {
    map.iter().collect()
}

#[test]
#[cfg(not(strata_loom))]
fn constructors_round_clamp_and_reject() {
    use crate::striped::{MAX_SHARDS, StripedMapError};

    let d = default_shards();
    assert!(d.is_power_of_two() && (4..=MAX_SHARDS).contains(&d));
    assert_eq!(StripedMap::<u64, u64>::new().shards(), d);
    assert_eq!(StripedMap::<u64, u64>::default().shards(), d);
    assert_eq!(StripedMap::<u64, u64>::with_capacity(1000).shards(), d);
    // Rounded up to a power of two.
    assert_eq!(StripedMap::<u64, u64>::with_shards(1).shards(), 1);
    assert_eq!(StripedMap::<u64, u64>::with_shards(3).shards(), 4);
    assert_eq!(StripedMap::<u64, u64>::with_shards(64).shards(), 64);
    assert_eq!(StripedMap::<u64, u64>::try_with_shards(5).unwrap().shards(), 8);
    // Clamped by the plain constructors...
    assert_eq!(StripedMap::<u64, u64>::with_shards(0).shards(), 1);
    if !cfg!(miri) {
        // 2^16 locks: too slow to build under miri.
        assert_eq!(
            StripedMap::<u64, u64>::with_shards(usize::MAX).shards(),
            MAX_SHARDS
        );
        assert_eq!(
            StripedMap::<u64, u64>::try_with_shards(MAX_SHARDS)
                .unwrap()
                .shards(),
            MAX_SHARDS
        );
    }
    // ... rejected by the `try_` ones.
    let zero = StripedMap::<u64, u64>::try_with_shards(0).unwrap_err();
    assert_eq!(zero, StripedMapError::ZeroShards);
    assert!(zero.to_string().contains("at least one shard"), "{zero}");
    let big = StripedMap::<u64, u64, Fixed>::try_with_capacity_and_hasher_and_shards(
        10,
        Fixed::default(),
        MAX_SHARDS + 1,
    )
    .unwrap_err();
    assert_eq!(
        big,
        StripedMapError::TooManyShards {
            requested: MAX_SHARDS + 1,
            max: MAX_SHARDS
        }
    );
    assert!(big.to_string().contains("65537"), "{big}");
    assert!(
        StripedMap::<u64, u64>::try_with_shards(usize::MAX).is_err(),
        "no overflow on absurd counts"
    );
    // A capacity spread over the shards works like any other map.
    let m = StripedMap::<u64, u64, Fixed>::with_capacity_and_hasher_and_shards(
        100,
        Fixed::default(),
        4,
    );
    for k in 0..100 {
        m.insert(k, k);
    }
    assert_eq!(m.len(), 100);
}

#[test]
fn insert_get_contains_remove_len() {
    model(|| {
        let m = fixed::<u64>(4);
        assert!(m.is_empty());
        assert_eq!(m.len(), 0);
        assert_eq!(m.insert(1, 10), None);
        assert_eq!(m.insert(2, 20), None);
        assert_eq!(m.insert(1, 11), Some(10));
        assert_eq!(m.len(), 2);
        assert!(!m.is_empty());
        assert!(m.contains_key(&1));
        assert!(!m.contains_key(&3));
        assert_eq!(m.get_cloned(&1), Some(11));
        assert_eq!(m.get_cloned(&3), None);
        assert_eq!(*m.get(&2).unwrap(), 20);
        assert!(m.get(&3).is_none());
        assert_eq!(m.remove(&1), Some((1, 11)));
        assert_eq!(m.remove(&1), None);
        assert_eq!(m.len(), 1);
        assert_eq!(m.shards(), 4);
        let _: &Fixed = m.hasher();
    });
}

#[test]
fn borrowed_lookups() {
    model(|| {
        let m: StripedMap<String, u64, Fixed> =
            StripedMap::with_hasher_and_shards(Fixed::default(), 2);
        m.insert("a".to_string(), 1);
        assert_eq!(m.get_cloned("a"), Some(1));
        assert!(m.contains_key("a"));
        assert_eq!(m.get("a").unwrap().key(), "a");
        *m.get_mut("a").unwrap() += 1;
        assert_eq!(m.remove_if("a", |_, v| *v == 1), None);
        assert_eq!(m.remove("a"), Some(("a".to_string(), 2)));
        // The shard of a borrowed key is the shard of the owned one.
        let owned = "xyz".to_string();
        assert_eq!(m.shard_index("xyz"), m.shard_index(&owned));
    });
}

#[test]
fn ref_guard_accessors() {
    model(|| {
        let m = fixed::<String>(2);
        m.insert(7, "seven".to_string());
        let r = m.get(&7).unwrap();
        assert_eq!(*r.key(), 7);
        assert_eq!(r.value(), "seven");
        assert_eq!(r.pair(), (&7, &"seven".to_string()));
        assert_eq!(r.len(), 5, "Deref to the value");
        assert_eq!(format!("{r:?}"), r#"Ref { key: 7, value: "seven" }"#);
    });
}

#[test]
fn ref_mut_guard_writes_through() {
    model(|| {
        let m = fixed::<Vec<u64>>(2);
        m.insert(1, vec![1]);
        {
            let mut w = m.get_mut(&1).unwrap();
            w.push(2);
            w.value_mut().push(3);
            assert_eq!(w.value(), &[1, 2, 3]);
            assert_eq!(format!("{w:?}"), "RefMut { value: [1, 2, 3] }");
        }
        assert_eq!(m.get_cloned(&1), Some(vec![1, 2, 3]));
        assert!(m.get_mut(&2).is_none());
    });
}

#[test]
fn ref_mut_gives_the_stored_key() {
    model(|| {
        let m: StripedMap<String, Vec<u64>, Fixed> =
            StripedMap::with_hasher_and_shards(Fixed::default(), 2);
        m.insert("k".to_string(), vec![1]);
        {
            let mut w = m.get_mut("k").unwrap();
            assert_eq!(w.key(), "k");
            // The key and a `&mut` to the value at once.
            let (k, v) = w.pair_mut();
            v.push(k.len() as u64);
            assert_eq!(w.key(), "k", "the key is intact after writes to the value");
            assert_eq!(w.value(), &[1, 1]);
        }
        // The guards of `entry` have it too, for a present and for an absent key.
        assert_eq!(m.entry("k".to_string()).or_default().key(), "k");
        let mut w = m.entry("new".to_string()).or_insert(vec![8]);
        assert_eq!(w.key(), "new");
        w.value_mut().push(9);
        assert_eq!(w.pair_mut(), (&"new".to_string(), &mut vec![8, 9]));
        drop(w);
        assert_eq!(m.entry("x".to_string()).insert(vec![]).key(), "x");
        assert_eq!(m.get_cloned("k"), Some(vec![1, 1]));
        assert_eq!(m.get_cloned("new"), Some(vec![8, 9]));
    });
}

/// A key whose equality and hash ignore its tag, to tell the stored key from an equal
/// one given later.
#[derive(Clone, Copy, Debug)]
struct Tagged(u64, &'static str);

impl PartialEq for Tagged {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0
    }
}

impl Eq for Tagged {}

impl std::hash::Hash for Tagged {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

#[test]
fn replacing_a_value_keeps_the_stored_key() {
    model(|| {
        let m: StripedMap<Tagged, u64, Fixed> =
            StripedMap::with_hasher_and_shards(Fixed::default(), 2);
        assert_eq!(m.insert(Tagged(1, "first"), 1), None);
        assert_eq!(m.insert(Tagged(1, "second"), 2), Some(1));
        assert_eq!(m.get(&Tagged(1, "probe")).unwrap().key().1, "first");
        assert_eq!(*m.entry(Tagged(1, "third")).insert(3), 3);
        assert_eq!(m.get_mut(&Tagged(1, "probe")).unwrap().key().1, "first");
        m.upsert(Tagged(1, "fourth"), || 0, |v| *v += 1);
        let (k, v) = m.remove(&Tagged(1, "probe")).unwrap();
        assert_eq!((k.1, v), ("first", 4));
    });
}

/// A hasher that counts how many times a key is hashed.
#[derive(Clone, Default)]
struct Counting(std::rc::Rc<std::cell::Cell<usize>>);

impl std::hash::BuildHasher for Counting {
    type Hasher = DefaultHasher;

    fn build_hasher(&self) -> DefaultHasher {
        self.0.set(self.0.get() + 1);
        DefaultHasher::new()
    }
}

/// Every keyed operation hashes its key exactly once (the module docs' claim), as long
/// as no shard grows (growth rehashes the stored keys).
#[test]
fn keyed_operations_hash_once() {
    model(|| {
        let hasher = Counting::default();
        let count = std::rc::Rc::clone(&hasher.0);
        let m: StripedMap<u64, u64, Counting> =
            StripedMap::with_capacity_and_hasher_and_shards(64, hasher, 4);
        let once = |what: &str, op: &dyn Fn()| {
            let before = count.get();
            op();
            assert_eq!(count.get() - before, 1, "{what} hashed its key more than once");
        };
        once("insert (absent)", &|| assert_eq!(m.insert(1, 10), None));
        once("insert (present)", &|| assert_eq!(m.insert(1, 11), Some(10)));
        once("get", &|| assert_eq!(*m.get(&1).unwrap(), 11));
        once("get (absent)", &|| assert!(m.get(&2).is_none()));
        once("get_mut", &|| *m.get_mut(&1).unwrap() += 1);
        once("get_cloned", &|| assert_eq!(m.get_cloned(&1), Some(12)));
        once("contains_key", &|| assert!(m.contains_key(&1)));
        once("upsert (absent)", &|| m.upsert(2, || 20, |_| unreachable!()));
        once("upsert (present)", &|| m.upsert(2, || unreachable!(), |v| *v += 1));
        once("entry().or_insert", &|| assert_eq!(*m.entry(3).or_insert(30), 30));
        once("entry().and_modify().insert", &|| {
            let e = m.entry(3);
            assert!(e.is_occupied());
            assert_eq!(*e.and_modify(|v| *v += 1).insert(33), 33);
        });
        once("remove_if", &|| assert_eq!(m.remove_if(&3, |_, _| true), Some((3, 33))));
        once("remove", &|| assert_eq!(m.remove(&2), Some((2, 21))));
        once("shard_index", &|| assert!(m.shard_index(&1) < 4));
        // Growth past the capacity rehashes, and every key is still found.
        for k in 100..400 {
            m.insert(k, k);
        }
        assert!((100..400).all(|k| m.get_cloned(&k) == Some(k)));
        assert_eq!(m.len(), 301);
    });
}

#[test]
fn remove_if_decides_under_the_lock() {
    model(|| {
        let m = fixed::<u64>(2);
        m.insert(1, 10);
        assert_eq!(m.remove_if(&1, |_, v| *v > 10), None);
        assert_eq!(m.get_cloned(&1), Some(10));
        assert_eq!(m.remove_if(&1, |k, v| *k == 1 && *v == 10), Some((1, 10)));
        assert!(!m.contains_key(&1));
        let mut called = false;
        assert_eq!(
            m.remove_if(&1, |_, _| {
                called = true;
                true
            }),
            None
        );
        assert!(!called, "not called for an absent key");
    });
}

#[test]
fn entry_api() {
    model(|| {
        let m = fixed::<u64>(2);
        let e = m.entry(5);
        assert_eq!(*e.key(), 5);
        assert!(!e.is_occupied());
        assert_eq!(format!("{e:?}"), "Entry { key: 5, .. }");
        // and_modify on an absent key does nothing; or_insert inserts.
        let mut r = e.and_modify(|_| unreachable!()).or_insert(50);
        assert_eq!(*r, 50);
        *r += 1;
        drop(r);
        assert_eq!(m.get_cloned(&5), Some(51));
        // On a present key: and_modify runs, or_insert keeps the value.
        let e = m.entry(5);
        assert!(e.is_occupied());
        assert_eq!(*e.and_modify(|v| *v *= 2).or_insert(0), 102);
        assert_eq!(*m.entry(5).or_insert_with(|| unreachable!()), 102);
        assert_eq!(*m.entry(6).or_insert_with(|| 60), 60);
        assert_eq!(*m.entry(7).or_default(), 0);
        assert_eq!(*m.entry(7).insert(70), 70);
        assert_eq!(*m.entry(8).insert(80), 80);
        assert_eq!(
            contents(&m),
            BTreeMap::from([(5, 102), (6, 60), (7, 70), (8, 80)])
        );
    });
}

#[test]
fn upsert_inserts_then_updates() {
    model(|| {
        let m = fixed::<u64>(2);
        for _ in 0..3 {
            m.upsert(9, || 1, |v| *v += 1);
        }
        assert_eq!(m.get_cloned(&9), Some(3));
        // `insert` is only called when absent, `update` only when present.
        m.upsert(9, || unreachable!(), |v| *v = 0);
        m.upsert(10, || 5, |_| unreachable!());
        assert_eq!(contents(&m), BTreeMap::from([(9, 0), (10, 5)]));
    });
}

#[test]
fn retain_and_clear() {
    model(|| {
        let m = fixed::<u64>(4);
        for k in 0..20 {
            m.insert(k, k);
        }
        m.retain(|k, v| {
            *v += 100;
            k.is_multiple_of(2)
        });
        let want: BTreeMap<u64, u64> = (0..20).step_by(2).map(|k| (k, k + 100)).collect();
        assert_eq!(contents(&m), want);
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.len(), 0);
    });
}

#[test]
fn shard_index_spreads_keys() {
    model(|| {
        let m = fixed::<u64>(8);
        let mut per_shard = [0usize; 8];
        for k in 0..800u64 {
            let i = m.shard_index(&k);
            assert!(i < 8);
            per_shard[i] += 1;
        }
        assert!(per_shard.iter().all(|&c| c > 40), "{per_shard:?}");
        let one = fixed::<u64>(1);
        assert!((0..100u64).all(|k| one.shard_index(&k) == 0));
    });
}

#[test]
fn iter_sees_every_entry_once() {
    model(|| {
        let m = fixed::<u64>(4);
        let n = if cfg!(miri) { 50 } else { 500 };
        for k in 0..n {
            m.insert(k, k * 2);
        }
        let mut it = m.iter();
        assert_eq!(it.size_hint(), (0, None));
        let first = it.next().unwrap();
        assert!(first.1 == first.0 * 2);
        assert!(format!("{it:?}").starts_with("Iter {"));
        let mut seen: Vec<(u64, u64)> = it.collect();
        seen.push(first);
        seen.sort_unstable();
        let want: Vec<(u64, u64)> = (0..n).map(|k| (k, k * 2)).collect();
        assert_eq!(seen, want);
        // `&map` is iterable too.
        assert_eq!((&m).into_iter().count(), n as usize);
        // An empty map yields nothing.
        assert_eq!(fixed::<u64>(4).iter().next(), None);
    });
}

#[test]
fn iter_body_may_write_to_every_shard() {
    model(|| {
        let m = fixed::<u64>(4);
        // One key per shard to start with.
        let starts: Vec<u64> = (0..4).map(|s| key_in(&m, s, 0)).collect();
        for &k in &starts {
            m.insert(k, 0);
        }
        let mut visited = Vec::new();
        for (k, v) in m.iter() {
            visited.push(k);
            // Writes to the shard being iterated and to every other shard: no lock is
            // held here, so none of these can deadlock.
            m.insert(k, v + 1);
            for s in 0..4 {
                let fresh = key_in(&m, s, 1_000_000 + k * 10);
                m.insert(fresh, 7);
                m.remove(&fresh);
            }
            m.upsert(k, || 0, |v| *v += 1);
            assert!(m.get(&k).is_some());
        }
        visited.sort_unstable();
        let mut want = starts.clone();
        want.sort_unstable();
        assert_eq!(visited, want, "each key seen once");
        assert!(starts.iter().all(|k| m.get_cloned(k) == Some(2)));
    });
}

#[test]
fn debug_default_from_iter_extend_into_iter() {
    model(|| {
        let mut m: StripedMap<u64, u64, Fixed> = (0..3).map(|k| (k, k + 10)).collect();
        assert_eq!(m.shards(), default_shards());
        m.extend([(3, 13), (0, 100)]);
        assert_eq!(
            contents(&m),
            BTreeMap::from([(0, 100), (1, 11), (2, 12), (3, 13)])
        );
        let one = fixed::<u64>(1);
        one.insert(1, 2);
        assert_eq!(format!("{one:?}"), "{1: 2}");
        assert_eq!(format!("{:?}", fixed::<u64>(4)), "{}");
        let mut it = m.into_iter();
        assert!(format!("{it:?}").starts_with("IntoIter {"));
        let mut all: Vec<(u64, u64)> = it.by_ref().collect();
        assert_eq!(it.next(), None);
        all.sort_unstable();
        assert_eq!(all, vec![(0, 100), (1, 11), (2, 12), (3, 13)]);
    });
}

#[test]
fn map_and_owned_iter_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<StripedMap<u64, String>>();
    send_sync::<StripedMap<String, Vec<u8>, Fixed>>();
    send::<crate::striped::IntoIter<u64, String>>();
    send_sync::<crate::striped::Iter<'static, u64, String>>();
}

/// A panic inside each kind of user closure, while the shard's write lock is held,
/// poisons std's lock; the map recovers it and keeps working, and the value keeps what
/// the closure did before panicking.
#[test]
#[cfg(not(strata_loom))]
fn poisoned_shards_are_recovered() {
    use std::panic::{AssertUnwindSafe, catch_unwind};

    let m = fixed::<u64>(2);
    m.insert(1, 10);
    let boom = catch_unwind(AssertUnwindSafe(|| {
        m.upsert(
            1,
            || 0,
            |v| {
                *v += 1;
                panic!("update failed");
            },
        )
    }));
    assert!(boom.is_err());
    let i = m.shard_index(&1);
    assert!(m.shards[i].is_poisoned(), "the test did poison the lock");
    // Every operation still works on the poisoned shard.
    assert_eq!(m.get_cloned(&1), Some(11), "the update's first step stays");
    assert_eq!(*m.get(&1).unwrap(), 11);
    assert!(m.contains_key(&1));
    assert_eq!(m.insert(1, 20), Some(11));
    *m.get_mut(&1).unwrap() += 1;
    assert_eq!(*m.entry(1).or_insert(0), 21);
    m.upsert(1, || 0, |v| *v += 1);
    assert_eq!(m.len(), 1);
    assert!(!m.is_empty());
    assert_eq!(contents(&m), BTreeMap::from([(1, 22)]));
    assert_eq!(format!("{m:?}"), "{1: 22}");

    // The other closures poison too, and are recovered as well.
    assert!(catch_unwind(AssertUnwindSafe(|| m.retain(|_, _| panic!("retain")))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| m.remove_if(&1, |_, _| panic!("if")))).is_err());
    assert!(
        catch_unwind(AssertUnwindSafe(|| {
            m.entry(1).and_modify(|_| panic!("modify"));
        }))
        .is_err()
    );
    assert!(
        catch_unwind(AssertUnwindSafe(|| {
            m.entry(2).or_insert_with(|| panic!("insert"));
        }))
        .is_err()
    );
    assert_eq!(m.remove_if(&1, |_, v| *v == 22), Some((1, 22)));
    m.insert(2, 2);
    m.retain(|_, _| true);
    m.clear();
    assert!(m.is_empty());
    m.insert(3, 3);
    let mut m = m;
    m.extend([(4, 4)]);
    let mut all: Vec<_> = m.into_iter().collect();
    all.sort_unstable();
    assert_eq!(all, vec![(3, 3), (4, 4)]);
}

/// A thread iterates while another inserts one key into each of two shards. The iterator
/// sees the pre-existing key, never a key twice, and nothing that was never inserted.
/// loom would report a deadlock if iteration and insertion could block each other.
#[test]
fn loom_insert_vs_iter_two_shards() {
    model(|| {
        let m = Arc::new(fixed::<u64>(2));
        let old = key_in(&m, 0, 0);
        let a = key_in(&m, 0, old + 1);
        let b = key_in(&m, 1, 0);
        m.insert(old, 0);
        let m2 = Arc::clone(&m);
        let writer = thread::spawn(move || {
            m2.insert(a, 1);
            m2.insert(b, 2);
        });
        let mut seen: Vec<u64> = m.iter().map(|(k, _)| k).collect();
        writer.join().unwrap();
        seen.sort_unstable();
        let len = seen.len();
        seen.dedup();
        assert_eq!(seen.len(), len, "a key seen twice: {seen:?}");
        assert!(seen.contains(&old), "the old key missed: {seen:?}");
        assert!(seen.iter().all(|k| [old, a, b].contains(k)), "{seen:?}");
        assert_eq!(m.len(), 3);
    });
}

/// Two threads upsert the same absent key (insert 1, else add 1): the count must end at
/// 2. Fails under `strata_weaken`, whose upsert checks and inserts under two lock
/// acquisitions, so both threads can insert.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "lost update"))]
fn loom_upsert_counts_every_update() {
    model(|| {
        let m = Arc::new(fixed::<u64>(2));
        let m2 = Arc::clone(&m);
        let t = thread::spawn(move || m2.upsert(1, || 1, |v| *v += 1));
        m.upsert(1, || 1, |v| *v += 1);
        t.join().unwrap();
        assert_eq!(m.get_cloned(&1), Some(2), "lost update");
    });
}

/// An insert races a remove of the same key: either the remove took the inserted pair
/// (and the key is gone) or it found nothing (and the key stays).
#[test]
fn loom_insert_vs_remove_same_key() {
    model(|| {
        let m = Arc::new(fixed::<u64>(2));
        let m2 = Arc::clone(&m);
        let t = thread::spawn(move || m2.insert(4, 40));
        let removed = m.remove(&4);
        assert_eq!(t.join().unwrap(), None);
        match removed {
            Some(pair) => {
                assert_eq!(pair, (4, 40));
                assert!(m.is_empty());
            }
            None => assert_eq!(m.get_cloned(&4), Some(40)),
        }
    });
}

/// A read guard held on one shard blocks neither writers of another shard nor readers of
/// its own (loom reports a deadlock otherwise: the guard is held across the join).
#[test]
fn loom_ref_blocks_only_writers_of_its_shard() {
    model(|| {
        let m = Arc::new(fixed::<u64>(2));
        let k0 = key_in(&m, 0, 0);
        let k1 = key_in(&m, 1, 0);
        m.insert(k0, 1);
        let held = m.get(&k0).unwrap();
        let m2 = Arc::clone(&m);
        let t = thread::spawn(move || {
            m2.insert(k1, 2);
            m2.get_cloned(&k0)
        });
        assert_eq!(t.join().unwrap(), Some(1));
        assert_eq!(*held, 1);
        drop(held);
        assert_eq!(m.len(), 2);
    });
}
