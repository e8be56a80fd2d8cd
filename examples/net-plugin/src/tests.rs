use burrow_plugin_sdk::net::Subnet;

use super::*;

fn network(subnets: &[&str], options: &[(&str, &str)]) -> Network {
    Network {
        id: "0123456789abcdef0123".into(),
        name: "office".into(),
        driver: NAME.into(),
        iface: None,
        subnets: subnets
            .iter()
            .map(|cidr| Subnet {
                cidr: cidr.to_string(),
                gateway: None,
            })
            .collect(),
        ipv6: false,
        internal: false,
        dns: true,
        options: options
            .iter()
            .map(|(k, v)| Kv {
                key: k.to_string(),
                value: v.to_string(),
            })
            .collect(),
    }
}

fn message(e: Error) -> String {
    match e {
        Error::InvalidConfig(m)
        | Error::Unsupported(m)
        | Error::Unavailable(m)
        | Error::Denied(m)
        | Error::Internal(m) => m,
    }
}

/// A network as the host hands it to `setup`: created, with the gateway filled in.
fn attach(ifname: &str) -> Attach {
    let mut n = create(network(&["10.50.0.0/24"], &[("mtu", "1300")])).unwrap();
    n.subnets[0].gateway = Some("10.50.0.1".into());
    Attach {
        container_id: "c0ffee".into(),
        name: "web".into(),
        hostname: Some("web".into()),
        network: n,
        ifname: ifname.into(),
        ips: vec!["10.50.0.2".into()],
        mac: None,
        aliases: vec![],
        ports: vec![],
    }
}

#[test]
fn create_names_the_bridge_and_needs_one_ipv4_subnet() {
    let n = create(network(&["10.50.0.0/24"], &[])).unwrap();
    assert_eq!(n.iface.as_deref(), Some("br-0123456789ab"));
    for subnets in [&[][..], &["10.50.0.0/24", "10.51.0.0/24"], &["fd00::/64"]] {
        let e = message(create(network(subnets, &[])).unwrap_err());
        assert!(e.contains("needs exactly one IPv4 --subnet"), "{e}");
    }
    let e = message(create(network(&["10.50.0.0/24"], &[("color", "red")])).unwrap_err());
    assert_eq!(
        e,
        "unknown option 'color' for the lan network driver (it knows: mtu)"
    );
    let e = message(create(network(&["10.50.0.0/24"], &[("mtu", "9")])).unwrap_err());
    assert!(e.contains("invalid mtu '9'"), "{e}");
}

#[test]
fn setup_wires_a_veth_into_the_bridge_at_the_chosen_mtu() {
    let a = attach("eth0");
    let plan = setup(&a).unwrap();
    let veth = veth_name("c0ffee", &a.network.id);
    assert_eq!(veth.len(), 15);
    let has = |want: &dyn Fn(&Op) -> bool| plan.ops.iter().any(want);
    assert!(has(&|op| matches!(op,
        Op::EnsureLink(Link::Bridge(b)) if b.name == "br-0123456789ab" && b.mtu == Some(1300)
    )));
    assert!(has(&|op| matches!(op,
        Op::EnsureLink(Link::Veth(v)) if v.host_name == veth
            && v.peer == "eth0"
            && v.master.as_deref() == Some("br-0123456789ab")
            && v.mtu == Some(1300)
            && v.mac.as_deref() == Some("02:42:0a:32:00:02")
    )));
    assert!(has(&|op| matches!(op,
        Op::AddAddr(a) if a.side == Side::Container && a.ifname == "eth0" && a.cidr == "10.50.0.2/24"
    )));
    assert!(has(
        &|op| matches!(op, Op::Masquerade(net) if net == "10.50.0.0/24")
    ));
    assert_eq!(plan.ifaces[0].gateway.as_deref(), Some("10.50.0.1"));
    assert_eq!(plan.dns_servers, ["10.50.0.1"]);
    // A second network's route stands behind the first's.
    let plan = setup(&attach("eth1")).unwrap();
    assert!(plan.ops.iter().any(|op| matches!(
        op,
        Op::AddRoute(Route {
            metric: Some(1),
            ..
        })
    )));
}

#[test]
fn internal_networks_get_no_route_and_no_nat() {
    let mut a = attach("eth0");
    a.network.internal = true;
    let plan = setup(&a).unwrap();
    assert!(
        !plan
            .ops
            .iter()
            .any(|op| matches!(op, Op::AddRoute(_) | Op::Masquerade(_) | Op::Sysctl(_)))
    );
    assert_eq!(plan.ifaces[0].gateway, None);
}

#[test]
fn teardown_lists_only_the_containers_veth() {
    let a = attach("eth0");
    let plan = teardown(&a).unwrap();
    assert_eq!(plan.ops.len(), 1);
    assert!(matches!(&plan.ops[0], Op::EnsureLink(Link::Veth(v)) if v.peer == "eth0"));
}
