//! Carries out a network driver's plan (../shared/DESIGN.md: "Network drivers compute; the
//! host applies"): first every step is checked against what the host owns, then the links,
//! addresses, routes and sysctls are made over rtnetlink in the two network namespaces (the
//! host side: the network holder's, or the host's as root; the container's), and whatever
//! was created is undone, newest first, when a later step fails.
//!
//! Steps for other parts of the host (masquerade, port forwards, DNS records) are handed back
//! to the caller untouched: the network holder carries those.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::str::FromStr;

use ipnet::IpNet;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkHeader, NetlinkMessage,
    NetlinkPayload,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoMacVlan, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVlanMode,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

use crate::plugin::{Link, Op, Plan, Side};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The plan asks for something the host does not let a driver do.
    #[error("network driver {driver:?} planned something burrow refuses: {what}")]
    Refused { driver: String, what: String },
    #[error("cannot {step}")]
    Netlink {
        step: String,
        #[source]
        source: std::io::Error,
    },
}

/// What the host lets a plan touch on its side: the interfaces it may create or change
/// (`veth…`, `br-…`, `burrow0`, and names the network's options chose) and the parents a
/// macvlan may hang off (those named by `-o parent`).
#[derive(Debug, Clone, Default)]
pub struct Allowed {
    pub host_names: Vec<String>,
    pub parents: Vec<String>,
}

impl Allowed {
    fn host_link(&self, name: &str) -> bool {
        if !host_ifname_ok(name) {
            return false;
        }
        name.starts_with("veth")
            || name.starts_with("br-")
            || name == "burrow0"
            || self.host_names.iter().any(|n| n == name)
    }
}

/// How long a veth of the name a plan asks for may take to go with the network namespace
/// of the container's previous run.
const STALE_VETH_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// What was created, to undo newest first.
#[derive(Debug, Default)]
pub struct Journal {
    links: Vec<(Side, String)>,
}

/// Steps for the network holder (masquerade, forwards, DNS records).
pub type Deferred = Vec<Op>;

/// Checks every step, then applies them; on failure undoes what it did.
pub fn apply(
    driver: &str,
    plan: &Plan,
    allowed: &Allowed,
    host: BorrowedFd<'_>,
    container: BorrowedFd<'_>,
) -> Result<(Journal, Deferred), NetError> {
    check(driver, plan, allowed)?;
    let mut journal = Journal::default();
    let mut deferred = Vec::new();
    for op in &plan.ops {
        if let Err(e) = apply_op(op, host, container, &mut journal, &mut deferred) {
            undo(&journal, host, container);
            return Err(e);
        }
    }
    Ok((journal, deferred))
}

/// Removes what `journal` records (links; their addresses and routes go with them).
pub fn undo(journal: &Journal, host: BorrowedFd<'_>, container: BorrowedFd<'_>) {
    for (side, name) in journal.links.iter().rev() {
        if let Err(e) = delete_link(pick(*side, host, container), name) {
            tracing::warn!(%e, name, "cannot remove a link the failed plan created");
        }
    }
}

/// Deletes interface `name` in the network namespace `ns`, if it is there.
pub fn delete_link(ns: BorrowedFd<'_>, name: &str) -> std::io::Result<()> {
    in_netns(ns, || {
        let mut nl = Netlink::open()?;
        match nl.index(name)? {
            Some(index) => {
                let mut m = LinkMessage::default();
                m.header.index = index;
                nl.request(RouteNetlinkMessage::DelLink(m), 0)
            }
            None => Ok(()),
        }
    })
}

