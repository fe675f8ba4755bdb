// Locking `Ledger` and then `Accounts`, against the declared order.
strata_sync::lock_levels! {
    pub Accounts;
    pub Ledger: Accounts;
}

use strata_sync::ordered::{LockToken, OrderedMutex};

fn main() {
    let accounts: OrderedMutex<u32, Accounts> = OrderedMutex::new(0);
    let ledger: OrderedMutex<u32, Ledger> = OrderedMutex::new(0);
    let mut root = LockToken::acquire_root().unwrap();
    let (_ledger, token) = ledger.lock(&mut root).unwrap();
    let (_accounts, _) = accounts.lock(token).unwrap();
}
