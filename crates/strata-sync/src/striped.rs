//! A concurrent hash map made of lock-striped shards: [`StripedMap`].
//!
//! # What it is
//!
//! A `StripedMap<K, V, S>` is a power-of-two number of shards, each a
//! [`hashbrown::HashTable<(K, V)>`](hashbrown::HashTable) behind its own reader-writer lock
//! ([`strata_primitives::sync::RwLock`]: std's `RwLock`, loom's under `strata_loom`),
//! each shard on its own cache line ([`CachePadded`]). A key lives in the shard picked by
//! its hash, so operations on keys of different shards never touch the same lock. The
//! names follow dashmap's, its closest peer: [`get`](StripedMap::get) returns a [`Ref`]
//! guard, [`get_mut`](StripedMap::get_mut) a [`RefMut`], [`entry`](StripedMap::entry)
//! an [`Entry`].
//!
//! # The algorithm
//!
//! Lock striping (Herlihy & Shavit, *The Art of Multiprocessor Programming*, §13.2.2):
//!
//! * **One hash per operation.** A keyed operation hashes its key exactly once, with
//!   the map's [`BuildHasher`] ([`BuildHasher::hash_one`]), outside any lock, and uses
//!   that one value twice: to pick the shard, and as the hash handed to the shard's
//!   `HashTable` (which, unlike std's `HashMap`, takes a precomputed hash and stores no
//!   hasher). The only other hashing is the table's own rehash when a shard grows,
//!   which recomputes each stored key's hash with the same hasher (the hash is not
//!   stored beside the entry), as std's `HashMap` does.
//! * **Shard choice.** The shard index is taken from the *high* bits of the hash,
//!   skipping the top 7: hashbrown places an entry with the *low* bits and keeps the top
//!   7 bits as the entry's tag byte, so the bits that choose the shard are neither of
//!   these and the keys of one shard still spread over its table and tags.
//! * **One lock at a time.** Every operation takes at most one shard lock at any moment:
//!   keyed operations lock the key's shard; [`len`](StripedMap::len),
//!   [`clear`](StripedMap::clear), [`retain`](StripedMap::retain) and
//!   [`iter`](StripedMap::iter) visit the shards one by one, releasing each lock before
//!   taking the next. No operation of the map can therefore deadlock against another
//!   through lock ordering.
//!
//! # Progress and linearization
//!
//! Blocking: every operation may wait for a shard's lock. Readers of a shard
//! ([`get`](StripedMap::get), [`get_cloned`](StripedMap::get_cloned),
//! [`contains_key`](StripedMap::contains_key)) run in parallel with each other; a writer
//! of a shard excludes everyone else from that shard only.
//!
//! Each keyed operation ([`insert`](StripedMap::insert), [`get`](StripedMap::get),
//! [`get_cloned`](StripedMap::get_cloned), [`remove`](StripedMap::remove),
//! [`remove_if`](StripedMap::remove_if), [`upsert`](StripedMap::upsert), ...) is
//! linearizable: it takes effect at the moment it operates on the shard's table
//! while holding the shard's lock. Whole-map operations are not: [`len`](StripedMap::len)
//! is a sum of per-shard counts read at different moments, and
//! [`clear`](StripedMap::clear), [`retain`](StripedMap::retain) and
//! [`iter`](StripedMap::iter) are atomic per shard, not across shards.
//!
//! # Iteration does not hold locks while your code runs
//!
//! dashmap's iterators hold a shard's read lock while they are on that shard and for as
//! long as an item taken from it is alive. Inserting into the map from the loop body then deadlocks when the key falls in
//! the shard being iterated, and a reader-held lock can also stall other threads'
//! writers while the iterating thread waits for them. Here, [`iter`](StripedMap::iter)
//! visits the shards one at a time: it takes a shard's read lock, *clones* the shard's
//! entries into a buffer, releases the lock, and then yields the owned `(K, V)` pairs
//! from the buffer. No lock is held while the caller's code runs, so the loop body may
//! call any method of the map, on any shard, including the one being iterated.
//!
//! The price: `K: Clone + V: Clone`, one clone of every entry, and a buffer as large as
//! the largest shard. The consistency: each shard is a snapshot taken when the iterator
//! reached it; the whole is not one snapshot (an entry moved between shards by a
//! concurrent remove and insert may be seen twice or not at all, under different keys;
//! an entry inserted into a shard not yet visited is seen). Each key is seen at most
//! once, since it lives in one shard, which is visited once.
//!
//! There is deliberately no `for_each(|&K, &V|)` that holds a shard's read lock while
//! calling a closure on borrowed entries: a closure that writes to the same shard
//! deadlocks, and even a closure that only reads can block behind a writer queued on that
//! lock (std's lock may let a waiting writer go first). For types that are not `Clone`,
//! use [`retain`](StripedMap::retain) (which hands out `&mut V` under the write lock and
//! has the same rule: its closure must not use the map) or consume the map with
//! [`IntoIterator`].
//!
//! # Guards
//!
//! [`Ref`], [`RefMut`] and [`Entry`] hold their shard's lock until dropped. While one is
//! alive, the same thread must not call the map on a key of the same shard (a write
//! would deadlock on its own lock, and so may a read, as above); drop the guard first,
//! or use [`get_cloned`](StripedMap::get_cloned), which returns no guard.
//!
//! # Poisoning
//!
//! A closure of yours (in [`upsert`](StripedMap::upsert), [`retain`](StripedMap::retain),
//! [`remove_if`](StripedMap::remove_if), [`Entry::and_modify`], ...) or your `Hash`,
//! `Eq` or `Clone` may panic while a shard's write lock is held; std's `RwLock` is then
//! *poisoned*. This map recovers the guard ([`PoisonError::into_inner`]) on every later
//! lock and carries on, as dashmap (whose locks do not poison) does: hashbrown's
//! `HashTable` is panic-safe, so the shard is still a valid table. What is not restored
//! is whatever the panicking closure had already done to the value it was given (an
//! `upsert` whose update added 1 and then panicked leaves the value incremented), and
//! which entries a rehash keeps when your `Hash` panics in the middle of it is up to
//! hashbrown (an in-place rehash drops the entries it had not yet placed). No method of
//! this map panics because of an earlier poisoning.
//!
//! # Example
//!
//! ```
//! use strata_sync::striped::StripedMap;
//! use std::thread;
//!
//! let hits: StripedMap<&str, u64> = StripedMap::new();
//! thread::scope(|s| {
//!     for _ in 0..4 {
//!         s.spawn(|| {
//!             for page in ["/", "/about", "/"] {
//!                 hits.upsert(page, || 1, |n| *n += 1);
//!             }
//!         });
//!     }
//! });
//! assert_eq!(hits.get_cloned("/"), Some(8));
//! assert_eq!(*hits.get("/about").unwrap(), 4);
//!
//! // The loop body may write to the map: no lock is held while it runs.
//! for (page, n) in hits.iter() {
//!     hits.insert(page, n * 10);
//! }
//! assert_eq!(hits.get_cloned("/"), Some(80));
//! ```