/// In the calling thread's network namespace: packets with firewall mark `mark` are
/// delivered locally, whatever their destination (`ip rule add fwmark MARK lookup TABLE`,
/// `ip route add local 0.0.0.0/0 dev lo table TABLE`), as transparent proxies need.
pub fn deliver_marked_locally(mark: u32, table: u32) -> std::io::Result<()> {
    let mut nl = Netlink::open()?;
    let lo = nl
        .index("lo")?
        .ok_or_else(|| std::io::Error::other("lo does not exist"))?;
    let mut rule = RuleMessage::default();
    rule.header.family = AddressFamily::Inet;
    rule.header.action = RuleAction::ToTable;
    rule.attributes.push(RuleAttribute::FwMark(mark));
    rule.attributes.push(RuleAttribute::Table(table));
    nl.request(
        RouteNetlinkMessage::NewRule(rule),
        NLM_F_CREATE | NLM_F_EXCL,
    )?;
    let mut route = RouteMessage::default();
    route.header.address_family = AddressFamily::Inet;
    route.header.table = RouteHeader::RT_TABLE_UNSPEC;
    route.header.protocol = RouteProtocol::Boot;
    route.header.scope = RouteScope::Host;
    route.header.kind = RouteType::Local;
    route.attributes.push(RouteAttribute::Table(table));
    route.attributes.push(RouteAttribute::Oif(lo));
    nl.request(
        RouteNetlinkMessage::NewRoute(route),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Whether interface `name` exists in the calling thread's network namespace.
pub fn link_exists(name: &str) -> std::io::Result<bool> {
    Ok(Netlink::open()?.index(name)?.is_some())
}

fn pick<'a>(side: Side, host: BorrowedFd<'a>, container: BorrowedFd<'a>) -> BorrowedFd<'a> {
    match side {
        Side::Host => host,
        Side::Container => container,
    }
}

/// A name a network may give an interface on the holder's side: a valid name, and not one
/// of the holder's own (its loopback, its way out).
pub fn host_ifname_ok(name: &str) -> bool {
    ifname_ok(name) && name != "lo" && name != super::egress::slirp::TAP
}

fn ifname_ok(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name.contains(['/', ':', ' ', '\t', '\n'])
}

/// Every step against what the host owns, before any is applied.
fn check(driver: &str, plan: &Plan, allowed: &Allowed) -> Result<(), NetError> {
    let refuse = |what: String| NetError::Refused {
        driver: driver.to_string(),
        what,
    };
    // Host-side interfaces the plan itself creates or ensures.
    let mut made: Vec<&str> = Vec::new();
    for op in &plan.ops {
        if let Op::EnsureLink(link) = op {
            let (host_name, other) = match link {
                Link::Bridge(b) => (Some(b.name.as_str()), None),
                Link::Veth(v) => (Some(v.host_name.as_str()), Some(v.peer.as_str())),
                Link::Macvlan(m) => {
                    if !allowed.parents.contains(&m.parent) {
                        return Err(refuse(format!(
                            "a macvlan on {:?}, which the network's options do not name as parent",
                            m.parent
                        )));
                    }
                    (None, Some(m.name.as_str()))
                }
            };
            for name in host_name.iter().chain(other.iter()) {
                if !ifname_ok(name) {
                    return Err(refuse(format!("the interface name {name:?}")));
                }
            }
            if let Some(h) = host_name {
                if !allowed.host_link(h) {
                    return Err(refuse(format!(
                        "the host interface {h:?} (burrow makes only veth…, br-…, burrow0 and names the network's options give)"
                    )));
                }
                made.push(h);
            }
        }
    }
    let host_iface = |name: &str| -> Result<(), NetError> {
        if made.contains(&name) {
            Ok(())
        } else {
            Err(refuse(format!(
                "a change to the host interface {name:?}, which the plan did not make"
            )))
        }
    };
    for op in &plan.ops {
        match op {
            Op::LinkUp((Side::Host, name)) => host_iface(name)?,
            Op::AddAddr(a) => {
                IpNet::from_str(&a.cidr)
                    .map_err(|_| refuse(format!("the address {:?}", a.cidr)))?;
                if a.side == Side::Host {
                    host_iface(&a.ifname)?;
                }
            }
            Op::AddRoute(r) => {
                if r.side == Side::Host {
                    return Err(refuse("a route on the host".into()));
                }
                if r.dst != "default" {
                    IpNet::from_str(&r.dst)
                        .map_err(|_| refuse(format!("the route destination {:?}", r.dst)))?;
                }
            }
            Op::Sysctl((side, key, _)) => {
                let host_ok = [
                    "net.ipv4.ip_forward",
                    "net.ipv6.conf.all.forwarding",
                    "net.ipv4.conf.all.forwarding",
                ];
                let ok = match side {
                    Side::Container => key.starts_with("net."),
                    Side::Host => {
                        host_ok.contains(&key.as_str())
                            || made.iter().any(|m| {
                                key.starts_with("net.ipv4.conf.") && key.contains(&format!(".{m}."))
                            })
                    }
                };
                if !ok || key.contains("..") || key.contains('/') {
                    return Err(refuse(format!("the sysctl {key}")));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn apply_op(
    op: &Op,
    host: BorrowedFd<'_>,
    container: BorrowedFd<'_>,
    journal: &mut Journal,
    deferred: &mut Deferred,
) -> Result<(), NetError> {
    let step =
        |what: String| move |source: std::io::Error| NetError::Netlink { step: what, source };
    match op {
        Op::EnsureLink(Link::Bridge(b)) => in_netns(host, || {
            let mut nl = Netlink::open()?;
            if nl.index(&b.name)?.is_some() {
                return Ok(());
            }
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName(b.name.clone()));
            if let Some(mtu) = b.mtu {
                m.attributes.push(LinkAttribute::Mtu(mtu));
            }
            m.attributes
                .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                    InfoKind::Bridge,
                )]));
            nl.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)?;
            journal.links.push((Side::Host, b.name.clone()));
            Ok(())
        })
        .map_err(step(format!("create the bridge {}", b.name))),
        Op::EnsureLink(Link::Veth(v)) => in_netns(host, || {
            let mut nl = Netlink::open()?;
            let mut peer = LinkMessage::default();
            peer.attributes.push(LinkAttribute::IfName(v.peer.clone()));
            peer.attributes
                .push(LinkAttribute::NetNsFd(container.as_raw_fd()));
            if let Some(mac) = &v.mac {
                peer.attributes
                    .push(LinkAttribute::Address(parse_mac(mac)?));
            }
            if let Some(mtu) = v.mtu {
                peer.attributes.push(LinkAttribute::Mtu(mtu));
            }
            let mut m = LinkMessage::default();
            m.attributes
                .push(LinkAttribute::IfName(v.host_name.clone()));
            if let Some(mtu) = v.mtu {
                m.attributes.push(LinkAttribute::Mtu(mtu));
            }
            if let Some(master) = &v.master {
                let index = nl.index(master)?.ok_or_else(|| {
                    std::io::Error::other(format!("the bridge {master} does not exist"))
                })?;
                m.attributes.push(LinkAttribute::Controller(index));
            }
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ]));
            // Veth names are the container's and the network's: one still there is from the
            // container's previous run (restarted at once after it died), whose network
            // namespace the kernel tears down in the background, taking the pair with it.
            let until = std::time::Instant::now() + STALE_VETH_GRACE;
            while nl.index(&v.host_name)?.is_some() && std::time::Instant::now() < until {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            nl.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)?;
            journal.links.push((Side::Host, v.host_name.clone()));
            Ok(())
        })
        .map_err(step(format!("create the veth pair {}", v.host_name))),
        Op::EnsureLink(Link::Macvlan(mv)) => in_netns(host, || {
            let mut nl = Netlink::open()?;
            let parent = nl.index(&mv.parent)?.ok_or_else(|| {
                std::io::Error::other(format!("the parent interface {} does not exist", mv.parent))
            })?;
            let mode = match mv.mode.as_str() {
                "private" => MacVlanMode::Private,
                "vepa" => MacVlanMode::Vepa,
                "passthru" => MacVlanMode::Passthrough,
                _ => MacVlanMode::Bridge,
            };
            let mut m = LinkMessage::default();
            m.attributes.push(LinkAttribute::IfName(mv.name.clone()));
            m.attributes.push(LinkAttribute::Link(parent));
            m.attributes
                .push(LinkAttribute::NetNsFd(container.as_raw_fd()));
            if let Some(mac) = &mv.mac {
                m.attributes.push(LinkAttribute::Address(parse_mac(mac)?));
            }
            m.attributes.push(LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(mode)])),
            ]));
            nl.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)?;
            journal.links.push((Side::Container, mv.name.clone()));
            Ok(())
        })
        .map_err(step(format!(
            "create the macvlan {} on {}",
            mv.name, mv.parent
        ))),
        Op::LinkUp((side, name)) => in_netns(pick(*side, host, container), || {
            let mut nl = Netlink::open()?;
            let index = nl
                .index(name)?
                .ok_or_else(|| std::io::Error::other(format!("{name} does not exist")))?;
            let mut m = LinkMessage::default();
            m.header.index = index;
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
            nl.request(RouteNetlinkMessage::NewLink(m), 0)
        })
        .map_err(step(format!("bring {name} up"))),
        Op::AddAddr(a) => in_netns(pick(a.side, host, container), || {
            let net = IpNet::from_str(&a.cidr).map_err(std::io::Error::other)?;
            let mut nl = Netlink::open()?;
            let index = nl
                .index(&a.ifname)?
                .ok_or_else(|| std::io::Error::other(format!("{} does not exist", a.ifname)))?;
            let mut m = AddressMessage::default();
            m.header.family = family(&net);
            m.header.prefix_len = net.prefix_len();
            m.header.index = index;
            m.attributes.push(AddressAttribute::Local(net.addr()));
            m.attributes.push(AddressAttribute::Address(net.addr()));
            if let IpNet::V4(v4) = net {
                m.attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
            match nl.request(
                RouteNetlinkMessage::NewAddress(m),
                NLM_F_CREATE | NLM_F_EXCL,
            ) {
                // An existing bridge keeps its gateway address: ensured, not added.
                Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
                other => other,
            }
        })
        .map_err(step(format!("add {} to {}", a.cidr, a.ifname))),
        Op::AddRoute(r) => in_netns(pick(r.side, host, container), || {
            let mut nl = Netlink::open()?;
            let via: Option<std::net::IpAddr> = match &r.via {
                Some(v) => Some(v.parse().map_err(std::io::Error::other)?),
                None => None,
            };
            let dst: IpNet = if r.dst == "default" {
                match via {
                    Some(std::net::IpAddr::V6(_)) => IpNet::from_str("::/0"),
                    _ => IpNet::from_str("0.0.0.0/0"),
                }
                .expect("constant")
            } else {
                IpNet::from_str(&r.dst).map_err(std::io::Error::other)?
            };
            let mut m = RouteMessage::default();
            m.header.address_family = family(&dst);
            m.header.destination_prefix_length = dst.prefix_len();
            m.header.table = RouteHeader::RT_TABLE_MAIN;
            m.header.protocol = RouteProtocol::Boot;
            m.header.scope = if via.is_some() {
                RouteScope::Universe
            } else {
                RouteScope::Link
            };
            m.header.kind = RouteType::Unicast;
            if dst.prefix_len() > 0 {
                m.attributes
                    .push(RouteAttribute::Destination(route_address(dst.addr())));
            }
            if let Some(v) = via {
                m.attributes.push(RouteAttribute::Gateway(route_address(v)));
            }
            if let Some(ifname) = &r.ifname {
                let index = nl
                    .index(ifname)?
                    .ok_or_else(|| std::io::Error::other(format!("{ifname} does not exist")))?;
                m.attributes.push(RouteAttribute::Oif(index));
            }
            if let Some(metric) = r.metric {
                m.attributes.push(RouteAttribute::Priority(metric));
            }
            nl.request(RouteNetlinkMessage::NewRoute(m), NLM_F_CREATE | NLM_F_EXCL)
        })
        .map_err(step(format!("add the route to {}", r.dst))),
        Op::Sysctl((side, key, value)) => in_netns(pick(*side, host, container), || {
            // /proc/sys/net shows the network namespace of the thread that opens it.
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            std::fs::write(&path, value)
        })
        .map_err(step(format!("set {key} to {value}"))),
        Op::Masquerade(_) | Op::Forward(_) | Op::DnsRecord(_) => {
            deferred.push(op.clone());
            Ok(())
        }
    }
}

