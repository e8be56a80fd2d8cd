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
//! masquerades what leaves, and libslirp (`slirp.rs`), slirp4netns or pasta (`pasta.rs`) for the
//! way out (egress).
#![allow(unsafe_code)]

use std::collections::BTreeSet;
use std::fs::File;
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::dns;
use crate::runtime::{IdMapping, JobError, RuntimeError, find_program};

/// The hidden subcommand the holder runs.
pub const HOLDER_COMMAND: &str = "__network-holder";
/// The hidden subcommand that carries the holder's traffic out through libslirp, or watches
/// pasta doing it.
pub const EGRESS_COMMAND: &str = "__egress";

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

/// Forwarded traffic between two bridges is dropped: separate networks are isolated, as
/// Docker's DOCKER-ISOLATION chains do. Replies to a port forward that speaks as its client
/// are marked (see [`TRANSPARENT_MARK`]). Traffic inside one bridge is switched, not routed.
/// What leaves through `tap0` (the way out's) is masqueraded to the tap's address, but for
/// TCP, see [`TCP_PROXY_RULES`].
/// The host's loopback (slirp's 10.0.2.2) is closed to every bridge but those in `host_open`
/// (networks made with `-o allow_host_loopback=true`).
const RULESET: &str = r#"table inet burrow {
    set host_open {
        type ifname
    }
    chain forward {
        type filter hook forward priority filter; policy accept;
        iifname @host_open ip daddr 10.0.2.2 accept
        ip daddr 10.0.2.2 drop
        iifname "br-*" oifname "br-*" drop
        iifname "br-*" oifname "burrow0" drop
        iifname "burrow0" oifname "br-*" drop
    }
    chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        oifname "tap0" masquerade
    }
    chain prerouting {
        type filter hook prerouting priority mangle; policy accept;
        socket transparent 1 meta mark set 0x6275 accept
    }
}
"#;

/// New TCP connections bound for `tap0` (but for slirp's own 10.0.2.0/24) go to the way
/// out's transparent TCP proxy (`proxy.rs`): their SYN is marked here (0x6278) and held
/// by [`HOLD_SYNS`] until the proxy's own connect answered, then handed to its listener
/// ([`super::proxy::LISTEN`]), where it listens; where it does not (slirp4netns, pasta),
/// `tproxy` lets them pass. A SYN let through with the proxy's refused or unreachable mark is
/// answered as a router would. Added on its own: a kernel without nftables' tproxy still gets
/// the rest, and TCP goes through slirp.
const TCP_PROXY_RULES: &str = r#"add chain inet burrow hold { type filter hook prerouting priority -310; policy accept; }
add rule inet burrow hold meta l4proto tcp tcp flags & (fin|syn|rst|ack) == syn ip daddr != 10.0.2.0/24 fib daddr oifname "tap0" meta mark set 0x6278
insert rule inet burrow forward meta l4proto tcp meta mark 0x6276 reject with tcp reset
insert rule inet burrow forward meta mark 0x6277 reject with icmpx type host-unreachable
add rule inet burrow prerouting meta l4proto tcp meta mark != { 0x6276, 0x6277 } ip daddr != 10.0.2.0/24 fib daddr oifname "tap0" tproxy ip to 127.0.0.1:1 meta mark set 0x6275 accept
"#;

/// iptables arguments that queue the marked SYNs for the proxy (`--queue-bypass`: they pass
/// unheld while nobody holds the queue). iptables, not nftables: kernels built without
/// nftables' `queue` expression (this one) still have xtables' NFQUEUE.
const HOLD_SYNS: &[&str] = &[
    "-t",
    "raw",
    "-A",
    "PREROUTING",
    "-p",
    "tcp",
    "-m",
    "mark",
    "--mark",
    "0x6278",
    "-j",
    "NFQUEUE",
    "--queue-num",
    "0",
    "--queue-bypass",
];

/// Replies to the holder's port forwards that speak as the client (IP_TRANSPARENT, see
/// `ports.rs`) are addressed to the client, not to the holder: the ruleset marks those that
/// belong to such a socket, and this mark routes them to the holder itself (table
/// [`LOCAL_TABLE`]: everything is local).
const TRANSPARENT_MARK: u32 = 0x6275;
const LOCAL_TABLE: u32 = 100;

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