use std::borrow::Borrow;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use hashbrown::HashTable;
use hashbrown::hash_table;
use strata_primitives::CachePadded;
use strata_primitives::sync::{PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The most shards a map may have: 2^16. Each shard costs at least a cache line (128
/// bytes padded), so this is 8 MiB of empty shards, far beyond any useful striping.
pub const MAX_SHARDS: usize = 1 << 16;

/// An invalid shard count given to a `try_*` constructor of [`StripedMap`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StripedMapError {
    /// Zero shards were requested; a map needs at least one.
    #[error("a striped map needs at least one shard, 0 were requested")]
    ZeroShards,
    /// More than [`MAX_SHARDS`] shards were requested.
    #[error("{requested} shards were requested, at most {max} are allowed")]
    TooManyShards {
        /// The requested count.
        requested: usize,
        /// The largest count accepted ([`MAX_SHARDS`]).
        max: usize,
    },
}

/// Whether `upsert` is split into a check and a later insert, each under its own lock
/// acquisition: `false`, or `true` under the test-only `--cfg strata_weaken`.
///
/// The map has no memory ordering of its own to weaken (all of its synchronization is
/// the shard locks), so the weakened build breaks the atomicity of a read-modify-write
/// instead: two concurrent upserts of an absent key may then both insert, and one update
/// is lost. The loom model `loom_upsert_counts_every_update` must catch it (it is marked
/// `should_panic` under that cfg).
const fn split_upsert() -> bool {
    cfg!(strata_weaken)
}

/// One shard's entries. The table stores no hasher: every call passes the key's hash
/// (computed once by the map), and growth rehashes with the map's hasher.
type Table<K, V> = HashTable<(K, V)>;

type Shard<K, V> = CachePadded<RwLock<Table<K, V>>>;

/// The predicate that finds the entry of `key` in a shard's table.
#[inline]
fn is_key<K: Borrow<Q>, V, Q: Eq + ?Sized>(key: &Q) -> impl Fn(&(K, V)) -> bool + '_ {
    move |(k, _)| key == k.borrow()
}

