//! The way out's TCP proxy. TCP that containers send out of the holder's namespace does not
//! go through libslirp's TCP stack, frame by frame: the holder's ruleset hands each new
//! connection to a transparent listener ([`listen`], nftables `tproxy`), which keeps the
//! address the container asked for, and `burrow __egress` ([`serve`]) connects there from
//! the host's network namespace, as the user, and copies both ways in the kernel
//! (`relay.rs`). The far end sees the host's address, as it does through slirp.
//!
//! What stays with slirp: UDP and ICMP, 10.0.2.0/24 (the host's loopback at 10.0.2.2, which
//! the ruleset closes but to the networks that open it, and the DNS forwarder at 10.0.2.3),
//! and all of it when the listener is missing (slirp4netns, pasta: nftables' `tproxy` finds
//! no listener and lets the packet go on its way).
//!
//! One difference a container can see: its connection is accepted before the far end is
//! reached, so a refused or unreachable destination shows as a reset of an open connection
//! instead of a refused connect.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// Where the transparent listener listens in the holder's namespace (the ruleset's `tproxy`
/// sends there). Nothing else in that namespace listens on loopback.
pub const LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 1);

/// Stack of the threads that connect and copy: they hold no buffers of their own.
const STACK: usize = 64 * 1024;

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
/// until the listener fails. Call in the network namespace the connections should leave
/// from (the host's).
pub fn serve(listener: TcpListener) {
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                let spawned = std::thread::Builder::new()
                    .name("egress".into())
                    .stack_size(STACK)
                    .spawn(move || forward(conn));
                if spawned.is_err() {
                    // Out of threads: the connection is closed; a moment for some to end.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if is_per_connection(&e) => {}
            Err(e) => {
                eprintln!("burrow __egress: the TCP proxy stops: {e}");
                return;
            }
        }
    }
}

/// accept(2) errors that concern one connection (or a passing shortage), not the listener.
fn is_per_connection(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ECONNABORTED | libc::EPROTO | libc::EMFILE | libc::ENFILE | libc::ENOBUFS)
    )
}

/// Connects to where `conn` was addressed and copies both ways; if that fails, resets `conn`.
fn forward(conn: TcpStream) {
    let upstream = conn.local_addr().and_then(TcpStream::connect);
    match upstream {
        Ok(upstream) => super::relay::both_ways(conn, upstream),
        Err(_) => {
            let _ = socket2::SockRef::from(&conn).set_linger(Some(Duration::ZERO));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn an_unreachable_destination_resets_the_container_connection() {
        // A listener whose own address has nothing behind it once it is closed.
        let front = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(front.local_addr().unwrap()).unwrap();
        let (conn, _) = front.accept().unwrap();
        drop(front);
        forward(conn);
        let mut buf = [0u8; 4];
        let got = client.read(&mut buf);
        assert!(
            matches!(&got, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "the client saw {got:?}"
        );
    }
}
