//! The lock-order misuses of `strata_sync::ordered` do not compile; the expected
//! messages are checked in next to each case in `tests/ui/`.
//! Regenerate with `TRYBUILD=overwrite cargo test -p strata-sync --test ordered_compile_fail`
//! and read the diff.

#[test]
#[cfg_attr(miri, ignore)] // trybuild runs cargo and rustc: not an interpreter's job.
fn lock_order_misuse_is_a_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
}
