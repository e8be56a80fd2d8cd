//! The way out's TCP proxy. TCP that containers send out of the holder's namespace does not
//! go through libslirp's TCP stack, frame by frame: the holder's ruleset hands each new
//! connection to a transparent listener ([`listen`], nftables `tproxy`), which keeps the
//! address the container asked for, and `burrow __egress` ([`serve`]) connects there from
//! the host's network namespace, as the user, and copies both ways in the kernel
//! (`tcp_relay.rs`). The far end sees the host's address, as it does through slirp.
//!
//! The container's SYN is held first (nfnetlink_queue, [`QUEUE`]) until the far end answered
//! our own connect: then it goes on to the listener, and the connection it opens is joined to
//! the one waiting. A refused connect sends it on marked [`REFUSED_MARK`], an unreachable far
//! end [`UNREACHABLE_MARK`] (the ruleset rejects those with a reset or an ICMP error), a
//! timeout drops it: the container sees what it would see on a router. Without the queue
//! (full, or nobody bound it) the SYN goes straight on and the connect follows the accept.
//!
//! What stays with slirp: UDP and ICMP, 10.0.2.0/24 (the host's loopback at 10.0.2.2, which
//! the ruleset closes but to the networks that open it, and the DNS forwarder at 10.0.2.3),
//! and all of it when the listener is missing (slirp4netns, pasta: nftables' `tproxy` finds
//! no listener and lets the packet go on its way).

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::nfqueue::{Queue, Verdict};

/// Where the transparent listener listens in the holder's namespace (the ruleset's `tproxy`
/// sends there). Nothing else in that namespace listens on loopback.
pub const LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 1);

/// The nfnetlink queue (of the holder's namespace) that holds containers' SYNs.
pub const QUEUE: u16 = 0;
/// Marks the ruleset rejects with a TCP reset (refused) or an ICMP host-unreachable.
pub const REFUSED_MARK: u32 = 0x6276;
pub const UNREACHABLE_MARK: u32 = 0x6277;

/// Stack of the threads that connect and copy: they hold no buffers of their own.
const STACK: usize = 64 * 1024;

/// How long a connection made for a held SYN waits for the container's to reach the listener.
const UNCLAIMED: Duration = Duration::from_secs(30);

/// A connection: (the container's address, where it goes).
type Ends = (SocketAddr, SocketAddr);

/// Connections to far ends made for held SYNs, until the container's connection claims them.
#[derive(Default)]
struct Ready(Mutex<HashMap<Ends, (Instant, TcpStream)>>);

impl Ready {
    fn put(&self, ends: Ends, stream: TcpStream) {
        let mut map = self.0.lock().expect("ready lock");
        map.retain(|_, (at, _)| at.elapsed() < UNCLAIMED);
        map.insert(ends, (Instant::now(), stream));
    }

    fn take(&self, ends: &Ends) -> Option<TcpStream> {
        self.0
            .lock()
            .expect("ready lock")
            .remove(ends)
            .map(|(_, s)| s)
    }
}

/// The transparent listener ([`LISTEN`]); call in the holder's network namespace, with
/// CAP_NET_ADMIN there (IP_TRANSPARENT).
pub fn listen() -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    s.set_ip_transparent_v4(true)?;
    s.set_reuse_address(true)?;
    s.bind(&LISTEN.into())?;
    s.listen(1024)?;
    Ok(s.into())
}

/// Takes the connections `listener` accepts, each to the address its container asked for,
/// until the listener fails; with `queue`, holds each SYN until that address answered. Call in
/// the network namespace the connections should leave from (the host's).
pub fn serve(listener: TcpListener, queue: Option<Queue>) {
    let ready = Arc::new(Ready::default());
    if let Some(queue) = queue {
        let ready = ready.clone();
        let _ = std::thread::Builder::new()
            .name("egress-syn".into())
            .spawn(move || hold_syns(queue, &ready));
    }
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                let ready = ready.clone();
                let spawned = std::thread::Builder::new()
                    .name("egress".into())
                    .stack_size(STACK)
                    .spawn(move || forward(conn, &ready));
                if spawned.is_err() {
                    // Out of threads: the connection is closed; a moment for some to end.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // Out of descriptors, say: the connection waits in the backlog meanwhile.
            Err(e) if is_per_connection(&e) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => {
                tracing::error!(
                    error = &e as &(dyn std::error::Error + 'static),
                    "the TCP proxy stops"
                );
                return;
            }
        }
    }
}

