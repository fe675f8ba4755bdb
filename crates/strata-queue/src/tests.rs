//! Unit tests and loom models. The models run as loom models under
//! `--cfg strata_loom` and once as plain tests otherwise.

use std::sync::Arc;

use strata_primitives::{model, thread};
use strata_reclaim::{epoch, hazard};

use crate::{ArrayQueue, MsQueue, TreiberStack};

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
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_ms_queue_two_producers_hazard() {
    ms_queue_two_producers(hazard::Domain::new);
}

#[test]
fn loom_ms_queue_epoch() {
    ms_queue_model(epoch::Domain::new);
}

#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
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
        assert_eq!(
            all,
            vec![1, 2],
            "conservation: every value popped exactly once"
        );
        // The thread pushed 2 before popping, so its pop cannot find the stack empty.
        assert!(
            theirs.is_some(),
            "a pop after a push on the same thread saw an empty stack"
        );
    });
}

#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_treiber_epoch() {
    treiber_model(epoch::Domain::new);
}

#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_treiber_hazard() {
    treiber_model(hazard::Domain::new);
}

/// Pushes `v`, yielding while the ring is full.
fn push_blocking<T>(q: &ArrayQueue<T>, mut v: T) {
    loop {
        match q.push(v) {
            Ok(()) => return,
            Err(back) => {
                v = back;
                thread::yield_now();
            }
        }
    }
}

/// Pops, yielding while the ring is empty.
fn pop_blocking<T>(q: &ArrayQueue<T>) -> T {
    loop {
        if let Some(v) = q.pop() {
            return v;
        }
        thread::yield_now();
    }
}

/// A producer pushes three values through a ring of two slots while the main thread
/// pops three: the third push wraps into the second lap and may find the first
/// slot's pop in flight. Order and conservation.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_ring_wraps_around() {
    model(|| {
        let q = Arc::new(ArrayQueue::new(2));
        let producer = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                for v in [1u64, 2, 3] {
                    push_blocking(&q, v);
                }
            })
        };
        let popped: Vec<u64> = (0..3).map(|_| pop_blocking(&q)).collect();
        producer.join().unwrap();
        assert_fifo_per_producer(&[vec![1, 2, 3]], &popped);
        assert!(q.is_empty());
        assert_eq!(q.len(), 0);
    });
}

/// Two producers race for the slots of a ring of three (never full: three values)
/// while the main thread also pops: every value once, each producer's in order, and
/// no `None` from a pop that follows a completed push.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_ring_two_producers() {
    model(|| {
        let q = Arc::new(ArrayQueue::new(3));
        let t = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                push_blocking(&q, 11u64);
                push_blocking(&q, 12);
            })
        };
        push_blocking(&q, 1);
        // Our own push completed before this pop: it cannot find the ring empty.
        let first = q.pop();
        assert!(
            first.is_some(),
            "a pop after this thread's push saw an empty ring"
        );
        t.join().unwrap();
        let mut popped: Vec<u64> = first.into_iter().collect();
        popped.extend(core::iter::from_fn(|| q.pop()));
        assert_fifo_per_producer(&[vec![1], vec![11, 12]], &popped);
    });
}

/// `force_push` on a full ring of one races a `pop`: every value is either popped or
/// handed back by `force_push`, exactly once.
#[test]
#[cfg_attr(strata_weaken, should_panic(expected = "Causality violation"))]
fn loom_ring_force_push_vs_pop() {
    model(|| {
        let q = Arc::new(ArrayQueue::new(1));
        q.push(1u64).unwrap();
        let t = {
            let q = Arc::clone(&q);
            thread::spawn(move || {
                let a = q.force_push(2);
                let b = q.force_push(3);
                (a, b)
            })
        };
        let popped = q.pop();
        let (a, b) = t.join().unwrap();
        let rest = q.pop();
        assert!(q.pop().is_none());
        let mut all: Vec<u64> = [popped, a, b, rest].into_iter().flatten().collect();
        all.sort_unstable();
        assert_eq!(all, vec![1, 2, 3], "conservation through force_push");
        // The ring holds one value: the last force_push's value always survives it
        // unless the concurrent pop took it.
        assert!(rest == Some(3) || popped == Some(3));
    });
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

    #[test]
    fn ring_basics() {
        use crate::array_queue::CapacityError;
        assert_eq!(
            ArrayQueue::<u8>::try_new(0).unwrap_err(),
            CapacityError::Zero
        );
        assert_eq!(
            ArrayQueue::<u8>::try_new(usize::MAX).unwrap_err(),
            CapacityError::TooLarge(usize::MAX)
        );
        for cap in [1usize, 2, 3, 4, 5, 7, 8, 9] {
            let q = ArrayQueue::new(cap);
            assert_eq!(q.capacity(), cap);
            // Several laps, to cross the lap carry at every capacity.
            for lap in 0..5 {
                assert!(q.is_empty() && !q.is_full());
                assert_eq!(q.len(), 0);
                for i in 0..cap {
                    assert_eq!(q.push(lap * 100 + i), Ok(()));
                    assert_eq!(q.len(), i + 1);
                }
                assert!(q.is_full());
                assert_eq!(q.push(999), Err(999));
                for i in 0..cap {
                    assert_eq!(q.pop(), Some(lap * 100 + i));
                }
                assert_eq!(q.pop(), None);
            }
            // Half full, across the wrap point.
            for i in 0..cap {
                q.push(i).unwrap();
                if i % 2 == 0 {
                    assert_eq!(q.pop(), Some(i / 2));
                }
            }
        }
    }

    #[test]
    fn ring_force_push_evicts_oldest() {
        let q = ArrayQueue::new(3);
        for i in 0..3 {
            assert_eq!(q.force_push(i), None);
        }
        for i in 3..10 {
            assert_eq!(q.force_push(i), Some(i - 3));
            assert_eq!(q.len(), 3);
        }
        assert_eq!(q.into_iter().collect::<Vec<_>>(), vec![7, 8, 9]);
    }

    #[test]
    fn ring_drops_what_is_left() {
        let q = ArrayQueue::new(4);
        for i in 0..7 {
            let _ = q.force_push(Box::new(i));
        }
        assert_eq!(q.pop().map(|b| *b), Some(3));
        let it = q.into_iter();
        assert_eq!(it.len(), 3);
        drop(it); // three boxes freed here (miri checks)
        let q = ArrayQueue::new(2);
        q.push(String::from("left")).unwrap();
        assert_eq!(format!("{q:?}"), "ArrayQueue { len: 1, capacity: 2, .. }");
    }
}
