//! Just enough of nfnetlink_queue (linux/netfilter/nfnetlink_queue.h) for the way out's TCP
//! proxy to hold a container's SYN until the far end answers (`proxy.rs`): bind a queue, take
//! the packets' ids and first bytes, give each a verdict (and a mark). Written here rather than
//! taken from a crate: netlink-packet-netfilter speaks NFLOG only, and the bindings to
//! libnetfilter_queue would add a C library for four message shapes.
#![allow(unsafe_code)]

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

use netlink_sys::{Socket, SocketAddr as NetlinkAddr, protocols::NETLINK_NETFILTER};

/// NFNL_SUBSYS_QUEUE, in the high byte of a message type.
const SUBSYS_QUEUE: u16 = 3 << 8;
const MSG_PACKET: u16 = SUBSYS_QUEUE;
const MSG_VERDICT: u16 = SUBSYS_QUEUE | 1;
const MSG_CONFIG: u16 = SUBSYS_QUEUE | 2;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
/// Attributes of config messages.
const CFG_CMD: u16 = 1;
const CFG_PARAMS: u16 = 2;
const CFG_FLAGS: u16 = 5;
const CFG_MASK: u16 = 4;
const CFG_CMD_BIND: u8 = 1;
const COPY_PACKET: u8 = 2;
/// Accept packets instead of dropping them when the queue is full.
const CFG_F_FAIL_OPEN: u32 = 1;
/// Attributes of packet and verdict messages.
const ATTR_PACKET_HDR: u16 = 1;
const ATTR_VERDICT_HDR: u16 = 2;
const ATTR_MARK: u16 = 3;
const ATTR_PAYLOAD: u16 = 10;
/// How much of each packet is copied to us: the IPv4 and TCP headers, options included.
const COPY_RANGE: u32 = 120;

/// What becomes of a held packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Drop,
    /// On its way, with this mark if any.
    Accept(Option<u32>),
}

/// A queued packet: its id and the IPv4 TCP connection it opens (None for anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    pub id: u32,
    pub tcp: Option<(SocketAddr, SocketAddr)>,
}

/// A bound queue: packets come in on it, verdicts go out on it (the kernel takes verdicts only
/// from the socket that bound the queue).
#[derive(Debug)]
pub struct Queue {
    socket: Socket,
    num: u16,
}

impl Queue {
    /// Binds queue `num` of the calling thread's network namespace (CAP_NET_ADMIN there),
    /// copying the first bytes of each packet, failing open when full.
    pub fn bind(num: u16) -> io::Result<Queue> {
        let mut socket = Socket::new(NETLINK_NETFILTER)?;
        socket.bind_auto()?;
        let q = Queue { socket, num };
        let mut bind = Vec::new();
        attr(&mut bind, CFG_CMD, &[CFG_CMD_BIND, 0, 0, 0]);
        q.request(&bind)?;
        let mut params = Vec::new();
        let mut p = COPY_RANGE.to_be_bytes().to_vec();
        p.push(COPY_PACKET);
        attr(&mut params, CFG_PARAMS, &p);
        attr(&mut params, CFG_FLAGS, &CFG_F_FAIL_OPEN.to_be_bytes());
        attr(&mut params, CFG_MASK, &CFG_F_FAIL_OPEN.to_be_bytes());
        q.request(&params)?;
        Ok(q)
    }

    /// The queue bound on `fd` (passed from where it was bound).
    pub fn from_fd(fd: OwnedFd, num: u16) -> Queue {
        // SAFETY: `fd` is an open netlink socket we own; Socket takes it over.
        let socket = unsafe { Socket::from_raw_fd(fd.into_raw_fd()) };
        Queue { socket, num }
    }

    /// Sends a config message and waits for the kernel's answer.
    fn request(&self, attrs: &[u8]) -> io::Result<()> {
        let msg = message(MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, self.num, attrs);
        self.socket.send_to(&msg, &NetlinkAddr::new(0, 0), 0)?;
        let mut buf = vec![0u8; 8192];
        let n = self.socket.recv(&mut &mut buf[..], 0)?;
        match messages(&buf[..n]).next() {
            Some((NLMSG_ERROR, body)) if body.len() >= 4 => {
                let code = i32::from_ne_bytes(body[..4].try_into().expect("4 bytes"));
                if code == 0 {
                    Ok(())
                } else {
                    Err(io::Error::from_raw_os_error(-code))
                }
            }
            _ => Err(io::Error::other("no answer to a queue config message")),
        }
    }

    /// Waits for the next packets.
    pub fn recv(&self) -> io::Result<Vec<Packet>> {
        let mut buf = vec![0u8; 65536];
        let n = self.socket.recv(&mut &mut buf[..], 0)?;
        Ok(packets(&buf[..n]))
    }

    /// Gives packet `id` its verdict.
    pub fn verdict(&self, id: u32, verdict: Verdict) -> io::Result<()> {
        let msg = verdict_message(self.num, id, verdict);
        self.socket.send_to(&msg, &NetlinkAddr::new(0, 0), 0)?;
        Ok(())
    }
}