/// The function that rehashes a stored entry when a shard's table grows: its key's hash
/// with the map's hasher (the same value the map computed when the entry was inserted).
#[inline]
fn rehash<K: Hash, V, S: BuildHasher>(hasher: &S) -> impl Fn(&(K, V)) -> u64 + '_ {
    move |(k, _)| hasher.hash_one(k)
}

/// Inserts `(key, value)` into `table`, whose key hashes to `hash`; on a present key,
/// replaces the value and keeps the stored key (like `HashMap::insert`), returning the
/// old value.
#[inline]
fn insert_into<K: Hash + Eq, V, S: BuildHasher>(
    table: &mut Table<K, V>,
    hasher: &S,
    hash: u64,
    key: K,
    value: V,
) -> Option<V> {
    match table.entry(hash, is_key(&key), rehash(hasher)) {
        hash_table::Entry::Occupied(mut o) => Some(std::mem::replace(&mut o.get_mut().1, value)),
        hash_table::Entry::Vacant(v) => {
            v.insert((key, value));
            None
        }
    }
}

/// The default shard count: 4 × the available parallelism, rounded up to a power of two
/// (dashmap's default), at most [`MAX_SHARDS`]. 4 when the parallelism is unknown.
pub fn default_shards() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    cpus.saturating_mul(4)
        .checked_next_power_of_two()
        .unwrap_or(MAX_SHARDS)
        .min(MAX_SHARDS)
}

/// Checks a shard count and rounds it up to a power of two.
fn checked_shards(n: usize) -> Result<usize, StripedMapError> {
    if n == 0 {
        return Err(StripedMapError::ZeroShards);
    }
    if n > MAX_SHARDS {
        return Err(StripedMapError::TooManyShards {
            requested: n,
            max: MAX_SHARDS,
        });
    }
    // n <= 2^16, so this cannot overflow.
    Ok(n.next_power_of_two())
}

/// Clamps a shard count into `1..=MAX_SHARDS` and rounds it up to a power of two.
fn clamped_shards(n: usize) -> usize {
    n.clamp(1, MAX_SHARDS).next_power_of_two()
}

/// A concurrent hash map of `2^k` shards, each a hash table of `(K, V)` pairs behind its
/// own reader-writer lock, hashing each key once per operation with `S`. See the [module docs](self) for the design, the consistency of
/// whole-map operations, and the rules for guards and closures.
///
/// `StripedMap` is `Send` when `K`, `V` and `S` are `Send`, and `Sync` when they are
/// also `Sync` (like dashmap's `DashMap`).
pub struct StripedMap<K, V, S = RandomState> {
    shards: Box<[Shard<K, V>]>,
    /// `64 - log2(shards)`: the shard index is `(hash << 7) >> shift`, computed as two
    /// shifts so that one shard (shift 64) needs no special case.
    shift: u32,
    hasher: S,
}

impl<K, V> StripedMap<K, V, RandomState> {
    /// An empty map with [`default_shards`] shards and a random hasher.
    pub fn new() -> Self {
        Self::with_hasher(RandomState::new())
    }

    /// An empty map with [`default_shards`] shards, room for at least `capacity`
    /// entries spread evenly over them, and a random hasher.
    pub fn with_capacity(capacity: usize) -> Self {
        Self::with_capacity_and_hasher_and_shards(capacity, RandomState::new(), default_shards())
    }

    /// An empty map with `n` shards rounded up to a power of two. `n` is clamped into
    /// `1..=`[`MAX_SHARDS`] (so 0 gives one shard); use
    /// [`try_with_shards`](Self::try_with_shards) to have such values rejected.
    pub fn with_shards(n: usize) -> Self {
        Self::with_capacity_and_hasher_and_shards(0, RandomState::new(), n)
    }

