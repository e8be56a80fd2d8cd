//! The `macvlan` network driver: each container gets a macvlan interface on the parent
//! interface (`-o parent=IF`), so it sits on the parent's LAN with its own MAC and an address
//! from `--subnet`, and routes through the LAN's `--gateway`. As with Docker, the host itself
//! cannot reach its own macvlan containers through the parent.
//!
//! Creating a macvlan link needs CAP_NET_ADMIN over the parent interface, which a rootless
//! user does not hold in the host's namespace: rootless `network create` is refused, saying
//! so. The built-in DNS is not offered (it answers on a bridge gateway, which a macvlan
//! container cannot reach); containers use the host's resolvers.
//!
//! The driver computes; the host applies. Nothing here touches the system.

// Native builds (unit tests) have no exports, so nothing would use the driver there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use std::net::IpAddr;

use net_common::addrs::{assign, check_subnets, network_subnets};
use net_common::names::check_ifname;
use net_common::opts::unknown;
use net_common::plan::{addr, default_route, up};
use net_common::wit::{
    Attach, Error, Guest, HostFacts, IfaceStatus, Kv, Link, MacvlanSpec, Network, Op, Plan,
    PluginInfo, Side,
};
use net_common::{internal, invalid, mac, unsupported};

pub const PARENT: &str = "parent";
pub const MODE: &str = "macvlan_mode";
const MODES: &[&str] = &["bridge", "vepa", "private", "passthru"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct MacvlanOpts {
    parent: Option<String>,
    mode: String,
}

impl MacvlanOpts {
    fn parse(opts: &[Kv]) -> Result<Self, Error> {
        let mut out = MacvlanOpts {
            parent: None,
            mode: "bridge".into(),
        };
        for Kv { key, value } in opts {
            match key.as_str() {
                PARENT if value.is_empty() => out.parent = None,
                PARENT => {
                    check_ifname("parent interface name", value)?;
                    out.parent = Some(value.clone());
                }
                MODE if MODES.contains(&value.as_str()) => out.mode = value.clone(),
                MODE => {
                    return Err(invalid(format!(
                        "requested macvlan mode '{value}' is not valid: use bridge (the default), vepa, private or passthru"
                    )));
                }
                k => return Err(unknown(k, "macvlan")),
            }
        }
        Ok(out)
    }
}

fn rootless_refusal(parent: &str) -> Error {
    Error::Denied(format!(
        "macvlan networks need privileges over the parent interface {parent}, which a rootless user does not hold: run burrow as root to use macvlan"
    ))
}

/// The parent named by the options, which must exist on the host.
fn parent<'a>(opts: &'a MacvlanOpts, facts: &HostFacts) -> Result<&'a str, Error> {
    let Some(parent) = opts.parent.as_deref() else {
        return Err(invalid(
            "macvlan network driver needs -o parent=INTERFACE: the host interface whose LAN the containers join",
        ));
    };
    if facts.rootless {
        return Err(rootless_refusal(parent));
    }
    if !facts.links.iter().any(|l| l.name == parent) {
        let have: Vec<&str> = facts
            .links
            .iter()
            .filter(|l| l.kind != "loopback")
            .map(|l| l.name.as_str())
            .collect();
        return Err(invalid(format!(
            "parent interface {parent} was not found on this host (it has: {})",
            have.join(", ")
        )));
    }
    Ok(parent)
}

pub fn create(mut n: Network, facts: &HostFacts) -> Result<Network, Error> {
    let opts = MacvlanOpts::parse(&n.options)?;
    let parent = parent(&opts, facts)?;
    if n.internal {
        return Err(unsupported(
            "macvlan network driver does not support --internal",
        ));
    }
    if n.subnets.is_empty() {
        return Err(invalid(format!(
            "macvlan network driver needs --subnet (and usually --gateway): the containers' addresses come from the LAN of {parent}"
        )));
    }
    // The subnet is the parent's LAN, which the host routes to: overlapping the host's own
    // networks is the point, so nothing is avoided.
    let subs = check_subnets(&n.subnets, n.ipv6, &[])?;
    if n.ipv6 && !subs.iter().any(|s| s.net.addr().is_ipv6()) {
        return Err(invalid(
            "macvlan network driver needs an IPv6 --subnet with --ipv6",
        ));
    }
    n.subnets = subs.into_iter().map(|s| s.to_wit()).collect();
    n.iface = None;
    n.dns = false;
    Ok(n)
}

