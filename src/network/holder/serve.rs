//! The holder process, `burrow __network-holder`: its entry point [`main`], the control
//! socket that takes published ports, and the DNS forwarder of each network.
#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Holder;
use crate::network::dns;

/// The holder's log in `RUN/network`.
pub const HOLDER_LOG: &str = "holder.log";

/// How often the holder looks again for a bridge address to serve DNS on, while a records
/// file waits for one (or always, where inotify is missing).
const SCAN: Duration = Duration::from_millis(20);

/// `burrow __network-holder --upstream-fd N --dir RUN/network`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HolderArgs {
    /// An inherited UDP socket in the host's network namespace, for DNS forwarding.
    pub upstream_fd: Option<RawFd>,
    /// `RUN/network`: the networks' DNS records, the control socket, `holder.log`.
    pub dir: Option<PathBuf>,
}

/// The entry point of `burrow __network-holder`: logs to `dir/holder.log` and serves (see
/// [`serve`]) until it is killed. Returns only when it cannot serve.
pub fn main(args: HolderArgs) -> i32 {
    if let Some(dir) = &args.dir {
        let log = dir.join(HOLDER_LOG);
        // Its stderr is /dev/null: where the log cannot be opened, nothing is said.
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log);
        if let Ok(file) = file {
            crate::network::diagnostics::init(std::sync::Mutex::new(file));
        }
    }
    serve(args.upstream_fd, args.dir.as_deref())
}

/// Forwards the ports the containers' monitors hand it on `dir/holder.sock` (see
/// `ports.rs`), and serves the built-in DNS of each network with a records file
/// `dir/dns/GATEWAY.hosts` on GATEWAY:53 (once the bridge holds that address), forwarding
/// other names through the inherited socket to the host's resolvers. Ends on SIGTERM or
/// SIGKILL; its namespaces stay while containers use them.
fn serve(upstream_fd: Option<RawFd>, dir: Option<&Path>) -> i32 {
    let upstream = upstream_fd.map(|fd| {
        // SAFETY: the starting burrow passed this descriptor, open, for the holder to own.
        let socket = unsafe { UdpSocket::from_raw_fd(fd) };
        let _ = nix::fcntl::fcntl(
            &socket,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        socket
    });
    let (Some(socket), Some(dir)) = (upstream, dir) else {
        // Nothing to serve: only hold the namespaces.
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    };
    let resolvers =
        host_resolvers(&std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
    let upstream = match dns::Upstream::new(socket, resolvers) {
        Ok(u) => u,
        Err(err) => {
            tracing::error!(%err, "cannot start the DNS forwarder");
            return 1;
        }
    };
    crate::network::tcp_relay::allow_many_connections();
    let control = Holder::control(dir);
    let _ = std::fs::remove_file(&control);
    match std::os::unix::net::UnixListener::bind(&control) {
        Ok(listener) => {
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    std::thread::spawn(move || crate::network::ports::serve_control(stream));
                }
            });
        }
        Err(err) => tracing::error!(%err, ?control, "cannot take published ports"),
    }
    let records = dir.join("dns");
    let _ = std::fs::create_dir_all(&records);
    // Woken by new records files; without inotify, it looks every SCAN.
    let mut watch = nix::sys::inotify::Inotify::init(nix::sys::inotify::InitFlags::IN_CLOEXEC)
        .and_then(|i| {
            use nix::sys::inotify::AddWatchFlags as F;
            i.add_watch(&records, F::IN_CREATE | F::IN_MOVED_TO | F::IN_CLOSE_WRITE)?;
            Ok(i)
        })
        .map_err(|err| tracing::warn!(%err, ?records, "looking for DNS records every 20 ms"))
        .ok();
    let mut served: BTreeSet<Ipv4Addr> = BTreeSet::new();
    loop {
        let mut waiting = false;
        for (address, path) in records_files(&records) {
            if served.contains(&address) {
                continue;
            }
            // Fails until a container's plan gave the bridge this address.
            let Ok(socket) = UdpSocket::bind((address, 53)) else {
                waiting = true;
                continue;
            };
            let upstream = upstream.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("dns-{address}"))
                .spawn(move || {
                    if let Err(err) = dns::serve(socket, &path, upstream) {
                        tracing::error!(%err, %address, "the DNS server stops");
                    }
                });
            if spawned.is_ok() {
                served.insert(address);
            } else {
                waiting = true;
            }
        }
        match &watch {
            Some(w) if !waiting => {
                // The directory went (its watch with it): look every SCAN from now on.
                let gone = w.read_events().map_or(true, |events| {
                    events.iter().any(|e| {
                        e.mask
                            .contains(nix::sys::inotify::AddWatchFlags::IN_IGNORED)
                    })
                });
                if gone {
                    watch = None;
                }
            }
            _ => std::thread::sleep(SCAN),
        }
    }
}

/// `GATEWAY.hosts` files in `dir`: (gateway, path).
fn records_files(dir: &Path) -> Vec<(Ipv4Addr, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let address = name.strip_suffix(".hosts")?.parse().ok()?;
            Some((address, e.path()))
        })
        .collect()
}

/// The IPv4 nameservers of a resolv.conf, on port 53 (the forwarding socket is IPv4).
fn host_resolvers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: Ipv4Addr = words.next()?.parse().ok()?;
            Some(SocketAddr::from((ip, 53)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::network::holder::records_path;

    #[test]
    fn resolvers_and_records_files() {
        let conf =
            "# x\nnameserver 10.0.0.53\nnameserver ::1\nsearch a\nnameserver 127.0.0.53 # y\n";
        assert_eq!(
            host_resolvers(conf),
            vec![
                "10.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "127.0.0.53:53".parse().unwrap()
            ]
        );
        let t = tempfile::tempdir().unwrap();
        let gw: Ipv4Addr = "10.89.0.1".parse().unwrap();
        let path = records_path(t.path(), gw);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "web 10.89.0.2\n").unwrap();
        std::fs::write(t.path().join("dns/junk"), "").unwrap();
        assert_eq!(records_files(&t.path().join("dns")), vec![(gw, path)]);
    }
}
