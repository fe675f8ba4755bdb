//! Unit tests and loom models. The models run as loom models under
//! `--cfg strata_loom` and once as plain tests otherwise.

use std::sync::Arc;

use strata_primitives::{model, thread};
use strata_reclaim::{epoch, hazard};

use crate::{MsQueue, TreiberStack};

/// Checks that `popped` holds every value of `pushed` (per producer, in push order)
/// exactly once, and that each producer's values came out in push order.
fn assert_fifo_per_producer(producers: &[Vec<u64>], popped: &[u64]) {
    let mut all: Vec<u64> = producers.iter().flatten().copied().collect();
    let mut got = popped.to_vec();
    all.sort_unstable();
    got.sort_unstable();
    assert_eq!(all, got, "conservation: every value popped exactly once");
    for p in producers {
        let order: Vec<u64> = popped.iter().copied().filter(|v| p.contains(v)).collect();
        assert_eq!(&order, p, "FIFO per producer");
    }
}

/// Producer vs consumer: one thread pushes two values while the main thread pops
/// twice; then the rest is drained. Two threads keep the model small enough for CI.
fn ms_queue_model<R: strata_reclaim::Reclaim + 'static>(make: fn() -> R) {
    model(move || {
        let q = Arc::new(MsQueue::with_reclaim(make()));
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                q.push(1u64);
                q.push(2);
            })
        };
        let mut popped: Vec<u64> = (0..2).filter_map(|_| q.pop()).collect();
        producer.join().unwrap();
        while let Some(v) = q.pop() {
            popped.push(v);
        }
        assert_fifo_per_producer(&[vec![1, 2]], &popped);
        assert!(q.is_empty());
    });
}

/// Two producers race on the tail (and on helping it forward); the main thread then
/// drains: both values, each once.
fn ms_queue_two_producers<R: strata_reclaim::Reclaim + 'static>(make: fn() -> R) {
    model(move || {
        let q = Arc::new(MsQueue::with_reclaim(make()));
        let t = {
            let q = Arc::clone(&q);
            thread::spawn(move || q.push(11u64))
        };
        q.push(1);
        t.join().unwrap();
        let popped: Vec<u64> = core::iter::from_fn(|| q.pop()).collect();
        assert_fifo_per_producer(&[vec![1], vec![11]], &popped);
    });
}

#[test]
fn loom_ms_queue_two_producers_epoch() {
    ms_queue_two_producers(epoch::Domain::new);
}

#[test]
fn loom_ms_queue_two_producers_hazard() {
    ms_queue_two_producers(hazard::Domain::new);
}

#[test]
fn loom_ms_queue_epoch() {
    ms_queue_model(epoch::Domain::new);
}

#[test]
fn loom_ms_queue_hazard() {
    ms_queue_model(hazard::Domain::new);
}

fn treiber_model<R: strata_reclaim::Reclaim + 'static>(make: fn() -> R) {
    model(move || {
        let s = Arc::new(TreiberStack::with_reclaim(make()));
        s.push(1u64);
        let t = {
            let s = Arc::clone(&s);
            thread::spawn(move || {
                s.push(2);
                s.pop()
            })
        };
        let mine = s.pop();
        let theirs = t.join().unwrap();
        let mut rest = Vec::new();
        while let Some(v) = s.pop() {
            rest.push(v);
        }
        let mut all: Vec<u64> = mine.into_iter().chain(theirs).chain(rest).collect();
        all.sort_unstable();
        assert_eq!(all, vec![1, 2], "conservation: every value popped exactly once");
        // The thread pushed 2 before popping, so its pop cannot find the stack empty.
        assert!(theirs.is_some(), "a pop after a push on the same thread saw an empty stack");
    });
}

#[test]
fn loom_treiber_epoch() {
    treiber_model(epoch::Domain::new);
}

#[test]
fn loom_treiber_hazard() {
    treiber_model(hazard::Domain::new);
}

#[cfg(not(strata_loom))]
mod plain {
    use super::*;

    #[test]
    fn queue_is_fifo_and_drops_what_is_left() {
        let q = MsQueue::new();
        assert!(q.is_empty());
        for i in 0..100 {
            q.push(Box::new(i));
        }
        for i in 0..50 {
            assert_eq!(q.pop().map(|b| *b), Some(i));
        }
        assert!(!q.is_empty());
        drop(q); // the remaining 50 boxes are freed (miri checks)
    }

    #[test]
    fn queue_iter_extend() {
        let mut q: MsQueue<u32> = (0..5).collect();
        q.extend([5, 6]);
        assert_eq!(q.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn stack_is_lifo_and_drops_what_is_left() {
        let mut s = TreiberStack::with_reclaim(hazard::Hazard);
        s.extend((0..10).map(|i| i.to_string()));
        assert_eq!(s.pop().as_deref(), Some("9"));
        assert_eq!(s.pop().as_deref(), Some("8"));
        assert_eq!(
            s.into_iter().collect::<Vec<_>>(),
            (0..8).rev().map(|i| i.to_string()).collect::<Vec<_>>()
        );
        let s = TreiberStack::new();
        s.push(vec![1u8; 10]);
        drop(s);
    }
}
