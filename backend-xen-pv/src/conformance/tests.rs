//! The corpus format and the generator, on the host.

use super::corpus::{Corpus, OP_BYTES};
use super::gen::{encode, expected, generate};

#[test]
fn a_corpus_reads_back_as_written() {
    let seqs = generate(7, 20);
    let bytes = encode(&seqs);
    let c = Corpus::parse(&bytes).unwrap();
    assert_eq!(c.len(), 20);
    for (s, raw) in seqs.iter().zip(c.sequences()) {
        let raw = raw.unwrap();
        assert_eq!(raw.len(), s.len() * OP_BYTES);
        for (op, b) in s.iter().zip(raw.chunks_exact(OP_BYTES)) {
            assert_eq!(super::Op::decode(b.try_into().unwrap()), Some(*op));
        }
    }
    assert!(Corpus::parse(&bytes[..bytes.len() - 1])
        .unwrap()
        .sequences()
        .any(|s| s.is_err()));
}

#[test]
fn every_sequence_leaves_the_frames_clean() {
    let seqs = generate(1, 300);
    let res = expected(&seqs);
    for (i, (s, r)) in seqs.iter().zip(&res).enumerate() {
        // The cleanup: new root, clear, 4 unpins, 4 releases, 4 zeroes.
        let tail = &r[r.len() - 2 * 14..];
        assert_eq!(tail[0], 0, "seq {i}: back to the live root");
        assert_eq!(tail[2], 0, "seq {i}: scratch slots cleared");
        for k in 0..4 {
            assert_eq!(tail[2 * (6 + k)], 0, "seq {i}: release of frame {k}: {s:?}");
            assert_eq!(tail[2 * (10 + k) + 1], 0, "seq {i}: zero of frame {k}");
        }
    }
}

// What Xen 4.17 answered (dom0 in QEMU, `cargo xtask conformance` and hand-made corpora of
// the sequences below), against which the model was fixed. Each test fails on the model as it
// was before its fix.

use super::corpus::{flags, Code, Op, StoreOutcome, ROOT};

fn o(code: Code, frame: u8, arg: u8) -> Op {
    Op {
        frame,
        arg,
        ..Op::new(code)
    }
}

fn wr(frame: u8, index: u16, target: u8, flags: u8) -> Op {
    Op {
        frame,
        index,
        target,
        flags,
        ..Op::new(Code::Write)
    }
}

fn store(frame: u8, index: u16, target: u8, flags: u8) -> Op {
    Op {
        code: Code::Store,
        ..wr(frame, index, target, flags)
    }
}

/// The model's (ret, extra) for each operation of `seq` (followed by the corpus's cleanup, so
/// that the same sequences replayed in a row on Xen met the same frames).
fn model(seq: &[Op]) -> std::vec::Vec<(i8, u8)> {
    let mut seq = seq.to_vec();
    super::gen::cleanup(&mut seq);
    let r = expected(&[seq]);
    r[0].chunks(2).map(|c| (c[0] as i8, c[1])).collect()
}

fn rets(seq: &[Op]) -> std::vec::Vec<i8> {
    model(seq).into_iter().map(|(r, _)| r).collect()
}

#[test]
fn linear_page_tables_are_accepted_read_only() {
    // Frame 1 an L3 under the live root, frame 2 an L2 under it: a read-only entry of frame 1
    // to itself is a linear page table (Xen: 0); a writable one is not (-22); so is a
    // read-only one to frame 2, which is no L3.
    let seq = [
        o(Code::Protect, 1, 0),
        o(Code::Protect, 2, 0),
        wr(1, 300, 2, flags::WRITABLE),
        wr(ROOT, 300, 1, flags::WRITABLE),
        wr(1, 301, 1, flags::READ_ONLY),
        wr(1, 302, 1, flags::WRITABLE),
        wr(2, 301, 2, flags::READ_ONLY),
        wr(1, 303, 2, flags::READ_ONLY),
        wr(ROOT, 300, super::corpus::NONE, 0),
        o(Code::Release, 1, 0),
        o(Code::Release, 2, 0),
    ];
    assert_eq!(rets(&seq)[..seq.len()], [0, 0, 0, 0, 0, -22, 0, 0, 0, 0, 0]);
}

#[test]
fn linear_entries_to_another_table_hold_a_type_reference() {
    // Frames 1 and 2 both L2s (pinned); frame 1 maps frame 2 read-only: accepted, and frame 2
    // stays a table while that entry holds it (unpinned, its mapping still cannot be made
    // writable: -16), until the entry goes.
    let seq = [
        o(Code::Protect, 1, 0),
        o(Code::Protect, 2, 0),
        o(Code::Pin, 1, 2),
        o(Code::Pin, 2, 2),
        wr(1, 300, 2, flags::READ_ONLY),
        o(Code::Unpin, 2, 0),
        o(Code::Release, 2, 0),
        wr(1, 300, super::corpus::NONE, 0),
        o(Code::Release, 2, 0),
        o(Code::Unpin, 1, 0),
        o(Code::Release, 1, 0),
    ];
    assert_eq!(rets(&seq)[..seq.len()], [0, 0, 0, 0, 0, 0, -16, 0, 0, 0, 0]);
}

