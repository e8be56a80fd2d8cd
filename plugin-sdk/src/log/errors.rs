//! Error helpers every driver needs: the text of a WIT [`Error`], a host failure as a Rust
//! error ([`TransportError`]), and an error chain on one line ([`chain`]).

use std::fmt;

use super::Error;

impl Error {
    /// The message, whatever the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::InvalidConfig(m)
            | Error::Unsupported(m)
            | Error::Unavailable(m)
            | Error::Denied(m)
            | Error::Internal(m) => m,
        }
    }

    /// The message, whatever the kind.
    pub fn into_message(self) -> String {
        match self {
            Error::InvalidConfig(m)
            | Error::Unsupported(m)
            | Error::Unavailable(m)
            | Error::Denied(m)
            | Error::Internal(m) => m,
        }
    }
}

/// A connection or request that failed, as the host (or the OS) words it, e.g. "dial tcp
/// 127.0.0.1:5514: connect: connection refused". It displays as that text alone, so that a
/// driver's own error can carry it as its `#[source]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    pub message: String,
}

impl TransportError {
    pub fn new(message: impl Into<String>) -> TransportError {
        TransportError {
            message: message.into(),
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TransportError {}

impl From<Error> for TransportError {
    fn from(e: Error) -> TransportError {
        TransportError {
            message: e.into_message(),
        }
    }
}

/// The error and its sources joined with ": ", on one line, for the host to show (a WIT
/// error carries one string).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot write to the syslog server at {address}")]
    struct Write {
        address: String,
        #[source]
        source: TransportError,
    }

    #[test]
    fn a_chain_reads_as_one_line() {
        let e = Write {
            address: "tcp://h:1".into(),
            source: Error::Unavailable("write: broken pipe".into()).into(),
        };
        assert_eq!(
            chain(&e),
            "cannot write to the syslog server at tcp://h:1: write: broken pipe"
        );
        assert_eq!(chain(&TransportError::new("x")), "x");
    }

    #[test]
    fn every_kind_gives_its_message() {
        for e in [
            Error::InvalidConfig("m".into()),
            Error::Unsupported("m".into()),
            Error::Unavailable("m".into()),
            Error::Denied("m".into()),
            Error::Internal("m".into()),
        ] {
            assert_eq!(e.message(), "m");
            assert_eq!(e.into_message(), "m");
        }
    }
}
