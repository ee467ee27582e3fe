//! `PVMMU_PROPTEST_CASES`: zero or garbage is an error, never a property that runs no case.

mod common;

use common::gen::parse_cases;

#[test]
fn zero_or_garbage_cases_are_refused() {
    assert_eq!(parse_cases(None), Ok(256));
    assert_eq!(parse_cases(Some("1000")), Ok(1000));
    assert_eq!(parse_cases(Some(" 7 ")), Ok(7));
    let zero = parse_cases(Some("0")).unwrap_err();
    assert!(zero.contains("would run no case"), "{zero}");
    for bad in ["", "ten", "-1", "1e3"] {
        assert!(parse_cases(Some(bad)).is_err(), "{bad:?} accepted");
    }
}
