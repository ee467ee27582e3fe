//! The native board's exception path: the stubs in [`super::boot`] save the registers and call
//! [`exception_entry`], which reports and exits Fail (a fault never triple-faults silently), or,
//! for the one exception an example armed with
//! [`expect_fault`](crate::common::expect::expect_fault), logs it and exits Pass.

use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::registers::control::Cr2;

use super::boot;
use crate::common::console;
use crate::common::fault::{report_exception, ExceptionReport, PAGE_FAULT};
use crate::common::{exit, expect};
use crate::Outcome;

/// The stack as the stubs leave it: saved GPRs, vector, error code, then the CPU's frame.
#[repr(C)]
#[derive(Debug)]
pub struct ExceptionFrame {
    r15: u64,
    r14: u64,
    r13: u64,
    r12: u64,
    r11: u64,
    r10: u64,
    r9: u64,
    r8: u64,
    rbp: u64,
    rdi: u64,
    rsi: u64,
    rdx: u64,
    rcx: u64,
    rbx: u64,
    rax: u64,
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

/// Set on entry; an exception while reporting one exits at once.
static IN_FAULT: AtomicBool = AtomicBool::new(false);

/// Called by the exception stubs with the saved frame; never returns.
pub extern "C" fn exception_entry(frame: &ExceptionFrame) -> ! {
    let vector = frame.vector as u8;
    let report = ExceptionReport {
        vector,
        error_code: frame.error_code,
        rip: frame.rip,
        rsp: frame.rsp,
        cr2: (vector == PAGE_FAULT).then(Cr2::read_raw),
    };
    // A probe's expected #PF resumes the probe (no return).
    expect::resume_probe(&report);
    if IN_FAULT.swap(true, Ordering::Relaxed) {
        exit::exit(Outcome::Fail);
    }
    if expect::take_matching(&report) {
        exit::exit(Outcome::Pass);
    }
    report_exception(&report);
    let (guard, _) = boot::stack_guard();
    if (guard..guard + 2 * 4096).contains(&frame.rsp) {
        console::text().str("    RSP is at the boot stack's guard page: stack overflow\n");
    }
    let f = frame;
    let mut t = console::text();
    for (i, (name, value)) in [
        ("rax", f.rax),
        ("rbx", f.rbx),
        ("rcx", f.rcx),
        ("rdx", f.rdx),
        ("rsi", f.rsi),
        ("rdi", f.rdi),
        ("rbp", f.rbp),
        ("r8 ", f.r8),
        ("r9 ", f.r9),
        ("r10", f.r10),
        ("r11", f.r11),
        ("r12", f.r12),
        ("r13", f.r13),
        ("r14", f.r14),
        ("r15", f.r15),
    ]
    .into_iter()
    .enumerate()
    {
        let lead = if i % 4 == 0 { "    " } else { " " };
        t.str(lead).str(name).str(" ").hex_wide(value);
        if i % 4 == 3 {
            t.str("\n");
        }
    }
    t.str(" rflags ")
        .hex(f.rflags)
        .str(" cs ")
        .hex(f.cs)
        .str(" ss ")
        .hex(f.ss)
        .str("\n");
    exit::exit(Outcome::Fail)
}
