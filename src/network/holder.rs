//! The per-user network holder: one process per user (`burrow __network-holder`) in its own
//! user namespace (the user's subordinate ids mapped, as in a container) and network
//! namespace, where the bridges of the user's networks live. Containers on those networks
//! join the holder's user namespace (see `runtime::ContainerSpec::userns`), so that a job in
//! that user namespace may move a veth end from the holder's network namespace into the
//! container's. No daemon logic: the holder only keeps the namespaces alive; commands start
//! it on first use and record its pid in `RUN/network/holder.json`.
//!
//! Its network namespace is set up once, when it starts: `lo` up, and an nftables ruleset
//! that isolates the bridges from one another (the bridge plans turn on forwarding).

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::runtime::{IdMapping, RuntimeError};

/// The hidden subcommand the holder runs.
pub const HOLDER_COMMAND: &str = "__network-holder";

/// Forwarded traffic between two bridges is dropped: separate networks are isolated, as
/// Docker's DOCKER-ISOLATION chains do. Traffic inside one bridge is switched, not routed.
const RULESET: &str = r#"table inet burrow {
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname "br-*" oifname "br-*" drop
        iifname "br-*" oifname "burrow0" drop
        iifname "burrow0" oifname "br-*" drop
    }
}
"#;

#[derive(Debug, thiserror::Error)]
pub enum HolderError {
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the network holder")]
    Start(#[source] RuntimeError),
    #[error("cannot set up the network holder's namespace: {0}")]
    Setup(String),
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

    pub fn netns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/net", self.pid))
    }

    /// Whether this holder still runs (same pid, same start time, the holder's command).
    pub fn alive(&self) -> bool {
        crate::monitor::is_same_process(self.pid, Some(self.start))
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
    pub fn ensure(dir: &Path, map: &IdMapping) -> Result<Holder, HolderError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| HolderError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let lock_path = dir.join("holder.lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io(&lock_path))?;
        let lock = OwnedFd::from(lock);
        nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| io(&lock_path)(e.into()))
            .and_then(|_guard| {
                if let Some(h) = Holder::find(dir) {
                    return Ok(h);
                }
                let h = start(map)?;
                let path = dir.join("holder.json");
                let tmp = dir.join("holder.json.tmp");
                let mut f = File::create(&tmp).map_err(io(&tmp))?;
                f.write_all(&serde_json::to_vec(&h).expect("holder serialises"))
                    .map_err(io(&tmp))?;
                std::fs::rename(&tmp, &path).map_err(io(&path))?;
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

fn start(map: &IdMapping) -> Result<Holder, HolderError> {
    let exe = std::env::current_exe().map_err(|source| HolderError::Io {
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    let pid =
        crate::runtime::start_holder(map, &exe, &[HOLDER_COMMAND]).map_err(HolderError::Start)?;
    let holder = Holder {
        pid,
        start: crate::monitor::process_start_time(pid).unwrap_or_default(),
    };
    let netns = holder.netns();
    let set_up = crate::runtime::in_joined_userns(&holder.userns(), move || {
        install_ruleset(&netns).map_err(|e| e.to_string())
    });
    if let Err(e) = set_up {
        holder.stop();
        return Err(HolderError::Setup(match e {
            RuntimeError::Job { message } => message,
            e => e.to_string(),
        }));
    }
    tracing::info!(pid, "network holder started");
    Ok(holder)
}

/// Loads the isolation ruleset with `nft` from a thread in the holder's network namespace.
fn install_ruleset(netns: &Path) -> std::io::Result<()> {
    let ns = File::open(netns)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            bridges_skip_netfilter();
            let mut child = std::process::Command::new(find_nft().ok_or_else(|| {
                std::io::Error::other(
                    "nft (nftables) is not installed; install the nftables package: burrow uses it to keep networks apart",
                )
            })?)
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()?;
            child
                .stdin
                .take()
                .expect("piped")
                .write_all(RULESET.as_bytes())?;
            let out = child.wait_with_output()?;
            if out.status.success() {
                Ok(())
            } else {
                Err(std::io::Error::other(format!(
                    "nft -f failed ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )))
            }
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the nft thread panicked")))
    })
}

/// With br_netfilter loaded (Docker loads it), switched traffic inside a bridge also passes
/// the IP forward hook, as from the bridge to itself, and the isolation rules would drop it:
/// switch that off in the current thread's network namespace (the sysctls are per
/// namespace; they appear in it when the module loads, so every connect repeats this).
pub fn bridges_skip_netfilter() {
    for key in ["iptables", "ip6tables", "arptables"] {
        let path = format!("/proc/sys/net/bridge/bridge-nf-call-{key}");
        if Path::new(&path).exists() {
            if let Err(err) = std::fs::write(&path, "0") {
                tracing::warn!(%err, path, "cannot keep bridged traffic out of netfilter");
            }
        }
    }
}

fn find_nft() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    path.split(':')
        .filter(|d| !d.is_empty())
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"])
        .map(|d| Path::new(d).join("nft"))
        .find(|p| p.is_file())
}

/// `burrow __network-holder`: waits for SIGTERM (or SIGINT) and exits; everything else it
/// holds is its namespaces.
pub fn serve() -> i32 {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        set.add(s);
    }
    let _ = set.thread_block();
    loop {
        match set.wait() {
            Ok(Signal::SIGHUP) => continue,
            _ => return 0,
        }
    }
}
