//! `strata_queue::Queue` against crossbeam's `SegQueue`, whose surface it copies: long
//! random single-threaded sequences of `push`, `pop`, `push_mut`, `pop_mut`, `len`
//! and `is_empty` run on both, and every result is compared after every step, at ring
//! sizes that make the queue cross many rings. On one thread `len` and `is_empty` are
//! exact, as `SegQueue`'s are.

use crossbeam_queue::SegQueue as Peer;
use strata_queue::{Queue, SegQueue};

/// A small deterministic generator (xorshift64*), so that a failure names its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

const SEEDS: u64 = if cfg!(miri) { 2 } else { 16 };
const STEPS: usize = if cfg!(miri) { 300 } else { 20_000 };

#[test]
fn random_sequences_match_segqueue() {
    for seed in 1..=SEEDS {
        for ring_size in [2, 8, 1024] {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut ours = Queue::<String>::with_ring_size(ring_size);
            let mut peer = Peer::<String>::new();
            // Phases that favour pushes, then pops, so the length swings widely.
            for step in 0..STEPS {
                let push_bias = if (step / 500) % 2 == 0 { 6 } else { 3 };
                let what = format!("seed {seed}, ring {ring_size}, step {step}");
                match rng.next() % 10 {
                    r if r < push_bias => {
                        let v = rng.next().to_string();
                        if r % 2 == 0 {
                            ours.push(v.clone());
                            peer.push(v);
                        } else {
                            ours.push_mut(v.clone());
                            peer.push_mut(v);
                        }
                    }
                    8 => assert_eq!(ours.pop_mut(), peer.pop_mut(), "{what}: pop_mut"),
                    _ => assert_eq!(ours.pop(), peer.pop(), "{what}: pop"),
                }
                assert_eq!(ours.len(), peer.len(), "{what}: len");
                assert_eq!(ours.is_empty(), peer.is_empty(), "{what}: is_empty");
            }
            let rest: Vec<String> = ours.into_iter().collect();
            let peer_rest: Vec<String> = peer.into_iter().collect();
            assert_eq!(rest, peer_rest, "seed {seed}, ring {ring_size}: into_iter");
        }
    }
}

/// The alias makes switching a one-word change: the same program compiles against
/// both, `new` is a `const fn`, and `Default` and `Debug` exist.
#[test]
fn segqueue_alias_has_crossbeams_surface() {
    static OURS: SegQueue<u32> = SegQueue::new();
    static PEER: Peer<u32> = Peer::new();
    for v in 0..100 {
        OURS.push(v);
        PEER.push(v);
    }
    assert_eq!(OURS.len(), PEER.len());
    while let Some(v) = PEER.pop() {
        assert_eq!(OURS.pop(), Some(v));
    }
    assert!(OURS.is_empty() && OURS.pop().is_none());
    let d: SegQueue<u8> = SegQueue::default();
    assert!(format!("{d:?}").starts_with("Queue {"));
}
