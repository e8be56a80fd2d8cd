//! `lan`: an example burrow network driver.
//!
//! Each network is a Linux bridge on the subnet given with `--subnet` (the driver picks none
//! of its own), at the MTU of `-o mtu=` (1400 unless given); each container gets a veth pair
//! whose host end is on the bridge, an address, a default route through the gateway and, on
//! networks that are not `--internal`, NAT for the subnet.
//!
//! A network driver computes and the host applies: `create` fills in a new network, `setup`
//! and `teardown` return plans, plain lists of steps that the host checks against what it
//! owns before it carries out any. Nothing here touches the system, so `cargo test` checks
//! the plans natively as data in, data out. Copy this crate to start your own driver.

use burrow_plugin_sdk::net::{
    Addr, Attach, BridgeSpec, Capabilities, Error, Guest, HostFacts, IfaceStatus, Kv, Link,
    Network, Op, Plan, PluginInfo, Route, Side, VethSpec,
};

/// The name users pass to `network create --driver`.
const NAME: &str = "lan";
/// The bridge's and the veths' MTU unless `-o mtu=` says otherwise.
pub const DEFAULT_MTU: u32 = 1400;

pub struct Lan;

impl Guest for Lan {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: NAME.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "a bridge per network on the subnet you give, with a chosen MTU".into(),
            // A network driver's world imports nothing but `diag`: there is nothing to ask for.
            needs: Capabilities::none(),
        }
    }

    fn create(n: Network, _facts: HostFacts) -> Result<Network, Error> {
        create(n)
    }

    fn setup(a: Attach, _facts: HostFacts) -> Result<Plan, Error> {
        setup(&a)
    }

    fn teardown(a: Attach, _facts: HostFacts) -> Result<Plan, Error> {
        teardown(&a)
    }
}

// Native builds (`cargo test`) carry no component exports.
#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::net::export_network_driver!(Lan);

/// This driver's `-o` options.
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    pub mtu: u32,
}

impl Options {
    pub fn parse(opts: &[Kv]) -> Result<Self, Error> {
        let mut out = Options { mtu: DEFAULT_MTU };
        for kv in opts {
            match kv.key.as_str() {
                "mtu" => {
                    out.mtu = kv
                        .value
                        .parse()
                        .ok()
                        .filter(|m| (576..=65520).contains(m))
                        .ok_or_else(|| {
                            invalid(format!(
                                "invalid mtu '{}' for the {NAME} driver: give 576 to 65520",
                                kv.value
                            ))
                        })?;
                }
                // Shown verbatim by `network create`.
                other => {
                    return Err(invalid(format!(
                        "unknown option '{other}' for the {NAME} network driver (it knows: mtu)"
                    )));
                }
            }
        }
        Ok(out)
    }
}

fn invalid(msg: String) -> Error {
    Error::InvalidConfig(msg)
}

fn internal(msg: String) -> Error {
    Error::Internal(msg)
}

/// `network create --driver lan`: one IPv4 `--subnet` is required; the bridge is `br-` and
/// the first 12 characters of the network's id (interface names have at most 15).
pub fn create(mut n: Network) -> Result<Network, Error> {
    Options::parse(&n.options)?;
    if n.ipv6 {
        return Err(Error::Unsupported(format!("the {NAME} driver has no IPv6")));
    }
    match n.subnets.as_slice() {
        [s] if s.cidr.contains('.') && s.cidr.contains('/') => {}
        _ => {
            return Err(invalid(format!(
                "the {NAME} driver needs exactly one IPv4 --subnet (e.g. --subnet 10.50.0.0/24)"
            )));
        }
    }
    let short: String = n.id.chars().take(12).collect();
    n.iface = Some(format!("br-{short}"));
    Ok(n)
}

/// Everything `setup` and `teardown` derive from the request.
struct Wiring {
    bridge: String,
    veth: String,
    prefix: String,
    gateway: String,
    ip: String,
    mac: String,
    mtu: u32,
}

