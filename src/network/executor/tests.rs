//! The executor against the kernel: two fresh network namespaces (the test's "host" and
//! "container"), a real bridge plan carried out between them, and a TCP connection across.
//! Needs root (tests/run.sh and CI run the unit tests as root); fails without it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};

use super::*;
use crate::plugin::{Addr, BridgeSpec, Route, VethSpec};

/// A new, empty network namespace, kept alive by the returned descriptor.
fn new_netns() -> OwnedFd {
    std::thread::spawn(|| {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        std::fs::File::open("/proc/thread-self/ns/net")
            .expect("open our netns")
            .into()
    })
    .join()
    .unwrap()
}

/// These tests make network namespaces and links: they need root, and fail without it
/// rather than pass untested (CI runs the unit tests as root).
fn need_root() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test makes network namespaces and links: run the unit tests as root"
    );
}

fn bridge_plan(veth: &str) -> Plan {
    let host = |name: &str| (Side::Host, name.to_string());
    Plan {
        ops: vec![
            Op::EnsureLink(Link::Bridge(BridgeSpec {
                name: "br-test".into(),
                mtu: None,
            })),
            Op::AddAddr(Addr {
                side: Side::Host,
                ifname: "br-test".into(),
                cidr: "10.89.7.1/24".into(),
            }),
            Op::LinkUp(host("br-test")),
            Op::EnsureLink(Link::Veth(VethSpec {
                host_name: veth.into(),
                peer: "eth0".into(),
                master: Some("br-test".into()),
                mtu: None,
                mac: Some("02:42:0a:59:07:02".into()),
            })),
            Op::LinkUp(host(veth)),
            Op::AddAddr(Addr {
                side: Side::Container,
                ifname: "eth0".into(),
                cidr: "10.89.7.2/24".into(),
            }),
            Op::LinkUp((Side::Container, "eth0".into())),
            Op::LinkUp((Side::Container, "lo".into())),
            Op::AddRoute(Route {
                side: Side::Container,
                dst: "default".into(),
                via: Some("10.89.7.1".into()),
                ifname: None,
                metric: None,
            }),
            Op::Sysctl((Side::Host, "net.ipv4.ip_forward".into(), "1".into())),
            Op::Masquerade("10.89.7.0/24".into()),
        ],
        ifaces: vec![],
        dns_servers: vec![],
        search: vec![],
    }
}

fn in_ns<R: Send>(ns: &OwnedFd, f: impl FnOnce() -> std::io::Result<R> + Send) -> R {
    in_netns(ns.as_fd(), f).unwrap()
}

#[test]
fn a_bridge_plan_connects_two_namespaces() {
    need_root();
    let (host, container) = (new_netns(), new_netns());
    // New namespaces may inherit the host's sysctls: start both from 0.
    for ns in [&host, &container] {
        in_ns(ns, || std::fs::write("/proc/sys/net/ipv4/ip_forward", "0"));
    }
    let (journal, deferred) = apply(
        "bridge",
        &bridge_plan("vethtest0"),
        &Allowed::default(),
        host.as_fd(),
        container.as_fd(),
    )
    .unwrap();
    // What is not the executor's goes back to the caller.
    assert!(
        matches!(&deferred[..], [Op::Masquerade(net)] if net == "10.89.7.0/24"),
        "{deferred:?}"
    );
    // Real traffic: the container listens on its address, the host side connects through
    // the bridge and the veth pair.
    let listener = in_ns(&container, || TcpListener::bind("10.89.7.2:0"));
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, peer) = listener.accept().unwrap();
        s.write_all(b"hello").unwrap();
        peer
    });
    let got = in_ns(&host, || {
        let mut s = TcpStream::connect(("10.89.7.2", port))?;
        let mut text = String::new();
        s.read_to_string(&mut text)?;
        Ok(text)
    });
    assert_eq!(got, "hello");
    assert_eq!(server.join().unwrap().ip().to_string(), "10.89.7.1");
    // The container's MAC is the plan's; forwarding is on in the host namespace only.
    let mac = in_ns(&container, || {
        std::fs::read_to_string("/sys/class/net/eth0/address")
    });
    let _ = mac; // /sys shows the mounting namespace's view; checked through netlink below.
    assert_eq!(
        in_ns(&host, || std::fs::read_to_string(
            "/proc/sys/net/ipv4/ip_forward"
        ))
        .trim(),
        "1"
    );
    assert_eq!(
        in_ns(&container, || std::fs::read_to_string(
            "/proc/sys/net/ipv4/ip_forward"
        ))
        .trim(),
        "0"
    );
    // Undo removes the links it made (the veth's peer goes with it).
    undo(&journal, host.as_fd(), container.as_fd());
    let left = in_ns(&host, || {
        let mut nl = Netlink::open()?;
        Ok((nl.index("br-test")?, nl.index("vethtest0")?))
    });
    assert_eq!(left, (None, None));
    assert_eq!(in_ns(&container, || Netlink::open()?.index("eth0")), None);
}

