//! The boot-test matrix: which example boots on which board with how much memory, and what
//! the run must show (see [`crate::checks`]).
//!
//! | test | expects |
//! |------|---------|
//! | `boot/native/hello@1G` | Pass, the memory map printed |
//! | `boot/native/direct_map@{128M,1G,3G,6G,16G}` | Pass, the host's walk of the live tables passes, and the `RESULT direct_map Figures` equal the host's |
//! | `boot/native/direct_map@1G[pvmmu.test-memmap=overlap\|unsorted\|zero]` | Fail: the firmware map refused with that error |
//! | `boot/native/direct_map@1G[pvmmu.test-memmap=tiny]` | Fail: the `pgt_buf` allocation refused |
//! | `boot/native/fault@1G` | Fail: the board's `#PF` report with CR2 |
//! | `boot/native/fault@1G[fault.kind=stack]`, `boot/xen/fault@64M[fault.kind=stack]` | the boot stack's overflow stopped at its guard page: bare metal Fail with the board's `#DF` report, Xen dom0 crashed by Xen (reported by Xen, the machine rebooted); the faulting `rsp` within a page of the guard page (the image's symbol) |
//! | `boot/native/direct_map@1G[pvmmu.test-memmap=bogus]`, `boot/native/hello@1G[pvmmu.tset-memmap=zero]`, `boot/xen/hello@64M[pvmmu.test-memmap=zero]` | Setup error (status 37): the guest refuses the argument |
//! | `boot/native/seed_bug@1G` | Pass with `nothing to demonstrate: no hypervisor refuses` |
//! | `boot/native/runtime_map@1G[runtime_map.seed=.. runtime_map.ops=10000]`, `boot/xen/runtime_map@64M[..]` | Pass; the `RESULT runtime_map` line has the seed and count passed, conserved frames, every table freed, all page sizes (native) or 4 KiB only (Xen), hypercalls within the bound |
//! | `boot/xen/hello@64M`, `boot/xen/direct_map@{64M,512M,2G}`, `boot/xen/fault@64M` | as above, as a Xen PV dom0 |
//! | `boot/xen/refusals@64M[refusals.at=...]` | Pass; at each planted position of a 512-entry release, fill and run-time mapper batch: -EBUSY for exactly that entry, the entry named, the frames carrying on as their types say |
//! | `boot/xen/strategies@64M` | Pass (six builds of the same tree, each walked by the guest and compared with the P2M's expectation and pvmmu's tree); each strategy's hypercalls exactly the host's model of it (no timing) |
//! | `boot/xen/conformance@64M` | 100 generated operation sequences replayed on Xen agree with the model, operation by operation |
//! | `boot/xen/seed_bug@64M` | Pass through the expected `#PF`; the writable pin refused with -22, the read-only one accepted |
//! | `boot/native/runtime_map-release@1G[..]`, `boot/native/direct_map-release@16G`, `boot/xen/runtime_map-release@64M[..]`, `boot/xen/direct_map-release@2G` | the release build, as its debug row, and the boot stack's high-water mark that the host reads at the exit gate at most [`RELEASE_STACK_LIMIT`] |
//! | `boot/xen-domu/hello@64M`, `direct_map@{64M,512M}`, `fault@64M`, `seed_bug@64M`, `hello@64M[pvmmu.test-memmap=zero]` | the same as dom0, as unprivileged PV domUs that `xl create` starts in a Linux dom0 (one dom0 boot runs them all) |

use std::fmt;

use crate::boot::Board;
use crate::mem_size::MemSize;

/// Whether the Xen PV rows run (they need Xen, which the runner provisions from Debian's
/// package). While `false`, `xtask test` says loudly that these rows are disabled.
pub const XEN_ENABLED: bool = true;