    /// An empty map with `n` shards rounded up to a power of two, or an error if `n` is
    /// 0 or more than [`MAX_SHARDS`].
    pub fn try_with_shards(n: usize) -> Result<Self, StripedMapError> {
        Self::try_with_capacity_and_hasher_and_shards(0, RandomState::new(), n)
    }
}

impl<K, V, S: BuildHasher> StripedMap<K, V, S> {
    /// An empty map with [`default_shards`] shards and the given hasher (the map holds
    /// the one hasher; the shards hold none).
    pub fn with_hasher(hasher: S) -> Self {
        Self::with_capacity_and_hasher_and_shards(0, hasher, default_shards())
    }

    /// An empty map with `n` shards (clamped and rounded up as in
    /// [`with_shards`](StripedMap::with_shards)) and the given hasher.
    pub fn with_hasher_and_shards(hasher: S, n: usize) -> Self {
        Self::with_capacity_and_hasher_and_shards(0, hasher, n)
    }

    /// An empty map with room for at least `capacity` entries spread evenly over `n`
    /// shards (clamped into `1..=`[`MAX_SHARDS`] and rounded up to a power of two), and
    /// the given hasher.
    pub fn with_capacity_and_hasher_and_shards(capacity: usize, hasher: S, n: usize) -> Self {
        Self::build(capacity, hasher, clamped_shards(n))
    }

    /// Like [`with_capacity_and_hasher_and_shards`](Self::with_capacity_and_hasher_and_shards),
    /// but a shard count of 0 or above [`MAX_SHARDS`] is an error rather than clamped.
    pub fn try_with_capacity_and_hasher_and_shards(
        capacity: usize,
        hasher: S,
        n: usize,
    ) -> Result<Self, StripedMapError> {
        Ok(Self::build(capacity, hasher, checked_shards(n)?))
    }

    /// `n` is a power of two in `1..=MAX_SHARDS`.
    fn build(capacity: usize, hasher: S, n: usize) -> Self {
        debug_assert!(n.is_power_of_two() && n <= MAX_SHARDS);
        let per_shard = capacity.div_ceil(n);
        let shards = (0..n)
            .map(|_| CachePadded::new(RwLock::new(HashTable::with_capacity(per_shard))))
            .collect();
        Self {
            shards,
            shift: 64 - n.trailing_zeros(),
            hasher,
        }
    }
}

impl<K, V, S> StripedMap<K, V, S> {
    /// The number of shards (a power of two).
    #[inline]
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    /// The map's hasher.
    pub fn hasher(&self) -> &S {
        &self.hasher
    }

    /// The shard's read guard; a poisoned lock is recovered (see the module docs).
    #[inline]
    fn read_shard(&self, i: usize) -> RwLockReadGuard<'_, Table<K, V>> {
        self.shards[i].read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The shard's write guard; a poisoned lock is recovered (see the module docs).
    #[inline]
    fn write_shard(&self, i: usize) -> RwLockWriteGuard<'_, Table<K, V>> {
        self.shards[i].write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The number of entries: the sum of the shards' counts, each read under its read
    /// lock, one shard after the other. Under concurrent writes this is not a snapshot:
    /// the shards are counted at different moments.
    pub fn len(&self) -> usize {
        (0..self.shards()).map(|i| self.read_shard(i).len()).sum()
    }

    /// Whether every shard is empty (checked one shard after the other, like
    /// [`len`](Self::len); stops at the first non-empty shard).
    pub fn is_empty(&self) -> bool {
        (0..self.shards()).all(|i| self.read_shard(i).is_empty())
    }

    /// Removes every entry, shard by shard (each shard under its write lock; entries
    /// inserted into an already cleared shard meanwhile stay).
    pub fn clear(&self) {
        for i in 0..self.shards() {
            self.write_shard(i).clear();
        }
    }

    /// Keeps only the entries for which `f` returns `true`, shard by shard, holding one
    /// shard's write lock at a time while `f` runs on that shard's entries. `f` must not
    /// use this map (it would deadlock on the held lock).
    pub fn retain(&self, mut f: impl FnMut(&K, &mut V) -> bool) {
        for i in 0..self.shards() {
            self.write_shard(i).retain(|(k, v)| f(k, v));
        }
    }

