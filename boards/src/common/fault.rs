//! Reporting a CPU exception, shared by the boards' trap paths: one line on the console and one
//! defmt error, with the vector's name, error code, RIP and (for `#PF`) CR2.

use super::{console, logger};

/// The vector of a page fault (`#PF`), whose report includes CR2.
pub const PAGE_FAULT: u8 = 14;

/// What a board's trap path knows about an exception.
#[derive(Clone, Copy, Debug)]
pub struct ExceptionReport {
    /// Vector number (0..32 for CPU exceptions).
    pub vector: u8,
    /// The error code the CPU pushed (0 for vectors without one).
    pub error_code: u64,
    /// Instruction pointer of the faulting (or next) instruction.
    pub rip: u64,
    /// Stack pointer at the time of the exception.
    pub rsp: u64,
    /// The faulting linear address, for `#PF`.
    pub cr2: Option<u64>,
}

/// The mnemonic of exception `vector`, e.g. `"#PF page fault"`.
pub const fn exception_name(vector: u8) -> &'static str {
    match vector {
        0 => "#DE divide error",
        1 => "#DB debug",
        2 => "NMI",
        3 => "#BP breakpoint",
        4 => "#OF overflow",
        5 => "#BR bound range exceeded",
        6 => "#UD invalid opcode",
        7 => "#NM device not available",
        8 => "#DF double fault",
        10 => "#TS invalid TSS",
        11 => "#NP segment not present",
        12 => "#SS stack-segment fault",
        13 => "#GP general protection",
        14 => "#PF page fault",
        16 => "#MF x87 floating point",
        17 => "#AC alignment check",
        18 => "#MC machine check",
        19 => "#XM SIMD floating point",
        20 => "#VE virtualization",
        21 => "#CP control protection",
        28 => "#HV hypervisor injection",
        29 => "#VC VMM communication",
        30 => "#SX security",
        _ => "reserved vector",
    }
}

/// Prints `r` on the console and logs it via defmt (unless the fault hit inside the logger).
pub fn report_exception(r: &ExceptionReport) {
    let name = exception_name(r.vector);
    console::text()
        .str("\n*** CPU EXCEPTION ")
        .dec(r.vector.into())
        .str(" (")
        .str(name)
        .str("), error code ")
        .hex(r.error_code)
        .str(", RIP ")
        .hex_wide(r.rip)
        .str(", RSP ")
        .hex_wide(r.rsp)
        .str("\n");
    if let Some(cr2) = r.cr2 {
        let e = r.error_code;
        let bit = |b: u64, set: &'static str, clear: &'static str| {
            if e & b != 0 {
                set
            } else {
                clear
            }
        };
        console::text()
            .str("    CR2 ")
            .hex_wide(cr2)
            .str(": ")
            .str(bit(1, "protection violation", "not present"))
            .str(" ")
            .str(bit(2, "on write", "on read"))
            .str(bit(4, ", user mode", ""))
            .str(bit(8, ", reserved bit set", ""))
            .str(bit(16, ", instruction fetch", ""))
            .str("\n");
    }
    if !logger::is_busy() {
        defmt::error!(
            "CPU exception {=u8} ({=str}), error code {=u64:#x}, RIP {=u64:#x}, RSP {=u64:#x}, CR2 {=?}",
            r.vector,
            name,
            r.error_code,
            r.rip,
            r.rsp,
            r.cr2
        );
    }
}
