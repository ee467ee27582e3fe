//! The Rust half of the Xen PV entry: from `start_info` to `main::<XenBoard>` and the exit.
//!
//! Order matters: the role first (start_info's flags, before anything else is validated); for
//! dom0 I/O privilege (COM2 and the exit port need it), for a domU the console ring's window;
//! then the console and exit hooks, the trap table, start_info / P2M / layout validation and
//! the walk of the bootstrap tables (before the shared_info window changes one mapping; the
//! console window is the one mapping it expects changed), and shared_info. The defmt logger
//! starts with the console, so that a failed step reports its cause.

use backend_xen_pv::hypercall::abi::shutdown;
use backend_xen_pv::start_info::START_INFO_SIZE;
use backend_xen_pv::{
    Bootstrap, BootstrapLayout, Counted, Mfn, P2m, Peek, RawHypercall, StartInfo, Storage,
    XenErrno, XenHypercalls, XenPv,
};
use x86_64::instructions::port::Port;

use super::{bootstrap, domu, entry, memmap, shared, traps, Role, XenBoard};
use crate::common::{console, exit, logger};
use crate::Outcome;

/// `VIRT_BASE` of our images (the note is absent, so Xen uses 0).
const VIRT_BASE: u64 = 0;

unsafe extern "C" {
    static __image_start: u8;
    static __image_end: u8;
}

/// The board's one door to Xen: every hypercall of the board, of the MMU backend and of the
/// examples goes through it, and is counted there (the backend's per-phase figures are its).
static HYPERCALLS: Counted<XenHypercalls> =
    // SAFETY: only the Xen entry reaches the code that uses this static (this module and the
    // ones it hands it to), so it is used only in a PV guest whose HYPERCALL_PAGE note names
    // this page, which Xen filled before the entry and which stays mapped (the image).
    Counted::new(unsafe { XenHypercalls::new(entry::HYPERCALL_PAGE) });

/// The hypercalls, counted.
pub(super) fn hypercalls() -> &'static Counted<XenHypercalls> {
    &HYPERCALLS
}

fn console_write(s: &str) {
    hypercalls().console_write(s.as_bytes());
}

/// The exit hook: isa-debug-exit (needs I/O privilege), then, if QEMU is still running,
/// SCHEDOP_shutdown(reboot): Xen resets the machine and QEMU (`-no-reboot`) exits 0.
fn xen_exit(outcome: Outcome) -> ! {
    // SAFETY: port 0xf4 is QEMU's debug-exit device (or nothing); the write touches no memory.
    // This hook is only registered once `set_iopl` succeeded, so the write does not fault.
    unsafe { Port::<u32>::new(exit::ISA_DEBUG_EXIT_PORT).write(exit::code(outcome)) };
    hypercalls().sched_shutdown(shutdown::REBOOT);
    loop {
        core::hint::spin_loop();
    }
}

/// Reports a failed boot step and fails: what failed on the console, and with the error
/// through defmt (the logger runs from the first step on, see [`start`]). Not `core::fmt`:
/// `Display` would bring the formatting machinery and every message's text into the image.
fn fail(what: &str, err: impl defmt::Format) -> ! {
    defmt::error!("xen-pv: {=str}: {}", what, err);
    fail_line(what)
}

/// [`fail`]'s console line and exit, once for every error type.
#[inline(never)]
fn fail_line(what: &str) -> ! {
    console::text()
        .str("xen-pv: ")
        .str(what)
        .str(" (the cause is in the defmt log)\n");
    exit::exit(Outcome::Fail)
}

/// [`fail`] for a step whose cause is an address range `[start, end)` (one address: `end` 0).
fn fail_at(what: &str, start: u64, end: u64) -> ! {
    defmt::error!("xen-pv: {=str}: {=u64:#x}..{=u64:#x}", what, start, end);
    fail_line(what)
}

/// The role from start_info's flags, read before anything else is validated (a domU must not
/// try dom0's console or I/O privilege, and must report a bad start_info on its own console).
/// A start_info too broken to tell is treated as dom0's, as before roles existed; the full
/// parse below then reports it.
///
/// # Safety
/// `start_info` is the `rsi` Xen started the guest with (a mapped start_info page).
unsafe fn peek(start_info: u64) -> Option<Peek> {
    // SAFETY: Xen maps the start_info page at `rsi`; START_INFO_SIZE < 4096.
    let bytes = unsafe { core::slice::from_raw_parts(start_info as *const u8, START_INFO_SIZE) };
    Peek::from_bytes(bytes).ok()
}

