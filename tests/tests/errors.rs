//! Every public error type of hal-core and the backends implements `Display` and
//! `core::error::Error` (checked at compile time), and the messages name the cause. The
//! boards' errors are checked in the boards crate (`platform.rs`), for the boards its build
//! has: a dependency on both boards here would switch them on for the whole workspace.

use core::error::Error;

use static_assertions::assert_impl_all;
use typenum::U1;

use backend_native::NativeError;
use backend_xen_pv::mmu::{Cause, Op, Refusal, Rollback};
use backend_xen_pv::{P2mError, StartInfoError, XenErrno, XenPvError};
use hal_core::direct_map::{BuildError, PlanError, SetupError};
use hal_core::memblock::{MapError, MemblockError};
use hal_core::pgt_buf::{Exhausted, FinishError, NewError};
use hal_core::table::EntryError;
use hal_core::{Failed, RetireError, SwitchError, Unsettled, WriteError};

type E = NativeError;
assert_impl_all!(MemblockError: Error);
assert_impl_all!(MapError: Error);
assert_impl_all!(PlanError: Error);
assert_impl_all!(EntryError: Error);
assert_impl_all!(Exhausted: Error);
assert_impl_all!(BuildError<E>: Error);
assert_impl_all!(SetupError<E>: Error);
assert_impl_all!(FinishError<E>: Error);
assert_impl_all!(NewError<E>: Error);
assert_impl_all!(WriteError<E>: Error);
assert_impl_all!(SwitchError<E>: Error);
assert_impl_all!(RetireError<U1, E>: Error);
assert_impl_all!(Failed<Unsettled, E>: Error);
assert_impl_all!(NativeError: Error);
assert_impl_all!(XenPvError: Error);
assert_impl_all!(XenErrno: Error);
assert_impl_all!(P2mError: Error);
assert_impl_all!(StartInfoError: Error);

#[test]
fn messages_name_the_cause() {
    let refused = XenPvError {
        op: Op::Protect,
        cause: Cause::Refused(Refusal {
            errno: XenErrno::EBUSY,
            call: backend_xen_pv::mmu::Call::MmuUpdate,
            submitted: 512,
            applied: 3,
            failed_at: 3,
            rollback: Rollback::NotNeeded,
            entry: None,
        }),
    };
    let text = refused.to_string();
    for part in ["protect", "mmu_update", "EBUSY", "entry 3 of 512"] {
        assert!(text.contains(part), "{text:?} lacks {part:?}");
    }
    assert_eq!(
        refused.source().map(|s| s.to_string()),
        Some(XenErrno::EBUSY.to_string())
    );
    let e: SetupError<NativeError> = SetupError::Memblock {
        frames: 70,
        error: MemblockError::OutOfMemory {
            size: 70 << 12,
            limit: 1 << 32,
        },
    };
    let text = e.to_string();
    assert!(
        text.starts_with("pgt_buf: 70 frames do not fit: OutOfMemory"),
        "{text}"
    );
    assert!(e.source().is_some());
    let e = BuildError::<NativeError>::Backend(NativeError::TooManyWindows);
    assert!(e.to_string().contains("no room for another window"));
    let m = MapError::Overlap { index: 2 };
    assert!(m.to_string().contains("entry 2 overlaps"));
}
