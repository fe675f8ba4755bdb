//! Loom models and unit tests of [`crate::seqlock`].
//!
//! The models run under `--cfg strata_loom` (every interleaving up to the preemption
//! bound) and once as plain tests otherwise. Values whose words are all equal make a
//! torn read visible: a copy mixing two writes has unequal words. Under
//! `--cfg strata_weaken` the store that ends a write is `Relaxed`, and the models that
//! must notice are marked `should_panic`.
//!
//! Planted bugs these models caught (tried by hand, then reverted), together with the
//! models of [`crate::versioned`]: a reader that does not re-check the sequence (3 of
//! the 4 models fail: a torn `[0, 1]`, a snapshot that is not its generation's), and
//! a reader without its `fence(Acquire)` (3 of 4 fail). The fourth,
//! `loom_seqlock_two_writers_serialize`, races writers only.

use bytemuck::{Pod, Zeroable};
use strata_primitives::sync::Arc;
use strata_primitives::{model, thread};

use super::SeqLock;

/// Two writers store `[1, 1]` and `[2, 2]` while a reader reads twice (blocking and
/// single-attempt): it never gets a mix of two values.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "torn read"))]
fn loom_seqlock_read_never_torn() {
    model(|| {
        let lock = Arc::new(SeqLock::new([0u64; 2]));
        let writers: Vec<_> = [1u64, 2]
            .into_iter()
            .map(|v| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || lock.store([v; 2]))
            })
            .collect();
        let a = lock.read();
        assert_eq!(a[0], a[1], "torn read: {a:?}");
        if let Some(b) = lock.try_read() {
            assert_eq!(b[0], b[1], "torn read: {b:?}");
        }
        for w in writers {
            w.join().unwrap();
        }
        let last = lock.read();
        assert!(
            last == [1; 2] || last == [2; 2],
            "torn read: final value {last:?}"
        );
        assert_eq!(lock.sequence(), 4);
    });
}

