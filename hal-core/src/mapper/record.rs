//! The record of the tables a mapper created, and [`OwnedTable`], an unhooked table of any
//! level below the root.

use heapless::FnvIndexMap;
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

/// Keys are frame numbers times an odd constant (a bijection): consecutive frames then differ
/// in every byte, and the map's FNV hash (of which it keeps 16 bits) spreads them; raw
/// consecutive frame numbers clustered and made its probes long.
const MIX: u64 = 0x9e37_79b9_7f4a_7c15;
/// The inverse of [`MIX`] modulo 2^64 (Newton's iteration).
const UNMIX: u64 = {
    let mut x = MIX;
    let mut i = 0;
    while i < 6 {
        x = x.wrapping_mul(2u64.wrapping_sub(MIX.wrapping_mul(x)));
        i += 1;
    }
    x
};

const _: () = assert!(MIX.wrapping_mul(UNMIX) == 1);

const fn key(pfn: u64) -> u64 {
    pfn.wrapping_mul(MIX)
}

/// One owned table: its level and how many present entries it holds.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Owned {
    pub level: TableLevel,
    pub used: u16,
}

/// The tables a mapper created and that are hooked in its tree, by frame.
pub(crate) struct Record<const N: usize> {
    map: FnvIndexMap<u64, Owned, N>,
    /// Lowest and highest frame ever recorded (a quick "no table here" for range checks).
    lo: u64,
    hi: u64,
}

impl<const N: usize> Record<N> {
    pub fn new() -> Self {
        Self {
            map: FnvIndexMap::new(),
            lo: u64::MAX,
            hi: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_full(&self) -> bool {
        self.map.len() == N
    }

    pub fn get(&self, pfn: Pfn) -> Option<Owned> {
        self.map.get(&key(pfn.as_u64())).copied()
    }

    pub fn insert(&mut self, pfn: Pfn, level: TableLevel) -> Result<(), ()> {
        let p = pfn.as_u64();
        self.map
            .insert(key(p), Owned { level, used: 0 })
            .map_err(|_| ())?;
        self.lo = self.lo.min(p);
        self.hi = self.hi.max(p);
        Ok(())
    }

    pub fn remove(&mut self, pfn: Pfn) -> Option<Owned> {
        self.map.remove(&key(pfn.as_u64()))
    }

    /// Adds `delta` to the present-entry count of `pfn`, if it is owned.
    pub fn adjust(&mut self, pfn: Pfn, delta: i32) -> Option<u16> {
        let o = self.map.get_mut(&key(pfn.as_u64()))?;
        o.used = (i32::from(o.used) + delta).clamp(0, 512) as u16;
        Some(o.used)
    }

    /// The first owned table among frames `[lo, hi)`.
    pub fn table_in(&self, lo: u64, hi: u64) -> Option<u64> {
        if hi <= self.lo || lo > self.hi {
            return None;
        }
        if hi - lo <= 8 {
            return (lo..hi).find(|&p| self.map.contains_key(&key(p)));
        }
        self.map
            .keys()
            .map(|k| k.wrapping_mul(UNMIX))
            .find(|p| (lo..hi).contains(p))
    }
}
