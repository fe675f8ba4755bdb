// A token speaks for the locks of the thread that holds it: it cannot move to another.
use strata_sync::ordered::LockToken;

fn main() {
    let root = LockToken::acquire_root().unwrap();
    std::thread::spawn(move || drop(root)).join().unwrap();
}
