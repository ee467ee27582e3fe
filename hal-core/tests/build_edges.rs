//! Corners of the direct-map build and the streamed root that the property tests do not
//! reach (each found by a mutant that survived them; `tests/MUTANTS.md`): the caller's own
//! read-only frames, a streamed root's inheritance around the backend's reserved slots and
//! behind its cursor, a root slot in use, the plan's reserved slots, `map_ram` refused after
//! its build, its inherited count and its check of every root slot it needs, a large page in a
//! live table, the caller's frame right after the buffer, runs longer than a table in the
//! one-descent build, a table adopted in a staged root, and the errors' kinds, causes and
//! wording.

mod common;

use common::sim::{caps, Sim, KERNEL_SLOT, XEN_SLOT};
use common::{new_buf, oracle, ram_world};
use hal_core::direct_map::plan::LINUX_PAGE_OFFSET;
use hal_core::direct_map::{self, BuildError, DirectMapSpec, PlanError, Target};
use hal_core::memblock::Direction;
use hal_core::table::EntryError;
use hal_core::{FreshTable, PageSizes, PageTableFlags, Pfn, PfnRange, Pte, RawMmu, WriteError};

const MIB: u64 = 1 << 20;
const FLAGS: PageTableFlags = PageTableFlags::PRESENT.union(PageTableFlags::WRITABLE);

fn spec() -> DirectMapSpec {
    DirectMapSpec {
        base: LINUX_PAGE_OFFSET,
        page_sizes: PageSizes::all(),
    }
}

fn range(start: u64, end: u64) -> PfnRange {
    PfnRange::new(Pfn::new(start).unwrap(), end).unwrap()
}

/// Builds `ranges` (with the caller's `extra` read-only frames) into a new streamed root from
/// `buf`, flushes and finishes it, and walks the sim's tree under the direct map's slots,
/// which must hold no error. Returns the walk and the build's count of read-only frames.
fn build_fresh(
    w: &mut common::World,
    buf: &mut hal_core::PgtBuf,
    ranges: &[PfnRange],
    extra: &[PfnRange],
    spec: &DirectMapSpec,
) -> (oracle::Tree, u64) {
    let mut root = FreshTable::new(buf.alloc().unwrap());
    // SAFETY: nothing is mapped at the base of a new root; the frames are the sim's RAM.
    let built = unsafe {
        direct_map::build(
            &mut w.mmu,
            buf,
            Target::Fresh(&mut root),
            ranges,
            extra,
            spec,
            FLAGS,
        )
    }
    .unwrap();
    built.pending.flush(&mut w.mmu).unwrap();
    let root = w.mmu.finish_table(root).unwrap();
    let slots = oracle::slots(ranges, LINUX_PAGE_OFFSET);
    let tree = oracle::walk(w.mmu.raw(), root.pfn().as_u64(), slots);
    assert!(tree.errors.is_empty(), "{:?}", tree.errors);
    // The tree stays in the sim; the root's handle is set aside.
    let _ = root;
    (tree, built.read_only_frames)
}

/// The leaf of `tree` that maps frame `pfn`.
fn leaf_of(tree: &oracle::Tree, pfn: u64) -> oracle::Leaf {
    tree.leaves
        .iter()
        .find(|l| l.pfn <= pfn && pfn < l.pfn + l.size.frames())
        .copied()
        .unwrap_or_else(|| panic!("frame {pfn:#x} is not mapped"))
}

