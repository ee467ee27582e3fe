//! The native board's exception path: the stubs in [`super::boot`] save the registers and call
//! [`exception_entry`], which reports and exits Fail (a fault never triple-faults silently), or,
//! for the one exception an example armed with
//! [`expect_fault`](crate::common::expect::expect_fault), logs it and exits Pass.

use core::fmt::Write;
use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::registers::control::Cr2;

use super::boot;
use crate::common::console::Console;
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
        let _ = writeln!(
            Console,
            "    RSP is at the boot stack's guard page: stack overflow"
        );
    }
    let f = frame;
    let _ = writeln!(
        Console,
        "    rax {:#018x} rbx {:#018x} rcx {:#018x} rdx {:#018x}\n    \
         rsi {:#018x} rdi {:#018x} rbp {:#018x} r8  {:#018x}\n    \
         r9  {:#018x} r10 {:#018x} r11 {:#018x} r12 {:#018x}\n    \
         r13 {:#018x} r14 {:#018x} r15 {:#018x} rflags {:#x} cs {:#x} ss {:#x}",
        f.rax,
        f.rbx,
        f.rcx,
        f.rdx,
        f.rsi,
        f.rdi,
        f.rbp,
        f.r8,
        f.r9,
        f.r10,
        f.r11,
        f.r12,
        f.r13,
        f.r14,
        f.r15,
        f.rflags,
        f.cs,
        f.ss
    );
    exit::exit(Outcome::Fail)
}
