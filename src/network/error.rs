//! [`NetworkError`]: what the network jobs (connect, disconnect, a bridge's removal) fail
//! with, in the child that runs them; it crosses to burrow as a `runtime::JobError` that
//! keeps its chain.

use std::path::PathBuf;

use super::executor::NetError;
use crate::plugin::PluginError;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// A namespace file (`/proc/PID/ns/net`) could not be opened.
    #[error("cannot open {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot enter the holder's network namespace")]
    EnterHolder(#[source] std::io::Error),
    /// Looking for a macvlan's parent interface in burrow's own network namespace failed.
    #[error("cannot look for the interface {name}")]
    LookForInterface {
        name: String,
        #[source]
        source: std::io::Error,
    },
    /// The plugin host or the network driver could not be loaded.
    #[error(transparent)]
    Plugin(PluginError),
    /// The driver failed to compute its plan. Only its own message is said: a trap's cause
    /// is a wasm backtrace of many lines, and the error is one line.
    #[error("{0}")]
    DriverSetup(PluginError),
    /// The executor refused the plan or failed to carry it out (it undid what it did).
    #[error(transparent)]
    Plan(NetError),
    #[error("cannot open the host's loopback to the network")]
    HostLoopback {
        bridges: Vec<String>,
        #[source]
        source: std::io::Error,
    },
    /// `what` is "the container's" (an interface) or "the bridge".
    #[error("cannot remove {what} {name}")]
    RemoveLink {
        what: &'static str,
        name: String,
        #[source]
        source: std::io::Error,
    },
}

impl crate::runtime::JobFailure for NetworkError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::{Op, Plan, Side};
    use std::io::Write;

    use crate::runtime::{JobError, RuntimeError};

    /// What the CLI prints for an error.
    fn rendered(err: &dyn std::error::Error) -> String {
        crate::errors::render_chain(err)
    }

    /// A job's error as burrow gets it: sent by the child, read back, and made a network
    /// error as `network_job` does.
    fn across_the_pipe(in_child: NetworkError) -> RuntimeError {
        let (r, w) = std::io::pipe().unwrap();
        let body = serde_json::to_vec(&JobError::from(in_child)).unwrap();
        (&w).write_all(&body).unwrap();
        drop(w);
        let job: JobError = serde_json::from_reader(r).unwrap();
        super::super::job_failed(RuntimeError::Job(job))
    }

    /// A plan that names a host interface burrow does not own (tests/network.rs, the
    /// "escape" driver), refused deep in the executor, in the job's child.
    fn refused() -> NetworkError {
        use std::os::fd::AsFd;
        let plan = Plan {
            ops: vec![Op::LinkUp((Side::Host, "tap0".into()))],
            ifaces: vec![],
            dns_servers: vec![],
            search: vec![],
        };
        let null = std::fs::File::open("/dev/null").unwrap();
        let allowed = Default::default();
        let err =
            super::super::executor::apply("netbad", &plan, &allowed, null.as_fd(), null.as_fd())
                .unwrap_err();
        NetworkError::Plan(err)
    }

    #[test]
    fn a_refused_plan_reads_the_same_one_line_after_the_pipe() {
        let in_child = refused();
        let before = format!(
            "cannot connect the container to its network: {}",
            rendered(&in_child)
        );
        let at_cli = across_the_pipe(in_child);
        assert_eq!(rendered(&at_cli), before);
        assert_eq!(
            rendered(&at_cli),
            "cannot connect the container to its network: network driver \"netbad\" planned something burrow refuses: a change to the host interface \"tap0\", which the plan did not make"
        );
        assert_eq!(at_cli.to_string(), rendered(&at_cli));
        assert!(!rendered(&at_cli).contains('\n'));
    }

    #[test]
    fn an_io_cause_keeps_its_errno_and_its_path() {
        let source = std::fs::File::open("/proc/2147483647/ns/net").unwrap_err();
        let err = NetworkError::Open {
            path: "/proc/2147483647/ns/net".into(),
            source,
        };
        let at_cli = across_the_pipe(err);
        let RuntimeError::Network(job) = &at_cli else {
            panic!("{at_cli:?}")
        };
        assert_eq!(job.errno(), Some(libc::ENOENT));
        assert_eq!(
            rendered(&at_cli),
            "cannot connect the container to its network: cannot open /proc/2147483647/ns/net: No such file or directory (os error 2)"
        );
        let err = NetworkError::RemoveLink {
            what: "the bridge",
            name: "br-1a2b".into(),
            source: std::io::Error::from_raw_os_error(libc::EBUSY),
        };
        let job = JobError::from(err);
        assert_eq!(
            job.chain(),
            [
                "cannot remove the bridge br-1a2b",
                "Device or resource busy (os error 16)"
            ]
        );
    }
}
