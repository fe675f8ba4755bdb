// Two locks of one level held together: siblings are not ordered, so a thread that
// takes `x` then `y` could deadlock with one that takes `y` then `x`.
strata_sync::lock_levels! {
    pub Account;
}

use strata_sync::ordered::{LockToken, OrderedMutex};

fn main() {
    let x: OrderedMutex<u32, Account> = OrderedMutex::new(0);
    let y: OrderedMutex<u32, Account> = OrderedMutex::new(0);
    let mut root = LockToken::acquire_root().unwrap();
    let (_x, token) = x.lock(&mut root).unwrap();
    let (_y, _) = y.lock(token).unwrap();
}