/// Two writers update in place (`+1` and `+10` to each word): they serialize, so the
/// final value has both updates, and a concurrent reader sees 0, one or both of them.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "lost update"))]
fn loom_seqlock_two_writers_serialize() {
    model(|| {
        let lock = Arc::new(SeqLock::new([0u64; 2]));
        let writers: Vec<_> = [1u64, 10]
            .into_iter()
            .map(|d| {
                let lock = Arc::clone(&lock);
                thread::spawn(move || {
                    lock.write(|v| {
                        v[0] += d;
                        v[1] += d;
                    })
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        let v = lock.read();
        assert_eq!(v, [11, 11], "lost update: {v:?}");
        assert_eq!(lock.sequence(), 4);
    });
}

/// 33 bytes, alignment 1 (shared with the `Versioned` tests; bytemuck's array impls stop at 32 without its
/// `min_const_generics` feature).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub(crate) struct Bytes33 {
    pub(crate) head: [u8; 32],
    pub(crate) last: u8,
}

/// A type with alignment 16 (larger than a word).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
#[repr(C, align(16))]
pub(crate) struct Align16 {
    pub(crate) a: u64,
    pub(crate) b: u64,
}

#[test]
fn api_new_read_try_read_store_write() {
    model(|| {
        let lock = SeqLock::new(5u32);
        assert_eq!(lock.read(), 5);
        assert_eq!(lock.try_read(), Some(5));
        assert_eq!(lock.sequence(), 0);
        lock.store(6);
        assert_eq!(lock.read(), 6);
        assert_eq!(lock.sequence(), 2);
        lock.write(|v| *v *= 7);
        assert_eq!(lock.read(), 42);
        assert_eq!(lock.sequence(), 4);
        assert_eq!(lock.into_inner(), 42);
    });
}

#[test]
fn api_default_from_clone() {
    model(|| {
        let d: SeqLock<[u16; 3]> = SeqLock::default();
        assert_eq!(d.read(), [0; 3]);
        let f = SeqLock::from(9i64);
        f.store(10);
        let c = f.clone();
        assert_eq!(c.read(), 10);
        assert_eq!(c.sequence(), 0, "a clone is a new lock");
        f.store(11);
        assert_eq!(c.read(), 10, "a clone is independent");
    });
}

#[test]
fn api_debug_shows_value_or_locked() {
    model(|| {
        let lock = SeqLock::new(3u8);
        assert_eq!(format!("{lock:?}"), "SeqLock { value: 3, sequence: 0 }");
        let mut inside = String::new();
        lock.write(|v| {
            // The lock is held: Debug does not wait for it.
            inside = format!("{lock:?}");
            *v = 4;
        });
        assert_eq!(inside, "SeqLock { value: <locked> }");
        assert_eq!(format!("{lock:?}"), "SeqLock { value: 4, sequence: 2 }");
    });
}

#[test]
fn try_read_fails_while_writing() {
    model(|| {
        let lock = SeqLock::new(1u64);
        let mut seen = None;
        lock.write(|v| {
            seen = Some(lock.try_read());
            assert_eq!(lock.sequence() % 2, 1, "odd while a write is in progress");
            *v = 2;
        });
        assert_eq!(seen, Some(None));
        assert_eq!(lock.try_read(), Some(2));
    });
}

/// Round trips of sizes around the word decomposition: zero-sized, one byte, 7 bytes
/// (a `u32` and three `u8` pieces), 33 bytes (4 words and a byte), alignment 16.
#[test]
fn odd_sizes_and_alignments_round_trip() {
    model(|| {
        let zst = SeqLock::new(());
        zst.store(());
        zst.write(|_| {});
        assert_eq!(zst.read(), ());
        assert_eq!(zst.sequence(), 4);

        let one = SeqLock::new(0xA5u8);
        one.write(|v| *v = !*v);
        assert_eq!(one.read(), 0x5A);

        let seven = SeqLock::new([1u8, 2, 3, 4, 5, 6, 7]);
        assert_eq!(seven.read(), [1, 2, 3, 4, 5, 6, 7]);
        seven.write(|v| v.reverse());
        assert_eq!(seven.read(), [7, 6, 5, 4, 3, 2, 1]);

        let mut init = Bytes33::zeroed();
        for (i, b) in init.head.iter_mut().enumerate() {
            *b = i as u8;
        }
        init.last = 32;
        let big = SeqLock::new(init);
        assert_eq!(big.read(), init);
        big.write(|v| v.last = 200);
        let mut expected = init;
        expected.last = 200;
        assert_eq!(big.try_read(), Some(expected));
        assert_eq!(big.into_inner(), expected);

        let a = SeqLock::new(Align16 { a: 1, b: 2 });
        a.store(Align16 { a: u64::MAX, b: 3 });
        assert_eq!(a.read(), Align16 { a: u64::MAX, b: 3 });

        let floats = SeqLock::new([1.5f32, -0.0, f32::INFINITY]);
        assert_eq!(floats.read()[2], f32::INFINITY);
    });
}

#[test]
fn send_sync_when_t_send() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SeqLock<u64>>();
    assert_send_sync::<SeqLock<Bytes33>>();
    assert_send_sync::<SeqLock<Align16>>();
}

/// The storage is inline and exactly as large as the value (rounded up to a word's
/// alignment), next to the 8-byte sequence.
#[cfg(not(strata_loom))]
#[test]
fn storage_is_inline() {
    use core::mem::size_of;
    assert_eq!(size_of::<SeqLock<[u64; 4]>>(), 8 + 32);
    assert_eq!(size_of::<SeqLock<u8>>(), 16);
    assert_eq!(size_of::<SeqLock<()>>(), 8);
    assert_eq!(core::mem::align_of::<SeqLock<Align16>>(), 16);
    assert_eq!(size_of::<SeqLock<Align16>>(), 32);
}

/// `new` is a `const fn`: a lock can be a `static`.
#[cfg(not(strata_loom))]
#[test]
fn const_new_static() {
    static LOCK: SeqLock<[u32; 2]> = SeqLock::new([1, 2]);
    LOCK.write(|v| v[0] = 3);
    assert_eq!(LOCK.read(), [3, 2]);
}

/// A panic in the writer's closure leaves the old value, releases the lock and
/// restores the sequence; the lock stays usable.
#[cfg(not(strata_loom))]
#[test]
fn panic_in_writer_releases_the_lock() {
    use std::panic::{AssertUnwindSafe, catch_unwind};
    let lock = SeqLock::new([7u64; 4]);
    lock.store([8; 4]);
    let r = catch_unwind(AssertUnwindSafe(|| {
        lock.write(|v| {
            v[0] = 99;
            panic!("boom");
        })
    }));
    assert!(r.is_err());
    assert_eq!(lock.sequence(), 2, "the sequence is even and unchanged");
    assert_eq!(
        lock.try_read(),
        Some([8; 4]),
        "the old value, readable at once"
    );
    lock.write(|v| v[1] = 1);
    assert_eq!(lock.read(), [8, 1, 8, 8]);
    assert_eq!(lock.sequence(), 4);
}

/// Real threads on an odd-sized value (words, a `u32` and a byte): under miri this
/// checks that the racy copies are atomic and free of uninitialized bytes.
#[cfg(not(strata_loom))]
#[test]
fn concurrent_odd_size_never_torn() {
    let rounds: u8 = if cfg!(miri) { 20 } else { 200 };
    let lock = SeqLock::new([0u8; 13]);
    std::thread::scope(|s| {
        for base in [0u8, 100] {
            let lock = &lock;
            s.spawn(move || {
                for i in 0..rounds / 2 {
                    lock.store([base + i % 100; 13]);
                }
            });
        }
        s.spawn(|| {
            for _ in 0..rounds {
                let v = lock.read();
                assert!(v.iter().all(|&b| b == v[0]), "torn read: {v:?}");
                if let Some(v) = lock.try_read() {
                    assert!(v.iter().all(|&b| b == v[0]), "torn read: {v:?}");
                }
            }
        });
    });
    assert_eq!(lock.sequence(), 2 * u64::from(rounds / 2) * 2);
}
