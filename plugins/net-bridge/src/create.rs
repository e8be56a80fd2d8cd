//! `network create --driver bridge`: checks the options and subnets and fills in what Docker
//! would (a free subnet, the gateway, the bridge's name).

use net_common::addrs::{Sub, check_subnets, first_host, free_v4, free_v6, overlaps, used_nets};
use net_common::names::{bridge_name, check_ifname};
use net_common::opts::MIN_MTU_IPV6;
use net_common::wit::{Error, HostFacts, Network};
use net_common::{invalid, ipnet::IpNet};

use crate::options::{BridgeOpts, MTU, NAME};

/// Docker's name for the default network, which burrow's bridge driver also recognises.
pub const DEFAULT_NETWORK: &str = "bridge";
/// The default network's bridge (Docker's is `docker0`).
pub const DEFAULT_BRIDGE: &str = "burrow0";

pub fn create(mut n: Network, facts: &HostFacts) -> Result<Network, Error> {
    let opts = BridgeOpts::parse(&n.options)?;
    if let Some(mtu) = opts.mtu.filter(|m| n.ipv6 && *m < MIN_MTU_IPV6) {
        return Err(invalid(format!(
            "invalid value \"{mtu}\" for option {MTU}: an IPv6 network needs at least {MIN_MTU_IPV6}"
        )));
    }
    let is_default = n.name == DEFAULT_NETWORK;
    let iface = match opts.name.or(n.iface.take()) {
        Some(name) => name,
        None if is_default => DEFAULT_BRIDGE.to_string(),
        None => bridge_name(&n)?,
    };
    check_ifname("bridge name", &iface)?;
    let existing = facts.links.iter().find(|l| l.name == iface);
    if let Some(l) = existing.filter(|l| l.kind != "bridge") {
        return Err(invalid(format!(
            "interface {iface} already exists and is a {}, not a bridge: choose another {NAME}",
            l.kind
        )));
    }

    // An existing bridge of that name is taken over: its own addresses are not "in use".
    let others = HostFacts {
        links: facts
            .links
            .iter()
            .filter(|l| l.name != iface)
            .cloned()
            .collect(),
        ..facts.clone()
    };
    let used = used_nets(&others)?;
    let mut subs = check_subnets(&n.subnets, n.ipv6, &used)?;
    if !subs.iter().any(|s| s.net.addr().is_ipv4()) {
        // Docker keeps the address an existing bridge already has; otherwise the pools.
        let kept = existing.and_then(|l| bridge_v4(&l.addrs, &used));
        let sub = match kept {
            Some(sub) => sub,
            None => {
                let net = IpNet::V4(free_v4(&used)?);
                Sub {
                    net,
                    gateway: first_host(net),
                }
            }
        };
        subs.insert(0, sub);
    }
    if n.ipv6 && !subs.iter().any(|s| s.net.addr().is_ipv6()) {
        let net = IpNet::V6(free_v6(&n.id, &used)?);
        subs.push(Sub {
            net,
            gateway: first_host(net),
        });
    }
    n.subnets = subs.into_iter().map(Sub::to_wit).collect();
    n.iface = Some(iface);
    // Docker's default network has no embedded DNS: containers there find each other only
    // through --link.
    if is_default {
        n.dns = false;
    }
    Ok(n)
}

/// The first IPv4 address of an existing bridge, as a subnet and gateway, if it is usable.
fn bridge_v4(addrs: &[String], used: &[IpNet]) -> Option<Sub> {
    let addr: IpNet = addrs
        .iter()
        .filter_map(|a| a.parse::<IpNet>().ok())
        .find(|a| a.addr().is_ipv4() && a.prefix_len() <= 30)?;
    let net = addr.trunc();
    let free = !used.iter().any(|u| overlaps(*u, net));
    let host = addr.addr() != net.network() && addr.addr() != net.broadcast();
    (free && host).then_some(Sub {
        net,
        gateway: addr.addr(),
    })
}

#[cfg(test)]
#[path = "create_tests.rs"]
mod tests;
