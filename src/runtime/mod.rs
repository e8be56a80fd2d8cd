//! The container process: user namespace and id maps, mount namespace and pivot_root,
//! /proc /dev /sys, capabilities, seccomp, no_new_privs, and exec.
//!
//! The engine hands this module a [`ContainerSpec`] (plain data) and an [`IdMapping`];
//! everything between fork and execve happens here.

use std::path::PathBuf;

mod channel;
mod clock;
mod command;
mod container;
mod exec;
mod holder_namespaces;
mod idmap;
mod init;
mod job_error;
mod jobs;
mod loopback;
mod mounts;
#[cfg(test)]
mod namespace_tests;
mod privileges;
pub mod proc;
mod process;
mod procfs;
mod seccomp;
mod sys;
mod tty;
mod user;

pub use clock::utc_offset_secs;
pub use exec::exec;
pub use holder_namespaces::start_holder;
pub use idmap::find_program;
pub use job_error::{JobError, JobErrorKind, JobFailure};
pub use jobs::{in_forked_job, in_joined_userns, in_userns};
pub use process::run_observed;
pub use procfs::{container_processes, namespace_anchor};
pub use tty::{RawMode, Signals, recv_fd, send_fd, terminal_size};

/// One line of a uid_map or gid_map: `container_id host_id size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMap {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

/// How ids inside every user namespace burrow makes map to the host.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMapping {
    pub uids: Vec<IdMap>,
    pub gids: Vec<IdMap>,
    /// True when the maps need newuidmap/newgidmap (subordinate ranges); false when the
    /// process can write them itself (a single id, or root).
    pub needs_helpers: bool,
}

/// How the container's root filesystem is mounted inside its mount namespace.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Rootfs {
    /// Native overlayfs; `lowers` top-most first.
    Overlay {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    /// fuse-overlayfs with the same layout.
    FuseOverlay {
        lowers: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
    },
    /// A ready directory (vfs): bind-mounted as is.
    Dir(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NetworkMode {
    /// A new network namespace with only `lo` (up).
    None,
    /// The host's network namespace (and the host's hostname is kept).
    Host,
    /// A new network namespace that burrow connects to the container's networks (through the
    /// network holder) after it exists and before the command runs.
    Attached,
    /// Another container's network namespace (`--network container:NAME`), at this path;
    /// `ContainerSpec::userns` names the user namespace that owns it.
    Joined(PathBuf),
}

/// Everything needed to start one container process.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ContainerSpec {
    pub id: String,
    pub rootfs: Rootfs,
    /// Where the merged rootfs is mounted before pivot_root (an empty dir the engine owns).
    pub mount_point: PathBuf,
    pub readonly_rootfs: bool,
    /// argv: entrypoint + cmd already merged; args[0] is looked up in the container's PATH.
    pub args: Vec<String>,
    /// KEY=VALUE, already merged (image, then -e / --env-file); includes PATH and HOSTNAME.
    pub env: Vec<String>,
    /// Absolute working directory inside the container; created if missing.
    pub cwd: String,
    /// Docker's `-u` syntax: `user`, `uid`, `user:group`, `uid:gid`; resolved against the
    /// container's /etc/passwd and /etc/group. None = root.
    pub user: Option<String>,
    pub hostname: String,
    pub network: NetworkMode,
    /// Join this user namespace (the network holder's, `/proc/PID/ns/user`) instead of
    /// creating one: the holder's network namespace and the container's are then owned by
    /// the same user namespace, so a veth pair can join them.
    #[serde(default)]
    pub userns: Option<PathBuf>,
    /// Files the engine wrote for this container, bind-mounted over paths inside it
    /// (`/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf`).
    pub etc_files: Vec<(String, PathBuf)>,
    pub tty: bool,
    pub stdin: bool,
    /// `--init`: pid 1 stays burrow code (after the same setup) and runs the command as its
    /// child, forwarding signals to it and reaping zombies (see `init.rs`).
    #[serde(default)]
    pub init: bool,
    /// With `tty`: the terminal's size (rows, columns) when burrow's own stdin is not the
    /// user's terminal (a monitor); None = burrow's terminal's size, else 80x24.
    #[serde(default)]
    pub tty_size: Option<(u16, u16)>,
    /// With `tty`: where the size comes from on SIGWINCH when burrow's stdin is not a
    /// terminal: a file holding "ROWS COLS", written by the attach relay.
    #[serde(default)]
    pub tty_size_file: Option<PathBuf>,
}

/// A process to start inside a running container (`exec`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExecSpec {
    /// argv; args[0] is looked up in the PATH of `env` when it has no '/'.
    pub args: Vec<String>,
    /// KEY=VALUE: the container's environment with `-e` values applied.
    pub env: Vec<String>,
    /// Absolute working directory inside the container; created if missing.
    pub cwd: String,
    /// Docker's `-u` syntax, resolved against the container's /etc/passwd and /etc/group.
    pub user: Option<String>,
    /// A pty from the container's devpts, proxied like `run -t`.
    pub tty: bool,
    pub stdin: bool,
    /// Start it and return at once: its stdio is /dev/null and it is left running. Like
    /// nsenter's, it is orphaned outside the container: the kernel reparents it to the host's
    /// init (or a subreaper above burrow), which reaps it; a `top` still lists it.
    pub detach: bool,
}

