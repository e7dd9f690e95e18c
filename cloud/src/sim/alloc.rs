//! Address and /28-prefix allocation inside one subnet.
//!
//! A bitmap over the subnet's addresses: EC2 subnets are /16../28, so at most
//! 1024 words. Reserved addresses (network, +1, +2, +3, broadcast) are marked
//! taken from the start, which also keeps any /28 that contains them from
//! being delegated, as in EC2.

/// Host addresses per delegated prefix (/28).
pub(crate) const PREFIX_SIZE: u32 = 16;

#[derive(Clone, Debug)]
pub(crate) struct Pool {
    size: u32,
    bits: Vec<u64>,
    free: u32,
    /// No word below this index has a free bit; keeps "lowest free" cheap
    /// when thousands of addresses are handed out in order.
    hint: usize,
}

impl Pool {
    /// A pool for `size` addresses (a power of two, >= 16).
    pub fn new(size: u32) -> Pool {
        let words = size.div_ceil(64) as usize;
        let mut pool = Pool {
            size,
            bits: vec![0; words],
            free: size,
            hint: 0,
        };
        // Bits past the end of a sub-64 subnet count as taken, never as free.
        for off in size..(words as u32 * 64) {
            pool.set(off);
        }
        pool.free = size;
        for off in [0, 1, 2, 3, size - 1] {
            pool.take(off);
        }
        pool
    }

    fn set(&mut self, off: u32) {
        self.bits[(off / 64) as usize] |= 1u64 << (off % 64);
    }

    pub fn is_free(&self, off: u32) -> bool {
        off < self.size && self.bits[(off / 64) as usize] & (1u64 << (off % 64)) == 0
    }

    pub fn free_count(&self) -> u32 {
        self.free
    }

    /// Marks one address taken; false when it was not free.
    pub fn take(&mut self, off: u32) -> bool {
        if !self.is_free(off) {
            return false;
        }
        self.set(off);
        self.free -= 1;
        true
    }

    /// Frees one address; the caller guarantees it was allocated (never a
    /// reserved one).
    pub fn release(&mut self, off: u32) {
        if off >= self.size || self.is_free(off) {
            return;
        }
        let w = (off / 64) as usize;
        self.bits[w] &= !(1u64 << (off % 64));
        self.free += 1;
        self.hint = self.hint.min(w);
    }

    /// The lowest free address, taken.
    pub fn take_lowest(&mut self) -> Option<u32> {
        while self.hint < self.bits.len() {
            let word = self.bits[self.hint];
            if word != u64::MAX {
                let off = self.hint as u32 * 64 + word.trailing_ones();
                if self.take(off) {
                    return Some(off);
                }
                return None;
            }
            self.hint += 1;
        }
        None
    }

    /// `n` addresses, lowest first, or nothing when fewer are free.
    pub fn take_many(&mut self, n: u32) -> Option<Vec<u32>> {
        if n > self.free {
            return None;
        }
        let mut got = Vec::with_capacity(n as usize);
        for _ in 0..n {
            match self.take_lowest() {
                Some(off) => got.push(off),
                None => {
                    got.iter().for_each(|&o| self.release(o));
                    return None;
                }
            }
        }
        Some(got)
    }

    fn block_free(&self, start: u32) -> bool {
        if start + PREFIX_SIZE > self.size {
            return false;
        }
        let w = self.bits[(start / 64) as usize];
        (w >> (start % 64)) & 0xffff == 0
    }

    /// Takes the aligned block at `start` (a multiple of 16); false unless all
    /// 16 addresses were free.
    pub fn take_block(&mut self, start: u32) -> bool {
        if !start.is_multiple_of(PREFIX_SIZE) || !self.block_free(start) {
            return false;
        }
        for off in start..start + PREFIX_SIZE {
            self.take(off);
        }
        true
    }

    pub fn release_block(&mut self, start: u32) {
        for off in start..start + PREFIX_SIZE {
            self.release(off);
        }
    }

    /// `n` free aligned blocks, lowest first, or nothing when fewer exist.
    pub fn take_blocks(&mut self, n: u32) -> Option<Vec<u32>> {
        let mut got = Vec::with_capacity(n as usize);
        let mut start = 0;
        while (got.len() as u32) < n && start < self.size {
            if self.block_free(start) {
                got.push(start);
            }
            start += PREFIX_SIZE;
        }
        if (got.len() as u32) < n {
            return None;
        }
        for &s in &got {
            self.take_block(s);
        }
        Some(got)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn reserved_addresses_are_never_handed_out() {
        let mut p = Pool::new(16);
        let got = p.take_many(11).unwrap();
        assert_eq!(got, (4..15).collect::<Vec<_>>());
        assert!(p.take_lowest().is_none());
        assert_eq!(p.free_count(), 0);
    }

    #[test]
    fn exhaustion_returns_none_without_taking_anything() {
        let mut p = Pool::new(16);
        assert!(p.take_many(12).is_none());
        assert_eq!(p.free_count(), 11);
    }

    #[test]
    fn ten_thousand_allocations_are_unique_and_lowest_first() {
        let mut p = Pool::new(1 << 16);
        let mut seen = HashSet::new();
        let mut prev = None;
        for _ in 0..10_000 {
            let off = p.take_lowest().unwrap();
            assert!(seen.insert(off), "duplicate {off}");
            assert!((4..(1 << 16) - 1).contains(&off));
            if let Some(prev) = prev {
                assert!(off > prev);
            }
            prev = Some(off);
        }
        assert_eq!(p.free_count(), (1 << 16) - 5 - 10_000);
    }

    #[test]
    fn released_address_is_reused_first() {
        let mut p = Pool::new(256);
        let a = p.take_many(100).unwrap();
        p.release(a[10]);
        assert_eq!(p.take_lowest(), Some(a[10]));
        assert_eq!(p.take_lowest(), Some(104));
    }

    #[test]
    fn blocks_are_aligned_and_skip_reserved_and_taken() {
        let mut p = Pool::new(64);
        // 0..16 holds reserved addresses, 48..64 holds the broadcast.
        assert!(p.take(20));
        let got = p.take_blocks(1).unwrap();
        assert_eq!(got, vec![32]);
        assert!(p.take_blocks(1).is_none());
        assert!(!p.take_block(16), "block with a taken address");
        p.release(20);
        assert!(p.take_block(16));
        assert!(!p.take_block(17), "misaligned");
    }

    #[test]
    fn a_slash_28_subnet_has_no_prefix() {
        let mut p = Pool::new(16);
        assert!(p.take_blocks(1).is_none());
    }
}
