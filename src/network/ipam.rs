//! Address management for a network's IPv4 pool: the subnet, the range addresses are handed
//! out from, and the gateway. Allocation is serial, as Docker's: each new address is the first
//! free one after the last handed out, wrapping at the end of the range, so an address
//! released by `rm` is not given to the next container at once.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IpamError {
    #[error("invalid subnet {0:?}: use an IPv4 CIDR such as 10.89.0.0/24")]
    BadSubnet(String),
    #[error("invalid subnet {given}: it must be {canonical} (the host bits must be zero)")]
    HostBits { given: String, canonical: String },
    #[error("subnet {0} is too small: use a prefix of /30 or shorter")]
    TooSmall(Ipv4Net),
    #[error("invalid ip-range {0:?}: use an IPv4 CIDR inside the subnet")]
    BadRange(String),
    #[error("no matching subnet for range {0}")]
    RangeOutside(Ipv4Net),
    #[error("invalid gateway {0:?}: use an IPv4 address inside the subnet")]
    BadGateway(String),
    #[error("no matching subnet for gateway {0}")]
    GatewayOutside(Ipv4Addr),
    #[error("invalid address {0}: it does not belong to any of this network's subnets")]
    Outside(Ipv4Addr),
    #[error("address {0} is already in use")]
    InUse(Ipv4Addr),
    #[error("address {0} is reserved (network, broadcast or gateway address)")]
    Reserved(Ipv4Addr),
    #[error("no available IPv4 addresses on this network's address pool {0}")]
    Exhausted(Ipv4Net),
}

/// One IPv4 pool of a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    pub subnet: Ipv4Net,
    /// Where new addresses come from: the subnet unless `--ip-range` narrowed it.
    pub range: Ipv4Net,
    pub gateway: Ipv4Addr,
}

impl Pool {
    /// `--subnet`, `--ip-range` and `--gateway` as the user gave them; the gateway defaults to
    /// the subnet's first host address.
    pub fn new(
        subnet: &str,
        range: Option<&str>,
        gateway: Option<&str>,
    ) -> Result<Pool, IpamError> {
        let given: Ipv4Net = subnet
            .parse()
            .map_err(|_| IpamError::BadSubnet(subnet.to_string()))?;
        let net = given.trunc();
        if net != given {
            return Err(IpamError::HostBits {
                given: subnet.to_string(),
                canonical: net.to_string(),
            });
        }
        if net.prefix_len() > 30 {
            return Err(IpamError::TooSmall(net));
        }
        let range = match range {
            None => net,
            Some(r) => {
                let r: Ipv4Net = r.parse().map_err(|_| IpamError::BadRange(r.to_string()))?;
                let r = r.trunc();
                if !net.contains(&r) {
                    return Err(IpamError::RangeOutside(r));
                }
                r
            }
        };
        let gateway = match gateway {
            None => first_host(net),
            Some(g) => {
                let g: Ipv4Addr = g
                    .parse()
                    .map_err(|_| IpamError::BadGateway(g.to_string()))?;
                if !net.contains(&g) || g == net.network() || g == net.broadcast() {
                    return Err(IpamError::GatewayOutside(g));
                }
                g
            }
        };
        Ok(Pool {
            subnet: net,
            range,
            gateway,
        })
    }

    fn reserved(&self, a: Ipv4Addr) -> bool {
        a == self.subnet.network() || a == self.subnet.broadcast() || a == self.gateway
    }

    /// The next address after `last` (the last one handed out), wrapping inside the range;
    /// never one in `taken`, the gateway, or the subnet's network and broadcast addresses.
    pub fn allocate(
        &self,
        taken: &BTreeSet<Ipv4Addr>,
        last: Option<Ipv4Addr>,
    ) -> Result<Ipv4Addr, IpamError> {
        let (lo, hi) = (
            u32::from(self.range.network()),
            u32::from(self.range.broadcast()),
        );
        let start = match last.map(u32::from) {
            Some(l) if (lo..hi).contains(&l) => l + 1,
            _ => lo,
        };
        (start..=hi)
            .chain(lo..start)
            .map(Ipv4Addr::from)
            .find(|a| !self.reserved(*a) && !taken.contains(a))
            .ok_or(IpamError::Exhausted(self.range))
    }