#[test]
fn stores_to_a_read_only_l1_table_are_emulated() {
    // Frame 0 pinned as an L1: a store of a valid entry through its read-only mapping is
    // emulated (done); a store of a writable mapping of a table is refused (the #PF); a
    // store to a frame only protected faults.
    let seq = [
        o(Code::Protect, 0, 0),
        o(Code::Protect, 1, 0),
        o(Code::Pin, 0, 1),
        store(0, 300, 1, flags::READ_ONLY),
        store(0, 301, 0, flags::WRITABLE),
        store(1, 300, 0, flags::READ_ONLY),
        o(Code::Unpin, 0, 0),
        o(Code::Release, 0, 0),
        o(Code::Release, 1, 0),
        o(Code::Zero, 0, 0),
    ];
    let m = model(&seq);
    let stores: std::vec::Vec<u8> = m[3..6].iter().map(|&(_, e)| e).collect();
    assert_eq!(
        stores,
        [
            StoreOutcome::Done as u8,
            StoreOutcome::ReadOnly as u8,
            StoreOutcome::ReadOnly as u8
        ]
    );
}

#[test]
fn a_not_present_entry_below_a_read_only_one_is_not_present() {
    // The live root's slot 302 maps frame 1 read-only; frame 1 has no entry 302: a store
    // there faults as not present (Xen: error code without P), not as read-only.
    let seq = [
        o(Code::Protect, 1, 0),
        wr(ROOT, 302, 1, flags::READ_ONLY),
        Op {
            arg: 0b10_10_10_10,
            ..Op::new(Code::StoreVia)
        },
        wr(ROOT, 302, super::corpus::NONE, 0),
        o(Code::Release, 1, 0),
    ];
    assert_eq!(model(&seq)[2], (0, StoreOutcome::NotPresent as u8));
}

#[test]
fn entries_xen_accepted_in_an_l1_are_refused_in_an_l2() {
    // Xen adds GLOBAL to user entries it accepts in an L1 (written, emulated, or validated in
    // place); the frame pinned as an L2 (or L3) later is then -22. Kernel entries (no USER)
    // get USER and a mark L2s accept: 0.
    let pre = [o(Code::Protect, 0, 0), o(Code::Protect, 1, 0)];
    let post = [
        o(Code::Unpin, 1, 0),
        o(Code::Release, 0, 0),
        o(Code::Release, 1, 0),
        o(Code::Zero, 1, 0),
    ];
    let case = |mid: &[Op], pin: u8| {
        let mut v = pre.to_vec();
        v.extend_from_slice(mid);
        v.push(o(Code::Pin, 1, pin));
        v.extend_from_slice(&post);
        rets(&v)[pre.len() + mid.len()]
    };
    let written = |f| [o(Code::Pin, 1, 1), wr(1, 300, 0, f), o(Code::Unpin, 1, 0)];
    assert_eq!(case(&written(flags::READ_ONLY), 2), -22);
    assert_eq!(case(&written(flags::READ_ONLY), 3), -22);
    assert_eq!(case(&written(flags::KERNEL_RO), 2), 0);
    let emulated = [
        o(Code::Pin, 1, 1),
        store(1, 300, 0, flags::READ_ONLY),
        o(Code::Unpin, 1, 0),
    ];
    assert_eq!(case(&emulated, 2), -22);
    let validated = |f| [wr(1, 300, 0, f), o(Code::Pin, 1, 1), o(Code::Unpin, 1, 0)];
    assert_eq!(case(&validated(flags::READ_ONLY), 2), -22);
    assert_eq!(case(&validated(flags::KERNEL_RO), 2), 0);
    // Written while the frame is plain memory: accepted as an L2.
    assert_eq!(case(&[wr(1, 300, 0, flags::READ_ONLY)], 2), 0);
}

#[test]
fn a_childs_refusal_passes_up_unchanged() {
    // Frame 0 maps the live root writable; frame 1 (an L2) maps frame 0 as its L1: pinning
    // frame 1 is -16 (-EBUSY, as pinning frame 0 as an L1 is), not -22.
    let seq = [
        o(Code::Protect, 0, 0),
        o(Code::Protect, 1, 0),
        wr(0, 302, ROOT, flags::WRITABLE),
        wr(1, 300, 0, flags::READ_ONLY),
        o(Code::Pin, 1, 2),
        o(Code::Pin, 0, 1),
        o(Code::Release, 0, 0),
        o(Code::Release, 1, 0),
        o(Code::Zero, 0, 0),
    ];
    assert_eq!(rets(&seq)[4..6], [-16, -16]);
}