/// One process of a container, as `top` shows it (ids and times as the host sees them).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessInfo {
    pub pid: i32,
    pub ppid: i32,
    /// The real uid on the host.
    pub uid: u32,
    /// Field 22 of /proc/PID/stat: clock ticks after boot.
    pub start_time_ticks: u64,
    /// Empty for a zombie or a kernel thread.
    pub cmdline: Vec<String>,
    pub comm: String,
    /// R, S, D, Z, T...
    pub state: char,
    pub rss_kb: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

/// Why starting a container (or a job in a user namespace) failed. The CLI maps
/// `CommandNotFound` to 127, `CannotExecute` to 126 and everything else to 125.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{}", not_found_message(command))]
    CommandNotFound { command: String },
    #[error("exec: \"{command}\": cannot execute")]
    CannotExecute {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("exec: \"{command}\": execve failed")]
    ExecFailed {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UserNotFound { user: String },
    #[error("unable to find group {group}: no matching entries in group file")]
    GroupNotFound { group: String },
    #[error("invalid user {user:?}: {reason}")]
    InvalidUser { user: String, reason: String },
    #[error(
        "user {uid}:{gid} is not mapped in the container's user namespace (only your own id is mapped to root; add subordinate ranges in /etc/subuid and /etc/subgid)"
    )]
    UnmappedUser { uid: u32, gid: u32 },
    #[error("cannot read {path} in the container")]
    ReadUserDb {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A step of the container setup (mount, pivot_root, hostname, capabilities...) failed.
    #[error("container setup failed: cannot {step} {}", path.display())]
    Setup {
        step: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot install the seccomp filter: {reason}")]
    Seccomp { reason: String },
    #[error("rootfs path {} contains ':' or ',' which overlayfs options cannot carry; move the storage to a path without them", path.display())]
    UnsafeOverlayPath { path: PathBuf },
    #[error("cannot read {}", path.display())]
    ReadSubids {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot look up the current user (uid {uid}) in the passwd database")]
    CurrentUser {
        uid: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot run {helper} for pid {pid}; is the uidmap package installed?")]
    HelperSpawn {
        helper: &'static str,
        pid: i32,
        #[source]
        source: std::io::Error,
    },
    #[error("{helper} {pid} failed ({status}): {stderr}; check /etc/subuid and /etc/subgid")]
    HelperFailed {
        helper: &'static str,
        pid: i32,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot write {}", path.display())]
    WriteIdMap {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot {step} while starting the container process")]
    Process {
        step: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the container process (pid {pid}) exited before {stage}")]
    ChildVanished { pid: i32, stage: &'static str },
    #[error("cannot exchange {what} with the child process")]
    Channel {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A job (`jobs.rs`) failed; its chain is inline too, for callers that print `{}`.
    #[error("the job in the user namespace failed: {0}")]
    Job(#[source] JobError),
    #[error("cannot set up the terminal")]
    Terminal {
        #[source]
        source: std::io::Error,
    },
    #[error("container process {pid} is gone (the container is not running)")]
    ContainerGone { pid: i32 },
    #[error("process {pid} is not a container's pid 1: {reason}")]
    NotAContainer { pid: i32, reason: &'static str },
    #[error(
        "cannot open {} of container process {pid} (is the container run by another user?)",
        path.display()
    )]
    Namespace {
        pid: i32,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot join the {kind} namespace of container process {pid}")]
    JoinNamespace {
        pid: i32,
        kind: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A network job failed (`network::connect` and friends); its chain is inline too.
    #[error("cannot connect the container to its network: {0}")]
    Network(#[source] JobError),
    /// A failure in a forked child with no variant of its own on the channel (see
    /// `channel.rs`): its message and causes as they were.
    #[error(transparent)]
    Child(JobError),
    #[error("cannot read {}", path.display())]
    ReadProc {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl RuntimeError {
    /// The exit code the CLI reports for this error (Docker's convention).
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::CommandNotFound { .. } => 127,
            RuntimeError::CannotExecute { .. } => 126,
            _ => 125,
        }
    }
}

/// Docker's wording: a bare name was searched in $PATH, a path was not there.
fn not_found_message(command: &str) -> String {
    if command.contains('/') {
        format!("exec: \"{command}\": stat {command}: no such file or directory")
    } else {
        format!("exec: \"{command}\": executable file not found in $PATH")
    }
}
