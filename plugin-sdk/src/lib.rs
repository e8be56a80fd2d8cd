//! The burrow plugin SDK.
//!
//! Plugin authors depend on this crate, never on burrow itself. It carries the WIT worlds
//! (`wit/burrow.wit`: `log-driver` and `network-driver`, package `burrow:plugin@1.0.0`) and
//! the guest bindings generated from them. The doc comments in `wit/burrow.wit` are the
//! contract; the Rust types here are generated from it one to one (WIT `kebab-case` becomes
//! Rust `snake_case` fields and `CamelCase` types).
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2`:
//!
//! ```text
//! rustup target add wasm32-wasip2
//! cargo build --release --target wasm32-wasip2
//! burrow plugin install target/wasm32-wasip2/release/NAME.wasm --grant log-dir
//! ```
//!
//! burrow's `examples/log-plugin/` is a complete template to copy, with a README on the
//! worlds and capabilities.
//!
//! # A log driver
//!
//! Implement [`log::Guest`] and the [`log::GuestLogger`] / [`log::GuestReader`] resources,
//! then export the type with [`log::export_log_driver!`]. The crate needs
//! `crate-type = ["cdylib"]`. A driver that cannot read its lines back uses
//! [`log::NoReader`] as its reader; one that delivers entry by entry can use
//! [`log::resume::Resume`] so that the host's retry of a batch skips what already went out.
//!
//! ```no_run
//! use std::cell::RefCell;
//! use burrow_plugin_sdk::log::{
//!     Capabilities, Container, Entry, Error, Guest, GuestLogger, Kv, Logger, NoReader,
//!     PluginInfo,
//! };
//!
//! struct Counter;
//!
//! impl Guest for Counter {
//!     type Logger = CountingLogger;
//!     type Reader = NoReader;
//!
//!     fn describe() -> PluginInfo {
//!         PluginInfo {
//!             name: "counter".into(),
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             description: "counts lines and keeps nothing".into(),
//!             // Nothing to ask for: no files, no network.
//!             needs: Capabilities {
//!                 log_dir: false,
//!                 network: false,
//!                 default_addresses: vec![],
//!                 http_patterns: vec![],
//!                 http: false,
//!                 secrets: vec![],
//!             },
//!         }
//!     }
//!
//!     fn validate(opts: Vec<Kv>) -> Result<(), Error> {
//!         match opts.first() {
//!             // Docker's wording: the host shows it verbatim at `create`.
//!             Some(kv) => Err(Error::InvalidConfig(format!(
//!                 "unknown log opt '{}' for counter log driver",
//!                 kv.key
//!             ))),
//!             None => Ok(()),
//!         }
//!     }
//!
//!     fn can_read() -> bool {
//!         false // the host keeps a local cache so that `burrow logs` works
//!     }
//! }
//!
//! // Resources are called through `&self`: keep state in a `RefCell`.
//! struct CountingLogger {
//!     lines: RefCell<u64>,
//! }
//!
//! impl GuestLogger for CountingLogger {
//!     fn open(_c: Container, _opts: Vec<Kv>) -> Result<Logger, Error> {
//!         Ok(Logger::new(CountingLogger { lines: RefCell::new(0) }))
//!     }
//!     fn write(&self, batch: Vec<Entry>) -> Result<(), Error> {
//!         *self.lines.borrow_mut() += batch.len() as u64;
//!         Ok(())
//!     }
//!     fn flush(&self) -> Result<(), Error> {
//!         Ok(())
//!     }
//! }
//!
//! // The component exports exist only in the wasm build, so that `cargo test` links natively.
//! #[cfg(target_arch = "wasm32")]
//! burrow_plugin_sdk::log::export_log_driver!(Counter);
//! # fn main() {}
//! ```
//!
//! # What the host promises
//!
//! - `describe` runs once per process with nothing granted; `validate` checks `--log-opt`s
//!   at `create` (the host has removed `mode`, `max-buffer-size` and `cache-*`).
//! - `write` gets batches of at most 1000 entries or 256 KiB, oldest first, under a 5 s
//!   deadline. Return [`log::Error::Unavailable`] when the destination is down: with
//!   `mode=blocking` the host offers the same batch again after a backoff (100 ms doubling
//!   to 2 s; [`log::resume`] skips what an earlier call delivered), with `mode=non-blocking`
//!   it drops and counts it. Any other error drops the batch and counts its lines as lost;
//!   the instance keeps its state. After a trap the host sends the batch once more on a
//!   fresh instance; after a timeout it drops the batch and the next call starts a fresh
//!   instance.
//! - An [`log::Entry`]'s `line` has no trailing newline. Lines over 16 KiB arrive as chunks
//!   ([`log::Partial`]: shared `id` and timestamp, `ordinal` from 1, `last` on the final
//!   one); an unterminated last line arrives as a chunk with `last: false`.
//! - `flush` is called at least once a second while lines flow, and before the logger is
//!   dropped.
//! - Host imports ([`log::diag`], [`log::endpoints`], [`log::http`], [`log::secrets`]) work
//!   only as far as the plugin asked for and the user granted. On native builds (unit tests)
//!   they are stubs that panic: keep the logic in plain functions and test those.
//!
//! # A network driver
//!
//! Implement [`net::Guest`] and export it with [`net::export_network_driver!`]. A network
//! driver computes and the host applies: `setup` and `teardown` return a [`net::Plan`],
//! plain data that the host validates against what it owns before carrying it out.
//! `examples/net-plugin` is a complete one to copy; users install it with `burrow plugin
//! install` and use it with `burrow network create --driver NAME`.
//!
//! - `create` fills in a new network (its bridge's name in `iface`, subnets) or refuses it
//!   with [`net::Error::InvalidConfig`], shown verbatim. The host then checks the subnets
//!   against the other networks' and fills in missing gateways; it hands out the addresses.
//! - `setup` gets the container's address(es) in `ips` and its interface name (`eth0`,
//!   `eth1`, …) in `ifname`. Host-side links may be named `veth…`, `br-…` or the network's
//!   `iface` (never `lo` or `tap0`, the network holder's own); host-side addresses only on
//!   links the plan makes; no host routes; host sysctls only for forwarding and the plan's
//!   links. A plan that breaks a rule is refused before any step runs.
//! - Each call runs on a fresh instance with nothing granted, under a memory cap and a 5 s
//!   deadline; a trap or timeout fails that call (the container does not start).