fn family(net: &IpNet) -> AddressFamily {
    match net {
        IpNet::V4(_) => AddressFamily::Inet,
        IpNet::V6(_) => AddressFamily::Inet6,
    }
}

fn route_address(ip: std::net::IpAddr) -> RouteAddress {
    match ip {
        std::net::IpAddr::V4(v4) => RouteAddress::Inet(v4),
        std::net::IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

fn parse_mac(mac: &str) -> std::io::Result<Vec<u8>> {
    let bytes: Result<Vec<u8>, _> = mac.split(':').map(|b| u8::from_str_radix(b, 16)).collect();
    match bytes {
        Ok(b) if b.len() == 6 => Ok(b),
        _ => Err(std::io::Error::other(format!("bad MAC address {mac:?}"))),
    }
}

/// Runs `f` on a thread that joined the network namespace `ns` (namespaces are per thread;
/// the caller's own stays as it was).
pub(crate) fn in_netns<R: Send>(
    ns: BorrowedFd<'_>,
    f: impl FnOnce() -> std::io::Result<R> + Send,
) -> std::io::Result<R> {
    let ns: OwnedFd = ns.try_clone_to_owned()?;
    std::thread::scope(|s| {
        s.spawn(move || {
            crate::runtime::proc::block_all_signals();
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)?;
            f()
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the netlink thread panicked")))
    })
}

/// A route netlink socket in the current thread's network namespace.
struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    fn open() -> std::io::Result<Netlink> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Netlink { socket, seq: 0 })
    }

    fn send(&mut self, msg: RouteNetlinkMessage, flags: u16) -> std::io::Result<u32> {
        self.seq += 1;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.socket.send(&buf, 0)?;
        Ok(self.seq)
    }

    /// Replies to request `seq` until its ack (or error), handing messages to `each`.
    fn replies(
        &mut self,
        seq: u32,
        mut each: impl FnMut(RouteNetlinkMessage),
    ) -> std::io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self.socket.recv(&mut &mut buf[..], 0)?;
            let mut offset = 0;
            while offset < n {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[offset..n])
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                let len = msg.header.length as usize;
                if msg.header.sequence_number == seq {
                    match msg.payload {
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(()),
                                Some(code) => Err(std::io::Error::from_raw_os_error(-code.get())),
                            };
                        }
                        NetlinkPayload::Done(_) => return Ok(()),
                        NetlinkPayload::InnerMessage(m) => each(m),
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }

    /// Sends a request and waits for its ack.
    fn request(&mut self, msg: RouteNetlinkMessage, flags: u16) -> std::io::Result<()> {
        let seq = self.send(msg, flags | NLM_F_ACK)?;
        self.replies(seq, |_| {})
    }

    /// The index of interface `name`, if there is one.
    fn index(&mut self, name: &str) -> std::io::Result<Option<u32>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        let seq = self.send(RouteNetlinkMessage::GetLink(m), NLM_F_ACK)?;
        let mut found = None;
        match self.replies(seq, |m| {
            if let RouteNetlinkMessage::NewLink(l) = m {
                found = Some(l.header.index);
            }
        }) {
            Ok(()) => Ok(found),
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
