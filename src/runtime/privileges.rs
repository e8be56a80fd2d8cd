//! Dropping to the container user with Docker's default capabilities, then no_new_privs.

use caps::{CapSet, Capability, CapsHashSet};
use nix::unistd::{Gid, Uid};

use super::RuntimeError;
use super::user::ExecUser;

/// Docker's default capability set.
pub(crate) const DOCKER_CAPS: &[Capability] = &[
    Capability::CAP_CHOWN,
    Capability::CAP_DAC_OVERRIDE,
    Capability::CAP_FSETID,
    Capability::CAP_FOWNER,
    Capability::CAP_MKNOD,
    Capability::CAP_NET_RAW,
    Capability::CAP_SETGID,
    Capability::CAP_SETUID,
    Capability::CAP_SETFCAP,
    Capability::CAP_SETPCAP,
    Capability::CAP_NET_BIND_SERVICE,
    Capability::CAP_SYS_CHROOT,
    Capability::CAP_KILL,
    Capability::CAP_AUDIT_WRITE,
];

fn setup_err(step: &str) -> impl FnOnce(std::io::Error) -> RuntimeError {
    let step = step.to_string();
    move |source| RuntimeError::Setup {
        step,
        path: "/".into(),
        source,
    }
}

fn caps_err(step: &str) -> impl FnOnce(caps::errors::CapsError) -> RuntimeError {
    let step = step.to_string();
    move |e| RuntimeError::Setup {
        step,
        path: "/".into(),
        source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, e.to_string()),
    }
}

/// Switches to `user` and leaves exactly Docker's capabilities: all of them in the bounding
/// set; permitted and effective for uid 0 only (a non-root user starts with none, as in
/// Docker); inheritable and ambient empty (Docker's behaviour since CVE-2022-24769).
/// Ends with no_new_privs set, so the seccomp filter can follow.
pub(crate) fn drop_to(user: &ExecUser, setgroups_allowed: bool) -> Result<(), RuntimeError> {
    let keep: CapsHashSet = DOCKER_CAPS.iter().copied().collect();
    // The bounding set needs CAP_SETPCAP, which a non-root uid no longer has in effect.
    for cap in caps::runtime::thread_all_supported() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(caps_err("drop a bounding capability"))?;
        }
    }
    nix::sys::prctl::set_keepcaps(true).map_err(|e| setup_err("set keepcaps")(e.into()))?;
    if setgroups_allowed {
        let groups: Vec<Gid> = user.groups.iter().copied().map(Gid::from_raw).collect();
        nix::unistd::setgroups(&groups).map_err(|e| setup_err("setgroups")(e.into()))?;
    } else if user.groups.iter().any(|g| *g != user.gid) {
        tracing::debug!(groups = ?user.groups, "setgroups is denied with a single id map; supplementary groups dropped");
    }
    let (gid, uid) = (Gid::from_raw(user.gid), Uid::from_raw(user.uid));
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| setup_err("setresgid")(e.into()))?;
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| setup_err("setresuid")(e.into()))?;
    nix::sys::prctl::set_keepcaps(false).map_err(|e| setup_err("clear keepcaps")(e.into()))?;
    let granted = if user.uid == 0 {
        keep
    } else {
        CapsHashSet::new()
    };
    // Effective must stay a subset of permitted at every step.
    caps::set(None, CapSet::Effective, &granted).map_err(caps_err("set effective capabilities"))?;
    caps::set(None, CapSet::Permitted, &granted).map_err(caps_err("set permitted capabilities"))?;
    caps::clear(None, CapSet::Inheritable).map_err(caps_err("clear inheritable capabilities"))?;
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(caps_err("clear ambient capabilities"))?;
    }
    nix::sys::prctl::set_no_new_privs().map_err(|e| setup_err("set no_new_privs")(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_set_has_fourteen_distinct_caps_without_sys_admin() {
        let set: CapsHashSet = DOCKER_CAPS.iter().copied().collect();
        assert_eq!(set.len(), 14);
        assert!(!set.contains(&Capability::CAP_SYS_ADMIN));
        assert!(!set.contains(&Capability::CAP_NET_ADMIN));
        // The bitmask /proc/PID/status shows as CapBnd in a Docker container.
        let mask = set.iter().fold(0u64, |m, c| m | c.bitmask());
        assert_eq!(mask, 0x00000000a80425fb);
    }
}