/// Console and exit for the role; returns whether the domain has I/O privilege.
fn setup_role(hv: &Counted<XenHypercalls>, role: Role, peek: Option<Peek>) -> bool {
    match role {
        Role::Dom0 => {
            let iopl = XenErrno::check(hv.physdev_set_iopl(1)).is_ok();
            console::set(console_write);
            if iopl {
                exit::set_hook(xen_exit);
            } else {
                exit::set_hook(|_| {
                    hypercalls().sched_shutdown(shutdown::REBOOT);
                    loop {
                        core::hint::spin_loop();
                    }
                });
            }
            iopl
        }
        Role::DomU => {
            // The exit gate stays: dom0 tells the host the domU's CR3 when the gate's line
            // appears on the console, and the host opens it in the machine's RAM.
            exit::set_hook(domu::exit);
            match peek.and_then(|p| p.domu_console) {
                Some(c) => match domu::init(hv, c) {
                    Ok(_) => console::set(domu::console_write),
                    // No console to say it on: the crash reason is all the host gets.
                    Err(_) => exit::exit(Outcome::Fail),
                },
                None => exit::exit(Outcome::Fail),
            }
            false
        }
    }
}

/// Runs the board's boot, then `main`, then exits with its outcome.
///
/// # Safety
/// Called once, by the entry stub, as the first code of a Xen PV guest: `start_info` is the
/// `rsi` and `boot_rsp` the `rsp` Xen started it with.
pub unsafe fn start(start_info: u64, boot_rsp: u64, main: fn(&mut XenBoard) -> Outcome) -> ! {
    let hv = hypercalls();
    // SAFETY: the caller passes Xen's rsi.
    let peeked = unsafe { peek(start_info) };
    let role = match peeked {
        Some(p) if !p.is_initdomain() => Role::DomU,
        _ => Role::Dom0,
    };
    let iopl = setup_role(hv, role, peeked);
    // The logger from here on, so that every boot failure below says its cause through defmt.
    // Until shared_info is mapped the event mask is not reachable and the logger masks
    // nothing, which is sound: events start masked and nothing unmasks them.
    match role {
        Role::Dom0 if iopl => logger::init(&shared::EVENT_MASK),
        Role::Dom0 => {}
        Role::DomU => logger::init_sink(&shared::EVENT_MASK, domu::defmt_sink),
    }
    if let Err(e) = traps::install(hv) {
        fail("set_trap_table failed", e);
    }

    // SAFETY: Xen passes the start_info page in rsi; it stays mapped and unwritten while the
    // board runs on the bootstrap mapping.
    let si = unsafe { StartInfo::parse(start_info as *const u8) }
        .unwrap_or_else(|e| fail("bad start_info", e));
    // This board reads no `pvmmu.*` argument: refuse any, rather than ignore a typo or a
    // native-only test hook.
    let cmdline = core::str::from_utf8(si.cmd_line()).unwrap_or("");
    if let Err(e) = crate::common::args::check(cmdline, &[]) {
        let mut line = console::text();
        line.str("xen-pv: ");
        e.write_to(&mut line);
        line.str(" (this board knows no pvmmu.* argument)\n");
        match role {
            Role::Dom0 => exit::setup_error(iopl),
            Role::DomU => domu::setup_error(),
        }
    }
    let layout =
        BootstrapLayout::new(&si, start_info, VIRT_BASE).unwrap_or_else(|e| fail("bad layout", e));
    if boot_rsp != layout.boot_stack.1 {
        fail_at("boot stack is not after the page tables", boot_rsp, 0);
    }
    // SAFETY: `si` is Xen's start_info and the bootstrap mapping (with the P2M list) stays in
    // place; the board never writes the list.
    let p2m = unsafe { P2m::from_start_info(&si) }.unwrap_or_else(|e| fail("bad P2M", e));
    let (cr3, _) = x86_64::registers::control::Cr3::read_raw();
    let remapped = domu::console_window().map(|(va, mfn)| (va, Mfn(mfn)));
    // SAFETY: nothing but the console window (passed as `remapped`) has changed the
    // bootstrap mapping yet.
    let initial_mapping =
        unsafe { bootstrap::check(&layout, &p2m, cr3.start_address().as_u64(), remapped) }
            .unwrap_or_else(|e| fail("initial mapping differs from start_info", e));

    // The walk above found the guard page mapped as the builder maps the whole image; from
    // here on an overflow of the boot stack faults (see `guard`).
    let stack_guard =
        super::guard::unmap(hv).unwrap_or_else(|e| fail("cannot unmap the stack's guard page", e));
    let shared_info_va =
        shared::map(hv, si.shared_info()).unwrap_or_else(|e| fail("cannot map shared_info", e));

    // The MMU backend takes over page-table changes from here (the shared_info remap above
    // was the board's last).
    let bootstrap = Bootstrap::from_start_info(&si, &layout)
        .unwrap_or_else(|| fail_at("pt_base outside the initial mapping", si.pt_base(), 0));
    let storage = Storage::take_static().unwrap_or_else(|| fail("backend storage taken twice", ""));
    // SAFETY: the walk above checked that the bootstrap tables and the initial mapping are as
    // start_info says (CR3 is pt_base's frame); from now on only the backend changes page
    // tables, pins or switches roots.
    let mut raw = unsafe { XenPv::new(hv, p2m, &bootstrap, storage) }
        .unwrap_or_else(|e| fail("MMU backend", e));
    super::mmu::give_scratch(&mut raw, &layout);

    let image = (
        &raw const __image_start as u64,
        &raw const __image_end as u64,
    );
    if image.0 < layout.virt_base || image.1 > layout.p2m.0 {
        fail_at("the image overlaps the boot structures", image.0, image.1);
    }
    let mmu = hal_core::Mmu::new(raw);
    // SAFETY: the board is made once per boot (this entry runs once), so this is the one
    // handle to the bootstrap root; from here on only the backend changes page tables.
    let root = unsafe { hal_core::LiveRoot::adopt_boot_root(&mmu) };
    let memory_map = memmap::memory_map(&si).unwrap_or_else(|e| fail("bad start_info", e));
    let reserved = memmap::reserved(&si, &layout).unwrap_or_else(|e| fail("bad start_info", e));
    let mut board = XenBoard {
        hv,
        memory_map,
        reserved: ring_pages(&si, &p2m, reserved),
        start_info: si,
        start_info_va: start_info,
        layout,
        p2m,
        initial_mapping,
        shared_info_va,
        image,
        iopl,
        role,
        mmu,
        root,
        aliased: false,
    };
    report(&board);
    defmt::info!(
        "xen-pv: the boot stack's guard page {=u64:#x} is unmapped",
        stack_guard
    );
    let outcome = main(&mut board);
    exit::exit(outcome)
}

