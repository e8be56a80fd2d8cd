//! Fixtures for the drivers' unit tests: a network, a container's request and host facts,
//! each with plain defaults that a test overrides where it matters.

use crate::message;
use crate::wit::{Attach, Error, HostFacts, Kv, LinkInfo, Network, PortMap, Proto, Subnet};

/// A network id as Docker makes them: 64 hex digits.
pub const NETWORK_ID: &str = "5f3b1c9e2a7d40c8b6e1f0a9d8c7b6a5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9";
pub const CONTAINER_ID: &str = "d41d8cd98f00b204e9800998ecf8427e0123456789abcdef0123456789abcdef";

pub fn kv(key: &str, value: &str) -> Kv {
    Kv {
        key: key.into(),
        value: value.into(),
    }
}

pub fn subnet(cidr: &str, gateway: Option<&str>) -> Subnet {
    Subnet {
        cidr: cidr.into(),
        gateway: gateway.map(Into::into),
    }
}

/// A network as `network create NAME --driver DRIVER` hands it over: no subnet, DNS on.
pub fn network(name: &str, driver: &str) -> Network {
    Network {
        id: NETWORK_ID.into(),
        name: name.into(),
        driver: driver.into(),
        iface: None,
        subnets: vec![],
        ipv6: false,
        internal: false,
        dns: true,
        options: vec![],
    }
}

pub fn link(name: &str, kind: &str, addrs: &[&str]) -> LinkInfo {
    LinkInfo {
        name: name.into(),
        kind: kind.into(),
        mtu: 1500,
        up: true,
        addrs: addrs.iter().map(|s| s.to_string()).collect(),
    }
}

/// A rootless host with `lo` and `eth0` on 10.0.2.15/24 (slirp's usual address).
pub fn facts() -> HostFacts {
    HostFacts {
        rootless: true,
        links: vec![
            link("lo", "loopback", &["127.0.0.1/8", "::1/128"]),
            link("eth0", "device", &["10.0.2.15/24"]),
        ],
        used_subnets: vec![],
    }
}

/// Container `web` asking for nothing special on `network`, with the host's allocated `ips`.
pub fn attach(network: Network, ips: &[&str]) -> Attach {
    Attach {
        container_id: CONTAINER_ID.into(),
        name: "web".into(),
        hostname: None,
        network,
        ifname: "eth0".into(),
        ips: ips.iter().map(|s| s.to_string()).collect(),
        mac: None,
        aliases: vec![],
        ports: vec![],
    }
}

/// `-p [host_ip:]host:container[/proto]`, `count` ports wide.
pub fn port(host_ip: Option<&str>, host: u16, container: u16, count: u16, proto: Proto) -> PortMap {
    PortMap {
        host_ip: host_ip.map(Into::into),
        host_port: host,
        container_port: container,
        count,
        proto,
    }
}

/// The error's kind and message, as a test compares them.
pub fn refusal(e: Error) -> (&'static str, String) {
    let kind = match e {
        Error::InvalidConfig(_) => "invalid-config",
        Error::Unsupported(_) => "unsupported",
        Error::Unavailable(_) => "unavailable",
        Error::Denied(_) => "denied",
        Error::Internal(_) => "internal",
    };
    (kind, message(&e).to_string())
}
