//! The record of the tables a mapper created, and [`OwnedTable`], an unhooked table of any
//! level below the root.

use typenum::{U1, U2, U3};

use crate::addr::Pfn;
use crate::frame::Frame;
use crate::level::TableLevel;
use crate::state::PinnedRO;

/// A table the mapper created, taken out of the tree, waiting to be retired.
#[derive(Debug)]
pub enum OwnedTable {
    /// A level-1 table.
    L1(Frame<PinnedRO<U1>>),
    /// A level-2 table.
    L2(Frame<PinnedRO<U2>>),
    /// A level-3 table.
    L3(Frame<PinnedRO<U3>>),
}

impl OwnedTable {
    /// Claims the table `pfn` of `level` back from the tree.
    ///
    /// # Safety
    /// `pfn` is a level-`level` table that the caller created and has just unhooked: nothing
    /// else owns it.
    pub(crate) unsafe fn claim(pfn: Pfn, level: TableLevel) -> Option<Self> {
        // SAFETY: the caller's contract.
        unsafe {
            Some(match level {
                TableLevel::L1 => Self::L1(Frame::from_pfn_unchecked(pfn)),
                TableLevel::L2 => Self::L2(Frame::from_pfn_unchecked(pfn)),
                TableLevel::L3 => Self::L3(Frame::from_pfn_unchecked(pfn)),
                TableLevel::L4 => return None,
            })
        }
    }

    /// The frame number.
    pub fn pfn(&self) -> Pfn {
        match self {
            Self::L1(f) => f.pfn(),
            Self::L2(f) => f.pfn(),
            Self::L3(f) => f.pfn(),
        }
    }
}

/// Frame numbers are hashed by multiplying with an odd constant (a bijection) and keeping the
/// top bits (Fibonacci hashing): consecutive frames, the usual case, land far apart.
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;

/// A slot nobody holds (no frame number reaches it: they stay below `MAX_PFN`).
const VACANT: u64 = u64::MAX;

/// One owned table: its level and how many present entries it holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owned {
    pub level: TableLevel,
    pub used: u16,
}

/// The last leaf-level table the mapper used: the level-`level` table that covers
/// `[base, base + 512 * level.entry_span())`, at slot `slot` of the record. Valid while the
/// table stays recorded (every removal drops it): an owned table is hooked where the mapper
/// hooked it until the mapper unhooks it (nobody else may: [`Mmu::unhook`](crate::Mmu::unhook)'s
/// contract), so a hit skips the walk from the root.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cached {
    pub level: TableLevel,
    pub base: u64,
    pub pfn: Pfn,
    pub slot: usize,
}

/// The tables a mapper created and that are hooked in its tree, by frame: an open-addressing
/// table of `N` slots (a power of two), linear probing, removal by backward shift (no
/// tombstones, so probes stay short after any history of inserts and removals).
pub(crate) struct Record<const N: usize> {
    keys: [u64; N],
    vals: [Owned; N],
    len: usize,
    /// Lowest and highest frame ever recorded (a quick "no table here" for range checks).
    lo: u64,
    hi: u64,
    cached: Option<Cached>,
}

impl<const N: usize> Record<N> {
    const SHIFT: u32 = {
        assert!(
            N.is_power_of_two() && N >= 2,
            "N must be a power of two, 2 or more"
        );
        64 - N.trailing_zeros()
    };

    pub fn new() -> Self {
        Self {
            keys: [VACANT; N],
            vals: [Owned {
                level: TableLevel::L1,
                used: 0,
            }; N],
            len: 0,
            lo: u64::MAX,
            hi: 0,
            cached: None,
        }
    }

