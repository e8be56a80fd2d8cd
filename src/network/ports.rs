//! Published ports: `-p [ip:][hostPort:]containerPort[/proto]` and `-P`, and the userspace
//! proxy that carries them. The container's monitor binds the host's side (in the host's
//! network namespace, as the user) and hands each listening socket to the network holder
//! over its control socket (SCM_RIGHTS); the holder accepts there and connects to the
//! container's address inside its own namespace. The monitor keeps the control connection
//! open while the container runs: when it closes (the container ended, or its monitor was
//! killed) the holder closes those listeners, so no port outlives its container.
//!
//! UDP is forwarded per client: the holder keeps one socket towards the container for each
//! client address, dropped after [`UDP_IDLE`] without a reply (Docker's userland proxy does
//! the same).
//!
//! The client's source address is preserved where it can be: the holder's socket towards the
//! container speaks as the client (IP_TRANSPARENT, with the holder's ruleset routing the
//! replies back to it; see [`outbound`]). A client on the host's loopback cannot be spoken
//! for on a bridge: the container sees those come from the bridge's gateway (the holder).
#![allow(unsafe_code)]

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};
use serde::{Deserialize, Serialize};

mod spec;

pub use spec::{PortBinding, PortSpecError, parse};

/// Why a container's ports could not be published. Each says its cause inline too: the
/// engine keeps the message as it is.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    HostIp(std::net::AddrParseError),
    #[error("cannot publish port {key}: cannot listen on {ip}:{ports}: {source}")]
    Listen {
        key: String,
        ip: Ipv4Addr,
        ports: String,
        #[source]
        source: std::io::Error,
    },
    /// A port the kernel keeps for privileged processes (rootless Docker says the same).
    #[error(
        "cannot publish port {key} on host port {port}: ports below {start} are privileged on this host (net.ipv4.ip_unprivileged_port_start={start}); choose a host port of {start} or above, or have root run `sysctl -w net.ipv4.ip_unprivileged_port_start={port}` (add it to /etc/sysctl.conf to keep it)"
    )]
    Privileged { key: String, port: u16, start: u16 },
    #[error("cannot reach the network holder at {}: {source}", control.display())]
    Reach {
        control: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot hand port {key} to the network holder: {source}")]
    HandOver {
        key: String,
        #[source]
        source: nix::Error,
    },
}

/// The first port an unprivileged process may bind (the kernel's default is 1024).
fn unprivileged_port_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1024)
}

/// A port as bound on the host, for `port`, `ps` and `inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub binding: PortBinding,
    pub host: SocketAddr,
}

/// Binds every binding's host side (as the user, in the host's network namespace): a
/// listening TCP socket or a UDP socket.
pub fn bind(bindings: &[PortBinding]) -> Result<Vec<(Published, OwnedFd)>, PublishError> {
    bindings
        .iter()
        .map(|b| {
            let ip: Ipv4Addr = b
                .host_ip
                .as_deref()
                .map_or(Ok(Ipv4Addr::UNSPECIFIED), str::parse)
                .map_err(PublishError::HostIp)?;
            let bind_port = |port: u16| -> std::io::Result<(SocketAddr, OwnedFd)> {
                if b.proto == "udp" {
                    let s = UdpSocket::bind((ip, port))?;
                    Ok((s.local_addr()?, s.into()))
                } else {
                    let l = TcpListener::bind((ip, port))?;
                    Ok((l.local_addr()?, l.into()))
                }
            };
            // A host range: the first port in it that is free.
            let bind_once = || match b.host_port_end {
                Some(end) => (b.host_port..end)
                    .find_map(|p| bind_port(p).ok())
                    .map_or_else(|| bind_port(end), Ok),
                None => bind_port(b.host_port),
            };
            // A restarted container's previous socket may still be closing in the holder.
            let deadline = Instant::now() + Duration::from_secs(1);
            let (host, socket) = loop {
                match bind_once() {
                    Ok(bound) => break bound,
                    Err(e)
                        if e.kind() == std::io::ErrorKind::AddrInUse
                            && Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(source) => {
                        let start = unprivileged_port_start();
                        if source.kind() == std::io::ErrorKind::PermissionDenied
                            && b.host_port != 0
                            && b.host_port < start
                        {
                            return Err(PublishError::Privileged {
                                key: b.key(),
                                port: b.host_port,
                                start,
                            });
                        }
                        return Err(PublishError::Listen {
                            key: b.key(),
                            ip,
                            ports: b.host_ports(),
                            source,
                        });
                    }
                }
            };
            Ok((
                Published {
                    binding: b.clone(),
                    host,
                },
                socket,
            ))
        })
        .collect()
}

