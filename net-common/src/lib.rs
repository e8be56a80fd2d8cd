//! What burrow's network drivers share: subnet pools and address checks ([`addrs`]),
//! interface names ([`names`]), MAC addresses ([`mac`]), `-o` option values ([`opts`]) and
//! plan building and rendering ([`plan`]).
//!
//! Everything here is plain computation over the `network-driver` world's records: no I/O,
//! no host imports, so the drivers are tested natively as data in, data out.

pub mod addrs;
pub mod mac;
pub mod names;
pub mod opts;
pub mod plan;
pub mod pseudo;
#[cfg(feature = "testing")]
pub mod testing;

pub use burrow_plugin_sdk::net as wit;
pub use ipnet;

use wit::{Capabilities, Error, PluginInfo};

/// An `invalid-config` error: the host shows it verbatim at `network create`.
pub fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidConfig(msg.into())
}

/// An `unsupported` error: a Docker feature this driver does not carry out.
pub fn unsupported(msg: impl Into<String>) -> Error {
    Error::Unsupported(msg.into())
}

/// An `internal` error: the host handed over something it should never have (a network that
/// did not go through `create`, a container without an allocated address).
pub fn internal(msg: impl Into<String>) -> Error {
    Error::Internal(msg.into())
}

/// `describe` for a built-in network driver: it asks for no capability at all.
pub fn info(name: &str, version: &str, description: &str) -> PluginInfo {
    PluginInfo {
        name: name.into(),
        version: version.into(),
        description: description.into(),
        needs: Capabilities::none(),
    }
}

/// The one-line text of an error, for tests and for drivers that wrap another's message.
pub fn message(e: &Error) -> &str {
    match e {
        Error::InvalidConfig(m)
        | Error::Unsupported(m)
        | Error::Unavailable(m)
        | Error::Denied(m)
        | Error::Internal(m) => m,
    }
}