    /// An iterator over clones of the entries, shard by shard, that holds no lock while
    /// the caller consumes it (see the module docs: each shard is a snapshot taken when
    /// the iterator reaches it, the whole is not). The loop body may use the map freely.
    pub fn iter(&self) -> Iter<'_, K, V, S>
    where
        K: Clone,
        V: Clone,
    {
        Iter {
            map: self,
            next_shard: 0,
            buf: Vec::new(),
        }
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> StripedMap<K, V, S> {
    /// The key's hash: the one value a keyed operation computes, both for the shard
    /// choice and for the shard's table.
    #[inline]
    fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The index of the shard of a key whose hash is `hash`.
    #[inline]
    fn shard_of(&self, hash: u64) -> usize {
        // Skip the 7 top bits (hashbrown's tag byte), take the next log2(shards).
        (((hash << 7) >> 1) >> (self.shift - 1)) as usize
    }

    /// The index of the shard that holds `key` (in `0..self.shards()`).
    #[inline]
    pub fn shard_index<Q>(&self, key: &Q) -> usize
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        self.shard_of(self.hash(key))
    }

    /// Inserts `value` under `key`, returning the previous value if there was one (the
    /// stored key is kept, as with `HashMap::insert`).
    #[inline]
    pub fn insert(&self, key: K, value: V) -> Option<V> {
        let hash = self.hash(&key);
        let mut guard = self.write_shard(self.shard_of(hash));
        insert_into(&mut guard, &self.hasher, hash, key, value)
    }

    /// A read guard on the entry of `key`, or `None`. The shard's read lock is held until
    /// the [`Ref`] is dropped.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<Ref<'_, K, V, S>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let guard = self.read_shard(self.shard_of(hash));
        let (k, v) = guard.find(hash, is_key(key))?;
        let (key, value) = (k as *const K, v as *const V);
        Some(Ref {
            key,
            value,
            _guard: guard,
            _hasher: PhantomData,
        })
    }

    /// A write guard on the entry of `key`, or `None`. The shard's write lock is held
    /// until the [`RefMut`] is dropped.
    #[inline]
    pub fn get_mut<Q>(&self, key: &Q) -> Option<RefMut<'_, K, V, S>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut guard = self.write_shard(self.shard_of(hash));
        let entry = guard.find_mut(hash, is_key(key))?;
        let (key, value) = RefMut::<K, V, S>::split(entry);
        Some(RefMut {
            key,
            value,
            _guard: guard,
            _hasher: PhantomData,
        })
    }

    /// A clone of the value of `key`, taken under the shard's read lock, which is
    /// released before returning.
    #[inline]
    pub fn get_cloned<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let hash = self.hash(key);
        let guard = self.read_shard(self.shard_of(hash));
        guard.find(hash, is_key(key)).map(|(_, v)| v.clone())
    }

    /// Whether `key` is present.
    #[inline]
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let guard = self.read_shard(self.shard_of(hash));
        guard.find(hash, is_key(key)).is_some()
    }

    /// Removes `key`, returning the stored key and its value.
    #[inline]
    pub fn remove<Q>(&self, key: &Q) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut guard = self.write_shard(self.shard_of(hash));
        let found = guard.find_entry(hash, is_key(key)).ok()?;
        Some(found.remove().0)
    }

    /// Removes `key` if it is present and `f(key, value)` returns `true` (decided and
    /// done under one hold of the shard's write lock). `f` must not use this map.
    pub fn remove_if<Q>(&self, key: &Q, f: impl FnOnce(&K, &V) -> bool) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let mut guard = self.write_shard(self.shard_of(hash));
        let found = guard.find_entry(hash, is_key(key)).ok()?;
        let (k, v) = found.get();
        if f(k, v) {
            Some(found.remove().0)
        } else {
            None
        }
    }

    /// The entry of `key`, holding the shard's write lock until the [`Entry`] (or the
    /// [`RefMut`] it turns into) is dropped.
    pub fn entry(&self, key: K) -> Entry<'_, K, V, S> {
        let hash = self.hash(&key);
        let guard = self.write_shard(self.shard_of(hash));
        Entry {
            guard,
            hasher: &self.hasher,
            hash,
            key,
        }
    }

    /// Inserts `insert()` under `key` if the key is absent, or calls `update` on its
    /// value if present: one atomic read-modify-write under the shard's write lock.
    /// The closures must not use this map.
    pub fn upsert(&self, key: K, insert: impl FnOnce() -> V, update: impl FnOnce(&mut V)) {
        let hash = self.hash(&key);
        let i = self.shard_of(hash);
        if split_upsert() {
            // The test-only broken variant (see `split_upsert`): a check, then an insert
            // (which replaces any value found then) under a second acquisition of the
            // lock.
            let present = self.write_shard(i).find(hash, is_key(&key)).is_some();
            if !present {
                let value = insert();
                insert_into(&mut self.write_shard(i), &self.hasher, hash, key, value);
                return;
            }
        }
        let mut guard = self.write_shard(i);
        match guard.entry(hash, is_key(&key), rehash(&self.hasher)) {
            hash_table::Entry::Occupied(mut o) => update(&mut o.get_mut().1),
            hash_table::Entry::Vacant(v) => {
                v.insert((key, insert()));
            }
        }
    }
}

