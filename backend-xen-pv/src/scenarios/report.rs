//! Hypercalls per phase for a 64 MiB and a 512 MiB guest, batched release vs the seed's
//! per-page release (`cargo test -p backend-xen-pv report -- --nocapture`).

use super::common;
use std::println;

use crate::mmu::PhaseCount;
use crate::model::DomainConfig;
use crate::{Phase, XenPv};
use common::{boot, direct_map};
use hal_core::Report;

const HEADROOM: u64 = 64;

fn line(name: &str, c: &PhaseCount) {
    println!(
        "  {name:<22} {:>5} {:>8} {:>10} {:>9} {:>17} {:>9}",
        c.hypercalls, c.entries, c.mmu_update, c.mmuext_op, c.update_va_mapping, c.multicall
    );
}

#[test]
fn per_phase_counts() {
    for (mib, headroom) in [(64, HEADROOM), (512, HEADROOM), (512, 1024)] {
        let mut g = boot(DomainConfig::mib(mib));
        let tables = common::needed(&g) + 1;
        let fin = direct_map(&mut g, headroom);
        let c = g.mmu.raw().counters();

        // The seed's way, for comparison: the same tail protected again, then released one
        // hypercall per mapping.
        let (mk, _, _) = common::tail_mappings(&g, fin.released);
        let tail = g.mb.alloc_exact(fin.released).unwrap();
        let k = tail.len();
        let in_boot = tail
            .pfns()
            .iter()
            .filter(|p| g.layout.pfn_to_va(p.as_u64()).is_some())
            .count();
        let released = XenPv::compare_release(&mut g.mmu, tail).unwrap();
        let seed = *g.mmu.raw().counters().per_page_release();
        g.xen().audit().unwrap();

        println!(
            "{mib} MiB guest: {tables} table frames (root included), tail K = {k} ({in_boot} of \
             them also in the initial mapping)"
        );
        println!(
            "  {:<22} {:>5} {:>8} {:>10} {:>9} {:>17} {:>9}",
            "phase",
            "calls",
            "entries",
            "mmu_update",
            "mmuext_op",
            "update_va_mapping",
            "multicall"
        );
        line("make read-only", c.get(Phase::MakeReadOnly));
        line("fill and install", c.get(Phase::FillInstall));
        line("pin and switch", c.get(Phase::Switch));
        line("release (batched)", c.get(Phase::Release));
        line("release (per page)", &seed);
        line("total (batched)", &c.total());
        let budget = mk.div_ceil(1024) + 1;
        println!(
            "  budget: release <= ceil(m*K/1024)+1 = {budget} (m*K = {mk}), fill <= tables = {}",
            tables
        );
        assert_eq!(c.get(Phase::Release).entries, mk);
        assert!(c.get(Phase::Release).hypercalls <= budget);
        let _ = released;
    }
}
