//! The backend's record of read-only mappings full, then an operation that forgets entries
//! in the middle of a run: a refused submission, a retired table. What the frames are
//! afterwards is read from the model (Xen's type counts, the entries it holds, stores through
//! the direct map), against what the test wrote: a released frame is mapped writable wherever
//! an applied entry maps it, no entry that was not applied appears, no table is writable.

use std::vec::Vec;

use super::common::{boot_queued, direct_map, Guest, BASE};
use crate::mmu::MAX_RO_RUNS;
use crate::model::{DomainConfig, PageType};
use hal_core::memblock::Direction;
use hal_core::{FrameRange, PageTableFlags, Pfn, PgtReserved, Pte, RawMmu, TableLevel};

const HEADROOM: u64 = 16;
/// The data frames: 514 of them, mapped by the last entry of one L1, all of the next and the
/// first of the third.
const DATA: u64 = 514;
/// `RW` in a raw entry.
const RW: u64 = 2;

fn pfn(n: u64) -> Pfn {
    Pfn::new(n).unwrap()
}

fn rw(p: u64) -> Pte {
    Pte::new(pfn(p), PageTableFlags::PRESENT | PageTableFlags::WRITABLE)
}

/// A guest with its direct map, `DATA` protected data frames, and four protected frames for
/// L1 tables ordered by machine frame (the model's P2M descends): `t[0..3]` consecutive
/// machine frames, `t[3]` elsewhere.
struct Setup {
    g: Guest,
    data: FrameRange<PgtReserved>,
    d: u64,
    t: [u64; 4],
}

fn setup() -> Setup {
    let mut g = boot_queued(DomainConfig::mib(64));
    let _ = direct_map(&mut g, HEADROOM);
    let data =
        g.mb.alloc_frames(DATA, u64::MAX, Direction::BottomUp)
            .unwrap();
    let data = g.mmu.protect(data).unwrap();
    let mut tables = g.mb.alloc_frames(5, u64::MAX, Direction::BottomUp).unwrap();
    let p = tables.pfns().start().as_u64();
    let t = [p + 2, p + 1, p, p + 4];
    // One by one, t1 after its neighbours: each frame's own mappings are runs of their own,
    // so that releasing t1 (when it is retired) splits none.
    let mut frames: Vec<_> = core::iter::from_fn(|| tables.pop_front())
        .map(Some)
        .collect();
    for i in [2, 0, 1, 4] {
        let f = frames[i].take().unwrap();
        // The test's tables from here on, by pfn (nothing gives them back).
        let _ = g.mmu.protect(FrameRange::from_frame(f)).unwrap();
    }
    let mfn = |x: u64| g.xen().frame(x).mfn;
    assert_eq!(
        (mfn(t[1]), mfn(t[2])),
        (mfn(t[0]) + 1, mfn(t[0]) + 2),
        "consecutive machine frames"
    );
    let d = data.pfns().start().as_u64();
    Setup { g, data, d, t }
}

/// Writes `entries` into `table` at `first` (writable leaves of protected frames: the
/// backend writes them read-only and remembers them).
fn write(g: &mut Guest, table: u64, first: u16, entries: &[Pte]) {
    // SAFETY: `table` is a protected frame of the test's, hooked nowhere (or pinned by the
    // test as an L1); the entries map the test's own data frames.
    unsafe {
        g.mmu
            .raw_mut()
            .write(pfn(table), TableLevel::L1, first, entries)
    }
    .unwrap();
}

/// Fills the record up to `left` free runs: one-entry runs in `t[3]` from slot `from` on
/// (every other data frame, so that no two merge).
fn fill_up(s: &mut Setup, from: u16, left: usize) {
    let room = MAX_RO_RUNS - s.g.mmu.raw().read_only_runs();
    assert!(room > left && room - left <= 257, "{room} runs free");
    let entries: Vec<Pte> = (0..(room - left) as u64).map(|k| rw(s.d + 2 * k)).collect();
    write(&mut s.g, s.t[3], from, &entries);
    s.g.mmu.raw_mut().flush().unwrap();
    assert_eq!(MAX_RO_RUNS - s.g.mmu.raw().read_only_runs(), left);
}