    /// A static address (`--ip`): inside the subnet (not necessarily the range), free.
    pub fn reserve(&self, addr: Ipv4Addr, taken: &BTreeSet<Ipv4Addr>) -> Result<(), IpamError> {
        if !self.subnet.contains(&addr) {
            return Err(IpamError::Outside(addr));
        }
        if self.reserved(addr) {
            return Err(IpamError::Reserved(addr));
        }
        if taken.contains(&addr) {
            return Err(IpamError::InUse(addr));
        }
        Ok(())
    }
}

fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_and_refusals() {
        let p = Pool::new("10.89.0.0/24", None, None).unwrap();
        assert_eq!(p.gateway, ip("10.89.0.1"));
        assert_eq!(p.range, p.subnet);
        let e = |s, r, g| Pool::new(s, r, g).unwrap_err().to_string();
        assert_eq!(
            e("10.89.0.5/24", None, None),
            "invalid subnet 10.89.0.5/24: it must be 10.89.0.0/24 (the host bits must be zero)"
        );
        assert_eq!(
            e("banana", None, None),
            "invalid subnet \"banana\": use an IPv4 CIDR such as 10.89.0.0/24"
        );
        assert_eq!(
            e("10.1.0.0/16", Some("10.2.0.0/24"), None),
            "no matching subnet for range 10.2.0.0/24"
        );
        assert_eq!(
            e("10.1.0.0/16", None, Some("10.2.0.1")),
            "no matching subnet for gateway 10.2.0.1"
        );
        assert_eq!(
            e("10.1.0.0/31", None, None),
            "subnet 10.1.0.0/31 is too small: use a prefix of /30 or shorter"
        );
    }

    #[test]
    fn addresses_come_in_order_inside_the_range_and_not_twice() {
        let p = Pool::new("10.1.0.0/16", Some("10.1.5.0/30"), Some("10.1.5.1")).unwrap();
        let mut taken = BTreeSet::new();
        let mut last = None;
        let mut got = vec![];
        for _ in 0..2 {
            let a = p.allocate(&taken, last).unwrap();
            taken.insert(a);
            last = Some(a);
            got.push(a);
        }
        // The range's first address is usable: only the subnet's ends and the gateway are not.
        assert_eq!(got, [ip("10.1.5.0"), ip("10.1.5.2")]);
        let a = p.allocate(&taken, last).unwrap();
        assert_eq!(a, ip("10.1.5.3"));
        taken.insert(a);
        assert_eq!(
            p.allocate(&taken, Some(a)).unwrap_err().to_string(),
            "no available IPv4 addresses on this network's address pool 10.1.5.0/30"
        );
        // A released address is handed out again only after the others (serial, wrapping).
        taken.remove(&ip("10.1.5.0"));
        assert_eq!(p.allocate(&taken, Some(a)).unwrap(), ip("10.1.5.0"));
    }

    #[test]
    fn serial_allocation_skips_a_just_released_address() {
        let p = Pool::new("172.20.0.0/24", None, None).unwrap();
        let mut taken: BTreeSet<_> = [ip("172.20.0.2"), ip("172.20.0.3")].into();
        taken.remove(&ip("172.20.0.2"));
        assert_eq!(
            p.allocate(&taken, Some(ip("172.20.0.3"))).unwrap(),
            ip("172.20.0.4")
        );
        // Network, gateway and broadcast are never handed out.
        assert_eq!(
            p.allocate(&BTreeSet::new(), None).unwrap(),
            ip("172.20.0.2")
        );
        assert_eq!(
            p.allocate(&BTreeSet::new(), Some(ip("172.20.0.254")))
                .unwrap(),
            ip("172.20.0.2")
        );
    }

    #[test]
    fn static_addresses_are_checked() {
        let p = Pool::new("172.20.0.0/24", Some("172.20.0.128/25"), None).unwrap();
        let taken: BTreeSet<_> = [ip("172.20.0.9")].into();
        assert_eq!(p.reserve(ip("172.20.0.10"), &taken), Ok(()));
        assert_eq!(
            p.reserve(ip("172.20.0.9"), &taken).unwrap_err().to_string(),
            "address 172.20.0.9 is already in use"
        );
        assert_eq!(
            p.reserve(ip("10.0.0.9"), &taken).unwrap_err().to_string(),
            "invalid address 10.0.0.9: it does not belong to any of this network's subnets"
        );
        assert!(matches!(
            p.reserve(ip("172.20.0.1"), &taken),
            Err(IpamError::Reserved(_))
        ));
    }
}