/// What a boot test expects of its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// `hello`: Pass, and the memory map it prints.
    Hello,
    /// `direct_map`: Pass, the host's walk of the live page tables at the exit gate passes
    /// ([`crate::verify`]), and every figure the example printed equals the host's.
    DirectMap,
    /// The run fails (status `Fail`, not a timeout or triple fault) and every one of these
    /// texts appears in the decoded defmt lines or on the console.
    FailWith(&'static [&'static str]),
    /// The run fails with the board's page-fault report, CR2 the address the example says it
    /// reads.
    PageFault,
    /// `fault` with `fault.kind=stack`: the boot stack overflows into its guard page, and the
    /// fault says so from outside the example: on bare metal the board's double-fault report,
    /// under Xen dom0 Xen's own crash report of the domain (the `#PF` could not be delivered)
    /// and its reboot; in both the faulting `rsp` in the guard page or the stack's lowest page,
    /// as the image's symbol `__pvmmu_stack_guard` places them.
    StackOverflow,
    /// The run passes and every one of these texts appears in the decoded defmt lines.
    PassWith(&'static [&'static str]),
    /// The guest refuses its command line (status 37, a setup error), and the console says
    /// this text.
    SetupError(&'static str),
    /// `seed_bug` under Xen: Pass through the board's *expected* `#PF`, after a `RESULT
    /// seed_bug` line saying Xen refused the writable pin with -22 and accepted the read-only
    /// one (0), and `expected fault caught: #PF at` the line's `fault_va`.
    SeedBug,
    /// `refusals` under Xen: Pass, and for every position of its `refusals.at=` argument a
    /// release row and a fill row saying Xen refused exactly that entry (see
    /// [`crate::refusals`]).
    Refusals,
    /// `conformance` under Xen: the guest replays a corpus of `sequences` raw operation
    /// sequences generated from `seed` (dom0's module), and every operation's result agrees
    /// with the host model's (see [`crate::conformance`]).
    Conformance {
        /// Sequences in the corpus.
        sequences: u32,
        /// The generator's seed.
        seed: u64,
    },
    /// `strategies` under Xen: Pass (every strategy's tree checked by the guest), and each
    /// strategy's hypercalls exactly the host's model of it (see [`crate::strategies::check`]).
    Strategies,
    /// `runtime_map`: Pass, and its `RESULT runtime_map` line consistent with the seed and
    /// operation count of the guest command line, the memory size, the board's page sizes
    /// and (Xen) the hypercall bound (see [`crate::runtime_map::check`]).
    RuntimeMap,
}

/// The images a test boots are built once per feature set of `pvmmu-examples`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FeatureSet {
    /// The default features (`native`).
    Native,
    /// `--features xen-pv` (on top of the default: the image carries both entry notes).
    XenPv,
    /// [`Native`](Self::Native) in the release profile.
    NativeRelease,
    /// [`XenPv`](Self::XenPv) in the release profile.
    XenPvRelease,
}

impl FeatureSet {
    /// Directory name under `target/boot-images/`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Native => "native",
            Self::XenPv => "xen-pv",
            Self::NativeRelease => "native-release",
            Self::XenPvRelease => "xen-pv-release",
        }
    }

    /// The extra cargo arguments.
    pub const fn cargo_args(self) -> &'static [&'static str] {
        match self {
            Self::Native => &[],
            Self::XenPv => &["--features", "xen-pv"],
            Self::NativeRelease => &["--release"],
            Self::XenPvRelease => &["--release", "--features", "xen-pv"],
        }
    }
}

/// One boot test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BootTest {
    /// The board it boots on.
    pub board: Board,
    /// The example's name (`examples/<name>.rs`).
    pub example: &'static str,
    /// Machine memory (native) or dom0's (Xen), in MiB.
    pub mem_mib: u64,
    /// The guest's command line.
    pub guest_args: &'static [&'static str],
    /// What the run must show.
    pub expect: Expect,
    /// Boots the release build, and fails if the boot stack's high-water mark the host reads
    /// at the exit gate ([`crate::stack`]) is over [`RELEASE_STACK_LIMIT`].
    pub release: bool,
}

/// The most boot stack a release boot may use (of the boards' 32 KiB). The goal is a Linux
/// kernel stack's 16 KiB; the release boots use 19-20 KiB for now (the native board's entry
/// still moves its board by value).
pub const RELEASE_STACK_LIMIT: u64 = 24 * 1024;

impl BootTest {
    /// The memory size.
    pub const fn mem(&self) -> MemSize {
        MemSize::from_mib(self.mem_mib)
    }

