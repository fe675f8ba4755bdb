use super::*;

crate::lock_levels! {
    /// Top.
    A;
    B: A;
    C: B;
    /// A sibling of `B`.
    S: A;
    /// After both `C` and `S`: a diamond over `A`.
    D: C, S;
}

/// Compiles only if `X: LockAfter<Y>` (the negative cases are the trybuild cases).
fn after<X: LockAfter<Y>, Y: Level>() {}

#[test]
fn order_is_the_transitive_closure() {
    after::<A, Unlocked>();
    after::<D, Unlocked>();
    after::<B, A>();
    after::<C, B>();
    after::<C, A>();
    after::<D, A>();
    after::<D, B>();
    after::<D, C>();
    after::<D, S>();
    after::<S, A>();
}

const LEVELS: &[(&str, &[&str])] = &[
    ("A", &[]),
    ("B", &["A"]),
    ("C", &["B"]),
    ("S", &["A"]),
    ("D", &["C", "S"]),
];

#[test]
fn closure_of_the_declared_parents() {
    let m: [[bool; 5]; 5] = __private::closure(LEVELS);
    let names = ["A", "B", "C", "S", "D"];
    let expected_after: [&[&str]; 5] = [&[], &["A"], &["A", "B"], &["A"], &["A", "B", "C", "S"]];
    for (i, row) in m.iter().enumerate() {
        for (j, &is_after) in row.iter().enumerate() {
            assert_eq!(
                is_after,
                expected_after[i].contains(&names[j]),
                "{} after {}",
                names[i],
                names[j]
            );
            assert_eq!(__private::after(&m, LEVELS, names[i], names[j]), is_after);
        }
    }
    assert_eq!(__private::index_of(LEVELS, "Z"), 5);
    assert!(!__private::after(&m, LEVELS, "Z", "A"));
}

#[test]
fn closure_marks_cycles_on_the_diagonal() {
    const CYCLIC: &[(&str, &[&str])] = &[
        ("X", &["Z"]),
        ("Y", &["X"]),
        ("Z", &["Y"]),
        ("W", &["Z"]),
        ("V", &["Missing"]),
    ];
    let m: [[bool; 5]; 5] = __private::closure(CYCLIC);
    // X, Y and Z are on the cycle; W is after it, not on it; V's parent is skipped.
    assert_eq!(
        [m[0][0], m[1][1], m[2][2], m[3][3], m[4][4]],
        [true, true, true, false, false]
    );
    assert!(m[3][0] && m[3][1] && m[3][2]);
    assert_eq!(m[4], [false; 5]);
}

#[test]
fn nested_locking_along_the_order() {
    strata_primitives::model(nested_locking);
}

fn nested_locking() {
    let a: OrderedMutex<u32, A> = OrderedMutex::new(1);
    let c: OrderedMutex<u32, C> = OrderedMutex::new(2);
    let d: OrderedMutex<u32, D> = OrderedMutex::new(3);
    let mut root = LockToken::acquire_root().unwrap();
    {
        let (ga, t) = a.lock(&mut root).unwrap();
        assert_eq!(t.level_name(), "A");
        let (gc, t) = c.lock(t).unwrap();
        let (mut gd, _) = d.lock(t).unwrap();
        *gd += *ga + *gc;
    }
    // The root is usable again once the guards are gone; a level may be skipped.
    let (gd, _) = d.lock(&mut root).unwrap();
    assert_eq!(*gd, 6);
}

#[test]
#[cfg_attr(
    all(strata_loom, strata_weaken),
    should_panic(expected = "RootTokenHeld")
)]
fn one_root_token_per_thread() {
    strata_primitives::model(one_root_token);
}

fn one_root_token() {
    let root = LockToken::acquire_root().unwrap();
    assert_eq!(
        LockToken::acquire_root().unwrap_err(),
        OrderError::RootTokenHeld
    );
    drop(root);
    let again = LockToken::acquire_root().unwrap();
    // Another thread has its own claim.
    strata_primitives::thread::spawn(|| {
        let root = LockToken::acquire_root().unwrap();
        assert_eq!(root.level_name(), "Unlocked");
    })
    .join()
    .unwrap();
    drop(again);
}

#[test]
#[cfg(not(strata_loom))] // loom reports a panicking thread as a failed model.
fn poisoning_yields_guard_and_token() {
    let m: strata_primitives::sync::Arc<OrderedMutex<u32, A>> =
        strata_primitives::sync::Arc::new(OrderedMutex::new(5));
    let m2 = m.clone();
    let r = strata_primitives::thread::spawn(move || {
        let mut root = LockToken::acquire_root().unwrap();
        let (_g, _) = m2.lock(&mut root).unwrap();
        panic!("poison it");
    })
    .join();
    assert!(r.is_err());
    let mut root = LockToken::acquire_root().unwrap();
    let err = m.lock(&mut root).unwrap_err();
    let (g, t) = err.into_inner();
    assert_eq!(*g, 5);
    assert_eq!(t.level_name(), "A");
}

#[test]
#[cfg(not(strata_loom))] // std's `Mutex` Debug text.
fn into_inner_get_mut_debug() {
    let mut m: OrderedMutex<Vec<u8>, B> = OrderedMutex::new(vec![1]);
    m.get_mut().unwrap().push(2);
    assert_eq!(m.level_name(), "B");
    assert_eq!(
        format!("{m:?}"),
        "OrderedMutex { level: \"B\", inner: AdaptiveMutex { data: [1, 2], poisoned: false, .. } }"
    );
    let root = LockToken::acquire_root().unwrap();
    assert_eq!(format!("{root:?}"), "LockToken(\"Unlocked\")");
    assert_eq!(m.into_inner().unwrap(), vec![1, 2]);
}