/// Frames the caller names read-only (outside the buffer and the boot tables) are mapped
/// without WRITABLE, for good; the frames around them keep the caller's flags. On a backend
/// with read-only tables the build walks them with its cursor; the tree is checked by walking
/// the sim's memory, leaf by leaf.
#[test]
fn the_callers_read_only_frames_are_mapped_read_only() {
    for c in [caps::XEN, caps::HYBRID] {
        let mut w = ram_world(c, 64 * MIB);
        let ranges = w.ranges.clone();
        // Two runs of the caller's: 16 frames inside a 2 MiB page, and one frame on its own.
        let extra = [range(0x3000, 0x3010), range(0x3100, 0x3101)];
        let (mut buf, _, _) = new_buf(
            &mut w,
            &ranges,
            &spec(),
            4,
            true,
            Direction::TopDown,
            &extra,
        )
        .unwrap();
        let buf_range = buf.range();
        assert!(
            extra.iter().all(|e| e.end() <= buf_range.start().as_u64()),
            "the caller's frames are outside the buffer"
        );
        let (tree, read_only_frames) = build_fresh(&mut w, &mut buf, &ranges, &extra, &spec());
        let leaf_of = |pfn: u64| leaf_of(&tree, pfn);
        for e in &extra {
            for pfn in e.start().as_u64()..e.end() {
                let l = leaf_of(pfn);
                assert_eq!(
                    l.pfn, pfn,
                    "{c:?}: frame {pfn:#x} in a 4 KiB leaf of its own"
                );
                assert!(
                    !l.flags.contains(PageTableFlags::WRITABLE),
                    "{c:?}: the caller's read-only frame {pfn:#x} is mapped writable"
                );
            }
            // Their neighbours (RAM, not the buffer's, not the boot tables') stay writable.
            for pfn in [e.start().as_u64() - 1, e.end()] {
                assert!(
                    leaf_of(pfn).flags.contains(PageTableFlags::WRITABLE),
                    "{c:?}: frame {pfn:#x} next to the caller's read-only frames lost WRITABLE"
                );
            }
        }
        assert!(read_only_frames >= 17, "{c:?}: {}", read_only_frames);
        let _ = buf;
    }
}

/// A frame of the caller's right after the buffer's last one is the caller's, not the
/// buffer's: mapped read-only for good (the backend protects only the buffer's frames, so
/// had the build taken it for one of them, it would have been written writable).
#[test]
fn a_read_only_frame_right_after_the_buffer_is_the_callers() {
    for c in [caps::XEN, caps::HYBRID] {
        let mut w = ram_world(c, 64 * MIB);
        let ranges = w.ranges.clone();
        let size = direct_map::count_tables(&ranges, &[], &spec(), &c)
            .unwrap()
            .total()
            + 1
            + 8;
        let mut buf =
            hal_core::PgtBuf::new(&mut w.mmu, &mut w.mb, size, u64::MAX, Direction::BottomUp)
                .unwrap();
        let after = buf.range().end();
        let extra = [range(after, after + 1)];
        assert!(w
            .ranges
            .iter()
            .any(|r| r.start().as_u64() <= after && after + 1 < r.end()));
        let (tree, _) = build_fresh(&mut w, &mut buf, &ranges, &extra, &spec());
        let leaf_of = |pfn: u64| leaf_of(&tree, pfn);
        let l = leaf_of(after);
        assert_eq!(l.pfn, after, "{c:?}: a 4 KiB leaf of its own");
        assert!(
            !l.flags.contains(PageTableFlags::WRITABLE),
            "{c:?}: the caller's read-only frame {after:#x}, right after the buffer, is mapped writable"
        );
        assert!(
            leaf_of(after + 1).flags.contains(PageTableFlags::WRITABLE),
            "{c:?}: the frame after it stays writable"
        );
        let _ = buf;
    }
}

/// A run longer than one table in the one-descent build (bare metal, a fresh root): 4 KiB
/// pages only over 16 MiB (eight level-1 tables), 2 MiB pages without 1 GiB ones over 3 GiB
/// (three level-2 tables). Each leaf maps the frame its address names, every page once.
#[test]
fn runs_longer_than_a_table_are_continued_at_the_next_frame() {
    for (sizes, bytes) in [
        (PageSizes::SIZE_4K, 16 * MIB),
        (PageSizes::SIZE_4K | PageSizes::SIZE_2M, 3 << 30),
    ] {
        let mut w = ram_world(caps::NATIVE, bytes);
        let ranges = w.ranges.clone();
        let spec = DirectMapSpec {
            base: LINUX_PAGE_OFFSET,
            page_sizes: sizes,
        };
        let size = direct_map::count_tables(&ranges, &[], &spec, &caps::NATIVE)
            .unwrap()
            .total()
            + 1;
        let mut buf =
            hal_core::PgtBuf::new(&mut w.mmu, &mut w.mb, size, u64::MAX, Direction::TopDown)
                .unwrap();
        let (tree, _) = build_fresh(&mut w, &mut buf, &ranges, &[], &spec);
        let mut mapped = 0;
        for l in &tree.leaves {
            assert_eq!(
                l.pfn,
                (l.va - LINUX_PAGE_OFFSET) >> 12,
                "{sizes:?}: the leaf at {:#x}",
                l.va
            );
            mapped += l.size.frames();
        }
        let frames: u64 = ranges.iter().map(PfnRange::len).sum();
        assert_eq!(mapped, frames, "{sizes:?}: every frame once");
        let _ = buf;
    }
}