impl<K, V> Default for StripedMap<K, V, RandomState> {
    /// Same as [`StripedMap::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for StripedMap<K, V, S> {
    /// Formats the entries as a map, one shard at a time under its read lock (so the
    /// output is not one snapshot under concurrent writes).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut m = f.debug_map();
        for i in 0..self.shards() {
            m.entries(self.read_shard(i).iter().map(|(k, v)| (k, v)));
        }
        m.finish()
    }
}

impl<K: Hash + Eq, V, S: BuildHasher + Default> FromIterator<(K, V)>
    for StripedMap<K, V, S>
{
    /// A map with [`default_shards`] shards and `S::default()` holding the pairs (a later
    /// pair replaces the value of an earlier one with the same key).
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut map = Self::with_hasher(S::default());
        map.extend(iter);
        map
    }
}

impl<K: Hash + Eq, V, S: BuildHasher> Extend<(K, V)> for StripedMap<K, V, S> {
    /// Inserts the pairs; `&mut self` means no other thread holds the map, so no lock is
    /// taken.
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, iter: I) {
        for (k, v) in iter {
            let hash = self.hash(&k);
            let i = self.shard_of(hash);
            let table = self.shards[i]
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner);
            insert_into(table, &self.hasher, hash, k, v);
        }
    }
}

impl<K, V, S> IntoIterator for StripedMap<K, V, S> {
    type Item = (K, V);
    type IntoIter = IntoIter<K, V, S>;

    /// Consumes the map, yielding every entry once, shard by shard.
    fn into_iter(self) -> IntoIter<K, V, S> {
        IntoIter {
            shards: self.shards.into_vec().into_iter(),
            current: None,
            _hasher: PhantomData,
        }
    }
}

impl<'a, K: Clone, V: Clone, S> IntoIterator for &'a StripedMap<K, V, S> {
    type Item = (K, V);
    type IntoIter = Iter<'a, K, V, S>;

    /// Same as [`StripedMap::iter`].
    fn into_iter(self) -> Iter<'a, K, V, S> {
        self.iter()
    }
}

/// The owning iterator of a [`StripedMap`] (from [`IntoIterator`]).
pub struct IntoIter<K, V, S = RandomState> {
    shards: std::vec::IntoIter<Shard<K, V>>,
    current: Option<hash_table::IntoIter<(K, V)>>,
    /// The map's hasher type (the hasher itself was dropped with the map).
    _hasher: PhantomData<fn() -> S>,
}

impl<K, V, S> Iterator for IntoIter<K, V, S> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(kv) = self.current.as_mut().and_then(Iterator::next) {
                return Some(kv);
            }
            let shard = self.shards.next()?;
            let table = shard
                .into_inner()
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner);
            self.current = Some(table.into_iter());
        }
    }
}

impl<K, V, S> fmt::Debug for IntoIter<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IntoIter")
            .field("shards_left", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// The iterator of [`StripedMap::iter`]: clones of the entries, one shard's snapshot at
/// a time, holding no lock between calls to `next`.
pub struct Iter<'a, K, V, S = RandomState> {
    map: &'a StripedMap<K, V, S>,
    next_shard: usize,
    /// The clones of the current shard's entries not yet yielded (in the shard's
    /// arbitrary order, taken from the back; the allocation is reused across shards).
    buf: Vec<(K, V)>,
}