    /// The feature set whose image it boots.
    pub const fn features(&self) -> FeatureSet {
        match (self.board, self.release) {
            (Board::Native, false) => FeatureSet::Native,
            (Board::Xen | Board::XenDomU, false) => FeatureSet::XenPv,
            (Board::Native, true) => FeatureSet::NativeRelease,
            (Board::Xen | Board::XenDomU, true) => FeatureSet::XenPvRelease,
        }
    }

    /// The same test on the release build, under the stack limit.
    pub const fn release(self) -> Self {
        Self {
            release: true,
            ..self
        }
    }
}

impl fmt::Display for BootTest {
    /// `boot/<board>/<example>@<mem>`, with `[<guest args>]` when there are any.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let profile = if self.release { "-release" } else { "" };
        write!(f, "boot/{}/{}{profile}@", self.board, self.example)?;
        if self.mem_mib % 1024 == 0 {
            write!(f, "{}G", self.mem_mib / 1024)?;
        } else {
            write!(f, "{}M", self.mem_mib)?;
        }
        if !self.guest_args.is_empty() {
            write!(f, "[{}]", self.guest_args.join(" "))?;
        }
        Ok(())
    }
}

const fn native(example: &'static str, mem_mib: u64, expect: Expect) -> BootTest {
    BootTest {
        board: Board::Native,
        example,
        mem_mib,
        guest_args: &[],
        expect,
        release: false,
    }
}

const fn xen(example: &'static str, mem_mib: u64, expect: Expect) -> BootTest {
    BootTest {
        board: Board::Xen,
        example,
        mem_mib,
        guest_args: &[],
        expect,
        release: false,
    }
}

/// The native board's test hook (`boards/src/native/test_memmap.rs`): `direct_map` at 1 GiB
/// with a broken firmware map, failing with `message`.
const fn bad_map(args: &'static [&'static str], message: &'static [&'static str]) -> BootTest {
    BootTest {
        guest_args: args,
        ..native("direct_map", 1024, Expect::FailWith(message))
    }
}

/// Bare metal (QEMU q35, PVH entry).
pub const NATIVE: &[BootTest] = &[
    native("hello", 1024, Expect::Hello),
    native("direct_map", 128, Expect::DirectMap),
    native("direct_map", 1024, Expect::DirectMap),
    native("direct_map", 3 * 1024, Expect::DirectMap),
    native("direct_map", 6 * 1024, Expect::DirectMap),
    native("direct_map", 16 * 1024, Expect::DirectMap),
    bad_map(
        &["pvmmu.test-memmap=overlap"],
        &[
            "TEST HOOK pvmmu.test-memmap=overlap",
            "firmware memory map refused: Overlap",
        ],
    ),
    bad_map(
        &["pvmmu.test-memmap=unsorted"],
        &[
            "TEST HOOK pvmmu.test-memmap=unsorted",
            "firmware memory map refused: Unsorted",
        ],
    ),
    bad_map(
        &["pvmmu.test-memmap=zero"],
        &[
            "TEST HOOK pvmmu.test-memmap=zero",
            "firmware memory map refused: ZeroLength",
        ],
    ),
    bad_map(
        &["pvmmu.test-memmap=tiny"],
        &[
            "TEST HOOK pvmmu.test-memmap=tiny",
            "do not fit: OutOfMemory",
        ],
    ),
    BootTest {
        guest_args: &["pvmmu.test-memmap=bogus"],
        ..native(
            "direct_map",
            1024,
            Expect::SetupError("unknown pvmmu.test-memmap value"),
        )
    },
    BootTest {
        guest_args: &["pvmmu.tset-memmap=zero"],
        ..native(
            "hello",
            1024,
            Expect::SetupError("unknown pvmmu.* argument"),
        )
    },
    native("fault", 1024, Expect::PageFault),
    BootTest {
        guest_args: &["fault.kind=stack"],
        ..native("fault", 1024, Expect::StackOverflow)
    },
    BootTest {
        guest_args: &["runtime_map.seed=20261201", "runtime_map.ops=10000"],
        ..native("runtime_map", 1024, Expect::RuntimeMap)
    },
    BootTest {
        guest_args: &["runtime_map.seed=20261201", "runtime_map.ops=10000"],
        ..native("runtime_map", 1024, Expect::RuntimeMap).release()
    },
    native("direct_map", 16 * 1024, Expect::DirectMap).release(),
    native(
        "seed_bug",
        1024,
        Expect::PassWith(&[
            "seed_bug on native-pvh: nothing to demonstrate: no hypervisor refuses",
        ]),
    ),
];

