//! A network driver that misbehaves as the network's `-o do=` says: in `setup`, `spin` loops
//! forever, `trap` panics, `escape` plans a change to the holder's way out (`tap0`); in
//! `create`, `tapname` names the network's interface `tap0`. Otherwise `create` takes any
//! network and names its bridge.

use burrow_plugin_sdk::net::{
    Addr, Attach, BridgeSpec, Capabilities, Error, Guest, HostFacts, Link, Network, Op, Plan,
    PluginInfo, Side, VethSpec,
};

struct NetBad;

impl Guest for NetBad {
    fn describe() -> PluginInfo {
        PluginInfo {
            name: "netbad".into(),
            version: "0.1.0".into(),
            description: "hostile test plugin".into(),
            needs: Capabilities::none(),
        }
    }
    fn create(mut n: Network, _facts: HostFacts) -> Result<Network, Error> {
        n.iface = Some(match what(&n) {
            Some("tapname") => "tap0".into(),
            _ => format!("br-{}", &n.id[..12]),
        });
        Ok(n)
    }
    fn setup(a: Attach, _facts: HostFacts) -> Result<Plan, Error> {
        match what(&a.network) {
            Some("spin") => {
                let mut n = 0u64;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Some("trap") => panic!("netbad traps"),
            Some("escape") => Ok(escape(&a)),
            _ => Err(Error::InvalidConfig("netbad does nothing well".into())),
        }
    }
    fn teardown(_a: Attach, _facts: HostFacts) -> Result<Plan, Error> {
        Ok(plan(vec![]))
    }
}

fn what(n: &Network) -> Option<&str> {
    let kv = n.options.iter().find(|kv| kv.key == "do")?;
    Some(kv.value.as_str())
}

/// A plan that starts like a bridge's (the bridge, a veth) and then gives the holder's way
/// out, `tap0`, an address of its own choosing.
fn escape(a: &Attach) -> Plan {
    let bridge = a.network.iface.clone().unwrap_or_default();
    plan(vec![
        Op::EnsureLink(Link::Bridge(BridgeSpec {
            name: bridge.clone(),
            mtu: None,
        })),
        Op::EnsureLink(Link::Veth(VethSpec {
            host_name: "vethbad0".into(),
            peer: a.ifname.clone(),
            master: Some(bridge),
            mtu: None,
            mac: None,
        })),
        Op::AddAddr(Addr {
            side: Side::Host,
            ifname: "tap0".into(),
            cidr: "10.0.2.2/24".into(),
        }),
    ])
}

fn plan(ops: Vec<Op>) -> Plan {
    Plan {
        ops,
        ifaces: vec![],
        dns_servers: vec![],
        search: vec![],
    }
}

#[cfg(target_arch = "wasm32")]
burrow_plugin_sdk::net::export_network_driver!(NetBad);