impl<K: Clone, V: Clone, S> Iterator for Iter<'_, K, V, S> {
    type Item = (K, V);

    fn next(&mut self) -> Option<(K, V)> {
        loop {
            if let Some(kv) = self.buf.pop() {
                return Some(kv);
            }
            if self.next_shard == self.map.shards() {
                return None;
            }
            let guard = self.map.read_shard(self.next_shard);
            self.next_shard += 1;
            self.buf
                .extend(guard.iter().map(|(k, v)| (k.clone(), v.clone())));
            drop(guard);
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let upper = (self.next_shard == self.map.shards()).then_some(self.buf.len());
        (self.buf.len(), upper)
    }
}

impl<K, V, S> fmt::Debug for Iter<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Iter")
            .field("next_shard", &self.next_shard)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

/// A read guard on one entry of a [`StripedMap`] (from [`StripedMap::get`]): holds the
/// entry's shard read lock until dropped, and dereferences to the value.
pub struct Ref<'a, K, V, S = RandomState> {
    key: *const K,
    value: *const V,
    _guard: RwLockReadGuard<'a, Table<K, V>>,
    /// The map's hasher type (the guard does not use the hasher).
    _hasher: PhantomData<fn() -> S>,
}

impl<K, V, S> Ref<'_, K, V, S> {
    /// The stored key.
    pub fn key(&self) -> &K {
        // SAFETY: `key` was taken from `find` on the table that `_guard` guards. While
        // the read guard lives no writer can lock the shard, so the table is not
        // modified: the entry is not moved (no rehash), dropped or mutably borrowed, and
        // the pointer stays valid for reads. The returned borrow is tied to `&self`, so
        // it ends before the guard is dropped.
        unsafe { &*self.key }
    }

    /// The value.
    pub fn value(&self) -> &V {
        // SAFETY: as in `key`: the entry `value` points to cannot be modified, moved or
        // dropped while `_guard` (which outlives the returned borrow) holds the read lock.
        unsafe { &*self.value }
    }

    /// The key and the value.
    pub fn pair(&self) -> (&K, &V) {
        (self.key(), self.value())
    }
}

impl<K, V, S> Deref for Ref<'_, K, V, S> {
    type Target = V;

    fn deref(&self) -> &V {
        self.value()
    }
}

impl<K: fmt::Debug, V: fmt::Debug, S> fmt::Debug for Ref<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ref")
            .field("key", self.key())
            .field("value", self.value())
            .finish()
    }
}

/// A write guard on one entry of a [`StripedMap`] (from [`StripedMap::get_mut`] or an
/// [`Entry`]): holds the shard's write lock until dropped, gives the stored key, and
/// dereferences mutably to the value.
pub struct RefMut<'a, K, V, S = RandomState> {
    key: *const K,
    value: *mut V,
    _guard: RwLockWriteGuard<'a, Table<K, V>>,
    /// The map's hasher type (the guard does not use the hasher).
    _hasher: PhantomData<fn() -> S>,
}

impl<K, V, S> RefMut<'_, K, V, S> {
    /// Splits the `&mut` borrow of one entry of a table into a pointer to its key, for
    /// reads only, and a pointer to its value. The two fields are disjoint, so a `&K`
    /// from the first and a `&mut V` from the second never overlap.
    fn split(entry: &mut (K, V)) -> (*const K, *mut V) {
        let (k, v) = entry;
        (&*k, v)
    }

    /// The stored key.
    pub fn key(&self) -> &K {
        // SAFETY: `key` was derived from a `&mut (K, V)` into the table that `_guard`
        // guards. While the write guard lives nobody else can lock the shard, and this
        // type never touches the table through the guard, so the entry is not moved,
        // dropped or borrowed elsewhere. Only this shared access to the key is ever made
        // through `key`, and `value` covers the disjoint value field, so no `&mut V`
        // handed out by `value_mut` or `pair_mut` overlaps it. The borrow is tied to
        // `&self`, so it ends before the guard drops.
        unsafe { &*self.key }
    }

    /// The value.
    pub fn value(&self) -> &V {
        // SAFETY: `value` was derived, like `key`, from a `&mut (K, V)` into the table
        // that `_guard` guards, which nobody else can access while the guard lives (see
        // `key`); the borrow returned is tied to `&self`, so it cannot overlap a `&mut`
        // handed out by `value_mut` or `pair_mut`, and it ends before the guard drops.
        unsafe { &*self.value }
    }

    /// The value, mutably.
    pub fn value_mut(&mut self) -> &mut V {
        // SAFETY: as in `value`; the borrow is tied to `&mut self`, so it is the only
        // reference to the value for its duration.
        unsafe { &mut *self.value }
    }

    /// The stored key and the value, mutably.
    pub fn pair_mut(&mut self) -> (&K, &mut V) {
        // SAFETY: as in `key` and `value_mut`: the key and the value are disjoint fields
        // of the entry, the key is only ever read, and the `&mut V` is tied to
        // `&mut self`, so it is the only reference to the value for its duration.
        unsafe { (&*self.key, &mut *self.value) }
    }
}