/// Hands `sockets` to the holder at `control` (retrying while it starts), each with the
/// container address to forward to, as a line `PROTO ADDRESS:PORT`. The returned stream must
/// stay open while the container runs.
pub fn hand_over(
    control: &Path,
    sockets: &[(Published, OwnedFd)],
    target: Ipv4Addr,
) -> Result<UnixStream, PublishError> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let stream = loop {
        match UnixStream::connect(control) {
            Ok(s) => break s,
            Err(source) if Instant::now() >= deadline => {
                return Err(PublishError::Reach {
                    control: control.to_path_buf(),
                    source,
                });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    for (p, socket) in sockets {
        let line = format!(
            "{} {target}:{}\n",
            p.binding.proto, p.binding.container_port
        );
        let fds = [socket.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        sendmsg::<()>(
            stream.as_raw_fd(),
            &[IoSlice::new(line.as_bytes())],
            &cmsg,
            MsgFlags::empty(),
            None,
        )
        .map_err(|source| PublishError::HandOver {
            key: p.binding.key(),
            source,
        })?;
    }
    Ok(stream)
}

/// The holder's side of one control connection: takes host-side sockets with their targets
/// and forwards to each target what arrives there, until the connection closes; then
/// closes those sockets.
pub fn serve_control(stream: UnixStream) {
    let mut sockets: Vec<RawFd> = Vec::new();
    let closed = Arc::new(AtomicBool::new(false));
    loop {
        let mut buf = [0u8; 128];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let Ok(msg) = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) else {
            break;
        };
        let n = msg.bytes;
        let fd = msg.cmsgs().ok().and_then(|mut c| {
            c.find_map(|m| match m {
                ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
                _ => None,
            })
        });
        if n == 0 {
            break;
        }
        let text = String::from_utf8_lossy(&buf[..n]).trim().to_string();
        let (proto, target) = text.split_once(' ').unwrap_or(("tcp", &text));
        let (Some(fd), Ok(target)) = (fd, target.parse::<SocketAddr>()) else {
            continue;
        };
        sockets.push(fd);
        if proto == "udp" {
            // SAFETY: the descriptor just arrived over SCM_RIGHTS: this process owns it.
            let socket = unsafe { UdpSocket::from_raw_fd(fd) };
            let closed = closed.clone();
            std::thread::spawn(move || udp_forward(socket, target, &closed));
        } else {
            // SAFETY: as above.
            let listener = unsafe { TcpListener::from_raw_fd(fd) };
            std::thread::spawn(move || accept_loop(listener, target));
        }
    }
    // The container is gone: wake the loops, which then close their sockets.
    closed.store(true, Ordering::SeqCst);
    for fd in sockets {
        let _ = nix::sys::socket::shutdown(fd, nix::sys::socket::Shutdown::Both);
    }
}

/// How long a UDP client's way to the container stays without a reply (Docker's 90 s).
pub const UDP_IDLE: Duration = Duration::from_secs(90);

/// Sockets towards the container, one per client address.
type Sessions = Arc<Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>>;

/// Forwards each client's datagrams arriving on `socket` to `target` from a socket of the
/// client's own, and the replies back, until `closed` (the socket was shut down to wake us).
fn udp_forward(socket: UdpSocket, target: SocketAddr, closed: &AtomicBool) {
    let socket = Arc::new(socket);
    let sessions: Sessions = Arc::default();
    let mut buf = vec![0u8; 65536];
    loop {
        let received = socket.recv_from(&mut buf);
        if closed.load(Ordering::SeqCst) {
            break;
        }
        let (n, client) = match received {
            Ok(got) => got,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let existing = sessions
            .lock()
            .expect("sessions lock")
            .get(&client)
            .cloned();
        let upstream = match existing {
            Some(u) => u,
            None => {
                let Ok(u) = open_session(client, target) else {
                    continue;
                };
                let u = Arc::new(u);
                sessions
                    .lock()
                    .expect("sessions lock")
                    .insert(client, u.clone());
                let (socket, sessions, upstream) = (socket.clone(), sessions.clone(), u.clone());
                std::thread::spawn(move || udp_replies(&socket, &upstream, client, &sessions));
                u
            }
        };
        let _ = upstream.send(&buf[..n]);
    }
    // Wake the reply loops: each ends on its socket's shutdown.
    for (_, upstream) in sessions.lock().expect("sessions lock").drain() {
        let _ = nix::sys::socket::shutdown(upstream.as_raw_fd(), nix::sys::socket::Shutdown::Both);
    }
}

fn open_session(client: SocketAddr, target: SocketAddr) -> std::io::Result<UdpSocket> {
    let u = UdpSocket::from(outbound(socket2::Type::DGRAM, client)?);
    u.connect(target)?;
    u.set_read_timeout(Some(UDP_IDLE))?;
    Ok(u)
}

/// A socket for the way to the container on behalf of `client`. Where the holder's namespace
/// lets it (IP_TRANSPARENT; the holder's ruleset routes the replies back to it), the socket
/// speaks as the client, so the container sees the client's address. Loopback clients cannot
/// be spoken for (127.0.0.1 on a bridge is a martian): they, and any failure, get an
/// ordinary socket, whose address the container sees as its gateway.
fn outbound(kind: socket2::Type, client: SocketAddr) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Socket};
    if let SocketAddr::V4(c) = client
        && !c.ip().is_loopback()
        && !c.ip().is_unspecified()
    {
        let s = Socket::new(Domain::IPV4, kind, None)?;
        let from = SocketAddr::from((*c.ip(), 0));
        if s.set_ip_transparent_v4(true).is_ok() && s.bind(&from.into()).is_ok() {
            return Ok(s);
        }
    }
    let s = Socket::new(Domain::IPV4, kind, None)?;
    s.bind(&SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)).into())?;
    Ok(s)
}

