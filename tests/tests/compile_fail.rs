//! What must not compile: one case per forbidden transition, each with its `.stderr`
//! snapshot (regenerate with `TRYBUILD=overwrite cargo test -p pvmmu-tests --test compile_fail`
//! and review the diff: each snapshot must show the intended reason).

#[test]
fn forbidden_transitions() {
    let t = trybuild::TestCases::new();
    t.compile_fail("compile-fail/*.rs");
}
