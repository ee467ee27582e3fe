// Un-reserving bytes could hand out frames somebody holds (a pgt_buf's, a table's): the 2011
// bug in safe code. Only owned `Free` frames go back safely (`free_frames`); `unreserve` is
// unsafe.
use hal_core::memblock::Memblock;
use hal_core::PgtBuf;

fn leak(mb: &mut Memblock<8>, buf: &PgtBuf) {
    let (s, e) = buf.range().bytes();
    let _ = mb.unreserve(s, e);
}

fn main() {}