/// Xen PV dom0 under Xen 4.17 in QEMU; run only when [`XEN_ENABLED`].
pub const XEN: &[BootTest] = &[
    xen("hello", 64, Expect::Hello),
    xen("direct_map", 64, Expect::DirectMap),
    xen("direct_map", 512, Expect::DirectMap),
    // Above ~1.2 GiB the pgt_buf lies beyond the domain builder's initial mapping: the tail's
    // cross-check goes through the board's alias page.
    xen("direct_map", 2 * 1024, Expect::DirectMap),
    xen("fault", 64, Expect::PageFault),
    BootTest {
        guest_args: &["fault.kind=stack"],
        ..xen("fault", 64, Expect::StackOverflow)
    },
    xen("seed_bug", 64, Expect::SeedBug),
    BootTest {
        guest_args: &["refusals.at=0,1,127,255,256,510,511"],
        ..xen("refusals", 64, Expect::Refusals)
    },
    xen("strategies", 64, Expect::Strategies),
    xen(
        "conformance",
        crate::conformance::DOM0_MIB,
        Expect::Conformance {
            sequences: 100,
            seed: 12,
        },
    ),
    BootTest {
        guest_args: &["runtime_map.seed=4242", "runtime_map.ops=10000"],
        ..xen("runtime_map", 64, Expect::RuntimeMap)
    },
    BootTest {
        guest_args: &["runtime_map.seed=4242", "runtime_map.ops=10000"],
        ..xen("runtime_map", 64, Expect::RuntimeMap).release()
    },
    xen("direct_map", 2 * 1024, Expect::DirectMap).release(),
    BootTest {
        guest_args: &["pvmmu.test-memmap=zero"],
        ..xen(
            "hello",
            64,
            Expect::SetupError("unknown guest argument \"pvmmu.test-memmap=zero\""),
        )
    },
];

const fn domu(example: &'static str, mem_mib: u64, expect: Expect) -> BootTest {
    BootTest {
        board: Board::XenDomU,
        ..xen(example, mem_mib, expect)
    }
}

/// The same examples as unprivileged Xen PV domUs, started by `xl create` in a Linux dom0
/// (see [`crate::domu`]), with the dom0 rows' assertions; `mem_mib` is the domU's memory. All
/// of them run in one boot of the host. Run only when [`XEN_ENABLED`].
pub const XEN_DOMU: &[BootTest] = &[
    domu("hello", 64, Expect::Hello),
    domu("direct_map", 64, Expect::DirectMap),
    domu("direct_map", 512, Expect::DirectMap),
    domu("fault", 64, Expect::PageFault),
    domu("seed_bug", 64, Expect::SeedBug),
    BootTest {
        guest_args: &["pvmmu.test-memmap=zero"],
        ..domu(
            "hello",
            64,
            Expect::SetupError("unknown guest argument \"pvmmu.test-memmap=zero\""),
        )
    },
];

/// The tests that run: [`NATIVE`], then [`XEN`] and [`XEN_DOMU`] when [`XEN_ENABLED`].
pub fn enabled() -> Vec<BootTest> {
    let mut all = NATIVE.to_vec();
    if XEN_ENABLED {
        all.extend_from_slice(XEN);
        all.extend_from_slice(XEN_DOMU);
    }
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(NATIVE[0].to_string(), "boot/native/hello@1G");
        assert_eq!(NATIVE[1].to_string(), "boot/native/direct_map@128M");
        assert_eq!(
            NATIVE[6].to_string(),
            "boot/native/direct_map@1G[pvmmu.test-memmap=overlap]"
        );
        assert_eq!(XEN[2].to_string(), "boot/xen/direct_map@512M");
        assert_eq!(XEN_DOMU[2].to_string(), "boot/xen-domu/direct_map@512M");
    }

    #[test]
    fn names_are_unique() {
        let mut names: Vec<String> = NATIVE
            .iter()
            .chain(XEN)
            .chain(XEN_DOMU)
            .map(|t| t.to_string())
            .collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n);
    }
}