/// A staged root that holds a table at the direct map's slot (one the caller adopted) has it
/// reused: the map goes into that level-3 table, no new one is made.
#[test]
fn a_table_adopted_in_a_staged_root_is_reused() {
    use hal_core::TableBuilder;
    let slot = hal_core::TableLevel::L4.index_of(LINUX_PAGE_OFFSET);
    for c in [caps::NATIVE, caps::XEN] {
        let mut w = ram_world(c, 16 * MIB);
        let ranges = w.ranges.clone();
        let mut buf =
            hal_core::PgtBuf::new(&mut w.mmu, &mut w.mb, 16, u64::MAX, Direction::BottomUp)
                .unwrap();
        let mut staged = TableBuilder::new(buf.alloc().unwrap());
        let l3 = w
            .mmu
            .new_table(TableBuilder::<typenum::U3>::new(buf.alloc().unwrap()))
            .unwrap();
        let l3_pfn = l3.pfn();
        staged.adopt(slot, l3).unwrap();
        // SAFETY: nothing is mapped at the base under the staged root; the frames are RAM.
        let built = unsafe {
            direct_map::build(
                &mut w.mmu,
                &mut buf,
                Target::New(&mut staged),
                &ranges,
                &[],
                &spec(),
                FLAGS,
            )
        }
        .unwrap();
        assert_eq!((built.reused, built.made.l3), (1, 0), "{c:?}: {built:?}");
        built.pending.flush(&mut w.mmu).unwrap();
        assert_eq!(staged.entry(slot), Some(Pte::table(l3_pfn)), "{c:?}");
        let root = w.mmu.new_table(staged).unwrap();
        let tree = oracle::walk(
            w.mmu.raw(),
            root.pfn().as_u64(),
            oracle::slots(&ranges, LINUX_PAGE_OFFSET),
        );
        assert!(tree.errors.is_empty(), "{c:?}: {:?}", tree.errors);
        let frames: u64 = ranges.iter().map(PfnRange::len).sum();
        let mapped: u64 = tree.leaves.iter().map(|l| l.size.frames()).sum();
        assert_eq!(mapped, frames, "{c:?}");
        let _ = (buf, root);
    }
}

fn table_bits(pfn: u64) -> u64 {
    Pte::table(Pfn::new(pfn).unwrap()).bits()
}

/// A streamed root inherits every present slot of the live root but the backend's reserved
/// ones (Xen's 256..272: the first slot after them is the kernel's to inherit again).
#[test]
fn streamed_inheritance_skips_exactly_the_reserved_slots() {
    let mut w = ram_world(caps::XEN, 16 * MIB);
    let live = w.boot.start().as_u64();
    // Live entries at the edges of Xen's range (256 is Xen's own already, from the sim),
    // pointing where the kernel's slot points.
    let sim: &mut Sim = w.mmu.raw_mut();
    for slot in [255u16, 271, 272] {
        assert!(sim.poke(live, slot, table_bits(live + 1)));
    }
    let mut buf =
        hal_core::PgtBuf::new(&mut w.mmu, &mut w.mb, 1, u64::MAX, Direction::TopDown).unwrap();
    let mut root = FreshTable::new(buf.alloc().unwrap());
    let copied = w
        .mmu
        .inherit_root_fresh(&w.live, &mut root, (0, 512))
        .unwrap();
    assert_eq!(root.next_slot(), 512);
    // 255, 272 and the kernel's 511; not 256 (Xen's) nor 271.
    assert_eq!(copied, 3);
    let queued_root = root.pfn().as_u64();
    w.mmu.raw_mut().flush().unwrap();
    let sim = w.mmu.raw();
    let present = |i: u16| {
        sim.peek(queued_root, i)
            .map(|e| Pte::from_bits(e).is_present())
    };
    for (slot, want) in [
        (255, true),
        (XEN_SLOT, false),
        (271, false),
        (272, true),
        (KERNEL_SLOT, true),
    ] {
        assert_eq!(present(slot), Some(want), "slot {slot}");
    }
    let _ = (buf, root);
}

