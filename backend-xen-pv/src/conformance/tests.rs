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
