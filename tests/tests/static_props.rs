//! What the types promise without running anything: frames are one word, and nothing that
//! owns frames can be copied or cloned.

use core::mem::size_of;

use backend_native::{HardwareCpu, Native};
use backend_xen_pv::{Storage, XenHypercalls, XenPv};
use hal_core::mapper::{Mapping, OwnedTable};
use hal_core::memblock::Memblock;
use hal_core::mmu::Pending;
use hal_core::{
    AnyFrame, Frame, FrameRange, Free, FreshTable, LiveRoot, Mmu, PgtBuf, PgtReserved, Pinned,
    PinnedRO, PreviousRoot, ReleasedRW, TableBuilder, Unsettled,
};
use static_assertions::{assert_eq_size, assert_not_impl_any};
use typenum::{U1, U4};

assert_eq_size!(Frame<Free>, u64);
assert_eq_size!(Option<Frame<Free>>, u64);
assert_eq_size!(Option<Frame<PinnedRO<U4>>>, u64);

assert_not_impl_any!(Frame<Free>: Copy, Clone);
assert_not_impl_any!(Frame<PgtReserved>: Copy, Clone);
assert_not_impl_any!(Frame<PinnedRO<U1>>: Copy, Clone);
assert_not_impl_any!(Frame<PinnedRO<U4>>: Copy, Clone);
assert_not_impl_any!(Frame<ReleasedRW>: Copy, Clone);
assert_not_impl_any!(FrameRange<Free>: Copy, Clone);
assert_not_impl_any!(FrameRange<PgtReserved>: Copy, Clone);
assert_not_impl_any!(PgtBuf: Copy, Clone);
assert_not_impl_any!(AnyFrame: Copy, Clone);
assert_not_impl_any!(TableBuilder<U4>: Copy, Clone);
assert_not_impl_any!(Pending: Copy, Clone);
// What hands out or owns frames is claimed once and never duplicated.
assert_not_impl_any!(Memblock<8>: Copy, Clone);
assert_not_impl_any!(LiveRoot: Copy, Clone, Default);
assert_not_impl_any!(Pinned<U4>: Copy, Clone, Default);
assert_not_impl_any!(Pinned<U1>: Copy, Clone);
assert_not_impl_any!(PreviousRoot: Copy, Clone);
assert_not_impl_any!(Unsettled: Copy, Clone, Default);
assert_not_impl_any!(PgtBuf: Default);
assert_not_impl_any!(FreshTable<U1>: Copy, Clone);
assert_not_impl_any!(Mapping: Copy, Clone, Default);
assert_not_impl_any!(OwnedTable: Copy, Clone, Default);
// A backend holds the exclusive right to change page tables: one value, never two.
assert_not_impl_any!(Mmu<Native<HardwareCpu>>: Copy, Clone, Default);
assert_not_impl_any!(Native<HardwareCpu>: Copy, Clone, Default);
assert_not_impl_any!(XenPv<'static, XenHypercalls>: Copy, Clone, Default);
// The backend's queue and remembered read-only mappings: a second copy would forget some.
assert_not_impl_any!(Storage: Copy, Clone);

#[test]
fn frames_are_one_word() {
    assert_eq!(size_of::<Frame<Free>>(), 8);
    assert_eq!(size_of::<Option<Frame<Free>>>(), 8);
    assert_eq!(size_of::<Frame<PinnedRO<U1>>>(), 8);
    assert_eq!(size_of::<Option<Frame<PgtReserved>>>(), 8);
}