/// Gives each SYN the queue holds its verdict once a connect to where it goes has answered
/// (on a thread of its own); a SYN sent again while its first waits is dropped. Ends when the
/// queue fails; closing it unbinds it, and SYNs then pass unheld.
fn hold_syns(queue: Queue, ready: &Arc<Ready>) {
    let queue = Arc::new(queue);
    let waiting: Arc<Mutex<HashSet<Ends>>> = Arc::default();
    loop {
        let packets = match queue.recv() {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // ENOBUFS: the kernel dropped messages it could not deliver; carry on.
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => continue,
            Err(e) => {
                tracing::warn!(
                    error = &e as &(dyn std::error::Error + 'static),
                    "SYNs pass unheld"
                );
                return;
            }
        };
        for p in packets {
            let Some(ends) = p.tcp else {
                let _ = queue.verdict(p.id, Verdict::Accept(None));
                continue;
            };
            if !waiting.lock().expect("waiting lock").insert(ends) {
                let _ = queue.verdict(p.id, Verdict::Drop);
                continue;
            }
            let (q, r, w) = (queue.clone(), ready.clone(), waiting.clone());
            let spawned = std::thread::Builder::new()
                .name("egress-connect".into())
                .stack_size(STACK)
                .spawn(move || {
                    let verdict = match TcpStream::connect(ends.1) {
                        Ok(stream) => {
                            r.put(ends, stream);
                            Verdict::Accept(None)
                        }
                        Err(e) => verdict_for(&e),
                    };
                    let _ = q.verdict(p.id, verdict);
                    w.lock().expect("waiting lock").remove(&ends);
                });
            if spawned.is_err() {
                waiting.lock().expect("waiting lock").remove(&ends);
                let _ = queue.verdict(p.id, Verdict::Accept(None));
            }
        }
    }
}

/// What a held SYN becomes when our connect failed with `e`.
fn verdict_for(e: &io::Error) -> Verdict {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => Verdict::Accept(Some(REFUSED_MARK)),
        Some(libc::EHOSTUNREACH | libc::ENETUNREACH) => Verdict::Accept(Some(UNREACHABLE_MARK)),
        // Timed out (or stranger): the container's own retries and timeout decide.
        _ => Verdict::Drop,
    }
}

/// accept(2) errors that concern one connection (or a passing shortage), not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED | libc::EPROTO | libc::EMFILE | libc::ENFILE | libc::ENOBUFS)
    )
}

/// Copies both ways between `conn` and where it was addressed: the connection made for its
/// held SYN, or a new one (its SYN was not held); if that fails, resets `conn`.
fn forward(conn: TcpStream, ready: &Ready) {
    let upstream = match (conn.peer_addr(), conn.local_addr()) {
        (Ok(from), Ok(to)) => ready
            .take(&(from, to))
            .map_or_else(|| TcpStream::connect(to), Ok),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    match upstream {
        Ok(upstream) => crate::network::tcp_relay::both_ways(conn, upstream),
        Err(_) => {
            let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn a_connection_made_for_its_syn_is_the_one_used() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(front.local_addr().unwrap()).unwrap();
        let (conn, _) = front.accept().unwrap();
        let ready = Ready::default();
        // Made for the held SYN: to the server, although the front is where conn went.
        let ends = (conn.peer_addr().unwrap(), conn.local_addr().unwrap());
        ready.put(
            ends,
            TcpStream::connect(server.local_addr().unwrap()).unwrap(),
        );
        let relay = std::thread::spawn(move || forward(conn, &ready));
        let (mut s, _) = server.accept().unwrap();
        client.write_all(b"held").unwrap();
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).unwrap();
        assert_eq!(got, "held");
        drop(s);
        relay.join().unwrap();
    }

    #[test]
    fn failed_connects_become_what_a_router_would_say() {
        let e = |code| io::Error::from_raw_os_error(code);
        assert_eq!(
            verdict_for(&e(libc::ECONNREFUSED)),
            Verdict::Accept(Some(REFUSED_MARK))
        );
        assert_eq!(
            verdict_for(&e(libc::EHOSTUNREACH)),
            Verdict::Accept(Some(UNREACHABLE_MARK))
        );
        assert_eq!(verdict_for(&e(libc::ETIMEDOUT)), Verdict::Drop);
    }

    #[test]
    fn an_unreachable_destination_resets_the_container_connection() {
        // A listener whose own address has nothing behind it once it is closed.
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(front.local_addr().unwrap()).unwrap();
        let (conn, _) = front.accept().unwrap();
        drop(front);
        forward(conn, &Ready::default());
        let mut buf = [0u8; 4];
        let got = client.read(&mut buf);
        assert!(
            matches!(&got, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "the client saw {got:?}"
        );
    }
}
