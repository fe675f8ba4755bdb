// A cycle in the declared order is rejected where it is declared.
strata_sync::lock_levels! {
    pub First: Third;
    pub Second: First;
    pub Third: Second;
}

fn main() {}
