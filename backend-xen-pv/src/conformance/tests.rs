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

#[test]
#[ignore]
fn write_experiment() {
    use super::corpus::{flags, Code, Op, ROOT};
    let o = |code, frame, arg| Op { frame, arg, ..Op::new(code) };
    let mut seqs = std::vec::Vec::new();
    // A: an L4 pinned, unpinned, then pinned as an L1 (stale Xen slots and slot 0 inside).
    seqs.push(std::vec![o(Code::Protect, 0, 0), o(Code::Inherit, 0, 0), o(Code::Pin, 0, 4), o(Code::Unpin, 0, 0), o(Code::Pin, 0, 1), o(Code::Unpin, 0, 0), o(Code::Release, 0, 0), o(Code::Zero, 0, 0)]);
    // B: inherit only, pin as L1 (slot 0: a writable mapping of the live L3).
    seqs.push(std::vec![o(Code::Protect, 0, 0), o(Code::Inherit, 0, 0), o(Code::Pin, 0, 1), o(Code::Unpin, 0, 0), o(Code::Release, 0, 0), o(Code::Zero, 0, 0)]);
    // C: an L2 whose entry maps B-like frame 1 as L1.
    let w = Op { frame: 1, index: 300, target: 0, flags: flags::READ_ONLY, ..Op::new(Code::Write) };
    seqs.push(std::vec![o(Code::Protect, 0, 0), o(Code::Protect, 1, 0), o(Code::Inherit, 0, 0), w, o(Code::Pin, 1, 2), o(Code::Unpin, 1, 0), o(Code::Release, 0, 0), o(Code::Release, 1, 0), o(Code::Zero, 0, 0), o(Code::Zero, 1, 0)]);
    // D: as A, but then pinned as an L2.
    seqs.push(std::vec![o(Code::Protect, 0, 0), o(Code::Inherit, 0, 0), o(Code::Pin, 0, 4), o(Code::Unpin, 0, 0), o(Code::Pin, 0, 2), o(Code::Unpin, 0, 0), o(Code::Release, 0, 0), o(Code::Zero, 0, 0)]);
    let wr = |frame, index, target, flags| Op { frame, index, target, flags, ..Op::new(Code::Write) };
    let clean = [o(Code::Unpin, 0, 0), o(Code::Unpin, 1, 0), o(Code::Release, 0, 0), o(Code::Release, 1, 0), o(Code::Zero, 0, 0), o(Code::Zero, 1, 0)];
    let with = |v: &[Op]| { let mut v = v.to_vec(); v.extend_from_slice(&clean); v };
    seqs.clear();
    // K: written plain, validated as an L1, then pinned as an L2.
    seqs.push(with(&[o(Code::Protect, 0, 0), o(Code::Protect, 1, 0), wr(1, 300, 0, flags::READ_ONLY), o(Code::Pin, 1, 1), o(Code::Unpin, 1, 0), o(Code::Pin, 1, 2)]));
    // L: written while an L1, without USER, then pinned as an L2.
    seqs.push(with(&[o(Code::Protect, 0, 0), o(Code::Protect, 1, 0), o(Code::Pin, 1, 1), wr(1, 300, 0, flags::KERNEL_RO), o(Code::Unpin, 1, 0), o(Code::Pin, 1, 2)]));
    // M: as L, with GLOBAL.
    seqs.push(with(&[o(Code::Protect, 0, 0), o(Code::Protect, 1, 0), o(Code::Pin, 1, 1), wr(1, 300, 0, flags::GLOBAL_RW), o(Code::Unpin, 1, 0), o(Code::Release, 0, 0), o(Code::Pin, 1, 2)]));
    // N: K with KERNEL_RO.
    seqs.push(with(&[o(Code::Protect, 0, 0), o(Code::Protect, 1, 0), wr(1, 300, 0, flags::KERNEL_RO), o(Code::Pin, 1, 1), o(Code::Unpin, 1, 0), o(Code::Pin, 1, 2)]));
    let _ = ROOT;
    std::fs::write("/tmp/exp/corpus.bin", super::gen::encode(&seqs)).unwrap();
    for (s, r) in seqs.iter().zip(super::gen::expected(&seqs)) {
        std::println!("{:?}", r.chunks(2).map(|c| c[0] as i8).collect::<std::vec::Vec<_>>());
        let _ = s;
    }
}
