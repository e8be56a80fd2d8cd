//! `setup` and `teardown`: the plan that wires a container to a bridge network, and the one
//! that unwires it (see `net_common::plan` for what a teardown plan means).

use std::net::IpAddr;

use net_common::addrs::{Assigned, Sub, assign, network_subnets};
use net_common::names::{check_ifname, short_id, veth_name};
use net_common::plan::{addr, default_route, up};
use net_common::wit::{
    Attach, BridgeSpec, Error, Forward, IfaceStatus, Link, Op, Plan, PortMap, Proto, Side, VethSpec,
};
use net_common::{internal, invalid, mac};

use crate::create::DEFAULT_NETWORK;
use crate::options::BridgeOpts;

/// Everything `setup` and `teardown` derive from the request, computed the same way by both.
struct Wiring {
    bridge: String,
    veth: String,
    opts: BridgeOpts,
    subs: Vec<Sub>,
    ips: Vec<Assigned>,
    mac: String,
}

fn wire(a: &Attach) -> Result<Wiring, Error> {
    let n = &a.network;
    let opts = BridgeOpts::parse(&n.options)?;
    if n.name == DEFAULT_NETWORK && !a.aliases.is_empty() {
        return Err(invalid(
            "network-scoped alias is supported only for containers in user defined networks",
        ));
    }
    let bridge = n.iface.clone().ok_or_else(|| {
        internal(format!(
            "network {} has no bridge name: it did not go through network create",
            n.name
        ))
    })?;
    check_ifname("bridge name", &bridge)?;
    check_ifname("interface name", &a.ifname)?;
    let subs = network_subnets(n)?;
    let ips = assign(a, &subs)?;
    let addrs: Vec<IpAddr> = ips.iter().map(|i| i.addr).collect();
    let mac = mac::choose(a.mac.as_deref(), &addrs)?.unwrap_or_default();
    Ok(Wiring {
        bridge,
        veth: veth_name(&a.container_id, &n.id),
        opts,
        subs,
        ips,
        mac,
    })
}

impl Wiring {
    fn veth(&self, a: &Attach) -> Op {
        Op::EnsureLink(Link::Veth(VethSpec {
            host_name: self.veth.clone(),
            peer: a.ifname.clone(),
            master: Some(self.bridge.clone()),
            mtu: self.opts.mtu,
            mac: Some(self.mac.clone()),
        }))
    }

    /// The gateway of the container's first address of each family, IPv4 first.
    fn gateways(&self) -> Vec<IpAddr> {
        let v4 = self.ips.iter().find(|i| i.addr.is_ipv4());
        let v6 = self.ips.iter().find(|i| i.addr.is_ipv6());
        v4.into_iter().chain(v6).map(|i| i.sub.gateway).collect()
    }
}

pub fn setup(a: &Attach) -> Result<Plan, Error> {
    let w = wire(a)?;
    let n = &a.network;
    let routed = !n.internal;

    let mut ops = vec![Op::EnsureLink(Link::Bridge(BridgeSpec {
        name: w.bridge.clone(),
        mtu: w.opts.mtu,
    }))];
    ops.extend(
        w.subs
            .iter()
            .map(|s| addr(Side::Host, &w.bridge, s.gateway_cidr())),
    );
    ops.push(up(Side::Host, &w.bridge));
    if routed {
        let sysctl = |k: &str| Op::Sysctl((Side::Host, k.into(), "1".into()));
        if w.subs.iter().any(|s| s.net.addr().is_ipv4()) {
            ops.push(sysctl("net.ipv4.ip_forward"));
        }
        if w.subs.iter().any(|s| s.net.addr().is_ipv6()) {
            ops.push(sysctl("net.ipv6.conf.all.forwarding"));
        }
    }
    ops.push(w.veth(a));
    ops.push(up(Side::Host, &w.veth));
    ops.extend(
        w.ips
            .iter()
            .map(|i| addr(Side::Container, &a.ifname, i.cidr())),
    );
    ops.push(up(Side::Container, &a.ifname));
    ops.push(up(Side::Container, "lo"));
    if routed {
        ops.extend(
            w.gateways()
                .into_iter()
                .map(|g| default_route(&a.ifname, g)),
        );
        if w.opts.masquerade {
            ops.extend(w.subs.iter().map(|s| Op::Masquerade(s.net.to_string())));
        }
        ops.extend(forwards(a, &w)?.into_iter().map(Op::Forward));
    }
    if n.dns {
        ops.extend(dns_records(a, &w));
    }

    let gateways = w.gateways();
    Ok(Plan {
        ops,
        ifaces: vec![IfaceStatus {
            name: a.ifname.clone(),
            mac: w.mac.clone(),
            addrs: w.ips.iter().map(|i| i.cidr()).collect(),
            gateway: gateways.first().filter(|_| routed).map(ToString::to_string),
        }],
        // The built-in DNS answers on the bridge's gateway address (as podman's aardvark-dns
        // does); an empty list tells the host to use its own resolvers.
        dns_servers: match gateways.first() {
            Some(g) if n.dns => vec![g.to_string()],
            _ => vec![],
        },
        search: vec![],
    })
}

