//! Building plans, and rendering them as one line per step so that tests compare exact step
//! lists in a form a reader can check against `ip` and `iptables` in their head.
//!
//! What a plan means is the contract between the drivers and the host:
//! - `setup`: carry out the steps in order; each is idempotent ("ensure"), so the network-wide
//!   ones (the bridge, its address, masquerade) repeat harmlessly for every container.
//! - `teardown`: undo the listed steps, in the order listed. The `op` variant has only
//!   additive steps, so a teardown plan names what `setup` added that must go (a link, a
//!   forward, a DNS record). Network-wide steps are not listed: other containers use them.

use std::net::IpAddr;

use crate::wit::{Addr, Forward, IfaceStatus, Link, Op, Plan, Proto, Route, Side};

pub fn up(side: Side, ifname: &str) -> Op {
    Op::LinkUp((side, ifname.into()))
}

pub fn addr(side: Side, ifname: &str, cidr: String) -> Op {
    Op::AddAddr(Addr {
        side,
        ifname: ifname.into(),
        cidr,
    })
}

/// The container's default route of the gateway's family, through `ifname`. A container on
/// several networks has one per network: the route through `ethN` gets metric N, so the
/// first network's is the way out and the others stand by (`eth0` gets none, the lowest).
pub fn default_route(ifname: &str, gateway: IpAddr) -> Op {
    let metric = ifname
        .strip_prefix("eth")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| *n > 0);
    let dst = if gateway.is_ipv4() {
        "0.0.0.0/0"
    } else {
        "::/0"
    };
    Op::AddRoute(Route {
        side: Side::Container,
        dst: dst.into(),
        via: Some(gateway.to_string()),
        ifname: Some(ifname.into()),
        metric,
    })
}

/// A plan with no step: the container's network is not burrow's to change.
pub fn empty() -> Plan {
    Plan {
        ops: vec![],
        ifaces: vec![],
        dns_servers: vec![],
        search: vec![],
    }
}

fn side(s: Side) -> &'static str {
    match s {
        Side::Host => "host",
        Side::Container => "container",
    }
}

fn opt<T: std::fmt::Display>(label: &str, v: &Option<T>) -> String {
    v.as_ref()
        .map(|v| format!(" {label} {v}"))
        .unwrap_or_default()
}

fn range(start: u16, count: u16) -> String {
    if count <= 1 {
        start.to_string()
    } else {
        format!("{start}-{}", u32::from(start) + u32::from(count) - 1)
    }
}

/// One step as one line, e.g. `link veth veth0123 peer eth0 master br-x`.
pub fn render(op: &Op) -> String {
    match op {
        Op::EnsureLink(Link::Bridge(b)) => format!("link bridge {}{}", b.name, opt("mtu", &b.mtu)),
        Op::EnsureLink(Link::Veth(v)) => format!(
            "link veth {} peer {}{}{}{}",
            v.host_name,
            v.peer,
            opt("master", &v.master),
            opt("mtu", &v.mtu),
            opt("mac", &v.mac)
        ),
        Op::EnsureLink(Link::Macvlan(m)) => format!(
            "link macvlan {} parent {} mode {}{}",
            m.name,
            m.parent,
            m.mode,
            opt("mac", &m.mac)
        ),
        Op::LinkUp((s, name)) => format!("up {} {name}", side(*s)),
        Op::AddAddr(a) => format!("addr {} {} {}", side(a.side), a.ifname, a.cidr),
        Op::AddRoute(r) => format!(
            "route {} {}{}{}{}",
            side(r.side),
            r.dst,
            opt("via", &r.via),
            opt("dev", &r.ifname),
            opt("metric", &r.metric)
        ),
        Op::Sysctl((s, key, value)) => format!("sysctl {} {key}={value}", side(*s)),
        Op::Masquerade(cidr) => format!("masquerade {cidr}"),
        Op::Forward(Forward { ports, to_ip }) => {
            let proto = match ports.proto {
                Proto::Tcp => "tcp",
                Proto::Udp => "udp",
                Proto::Sctp => "sctp",
            };
            let host_ip = ports.host_ip.as_deref().unwrap_or("*");
            let to = to_ip
                .parse::<IpAddr>()
                .map(|ip| match ip {
                    IpAddr::V6(_) => format!("[{ip}]"),
                    IpAddr::V4(_) => ip.to_string(),
                })
                .unwrap_or_else(|_| to_ip.clone());
            let host = if host_ip.contains(':') {
                format!("[{host_ip}]")
            } else {
                host_ip.to_string()
            };
            format!(
                "forward {proto} {host}:{} -> {to}:{}",
                range(ports.host_port, ports.count),
                range(ports.container_port, ports.count)
            )
        }
        Op::DnsRecord((name, ips)) => format!("dns {name} {}", ips.join(" ")),
    }
}

/// The interfaces a plan reports, one line each: `eth0 02:42:ac:12:00:02 172.18.0.2/16 via
/// 172.18.0.1`.
pub fn render_iface(i: &IfaceStatus) -> String {
    format!(
        "{} {} {}{}",
        i.name,
        i.mac,
        i.addrs.join(" "),
        opt("via", &i.gateway)
    )
}

pub fn render_ops(plan: &Plan) -> Vec<String> {
    plan.ops.iter().map(render).collect()
}