fn wire(a: &Attach) -> Result<Wiring, Error> {
    let n = &a.network;
    let bridge = n
        .iface
        .clone()
        .ok_or_else(|| internal(format!("network {} did not go through create", n.name)))?;
    let subnet = n
        .subnets
        .first()
        .ok_or_else(|| internal(format!("network {} has no subnet", n.name)))?;
    let prefix = subnet.cidr.split('/').nth(1).unwrap_or("24").to_string();
    let gateway = subnet
        .gateway
        .clone()
        .ok_or_else(|| internal(format!("network {} has no gateway", n.name)))?;
    // The host hands out the address (in order, inside the subnet or --ip-range).
    let ip = a
        .ips
        .first()
        .map(|ip| ip.split('/').next().unwrap_or(ip).to_string())
        .ok_or_else(|| internal(format!("container {} has no address", a.name)))?;
    let mac = match &a.mac {
        Some(mac) => mac.clone(),
        None => mac_for(&ip),
    };
    Ok(Wiring {
        bridge,
        veth: veth_name(&a.container_id, &n.id),
        prefix,
        gateway,
        ip,
        mac,
        mtu: Options::parse(&n.options)?.mtu,
    })
}

impl Wiring {
    fn veth(&self, a: &Attach) -> Op {
        Op::EnsureLink(Link::Veth(VethSpec {
            host_name: self.veth.clone(),
            peer: a.ifname.clone(),
            master: Some(self.bridge.clone()),
            mtu: Some(self.mtu),
            mac: Some(self.mac.clone()),
        }))
    }
}

/// The plan that connects a container. Each step is an "ensure": the network-wide ones (the
/// bridge, its address, NAT) repeat harmlessly for every container.
pub fn setup(a: &Attach) -> Result<Plan, Error> {
    let w = wire(a)?;
    let routed = !a.network.internal;
    let addr = |side, ifname: &str, cidr: String| {
        Op::AddAddr(Addr {
            side,
            ifname: ifname.into(),
            cidr,
        })
    };
    let up = |side, ifname: &str| Op::LinkUp((side, ifname.into()));
    let mut ops = vec![
        Op::EnsureLink(Link::Bridge(BridgeSpec {
            name: w.bridge.clone(),
            mtu: Some(w.mtu),
        })),
        addr(Side::Host, &w.bridge, format!("{}/{}", w.gateway, w.prefix)),
        up(Side::Host, &w.bridge),
        w.veth(a),
        up(Side::Host, &w.veth),
        addr(Side::Container, &a.ifname, format!("{}/{}", w.ip, w.prefix)),
        up(Side::Container, &a.ifname),
        up(Side::Container, "lo"),
    ];
    if routed {
        ops.push(Op::Sysctl((
            Side::Host,
            "net.ipv4.ip_forward".into(),
            "1".into(),
        )));
        ops.push(Op::AddRoute(Route {
            side: Side::Container,
            dst: "0.0.0.0/0".into(),
            via: Some(w.gateway.clone()),
            ifname: Some(a.ifname.clone()),
            // A container on several networks: the first network's route wins.
            metric: a.ifname.strip_prefix("eth").and_then(|n| n.parse().ok()),
        }));
        let net = a.network.subnets[0].cidr.clone();
        ops.push(Op::Masquerade(net));
    }
    Ok(Plan {
        ops,
        ifaces: vec![IfaceStatus {
            name: a.ifname.clone(),
            mac: w.mac.clone(),
            addrs: vec![format!("{}/{}", w.ip, w.prefix)],
            gateway: routed.then(|| w.gateway.clone()),
        }],
        // The host's built-in DNS answers on the gateway address of networks that have it.
        dns_servers: if a.network.dns {
            vec![w.gateway.clone()]
        } else {
            vec![]
        },
        search: vec![],
    })
}

/// The plan that disconnects it: the links listed are deleted (the veth's host end, which
/// takes the container's end, its address and its route with it). The bridge stays for the
/// network's other containers.
pub fn teardown(a: &Attach) -> Result<Plan, Error> {
    let w = wire(a)?;
    Ok(Plan {
        ops: vec![w.veth(a)],
        ifaces: vec![],
        dns_servers: vec![],
        search: vec![],
    })
}

/// `veth` and 11 hex digits of a hash of the container and the network: unique per pair, and
/// within the 15 characters of an interface name.
pub fn veth_name(container_id: &str, network_id: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in container_id.bytes().chain([0]).chain(network_id.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("veth{:011x}", h & 0xfff_ffff_ffff)
}

/// Docker's MAC for an IPv4 address: `02:42` and the address's four bytes.
pub fn mac_for(ip: &str) -> String {
    let bytes: Vec<u8> = ip.split('.').filter_map(|b| b.parse().ok()).collect();
    let mut mac = vec![0x02, 0x42];
    mac.extend(bytes.iter().take(4));
    mac.resize(6, 0);
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests;