/// Undoes what `setup` added for this container alone: its DNS records, its published ports
/// and its veth pair (deleting the host end deletes the peer, and with it the container's
/// addresses and routes). The bridge, its address and masquerade stay for the network's other
/// containers.
pub fn teardown(a: &Attach) -> Result<Plan, Error> {
    let w = wire(a)?;
    let mut ops = Vec::new();
    if a.network.dns {
        ops.extend(dns_records(a, &w));
    }
    if !a.network.internal {
        ops.extend(forwards(a, &w)?.into_iter().map(Op::Forward));
    }
    ops.push(w.veth(a));
    Ok(Plan {
        ops,
        ifaces: vec![],
        dns_servers: vec![],
        search: vec![],
    })
}

/// The names the built-in DNS answers for the container on this network, as Docker's: its
/// name, its `--net-alias`es, its short id and its hostname, each once.
fn dns_records(a: &Attach, w: &Wiring) -> Vec<Op> {
    let ips: Vec<String> = w.ips.iter().map(|i| i.addr.to_string()).collect();
    let short = short_id(&a.container_id);
    let candidates = std::iter::once(&a.name)
        .chain(&a.aliases)
        .chain(std::iter::once(&short))
        .chain(&a.hostname);
    let mut names: Vec<&String> = Vec::new();
    for name in candidates {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    names
        .into_iter()
        .map(|name| Op::DnsRecord((name.clone(), ips.clone())))
        .collect()
}

/// `-p [ip:]hostPort:containerPort[/proto]` as the user wrote it, for messages.
fn port_spec(p: &PortMap) -> String {
    let range = |start: u16| {
        if p.count > 1 {
            format!("{start}-{}", u32::from(start) + u32::from(p.count) - 1)
        } else {
            start.to_string()
        }
    };
    let ip = match p.host_ip.as_deref() {
        Some(ip) if ip.contains(':') => format!("[{ip}]:"),
        Some(ip) => format!("{ip}:"),
        None => String::new(),
    };
    let proto = match p.proto {
        Proto::Tcp => "tcp",
        Proto::Udp => "udp",
        Proto::Sctp => "sctp",
    };
    format!(
        "{ip}{}:{}/{proto}",
        range(p.host_port),
        range(p.container_port)
    )
}

/// One forward per published range, to the container's address of the host address's family.
/// A host port of 0 is left for the host to pick.
fn forwards(a: &Attach, w: &Wiring) -> Result<Vec<Forward>, Error> {
    let mut out = Vec::with_capacity(a.ports.len());
    for p in &a.ports {
        let spec = port_spec(p);
        if p.count == 0 {
            return Err(internal(format!("published port {spec} has a count of 0")));
        }
        if p.container_port == 0 {
            return Err(invalid(format!(
                "invalid published port {spec}: the container port cannot be 0"
            )));
        }
        let end = |start: u16| u32::from(start) + u32::from(p.count) - 1;
        if end(p.host_port) > 65535 || end(p.container_port) > 65535 {
            return Err(invalid(format!(
                "invalid published port {spec}: the range goes past 65535"
            )));
        }
        let host_ip = match &p.host_ip {
            Some(s) => Some(s.parse::<IpAddr>().map_err(|_| {
                invalid(format!(
                    "invalid published port {spec}: \"{s}\" is not an IP address"
                ))
            })?),
            None => w.opts.host_ip,
        };
        let to = match host_ip {
            Some(ip) => w.ips.iter().find(|i| i.addr.is_ipv6() == ip.is_ipv6()),
            None => w.ips.iter().find(|i| i.addr.is_ipv4()).or(w.ips.first()),
        };
        let Some(to) = to else {
            return Err(invalid(format!(
                "cannot publish {spec}: container {} has no IPv6 address on network {}",
                a.name, a.network.name
            )));
        };
        out.push(Forward {
            ports: PortMap {
                host_ip: host_ip.map(|ip| ip.to_string()),
                ..p.clone()
            },
            to_ip: to.addr.to_string(),
        });
    }
    Ok(out)
}

#[cfg(test)]
#[path = "setup_tests.rs"]
mod tests;
