//! The x86-64 PV hypercall ABI: numbers, sub-commands, flags and the argument structures.
//!
//! Every value here was checked against Xen's public headers (`xen/include/public/xen.h`,
//! `sched.h`, `physdev.h`, `version.h`, `arch-x86/xen.h`, `arch-x86/xen-x86_64.h`) as of
//! Xen 4.17; the layouts are pinned by the compile-time assertions at the end of the file.

/// Hypercall numbers (`__HYPERVISOR_*`).
pub mod nr {
    /// `set_trap_table(const struct trap_info traps[])`.
    pub const SET_TRAP_TABLE: u32 = 0;
    /// `mmu_update(reqs, count, *success_count, foreigndom)`.
    pub const MMU_UPDATE: u32 = 1;
    /// `multicall(entries, count)`.
    pub const MULTICALL: u32 = 13;
    /// `update_va_mapping(va, new_pte, flags)`.
    pub const UPDATE_VA_MAPPING: u32 = 14;
    /// `xen_version(cmd, arg)`.
    pub const XEN_VERSION: u32 = 17;
    /// `console_io(cmd, count, buffer)`.
    pub const CONSOLE_IO: u32 = 18;
    /// `vm_assist(cmd, type)`.
    pub const VM_ASSIST: u32 = 21;
    /// `mmuext_op(ops, count, *success_count, foreigndom)`.
    pub const MMUEXT_OP: u32 = 26;
    /// `sched_op(cmd, arg)` (the current one, not `sched_op_compat` = 6).
    pub const SCHED_OP: u32 = 29;
    /// `event_channel_op(cmd, arg)` (the current one, not `event_channel_op_compat` = 20).
    pub const EVENT_CHANNEL_OP: u32 = 32;
    /// `physdev_op(cmd, arg)` (the current one, not `physdev_op_compat` = 19).
    pub const PHYSDEV_OP: u32 = 33;
}

/// Bytes per hypercall stub in the hypercall page: hypercall `n` is at `page + n * 32`.
pub const HYPERCALL_STUB_SIZE: usize = 32;

/// `mmu_update` sub-commands, in bits 1:0 of [`MmuUpdate::ptr`].
pub mod mmu {
    /// Checked `*ptr = val`; `ptr` is the machine address of the PTE.
    pub const NORMAL_PT_UPDATE: u64 = 0;
    /// `ptr` is the machine address of a frame, `val` its new pfn in the M2P.
    pub const MACHPHYS_UPDATE: u64 = 1;
    /// As `NORMAL_PT_UPDATE`, keeping the Accessed/Dirty bits of the old entry.
    pub const PT_UPDATE_PRESERVE_AD: u64 = 2;
}

/// `mmuext_op` commands ([`MmuextOp::cmd`]).
pub mod mmuext {
    /// Pin an L1 table (`arg1` = mfn).
    pub const PIN_L1_TABLE: u32 = 0;
    /// Pin an L2 table (`arg1` = mfn).
    pub const PIN_L2_TABLE: u32 = 1;
    /// Pin an L3 table (`arg1` = mfn).
    pub const PIN_L3_TABLE: u32 = 2;
    /// Pin an L4 table (`arg1` = mfn).
    pub const PIN_L4_TABLE: u32 = 3;
    /// Unpin a table (`arg1` = mfn).
    pub const UNPIN_TABLE: u32 = 4;
    /// Load a new kernel page-table base (`arg1` = mfn of a pinned L4).
    pub const NEW_BASEPTR: u32 = 5;
    /// Flush this vCPU's TLB.
    pub const TLB_FLUSH_LOCAL: u32 = 6;
    /// Invalidate one page on this vCPU (`arg1` = linear address).
    pub const INVLPG_LOCAL: u32 = 7;
    /// Flush every vCPU's TLB.
    pub const TLB_FLUSH_ALL: u32 = 10;
    /// Invalidate one page on every vCPU (`arg1` = linear address).
    pub const INVLPG_ALL: u32 = 11;
    /// Load a new user page-table base (`arg1` = mfn, 0 for none).
    pub const NEW_USER_BASEPTR: u32 = 15;
}

/// `update_va_mapping` flags (`UVMF_*`); a flush type ORed with a scope.
pub mod uvmf {
    /// No flush.
    pub const NONE: u64 = 0;
    /// Flush the whole TLB.
    pub const TLB_FLUSH: u64 = 1;
    /// Flush only the entry for the address.
    pub const INVLPG: u64 = 2;
    /// Scope: this vCPU only (`UVMF_MULTI` with a null mask).
    pub const LOCAL: u64 = 0;
    /// Scope: every vCPU.
    pub const ALL: u64 = 4;
}

