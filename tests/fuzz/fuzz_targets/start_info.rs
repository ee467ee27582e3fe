//! `start_info`, the bootstrap layout and the P2M list, as Xen (or a broken Xen) could hand
//! them over: parsed and validated without a panic; what validation accepts satisfies the
//! documented invariants, what it refuses breaks one of them.

#![no_main]

use backend_xen_pv::hypercall::abi::start_info_off as off;
use backend_xen_pv::p2m::{INVALID_P2M_ENTRY, MAX_MFN};
use backend_xen_pv::start_info::START_INFO_SIZE;
use backend_xen_pv::{Bootstrap, BootstrapLayout, Mfn, P2m, P2mError, StartInfo, StartInfoError};
use libfuzzer_sys::fuzz_target;
use pvmmu_fuzz::input::Input;

const PAGE: u64 = 4096;
const XEN_START: u64 = 0xFFFF_8000_0000_0000;

/// A field near a valid value: the value itself, a small step off it, or anything.
fn field(inp: &mut Input<'_>, good: u64) -> u64 {
    match inp.below(4) {
        0 => good,
        1 => good.wrapping_add((i64::from(inp.u8() as i8) as u64).wrapping_mul(PAGE)),
        2 => good.wrapping_add(i64::from(inp.u8() as i8) as u64),
        _ => inp.u64(),
    }
}

fn start_info_bytes(inp: &mut Input<'_>) -> Vec<u8> {
    let len = if inp.below(16) == 0 {
        usize::from(inp.u16()) % (START_INFO_SIZE + 1)
    } else {
        START_INFO_SIZE
    };
    let mut b = vec![0u8; START_INFO_SIZE];
    match inp.below(8) {
        0 => b[..14].copy_from_slice(b"xen-3.0-x86_32"),
        1 => b[..32].fill(b'x'),
        _ => b[..14].copy_from_slice(b"xen-3.0-x86_64"),
    }
    let mut put = |at: usize, v: u64| b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    let nr_pages = field(inp, 0x4000);
    put(off::NR_PAGES, nr_pages);
    put(off::MFN_LIST, field(inp, 0x206000));
    put(off::PT_BASE, field(inp, 0x228000));
    put(off::NR_PT_FRAMES, field(inp, 5));
    put(off::FIRST_P2M_PFN, field(inp, 0));
    put(off::NR_P2M_FRAMES, field(inp, 0));
    if inp.below(8) == 0 {
        b[off::CMD_LINE..off::FIRST_P2M_PFN].fill(b'a');
    }
    b.truncate(len);
    b
}

/// The documented invariants of a validated `start_info`.
fn invariants(si: &StartInfo<'_>) -> bool {
    let p2m_end = u128::from(si.mfn_list()) + 8 * u128::from(si.nr_pages());
    let pt_end = u128::from(si.pt_base()) + u128::from(PAGE) * u128::from(si.nr_pt_frames());
    si.magic().starts_with(b"xen-3.0-x86_64")
        && si.nr_pages() > 0
        && si.mfn_list() != 0
        && si.mfn_list() % 8 == 0
        && si.pt_base() != 0
        && si.pt_base() % PAGE == 0
        && si.nr_pt_frames() >= 4
        && p2m_end <= u128::from(XEN_START)
        && pt_end <= u128::from(XEN_START)
        && !(u128::from(si.mfn_list()) < pt_end && u128::from(si.pt_base()) < p2m_end)
}

fn check_layout(si: &StartInfo<'_>, inp: &mut Input<'_>) {
    let p2m_end = si.mfn_list() + 8 * si.nr_pages();
    let si_va = field(inp, p2m_end.next_multiple_of(PAGE).min(XEN_START));
    let virt_base = if inp.bool() { 0 } else { inp.addr() };
    let Ok(l) = BootstrapLayout::new(si, si_va, virt_base) else {
        return;
    };
    assert!(l.virt_base <= l.p2m.0 && l.p2m.1 <= l.start_info.0);
    assert!(l.start_info.1 <= l.page_tables.0 && l.page_tables.1 == l.boot_stack.0);
    assert!(l.p2m.1 - l.p2m.0 >= 8 * si.nr_pages());
    assert!(l.mapped_end >= l.boot_stack.1 + (512 << 10) && l.mapped_end <= XEN_START);
    assert!(l.mapped_pages() <= si.nr_pages());
    for pfn in [
        0,
        l.mapped_pages().saturating_sub(1),
        l.mapped_pages(),
        inp.u64(),
    ] {
        if let Some(va) = l.pfn_to_va(pfn) {
            assert_eq!(l.va_to_pfn(va), Some(pfn));
        } else {
            assert!(pfn >= l.mapped_pages());
        }
    }
    if let Some(b) = Bootstrap::from_start_info(si, &l) {
        assert!(b.tables.contains(b.root));
        assert_eq!(b.tables.len(), si.nr_pt_frames());
        assert_eq!(b.initial_mapping.pfns.len(), l.mapped_pages());
    }
}

fn check_p2m(inp: &mut Input<'_>) {
    let n = usize::from(inp.u8() % 64);
    let list: Vec<u64> = (0..n)
        .map(|i| match inp.below(8) {
            0 => INVALID_P2M_ENTRY,
            1 => MAX_MFN + 1 + u64::from(inp.u8()),
            2 => inp.u64(),
            _ => 0x8000 + i as u64,
        })
        .collect();
    let expected = if list.is_empty() {
        Err(P2mError::Empty)
    } else {
        list.iter()
            .enumerate()
            .find_map(|(pfn, &mfn)| {
                let pfn = pfn as u64;
                if mfn == INVALID_P2M_ENTRY {
                    Some(P2mError::InvalidEntry { pfn })
                } else if mfn > MAX_MFN {
                    Some(P2mError::MfnTooLarge { pfn, mfn })
                } else {
                    None
                }
            })
            .map_or(Ok(()), Err)
    };
    match P2m::new(&list) {
        Ok(p2m) => {
            assert_eq!(expected, Ok(()));
            assert_eq!(p2m.nr_pages(), n as u64);
            for pfn in [0, n as u64 - 1, n as u64, u64::MAX, inp.u64()] {
                let got = p2m.pfn_to_mfn(pfn);
                match list.get(pfn as usize).filter(|_| pfn < n as u64) {
                    Some(&m) => assert_eq!(got, Ok(Mfn(m))),
                    None => assert_eq!(
                        got,
                        Err(P2mError::PfnOutOfRange {
                            pfn,
                            nr_pages: n as u64
                        })
                    ),
                }
            }
        }
        Err(e) => assert_eq!(Err(e), expected),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut inp = Input::new(data);
    let b = start_info_bytes(&mut inp);
    match StartInfo::from_bytes(&b) {
        Ok(si) => {
            assert!(b.len() >= START_INFO_SIZE && invariants(&si), "{si:x?}");
            check_layout(&si, &mut inp);
        }
        Err(StartInfoError::Truncated { len }) => assert!(len < START_INFO_SIZE),
        Err(StartInfoError::CmdLineUnterminated | StartInfoError::BadMagic) => {}
        Err(e) => {
            // Refused for a field: a valid magic and command line, and an invariant broken.
            let mut fixed = b.clone();
            fixed[off::CMD_LINE] = 0;
            let si = StartInfo::from_bytes(&fixed);
            assert_eq!(si, Err(e), "refusal is not about the command line");
        }
    }
    check_p2m(&mut inp);
});
