//! The `container` network driver, for `--network container:NAME`: the container joins the
//! network namespace of NAME (the host does the joining), so it has the same interfaces, IP
//! and MAC, and no new interface. The plan is deliberately empty: there is nothing to create
//! and nothing to undo, and an empty plan is how a driver says so.

// Native builds (unit tests) have no exports, so nothing would use the driver there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use net_common::plan::empty;
use net_common::wit::{Attach, Error, Guest, HostFacts, Network, Plan, PluginInfo};
use net_common::{invalid, pseudo};

/// Refuses what Docker refuses with `container:NAME` (the other container owns the network),
/// then says there is nothing to do.
pub fn setup(a: &Attach) -> Result<Plan, Error> {
    if !a.ports.is_empty() {
        return Err(invalid(
            "conflicting options: port publishing and the container type network mode",
        ));
    }
    pseudo::refuse_endpoint(a)?;
    Ok(empty())
}

struct Container;

impl Guest for Container {
    fn describe() -> PluginInfo {
        net_common::info(
            "container",
            env!("CARGO_PKG_VERSION"),
            "another container's network namespace, shared",
        )
    }

    fn create(_n: Network, _facts: HostFacts) -> Result<Network, Error> {
        Err(invalid(
            "the container network driver cannot be used with network create: run with --network container:NAME",
        ))
    }

    fn setup(a: Attach, _facts: HostFacts) -> Result<Plan, Error> {
        setup(&a)
    }

    fn teardown(_a: Attach, _facts: HostFacts) -> Result<Plan, Error> {
        Ok(empty())
    }
}

// Native builds (unit tests) carry no component exports: their names do not link there.
#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::net::export_network_driver!(Container);

#[cfg(test)]
mod tests {
    use super::*;
    use net_common::plan::render_ops;
    use net_common::testing::{attach, facts, network, port, refusal};
    use net_common::wit::Proto;

    #[test]
    fn joining_another_container_plans_nothing() {
        let a = attach(network("container:db", "container"), &[]);
        let plan = Container::setup(a.clone(), facts()).unwrap();
        assert!(render_ops(&plan).is_empty());
        assert!(plan.ifaces.is_empty() && plan.dns_servers.is_empty() && plan.search.is_empty());
        assert!(render_ops(&Container::teardown(a, facts()).unwrap()).is_empty());
    }

    #[test]
    fn what_the_other_container_owns_is_refused() {
        let mut a = attach(network("container:db", "container"), &[]);
        a.ports = vec![port(None, 8080, 80, 1, Proto::Tcp)];
        assert_eq!(
            refusal(Container::setup(a, facts()).unwrap_err()),
            (
                "invalid-config",
                "conflicting options: port publishing and the container type network mode".into()
            )
        );
        let mut a = attach(network("container:db", "container"), &[]);
        a.mac = Some("92:d0:c6:0a:29:33".into());
        assert_eq!(
            refusal(Container::setup(a, facts()).unwrap_err()),
            (
                "invalid-config",
                "conflicting options: mac-address and the network mode".into()
            )
        );
        assert_eq!(
            refusal(Container::create(network("c", "container"), facts()).unwrap_err()),
            (
                "invalid-config",
                "the container network driver cannot be used with network create: run with --network container:NAME".into()
            )
        );
    }
}