/// Bindings for the `log-driver` world.
pub mod log {
    wit_bindgen::generate!({
        world: "log-driver",
        path: "wit",
        pub_export_macro: true,
        export_macro_name: "export_log_driver",
        default_bindings_module: "burrow_plugin_sdk::log",
    });
    pub use burrow::plugin::log_types::*;
    pub use burrow::plugin::types::{Capabilities, Error, Kv, PluginInfo};
    pub use burrow::plugin::{diag, endpoints, http, secrets};
    pub use exports::burrow::plugin::logging::{Guest, GuestLogger, GuestReader, Logger, Reader};

    mod no_reader;
    pub mod resume;
    pub use no_reader::NoReader;

    impl Capabilities {
        /// Asks for nothing: no files, no network, no HTTP, no secrets.
        pub fn none() -> Capabilities {
            Capabilities {
                log_dir: false,
                network: false,
                default_addresses: vec![],
                http_patterns: vec![],
                http: false,
                secrets: vec![],
            }
        }
    }
}

/// Bindings for the `network-driver` world.
pub mod net {
    wit_bindgen::generate!({
        world: "network-driver",
        path: "wit",
        // One set of shared types for both worlds (`Capabilities::none()` and the like).
        with: {
            "burrow:plugin/types@1.0.0": crate::log::burrow::plugin::types,
        },
        pub_export_macro: true,
        export_macro_name: "export_network_driver",
        default_bindings_module: "burrow_plugin_sdk::net",
    });
    pub use crate::log::{Capabilities, Error, Kv, PluginInfo};
    pub use burrow::plugin::diag;
    pub use burrow::plugin::net_types::*;
    pub use exports::burrow::plugin::networking::Guest;
}
