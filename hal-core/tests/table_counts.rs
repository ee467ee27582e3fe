//! The exact table counts for RAM from 0 at Linux's base, checked against values derived by
//! hand (printed with `--nocapture`).
//!
//! At 0xffff888000000000 (root slot 273, 512 GiB-aligned), RAM `[0, n GiB)`:
//! - 4 KiB pages only: one L1 per 2 MiB, one L2 per GiB, one L3:
//!   1 GiB = 512 + 1 + 1 = 514; 4 GiB = 2048 + 4 + 1 = 2053; 64 GiB = 32768 + 64 + 1 = 32833.
//! - 2 MiB and 1 GiB pages: every GiB is one 1 GiB page in the one L3: 1, 1, 1.
//! - 2 MiB pages only (for comparison): one L2 per GiB + the L3: 2, 5, 65.

use hal_core::backend::{Caps, PageSizes};
use hal_core::direct_map::plan::LINUX_PAGE_OFFSET;
use hal_core::direct_map::{count_tables, DirectMapSpec, TableCount};
use hal_core::{Pfn, PfnRange};

const GIB_FRAMES: u64 = (1 << 30) >> 12;

fn count(gib: u64, sizes: PageSizes) -> TableCount {
    let caps = Caps {
        page_sizes: PageSizes::all(),
        tables_read_only: false,
        reserved_root_slots: (0, 0),
        nx: true,
    };
    let spec = DirectMapSpec {
        base: LINUX_PAGE_OFFSET,
        page_sizes: sizes,
    };
    let ram = [PfnRange::new(Pfn::new(0).unwrap(), gib * GIB_FRAMES).unwrap()];
    count_tables(&ram, &[], &spec, &caps).unwrap()
}

#[test]
fn table_counts_for_1_4_64_gib() {
    let cases = [
        (
            "4K only",
            PageSizes::SIZE_4K,
            [
                (514, [512, 1, 1]),
                (2053, [2048, 4, 1]),
                (32833, [32768, 64, 1]),
            ],
        ),
        (
            "2M+1G",
            PageSizes::all(),
            [(1, [0, 0, 1]), (1, [0, 0, 1]), (1, [0, 0, 1])],
        ),
        (
            "2M only",
            PageSizes::SIZE_4K | PageSizes::SIZE_2M,
            [(2, [0, 1, 1]), (5, [0, 4, 1]), (65, [0, 64, 1])],
        ),
    ];
    for (name, sizes, want) in cases {
        for (gib, (total, [l1, l2, l3])) in [1, 4, 64].into_iter().zip(want) {
            let c = count(gib, sizes);
            println!(
                "{name:>8}, {gib:>2} GiB at {LINUX_PAGE_OFFSET:#x}: {:>5} tables (L1 {}, L2 {}, L3 {})",
                c.total(),
                c.l1,
                c.l2,
                c.l3
            );
            assert_eq!(
                (c.total(), c.l1, c.l2, c.l3),
                (total, l1, l2, l3),
                "{name}, {gib} GiB"
            );
        }
    }
}
