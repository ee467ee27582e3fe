//! What the backend remembers between calls: the read-only mappings it must make writable
//! again on release, the protected frames, the pinned tables.

use hal_core::PfnRange;
use heapless::Vec;

/// Runs of read-only mappings remembered for release.
pub const MAX_RO_RUNS: usize = 256;
/// Protected frame ranges.
pub const MAX_PROTECTED: usize = 32;
/// Pinned tables.
pub const MAX_PINNED: usize = 16;

/// Consecutive frames mapped read-only by consecutive entries: frame `pfn + i` by the entry
/// at machine address `pte + 8 * i`, each with flags `flags` (address bits clear, `RW`
/// clear).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RoRun {
    pub pfn: u64,
    pub pte: u64,
    pub len: u64,
    pub flags: u64,
}

impl RoRun {
    pub(crate) fn pfn_end(&self) -> u64 {
        self.pfn + self.len
    }

    fn pte_end(&self) -> u64 {
        self.pte + 8 * self.len
    }

    /// The part of the run for frames `[lo, hi)`.
    pub(crate) fn clip_pfns(&self, lo: u64, hi: u64) -> Option<RoRun> {
        let s = self.pfn.max(lo);
        let e = self.pfn_end().min(hi);
        (s < e).then(|| RoRun {
            pfn: s,
            pte: self.pte + 8 * (s - self.pfn),
            len: e - s,
            flags: self.flags,
        })
    }
}

/// The read-only mappings to restore, as runs.
pub(crate) struct RoRuns {
    runs: Vec<RoRun, MAX_RO_RUNS>,
}

/// Out of room.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Full;

impl RoRuns {
    pub(crate) const fn new() -> Self {
        Self { runs: Vec::new() }
    }

    pub(crate) fn len(&self) -> usize {
        self.runs.len()
    }

    pub(crate) fn clear(&mut self) {
        self.runs.clear();
    }

    pub(crate) fn room(&self) -> usize {
        MAX_RO_RUNS - self.runs.len()
    }

    pub(crate) fn get(&self, i: usize) -> Option<RoRun> {
        self.runs.get(i).copied()
    }

    /// Remembers that the entry at `pte` maps `pfn` read-only with `flags`: the last run
    /// grows if the entry continues it within its table (a run never crosses a page of
    /// entries, so that forgetting a whole table never splits one), else a new run begins.
    pub(crate) fn add(&mut self, pfn: u64, pte: u64, flags: u64) -> Result<(), Full> {
        if let Some(last) = self.runs.last_mut() {
            if last.pfn_end() == pfn
                && last.pte_end() == pte
                && pte % 4096 != 0
                && last.flags == flags
            {
                last.len += 1;
                return Ok(());
            }
        }
        self.add_run(pfn, pte, flags)
    }

    /// [`add`](Self::add), always as a new run.
    pub(crate) fn add_run(&mut self, pfn: u64, pte: u64, flags: u64) -> Result<(), Full> {
        self.runs
            .push(RoRun {
                pfn,
                pte,
                len: 1,
                flags,
            })
            .map_err(|_| Full)
    }

    /// How many runs a removal of frames `[lo, hi)` would add (runs it splits in two).
    pub(crate) fn splits_for_pfns(&self, lo: u64, hi: u64) -> usize {
        self.runs
            .iter()
            .filter(|r| r.pfn < lo && r.pfn_end() > hi)
            .count()
    }

    /// How many runs a removal of entries `[lo, hi)` would add.
    pub(crate) fn splits_for_ptes(&self, lo: u64, hi: u64) -> usize {
        self.runs
            .iter()
            .filter(|r| r.pte < lo && r.pte_end() > hi)
            .count()
    }

    /// Forgets the mappings of frames `[lo, hi)`. `Err` if a run to split found no room (its
    /// part past `hi` is then forgotten too: check [`splits_for_pfns`](Self::splits_for_pfns)
    /// first).
    pub(crate) fn remove_pfns(&mut self, lo: u64, hi: u64) -> Result<(), Full> {
        if self.remove_by(lo, hi, false) {
            Err(Full)
        } else {
            Ok(())
        }
    }

    /// Forgets the mappings held by entries at machine addresses `[lo, hi)`. A run that
    /// would split in two with no room for the second part keeps only the part before `lo`:
    /// the entries past `hi` are forgotten too. Returns whether that happened
    /// ([`splits_for_ptes`](Self::splits_for_ptes) says beforehand whether it can).
    pub(crate) fn remove_ptes(&mut self, lo: u64, hi: u64) -> bool {
        self.remove_by(lo, hi, true)
    }

