//! The tap and the TCP proxy's ends, made in the holder's namespaces by a job and passed
//! to `burrow __egress` (which runs in the host's network namespace).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;

use super::slirp::{GATEWAY, GUEST, MTU, TAP, open_tap};
use crate::network::NetworkError;

/// Makes `tap0` in the holder's network namespace, from a job in its user namespace: the
/// device (MTU [`MTU`]), its address 10.0.2.100/24, up, and the default route through it
/// via the gateway; and the TCP proxy's transparent listener and SYN queue (`proxy.rs`). The
/// job passes the descriptors back over a socket pair; the proxy's are None where they could
/// not be made (without a listener TCP goes through libslirp too).
pub(super) fn holder_ends(holder: i32) -> Result<HolderEnds, HolderEndsError> {
    use crate::plugin::{Addr, Op, Plan, Route, Side};
    let (ours, theirs) =
        std::os::unix::net::UnixStream::pair().map_err(HolderEndsError::SocketPair)?;
    let userns = PathBuf::from(format!("/proc/{holder}/ns/user"));
    let netns = PathBuf::from(format!("/proc/{holder}/ns/net"));
    crate::runtime::in_joined_userns(&userns, move || {
        let ns = File::open(&netns).map_err(|source| NetworkError::Open {
            path: netns.clone(),
            source,
        })?;
        let tap = crate::network::executor::in_netns(ns.as_fd(), || open_tap(TAP, MTU))
            .map_err(TapError::Create)?;
        // The holder's namespace is the guest of this link: its side of the plan.
        let guest = |ifname: &str| (Side::Container, ifname.to_string());
        let plan = Plan {
            ops: vec![
                Op::AddAddr(Addr {
                    side: Side::Container,
                    ifname: TAP.into(),
                    cidr: GUEST.into(),
                }),
                Op::LinkUp(guest(TAP)),
                Op::AddRoute(Route {
                    side: Side::Container,
                    dst: "default".into(),
                    via: Some(GATEWAY.to_string()),
                    ifname: Some(TAP.into()),
                    metric: None,
                }),
            ],
            ifaces: vec![],
            dns_servers: vec![],
            search: vec![],
        };
        crate::network::executor::apply(
            "slirp",
            &plan,
            &Default::default(),
            ns.as_fd(),
            ns.as_fd(),
        )
        .map_err(NetworkError::Plan)?;
        let pass = |what| move |source| TapError::Pass { what, source };
        crate::runtime::send_fd(theirs.as_fd(), tap.as_fd()).map_err(pass("the tap"))?;
        // Each of the proxy's ends, or a byte without one: it goes without.
        let send = |made: std::io::Result<OwnedFd>, what: &str| match made {
            Ok(fd) => crate::runtime::send_fd(theirs.as_fd(), fd.as_fd()),
            Err(err) => {
                tracing::warn!(%err, "no {what}");
                (&theirs).write_all(b"n")
            }
        };
        let listener = crate::network::executor::in_netns(ns.as_fd(), || {
            super::proxy::listen().map(OwnedFd::from)
        });
        let held = listener.is_ok();
        send(listener, "TCP proxy listener (TCP goes through libslirp)")
            .map_err(pass("the TCP proxy's listener"))?;
        let queue = if held {
            // A duplicate goes on to __egress; the job's own closes with the job.
            crate::network::executor::in_netns(ns.as_fd(), || {
                super::nfqueue::Queue::bind(super::proxy::QUEUE)
                    .and_then(|q| q.as_fd().try_clone_to_owned())
            })
        } else {
            Err(std::io::Error::other("no listener"))
        };
        send(
            queue,
            "SYN queue (the proxy connects after the container's handshake)",
        )
        .map_err(pass("the SYN queue"))
    })
    .map_err(HolderEndsError::Job)?;
    let receive = |what| move |source| HolderEndsError::Receive { what, source };
    let tap = crate::runtime::recv_fd(ours.as_fd())
        .map_err(receive("the tap"))?
        .ok_or(HolderEndsError::NoTap)?;
    let listener =
        crate::runtime::recv_fd(ours.as_fd()).map_err(receive("the TCP proxy's listener"))?;
    let queue = crate::runtime::recv_fd(ours.as_fd()).map_err(receive("the SYN queue"))?;
    Ok(HolderEnds {
        tap,
        listener,
        queue,
    })
}

/// What the job that makes `tap0` in the holder's namespace fails with (in its child).
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("cannot create the tap device")]
    Create(#[source] io::Error),
    #[error("cannot pass {what} to burrow __egress")]
    Pass {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

impl crate::runtime::JobFailure for TapError {}

/// Why `__egress` got no tap (or no proxy ends) from the holder's namespace.
#[derive(Debug, thiserror::Error)]
pub enum HolderEndsError {
    #[error("cannot make a socket pair")]
    SocketPair(#[source] io::Error),
    /// The job failed (its chain), or could not run.
    #[error(transparent)]
    Job(crate::runtime::RuntimeError),
    #[error("cannot receive {what} from the job")]
    Receive {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("the job sent no tap")]
    NoTap,
}

/// What `__egress` gets from the holder's namespace: the tap, and the TCP proxy's listener
/// and SYN queue where they could be made.
pub(super) struct HolderEnds {
    pub tap: OwnedFd,
    pub listener: Option<OwnedFd>,
    pub queue: Option<OwnedFd>,
}
