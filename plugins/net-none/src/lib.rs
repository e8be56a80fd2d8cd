//! The `none` network driver: the container gets a network namespace of its own with only the
//! loopback interface, brought up. DNS is the host's resolv.conf, as with Docker (nothing can
//! reach it, but programs reading it behave as they would elsewhere).

// Native builds (unit tests) have no exports, so nothing would use the driver there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use net_common::plan::{empty, up};
use net_common::pseudo;
use net_common::wit::{Attach, Error, Guest, HostFacts, Network, Plan, PluginInfo, Side};

/// `lo` up and nothing else; published ports have nowhere to go and are dropped, as Docker
/// drops them.
pub fn setup(a: &Attach) -> Result<Plan, Error> {
    pseudo::refuse_endpoint(a)?;
    Ok(Plan {
        ops: vec![up(Side::Container, "lo")],
        ..empty()
    })
}

struct NoneDriver;

impl Guest for NoneDriver {
    fn describe() -> PluginInfo {
        net_common::info(
            "none",
            env!("CARGO_PKG_VERSION"),
            "no network: only the loopback interface",
        )
    }

    fn create(n: Network, _facts: HostFacts) -> Result<Network, Error> {
        pseudo::create(n, "none")
    }

    fn setup(a: Attach, _facts: HostFacts) -> Result<Plan, Error> {
        setup(&a)
    }

    /// `lo` goes with the container's namespace: nothing to undo.
    fn teardown(_a: Attach, _facts: HostFacts) -> Result<Plan, Error> {
        Ok(empty())
    }
}

// Native builds (unit tests) carry no component exports: their names do not link there.
#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::net::export_network_driver!(NoneDriver);

#[cfg(test)]
mod tests {
    use super::*;
    use net_common::plan::render_ops;
    use net_common::testing::{attach, facts, network, port, refusal};
    use net_common::wit::Proto;

    #[test]
    fn only_lo_comes_up() {
        let n = NoneDriver::create(network("none", "null"), facts()).unwrap();
        assert_eq!(
            (n.iface.as_deref(), n.dns, n.subnets.len()),
            (None, false, 0)
        );
        let mut a = attach(n, &[]);
        a.ports = vec![port(None, 8080, 80, 1, Proto::Tcp)];
        let plan = NoneDriver::setup(a.clone(), facts()).unwrap();
        assert_eq!(render_ops(&plan), ["up container lo"]);
        assert!(plan.ifaces.is_empty() && plan.dns_servers.is_empty());
        assert!(render_ops(&NoneDriver::teardown(a, facts()).unwrap()).is_empty());
    }

    #[test]
    fn none_network_refuses_addresses_and_options() {
        let mut n = network("none2", "null");
        n.ipv6 = true;
        assert_eq!(
            refusal(NoneDriver::create(n, facts()).unwrap_err()),
            (
                "invalid-config",
                "none network driver does not take --ipv6".into()
            )
        );
        let a = attach(network("none", "null"), &["10.0.0.5"]);
        assert_eq!(
            refusal(NoneDriver::setup(a, facts()).unwrap_err()),
            (
                "invalid-config",
                "user specified IP address is supported on user defined networks only".into()
            )
        );
    }
}