    #[inline]
    fn home(pfn: u64) -> usize {
        (pfn.wrapping_mul(MIX) >> Self::SHIFT) as usize
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_full(&self) -> bool {
        self.len == N
    }

    /// The slot holding `pfn`.
    #[inline]
    pub fn find(&self, pfn: Pfn) -> Option<usize> {
        let p = pfn.as_u64();
        if p < self.lo || p > self.hi {
            return None;
        }
        let mut i = Self::home(p);
        for _ in 0..N {
            match self.keys[i] {
                k if k == p => return Some(i),
                VACANT => return None,
                _ => i = (i + 1) & (N - 1),
            }
        }
        None
    }

    #[inline]
    pub fn get(&self, pfn: Pfn) -> Option<Owned> {
        self.find(pfn).map(|i| self.vals[i])
    }

    /// The entry at `slot` (from [`find`](Self::find) or the cache).
    #[inline]
    pub fn at_mut(&mut self, slot: usize) -> &mut Owned {
        &mut self.vals[slot]
    }

    pub fn insert(&mut self, pfn: Pfn, level: TableLevel) -> Result<usize, ()> {
        let p = pfn.as_u64();
        if self.len == N || self.find(pfn).is_some() {
            return Err(());
        }
        let mut i = Self::home(p);
        while self.keys[i] != VACANT {
            i = (i + 1) & (N - 1);
        }
        self.keys[i] = p;
        self.vals[i] = Owned { level, used: 0 };
        self.len += 1;
        self.lo = self.lo.min(p);
        self.hi = self.hi.max(p);
        Ok(i)
    }

    pub fn remove(&mut self, pfn: Pfn) -> Option<Owned> {
        let mut i = self.find(pfn)?;
        let out = self.vals[i];
        // Entries move: forget the cached slot.
        self.cached = None;
        self.len -= 1;
        // Backward shift: pull later entries of the probe run into the hole when their home
        // does not lie (cyclically) after the hole.
        let mut j = i;
        loop {
            self.keys[i] = VACANT;
            loop {
                j = (j + 1) & (N - 1);
                if self.keys[j] == VACANT {
                    return Some(out);
                }
                let h = Self::home(self.keys[j]);
                // `j`'s entry may move to `i` unless its home lies in (i, j] cyclically.
                let stays = if i <= j {
                    i < h && h <= j
                } else {
                    i < h || h <= j
                };
                if !stays {
                    break;
                }
            }
            self.keys[i] = self.keys[j];
            self.vals[i] = self.vals[j];
            i = j;
        }
    }

    /// Adds `delta` to the present-entry count of `pfn`, if it is owned.
    pub fn adjust(&mut self, pfn: Pfn, delta: i32) -> Option<u16> {
        let i = self.find(pfn)?;
        let o = &mut self.vals[i];
        o.used = (i32::from(o.used) + delta).clamp(0, 512) as u16;
        Some(o.used)
    }

    /// Whether an owned table may lie among frames `[lo, hi)` (`false`: none does).
    #[inline]
    pub fn may_hold(&self, lo: u64, hi: u64) -> bool {
        hi > self.lo && lo <= self.hi
    }

    /// The first owned table among frames `[lo, hi)`.
    pub fn table_in(&self, lo: u64, hi: u64) -> Option<u64> {
        if !self.may_hold(lo, hi) {
            return None;
        }
        if hi - lo <= 8 {
            return (lo..hi).find(|&p| Pfn::new(p).is_some_and(|f| self.find(f).is_some()));
        }
        self.keys
            .iter()
            .copied()
            .find(|&k| k != VACANT && (lo..hi).contains(&k))
    }

    /// The cached table and its slot if it is the level-`level` one that covers `base`.
    #[inline(always)]
    pub fn cached_at(&self, level: TableLevel, base: u64) -> Option<(Pfn, usize)> {
        match &self.cached {
            Some(c) if c.base == base && c.level == level => Some((c.pfn, c.slot)),
            _ => None,
        }
    }

    /// Remembers that the level-`level` table `pfn` (recorded at `slot`) covers `base`.
    #[inline]
    pub fn cache(&mut self, level: TableLevel, base: u64, pfn: Pfn, slot: usize) {
        self.cached = Some(Cached {
            level,
            base,
            pfn,
            slot,
        });
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use std::collections::BTreeMap;
    use std::vec::Vec;

    use proptest::prelude::*;

    use super::*;

    #[derive(Clone, Debug)]
    enum Step {
        Insert(u64),
        Remove(u64),
        Adjust(u64, i32),
    }

    fn step() -> impl Strategy<Value = Step> {
        // Few distinct frames (so removals hit), some far apart (so homes spread and wrap).
        let pfn = prop_oneof![0u64..24, (0u64..8).prop_map(|i| i << 30)];
        prop_oneof![
            3 => pfn.clone().prop_map(Step::Insert),
            2 => pfn.clone().prop_map(Step::Remove),
            1 => (pfn, -3i32..4).prop_map(|(p, d)| Step::Adjust(p, d)),
        ]
    }

    /// The record against a `BTreeMap` after every step: lookups of every frame (present or
    /// not), counts, range queries and the cache (dropped by every removal).
    fn check<const N: usize>(steps: &[Step]) -> Result<(), TestCaseError> {
        let mut r = Record::<N>::new();
        let mut m: BTreeMap<u64, u16> = BTreeMap::new();
        let mut probes: Vec<u64> = (0..24).collect();
        probes.extend((0..8).map(|i| i << 30));
        for s in steps {
            match *s {
                Step::Insert(p) => {
                    let pfn = Pfn::new(p).unwrap();
                    let want = m.len() < N && !m.contains_key(&p);
                    let got = r.insert(pfn, TableLevel::L1);
                    prop_assert_eq!(got.is_ok(), want, "insert {}", p);
                    if let Ok(slot) = got {
                        prop_assert_eq!(r.find(pfn), Some(slot));
                        r.cache(TableLevel::L1, p << 21, pfn, slot);
                        m.insert(p, 0);
                    }
                }
                Step::Remove(p) => {
                    let got = r.remove(Pfn::new(p).unwrap()).map(|o| o.used);
                    prop_assert_eq!(got, m.remove(&p), "remove {}", p);
                    if got.is_some() {
                        prop_assert!(r.cached_at(TableLevel::L1, p << 21).is_none());
                    }
                }
                Step::Adjust(p, d) => {
                    let got = r.adjust(Pfn::new(p).unwrap(), d);
                    let want = m.get_mut(&p).map(|u| {
                        *u = (i32::from(*u) + d).clamp(0, 512) as u16;
                        *u
                    });
                    prop_assert_eq!(got, want, "adjust {}", p);
                }
            }
            prop_assert_eq!(r.len(), m.len());
            prop_assert_eq!(r.is_full(), m.len() == N);
            for &p in &probes {
                let pfn = Pfn::new(p).unwrap();
                prop_assert_eq!(r.get(pfn).map(|o| o.used), m.get(&p).copied(), "get {}", p);
                if let Some(slot) = r.find(pfn) {
                    prop_assert_eq!(r.at_mut(slot).used, m[&p]);
                }
            }
            for (lo, hi) in [(0, 4), (3, 20), (0, 1 << 40), (1 << 30, (1 << 30) + 1)] {
                let got = r.table_in(lo, hi);
                let want = m.range(lo..hi).next().map(|(&k, _)| k);
                prop_assert_eq!(got.is_some(), want.is_some(), "table_in {}..{}", lo, hi);
                if let Some(g) = got {
                    prop_assert!(m.contains_key(&g) && (lo..hi).contains(&g));
                }
            }
        }
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn record_matches_a_map(steps in prop::collection::vec(step(), 1..200)) {
            check::<8>(&steps)?;
            check::<32>(&steps)?;
        }
    }
}