/// The entries of `table` that map one of the data frames from `d` on, as (slot, data frame,
/// writable).
fn data_entries(g: &Guest, d: u64, table: u64) -> Vec<(u16, u64, bool)> {
    let x = g.xen();
    let m2p: std::collections::BTreeMap<u64, u64> =
        (d..d + DATA).map(|p| (x.frame(p).mfn, p)).collect();
    (0..512u16)
        .filter_map(|i| {
            let raw = x.raw_entry(table, usize::from(i));
            let m = (raw & 0x000f_ffff_ffff_f000) >> 12;
            (raw & 1 != 0)
                .then(|| m2p.get(&m).map(|&p| (i, p, raw & RW != 0)))
                .flatten()
        })
        .collect()
}

/// Releases the data frames and checks them against the model: each is ordinary memory
/// whose type count is exactly its writable mappings in validated tables (the direct map,
/// the initial mapping where it covers the frame, and the entries of `pinned` that map it),
/// a store through the direct map goes through, and the entries of `tables` that map a data
/// frame are exactly the (slot, frame) pairs given, each writable; no table is writable.
fn release_and_check(s: Setup, pinned: &[u64], tables: &[(u64, Vec<(u16, u64)>)]) {
    let Setup { mut g, data, d, .. } = s;
    let frames = data.pfns();
    let _ = g.mmu.release(data).unwrap();
    let data = frames;
    let mut in_tables = std::collections::BTreeMap::<u64, u32>::new();
    for &t in pinned {
        assert!(g.xen().frame(t).pinned);
        for (_, p, _) in data_entries(&g, d, t) {
            *in_tables.entry(p).or_default() += 1;
        }
    }
    for p in data.iter().map(Pfn::as_u64) {
        let f = g.xen().frame(p);
        assert_eq!(f.ty, PageType::Writable, "pfn {p:#x}");
        let windows = 1 + u32::from(g.layout.pfn_to_va(p).is_some());
        assert_eq!(
            f.writable_mappings(),
            windows + in_tables.get(&p).copied().unwrap_or(0),
            "pfn {p:#x}: every mapping writable again"
        );
        assert_eq!(g.xen().store(BASE + p * 4096), Ok(p), "pfn {p:#x}");
    }
    for (t, want) in tables {
        let want: Vec<_> = want.iter().map(|&(i, p)| (i, p, true)).collect();
        assert_eq!(
            data_entries(&g, d, *t),
            want,
            "table {t:#x}: writable again"
        );
    }
    for &t in g.mmu.raw().pinned() {
        assert_eq!(g.xen().frame(t).writable_mappings(), 0, "pinned {t:#x}");
    }
    g.xen().audit().unwrap();
}

/// The live direct-map L2 of the first GiB.
fn direct_map_l2(g: &mut Guest) -> u64 {
    let root = g.live.pfn();
    let raw = g.mmu.raw_mut();
    // SAFETY: the live root, a table the backend maintains (in the model's memory).
    let l3 = unsafe { raw.read(root, TableLevel::L4, TableLevel::L4.index_of(BASE)) };
    // SAFETY: the live root's present non-leaf entry for the direct map: its L3 table.
    let l2 = unsafe { raw.read(l3.unwrap().pfn(), TableLevel::L3, 0) }.unwrap();
    l2.pfn().as_u64()
}

