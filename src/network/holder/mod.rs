//! The per-user network holder: one process per user (`burrow __network-holder`) in its own
//! user namespace (the user's subordinate ids mapped, as in a container) and network
//! namespace, where the bridges of the user's networks live. Containers on those networks
//! join the holder's user namespace (see `runtime::ContainerSpec::userns`), so that a job in
//! that user namespace may move a veth end from the holder's network namespace into the
//! container's. No daemon logic: the holder only keeps the namespaces alive; commands start
//! it on first use and record its pid in `RUN/network/holder.json`.
//!
//! Its network namespace is set up once, when it starts: `lo` up, an nftables ruleset that
//! isolates the bridges from one another (the bridge plans turn on forwarding) and
//! masquerades what leaves (`ruleset.rs`), and a way out (egress, `start_egress.rs`):
//! `burrow __egress` (`network/egress/`), slirp4netns or pasta.
//!
//! Here: the [`Holder`] as commands see it (found, started, stopped); the holder process
//! itself, [`main`] (`serve.rs`); its ruleset; and the start of its way out.

mod ruleset;
mod serve;
mod start_egress;

use std::fs::File;
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::runtime::{IdMapping, JobError, RuntimeError};
pub use ruleset::{bridges_skip_netfilter, open_host_loopback};
pub use serve::{HolderArgs, main};
pub use start_egress::HelperError;

/// The hidden subcommand the holder runs.
pub const HOLDER_COMMAND: &str = "__network-holder";

/// How the holder's namespace reaches the outside (`rootless_network_cmd` in burrow.toml).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Egress {
    /// libslirp in a `burrow __egress` process; slirp4netns when libslirp0 is not installed.
    #[default]
    Libslirp,
    /// The slirp4netns program.
    Slirp4netns,
    /// pasta (the passt package), watched by a `burrow __egress --pasta` process.
    Pasta,
}

#[derive(Debug, thiserror::Error)]
pub enum HolderError {
    /// `what` is the verb: "create", "lock", "write"...
    #[error("cannot {what} {}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// What the holder inherits could not be made (`what`: "make a pipe"...).
    #[error("cannot {what} for the network holder")]
    Make {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the network holder")]
    Start(#[source] RuntimeError),
    #[error("cannot set up the network holder's namespace")]
    Setup(#[source] SetupError),
}

/// Why the holder's namespace got no ruleset or no way out.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The job that loads the ruleset failed (its chain).
    #[error(transparent)]
    Ruleset(JobError),
    /// The job could not run.
    #[error(transparent)]
    Job(RuntimeError),
    #[error(
        "pasta is not installed: install the passt package, or remove rootless_network_cmd = \"pasta\" from burrow.toml"
    )]
    NoPasta,
    #[error("cannot find burrow itself")]
    Exe(#[source] std::io::Error),
    /// The way-out helper (libslirp's `__egress`, slirp4netns, pasta) did not say ready.
    #[error("{helper} did not configure the holder's network")]
    Helper {
        helper: &'static str,
        #[source]
        source: HelperError,
    },
}

/// A running holder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub pid: i32,
    /// Field 22 of /proc/PID/stat, against pid reuse.
    pub start: i64,
}

