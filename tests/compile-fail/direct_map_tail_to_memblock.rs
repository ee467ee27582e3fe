// `map_ram` hands back no frames: the buffer's tail is already free in memblock and its used
// part are page tables. What `DirectMap::buffer` says are frame numbers, which memblock does
// not take back.
use hal_core::direct_map::DirectMap;
use hal_core::memblock::Memblock;

fn free_again<const N: usize>(mb: &mut Memblock<N>, map: DirectMap<N>) {
    let _ = mb.free_frames(map.buffer.released);
    let _ = mb.free_frames(map.buffer.used);
}

fn main() {}
