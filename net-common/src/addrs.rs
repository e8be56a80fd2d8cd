//! Subnets and addresses: checking what the user gave, picking a free subnet from the default
//! pools, and matching a container's addresses to its network's subnets.
//!
//! The default IPv4 pools are Docker's: 172.17.0.0/16 to 172.31.0.0/16, then 192.168.0.0/16 cut
//! into /20s; the first one that overlaps nothing the host uses is taken, so the default network
//! (created first) gets 172.17.0.0/16 as Docker's does. IPv6 without a subnet gets a /64 of a
//! unique local /48 derived from the network id (RFC 4193's fd00::/8).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::names::fnv1a64;
use crate::wit::{Attach, Error, HostFacts, Network, Subnet};
use crate::{internal, invalid};

/// A checked subnet and its gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sub {
    pub net: IpNet,
    pub gateway: IpAddr,
}

impl Sub {
    pub fn to_wit(self) -> Subnet {
        Subnet {
            cidr: self.net.to_string(),
            gateway: Some(self.gateway.to_string()),
        }
    }

    /// The gateway with the subnet's prefix, as it goes on a bridge: 172.18.0.1/16.
    pub fn gateway_cidr(self) -> String {
        format!("{}/{}", self.gateway, self.net.prefix_len())
    }
}

/// One of a container's addresses and the subnet it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assigned {
    pub addr: IpAddr,
    pub sub: Sub,
}

impl Assigned {
    /// The address with its subnet's prefix: 172.18.0.2/16.
    pub fn cidr(self) -> String {
        format!("{}/{}", self.addr, self.sub.net.prefix_len())
    }
}

/// The address right after the network address: Docker's and podman's default gateway.
pub fn first_host(net: IpNet) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n.network()).wrapping_add(1))),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()).wrapping_add(1))),
    }
}

