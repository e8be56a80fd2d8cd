//! The `bridge` network driver, Docker's default: each network is a Linux bridge with the
//! gateway address; each container gets a veth pair (host end on the bridge, peer in the
//! container as `eth0`), an address, a default route through the gateway, NAT (masquerade)
//! for the subnet, its published ports and, on user-defined networks, records in the built-in
//! DNS. `--internal` networks get neither routes out, NAT nor published ports.
//!
//! Names: the default network (`bridge`) uses the bridge `burrow0`, others `br-` and the first
//! 12 of the network id (or `-o com.docker.network.bridge.name`); host veth ends are `veth` and
//! 11 hex digits of a hash of the container and network ids. MACs are `--mac-address` or
//! Docker's `02:42` followed by the IPv4 address. Subnets come from Docker's default pools
//! (see `net_common::addrs`).
//!
//! The driver computes; the host applies. Nothing here touches the system.

// Native builds (unit tests) have no exports, so nothing would use the driver there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

mod create;
mod options;
mod setup;

use net_common::wit::{Attach, Error, Guest, HostFacts, Network, Plan, PluginInfo};

struct Bridge;

impl Guest for Bridge {
    fn describe() -> PluginInfo {
        net_common::info(
            "bridge",
            env!("CARGO_PKG_VERSION"),
            "a Linux bridge per network, with NAT, published ports and built-in DNS",
        )
    }

    fn create(n: Network, facts: HostFacts) -> Result<Network, Error> {
        create::create(n, &facts)
    }

    fn setup(a: Attach, _facts: HostFacts) -> Result<Plan, Error> {
        setup::setup(&a)
    }

    fn teardown(a: Attach, _facts: HostFacts) -> Result<Plan, Error> {
        setup::teardown(&a)
    }
}

// Native builds (unit tests) carry no component exports: their names do not link there.
#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::net::export_network_driver!(Bridge);
