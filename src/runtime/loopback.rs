//! Bringing up `lo` in the container's fresh network namespace (a plain ioctl; no netlink).
#![allow(unsafe_code)]

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::RuntimeError;

fn setup_err(step: &str) -> RuntimeError {
    RuntimeError::Setup {
        step: step.to_string(),
        path: "lo".into(),
        source: std::io::Error::last_os_error(),
    }
}

pub(crate) fn loopback_up() -> Result<(), RuntimeError> {
    // SAFETY: socket(2) takes no pointers; the result is checked before it is owned.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(setup_err("open a socket to configure"));
    }
    // SAFETY: raw is a fresh, valid descriptor nobody else owns.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags inside `req`, which lives for
    // the whole call.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(setup_err("read the flags of"));
    }
    // SAFETY: the kernel filled ifru_flags above; the union field is the one in use.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS only reads `req`.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(setup_err("bring up"));
    }
    Ok(())
}
