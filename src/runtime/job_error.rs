//! [`JobError`]: how a forked job's failure crosses the process boundary with its causes.
//!
//! A job returns its own module's typed error (a `NetworkError`, an `io::Error`...); the
//! child turns it into a `JobError` before it sends it: its kind (what a caller may match on:
//! a panic, an errno such as EEXIST) and the messages of the error and of each of its causes,
//! outermost first. The parent gets a value that is an [`std::error::Error`] again, whose
//! `source()` walks those causes.
//!
//! Each link's `Display` is its message followed by those of its causes (`a: b: c`), as the
//! job's string error read before: code that prints an error with `{}` (the monitor's ready
//! message) still says everything, and `errors::render_chain`, which skips a cause whose text
//! the previous part already holds, prints the chain once.

use std::error::Error;
use std::fmt;

/// What kind of failure a job had: enough to match on without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum JobErrorKind {
    /// The job returned an error; `errno` is that of the outermost OS error in its chain.
    Failed { errno: Option<i32> },
    /// The job panicked.
    Panicked,
    /// The job's value could not be encoded as JSON in the child.
    Encode,
    /// The job's value could not be decoded in the parent.
    Decode,
}

/// A job's failure: its kind and its chain of messages (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "Wire", from = "Wire")]
pub struct JobError {
    kind: JobErrorKind,
    first: Link,
}

/// One message of the chain and the causes after it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Link {
    message: String,
    cause: Option<Box<Link>>,
}

/// The form on the channel: the kind and the messages as a list.
#[derive(serde::Serialize, serde::Deserialize)]
struct Wire {
    kind: JobErrorKind,
    chain: Vec<String>,
}

impl JobError {
    /// `err` and its causes, as `errors::render_chain` prints them (a cause whose text the
    /// previous message already holds is left out).
    pub fn from_error(err: &(dyn Error + 'static)) -> Self {
        let mut errno = None;
        let mut cause = Some(err);
        while let (Some(e), None) = (cause, errno) {
            errno = e
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error);
            cause = e.source();
        }
        let chain = crate::errors::chain_parts(err);
        JobError::new(JobErrorKind::Failed { errno }, chain)
    }

    /// A failure of `kind` with one message.
    pub fn message(kind: JobErrorKind, message: impl Into<String>) -> Self {
        JobError::new(kind, vec![message.into()])
    }

    fn new(kind: JobErrorKind, chain: Vec<String>) -> Self {
        let mut links = chain.into_iter().rev();
        let last = Link {
            message: links.next().unwrap_or_default(),
            cause: None,
        };
        let first = links.fold(last, |cause, message| Link {
            message,
            cause: Some(Box::new(cause)),
        });
        JobError { kind, first }
    }

    // Until a caller matches on a job's failure (the network's errno, the engine's panics).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn kind(&self) -> JobErrorKind {
        self.kind
    }

    /// The OS error number of the outermost I/O error in the chain, if there was one.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn errno(&self) -> Option<i32> {
        match self.kind {
            JobErrorKind::Failed { errno } => errno,
            _ => None,
        }
    }

    /// The messages, outermost first.
    pub fn chain(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut link = Some(&self.first);
        while let Some(l) = link {
            out.push(l.message.as_str());
            link = l.cause.as_deref();
        }
        out
    }
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl Error for Link {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.cause.as_deref().map(|c| c as &(dyn Error + 'static))
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.first.fmt(f)
    }
}

impl Error for JobError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.first.source()
    }
}

impl From<Wire> for JobError {
    fn from(w: Wire) -> Self {
        JobError::new(w.kind, w.chain)
    }
}

impl From<JobError> for Wire {
    fn from(e: JobError) -> Self {
        Wire {
            kind: e.kind,
            chain: e.chain().into_iter().map(String::from).collect(),
        }
    }
}

/// An error type a job may return as it is: it converts into a [`JobError`] that keeps its
/// chain (each module marks its own error type).
pub trait JobFailure: Error + 'static {}

impl JobFailure for std::io::Error {}

impl<E: JobFailure> From<E> for JobError {
    fn from(e: E) -> Self {
        JobError::from_error(&e)
    }
}

/// A job's message as it is (the engine's jobs still render their own chains).
impl From<String> for JobError {
    fn from(message: String) -> Self {
        JobError::message(JobErrorKind::Failed { errno: None }, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    enum Outer {
        #[error("cannot remove the bridge {name}")]
        Remove {
            name: String,
            #[source]
            source: std::io::Error,
        },
        /// Says its cause inline too: the chain keeps it once.
        #[error("the tap device failed ({0})")]
        Tap(#[source] std::io::Error),
    }
    impl JobFailure for Outer {}

    fn eexist() -> std::io::Error {
        std::io::Error::from_raw_os_error(libc::EEXIST)
    }

    #[test]
    fn the_chain_and_the_errno_cross_the_pipe() {
        let err = JobError::from(Outer::Remove {
            name: "br-1".into(),
            source: eexist(),
        });
        let json = serde_json::to_string(&err).unwrap();
        assert_eq!(
            json,
            r#"{"kind":{"Failed":{"errno":17}},"chain":["cannot remove the bridge br-1","File exists (os error 17)"]}"#
        );
        let back: JobError = serde_json::from_str(&json).unwrap();
        assert_eq!(back, err);
        assert_eq!(back.errno(), Some(libc::EEXIST));
        assert_eq!(
            back.to_string(),
            "cannot remove the bridge br-1: File exists (os error 17)"
        );
        let cause = back.source().expect("the io error's message");
        assert_eq!(cause.to_string(), "File exists (os error 17)");
        assert!(cause.source().is_none());
    }

    #[test]
    fn a_cause_said_inline_is_kept_once_and_strings_have_no_errno() {
        let err = JobError::from(Outer::Tap(eexist()));
        assert_eq!(
            err.chain(),
            ["the tap device failed (File exists (os error 17))"]
        );
        assert_eq!(err.errno(), Some(libc::EEXIST));
        let err = JobError::from("layer sha256:ab is corrupt".to_string());
        assert_eq!(err.chain(), ["layer sha256:ab is corrupt"]);
        assert_eq!(err.kind(), JobErrorKind::Failed { errno: None });
        assert!(err.source().is_none());
    }
}