/// A streamed root takes slots in ascending order: inheriting from below its cursor is
/// refused before anything is read or written.
#[test]
fn streamed_inheritance_behind_the_cursor_is_refused() {
    let mut w = ram_world(caps::NATIVE, 16 * MIB);
    let live = w.boot.start().as_u64();
    assert!(w.mmu.raw_mut().poke(live, 9, table_bits(live + 1)));
    let mut buf =
        hal_core::PgtBuf::new(&mut w.mmu, &mut w.mb, 1, u64::MAX, Direction::TopDown).unwrap();
    let mut root = FreshTable::new(buf.alloc().unwrap());
    assert_eq!(
        w.mmu
            .inherit_root_fresh(&w.live, &mut root, (0, 10))
            .unwrap(),
        1
    );
    assert_eq!(root.next_slot(), 10);
    let counts = w.mmu.raw().counts.clone();
    match w.mmu.inherit_root_fresh(&w.live, &mut root, (9, 20)) {
        Err(WriteError::Entry(EntryError::Occupied(9))) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(root.next_slot(), 10, "the cursor did not move");
    assert_eq!(w.mmu.raw().counts, counts, "nothing read or written");
    // From the cursor on it goes on.
    assert_eq!(
        w.mmu
            .inherit_root_fresh(&w.live, &mut root, (10, 512))
            .unwrap(),
        1
    );
    assert!(
        format!("{root:?}").contains("512 slots written"),
        "{root:?}"
    );
    let _ = (buf, root);
}

/// The errors say what went wrong, with the numbers.
#[test]
fn build_errors_read_as_their_cause() {
    let e: BuildError<core::convert::Infallible> = BuildError::Exhausted {
        needed: 7,
        remaining: 3,
    };
    assert_eq!(
        e.to_string(),
        "the buffer cannot cover the tables: 7 needed, 3 left"
    );
    let e: BuildError<core::convert::Infallible> = BuildError::AlreadyMapped(0xffff_8880_0000_0000);
    assert!(e.to_string().contains("0xffff888000000000"), "{e}");
    let e: BuildError<core::convert::Infallible> =
        BuildError::Plan(PlanError::Unsorted { index: 2 });
    assert!(
        e.to_string()
            .starts_with("the ranges or the base cannot be mapped: "),
        "{e}"
    );
    assert!(BuildError::<core::convert::Infallible>::BadFlags
        .to_string()
        .contains("PRESENT"));
    // The cause, where there is one: the plan's error, the backend's.
    use std::error::Error as _;
    let plan = PlanError::Unsorted { index: 2 };
    let e: BuildError<core::convert::Infallible> = BuildError::Plan(plan);
    assert_eq!(
        e.source().and_then(|s| s.downcast_ref::<PlanError>()),
        Some(&plan)
    );
    let e: BuildError<std::fmt::Error> = BuildError::Backend(std::fmt::Error);
    assert!(e
        .source()
        .is_some_and(|s| s.downcast_ref::<std::fmt::Error>().is_some()));
    assert!(BuildError::<std::fmt::Error>::BadFlags.source().is_none());
    // An empty buffer asked for one more frame: one more than it holds was needed.
    let e: BuildError<core::convert::Infallible> =
        hal_core::pgt_buf::Exhausted { capacity: 5 }.into();
    assert!(
        matches!(
            e,
            BuildError::Exhausted {
                needed: 6,
                remaining: 0
            }
        ),
        "{e:?}"
    );
    let mut w = ram_world(caps::NATIVE, 16 * MIB);
    let mut buf =
        hal_core::PgtBuf::new(&mut w.mmu, &mut w.mb, 1, u64::MAX, Direction::TopDown).unwrap();
    let t = FreshTable::<typenum::U3>::new(buf.alloc().unwrap());
    let text = format!("{t:?}");
    assert!(
        text.starts_with("FreshTable<L3>(") && text.ends_with("0 slots written)"),
        "{text}"
    );
    let _ = (buf, t);
}

/// Reserved root slots: a range that runs into them from below is refused at the first frame
/// the first reserved slot would map. In the lower half (a made-up backend) that is a
/// lower-half address, not sign-extended; Xen's end where the direct map's own slots begin.
#[test]
fn reserved_root_slots_refuse_the_frame_that_reaches_them() {
    let c = hal_core::Caps {
        reserved_root_slots: (4, 8),
        ..caps::NATIVE
    };
    let spec = DirectMapSpec {
        base: 0,
        page_sizes: PageSizes::all(),
    };
    let slot = 1u64 << (39 - 12);
    // Slots 3 and 4: refused at slot 4's first frame.
    let across = [range(3 * slot, 4 * slot + 1)];
    assert_eq!(
        direct_map::count_tables(&across, &[], &spec, &c),
        Err(PlanError::OutOfVirtualSpace { pfn: 4 * slot })
    );
    // Starting inside: refused at the range's start.
    let inside = [range(5 * slot, 5 * slot + 1)];
    assert_eq!(
        direct_map::count_tables(&inside, &[], &spec, &c),
        Err(PlanError::OutOfVirtualSpace { pfn: 5 * slot })
    );
    // Up to the last frame below them: fine.
    let below = [range(3 * slot, 4 * slot)];
    assert!(direct_map::count_tables(&below, &[], &spec, &c).is_ok());
    // An empty reserved range reserves nothing, wherever it is.
    let none = hal_core::Caps {
        reserved_root_slots: (4, 4),
        ..caps::NATIVE
    };
    assert!(direct_map::count_tables(&across, &[], &spec, &none).is_ok());
    // Xen's: a base in the first slot after them (272) is fine, one in the last of them is not.
    let at = |slot: u64| DirectMapSpec {
        base: 0xffff_0000_0000_0000 | (slot << 39),
        page_sizes: PageSizes::all(),
    };
    let one = [range(0, 1)];
    assert!(direct_map::count_tables(&one, &[], &at(272), &caps::XEN).is_ok());
    assert_eq!(
        direct_map::count_tables(&one, &[], &at(271), &caps::XEN),
        Err(PlanError::OutOfVirtualSpace { pfn: 0 })
    );
}

/// `map_ram`'s errors keep the backend's: its kind (what generic code looks at) and the error
/// itself as the source; the setup's own errors have a kind of their own.
#[test]
fn setup_errors_keep_the_backends_kind_and_cause() {
    use common::sim::{Op, SimError};
    use core::error::Error as _;
    use hal_core::direct_map::SetupError;
    use hal_core::{BackendError, ErrorKind};
    let e = SimError {
        op: Op::Protect,
        kind: ErrorKind::Busy,
        applied: 3,
        why: "planted",
    };
    for s in [
        SetupError::Read(e),
        SetupError::Protect(e),
        SetupError::Release(e),
        SetupError::Window(e),
    ] {
        assert_eq!(s.kind(), ErrorKind::Busy, "{s:?}");
        let source = s.source().expect("the backend's error is the source");
        assert_eq!(source.to_string(), e.to_string(), "{s:?}");
    }
    // Wrapped once more: the backend's kind still comes through, the wrapper is the source.
    for s in [
        SetupError::Inherit(WriteError::Backend(e)),
        SetupError::Build(BuildError::Backend(e)),
        SetupError::Switch(hal_core::SwitchError::Backend(e)),
    ] {
        assert_eq!(s.kind(), ErrorKind::Busy, "{s:?}");
        let source = s.source().expect("the wrapped error is the source");
        assert!(source.to_string().contains("planted"), "{s:?}: {source}");
    }
    for (s, kind) in [
        (SetupError::<SimError>::Flags(0x2), ErrorKind::OutOfRange),
        (
            SetupError::Plan(PlanError::BadBase(1)),
            ErrorKind::OutOfRange,
        ),
        (SetupError::SlotInUse(273), ErrorKind::OutOfRange),
        (SetupError::NoRam, ErrorKind::OutOfRange),
        (SetupError::TooManyRanges, ErrorKind::Capacity),
        (SetupError::ReadOnlyRanges, ErrorKind::Capacity),
    ] {
        assert_eq!(s.kind(), kind, "{s:?}");
    }
    // memblock's refusals: the capacity ran out, and memblock's error is the source.
    use hal_core::memblock::MemblockError;
    for s in [
        SetupError::<SimError>::Memblock {
            frames: 9,
            error: MemblockError::Overflow,
        },
        SetupError::<SimError>::Free(MemblockError::Overflow),
    ] {
        assert_eq!(s.kind(), ErrorKind::Capacity, "{s:?}");
        let source = s.source().expect("memblock's error is the source");
        assert_eq!(
            source.downcast_ref::<MemblockError>(),
            Some(&MemblockError::Overflow),
            "{s:?}"
        );
    }
    // The plan's refusal is the source, in its own words.
    let plan = PlanError::OutOfVirtualSpace { pfn: 0x1234 };
    let s = SetupError::<SimError>::Plan(plan);
    let source = s.source().expect("the plan's error is the source");
    assert_eq!(source.downcast_ref::<PlanError>(), Some(&plan));
    for (e, words) in [
        (
            PlanError::BadBase(0x1000),
            "base 0x1000 is not 1 GiB-aligned",
        ),
        (PlanError::Unsorted { index: 3 }, "range 3 starts before"),
        (plan, "frame 0x1234 would be mapped outside"),
    ] {
        assert!(e.to_string().starts_with(words), "{e:?}: {e}");
    }
}

/// Something at the direct map's root slot already: a present large-page entry in a staged
/// root (whatever the caller copied in), or a slot behind a streamed root's cursor. Refused
/// before a table is taken or an entry written, on both build paths (the descent on bare
/// metal, the cursor with read-only tables).
#[test]
fn a_root_slot_in_use_is_refused_before_anything_is_written() {
    use common::sim::Op;
    use hal_core::TableBuilder;
    let slot = hal_core::TableLevel::L4.index_of(LINUX_PAGE_OFFSET);
    for c in [caps::NATIVE, caps::XEN] {
        let mut w = ram_world(c, 16 * MIB);
        let ranges = w.ranges.clone();
        let mut buf =
            hal_core::PgtBuf::new(&mut w.mmu, &mut w.mb, 64, u64::MAX, Direction::BottomUp)
                .unwrap();
        let used = buf.used() + 2;
        let mut staged = TableBuilder::new(buf.alloc().unwrap());
        let huge = Pte::new(
            Pfn::new(0).unwrap(),
            PageTableFlags::PRESENT | PageTableFlags::HUGE_PAGE,
        );
        // SAFETY: the table is never made live; the entry is only looked at.
        unsafe { staged.set_raw(slot, huge) }.unwrap();
        let mut fresh = FreshTable::new(buf.alloc().unwrap());
        // The streamed root's cursor past the slot (the kernel's L3 just above it).
        let kernel_l3 = Pte::table(Pfn::new(w.boot.start().as_u64() + 1).unwrap());
        // SAFETY: the entry is the live root's own kind (a boot table, never retired).
        unsafe { w.mmu.put_raw(&mut fresh, slot + 1, kernel_l3) }.unwrap();
        let writes = w.mmu.raw().counts.get(Op::Write);
        for target in [Target::New(&mut staged), Target::Fresh(&mut fresh)] {
            // SAFETY: the build must refuse before it maps anything.
            let err = unsafe {
                direct_map::build(&mut w.mmu, &mut buf, target, &ranges, &[], &spec(), FLAGS)
            }
            .unwrap_err();
            assert!(
                matches!(err, BuildError::AlreadyMapped(va) if va == LINUX_PAGE_OFFSET),
                "{c:?}: {err:?}"
            );
            assert_eq!(buf.used(), used, "{c:?}: no table taken");
            assert_eq!(
                w.mmu.raw().counts.get(Op::Write),
                writes,
                "{c:?}: nothing written"
            );
        }
        assert_eq!(
            staged.entry(slot),
            Some(huge),
            "{c:?}: the staged root unchanged"
        );
        let _ = (buf, staged, fresh);
    }
}

/// `map_ram` refused after the build: into a new root (its switch refused) nothing went
/// live, so the buffer's tail goes back to memblock and only the tables made stay reserved;
/// into the live root (a hook refused) tables hooked there may map tail frames, so the
/// whole buffer stays reserved.
#[test]
fn a_failed_map_ram_gives_back_the_tail_only_when_nothing_went_live() {
    use common::sim::Op;
    use hal_core::direct_map::{map_ram, RootChoice, Setup};
    use hal_core::ErrorKind;
    let spec = spec();
    for (choice, op) in [
        (RootChoice::New, Op::SwitchRoot),
        (RootChoice::ExtendLive, Op::Write),
    ] {
        let mut w = ram_world(caps::NATIVE, 64 * MIB);
        let ranges = w.ranges.clone();
        let tables = direct_map::count_tables(&ranges, &[], &spec, &caps::NATIVE)
            .unwrap()
            .total();
        let setup = Setup::linux().headroom(64).root(choice);
        let free = w.mb.free_bytes();
        w.mmu.raw_mut().fail(op, 1, ErrorKind::Refused, 0);
        let e = map_ram(&mut w.mmu, &mut w.live, &mut w.mb, &setup).unwrap_err();
        let lost = (free - w.mb.free_bytes()) / 4096;
        let want = match choice {
            // The tables and the root, made and never switched to.
            RootChoice::New => tables + 1,
            // The whole buffer: the tables, the headroom.
            RootChoice::ExtendLive => tables + 64,
        };
        assert_eq!(lost, want, "{choice:?}, refused {op:?}: {e}");
    }
}

/// A new root inherits the live root's present slots on both sides of the direct map's, and
/// `map_ram`'s figures count them all; they stay where they were.
#[test]
fn map_ram_counts_the_slots_a_new_root_inherits_on_both_sides() {
    use hal_core::direct_map::{map_ram, RootChoice, Setup};
    for below in [false, true] {
        let mut w = ram_world(caps::NATIVE, 64 * MIB);
        let live = w.boot.start().as_u64();
        if below {
            assert!(w.mmu.raw_mut().poke(live, 9, table_bits(live + 1)));
        }
        let setup = Setup::linux().root(RootChoice::New);
        let map = map_ram(&mut w.mmu, &mut w.live, &mut w.mb, &setup).unwrap();
        // The kernel's slot (511, above the map) and, when there is one, slot 9 below it.
        assert_eq!(
            map.figures.inherited,
            1 + u16::from(below),
            "{:?}",
            map.figures
        );
        let root = map.root.as_u64();
        assert_ne!(root, live);
        let sim = w.mmu.raw();
        assert_eq!(sim.peek(root, KERNEL_SLOT), sim.peek(live, KERNEL_SLOT));
        assert_eq!(
            sim.peek(root, 9),
            Some(if below { table_bits(live + 1) } else { 0 })
        );
    }
}

/// A large page in a live table where the direct map needs a table under it: a 1 GiB leaf in
/// the kernel's live L3 (slot 0), a 2 MiB leaf in its live L2 (the L3's slot 510, slot 0;
/// 4 KiB pages asked for). Refused at the first address it covers, before a table is taken
/// or an entry written; the leaf stays.
#[test]
fn a_large_page_in_a_live_table_is_refused_before_anything_is_written() {
    use common::sim::Op;
    // In the kernel's root slot: the build reuses the live root's kernel L3 (and its L2).
    let l3_base = 0xffff_ff80_0000_0000;
    assert_eq!(hal_core::TableLevel::L4.index_of(l3_base), KERNEL_SLOT);
    let l2_base = l3_base + (510 << 30);
    for (base, sizes, table, bits) in [
        (l3_base, PageSizes::all(), 1, 1 << 30),
        (l2_base, PageSizes::SIZE_4K, 2, 2 << 20),
    ] {
        let spec = DirectMapSpec {
            base,
            page_sizes: sizes,
        };
        for c in [caps::NATIVE, caps::XEN] {
            let mut w = ram_world(c, 16 * MIB);
            let ranges = w.ranges.clone();
            let live_table = w.boot.start().as_u64() + table;
            let huge = bits
                | (PageTableFlags::PRESENT | PageTableFlags::WRITABLE | PageTableFlags::HUGE_PAGE)
                    .bits();
            assert!(w.mmu.raw_mut().poke(live_table, 0, huge));
            let mut buf =
                hal_core::PgtBuf::new(&mut w.mmu, &mut w.mb, 16, u64::MAX, Direction::BottomUp)
                    .unwrap();
            let writes = w.mmu.raw().counts.get(Op::Write);
            // SAFETY: the build must refuse before it maps anything.
            let err = unsafe {
                direct_map::build(
                    &mut w.mmu,
                    &mut buf,
                    Target::Live(w.live.table()),
                    &ranges,
                    &[],
                    &spec,
                    FLAGS,
                )
            }
            .unwrap_err();
            let first = base + ranges[0].start().addr();
            let at = format!("{c:?}, leaf in boot table {table}");
            assert!(
                matches!(err, BuildError::AlreadyMapped(va) if va == first),
                "{at}: {err:?}"
            );
            assert_eq!(buf.used(), 0, "{at}: no table taken");
            assert_eq!(
                w.mmu.raw().counts.get(Op::Write),
                writes,
                "{at}: nothing written"
            );
            assert_eq!(w.mmu.raw().peek(live_table, 0), Some(huge), "{at}");
            let _ = buf;
        }
    }
}

/// `map_ram` refuses a direct map whose root slots are in use in the live root, each of them:
/// the first (273) and the last, with RAM reaching into the next 512 GiB. Nothing is taken
/// from memblock and the live root is unchanged. The slot after the map's last is not its
/// own: with RAM ending exactly at a slot's end, the next slot may be in use.
#[test]
fn map_ram_refuses_every_root_slot_in_use_that_the_map_needs() {
    use hal_core::direct_map::{map_ram, RootChoice, Setup, SetupError};
    use hal_core::memmap::{MemRegion, RegionKind};
    let ram = |start: u64| MemRegion {
        start,
        len: 16 * MIB,
        kind: RegionKind::Ram,
    };
    let map = [ram(0), ram(512 << 30)];
    for slot in [273u16, 274] {
        for choice in [RootChoice::New, RootChoice::ExtendLive] {
            let mut w = common::world(&map, caps::NATIVE).unwrap();
            let live = w.boot.start().as_u64();
            assert!(w.mmu.raw_mut().poke(live, slot, table_bits(live + 1)));
            let free = w.mb.free_bytes();
            let setup = Setup::linux().root(choice);
            let e = map_ram(&mut w.mmu, &mut w.live, &mut w.mb, &setup).unwrap_err();
            assert!(
                matches!(e, SetupError::SlotInUse(s) if s == slot),
                "slot {slot}, {choice:?}: {e:?}"
            );
            assert_eq!(
                w.mb.free_bytes(),
                free,
                "slot {slot}, {choice:?}: nothing taken"
            );
            assert_eq!(w.mmu.raw().peek(live, slot), Some(table_bits(live + 1)));
            assert_eq!(
                w.mmu.raw().peek(live, 273 + 274 - slot),
                Some(0),
                "the other slot"
            );
        }
    }
    // RAM that ends where slot 273 does: slot 274 is not the map's, in use or not.
    let map = [ram(0), ram((512 << 30) - 16 * MIB)];
    for choice in [RootChoice::New, RootChoice::ExtendLive] {
        let mut w = common::world(&map, caps::NATIVE).unwrap();
        let live = w.boot.start().as_u64();
        assert!(w.mmu.raw_mut().poke(live, 274, table_bits(live + 1)));
        let setup = Setup::linux().root(choice);
        let m = map_ram(&mut w.mmu, &mut w.live, &mut w.mb, &setup)
            .unwrap_or_else(|e| panic!("RAM up to slot 274, {choice:?}: {e:?}"));
        assert_eq!(
            w.mmu.raw().peek(m.root.as_u64(), 274),
            Some(table_bits(live + 1)),
            "{choice:?}: slot 274 kept"
        );
    }
}