    /// Removes `[lo, hi)` from every run, in frames or (`by_pte`) in entry addresses. A
    /// run's part after the range that finds no room is dropped; returns whether one was.
    fn remove_by(&mut self, lo: u64, hi: u64, by_pte: bool) -> bool {
        let mut cut = false;
        let mut i = 0;
        while let Some(&r) = self.runs.get(i) {
            let (start, unit) = if by_pte { (r.pte, 8) } else { (r.pfn, 1) };
            let end = start + unit * r.len;
            if hi <= start || end <= lo {
                i += 1;
                continue;
            }
            // Entries `[0, a)` stay before the range, `[b, len)` after it.
            let a = (lo.max(start) - start) / unit;
            let b = (hi.min(end) - start) / unit;
            let part = |from: u64, to: u64| RoRun {
                pfn: r.pfn + from,
                pte: r.pte + 8 * from,
                len: to - from,
                flags: r.flags,
            };
            match (a > 0, b < r.len) {
                (true, true) => {
                    self.runs[i] = part(0, a);
                    cut |= self.runs.push(part(b, r.len)).is_err();
                }
                (true, false) => self.runs[i] = part(0, a),
                (false, true) => self.runs[i] = part(b, r.len),
                (false, false) => {
                    self.runs.swap_remove(i);
                    continue;
                }
            }
            i += 1;
        }
        cut
    }
}

/// A set of frame ranges, sorted and merged.
pub(crate) struct RangeSet<const N: usize> {
    ranges: Vec<PfnRange, N>,
}

impl<const N: usize> RangeSet<N> {
    pub(crate) const fn new() -> Self {
        Self { ranges: Vec::new() }
    }

    pub(crate) fn contains(&self, pfn: u64) -> bool {
        self.ranges
            .iter()
            .any(|r| r.start().as_u64() <= pfn && pfn < r.end())
    }

    /// Whether some frame of `[lo, hi)` is in the set.
    pub(crate) fn overlaps(&self, lo: u64, hi: u64) -> bool {
        self.ranges
            .iter()
            .any(|r| r.start().as_u64() < hi && lo < r.end())
    }

    /// Adds `r`, merging with overlapping or adjacent ranges.
    pub(crate) fn insert(&mut self, r: PfnRange) -> Result<(), Full> {
        if r.is_empty() {
            return Ok(());
        }
        let (mut lo, mut hi) = (r.start().as_u64(), r.end());
        let mut out: Vec<PfnRange, N> = Vec::new();
        let mut placed = false;
        for x in &self.ranges {
            let (s, e) = (x.start().as_u64(), x.end());
            if e < lo {
                out.push(*x).map_err(|_| Full)?;
            } else if hi < s {
                if !placed {
                    out.push(make(lo, hi)).map_err(|_| Full)?;
                    placed = true;
                }
                out.push(*x).map_err(|_| Full)?;
            } else {
                lo = lo.min(s);
                hi = hi.max(e);
            }
        }
        if !placed {
            out.push(make(lo, hi)).map_err(|_| Full)?;
        }
        self.ranges = out;
        Ok(())
    }

    /// Removes `[lo, hi)`; on `Err` (no room to split a range) the set is unchanged.
    pub(crate) fn remove(&mut self, lo: u64, hi: u64) -> Result<(), Full> {
        self.ranges = self.without(lo, hi)?;
        Ok(())
    }

    /// Whether removing `[lo, hi)` would fit.
    pub(crate) fn can_remove(&self, lo: u64, hi: u64) -> bool {
        self.without(lo, hi).is_ok()
    }

    fn without(&self, lo: u64, hi: u64) -> Result<Vec<PfnRange, N>, Full> {
        let mut out: Vec<PfnRange, N> = Vec::new();
        for x in &self.ranges {
            let (s, e) = (x.start().as_u64(), x.end());
            if e <= lo || hi <= s {
                out.push(*x).map_err(|_| Full)?;
                continue;
            }
            if s < lo {
                out.push(make(s, lo)).map_err(|_| Full)?;
            }
            if hi < e {
                out.push(make(hi, e)).map_err(|_| Full)?;
            }
        }
        Ok(out)
    }
}