/// Two threads take ordered locks concurrently, each through its own root token: one
/// takes `A` then `C` then `D`, the other `C` then `D` (skipping `A`) and `S` then `D`
/// (a sibling branch of the diamond). Every increment happens under the locks (no lost
/// update) and loom finds no deadlock in any interleaving. Under `strata_weaken` the root
/// claim is std's thread-local, shared by loom's modelled threads, and the inner
/// `AdaptiveMutex` releases with `Relaxed`: the model fails with whichever loom meets
/// first (`RootTokenHeld`, or a causality violation on the protected value), so the
/// expected panic names no message.
#[test]
#[cfg_attr(all(strata_loom, strata_weaken), should_panic)]
fn ordered_locks_race_without_deadlock() {
    use strata_primitives::sync::Arc;
    strata_primitives::model(|| {
        let locks = Arc::new((
            OrderedMutex::<u32, A>::new(0),
            OrderedMutex::<u32, C>::new(0),
            OrderedMutex::<u32, S>::new(0),
            OrderedMutex::<u32, D>::new(0),
        ));
        let other = Arc::clone(&locks);
        let t = strata_primitives::thread::spawn(move || {
            let (a, c, _, d) = &*other;
            let mut root = LockToken::acquire_root().unwrap();
            let (mut ga, t) = a.lock(&mut root).unwrap();
            let (mut gc, t) = c.lock(t).unwrap();
            let (mut gd, _) = d.lock(t).unwrap();
            *ga += 1;
            *gc += 1;
            *gd += 1;
        });
        {
            let (_, c, s, d) = &*locks;
            let mut root = LockToken::acquire_root().unwrap();
            {
                let (mut gc, t) = c.lock(&mut root).unwrap();
                let (mut gd, _) = d.lock(t).unwrap();
                *gc += 1;
                *gd += 1;
            }
            let (mut gs, t) = s.lock(&mut root).unwrap();
            let (mut gd, _) = d.lock(t).unwrap();
            *gs += 1;
            *gd += 1;
        }
        t.join().unwrap();
        let (a, c, s, d) = &*locks;
        let mut root = LockToken::acquire_root().unwrap();
        assert_eq!(*a.lock(&mut root).unwrap().0, 1);
        assert_eq!(*c.lock(&mut root).unwrap().0, 2);
        assert_eq!(*s.lock(&mut root).unwrap().0, 1);
        assert_eq!(*d.lock(&mut root).unwrap().0, 3);
    });
}

/// A second hierarchy in the same module: its helper items do not clash with the first
/// one's, and its levels are not ordered against the first one's.
mod second_invocation {
    use super::*;

    crate::lock_levels! {
        pub(super) Other;
        pub(super) OtherChild: Other,;
    }

    #[test]
    fn two_hierarchies_in_one_module() {
        after::<Other, Unlocked>();
        after::<OtherChild, Other>();
        strata_primitives::model(|| {
            let m: OrderedMutex<u8, OtherChild> = OrderedMutex::default();
            assert_eq!(m.level_name(), "OtherChild");
        });
    }
}

#[test]
fn rwlock_read_and_write_follow_the_order() {
    strata_primitives::model(|| {
        let routes: OrderedRwLock<Vec<u32>, B> = OrderedRwLock::new(vec![1]);
        let count: OrderedMutex<usize, C> = OrderedMutex::new(0);
        let mut root = LockToken::acquire_root().unwrap();
        {
            let (mut w, t) = routes.write(&mut root).unwrap();
            w.push(2);
            assert_eq!(t.level_name(), "B");
            let (mut n, _) = count.lock(t).unwrap();
            *n = w.len();
        }
        let (r, t) = routes.read(&mut root).unwrap();
        let (n, _) = count.lock(t).unwrap();
        assert_eq!((r.as_slice(), *n), (&[1, 2][..], 2));
    });
}

#[test]
#[cfg(not(strata_loom))] // std's Debug text; loom reports a panicking thread as a failure.
fn rwlock_poisoning_get_mut_into_inner_debug() {
    let lock: strata_primitives::sync::Arc<OrderedRwLock<u32, A>> =
        strata_primitives::sync::Arc::new(OrderedRwLock::default());
    let l2 = lock.clone();
    let r = strata_primitives::thread::spawn(move || {
        let mut root = LockToken::acquire_root().unwrap();
        let (mut w, _) = l2.write(&mut root).unwrap();
        *w = 9;
        panic!("poison it");
    })
    .join();
    assert!(r.is_err());
    let mut root = LockToken::acquire_root().unwrap();
    {
        let (g, t) = lock.read(&mut root).unwrap_err().into_inner();
        assert_eq!((*g, t.level_name()), (9, "A"));
        assert_eq!(format!("{g:?}"), "9");
    }
    {
        let (g, _) = lock.write(&mut root).unwrap_err().into_inner();
        assert_eq!(format!("{g:?}"), "9");
    }
    drop(root);
    let mut lock = strata_primitives::sync::Arc::into_inner(lock).unwrap();
    assert!(format!("{lock:?}").starts_with("OrderedRwLock { level: \"A\""));
    assert_eq!(lock.level_name(), "A");
    *lock.get_mut().unwrap_err().into_inner() = 10;
    assert_eq!(lock.into_inner().unwrap_err().into_inner(), 10);
}
