// The root token stays borrowed while the `Inner` guard lives: it cannot be used to take
// `Outer` meanwhile (which would be `Inner` then `Outer`).
strata_sync::lock_levels! {
    pub Outer;
    pub Inner: Outer;
}

use strata_sync::ordered::{LockToken, OrderedMutex};

fn main() {
    let outer: OrderedMutex<u32, Outer> = OrderedMutex::new(0);
    let inner: OrderedMutex<u32, Inner> = OrderedMutex::new(0);
    let mut root = LockToken::acquire_root().unwrap();
    let (inner_guard, _) = inner.lock(&mut root).unwrap();
    let (_outer_guard, _) = outer.lock(&mut root).unwrap();
    drop(inner_guard);
}
