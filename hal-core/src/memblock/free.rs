//! Iteration over free memory: memory minus reserved.

use super::Region;

/// The free ranges of a memblock, ascending. See [`Memblock::free_ranges`](super::Memblock::free_ranges).
pub struct FreeRanges<'a> {
    memory: &'a [Region],
    reserved: &'a [Region],
    mi: usize,
    ri: usize,
    cursor: u64,
}

impl<'a> FreeRanges<'a> {
    pub(crate) fn new(memory: &'a [Region], reserved: &'a [Region]) -> Self {
        Self {
            memory,
            reserved,
            mi: 0,
            ri: 0,
            cursor: memory.first().map_or(0, Region::start),
        }
    }
}

impl Iterator for FreeRanges<'_> {
    type Item = Region;

    fn next(&mut self) -> Option<Region> {
        loop {
            let m = *self.memory.get(self.mi)?;
            self.cursor = self.cursor.max(m.start());
            // Skip reservations that end before the cursor.
            while self
                .reserved
                .get(self.ri)
                .is_some_and(|r| r.end() <= self.cursor)
            {
                self.ri += 1;
            }
            let next_res = self.reserved.get(self.ri).copied();
            match next_res {
                Some(r) if r.start() <= self.cursor => {
                    // Inside a reservation: jump past it.
                    self.cursor = r.end();
                }
                _ => {
                    let stop = next_res.map_or(m.end(), |r| r.start().min(m.end()));
                    if self.cursor < stop {
                        let out = Region::new(self.cursor, stop).ok()?;
                        self.cursor = stop;
                        return Some(out);
                    }
                }
            }
            if self.cursor >= m.end() {
                self.mi += 1;
            }
        }
    }
}