fn make(lo: u64, hi: u64) -> PfnRange {
    let start = hal_core::Pfn::new(lo).unwrap_or_else(|| unreachable!(/* below MAX_PFN */));
    PfnRange::new(start, hi).unwrap_or_else(|| unreachable!(/* ordered */))
}

/// The tables this backend pinned, by pfn.
pub(crate) struct Pinned {
    pfns: Vec<u64, MAX_PINNED>,
}

impl Pinned {
    pub(crate) const fn new() -> Self {
        Self { pfns: Vec::new() }
    }

    pub(crate) fn contains(&self, pfn: u64) -> bool {
        self.pfns.contains(&pfn)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.pfns.is_full()
    }

    pub(crate) fn insert(&mut self, pfn: u64) -> Result<(), Full> {
        if self.contains(pfn) {
            return Ok(());
        }
        self.pfns.push(pfn).map_err(|_| Full)
    }

    pub(crate) fn remove(&mut self, pfn: u64) {
        self.pfns.retain(|&p| p != pfn);
    }

    pub(crate) fn as_slice(&self) -> &[u64] {
        &self.pfns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_extend_split_and_shrink() {
        let mut r = RoRuns::new();
        for i in 0..10 {
            r.add(100 + i, 0x5000 + 8 * i, 0x1).unwrap();
        }
        assert_eq!(r.len(), 1);
        r.add(110, 0x9000, 0x1).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r.splits_for_pfns(103, 105), 1);
        r.remove_pfns(103, 105).unwrap();
        assert_eq!(r.len(), 3);
        let total: u64 = (0..r.len()).map(|i| r.get(i).unwrap().len).sum();
        assert_eq!(total, 9);
        assert!(!r.remove_ptes(0x5000, 0x5000 + 8 * 2));
        let total: u64 = (0..r.len()).map(|i| r.get(i).unwrap().len).sum();
        assert_eq!(total, 7);
        r.remove_pfns(0, 1000).unwrap();
        assert_eq!(r.len(), 0);
    }

    #[test]
    fn range_set_merges_and_splits() {
        let mut s: RangeSet<4> = RangeSet::new();
        s.insert(make(10, 20)).unwrap();
        s.insert(make(20, 30)).unwrap();
        s.insert(make(40, 50)).unwrap();
        assert!(s.contains(29) && !s.contains(30) && s.contains(40));
        s.remove(15, 45).unwrap();
        assert!(s.contains(14) && !s.contains(15) && !s.contains(44) && s.contains(45));
    }

    use std::collections::BTreeSet;

    /// The runs, expanded to (pfn, pte, flags) triples: the reference the tests compare with.
    fn expand(r: &RoRuns) -> BTreeSet<(u64, u64, u64)> {
        (0..r.len())
            .flat_map(|i| {
                let run = r.get(i).unwrap();
                (0..run.len).map(move |k| (run.pfn + k, run.pte + 8 * k, run.flags))
            })
            .collect()
    }

    #[test]
    fn runs_merge_only_what_is_contiguous_in_frames_entries_and_flags() {
        let mut r = RoRuns::new();
        assert_eq!((r.len(), r.room()), (0, MAX_RO_RUNS));
        r.add(10, 0x1000, 5).unwrap();
        r.add(11, 0x1008, 5).unwrap(); // extends
        assert_eq!(r.len(), 1);
        r.add(12, 0x1018, 5).unwrap(); // entry not next
        r.add(14, 0x1020, 5).unwrap(); // frame not next
        r.add(15, 0x1028, 7).unwrap(); // flags differ
        assert_eq!(r.len(), 4);
        assert_eq!(r.room(), MAX_RO_RUNS - 4);
        let want: BTreeSet<_> = [
            (10, 0x1000, 5),
            (11, 0x1008, 5),
            (12, 0x1018, 5),
            (14, 0x1020, 5),
            (15, 0x1028, 7),
        ]
        .into();
        assert_eq!(expand(&r), want);
        assert_eq!(r.get(0).unwrap().pfn_end(), 12);
        assert_eq!(r.get(4), None);
        r.clear();
        assert_eq!((r.len(), r.room()), (0, MAX_RO_RUNS));
    }