struct Wiring {
    spec: MacvlanSpec,
    status: IfaceStatus,
    gateways: Vec<IpAddr>,
}

fn wire(a: &Attach, facts: &HostFacts) -> Result<Wiring, Error> {
    let n = &a.network;
    let opts = MacvlanOpts::parse(&n.options)?;
    let Some(parent) = opts.parent.clone() else {
        return Err(internal(format!(
            "network {} has no parent interface: it did not go through network create",
            n.name
        )));
    };
    if facts.rootless {
        return Err(rootless_refusal(&parent));
    }
    if !facts.links.iter().any(|l| l.name == parent) {
        return Err(Error::Unavailable(format!(
            "parent interface {parent} of network {} is gone from this host",
            n.name
        )));
    }
    check_ifname("interface name", &a.ifname)?;
    let ips = assign(a, &network_subnets(n)?)?;
    let addrs: Vec<IpAddr> = ips.iter().map(|i| i.addr).collect();
    let mac = mac::choose(a.mac.as_deref(), &addrs)?.unwrap_or_default();
    let v4 = ips.iter().find(|i| i.addr.is_ipv4());
    let v6 = ips.iter().find(|i| i.addr.is_ipv6());
    let gateways: Vec<IpAddr> = v4.into_iter().chain(v6).map(|i| i.sub.gateway).collect();
    Ok(Wiring {
        spec: MacvlanSpec {
            parent,
            name: a.ifname.clone(),
            mode: opts.mode,
            mac: Some(mac.clone()),
        },
        status: IfaceStatus {
            name: a.ifname.clone(),
            mac,
            addrs: ips.iter().map(|i| i.cidr()).collect(),
            gateway: gateways.first().map(ToString::to_string),
        },
        gateways,
    })
}

/// The macvlan link is created straight in the container's namespace under its final name;
/// published ports are ignored, as Docker ignores them (the container is on the LAN itself).
pub fn setup(a: &Attach, facts: &HostFacts) -> Result<Plan, Error> {
    let w = wire(a, facts)?;
    let ifname = &a.ifname;
    let mut ops = vec![Op::EnsureLink(Link::Macvlan(w.spec))];
    ops.extend(
        w.status
            .addrs
            .iter()
            .map(|cidr| addr(Side::Container, ifname, cidr.clone())),
    );
    ops.push(up(Side::Container, ifname));
    ops.push(up(Side::Container, "lo"));
    ops.extend(w.gateways.iter().map(|g| default_route(ifname, *g)));
    Ok(Plan {
        ops,
        ifaces: vec![w.status],
        dns_servers: vec![],
        search: vec![],
    })
}

/// Deleting the macvlan link takes its addresses and routes with it.
pub fn teardown(a: &Attach, facts: &HostFacts) -> Result<Plan, Error> {
    let w = wire(a, facts)?;
    Ok(Plan {
        ops: vec![Op::EnsureLink(Link::Macvlan(w.spec))],
        ifaces: vec![],
        dns_servers: vec![],
        search: vec![],
    })
}

struct Macvlan;

impl Guest for Macvlan {
    fn describe() -> PluginInfo {
        net_common::info(
            "macvlan",
            env!("CARGO_PKG_VERSION"),
            "containers on the parent interface's LAN, each with its own MAC address",
        )
    }

    fn create(n: Network, facts: HostFacts) -> Result<Network, Error> {
        create(n, &facts)
    }

    fn setup(a: Attach, facts: HostFacts) -> Result<Plan, Error> {
        setup(&a, &facts)
    }

    fn teardown(a: Attach, facts: HostFacts) -> Result<Plan, Error> {
        teardown(&a, &facts)
    }
}

// Native builds (unit tests) carry no component exports: their names do not link there.
#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::net::export_network_driver!(Macvlan);

#[cfg(test)]
mod tests;