/// How a way-out helper failed to start (see [`start_helper`]).
#[derive(Debug, thiserror::Error)]
pub enum HelperError {
    #[error("cannot make a pipe")]
    Pipe(#[source] std::io::Error),
    #[error("cannot create {}", path.display())]
    Log {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start {}", program.display())]
    Spawn {
        program: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// It exited without saying ready; `said` is the last line of its log.
    #[error("{status}: {said}")]
    Exited {
        status: std::process::ExitStatus,
        said: String,
    },
    /// It did not say ready in time (and was killed).
    #[error("{said}")]
    NoAnswer { said: String },
}

impl HelperError {
    /// The helper's exit code, when it exited.
    fn code(&self) -> Option<i32> {
        match self {
            HelperError::Exited { status, .. } => status.code(),
            _ => None,
        }
    }
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
                let h = start(map, dir, way)?;
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

fn start(map: &IdMapping, dir: &Path, way: Egress) -> Result<Holder, HolderError> {
    let exe = std::env::current_exe().map_err(|source| HolderError::Io {
        path: PathBuf::from("/proc/self/exe"),
        source,
    })?;
    // Made here, in the host's network namespace: the built-in DNS forwards through it to
    // the host's resolvers, which the holder's namespace cannot reach.
    let upstream = UdpSocket::bind("0.0.0.0:0").map_err(|source| HolderError::Io {
        path: PathBuf::from("udp socket"),
        source,
    })?;
    // The way out ends when the holder does: the holder keeps the write end of this pipe.
    let (exit_r, exit_w) = nix::unistd::pipe().map_err(|e| HolderError::Io {
        path: PathBuf::from("pipe"),
        source: e.into(),
    })?;
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
    let set_up =
        crate::runtime::in_joined_userns(&holder.userns(), move || install_ruleset(&netns));
    let set_up = set_up
        .map_err(|e| match e {
            RuntimeError::Job(job) => SetupError::Ruleset(job),
            e => SetupError::Job(e),
        })
        .and_then(|()| egress(&holder, exit_r, dir, way));
    if let Err(e) = set_up {
        holder.stop();
        return Err(HolderError::Setup(e));
    }
    tracing::info!(pid, "network holder started");
    Ok(holder)
}

/// How long the way-out helper gets to configure the holder's `tap0`.
const SLIRP_READY: Duration = Duration::from_secs(10);

/// Gives the holder's namespace a way out: `tap0` (10.0.2.100/24, default route via
/// 10.0.2.2, which leads to the host's loopback: the ruleset closes it but to the networks
/// that open it), whose traffic a helper carries through ordinary sockets of the user's in
/// the host's network namespace. The helper is `burrow __egress` (libslirp, in-process) by
/// default, slirp4netns or pasta when configured (slirp4netns also when libslirp0 is not
/// installed); without any the networks work among themselves, with no way out (warned).
/// The helper ends when `exit` reads end-of-file, that is when the holder is gone; its
/// messages go to `dir/slirp.log`, `dir/slirp4netns.log` or `dir/pasta.log`.
fn egress(holder: &Holder, exit: OwnedFd, dir: &Path, way: Egress) -> Result<(), SetupError> {
    let exit_fd = exit.as_raw_fd().to_string();
    let pid = holder.pid.to_string();
    let exe = || std::env::current_exe().map_err(SetupError::Exe);
    let failed = |helper| move |source| SetupError::Helper { helper, source };
    let egress_args = |ready: &str, more: &[String]| -> Vec<String> {
        let args = ["--holder", &pid, "--exit-fd", &exit_fd, "--ready-fd", ready];
        std::iter::once(EGRESS_COMMAND)
            .chain(args)
            .map(String::from)
            .chain(more.iter().cloned())
            .collect()
    };
    match way {
        Egress::Pasta => {
            let pasta = find_program("pasta").ok_or(SetupError::NoPasta)?;
            let more = [
                "--pasta".to_string(),
                pasta.display().to_string(),
                "--pid-file".to_string(),
                dir.join("pasta.pid").display().to_string(),
            ];
            return start_helper(&exe()?, &exit, &dir.join("pasta.log"), |ready| {
                egress_args(ready, &more)
            })
            .map_err(failed("pasta"));
        }
        Egress::Libslirp => {
            let started = start_helper(&exe()?, &exit, &dir.join("slirp.log"), |ready| {
                egress_args(ready, &[])
            });
            match started {
                Ok(()) => return Ok(()),
                Err(e) if e.code() == Some(super::slirp::NO_LIBRARY) => {
                    tracing::info!(
                        "libslirp0 is not installed: the network holder uses slirp4netns"
                    )
                }
                Err(e) => return Err(failed("libslirp")(e)),
            }
        }
        Egress::Slirp4netns => {}
    }
    let Some(slirp4netns) = find_program("slirp4netns") else {
        tracing::warn!(
            "neither libslirp0 nor slirp4netns is installed: containers on bridge networks reach each other but not the outside (install libslirp0 or slirp4netns)"
        );
        return Ok(());
    };
    let (userns, netns) = (holder.userns(), holder.netns());
    start_helper(&slirp4netns, &exit, &dir.join("slirp4netns.log"), |ready| {
        vec![
            "--configure".into(),
            "--mtu=65520".into(),
            "--enable-seccomp".into(),
            format!("--exit-fd={exit_fd}"),
            format!("--ready-fd={ready}"),
            format!("--userns-path={}", userns.display()),
            "--netns-type=path".into(),
            netns.display().to_string(),
            super::slirp::TAP.into(),
        ]
    })
    .map_err(failed("slirp4netns"))
}

/// Starts `program` in its own session with `args(ready fd)`, `exit` and a ready pipe
/// inherited, stderr to `log`, and waits up to [`SLIRP_READY`] for it to write `1` there.
/// On failure it is killed; the error is its exit status (if it exited) and what it said last.
fn start_helper(
    program: &Path,
    exit: &OwnedFd,
    log: &Path,
    args: impl FnOnce(&str) -> Vec<String>,
) -> Result<(), HelperError> {
    let (ready_r, ready_w) = nix::unistd::pipe().map_err(|e| HelperError::Pipe(e.into()))?;
    let log_file = File::create(log).map_err(|source| HelperError::Log {
        path: log.to_path_buf(),
        source,
    })?;
    let mut cmd = std::process::Command::new(program);
    cmd.args(args(&ready_w.as_raw_fd().to_string()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log_file);
    let (exit_fd, ready_fd) = (exit.as_raw_fd(), ready_w.as_raw_fd());
    // SAFETY: the closure only calls async-signal-safe functions (setsid, fcntl).
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut cmd, move || {
            nix::unistd::setsid()?;
            for fd in [exit_fd, ready_fd] {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|source| HelperError::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    drop(ready_w);
    // No thread: the caller forks next.
    let mut fds = [nix::poll::PollFd::new(
        ready_r.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let timeout =
        nix::poll::PollTimeout::try_from(SLIRP_READY).unwrap_or(nix::poll::PollTimeout::MAX);
    let mut byte = [0u8; 1];
    let answered = matches!(nix::poll::poll(&mut fds, timeout), Ok(1));
    if answered && matches!(nix::unistd::read(&ready_r, &mut byte), Ok(1)) && byte[0] == b'1' {
        return Ok(());
    }
    // A helper that closed the pipe without `1` is exiting: its exit code says why (libslirp's
    // NO_LIBRARY asks for the fallback), so it is not killed before it had the moment to exit.
    let mut status = None;
    if answered {
        for _ in 0..200 {
            status = child.try_wait().ok().flatten();
            if status.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    if status.is_none() {
        let _ = child.kill();
        status = child.wait().ok();
    }
    let said = std::fs::read_to_string(log).unwrap_or_default();
    let said = said.lines().last().unwrap_or("no message").to_string();
    Err(match status {
        Some(status) => HelperError::Exited { status, said },
        None => HelperError::NoAnswer { said },
    })
}

/// Loads the isolation ruleset with `nft` from a thread in the holder's network namespace.
fn install_ruleset(netns: &Path) -> std::io::Result<()> {
    let ns = File::open(netns)?;
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)?;
            bridges_skip_netfilter();
            nft(RULESET)?;
            match nft(TCP_PROXY_RULES) {
                Ok(()) => {
                    if let Err(err) = iptables(HOLD_SYNS) {
                        tracing::warn!(%err, "SYNs to the outside are not held: a refused connect looks like a reset");
                    }
                }
                Err(err) => tracing::warn!(%err, "TCP leaves through slirp: no transparent proxy"),
            }
            super::executor::deliver_marked_locally(TRANSPARENT_MARK, LOCAL_TABLE)
        })
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("the nft thread panicked")))
    })
}

/// Opens the host's loopback to the containers on `bridge` (in the calling thread's network
/// namespace, the holder's).
pub fn open_host_loopback(bridge: &str) -> std::io::Result<()> {
    nft(&format!(
        "add element inet burrow host_open {{ \"{bridge}\" }}\n"
    ))
}

/// Runs `nft -f -` on `script` (in the calling thread's network namespace).
fn nft(script: &str) -> std::io::Result<()> {
    let nft = find_program("nft").ok_or_else(|| {
        std::io::Error::other(
            "nft (nftables) is not installed; install the nftables package: burrow uses it to keep networks apart",
        )
    })?;
    run_tool(&nft, "nft -f", &["-f", "-"], script)
}

/// Runs iptables (its nftables flavour where both are installed: the legacy one wants
/// /run/xtables.lock, which the holder's user namespace cannot open) with `args`, in the
/// calling thread's network namespace.
fn iptables(args: &[&str]) -> std::io::Result<()> {
    let program = find_program("iptables-nft")
        .or_else(|| find_program("iptables"))
        .ok_or_else(|| std::io::Error::other("iptables is not installed"))?;
    run_tool(&program, "iptables", args, "")
}

/// Runs `program` with `args` and `input` on its stdin; its failure says `name`, its exit
/// status and what it said on stderr.
fn run_tool(program: &Path, name: &str, args: &[&str], input: &str) -> std::io::Result<()> {
    let mut child = std::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!(
            "{name} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
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

/// How often the holder looks again for a bridge address to serve DNS on, while a records
/// file waits for one (or always, where inotify is missing).
const SCAN: Duration = Duration::from_millis(20);

/// `burrow __network-holder --upstream-fd N --dir RUN/network`: forwards the ports the
/// containers' monitors hand it on `dir/holder.sock` (see `ports.rs`), and serves the built-in DNS of
/// each network with a records file `dir/dns/GATEWAY.hosts` on GATEWAY:53 (once the bridge
/// holds that address), forwarding other names through the inherited socket to the host's
/// resolvers. Ends on SIGTERM or SIGKILL; its namespaces stay while containers use them.
pub fn serve(upstream_fd: Option<i32>, dir: Option<&Path>) -> i32 {
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
            eprintln!("burrow network holder: cannot start the DNS forwarder: {err}");
            return 1;
        }
    };
    super::tcp_relay::allow_many_connections();
    let control = Holder::control(dir);
    let _ = std::fs::remove_file(&control);
    match std::os::unix::net::UnixListener::bind(&control) {
        Ok(listener) => {
            std::thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    std::thread::spawn(move || super::ports::serve_control(stream));
                }
            });
        }
        Err(err) => eprintln!(
            "burrow network holder: cannot listen on {}: {err}",
            control.display()
        ),
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
        .map_err(|err| {
            eprintln!(
                "burrow network holder: cannot watch {}: {err}",
                records.display()
            )
        })
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
                .spawn(move || dns::serve(socket, &path, upstream));
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
    fn the_ruleset_hands_tcp_to_where_the_proxy_listens() {
        use super::super::proxy;
        const SYN_MARK: u32 = 0x6278;
        for rule in [
            format!("meta mark set {SYN_MARK:#x}\n"),
            format!("tproxy ip to {} ", proxy::LISTEN),
            format!("meta mark {:#x} reject with tcp reset", proxy::REFUSED_MARK),
            format!("meta mark {:#x} reject with icmpx", proxy::UNREACHABLE_MARK),
            format!(
                "meta mark != {{ {:#x}, {:#x} }}",
                proxy::REFUSED_MARK,
                proxy::UNREACHABLE_MARK
            ),
        ] {
            assert!(
                TCP_PROXY_RULES.contains(&rule),
                "no {rule:?} in {TCP_PROXY_RULES}"
            );
        }
        let held = HOLD_SYNS.join(" ");
        for want in [
            format!("--mark {SYN_MARK:#x} "),
            format!("--queue-num {} --queue-bypass", proxy::QUEUE),
        ] {
            assert!(held.contains(&want), "no {want:?} in {held}");
        }
    }

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