/// `vm_assist` commands and types.
pub mod vmasst {
    /// `VMASST_CMD_enable`.
    pub const CMD_ENABLE: u32 = 0;
    /// `VMASST_CMD_disable`.
    pub const CMD_DISABLE: u32 = 1;
    /// `VMASST_TYPE_writable_pagetables`: direct stores into L1 tables are emulated.
    pub const TYPE_WRITABLE_PAGETABLES: u32 = 2;
    /// `VMASST_TYPE_architectural_iopl`.
    pub const TYPE_ARCHITECTURAL_IOPL: u32 = 4;
    /// `VMASST_TYPE_runstate_update_flag`.
    pub const TYPE_RUNSTATE_UPDATE_FLAG: u32 = 5;
    /// `VMASST_TYPE_m2p_strict`.
    pub const TYPE_M2P_STRICT: u32 = 32;
}

/// `console_io` command: write `count` bytes to Xen's console (dom0 only).
pub const CONSOLEIO_WRITE: u32 = 0;

/// `sched_op` command: give up the CPU for a moment; the argument is null.
pub const SCHEDOP_YIELD: u32 = 0;

/// `sched_op` command: shut the domain down; the argument is a [`SchedShutdown`].
pub const SCHEDOP_SHUTDOWN: u32 = 2;

/// `event_channel_op` command: notify the remote end of a bound port; the argument is an
/// [`EvtchnSend`] (public `event_channel.h`).
pub const EVTCHNOP_SEND: u32 = 4;

/// `struct xencons_interface` (public `io/console.h`): the console ring page a domU gets in
/// `start_info.console.domU`. Byte offsets; the indices are free-running `u32`s, masked by
/// the ring size to index the arrays.
pub mod xencons {
    /// `char in[1024]`: dom0 to guest.
    pub const IN: usize = 0;
    /// Bytes of `in`.
    pub const IN_SIZE: u32 = 1024;
    /// `char out[2048]`: guest to dom0 (the console output).
    pub const OUT: usize = 1024;
    /// Bytes of `out`.
    pub const OUT_SIZE: u32 = 2048;
    /// `in_cons` (guest-written).
    pub const IN_CONS: usize = 3072;
    /// `in_prod` (backend-written).
    pub const IN_PROD: usize = 3076;
    /// `out_cons` (backend-written: how far xenconsoled has read).
    pub const OUT_CONS: usize = 3080;
    /// `out_prod` (guest-written: how far the guest has written).
    pub const OUT_PROD: usize = 3084;
}

/// `sched_shutdown.reason` values (`SHUTDOWN_*`).
pub mod shutdown {
    /// Exited normally. For dom0, Xen halts the machine (QEMU keeps running).
    pub const POWEROFF: u32 = 0;
    /// Restart. For dom0, Xen reboots the machine at once (`-no-reboot` makes QEMU exit 0).
    pub const REBOOT: u32 = 1;
    /// Crashed. For dom0, Xen reboots the machine after 5 seconds.
    pub const CRASH: u32 = 3;
}

/// `physdev_op` command: set the vCPU's virtual I/O privilege level; the argument is a
/// [`PhysdevSetIopl`]. Level 1 lets the (ring 3) PV kernel use the I/O ports its domain may
/// access.
pub const PHYSDEVOP_SET_IOPL: u32 = 6;

/// `xen_version` command: returns `major << 16 | minor`; the argument must be null.
pub const XENVER_VERSION: u32 = 0;

/// The calling domain, as `foreigndom` of `mmu_update` / `mmuext_op`.
pub const DOMID_SELF: u16 = 0x7FF0;

/// Kernel code selector of a 64-bit PV guest (`FLAT_KERNEL_CS64`).
pub const FLAT_KERNEL_CS: u16 = 0xe033;

/// `start_info.flags` bits.
pub mod sif {
    /// The domain is privileged.
    pub const PRIVILEGED: u32 = 1 << 0;
    /// The domain is the initial control domain (dom0).
    pub const INITDOMAIN: u32 = 1 << 1;
    /// `mod_start` is a pfn, not a virtual address.
    pub const MOD_START_PFN: u32 = 1 << 3;
}

/// Byte offsets of the `start_info` fields (x86-64).
pub mod start_info_off {
    /// `char magic[32]`.
    pub const MAGIC: usize = 0;
    /// `unsigned long nr_pages`.
    pub const NR_PAGES: usize = 32;
    /// `unsigned long shared_info` (machine address).
    pub const SHARED_INFO: usize = 40;
    /// `uint32_t flags`.
    pub const FLAGS: usize = 48;
    /// `xen_pfn_t store_mfn`.
    pub const STORE_MFN: usize = 56;
    /// `uint32_t store_evtchn`.
    pub const STORE_EVTCHN: usize = 64;
    /// The 16-byte `console` union (domU: mfn, evtchn; dom0: info_off, info_size).
    pub const CONSOLE: usize = 72;
    /// `unsigned long pt_base` (virtual).
    pub const PT_BASE: usize = 88;
    /// `unsigned long nr_pt_frames`.
    pub const NR_PT_FRAMES: usize = 96;
    /// `unsigned long mfn_list` (virtual).
    pub const MFN_LIST: usize = 104;
    /// `unsigned long mod_start`.
    pub const MOD_START: usize = 112;
    /// `unsigned long mod_len`.
    pub const MOD_LEN: usize = 120;
    /// `int8_t cmd_line[1024]`.
    pub const CMD_LINE: usize = 128;
    /// `unsigned long first_p2m_pfn`.
    pub const FIRST_P2M_PFN: usize = 1152;
    /// `unsigned long nr_p2m_frames`.
    pub const NR_P2M_FRAMES: usize = 1160;
    /// `sizeof(struct start_info)`.
    pub const SIZE: usize = 1168;
}