impl AsFd for Queue {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// One netlink message of `kind` to nfnetlink (family AF_UNSPEC, version 0, queue `num`).
fn message(kind: u16, flags: u16, num: u16, attrs: &[u8]) -> Vec<u8> {
    let len = 16 + 4 + attrs.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
    m.extend_from_slice(&[0, 0]);
    m.extend_from_slice(&num.to_be_bytes());
    m.extend_from_slice(attrs);
    m
}

/// Appends attribute `kind` with `value`, padded to four bytes.
fn attr(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    out.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(out.len().next_multiple_of(4), 0);
}

fn verdict_message(num: u16, id: u32, verdict: Verdict) -> Vec<u8> {
    let (code, mark) = match verdict {
        Verdict::Drop => (0u32, None),
        Verdict::Accept(mark) => (1u32, mark),
    };
    let mut attrs = Vec::new();
    let mut hdr = code.to_be_bytes().to_vec();
    hdr.extend_from_slice(&id.to_be_bytes());
    attr(&mut attrs, ATTR_VERDICT_HDR, &hdr);
    if let Some(mark) = mark {
        attr(&mut attrs, ATTR_MARK, &mark.to_be_bytes());
    }
    message(MSG_VERDICT, NLM_F_REQUEST, num, &attrs)
}

/// The netlink messages in `buf`: (type, what follows the header).
fn messages(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 16 {
            return None;
        }
        let len = u32::from_ne_bytes(buf[..4].try_into().ok()?) as usize;
        let kind = u16::from_ne_bytes(buf[4..6].try_into().ok()?);
        if len < 16 || len > buf.len() {
            return None;
        }
        let body = &buf[16..len];
        buf = &buf[len.next_multiple_of(4).min(buf.len())..];
        Some((kind, body))
    })
}

/// The attributes of a message body (after its 4-byte nfgenmsg): (type, value).
fn attrs(body: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut rest = body.get(4..).unwrap_or_default();
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        let value = &rest[4..len];
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
        Some((kind, value))
    })
}

/// The packets in a buffer the queue delivered.
fn packets(buf: &[u8]) -> Vec<Packet> {
    messages(buf)
        .filter(|(kind, _)| *kind == MSG_PACKET)
        .filter_map(|(_, body)| {
            let mut id = None;
            let mut tcp = None;
            for (kind, value) in attrs(body) {
                match kind {
                    ATTR_PACKET_HDR if value.len() >= 4 => {
                        id = Some(u32::from_be_bytes(value[..4].try_into().ok()?));
                    }
                    ATTR_PAYLOAD => tcp = tcp_ends(value),
                    _ => {}
                }
            }
            Some(Packet { id: id?, tcp })
        })
        .collect()
}

/// (source, destination) of an IPv4 TCP packet.
fn tcp_ends(ip: &[u8]) -> Option<(SocketAddr, SocketAddr)> {
    let version = ip.first()? >> 4;
    let header = usize::from(ip.first()? & 0x0f) * 4;
    if version != 4 || *ip.get(9)? != libc::IPPROTO_TCP as u8 || ip.len() < header + 4 {
        return None;
    }
    let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
    let port = |at: usize| u16::from_be_bytes([ip[at], ip[at + 1]]);
    Some((
        SocketAddrV4::new(addr(12), port(header)).into(),
        SocketAddrV4::new(addr(16), port(header + 2)).into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 TCP SYN from 10.89.0.2:40000 to 10.231.5.2:8080 (checksums left zero).
    fn syn() -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0];
        p.extend_from_slice(&[10, 89, 0, 2, 10, 231, 5, 2]);
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&8080u16.to_be_bytes());
        p.extend_from_slice(&[0; 16]);
        p
    }

    #[test]
    fn a_queued_syn_gives_its_id_and_ends() {
        let mut attrs = Vec::new();
        // packet_id, hw_protocol (IPv4), hook (prerouting)
        attr(&mut attrs, ATTR_PACKET_HDR, &[0, 0, 0, 42, 0x08, 0x00, 0]);
        attr(&mut attrs, 11, &[0, 0, 0, 7]); // NFQA_IFINDEX_INDEV: skipped
        attr(&mut attrs, ATTR_PAYLOAD, &syn());
        let mut buf = message(MSG_PACKET, 0, 0, &attrs);
        buf.extend(message(MSG_PACKET, 0, 0, &{
            let mut a = Vec::new();
            attr(&mut a, ATTR_PACKET_HDR, &[0, 0, 1, 0, 0x08, 0x00, 0]);
            attr(&mut a, ATTR_PAYLOAD, &[0x45, 0, 0, 20, 0, 0, 0, 0, 64, 17]);
            a
        }));
        let from: SocketAddr = "10.89.0.2:40000".parse().unwrap();
        let to: SocketAddr = "10.231.5.2:8080".parse().unwrap();
        assert_eq!(
            packets(&buf),
            vec![
                Packet {
                    id: 42,
                    tcp: Some((from, to))
                },
                // Not TCP: an id, no ends.
                Packet { id: 256, tcp: None },
            ]
        );
        // Cut short: nothing, and no panic.
        assert_eq!(packets(&buf[..20]), vec![]);
    }

    #[test]
    fn verdicts_as_the_kernel_reads_them() {
        let m = verdict_message(0, 42, Verdict::Accept(Some(0x6276)));
        assert_eq!(m.len(), 16 + 4 + 12 + 8);
        assert_eq!(
            u32::from_ne_bytes(m[..4].try_into().unwrap()) as usize,
            m.len()
        );
        assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 0x0301);
        let a: Vec<_> = attrs(&m[16..]).collect();
        assert_eq!(
            a,
            vec![
                (ATTR_VERDICT_HDR, &[0, 0, 0, 1, 0, 0, 0, 42][..]),
                (ATTR_MARK, &[0, 0, 0x62, 0x76][..]),
            ]
        );
        let d = verdict_message(3, 7, Verdict::Drop);
        assert_eq!(&d[18..20], &3u16.to_be_bytes());
        assert_eq!(
            attrs(&d[16..]).next(),
            Some((ATTR_VERDICT_HDR, &[0, 0, 0, 0, 0, 0, 0, 7][..]))
        );
    }
}