#[test]
fn a_failing_step_undoes_the_plan() {
    need_root();
    let (host, container) = (new_netns(), new_netns());
    // The second veth's peer clashes with the first's eth0: the bridge and the first veth,
    // made by this plan, are removed again.
    let mut plan = bridge_plan("vethtest1");
    plan.ops.push(Op::EnsureLink(Link::Veth(VethSpec {
        host_name: "vethtest2".into(),
        peer: "eth0".into(),
        master: None,
        mtu: None,
        mac: None,
    })));
    let e = apply(
        "bridge",
        &plan,
        &Allowed::default(),
        host.as_fd(),
        container.as_fd(),
    )
    .unwrap_err()
    .to_string();
    assert_eq!(e, "cannot create the veth pair vethtest2");
    let left = in_ns(&host, || {
        let mut nl = Netlink::open()?;
        Ok((
            nl.index("br-test")?,
            nl.index("vethtest1")?,
            nl.index("vethtest2")?,
        ))
    });
    assert_eq!(left, (None, None, None));
}

#[test]
fn plans_that_touch_what_burrow_does_not_own_are_refused_before_any_step() {
    let refused = |plan: &Plan, allowed: &Allowed| match check("evil", plan, allowed) {
        Err(NetError::Refused { what, .. }) => what,
        other => panic!("{other:?}"),
    };
    let plan = |ops: Vec<Op>| Plan {
        ops,
        ifaces: vec![],
        dns_servers: vec![],
        search: vec![],
    };
    // A host interface it did not make.
    let p = plan(vec![Op::AddAddr(Addr {
        side: Side::Host,
        ifname: "eth0".into(),
        cidr: "10.0.0.9/24".into(),
    })]);
    assert!(refused(&p, &Allowed::default()).contains("\"eth0\""));
    // A host link outside burrow's names.
    let p = plan(vec![Op::EnsureLink(Link::Bridge(BridgeSpec {
        name: "docker0".into(),
        mtu: None,
    }))]);
    assert!(refused(&p, &Allowed::default()).contains("docker0"));
    // … unless the network's options chose it.
    let allowed = Allowed {
        host_names: vec!["docker0".into()],
        parents: vec![],
    };
    assert!(check("bridge", &p, &allowed).is_ok());
    // The holder's own interfaces, whatever the network's options say.
    for own in ["lo", "tap0"] {
        let p = plan(vec![Op::EnsureLink(Link::Bridge(BridgeSpec {
            name: own.into(),
            mtu: None,
        }))]);
        let allowed = Allowed {
            host_names: vec![own.into()],
            parents: vec![],
        };
        assert!(refused(&p, &allowed).contains(own), "{own}");
    }
    // A macvlan on a parent the options did not name; host routes; sysctls outside net.
    let p = plan(vec![Op::EnsureLink(Link::Macvlan(
        crate::plugin::MacvlanSpec {
            parent: "eth0".into(),
            name: "eth0".into(),
            mode: "bridge".into(),
            mac: None,
        },
    ))]);
    assert!(refused(&p, &Allowed::default()).contains("parent"));
    let p = plan(vec![Op::AddRoute(Route {
        side: Side::Host,
        dst: "default".into(),
        via: Some("10.0.0.1".into()),
        ifname: None,
        metric: None,
    })]);
    assert_eq!(refused(&p, &Allowed::default()), "a route on the host");
    let p = plan(vec![Op::Sysctl((
        Side::Container,
        "kernel.core_pattern".into(),
        "|/x".into(),
    ))]);
    assert!(refused(&p, &Allowed::default()).contains("kernel.core_pattern"));
    let p = plan(vec![Op::Sysctl((
        Side::Host,
        "net.ipv4.conf.eth0.forwarding".into(),
        "1".into(),
    ))]);
    assert!(refused(&p, &Allowed::default()).contains("net.ipv4.conf.eth0.forwarding"));
    // Interface names the kernel would refuse.
    let p = plan(vec![Op::EnsureLink(Link::Veth(VethSpec {
        host_name: "veth-much-too-long-name".into(),
        peer: "eth0".into(),
        master: None,
        mtu: None,
        mac: None,
    }))]);
    assert!(refused(&p, &Allowed::default()).contains("interface name"));
}

#[test]
fn a_veth_left_by_the_containers_previous_run_is_waited_for() {
    need_root();
    let (host, old, new) = (new_netns(), new_netns(), new_netns());
    let plan = bridge_plan("vethstale0");
    apply(
        "bridge",
        &plan,
        &Allowed::default(),
        host.as_fd(),
        old.as_fd(),
    )
    .unwrap();
    // The previous run's namespace goes a moment after the restart began, as the kernel's
    // teardown of a dead container's namespace does.
    let dies = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(300));
        drop(old);
    });
    apply(
        "bridge",
        &plan,
        &Allowed::default(),
        host.as_fd(),
        new.as_fd(),
    )
    .unwrap();
    dies.join().unwrap();
    assert!(in_ns(&new, || Netlink::open()?.index("eth0")).is_some());
}
