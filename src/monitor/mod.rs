//! The per-container processes and their rules. Each is burrow itself, re-executed with a
//! hidden subcommand:
//! - the **monitor** (`burrow __monitor ID`, in its own session): [`supervisor`] runs the
//!   container, restarts it as its policy says with Docker's increasing delay, and tells the
//!   starting command how the start went. It holds the container's lock file for as long as
//!   it watches the container, so every other command can tell a watched container from one
//!   whose monitor died, without trusting a pid;
//! - the **stdio relay** (`burrow __relay ID`): [`stdio`] carries the container's output to
//!   its log driver ([`logpipe`]) and to attached clients, and their input back;
//! - the **health prober** (`burrow __health ID`): [`prober`] runs the healthcheck with
//!   Docker's rules ([`health`]).
//!
//! What these need of the engine (recording the container, running it, probing it) they
//! reach through narrow traits the engine implements ([`supervisor::Supervised`],
//! [`prober::Probed`]) or data it hands them ([`stdio::Setup`]): this module never calls
//! up into the engine.

pub mod health;
pub mod logpipe;
pub mod prober;
pub mod stdio;
pub mod supervisor;

use std::io::{BufRead, BufReader, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    #[error(
        "invalid restart policy {0:?}: use no, on-failure[:max-retries], always or unless-stopped"
    )]
    Invalid(String),
}

/// `--restart`: Docker's four policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(tag = "name", rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    OnFailure {
        /// 0 means no limit.
        max_retries: u32,
    },
    Always,
    UnlessStopped,
}

impl std::str::FromStr for RestartPolicy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, PolicyError> {
        let bad = || PolicyError::Invalid(s.to_string());
        match s.split_once(':') {
            None => match s {
                "" | "no" => Ok(RestartPolicy::No),
                "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: 0 }),
                "always" => Ok(RestartPolicy::Always),
                "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
                _ => Err(bad()),
            },
            Some(("on-failure", n)) => Ok(RestartPolicy::OnFailure {
                max_retries: n.parse().map_err(|_| bad())?,
            }),
            Some(_) => Err(bad()),
        }
    }
}

impl RestartPolicy {
    /// Docker's name for inspect's HostConfig.RestartPolicy.Name.
    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }

    pub fn max_retries(&self) -> u32 {
        match self {
            RestartPolicy::OnFailure { max_retries } => *max_retries,
            _ => 0,
        }
    }

    /// Whether a container that exited with `code` comes back, after `restarts` restarts
    /// so far. A stop the user asked for is never undone.
    pub fn should_restart(&self, code: i32, restarts: u32, stop_requested: bool) -> bool {
        if stop_requested {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max_retries } => {
                code != 0 && (*max_retries == 0 || restarts < *max_retries)
            }
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }

    /// Whether `system restore` (after a reboot) starts the container again.
    pub fn restores(&self, stop_requested: bool) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::UnlessStopped => !stop_requested,
            _ => false,
        }
    }
}

/// Docker's restart delay: 100 ms, doubled after each restart, at most a minute; back to
/// 100 ms once the container ran for 10 s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    delay: Duration,
}

const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(60);
const RESET_AFTER: Duration = Duration::from_secs(10);

impl Default for Backoff {
    fn default() -> Self {
        Backoff { delay: FIRST_DELAY }
    }
}

impl Backoff {
    /// The delay before the next start, given how long the last run lasted.
    pub fn next(&mut self, ran_for: Duration) -> Duration {
        if ran_for >= RESET_AFTER {
            self.delay = FIRST_DELAY;
        }
        let now = self.delay;
        self.delay = (self.delay * 2).min(MAX_DELAY);
        now
    }
}

/// Docker's signal names: `SIGTERM`, `TERM`, `term` or a number.
pub fn parse_signal(s: &str) -> Option<nix::sys::signal::Signal> {
    use std::str::FromStr;
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).ok();
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name).ok()
}

/// What the monitor tells the command that started it, once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ready {
    Started { pid: i32 },
    Failed { code: i32, message: String },
}

pub fn send_ready(to: &mut impl Write, msg: &Ready) -> std::io::Result<()> {
    let mut line = serde_json::to_string(msg).expect("ready message serialises");
    line.push('\n');
    to.write_all(line.as_bytes())?;
    to.flush()
}

/// Reads the monitor's message; None when it died before saying anything.
pub fn recv_ready(from: impl std::io::Read) -> Option<Ready> {
    let mut line = String::new();
    BufReader::new(from).read_line(&mut line).ok()?;
    serde_json::from_str(line.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_parse_like_docker() {
        assert_eq!("no".parse(), Ok(RestartPolicy::No));
        assert_eq!(
            "on-failure:3".parse(),
            Ok(RestartPolicy::OnFailure { max_retries: 3 })
        );
        assert_eq!(
            "on-failure".parse(),
            Ok(RestartPolicy::OnFailure { max_retries: 0 })
        );
        assert_eq!("always".parse(), Ok(RestartPolicy::Always));
        assert_eq!("unless-stopped".parse(), Ok(RestartPolicy::UnlessStopped));
        assert!("sometimes".parse::<RestartPolicy>().is_err());
        assert!("on-failure:x".parse::<RestartPolicy>().is_err());
        assert!("always:2".parse::<RestartPolicy>().is_err());
    }

    #[test]
    fn restart_decisions() {
        let on3 = RestartPolicy::OnFailure { max_retries: 3 };
        assert!(on3.should_restart(1, 0, false));
        assert!(on3.should_restart(1, 2, false));
        assert!(!on3.should_restart(1, 3, false), "max retries reached");
        assert!(!on3.should_restart(0, 0, false), "success is not a failure");
        assert!(RestartPolicy::Always.should_restart(0, 100, false));
        assert!(
            !RestartPolicy::Always.should_restart(1, 0, true),
            "stop wins"
        );
        assert!(!RestartPolicy::No.should_restart(1, 0, false));
        assert!(RestartPolicy::UnlessStopped.restores(false));
        assert!(!RestartPolicy::UnlessStopped.restores(true));
        assert!(RestartPolicy::Always.restores(true));
    }

    #[test]
    fn backoff_doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let short = Duration::from_secs(1);
        assert_eq!(b.next(short), Duration::from_millis(100));
        assert_eq!(b.next(short), Duration::from_millis(200));
        assert_eq!(b.next(short), Duration::from_millis(400));
        for _ in 0..20 {
            b.next(short);
        }
        assert_eq!(b.next(short), Duration::from_secs(60));
        assert_eq!(b.next(Duration::from_secs(11)), Duration::from_millis(100));
    }

    #[test]
    fn signals_parse_like_docker() {
        use nix::sys::signal::Signal;
        assert_eq!(parse_signal("SIGTERM"), Some(Signal::SIGTERM));
        assert_eq!(parse_signal("kill"), Some(Signal::SIGKILL));
        assert_eq!(parse_signal("10"), Some(Signal::SIGUSR1));
        assert_eq!(parse_signal("SIGNOPE"), None);
        assert_eq!(parse_signal("99"), None);
    }

    #[test]
    fn ready_messages_round_trip() {
        let mut buf = Vec::new();
        send_ready(&mut buf, &Ready::Started { pid: 42 }).unwrap();
        assert_eq!(recv_ready(&buf[..]), Some(Ready::Started { pid: 42 }));
        assert_eq!(recv_ready(&b""[..]), None);
    }
}
