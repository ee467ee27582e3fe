//! [`TlbBatch`]: which translations a batch of page-table updates made stale, coalesced.
//!
//! A caller that changes present entries (unmap, change of protection, unhooking a table)
//! records one virtual address per changed page; past [`TLB_SINGLE_PAGE_CEILING`] pages the
//! batch turns into a full flush (Linux's `tlb_single_page_flush_ceiling` is 33). The batch is
//! handed to [`RawMmu::flush_tlb`](crate::RawMmu::flush_tlb), which submits the queued
//! updates and invalidates in one go (bare metal: `invlpg` per page or a CR3 reload; Xen PV:
//! the invalidation rides on the last hypercall).

/// Pages invalidated one by one; one more makes the batch a full flush.
pub const TLB_SINGLE_PAGE_CEILING: usize = 32;

/// Virtual pages whose translations are stale, or "all of them".
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlbBatch {
    pages: [u64; TLB_SINGLE_PAGE_CEILING],
    len: usize,
    all: bool,
}

impl Default for TlbBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl TlbBatch {
    /// Nothing to invalidate.
    #[inline]
    pub const fn new() -> Self {
        Self {
            pages: [0; TLB_SINGLE_PAGE_CEILING],
            len: 0,
            all: false,
        }
    }

    /// Records the page that contains `va` (a page of any size: one `invlpg` of an address
    /// inside a large page drops its whole entry, and `invlpg` also drops every cached
    /// paging-structure entry, so one address under an unhooked table is enough for it).
    #[inline(always)]
    pub fn add(&mut self, va: u64) {
        if !self.all {
            self.add_page(va);
        }
    }

    #[inline(never)]
    fn add_page(&mut self, va: u64) {
        let page = va & !0xfff;
        if self.pages[..self.len].contains(&page) {
            return;
        }
        if self.len == TLB_SINGLE_PAGE_CEILING {
            self.all = true;
            self.len = 0;
            return;
        }
        self.pages[self.len] = page;
        self.len += 1;
    }

    /// Makes the batch a full flush.
    #[inline]
    pub fn add_all(&mut self) {
        self.all = true;
        self.len = 0;
    }

    /// Whether nothing needs invalidating.
    #[inline]
    pub const fn is_empty(&self) -> bool {
        !self.all && self.len == 0
    }

    /// Whether the whole (non-global) TLB must be flushed.
    #[inline]
    pub const fn is_all(&self) -> bool {
        self.all
    }

    /// The pages to invalidate one by one (empty when [`is_all`](Self::is_all)).
    #[inline]
    pub fn pages(&self) -> &[u64] {
        &self.pages[..self.len]
    }

    /// Forgets everything (after the invalidation was done).
    #[inline]
    pub fn clear(&mut self) {
        self.len = 0;
        self.all = false;
    }
}