    #[test]
    fn removals_by_entry_and_by_frame_match_the_expanded_reference() {
        // Three runs: 8 frames at 0x2000, 4 at 0x8000, 1 at 0x9000.
        let fresh = || {
            let mut r = RoRuns::new();
            for k in 0..8 {
                r.add(100 + k, 0x2000 + 8 * k, 1).unwrap();
            }
            for k in 0..4 {
                r.add(200 + k, 0x8000 + 8 * k, 1).unwrap();
            }
            r.add(300, 0x9000, 1).unwrap();
            r
        };
        let cases: [(u64, u64); 6] = [
            (0x2008, 0x2010), // one entry inside the first run: a split
            (0x2000, 0x2008), // the first entry
            (0x2038, 0x2040), // the last entry
            (0x8000, 0x9008), // the second run whole, and the third
            (0x1000, 0x2000), // nothing (ends where the run starts)
            (0x2040, 0x8000), // nothing (between runs)
        ];
        for (lo, hi) in cases {
            let mut r = fresh();
            let want: BTreeSet<_> = expand(&r)
                .into_iter()
                .filter(|&(_, pte, _)| !(pte + 8 > lo && pte < hi))
                .collect();
            let splits = r.splits_for_ptes(lo, hi);
            let before = r.len();
            assert!(!r.remove_ptes(lo, hi));
            assert_eq!(expand(&r), want, "ptes [{lo:#x}, {hi:#x})");
            assert!(r.len() <= before + splits, "[{lo:#x}, {hi:#x})");
        }
        assert_eq!(fresh().splits_for_ptes(0x2008, 0x2010), 1);
        assert_eq!(fresh().splits_for_ptes(0x2000, 0x2010), 0);
        assert_eq!(fresh().splits_for_ptes(0x2008, 0x2040), 0);
        for (lo, hi) in [
            (101, 102),
            (100, 101),
            (107, 108),
            (90, 100),
            (108, 200),
            (150, 301),
        ] {
            let mut r = fresh();
            let want: BTreeSet<_> = expand(&r)
                .into_iter()
                .filter(|&(pfn, _, _)| !(lo <= pfn && pfn < hi))
                .collect();
            r.remove_pfns(lo, hi).unwrap();
            assert_eq!(expand(&r), want, "pfns [{lo}, {hi})");
        }
        assert_eq!(fresh().splits_for_pfns(101, 102), 1);
        assert_eq!(fresh().splits_for_pfns(100, 102), 0);
        assert_eq!(fresh().splits_for_pfns(101, 108), 0);
    }

    #[test]
    fn a_full_table_refuses_new_runs_and_splits() {
        let mut r = RoRuns::new();
        for k in 0..MAX_RO_RUNS as u64 {
            // Every other frame: no two merge.
            r.add(2 * k, 0x10_0000 + 16 * k, 1).unwrap();
        }
        assert_eq!(r.room(), 0);
        assert_eq!(r.add(1_000_000, 0x90_0000, 1), Err(Full));
        // Extending the last run needs no room.
        r.add(
            2 * (MAX_RO_RUNS as u64 - 1) + 1,
            0x10_0000 + 16 * (MAX_RO_RUNS as u64 - 1) + 8,
            1,
        )
        .unwrap();
        let last = r.get(MAX_RO_RUNS - 1).unwrap();
        assert_eq!(last.len, 2);
        // Splitting needs room; removing whole runs does not.
        let mut r2 = RoRuns::new();
        for k in 0..MAX_RO_RUNS as u64 - 1 {
            r2.add(2 * k, 0x10_0000 + 16 * k, 1).unwrap();
        }
        for k in 0..3 {
            r2.add(5000 + k, 0x80_0000 + 8 * k, 1).unwrap();
        }
        assert_eq!(r2.room(), 0);
        // No room for the part after: the run keeps its part before, the rest is forgotten
        // (the other runs untouched).
        let others: BTreeSet<_> = expand(&r2)
            .into_iter()
            .filter(|&(_, pte, _)| pte < 0x80_0000)
            .collect();
        assert!(r2.remove_ptes(0x80_0008, 0x80_0010));
        let mut want = others;
        want.insert((5000, 0x80_0000, 1));
        assert_eq!(expand(&r2), want);
        // By frame, the same; and the removal says so.
        let mut r4 = RoRuns::new();
        for k in 0..MAX_RO_RUNS as u64 - 1 {
            r4.add(2 * k, 0x10_0000 + 16 * k, 1).unwrap();
        }
        for k in 0..3 {
            r4.add(5000 + k, 0x80_0000 + 8 * k, 1).unwrap();
        }
        assert_eq!(r4.remove_pfns(5001, 5002), Err(Full));
        assert_eq!(expand(&r4), want);
        let mut r3 = RoRuns::new();
        for k in 0..MAX_RO_RUNS as u64 {
            r3.add(2 * k, 0x10_0000 + 16 * k, 1).unwrap();
        }
        r3.remove_pfns(0, 2).unwrap();
        assert_eq!(r3.len(), MAX_RO_RUNS - 1);
    }

