//! IPv4 subnets for the networks of a worker's instances: the worker's pool
//! (`worker --network-pool CIDR`) and the choice of the next free subnet in it. No I/O: what is
//! taken (the worker's own networks, the host's routes, subnets the engine refused) comes in as
//! values.
//!
//! Docker's own default pools hold 31 networks; a pool of the worker's own holds thousands, and a
//! subnet is only as large as the instance needs: its tasks, plus the network, gateway and
//! broadcast addresses, rounded up to a power of two, at least a /29.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// An IPv4 network in CIDR notation: `10.213.0.0/16`. The address is always the network's first
/// (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: u32,
    prefix: u8,
}

impl Ipv4Net {
    /// The network of `addr` with `prefix` bits (host bits cleared); `None` for a prefix over 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Ipv4Net {
            addr: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    /// The first address.
    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// How many addresses it spans.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    fn last(&self) -> u32 {
        self.addr | !mask(self.prefix)
    }

    /// Whether the two share any address.
    pub fn overlaps(&self, other: &Ipv4Net) -> bool {
        self.addr <= other.last() && other.addr <= self.last()
    }

    /// Whether `other` lies wholly inside this one.
    pub fn contains(&self, other: &Ipv4Net) -> bool {
        self.prefix <= other.prefix && self.addr <= other.addr && other.last() <= self.last()
    }
}

/// The netmask of `prefix` bits.
fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix.min(32)))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.prefix)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;

    /// Reads `A.B.C.D/N`; refuses an address with host bits set (`10.0.0.1/16`), which is
    /// usually a typo for another network.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not an IPv4 network in CIDR notation (e.g. 10.213.0.0/16)");
        let (a, p) = s.trim().split_once('/').ok_or_else(bad)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| bad())?;
        let prefix: u8 = p.parse().map_err(|_| bad())?;
        let net = Ipv4Net::new(addr, prefix).ok_or_else(bad)?;
        if net.addr() != addr {
            return Err(format!(
                "{s:?} has host bits set: the network is {net} (write that)"
            ));
        }
        Ok(net)
    }
}

/// The default pool of a worker's instance networks. It lies outside Docker's own default pools
/// (172.17.0.0/16 to 172.31.0.0/16 and 192.168.0.0/16) and holds 8,192 instances of up to five
/// tasks.
pub const DEFAULT_POOL: &str = "10.213.0.0/16";

/// The prefix of the subnet for an instance of `tasks` tasks: room for each task plus the
/// network, gateway and broadcast addresses, rounded up to a power of two, at least a /29.
pub fn prefix_for(tasks: usize) -> u8 {
    let need = (tasks as u64).saturating_add(3).max(8);
    let bits = 64 - (need - 1).leading_zeros();
    (32 - bits.min(32)) as u8
}

/// The first subnet of `prefix` bits in `pool` that overlaps nothing in `taken`, in address
/// order; `None` when the pool is full.
pub fn next_free(pool: &Ipv4Net, prefix: u8, taken: &[Ipv4Net]) -> Option<Ipv4Net> {
    if prefix < pool.prefix || prefix > 32 {
        return None;
    }
    let step = 1u64 << (32 - u32::from(prefix));
    let mut at = u64::from(pool.addr);
    let end = u64::from(pool.last());
    while at <= end {
        let candidate = Ipv4Net {
            addr: at as u32,
            prefix,
        };
        match taken
            .iter()
            .filter(|t| t.overlaps(&candidate))
            .map(Ipv4Net::last)
            .max()
        {
            None => return Some(candidate),
            // Skip past whatever is in the way, to the next aligned subnet.
            Some(last) => {
                let past = u64::from(last) + 1;
                at = past.div_ceil(step) * step;
            }
        }
    }
    None
}

/// The host's IPv4 routes that matter for choosing subnets, from the text of Linux's
/// `/proc/net/route`: every destination network but the default route (`0.0.0.0/0`).
pub fn routes_from_proc(text: &str) -> Vec<Ipv4Net> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(cols.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(cols.get(7)?, 16).ok()?;
            // The file writes each address as the number its network-order bytes make in the
            // host's byte order (0001A8C0 is 192.168.1.0 on a little-endian host).
            let prefix = mask.count_ones() as u8;
            (prefix > 0).then(|| Ipv4Net::new(Ipv4Addr::from(dest.to_ne_bytes()), prefix))?
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_reads_and_writes_and_refuses_host_bits() {
        assert_eq!(net("10.213.0.0/16").to_string(), "10.213.0.0/16");
        assert_eq!(net("10.213.0.0/16").size(), 65_536);
        assert!(
            "10.213.0.1/16"
                .parse::<Ipv4Net>()
                .unwrap_err()
                .contains("10.213.0.0/16")
        );
        assert!("10.213.0.0".parse::<Ipv4Net>().is_err());
        assert!("10.213.0.0/33".parse::<Ipv4Net>().is_err());
        assert!(net("10.0.0.0/8").contains(&net("10.213.0.0/16")));
        assert!(net("10.213.0.0/16").overlaps(&net("10.0.0.0/8")));
        assert!(!net("10.213.0.0/29").overlaps(&net("10.213.0.8/29")));
    }

    #[test]
    fn a_subnet_fits_the_tasks_and_three_more_addresses() {
        assert_eq!(prefix_for(1), 29);
        assert_eq!(prefix_for(5), 29, "5 + 3 = 8 addresses");
        assert_eq!(prefix_for(6), 28);
        assert_eq!(prefix_for(13), 28);
        assert_eq!(prefix_for(14), 27);
        assert_eq!(prefix_for(64), 25);
    }

    #[test]
    fn the_next_free_subnet_skips_what_is_taken_and_stays_aligned() {
        let pool = net("10.213.0.0/24");
        assert_eq!(next_free(&pool, 29, &[]), Some(net("10.213.0.0/29")));
        let taken = [net("10.213.0.0/29"), net("10.213.0.8/29")];
        assert_eq!(next_free(&pool, 29, &taken), Some(net("10.213.0.16/29")));
        // A /28 skips past a /29 in its way to the next /28 boundary.
        assert_eq!(
            next_free(&pool, 28, &[net("10.213.0.0/29")]),
            Some(net("10.213.0.16/28"))
        );
        // A host route covering the start of the pool.
        assert_eq!(
            next_free(&pool, 29, &[net("10.213.0.0/25")]),
            Some(net("10.213.0.128/29"))
        );
        // Full.
        assert_eq!(next_free(&pool, 29, &[net("10.0.0.0/8")]), None);
        assert_eq!(next_free(&pool, 16, &[]), None, "larger than the pool");
        let last = net("10.213.0.248/29");
        let all_but_last: Vec<_> = (0..31)
            .map(|i| net(&format!("10.213.0.{}/29", i * 8)))
            .collect();
        assert_eq!(next_free(&pool, 29, &all_but_last), Some(last));
    }

    #[test]
    fn routes_are_read_from_proc_net_route() {
        let text = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
                    eth0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
                    eth0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
                    docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        assert_eq!(
            routes_from_proc(text),
            [net("192.168.1.0/24"), net("172.17.0.0/16")]
        );
    }
}