/// Sends what the container answers on `upstream` back to `client`, until it has said
/// nothing for [`UDP_IDLE`] or the session was shut down.
fn udp_replies(socket: &UdpSocket, upstream: &UdpSocket, client: SocketAddr, sessions: &Sessions) {
    let mut buf = vec![0u8; 65536];
    loop {
        match upstream.recv(&mut buf) {
            // Shut down (or an empty datagram, which is not worth keeping the session for).
            Ok(0) => break,
            Ok(n) => {
                let _ = socket.send_to(&buf[..n], client);
            }
            // Nothing listens on the container's port (yet): an ICMP error, not the end.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::Interrupted | std::io::ErrorKind::ConnectionRefused
                ) => {}
            Err(_) => break,
        }
    }
    sessions.lock().expect("sessions lock").remove(&client);
}

fn accept_loop(listener: TcpListener, target: SocketAddr) {
    loop {
        match listener.accept() {
            Ok((client, from)) => {
                std::thread::spawn(move || relay(client, from, target));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // Shut down by `serve_control`, or broken.
            Err(_) => return,
        }
    }
}

/// Connects to `target` on behalf of the client at `from` (see [`outbound`]), then copies both
/// ways until each side has closed its half.
fn relay(client: TcpStream, from: SocketAddr, target: SocketAddr) {
    let connect = |s: socket2::Socket| {
        s.connect_timeout(&target.into(), Duration::from_secs(5))
            .map(|()| TcpStream::from(s))
    };
    let upstream = outbound(socket2::Type::STREAM, from).and_then(connect);
    let Ok(upstream) = upstream else {
        return;
    };
    super::tcp_relay::both_ways(client, upstream);
}

impl std::fmt::Display for Published {
    /// `0.0.0.0:8080->80/tcp`, as `ps` shows it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}->{}", self.host, self.binding.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ip: Option<&str>, host: u16, container: u16) -> PortBinding {
        PortBinding {
            host_ip: ip.map(str::to_string),
            host_port: host,
            host_port_end: None,
            container_port: container,
            proto: "tcp".into(),
        }
    }

    /// A holder's control socket served by `serve_control`, as the holder serves it; the
    /// socket lives as long as the returned directory.
    fn fake_holder() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let control = dir.path().join("holder.sock");
        let listener = std::os::unix::net::UnixListener::bind(&control).unwrap();
        std::thread::spawn(move || {
            for s in listener.incoming().flatten() {
                std::thread::spawn(move || serve_control(s));
            }
        });
        (dir, control)
    }

    #[test]
    fn a_handed_over_listener_forwards_until_the_control_connection_closes() {
        // The "container": an echo server on loopback.
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in server.incoming().flatten() {
                let mut r = s.try_clone().unwrap();
                let mut w = s;
                std::thread::spawn(move || std::io::copy(&mut r, &mut w));
            }
        });
        let (_dir, control) = fake_holder();
        let bound = bind(&[b(Some("127.0.0.1"), 0, target.port())]).unwrap();
        let host = bound[0].0.host;
        let keep = hand_over(&control, &bound, Ipv4Addr::LOCALHOST).unwrap();
        drop(bound);
        let mut c = TcpStream::connect(host).unwrap();
        use std::io::Read;
        std::io::Write::write_all(&mut c, b"ping").unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let mut got = String::new();
        c.read_to_string(&mut got).unwrap();
        assert_eq!(got, "ping");
        // Closing the control connection closes the published port.
        drop(keep);
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(host).is_ok() {
            assert!(Instant::now() < deadline, "the port stayed open");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn a_handed_over_udp_socket_forwards_each_clients_datagrams_and_replies() {
        // The "container": a UDP echo server that prefixes what it saw come from where.
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let target = server.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = server.recv_from(&mut buf) {
                let reply = format!("{}:{}", from.port(), String::from_utf8_lossy(&buf[..n]));
                let _ = server.send_to(reply.as_bytes(), from);
            }
        });
        let (_dir, control) = fake_holder();
        let mut binding = b(Some("127.0.0.1"), 0, target.port());
        binding.proto = "udp".into();
        let bound = bind(&[binding]).unwrap();
        let host = bound[0].0.host;
        assert_eq!(
            bound[0].0.to_string(),
            format!("{host}->{}/udp", target.port())
        );
        let keep = hand_over(&control, &bound, Ipv4Addr::LOCALHOST).unwrap();
        drop(bound);
        let ask = |client: &UdpSocket, what: &str| -> String {
            client.send_to(what.as_bytes(), host).unwrap();
            let mut buf = [0u8; 1500];
            let n = client.recv(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        };
        let one = UdpSocket::bind("127.0.0.1:0").unwrap();
        let two = UdpSocket::bind("127.0.0.1:0").unwrap();
        for c in [&one, &two] {
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        }
        let (a, b2, c) = (ask(&one, "a"), ask(&two, "b"), ask(&one, "c"));
        let port_of = |r: &str| r.split_once(':').unwrap().0.to_string();
        assert_eq!(
            (&a[a.len() - 2..], &b2[b2.len() - 2..], &c[c.len() - 2..]),
            (":a", ":b", ":c")
        );
        // Each client has its own way in, kept between datagrams.
        assert_eq!(port_of(&a), port_of(&c));
        assert_ne!(port_of(&a), port_of(&b2));
        // Closing the control connection frees the host port.
        drop(keep);
        let deadline = Instant::now() + Duration::from_secs(5);
        while UdpSocket::bind(host).is_err() {
            assert!(Instant::now() < deadline, "the port stayed bound");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