    #[test]
    fn a_run_never_crosses_a_page_of_entries() {
        let mut r = RoRuns::new();
        // Entries 510 and 511 of the table at 0x7000 and entries 0 and 1 of the one at
        // 0x8000, for consecutive frames: two runs, one per table.
        for (k, pte) in [0x7ff0, 0x7ff8, 0x8000, 0x8008].into_iter().enumerate() {
            r.add(40 + k as u64, pte, 1).unwrap();
        }
        assert_eq!(r.len(), 2);
        assert_eq!(
            r.get(0).unwrap(),
            RoRun {
                pfn: 40,
                pte: 0x7ff0,
                len: 2,
                flags: 1
            }
        );
        assert_eq!(
            r.get(1).unwrap(),
            RoRun {
                pfn: 42,
                pte: 0x8000,
                len: 2,
                flags: 1
            }
        );
        // So forgetting a whole table never splits a run, full or not.
        assert_eq!(r.splits_for_ptes(0x8000, 0x9000), 0);
        let mut f = RoRuns::new();
        for k in 0..MAX_RO_RUNS as u64 - 3 {
            f.add(2 * k, 0x10_0000 + 16 * k, 1).unwrap();
        }
        for k in 0..3 * 512 {
            f.add(10_000 + k, 0x20_0000 + 8 * k, 1).unwrap();
        }
        assert_eq!(f.room(), 0, "one run per table: 3 tables");
        assert!(!f.remove_ptes(0x20_1000, 0x20_2000));
        let left: u64 = (0..f.len()).map(|i| f.get(i).unwrap().len).sum();
        assert_eq!(left, MAX_RO_RUNS as u64 - 3 + 2 * 512);
    }

    #[test]
    fn pinned_tables_are_a_set_with_a_limit() {
        let mut p = Pinned::new();
        p.insert(5).unwrap();
        p.insert(5).unwrap();
        assert_eq!(p.as_slice(), &[5]);
        assert!(p.contains(5) && !p.contains(6));
        for k in 0..MAX_PINNED as u64 - 1 {
            p.insert(100 + k).unwrap();
        }
        assert!(p.is_full());
        assert_eq!(p.insert(1), Err(Full));
        p.insert(5).unwrap();
        p.remove(5);
        assert!(!p.contains(5) && !p.is_full());
    }

    #[test]
    fn range_set_against_a_set_of_frames() {
        let mut s: RangeSet<4> = RangeSet::new();
        let mut want = BTreeSet::new();
        for (lo, hi) in [(10, 20), (30, 40), (20, 25), (50, 60), (5, 12), (24, 31)] {
            s.insert(make(lo, hi)).unwrap();
            want.extend(lo..hi);
        }
        s.insert(make(70, 70)).unwrap();
        for pfn in 0..80 {
            assert_eq!(s.contains(pfn), want.contains(&pfn), "{pfn}");
        }
        for (lo, hi) in [(15, 16), (0, 6), (39, 52), (59, 100)] {
            s.remove(lo, hi).unwrap();
            for pfn in lo..hi {
                want.remove(&pfn);
            }
            for pfn in 0..80 {
                assert_eq!(
                    s.contains(pfn),
                    want.contains(&pfn),
                    "{pfn} after [{lo}, {hi})"
                );
            }
        }
        // Four ranges at most: a fifth disjoint one is refused.
        let mut f: RangeSet<2> = RangeSet::new();
        f.insert(make(0, 1)).unwrap();
        f.insert(make(10, 11)).unwrap();
        assert_eq!(f.insert(make(20, 21)), Err(Full));
        assert_eq!(f.insert(make(5, 6)), Err(Full));
        f.insert(make(1, 10)).unwrap();
        assert!(f.contains(5));
        assert_eq!(f.remove(3, 4), Ok(()));
        let mut g: RangeSet<1> = RangeSet::new();
        g.insert(make(0, 10)).unwrap();
        assert_eq!(g.remove(3, 4), Err(Full));
    }
}