impl<K, V, S> Deref for RefMut<'_, K, V, S> {
    type Target = V;

    fn deref(&self) -> &V {
        self.value()
    }
}

impl<K, V, S> DerefMut for RefMut<'_, K, V, S> {
    fn deref_mut(&mut self) -> &mut V {
        self.value_mut()
    }
}

impl<K, V: fmt::Debug, S> fmt::Debug for RefMut<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefMut")
            .field("value", self.value())
            .finish()
    }
}

/// The entry of one key in a [`StripedMap`] (from [`StripedMap::entry`]), present or
/// not. It holds the key's shard write lock, so the key's presence cannot change until
/// it is dropped or turned into a [`RefMut`].
pub struct Entry<'a, K, V, S = RandomState> {
    guard: RwLockWriteGuard<'a, Table<K, V>>,
    /// The map's hasher, to rehash the table if an insert grows it.
    hasher: &'a S,
    /// The key's hash, computed once by [`StripedMap::entry`].
    hash: u64,
    key: K,
}

impl<'a, K: Hash + Eq, V, S: BuildHasher> Entry<'a, K, V, S> {
    /// The key given to [`StripedMap::entry`].
    pub fn key(&self) -> &K {
        &self.key
    }

    /// Whether the key is present.
    pub fn is_occupied(&self) -> bool {
        self.guard.find(self.hash, is_key(&self.key)).is_some()
    }

    /// Calls `f` on the value if the key is present; returns the entry (the lock is still
    /// held).
    pub fn and_modify(mut self, f: impl FnOnce(&mut V)) -> Self {
        if let Some((_, v)) = self.guard.find_mut(self.hash, is_key(&self.key)) {
            f(v);
        }
        self
    }

    /// The value, after inserting `value` if the key was absent.
    pub fn or_insert(self, value: V) -> RefMut<'a, K, V, S> {
        self.or_insert_with(|| value)
    }

    /// The value, after inserting `f()` if the key was absent (`f` is not called
    /// otherwise).
    pub fn or_insert_with(self, f: impl FnOnce() -> V) -> RefMut<'a, K, V, S> {
        let Entry {
            mut guard,
            hasher,
            hash,
            key,
        } = self;
        let entry = guard
            .entry(hash, is_key(&key), rehash(hasher))
            .or_insert_with(|| (key, f()))
            .into_mut();
        let (key, value) = RefMut::<K, V, S>::split(entry);
        RefMut {
            key,
            value,
            _guard: guard,
            _hasher: PhantomData,
        }
    }

    /// The value, after inserting `V::default()` if the key was absent.
    pub fn or_default(self) -> RefMut<'a, K, V, S>
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }

    /// Sets the value (replacing any; a present entry keeps its stored key) and returns
    /// it.
    pub fn insert(self, value: V) -> RefMut<'a, K, V, S> {
        let Entry {
            mut guard,
            hasher,
            hash,
            key,
        } = self;
        let entry = match guard.entry(hash, is_key(&key), rehash(hasher)) {
            hash_table::Entry::Occupied(o) => {
                let slot = o.into_mut();
                slot.1 = value;
                slot
            }
            hash_table::Entry::Vacant(v) => v.insert((key, value)).into_mut(),
        };
        let (key, value) = RefMut::<K, V, S>::split(entry);
        RefMut {
            key,
            value,
            _guard: guard,
            _hasher: PhantomData,
        }
    }
}

impl<K: fmt::Debug, V, S> fmt::Debug for Entry<'_, K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Entry")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
#[path = "striped_tests.rs"]
mod tests;