#[test]
fn retiring_a_table_between_two_live_ones_with_the_record_full_forgets_only_its_entries() {
    let mut s = setup();
    let (d, t) = (s.d, s.t);
    // Frames d, d+1..d+513, d+513 by the last entry of t0, all of t1, the first of t2:
    // consecutive entries in machine memory, for consecutive frames.
    write(&mut s.g, t[0], 511, &[rw(d)]);
    let middle: Vec<Pte> = (1..513).map(|k| rw(d + k)).collect();
    write(&mut s.g, t[1], 0, &middle);
    write(&mut s.g, t[2], 0, &[rw(d + 513)]);
    let fill_start = s.g.mmu.raw().read_only_runs();
    fill_up(&mut s, 0, 0);
    let raw = s.g.mmu.raw_mut();
    for &x in &t[..3] {
        // SAFETY: a complete L1 of the test's (empty slots are zero), protected.
        unsafe { raw.pin(pfn(x), TableLevel::L1) }.unwrap();
    }
    // SAFETY: t1 is pinned, hooked nowhere and not the root; then, unpinned, it holds no
    // child and nothing uses it as a table again.
    unsafe {
        raw.unpin(pfn(t[1]), TableLevel::L1).unwrap();
        raw.retire(pfn(t[1]), TableLevel::L1).unwrap();
    }
    raw.flush().unwrap();
    let f = s.g.xen().frame(t[1]);
    assert_eq!((f.ty, f.pinned), (PageType::Writable, false));
    assert_eq!(
        s.g.xen().store(BASE + t[1] * 4096),
        Ok(t[1]),
        "t1 is memory"
    );
    assert_eq!(data_entries(&s.g, d, t[0]), [(511, d, false)]);
    assert_eq!(data_entries(&s.g, d, t[2]), [(0, d + 513, false)]);
    let t3 = data_entries(&s.g, d, t[3]);
    assert_eq!(t3.len(), MAX_RO_RUNS - fill_start);
    let t3 = t3.into_iter().map(|(i, p, _)| (i, p)).collect();
    let tables = [
        (t[0], [(511, d)].into()),
        (t[2], [(0, d + 513)].into()),
        (t[3], t3),
    ];
    release_and_check(s, &[t[0], t[2]], &tables);
}

#[test]
fn a_refused_submission_with_the_record_full_forgets_only_the_dropped_entries() {
    let mut s = setup();
    let (d, t) = (s.d, s.t);
    // SAFETY: a complete (empty) L1 of the test's, protected.
    unsafe { s.g.mmu.raw_mut().pin(pfn(t[1]), TableLevel::L1) }.unwrap();
    let fill = MAX_RO_RUNS - s.g.mmu.raw().read_only_runs() - 2;
    fill_up(&mut s, 0, 2);
    // One run of t1 whose first half is queued before an entry Xen refuses and its second
    // half after it, then one more run: the record is full when the refusal comes.
    let first: Vec<Pte> = (0..10).map(|k| rw(d + 1 + k)).collect();
    write(&mut s.g, t[1], 0, &first);
    assert_eq!(s.g.mmu.raw().queued(), 10);
    let l2 = direct_map_l2(&mut s.g);
    let slot = 100;
    assert_eq!(s.g.xen().raw_entry(l2, slot), 0);
    let victim = s.g.mb.alloc_frame(u64::MAX, Direction::BottomUp).unwrap();
    // SAFETY: deliberately false: the frame was never protected, so Xen refuses to make it a
    // table (-EINVAL) and the entry is not applied; it is the refusal under test.
    unsafe {
        s.g.mmu.raw_mut().write(
            pfn(l2),
            TableLevel::L2,
            slot as u16,
            &[rw(victim.pfn().as_u64())],
        )
    }
    .unwrap();
    let second: Vec<Pte> = (10..20).map(|k| rw(d + 1 + k)).collect();
    write(&mut s.g, t[1], 10, &second);
    write(&mut s.g, t[3], 400, &[rw(d + 1)]);
    assert_eq!(s.g.mmu.raw().read_only_runs(), MAX_RO_RUNS);
    let e = s.g.mmu.raw_mut().flush().unwrap_err();
    let r = e.refusal().unwrap();
    assert_eq!((r.applied, r.failed_at), (10, 10), "{e:?}");
    assert_eq!(s.g.xen().raw_entry(l2, slot), 0, "nothing hooked");
    // Xen holds the first ten, read-only; the rest were never written.
    let want: Vec<_> = (0..10).map(|k| (k as u16, d + 1 + k, false)).collect();
    assert_eq!(data_entries(&s.g, d, t[1]), want);
    assert_eq!(s.g.xen().raw_entry(s.t[3], 400), 0);
    let _ = victim;
    let t3: Vec<_> = data_entries(&s.g, d, t[3])
        .iter()
        .map(|&(i, p, _)| (i, p))
        .collect();
    assert_eq!(t3.len(), fill);
    let t1 = (0..10).map(|k| (k as u16, d + 1 + k)).collect();
    release_and_check(s, &[t[1]], &[(t[1], t1), (t[3], t3)]);
}
