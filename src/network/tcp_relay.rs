//! Copies a TCP connection both ways between two sockets in the kernel (splice(2) through a
//! pipe), for the holder's port forwards (`ports.rs`) and the way out's TCP proxy
//! (`proxy.rs`). `std::io::copy` between two sockets goes through an 8 KiB buffer in user
//! space: a syscall pair per 8 KiB, which held a published port to ~470 MiB/s.

use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};

/// How much one splice moves at most, and the pipe's size asked for (an unprivileged process
/// may grow a pipe up to /proc/sys/fs/pipe-max-size, 1 MiB by default).
const CHUNK: usize = 1 << 20;

/// Copies `a` ⇄ `b` until each side has closed its half (each end-of-file is passed on as a
/// shutdown of the other's writing half). When a side fails (reset, for one), the other is
/// reset too, as a router's connection would be. Returns once both ways are done; one way
/// runs on a thread of its own (if none can be made, the sockets are closed).
pub fn both_ways(a: TcpStream, b: TcpStream) {
    let _ = a.set_nodelay(true);
    let _ = b.set_nodelay(true);
    std::thread::scope(|s| {
        let back = std::thread::Builder::new()
            .name("relay".into())
            .spawn_scoped(s, || one_way(&b, &a));
        if back.is_ok() {
            one_way(&a, &b);
        }
    });
}

/// Raises the soft limit on open files to the hard one (never above it): each connection
/// relayed holds six descriptors (two sockets, two pipes), and the usual soft limit of 1024
/// would stop at some 170 connections.
pub fn allow_many_connections() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE)
        && soft < hard
    {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// Copies `from` → `to` until end-of-file (then shuts `to`'s writing half) or a failure (then
/// resets `to` and stops `from`'s reader, so that the other way ends as well).
fn one_way(from: &TcpStream, to: &TcpStream) {
    let copied = match pipe() {
        Ok((r, w)) => splice_all(from, to, &r, &w),
        Err(_) => copy_all(from, to),
    };
    match copied {
        Ok(()) => {
            let _ = to.shutdown(Shutdown::Write);
        }
        Err(_) => {
            // Closing with a zero linger sends a reset instead of a FIN.
            let _ = socket2::SockRef::from(to).set_linger(Some(Duration::ZERO));
            let _ = to.shutdown(Shutdown::Read);
            let _ = from.shutdown(Shutdown::Read);
        }
    }
}

/// Not SPLICE_F_MORE: towards a socket it is MSG_MORE, which corks what is written until more
/// comes; each small request and each answer waited some 200 ms (100 round trips of 10 bytes
/// took 41.8 s through the relay with it, 20 ms without).
const SPLICE_FLAGS: SpliceFFlags = SpliceFFlags::SPLICE_F_MOVE;

/// A close-on-exec pipe grown to [`CHUNK`] where the system allows.
fn pipe() -> nix::Result<(OwnedFd, OwnedFd)> {
    let (r, w) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
    let _ = fcntl(w.as_fd(), FcntlArg::F_SETPIPE_SZ(CHUNK as i32));
    Ok((r, w))
}

fn splice_all(from: &TcpStream, to: &TcpStream, r: &OwnedFd, w: &OwnedFd) -> io::Result<()> {
    let flags = SPLICE_FLAGS;
    loop {
        let mut pending = match splice(from, None, w, None, CHUNK, flags) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        };
        while pending > 0 {
            match splice(r, None, to, None, pending, flags) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => pending -= n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// The same through a buffer, for a system that cannot make a pipe (out of descriptors).
fn copy_all(mut from: &TcpStream, mut to: &TcpStream) -> io::Result<()> {
    use std::io::{Read, Write};
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A connected pair of sockets over loopback.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        (c, l.accept().unwrap().0)
    }

    #[test]
    fn copies_both_ways_and_passes_each_end_of_file_on() {
        // client ⇄ (a | relay | b) ⇄ server
        let (mut client, a) = pair();
        let (b, mut server) = pair();
        let relay = std::thread::spawn(move || both_ways(a, b));
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = big.clone();
        let writer = std::thread::spawn(move || {
            client.write_all(&sent).unwrap();
            client.shutdown(Shutdown::Write).unwrap();
            let mut answer = String::new();
            client.read_to_string(&mut answer).unwrap();
            answer
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).unwrap();
        assert!(
            got == big,
            "the server got {} bytes, not the same",
            got.len()
        );
        server.write_all(b"thanks").unwrap();
        server.shutdown(Shutdown::Write).unwrap();
        assert_eq!(writer.join().unwrap(), "thanks");
        relay.join().unwrap();
    }

    #[test]
    fn what_is_copied_is_sent_at_once_not_corked() {
        assert!(!SPLICE_FLAGS.contains(SpliceFFlags::SPLICE_F_MORE));
    }

    #[test]
    fn a_reset_on_one_side_resets_the_other() {
        let (client, a) = pair();
        let (b, server) = pair();
        let relay = std::thread::spawn(move || both_ways(a, b));
        socket2::SockRef::from(&server)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(server);
        relay.join().unwrap();
        let mut buf = [0u8; 8];
        let got = (&client).read(&mut buf);
        assert!(
            matches!(&got, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
            "the client saw {got:?}, not a reset"
        );
    }
}
