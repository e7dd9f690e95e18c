//! Sets of IPv4 addresses kept as runs of consecutive addresses, so that a pool costs memory
//! per run, not per address: a /16 pod CIDR is one run, like a /24.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use vpc_cni_proto::net::Ipv4Cidr;

/// Addresses, each with a value; consecutive addresses with equal values are stored as one
/// run (`first -> (last, value)`, both ends included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeMap<V> {
    runs: BTreeMap<u32, (u32, V)>,
    len: usize,
}

/// A set of addresses in runs.
pub type AddressRanges = RangeMap<()>;

impl<V> Default for RangeMap<V> {
    fn default() -> Self {
        Self {
            runs: BTreeMap::new(),
            len: 0,
        }
    }
}

impl<V: Copy + Eq> RangeMap<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The run holding `ip`: its first address, last address and value.
    fn run_of(&self, ip: u32) -> Option<(u32, u32, V)> {
        let (&first, &(last, value)) = self.runs.range(..=ip).next_back()?;
        (ip <= last).then_some((first, last, value))
    }

    pub fn get(&self, ip: Ipv4Addr) -> Option<V> {
        self.run_of(ip.into()).map(|(_, _, value)| value)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.run_of(ip.into()).is_some()
    }

    /// Adds `ip` with `value` (replacing the value it had); true if it was not there.
    pub fn insert(&mut self, ip: Ipv4Addr, value: V) -> bool {
        let ip = u32::from(ip);
        let is_new = match self.run_of(ip) {
            Some((_, _, old)) if old == value => return false,
            Some(_) => {
                self.remove_u32(ip);
                false
            }
            None => true,
        };
        let mut first = ip;
        let mut last = ip;
        // Join the run ending just below and the one starting just above when their values
        // are the same, so that runs stay as few as the values allow.
        if let Some(below) = ip.checked_sub(1) {
            if let Some((b_first, _, b_value)) = self.run_of(below) {
                if b_value == value {
                    self.runs.remove(&b_first);
                    first = b_first;
                }
            }
        }
        if let Some(above) = ip.checked_add(1) {
            if let Some(&(a_last, a_value)) = self.runs.get(&above) {
                if a_value == value {
                    self.runs.remove(&above);
                    last = a_last;
                }
            }
        }
        self.runs.insert(first, (last, value));
        self.len += 1;
        is_new
    }

    /// Takes `ip` out; true if it was there.
    pub fn remove(&mut self, ip: Ipv4Addr) -> bool {
        self.remove_u32(ip.into())
    }

    fn remove_u32(&mut self, ip: u32) -> bool {
        let Some((first, last, value)) = self.run_of(ip) else {
            return false;
        };
        self.runs.remove(&first);
        if first < ip {
            self.runs.insert(first, (ip - 1, value));
        }
        if ip < last {
            self.runs.insert(ip + 1, (last, value));
        }
        self.len -= 1;
        true
    }

    /// Takes the lowest address out and returns it.
    pub fn pop_first(&mut self) -> Option<Ipv4Addr> {
        let (&first, _) = self.runs.first_key_value()?;
        self.remove_u32(first);
        Some(Ipv4Addr::from(first))
    }

    /// Every address with its value, lowest first.
    #[cfg(test)]
    pub fn iter(&self) -> impl Iterator<Item = (Ipv4Addr, V)> + '_ {
        self.runs
            .iter()
            .flat_map(|(&first, &(last, value))| (first..=last).map(move |ip| (ip.into(), value)))
    }

    /// The same addresses without their values.
    pub fn keys(&self) -> AddressRanges {
        let mut keys = AddressRanges::new();
        for (&first, &(last, _)) in &self.runs {
            // Runs with different values may touch: join them.
            match keys.runs.last_key_value() {
                Some((&k_first, &(k_last, ()))) if k_last.checked_add(1) == Some(first) => {
                    keys.runs.insert(k_first, (last, ()));
                }
                _ => {
                    keys.runs.insert(first, (last, ()));
                }
            }
        }
        keys.len = self.len;
        keys
    }

    /// The fewest CIDR blocks that hold exactly these addresses, lowest first: each run
    /// split into the largest aligned blocks it holds.
    pub fn cidrs(&self) -> Vec<Ipv4Cidr> {
        let mut out = Vec::with_capacity(self.runs.len());
        for (&first, &(last, _)) in &self.keys().runs {
            let mut start = u64::from(first);
            let end = u64::from(last) + 1;
            while start < end {
                // The largest block aligned at `start` that ends within the run.
                let mut bits = start.trailing_zeros().min(32);
                while (1u64 << bits) > end - start {
                    bits -= 1;
                }
                let (Ok(network), Ok(prefix_len)) = (u32::try_from(start), u8::try_from(32 - bits))
                else {
                    break;
                };
                out.push(Ipv4Cidr {
                    network: Ipv4Addr::from(network),
                    prefix_len,
                });
                start += 1u64 << bits;
            }
        }
        out
    }

    /// Whether every address here is also in `other`.
    pub fn is_subset_of<W: Copy + Eq>(&self, other: &RangeMap<W>) -> bool {
        self.runs.iter().all(|(&first, &(last, _))| {
            // `other`'s runs are maximal only per value, so a run here may span several.
            let mut next = first;
            loop {
                match other.run_of(next) {
                    Some((_, o_last, _)) if o_last >= last => return true,
                    Some((_, o_last, _)) => next = o_last + 1,
                    None => return false,
                }
            }
        })
    }

    /// How many runs hold the addresses (the memory cost).
    #[cfg(test)]
    pub fn runs(&self) -> usize {
        self.runs.len()
    }
}

impl<V: Copy + Eq> FromIterator<(Ipv4Addr, V)> for RangeMap<V> {
    fn from_iter<I: IntoIterator<Item = (Ipv4Addr, V)>>(iter: I) -> Self {
        let mut map = Self::new();
        for (ip, value) in iter {
            map.insert(ip, value);
        }
        map
    }
}

impl FromIterator<Ipv4Addr> for AddressRanges {
    fn from_iter<I: IntoIterator<Item = Ipv4Addr>>(iter: I) -> Self {
        iter.into_iter().map(|ip| (ip, ())).collect()
    }
}