/// Whether two subnets share an address (aligned subnets overlap only by nesting).
pub fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Parses a `--subnet`, refusing one with host bits set as Docker does.
pub fn parse_subnet(cidr: &str) -> Result<IpNet, Error> {
    let net: IpNet = cidr.parse().map_err(|_| {
        invalid(format!(
            "invalid subnet \"{cidr}\": expected an address and prefix length such as 172.20.0.0/16"
        ))
    })?;
    if net.trunc() != net {
        return Err(invalid(format!(
            "invalid subnet {net}: it should be {}",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Checks the subnets given at `network create` (`--subnet`, `--gateway`) and fills in each
/// missing gateway. `avoid` are the subnets already in use (empty for macvlan, whose subnet is
/// the parent's LAN and so overlaps the host's route to it by design).
pub fn check_subnets(subnets: &[Subnet], ipv6: bool, avoid: &[IpNet]) -> Result<Vec<Sub>, Error> {
    let mut out: Vec<Sub> = Vec::with_capacity(subnets.len());
    for s in subnets {
        let net = parse_subnet(&s.cidr)?;
        let (v6, max_prefix) = match net {
            IpNet::V4(_) => (false, 30),
            IpNet::V6(_) => (true, 126),
        };
        if v6 && !ipv6 {
            return Err(invalid(format!(
                "subnet {net} is IPv6: add --ipv6 to use it"
            )));
        }
        if net.prefix_len() > max_prefix {
            return Err(invalid(format!(
                "subnet {net} is too small: use a /{max_prefix} or larger"
            )));
        }
        if let Some(other) = out.iter().find(|o| overlaps(o.net, net)) {
            return Err(invalid(format!("subnets {} and {net} overlap", other.net)));
        }
        if let Some(used) = avoid.iter().find(|u| overlaps(**u, net)) {
            return Err(invalid(format!(
                "subnet {net} overlaps {used}, which is already in use on this host: choose another --subnet"
            )));
        }
        let gateway = match &s.gateway {
            Some(g) => check_gateway(net, g)?,
            None => first_host(net),
        };
        out.push(Sub { net, gateway });
    }
    Ok(out)
}

fn check_gateway(net: IpNet, g: &str) -> Result<IpAddr, Error> {
    let gw: IpAddr = g
        .parse()
        .map_err(|_| invalid(format!("invalid gateway \"{g}\": expected an IP address")))?;
    if !net.contains(&gw) {
        return Err(invalid(format!("gateway {gw} is not in subnet {net}")));
    }
    if let Some(what) = reserved(net, gw) {
        return Err(invalid(format!(
            "gateway {gw} is the {what} of subnet {net}"
        )));
    }
    Ok(gw)
}

/// Names the address if no host may hold it: the network address (and, in IPv4, broadcast).
fn reserved(net: IpNet, addr: IpAddr) -> Option<&'static str> {
    if addr == net.network() {
        Some("network address")
    } else if net.addr().is_ipv4() && addr == net.broadcast() {
        Some("broadcast address")
    } else {
        None
    }
}

/// What the host already uses: `used-subnets` and the networks of its links' addresses.
/// Default routes (prefix 0) are left out, as Docker leaves them out.
pub fn used_nets(facts: &HostFacts) -> Result<Vec<IpNet>, Error> {
    let link_addrs = facts.links.iter().flat_map(|l| l.addrs.iter());
    let mut out = Vec::new();
    for s in facts.used_subnets.iter().chain(link_addrs) {
        let net = match s.parse::<IpNet>() {
            Ok(n) => n.trunc(),
            Err(_) => match s.parse::<IpAddr>() {
                Ok(ip) => IpNet::from(ip),
                Err(_) => {
                    return Err(internal(format!(
                        "the host reported an unreadable subnet \"{s}\" in use"
                    )));
                }
            },
        };
        if net.prefix_len() > 0 {
            out.push(net);
        }
    }
    Ok(out)
}

/// Docker's default local pools, in the order they are handed out.
pub fn v4_pool() -> impl Iterator<Item = Ipv4Net> {
    let sixteens = (17u8..=31).map(|b| Ipv4Net::new_assert(Ipv4Addr::new(172, b, 0, 0), 16));
    let twenties = (0u8..16).map(|i| Ipv4Net::new_assert(Ipv4Addr::new(192, 168, i * 16, 0), 20));
    sixteens.chain(twenties)
}

/// The first default IPv4 pool that overlaps nothing in `avoid`.
pub fn free_v4(avoid: &[IpNet]) -> Result<Ipv4Net, Error> {
    v4_pool()
        .find(|n| !avoid.iter().any(|u| overlaps(*u, IpNet::V4(*n))))
        .ok_or_else(|| {
            invalid(
                "no free IPv4 subnet is left in the default pools 172.17.0.0/16-172.31.0.0/16 and 192.168.0.0/16: pass --subnet",
            )
        })
}

/// The unique local /48 of a network: fd00::/8 and 40 bits of a hash of its id.
pub fn ula_prefix(network_id: &str) -> Ipv6Net {
    let global = fnv1a64(&[network_id]) >> 24;
    let bits = (0xfd_u128 << 120) | (u128::from(global) << 80);
    Ipv6Net::new_assert(Ipv6Addr::from(bits), 48)
}

/// The first /64 of the network's unique local /48 that overlaps nothing in `avoid`.
pub fn free_v6(network_id: &str, avoid: &[IpNet]) -> Result<Ipv6Net, Error> {
    let ula = ula_prefix(network_id);
    let found = ula.subnets(64).ok().and_then(|mut subnets| {
        subnets.find(|n| !avoid.iter().any(|u| overlaps(*u, IpNet::V6(*n))))
    });
    found.ok_or_else(|| {
        invalid(format!(
            "no free IPv6 subnet is left in {ula}: pass an IPv6 --subnet"
        ))
    })
}

/// A created network's subnets, read back at `setup`.
pub fn network_subnets(n: &Network) -> Result<Vec<Sub>, Error> {
    if n.subnets.is_empty() {
        return Err(internal(format!(
            "network {} has no subnet: it did not go through network create",
            n.name
        )));
    }
    n.subnets
        .iter()
        .map(|s| {
            let net = parse_subnet(&s.cidr)?;
            let gateway = match &s.gateway {
                Some(g) => check_gateway(net, g)?,
                None => first_host(net),
            };
            Ok(Sub { net, gateway })
        })
        .collect()
}

/// Matches the container's addresses (`a.ips`, allocated by the host; plain or with the
/// subnet's prefix) to the network's subnets.
pub fn assign(a: &Attach, subs: &[Sub]) -> Result<Vec<Assigned>, Error> {
    let network = &a.network.name;
    if a.ips.is_empty() {
        return Err(internal(format!(
            "no address was allocated for container {} on network {network}",
            a.name
        )));
    }
    let mut out: Vec<Assigned> = Vec::with_capacity(a.ips.len());
    for s in &a.ips {
        let bad = || invalid(format!("invalid IP address \"{s}\""));
        let (addr, prefix) = match s.split_once('/') {
            Some(_) => {
                let net: IpNet = s.parse().map_err(|_| bad())?;
                (net.addr(), Some(net.prefix_len()))
            }
            None => (s.parse::<IpAddr>().map_err(|_| bad())?, None),
        };
        let Some(sub) = subs.iter().find(|x| x.net.contains(&addr)).copied() else {
            let list: Vec<String> = subs.iter().map(|x| x.net.to_string()).collect();
            return Err(invalid(format!(
                "address {addr} is not in a subnet of network {network} ({})",
                list.join(", ")
            )));
        };
        if prefix.is_some_and(|p| p != sub.net.prefix_len()) {
            return Err(invalid(format!(
                "address {s} does not match subnet {} of network {network}",
                sub.net
            )));
        }
        if addr == sub.gateway {
            return Err(invalid(format!(
                "address {addr} is the gateway of network {network}"
            )));
        }
        if let Some(what) = reserved(sub.net, addr) {
            return Err(invalid(format!(
                "address {addr} is the {what} of subnet {}",
                sub.net
            )));
        }
        if out.iter().any(|o| o.addr == addr) {
            return Err(invalid(format!("address {addr} is given twice")));
        }
        out.push(Assigned { addr, sub });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