impl Holder {
    pub fn userns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/user", self.pid))
    }

    /// Where the holder takes published ports (`ports::hand_over`).
    pub fn control(dir: &Path) -> PathBuf {
        dir.join("holder.sock")
    }

    pub fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }

    /// Whether this holder still runs (same pid, same start time, the holder's command).
    pub fn alive(&self) -> bool {
        crate::runtime::proc::is_same_process(self.pid, Some(self.start))
            && std::fs::read(format!("/proc/{}/cmdline", self.pid))
                .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == HOLDER_COMMAND.as_bytes()))
    }

    /// The holder recorded under `dir`, if it still runs.
    pub fn find(dir: &Path) -> Option<Holder> {
        let text = std::fs::read(dir.join("holder.json")).ok()?;
        serde_json::from_slice::<Holder>(&text)
            .ok()
            .filter(Holder::alive)
    }

    /// The running holder, started first if there is none. `dir` is `RUN/network`. Call only
    /// while the process has no other threads (it forks).
    pub fn ensure(dir: &Path, map: &IdMapping, way: Egress) -> Result<Holder, HolderError> {
        let io = |what, path: &Path| {
            let path = path.to_path_buf();
            move |source| HolderError::Io { what, path, source }
        };
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let lock_path = dir.join("holder.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        let lock = OwnedFd::from(lock);
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| io("lock", &lock_path)(e.into()))
            .and_then(|_guard| {
                if let Some(h) = Holder::find(dir) {
                    return Ok(h);
                }
                let h = start(map, dir, way)?;
                let path = dir.join("holder.json");
                let json = serde_json::to_vec(&h).expect("holder serialises");
                crate::fsutil::write_atomic(&path, &json, crate::fsutil::Atomic::UNSYNCED)
                    .map_err(|e| io(e.step, &e.path)(e.source))?;
                Ok(h)
            })
    }

    /// Ends the holder (tests, `system reset`): its namespaces go once no container uses them.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn stop(&self) {
        if self.alive() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(self.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

fn start(map: &IdMapping, dir: &Path, way: Egress) -> Result<Holder, HolderError> {
    let make = |what| move |source| HolderError::Make { what, source };
    let exe = std::env::current_exe().map_err(|source| HolderError::Io {
        what: "find burrow itself at",
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    // Made here, in the host's network namespace: the built-in DNS forwards through it to
    // the host's resolvers, which the holder's namespace cannot reach.
    let upstream = UdpSocket::bind("0.0.0.0:0").map_err(make("make the DNS forwarder's socket"))?;
    // The way out ends when the holder does: the holder keeps the write end of this pipe.
    let (exit_r, exit_w) =
        nix::unistd::pipe().map_err(|e| make("make the way out's exit pipe")(e.into()))?;
    let fd = upstream.as_raw_fd().to_string();
    let dir_arg = dir.display().to_string();
    let args = [HOLDER_COMMAND, "--upstream-fd", &fd, "--dir", &dir_arg];
    let keep = [upstream.as_fd(), exit_w.as_fd()];
    let pid = crate::runtime::start_holder(map, &exe, &args, &keep).map_err(HolderError::Start)?;
    drop((upstream, exit_w));
    let holder = Holder {
        pid,
        start: crate::runtime::proc::process_start_time(pid).unwrap_or_default(),
    };
    let netns = holder.netns();
    let set_up = crate::runtime::in_joined_userns(&holder.userns(), move || {
        ruleset::install_ruleset(&netns)
    });
    let set_up = set_up
        .map_err(|e| match e {
            RuntimeError::Job(job) => SetupError::Ruleset(job),
            e => SetupError::Job(e),
        })
        .and_then(|()| start_egress::egress(&holder, exit_r, dir, way));
    if let Err(e) = set_up {
        holder.stop();
        return Err(HolderError::Setup(e));
    }
    tracing::info!(pid, "network holder started");
    Ok(holder)
}

/// Where the holder serves the DNS of the network whose gateway is `gateway`.
pub fn records_path(dir: &Path, gateway: Ipv4Addr) -> PathBuf {
    dir.join("dns").join(format!("{gateway}.hosts"))
}

/// Waits (at most a second) until the holder answers DNS on `gateway`:53 in the network
/// namespace of the calling thread, so a container's first lookup finds it: binding the
/// address fails once the holder holds it.
pub fn wait_for_dns(gateway: Ipv4Addr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < deadline {
        match UdpSocket::bind((gateway, 53)) {
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => return,
            _ => std::thread::sleep(Duration::from_millis(5)),
        }
    }
    tracing::warn!(%gateway, "the network holder does not answer DNS yet");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_dir_that_cannot_be_made_says_so_with_its_path() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("file"), "").unwrap();
        let dir = t.path().join("file/network");
        let map = IdMapping {
            uids: vec![],
            gids: vec![],
            needs_helpers: false,
        };
        let err = Holder::ensure(&dir, &map, Egress::default()).unwrap_err();
        assert_eq!(
            crate::errors::render_chain(&err),
            format!(
                "cannot create {}: Not a directory (os error 20)",
                dir.display()
            )
        );
    }
}
