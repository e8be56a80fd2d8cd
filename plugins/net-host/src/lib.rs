//! The `host` network driver: the container shares the host's network namespace, so there is
//! nothing to create or undo. Published ports are dropped, as Docker drops them (the
//! container's ports already are the host's); DNS is the host's own.

// Native builds (unit tests) have no exports, so nothing would use the driver there.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use net_common::plan::empty;
use net_common::pseudo;
use net_common::wit::{Attach, Error, Guest, HostFacts, Network, Plan, PluginInfo};

pub fn setup(a: &Attach) -> Result<Plan, Error> {
    pseudo::refuse_endpoint(a)?;
    Ok(empty())
}

struct Host;

impl Guest for Host {
    fn describe() -> PluginInfo {
        net_common::info(
            "host",
            env!("CARGO_PKG_VERSION"),
            "the host's own network, as it is",
        )
    }

    fn create(n: Network, _facts: HostFacts) -> Result<Network, Error> {
        pseudo::create(n, "host")
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
burrow_plugin_sdk::net::export_network_driver!(Host);

#[cfg(test)]
mod tests {
    use super::*;
    use net_common::plan::render_ops;
    use net_common::testing::{attach, facts, kv, network, port, refusal, subnet};
    use net_common::wit::Proto;

    #[test]
    fn host_network_plan_is_empty_even_with_published_ports() {
        let n = Host::create(network("host", "host"), facts()).unwrap();
        assert_eq!(
            (n.iface.as_deref(), n.dns, n.subnets.len()),
            (None, false, 0)
        );
        let mut a = attach(n, &[]);
        a.ports = vec![port(None, 8080, 80, 1, Proto::Tcp)];
        let plan = Host::setup(a.clone(), facts()).unwrap();
        assert!(render_ops(&plan).is_empty());
        assert!(plan.ifaces.is_empty() && plan.dns_servers.is_empty() && plan.search.is_empty());
        assert!(render_ops(&Host::teardown(a, facts()).unwrap()).is_empty());
    }

    #[test]
    fn host_network_refuses_what_it_cannot_have() {
        let mut n = network("host2", "host");
        n.options = vec![kv("com.docker.network.driver.mtu", "1400")];
        assert_eq!(
            refusal(Host::create(n, facts()).unwrap_err()),
            (
                "invalid-config",
                "unknown option 'com.docker.network.driver.mtu' for host network driver".into()
            )
        );
        let mut n = network("host2", "host");
        n.subnets = vec![subnet("10.1.0.0/24", None)];
        assert_eq!(
            refusal(Host::create(n, facts()).unwrap_err()),
            (
                "invalid-config",
                "host network driver does not take --subnet".into()
            )
        );
        let mut n = network("host2", "host");
        n.internal = true;
        assert_eq!(
            refusal(Host::create(n, facts()).unwrap_err()),
            (
                "invalid-config",
                "host network driver does not take --internal".into()
            )
        );

        let host = || attach(network("host", "host"), &[]);
        let mut a = host();
        a.ips = vec!["10.0.0.5".into()];
        assert_eq!(
            refusal(Host::setup(a, facts()).unwrap_err()),
            (
                "invalid-config",
                "user specified IP address is supported on user defined networks only".into()
            )
        );
        let mut a = host();
        a.mac = Some("92:d0:c6:0a:29:33".into());
        assert_eq!(
            refusal(Host::setup(a, facts()).unwrap_err()),
            (
                "invalid-config",
                "conflicting options: mac-address and the network mode".into()
            )
        );
        let mut a = host();
        a.aliases = vec!["api".into()];
        assert_eq!(
            refusal(Host::setup(a, facts()).unwrap_err()),
            (
                "invalid-config",
                "network-scoped alias is supported only for containers in user defined networks"
                    .into()
            )
        );
    }
}