/// `MAX_GUEST_CMDLINE`.
pub const MAX_GUEST_CMDLINE: usize = 1024;

/// Offsets into `shared_info` / `vcpu_info` (x86-64).
pub mod shared_info_off {
    /// `sizeof(struct vcpu_info)`; `shared_info.vcpu_info[n]` is at `n * VCPU_INFO_SIZE`.
    pub const VCPU_INFO_SIZE: usize = 64;
    /// `vcpu_info.evtchn_upcall_pending` (u8).
    pub const UPCALL_PENDING: usize = 0;
    /// `vcpu_info.evtchn_upcall_mask` (u8); Xen sets it to 1 for every vCPU of dom0.
    pub const UPCALL_MASK: usize = 1;
    /// `vcpu_info.arch.cr2` (u64): the faulting address of the last #PF Xen injected.
    pub const ARCH_CR2: usize = 16;
}

/// One request of `mmu_update` (`struct mmu_update`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuUpdate {
    /// Machine address of the PTE, with the sub-command ([`mmu`]) in bits 1:0.
    pub ptr: u64,
    /// The new value.
    pub val: u64,
}

/// One command of `mmuext_op` (`struct mmuext_op`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmuextOp {
    /// The command ([`mmuext`]).
    pub cmd: u32,
    /// `mfn` or `linear_addr`, by command.
    pub arg1: u64,
    /// `nr_ents`, `vcpumask` or `src_mfn`, by command.
    pub arg2: u64,
}

/// One entry of a `multicall` batch (`struct multicall_entry`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MulticallEntry {
    /// The hypercall number ([`nr`]).
    pub op: u64,
    /// Written by Xen: the sub-call's return value (a negative errno on failure).
    pub result: u64,
    /// The sub-call's arguments.
    pub args: [u64; 6],
}

/// One entry of the virtual IDT given to `set_trap_table` (`struct trap_info`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrapInfo {
    /// Exception vector.
    pub vector: u8,
    /// Bits 1:0: lowest privilege level allowed to raise it with `int`; bit 2
    /// ([`TrapInfo::MASK_EVENTS`]): mask event upcalls on entry.
    pub flags: u8,
    /// Code selector ([`FLAT_KERNEL_CS`]).
    pub cs: u16,
    /// Handler address; an entry with address 0 ends the table.
    pub address: u64,
}

impl TrapInfo {
    /// `flags` bit: Xen sets `evtchn_upcall_mask` when it enters the handler.
    pub const MASK_EVENTS: u8 = 1 << 2;
}

/// Argument of `sched_op(SCHEDOP_shutdown)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchedShutdown {
    /// A [`shutdown`] reason.
    pub reason: u32,
}

/// Argument of `event_channel_op(EVTCHNOP_send)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EvtchnSend {
    /// The local port (`evtchn_port_t`).
    pub port: u32,
}

/// Argument of `physdev_op(PHYSDEVOP_set_iopl)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhysdevSetIopl {
    /// The new I/O privilege level (0..=3).
    pub iopl: u32,
}

const _: () = {
    use core::mem::{offset_of, size_of};
    assert!(size_of::<MmuUpdate>() == 16);
    assert!(offset_of!(MmuUpdate, ptr) == 0 && offset_of!(MmuUpdate, val) == 8);
    assert!(size_of::<MmuextOp>() == 24);
    assert!(offset_of!(MmuextOp, cmd) == 0);
    assert!(offset_of!(MmuextOp, arg1) == 8 && offset_of!(MmuextOp, arg2) == 16);
    assert!(size_of::<MulticallEntry>() == 64);
    assert!(offset_of!(MulticallEntry, result) == 8 && offset_of!(MulticallEntry, args) == 16);
    assert!(size_of::<TrapInfo>() == 16);
    assert!(offset_of!(TrapInfo, cs) == 2 && offset_of!(TrapInfo, address) == 8);
    assert!(size_of::<SchedShutdown>() == 4 && size_of::<PhysdevSetIopl>() == 4);
    assert!(size_of::<EvtchnSend>() == 4);
    assert!(xencons::IN + xencons::IN_SIZE as usize == xencons::OUT);
    assert!(xencons::OUT + xencons::OUT_SIZE as usize == xencons::IN_CONS);
    assert!(xencons::IN_SIZE.is_power_of_two() && xencons::OUT_SIZE.is_power_of_two());
    assert!(xencons::OUT_PROD + 4 <= 4096);
    assert!(start_info_off::CMD_LINE + MAX_GUEST_CMDLINE == start_info_off::FIRST_P2M_PFN);
};