/// The domain's reservations plus a domU's xenstore and console pages if the toolstack put
/// them outside the bootstrap area (libxenguest puts them right after start_info, inside it;
/// checked, not assumed: a ring page handed out as free memory would be overwritten). Sorted.
fn ring_pages(
    si: &StartInfo<'_>,
    p2m: &P2m<'_>,
    base: heapless::Vec<(u64, u64), 2>,
) -> heapless::Vec<(u64, u64), 4> {
    // Pushed, not collected: heapless' `collect` panics through `expect` (and its message
    // through `core::fmt`) when full; two entries always fit in four.
    let mut r: heapless::Vec<(u64, u64), 4> = heapless::Vec::new();
    for b in &base {
        let _ = r.push(*b);
    }
    let end = base.first().map_or(0, |b| b.1);
    if let Some(console) = si.domu_console() {
        for (what, mfn) in [
            ("console ring", console.mfn),
            ("xenstore ring", si.store_mfn()),
        ] {
            let pfn = p2m
                .find_pfn(Mfn(mfn))
                .unwrap_or_else(|| fail("a domU ring page is not a frame of this domain", what));
            let page = pfn
                .checked_mul(hal_core::PAGE_SIZE)
                .and_then(|s| Some((s, s.checked_add(hal_core::PAGE_SIZE)?)))
                .unwrap_or_else(|| fail("a domU ring page is beyond the address space", what));
            if page.0 >= end && !r.contains(&page) {
                let _ = r.push(page);
            }
        }
    }
    // At most four entries: an insertion sort (`sort_unstable` would add its quicksort,
    // about 2 KiB, to the image for this one call).
    for i in 1..r.len() {
        let mut j = i;
        while j > 0 && r[j - 1] > r[j] {
            r.swap(j - 1, j);
            j -= 1;
        }
    }
    r
}

fn report(b: &XenBoard) {
    let (si, l) = (b.start_info(), b.layout());
    let version = XenErrno::check(b.hv.xen_version()).unwrap_or(0);
    defmt::info!(
        "xen-pv: Xen {=u64}.{=u64}, {=str}, flags {=u32:#x}, nr_pages {=u64}, upcall mask {=u8}",
        version >> 16,
        version & 0xffff,
        b.role().name(),
        si.flags(),
        si.nr_pages(),
        shared::upcall_mask().unwrap_or(0xff)
    );
    defmt::info!(
        "xen-pv: image {=u64:#x}..{=u64:#x}, p2m {=u64:#x}..{=u64:#x}, start_info {=u64:#x}",
        b.image().0,
        b.image().1,
        l.p2m.0,
        l.p2m.1,
        l.start_info.0
    );
    defmt::info!(
        "xen-pv: page tables {=u64:#x}..{=u64:#x} ({=u64} frames, L4 pfn {=u64:#x}), boot stack {=u64:#x}..{=u64:#x}, mapped 0..{=u64:#x}",
        l.page_tables.0,
        l.page_tables.1,
        si.nr_pt_frames(),
        b.pt_base_pfn(),
        l.boot_stack.0,
        l.boot_stack.1,
        l.mapped_end
    );
    defmt::info!("xen-pv: initial mapping {}", b.initial_mapping());
    if let Some(c) = si.domu_console() {
        let pfn = |mfn: u64| b.p2m().find_pfn(Mfn(mfn)).unwrap_or(u64::MAX);
        defmt::info!(
            "xen-pv: domU console ring mfn {=u64:#x} (pfn {=u64:#x}), evtchn {=u32}; xenstore mfn {=u64:#x} (pfn {=u64:#x}), evtchn {=u32}",
            c.mfn,
            pfn(c.mfn),
            c.evtchn,
            si.store_mfn(),
            pfn(si.store_mfn()),
            si.store_evtchn()
        );
    }
}
